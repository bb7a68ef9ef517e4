/* Complement rows from another scorer for `affinity associate` (EASE, or the
 * learned ranker through af_fuse_replace_complements). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/topk.h"

enum { MAX_K = 1000 }; /* associate's --k limit */

/* Product a's row of complements (related (k), -1 padded) as associations. */
static int rows_of(const af_cooccur *co, int32_t a, int k, const int32_t *related,
                   const float *score, const float *emb, int d, af_association *rows) {
  int n = 0;
  for (int i = 0; i < k && related[i] >= 0; i++, n++) {
    const int32_t b = related[i];
    const int64_t c = af_cooccur_count(co, a, b);
    double cos = 0;
    for (int t = 0; emb && t < d; t++)
      cos += (double)emb[(int64_t)a * d + t] * emb[(int64_t)b * d + t];
    rows[i] = (af_association){a, b, AF_ASSOC_COMPLEMENT, score[i], c,
                               c > 0 ? (double)c * (double)co->n_baskets /
                                           ((double)co->item_count[a] * (double)co->item_count[b])
                                     : NAN,
                               (float)cos};
  }
  return n;
}

af_status af_fuse_replace_complements(const af_baskets *baskets, int k, const int32_t *related,
                                      const float *score, const float *emb, int d,
                                      af_fuse_result *res, af_error *err) {
  af_cooccur co = {0};
  AF_TRY(af_cooccur_build(baskets, 1, &co, err));
  const int32_t N = baskets->n_items;
  int64_t n_sub = 0;
  for (int64_t i = 0; i < res->n; i++)
    n_sub += res->rows[i].type == AF_ASSOC_SUBSTITUTE;
  af_association *out = af_malloc((size_t)N * k + (size_t)n_sub + 1, sizeof *out, err);
  if (!out) {
    af_cooccur_free(&co);
    return AF_ERR_NOMEM;
  }
  int64_t n = 0, i = 0;
  for (int32_t a = 0; a < N; a++) { /* res is ordered by product */
    n += rows_of(&co, a, k, related + (int64_t)a * k, score + (int64_t)a * k, emb, d, out + n);
    for (; i < res->n && res->rows[i].product <= a; i++)
      if (res->rows[i].product == a && res->rows[i].type == AF_ASSOC_SUBSTITUTE)
        out[n++] = res->rows[i];
  }
  af_cooccur_free(&co);
  free(res->rows);
  res->rows = out;
  res->n = n;
  return AF_OK;
}

/* Product a's k best modelled candidates with B[a, b] > 0 into related, score (k). */
static void ease_row(const af_ease_model *m, int32_t a, int k, int32_t *related, float *score) {
  float sc[MAX_K];
  int64_t idx[MAX_K];
  af_topk top;
  af_topk_init(&top, sc, idx, k, 0.0f);
  const int32_t la = m->local[a];
  const float *row = la >= 0 ? m->B + (int64_t)la * m->n : NULL; /* (n) */
  for (int64_t j = 0; row && j < m->n; j++)
    if (row[j] > 0 && row[j] >= af_topk_threshold(&top))
      af_topk_push(&top, row[j], m->items[j]);
  const int n = top.size;
  af_topk_extract(&top, idx, sc, n);
  for (int i = 0; i < k; i++) {
    related[i] = i < n ? (int32_t)idx[i] : -1;
    score[i] = i < n ? sc[i] : 0;
  }
}

af_status af_ease_complements(const af_ease_model *m, const af_baskets *baskets, int k,
                              const float *emb, int d, af_fuse_result *res, af_error *err) {
  if (k < 1 || k > MAX_K)
    return af_error_set(err, AF_ERR_ARG, "EASE complements: k must be in [1, %d], got %d", MAX_K,
                        k);
  int32_t *related = af_malloc((size_t)m->N * k + 1, sizeof *related, err); /* (N, k) */
  float *score = af_malloc((size_t)m->N * k + 1, sizeof *score, err);       /* (N, k) */
  af_status st = related && score ? AF_OK : AF_ERR_NOMEM;
  for (int32_t a = 0; st == AF_OK && a < m->N; a++)
    ease_row(m, a, k, related + (int64_t)a * k, score + (int64_t)a * k);
  if (st == AF_OK)
    st = af_fuse_replace_complements(baskets, k, related, score, emb, d, res, err);
  free(related), free(score);
  return st;
}
