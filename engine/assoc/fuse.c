/* Complements and substitutes from co-purchases and text (see fuse.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strmap.h"
#include "base/topk.h"

void af_fuse_default_options(af_fuse_options *opt) {
  opt->k = 10;
  opt->min_count = 2;
  opt->text_k = 20;
  opt->history_prior = 5.0;
  opt->text_min_cosine = 0.4;
  opt->sub_pool = 50;
  opt->sub_min_cosine = 0.6;
  opt->sub_max_lift = 1.0;
  opt->threads = 0;
  opt->text_alpha = 0.0;
  opt->text_beta = 4.0;
  opt->rank_k = 10;
  opt->text_mode = AF_FUSE_TEXT_SCALED;
  opt->warm_text_weight = 0.05;
  opt->query_history = 0;
  opt->text_pool = 100;
  opt->memory_limit = 0;
}

af_status af_fuse_check_options(const af_fuse_options *o, af_error *err) {
  if (o->k < 1 || o->k > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "k must be in [1, %d], got %d", AF_SCORE_MAX_K, o->k);
  if (o->min_count < 1)
    return af_error_set(err, AF_ERR_ARG, "min_count must be >= 1, got %lld",
                        (long long)o->min_count);
  if (o->text_k < 0 || o->text_k > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "text_k must be in [0, %d], got %d", AF_SCORE_MAX_K,
                        o->text_k);
  if (!isfinite(o->text_min_cosine))
    return af_error_set(err, AF_ERR_ARG, "text_min_cosine must be finite");
  if (!(o->history_prior >= 0) || !isfinite(o->history_prior))
    return af_error_set(err, AF_ERR_ARG, "history_prior must be a finite number >= 0");
  if (o->sub_pool < 0 || o->sub_pool > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "sub_pool must be in [0, %d], got %d", AF_SCORE_MAX_K,
                        o->sub_pool);
  if (!isfinite(o->sub_min_cosine) || !isfinite(o->sub_max_lift))
    return af_error_set(err, AF_ERR_ARG, "sub_min_cosine and sub_max_lift must be finite");
  if (o->threads < 0)
    return af_error_set(err, AF_ERR_ARG, "threads must be >= 0");
  if (!(o->text_alpha >= 0) || !isfinite(o->text_alpha))
    return af_error_set(err, AF_ERR_ARG, "text_alpha must be a finite number >= 0");
  if (!(o->text_beta > 0) || !isfinite(o->text_beta))
    return af_error_set(err, AF_ERR_ARG, "text_beta must be a finite number > 0");
  if (o->text_mode < AF_FUSE_TEXT_SCALED || o->text_mode > AF_FUSE_TEXT_MERGE)
    return af_error_set(err, AF_ERR_ARG, "text_mode must be 0, 1 or 2, got %d", o->text_mode);
  if (!isfinite(o->warm_text_weight))
    return af_error_set(err, AF_ERR_ARG, "warm_text_weight must be finite");
  if (o->rank_k < 0 || o->rank_k > 1000000)
    return af_error_set(err, AF_ERR_ARG, "rank_k must be in [0, 1000000], got %d", o->rank_k);
  if (o->text_pool < 0 || o->text_pool > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "text_pool must be in [0, %d], got %d", AF_SCORE_MAX_K,
                        o->text_pool);
  if (o->memory_limit < 0)
    return af_error_set(err, AF_ERR_ARG, "memory_limit must be >= 0 (0: the default), got %lld",
                        (long long)o->memory_limit);
  return AF_OK;
}

struct af_fuse_model {
  af_fuse_options opt;
  int64_t N;
  int d;
  const float *emb; /* (N, d) borrowed */
  int n_levels;
  const char *const *const *categories;
  af_cooccur co;    /* every pair (min_count 1): evidence columns */
  float *acf;       /* (co nnz) A[x, nbr]: item-CF cosine, 0 below opt.min_count */
  int64_t *t_off;   /* (N + 1) T rows */
  int32_t *t_idx;   /* (t_off[N]) */
  float *t_w;       /* (t_off[N]) */
  int64_t *tt_off;  /* (N + 1) T^T rows: column y of T */
  int32_t *tt_idx;  /* (tt_off[N]) */
  float *tt_w;      /* (tt_off[N]) */
  int pool_w;       /* text neighbours kept per product: max(sub_pool, text_pool) */
  int64_t *sub_nbr; /* (N, pool_w) text neighbours over all products, best first, or NULL */
  float *sub_cos;   /* (N, pool_w) */
  int has_evidence; /* some pair reaches min_count: the text term may be used */
};

struct af_fuse_scratch {
  int64_t N;
  float *u, *v;     /* (N) T-row mix of the query, then u A */
  int32_t *lu, *lv, *ls; /* (N) touched entries of u, v and out */
  unsigned char *mark; /* (N) out entry already listed */
  struct fpair { float f; int32_t b; } *pairs; /* (N) candidates sorted by F */
};

