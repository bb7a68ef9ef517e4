/* Frequent itemsets (FP-growth, engine/fpgrowth.c) and association rules
 * (engine/rules.c).
 *
 * Support of an itemset is its basket count over n_baskets. An itemset is
 * frequent when count / n_baskets >= min_support evaluated in double
 * precision, i.e. count >= af_min_count_for_support(min_support, n), the
 * smallest integer c with (double)c / n >= min_support (and c >= 1). This is
 * mlxtend's `support >= min_support` (its apriori); mlxtend's fpgrowth uses
 * ceil(min_support * n), which can differ by one when the product rounds up
 * (0.07 * 100 = 7.000000000000001).
 *
 * A rule A -> C splits a frequent itemset S (2 <= |S| <= max_len) into two
 * non-empty disjoint sides, |C| <= max_consequent (0 = any). Measures follow
 * mlxtend.association_rules in double precision: support = s(S), confidence =
 * s(S)/s(A), lift = confidence/s(C), leverage = s(S) - s(A) s(C), conviction =
 * (1 - s(C))/(1 - confidence), +inf when confidence == 1. A rule is kept when
 * confidence >= min_confidence and lift >= min_lift. */
#ifndef AF_RULES_H
#define AF_RULES_H

#include <stdint.h>

#include "io/baskets.h"
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Itemsets of one or more items, each sorted ascending by item index. */
typedef struct {
  int64_t n_baskets;
  int64_t min_count;
  int64_t n_itemsets;
  int64_t *offsets; /* (n_itemsets + 1) into items */
  int32_t *items;   /* (offsets[n_itemsets]) */
  int64_t *counts;  /* (n_itemsets) baskets holding the whole itemset */
  int64_t cap_sets, cap_items;
} af_itemsets;

int64_t af_min_count_for_support(double min_support, int64_t n_baskets);

/* All frequent itemsets of length 1..max_len (0 = no limit) by FP-growth.
 * Output order: deterministic (the mining order), not sorted. Uses the
 * default memory budget (base/budget.h) and no itemset cap. */
af_status af_fpgrowth(const af_baskets *b, double min_support, int max_len, af_itemsets *out,
                      af_error *err);

typedef struct {
  double min_support;   /* (0, 1] */
  int max_len;          /* 0 = no limit */
  int64_t max_itemsets; /* 0 = no cap; more is an error naming --max-itemsets */
  int64_t memory_limit; /* bytes for the itemsets; 0 = af_memory_limit_default() */
} af_fpgrowth_options;

/* af_fpgrowth with limits: the itemsets' memory is checked before each growth
 * of the output arrays, so an explosive min_support stops with an error
 * naming --min-support, --max-len, --max-itemsets and --memory-limit. */
af_status af_fpgrowth_ex(const af_baskets *b, const af_fpgrowth_options *opt, af_itemsets *out,
                         af_error *err);
void af_itemsets_free(af_itemsets *s);

typedef struct {
  double min_confidence; /* [0, 1] */
  double min_lift;       /* 0 = no filter */
  int max_consequent;    /* 0 = every split; 1 = one-item consequents (arules, pyfim) */
  int64_t max_rules;     /* 0 = all; else the first max_rules in the sort order */
} af_rules_options;

/* A rule: antecedent = the items of itemset `itemset` selected by ante_mask
 * (bit i = i-th item), consequent = the rest. */
typedef struct {
  int64_t itemset;
  uint32_t ante_mask;
  int64_t count, ante_count, cons_count;
  double support, confidence, lift, leverage, conviction;
} af_rule;

typedef struct {
  int64_t n_rules;
  af_rule *rules; /* (n_rules) sorted: lift desc, confidence desc, support desc, then antecedent
                     items, then consequent items (lexicographic by item index) */
} af_rules;

/* Rules from every frequent itemset of length >= 2 in fi (which must hold
 * every subset of each itemset it holds, as af_fpgrowth's output does).
 * Itemsets longer than 31 items are an error (cap them with max_len). */
af_status af_rules_generate(const af_itemsets *fi, const af_rules_options *opt, af_rules *out,
                            af_error *err);
/* af_rules_generate within memory_limit bytes for the candidate rules and
 * their sort (0 = af_memory_limit_default()); past it, an error naming
 * --min-confidence, --max-len, --max-consequent and --memory-limit. */
af_status af_rules_generate_limited(const af_itemsets *fi, const af_rules_options *opt,
                                    int64_t memory_limit, af_rules *out, af_error *err);
void af_rules_free(af_rules *r);

/* Items of a rule's antecedent (side 0) or consequent (side 1) into dst
 * (capacity >= 32); returns how many. */
int af_rule_side(const af_itemsets *fi, const af_rule *r, int side, int32_t *dst);

#ifdef __cplusplus
}
#endif
#endif
