/* Basket recommendations from a run folder (docs/report.md).
 *
 * For a basket B of product ids, every product c not in B collects evidence:
 *   rule:      the rule X -> {c} of rules.jsonl (one-item consequent) with X a
 *              subset of B and the highest confidence (its confidence, lift, count);
 *   co-purchase: the basket item b with the highest item-CF cosine
 *              count(b,c)/sqrt(n_b n_c) in cooccur.csv (its count, lift);
 *   text:      the basket item b whose title is most similar to c's
 *              (neighbors.h5, cosine >= min_text_cosine).
 * score = rule confidence + co-purchase cosine + text_weight * text cosine
 * (each term 0 when absent). The k best, ties to the lower catalog row. */
#ifndef AF_RECOMMEND_H
#define AF_RECOMMEND_H

#include <stdint.h>

#include "base/error.h"
#include "io/run_files.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int k;                  /* recommendations (default 10) */
  double text_weight;     /* default 0.3 */
  double min_text_cosine; /* default 0.5 */
} af_recommend_options;

void af_recommend_default_options(af_recommend_options *o);

typedef struct {
  int64_t product; /* row of products.csv */
  double score;
  /* rule evidence (rule_count 0: none) */
  int64_t rule_count;
  double rule_confidence, rule_lift;
  char *rule_antecedent; /* display names joined by " + ", malloc'd, NULL when none */
  /* co-purchase evidence (cop_with -1: none) */
  int64_t cop_with, cop_count;
  double cop_cosine, cop_lift;
  /* text evidence (text_with -1: none) */
  int64_t text_with;
  double text_cosine;
} af_recommendation;

typedef struct {
  af_catalog products;
  int n;
  af_recommendation *recs; /* (n) best first */
} af_recommendations;

/* basket_ids: product ids of the run's products.csv; an unknown id is an
 * error naming it. */
af_status af_recommend(const char *run_dir, const char *const *basket_ids, int n_basket,
                       const af_recommend_options *o, af_recommendations *out, af_error *err);
void af_recommendations_free(af_recommendations *r);

#ifdef __cplusplus
}
#endif
#endif