void af_fuse_model_free(af_fuse_model *m) {
  if (!m)
    return;
  af_cooccur_free(&m->co);
  free(m->acf);
  free(m->t_off);
  free(m->t_idx);
  free(m->t_w);
  free(m->tt_off);
  free(m->tt_idx);
  free(m->tt_w);
  free(m->sub_nbr);
  free(m->sub_cos);
  free(m);
}

static double history_weight(const af_fuse_options *o, int64_t n) {
  if (n <= 0)
    return 0.0;
  if (o->history_prior == 0)
    return 1.0;
  return (double)n / ((double)n + o->history_prior);
}

/* T rows from the text neighbours with history (nbr, cos: (N, tk), best
 * first): neighbours with cosine >= text_min_cosine share the back-off mass
 * beta = (1 - w) * cbar in proportion to their cosine, where cbar is their
 * cosine-weighted mean cosine; the product keeps 1 - beta when it has
 * history (0 otherwise). */
static af_status build_backoff(af_fuse_model *m, const int64_t *nbr, const float *cos, int tk,
                               af_error *err) {
  const int64_t N = m->N;
  m->t_off = af_malloc((size_t)N + 1, sizeof *m->t_off, err);
  m->t_idx = af_malloc((size_t)N * (tk + 1) + 1, sizeof *m->t_idx, err);
  m->t_w = af_malloc((size_t)N * (tk + 1) + 1, sizeof *m->t_w, err);
  m->tt_off = af_calloc((size_t)N + 1, sizeof *m->tt_off, err);
  if (!m->t_off || !m->t_idx || !m->t_w || !m->tt_off)
    return AF_ERR_NOMEM;
  const double cmin = m->opt.text_min_cosine > 0 ? m->opt.text_min_cosine : 0;
  int64_t nnz = 0;
  m->t_off[0] = 0;
  for (int64_t x = 0; x < N; x++) {
    const int64_t nx = m->co.item_count[x];
    double w = history_weight(&m->opt, nx);
    double sum = 0, sum2 = 0;
    for (int j = 0; j < tk; j++) {
      double c = cos[x * tk + j];
      if (nbr[x * tk + j] >= 0 && c >= cmin && c > 0) {
        sum += c;
        sum2 += c * c;
      }
    }
    double beta = sum > 0 ? (1 - w) * (sum2 / sum) : 0;
    if (nx > 0 && 1 - beta > 0) {
      m->t_idx[nnz] = (int32_t)x;
      m->t_w[nnz++] = (float)(1 - beta);
    }
    if (beta > 0)
      for (int j = 0; j < tk; j++) {
        double c = cos[x * tk + j];
        if (nbr[x * tk + j] >= 0 && c >= cmin && c > 0) {
          m->t_idx[nnz] = (int32_t)nbr[x * tk + j];
          m->t_w[nnz++] = (float)(beta * c / sum);
        }
      }
    m->t_off[x + 1] = nnz;
  }
  /* transpose: column y of T lists the rows x with T[x, y] != 0, ascending x */
  for (int64_t i = 0; i < nnz; i++)
    m->tt_off[m->t_idx[i] + 1]++;
  for (int64_t y = 0; y < N; y++)
    m->tt_off[y + 1] += m->tt_off[y];
  m->tt_idx = af_malloc((size_t)nnz + 1, sizeof *m->tt_idx, err);
  m->tt_w = af_malloc((size_t)nnz + 1, sizeof *m->tt_w, err);
  int64_t *fill = af_malloc((size_t)N + 1, sizeof *fill, err);
  if (!m->tt_idx || !m->tt_w || !fill) {
    free(fill);
    return AF_ERR_NOMEM;
  }
  memcpy(fill, m->tt_off, sizeof *fill * (size_t)N);
  for (int64_t x = 0; x < N; x++)
    for (int64_t i = m->t_off[x]; i < m->t_off[x + 1]; i++) {
      int64_t p = fill[m->t_idx[i]]++;
      m->tt_idx[p] = (int32_t)x;
      m->tt_w[p] = m->t_w[i];
    }
  free(fill);
  return AF_OK;
}

/* Text top-k of every product (excluding itself) against the products
 * with keep[y] != 0 (keep == NULL: all). The kept rows are packed into their
 * own index, so the cost is N x (kept) x d, not N x N x d. nbr, cos (N, k):
 * catalog rows, -1 past the end. */
