/* Paired bootstrap of two methods' Recall@K difference (see eval.h). */
#include <stdlib.h>
#include <string.h>

#include "base/philox.h"
#include "affinity.h"

static int cmp_double(const void *pa, const void *pb) {
  const double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

/* Uniform index in [0, n) from word w of Philox block (seed, 4, block). */
static int64_t draw(uint64_t seed, uint64_t i, int64_t n) {
  uint32_t out[4];
  af_philox_block(seed, 4, i / 4, out);
  return (int64_t)(((uint64_t)out[i % 4] * (uint64_t)n) >> 32);
}

af_status af_eval_bootstrap(const int64_t *ra, const int64_t *rb, const unsigned char *group,
                            int g, int64_t n_queries, int K, int n_boot, uint64_t seed,
                            af_eval_interval *out, af_error *err) {
  memset(out, 0, sizeof *out);
  if (n_boot < 2 || K < 1)
    return af_error_set(err, AF_ERR_ARG, "bootstrap: need n_boot >= 2 and K >= 1 (got %d, %d)",
                        n_boot, K);
  signed char *d = af_malloc((size_t)n_queries + 1, sizeof *d, err); /* (n) per-query difference */
  double *means = af_malloc((size_t)n_boot, sizeof *means, err);      /* (n_boot) */
  if (!d || !means) {
    free(d), free(means);
    return AF_ERR_NOMEM;
  }
  int64_t n = 0, sum = 0;
  for (int64_t q = 0; q < n_queries; q++)
    if (!group || g < 0 || group[q] == g) {
      d[n] = (signed char)((ra[q] <= K) - (rb[q] <= K));
      sum += d[n++];
    }
  out->n = n;
  if (n == 0) {
    free(d), free(means);
    return AF_OK;
  }
  out->diff = (double)sum / (double)n;
  for (int b = 0; b < n_boot; b++) {
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
      s += d[draw(seed, (uint64_t)b * (uint64_t)n + (uint64_t)i, n)];
    means[b] = (double)s / (double)n;
  }
  qsort(means, (size_t)n_boot, sizeof *means, cmp_double);
  const double pos_lo = 0.025 * (n_boot - 1), pos_hi = 0.975 * (n_boot - 1);
  int64_t ilo = (int64_t)pos_lo, ihi = (int64_t)pos_hi;
  if ((double)ihi < pos_hi)
    ihi++;
  out->lo = means[ilo];
  out->hi = means[ihi];
  free(d), free(means);
  return AF_OK;
}
