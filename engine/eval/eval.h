/* Offline evaluation of basket completion (docs/evaluation.md).
 *
 * Protocol. Baskets are split 80/20 by a seeded hash (exactly
 * round(test_fraction * n) test baskets); a seeded cold_fraction of the
 * products that occur in any basket (exactly round(cold_fraction * n_sold))
 * is removed from every training basket (their titles stay in the
 * catalog). In each test basket with at least two items one item is hidden
 * (seeded) and the others form the query. A method scores every product; the
 * query items are excluded; the rank of the hidden item is
 *   1 + #{b not in query, b != h : s_b > s_h  or  (s_b == s_h and b < h)}
 * over all N products -- no candidate sampling. With popularity_ties (the
 * default) equal scores are first ordered by training popularity (so the
 * many zero scores of a sparse method fall back to popularity), then by the
 * lower catalog row. Per query, with K in {10, 20}:
 *   Recall@K = [rank <= K], NDCG@K = [rank <= K] / log2(rank + 1)
 * (one relevant item: the ideal DCG is 1), RR = 1 / rank (no cut-off);
 * reported values are means over the queries of a group. Groups: warm = the
 * hidden product occurs in the training baskets; cold = it does not (the
 * seeded cold products, and products that happen to occur only in test
 * baskets; counted apart in af_eval_split).
 *
 * Seeds: everything random is Philox4x32-10 (philox.h) of (seed, stream,
 * index), so a split depends on the seed and the data only. */
#ifndef AF_EVAL_H
#define AF_EVAL_H

#include <stdint.h>

#include "io/baskets.h"
#include "base/error.h"
#include "assoc/fuse.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { AF_EVAL_WARM = 0, AF_EVAL_COLD = 1, AF_EVAL_N_GROUPS = 2 };
#define AF_EVAL_NK 2
extern const int af_eval_ks[AF_EVAL_NK]; /* {10, 20} */

typedef struct {
  uint64_t seed;        /* default 42 */
  double test_fraction; /* default 0.2 */
  double cold_fraction; /* default 0.1 */
} af_eval_split_options;

void af_eval_split_default_options(af_eval_split_options *o);

typedef struct {
  int32_t N;                /* products */
  af_baskets train;         /* n_items == N, cold products removed */
  unsigned char *cold;      /* (N) 1 = seeded cold product */
  int64_t n_cold_products;  /* seeded */
  int64_t n_test_baskets;   /* baskets held out */
  int64_t n_test_too_small; /* held-out baskets with fewer than two items (no query) */
  int64_t n_queries;
  int64_t *q_off;           /* (n_queries + 1) */
  int32_t *q_items;         /* (q_off[n_queries]) query items, ascending */
  int32_t *hidden;          /* (n_queries) */
  int64_t *q_basket;        /* (n_queries) index of the test basket */
  unsigned char *group;     /* (n_queries) AF_EVAL_WARM / AF_EVAL_COLD */
  int64_t n_cold_seeded;    /* cold queries whose hidden product is a seeded cold product */
} af_eval_split;

/* The random split of `all` (n_items = N). */
af_status af_eval_split_random(const af_baskets *all, const af_eval_split_options *o,
                               af_eval_split *out, af_error *err);
/* Train on `train`, query every basket of `test` (same item indexing, no
 * seeded cold products; only the hidden item is drawn with seed). */
af_status af_eval_split_given(const af_baskets *train, const af_baskets *test, uint64_t seed,
                              af_eval_split *out, af_error *err);
void af_eval_split_free(af_eval_split *s);

/* ---- metrics ---------------------------------------------------------------- */
typedef struct {
  int64_t n;               /* queries */
  double recall[AF_EVAL_NK], ndcg[AF_EVAL_NK], mrr; /* sums until finished, then means */
} af_eval_metrics;

/* Rank (1-based) of hidden among all N products but the n_query query
 * items. Equal scores are ordered by tie (N) descending when tie != NULL,
 * then by the lower index. */
int64_t af_eval_rank(const float *scores /* (N) */, const float *tie /* (N) or NULL */,
                     int64_t N, int32_t hidden, const int32_t *query, int n_query);
void af_eval_metrics_add(af_eval_metrics *m, int64_t rank);
void af_eval_metrics_finish(af_eval_metrics *m);

/* ---- methods ---------------------------------------------------------------- */
typedef enum {
  AF_EVAL_POPULARITY, /* training basket count */
  AF_EVAL_RULES,      /* best confidence of a rule A -> {b} with A a subset of the query */
  AF_EVAL_ITEMCF,     /* sum over query items of the item-CF cosine */
  AF_EVAL_TEXT,       /* cosine to the mean (or max over) query items' embeddings */
  AF_EVAL_FUSION,     /* sum over query items of the fused complement score F */
  AF_EVAL_CUSTOM      /* a caller's scoring function (tests) */
} af_eval_kind;

/* Custom scorer: writes scores (N) for one query. */
typedef void (*af_eval_score_fn)(void *ctx, const int32_t *query, int n_query, float *scores);

typedef struct {
  af_eval_kind kind;
  const char *name;
  /* TEXT and FUSION */
  const float *emb; /* (N, d) L2-normalised, catalog order */
  int d;
  int text_max;     /* TEXT: 0 = mean of the query embeddings, 1 = max cosine over them */
  /* ITEMCF */
  int64_t min_count;
  /* RULES: FP-growth on the training baskets */
  int64_t rules_min_count; /* itemset support in baskets */
  int rules_max_len;
  double rules_min_confidence;
  /* FUSION */
  af_fuse_options fuse;
  /* FUSION: + (text_weight + cold_text_weight * (1 - w_b)) * (mean-query text
   * cosine of b), w_b = n_b / (n_b + history_prior) the candidate's history
   * weight (0 for a product never bought in training). With fuse.text_alpha
   * > 0 these two are unused: the scores are af_fuse_adaptive_scores with
   * the query's fuse.text_pool best products by mean-query cosine as pool */
  double text_weight;
  double cold_text_weight;
  int popularity_ties; /* break equal scores by training popularity (default 1) */
  /* CUSTOM */
  af_eval_score_fn fn;
  void *ctx;
} af_eval_method;

void af_eval_method_init(af_eval_method *m, af_eval_kind kind, const char *name);

typedef struct {
  af_eval_metrics group[AF_EVAL_N_GROUPS];
  double seconds; /* fitting + scoring + ranking */
} af_eval_result;

af_status af_eval_run(const af_eval_method *m, const af_eval_split *sp, int threads,
                      af_eval_result *out, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
