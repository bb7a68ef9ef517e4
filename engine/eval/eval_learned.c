/* The learned ranker (docs/evaluation.md, "learned"): a linear score
 *   s(Q, b) = sum_k w_k x_k(Q, b) / sd_k
 * over the features of eval.h (EASE, item-CF, best rule confidence, fusion's
 * F, text cosine to the query mean and its cold-candidate share, category
 * match with the query per level, log popularity, history weight, EASE and
 * text scaled by log |Q|, and the cold-start map, sell prior and category
 * profile of eval_cold.c). w minimises the pairwise logistic loss
 *   (1/P) sum over (hidden h, negative c) log(1 + exp(-w . (x_h - x_c) / sd))
 *   + (l2 / 2) |w|^2
 * over a validation split carved from the training baskets (seed
 * learn_seed): the base models are fitted on its training part, and each of
 * its queries whose hidden item is in its pool (the learn_pool best
 * candidates of EASE, fusion, text, item-CF and the cold map) pairs the
 * hidden item with the rest of the pool. Newton's method in float64, serial
 * in query order: the same weights for a seed whatever the thread count.
 * Then the base models are refitted on the whole training split and the
 * ranker reranks each query's pool; the rest ranks below it. With
 * learn_text_max the text cosine's max over the query items is a feature and
 * a pool source too (off by default: docs/evaluation.md, "Text max").
 *
 * Cold slots (learn_cold_slots S > 0): a second ranker, the same features
 * and loss, fitted on the validation queries whose hidden item was never
 * bought, over the cold pool (never-bought candidates of text, the cold map
 * and fusion); ranks 11 - S .. 10 go to its best S (docs/evaluation.md,
 * "Cold slots"). */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"
#include "base/strmap.h"
#include "base/topk.h"
#include "eval/eval_internal.h"

typedef af_eval_fitted fitted;

const char *const af_eval_feature_names[AF_EVAL_N_FEATURES] = {
    "ease", "itemcf", "rules", "fusion", "text", "text_cold",
    "cat0", "cat1", "log_pop", "history", "ease_x_logq", "text_x_logq",
    "cold_map", "sell_prior", "cat_profile", "text_max"};

enum { NB = AF_EVAL_LEARNED_BLOCKS, NSRC = 6, NCOLD_SRC = 4, BATCH = 128, NEWTON_ITERS = 40,
       MAX_C = 100 };
/* The blocks: scores of these methods (B_TMAX: text with the max over the
 * query items), then B_CMAP, the cold-start map. */
static const af_eval_kind BASE[NB - 1] = {AF_EVAL_EASE, AF_EVAL_ITEMCF, AF_EVAL_RULES,
                                          AF_EVAL_FUSION, AF_EVAL_TEXT, AF_EVAL_TEXT};
enum { B_EASE, B_ITEMCF, B_RULES, B_FUSION, B_TEXT, B_TMAX, B_CMAP };
#define F AF_EVAL_N_FEATURES

void af_eval_learned_free(struct af_eval_learned *l) { free(l); }

static af_status fit_base(fitted *f, const af_eval_method *m, const af_eval_split *sp,
                          af_error *err) {
  AF_TRY(af_ease_fit(&sp->train, &m->ease, &f->ease, err));
  AF_TRY(af_eval_fit_itemcf(f, m, sp, err));
  AF_TRY(af_eval_fit_rules(f, m, sp, err));
  AF_TRY(af_eval_cold_fit(f, m, sp, err));
  if (!m->emb)
    return AF_OK;
  af_eval_method t = *m;
  t.text_weight = t.cold_text_weight = 0, t.fuse.text_alpha = 0;
  return af_eval_fit_fusion(f, &t, sp, err);
}

