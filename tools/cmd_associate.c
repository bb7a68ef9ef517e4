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
    {"embeddings", "E.h5", "product embeddings (affinity embed, h5py HDF5 or .npy); or --model"},
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
    {"complements", "M", "complement scores: fusion (default), ease or learned (substitutes stay fusion's)"},
    {"cold-slots", "N", "learned: the last N of each product's 10 best complements are never-bought products (default 0)"},
    {"learn-folds", "K", "learned: fit the ranker on K validation splits of the baskets (default 6)"},
    {"ease-lambda", "X", "EASE: L2 weight (default 100; `affinity eval` chooses it on a validation split)"},
    {"ease-min-count", "N", "EASE: model products in at least N baskets (default 2)"},
    {"ease-max-items", "N", "EASE: size limit of the dense solve; above it the N most-bought (default 5000)"},
    {"memory-limit", "SIZE",
     "memory for the fusion model, its text-neighbour pools and the rows, e.g. 512M, 8G "
     "(default: half the RAM; or $AF_MEMORY_LIMIT)"},
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

static af_status ease_options(const af_args *a, af_ease_options *o, af_error *err) {
  *o = (af_ease_options)AF_EASE_DEFAULT_OPTIONS;
  AF_TRY(af_arg_f64(a, "ease-lambda", o->lambda, 1e-9, 1e12, &o->lambda, err));
  AF_TRY(af_arg_i64(a, "ease-min-count", o->min_count, 1, INT32_MAX, &o->min_count, err));
  return af_arg_i64(a, "ease-max-items", o->max_items, 1, 46340, &o->max_items, err);
}

/* The learned ranker's flags (docs/evaluation.md, "Cold slots", "Folds"). */
typedef struct {
  int cold_slots, folds;
} learned_flags;

/* Reads them before any work: only with --complements learned, and in range. */
static af_status parse_learned_flags(const af_args *a, learned_flags *lf, af_error *err) {
  const char *c = af_arg_str(a, "complements");
  const char *learned_only = af_arg_str(a, "cold-slots") ? "cold-slots"
                             : af_arg_str(a, "learn-folds") ? "learn-folds" : NULL;
  if (learned_only && !(c && strcmp(c, "learned") == 0))
    return af_error_set(err, AF_ERR_ARG, "--%s: a choice of the learned ranker "
                        "(--complements learned)", learned_only);
  int64_t slots, folds;
  AF_TRY(af_arg_i64(a, "cold-slots", 0, 0, AF_EVAL_MAX_COLD_SLOTS, &slots, err));
  AF_TRY(af_arg_i64(a, "learn-folds", AF_EVAL_DEFAULT_LEARN_FOLDS, 1, AF_EVAL_MAX_LEARN_FOLDS,
                    &folds, err));
  lf->cold_slots = (int)slots, lf->folds = (int)folds;
  return AF_OK;
}

/* --complements learned: the learned ranker (docs/evaluation.md) with each
 * product as a one-item query. */
static af_status learned_rows(const af_args *a, const af_assoc_input *ai, const float *emb, int d,
                              const af_fuse_options *fo, const learned_flags *lf, int k,
                              int32_t *related, float *score, af_error *err) {
  const int64_t N = ai->in.catalog.n;
  int32_t *codes[2] = {NULL, NULL}, n_codes[2] = {0, 0};
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_LEARNED, "learned");
  af_status st = ease_options(a, &m.ease, err);
  m.emb = emb, m.d = d, m.fuse = *fo, m.min_count = fo->min_count;
  m.learn_cold_slots = lf->cold_slots, m.learn_folds = lf->folds;
  m.n_levels = ai->n_levels < 2 ? ai->n_levels : 2;
  for (int l = 0; st == AF_OK && l < m.n_levels; l++) {
    codes[l] = af_malloc((size_t)N + 1, sizeof **codes, err);
    st = codes[l] ? af_eval_category_codes(ai->levels[l], N, codes[l], &n_codes[l], err)
                  : AF_ERR_NOMEM;
  }
  m.category = (const int32_t *const *)codes, m.n_codes = n_codes;
  if (st == AF_OK)
    st = af_eval_learned_complements(&m, &ai->in.baskets, k, fo->threads, related, score, err);
  free(codes[0]), free(codes[1]);
  return st;
}

/* --complements ease|learned: their complement rows replace fusion's. */
static af_status other_complements(const af_args *a, const af_assoc_input *ai, const float *emb,
                                   int d, const af_fuse_options *fo, const learned_flags *lf,
                                   int k, af_fuse_result *res, af_error *err) {
  const char *c = af_arg_str(a, "complements");
  if (!c || strcmp(c, "fusion") == 0)
    return AF_OK;
  if (strcmp(c, "learned") == 0) {
    const int64_t N = ai->in.catalog.n;
    int32_t *related = af_malloc((size_t)N * k + 1, sizeof *related, err); /* (N, k) */
    float *score = af_malloc((size_t)N * k + 1, sizeof *score, err);       /* (N, k) */
    af_status st = related && score ? learned_rows(a, ai, emb, d, fo, lf, k, related, score, err)
                                    : AF_ERR_NOMEM;
    if (st == AF_OK)
      st = af_fuse_replace_complements(&ai->in.baskets, k, related, score, emb, d, res, err);
    free(related), free(score);
    return st;
  }
  if (strcmp(c, "ease") != 0)
    return af_error_set(err, AF_ERR_ARG, "--complements: expected fusion, ease or learned, got '%s'",
                        c);
  af_ease_options o;
  AF_TRY(ease_options(a, &o, err));
  af_ease_model m = {0};
  AF_TRY(af_ease_fit(&ai->in.baskets, &o, &m, err));
  fprintf(stderr, "affinity associate: EASE modelled %lld of %lld products (lambda %g) in %.1f s\n",
          (long long)m.n, (long long)m.n_eligible, o.lambda, m.seconds);
  af_status st = af_ease_complements(&m, &ai->in.baskets, k, emb, d, res, err);
  af_ease_free(&m);
  return st;
}

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
          AF_OK ||
      (af_arg_str(&a, "memory-limit") &&
       (st = af_memory_limit_parse(af_arg_str(&a, "memory-limit"), &opt.memory_limit, &err)) !=
           AF_OK))
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
  learned_flags lf = {0, AF_EVAL_DEFAULT_LEARN_FOLDS};
  if ((st = parse_learned_flags(&a, &lf, &err)) != AF_OK ||
      (st = af_assoc_input_load(&a, &ai, &err)) != AF_OK)
    goto fail;
  af_basket_input_print_report(SPEC.cmd, &ai.in, stderr);
  if ((st = af_assoc_vectors(&a, &ai.in.catalog, af_arg_str(&a, "embeddings"),
                             af_arg_str(&a, "model"), &emb, &d, &err)) != AF_OK)
    goto fail;
  double t0 = af_now_seconds();
  af_fuse_input in = {ai.in.catalog.n, d, emb, &ai.in.baskets, ai.n_levels, ai.levels};
  if ((st = af_fuse_run(&opt, &in, &res, &err)) != AF_OK ||
      (st = other_complements(&a, &ai, emb, d, &opt, &lf, (int)k, &res, &err)) != AF_OK ||
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
