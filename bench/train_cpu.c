/* Training-step throughput of the CPU trainer (include/affinity.h) on MiniLM-style
 * pair batches. Reads the batch texts from a file written by
 * bench/train_cpu.py (one "anchor\tpositive" per line, in batch order), runs
 * `warmup` untimed steps and `steps` timed ones (forward + MNR loss + backward
 * + AdamW), and prints one JSON line: tokens/s, s/step, phase times, peak RSS.
 *
 *   bench_train_cpu MODEL.h5 PAIRS.tsv BATCH STEPS WARMUP THREADS [DROPOUT] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "affinity.h"
#include "nn/model.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s MODEL.h5 PAIRS.tsv BATCH STEPS WARMUP THREADS [DROPOUT [fp32|bf16]]\n", argv[0]);
    return 2;
  }
  const int B = atoi(argv[3]), steps = atoi(argv[4]), warm = atoi(argv[5]), threads = atoi(argv[6]);
  const float dropout = argc > 7 ? (float)atof(argv[7]) : 0.1f;
  af_error err = {0};
  af_model m;
  if (af_model_load(argv[1], &m, &err) != AF_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  FILE *f = fopen(argv[2], "r");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", argv[2]);
    return 1;
  }
  int cap = 1 << 16, n = 0;
  char **a = malloc(sizeof(char *) * cap), **p = malloc(sizeof(char *) * cap);
  char line[4096];
  while (n < cap && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    char *tab = strchr(line, '\t');
    if (!tab)
      continue;
    *tab = 0;
    a[n] = strdup(line);
    p[n] = strdup(tab + 1);
    n++;
  }
  fclose(f);
  if (n < B * (steps + warm)) {
    fprintf(stderr, "need %d pairs, have %d\n", B * (steps + warm), n);
    return 1;
  }
  af_device dev = af_device_cpu(threads);
  if (af_device_set_precision(&dev, argc > 8 ? argv[8] : "fp32", &err) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  af_tokenizer *tok;
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.batch = B;
  cfg.dropout = dropout;
  cfg.attn_dropout = dropout;
  cfg.total_steps = steps + warm;
  af_trainer *t;
  if (af_model_tokenizer(&m, 0, &tok, &err) != AF_OK ||
      af_trainer_create(&m, &dev, &cfg, &t, &err) != AF_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  const int max_len = af_tokenizer_options_of(tok)->max_len;
  int32_t *ids = malloc(sizeof(int32_t) * 2 * B * max_len), *cu = malloc(sizeof(int32_t) * (2 * B + 1));
  long long tokens = 0;
  double t_total = 0, t_fb = 0, t_step = 0;
  for (int s = 0; s < warm + steps; s++) {
    int T = 0;
    cu[0] = 0;
    for (int k = 0; k < 2 * B; k++) {
      const char *txt = k < B ? a[s * B + k] : p[s * B + k - B];
      int nid = 0;
      if (af_tokenizer_encode(tok, txt, strlen(txt), ids + T, max_len, &nid, &err) != AF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
      }
      T += nid;
      cu[k + 1] = T;
    }
    af_batch b = {2 * B, T, ids, cu};
    float loss;
    double t0 = now();
    if (af_trainer_accumulate(t, &b, (uint64_t)s, &loss, &err) != AF_OK) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double t1 = now();
    if (af_trainer_step(t, 1, NULL, NULL, &err) != AF_OK) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double t2 = now();
    if (s >= warm) {
      tokens += T;
      t_total += t2 - t0;
      t_fb += t1 - t0;
      t_step += t2 - t1;
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"impl\": \"affinity\", \"batch\": %d, \"steps\": %d, \"threads\": %d, \"tokens\": %lld, "
         "\"tokens_per_s\": %.1f, \"s_per_step\": %.4f, \"fwd_bwd_s\": %.4f, \"optimizer_s\": %.4f, "
         "\"peak_rss_mb\": %.1f}\n",
         B, steps, threads, tokens, tokens / t_total, t_total / steps, t_fb / steps, t_step / steps,
         ru.ru_maxrss / 1024.0);
  af_trainer_free(t);
  af_tokenizer_free(tok);
  af_model_free(&m);
  return 0;
}