/* blk (NB, nq, N): the base scores of queries [q0, q0 + nq). */
static af_status base_blocks(const af_eval_method *m, const fitted *f, const af_eval_split *sp,
                             int64_t q0, int64_t nq, int threads, float *blk, af_error *err) {
  const size_t stride = (size_t)nq * sp->N;
  AF_TRY(af_eval_cold_map_rows(m, f, sp, q0, nq, blk + B_CMAP * stride, err));
  int single = 1; /* every query one item: its max is its mean (associate's case) */
  for (int64_t i = 0; i < nq; i++)
    single &= sp->q_off[q0 + i + 1] - sp->q_off[q0 + i] == 1;
  for (int k = 0; k < NB - 1; k++) {
    if (k == B_TMAX && !m->learn_text_max) /* off: not read (features() gives 0) */
      continue;
    if ((BASE[k] == AF_EVAL_FUSION || BASE[k] == AF_EVAL_TEXT) && !m->emb) {
      memset(blk + k * stride, 0, sizeof *blk * stride);
      continue;
    }
    if (k == B_TMAX && single) {
      memcpy(blk + k * stride, blk + B_TEXT * stride, sizeof *blk * stride);
      continue;
    }
    af_eval_method t = *m;
    t.kind = BASE[k], t.text_max = k == B_TMAX, t.fuse.text_alpha = 0;
    t.text_weight = t.cold_text_weight = 0;
    AF_TRY(af_eval_score_batch(&t, f, sp, q0, nq, threads, blk + k * stride, err));
  }
  return AF_OK;
}

typedef struct {
  const af_eval_method *m;
  const fitted *f;
  const float *blk; /* (NB, nq, N) */
  int64_t nq;
  int32_t N;
} feat_ctx;

/* cnt[l][code] += delta for the query's items. */
static void query_counts(const af_eval_method *m, const int32_t *qi, int n, int32_t **cnt,
                         int delta) {
  for (int l = 0; l < m->n_levels && l < 2; l++)
    for (int j = 0; j < n; j++)
      if (m->category[l][qi[j]] >= 0)
        cnt[l][m->category[l][qi[j]]] += delta;
}

/* x (F): the features of candidate b for batch query i (n query items). */
static void features(const feat_ctx *c, int64_t i, int32_t b, int n, int32_t *const *cnt,
                     const double *prof, double *x) {
  const size_t o = (size_t)i * c->N + b, stride = (size_t)c->nq * c->N;
  const double nb = c->f->pop[b], w = nb / (nb + 5.0), logq = log((double)n);
  x[AF_EVAL_F_EASE] = c->blk[B_EASE * stride + o];
  x[AF_EVAL_F_ITEMCF] = c->blk[B_ITEMCF * stride + o];
  x[AF_EVAL_F_RULES] = c->blk[B_RULES * stride + o];
  x[AF_EVAL_F_FUSION] = c->blk[B_FUSION * stride + o];
  x[AF_EVAL_F_TEXT] = c->blk[B_TEXT * stride + o];
  x[AF_EVAL_F_TEXT_MAX] = c->m->learn_text_max ? c->blk[B_TMAX * stride + o] : 0; /* off: 0 */
  x[AF_EVAL_F_TEXT_COLD] = x[AF_EVAL_F_TEXT] * (1 - w);
  for (int l = 0; l < 2; l++) {
    const int32_t code = l < c->m->n_levels ? c->m->category[l][b] : -1;
    x[AF_EVAL_F_CAT0 + l] = code >= 0 ? cnt[l][code] / (double)n : 0;
  }
  x[AF_EVAL_F_LOG_POP] = log1p(nb);
  x[AF_EVAL_F_HISTORY] = w;
  x[AF_EVAL_F_EASE_LOGQ] = x[AF_EVAL_F_EASE] * logq;
  x[AF_EVAL_F_TEXT_LOGQ] = x[AF_EVAL_F_TEXT] * logq;
  x[AF_EVAL_F_COLD_MAP] = c->blk[B_CMAP * stride + o];
  x[AF_EVAL_F_SELL_PRIOR] = nb > 0 ? 0 : af_eval_cold_prior(c->f, b);
  const int32_t code0 = c->m->n_levels > 0 ? c->m->category[0][b] : -1;
  x[AF_EVAL_F_CAT_PROFILE] = code0 >= 0 ? prof[code0] : 0;
}

