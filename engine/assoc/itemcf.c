/* Item-CF top-k neighbours (see itemcf.h). */
#include "affinity.h"

#include <math.h>
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
