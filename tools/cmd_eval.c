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
    {"methods", "LIST", "comma list of popularity,rules,itemcf,itemknn,ease,text,fusion,learned (default all)"},
    {"embeddings", "E.h5", "pretrained product embeddings, HDF5 or .npy (method name 'pretrained')"},
    {"model", "M.h5", "pretrained checkpoint: embed the catalog in memory"},
    {"finetuned-embeddings", "E.h5", "fine-tuned embeddings (method name 'finetuned')"},
    {"finetuned-model", "M.h5", "fine-tuned checkpoint"},
    {"text-embeddings", "NAME=E.h5", "another text model's embeddings (repeatable)"},
    {"text-model", "NAME=M.h5", "another text model checkpoint (repeatable)"},
    {"text-agg", "A", "text query: mean (default), max, or both"},
    {"min-count", "N", "item-CF: ignore pairs seen in fewer baskets (default 2)"},
    {"ease-lambda", "X", "EASE: L2 weight (default: chosen on a validation split of the training baskets)"},
    {"ease-min-count", "N", "EASE: model products in at least N training baskets (default 2)"},
    {"ease-max-items", "N", "EASE: size limit of the dense solve; above it the N most-bought (default 5000)"},
    {"knn-k", "N", "item-KNN: neighbours kept per product (default 100)"},
    {"knn-shrink", "X", "item-KNN: shrinkage (default: chosen on the validation split)"},
    {"learn-pool", "N", "learned: candidates reranked per query from each of EASE, fusion, text, item-CF (default 50)"},
    {"learn-cold-weight", "X", "learned: weight of the validation queries that hide a cold product (default 1)"},
    {"learn-cold-slots", "N", "learned: ranks 11-N..10 go to the N best never-bought products of a cold ranker (default 0)"},
    {"learn-folds", "K", "learned: fit the ranker on the queries of K validation splits (seeds seed+1 .. seed+K; default 6)"},
    {"learn-text-max", NULL, "learned: add the text cosine's max over the query items as a feature and a pool source"},
    {"learn-l2", "X", "learned: L2 weight of the ranker (default 0.001)"},
    {"learn-loss", "L", "learned: pairwise (logistic, default) or listwise (softmax over the pool)"},
    {"ranks-out", "FILE", "CSV of each query's hidden product and its rank under every method"},
    {"bootstrap-reference", "NAME", "method the intervals are against (default: the best co-purchase baseline)"},
    {"bootstrap", "N", "paired bootstrap resamples for the Recall@10 intervals; 0 = none (default 2000)"},
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
  static const char *known[] = {"popularity", "rules", "itemcf", "itemknn", "ease", "text",
                                "fusion", "learned"};
  for (const char *p = list; p && *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
      ok |= strlen(known[i]) == len && strncmp(p, known[i], len) == 0;
    if (!ok)
      return af_error_set(err, AF_ERR_ARG, "--methods: unknown method '%.*s' (known: "
                          "popularity, rules, itemcf, itemknn, ease, text, fusion, learned)", (int)len, p);
    p = c ? c + 1 : NULL;
  }
  return AF_OK;
}

/* Everything one `affinity eval` run holds. */
typedef struct {
  af_args a;
  af_assoc_input ai;
  af_baskets test;
  af_eval_split sp;
  af_eval_split_options so;
  af_fuse_options fo;
  const char *out, *methods, *agg;
  int64_t min_count, rmin, rlen, threads, knn_k, n_boot, learn_pool, learn_cold_slots, learn_folds;
  double learn_l2, learn_cold_weight;
  int learn_listwise;
  int32_t *codes[2], n_codes[2];
  double text_weight, cold_text_weight, knn_shrink;
  af_ease_options ease;
  text_source ts[MAX_TEXT];
  int n_text, want_text;
  /* methods and their results */
  af_eval_method ms[8 + 4 * MAX_TEXT];
  char names[8 + 4 * MAX_TEXT][96];
  af_eval_row rows[8 + 4 * MAX_TEXT];
  int64_t *ranks[8 + 4 * MAX_TEXT];
  int nm, n_rows, reference;
  /* tuning on the validation split */
  double grid[2][16], score[2][16];
  af_eval_tuning tuning[2];
  int n_tuning;
} eval_run;

