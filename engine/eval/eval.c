#define _POSIX_C_SOURCE 200809L
/* Scoring every product for every query with each method, and the metrics
 * (see eval.h). Queries go in batches of BATCH: a method fills scores
 * (BATCH, N), then each query's hidden item is ranked over its row. The text
 * methods score a batch with one SGEMM (queries x all N products). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "eval/eval_internal.h"
#include "base/topk.h"

enum { BATCH = 128 };

typedef af_eval_fitted fitted;

const double af_eval_ease_lambda_grid[AF_EVAL_EASE_GRID_N] = {10,  25,  50,   100,
                                                               250, 500, 1000, 2500};

void af_eval_method_init(af_eval_method *m, af_eval_kind kind, const char *name) {
  memset(m, 0, sizeof *m);
  m->kind = kind;
  m->name = name;
  m->min_count = AF_EVAL_DEFAULT_MIN_COUNT;
  m->rules_min_count = 3;
  m->rules_max_len = 3;
  m->rules_min_confidence = 0.0;
  m->popularity_ties = 1;
  af_fuse_default_options(&m->fuse);
  m->ease = (af_ease_options)AF_EASE_DEFAULT_OPTIONS;
  m->knn_k = 100;
  m->knn_shrink = 10;
  m->learn_seed = 43;
  m->learn_pool = 50;
  m->learn_l2 = 1e-3;
  m->learn_cold_weight = 1.0;
  m->learn_folds = AF_EVAL_DEFAULT_LEARN_FOLDS;
}



void af_eval_fitted_free(fitted *f) {
  free(f->pop);
  af_cooccur_free(&f->co);
  free(f->cf);
  free(f->r_off);
  free(f->r_ante);
  free(f->r_cons);
  free(f->r_conf);
  af_fuse_model_free(f->fuse);
  free(f->text_coef);
  af_ease_free(&f->ease);
  af_itemknn_free(&f->knn);
  af_eval_learned_free(f->learned);
  af_eval_cold_free(f->cold);
}

static af_status fit_knn(fitted *f, const af_eval_method *m, const af_eval_split *sp,
                         af_error *err) {
  AF_TRY(af_cooccur_build(&sp->train, m->min_count < 1 ? 1 : m->min_count, &f->co, err));
  return af_itemknn_build(&f->co, m->knn_k, m->knn_shrink, m->min_count < 1 ? 1 : m->min_count,
                          &f->knn, err);
}

af_status af_eval_fit_itemcf(fitted *f, const af_eval_method *m, const af_eval_split *sp,
                            af_error *err) {
  AF_TRY(af_cooccur_build(&sp->train, m->min_count < 1 ? 1 : m->min_count, &f->co, err));
  int64_t nnz = f->co.offsets[f->N];
  f->cf = af_malloc((size_t)nnz + 1, sizeof *f->cf, err);
  if (!f->cf)
    return AF_ERR_NOMEM;
  for (int32_t x = 0; x < f->N; x++)
    for (int64_t i = f->co.offsets[x]; i < f->co.offsets[x + 1]; i++)
      f->cf[i] = (float)(f->co.count[i] / sqrt((double)f->co.item_count[x] *
                                               (double)f->co.item_count[f->co.nbr[i]]));
  return AF_OK;
}

af_status af_eval_fit_rules(fitted *f, const af_eval_method *m, const af_eval_split *sp,
                           af_error *err) {
  const int64_t nb = sp->train.n_baskets;
  if (nb == 0)
    return af_error_set(err, AF_ERR_ARG, "rules: no training baskets");
  int max_len = m->rules_max_len < 2 ? 2 : m->rules_max_len;
  if (max_len > 8)
    return af_error_set(err, AF_ERR_ARG, "rules: max length %d above 8", max_len);
  /* the smallest support whose count threshold is rules_min_count */
  double min_support = ((double)m->rules_min_count - 0.5) / (double)nb;
  if (min_support <= 0)
    min_support = 0.5 / (double)nb;
  af_itemsets fi = {0};
  af_rules rs = {0};
  AF_TRY(af_fpgrowth(&sp->train, min_support, max_len, &fi, err));
  af_rules_options ro = {m->rules_min_confidence, 0.0, 1, 0};
  af_status st = af_rules_generate(&fi, &ro, &rs, err);
  if (st != AF_OK) {
    af_itemsets_free(&fi);
    return st;
  }
  f->r_width = max_len - 1;
  f->r_off = af_calloc((size_t)f->N + 1, sizeof *f->r_off, err);
  f->r_ante = af_malloc((size_t)rs.n_rules * f->r_width + 1, sizeof *f->r_ante, err);
  f->r_cons = af_malloc((size_t)rs.n_rules + 1, sizeof *f->r_cons, err);
  f->r_conf = af_malloc((size_t)rs.n_rules + 1, sizeof *f->r_conf, err);
  int64_t *fill = af_malloc((size_t)f->N + 1, sizeof *fill, err);
  if (!f->r_off || !f->r_ante || !f->r_cons || !f->r_conf || !fill) {
    st = AF_ERR_NOMEM;
  } else {
    int32_t side[32];
    for (int64_t r = 0; r < rs.n_rules; r++) {
      af_rule_side(&fi, &rs.rules[r], 0, side);
      f->r_off[side[0] + 1]++;
    }
    for (int32_t i = 0; i < f->N; i++)
      f->r_off[i + 1] += f->r_off[i];
    memcpy(fill, f->r_off, sizeof *fill * (size_t)f->N);
    /* rules stay in af_rules order (lift desc, ...) within a group */
    for (int64_t r = 0; r < rs.n_rules; r++) {
      int na = af_rule_side(&fi, &rs.rules[r], 0, side);
      int64_t p = fill[side[0]]++;
      for (int j = 0; j < f->r_width; j++)
        f->r_ante[p * f->r_width + j] = j < na ? side[j] : -1;
      af_rule_side(&fi, &rs.rules[r], 1, side);
      f->r_cons[p] = side[0];
      f->r_conf[p] = (float)rs.rules[r].confidence;
    }
  }
  free(fill);
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  return st;
}

