/* The basket-completion loss (see basket_loss.h). */
#include "train/basket_loss.h"

#include <math.h>
#include <stdlib.h>

/* y (N, C) = x / max(|x|, 1e-12) per row; nrm (N) the clamped norms. */
static void unit_rows(double *y, double *nrm, const double *x, int N, int C) {
  for (int i = 0; i < N; i++) {
    double ss = 0;
    for (int c = 0; c < C; c++)
      ss += x[(size_t)i * C + c] * x[(size_t)i * C + c];
    nrm[i] = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
    for (int c = 0; c < C; c++)
      y[(size_t)i * C + c] = x[(size_t)i * C + c] / nrm[i];
  }
}

/* dx (N, C) = (dy - y (y . dy)) / |x|: back through unit_rows. */
static void unit_rows_backward(double *dx, const double *dy, const double *y, const double *nrm,
                               int N, int C) {
  for (int i = 0; i < N; i++) {
    const double *yi = y + (size_t)i * C, *gi = dy + (size_t)i * C; /* (C) */
    double ydy = 0;
    for (int c = 0; nrm[i] > 1e-12 && c < C; c++)
      ydy += yi[c] * gi[c];
    for (int c = 0; c < C; c++)
      dx[(size_t)i * C + c] = (gi[c] - yi[c] * ydy) / nrm[i];
  }
}

/* logsumexp of n values at stride st; -inf entries add nothing. */
static double lse(const double *v, int n, int st) {
  double mx = -INFINITY, s = 0;
  for (int j = 0; j < n; j++)
    mx = fmax(mx, v[(size_t)j * st]);
  for (int j = 0; j < n; j++)
    s += exp(v[(size_t)j * st] - mx);
  return mx + log(s);
}

/* S (B, B): the corrected, masked logits of unit rows u, p. */
static void logits(double *S, const double *u, const double *p, const double *logq,
                   const unsigned char *mask, int B, int C, double scale) {
  for (int i = 0; i < B; i++)
    for (int j = 0; j < B; j++) {
      double dot = 0;
      for (int c = 0; c < C; c++)
        dot += u[(size_t)i * C + c] * p[(size_t)j * C + c];
      double s = scale * dot - (logq ? logq[j] : 0.0);
      S[(size_t)i * B + j] = i != j && mask && mask[(size_t)i * B + j] ? -INFINITY : s;
    }
}

af_status af_basket_loss(const double *U, const double *P, const double *logq,
                         const unsigned char *mask, int B, int C, double scale, int symmetric,
                         double *loss, double *dU, double *dP, af_error *err) {
  if (B < 1 || C < 1 || !(scale > 0) || !isfinite(scale))
    return af_error_set(err, AF_ERR_ARG, "basket loss: invalid shape or scale (B=%d, C=%d, "
                        "scale=%g)", B, C, scale);
  for (int j = 0; logq && j < B; j++)
    if (!isfinite(logq[j]))
      return af_error_set(err, AF_ERR_ARG, "basket loss: log q of candidate %d is not finite", j);
  const size_t BC = (size_t)B * C;
  double *u = af_malloc(BC, sizeof *u, err), *p = af_malloc(BC, sizeof *p, err); /* (B, C) */
  double *nu = af_malloc((size_t)B, sizeof *nu, err), *np = af_malloc((size_t)B, sizeof *np, err);
  double *S = af_malloc((size_t)B * B, sizeof *S, err);                           /* (B, B) */
  double *lr = af_malloc((size_t)B, sizeof *lr, err), *lc = af_malloc((size_t)B, sizeof *lc, err);
  double *gu = af_calloc(BC, sizeof *gu, err), *gp = af_calloc(BC, sizeof *gp, err); /* (B, C) */
  af_status st = u && p && nu && np && S && lr && lc && gu && gp ? AF_OK : AF_ERR_NOMEM;
  if (st != AF_OK)
    goto done;
  unit_rows(u, nu, U, B, C);
  unit_rows(p, np, P, B, C);
  logits(S, u, p, logq, mask, B, C, scale);
  const double w = symmetric ? 0.5 : 1.0;
  double total = 0;
  for (int i = 0; i < B; i++) {
    lr[i] = lse(S + (size_t)i * B, B, 1);
    lc[i] = symmetric ? lse(S + i, B, B) : 0.0;
    total += w * lr[i] + (symmetric ? w * lc[i] : 0.0) - S[(size_t)i * B + i];
  }
  *loss = total / B;
  if (!dU && !dP)
    goto done;
  /* dS_ij = (w softmax_row_ij + w softmax_col_ij - delta_ij) / B; masked: 0 */
  for (int i = 0; i < B; i++)
    for (int j = 0; j < B; j++) {
      const double s = S[(size_t)i * B + j];
      double g = isinf(s) ? 0.0 : w * exp(s - lr[i]) + (symmetric ? w * exp(s - lc[j]) : 0.0);
      S[(size_t)i * B + j] = (g - (i == j)) / B * scale;
    }
  for (int i = 0; i < B; i++)
    for (int j = 0; j < B; j++)
      for (int c = 0; c < C; c++) {
        gu[(size_t)i * C + c] += S[(size_t)i * B + j] * p[(size_t)j * C + c];
        gp[(size_t)j * C + c] += S[(size_t)i * B + j] * u[(size_t)i * C + c];
      }
  if (dU)
    unit_rows_backward(dU, gu, u, nu, B, C);
  if (dP)
    unit_rows_backward(dP, gp, p, np, B, C);
done:
  free(u), free(p), free(nu), free(np), free(S), free(lr), free(lc), free(gu), free(gp);
  return st;
}
