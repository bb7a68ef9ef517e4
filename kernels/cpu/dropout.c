/* Inverted dropout with a counter-based mask (CPU). The mask of element i is a
 * function of (seed, stream, i) alone (see ops_backward.h), so backward draws
 * it again instead of storing it, and a GPU kernel draws the very same mask. */
#include "ops_backward.h"
#include "base/philox.h"

void af_cpu_dropout_forward(float *out, const float *inp, int64_t n, float p_drop, uint64_t seed,
                            uint64_t stream) {
  const float keep = 1.0f - p_drop, scale = 1.0f / keep;
  if (p_drop <= 0.0f) {
    if (out != inp)
      for (int64_t i = 0; i < n; i++)
        out[i] = inp[i];
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < (n + 3) / 4; blk++) {
    uint32_t w[4]; // 4 mask words: elements 4 blk .. 4 blk + 3
    af_philox_block(seed, stream, (uint64_t)blk, w);
    for (int k = 0; k < 4 && blk * 4 + k < n; k++) {
      int64_t i = blk * 4 + k;
      out[i] = af_philox_uniform(w[k]) < keep ? inp[i] * scale : 0.0f;
    }
  }
}

void af_cpu_dropout_backward(float *dinp, const float *dout, int64_t n, float p_drop,
                             uint64_t seed, uint64_t stream) {
  const float keep = 1.0f - p_drop, scale = 1.0f / keep;
  if (p_drop <= 0.0f) {
    for (int64_t i = 0; i < n; i++)
      dinp[i] += dout[i];
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < (n + 3) / 4; blk++) {
    uint32_t w[4];
    af_philox_block(seed, stream, (uint64_t)blk, w);
    for (int k = 0; k < 4 && blk * 4 + k < n; k++) {
      int64_t i = blk * 4 + k;
      if (af_philox_uniform(w[k]) < keep)
        dinp[i] += dout[i] * scale;
    }
  }
}
