/* Attention of the bf16 path (CPU): the arithmetic of the fused tensor-core
 * kernel (kernels/cuda/attention_mma.cu) without its tiling. Per (sequence,
 * head): q' = bf16(q * log2(e) / sqrt(HS)), k' = bf16(k), v' = bf16(v);
 * s_j = q' . k'_j in fp32 (the exp2 domain); p_j = exp2(s_j - max_j s);
 * l = sum p_j (fp32, unrounded); out = bf16(sum_j bf16(p_j) v'_j / l). The GPU
 * differs only by fp32 summation order and its running-max rescaling. */
#include <math.h>

#include "ops.h"

static inline float rb(float x) { return af_f32_from_bf16(af_bf16_from_f32(x)); }

/* One query row i of (b, h): o (HS) fp32 before the final cast. */
static void row_bf16(float *o, const float *qkv, int t0, int L, int i, int h, int C, int HS,
                     float scale_log2) {
  const int64_t row = 3 * (int64_t)C;
  float s[AF_ATTN_MAX_LEN], q[256]; // (L) scores; (HS <= 256) rounded query
  const float *qs = qkv + (int64_t)(t0 + i) * row + h * HS;
  for (int d = 0; d < HS; d++)
    q[d] = rb(qs[d] * scale_log2);
  float mx = -INFINITY;
  for (int j = 0; j < L; j++) {
    const float *k = qkv + (int64_t)(t0 + j) * row + C + h * HS; // (HS)
    float dot = 0.f;
    for (int d = 0; d < HS; d++)
      dot += q[d] * rb(k[d]);
    s[j] = dot;
    mx = dot > mx ? dot : mx;
  }
  float l = 0.f;
  for (int d = 0; d < HS; d++)
    o[d] = 0.f;
  for (int j = 0; j < L; j++) {
    float p = exp2f(s[j] - mx);
    l += p;
    const float pb = rb(p);
    const float *v = qkv + (int64_t)(t0 + j) * row + 2 * C + h * HS; // (HS)
    for (int d = 0; d < HS; d++)
      o[d] += pb * rb(v[d]);
  }
  for (int d = 0; d < HS; d++)
    o[d] /= l;
}

void af_cpu_attention_bf16_forward(uint16_t *out, const float *qkv, const int32_t *cu, int B,
                                   int C, int NH) {
  const int HS = C / NH;
  const float scale_log2 = 1.4426950408889634f / sqrtf((float)HS);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < (int64_t)B * NH; item++) {
    int b = (int)(item / NH), h = (int)(item % NH);
    int t0 = cu[b], L = cu[b + 1] - t0;
    float o[256]; // (HS)
    for (int i = 0; i < L; i++) {
      row_bf16(o, qkv, t0, L, i, h, C, HS, scale_log2);
      uint16_t *dst = out + (int64_t)(t0 + i) * C + h * HS;
      for (int d = 0; d < HS; d++)
        dst[d] = af_bf16_from_f32(o[d]);
    }
  }
}
