/* affinity rules: frequent itemsets (FP-growth) and association rules. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basket_input.h"
#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    AF_BASKET_INPUT_FLAGS,
    {"min-support", "S", "minimum itemset support, a fraction of baskets in (0, 1] (required)"},
    {"min-confidence", "C", "minimum rule confidence in [0, 1] (required)"},
    {"min-lift", "L", "minimum rule lift (default 0: no filter)"},
    {"max-len", "N", "longest itemset (antecedent + consequent), default 0: no limit"},
    {"max-consequent", "N", "most items in a consequent (default 0: any; 1 = arules/pyfim rules)"},
    {"max-rules", "N", "keep the first N rules in the output order (default 0: all)"},
    {"out", "FILE", "output: .csv (for people) or .jsonl (one rule per line) (required)"},
};

static const af_cmd_spec SPEC = {
    "rules",
    "--baskets F --min-support S --min-confidence C --out FILE.{csv,jsonl} [flags]",
    "Finds frequent itemsets with FP-growth and every association rule A -> C that splits one\n"
    "into two non-empty sides with confidence and lift above the thresholds. An itemset is\n"
    "frequent when count / baskets >= min-support. Rules are sorted by lift, then confidence,\n"
    "then count (descending), then items. Conviction of a rule with confidence 1 is written\n"
    "as inf in CSV and null in JSONL.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

int af_cmd_rules(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  af_basket_input in = {0};
  af_itemsets fi = {0};
  af_rules rs = {0};
  const char *out, *dummy;
  double min_support, min_conf, min_lift;
  int64_t max_len, max_cons, max_rules;
  af_status st;
  int jsonl = 0;
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = af_arg_required(&a, "min-support", &dummy, &err)) != AF_OK ||
      (st = af_arg_required(&a, "min-confidence", &dummy, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "min-support", 0, 0, 1, &min_support, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "min-confidence", 0, 0, 1, &min_conf, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "min-lift", 0, 0, 1e300, &min_lift, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-len", 0, 0, 31, &max_len, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-consequent", 0, 0, 30, &max_cons, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "max-rules", 0, 0, INT64_MAX, &max_rules, &err)) != AF_OK)
    goto fail;
  if (min_support <= 0) {
    st = af_error_set(&err, AF_ERR_ARG, "--min-support must be > 0");
    goto fail;
  }
  if (af_has_suffix(out, ".jsonl")) {
    jsonl = 1;
  } else if (!af_has_suffix(out, ".csv")) {
    st = af_error_set(&err, AF_ERR_ARG, "--out %s: use a .csv or .jsonl file name", out);
    goto fail;
  }
  double t0 = af_now_seconds();
  if ((st = af_basket_input_load(&a, &in, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report("rules", &in, stderr);
  double t1 = af_now_seconds();
  if ((st = af_fpgrowth(&in.baskets, min_support, (int)max_len, &fi, &err)) != AF_OK)
    goto fail;
  double t2 = af_now_seconds();
  af_rules_options ro = {.min_confidence = min_conf,
                        .min_lift = min_lift,
                        .max_consequent = (int)max_cons,
                        .max_rules = max_rules};
  if ((st = af_rules_generate(&fi, &ro, &rs, &err)) != AF_OK)
    goto fail;
  double t3 = af_now_seconds();
  af_item_labels lab = af_basket_input_labels(&in);
  if ((st = af_rules_write(out, jsonl, &fi, &rs, &lab, &err)) != AF_OK)
    goto fail;
  fprintf(stderr,
          "affinity rules: min count %lld; %lld frequent itemsets; %lld rules -> %s "
          "(load %.3fs, itemsets %.3fs, rules %.3fs, write %.3fs)\n",
          (long long)fi.min_count, (long long)fi.n_itemsets, (long long)rs.n_rules, out, t1 - t0,
          t2 - t1, t3 - t2, af_now_seconds() - t3);
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  af_basket_input_free(&in);
  af_args_free(&a);
  return 0;
fail:
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  af_basket_input_free(&in);
  af_args_free(&a);
  return af_cli_fail("rules", &err);
}