static af_status text_neighbours(const af_fuse_model *m, const unsigned char *keep, int k,
                                 int64_t *nbr, float *cos, af_error *err) {
  const int64_t N = m->N;
  const int d = m->d;
  int64_t nk = 0;
  for (int64_t i = 0; i < N; i++)
    nk += !keep || keep[i];
  if (nk == 0 || k == 0) {
    for (int64_t i = 0; i < N * k; i++)
      nbr[i] = -1, cos[i] = -INFINITY;
    return AF_OK;
  }
  int64_t *rows = af_malloc((size_t)nk, sizeof *rows, err);      /* packed -> catalog row */
  int64_t *self = af_malloc((size_t)N, sizeof *self, err);       /* catalog row -> packed or -1 */
  float *base = keep ? af_malloc((size_t)nk * d, sizeof *base, err) : NULL; /* (nk, d) */
  af_score_index *ix = NULL;
  af_status st = rows && self && (base || !keep) ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK) {
    int64_t j = 0;
    for (int64_t i = 0; i < N; i++) {
      self[i] = -1;
      if (!keep || keep[i]) {
        if (keep)
          memcpy(base + j * d, m->emb + i * d, sizeof *base * (size_t)d);
        self[i] = j;
        rows[j++] = i;
      }
    }
    st = af_score_index_build(keep ? base : m->emb, nk, d, &ix, err);
  }
  af_score_options so = {.threads = m->opt.threads};
  if (st == AF_OK)
    st = af_score_index_search(ix, m->emb, N, self, NULL, k, -INFINITY, nbr, cos, &so, err);
  if (st == AF_OK)
    for (int64_t i = 0; i < N * k; i++)
      if (nbr[i] >= 0)
        nbr[i] = rows[nbr[i]];
  af_score_index_free(ix);
  free(rows), free(self), free(base);
  return st;
}

/* ---- memory budget ------------------------------------------------------------ */

/* Text neighbours kept per product by a model with substitutes (pool_w). */
static int64_t pool_width(const af_fuse_options *o, int64_t N) {
  int64_t sp = o->sub_pool < N - 1 ? o->sub_pool : N - 1;
  if (o->text_alpha > 0 && o->text_pool > sp)
    sp = o->text_pool < N - 1 ? o->text_pool : N - 1;
  return sp > 0 ? sp : 0;
}

/* Bytes af_fuse_model_build allocates besides the co-occurrence pairs: the
 * co-occurrence rows and transposed baskets, T and T^T, the text search
 * (packed index, neighbours) and, with substitutes, the text-neighbour pools. */
static int64_t model_bytes(const af_fuse_options *o, const af_fuse_input *in, int substitutes) {
  const double N = (double)in->N, d = in->d;
  const double tk = o->text_k < in->N - 1 ? o->text_k : (double)(in->N - 1);
  const double nnz = (double)in->baskets->offsets[in->baskets->n_baskets];
  double b = 48 * N + 8 * nnz;             /* co-occurrence rows, the baskets per item */
  b += 32 * N + 16 * N * (tk + 1);         /* T, T^T: offsets, (index, weight) */
  b += N * (4 * (d + 32) + 17 + 12 * tk);  /* text search: packed index, rows, nbr + cos */
  if (substitutes)
    b += 12 * N * (double)pool_width(o, in->N); /* the pools: (N, pool_w) nbr + cos */
  return b > 9e18 ? INT64_MAX : (int64_t)b;
}

/* Bytes af_fuse_run adds: (N, 2k) association rows twice (per product, then
 * packed) and each thread's scratch and dense scores. */
static int64_t run_bytes(const af_fuse_options *o, int64_t N) {
  int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
  double b = (double)N * (2.0 * 2 * o->k * sizeof(af_association) + 4 + 33.0 * threads);
  return b > 9e18 ? INT64_MAX : (int64_t)b;
}

static const char fuse_hint[] =
    "lower --sub-pool, --text-pool or --text-k (or --k), or raise --memory-limit";

/* The co-occurrence of every pair (min_count 1) within what the rest of the
 * model leaves of the limit; each stored pair entry also gets an A weight
 * (4 bytes beside cooccur's 8), so cooccur gets 8/12 of it. */
static af_status build_pairs(const af_baskets *bk, int64_t left, af_cooccur *co, af_error *err) {
  af_error e = {0};
  int64_t cap = left / 12 * 8;
  af_status st = af_cooccur_build_limited(bk, 1, cap > 0 ? cap : 1, co, &e);
  if (st == AF_ERR_LIMIT) {
    char a[32];
    return af_error_set(err, st,
                        "fusion: the co-occurrence of every pair bought together (at any count) "
                        "would need more than the %s the memory limit leaves for it; drop the "
                        "largest baskets, or raise --memory-limit",
                        af_format_bytes(left > 0 ? left : 0, a));
  }
  if (st != AF_OK && err)
    *err = e;
  return st;
}