static int32_t **alloc_counts(const af_eval_method *m) {
  int32_t **cnt = calloc(2, sizeof *cnt);
  for (int l = 0; cnt && l < 2; l++)
    cnt[l] = calloc((size_t)(l < m->n_levels ? m->n_codes[l] : 0) + 1, sizeof **cnt);
  if (cnt && (!cnt[0] || !cnt[1])) {
    free(cnt[0]), free(cnt[1]), free(cnt);
    cnt = NULL;
  }
  return cnt;
}

static void free_counts(int32_t **cnt) {
  if (cnt)
    free(cnt[0]), free(cnt[1]), free(cnt);
}

/* The candidate pool of batch query i: the C best non-query products of
 * each of EASE, fusion, text, item-CF, the cold map (and text max with
 * learn_text_max), deduplicated, into list (<= NSRC C); with `unsold` the
 * cold pool instead: the C best never-bought products (pop 0 in the
 * training baskets) of text, the cold map, fusion (and text max). Returns
 * its size. mark (N) is all zero on entry and exit. */
static int pool_of(const feat_ctx *c, int64_t i, const int32_t *qi, int n, int C, int unsold,
                   unsigned char *mark, int32_t *list) {
  const size_t stride = (size_t)c->nq * c->N;
  static const int SRC[NSRC] = {B_EASE, B_FUSION, B_TEXT, B_ITEMCF, B_CMAP, B_TMAX};
  static const int COLD_SRC[NCOLD_SRC] = {B_TEXT, B_CMAP, B_FUSION, B_TMAX};
  const int n_src = unsold ? NCOLD_SRC : NSRC;
  const float *pop = c->f->pop;
  int nl = 0;
  for (int j = 0; j < n; j++)
    mark[qi[j]] = 1;
  for (int s = 0; s < n_src; s++) {
    const int src = unsold ? COLD_SRC[s] : SRC[s];
    if ((src == B_FUSION || src == B_TEXT || src == B_TMAX || src == B_CMAP) && !c->m->emb)
      continue;
    if (src == B_TMAX && !c->m->learn_text_max)
      continue;
    const float *row = c->blk + src * stride + (size_t)i * c->N;
    float ts[MAX_C];
    int64_t ti[MAX_C];
    af_topk top;
    af_topk_init(&top, ts, ti, C, -INFINITY);
    for (int32_t b = 0; b < c->N; b++)
      if (!mark[b] && (!unsold || pop[b] == 0) && row[b] >= af_topk_threshold(&top))
        af_topk_push(&top, row[b], b);
    const int got = top.size;
    af_topk_extract(&top, ti, ts, got);
    for (int j = 0; j < got; j++)
      if (!mark[ti[j]])
        mark[ti[j]] = 1, list[nl++] = (int32_t)ti[j];
  }
  for (int j = 0; j < n; j++)
    mark[qi[j]] = 0;
  for (int j = 0; j < nl; j++)
    mark[list[j]] = 0;
  return nl;
}

/* Training rows of query q (batch row i) into slot (K, F), the hidden item
 * first: the pool (the cold pool with `unsold`), when it holds the hidden
 * item (else 0 rows). */
static int candidates(const feat_ctx *c, const af_eval_split *sp, int64_t q, int64_t i, int C,
                      int unsold, unsigned char *mark, int32_t *const *cnt, double *prof,
                      double *slot) {
  const int32_t *qi = sp->q_items + sp->q_off[q];
  const int n = (int)(sp->q_off[q + 1] - sp->q_off[q]);
  int32_t list[NSRC * MAX_C];
  const int nl = pool_of(c, i, qi, n, C, unsold, mark, list);
  int h = -1;
  for (int j = 0; j < nl; j++)
    h = list[j] == sp->hidden[q] ? j : h;
  if (h < 0)
    return 0;
  list[h] = list[0], list[0] = sp->hidden[q];
  query_counts(c->m, qi, n, (int32_t **)cnt, 1);
  af_eval_cold_profile(c->m, c->f, qi, n, prof);
  for (int j = 0; j < nl; j++)
    features(c, i, list[j], n, cnt, prof, slot + (size_t)j * F);
  query_counts(c->m, qi, n, (int32_t **)cnt, -1);
  return nl;
}

