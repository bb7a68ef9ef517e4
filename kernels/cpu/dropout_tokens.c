/* Hidden dropout at given global token positions (CPU; ops_backward.h,
 * af_op_dropout_tokens_*): the data-parallel trainer's share of a global batch
 * draws the masks one process draws for the same elements. Element c of local
 * token t is global element g = gtok[t] C + c: Philox word g % 4 of block g / 4,
 * as af_cpu_dropout_forward. Tokens own disjoint rows: any thread count gives
 * the same bits. */
#include "base/philox.h"
#include "ops_backward.h"

void af_cpu_dropout_tokens(float *x, const float *dout, const int32_t *gtok, int T, int C,
                           float p, uint64_t seed, uint64_t stream) {
  const float keep = 1.0f - p, scale = 1.0f / keep;
  if (p <= 0.0f) {
    if (dout)
      for (int64_t i = 0; i < (int64_t)T * C; i++)
        x[i] += dout[i];
    return;
  }
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; t++) {
    float *xt = x + (int64_t)t * C;                          // (C)
    const float *dt = dout ? dout + (int64_t)t * C : NULL; // (C)
    const uint64_t g0 = (uint64_t)gtok[t] * (uint64_t)C;
    for (int c = 0; c < C; c++) {
      uint32_t w[4];
      const uint64_t g = g0 + (uint64_t)c;
      af_philox_block(seed, stream, g / 4, w);
      const int kept = af_philox_uniform(w[g % 4]) < keep;
      if (!dt)
        xt[c] = kept ? xt[c] * scale : 0.0f;
      else if (kept)
        xt[c] += dt[c] * scale;
    }
  }
}
