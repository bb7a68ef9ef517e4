/* Fusion of co-purchase evidence and text similarity into complements and
 * substitutes (docs/fusion.md).
 *
 * The small API that `affinity associate`, `affinity run` and `affinity eval`
 * use:
 *
 *   af_fuse_input in = {N, d, emb, &baskets, n_levels, levels};
 *   af_fuse_options opt; af_fuse_default_options(&opt);
 *   af_fuse_result res;
 *   af_fuse_run(&opt, &in, &res, &err);        // in-memory results
 *   af_fuse_write_csv("associations.csv", ids, names, &res, &err);  // atomic
 *   af_fuse_result_free(&res);
 *
 * Complement score. With A the item-CF cosine matrix, A[x,y] =
 * count(x,y)/sqrt(count(x) count(y)) for pairs bought together in at least
 * min_count baskets (0 elsewhere and on the diagonal), and T the back-off
 * matrix
 *   T[x,:] = (1 - beta_x) [n_x > 0] e_x + beta_x S[x,:]
 *   beta_x = (1 - w_x) cbar_x,   w_x = n_x / (n_x + history_prior)
 * (n_x = baskets holding x; history_prior 0 means w_x = 1 when n_x > 0, else
 * 0; S[x,:] = x's text_k nearest products *that have history* with cosine >=
 * text_min_cosine, weighted by cosine and normalised to sum 1; cbar_x =
 * their cosine-weighted mean cosine, 0 when there are none, so evidence
 * borrowed from a neighbour is discounted by how similar it is), the fused
 * complement score is
 *   F = T A T^T.
 * Where both products have long histories F[a,b] ~ A[a,b] (pure co-purchase);
 * where the product a has none, F[a,:] is the complements of a's text
 * neighbours; where the candidate b has none, b is scored through its own
 * text neighbours -- so new products get complements and can be complements.
 * A query (a basket) scores a candidate by the sum of F over its items.
 *
 * Substitute: among a's sub_pool text nearest neighbours (any product), those
 * with cosine >= sub_min_cosine, in the same category (the first category
 * level where both products have a non-empty value decides; none: no
 * constraint), whose co-purchase lift is <= sub_max_lift or who were never
 * bought together; best cosine first.
 *
 * Everything is deterministic: ties go to the lower catalog row. */
#ifndef AF_FUSE_H
#define AF_FUSE_H

#include <stdint.h>

#include "baskets.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int k;                 /* complements and substitutes kept per product (default 10) */
  int64_t min_count;     /* co-purchase pairs seen in fewer baskets carry no evidence (default 2) */
  int text_k;            /* text neighbours with history used for back-off (default 20) */
  double history_prior;  /* n/(n + prior) is the weight of a product's own history (default 5) */
  double text_min_cosine; /* back-off neighbours need at least this cosine (default 0.4) */
  int sub_pool;          /* text neighbours examined for substitutes (default 50) */
  double sub_min_cosine; /* substitute needs at least this text cosine (default 0.6) */
  double sub_max_lift;   /* and co-purchase lift at most this (default 1) */
  int threads;           /* OpenMP threads; 0 = default */
} af_fuse_options;

void af_fuse_default_options(af_fuse_options *opt);
/* AF_ERR_ARG naming the offending field when out of range. */
af_status af_fuse_check_options(const af_fuse_options *opt, af_error *err);

typedef struct {
  int64_t N;                 /* products (catalog rows) */
  int d;                     /* embedding dimension */
  const float *emb;          /* (N, d) L2-normalised, row i = catalog row i */
  const af_baskets *baskets; /* n_items == N: item index = catalog row */
  int n_category_levels;     /* 0 = no categories */
  const char *const *const *categories; /* (n_category_levels) arrays of (N); "" or NULL = unknown */
} af_fuse_input;

/* ---- the scoring model (eval uses it directly) ---------------------------- */
typedef struct af_fuse_model af_fuse_model;

/* Builds co-occurrence, the back-off matrix T and (with substitutes != 0) the
 * substitute candidate pool. Borrows in->emb and in->categories for the
 * model's lifetime. */
af_status af_fuse_model_build(const af_fuse_options *opt, const af_fuse_input *in,
                              int substitutes, af_fuse_model **out, af_error *err);
void af_fuse_model_free(af_fuse_model *m);

/* Per-thread work space of af_fuse_query_scores. */
typedef struct af_fuse_scratch af_fuse_scratch;
af_status af_fuse_scratch_create(const af_fuse_model *m, af_fuse_scratch **out, af_error *err);
void af_fuse_scratch_free(af_fuse_scratch *s);

/* Adds sum over query items q of F[q, b] into out[b] for every b (out (N)).
 * Returns the number of entries that may be nonzero;
 * *touched then lists them (ascending by first touch, owned by s, valid until
 * the next call). */
int64_t af_fuse_query_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                             af_fuse_scratch *s, float *out, const int32_t **touched);

/* ---- whole-catalog associations -------------------------------------------- */
typedef enum { AF_ASSOC_COMPLEMENT = 0, AF_ASSOC_SUBSTITUTE = 1 } af_assoc_type;

typedef struct {
  int32_t product, related; /* catalog rows */
  af_assoc_type type;
  float score;   /* complement: F[product, related]; substitute: the text cosine */
  int64_t count; /* baskets holding both */
  double lift;   /* count n / (n_a n_b); NAN when count == 0 */
  float cosine;  /* text cosine similarity */
} af_association;

typedef struct {
  int64_t n;
  af_association *rows; /* (n) by product, then complements best first, then substitutes */
} af_fuse_result;

af_status af_fuse_run(const af_fuse_options *opt, const af_fuse_input *in, af_fuse_result *out,
                      af_error *err);
void af_fuse_result_free(af_fuse_result *r);

/* Writes product_id,product,related_id,related,type,score,count,lift,cosine
 * atomically. ids, names (N). */
af_status af_fuse_write_csv(const char *path, const char *const *ids, const char *const *names,
                            const af_fuse_result *r, af_error *err);

/* Copies embeddings into catalog order: out (n_catalog, d) row i = the vector
 * of catalog id ids[i], L2-normalised. A catalog id absent from emb_ids is an
 * error naming it and `source`. */
af_status af_fuse_align_embeddings(const char *source, const char *const *emb_ids,
                                   const float *emb, int64_t n_emb, int d,
                                   const char *const *ids, int64_t n_catalog, float *out,
                                   af_error *err);

#ifdef __cplusplus
}
#endif
#endif