typedef struct {
  int K;        /* rows per query */
  int64_t nq;   /* queries */
  double *x;    /* (nq, K, F) */
  int *n;       /* (nq) rows filled; row 0 is the hidden item */
  double *qw;   /* (nq) the query's pair weight: cold_weight when its hidden item is cold */
} train_set;

static af_status train_set_alloc(train_set *ts, int K, int64_t nq, af_error *err) {
  ts->K = K;
  ts->nq = nq;
  ts->x = af_malloc((size_t)ts->nq * ts->K * F + 1, sizeof *ts->x, err);
  ts->n = af_calloc((size_t)ts->nq + 1, sizeof *ts->n, err);
  ts->qw = af_malloc((size_t)ts->nq + 1, sizeof *ts->qw, err);
  return ts->x && ts->n && ts->qw ? AF_OK : AF_ERR_NOMEM;
}

static void train_set_free(train_set *ts) { free(ts->x), free(ts->n), free(ts->qw); }

/* The training rows of every query of val (base models fv fitted on
 * val.train) into queries [qb, qb + val->n_queries) of ts from the pool, and
 * of cold (when not NULL) from the cold pool, which only a query hiding a
 * never-bought product can fill. */
static af_status collect(const af_eval_method *m, const fitted *fv, const af_eval_split *val,
                         int threads, int64_t qb, train_set *ts, train_set *cold, af_error *err) {
  const int32_t N = val->N;
  const int C = m->learn_pool;
  for (int64_t q = 0; q < val->n_queries; q++) {
    ts->qw[qb + q] = val->group[q] == AF_EVAL_COLD ? m->learn_cold_weight : 1.0;
    if (cold)
      cold->qw[qb + q] = 1.0;
  }
  float *blk = af_malloc((size_t)NB * BATCH * N, sizeof *blk, err); /* (NB, BATCH, N) */
  af_status st = blk ? AF_OK : AF_ERR_NOMEM;
  for (int64_t q0 = 0; q0 < val->n_queries && st == AF_OK; q0 += BATCH) {
    const int64_t nq = val->n_queries - q0 < BATCH ? val->n_queries - q0 : BATCH;
    if ((st = base_blocks(m, fv, val, q0, nq, threads, blk, err)) != AF_OK)
      break;
    const feat_ctx c = {m, fv, blk, nq, N};
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
      unsigned char *mark = calloc((size_t)N, 1);
      int32_t **cnt = alloc_counts(m);
      double *prof = malloc(sizeof *prof * ((size_t)(m->n_levels ? m->n_codes[0] : 0) + 1));
      if (!mark || !cnt || !prof) {
#pragma omp atomic write
        failed = 1;
      }
#pragma omp for schedule(dynamic, 4)
      for (int64_t i = 0; i < nq; i++)
        if (mark && cnt && prof) {
          const int64_t r = qb + q0 + i; /* the row of ts */
          ts->n[r] = candidates(&c, val, q0 + i, i, C, 0, mark, cnt, prof,
                                ts->x + (size_t)r * ts->K * F);
          if (cold && val->group[q0 + i] == AF_EVAL_COLD) /* else never in the cold pool */
            cold->n[r] = candidates(&c, val, q0 + i, i, C, 1, mark, cnt, prof,
                                    cold->x + (size_t)r * cold->K * F);
        }
      free(mark);
      free(prof);
      free_counts(cnt);
    }
    if (failed)
      st = af_error_set(err, AF_ERR_NOMEM, "%s: out of memory", m->name);
  }
  free(blk);
  return st;
}

/* Solves H d = g (F x F, symmetric positive definite) by Cholesky, in place. */
static void solve_spd(double *H, double *g) {
  for (int j = 0; j < F; j++) {
    double s = H[j * F + j];
    for (int k = 0; k < j; k++)
      s -= H[j * F + k] * H[j * F + k];
    H[j * F + j] = sqrt(s);
    for (int i = j + 1; i < F; i++) {
      double t = H[i * F + j];
      for (int k = 0; k < j; k++)
        t -= H[i * F + k] * H[j * F + k];
      H[i * F + j] = t / H[j * F + j];
    }
  }
  for (int i = 0; i < F; i++) { /* L y = g */
    for (int k = 0; k < i; k++)
      g[i] -= H[i * F + k] * g[k];
    g[i] /= H[i * F + i];
  }
  for (int i = F - 1; i >= 0; i--) { /* L^T d = y */
    for (int k = i + 1; k < F; k++)
      g[i] -= H[k * F + i] * g[k];
    g[i] /= H[i * F + i];
  }
}

