/* Attention-probability dropout for training (Hugging Face BertSelfAttention's
 * `dropout(attention_probs)`), a training-only path beside the attention op:
 * the forward op computes O = P V and saves the softmax P; when p > 0 we
 * recompute O = P' V with P' = m ⊙ P / (1 - p), and the backward below
 * differentiates through the mask:
 *   dV_j += Σ_i P'_ij dO_i,  dP_ij = m_ij (dO_i · V_j) / (1 - p),
 *   dS_ij = P_ij (dP_ij - Σ_k P_ik dP_ik),
 *   dQ_i += Σ_j dS_ij K_j / sqrt(HS),  dK_j += Σ_i dS_ij Q_i / sqrt(HS).
 * The mask of probability element k (its index in the saved-probabilities
 * layout of ops.h) is Philox word k % 4 of block k / 4 of (seed, stream),
 * kept iff uniform < 1 - p: the convention of af_op_dropout_forward.
 * Work items are (sequence, head) pairs that own disjoint slices of out and
 * dqkv, so results do not depend on the thread count. */
#include <math.h>
#include <stdint.h>

#include "base/philox.h"
#include "affinity.h"

static int64_t probs_offset(const int32_t *cu, int b, int NH) {
  int64_t off = 0;
  for (int bb = 0; bb < b; bb++) {
    int64_t l = cu[bb + 1] - cu[bb];
    off += l * l;
  }
  return off * NH;
}

static inline int kept(uint64_t seed, uint64_t stream, int64_t k, float keep) {
  uint32_t w[4];
  af_philox_block(seed, stream, (uint64_t)k / 4, w);
  return af_philox_uniform(w[k % 4]) < keep;
}

void af_train_attention_dropout_forward(float *out, const float *probs, const float *qkv,
                                        const int32_t *cu, int B, int C, int NH, float p,
                                        uint64_t seed, uint64_t stream) {
  const int HS = C / NH;
  const int64_t row = 3 * (int64_t)C;
  const float keep = 1.0f - p, inv_keep = 1.0f / keep;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < (int64_t)B * NH; item++) {
    int b = (int)(item / NH), h = (int)(item % NH);
    int t0 = cu[b], L = cu[b + 1] - t0;
    const int64_t base = probs_offset(cu, b, NH) + (int64_t)h * L * L;
    for (int i = 0; i < L; i++) {
      float *o = out + (int64_t)(t0 + i) * C + h * HS; // (HS)
      for (int d = 0; d < HS; d++)
        o[d] = 0.f;
      for (int j = 0; j < L; j++) {
        int64_t k = base + (int64_t)i * L + j;
        if (!kept(seed, stream, k, keep))
          continue;
        float pk = probs[k] * inv_keep;
        const float *v = qkv + (int64_t)(t0 + j) * row + 2 * C + h * HS; // (HS)
        for (int d = 0; d < HS; d++)
          o[d] += pk * v[d];
      }
    }
  }
}

void af_train_attention_dropout_backward(float *dqkv, const float *dout, const float *qkv,
                                         const float *probs, const int32_t *cu, int B, int C,
                                         int NH, float p, uint64_t seed, uint64_t stream) {
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf((float)HS);
  const int64_t row = 3 * (int64_t)C;
  const float keep = 1.0f - p, inv_keep = 1.0f / keep;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < (int64_t)B * NH; item++) {
    int b = (int)(item / NH), h = (int)(item % NH);
    int t0 = cu[b], L = cu[b + 1] - t0;
    const int64_t base = probs_offset(cu, b, NH) + (int64_t)h * L * L;
    float dp[1024]; // (L) one row of dP (L <= max positions <= 1024)
    for (int i = 0; i < L; i++) {
      const float *dO = dout + (int64_t)(t0 + i) * C + h * HS;     // (HS)
      const float *q = qkv + (int64_t)(t0 + i) * row + h * HS;     // (HS)
      float *dq = dqkv + (int64_t)(t0 + i) * row + h * HS;         // (HS)
      const float *P = probs + base + (int64_t)i * L;               // (L)
      float rs = 0.f;
      for (int j = 0; j < L; j++) {
        dp[j] = 0.f;
        if (!kept(seed, stream, base + (int64_t)i * L + j, keep))
          continue;
        const float *v = qkv + (int64_t)(t0 + j) * row + 2 * C + h * HS; // (HS)
        float *dv = dqkv + (int64_t)(t0 + j) * row + 2 * C + h * HS;     // (HS)
        float dot = 0.f, pk = P[j] * inv_keep;
        for (int d = 0; d < HS; d++) {
          dot += dO[d] * v[d];
          dv[d] += pk * dO[d];
        }
        dp[j] = dot * inv_keep;
        rs += P[j] * dp[j];
      }
      for (int j = 0; j < L; j++) {
        float ds = P[j] * (dp[j] - rs) * scale;
        const float *k = qkv + (int64_t)(t0 + j) * row + C + h * HS; // (HS)
        float *dk = dqkv + (int64_t)(t0 + j) * row + C + h * HS;     // (HS)
        for (int d = 0; d < HS; d++) {
          dq[d] += ds * k[d];
          dk[d] += ds * q[d];
        }
      }
    }
  }
}
