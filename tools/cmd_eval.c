/* affinity eval: every method on held-out baskets, warm and cold-start. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assoc_input.h"
#include "affinity.h"
#include "cli.h"
#include "commands.h"

static const af_flag_spec FLAGS[] = {
    AF_ASSOC_INPUT_FLAGS,
    {"test-baskets", "FILE", "held-out baskets (same format) instead of a random split"},
    {"seed", "N", "split, cold products and hidden items (default 42)"},
    {"test-fraction", "X", "share of baskets held out (default 0.2)"},
    {"cold-fraction", "X", "share of sold products removed from training (default 0.1)"},
    {"methods", "LIST", "comma list of popularity,rules,itemcf,text,fusion (default all)"},
    {"embeddings", "E.h5", "pretrained product embeddings (method name 'pretrained')"},
    {"model", "M.h5", "pretrained checkpoint: embed the catalog in memory"},
    {"finetuned-embeddings", "E.h5", "fine-tuned embeddings (method name 'finetuned')"},
    {"finetuned-model", "M.h5", "fine-tuned checkpoint"},
    {"text-embeddings", "NAME=E.h5", "another text model's embeddings (repeatable)"},
    {"text-model", "NAME=M.h5", "another text model checkpoint (repeatable)"},
    {"text-agg", "A", "text query: mean (default), max, or both"},
    {"min-count", "N", "item-CF: ignore pairs seen in fewer baskets (default 2)"},
    {"rules-min-count", "N", "rules: itemset support in training baskets (default 3)"},
    {"rules-max-len", "N", "rules: longest itemset (default 3)"},
    {"fusion-min-count", "N", "fusion: co-purchase evidence threshold (default 2)"},
    {"text-k", "N", "fusion: text neighbours with sales used to back off (default 20)"},
    {"history-prior", "X", "fusion: own-history weight n/(n+X) (default 5)"},
    {"text-min-cosine", "X", "fusion: back-off neighbours need at least this cosine (default 0.4)"},
    {"text-alpha", "X", "fusion: adaptive text back-off weight alpha; 0 = off (default 0)"},
    {"text-beta", "X", "fusion: lambda = alpha / (1 + count / X) (default 4)"},
    {"rank-k", "N", "fusion: reciprocal ranks 1 / (N + rank) (default 10)"},
    {"text-pool", "N", "fusion: text candidates ranked per query (default 100)"},
    {"query-history", NULL, "fusion back-off: scale lambda by the query items' thinness too"},
    {"text-mode", "M", "fusion back-off: scaled (default), ranks, or merge (docs/fusion.md)"},
    {"text-weight", "X", "fusion with --text-alpha 0: + X * text cosine to the query (default 0.05)"},
    {"cold-text-weight", "X", "fusion with --text-alpha 0: + X * (1 - history weight) * text cosine (default 0)"},
    {"validate", NULL, "evaluate on a split of the training baskets only (for tuning; never sees the test queries)"},
    {"index-ties", NULL, "order equal scores by catalog row only (default: by training popularity first)"},
    {"out", "FILE", "metrics JSON (required)"},
};

static const af_cmd_spec SPEC = {
    "eval",
    "--catalog F --baskets F [--test-baskets F] (--embeddings E.h5 | --model M.h5) "
    "[--finetuned-embeddings E2.h5 | --finetuned-model M2.h5] [--text-model NAME=M.h5 ...] "
    "--out eval.json",
    "Seeded 80/20 basket split (or --test-baskets), a seeded 10% of products removed from\n"
    "training (cold start). Hides one item per held-out basket, ranks every other product\n"
    "with each method: Recall@10/20, NDCG@10/20, MRR for warm and cold hidden items\n"
    "(docs/evaluation.md). Prints a table; writes JSON.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

typedef struct {
  char name[64];
  const char *emb_path, *model_path;
  float *emb;
  int d;
} text_source;

enum { MAX_TEXT = 16 };

static af_status add_named(const af_args *a, const char *flag, int is_model, text_source *ts,
                           int *n, af_error *err) {
  const char **vals = NULL;
  int nv = af_arg_all(a, flag, &vals);
  af_status st = AF_OK;
  for (int i = 0; i < nv && st == AF_OK; i++) {
    const char *eq = strchr(vals[i], '=');
    if (!eq || eq == vals[i] || !eq[1] || eq - vals[i] >= 48)
      st = af_error_set(err, AF_ERR_ARG, "--%s: expected NAME=PATH (short NAME), got '%s'", flag,
                        vals[i]);
    else if (*n >= MAX_TEXT)
      st = af_error_set(err, AF_ERR_ARG, "at most %d text models", MAX_TEXT);
    else {
      text_source *t = &ts[(*n)++];
      memset(t, 0, sizeof *t);
      snprintf(t->name, sizeof t->name, "%.*s", (int)(eq - vals[i]), vals[i]);
      if (is_model)
        t->model_path = eq + 1;
      else
        t->emb_path = eq + 1;
    }
  }
  free(vals);
  return st;
}

static int has_method(const char *list, const char *m) {
  size_t n = strlen(m);
  for (const char *p = list; p && *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && strncmp(p, m, n) == 0)
      return 1;
    p = c ? c + 1 : NULL;
  }
  return 0;
}

static af_status check_methods(const char *list, af_error *err) {
  static const char *known[] = {"popularity", "rules", "itemcf", "text", "fusion"};
  for (const char *p = list; p && *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
      ok |= strlen(known[i]) == len && strncmp(p, known[i], len) == 0;
    if (!ok)
      return af_error_set(err, AF_ERR_ARG, "--methods: unknown method '%.*s' (known: "
                          "popularity, rules, itemcf, text, fusion)", (int)len, p);
    p = c ? c + 1 : NULL;
  }
  return AF_OK;
}

typedef struct {
  char name[96];
  af_eval_result r;
} row;

static void print_table(const row *rows, int n, FILE *f) {
  static const char *gname[] = {"warm", "cold"};
  fprintf(f, "%-24s %-5s %8s %9s %9s %9s %9s %9s %8s\n", "method", "group", "queries",
          "Recall@10", "Recall@20", "NDCG@10", "NDCG@20", "MRR", "seconds");
  for (int i = 0; i < n; i++)
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++) {
      const af_eval_metrics *m = &rows[i].r.group[g];
      fprintf(f, "%-24s %-5s %8lld %9.4f %9.4f %9.4f %9.4f %9.4f %8.1f\n", rows[i].name,
              gname[g], (long long)m->n, m->recall[0], m->recall[1], m->ndcg[0], m->ndcg[1],
              m->mrr, rows[i].r.seconds);
    }
}

static af_status write_json(const char *path, const af_args *a, const af_assoc_input *ai,
                            const af_fuse_options *fo, double text_weight, double cold_text_weight,
                            const af_eval_split *sp, const af_eval_split_options *so,
                            const row *rows, int n, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  const char *test = af_arg_str(a, "test-baskets");
  fputs("{\n  \"catalog\": ", f);
  af_write_json_string(f, af_arg_str(a, "catalog"));
  fputs(",\n  \"baskets\": ", f);
  af_write_json_string(f, af_arg_str(a, "baskets"));
  fputs(",\n  \"test_baskets\": ", f);
  if (test)
    af_write_json_string(f, test);
  else
    fputs("null", f);
  fprintf(f,
          ",\n  \"products\": %lld,\n  \"protocol\": {\"split\": \"%s\", \"validation\": %s, \"seed\": %llu, "
          "\"test_fraction\": %.17g, \"cold_fraction\": %.17g, \"train_baskets\": %lld, "
          "\"test_baskets\": %lld, \"test_baskets_too_small\": %lld, \"cold_products\": %lld, "
          "\"queries\": %lld, \"cold_queries_seeded\": %lld, \"ks\": [%d, %d]},\n  \"methods\": [",
          (long long)ai->in.catalog.n, test ? "given" : "random",
          af_arg_flag(a, "validate") ? "true" : "false", (unsigned long long)so->seed,
          test ? 0.0 : so->test_fraction, test ? 0.0 : so->cold_fraction,
          (long long)sp->train.n_baskets, (long long)sp->n_test_baskets,
          (long long)sp->n_test_too_small, (long long)sp->n_cold_products,
          (long long)sp->n_queries, (long long)sp->n_cold_seeded, af_eval_ks[0], af_eval_ks[1]);
  static const char *gname[] = {"warm", "cold"};
  for (int i = 0; i < n; i++) {
    fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
    af_write_json_string(f, rows[i].name);
    fputs(", \"seconds\": ", f);
    af_write_json_number(f, rows[i].r.seconds);
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++) {
      const af_eval_metrics *m = &rows[i].r.group[g];
      fprintf(f, ", \"%s\": {\"queries\": %lld", gname[g], (long long)m->n);
      for (int k = 0; k < AF_EVAL_NK; k++) {
        fprintf(f, ", \"recall@%d\": ", af_eval_ks[k]);
        af_write_json_number(f, m->recall[k]);
        fprintf(f, ", \"ndcg@%d\": ", af_eval_ks[k]);
        af_write_json_number(f, m->ndcg[k]);
      }
      fputs(", \"mrr\": ", f);
      af_write_json_number(f, m->mrr);
      fputc('}', f);
    }
    fputc('}', f);
  }
  static const char *mode[] = {"scaled", "ranks", "merge"};
  int fused = 0; /* the fusion parameters, when a fusion row was evaluated */
  for (int i = 0; i < n; i++)
    fused |= strncmp(rows[i].name, "fusion-", 7) == 0;
  if (!fused)
    fputs("\n  ]\n}\n", f);
  else
    fprintf(f,
          "\n  ],\n  \"fusion\": {\"min_count\": %lld, \"text_k\": %d, \"history_prior\": %.17g, "
          "\"text_min_cosine\": %.17g, \"text_alpha\": %.17g, \"text_beta\": %.17g, "
          "\"text_mode\": \"%s\", \"text_pool\": %d, \"rank_k\": %d, \"query_history\": %s, "
          "\"text_weight\": %.17g, \"cold_text_weight\": %.17g}\n}\n",
          (long long)fo->min_count, fo->text_k, fo->history_prior, fo->text_min_cosine,
          fo->text_alpha, fo->text_beta, mode[fo->text_mode], fo->text_pool, fo->rank_k,
          fo->query_history ? "true" : "false", fo->text_alpha > 0 ? 0.0 : text_weight,
          fo->text_alpha > 0 ? 0.0 : cold_text_weight);
  return af_atomic_fclose(f, tmp, path, err);
}

