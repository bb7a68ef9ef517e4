/* Tokenizer input (af_tokenizer_encode): arbitrary bytes (invalid UTF-8,
 * control characters, CJK, accents) under each option set, with the
 * tests/data/tiny_bert_b vocabulary. */
#include "fuzz_util.h"
#include "affinity.h"

static af_tokenizer *tok[4]; /* loaded once (LLVMFuzzerInitialize) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  for (int k = 0; k < 4; k++) {
    af_tokenizer_options o;
    af_tokenizer_default_options(&o);
    o.lowercase = k & 1;
    o.tokenize_chinese_chars = k >> 1;
    o.max_len = k == 3 ? 512 : 16;
    af_error e = {0};
    if (af_tokenizer_from_vocab_file(AF_SOURCE_DIR "/tests/data/tiny_bert_b/vocab.txt", &o,
                                     &tok[k], &e) != AF_OK)
      abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  int32_t ids[512];
  for (int k = 0; k < 4; k++) {
    int len = 0;
    af_error err = {0};
    (void)af_tokenizer_encode(tok[k], (const char *)data, n, ids, 512, &len, &err);
  }
  return 0;
}
