/* The associate and eval stages of `affinity run` through the fusion and
 * evaluation library (include/affinity.h, include/affinity.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "pipeline/run_stages.h"


/* The run's embeddings in catalog order, L2-normalised: *emb (N, d). */
static af_status aligned_embeddings(af_run_data *d, float **emb, int *dim, af_error *err) {
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(d->o->out_dir, "embeddings.h5", path, err));
  af_embeddings e = {0};
  AF_TRY(af_embeddings_read(path, &e, err));
  const af_catalog *c = &d->catalog;
  *emb = af_malloc((size_t)c->n * (size_t)e.d + 1, sizeof **emb, err);
  af_status st = *emb ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK)
    st = af_fuse_align_embeddings(path, (const char *const *)e.ids, e.emb, e.n, e.d,
                                  (const char *const *)c->ids, c->n, *emb, err);
  *dim = e.d;
  af_embeddings_free(&e);
  if (st != AF_OK) {
    free(*emb);
    *emb = NULL;
  }
  return st;
}

static void fuse_options(const af_run_options *o, af_fuse_options *fo) {
  af_fuse_default_options(fo);
  fo->k = o->assoc_k;
  fo->min_count = o->itemcf_min_count;
  fo->sub_min_cosine = o->substitute_min_cosine;
  fo->threads = o->threads;
}

af_status af_stage_fuse(af_run_data *d, char *const *out, af_error *err) {
  const af_catalog *c = &d->catalog;
  float *emb = NULL;
  int dim = 0;
  AF_TRY(aligned_embeddings(d, &emb, &dim, err));
  af_baskets none = {0};
  af_status st = AF_OK;
  if (!d->have_baskets) { /* text only: no co-purchase evidence */
    int64_t off[1] = {0};
    int32_t dummy[1] = {0};
    st = af_baskets_from_arrays(0, (int32_t)c->n, off, dummy, &none, err);
  }
  af_fuse_options fo;
  fuse_options(d->o, &fo);
  const char *const *levels[1] = {(const char *const *)c->categories};
  af_fuse_input in = {c->n, dim, emb, d->have_baskets ? &d->baskets : &none,
                      c->categories ? 1 : 0, levels};
  af_fuse_result res = {0};
  if (st == AF_OK)
    st = af_fuse_run(&fo, &in, &res, err);
  if (st == AF_OK)
    st = af_fuse_write_csv(out[0], (const char *const *)c->ids, (const char *const *)c->names, &res,
                           err);
  af_fuse_result_free(&res);
  if (!d->have_baskets)
    af_baskets_free(&none);
  free(emb);
  return st;
}

enum { N_METHODS = 7, N_BOOT = 2000 };

/* popularity, rules, item-CF, EASE (lambda chosen on the validation split), the
 * run's text model, fusion, and the learned ranker (its weights fitted on a
 * validation split of the training baskets; the catalog's category column
 * for its category features). */
static void init_methods(const af_run_data *d, const float *emb, int dim,
                         const int32_t *const *codes, const int32_t *n_codes,
                         af_eval_method *ms) {
  static const af_eval_kind kind[N_METHODS] = {AF_EVAL_POPULARITY, AF_EVAL_RULES, AF_EVAL_ITEMCF,
                                               AF_EVAL_EASE, AF_EVAL_TEXT, AF_EVAL_FUSION,
                                               AF_EVAL_LEARNED};
  static const char *const name[N_METHODS] = {"popularity", "rules", "itemcf", "ease",
                                              "text", "fusion", "learned"};
  for (int i = 0; i < N_METHODS; i++) {
    af_eval_method_init(&ms[i], kind[i], name[i]);
    if (i >= 4)
      ms[i].emb = emb, ms[i].d = dim;
  }
  fuse_options(d->o, &ms[5].fuse);
  ms[2].min_count = d->o->itemcf_min_count; /* one pair threshold: the run's --min-count */
  af_eval_method *l = &ms[6];
  l->fuse = ms[5].fuse, l->min_count = d->o->itemcf_min_count;
  l->n_levels = codes[0] ? 1 : 0, l->category = codes, l->n_codes = n_codes;
}

/* rows (N_METHODS) with ranks (N_METHODS, n_queries + 1) and intervals
 * against the best co-purchase method; *ref its row. */
