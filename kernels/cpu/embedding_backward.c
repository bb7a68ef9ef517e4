/* Embedding backward (CPU): scatter-add of dout rows into the three tables.
 * Threads split the C columns, and each walks the tokens in order, so repeated
 * ids never race and the sums have one fixed order (deterministic). */
#include "ops_backward.h"

#define AF_EMB_COL_CHUNK 64 // columns per work item

static void scatter_add(float *dtable, const float *dout, const int32_t *idx, int T, int C, int c0,
                        int c1) {
  for (int t = 0; t < T; t++) {
    float *d = dtable + (int64_t)(idx ? idx[t] : 0) * C; // (C) row of the table
    const float *g = dout + (int64_t)t * C;              // (C)
    for (int c = c0; c < c1; c++)
      d[c] += g[c];
  }
}

void af_cpu_embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                               const int32_t *ids, const int32_t *pos, const int32_t *type_ids,
                               int T, int C) {
  int n_chunks = (C + AF_EMB_COL_CHUNK - 1) / AF_EMB_COL_CHUNK;
#pragma omp parallel for schedule(static)
  for (int ch = 0; ch < n_chunks; ch++) {
    int c0 = ch * AF_EMB_COL_CHUNK;
    int c1 = c0 + AF_EMB_COL_CHUNK < C ? c0 + AF_EMB_COL_CHUNK : C;
    if (dwte)
      scatter_add(dwte, dout, ids, T, C, c0, c1);
    if (dwpe)
      scatter_add(dwpe, dout, pos, T, C, c0, c1);
    if (dwtt)
      scatter_add(dwtt, dout, type_ids, T, C, c0, c1); // type_ids NULL: type 0
  }
}