static af_status build_model(const af_fuse_options *opt, const af_fuse_input *in,
                             int substitutes, int64_t extra, af_fuse_model **out, af_error *err) {
  *out = NULL;
  AF_TRY(af_fuse_check_options(opt, err));
  if (!in->baskets || in->baskets->n_items != in->N)
    return af_error_set(err, AF_ERR_ARG, "fusion: baskets have %d items but the catalog %lld rows",
                        in->baskets ? in->baskets->n_items : -1, (long long)in->N);
  if (in->N < 1 || in->d < 1 || !in->emb)
    return af_error_set(err, AF_ERR_ARG, "fusion: empty catalog or embeddings");
  const int64_t limit = af_memory_limit_or_default(opt->memory_limit);
  const int64_t need = model_bytes(opt, in, substitutes);
  const int64_t fixed = need > INT64_MAX - extra ? INT64_MAX : need + extra;
  char what[160];
  snprintf(what, sizeof what, "fusion (%lld products, %lld text neighbours each, %d complement "
           "rows)", (long long)in->N, (long long)(substitutes ? pool_width(opt, in->N) : 0),
           opt->k);
  AF_TRY(af_budget_check(fixed, limit, what, fuse_hint, err));
  af_fuse_model *m = af_calloc(1, sizeof *m, err);
  if (!m)
    return AF_ERR_NOMEM;
  m->opt = *opt;
  m->N = in->N;
  m->d = in->d;
  m->emb = in->emb;
  m->n_levels = in->n_category_levels;
  m->categories = in->categories;
  af_status st = build_pairs(in->baskets, limit - fixed, &m->co, err);
  if (st != AF_OK)
    goto fail;
  const int64_t nnz = m->co.offsets[m->N];
  m->acf = af_malloc((size_t)nnz + 1, sizeof *m->acf, err);
  if (!m->acf) {
    st = AF_ERR_NOMEM;
    goto fail;
  }
  for (int64_t x = 0; x < m->N; x++)
    for (int64_t i = m->co.offsets[x]; i < m->co.offsets[x + 1]; i++) {
      int32_t y = m->co.nbr[i];
      m->acf[i] = m->co.count[i] >= opt->min_count
                      ? (float)(m->co.count[i] /
                                sqrt((double)m->co.item_count[x] * (double)m->co.item_count[y]))
                      : 0.0f;
      m->has_evidence |= m->acf[i] > 0;
    }
  /* back-off neighbours: products with history only */
  int tk = opt->text_k;
  if (tk > m->N - 1)
    tk = (int)(m->N - 1);
  unsigned char *warm = af_malloc((size_t)m->N, 1, err);
  int64_t *nbr = af_malloc((size_t)m->N * tk + 1, sizeof *nbr, err);
  float *cos = af_malloc((size_t)m->N * tk + 1, sizeof *cos, err);
  if (!warm || !nbr || !cos) {
    free(warm), free(nbr), free(cos);
    st = AF_ERR_NOMEM;
    goto fail;
  }
  for (int64_t x = 0; x < m->N; x++)
    warm[x] = m->co.item_count[x] > 0;
  st = tk > 0 ? text_neighbours(m, warm, tk, nbr, cos, err) : AF_OK;
  if (st == AF_OK)
    st = build_backoff(m, nbr, cos, tk, err);
  free(warm), free(nbr), free(cos);
  if (st != AF_OK)
    goto fail;
  if (substitutes) {
    int sp = opt->sub_pool;
    if (sp > m->N - 1)
      sp = (int)(m->N - 1);
    m->opt.sub_pool = sp;
    if (opt->text_alpha > 0 && opt->text_pool > sp)
      sp = opt->text_pool < m->N - 1 ? opt->text_pool : (int)(m->N - 1);
    m->pool_w = sp;
    m->sub_nbr = af_malloc((size_t)m->N * sp + 1, sizeof *m->sub_nbr, err);
    m->sub_cos = af_malloc((size_t)m->N * sp + 1, sizeof *m->sub_cos, err);
    if (!m->sub_nbr || !m->sub_cos) {
      st = AF_ERR_NOMEM;
      goto fail;
    }
    if (sp > 0 && (st = text_neighbours(m, NULL, sp, m->sub_nbr, m->sub_cos, err)) != AF_OK)
      goto fail;
  }
  *out = m;
  return AF_OK;
fail:
  af_fuse_model_free(m);
  return st;
}

af_status af_fuse_model_build(const af_fuse_options *opt, const af_fuse_input *in,
                              int substitutes, af_fuse_model **out, af_error *err) {
  /* one query's scratch and dense scores beside the model */
  return build_model(opt, in, substitutes, 33 * (in->N > 0 ? in->N : 0), out, err);
}

af_status af_fuse_scratch_create(const af_fuse_model *m, af_fuse_scratch **out, af_error *err) {
  af_fuse_scratch *s = af_calloc(1, sizeof *s, err);
  if (!s)
    return AF_ERR_NOMEM;
  s->N = m->N;
  s->u = af_calloc((size_t)m->N, sizeof *s->u, err);
  s->v = af_calloc((size_t)m->N, sizeof *s->v, err);
  s->lu = af_malloc((size_t)m->N, sizeof *s->lu, err);
  s->lv = af_malloc((size_t)m->N, sizeof *s->lv, err);
  s->ls = af_malloc((size_t)m->N, sizeof *s->ls, err);
  s->mark = af_calloc((size_t)m->N, 1, err);
  s->pairs = af_malloc((size_t)m->N, sizeof *s->pairs, err);
  if (!s->u || !s->v || !s->lu || !s->lv || !s->ls || !s->mark || !s->pairs) {
    af_fuse_scratch_free(s);
    return AF_ERR_NOMEM;
  }
  *out = s;
  return AF_OK;
}

