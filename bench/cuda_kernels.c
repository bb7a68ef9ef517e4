/* GPU kernel benchmark (bench_cuda_kernels, run by bench/gpu_check.sh): per op,
 * the median of 20 timed runs after 3 warm-ups, in µs, with TFLOP/s or GB/s and
 * the share of the card's peak, on MiniLM-L6 shapes (C = 384, NH = 12, F =
 * 1536). Rows: GEMM fp32 (cuBLAS, no TF32) vs bf16 (cuBLASLt), attention fp32
 * SIMT vs bf16 tensor-core at sequence lengths 9, 128, 512 (T = 8192 tokens
 * packed), add+LayerNorm, bias+GELU+cast. Peaks: H100/H200 SXM, dense: 67
 * TFLOP/s fp32, 989 TFLOP/s bf16, 3.35 TB/s (H100) / 4.8 TB/s (H200) HBM (the
 * H100 figure is used: a lower bound of the share on an H200).
 * Without a GPU: prints why and exits 0 (nothing measured). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"

#define PEAK_FP32 67e12
#define PEAK_BF16 989e12
#define PEAK_BW 3.35e12
#define RUNS 20

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef af_status (*bench_fn)(const af_device *d, void *ctx, af_error *err);

/* Median seconds of one call (each timed call ends with a device sync). */
static double time_op(const af_device *d, bench_fn f, void *ctx) {
  af_error err = {0};
  double t[RUNS];
  for (int i = 0; i < 3 + RUNS; i++) {
    double t0 = now();
    if (f(d, ctx, &err) != AF_OK || af_dev_sync(d, &err) != AF_OK) {
      fprintf(stderr, "bench_cuda_kernels: %s\n", err.msg);
      exit(1);
    }
    if (i >= 3)
      t[i - 3] = now() - t0;
  }
  qsort(t, RUNS, sizeof t[0], cmp);
  return t[RUNS / 2];
}

typedef struct {
  int N, IC, OC, T, B, C, NH;
  float *f_in, *f_w, *f_out, *bias, *qkv, *scratch;
  uint16_t *b_in, *b_w, *b_out;
  int32_t *cu;
} bufs;

static af_status gemm_fp32(const af_device *d, void *v, af_error *e) {
  bufs *b = v;
  return af_op_linear_forward(d, b->f_out, b->f_in, b->f_w, b->bias, b->N, b->IC, b->OC, e);
}
static af_status gemm_bf16(const af_device *d, void *v, af_error *e) {
  bufs *b = v;
  return af_op_linear_bf16_forward(d, b->f_out, b->b_in, b->b_w, b->bias, b->N, b->IC, b->OC, e);
}
static af_status att_fp32(const af_device *d, void *v, af_error *e) {
  bufs *b = v;
  return af_op_attention_forward(d, b->f_out, NULL, b->qkv, b->cu, b->B, b->C, b->NH, e);
}
static af_status att_bf16(const af_device *d, void *v, af_error *e) {
  bufs *b = v;
  return af_op_attention_bf16_forward(d, b->b_out, b->scratch, b->qkv, b->cu, b->B, b->T, b->C,
                                      b->NH, e);
}
static af_status add_ln(const af_device *d, void *v, af_error *e) {
  bufs *b = v;
  return af_op_add_layernorm_forward(d, b->f_out, b->b_out, b->f_in, b->scratch, b->bias, b->bias,
                                     b->T, b->C, 1e-12f, e);
}
static af_status gelu_cast(const af_device *d, void *v, af_error *e) {
  bufs *b = v;
  return af_op_bias_gelu_bf16_forward(d, b->b_out, b->f_out, b->bias, b->T, 4 * b->C, e);
}

/* A device buffer of n values in [-0.5, 0.5): fp32 (bf16 = 0) or bf16. */
static void *dev_fill(const af_device *d, size_t n, int bf16) {
  af_error err = {0};
  const size_t bytes = n * (bf16 ? sizeof(uint16_t) : sizeof(float));
  void *p = af_dev_malloc(d, bytes, &err);
  void *h = malloc(bytes);
  if (!p || !h) {
    fprintf(stderr, "bench_cuda_kernels: allocating %zu bytes: %s\n", bytes, err.msg);
    exit(1);
  }
  for (size_t i = 0; i < n; i++) {
    float x = (float)(i % 97) / 97.0f - 0.5f;
    if (bf16)
      ((uint16_t *)h)[i] = af_bf16_from_f32(x);
    else
      ((float *)h)[i] = x;
  }
  if (af_dev_upload(d, p, h, bytes, &err) != AF_OK) {
    fprintf(stderr, "bench_cuda_kernels: %s\n", err.msg);
    exit(1);
  }
  free(h);
  return p;
}

