/* affinity itemcf: top-k item-CF neighbours from co-occurrence. */
#include <stdio.h>
#include <stdlib.h>

#include "basket_input.h"
#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    AF_BASKET_INPUT_FLAGS,
    {"k", "N", "neighbours per item (default 10)"},
    {"measure", "M", "cosine (default) or lift"},
    {"min-count", "N", "ignore pairs bought together in fewer than N baskets (default 2)"},
    {"out", "FILE", "output CSV: item,rank,neighbor,score,count (+ names with --catalog) (required)"},
};

static const af_cmd_spec SPEC = {
    "itemcf",
    "--baskets F --out neighbors.csv [--k N] [--measure cosine|lift] [--min-count N]",
    "For every item, the k items most often bought with it, scored by cosine\n"
    "count(a,b)/sqrt(count(a) count(b)) or by lift; ties go to the item loaded first.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

int af_cmd_itemcf(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  af_basket_input in = {0};
  af_cooccur co = {0};
  int32_t *nbr = NULL;
  double *score = NULL;
  const char *out;
  int64_t k, min_count;
  const char *ms = af_arg_str(&a, "measure");
  af_itemcf_measure measure = AF_ITEMCF_COSINE;
  af_status st;
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "k", 10, 1, 100000, &k, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "min-count", 2, 1, INT32_MAX, &min_count, &err)) != AF_OK ||
      (ms && (st = af_itemcf_measure_parse(ms, &measure, &err)) != AF_OK) ||
      (st = af_basket_input_load(&a, &in, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report("itemcf", &in, stderr);
  af_item_labels lab = af_basket_input_labels(&in);
  if ((st = af_cooccur_build(&in.baskets, min_count, &co, &err)) != AF_OK)
    goto fail;
  nbr = af_malloc((size_t)co.n_items * (size_t)k + 1, sizeof *nbr, &err);
  score = af_malloc((size_t)co.n_items * (size_t)k + 1, sizeof *score, &err);
  if (!nbr || !score) {
    st = AF_ERR_NOMEM;
    goto fail;
  }
  if ((st = af_itemcf_topk(&co, measure, (int)k, min_count, nbr, score, &err)) != AF_OK ||
      (st = af_itemcf_write_csv(out, &co, (int)k, nbr, score, &lab, &err)) != AF_OK)
    goto fail;
  fprintf(stderr, "affinity itemcf: top %lld neighbours of %d items -> %s\n", (long long)k,
          co.n_items, out);
  free(nbr);
  free(score);
  af_cooccur_free(&co);
  af_basket_input_free(&in);
  af_args_free(&a);
  return 0;
fail:
  free(nbr);
  free(score);
  af_cooccur_free(&co);
  af_basket_input_free(&in);
  af_args_free(&a);
  return af_cli_fail("itemcf", &err);
}