af_status af_eval_fit_fusion(fitted *f, const af_eval_method *m, const af_eval_split *sp,
                             af_error *err) {
  if (!m->emb)
    return af_error_set(err, AF_ERR_ARG, "%s: fusion needs embeddings", m->name);
  if (m->fuse.text_alpha == 0 && (m->text_weight != 0 || m->cold_text_weight != 0)) {
    f->text_coef = af_malloc((size_t)f->N + 1, sizeof *f->text_coef, err);
    if (!f->text_coef)
      return AF_ERR_NOMEM;
    for (int32_t b = 0; b < f->N; b++) {
      double n = f->pop[b];
      double w = n <= 0 ? 0 : m->fuse.history_prior == 0 ? 1 : n / (n + m->fuse.history_prior);
      f->text_coef[b] = (float)(m->text_weight + m->cold_text_weight * (1 - w));
    }
  }
  af_fuse_input in = {f->N, m->d, m->emb, &sp->train, 0, NULL};
  return af_fuse_model_build(&m->fuse, &in, 0, &f->fuse, err);
}

af_status af_eval_fit(fitted *f, const af_eval_method *m, const af_eval_split *sp, int threads,
                      af_error *err) {
  memset(f, 0, sizeof *f);
  f->N = sp->N;
  f->pop = af_calloc((size_t)f->N + 1, sizeof *f->pop, err);
  if (!f->pop)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < sp->train.offsets[sp->train.n_baskets]; i++)
    f->pop[sp->train.items[i]] += 1.0f;
  switch (m->kind) {
  case AF_EVAL_POPULARITY:
    return AF_OK;
  case AF_EVAL_ITEMCF:
    return af_eval_fit_itemcf(f, m, sp, err);
  case AF_EVAL_RULES:
    return af_eval_fit_rules(f, m, sp, err);
  case AF_EVAL_FUSION:
    return af_eval_fit_fusion(f, m, sp, err);
  case AF_EVAL_LEARNED:
    return af_eval_learned_fit(f, m, sp, threads, err);
  case AF_EVAL_TEXT:
    if (!m->emb)
      return af_error_set(err, AF_ERR_ARG, "%s: text method needs embeddings", m->name);
    return AF_OK;
  case AF_EVAL_CUSTOM:
    if (!m->fn)
      return af_error_set(err, AF_ERR_ARG, "%s: no scoring function", m->name);
    return AF_OK;
  case AF_EVAL_EASE:
    return af_ease_fit(&sp->train, &m->ease, &f->ease, err);
  case AF_EVAL_ITEMKNN:
    return fit_knn(f, m, sp, err);
  }
  return af_error_set(err, AF_ERR_ARG, "unknown evaluation method %d", (int)m->kind);
}

