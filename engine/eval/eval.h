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
#include "assoc/ease.h"
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
  AF_EVAL_CUSTOM,     /* a caller's scoring function (tests) */
  AF_EVAL_EASE,       /* sum over query items of the EASE weight B[q, b] (assoc/ease.h) */
  AF_EVAL_ITEMKNN,    /* sum over query items of the shrunk item-KNN similarity (assoc/itemcf.h) */
  AF_EVAL_LEARNED     /* a linear ranker over the features below, fitted on a validation split */
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
  /* EASE */
  af_ease_options ease;
  /* ITEMKNN: k neighbours per item, shrinkage, pair threshold min_count */
  int knn_k;
  double knn_shrink;
  /* LEARNED: category codes per level (-1 unknown) for the category-match
   * features; the validation split's seed; negatives per query and source */
  int n_levels;
  const int32_t *const *category; /* (n_levels) arrays (N) */
  const int32_t *n_codes;         /* (n_levels) codes per level */
  uint64_t learn_seed;
  int learn_pool;
  double learn_l2;
  /* CUSTOM */
  af_eval_score_fn fn;
  void *ctx;
} af_eval_method;

void af_eval_method_init(af_eval_method *m, af_eval_kind kind, const char *name);

/* The learned ranker's features of candidate b for query Q (docs/evaluation.md). */
enum {
  AF_EVAL_F_EASE, AF_EVAL_F_ITEMCF, AF_EVAL_F_RULES, AF_EVAL_F_FUSION, AF_EVAL_F_TEXT,
  AF_EVAL_F_TEXT_COLD, AF_EVAL_F_CAT0, AF_EVAL_F_CAT1, AF_EVAL_F_LOG_POP, AF_EVAL_F_HISTORY,
  AF_EVAL_F_EASE_LOGQ, AF_EVAL_F_TEXT_LOGQ, AF_EVAL_F_COLD_MAP, AF_EVAL_F_SELL_PRIOR,
  AF_EVAL_F_CAT_PROFILE, AF_EVAL_N_FEATURES
};
extern const char *const af_eval_feature_names[AF_EVAL_N_FEATURES];

typedef struct {
  af_eval_metrics group[AF_EVAL_N_GROUPS];
  double seconds; /* fitting + scoring + ranking */
  int64_t modelled, eligible; /* EASE: products modelled, and those with >= min_count baskets */
  double weights[AF_EVAL_N_FEATURES]; /* LEARNED: the ranker's weights (standardised features) */
  int64_t train_pairs;                /* LEARNED: pairs it was fitted on */
} af_eval_result;

af_status af_eval_run(const af_eval_method *m, const af_eval_split *sp, int threads,
                      af_eval_result *out, af_error *err);
/* As af_eval_run; ranks (n_queries) or NULL gets each query's rank of its
 * hidden item, in query order. */
af_status af_eval_run_ranks(const af_eval_method *m, const af_eval_split *sp, int threads,
                            af_eval_result *out, int64_t *ranks, af_error *err);

/* Dense codes of category names (N): equal names share a code, 0, 1, ... in
 * order of first appearance; "" or NULL is -1. *n_codes the number used. */
af_status af_eval_category_codes(const char *const *names, int64_t N, int32_t *codes,
                                 int32_t *n_codes, af_error *err);

/* ---- tuning on a validation split ----------------------------------------------- */
typedef enum {
  AF_EVAL_TUNE_EASE_LAMBDA, /* m->ease.lambda */
  AF_EVAL_TUNE_KNN_SHRINK   /* m->knn_shrink */
} af_eval_tune_param;

/* Runs m on the validation split val once per grid value of param and picks
 * the value with the highest Recall@10 over all of val's queries (ties: the
 * first). score (n_grid) gets each value's Recall@10; *best its index. */
af_status af_eval_tune(const af_eval_method *m, af_eval_tune_param param, const double *grid,
                       int n_grid, const af_eval_split *val, int threads, double *score,
                       int *best, af_error *err);

/* ---- paired bootstrap -------------------------------------------------------------- */
typedef struct {
  int64_t n;           /* queries in the group */
  double diff;         /* mean over the group of [ra <= K] - [rb <= K] */
  double lo, hi;       /* percentile interval (2.5%, 97.5%) of the resampled means */
} af_eval_interval;

/* Paired bootstrap of the Recall@K difference of two methods' ranks over the
 * queries with group[q] == g (group NULL or g < 0: all): n_boot resamples of
 * those queries with replacement, drawn by Philox (seed, stream 4, resample
 * index); the interval's ends are the resampled means at the order
 * statistics floor(0.025 (n_boot - 1)) and ceil(0.975 (n_boot - 1)). */
af_status af_eval_bootstrap(const int64_t *ra, const int64_t *rb, const unsigned char *group,
                            int g, int64_t n_queries, int K, int n_boot, uint64_t seed,
                            af_eval_interval *out, af_error *err);

/* ---- the outputs: eval.json and the per-query ranks (eval_report.c) ----------- */
typedef struct {
  const char *name;
  af_eval_result r;
  const int64_t *ranks;                    /* (n_queries) or NULL */
  af_eval_interval diff[AF_EVAL_N_GROUPS]; /* Recall@10 minus the reference's (with ranks) */
} af_eval_row;

typedef struct {
  const char *method, *param; /* e.g. "ease", "lambda" */
  const double *grid, *score; /* (n) values and their validation Recall@10 */
  int n, best;
} af_eval_tuning;

typedef struct {
  const char *catalog, *baskets, *test_baskets; /* file names; test_baskets NULL: random split */
  int64_t products;
  int validation;                       /* evaluated on the validation split */
  const af_eval_split *split;
  const af_eval_split_options *split_options;
  const af_eval_row *rows;
  int n_rows;
  int reference;                        /* row of the bootstrap reference, -1: none */
  int n_boot;
  uint64_t boot_seed;
  const af_fuse_options *fusion;        /* the fusion rows' options, NULL: no fusion row */
  double text_weight, cold_text_weight; /* fusion's additive text term */
  const af_eval_tuning *tuning;
  int n_tuning;
} af_eval_report;

/* Reference row for the bootstrap: the row with the best Recall@10 over all
 * queries among those with is_baseline[i] != 0 (ties: the first); -1 if none. */
int af_eval_best_row(const af_eval_row *rows, int n, const unsigned char *is_baseline);
/* Fills rows[i].diff for every row with ranks against rows[ref] (paired
 * bootstrap, r->n_boot resamples, seed r->boot_seed). */
af_status af_eval_compare_rows(af_eval_row *rows, int n, int ref, const af_eval_split *sp,
                               int n_boot, uint64_t seed, af_error *err);
/* eval.json (docs/evaluation.md), atomically. */
af_status af_eval_write_json(const char *path, const af_eval_report *r, af_error *err);
/* CSV query,basket,group,hidden_id,<one rank column per row> (rows with
 * ranks), atomically. basket_ids (the split's basket indexing) or NULL: the
 * basket index; ids (N) the catalog ids. */
af_status af_eval_write_ranks(const char *path, const af_eval_report *r,
                              const char *const *basket_ids, const char *const *ids,
                              af_error *err);

#ifdef __cplusplus
}
#endif
#endif
