/* affinity associate: complements and substitutes of every product. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assoc_input.h"
#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    AF_ASSOC_INPUT_FLAGS,
    {"embeddings", "E.h5", "product embeddings (affinity embed); or --model"},
    {"model", "M.h5", "encoder checkpoint: embed the catalog in memory"},
    {"k", "N", "complements and substitutes per product (default 10)"},
    {"min-count", "N", "pairs bought together in fewer baskets carry no evidence (default 2)"},
    {"text-k", "N", "text neighbours with sales used to back off thin histories (default 20)"},
    {"history-prior", "X", "own-history weight n/(n+X) of a product bought in n baskets (default 5)"},
    {"text-min-cosine", "X", "back-off neighbours need at least this text cosine (default 0.4)"},
    {"text-alpha", "X", "adaptive text back-off weight for never-sold candidates; 0 = co-purchase (F) only (default 0)"},
    {"text-beta", "X", "back-off weight alpha / (1 + count / X) for a candidate in count baskets (default 4)"},
    {"rank-k", "N", "reciprocal ranks 1 / (N + rank) (default 10)"},
    {"text-pool", "N", "text neighbours ranked for the back-off term (default 100)"},
    {"text-mode", "M", "back-off: scaled (default), ranks, or merge (docs/fusion.md)"},
    {"query-history", NULL, "scale the back-off weight by the product's own thinness 1/(1 + n/text-beta) too"},
    {"sub-pool", "N", "text neighbours examined for substitutes (default 50)"},
    {"sub-min-cosine", "X", "minimum text cosine of a substitute (default 0.6)"},
    {"sub-max-lift", "X", "maximum co-purchase lift of a substitute (default 1)"},
    {"out", "FILE", "associations CSV (required)"},
};

static const af_cmd_spec SPEC = {
    "associate",
    "--catalog F --id-column C --text-column C [--category-column C ...] --baskets F "
    "[--order-column C --item-column C | --baskets-format lines] (--embeddings E.h5 | --model M.h5) "
    "[--k 10] [--min-count 2] --out associations.csv",
    "For every catalog product, its top complements (co-purchase evidence, backed off to\n"
    "text neighbours where the history is thin or absent) and substitutes (similar text,\n"
    "same category, lift <= 1 or never bought together). Output columns:\n"
    "product_id,product,related_id,related,type,score,count,lift,cosine (docs/fusion.md).",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

int af_cmd_associate(int argc, char **argv) {
  af_args a;
  int started = af_cli_start(&SPEC, argc, argv, &a);
  if (started >= 0)
    return started;
  af_error err = {0};
  af_assoc_input ai = {0};
  float *emb = NULL;
  int d = 0;
  af_fuse_result res = {0};
  af_fuse_options opt;
  af_fuse_default_options(&opt);
  const char *out;
  int64_t k, min_count, text_k, sub_pool, threads, rank_k, text_pool;
  af_status st;
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "k", opt.k, 1, 1000, &k, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "min-count", opt.min_count, 1, INT32_MAX, &min_count, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "text-k", opt.text_k, 0, 1000, &text_k, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "sub-pool", opt.sub_pool, 0, 2000, &sub_pool, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "threads", 0, 0, 4096, &threads, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "rank-k", opt.rank_k, 0, 1000000, &rank_k, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "text-pool", opt.text_pool, 0, 1000, &text_pool, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "text-alpha", opt.text_alpha, 0, 1e6, &opt.text_alpha, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "text-beta", opt.text_beta, 1e-9, 1e12, &opt.text_beta, &err)) !=
          AF_OK ||
      (st = af_arg_f64(&a, "history-prior", opt.history_prior, 0, 1e12, &opt.history_prior,
                       &err)) != AF_OK ||
      (st = af_arg_f64(&a, "text-min-cosine", opt.text_min_cosine, -1, 1, &opt.text_min_cosine,
                       &err)) != AF_OK ||
      (st = af_arg_f64(&a, "sub-min-cosine", opt.sub_min_cosine, -1, 1, &opt.sub_min_cosine,
                       &err)) != AF_OK ||
      (st = af_arg_f64(&a, "sub-max-lift", opt.sub_max_lift, 0, 1e12, &opt.sub_max_lift, &err)) !=
          AF_OK)
    goto fail;
  opt.k = (int)k;
  opt.min_count = min_count;
  opt.text_k = (int)text_k;
  opt.sub_pool = (int)sub_pool;
  opt.rank_k = (int)rank_k;
  opt.query_history = af_arg_flag(&a, "query-history");
  st = af_fuse_text_mode_parse(af_arg_str(&a, "text-mode"), &opt.text_mode, &err);
  if (st != AF_OK)
    goto fail;
  opt.text_pool = (int)text_pool;
  opt.threads = (int)threads;
  if ((st = af_assoc_input_load(&a, &ai, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report(SPEC.cmd, &ai.in, stderr);
  if ((st = af_assoc_vectors(&a, &ai.in.catalog, af_arg_str(&a, "embeddings"),
                             af_arg_str(&a, "model"), &emb, &d, &err)) != AF_OK)
    goto fail;
  double t0 = af_now_seconds();
  af_fuse_input in = {ai.in.catalog.n, d, emb, &ai.in.baskets, ai.n_levels, ai.levels};
  if ((st = af_fuse_run(&opt, &in, &res, &err)) != AF_OK ||
      (st = af_fuse_write_csv(out, (const char *const *)ai.in.catalog.ids,
                              (const char *const *)ai.in.catalog.names, &res, &err)) != AF_OK)
    goto fail;
  int64_t nc = 0;
  for (int64_t i = 0; i < res.n; i++)
    nc += res.rows[i].type == AF_ASSOC_COMPLEMENT;
  fprintf(stderr,
          "affinity associate: %lld products, %lld complement and %lld substitute rows in %.1f s "
          "-> %s\n",
          (long long)ai.in.catalog.n, (long long)nc, (long long)(res.n - nc),
          af_now_seconds() - t0, out);
  af_fuse_result_free(&res);
  free(emb);
  af_assoc_input_free(&ai);
  af_args_free(&a);
  return 0;
fail:
  af_fuse_result_free(&res);
  free(emb);
  af_assoc_input_free(&ai);
  af_args_free(&a);
  return af_cli_fail(SPEC.cmd, &err);
}
