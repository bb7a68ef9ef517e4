/* Item-CF top-k neighbours (see itemcf.h). */
#include "affinity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

af_status af_itemcf_measure_parse(const char *s, af_itemcf_measure *m, af_error *err) {
  if (s && strcmp(s, "cosine") == 0)
    *m = AF_ITEMCF_COSINE;
  else if (s && strcmp(s, "lift") == 0)
    *m = AF_ITEMCF_LIFT;
  else
    return af_error_set(err, AF_ERR_ARG, "unknown item-CF measure '%s' (cosine or lift)",
                        s ? s : "(null)");
  return AF_OK;
}

double af_itemcf_score(af_itemcf_measure measure, int64_t n, int64_t n_a, int64_t n_b, int64_t n_ab) {
  if (measure == AF_ITEMCF_LIFT)
    return (double)n_ab * (double)n / ((double)n_a * (double)n_b);
  return (double)n_ab / sqrt((double)n_a * (double)n_b);
}

/* a ranks before b: higher score, then lower index. */
static inline int better(double sa, int32_t ia, double sb, int32_t ib) {
  return sa > sb || (sa == sb && ia < ib);
}

af_status af_itemcf_topk(const af_cooccur *co, af_itemcf_measure measure, int k, int64_t min_count,
                         int32_t *nbr, double *score, af_error *err) {
  if (k < 1)
    return af_error_set(err, AF_ERR_ARG, "item-CF: k must be >= 1 (got %d)", k);
  if (min_count < co->min_count)
    return af_error_set(err, AF_ERR_ARG,
                        "item-CF: min_count %lld is below the co-occurrence table's %lld",
                        (long long)min_count, (long long)co->min_count);
#pragma omp parallel for schedule(dynamic, 64)
  for (int32_t a = 0; a < co->n_items; a++) {
    int32_t *rn = nbr + (int64_t)a * k;  // (k)
    double *rs = score + (int64_t)a * k; // (k)
    int filled = 0;
    /* Insertion into a sorted list of at most k: rows are short, k is small. */
    for (int64_t p = co->offsets[a]; p < co->offsets[a + 1]; p++) {
      if (co->count[p] < min_count)
        continue;
      int32_t b = co->nbr[p];
      double s = af_itemcf_score(measure, co->n_baskets, co->item_count[a], co->item_count[b],
                                 co->count[p]);
      if (filled == k && !better(s, b, rs[k - 1], rn[k - 1]))
        continue;
      int i = filled < k ? filled++ : k - 1;
      while (i > 0 && better(s, b, rs[i - 1], rn[i - 1])) {
        rs[i] = rs[i - 1];
        rn[i] = rn[i - 1];
        i--;
      }
      rs[i] = s;
      rn[i] = b;
    }
    for (int i = filled; i < k; i++) {
      rn[i] = -1;
      rs[i] = 0;
    }
  }
  return AF_OK;
}

af_status af_itemknn_build(const af_cooccur *co, int k, double shrink, int64_t min_count,
                           af_itemknn *out, af_error *err) {
  memset(out, 0, sizeof *out);
  if (k < 1 || !(shrink >= 0))
    return af_error_set(err, AF_ERR_ARG, "item-KNN: k must be >= 1 and shrink >= 0 (got %d, %g)",
                        k, shrink);
  if (min_count < co->min_count)
    return af_error_set(err, AF_ERR_ARG,
                        "item-KNN: min_count %lld is below the co-occurrence table's %lld",
                        (long long)min_count, (long long)co->min_count);
  const int32_t n = co->n_items;
  int32_t *nbr = af_malloc((size_t)n * k + 1, sizeof *nbr, err);    /* (n, k) */
  double *score = af_malloc((size_t)n * k + 1, sizeof *score, err); /* (n, k) */
  out->off = af_malloc((size_t)n + 1, sizeof *out->off, err);
  if (!nbr || !score || !out->off) {
    free(nbr), free(score);
    af_itemknn_free(out);
    return AF_ERR_NOMEM;
  }
#pragma omp parallel for schedule(dynamic, 64)
  for (int32_t a = 0; a < n; a++) {
    int32_t *rn = nbr + (int64_t)a * k; /* (k) sorted insertion, as af_itemcf_topk */
    double *rs = score + (int64_t)a * k;
    int filled = 0;
    for (int64_t p = co->offsets[a]; p < co->offsets[a + 1]; p++) {
      if (co->count[p] < min_count)
        continue;
      const int32_t b = co->nbr[p];
      const double s = co->count[p] / (sqrt((double)co->item_count[a] *
                                            (double)co->item_count[b]) + shrink);
      if (filled == k && !better(s, b, rs[k - 1], rn[k - 1]))
        continue;
      int i = filled < k ? filled++ : k - 1;
      for (; i > 0 && better(s, b, rs[i - 1], rn[i - 1]); i--)
        rs[i] = rs[i - 1], rn[i] = rn[i - 1];
      rs[i] = s, rn[i] = b;
    }
    for (int i = filled; i < k; i++)
      rn[i] = -1;
  }
  out->off[0] = 0;
  for (int32_t a = 0; a < n; a++) {
    int c = 0;
    while (c < k && nbr[(int64_t)a * k + c] >= 0)
      c++;
    out->off[a + 1] = out->off[a] + c;
  }
  out->nbr = af_malloc((size_t)out->off[n] + 1, sizeof *out->nbr, err);
  out->sim = af_malloc((size_t)out->off[n] + 1, sizeof *out->sim, err);
  if (!out->nbr || !out->sim) {
    free(nbr), free(score);
    af_itemknn_free(out);
    return AF_ERR_NOMEM;
  }
  for (int32_t a = 0; a < n; a++)
    for (int64_t p = out->off[a]; p < out->off[a + 1]; p++) {
      out->nbr[p] = nbr[(int64_t)a * k + (p - out->off[a])];
      out->sim[p] = (float)score[(int64_t)a * k + (p - out->off[a])];
    }
  out->n_items = n;
  free(nbr), free(score);
  return AF_OK;
}

void af_itemknn_free(af_itemknn *m) {
  free(m->off), free(m->nbr), free(m->sim);
  memset(m, 0, sizeof *m);
}

void af_itemknn_query_scores(const af_itemknn *m, const int32_t *query, int n_query, float *out) {
  for (int i = 0; i < n_query; i++)
    for (int64_t p = m->off[query[i]]; p < m->off[query[i] + 1]; p++)
      out[m->nbr[p]] += m->sim[p];
}
