/* Bulk draws from the Philox4x32-10 stream (see philox.h for the layout). */
#include "base/philox.h"

void af_philox_fill_uniform(float *out, int64_t n, uint64_t seed, uint64_t stream) {
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < (n + 3) / 4; blk++) {
    uint32_t w[4];
    af_philox_block(seed, stream, (uint64_t)blk, w);
    for (int k = 0; k < 4 && blk * 4 + k < n; k++)
      out[blk * 4 + k] = af_philox_uniform(w[k]);
  }
}
