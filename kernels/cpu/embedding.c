/* Token + position + token-type embeddings (CPU). */
#include "ops.h"

void af_cpu_embedding_forward(float *out, const int32_t *ids, const int32_t *pos,
                              const int32_t *type_ids, const float *wte, const float *wpe,
                              const float *wtt, int T, int C) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; t++) {
    const float *e = wte + (int64_t)ids[t] * C;                     // (C)
    const float *p = wpe + (int64_t)pos[t] * C;                     // (C)
    const float *y = wtt + (int64_t)(type_ids ? type_ids[t] : 0) * C; // (C)
    float *o = out + (int64_t)t * C;                                // (C)
    for (int c = 0; c < C; c++)
      o[c] = e[c] + p[c] + y[c];
  }
}
