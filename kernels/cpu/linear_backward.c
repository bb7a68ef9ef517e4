/* Linear layer backward (CPU): two of our GEMMs (cpu/gemm.h, accumulating)
 * and a column sum for the bias, column-parallel with rows in order (deterministic). */
#include "cpu/gemm.h"
#include "ops_backward.h"

#define AF_LIN_COL_CHUNK 64

static void linear_backward(af_gemm_isa isa, float *dinp, float *dw, float *dbias,
                            const float *dout, const float *inp, const float *w, int N, int IC,
                            int OC) {
  if (N == 0)
    return;
  if (dinp) // dinp (N, IC) += dout (N, OC) @ w (OC, IC)
    af_gemm_isa_run(isa, N, IC, OC, dout, OC, 1, w, IC, 1, dinp, IC, 1);
  if (dw) // dw (OC, IC) += dout^T (OC, N) @ inp (N, IC)
    // A (OC, N) = dout^T: element (i, p) at dout[p*OC + i]
    af_gemm_isa_run(isa, OC, IC, N, dout, 1, OC, inp, IC, 1, dw, IC, 1);
  if (dbias) {
    int n_chunks = (OC + AF_LIN_COL_CHUNK - 1) / AF_LIN_COL_CHUNK;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < n_chunks; ch++) {
      int j0 = ch * AF_LIN_COL_CHUNK;
      int j1 = j0 + AF_LIN_COL_CHUNK < OC ? j0 + AF_LIN_COL_CHUNK : OC;
      for (int i = 0; i < N; i++) {
        const float *g = dout + (int64_t)i * OC; // (OC)
        for (int j = j0; j < j1; j++)
          dbias[j] += g[j];
      }
    }
  }
}

void af_cpu_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC) {
  linear_backward(AF_GEMM_AUTO, dinp, dw, dbias, dout, inp, w, N, IC, OC);
}

void af_cpu_linear_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout,
                                 const float *inp, const float *w, int N, int IC, int OC) {
  linear_backward(AF_GEMM_AVX512_BF16, dinp, dw, dbias, dout, inp, w, N, IC, OC);
}
