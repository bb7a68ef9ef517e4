/* Linear layer forward (CPU): one sgemm from the BLAS, bias added after. */
#include <cblas.h>

#include "ops.h"

void af_cpu_linear_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                           int IC, int OC) {
  if (N == 0)
    return;
  // out (N, OC) = inp (N, IC) @ w^T (IC, OC)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out,
              OC);
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
      float *o = out + (int64_t)i * OC;
      for (int j = 0; j < OC; j++)
        o[j] += bias[j];
    }
  }
}
