/* Our GEMM (kernels/cpu/gemm.h) against OpenBLAS's cblas_sgemm on the encoder's
 * shapes, same threads, same data, median of R runs, GFLOP/s and the ratio.
 *   bench_gemm_speed M threads [runs [cpu]]
 * Shapes: for (K, N) in MiniLM's {384, 1536} and BERT-base's {768, 3072}, the
 * forward out = x W^T (M x N x K) and both backward products dX = dY W and
 * dW = dY^T X; also our bf16 path (inputs rounded to bf16, fp32 accumulation)
 * where the CPU has AVX512_BF16, its ratio against fp32 OpenBLAS. OpenBLAS runs with OPENBLAS_CORETYPE as the caller set it (the
 * peer only: our kernels never call OpenBLAS); its threads follow OpenMP's
 * (Debian's OpenMP build), set here with omp_set_num_threads. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/gemm.h"

/* Wall time, or with "cpu" as 4th argument the process CPU time (robust on a
 * shared machine: counts only the time our threads ran; use with
 * OMP_WAIT_POLICY=passive so idle workers do not spin). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  const char *name;
  int M, N, K;
  int ta, tb; /* A stored transposed (K, M); B stored transposed (N, K) */
} shape;

static void run_ours(const shape *s, const float *a, const float *b, float *c, af_gemm_isa isa) {
  int64_t rsa = s->ta ? 1 : s->K, csa = s->ta ? s->M : 1;
  int64_t rsb = s->tb ? 1 : s->N, csb = s->tb ? s->K : 1;
  af_gemm_isa_run(isa, s->M, s->N, s->K, a, rsa, csa, b, rsb, csb, c, s->N, 1);
}

static void run_blas(const shape *s, const float *a, const float *b, float *c) {
  cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
              s->M, s->N, s->K, 1.0f, a, s->ta ? s->M : s->K, b, s->tb ? s->K : s->N, 1.0f, c,
              s->N);
}

static double time_one(const shape *s, const float *a, const float *b, float *c, int which) {
  double t0 = now();
  static const af_gemm_isa isa[] = {AF_GEMM_AUTO, AF_GEMM_AVX2, AF_GEMM_AUTO, AF_GEMM_AVX512_BF16};
  if (which == 2)
    run_blas(s, a, b, c);
  else
    run_ours(s, a, b, c, isa[which]);
  return now() - t0;
}

/* Medians t[W] (ours, our AVX2 path, OpenBLAS, our bf16 path when the CPU has
 * it) of runs rounds, alternating within each round so that a noisy neighbour
 * hits all alike. */
static void medians(const shape *s, const float *a, const float *b, float *c, int runs,
                    double med[4], int W) {
  double t[4][32];
  for (int w = 0; w < W; w++)
    time_one(s, a, b, c, w); /* warm-up */
  for (int r = 0; r < runs; r++)
    for (int w = 0; w < W; w++)
      t[w][r] = time_one(s, a, b, c, w);
  for (int w = 0; w < W; w++) {
    qsort(t[w], (size_t)runs, sizeof t[w][0], cmp);
    med[w] = t[w][runs / 2];
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s M threads [runs]\n", argv[0]);
    return 2;
  }
  int M = atoi(argv[1]), threads = atoi(argv[2]), runs = argc > 3 ? atoi(argv[3]) : 5;
  if (runs < 1 || runs > 32)
    runs = 5;
  if (argc > 4 && argv[4][0] == 'c')
    bench_clock = CLOCK_PROCESS_CPUTIME_ID;
  omp_set_num_threads(threads);
  const char *ct = getenv("OPENBLAS_CORETYPE");
  printf("M = %d, threads = %d, median of %d, %s time, OPENBLAS_CORETYPE=%s (OpenBLAS only), "
         "ours: %s\n",
         M, threads, runs, bench_clock == CLOCK_MONOTONIC ? "wall" : "CPU", ct ? ct : "(unset)",
         af_gemm_isa_name(af_gemm_isa_best()));
  shape shapes[] = {
      {"MiniLM fwd qkv/o 384->384", M, 384, 384, 0, 1},
      {"MiniLM fwd ffn1 384->1536", M, 1536, 384, 0, 1},
      {"MiniLM fwd ffn2 1536->384", M, 384, 1536, 0, 1},
      {"MiniLM dX ffn1", M, 384, 1536, 0, 0},
      {"MiniLM dW ffn1", 1536, 384, M, 1, 0},
      {"BERT fwd ffn1 768->3072", M, 3072, 768, 0, 1},
      {"BERT fwd ffn2 3072->768", M, 768, 3072, 0, 1},
      {"BERT dX ffn1", M, 768, 3072, 0, 0},
      {"BERT dW ffn1", 3072, 768, M, 1, 0},
  };
  size_t max = (size_t)M * 3072 > 3072u * 3072u ? (size_t)M * 3072 : 3072u * 3072u;
  float *a = malloc(max * sizeof(float)), *b = malloc(3072u * 3072u * sizeof(float));
  float *c = malloc(max * sizeof(float));
  if (!a || !b || !c)
    return 1;
  for (size_t i = 0; i < max; i++)
    a[i] = c[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < 3072u * 3072u; i++)
    b[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
  int W = af_gemm_isa_supported(AF_GEMM_AVX512_BF16) ? 4 : 3;
  printf("%-28s %10s %10s %10s %8s %10s %8s\n", "shape (M x N x K)", "ours", "avx2 path",
         "OpenBLAS", "ratio", "ours bf16", "ratio");
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const shape *s = &shapes[i];
    double fl = 2.0 * s->M * s->N * s->K * 1e-9;
    double med[4] = {0, 0, 0, 0};
    medians(s, a, b, c, runs, med, W);
    double to = med[0], t2 = med[1], tb = med[2], t16 = med[3];
    printf("%-28s %7.1f GF %7.1f GF %7.1f GF %7.2fx", s->name, fl / to, fl / t2, fl / tb, tb / to);
    if (W == 4)
      printf(" %7.1f GF %7.2fx", fl / t16, tb / t16);
    printf("\n");
  }
  free(a);
  free(b);
  free(c);
  return 0;
}
