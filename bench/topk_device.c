/* All-pairs top-k on a device (bench_topk_device; run by bench/score_gpu.py):
 * af_bf16_topk_device_ex (the fused kernel, or the tiled path) on N rows of a
 * raw float32 file, against the bf16 GEMM floor measured in the same process
 * (cuBLASLt bf16 in, fp32 out, on 16,384 x 8,192 x d tiles: 2 N^2 d at that
 * rate), and its recall and exactness against the CPU scorer on a sample of
 * rows. Prints one JSON line.
 *   bench_topk_device RAW N d k [reps] [cpu] [path]
 * RAW: N x d float32, row-major (numpy .tofile). "cpu": the CPU backend (the
 * twins; for checking this program on a machine without a GPU, tiny N only).
 * path: auto | fused | tiled. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"
#include "search/score_bf16.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what, const af_error *err) {
  fprintf(stderr, "bench_topk_device: %s: %s\n", what, err ? err->msg : "");
  exit(1);
}

/* Seconds of one (QT x TC x d) bf16 GEMM tile, median of 10 after 3 warm-ups. */
static double gemm_tile_seconds(const af_device *dev, int QT, int TC, int d) {
  af_error err = {0};
  void *a, *b, *c;
  if (af_dev_alloc(dev, (size_t)QT * d * 2, &a, &err) || af_dev_alloc(dev, (size_t)TC * d * 2, &b, &err) ||
      af_dev_alloc(dev, (size_t)QT * TC * 4, &c, &err))
    die("gemm buffers", &err);
  uint16_t *h = calloc((size_t)(QT > TC ? QT : TC) * d, 2);
  for (size_t i = 0; h && i < (size_t)(QT > TC ? QT : TC) * d; i++)
    h[i] = af_bf16_from_f32((float)((i * 2654435761u) % 1000) / 1000.f - 0.5f);
  if (!h || af_dev_upload(dev, a, h, (size_t)QT * d * 2, &err) ||
      af_dev_upload(dev, b, h, (size_t)TC * d * 2, &err))
    die("gemm upload", &err);
  double t[10];
  for (int i = 0; i < 13; i++) {
    double t0 = now();
    if (af_op_linear_bf16_forward(dev, c, a, b, NULL, QT, d, TC, &err) || af_dev_sync(dev, &err))
      die("gemm", &err);
    if (i >= 3)
      t[i - 3] = now() - t0;
  }
  qsort(t, 10, sizeof t[0], cmpd);
  free(h);
  af_dev_free(dev, a);
  af_dev_free(dev, b);
  af_dev_free(dev, c);
  return t[5];
}

/* Sample rows [0, S): recall of ours against the CPU scorer, rows identical. */
static void sample_check(const float *x, int64_t N, int d, int k, int64_t S, const int64_t *nbr,
                         const float *scr, double *recall, int64_t *same) {
  af_error err = {0};
  int64_t *en = malloc(sizeof(int64_t) * S * k);
  float *es = malloc(sizeof(float) * S * k);
  if (!en || !es || af_topk_all_pairs(x, N, d, k, -INFINITY, 0, S, en, es, NULL, &err))
    die("cpu scorer", &err);
  int64_t hits = 0, want = 0;
  *same = 0;
  for (int64_t q = 0; q < S; q++) {
    *same += !memcmp(en + q * k, nbr + q * k, 8 * k) && !memcmp(es + q * k, scr + q * k, 4 * k);
    for (int j = 0; j < k; j++) {
      if (en[q * k + j] < 0)
        continue;
      want++;
      for (int l = 0; l < k; l++)
        hits += nbr[q * k + l] == en[q * k + j];
    }
  }
  *recall = want ? (double)hits / want : 1.0;
  free(en);
  free(es);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: bench_topk_device RAW N d k [reps] [cpu|cuda] [auto|fused|tiled]\n");
    return 2;
  }
  const int64_t N = atoll(argv[2]);
  const int d = atoi(argv[3]), k = atoi(argv[4]), reps = argc > 5 ? atoi(argv[5]) : 3;
  const int cpu = argc > 6 && !strcmp(argv[6], "cpu");
  const char *path = argc > 7 ? argv[7] : "auto";
  af_error err = {0};
  float *x = malloc(sizeof(float) * (size_t)N * d);
  FILE *f = fopen(argv[1], "rb");
  if (!x || !f || fread(x, sizeof(float) * d, (size_t)N, f) != (size_t)N) {
    fprintf(stderr, "bench_topk_device: cannot read %lld x %d floats from %s\n", (long long)N, d,
            argv[1]);
    return 1;
  }
  fclose(f);
  af_device dev = af_device_cpu(0);
  if (!cpu && af_device_cuda(0, &dev, &err) != AF_OK)
    die("no CUDA device", &err);
  af_bf16_topk_device_options o = {.path = !strcmp(path, "fused")   ? AF_TOPK_PATH_FUSED
                                           : !strcmp(path, "tiled") ? AF_TOPK_PATH_TILED
                                                                    : AF_TOPK_PATH_AUTO};
  int64_t *nbr = malloc(sizeof(int64_t) * (size_t)N * k);
  float *scr = malloc(sizeof(float) * (size_t)N * k);
  if (!nbr || !scr)
    die("out of host memory", NULL);
  double ts[16];
  af_bf16_topk_device_report rep = {0};
  for (int r = 0; r < reps && r < 16; r++) {
    double t0 = now();
    if (af_bf16_topk_device_ex(&dev, x, N, d, k, 16, -INFINITY, 0, N, &o, nbr, scr, &rep, &err))
      die("top-k", &err);
    ts[r] = now() - t0;
  }
  const int QT = N < 16384 ? (int)N : 16384, TC = N < 8192 ? (int)N : 8192;
  const double tile = gemm_tile_seconds(&dev, QT, TC, (d + 15) / 16 * 16);
  const double rate = 2.0 * QT * TC * ((d + 15) / 16 * 16) / tile;
  const double floor_s = 2.0 * (double)N * N * d / rate;
  double recall;
  int64_t same;
  const int64_t S = N < 256 ? N : 256;
  sample_check(x, N, d, k, S, nbr, scr, &recall, &same);
  const int kp = (int)(k + 16 < N ? k + 16 : N);
  printf("{\"N\": %lld, \"d\": %d, \"k\": %d, \"device\": \"%s\", \"path\": \"%s\", \"runs_s\": [",
         (long long)N, d, k, cpu ? "cpu" : "cuda", rep.fused ? "fused" : "tiled");
  for (int r = 0; r < reps && r < 16; r++)
    printf("%s%.4f", r ? ", " : "", ts[r]);
  qsort(ts, (size_t)(reps < 16 ? reps : 16), sizeof ts[0], cmpd);
  printf("], \"median_s\": %.4f, \"gemm_tflops\": %.2f, \"floor_s\": %.4f, \"n_chunks\": %lld, "
         "\"plan_bytes\": %zu, \"uncertified\": %lld, \"sample_rows\": %lld, "
         "\"sample_recall\": %.6f, \"sample_rows_identical\": %lld}\n",
         ts[(reps < 16 ? reps : 16) / 2], rate / 1e12, floor_s, (long long)rep.n_chunks,
         af_bf16_topk_plan_bytes(N, rep.col_chunk, rep.q_tile, d, kp), (long long)rep.uncertified,
         (long long)S, recall, (long long)same);
  free(x);
  free(nbr);
  free(scr);
  af_device_release(&dev);
  return 0;
}
