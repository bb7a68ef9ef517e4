/* Elementwise ops (CPU): exact GELU and addition. */
#include <math.h>

#include "ops.h"

void af_cpu_gelu_forward(float *out, const float *inp, int64_t n) {
  // gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as torch's default GELU
  const float inv_sqrt2 = 0.70710678118654752f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + erff(x * inv_sqrt2));
  }
}

void af_cpu_add_forward(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++)
    out[i] = a[i] + b[i];
}