void af_fuse_scratch_free(af_fuse_scratch *s) {
  if (!s)
    return;
  free(s->u), free(s->v), free(s->lu), free(s->lv), free(s->ls), free(s->mark), free(s->pairs);
  free(s);
}

/* u = sum_q T[q,:]; v = u A; out += v T^T. Each stage walks only the entries
 * the previous one touched, in first-touch order (deterministic). */
int64_t af_fuse_query_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                             af_fuse_scratch *s, float *out, const int32_t **touched) {
  int64_t nu = 0, nv = 0, ns = 0;
  for (int i = 0; i < n_query; i++) {
    int32_t q = query[i];
    for (int64_t j = m->t_off[q]; j < m->t_off[q + 1]; j++) {
      int32_t x = m->t_idx[j];
      if (s->u[x] == 0)
        s->lu[nu++] = x;
      s->u[x] += m->t_w[j];
    }
  }
  for (int64_t i = 0; i < nu; i++) {
    int32_t x = s->lu[i];
    float ux = s->u[x];
    for (int64_t j = m->co.offsets[x]; j < m->co.offsets[x + 1]; j++) {
      if (m->acf[j] == 0)
        continue;
      int32_t y = m->co.nbr[j];
      if (s->v[y] == 0)
        s->lv[nv++] = y;
      s->v[y] += ux * m->acf[j];
    }
    s->u[x] = 0;
  }
  for (int64_t i = 0; i < nv; i++) {
    int32_t y = s->lv[i];
    float vy = s->v[y];
    for (int64_t j = m->tt_off[y]; j < m->tt_off[y + 1]; j++) {
      int32_t b = m->tt_idx[j];
      if (!s->mark[b]) {
        s->mark[b] = 1;
        s->ls[ns++] = b;
      }
      out[b] += vy * m->tt_w[j];
    }
    s->v[y] = 0;
  }
  for (int64_t i = 0; i < ns; i++)
    s->mark[s->ls[i]] = 0;
  *touched = s->ls;
  return ns;
}

double af_fuse_text_lambda(const af_fuse_model *m, int32_t b) {
  if (!m->has_evidence || m->opt.text_alpha <= 0)
    return 0.0;
  return m->opt.text_alpha / (1.0 + (double)m->co.item_count[b] / m->opt.text_beta);
}

/* query_history: mean over the query items of 1 / (1 + n_q / text_beta); else 1. */
static double query_factor(const af_fuse_model *m, const int32_t *query, int n_query) {
  if (!m->opt.query_history || n_query < 1)
    return 1.0;
  double s = 0;
  for (int i = 0; i < n_query; i++)
    s += 1.0 / (1.0 + (double)m->co.item_count[query[i]] / m->opt.text_beta);
  return s / n_query;
}

static int fpair_cmp(const void *pa, const void *pb) {
  const struct fpair *a = pa, *b = pb;
  if (a->f != b->f)
    return a->f > b->f ? -1 : 1;
  return (a->b > b->b) - (a->b < b->b);
}

/* Competition ranks of pairs[0, n) (sorted best first): out[b] = w / (k0 + rank). */
static void rank_scores(const struct fpair *p, int64_t n, double w, double k0, float *out) {
  int64_t r = 0;
  for (int64_t i = 0; i < n; i++) {
    if (i == 0 || p[i].f < p[i - 1].f)
      r = i + 1;
    out[p[i].b] = (float)(w / (k0 + (double)r));
  }
}

static int64_t merge_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                            const int32_t *pool, const float *pool_cos, int n_pool,
                            af_fuse_scratch *s, float *out, const int32_t **touched) {
  const int32_t *t;
  int64_t nt = af_fuse_query_scores(m, query, n_query, s, out, &t);
  for (int i = 0; i < n_query; i++)
    s->mark[query[i]] = 2; /* excluded */
  int32_t *list = s->lv;   /* free after af_fuse_query_scores */
  int64_t nl = 0;
  for (int64_t i = 0; i < nt; i++) {
    int32_t b = t[i];
    if (out[b] > 0 && s->mark[b] != 2) {
      s->mark[b] = 1;
      list[nl++] = b;
    } else {
      out[b] = 0;
    }
  }
  int64_t stride = 0;
  if (!pool && n_query == 1 && m->sub_nbr) {
    n_pool = m->pool_w;
    stride = (int64_t)query[0] * m->pool_w;
  } else if (!pool) {
    n_pool = 0;
  }
  if (n_pool > m->opt.text_pool)
    n_pool = m->opt.text_pool;
  const int text_on = m->has_evidence && m->opt.text_alpha > 0;
  for (int j = 0; j < n_pool; j++) {
    int32_t b = pool ? pool[j] : (int32_t)m->sub_nbr[stride + j];
    float c = pool ? pool_cos[j] : m->sub_cos[stride + j];
    if (b < 0)
      break;
    if (s->mark[b] == 2)
      continue;
    const int cold = m->co.item_count[b] == 0;
    if (cold && !text_on)
      continue;
    if (!s->mark[b]) {
      s->mark[b] = 1;
      list[nl++] = b;
    }
    out[b] += (float)((cold ? 1.0 : m->opt.warm_text_weight) * c);
  }
  /* warm candidates first, then cold, each sorted best first */
  int64_t nw = 0, nc = 0;
  for (int64_t i = 0; i < nl; i++) {
    int32_t b = list[i];
    if (out[b] > 0 && m->co.item_count[b] > 0)
      s->pairs[nw++] = (struct fpair){out[b], b};
  }
  for (int64_t i = 0; i < nl; i++) {
    int32_t b = list[i];
    if (out[b] > 0 && m->co.item_count[b] == 0 && text_on)
      s->pairs[nw + nc++] = (struct fpair){out[b], b};
    out[b] = 0;
    s->mark[b] = 0;
  }
  qsort(s->pairs, (size_t)nw, sizeof *s->pairs, fpair_cmp);
  qsort(s->pairs + nw, (size_t)nc, sizeof *s->pairs, fpair_cmp);
  rank_scores(s->pairs, nw, 1.0, m->opt.rank_k, out);
  rank_scores(s->pairs + nw, nc, m->opt.text_alpha * query_factor(m, query, n_query),
              m->opt.rank_k, out);
  for (int i = 0; i < n_query; i++)
    s->mark[query[i]] = 0;
  *touched = list;
  return nl;
}