/* ---- scoring a batch ------------------------------------------------------------ */

/* rows (nq, N) = (mean of the query embeddings) . E^T, scaled by `scale`,
 * added to the rows when accumulate. */
static af_status text_mean_rows(const af_eval_method *m, const af_eval_split *sp, int64_t q0,
                                int64_t nq, float scale, int accumulate, float *rows,
                                af_error *err) {
  const int d = m->d;
  float *qv = af_calloc((size_t)nq * d, sizeof *qv, err); // (nq, d)
  if (!qv)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < nq; i++) {
    const int64_t q = q0 + i;
    const int64_t n = sp->q_off[q + 1] - sp->q_off[q];
    for (int64_t j = sp->q_off[q]; j < sp->q_off[q + 1]; j++) {
      const float *e = m->emb + (int64_t)sp->q_items[j] * d;
      for (int c = 0; c < d; c++)
        qv[i * d + c] += e[c];
    }
    for (int c = 0; c < d; c++)
      qv[i * d + c] /= (float)n;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, sp->N, d, scale, qv, d, m->emb, d,
              accumulate ? 1.0f : 0.0f, rows, sp->N);
  free(qv);
  return AF_OK;
}

/* rows (nq, N): max over the query items of their cosine. The items of
 * consecutive queries are stacked (up to `cap` rows) and scored by one SGEMM
 * into tmp (cap, N), then max-reduced per query. */
static af_status text_max_rows(const af_eval_method *m, const af_eval_split *sp, int64_t q0,
                               int64_t nq, float *rows, af_error *err) {
  const int32_t N = sp->N;
  const int d = m->d;
  int64_t cap = 256;
  for (int64_t q = q0; q < q0 + nq; q++)
    if (sp->q_off[q + 1] - sp->q_off[q] > cap)
      cap = sp->q_off[q + 1] - sp->q_off[q];
  float *qv = af_malloc((size_t)cap * d, sizeof *qv, err);  // (cap, d)
  float *tmp = af_malloc((size_t)cap * N, sizeof *tmp, err); // (cap, N)
  if (!qv || !tmp) {
    free(qv), free(tmp);
    return AF_ERR_NOMEM;
  }
  for (int64_t i0 = 0; i0 < nq;) {
    int64_t i1 = i0, nr = 0; /* queries [i0, i1) stacked into nr rows */
    while (i1 < nq && nr + (sp->q_off[q0 + i1 + 1] - sp->q_off[q0 + i1]) <= cap) {
      for (int64_t j = sp->q_off[q0 + i1]; j < sp->q_off[q0 + i1 + 1]; j++, nr++)
        memcpy(qv + nr * d, m->emb + (int64_t)sp->q_items[j] * d, sizeof *qv * (size_t)d);
      i1++;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, N, d, 1.0f, qv, d, m->emb, d,
                0.0f, tmp, N);
    int64_t r = 0;
    for (int64_t i = i0; i < i1; i++) {
      const int n = (int)(sp->q_off[q0 + i + 1] - sp->q_off[q0 + i]);
      float *row = rows + i * N;
      memcpy(row, tmp + r * N, sizeof *row * (size_t)N);
      for (int j = 1; j < n; j++) {
        const float *t = tmp + (r + j) * N;
        for (int32_t b = 0; b < N; b++)
          row[b] = t[b] > row[b] ? t[b] : row[b];
      }
      r += n;
    }
    i0 = i1;
  }
  free(qv), free(tmp);
  return AF_OK;
}