static const double SHRINK_GRID[] = {0, 5, 20, 50, 100};

static af_status parse_counts(eval_run *r, af_error *err) {
  const af_args *a = &r->a;
  int64_t seed, fmin, text_k, rank_k, text_pool;
  AF_TRY(af_arg_i64(a, "seed", 42, 0, INT64_MAX, &seed, err));
  AF_TRY(af_arg_i64(a, "min-count", AF_EVAL_DEFAULT_MIN_COUNT, 1, INT32_MAX, &r->min_count, err));
  AF_TRY(af_arg_i64(a, "rules-min-count", 3, 1, INT32_MAX, &r->rmin, err));
  AF_TRY(af_arg_i64(a, "rules-max-len", 3, 2, 8, &r->rlen, err));
  AF_TRY(af_arg_i64(a, "fusion-min-count", r->fo.min_count, 1, INT32_MAX, &fmin, err));
  AF_TRY(af_arg_i64(a, "text-k", r->fo.text_k, 0, 1000, &text_k, err));
  AF_TRY(af_arg_i64(a, "rank-k", r->fo.rank_k, 0, 1000000, &rank_k, err));
  AF_TRY(af_arg_i64(a, "text-pool", r->fo.text_pool, 0, 2000, &text_pool, err));
  AF_TRY(af_arg_i64(a, "threads", 0, 0, 4096, &r->threads, err));
  AF_TRY(af_arg_i64(a, "ease-min-count", r->ease.min_count, 1, INT32_MAX, &r->ease.min_count, err));
  AF_TRY(af_arg_i64(a, "ease-max-items", r->ease.max_items, 1, 46340, &r->ease.max_items, err));
  AF_TRY(af_arg_i64(a, "knn-k", 100, 1, 100000, &r->knn_k, err));
  AF_TRY(af_arg_i64(a, "bootstrap", 2000, 0, 1000000, &r->n_boot, err));
  AF_TRY(af_arg_i64(a, "learn-pool", 50, 1, 100, &r->learn_pool, err));
  AF_TRY(af_arg_i64(a, "learn-cold-slots", 0, 0, AF_EVAL_MAX_COLD_SLOTS, &r->learn_cold_slots, err));
  AF_TRY(af_arg_i64(a, "learn-folds", AF_EVAL_DEFAULT_LEARN_FOLDS, 1, AF_EVAL_MAX_LEARN_FOLDS, &r->learn_folds, err));
  if (r->n_boot == 1)
    return af_error_set(err, AF_ERR_ARG, "--bootstrap: 0 (off) or at least 2 resamples");
  r->so.seed = (uint64_t)seed;
  r->fo.min_count = fmin;
  r->fo.text_k = (int)text_k;
  r->fo.rank_k = (int)rank_k;
  r->fo.text_pool = (int)text_pool;
  r->fo.threads = (int)r->threads;
  return AF_OK;
}

static af_status parse_reals(eval_run *r, af_error *err) {
  const af_args *a = &r->a;
  af_fuse_options *fo = &r->fo;
  af_eval_split_options *so = &r->so;
  AF_TRY(af_arg_f64(a, "test-fraction", so->test_fraction, 1e-9, 1 - 1e-9, &so->test_fraction, err));
  AF_TRY(af_arg_f64(a, "cold-fraction", so->cold_fraction, 0, 1 - 1e-9, &so->cold_fraction, err));
  AF_TRY(af_arg_f64(a, "history-prior", fo->history_prior, 0, 1e12, &fo->history_prior, err));
  AF_TRY(af_arg_f64(a, "text-min-cosine", fo->text_min_cosine, -1, 1, &fo->text_min_cosine, err));
  AF_TRY(af_arg_f64(a, "text-alpha", fo->text_alpha, 0, 1e6, &fo->text_alpha, err));
  AF_TRY(af_arg_f64(a, "text-beta", fo->text_beta, 1e-9, 1e12, &fo->text_beta, err));
  AF_TRY(af_arg_f64(a, "text-weight", 0.05, -1e6, 1e6, &r->text_weight, err));
  AF_TRY(af_arg_f64(a, "cold-text-weight", 0, -1e6, 1e6, &r->cold_text_weight, err));
  AF_TRY(af_arg_f64(a, "knn-shrink", 10, 0, 1e12, &r->knn_shrink, err));
  AF_TRY(af_arg_f64(a, "learn-l2", 1e-3, 1e-12, 1e6, &r->learn_l2, err));
  AF_TRY(af_arg_f64(a, "learn-cold-weight", 1, 1e-6, 1e6, &r->learn_cold_weight, err));
  AF_TRY(af_arg_f64(a, "ease-lambda", r->ease.lambda, 1e-9, 1e12, &r->ease.lambda, err));
  if (fo->text_alpha > 0 && (af_arg_str(a, "text-weight") || af_arg_str(a, "cold-text-weight")))
    return af_error_set(err, AF_ERR_ARG,
                        "--text-weight and --cold-text-weight are the additive text term of "
                        "--text-alpha 0; the adaptive back-off (--text-alpha > 0) replaces them");
  fo->query_history = af_arg_flag(a, "query-history");
  return af_fuse_text_mode_parse(af_arg_str(a, "text-mode"), &fo->text_mode, err);
}

