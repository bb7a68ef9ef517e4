/* affinity cooccur: pair co-occurrence statistics from baskets. */
#include <math.h>
#include <stdio.h>

#include "basket_input.h"
#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    AF_BASKET_INPUT_FLAGS,
    {"min-count", "N", "keep pairs bought together in at least N baskets (default 1)"},
    {"out", "FILE", "output CSV (required)"},
};

static const af_cmd_spec SPEC = {
    "cooccur",
    "--baskets F --out pairs.csv [flags]",
    "Counts, for every pair of items, the baskets holding both, and writes one row per pair\n"
    "(item_a < item_b in load order): item_a,item_b,count,support,confidence_ab,confidence_ba,\n"
    "lift,leverage,conviction,jaccard,cosine (+ name_a,name_b with --catalog). Conviction of a\n"
    "pair with confidence_ab 1 is written as inf.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

int af_cmd_cooccur(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  af_basket_input in = {0};
  af_cooccur co = {0};
  const char *out;
  int64_t min_count;
  af_status st;
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "min-count", 1, 1, INT32_MAX, &min_count, &err)) != AF_OK ||
      (st = af_basket_input_load(&a, &in, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report("cooccur", &in, stderr);
  af_item_labels lab = af_basket_input_labels(&in);
  if ((st = af_cooccur_build(&in.baskets, min_count, &co, &err)) != AF_OK ||
      (st = af_cooccur_write_csv(out, &co, min_count, &lab, &err)) != AF_OK)
    goto fail;
  fprintf(stderr, "affinity cooccur: %lld pairs with count >= %lld -> %s\n",
          (long long)af_cooccur_n_pairs(&co), (long long)min_count, out);
  af_cooccur_free(&co);
  af_basket_input_free(&in);
  af_args_free(&a);
  return 0;
fail:
  af_cooccur_free(&co);
  af_basket_input_free(&in);
  af_args_free(&a);
  return af_cli_fail("cooccur", &err);
}