int af_cmd_eval(int argc, char **argv) {
  af_error err = {0};
  af_args a;
  if (af_args_parse(&SPEC, argc, argv, &a, &err) != AF_OK)
    return af_cli_fail(SPEC.cmd, &err);
  if (a.help) {
    af_print_help(&SPEC, stdout);
    af_args_free(&a);
    return 0;
  }
  af_assoc_input ai = {0};
  af_baskets test = {0};
  af_eval_split sp = {0};
  text_source ts[MAX_TEXT];
  int n_text = 0;
  row *rows = NULL;
  int n_rows = 0;
  af_eval_split_options so;
  af_eval_split_default_options(&so);
  af_fuse_options fo;
  af_fuse_default_options(&fo);
  const char *out, *methods = af_arg_str(&a, "methods"), *agg = af_arg_str(&a, "text-agg");
  int64_t seed, min_count, rmin, rlen, fmin, text_k, threads, rank_k, text_pool;
  double text_weight, cold_text_weight;
  af_status st;
  if (!methods)
    methods = "popularity,rules,itemcf,text,fusion";
  if (!agg)
    agg = "mean";
  if ((st = af_arg_required(&a, "out", &out, &err)) != AF_OK ||
      (st = check_methods(methods, &err)) != AF_OK ||
      (strcmp(agg, "mean") && strcmp(agg, "max") && strcmp(agg, "both") &&
       (st = af_error_set(&err, AF_ERR_ARG, "--text-agg: expected mean, max or both, got '%s'",
                          agg))) ||
      (st = af_arg_i64(&a, "seed", 42, 0, INT64_MAX, &seed, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "test-fraction", so.test_fraction, 1e-9, 1 - 1e-9, &so.test_fraction,
                       &err)) != AF_OK ||
      (st = af_arg_f64(&a, "cold-fraction", so.cold_fraction, 0, 1 - 1e-9, &so.cold_fraction,
                       &err)) != AF_OK ||
      (st = af_arg_i64(&a, "min-count", 2, 1, INT32_MAX, &min_count, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "rules-min-count", 3, 1, INT32_MAX, &rmin, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "rules-max-len", 3, 2, 8, &rlen, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "fusion-min-count", fo.min_count, 1, INT32_MAX, &fmin, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "text-k", fo.text_k, 0, 1000, &text_k, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "history-prior", fo.history_prior, 0, 1e12, &fo.history_prior, &err)) !=
          AF_OK ||
      (st = af_arg_f64(&a, "text-min-cosine", fo.text_min_cosine, -1, 1, &fo.text_min_cosine,
                       &err)) != AF_OK ||
      (st = af_arg_f64(&a, "text-alpha", fo.text_alpha, 0, 1e6, &fo.text_alpha, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "text-beta", fo.text_beta, 1e-9, 1e12, &fo.text_beta, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "rank-k", fo.rank_k, 0, 1000000, &rank_k, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "text-pool", fo.text_pool, 0, 2000, &text_pool, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "text-weight", 0.05, -1e6, 1e6, &text_weight, &err)) != AF_OK ||
      (st = af_arg_f64(&a, "cold-text-weight", 0, -1e6, 1e6, &cold_text_weight, &err)) != AF_OK ||
      (st = af_arg_i64(&a, "threads", 0, 0, 4096, &threads, &err)) != AF_OK)
    goto done;
  if (fo.text_alpha > 0 && (af_arg_str(&a, "text-weight") || af_arg_str(&a, "cold-text-weight"))) {
    st = af_error_set(&err, AF_ERR_ARG,
                      "--text-weight and --cold-text-weight are the additive text term of "
                      "--text-alpha 0; the adaptive back-off (--text-alpha > 0) replaces them");
    goto done;
  }
  so.seed = (uint64_t)seed;
  fo.rank_k = (int)rank_k;
  fo.query_history = af_arg_flag(&a, "query-history");
  st = af_fuse_text_mode_parse(af_arg_str(&a, "text-mode"), &fo.text_mode, &err);
  if (st != AF_OK)
    goto done;
  fo.text_pool = (int)text_pool;
  fo.min_count = fmin;
  fo.text_k = (int)text_k;
  fo.threads = (int)threads;
  /* text sources */
  if (af_arg_str(&a, "embeddings") || af_arg_str(&a, "model")) {
    text_source *t = &ts[n_text++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, "pretrained");
    t->emb_path = af_arg_str(&a, "embeddings");
    t->model_path = af_arg_str(&a, "model");
  }
  if (af_arg_str(&a, "finetuned-embeddings") || af_arg_str(&a, "finetuned-model")) {
    text_source *t = &ts[n_text++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, "finetuned");
    t->emb_path = af_arg_str(&a, "finetuned-embeddings");
    t->model_path = af_arg_str(&a, "finetuned-model");
  }
  if ((st = add_named(&a, "text-embeddings", 0, ts, &n_text, &err)) != AF_OK ||
      (st = add_named(&a, "text-model", 1, ts, &n_text, &err)) != AF_OK)
    goto done;
  int want_text = has_method(methods, "text") || has_method(methods, "fusion");
  if (want_text && n_text == 0 && af_arg_str(&a, "methods")) {
    st = af_error_set(&err, AF_ERR_ARG,
                      "methods text and fusion need --embeddings or --model (or drop them from "
                      "--methods)");
    goto done;
  }
  if (want_text && n_text == 0)
    fprintf(stderr, "affinity eval: no --embeddings or --model: skipping text and fusion\n");
  /* data */
  if ((st = af_assoc_input_load(&a, &ai, &err)) != AF_OK)
    goto done;
  af_basket_input_print_report(SPEC.cmd, &ai.in, stderr);
  const char *test_path = af_arg_str(&a, "test-baskets");
  if (test_path) {
    af_baskets_options bo = {af_arg_str(&a, "baskets-format"), af_arg_str(&a, "order-column"),
                             af_arg_str(&a, "item-column"), ',', af_arg_flag(&a, "drop-unknown")};
    if ((st = af_baskets_load(test_path, &bo, &ai.in.catalog, &test, NULL, &err)) != AF_OK ||
        (st = af_eval_split_given(&ai.in.baskets, &test, so.seed, &sp, &err)) != AF_OK)
      goto done;
  } else if ((st = af_eval_split_random(&ai.in.baskets, &so, &sp, &err)) != AF_OK) {
    goto done;
  }
  if (af_arg_flag(&a, "validate")) {
    /* the same protocol inside the training baskets: the held-out queries
     * (and their cold products) are never seen */
    af_eval_split outer = sp;
    af_eval_split_options vo = so;
    vo.seed = so.seed + 1;
    memset(&sp, 0, sizeof sp);
    st = af_eval_split_random(&outer.train, &vo, &sp, &err);
    af_eval_split_free(&outer);
    if (st != AF_OK)
      goto done;
    fprintf(stderr, "affinity eval: validation split of the training baskets (seed %llu)\n",
            (unsigned long long)vo.seed);
  }
  fprintf(stderr,
          "affinity eval: %lld training baskets, %lld held out (%lld with < 2 items), %lld cold "
          "products; %lld queries\n",
          (long long)sp.train.n_baskets, (long long)sp.n_test_baskets,
          (long long)sp.n_test_too_small, (long long)sp.n_cold_products, (long long)sp.n_queries);
  if (want_text)
    for (int i = 0; i < n_text; i++)
      if ((st = af_assoc_vectors(&a, &ai.in.catalog, ts[i].emb_path, ts[i].model_path,
                                 &ts[i].emb, &ts[i].d, &err)) != AF_OK) {
        af_error_prefix(&err, "text model '%s': ", ts[i].name);
        goto done;
      }
  /* methods */
  af_eval_method ms[4 + 3 * MAX_TEXT];
  char names[4 + 3 * MAX_TEXT][96];
  int nm = 0;
  if (has_method(methods, "popularity"))
    af_eval_method_init(&ms[nm++], AF_EVAL_POPULARITY, "popularity");
  if (has_method(methods, "rules")) {
    af_eval_method_init(&ms[nm], AF_EVAL_RULES, "rules");
    ms[nm].rules_min_count = rmin;
    ms[nm++].rules_max_len = (int)rlen;
  }
  if (has_method(methods, "itemcf")) {
    af_eval_method_init(&ms[nm], AF_EVAL_ITEMCF, "itemcf");
    ms[nm++].min_count = min_count;
  }
  for (int i = 0; i < n_text; i++) {
    if (has_method(methods, "text"))
      for (int v = 0; v < 2; v++) {
        if ((v == 0 && !strcmp(agg, "max")) || (v == 1 && strcmp(agg, "mean") == 0))
          continue;
        snprintf(names[nm], sizeof names[nm], "text-%.48s%s", ts[i].name,
                 !strcmp(agg, "both") ? (v ? "-max" : "-mean") : "");
        af_eval_method_init(&ms[nm], AF_EVAL_TEXT, names[nm]);
        ms[nm].emb = ts[i].emb;
        ms[nm].d = ts[i].d;
        ms[nm++].text_max = v;
      }
    if (has_method(methods, "fusion")) {
      snprintf(names[nm], sizeof names[nm], "fusion-%.48s", ts[i].name);
      af_eval_method_init(&ms[nm], AF_EVAL_FUSION, names[nm]);
      ms[nm].emb = ts[i].emb;
      ms[nm].d = ts[i].d;
      ms[nm].fuse = fo;
      ms[nm].cold_text_weight = cold_text_weight;
      ms[nm++].text_weight = text_weight;
    }
  }
  rows = calloc((size_t)nm + 1, sizeof *rows);
  if (!rows) {
    st = af_error_set(&err, AF_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < nm; i++)
    ms[i].popularity_ties = !af_arg_flag(&a, "index-ties");
  for (int i = 0; i < nm; i++) {
    fprintf(stderr, "affinity eval: %s ...\n", ms[i].name);
    snprintf(rows[i].name, sizeof rows[i].name, "%.90s", ms[i].name);
    if ((st = af_eval_run(&ms[i], &sp, (int)threads, &rows[i].r, &err)) != AF_OK)
      goto done;
    n_rows++;
  }
  print_table(rows, n_rows, stdout);
  if ((st = write_json(out, &a, &ai, &fo, text_weight, cold_text_weight, &sp, &so, rows, n_rows, &err)) != AF_OK)
    goto done;
  fprintf(stderr, "affinity eval: wrote %s\n", out);
done:
  for (int i = 0; i < n_text; i++)
    free(ts[i].emb);
  free(rows);
  af_eval_split_free(&sp);
  af_baskets_free(&test);
  af_assoc_input_free(&ai);
  af_args_free(&a);
  return st == AF_OK ? 0 : af_cli_fail(SPEC.cmd, &err);
}
