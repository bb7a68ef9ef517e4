/* EASE complements for `affinity associate` (see ease.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/topk.h"

enum { MAX_K = 1000 }; /* associate's --k limit */

/* Product a's EASE complements into rows (capacity k): best first. */
static int complements(const af_ease_model *m, const af_cooccur *co, int32_t a, int k,
                       const float *emb, int d, af_association *rows) {
  const int32_t la = m->local[a];
  if (la < 0)
    return 0;
  float sc[MAX_K];
  int64_t idx[MAX_K];
  af_topk top;
  af_topk_init(&top, sc, idx, k, 0.0f);
  const float *row = m->B + (int64_t)la * m->n; /* (n) */
  for (int64_t j = 0; j < m->n; j++)
    if (row[j] > 0 && row[j] >= af_topk_threshold(&top))
      af_topk_push(&top, row[j], m->items[j]);
  const int n = top.size;
  af_topk_extract(&top, idx, sc, n);
  for (int i = 0; i < n; i++) {
    const int32_t b = (int32_t)idx[i];
    const int64_t c = af_cooccur_count(co, a, b);
    double cos = 0;
    for (int t = 0; emb && t < d; t++)
      cos += (double)emb[(int64_t)a * d + t] * emb[(int64_t)b * d + t];
    rows[i] = (af_association){a, b, AF_ASSOC_COMPLEMENT, sc[i], c,
                               c > 0 ? (double)c * (double)co->n_baskets /
                                           ((double)co->item_count[a] * (double)co->item_count[b])
                                     : NAN,
                               (float)cos};
  }
  return n;
}

af_status af_ease_complements(const af_ease_model *m, const af_baskets *baskets, int k,
                              const float *emb, int d, af_fuse_result *res, af_error *err) {
  if (k < 1 || k > MAX_K)
    return af_error_set(err, AF_ERR_ARG, "EASE complements: k must be in [1, %d], got %d",
                        MAX_K, k);
  af_cooccur co = {0};
  AF_TRY(af_cooccur_build(baskets, 1, &co, err));
  int64_t n_sub = 0;
  for (int64_t i = 0; i < res->n; i++)
    n_sub += res->rows[i].type == AF_ASSOC_SUBSTITUTE;
  af_association *out = af_malloc((size_t)m->N * k + (size_t)n_sub + 1, sizeof *out, err);
  if (!out) {
    af_cooccur_free(&co);
    return AF_ERR_NOMEM;
  }
  int64_t n = 0, i = 0;
  for (int32_t a = 0; a < m->N; a++) { /* res is ordered by product */
    n += complements(m, &co, a, k, emb, d, out + n);
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