/* F of the query; then, for the candidates in the text pool, the mixture
 * (1 - rho_b) F + rho_b text, rho_b = min(1, lambda_b), with the text term
 * scaled to the query's largest F (AF_FUSE_TEXT_SCALED) or both terms as
 * reciprocal competition ranks (AF_FUSE_TEXT_RANKS); or the two-list merge
 * (AF_FUSE_TEXT_MERGE, merge_scores). */
int64_t af_fuse_adaptive_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                                const int32_t *pool, const float *pool_cos, int n_pool,
                                af_fuse_scratch *s, float *out, const int32_t **touched) {
  if (m->opt.text_mode == AF_FUSE_TEXT_MERGE)
    return merge_scores(m, query, n_query, pool, pool_cos, n_pool, s, out, touched);
  const int32_t *t;
  int64_t nt = af_fuse_query_scores(m, query, n_query, s, out, &t);
  const int ranks = m->opt.text_mode == AF_FUSE_TEXT_RANKS;
  const double k0 = m->opt.rank_k;
  for (int i = 0; i < n_query; i++)
    s->mark[query[i]] = 2; /* excluded */
  int64_t np = 0;
  double fmax = 0;
  for (int64_t i = 0; i < nt; i++) {
    int32_t b = t[i];
    if (out[b] > 0 && s->mark[b] != 2) {
      s->pairs[np++] = (struct fpair){out[b], b};
      fmax = out[b] > fmax ? out[b] : fmax;
    }
    out[b] = 0;
  }
  int64_t ns = 0, r = 0;
  if (ranks)
    qsort(s->pairs, (size_t)np, sizeof *s->pairs, fpair_cmp);
  for (int64_t i = 0; i < np; i++) {
    int32_t b = s->pairs[i].b;
    if (ranks && (i == 0 || s->pairs[i].f < s->pairs[i - 1].f))
      r = i + 1;
    out[b] = ranks ? (float)(1.0 / (k0 + (double)r)) : s->pairs[i].f;
    s->mark[b] = 1;
    s->ls[ns++] = b;
  }
  int64_t stride = 0;
  if (!pool && n_query == 1 && m->sub_nbr) {
    n_pool = m->pool_w;
    stride = (int64_t)query[0] * m->pool_w;
  } else if (!pool) {
    n_pool = 0;
  }
  if (n_pool > m->opt.text_pool)
    n_pool = m->opt.text_pool;
#define POOL_B(j) (pool ? pool[j] : (int32_t)m->sub_nbr[stride + (j)])
#define POOL_C(j) (pool ? pool_cos[j] : m->sub_cos[stride + (j)])
  while (n_pool > 0 && POOL_B(n_pool - 1) < 0)
    n_pool--;
  if (m->has_evidence && m->opt.text_alpha > 0 && n_pool > 0) {
    const double c_first = POOL_C(0), c_last = POOL_C(n_pool - 1);
    const double fref = fmax > 0 ? fmax : 1.0;
    const double qf = query_factor(m, query, n_query);
    float prev = 0;
    r = 0;
    for (int j = 0; j < n_pool; j++) {
      int32_t b = POOL_B(j);
      float c = POOL_C(j);
      if (j == 0 || c < prev)
        r = j + 1;
      prev = c;
      if (s->mark[b] == 2)
        continue;
      double lam = af_fuse_text_lambda(m, b) * qf;
      if (!(lam > 0))
        continue;
      if (!s->mark[b]) {
        s->mark[b] = 1;
        s->ls[ns++] = b;
      }
      if (ranks) {
        double rho = lam < 1 ? lam : 1;
        out[b] = (float)((1 - rho) * out[b] + rho / (k0 + (double)r));
      } else {
        double rho = lam < 1 ? lam : 1;
        double tn = c_first > c_last ? (c - c_last) / (c_first - c_last) : 1.0;
        out[b] = (float)((1 - rho) * out[b] + rho * fref * tn);
      }
    }
  }
#undef POOL_B
#undef POOL_C
  for (int64_t i = 0; i < ns; i++)
    s->mark[s->ls[i]] = 0;
  for (int i = 0; i < n_query; i++)
    s->mark[query[i]] = 0;
  *touched = s->ls;
  return ns;
}

