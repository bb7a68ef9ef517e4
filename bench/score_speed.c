/* Speed of the all-pairs top-k kernel on random unit vectors against its
 * floor: the OpenBLAS sgemm of the same product (rows x N x d) computing the
 * scores only, in blocks of 4096 x 4096, no selection, same threads.
 *   bench_score_speed N d k threads [block_rows block_cols [rows]]
 * (OpenBLAS threads follow OPENBLAS_NUM_THREADS / its default: set it to the
 * same count.) With rows = N it also times the asymmetric path (every pair
 * twice) in the same run. BENCH_CLOCK=cpu measures process CPU time.
 * The comparison with faiss is bench/score_vs_faiss.py. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>

#include "affinity.h"

/* BENCH_CLOCK=cpu: process CPU time instead of wall time (stable on a shared
 * machine; run with OMP_WAIT_POLICY=passive so idle workers do not spin). */
static double now(void) {
  struct timespec ts;
  const char *c = getenv("BENCH_CLOCK");
  clock_gettime(c && c[0] == 'c' ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s N d k threads [block_rows block_cols [rows]]\n", argv[0]);
    return 2;
  }
  int64_t N = atoll(argv[1]);
  int d = atoi(argv[2]), k = atoi(argv[3]);
  af_score_options opt = {.threads = atoi(argv[4]),
                         .block_rows = argc > 5 ? atoll(argv[5]) : 0,
                         .block_cols = argc > 6 ? atoll(argv[6]) : 0};
  int64_t rows = argc > 7 ? atoll(argv[7]) : N;
  float *x = malloc(sizeof(float) * (size_t)N * d); // (N, d)
  int64_t *nbr = malloc(sizeof(int64_t) * (size_t)rows * k); // (rows, k)
  float *scr = malloc(sizeof(float) * (size_t)rows * k);     // (rows, k)
  if (!x || !nbr || !scr)
    return 1;
  unsigned s = 12345;
  for (int64_t i = 0; i < N; i++) {
    double n2 = 0;
    for (int j = 0; j < d; j++) {
      s = s * 1103515245u + 12345u;
      float v = ((s >> 8) / 16777216.0f) - 0.5f;
      x[i * d + j] = v;
      n2 += (double)v * v;
    }
    for (int j = 0; j < d; j++)
      x[i * d + j] = (float)(x[i * d + j] / sqrt(n2));
  }
  af_error err;
  /* All rows: the symmetric path (each pair once) and, same run, the asymmetric one. */
  double t = 0, t_asym = 0;
  for (int pass = 0; pass < (rows == N ? 2 : 1); pass++) {
    opt.asymmetric = pass;
    double t0 = now();
    if (af_topk_all_pairs(x, N, d, k, -INFINITY, 0, rows, nbr, scr, &opt, &err) != AF_OK) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    *(pass ? &t_asym : &t) = now() - t0;
  }
  double gflops = 2.0 * rows * N * d / t * 1e-9; /* the asymmetric count: "effective" for symmetric */
  printf("N=%lld rows=%lld d=%d k=%d threads=%d: %.3f s, %.1f effective GFLOP/s, nbr[0][0]=%lld %.6f\n",
         (long long)N, (long long)rows, d, k, opt.threads, t, gflops, (long long)nbr[0], scr[0]);
  if (rows == N)
    printf("asymmetric (every pair twice): %.3f s; ratio asymmetric/symmetric %.2f\n", t_asym,
           t_asym / t);
  double t0;
  const int64_t B = 4096;
  float *tile = malloc(sizeof(float) * (size_t)B * B); // (B, B)
  if (!tile)
    return 1;
  t0 = now();
  for (int64_t r = 0; r < rows; r += B)
    for (int64_t c = 0; c < N; c += B) {
      int64_t m = rows - r < B ? rows - r : B, n = N - c < B ? N - c : B;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, d, 1.0f, x + r * d, d,
                  x + c * d, d, 0.0f, tile, (int)n);
    }
  double tb = now() - t0;
  printf("sgemm floor (scores only): %.3f s, %.1f GFLOP/s; ratio sgemm/ours %.2f\n", tb,
         2.0 * rows * N * d / tb * 1e-9, tb / t);
  free(tile);
  return 0;
}
