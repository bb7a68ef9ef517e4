/* LayerNorm backward (CPU), from the saved mean and rstd.
 * With n = (x - mean) rstd and g = w * dout (per element of a row):
 *   dx = rstd (g - mean(g) - n mean(g n)),  dw += n dout,  db += dout.
 * dinp is computed row-parallel; dw and db column-parallel with the rows in
 * order, so the parameter sums are deterministic. */
#include "ops_backward.h"

#define AF_LN_COL_CHUNK 64

void af_cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C) {
  if (dinp) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
      const float *x = inp + (int64_t)i * C;  // (C)
      const float *dy = dout + (int64_t)i * C; // (C)
      float *dx = dinp + (int64_t)i * C;       // (C)
      float m = mean[i], s = rstd[i];
      float g_mean = 0.f, gn_mean = 0.f;
      for (int c = 0; c < C; c++) {
        float g = w[c] * dy[c];
        g_mean += g;
        gn_mean += g * (x[c] - m) * s;
      }
      g_mean /= (float)C;
      gn_mean /= (float)C;
      for (int c = 0; c < C; c++) {
        float n = (x[c] - m) * s;
        dx[c] += s * (w[c] * dy[c] - g_mean - n * gn_mean);
      }
    }
  }
  if (!dw && !db)
    return;
  int n_chunks = (C + AF_LN_COL_CHUNK - 1) / AF_LN_COL_CHUNK;
#pragma omp parallel for schedule(static)
  for (int ch = 0; ch < n_chunks; ch++) {
    int c0 = ch * AF_LN_COL_CHUNK;
    int c1 = c0 + AF_LN_COL_CHUNK < C ? c0 + AF_LN_COL_CHUNK : C;
    for (int i = 0; i < N; i++) {
      const float *x = inp + (int64_t)i * C;
      const float *dy = dout + (int64_t)i * C;
      float m = mean[i], s = rstd[i];
      for (int c = c0; c < c1; c++) {
        if (dw)
          dw[c] += (x[c] - m) * s * dy[c];
        if (db)
          db[c] += dy[c];
      }
    }
  }
}