static af_status parse_options(eval_run *r, af_error *err) {
  af_eval_split_default_options(&r->so);
  af_fuse_default_options(&r->fo);
  r->ease = (af_ease_options)AF_EASE_DEFAULT_OPTIONS;
  r->methods = af_arg_str(&r->a, "methods");
  r->agg = af_arg_str(&r->a, "text-agg");
  if (!r->methods)
    r->methods = "popularity,rules,itemcf,itemknn,ease,text,fusion,learned";
  if (!r->agg)
    r->agg = "mean";
  AF_TRY(af_arg_required(&r->a, "out", &r->out, err));
  AF_TRY(check_methods(r->methods, err));
  const char *loss = af_arg_str(&r->a, "learn-loss");
  if (loss && strcmp(loss, "pairwise") && strcmp(loss, "listwise"))
    return af_error_set(err, AF_ERR_ARG, "--learn-loss: expected pairwise or listwise, got '%s'",
                        loss);
  r->learn_listwise = loss && !strcmp(loss, "listwise");
  if (strcmp(r->agg, "mean") && strcmp(r->agg, "max") && strcmp(r->agg, "both"))
    return af_error_set(err, AF_ERR_ARG, "--text-agg: expected mean, max or both, got '%s'",
                        r->agg);
  AF_TRY(parse_counts(r, err));
  return parse_reals(r, err);
}