static void row(const char *name, const char *shape, double s, double flop, double bytes,
                double peak_flop) {
  if (flop > 0)
    printf("%-26s %-26s %10.1f %10.1f TFLOP/s %6.1f%%\n", name, shape, s * 1e6, flop / s / 1e12,
           100 * flop / s / peak_flop);
  else
    printf("%-26s %-26s %10.1f %10.1f GB/s    %6.1f%%\n", name, shape, s * 1e6, bytes / s / 1e9,
           100 * bytes / s / PEAK_BW);
}

int main(void) {
  if (!af_cuda_available()) {
    printf("bench_cuda_kernels: no CUDA GPU on this machine: nothing measured\n");
    return 0;
  }
  af_device d;
  af_error err = {0};
  if (af_device_cuda(0, &d, &err) != AF_OK) {
    fprintf(stderr, "bench_cuda_kernels: %s\n", err.msg);
    return 1;
  }
  const int T = 8192, C = 384, F = 1536;
  bufs b = {.T = T, .C = C, .NH = 12};
  b.f_in = dev_fill(&d, (size_t)T * F, 0);
  b.f_w = dev_fill(&d, (size_t)F * F, 0);
  b.f_out = dev_fill(&d, (size_t)T * F, 0);
  b.bias = dev_fill(&d, F, 0);
  b.qkv = dev_fill(&d, (size_t)T * 3 * C, 0);
  b.scratch = dev_fill(&d, (size_t)T * C, 0);
  b.b_in = dev_fill(&d, (size_t)T * F, 1);
  b.b_w = dev_fill(&d, (size_t)F * F, 1);
  b.b_out = dev_fill(&d, (size_t)T * F, 1);
  printf("%-26s %-26s %10s %18s %7s\n", "op", "shape", "us", "rate", "%peak");
  const int gemms[3][2] = {{384, 1152}, {384, 1536}, {1536, 384}};
  for (int g = 0; g < 3; g++) {
    b.N = T;
    b.IC = gemms[g][0];
    b.OC = gemms[g][1];
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d->%d", T, b.IC, b.OC);
    double flop = 2.0 * T * b.IC * b.OC;
    row("linear fp32 (cuBLAS)", shape, time_op(&d, gemm_fp32, &b), flop, 0, PEAK_FP32);
    row("linear bf16 (cuBLASLt)", shape, time_op(&d, gemm_bf16, &b), flop, 0, PEAK_BF16);
  }
  const int lens[3] = {9, 128, 512};
  for (int k = 0; k < 3; k++) {
    const int L = lens[k];
    b.B = T / L;
    b.T = b.B * L;
    int32_t *cu = malloc(sizeof(int32_t) * (b.B + 1));
    for (int i = 0; i <= b.B; i++)
      cu[i] = i * L;
    b.cu = af_dev_malloc(&d, sizeof(int32_t) * (b.B + 1), &err);
    if (!b.cu || af_dev_upload(&d, b.cu, cu, sizeof(int32_t) * (b.B + 1), &err) != AF_OK) {
      fprintf(stderr, "bench_cuda_kernels: %s\n", err.msg);
      return 1;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "T=%d L=%d HS=32", b.T, L);
    double flop = 4.0 * C * (double)b.B * L * L; // QK^T and PV
    row("attention fp32 (SIMT)", shape, time_op(&d, att_fp32, &b), flop, 0, PEAK_FP32);
    row("attention bf16 (mma)", shape, time_op(&d, att_bf16, &b), flop, 0, PEAK_BF16);
    af_dev_free(&d, b.cu);
    free(cu);
  }
  b.T = T;
  row("add+layernorm+cast", "8192x384", time_op(&d, add_ln, &b), 0,
      (double)T * C * (4 + 4 + 4 + 2), 0);
  row("bias+gelu+cast", "8192x1536", time_op(&d, gelu_cast, &b), 0, (double)T * F * (4 + 2), 0);
  af_device_release(&d);
  return 0;
}
