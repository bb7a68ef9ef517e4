/* vocab.txt (af_tokenizer_from_vocab_file), then encoding a fixed text. */
#include "fuzz_util.h"
#include "affinity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  const char *path = fuzz_write("vocab", data, n);
  af_tokenizer_options o;
  af_tokenizer_default_options(&o);
  o.max_len = 32;
  af_tokenizer *tok = NULL;
  af_error err = {0};
  if (af_tokenizer_from_vocab_file(path, &o, &tok, &err) != AF_OK)
    return 0;
  static const char text[] = "Organic Whole Milk, 1 gal \xe7\x89\x9b\xe5\xa5\xb6 caf\xc3\xa9 ##x [UNK]";
  int32_t ids[32];
  int len = 0;
  (void)af_tokenizer_encode(tok, text, sizeof text - 1, ids, 32, &len, &err);
  af_tokenizer_free(tok);
  return 0;
}