static void rules_row(const fitted *f, const int32_t *q, int nq, float *row) {
  for (int i = 0; i < nq; i++) {
    const int32_t a = q[i];
    for (int64_t r = f->r_off[a]; r < f->r_off[a + 1]; r++) {
      const int32_t *ante = f->r_ante + r * f->r_width;
      int ok = 1;
      for (int j = 1; j < f->r_width && ante[j] >= 0 && ok; j++) {
        /* q is ascending: binary search */
        int lo = 0, hi = nq;
        while (lo < hi) {
          int mid = (lo + hi) / 2;
          if (q[mid] < ante[j])
            lo = mid + 1;
          else
            hi = mid;
        }
        ok = lo < nq && q[lo] == ante[j];
      }
      if (ok && f->r_conf[r] > row[f->r_cons[r]])
        row[f->r_cons[r]] = f->r_conf[r];
    }
  }
}

static void itemcf_row(const fitted *f, const int32_t *q, int nq, float *row) {
  for (int i = 0; i < nq; i++)
    for (int64_t j = f->co.offsets[q[i]]; j < f->co.offsets[q[i] + 1]; j++)
      row[f->co.nbr[j]] += f->cf[j];
}

af_status af_eval_score_batch(const af_eval_method *m, const fitted *f, const af_eval_split *sp,
                              int64_t q0, int64_t nq, int threads, float *rows, af_error *err) {
  const int32_t N = sp->N;
  if (m->kind == AF_EVAL_LEARNED)
    return af_eval_learned_rows(m, f, sp, q0, nq, threads, rows, err);
  if (m->kind == AF_EVAL_TEXT)
    return m->text_max ? text_max_rows(m, sp, q0, nq, rows, err)
                       : text_mean_rows(m, sp, q0, nq, 1.0f, 0, rows, err);
  const int adaptive = m->kind == AF_EVAL_FUSION && m->fuse.text_alpha > 0;
  if (adaptive) {
    /* the text pools come from the dense cosine rows, which are then cleared */
    AF_TRY(text_mean_rows(m, sp, q0, nq, 1.0f, 0, rows, err));
  } else if (m->kind == AF_EVAL_FUSION && f->text_coef) {
    AF_TRY(text_mean_rows(m, sp, q0, nq, 1.0f, 0, rows, err));
    for (int64_t i = 0; i < nq; i++)
      for (int32_t b = 0; b < N; b++)
        rows[i * N + b] *= f->text_coef[b];
  } else
    memset(rows, 0, sizeof *rows * (size_t)nq * N);
  int failed = 0;
#pragma omp parallel num_threads(threads)
  {
    af_fuse_scratch *s = NULL;
    if (m->kind == AF_EVAL_FUSION && af_fuse_scratch_create(f->fuse, &s, NULL) != AF_OK) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(dynamic, 4)
    for (int64_t i = 0; i < nq; i++) {
      const int64_t q = q0 + i;
      const int32_t *qi = sp->q_items + sp->q_off[q];
      const int n = (int)(sp->q_off[q + 1] - sp->q_off[q]);
      float *row = rows + i * N;
      switch (m->kind) {
      case AF_EVAL_POPULARITY:
        memcpy(row, f->pop, sizeof *row * (size_t)N);
        break;
      case AF_EVAL_ITEMCF:
        itemcf_row(f, qi, n, row);
        break;
      case AF_EVAL_RULES:
        rules_row(f, qi, n, row);
        break;
      case AF_EVAL_FUSION:
        if (s && adaptive) {
          /* the query's text pool: its text_pool best non-query products */
          float tscore[AF_SCORE_MAX_K], pcos[AF_SCORE_MAX_K];
          int64_t tidx[AF_SCORE_MAX_K];
          int32_t pool[AF_SCORE_MAX_K];
          int np = m->fuse.text_pool < N - n ? m->fuse.text_pool : N - n;
          if (np < 0)
            np = 0;
          af_topk top;
          af_topk_init(&top, tscore, tidx, np, -INFINITY);
          if (np > 0) {
            for (int j = 0; j < n; j++)
              row[qi[j]] = -INFINITY;
            for (int32_t b = 0; b < N; b++)
              if (row[b] >= af_topk_threshold(&top) && row[b] > -INFINITY)
                af_topk_push(&top, row[b], b);
            af_topk_extract(&top, tidx, tscore, np);
          }
          for (int j = 0; j < np; j++)
            pool[j] = (int32_t)tidx[j], pcos[j] = tscore[j];
          memset(row, 0, sizeof *row * (size_t)N);
          const int32_t *touched;
          af_fuse_adaptive_scores(f->fuse, qi, n, pool, pcos, np, s, row, &touched);
        } else if (s) {
          const int32_t *touched;
          af_fuse_query_scores(f->fuse, qi, n, s, row, &touched);
        }
        break;
      case AF_EVAL_CUSTOM:
        m->fn(m->ctx, qi, n, row);
        break;
      case AF_EVAL_EASE:
        af_ease_query_scores(&f->ease, qi, n, row);
        break;
      case AF_EVAL_ITEMKNN:
        af_itemknn_query_scores(&f->knn, qi, n, row);
        break;
      default:
        break;
      }
    }
    af_fuse_scratch_free(s);
  }
  if (failed)
    return af_error_set(err, AF_ERR_NOMEM, "%s: out of memory", m->name);
  return AF_OK;
}

