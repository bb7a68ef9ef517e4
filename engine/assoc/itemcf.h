/* Item-based collaborative filtering on co-occurrence counts.
 *
 * For every item a, the top-k neighbours b != a with count(a, b) >= min_count,
 * scored by
 *   cosine: count(a, b) / sqrt(count(a) count(b))
 *   lift:   count(a, b) n / (count(a) count(b))
 * highest first; equal scores are broken by the lower item index. Rows with
 * fewer than k neighbours are padded with index -1 and score 0. */
#ifndef AF_ITEMCF_H
#define AF_ITEMCF_H

#include <stdint.h>

#include "assoc/cooccur.h"
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { AF_ITEMCF_COSINE = 0, AF_ITEMCF_LIFT = 1 } af_itemcf_measure;

/* Parses "cosine" / "lift". */
af_status af_itemcf_measure_parse(const char *s, af_itemcf_measure *m, af_error *err);

/* nbr: (n_items, k) neighbour indices; score: (n_items, k) scores. Uses the
 * pairs stored in co (built with co->min_count <= min_count). */
af_status af_itemcf_topk(const af_cooccur *co, af_itemcf_measure measure, int k, int64_t min_count,
                         int32_t *nbr, double *score, af_error *err);

/* Score of the pair under measure, from counts (n = baskets). */
double af_itemcf_score(af_itemcf_measure measure, int64_t n, int64_t n_a, int64_t n_b, int64_t n_ab);

/* Item-KNN with shrinkage (Sarwar et al. 2001; shrinkage as in Koren 2008):
 *   s(a, b) = count(a, b) / (sqrt(count(a) count(b)) + shrink)
 * over the pairs with count(a, b) >= min_count; each item keeps its k best
 * neighbours (ties: lower index). A query Q scores b by the sum over q in Q
 * of s(q, b) when b is among q's kept neighbours. Shrinkage pulls the
 * similarity of pairs seen in few baskets towards 0. */
typedef struct {
  int32_t n_items;
  int64_t *off; /* (n_items + 1) CSR rows */
  int32_t *nbr; /* (off[n_items]) best first */
  float *sim;   /* (off[n_items]) */
} af_itemknn;

af_status af_itemknn_build(const af_cooccur *co, int k, double shrink, int64_t min_count,
                           af_itemknn *out, af_error *err);
void af_itemknn_free(af_itemknn *m);
/* out[b] += sum over q in query of s(q, b) (out (n_items)). */
void af_itemknn_query_scores(const af_itemknn *m, const int32_t *query, int n_query, float *out);

#ifdef __cplusplus
}
#endif
#endif