/* 1 / sd of each feature over every training row (0 for a constant one). */
static void feature_scales(const train_set *ts, double *scale) {
  double s1[F] = {0}, s2[F] = {0};
  int64_t rows = 0;
  for (int64_t q = 0; q < ts->nq; q++)
    for (int j = 0; j < ts->n[q]; j++, rows++)
      for (int k = 0; k < F; k++) {
        const double v = ts->x[((size_t)q * ts->K + j) * F + k];
        s1[k] += v, s2[k] += v * v;
      }
  for (int k = 0; k < F; k++) {
    const double mean = rows ? s1[k] / rows : 0, var = rows ? s2[k] / rows - mean * mean : 0;
    scale[k] = var > 1e-18 ? 1 / sqrt(var) : 0;
  }
}

/* One Newton step of the pairwise loss at l->w; returns the step's max |d|. */
static double newton_step(const train_set *ts, double l2, af_eval_ranker *l) {
  double g[F], H[F * F] = {0};
  for (int k = 0; k < F; k++)
    g[k] = l2 * l->w[k], H[k * F + k] = l2;
  double wsum = 0; /* the pairs' total weight */
  for (int64_t q = 0; q < ts->nq; q++)
    wsum += ts->qw[q] * (ts->n[q] > 0 ? ts->n[q] - 1 : 0);
  for (int64_t q = 0; q < ts->nq; q++) {
    const double *xp = ts->x + (size_t)q * ts->K * F;
    const double inv_p = ts->qw[q] / (wsum > 0 ? wsum : 1);
    for (int j = 1; j < ts->n[q]; j++) {
      double d[F], z = 0;
      for (int k = 0; k < F; k++)
        d[k] = (xp[k] - xp[j * F + k]) * l->scale[k], z += l->w[k] * d[k];
      const double p = 1 / (1 + exp(z)); /* sigmoid(-z) */
      for (int a = 0; a < F; a++) {
        g[a] -= p * d[a] * inv_p;
        for (int b = 0; b <= a; b++)
          H[a * F + b] += p * (1 - p) * d[a] * d[b] * inv_p;
      }
    }
  }
  for (int a = 0; a < F; a++)
    for (int b = a + 1; b < F; b++)
      H[a * F + b] = H[b * F + a];
  solve_spd(H, g);
  double dmax = 0;
  for (int k = 0; k < F; k++) {
    l->w[k] -= g[k];
    dmax = fabs(g[k]) > dmax ? fabs(g[k]) : dmax;
  }
  return dmax;
}

/* The listwise loss (1/W) sum_q qw_q (log sum_j exp z_qj - z_q0) + (l2/2)|w|^2,
 * z_qj = w . x_qj / sd over query q's pool (row 0 the hidden item); with
 * g and H (F x F lower) its gradient and Hessian when g != NULL. */
