/* Internal to engine/eval: a method's fitted state, and the per-method
 * fitting and batch scoring that the learned ranker (eval_learned.c) reuses
 * for its features. */
#ifndef AF_EVAL_INTERNAL_H
#define AF_EVAL_INTERNAL_H

#include "affinity.h"

/* ---- fitted state of a method -------------------------------------------------- */
typedef struct af_eval_fitted {
  int32_t N;
  float *pop;            /* (N) POPULARITY */
  af_cooccur co;         /* ITEMCF */
  float *cf;             /* (co nnz) ITEMCF cosines, 0 below min_count */
  /* RULES: one-item-consequent rules grouped by their smallest antecedent item */
  int64_t *r_off;        /* (N + 1) */
  int32_t *r_ante;       /* (n_rules, 3): antecedent items ascending, -1 padded */
  int32_t *r_cons;       /* (n_rules) */
  float *r_conf;         /* (n_rules) */
  int r_width;
  af_fuse_model *fuse;   /* FUSION */
  float *text_coef;      /* (N) FUSION text term weight per candidate, or NULL */
  af_ease_model ease;    /* EASE */
  af_itemknn knn;        /* ITEMKNN */
  struct af_eval_learned *learned; /* LEARNED: the ranking model (eval_learned.c) */
  struct af_eval_cold *cold;       /* LEARNED: the cold-start maps (eval_cold.c) */
} af_eval_fitted;

void af_eval_fitted_free(af_eval_fitted *f);
/* Fits m on sp->train into f (zeroed first; f->pop always). */
af_status af_eval_fit(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                      int threads, af_error *err);
af_status af_eval_fit_itemcf(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                             af_error *err);
af_status af_eval_fit_rules(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                            af_error *err);
af_status af_eval_fit_fusion(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                             af_error *err);
/* rows (nq, N): the scores of queries [q0, q0 + nq) under m with state f. */
af_status af_eval_score_batch(const af_eval_method *m, const af_eval_fitted *f,
                              const af_eval_split *sp, int64_t q0, int64_t nq, int threads,
                              float *rows, af_error *err);

/* LEARNED (eval_learned.c): fits the base models on sp->train and the
 * ranker on a validation split carved from it; scores a batch. */
af_status af_eval_learned_fit(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                              int threads, af_error *err);
/* The base-score blocks the learned ranker scores from, per query and product. */
#define AF_EVAL_LEARNED_BLOCKS 7
/* af_eval_learned_rows with a caller's scratch blk (AF_EVAL_LEARNED_BLOCKS, nq, N):
 * one buffer for many batches (a fresh 50 MB block per batch of 128 queries
 * cost associate ~15% of its time in page faults). */
af_status af_eval_learned_rows_in(const af_eval_method *m, const af_eval_fitted *f,
                                  const af_eval_split *sp, int64_t q0, int64_t nq, int threads,
                                  float *rows, float *blk, af_error *err);
af_status af_eval_learned_rows(const af_eval_method *m, const af_eval_fitted *f,
                               const af_eval_split *sp, int64_t q0, int64_t nq, int threads,
                               float *rows, af_error *err);
void af_eval_learned_free(struct af_eval_learned *l);

/* Cold start (eval_cold.c), from the text embeddings m->emb and f's EASE:
 *  - map: M (n, d) ridge regression from a modelled product's embedding to
 *    its EASE column, M = (B E)(E^T E + mu I)^{-1}; a query scores any
 *    candidate b by (sum over modelled q in Q of M[q, :]) . e_b;
 *  - prior: ridge regression from the embedding to log(1 + baskets) over
 *    every catalog product (sold or not): how likely text says b sells;
 *  - profile: the lift of category pairs (level 0) in the training baskets;
 *    a query scores b by the mean over its items q of lift(cat q, cat b). */
af_status af_eval_cold_fit(af_eval_fitted *f, const af_eval_method *m, const af_eval_split *sp,
                           af_error *err);
void af_eval_cold_free(struct af_eval_cold *c);
/* rows (nq, N): the map's score of every product for queries [q0, q0 + nq). */
af_status af_eval_cold_map_rows(const af_eval_method *m, const af_eval_fitted *f,
                                const af_eval_split *sp, int64_t q0, int64_t nq, float *rows,
                                af_error *err);
double af_eval_cold_prior(const af_eval_fitted *f, int32_t b);
/* prof (n_codes[0]): the query's mean category lift to each code. */
void af_eval_cold_profile(const af_eval_method *m, const af_eval_fitted *f, const int32_t *qi,
                          int n, double *prof);

typedef struct {
  double w[AF_EVAL_N_FEATURES];     /* weights of the standardised features */
  double scale[AF_EVAL_N_FEATURES]; /* 1 / standard deviation over the training candidates */
  int64_t pairs;                    /* training pairs */
} af_eval_ranker;

struct af_eval_learned {
  af_eval_ranker main; /* every candidate of the pool */
  af_eval_ranker cold; /* learn_cold_slots > 0: never-bought candidates of the cold pool */
};

#endif
