/* LayerNorm forward (CPU). Two passes over each row in float: mean, then
 * centred variance (more accurate than E[x^2] - E[x]^2 for large means). */
#include <math.h>

#include "ops.h"

void af_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float *x = inp + (int64_t)i * C; // (C)
    float *y = out + (int64_t)i * C;       // (C)
    float m = 0.f;
    for (int c = 0; c < C; c++)
      m += x[c];
    m /= (float)C;
    float v = 0.f;
    for (int c = 0; c < C; c++) {
      float d = x[c] - m;
      v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int c = 0; c < C; c++)
      y[c] = (x[c] - m) * s * w[c] + b[c];
    if (mean)
      mean[i] = m;
    if (rstd)
      rstd[i] = s;
  }
}
