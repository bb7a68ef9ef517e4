/* The GPU scorer's two ops on the CPU (ops.h, "all-pairs top-k ops"): the
 * twins of kernels/cuda/topk.cu and what a CPU device runs. */
#include <math.h>

#include "base/topk.h"
#include "ops.h"

void af_cpu_topk_merge_rows(float *ls, int64_t *li, int kp, const float *tile, int QT, int CC,
                            int64_t col0, int64_t q0) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < QT; r++) {
    float *s = ls + (size_t)r * kp; // (kp) best first
    int64_t *ix = li + (size_t)r * kp;
    float hs[AF_TOPK_OP_MAX_KP];
    int64_t hi[AF_TOPK_OP_MAX_KP];
    af_topk t;
    af_topk_init(&t, hs, hi, kp, -INFINITY);
    for (int j = 0; j < kp && ix[j] >= 0; j++)
      af_topk_push(&t, s[j], ix[j]);
    for (int c = 0; c < CC; c++)
      if (col0 + c != q0 + r)
        af_topk_push(&t, tile[(size_t)r * CC + c], col0 + c);
    af_topk_extract(&t, ix, s, kp);
  }
}

void af_cpu_rescore_fp32(float *out, const float *Q, const float *X, const int64_t *idx, int QT,
                         int kp, int d) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < QT; r++)
    for (int j = 0; j < kp; j++) {
      const int64_t x = idx[(size_t)r * kp + j];
      float acc = 0.f; // the CPU scorer's chain: acc = fmaf(q[i], x[i], acc), i = 0..d-1
      if (x >= 0)
        for (int i = 0; i < d; i++)
          acc = fmaf(Q[(size_t)r * d + i], X[(size_t)x * d + i], acc);
      out[(size_t)r * kp + j] = x >= 0 ? acc : -INFINITY;
    }
}