static void add_source(eval_run *r, const char *name, const char *emb, const char *model) {
  if (!emb && !model)
    return;
  text_source *t = &r->ts[r->n_text++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->emb_path = emb;
  t->model_path = model;
}

static af_status text_sources(eval_run *r, af_error *err) {
  const af_args *a = &r->a;
  add_source(r, "pretrained", af_arg_str(a, "embeddings"), af_arg_str(a, "model"));
  add_source(r, "finetuned", af_arg_str(a, "finetuned-embeddings"),
             af_arg_str(a, "finetuned-model"));
  AF_TRY(add_named(a, "text-embeddings", 0, r->ts, &r->n_text, err));
  AF_TRY(add_named(a, "text-model", 1, r->ts, &r->n_text, err));
  r->want_text = has_method(r->methods, "text") || has_method(r->methods, "fusion") ||
                  has_method(r->methods, "learned");
  if ((has_method(r->methods, "text") || has_method(r->methods, "fusion")) && r->n_text == 0 &&
      af_arg_str(a, "methods"))
    return af_error_set(err, AF_ERR_ARG,
                        "methods text and fusion need --embeddings or --model (or drop them from "
                        "--methods)");
  if (r->want_text && r->n_text == 0)
    fprintf(stderr, "affinity eval: no --embeddings or --model: skipping text and fusion\n");
  return AF_OK;
}

/* The split: random, --test-baskets, and with --validate the same protocol
 * inside the training baskets (the held-out queries are never seen). */
static af_status load_split(eval_run *r, af_error *err) {
  const af_args *a = &r->a;
  AF_TRY(af_assoc_input_load(a, &r->ai, err));
  af_basket_input_print_report(SPEC.cmd, &r->ai.in, stderr);
  const char *test_path = af_arg_str(a, "test-baskets");
  if (test_path) {
    af_baskets_options bo = {af_arg_str(a, "baskets-format"), af_arg_str(a, "order-column"),
                             af_arg_str(a, "item-column"), ',', af_arg_flag(a, "drop-unknown")};
    AF_TRY(af_baskets_load(test_path, &bo, &r->ai.in.catalog, &r->test, NULL, err));
    AF_TRY(af_eval_split_given(&r->ai.in.baskets, &r->test, r->so.seed, &r->sp, err));
  } else {
    AF_TRY(af_eval_split_random(&r->ai.in.baskets, &r->so, &r->sp, err));
  }
  if (af_arg_flag(a, "validate")) {
    af_eval_split outer = r->sp;
    af_eval_split_options vo = r->so;
    vo.seed = r->so.seed + 1;
    memset(&r->sp, 0, sizeof r->sp);
    af_status st = af_eval_split_random(&outer.train, &vo, &r->sp, err);
    af_eval_split_free(&outer);
    AF_TRY(st);
    fprintf(stderr, "affinity eval: validation split of the training baskets (seed %llu)\n",
            (unsigned long long)vo.seed);
  }
  const af_eval_split *sp = &r->sp;
  fprintf(stderr,
          "affinity eval: %lld training baskets, %lld held out (%lld with < 2 items), %lld cold "
          "products; %lld queries\n",
          (long long)sp->train.n_baskets, (long long)sp->n_test_baskets,
          (long long)sp->n_test_too_small, (long long)sp->n_cold_products,
          (long long)sp->n_queries);
  for (int l = 0; l < r->ai.n_levels && l < 2; l++) {
    r->codes[l] = af_malloc((size_t)r->ai.in.catalog.n + 1, sizeof **r->codes, err);
    if (!r->codes[l])
      return AF_ERR_NOMEM;
    AF_TRY(af_eval_category_codes(r->ai.levels[l], r->ai.in.catalog.n, r->codes[l],
                                  &r->n_codes[l], err));
  }
  for (int i = 0; r->want_text && i < r->n_text; i++)
    if (af_assoc_vectors(a, &r->ai.in.catalog, r->ts[i].emb_path, r->ts[i].model_path,
                         &r->ts[i].emb, &r->ts[i].d, err) != AF_OK)
      return af_error_prefix(err, "text model '%s': ", r->ts[i].name);
  return AF_OK;
}

static af_eval_method *add_method(eval_run *r, af_eval_kind kind, const char *name) {
  af_eval_method *m = &r->ms[r->nm];
  snprintf(r->names[r->nm], sizeof r->names[r->nm], "%s", name);
  af_eval_method_init(m, kind, r->names[r->nm++]);
  m->popularity_ties = !af_arg_flag(&r->a, "index-ties");
  return m;
}

static void text_methods(eval_run *r, const text_source *t) {
  char name[96];
  const int both = !strcmp(r->agg, "both");
  for (int v = 0; v < 2 && has_method(r->methods, "text"); v++) {
    if ((v == 0 && !strcmp(r->agg, "max")) || (v == 1 && !strcmp(r->agg, "mean")))
      continue;
    snprintf(name, sizeof name, "text-%.48s%s", t->name, both ? (v ? "-max" : "-mean") : "");
    af_eval_method *m = add_method(r, AF_EVAL_TEXT, name);
    m->emb = t->emb, m->d = t->d, m->text_max = v;
  }
  if (has_method(r->methods, "fusion")) {
    snprintf(name, sizeof name, "fusion-%.48s", t->name);
    af_eval_method *m = add_method(r, AF_EVAL_FUSION, name);
    m->emb = t->emb, m->d = t->d, m->fuse = r->fo;
    m->text_weight = r->text_weight, m->cold_text_weight = r->cold_text_weight;
  }
}

/* The learned ranker, with text features from t (or none). */
static void learned_method(eval_run *r, const text_source *t) {
  char name[96];
  snprintf(name, sizeof name, t ? "learned-%.48s" : "learned", t ? t->name : "");
  af_eval_method *m = add_method(r, AF_EVAL_LEARNED, name);
  m->min_count = r->min_count, m->rules_min_count = r->rmin, m->rules_max_len = (int)r->rlen;
  m->ease = r->ease, m->fuse = r->fo;
  m->emb = t ? t->emb : NULL, m->d = t ? t->d : 0;
  m->n_levels = r->ai.n_levels < 2 ? r->ai.n_levels : 2;
  m->category = (const int32_t *const *)r->codes, m->n_codes = r->n_codes;
  m->learn_seed = r->so.seed + 1, m->learn_pool = (int)r->learn_pool;
  m->learn_l2 = r->learn_l2, m->learn_cold_weight = r->learn_cold_weight;
  m->learn_listwise = r->learn_listwise, m->learn_cold_slots = (int)r->learn_cold_slots;
  m->learn_folds = (int)r->learn_folds;
  m->learn_text_max = af_arg_flag(&r->a, "learn-text-max");
}

static void build_methods(eval_run *r) {
  if (has_method(r->methods, "popularity"))
    add_method(r, AF_EVAL_POPULARITY, "popularity");
  if (has_method(r->methods, "rules")) {
    af_eval_method *m = add_method(r, AF_EVAL_RULES, "rules");
    m->rules_min_count = r->rmin, m->rules_max_len = (int)r->rlen;
  }
  if (has_method(r->methods, "itemcf"))
    add_method(r, AF_EVAL_ITEMCF, "itemcf")->min_count = r->min_count;
  if (has_method(r->methods, "itemknn")) {
    af_eval_method *m = add_method(r, AF_EVAL_ITEMKNN, "itemknn");
    m->min_count = r->min_count, m->knn_k = (int)r->knn_k, m->knn_shrink = r->knn_shrink;
  }
  if (has_method(r->methods, "ease"))
    add_method(r, AF_EVAL_EASE, "ease")->ease = r->ease;
  for (int i = 0; r->want_text && i < r->n_text; i++)
    text_methods(r, &r->ts[i]);
  if (has_method(r->methods, "learned") && r->n_text == 0)
    learned_method(r, NULL);
  for (int i = 0; has_method(r->methods, "learned") && i < r->n_text; i++)
    learned_method(r, &r->ts[i]);
}

/* One parameter of m chosen on the validation split val. */
static af_status tune_one(eval_run *r, af_eval_method *m, af_eval_tune_param p, const char *param,
                          const double *grid, int n, const af_eval_split *val, af_error *err) {
  af_eval_tuning *t = &r->tuning[r->n_tuning];
  memcpy(r->grid[r->n_tuning], grid, sizeof *grid * (size_t)n);
  fprintf(stderr, "affinity eval: choosing %s %s on the validation split ...\n", m->name, param);
  AF_TRY(af_eval_tune(m, p, grid, n, val, (int)r->threads, r->score[r->n_tuning], &t->best, err));
  *t = (af_eval_tuning){.method = m->name, .param = param, .grid = r->grid[r->n_tuning],
                        .score = r->score[r->n_tuning], .n = n, .best = t->best};
  if (p == AF_EVAL_TUNE_EASE_LAMBDA)
    m->ease.lambda = grid[t->best];
  else
    m->knn_shrink = grid[t->best];
  fprintf(stderr, "affinity eval: %s %s = %g (validation Recall@10 %.4f)\n", m->name, param,
          grid[t->best], t->score[t->best]);
  r->n_tuning++;
  return AF_OK;
}

/* EASE's lambda and item-KNN's shrinkage, unless given, on a validation
 * split carved from the training baskets (seed + 1): never the test split. */
static af_status tune_methods(eval_run *r, af_error *err) {
  const int ease = !af_arg_str(&r->a, "ease-lambda"), knn = !af_arg_str(&r->a, "knn-shrink");
  int need = 0;
  for (int i = 0; i < r->nm; i++)
    need |= (ease && r->ms[i].kind == AF_EVAL_EASE) || (knn && r->ms[i].kind == AF_EVAL_ITEMKNN);
  if (!need)
    return AF_OK;
  af_eval_split val = {0};
  af_eval_split_options vo = r->so;
  vo.seed = r->so.seed + 1;
  af_status st = af_eval_split_random(&r->sp.train, &vo, &val, err);
  for (int i = 0; i < r->nm && st == AF_OK; i++) {
    af_eval_method *m = &r->ms[i];
    if (ease && m->kind == AF_EVAL_EASE)
      st = tune_one(r, m, AF_EVAL_TUNE_EASE_LAMBDA, "lambda", af_eval_ease_lambda_grid,
                    AF_EVAL_EASE_GRID_N, &val, err);
    else if (knn && m->kind == AF_EVAL_ITEMKNN)
      st = tune_one(r, m, AF_EVAL_TUNE_KNN_SHRINK, "shrink", SHRINK_GRID,
                    (int)(sizeof SHRINK_GRID / sizeof *SHRINK_GRID), &val, err);
  }
  af_eval_split_free(&val);
  return st;
}

/* The learned rankers use the EASE lambda chosen (or given) for `ease`. */
static void share_lambda(eval_run *r) {
  for (int i = 0; i < r->nm; i++)
    if (r->ms[i].kind == AF_EVAL_EASE)
      for (int j = 0; j < r->nm; j++)
        if (r->ms[j].kind == AF_EVAL_LEARNED)
          r->ms[j].ease.lambda = r->ms[i].ease.lambda;
}

static af_status run_methods(eval_run *r, af_error *err) {
  const int keep = r->n_boot > 0 || af_arg_str(&r->a, "ranks-out");
  unsigned char baseline[8 + 4 * MAX_TEXT];
  share_lambda(r);
  for (int i = 0; i < r->nm; i++) {
    af_eval_method *m = &r->ms[i];
    fprintf(stderr, "affinity eval: %s ...\n", m->name);
    if (keep && !(r->ranks[i] = af_malloc((size_t)r->sp.n_queries + 1, sizeof(int64_t), err)))
      return AF_ERR_NOMEM;
    r->rows[i] = (af_eval_row){.name = m->name, .ranks = r->ranks[i]};
    AF_TRY(af_eval_run_ranks(m, &r->sp, (int)r->threads, &r->rows[i].r, r->ranks[i], err));
    if (m->kind == AF_EVAL_EASE)
      fprintf(stderr, "affinity eval: ease modelled %lld of the %lld products in >= %lld training "
              "baskets (limit %lld), lambda %g, %.1f s\n", (long long)r->rows[i].r.modelled,
              (long long)r->rows[i].r.eligible, (long long)m->ease.min_count,
              (long long)m->ease.max_items, m->ease.lambda, r->rows[i].r.seconds);
    baseline[i] = m->kind != AF_EVAL_TEXT && m->kind != AF_EVAL_FUSION &&
                  m->kind != AF_EVAL_LEARNED;
    if (m->kind == AF_EVAL_LEARNED) {
      fprintf(stderr, "affinity eval: %s weights (standardised features, %lld pairs):", m->name,
              (long long)r->rows[i].r.train_pairs);
      for (int k = 0; k < AF_EVAL_N_FEATURES; k++)
        fprintf(stderr, " %s %.3g", af_eval_feature_names[k], r->rows[i].r.weights[k]);
      fputc('\n', stderr);
      if (m->learn_cold_slots > 0) {
        fprintf(stderr, "affinity eval: %s cold ranker for %d slots (%lld pairs):", m->name,
                m->learn_cold_slots, (long long)r->rows[i].r.cold_pairs);
        for (int k = 0; k < AF_EVAL_N_FEATURES; k++)
          if (r->rows[i].r.cold_weights[k] != 0)
            fprintf(stderr, " %s %.3g", af_eval_feature_names[k], r->rows[i].r.cold_weights[k]);
        fputc('\n', stderr);
      }
    }
    r->n_rows++;
  }
  r->reference = r->n_boot > 0 ? af_eval_best_row(r->rows, r->n_rows, baseline) : -1;
  const char *ref = af_arg_str(&r->a, "bootstrap-reference");
  for (int i = 0; ref && r->n_boot > 0 && i < r->n_rows; i++)
    if (strcmp(r->rows[i].name, ref) == 0)
      r->reference = i, ref = NULL;
  if (ref && r->n_boot > 0)
    return af_error_set(err, AF_ERR_ARG, "--bootstrap-reference: no method row '%s'", ref);
  return af_eval_compare_rows(r->rows, r->n_rows, r->reference, &r->sp, (int)r->n_boot,
                              r->so.seed, err);
}

static void print_table(const eval_run *r, FILE *f) {
  static const char *gname[] = {"warm", "cold"};
  char ref[64] = "";
  if (r->reference >= 0)
    snprintf(ref, sizeof ref, "dR@10 vs %.40s [95%%]", r->rows[r->reference].name);
  fprintf(f, "%-24s %-5s %8s %9s %9s %9s %9s %9s %8s  %s\n", "method", "group", "queries",
          "Recall@10", "Recall@20", "NDCG@10", "NDCG@20", "MRR", "seconds", ref);
  for (int i = 0; i < r->n_rows; i++)
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++) {
      const af_eval_metrics *m = &r->rows[i].r.group[g];
      fprintf(f, "%-24s %-5s %8lld %9.4f %9.4f %9.4f %9.4f %9.4f %8.1f", r->rows[i].name,
              gname[g], (long long)m->n, m->recall[0], m->recall[1], m->ndcg[0], m->ndcg[1],
              m->mrr, r->rows[i].r.seconds);
      const af_eval_interval *iv = &r->rows[i].diff[g];
      if (r->reference >= 0)
        fprintf(f, "  %+.4f [%+.4f, %+.4f]", iv->diff, iv->lo, iv->hi);
      fputc('\n', f);
    }
}

