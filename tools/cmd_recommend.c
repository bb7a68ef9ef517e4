/* affinity recommend: products for a basket, each with its reasons. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"run", "DIR", "run folder written by affinity run (required)"},
    {"basket", "IDS", "comma-separated product ids of the basket (required)"},
    {"k", "N", "recommendations (default 10)"},
    {"text-weight", "W", "weight of title similarity in the score (default 0.3)"},
    {"min-text-cosine", "X", "ignore title similarity below X (default 0.5)"},
    {"ranker", "R", "evidence (default: the score below) or learned (the learned ranker of "
                    "docs/evaluation.md, refitted on the run's baskets; reasons as below)"},
    {"threads", "N", "learned: CPU threads (default: all cores)"},
    {"cold-slots", "N", "learned: the last N of the top 10 go to never-bought products (default 0)"},
    {"learn-folds", "K", "learned: fit the ranker on K validation splits of the run's baskets (default 6)"},
};

static const af_cmd_spec SPEC = {
    "recommend",
    "--run DIR --basket \"id1,id2,...\" [--k 10]",
    "Recommends products for a basket from a run folder's rules, co-purchase counts and\n"
    "title similarity. score = best rule confidence (rule X -> {c}, X in the basket)\n"
    "+ best co-purchase cosine count(b,c)/sqrt(n_b n_c) + W x best title cosine. Prints\n"
    "one line per product: rank, id, score, name, and its reasons. --ranker learned ranks by\n"
    "the learned ranker instead (its score; the reasons are the same evidence).",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

static af_status run(const af_args *a, af_error *err) {
  const char *dir, *basket;
  AF_TRY(af_arg_required(a, "run", &dir, err));
  AF_TRY(af_arg_required(a, "basket", &basket, err));
  af_recommend_options o;
  af_recommend_default_options(&o);
  int64_t k;
  AF_TRY(af_arg_i64(a, "k", 10, 1, 100000, &k, err));
  AF_TRY(af_arg_f64(a, "text-weight", o.text_weight, 0, 1e6, &o.text_weight, err));
  AF_TRY(af_arg_f64(a, "min-text-cosine", o.min_text_cosine, -1, 1, &o.min_text_cosine, err));
  o.k = (int)k;
  const char *ranker = af_arg_str(a, "ranker");
  if (ranker && strcmp(ranker, "evidence") && strcmp(ranker, "learned"))
    return af_error_set(err, AF_ERR_ARG, "--ranker: expected evidence or learned, got '%s'",
                        ranker);
  o.learned = ranker && !strcmp(ranker, "learned");
  int64_t threads;
  AF_TRY(af_arg_i64(a, "threads", 0, 0, 4096, &threads, err));
  o.threads = (int)threads;
  const char *learned_only = af_arg_str(a, "cold-slots") ? "cold-slots"
                             : af_arg_str(a, "learn-folds") ? "learn-folds" : NULL;
  if (learned_only && !o.learned)
    return af_error_set(err, AF_ERR_ARG, "--%s: a choice of the learned ranker "
                        "(--ranker learned)", learned_only);
  int64_t slots, folds;
  AF_TRY(af_arg_i64(a, "cold-slots", 0, 0, AF_EVAL_MAX_COLD_SLOTS, &slots, err));
  AF_TRY(af_arg_i64(a, "learn-folds", o.learn_folds, 1, AF_EVAL_MAX_LEARN_FOLDS, &folds, err));
  o.cold_slots = (int)slots, o.learn_folds = (int)folds;
  /* split the basket on commas; ids are trimmed as the catalog's are */
  size_t len = strlen(basket);
  char *buf = af_malloc(len + 1, 1, err);
  const char **ids = af_malloc(len / 2 + 2, sizeof *ids, err);
  if (!buf || !ids) {
    free(buf);
    free(ids);
    return AF_ERR_NOMEM;
  }
  memcpy(buf, basket, len + 1);
  int n = 0;
  for (char *s = buf;;) {
    char *comma = strchr(s, ',');
    if (comma)
      *comma = '\0';
    af_normalize_ws(s);
    if (*s)
      ids[n++] = s;
    if (!comma)
      break;
    s = comma + 1;
  }
  af_status st = AF_OK;
  if (n == 0)
    st = af_error_set(err, AF_ERR_ARG, "--basket: no product ids in '%s'", basket);
  af_recommendations r;
  if (st == AF_OK)
    st = af_recommend(dir, ids, n, &o, &r, err);
  if (st == AF_OK) {
    const af_catalog *p = &r.products;
    if (r.n == 0)
      printf("no recommendations: nothing in the run links these products to others\n");
    for (int i = 0; i < r.n; i++) {
      const af_recommendation *x = &r.recs[i];
      printf("%2d. %s  %.3f  %s\n", i + 1, p->ids[x->product], x->score, p->names[x->product]);
      if (x->rule_antecedent)
        printf("      rule: %s -> %s (confidence %.3f, lift %.2f, %lld baskets)\n",
               x->rule_antecedent, p->names[x->product], x->rule_confidence, x->rule_lift,
               (long long)x->rule_count);
      if (x->cop_with >= 0)
        printf("      bought with %s in %lld baskets (lift %.2f, cosine %.3f)\n",
               p->names[x->cop_with], (long long)x->cop_count, x->cop_lift, x->cop_cosine);
      if (x->text_with >= 0)
        printf("      title similar to %s (cosine %.3f)\n", p->names[x->text_with], x->text_cosine);
    }
    af_recommendations_free(&r);
  }
  free(buf);
  free(ids);
  return st;
}

int af_cmd_recommend(int argc, char **argv) { return af_cli_main(&SPEC, argc, argv, run); }
