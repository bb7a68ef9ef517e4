/* Linear layer forward (CPU): one of our GEMMs (cpu/gemm.h), bias added after. */
#include "cpu/gemm.h"
#include "ops.h"

static void linear_forward(af_gemm_isa isa, float *out, const float *inp, const float *w,
                           const float *bias, int N, int IC, int OC) {
  if (N == 0)
    return;
  // out (N, OC) = inp (N, IC) @ w^T (IC, OC)
  // A = inp (N, IC) row-major; B (IC, OC) = w^T: element (p, j) at w[j*IC + p]
  af_gemm_isa_run(isa, N, OC, IC, inp, IC, 1, w, 1, IC, out, OC, 0);
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
      float *o = out + (int64_t)i * OC;
      for (int j = 0; j < OC; j++)
        o[j] += bias[j];
    }
  }
}

void af_cpu_linear_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                           int IC, int OC) {
  linear_forward(AF_GEMM_AUTO, out, inp, w, bias, N, IC, OC);
}

void af_cpu_linear_forward_bf16(float *out, const float *inp, const float *w, const float *bias,
                                int N, int IC, int OC) {
  linear_forward(AF_GEMM_AVX512_BF16, out, inp, w, bias, N, IC, OC);
}
