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

#include "io/baskets.h"
#include "base/error.h"

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
  /* Adaptive text back-off (added; see af_fuse_adaptive_scores). text_alpha
   * 0 turns it off: complements are ranked by F alone. */
  double text_alpha;     /* back-off weight of a never-sold candidate (default 0: off) */
  double text_beta;      /* lambda_b = text_alpha / (1 + n_b / text_beta) (default 4) */
  int rank_k;            /* reciprocal ranks 1 / (rank_k + rank) (default 10) */
  int text_pool;         /* text candidates ranked per query (default 100) */
  int text_mode;         /* AF_FUSE_TEXT_SCALED (default), _RANKS or _MERGE (below) */
  double warm_text_weight; /* AF_FUSE_TEXT_MERGE: + this x cosine in the warm list (default 0.05) */
  int query_history;     /* 1: lambda also scaled by the query items' mean 1/(1 + n_q/text_beta),
                            so text counts where the query's own history is thin (default 0) */
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

enum { AF_FUSE_TEXT_SCALED = 0, AF_FUSE_TEXT_RANKS = 1, AF_FUSE_TEXT_MERGE = 2 };
/* The mode named "scaled", "ranks" or "merge" (NULL: scaled); an unknown
 * name is AF_ERR_ARG naming the flag --text-mode. */
af_status af_fuse_text_mode_parse(const char *name, int *mode, af_error *err);

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

/* The adaptive complement score (docs/fusion.md), with the query's items
 * excluded everywhere:
 *   score(Q, b) = [F_Q(b) > 0] / (rank_k + rank_F(b))
 *               + lambda_b [b in P] / (rank_k + rank_T(b)),
 *   lambda_b = text_alpha / (1 + n_b / text_beta),
 * F_Q(b) = sum over q in Q of F[q, b]; rank_F(b) = 1 + #{c : F_Q(c) > F_Q(b)}
 * among the candidates with F_Q > 0; P = the query's text pool: its
 * text_pool best candidates by text cosine, best first, given in pool
 * (n_pool entries, query items already left out; pool == NULL and
 * n_query == 1: the model's own neighbours of query[0], which exist when the
 * model was built with substitutes != 0); rank_T(b) = 1 + #{c in P :
 * cos(c) > cos(b)}; n_b = baskets holding b. Both terms are reciprocal ranks,
 * so co-purchase and text evidence are on the same scale for every query;
 * the text term fades as the candidate's history grows. The text term is
 * off (lambda = 0) when text_alpha is 0 or the baskets carry no co-purchase
 * evidence at all (no pair reaches min_count): text alone is no complement
 * evidence.
 * out (N) must be all zero on entry; it gets the scores; returns the number
 * of nonzero entries, listed in *touched (owned by s, valid until the next
 * call). */
/* text_mode AF_FUSE_TEXT_MERGE instead merges two lists by reciprocal rank:
 * the candidates with history ranked by W(b) = F_Q(b) + warm_text_weight
 * cos(b) score 1 / (rank_k + rank_W(b)); the candidates without history
 * (never in a training basket) ranked by C(b) = F_Q(b) + cos(b) (borrowed
 * co-purchases plus direct text match, both on their natural scales) score
 * text_alpha / (rank_k + rank_C(b)); cos(b) = 0 outside the pool, and a
 * candidate with W or C <= 0 scores 0. With rank_k = 10 and text_alpha 0.5
 * the j-th cold candidate lands just below the (2j + 10)-th warm one. */
int64_t af_fuse_adaptive_scores(const af_fuse_model *m, const int32_t *query, int n_query,
                                const int32_t *pool, const float *pool_cos, int n_pool,
                                af_fuse_scratch *s, float *out, const int32_t **touched);
/* lambda_b of candidate b (0 when the text term is off). */
double af_fuse_text_lambda(const af_fuse_model *m, int32_t b);

/* ---- whole-catalog associations -------------------------------------------- */
typedef enum { AF_ASSOC_COMPLEMENT = 0, AF_ASSOC_SUBSTITUTE = 1 } af_assoc_type;

typedef struct {
  int32_t product, related; /* catalog rows */
  af_assoc_type type;
  float score;   /* complement: the adaptive score (F[product, related] when text_alpha
                    is 0); substitute: the text cosine */
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
