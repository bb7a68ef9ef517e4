/* Cold-start features of the learned ranker (see eval_internal.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"

static const double MU = 1.0; /* ridge weight of both maps (unit-norm embeddings) */

struct af_eval_cold {
  int d;
  float *map;      /* (n, d) M over f->ease's modelled products */
  float *prior;    /* (N) predicted log(1 + baskets) */
  double *lift;    /* (n_codes[0], n_codes[0]) category-pair lift, or NULL */
  int32_t n_codes;
};

void af_eval_cold_free(struct af_eval_cold *c) {
  if (!c)
    return;
  free(c->map), free(c->prior), free(c->lift);
  free(c);
}

/* inv (d, d) = (X^T X + MU I)^{-1} for X (n, d) float. */
static af_status ridge_inverse(const float *X, int64_t n, int d, double *inv, af_error *err) {
  float *g = af_malloc((size_t)d * d, sizeof *g, err); /* (d, d) */
  if (!g)
    return AF_ERR_NOMEM;
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, d, (int)n, 1.0f, X, d, 0.0f, g, d);
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++)
      inv[i * d + j] = (double)g[i >= j ? i * d + j : j * d + i] + (i == j ? MU : 0.0);
  free(g);
  return af_spd_inverse(inv, d, err);
}

/* c->map = (B E)(E^T E + MU I)^{-1}, E (n, d) the modelled products' embeddings. */
static af_status fit_map(struct af_eval_cold *c, const af_eval_method *m, const af_ease_model *e,
                         af_error *err) {
  const int64_t n = e->n;
  const int d = m->d;
  float *E = af_malloc((size_t)n * d + 1, sizeof *E, err);  /* (n, d) */
  float *BE = af_malloc((size_t)n * d + 1, sizeof *BE, err); /* (n, d) */
  double *inv = af_malloc((size_t)d * d, sizeof *inv, err);  /* (d, d) */
  float *invf = af_malloc((size_t)d * d, sizeof *invf, err); /* (d, d) */
  c->map = af_malloc((size_t)n * d + 1, sizeof *c->map, err);
  af_status st = E && BE && inv && invf && c->map ? AF_OK : AF_ERR_NOMEM;
  for (int64_t i = 0; st == AF_OK && i < n; i++)
    memcpy(E + i * d, m->emb + (int64_t)e->items[i] * d, sizeof *E * (size_t)d);
  if (st == AF_OK && n > 0)
    st = ridge_inverse(E, n, d, inv, err);
  if (st == AF_OK && n > 0) {
    for (int i = 0; i < d * d; i++)
      invf[i] = (float)inv[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, (int)n, 1.0f, e->B, (int)n,
                E, d, 0.0f, BE, d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, d, 1.0f, BE, d, invf, d,
                0.0f, c->map, d);
  }
  free(E), free(BE), free(inv), free(invf);
  return st;
}

/* c->prior[b] = mean + e_b . v, v the ridge fit of log(1 + baskets) - mean. */
static af_status fit_prior(struct af_eval_cold *c, const af_eval_method *m, const float *pop,
                           int32_t N, af_error *err) {
  const int d = m->d;
  if (d > 4096)
    return af_error_set(err, AF_ERR_ARG, "%s: embedding dimension %d above 4096", m->name, d);
  double *inv = af_malloc((size_t)d * d, sizeof *inv, err); /* (d, d) */
  double *xy = af_calloc((size_t)d, sizeof *xy, err);       /* (d) */
  c->prior = af_malloc((size_t)N + 1, sizeof *c->prior, err);
  af_status st = inv && xy && c->prior ? AF_OK : AF_ERR_NOMEM;
  double mean = 0;
  for (int32_t b = 0; b < N; b++)
    mean += log1p(pop[b]) / N;
  for (int32_t b = 0; st == AF_OK && b < N; b++)
    for (int k = 0; k < d; k++)
      xy[k] += m->emb[(int64_t)b * d + k] * (log1p(pop[b]) - mean);
  if (st == AF_OK)
    st = ridge_inverse(m->emb, N, d, inv, err);
  double v[4096]; /* (d) the ridge weights */
  for (int k = 0; st == AF_OK && k < d; k++) {
    v[k] = 0;
    for (int j = 0; j < d; j++)
      v[k] += inv[k * d + j] * xy[j];
  }
  for (int32_t b = 0; st == AF_OK && b < N; b++) {
    double s = mean;
    for (int k = 0; k < d; k++)
      s += v[k] * m->emb[(int64_t)b * d + k];
    c->prior[b] = (float)s;
  }
  free(inv), free(xy);
  return st;
}

