/* Training-step throughput of the trainer on a device (GPU or CPU) for the
 * GPU check (bench/gpu_check_train.sh, peer bench/gpu_check_train.py). Reads
 * token ids written by the peer (one sequence per line, space-separated ids;
 * per step BATCH anchors then their BATCH positives), so both sides see the
 * same sequences and lengths. Without MODEL.h5 the model is all-MiniLM-L6-v2's
 * shape (V 30522, C 384, L 6, 12 heads, F 1536, mean pooling + normalise) with
 * seeded random weights (N(0, 0.02), LayerNorm 1/0): step time does not depend
 * on the values. Runs WARMUP untimed and STEPS timed steps (forward + MNR loss
 * + backward + fused AdamW, dropout 0.1), each ending in a device sync, and
 * prints one JSON line (tokens/s counts real tokens; no padding exists here).
 *
 *   bench_train_gpu cpu|cuda fp32|bf16 IDS.txt BATCH STEPS WARMUP [MODEL.h5] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "base/philox.h"
#include "nn/model.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* all-MiniLM-L6-v2's configuration with seeded random weights. */
static af_status random_minilm(af_model *m, af_error *err) {
  af_model_config c = {.vocab_size = 30522, .hidden_size = 384, .num_layers = 6,
                       .num_heads = 12, .intermediate_size = 1536, .max_position = 512,
                       .type_vocab_size = 2, .layer_norm_eps = 1e-12f, .pooling = AF_POOL_MEAN,
                       .normalize = 1, .max_seq_len = 256, .lowercase = 1, .strip_accents = -1,
                       .tokenize_chinese_chars = 1};
  AF_TRY(af_model_create(&c, m, err));
  for (int i = 0; i < m->n_params; i++) {
    const af_param_info *p = &m->params[i];
    float *d = m->data + p->offset;
    const int ln = strstr(p->name, "LayerNorm") != NULL, bias = strstr(p->name, ".bias") != NULL;
    for (int64_t k = 0; k < p->numel; k += 4) {
      uint32_t w[4];
      af_philox_block(7, (uint64_t)i, (uint64_t)k / 4, w);
      for (int j = 0; j < 4 && k + j < p->numel; j++) {
        const double u1 = af_philox_uniform(w[j]) + 0x1p-25; // (0, 1]
        const double u2 = af_philox_uniform(w[(j + 1) % 4]);
        const double g = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2); // Box-Muller
        d[k + j] = ln ? (bias ? 0.0f : 1.0f) : bias ? 0.0f : (float)(0.02 * g);
      }
    }
  }
  return AF_OK;
}

/* ids file -> sequences: all ids (n_ids) and each sequence's start (n_seq + 1). */
static int read_ids(const char *path, int32_t **ids, int64_t **start, int64_t *n_seq) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t cap = 1 << 20, scap = 1 << 14, n = 0, ns = 0;
  *ids = malloc(cap * sizeof **ids);
  *start = malloc((scap + 1) * sizeof **start);
  char *line = NULL;
  size_t lcap = 0;
  (*start)[0] = 0;
  while (*ids && *start && getline(&line, &lcap, f) > 0) {
    char *p = line, *end;
    for (long v = strtol(p, &end, 10); end != p; v = strtol(p, &end, 10)) {
      if (n == cap)
        *ids = realloc(*ids, (cap *= 2) * sizeof **ids);
      (*ids)[n++] = (int32_t)v;
      p = end;
    }
    if (ns + 1 == scap)
      *start = realloc(*start, ((scap *= 2) + 1) * sizeof **start);
    (*start)[++ns] = (int64_t)n;
  }
  free(line);
  fclose(f);
  *n_seq = (int64_t)ns;
  return *ids && *start;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s cpu|cuda fp32|bf16 IDS.txt BATCH STEPS WARMUP [MODEL.h5]\n", argv[0]);
    return 2;
  }
  const int B = atoi(argv[4]), steps = atoi(argv[5]), warm = atoi(argv[6]);
  af_error err = {0};
  af_device dev = af_device_cpu(0);
  if (strcmp(argv[1], "cuda") == 0 && af_device_cuda(0, &dev, &err) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  af_model m;
  memset(&m, 0, sizeof m);
  if (af_device_set_precision(&dev, argv[2], &err) != AF_OK ||
      (argc > 7 ? af_model_load(argv[7], &m, &err) : random_minilm(&m, &err)) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  int32_t *ids = NULL;
  int64_t *start = NULL, n_seq = 0;
  if (!read_ids(argv[3], &ids, &start, &n_seq) || n_seq < (int64_t)2 * B * (steps + warm)) {
    fprintf(stderr, "error: %s: need %d sequences, have %lld\n", argv[3], 2 * B * (steps + warm),
            (long long)n_seq);
    return 1;
  }
  af_train_config cfg;
  af_train_default_config(&cfg);
  cfg.batch = B;
  cfg.total_steps = steps + warm;
  af_trainer *t = NULL;
  if (af_trainer_create(&m, &dev, &cfg, &t, &err) != AF_OK) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  int32_t *cu = malloc(sizeof(int32_t) * (size_t)(2 * B + 1));
  long long tokens = 0;
  double t_total = 0, t_fb = 0, loss_last = 0;
  for (int s = 0; s < warm + steps; s++) {
    const int64_t s0 = (int64_t)s * 2 * B, t0i = start[s0];
    for (int k = 0; k <= 2 * B; k++)
      cu[k] = (int32_t)(start[s0 + k] - t0i);
    af_batch b = {2 * B, cu[2 * B], ids + t0i, cu};
    float loss = 0;
    const double t0 = now();
    if (af_trainer_accumulate(t, &b, (uint64_t)s, &loss, &err) != AF_OK) {
      fprintf(stderr, "error: %s\n", err.msg);
      return 1;
    }
    const double t1 = now();
    if (af_trainer_step(t, 1, NULL, NULL, &err) != AF_OK) { /* ends with a device sync */
      fprintf(stderr, "error: %s\n", err.msg);
      return 1;
    }
    const double t2 = now();
    loss_last = loss;
    if (s >= warm) {
      tokens += b.T;
      t_total += t2 - t0;
      t_fb += t1 - t0;
    }
  }
  printf("{\"impl\": \"affinity\", \"device\": \"%s\", \"precision\": \"%s\", \"batch\": %d, "
         "\"steps\": %d, \"tokens\": %lld, \"tokens_per_s\": %.1f, \"s_per_step\": %.5f, "
         "\"fwd_loss_bwd_s\": %.5f, \"last_loss\": %.5f}\n",
         argv[1], argv[2], B, steps, tokens, tokens / t_total, t_total / steps, t_fb / steps,
         loss_last);
  af_trainer_free(t);
  af_model_free(&m);
  af_device_release(&dev);
  free(cu);
  free(ids);
  free(start);
  return 0;
}