static double listwise(const train_set *ts, double l2, const double *w, const double *scale,
                       double *g, double *H) {
  double W = 0, loss = 0;
  for (int64_t q = 0; q < ts->nq; q++)
    W += ts->n[q] > 1 ? ts->qw[q] : 0;
  for (int k = 0; k < F; k++) {
    loss += 0.5 * l2 * w[k] * w[k];
    if (g)
      g[k] = l2 * w[k], memset(H + k * F, 0, sizeof *H * F), H[k * F + k] = l2;
  }
  for (int64_t q = 0; q < ts->nq; q++) {
    if (ts->n[q] < 2)
      continue;
    const double *xp = ts->x + (size_t)q * ts->K * F, c = ts->qw[q] / W;
    double z[NSRC * MAX_C], mx = -INFINITY, s = 0, m[F] = {0};
    for (int j = 0; j < ts->n[q]; j++) {
      z[j] = 0;
      for (int k = 0; k < F; k++)
        z[j] += w[k] * xp[j * F + k] * scale[k];
      mx = fmax(mx, z[j]);
    }
    for (int j = 0; j < ts->n[q]; j++)
      s += (z[j] = exp(z[j] - mx)); /* z: unnormalised probabilities */
    loss += c * (mx + log(s) - (log(z[0]) + mx));
    for (int j = 0; g && j < ts->n[q]; j++)
      for (int k = 0; k < F; k++)
        m[k] += z[j] / s * xp[j * F + k] * scale[k];
    for (int k = 0; g && k < F; k++)
      g[k] += c * (m[k] - xp[k] * scale[k]);
    for (int j = 0; g && j < ts->n[q]; j++) /* H += c Cov_p[x] */
      for (int a = 0; a < F; a++)
        for (int b = 0; b <= a; b++)
          H[a * F + b] += c * z[j] / s * (xp[j * F + a] * scale[a] - m[a]) *
                          (xp[j * F + b] * scale[b] - m[b]);
  }
  return loss;
}

/* One damped Newton step of the listwise loss; returns the step's max |d|. */
static double listwise_step(const train_set *ts, double l2, af_eval_ranker *l) {
  double g[F], H[F * F], w[F];
  const double before = listwise(ts, l2, l->w, l->scale, g, H);
  for (int a = 0; a < F; a++)
    for (int b = a + 1; b < F; b++)
      H[a * F + b] = H[b * F + a];
  solve_spd(H, g);
  double t = 1, dmax = 0;
  for (int halve = 0; halve < 20; halve++, t /= 2) { /* backtrack until the loss falls */
    for (int k = 0; k < F; k++)
      w[k] = l->w[k] - t * g[k];
    if (listwise(ts, l2, w, l->scale, NULL, NULL) <= before)
      break;
  }
  for (int k = 0; k < F; k++) {
    dmax = fabs(w[k] - l->w[k]) > dmax ? fabs(w[k] - l->w[k]) : dmax;
    l->w[k] = w[k];
  }
  return dmax;
}

static void fit_weights(const train_set *ts, double l2, int listwise_loss, af_eval_ranker *l) {
  feature_scales(ts, l->scale);
  l->pairs = 0;
  for (int64_t q = 0; q < ts->nq; q++)
    l->pairs += ts->n[q] > 0 ? ts->n[q] - 1 : 0;
  for (int it = 0; it < NEWTON_ITERS && l->pairs > 0; it++)
    if ((listwise_loss ? listwise_step(ts, l2, l) : newton_step(ts, l2, l)) < 1e-10)
      break;
}