static af_status write_outputs(eval_run *r, af_error *err) {
  const af_fuse_options *fusion = NULL;
  for (int i = 0; i < r->nm; i++)
    if (r->ms[i].kind == AF_EVAL_FUSION)
      fusion = &r->fo;
  const char *test = af_arg_str(&r->a, "test-baskets");
  af_eval_report rep = {
      .catalog = af_arg_str(&r->a, "catalog"), .baskets = af_arg_str(&r->a, "baskets"),
      .test_baskets = test, .products = r->ai.in.catalog.n,
      .validation = af_arg_flag(&r->a, "validate"), .split = &r->sp, .split_options = &r->so,
      .rows = r->rows, .n_rows = r->n_rows, .reference = r->reference, .n_boot = (int)r->n_boot,
      .boot_seed = r->so.seed, .fusion = fusion, .text_weight = r->text_weight,
      .cold_text_weight = r->cold_text_weight, .tuning = r->tuning, .n_tuning = r->n_tuning};
  print_table(r, stdout);
  const char *ranks = af_arg_str(&r->a, "ranks-out");
  /* the query's basket id: from the file its baskets came from (the
   * validation split's baskets are a re-indexed subset: index only) */
  const af_baskets *src = test ? &r->test : &r->ai.in.baskets;
  const char *const *bids = rep.validation ? NULL : (const char *const *)src->basket_ids;
  if (ranks)
    AF_TRY(af_eval_write_ranks(ranks, &rep, bids, (const char *const *)r->ai.in.catalog.ids, err));
  AF_TRY(af_eval_write_json(r->out, &rep, err));
  fprintf(stderr, "affinity eval: wrote %s%s%s\n", r->out, ranks ? " and " : "", ranks ? ranks : "");
  return AF_OK;
}