af_status af_eval_run(const af_eval_method *m, const af_eval_split *sp, int threads,
                      af_eval_result *out, af_error *err) {
  return af_eval_run_ranks(m, sp, threads, out, NULL, err);
}

af_status af_eval_run_ranks(const af_eval_method *m, const af_eval_split *sp, int threads,
                            af_eval_result *out, int64_t *ranks, af_error *err) {
  memset(out, 0, sizeof *out);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (threads <= 0)
    threads = omp_get_max_threads();
  fitted f;
  af_status st = af_eval_fit(&f, m, sp, threads, err);
  if (st != AF_OK) {
    af_eval_fitted_free(&f);
    return af_error_prefix(err, "evaluating %s: ", m->name);
  }
  const int32_t N = sp->N;
  out->modelled = f.ease.n;
  if (f.learned) {
    for (int k = 0; k < AF_EVAL_N_FEATURES; k++)
      out->weights[k] = f.learned->main.w[k], out->cold_weights[k] = f.learned->cold.w[k];
    out->train_pairs = f.learned->main.pairs, out->cold_pairs = f.learned->cold.pairs;
  }
  out->eligible = f.ease.n_eligible;
  int64_t *rank = af_malloc(BATCH, sizeof *rank, err);
  float *rows = af_malloc((size_t)BATCH * N, sizeof *rows, err); // (BATCH, N)
  if (!rank || !rows)
    st = AF_ERR_NOMEM;
  for (int64_t q0 = 0; q0 < sp->n_queries && st == AF_OK; q0 += BATCH) {
    int64_t nq = sp->n_queries - q0 < BATCH ? sp->n_queries - q0 : BATCH;
    if ((st = af_eval_score_batch(m, &f, sp, q0, nq, threads, rows, err)) != AF_OK)
      break;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < nq; i++) {
      const int64_t q = q0 + i;
      rank[i] = af_eval_rank(rows + i * N, m->popularity_ties ? f.pop : NULL, N, sp->hidden[q], sp->q_items + sp->q_off[q],
                             (int)(sp->q_off[q + 1] - sp->q_off[q]));
    }
    for (int64_t i = 0; i < nq; i++)
      af_eval_metrics_add(&out->group[sp->group[q0 + i]], rank[i]);
    if (ranks)
      memcpy(ranks + q0, rank, sizeof *rank * (size_t)nq);
  }
  for (int g = 0; g < AF_EVAL_N_GROUPS; g++)
    af_eval_metrics_finish(&out->group[g]);
  free(rank);
  free(rows);
  af_eval_fitted_free(&f);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  if (st != AF_OK)
    af_error_prefix(err, "evaluating %s: ", m->name);
  return st;
}