af_status af_eval_learned_fit(fitted *f, const af_eval_method *m, const af_eval_split *sp,
                              int threads, af_error *err) {
  if (m->learn_pool < 1 || m->learn_pool > MAX_C || !(m->learn_l2 > 0) ||
      !(m->learn_cold_weight > 0) || m->learn_cold_slots < 0 ||
      m->learn_cold_slots > AF_EVAL_MAX_COLD_SLOTS || m->learn_folds < 1 ||
      m->learn_folds > AF_EVAL_MAX_LEARN_FOLDS)
    return af_error_set(err, AF_ERR_ARG, "%s: pool must be in [1, %d], l2 and cold weight > 0, "
                        "cold slots in [0, %d], folds in [1, %d]", m->name, MAX_C,
                        AF_EVAL_MAX_COLD_SLOTS, AF_EVAL_MAX_LEARN_FOLDS);
  f->learned = af_calloc(1, sizeof *f->learned, err);
  if (!f->learned)
    return AF_ERR_NOMEM;
  /* the validation splits: seeds learn_seed, learn_seed + 1, ... */
  af_eval_split val[AF_EVAL_MAX_LEARN_FOLDS] = {{0}};
  train_set ts = {0}, cold = {0};
  const int folds = m->learn_folds, with_cold = m->learn_cold_slots > 0;
  int64_t total = 0;
  af_status st = AF_OK;
  for (int k = 0; k < folds && st == AF_OK; k++) {
    af_eval_split_options vo;
    af_eval_split_default_options(&vo);
    vo.seed = m->learn_seed + (uint64_t)k;
    st = af_eval_split_random(&sp->train, &vo, &val[k], err);
    total += st == AF_OK ? val[k].n_queries : 0;
  }
  if (st == AF_OK)
    st = train_set_alloc(&ts, NSRC * m->learn_pool, total, err);
  if (st == AF_OK && with_cold)
    st = train_set_alloc(&cold, NCOLD_SRC * m->learn_pool, total, err);
  int64_t qb = 0; /* the first row of fold k in ts */
  for (int k = 0; k < folds && st == AF_OK; qb += val[k].n_queries, k++) {
    af_eval_fitted fv = {0};
    af_eval_method base = *m;
    base.kind = AF_EVAL_POPULARITY; /* af_eval_fit: the popularity of val.train only */
    st = af_eval_fit(&fv, &base, &val[k], threads, err);
    if (st == AF_OK)
      st = fit_base(&fv, m, &val[k], err);
    if (st == AF_OK)
      st = collect(m, &fv, &val[k], threads, qb, &ts, with_cold ? &cold : NULL, err);
    af_eval_fitted_free(&fv);
  }
  if (st == AF_OK)
    fit_weights(&ts, m->learn_l2, m->learn_listwise, &f->learned->main);
  if (st == AF_OK && with_cold)
    fit_weights(&cold, m->learn_l2, m->learn_listwise, &f->learned->cold);
  train_set_free(&ts), train_set_free(&cold);
  for (int k = 0; k < folds; k++)
    af_eval_split_free(&val[k]);
  if (st == AF_OK)
    st = fit_base(f, m, sp, err);
  return st;
}

af_status af_eval_learned_rows(const af_eval_method *m, const fitted *f, const af_eval_split *sp,
                               int64_t q0, int64_t nq, int threads, float *rows, af_error *err) {
  float *blk = af_malloc((size_t)AF_EVAL_LEARNED_BLOCKS * nq * sp->N, sizeof *blk, err);
  if (!blk)
    return AF_ERR_NOMEM;
  af_status st = af_eval_learned_rows_in(m, f, sp, q0, nq, threads, rows, blk, err);
  free(blk);
  return st;
}

typedef struct {
  double s;  /* score */
  float pop; /* training baskets */
  int32_t b; /* product */
} scored;

/* eval's rank order: higher score, then more popular (see score_list), then
 * the lower row. */
static int before(const scored *x, const scored *y) {
  if (x->s != y->s)
    return x->s > y->s;
  if (x->pop != y->pop)
    return x->pop > y->pop;
  return x->b < y->b;
}

static void sort_scored(scored *v, int n) { /* insertion sort: n <= NSRC MAX_C */
  for (int i = 1; i < n; i++) {
    const scored t = v[i];
    int j = i;
    for (; j > 0 && before(&t, &v[j - 1]); j--)
      v[j] = v[j - 1];
    v[j] = t;
  }
}

/* v (n_list): list's products scored with weights w (already divided by
 * sd); pop is 0 for all under --index-ties, as eval's rank order has it. */
static void score_list(const feat_ctx *c, int64_t i, const int32_t *list, int n_list, int n,
                       int32_t *const *cnt, const double *prof, const double *w, scored *v) {
  for (int j = 0; j < n_list; j++) {
    double x[F], s = 0;
    features(c, i, list[j], n, cnt, prof, x);
    for (int k = 0; k < F; k++)
      s += w[k] * x[k];
    v[j] = (scored){s, c->m->popularity_ties ? c->f->pop[list[j]] : 0, list[j]};
  }
}

/* Cold slots: row gets the order of main (nm, sorted) with ranks
 * 11 - slots .. 10 given to the best members of cold (nc, sorted) not
 * already above them, as the values L - position (L the number placed);
 * the rest of main follows in its order. mark (N) zero on entry and exit. */