static af_status evaluate(af_eval_method *ms, const af_eval_split *sp, uint64_t seed, int threads,
                          af_eval_row *rows, int64_t *ranks, int *ref, af_error *err) {
  for (int n = 0; n < N_METHODS; n++) {
    int64_t *r = ranks + n * (sp->n_queries + 1);
    rows[n] = (af_eval_row){.name = ms[n].name, .ranks = r};
    AF_TRY(af_eval_run_ranks(&ms[n], sp, threads, &rows[n].r, r, err));
  }
  static const unsigned char baseline[N_METHODS] = {1, 1, 1, 1, 0, 0, 0};
  *ref = af_eval_best_row(rows, N_METHODS, baseline);
  return af_eval_compare_rows(rows, N_METHODS, *ref, sp, N_BOOT, seed, err);
}

/* EASE's lambda chosen on a validation split of the training baskets (the
 * protocol again inside them, seed + 1), as `affinity eval` does; the
 * learned ranker uses the same lambda. score (AF_EVAL_EASE_GRID_N). */
static af_status tune_lambda(af_eval_method *ms, const af_eval_split *sp,
                             const af_eval_split_options *so, int threads, double *score,
                             af_eval_tuning *t, af_error *err) {
  af_eval_split val = {0};
  af_eval_split_options vo = *so;
  vo.seed = so->seed + 1;
  int best = 0;
  af_status st = af_eval_split_random(&sp->train, &vo, &val, err);
  if (st == AF_OK)
    st = af_eval_tune(&ms[3], AF_EVAL_TUNE_EASE_LAMBDA, af_eval_ease_lambda_grid,
                      AF_EVAL_EASE_GRID_N, &val, threads, score, &best, err);
  af_eval_split_free(&val);
  AF_TRY(st);
  ms[3].ease.lambda = ms[6].ease.lambda = af_eval_ease_lambda_grid[best];
  *t = (af_eval_tuning){.method = ms[3].name, .param = "lambda", .grid = af_eval_ease_lambda_grid,
                        .score = score, .n = AF_EVAL_EASE_GRID_N, .best = best};
  return AF_OK;
}

/* Every method of docs/evaluation.md that the run has the inputs for, on the
 * default protocol (seed 42, 20% of baskets held out, 10% of sold products
 * cold), into eval.json through the writer `affinity eval` uses. */
af_status af_stage_eval(af_run_data *d, char *const *out, af_error *err) {
  float *emb = NULL;
  int dim = 0;
  AF_TRY(aligned_embeddings(d, &emb, &dim, err));
  af_eval_split_options so;
  af_eval_split_default_options(&so);
  af_eval_split sp = {0};
  af_status st = af_eval_split_random(&d->baskets, &so, &sp, err);
  int32_t *codes[1] = {NULL}, n_codes[1] = {0};
  if (st == AF_OK && d->catalog.categories) {
    codes[0] = af_malloc((size_t)d->catalog.n + 1, sizeof **codes, err);
    st = codes[0] ? af_eval_category_codes((const char *const *)d->catalog.categories,
                                           d->catalog.n, codes[0], &n_codes[0], err)
                  : AF_ERR_NOMEM;
  }
  af_eval_method ms[N_METHODS];
  init_methods(d, emb, dim, (const int32_t *const *)codes, n_codes, ms);
  af_eval_row rows[N_METHODS];
  int64_t *ranks = st == AF_OK ? af_malloc((size_t)N_METHODS * (sp.n_queries + 1), sizeof *ranks,
                                           err)
                               : NULL;
  int ref = -1;
  double score[AF_EVAL_EASE_GRID_N];
  af_eval_tuning tuning;
  if (st == AF_OK && ranks)
    st = tune_lambda(ms, &sp, &so, d->o->threads, score, &tuning, err);
  if (st == AF_OK)
    st = ranks ? evaluate(ms, &sp, so.seed, d->o->threads, rows, ranks, &ref, err) : AF_ERR_NOMEM;
  af_eval_report rep = {.catalog = d->o->catalog, .baskets = d->o->baskets,
                        .products = d->catalog.n, .split = &sp, .split_options = &so,
                        .rows = rows, .n_rows = N_METHODS, .reference = ref, .n_boot = N_BOOT,
                        .boot_seed = so.seed, .fusion = &ms[5].fuse, .tuning = &tuning,
                        .n_tuning = 1};
  if (st == AF_OK)
    st = af_eval_write_json(out[0], &rep, err);
  free(ranks), free(codes[0]);
  af_eval_split_free(&sp);
  free(emb);
  return st;
}
