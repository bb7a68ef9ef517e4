/* Multi-head self-attention over packed variable-length sequences (CPU).
 * Work items are (sequence, head) pairs; each computes softmax(Q K^T / sqrt(HS)) V
 * for its sequence alone, so no FLOP is spent on padding. */
#include <math.h>

#include "ops.h"

int64_t af_attention_probs_size(const int32_t *cu_seqlens, int B, int NH) {
  int64_t n = 0;
  for (int b = 0; b < B; b++) {
    int64_t L = cu_seqlens[b + 1] - cu_seqlens[b];
    n += L * L;
  }
  return n * NH;
}

void af_cpu_attention_forward(float *out, float *probs, const float *qkv,
                              const int32_t *cu_seqlens, int B, int C, int NH) {
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf((float)HS);
  const int64_t row = 3 * (int64_t)C; // stride between tokens in qkv
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < (int64_t)B * NH; item++) {
    int b = (int)(item / NH), h = (int)(item % NH);
    int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
    float *P = NULL; // (L, L) saved probabilities of this (b, h)
    if (probs) {
      int64_t off = 0;
      for (int bb = 0; bb < b; bb++) {
        int64_t l = cu_seqlens[bb + 1] - cu_seqlens[bb];
        off += l * l;
      }
      P = probs + off * NH + (int64_t)h * L * L;
    }
    float s[AF_ATTN_MAX_LEN]; // (L) one row of scores
    for (int i = 0; i < L; i++) {
      const float *q = qkv + (int64_t)(t0 + i) * row + h * HS; // (HS)
      float mx = -INFINITY;
      for (int j = 0; j < L; j++) {
        const float *k = qkv + (int64_t)(t0 + j) * row + C + h * HS; // (HS)
        float dot = 0.f;
        for (int d = 0; d < HS; d++)
          dot += q[d] * k[d];
        s[j] = dot * scale;
        mx = s[j] > mx ? s[j] : mx;
      }
      float sum = 0.f;
      for (int j = 0; j < L; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
      }
      float inv = 1.0f / sum;
      float *o = out + (int64_t)(t0 + i) * C + h * HS; // (HS)
      for (int d = 0; d < HS; d++)
        o[d] = 0.f;
      for (int j = 0; j < L; j++) {
        float p = s[j] * inv;
        if (P)
          P[(int64_t)i * L + j] = p;
        const float *v = qkv + (int64_t)(t0 + j) * row + 2 * C + h * HS; // (HS)
        for (int d = 0; d < HS; d++)
          o[d] += p * v[d];
      }
    }
  }
}
