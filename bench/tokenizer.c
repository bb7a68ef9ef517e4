/* Tokenizer throughput: every Instacart product name through af_tokenizer_encode,
 * one thread, several timed passes; prints the median pass.
 *
 *   build/bench_tokenizer [VOCAB [PRODUCTS_CSV [PASSES]]]
 *
 * Defaults read ../shared/datasets from the repository root. bench/tokenizer_hf.py
 * runs this and Hugging Face's BertTokenizerFast on the same data and prints the ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Reads column 1 (product_name) of products.csv into one buffer of
 * NUL-separated names; RFC 4180 quoting. Returns the count, -1 on error. */
static long read_names(const char *path, char **buf_out, size_t **off_out) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc((size_t)size + 1);
  char *names = malloc((size_t)size + 1);
  size_t *off = malloc(sizeof(size_t) * ((size_t)size / 2 + 2));
  if (!data || !names || !off || fread(data, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(data), free(names), free(off);
    return -1;
  }
  fclose(f);
  long n = 0, row = 0;
  int field = 0, quoted = 0;
  size_t w = 0;
  for (long i = 0; i < size; i++) {
    char c = data[i];
    if (quoted) {
      if (c == '"' && i + 1 < size && data[i + 1] == '"') {
        if (field == 1 && row > 0)
          names[w++] = '"';
        i++;
      } else if (c == '"') {
        quoted = 0;
      } else if (field == 1 && row > 0) {
        names[w++] = c;
      }
    } else if (c == '"') {
      quoted = 1;
    } else if (c == ',') {
      if (field == 1 && row > 0)
        names[w++] = '\0';
      field++;
      if (field == 1 && row > 0)
        off[n++] = w;
    } else if (c == '\n') {
      row++;
      field = 0;
    } else if (c != '\r' && field == 1 && row > 0) {
      names[w++] = c;
    }
  }
  off[n] = w; /* one past the last NUL: name i spans off[i] .. off[i+1]-1 */
  free(data);
  *buf_out = names;
  *off_out = off;
  return n;
}

int main(int argc, char **argv) {
  const char *vocab = argc > 1 ? argv[1] : "../shared/datasets/vocab/bert-base-uncased/vocab.txt";
  const char *csv = argc > 2 ? argv[2] : "../shared/datasets/instacart/products.csv";
  int passes = argc > 3 ? atoi(argv[3]) : 7;
  if (passes < 1 || passes > 1000)
    passes = 7;
  af_error err;
  af_tokenizer *tok = NULL;
  if (af_tokenizer_from_vocab_file(vocab, NULL, &tok, &err) != AF_OK) {
    fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
    return 1;
  }
  char *names;
  size_t *off;
  long n = read_names(csv, &names, &off);
  if (n <= 0) {
    fprintf(stderr, "bench_tokenizer: cannot read %s\n", csv);
    af_tokenizer_free(tok);
    return 1;
  }
  int32_t ids[512];
  long total_ids = 0;
  double *secs = malloc(sizeof(double) * (size_t)passes);
  for (int p = 0; p < passes; p++) {
    long count = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
      int k = 0;
      if (af_tokenizer_encode(tok, names + off[i], off[i + 1] - 1 - off[i], ids, 512, &k, &err) != AF_OK) {
        fprintf(stderr, "bench_tokenizer: name %ld: %s\n", i, err.msg);
        return 1;
      }
      count += k;
    }
    secs[p] = now_s() - t0;
    total_ids = count;
  }
  qsort(secs, (size_t)passes, sizeof *secs, cmp_double);
  double med = secs[passes / 2];
  printf("texts %ld ids %ld (incl. [CLS]/[SEP]) median of %d passes %.4f s: %.0f ids/s, %.0f texts/s\n", n,
         total_ids, passes, med, (double)total_ids / med, (double)n / med);
  free(secs);
  free(names);
  free(off);
  af_tokenizer_free(tok);
  return 0;
}
