/* Elementwise backward (CPU): exact GELU and the residual add. */
#include <math.h>

#include "ops_backward.h"

void af_cpu_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n) {
  // gelu(x) = x Phi(x)  =>  gelu'(x) = Phi(x) + x phi(x), phi the normal density
  const float inv_sqrt2 = 0.70710678118654752f;
  const float inv_sqrt_2pi = 0.39894228040143268f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float x = inp[i];
    float cdf = 0.5f * (1.0f + erff(x * inv_sqrt2));
    float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

void af_cpu_add_backward(float *da, float *db, const float *dout, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    if (da)
      da[i] += dout[i];
    if (db)
      db[i] += dout[i];
  }
}
