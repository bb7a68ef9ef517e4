/* bench_encode_cpu: tokenize + encode every name of a catalog with the CPU
 * encoder, as `affinity embed` does, timing the work without process start
 * and model load. Prints one JSON line per repetition.
 *
 *   bench_encode_cpu MODEL.h5 CATALOG.csv ID_COL TEXT_COL [batch_sentences|0] [reps] [threads]
 * batch_sentences > 0 packs that many sentences per forward (as a sentence-
 * transformers batch); 0 packs by a token budget of 8192 (our default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "nn/model.h"

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s MODEL.h5 CATALOG.csv ID_COL TEXT_COL [batch_sentences] [reps] [threads] [fp32|bf16]\n", argv[0]);
    return 2;
  }
  int batch = argc > 5 ? atoi(argv[5]) : 32, reps = argc > 6 ? atoi(argv[6]) : 3;
  int threads = argc > 7 ? atoi(argv[7]) : 0;
  af_error err = {0};
  af_model m;
  af_catalog cat;
  const char *text_cols[1] = {argv[4]};
  af_catalog_options copt = {.id_column = argv[3], .text_columns = text_cols, .n_text_columns = 1};
  if (af_model_load(argv[1], &m, &err) != AF_OK || af_catalog_load(argv[2], &copt, &cat, &err) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  af_device dev = af_device_cpu(threads);
  if (af_device_set_precision(&dev, argc > 8 ? argv[8] : "fp32", &err) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  af_encoder *enc;
  af_tokenizer *tok;
  if (af_encoder_create(&m, &dev, &enc, &err) != AF_OK || af_model_tokenizer(&m, 0, &tok, &err) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  const int64_t n = cat.n;
  const int C = m.cfg.hidden_size, max_len = af_tokenizer_options_of(tok)->max_len;
  float *out = malloc(sizeof(float) * (size_t)n * C);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_len);
  int64_t tokens = 0;
  for (int64_t i = 0; i < n; i++) {
    int len;
    af_tokenizer_encode(tok, cat.texts[i], strlen(cat.texts[i]), ids, max_len, &len, &err);
    tokens += len;
  }
  af_embed_options opt;
  af_embed_default_options(&opt);
  for (int r = 0; r < reps; r++) {
    double t0 = now(), c0 = cpu_now();
    af_status st = AF_OK;
    if (batch > 0) {
      /* sentence-count batches, as sentence-transformers does (tokenize + encode per batch) */
      opt.batch_tokens = batch * max_len;
      for (int64_t i = 0; i < n && st == AF_OK; i += batch) {
        int64_t b = n - i < batch ? n - i : batch;
        st = af_embed_texts(enc, tok, (const char *const *)cat.texts + i, b, &opt, out + i * C, &err);
      }
    } else {
      st = af_embed_texts(enc, tok, (const char *const *)cat.texts, n, &opt, out, &err);
    }
    double dt = now() - t0, cpu = cpu_now() - c0;
    if (st != AF_OK) {
      fprintf(stderr, "error: %s\n", err.msg);
      return 1;
    }
    printf("{\"rep\": %d, \"texts\": %lld, \"tokens\": %lld, \"seconds\": %.4f, \"cpu_seconds\": %.4f, "
           "\"batch\": %d}\n",
           r, (long long)n, (long long)tokens, dt, cpu, batch);
    fflush(stdout);
  }
  free(out);
  free(ids);
  af_tokenizer_free(tok);
  af_encoder_free(enc);
  af_catalog_free(&cat);
  af_model_free(&m);
  return 0;
}