static void eval_run_free(eval_run *r) {
  for (int i = 0; i < r->n_text; i++)
    free(r->ts[i].emb);
  for (int i = 0; i < r->nm; i++)
    free(r->ranks[i]);
  free(r->codes[0]), free(r->codes[1]);
  af_eval_split_free(&r->sp);
  af_baskets_free(&r->test);
  af_assoc_input_free(&r->ai);
  af_args_free(&r->a);
  free(r);
}

int af_cmd_eval(int argc, char **argv) {
  af_error err = {0};
  eval_run *r = af_calloc(1, sizeof *r, &err);
  if (!r)
    return af_cli_fail(SPEC.cmd, &err);
  int started = af_cli_start(&SPEC, argc, argv, &r->a);
  if (started >= 0) {
    free(r);
    return started;
  }
  af_status st = parse_options(r, &err);
  if (st == AF_OK && (st = text_sources(r, &err)) == AF_OK && (st = load_split(r, &err)) == AF_OK) {
    build_methods(r);
    if ((st = tune_methods(r, &err)) == AF_OK && (st = run_methods(r, &err)) == AF_OK)
      st = write_outputs(r, &err);
  }
  eval_run_free(r);
  return st == AF_OK ? 0 : af_cli_fail(SPEC.cmd, &err);
}