static void place_cold(const scored *main, int nm, const scored *cold, int nc, int slots,
                       unsigned char *mark, int32_t *order, float *row) {
  const int keep = 10 - slots;
  int L = 0, jm = 0;
  for (; jm < nm && L < keep; jm++)
    mark[main[jm].b] = 1, order[L++] = main[jm].b;
  for (int j = 0, got = 0; j < nc && got < slots; j++)
    if (!mark[cold[j].b])
      mark[cold[j].b] = 1, order[L++] = cold[j].b, got++;
  for (; jm < nm; jm++)
    if (!mark[main[jm].b])
      mark[main[jm].b] = 1, order[L++] = main[jm].b;
  for (int p = 0; p < L; p++)
    row[order[p]] = (float)(L - p), mark[order[p]] = 0;
}

af_status af_eval_learned_rows_in(const af_eval_method *m, const fitted *f,
                                  const af_eval_split *sp, int64_t q0, int64_t nq, int threads,
                                  float *rows, float *blk, af_error *err) {
  const int32_t N = sp->N;
  af_status st = base_blocks(m, f, sp, q0, nq, threads, blk, err);
  const feat_ctx c = {m, f, blk, nq, N};
  const int slots = m->learn_cold_slots;
  double w[F], wc[F];
  for (int k = 0; k < F; k++) {
    w[k] = f->learned->main.w[k] * f->learned->main.scale[k];
    wc[k] = f->learned->cold.w[k] * f->learned->cold.scale[k];
  }
  int failed = 0;
#pragma omp parallel num_threads(threads) if (st == AF_OK)
  {
    int32_t **cnt = st == AF_OK ? alloc_counts(m) : NULL;
    unsigned char *mark = calloc((size_t)N, 1);
    int32_t *list = malloc(sizeof *list * (NSRC + NCOLD_SRC) * MAX_C);
    scored *v = malloc(sizeof *v * (NSRC + NCOLD_SRC) * MAX_C);
    double *prof = malloc(sizeof *prof * ((size_t)(m->n_levels ? m->n_codes[0] : 0) + 1));
    if (!cnt || !mark || !list || !v || !prof) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(dynamic, 4)
    for (int64_t i = 0; i < nq; i++) {
      const int32_t *qi = sp->q_items + sp->q_off[q0 + i];
      const int n = (int)(sp->q_off[q0 + i + 1] - sp->q_off[q0 + i]);
      if (!cnt || !mark || !list || !v || !prof)
        continue;
      float *row = rows + (size_t)i * N;
      for (int32_t b = 0; b < N; b++) /* outside the pool: below it, by the tie order */
        row[b] = -FLT_MAX;
      const int nl = pool_of(&c, i, qi, n, m->learn_pool, 0, mark, list);
      query_counts(m, qi, n, cnt, 1);
      af_eval_cold_profile(m, f, qi, n, prof);
      score_list(&c, i, list, nl, n, cnt, prof, w, v);
      if (slots == 0) {
        for (int j = 0; j < nl; j++)
          row[v[j].b] = (float)v[j].s;
      } else {
        const int nc = pool_of(&c, i, qi, n, m->learn_pool, 1, mark, list + nl);
        score_list(&c, i, list + nl, nc, n, cnt, prof, wc, v + nl);
        sort_scored(v, nl);
        sort_scored(v + nl, nc);
        place_cold(v, nl, v + nl, nc, slots, mark, list, row);
      }
      query_counts(m, qi, n, cnt, -1);
    }
    free_counts(cnt);
    free(mark);
    free(list);
    free(v);
    free(prof);
  }
  if (st == AF_OK && failed)
    st = af_error_set(err, AF_ERR_NOMEM, "%s: out of memory", m->name);
  return st;
}

af_status af_eval_category_codes(const char *const *names, int64_t N, int32_t *codes,
                                 int32_t *n_codes, af_error *err) {
  af_strmap *map = NULL;
  AF_TRY(af_strmap_create((size_t)N, &map, err));
  af_status st = AF_OK;
  int32_t n = 0;
  for (int64_t i = 0; i < N && st == AF_OK; i++) {
    codes[i] = -1;
    if (!names[i] || !names[i][0])
      continue;
    int64_t existing;
    st = af_strmap_put(map, names[i], strlen(names[i]), n, &existing, NULL, err);
    codes[i] = existing >= 0 ? (int32_t)existing : n++;
  }
  af_strmap_free(map);
  *n_codes = n;
  return st;
}
