/* Multi-head self-attention backward over packed sequences (CPU).
 * Forward, per sequence and head: S = Q K^T * scale, P = softmax_rows(S), O = P V.
 * Backward, with dO given and P saved:
 *   dV = P^T dO,   dP = dO V^T,   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik),
 *   dQ = scale dS K,   dK = scale dS^T Q.
 * A work item is one (sequence, head): it writes only its own slice of dqkv,
 * so items never race, and each sum runs in a fixed order (deterministic). */
#include <math.h>

#include "ops_backward.h"

void af_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv,
                               const float *probs, const int32_t *cu_seqlens, int B, int C,
                               int NH) {
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf((float)HS);
  const int64_t row = 3 * (int64_t)C; // stride between tokens in qkv and dqkv
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < (int64_t)B * NH; item++) {
    int b = (int)(item / NH), h = (int)(item % NH);
    int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
    int64_t off = 0;
    for (int bb = 0; bb < b; bb++) {
      int64_t l = cu_seqlens[bb + 1] - cu_seqlens[bb];
      off += l * l;
    }
    const float *P = probs + off * NH + (int64_t)h * L * L; // (L, L) of this (b, h)
    float dp[AF_ATTN_MAX_LEN];                               // (L) one row of dP, then dS
    for (int i = 0; i < L; i++) {
      const float *pi = P + (int64_t)i * L;                     // (L)
      const float *doi = dout + (int64_t)(t0 + i) * C + h * HS; // (HS)
      const float *qi = qkv + (int64_t)(t0 + i) * row + h * HS; // (HS)
      float *dqi = dqkv + (int64_t)(t0 + i) * row + h * HS;     // (HS)
      float pdp = 0.f; // sum_j P_ij dP_ij
      for (int j = 0; j < L; j++) {
        const float *vj = qkv + (int64_t)(t0 + j) * row + 2 * C + h * HS; // (HS)
        float *dvj = dqkv + (int64_t)(t0 + j) * row + 2 * C + h * HS;     // (HS)
        float d = 0.f;
        for (int e = 0; e < HS; e++) {
          d += doi[e] * vj[e];
          dvj[e] += pi[j] * doi[e];
        }
        dp[j] = d;
        pdp += pi[j] * d;
      }
      for (int j = 0; j < L; j++) {
        float ds = pi[j] * (dp[j] - pdp) * scale; // scale folded in: d(Q K^T) entry
        const float *kj = qkv + (int64_t)(t0 + j) * row + C + h * HS; // (HS)
        float *dkj = dqkv + (int64_t)(t0 + j) * row + C + h * HS;     // (HS)
        for (int e = 0; e < HS; e++) {
          dqi[e] += ds * kj[e];
          dkj[e] += ds * qi[e];
        }
      }
    }
  }
}
