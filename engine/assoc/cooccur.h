/* Sparse item co-occurrence counts from baskets, and the pair statistics
 * built on them.
 *
 * count(a, b) is the number of baskets holding both a and b (each unordered
 * pair once per basket). Pairs are kept when count >= min_count. Storage is a
 * symmetric CSR: row a lists every neighbour b != a (ascending) with its
 * count, so item-CF and fusion read a neighbour list directly; af_cooccur_next
 * walks each unordered pair once (a < b).
 *
 * Counting: for each item a (in parallel over chunks of items), walk the
 * baskets holding a and add 1 to a dense counter for each later item b > a;
 * the touched counters are then sorted and emitted. Time O(sum of squared
 * basket sizes), scratch O(n_items) per thread, output O(pairs). */
#ifndef AF_COOCCUR_H
#define AF_COOCCUR_H

#include <stdint.h>

#include "io/baskets.h"
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int64_t n_baskets;
  int32_t n_items;
  int64_t min_count;
  int64_t *item_count; /* (n_items) baskets holding each item */
  int64_t *offsets;    /* (n_items + 1) CSR rows */
  int32_t *nbr;        /* (offsets[n_items]) neighbour items, ascending within a row */
  int32_t *count;      /* (offsets[n_items]) count(a, nbr) */
} af_cooccur;

/* min_count >= 1. */
af_status af_cooccur_build(const af_baskets *b, int64_t min_count, af_cooccur *out, af_error *err);
/* af_cooccur_build within memory_limit bytes for the pairs (0 =
 * af_memory_limit_default()); past it, an error naming --min-count and
 * --memory-limit, before the allocation. */
af_status af_cooccur_build_limited(const af_baskets *b, int64_t min_count, int64_t memory_limit,
                                   af_cooccur *out, af_error *err);
void af_cooccur_free(af_cooccur *c);

/* Number of unordered pairs stored. */
int64_t af_cooccur_n_pairs(const af_cooccur *c);
/* count(a, b), 0 when below min_count or absent (binary search in row a). */
int64_t af_cooccur_count(const af_cooccur *c, int32_t a, int32_t b);

/* Iterates unordered pairs a < b in (a, b) order. Start with *pos = 0, *row = 0. */
int af_cooccur_next(const af_cooccur *c, int64_t *pos, int32_t *row, int32_t *a, int32_t *b,
                    int64_t *count);

/* Association measures of the pair (a, b) as in mlxtend's association_rules:
 * support = n_ab/n, confidence_ab = n_ab/n_a, lift = confidence_ab/support_b,
 * leverage = support - support_a*support_b, conviction = (1 - support_b)/(1 -
 * confidence_ab) (+inf when confidence_ab == 1), jaccard = n_ab/(n_a + n_b -
 * n_ab), cosine = n_ab/sqrt(n_a*n_b). */
typedef struct {
  double support, confidence_ab, confidence_ba, lift, leverage, conviction, jaccard, cosine;
} af_pair_stats;
void af_pair_stats_compute(int64_t n, int64_t n_a, int64_t n_b, int64_t n_ab, af_pair_stats *s);

#ifdef __cplusplus
}
#endif
#endif
