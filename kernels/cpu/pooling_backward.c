/* Pooling and L2-normalisation backward (CPU). Sequences own disjoint token
 * ranges, so the per-sequence loops never race. */
#include "ops_backward.h"

void af_cpu_mean_pool_backward(float *dinp, const float *dout, const int32_t *cu_seqlens, int B,
                               int C) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
    float inv = 1.0f / (float)(L > 0 ? L : 1); // as the forward
    const float *g = dout + (int64_t)b * C;     // (C)
    for (int t = 0; t < L; t++) {
      float *dx = dinp + (int64_t)(t0 + t) * C; // (C)
      for (int c = 0; c < C; c++)
        dx[c] += g[c] * inv;
    }
  }
}

void af_cpu_cls_pool_backward(float *dinp, const float *dout, const int32_t *cu_seqlens, int B,
                              int C) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    if (cu_seqlens[b + 1] == cu_seqlens[b])
      continue; // an empty sequence pooled nothing
    float *dx = dinp + (int64_t)cu_seqlens[b] * C;
    const float *g = dout + (int64_t)b * C;
    for (int c = 0; c < C; c++)
      dx[c] += g[c];
  }
}

void af_cpu_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norms,
                            int N, int C) {
  // y = x / n with n = ||x||: dy/dx = (I - y y^T) / n. Below the 1e-12 clamp
  // the forward is y = x / 1e-12, a plain scaling.
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float *y = out + (int64_t)i * C;   // (C)
    const float *dy = dout + (int64_t)i * C; // (C)
    float *dx = dinp + (int64_t)i * C;       // (C)
    float n = norms[i];
    if (n > 1e-12f) {
      float ydy = 0.f;
      for (int c = 0; c < C; c++)
        ydy += y[c] * dy[c];
      float inv = 1.0f / n;
      for (int c = 0; c < C; c++)
        dx[c] += (dy[c] - y[c] * ydy) * inv;
    } else {
      for (int c = 0; c < C; c++)
        dx[c] += dy[c] * 1e12f;
    }
  }
}
