/* Sequence pooling and L2 normalisation (CPU). */
#include <math.h>

#include "ops.h"

void af_cpu_mean_pool_forward(float *out, const float *inp, const int32_t *cu_seqlens, int B,
                              int C) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
    float *o = out + (int64_t)b * C; // (C)
    for (int c = 0; c < C; c++)
      o[c] = 0.f;
    for (int t = 0; t < L; t++) {
      const float *x = inp + (int64_t)(t0 + t) * C;
      for (int c = 0; c < C; c++)
        o[c] += x[c];
    }
    // sentence-transformers divides by max(count, 1e-9)
    float inv = 1.0f / (float)(L > 0 ? L : 1);
    for (int c = 0; c < C; c++)
      o[c] *= inv;
  }
}

void af_cpu_cls_pool_forward(float *out, const float *inp, const int32_t *cu_seqlens, int B,
                             int C) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    const float *x = inp + (int64_t)cu_seqlens[b] * C;
    float *o = out + (int64_t)b * C;
    // An empty sequence has no first token (at the end of the batch, x would
    // point past inp): a zero row, as mean pooling gives.
    const int empty = cu_seqlens[b + 1] == cu_seqlens[b];
    for (int c = 0; c < C; c++)
      o[c] = empty ? 0.f : x[c];
  }
}

void af_cpu_l2norm_forward(float *out, float *norms, const float *inp, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float *x = inp + (int64_t)i * C;
    float *y = out + (int64_t)i * C;
    double ss = 0.0;
    for (int c = 0; c < C; c++)
      ss += (double)x[c] * x[c];
    float nrm = (float)sqrt(ss);
    float inv = 1.0f / (nrm > 1e-12f ? nrm : 1e-12f);
    for (int c = 0; c < C; c++)
      y[c] = x[c] * inv;
    if (norms)
      norms[i] = nrm;
  }
}
