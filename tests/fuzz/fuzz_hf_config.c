/* The Hugging Face / sentence-transformers folder (af_model_import_hf): the
 * first input byte picks the file to replace in a copy of tests/data/tiny_bert_b
 * (config.json, tokenizer_config.json, modules.json, sentence_bert_config.json,
 * 1_Pooling/config.json, vocab.txt); the rest is its content. */
#include <sys/stat.h>

#include "fuzz_util.h"
#include "nn/model.h"

static const char *const FILES[] = {"config.json",   "tokenizer_config.json",
                                    "modules.json",  "sentence_bert_config.json",
                                    "1_Pooling/config.json", "vocab.txt"};
#define N_FILES (sizeof FILES / sizeof FILES[0])

static char dir[256];

static void copy(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  if (!a || !b)
    abort();
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, a)) > 0)
    if (fwrite(buf, 1, k, b) != k)
      abort();
  fclose(a);
  fclose(b);
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/af-fuzz-%ld-hf", (long)getpid());
  char p[512], q[512];
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/1_Pooling", dir);
  mkdir(p, 0755);
  for (size_t i = 0; i < N_FILES; i++) {
    snprintf(p, sizeof p, "%s/tests/data/tiny_bert_b/%s", AF_SOURCE_DIR, FILES[i]);
    snprintf(q, sizeof q, "%s/%s", dir, FILES[i]);
    copy(p, q);
  }
  snprintf(p, sizeof p, "%s/tests/data/tiny_bert_b/model.safetensors", AF_SOURCE_DIR);
  snprintf(q, sizeof q, "%s/model.safetensors", dir);
  copy(p, q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  if (!dir[0])
    setup();
  if (n < 1)
    return 0;
  size_t which = data[0] % N_FILES;
  char p[512], orig[512];
  snprintf(p, sizeof p, "%s/%s", dir, FILES[which]);
  FILE *f = fopen(p, "wb");
  if (!f || (n > 1 && fwrite(data + 1, 1, n - 1, f) != n - 1))
    abort();
  fclose(f);
  af_model m;
  af_error err = {0};
  if (af_model_import_hf(dir, &m, &err) == AF_OK)
    af_model_free(&m);
  snprintf(orig, sizeof orig, "%s/tests/data/tiny_bert_b/%s", AF_SOURCE_DIR, FILES[which]);
  copy(orig, p); /* restore for the next input */
  return 0;
}
