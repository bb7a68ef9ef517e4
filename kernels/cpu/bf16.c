/* The bf16 inference ops (CPU): the exact emulation the CUDA bf16 path is
 * checked against (ops.h); the conversion itself is engine/base/bf16.h. */
#include <math.h>

#include "ops.h"

void af_cpu_cast_bf16(uint16_t *out, const float *inp, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++)
    out[i] = af_bf16_from_f32(inp[i]);
}

void af_cpu_bias_gelu_bf16_forward(uint16_t *out, const float *inp, const float *bias, int N,
                                   int C) {
  const float inv_sqrt2 = 0.70710678118654752f; // as af_cpu_gelu_forward
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++) {
      float x = inp[(int64_t)i * C + c] + bias[c];
      out[(int64_t)i * C + c] = af_bf16_from_f32(0.5f * x * (1.0f + erff(x * inv_sqrt2)));
    }
}

/* Row i of LN(a + b): the sum is formed in each pass (no scratch), in the
 * order af_cpu_add_forward + af_cpu_layernorm_forward would use. */
void af_cpu_add_layernorm_forward(float *out, uint16_t *out_bf16, const float *a, const float *b,
                                  const float *w, const float *beta, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float *x = a + (int64_t)i * C;            // (C)
    const float *r = b ? b + (int64_t)i * C : NULL; // (C) or none
    float *y = out + (int64_t)i * C;                // (C)
    float m = 0.f;
    for (int c = 0; c < C; c++)
      m += r ? x[c] + r[c] : x[c];
    m /= (float)C;
    float v = 0.f;
    for (int c = 0; c < C; c++) {
      float d = (r ? x[c] + r[c] : x[c]) - m;
      v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int c = 0; c < C; c++) {
      float h = r ? x[c] + r[c] : x[c]; // read before y[c] is written (y may alias a or b)
      y[c] = (h - m) * s * w[c] + beta[c];
      if (out_bf16)
        out_bf16[(int64_t)i * C + c] = af_bf16_from_f32(y[c]);
    }
  }
}
