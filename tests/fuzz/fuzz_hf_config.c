/* The Hugging Face / sentence-transformers folder (af_model_import_hf): the
 * first input byte picks the file to replace in a copy of tests/fuzz/hf_micro
 * (config.json, tokenizer_config.json, modules.json, sentence_bert_config.json,
 * 1_Pooling/config.json, vocab.txt); the rest is its content. The copy is made
 * once (LLVMFuzzerInitialize) on /dev/shm, model.safetensors as a link to the
 * fixture; the replaced file is restored from memory after each input.
 * hf_micro (tests/fuzz/make_hf_micro.py) is tiny_bert_b's folder with a micro
 * BERT (hidden 16, 34 KB of weights instead of 1.7 MB): under ASan, converting
 * tiny_bert_b's weights took most of each execution (~700 exec/s). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_util.h"
#include "nn/model.h"

static const char *const FILES[] = {"config.json",   "tokenizer_config.json",
                                    "modules.json",  "sentence_bert_config.json",
                                    "1_Pooling/config.json", "vocab.txt"};
#define N_FILES (sizeof FILES / sizeof FILES[0])

static char dir[256];
static struct {
  char *data;
  size_t n;
} orig[N_FILES]; /* the fixture's files */

static void put(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n))
    abort();
  fclose(f);
}

static void slurp(const char *path, char **data, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f || fseek(f, 0, SEEK_END) != 0)
    abort();
  long len = ftell(f);
  if (len < 0 || fseek(f, 0, SEEK_SET) != 0 || !(*data = malloc((size_t)len + 1)))
    abort();
  if (fread(*data, 1, (size_t)len, f) != (size_t)len)
    abort();
  fclose(f);
  *n = (size_t)len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  snprintf(dir, sizeof dir, "%s/af-fuzz-%ld-hf", fuzz_tmpdir(), (long)getpid());
  char p[512], q[512];
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/1_Pooling", dir);
  mkdir(p, 0755);
  for (size_t i = 0; i < N_FILES; i++) {
    snprintf(p, sizeof p, "%s/tests/fuzz/hf_micro/%s", AF_SOURCE_DIR, FILES[i]);
    snprintf(q, sizeof q, "%s/%s", dir, FILES[i]);
    slurp(p, &orig[i].data, &orig[i].n);
    put(q, orig[i].data, orig[i].n);
  }
  snprintf(p, sizeof p, "%s/tests/fuzz/hf_micro/model.safetensors", AF_SOURCE_DIR);
  snprintf(q, sizeof q, "%s/model.safetensors", dir);
  unlink(q);
  if (symlink(p, q) != 0)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  if (n < 1)
    return 0;
  size_t which = data[0] % N_FILES;
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, FILES[which]);
  put(p, data + 1, n - 1);
  af_model m;
  af_error err = {0};
  if (af_model_import_hf(dir, &m, &err) == AF_OK)
    af_model_free(&m);
  put(p, orig[which].data, orig[which].n); /* restore for the next input */
  return 0;
}