/* ---- whole catalog ----------------------------------------------------------- */

static int same_category(const af_fuse_model *m, int64_t a, int64_t b) {
  for (int l = 0; l < m->n_levels; l++) {
    const char *ca = m->categories[l][a], *cb = m->categories[l][b];
    if (ca && cb && ca[0] && cb[0])
      return strcmp(ca, cb) == 0;
  }
  return 1;
}

static float text_cosine(const af_fuse_model *m, int64_t a, int64_t b) {
  const float *x = m->emb + a * m->d, *y = m->emb + b * m->d;
  double s = 0;
  for (int i = 0; i < m->d; i++)
    s += (double)x[i] * y[i];
  return (float)s;
}

static void fill_evidence(const af_fuse_model *m, af_association *r) {
  int64_t n = af_cooccur_count(&m->co, r->product, r->related);
  r->count = n;
  r->lift = n > 0 ? (double)n * (double)m->co.n_baskets /
                        ((double)m->co.item_count[r->product] * (double)m->co.item_count[r->related])
                  : NAN;
  r->cosine = text_cosine(m, r->product, r->related);
}

/* Rows of product a into rows (capacity 2k): complements then substitutes. */
static int product_rows(const af_fuse_model *m, int32_t a, af_fuse_scratch *s, float *dense,
                        af_association *rows) {
  const int k = m->opt.k;
  float tscore[AF_SCORE_MAX_K];
  int64_t tidx[AF_SCORE_MAX_K];
  af_topk top;
  af_topk_init(&top, tscore, tidx, k, -INFINITY);
  const int32_t *touched;
  int64_t nt = m->opt.text_alpha > 0
                   ? af_fuse_adaptive_scores(m, &a, 1, NULL, NULL, 0, s, dense, &touched)
                   : af_fuse_query_scores(m, &a, 1, s, dense, &touched);
  for (int64_t i = 0; i < nt; i++) {
    int32_t b = touched[i];
    if (b != a && dense[b] > 0 && dense[b] >= af_topk_threshold(&top))
      af_topk_push(&top, dense[b], b);
  }
  for (int64_t i = 0; i < nt; i++)
    dense[touched[i]] = 0;
  af_topk_extract(&top, tidx, tscore, k);
  int n = 0;
  for (int j = 0; j < k && tidx[j] >= 0; j++) {
    af_association *r = &rows[n++];
    r->product = a;
    r->related = (int32_t)tidx[j];
    r->type = AF_ASSOC_COMPLEMENT;
    r->score = tscore[j];
    fill_evidence(m, r);
  }
  int ns = 0;
  const int sp = m->opt.sub_pool, pw = m->pool_w;
  for (int j = 0; j < sp && ns < k; j++) {
    int64_t b = m->sub_nbr[(int64_t)a * pw + j];
    float c = m->sub_cos[(int64_t)a * pw + j];
    if (b < 0 || c < m->opt.sub_min_cosine)
      break; /* best first: the rest are lower */
    if (!same_category(m, a, b))
      continue;
    af_association r = {a, (int32_t)b, AF_ASSOC_SUBSTITUTE, c, 0, NAN, c};
    fill_evidence(m, &r);
    r.cosine = c;
    if (r.count > 0 && !(r.lift <= m->opt.sub_max_lift))
      continue;
    rows[n++] = r;
    ns++;
  }
  return n;
}

