/* affinity cooccur: pair co-occurrence statistics from baskets. */
#include <math.h>
#include <stdio.h>

#include "base/atomic_file.h"
#include "base/budget.h"
#include "basket_input.h"
#include "cli.h"
#include "commands.h"
#include "assoc/cooccur.h"
#include "base/out_format.h"

static const af_flag_spec FLAGS[] = {
    AF_BASKET_INPUT_FLAGS,
    {"min-count", "N", "keep pairs bought together in at least N baskets (default 1)"},
    {"memory-limit", "SIZE",
     "memory for the pairs, e.g. 512M, 8G (default: half the RAM; or $AF_MEMORY_LIMIT)"},
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

static af_status write_pairs(const char *out, const af_basket_input *in, const af_cooccur *co,
                             af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = af_atomic_fopen(out, tmp, err);
  if (!f)
    return err ? err->code : AF_ERR_IO;
  fputs("item_a,item_b,count,support,confidence_ab,confidence_ba,lift,leverage,conviction,jaccard,cosine",
        f);
  fputs(in->has_catalog ? ",name_a,name_b\n" : "\n", f);
  int64_t pos = 0, cnt;
  int32_t row = 0, a, b;
  while (af_cooccur_next(co, &pos, &row, &a, &b, &cnt)) {
    af_pair_stats s;
    af_pair_stats_compute(co->n_baskets, co->item_count[a], co->item_count[b], cnt, &s);
    af_write_csv_field(f, in->baskets.item_ids[a]);
    fputc(',', f);
    af_write_csv_field(f, in->baskets.item_ids[b]);
    fprintf(f, ",%lld,%.10g,%.10g,%.10g,%.10g,%.10g,", (long long)cnt, s.support, s.confidence_ab,
            s.confidence_ba, s.lift, s.leverage);
    if (isfinite(s.conviction))
      fprintf(f, "%.10g", s.conviction);
    else
      fputs("inf", f);
    fprintf(f, ",%.10g,%.10g", s.jaccard, s.cosine);
    if (in->has_catalog) {
      fputc(',', f);
      af_write_csv_field(f, in->catalog.names[a]);
      fputc(',', f);
      af_write_csv_field(f, in->catalog.names[b]);
    }
    fputc('\n', f);
  }
  return af_atomic_fclose(f, tmp, out, err);
}

int af_cmd_cooccur(int argc, char **argv) {
  af_error err = {0};
  af_args a;
  if (af_args_parse(&SPEC, argc, argv, &a, &err) != AF_OK)
    return af_cli_fail("cooccur", &err);
  if (a.help) {
    af_print_help(&SPEC, stdout);
    af_args_free(&a);
    return 0;
  }
  af_basket_input in = {0};
  af_cooccur co = {0};
  const char *out;
  int64_t min_count, mem_limit = 0;
  af_status st;
  const char *mem = af_arg_str(&a, "memory-limit");
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "min-count", 1, 1, INT32_MAX, &min_count, &err)) != AF_OK ||
      (mem && (st = af_memory_limit_parse(mem, &mem_limit, &err)) != AF_OK) ||
      (st = af_basket_input_load(&a, &in, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report("cooccur", &in, stderr);
  if ((st = af_cooccur_build_limited(&in.baskets, min_count, mem_limit, &co, &err)) != AF_OK ||
      (st = write_pairs(out, &in, &co, &err)) != AF_OK)
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