/* c->lift (n0, n0): category-pair lift over the training baskets (level 0). */
static af_status fit_lift(struct af_eval_cold *c, const af_eval_method *m, const af_baskets *b,
                          af_error *err) {
  const int32_t n0 = m->n_levels > 0 ? m->n_codes[0] : 0;
  c->n_codes = n0;
  if (n0 == 0)
    return AF_OK;
  c->lift = af_calloc((size_t)n0 * n0, sizeof *c->lift, err);
  double *cnt = af_calloc((size_t)n0, sizeof *cnt, err);
  int32_t *seen = af_malloc((size_t)n0, sizeof *seen, err);
  int32_t *codes = af_malloc((size_t)b->n_items + 1, sizeof *codes, err);
  af_status st = c->lift && cnt && seen && codes ? AF_OK : AF_ERR_NOMEM;
  for (int32_t i = 0; st == AF_OK && i < n0; i++)
    seen[i] = -1;
  for (int64_t k = 0; st == AF_OK && k < b->n_baskets; k++) {
    int nc = 0; /* the basket's distinct codes */
    for (int64_t p = b->offsets[k]; p < b->offsets[k + 1]; p++) {
      const int32_t code = m->category[0][b->items[p]];
      if (code >= 0 && seen[code] != (int32_t)k)
        seen[code] = (int32_t)k, codes[nc++] = code;
    }
    for (int x = 0; x < nc; x++) {
      cnt[codes[x]] += 1;
      for (int y = 0; y < nc; y++)
        c->lift[(int64_t)codes[x] * n0 + codes[y]] += 1;
    }
  }
  for (int32_t x = 0; st == AF_OK && x < n0; x++)
    for (int32_t y = 0; y < n0; y++) {
      double *l = &c->lift[(int64_t)x * n0 + y];
      *l = cnt[x] > 0 && cnt[y] > 0 ? *l * (double)b->n_baskets / (cnt[x] * cnt[y]) : 0;
    }
  free(cnt), free(seen), free(codes);
  return st;
}

af_status af_eval_cold_fit(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                           af_error *err) {
  f->cold = af_calloc(1, sizeof *f->cold, err);
  if (!f->cold)
    return AF_ERR_NOMEM;
  f->cold->d = m->d;
  AF_TRY(fit_lift(f->cold, m, &sp->train, err));
  if (!m->emb)
    return AF_OK;
  AF_TRY(fit_map(f->cold, m, &f->ease, err));
  return fit_prior(f->cold, m, f->pop, f->N, err);
}

af_status af_eval_cold_map_rows(const af_eval_method *m, const af_eval_fitted *f,
                                const af_eval_split *sp, int64_t q0, int64_t nq, float *rows,
                                af_error *err) {
  const int d = m->d;
  if (!m->emb || !f->cold->map) {
    memset(rows, 0, sizeof *rows * (size_t)nq * sp->N);
    return AF_OK;
  }
  float *u = af_calloc((size_t)nq * d, sizeof *u, err); /* (nq, d) */
  if (!u)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < nq; i++)
    for (int64_t j = sp->q_off[q0 + i]; j < sp->q_off[q0 + i + 1]; j++) {
      const int32_t l = f->ease.local[sp->q_items[j]];
      for (int k = 0; l >= 0 && k < d; k++)
        u[i * d + k] += f->cold->map[(int64_t)l * d + k];
    }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, sp->N, d, 1.0f, u, d, m->emb, d,
              0.0f, rows, sp->N);
  free(u);
  return AF_OK;
}

double af_eval_cold_prior(const af_eval_fitted *f, int32_t b) {
  return f->cold && f->cold->prior ? f->cold->prior[b] : 0.0;
}

void af_eval_cold_profile(const af_eval_method *m, const af_eval_fitted *f, const int32_t *qi,
                          int n, double *prof) {
  const int32_t n0 = f->cold ? f->cold->n_codes : 0;
  for (int32_t c = 0; c < n0; c++)
    prof[c] = 0;
  for (int j = 0; j < n && n0 > 0; j++) {
    const int32_t code = m->category[0][qi[j]];
    for (int32_t c = 0; code >= 0 && c < n0; c++)
      prof[c] += f->cold->lift[(int64_t)code * n0 + c] / n;
  }
}