af_status af_fuse_run(const af_fuse_options *opt, const af_fuse_input *in, af_fuse_result *out,
                      af_error *err) {
  memset(out, 0, sizeof *out);
  af_fuse_model *m = NULL;
  AF_TRY(build_model(opt, in, 1, run_bytes(opt, in->N), &m, err));
  const int64_t N = in->N;
  const int per = 2 * opt->k;
  af_association *rows = af_malloc((size_t)N * per, sizeof *rows, err);
  int *n_rows = af_calloc((size_t)N, sizeof *n_rows, err);
  af_status st = rows && n_rows ? AF_OK : AF_ERR_NOMEM;
  int nt = opt->threads > 0 ? opt->threads : 0;
#pragma omp parallel num_threads(nt > 0 ? nt : omp_get_max_threads()) if (st == AF_OK)
  {
    af_fuse_scratch *s = NULL;
    float *dense = NULL;
    af_error terr = {0};
    int ok = st == AF_OK && af_fuse_scratch_create(m, &s, &terr) == AF_OK &&
             (dense = calloc((size_t)N, sizeof *dense)) != NULL;
#pragma omp for schedule(dynamic, 64)
    for (int64_t a = 0; a < N; a++)
      if (ok)
        n_rows[a] = product_rows(m, (int32_t)a, s, dense, rows + a * per);
    if (!ok) {
#pragma omp critical(af_fuse_err)
      st = AF_ERR_NOMEM;
    }
    af_fuse_scratch_free(s);
    free(dense);
  }
  if (st != AF_OK) {
    af_error_set(err, st, "fusion: out of memory");
  } else {
    int64_t total = 0;
    for (int64_t a = 0; a < N; a++)
      total += n_rows[a];
    out->rows = af_malloc((size_t)total + 1, sizeof *out->rows, err);
    if (!out->rows) {
      st = AF_ERR_NOMEM;
    } else {
      for (int64_t a = 0; a < N; a++)
        for (int j = 0; j < n_rows[a]; j++)
          out->rows[out->n++] = rows[a * per + j];
    }
  }
  free(rows);
  free(n_rows);
  af_fuse_model_free(m);
  return st;
}

void af_fuse_result_free(af_fuse_result *r) {
  free(r->rows);
  memset(r, 0, sizeof *r);
}

af_status af_fuse_write_csv(const char *path, const char *const *ids, const char *const *names,
                            const af_fuse_result *r, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  fputs("product_id,product,related_id,related,type,score,count,lift,cosine\n", f);
  for (int64_t i = 0; i < r->n; i++) {
    const af_association *a = &r->rows[i];
    af_write_csv_field(f, ids[a->product]);
    fputc(',', f);
    af_write_csv_field(f, names[a->product]);
    fputc(',', f);
    af_write_csv_field(f, ids[a->related]);
    fputc(',', f);
    af_write_csv_field(f, names[a->related]);
    fprintf(f, ",%s,%.6g,%lld,", a->type == AF_ASSOC_COMPLEMENT ? "complement" : "substitute",
            a->score, (long long)a->count);
    if (a->count > 0)
      fprintf(f, "%.6g", a->lift);
    fprintf(f, ",%.6g\n", a->cosine);
  }
  return af_atomic_fclose(f, tmp, path, err);
}

af_status af_fuse_align_embeddings(const char *source, const char *const *emb_ids,
                                   const float *emb, int64_t n_emb, int d,
                                   const char *const *ids, int64_t n_catalog, float *out,
                                   af_error *err) {
  af_strmap *map = NULL;
  AF_TRY(af_strmap_create((size_t)n_emb, &map, err));
  af_status st = AF_OK;
  char *id = NULL;
  size_t id_cap = 0;
  for (int64_t i = 0; i < n_emb && st == AF_OK; i++) {
    /* the one id rule: the file's ids normalised as the catalog's are (a file
     * from an older `affinity embed` may hold them verbatim) */
    size_t l = strlen(emb_ids[i]);
    if (l + 1 > id_cap) {
      char *nb = af_realloc(id, l + 1, 1, err);
      if (!nb) {
        st = AF_ERR_NOMEM;
        break;
      }
      id = nb, id_cap = l + 1;
    }
    memcpy(id, emb_ids[i], l + 1);
    l = af_normalize_ws(id);
    int64_t existing;
    st = af_strmap_put(map, id, l, i, &existing, NULL, err);
    if (st == AF_OK && existing >= 0)
      st = af_error_set(err, AF_ERR_FORMAT, "%s: id '%s' appears twice (rows %lld and %lld)",
                        source, emb_ids[i], (long long)existing, (long long)i);
  }
  for (int64_t r = 0; r < n_catalog && st == AF_OK; r++) {
    int64_t i = af_strmap_get(map, ids[r], strlen(ids[r]));
    if (i < 0) {
      st = af_error_set(err, AF_ERR_FORMAT,
                        "%s: no embedding for catalog id '%s' (catalog row %lld); re-run "
                        "`affinity embed` on this catalog",
                        source, ids[r], (long long)r + 1);
      break;
    }
    const float *x = emb + i * d;
    float *y = out + r * d;
    double nn = 0;
    for (int c = 0; c < d; c++)
      nn += (double)x[c] * x[c];
    double inv = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
    for (int c = 0; c < d; c++)
      y[c] = (float)(x[c] * inv);
  }
  free(id);
  af_strmap_free(map);
  return st;
}

af_status af_fuse_text_mode_parse(const char *name, int *mode, af_error *err) {
  if (!name || strcmp(name, "scaled") == 0)
    *mode = AF_FUSE_TEXT_SCALED;
  else if (strcmp(name, "ranks") == 0)
    *mode = AF_FUSE_TEXT_RANKS;
  else if (strcmp(name, "merge") == 0)
    *mode = AF_FUSE_TEXT_MERGE;
  else
    return af_error_set(err, AF_ERR_ARG, "--text-mode: expected scaled, ranks or merge, got '%s'",
                        name);
  return AF_OK;
}
