/* Multiple-negatives ranking loss, forward and backward (CPU), behind
 * af_op_mnr_loss (the CPU backend) and engine/train/loss.c's af_mnr_loss
 * (docs/training.md). Everything is double inside: the matrices are small
 * (B x (B + M)), and double keeps the result within float rounding of the
 * float32 PyTorch reference. The CUDA twin (kernels/cuda/mnr_loss.cu) does the
 * same double operations in the same order. */
#include <math.h>
#include <stdlib.h>

#include "ops_backward.h"

/* y = x / max(||x||, 1e-12) per row, as torch.nn.functional.normalize.
 * y (N, C) double; x (N, C) float; nrm (N) the clamped norms. */
static void normalize_rows(double *y, double *nrm, const float *x, int N, int C) {
  for (int i = 0; i < N; i++) {
    const float *xi = x + (int64_t)i * C;
    double ss = 0.0;
    for (int c = 0; c < C; c++)
      ss += (double)xi[c] * xi[c];
    double n = sqrt(ss);
    n = n > 1e-12 ? n : 1e-12;
    nrm[i] = n;
    for (int c = 0; c < C; c++)
      y[(int64_t)i * C + c] = xi[c] / n;
  }
}

/* Through the normalisation: dx = (dy - y (y . dy)) / n, written as float.
 * When the norm was clamped the map is y = x / 1e-12, so dx = dy / 1e-12. */
static void normalize_backward(float *dx, const double *dy, const double *y, const double *nrm,
                               int N, int C) {
  for (int i = 0; i < N; i++) {
    const double *yi = y + (int64_t)i * C, *gi = dy + (int64_t)i * C; // (C)
    double n = nrm[i], ydy = 0.0;
    if (n > 1e-12) // not clamped: project out the radial component
      for (int c = 0; c < C; c++)
        ydy += yi[c] * gi[c];
    for (int c = 0; c < C; c++)
      dx[(int64_t)i * C + c] = (float)((gi[c] - yi[c] * ydy) / n);
  }
}

af_status af_cpu_mnr_loss(const float *anchors, const float *positives, const float *negatives, int B,
                      int M, int C, float scale, int symmetric, float *loss, float *d_anchors,
                      float *d_positives, float *d_negatives, af_error *err) {
  if (B < 1 || C < 1 || M < 0 || !(scale > 0.0f) || (M > 0 && !negatives))
    return af_error_set(err, AF_ERR_ARG,
                        "mnr loss: invalid shape or scale (B=%d, M=%d, C=%d, scale=%g)", B, M, C,
                        (double)scale);
  const int D = B + M; // candidates: the B positives, then the M negatives
  af_status st = AF_OK;
  double *a = af_malloc((size_t)B * C, sizeof(double), err);     // (B, C) normalised anchors
  double *d = af_malloc((size_t)D * C, sizeof(double), err);     // (D, C) normalised candidates
  double *na = af_malloc((size_t)B, sizeof(double), err);        // (B) anchor norms
  double *nd = af_malloc((size_t)D, sizeof(double), err);        // (D) candidate norms
  double *S = af_malloc((size_t)B * D, sizeof(double), err);     // (B, D) scaled similarities
  double *lse_r = af_malloc((size_t)B, sizeof(double), err);     // (B) row logsumexp
  double *lse_c = af_malloc((size_t)B, sizeof(double), err);     // (B) column logsumexp, j < B
  double *ga = af_calloc((size_t)B * C, sizeof(double), err);    // (B, C) d loss / d a
  double *gd = af_calloc((size_t)D * C, sizeof(double), err);    // (D, C) d loss / d d
  if (!a || !d || !na || !nd || !S || !lse_r || !lse_c || !ga || !gd) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  normalize_rows(a, na, anchors, B, C);
  normalize_rows(d, nd, positives, B, C);
  if (M > 0)
    normalize_rows(d + (int64_t)B * C, nd + B, negatives, M, C);

  for (int i = 0; i < B; i++)
    for (int j = 0; j < D; j++) {
      double dot = 0.0;
      for (int c = 0; c < C; c++)
        dot += a[(int64_t)i * C + c] * d[(int64_t)j * C + c];
      S[(int64_t)i * D + j] = (double)scale * dot;
    }
  for (int i = 0; i < B; i++) { // logsumexp of row i over all D candidates
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < D; j++)
      mx = fmax(mx, S[(int64_t)i * D + j]);
    for (int j = 0; j < D; j++)
      s += exp(S[(int64_t)i * D + j] - mx);
    lse_r[i] = mx + log(s);
  }
  if (symmetric)
    for (int i = 0; i < B; i++) { // logsumexp of column i over the B anchors
      double mx = -INFINITY, s = 0.0;
      for (int j = 0; j < B; j++)
        mx = fmax(mx, S[(int64_t)j * D + i]);
      for (int j = 0; j < B; j++)
        s += exp(S[(int64_t)j * D + i] - mx);
      lse_c[i] = mx + log(s);
    }
  const double w = symmetric ? 0.5 : 1.0; // weight of each direction's logsumexp
  double total = 0.0;
  for (int i = 0; i < B; i++)
    total += w * lse_r[i] + (symmetric ? w * lse_c[i] : 0.0) - S[(int64_t)i * D + i];
  *loss = (float)(total / B);

  if (!d_anchors && !d_positives && !d_negatives)
    goto done;
  // dS_ij = (w softmax_row(S)_ij + w softmax_col(S)_ij [j < B] - delta_ij) / B,
  // stored over S; then dA = scale dS d, dD = scale dS^T a (normalised space).
  for (int i = 0; i < B; i++)
    for (int j = 0; j < D; j++) {
      double s = S[(int64_t)i * D + j];
      double g = w * exp(s - lse_r[i]);
      if (symmetric && j < B)
        g += w * exp(s - lse_c[j]);
      if (i == j)
        g -= 1.0;
      S[(int64_t)i * D + j] = g / B * scale;
    }
  for (int i = 0; i < B; i++)
    for (int j = 0; j < D; j++) {
      double g = S[(int64_t)i * D + j];
      for (int c = 0; c < C; c++) {
        ga[(int64_t)i * C + c] += g * d[(int64_t)j * C + c];
        gd[(int64_t)j * C + c] += g * a[(int64_t)i * C + c];
      }
    }
  if (d_anchors)
    normalize_backward(d_anchors, ga, a, na, B, C);
  if (d_positives)
    normalize_backward(d_positives, gd, d, nd, B, C);
  if (d_negatives && M > 0)
    normalize_backward(d_negatives, gd + (int64_t)B * C, d + (int64_t)B * C, nd + B, M, C);
done:
  free(a);
  free(d);
  free(na);
  free(nd);
  free(S);
  free(lse_r);
  free(lse_c);
  free(ga);
  free(gd);
  return st;
}
