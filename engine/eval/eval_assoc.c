/* The learned ranker's complements of every product (see affinity.h,
 * af_eval_learned_complements): each catalog product is a one-item query. */
#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/topk.h"
#include "eval/eval_internal.h"

enum { BATCH = 128, MAX_K = 1000 };

/* sp: train = a copy of baskets; query i = {i} (hidden i: never ranked). */
static af_status one_item_queries(const af_baskets *b, af_eval_split *sp, af_error *err) {
  const int32_t N = b->n_items;
  sp->N = N;
  AF_TRY(af_baskets_from_arrays(b->n_baskets, N, b->offsets, b->items, &sp->train, err));
  sp->cold = af_calloc((size_t)N + 1, 1, err);
  sp->q_off = af_malloc((size_t)N + 1, sizeof *sp->q_off, err);
  sp->q_items = af_malloc((size_t)N + 1, sizeof *sp->q_items, err);
  sp->hidden = af_malloc((size_t)N + 1, sizeof *sp->hidden, err);
  sp->q_basket = af_malloc((size_t)N + 1, sizeof *sp->q_basket, err);
  sp->group = af_calloc((size_t)N + 1, 1, err);
  if (!sp->cold || !sp->q_off || !sp->q_items || !sp->hidden || !sp->q_basket || !sp->group)
    return AF_ERR_NOMEM;
  for (int32_t i = 0; i <= N; i++)
    sp->q_off[i] = i;
  for (int32_t i = 0; i < N; i++)
    sp->q_items[i] = sp->hidden[i] = i, sp->q_basket[i] = i;
  sp->n_queries = N;
  return AF_OK;
}

/* related, score (k): the k best of row (N) above -FLT_MAX (the pool). */
static void best_of(const float *row, int32_t N, int k, int32_t *related, float *score) {
  float sc[MAX_K];
  int64_t idx[MAX_K];
  af_topk top;
  af_topk_init(&top, sc, idx, k, -FLT_MAX);
  for (int32_t b = 0; b < N; b++)
    if (row[b] > -FLT_MAX && row[b] >= af_topk_threshold(&top))
      af_topk_push(&top, row[b], b);
  const int n = top.size;
  af_topk_extract(&top, idx, sc, n);
  for (int i = 0; i < k; i++)
    related[i] = i < n ? (int32_t)idx[i] : -1, score[i] = i < n ? sc[i] : 0;
}

af_status af_eval_learned_complements(const af_eval_method *m, const af_baskets *baskets, int k,
                                      int threads, int32_t *related, float *score,
                                      af_error *err) {
  if (m->kind != AF_EVAL_LEARNED || k < 1 || k > MAX_K)
    return af_error_set(err, AF_ERR_ARG, "learned complements: a LEARNED method and k in [1, %d]",
                        MAX_K);
  if (threads <= 0)
    threads = omp_get_max_threads();
  af_eval_split sp = {0};
  af_eval_fitted f = {0};
  const int32_t N = baskets->n_items;
  float *rows = af_malloc((size_t)BATCH * N, sizeof *rows, err); /* (BATCH, N) */
  float *blk = af_malloc((size_t)AF_EVAL_LEARNED_BLOCKS * BATCH * N, sizeof *blk, err); /* scratch */
  af_status st = rows && blk ? one_item_queries(baskets, &sp, err) : AF_ERR_NOMEM;
  if (st == AF_OK)
    st = af_eval_fit(&f, m, &sp, threads, err);
  for (int64_t q0 = 0; st == AF_OK && q0 < N; q0 += BATCH) {
    const int64_t nq = N - q0 < BATCH ? N - q0 : BATCH;
    if ((st = af_eval_learned_rows_in(m, &f, &sp, q0, nq, threads, rows, blk, err)) != AF_OK)
      break;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < nq; i++)
      best_of(rows + i * N, N, k, related + (q0 + i) * k, score + (q0 + i) * k);
  }
  af_eval_fitted_free(&f);
  af_eval_split_free(&sp);
  free(rows), free(blk);
  return st;
}

af_status af_eval_learned_query(const af_eval_method *m, const af_baskets *baskets,
                                const int32_t *items, int n, int threads, float *scores,
                                af_error *err) {
  if (m->kind != AF_EVAL_LEARNED || n < 1)
    return af_error_set(err, AF_ERR_ARG, "learned query: a LEARNED method and >= 1 item");
  if (threads <= 0)
    threads = omp_get_max_threads();
  const int32_t N = baskets->n_items;
  af_eval_split sp = {0};
  af_eval_fitted f = {0};
  sp.N = N;
  af_status st = af_baskets_from_arrays(baskets->n_baskets, N, baskets->offsets, baskets->items,
                                        &sp.train, err);
  sp.cold = st == AF_OK ? af_calloc((size_t)N + 1, 1, err) : NULL;
  sp.q_off = sp.cold ? af_malloc(2, sizeof *sp.q_off, err) : NULL;
  sp.q_items = sp.q_off ? af_malloc((size_t)n, sizeof *sp.q_items, err) : NULL;
  sp.hidden = sp.q_items ? af_malloc(1, sizeof *sp.hidden, err) : NULL;
  sp.q_basket = sp.hidden ? af_calloc(1, sizeof *sp.q_basket, err) : NULL;
  sp.group = sp.q_basket ? af_calloc(1, 1, err) : NULL;
  if (st == AF_OK && !sp.group)
    st = AF_ERR_NOMEM;
  for (int i = 0; st == AF_OK && i < n; i++) {
    if (items[i] < 0 || items[i] >= N || (i > 0 && items[i] <= items[i - 1]))
      st = af_error_set(err, AF_ERR_ARG, "learned query: items must be ascending rows < %d",
                        (int)N);
    else
      sp.q_items[i] = items[i];
  }
  if (st == AF_OK) {
    sp.q_off[0] = 0, sp.q_off[1] = n, sp.hidden[0] = items[0], sp.n_queries = 1;
    st = af_eval_fit(&f, m, &sp, threads, err);
  }
  if (st == AF_OK)
    st = af_eval_learned_rows(m, &f, &sp, 0, 1, threads, scores, err);
  af_eval_fitted_free(&f);
  af_eval_split_free(&sp);
  return st;
}
