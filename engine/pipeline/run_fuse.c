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

/* Every method of docs/evaluation.md that the run has the inputs for:
 * popularity, rules, item-CF, the run's text model, fusion; default
 * protocol (seed 42, 20% of baskets held out, 10% of sold products cold). */
af_status af_stage_eval(af_run_data *d, char *const *out, af_error *err) {
  float *emb = NULL;
  int dim = 0;
  AF_TRY(aligned_embeddings(d, &emb, &dim, err));
  af_eval_split_options so;
  af_eval_split_default_options(&so);
  af_eval_split sp = {0};
  af_status st = af_eval_split_random(&d->baskets, &so, &sp, err);
  af_eval_method ms[5];
  af_eval_method_init(&ms[0], AF_EVAL_POPULARITY, "popularity");
  af_eval_method_init(&ms[1], AF_EVAL_RULES, "rules");
  af_eval_method_init(&ms[2], AF_EVAL_ITEMCF, "itemcf");
  af_eval_method_init(&ms[3], AF_EVAL_TEXT, "text");
  af_eval_method_init(&ms[4], AF_EVAL_FUSION, "fusion");
  for (int i = 3; i < 5; i++) {
    ms[i].emb = emb;
    ms[i].d = dim;
  }
  fuse_options(d->o, &ms[4].fuse);
  af_eval_row rows[5];
  int64_t *ranks = st == AF_OK ? af_malloc((size_t)5 * (sp.n_queries + 1), sizeof *ranks, err)
                               : NULL;
  if (st == AF_OK && !ranks)
    st = AF_ERR_NOMEM;
  for (int n = 0; st == AF_OK && n < 5; n++) {
    rows[n] = (af_eval_row){.name = ms[n].name, .ranks = ranks + n * (sp.n_queries + 1)};
    st = af_eval_run_ranks(&ms[n], &sp, d->o->threads, &rows[n].r, ranks + n * (sp.n_queries + 1),
                           err);
  }
  /* the same file as `affinity eval`: intervals against the best co-purchase method */
  const unsigned char baseline[5] = {1, 1, 1, 0, 0};
  const int ref = st == AF_OK ? af_eval_best_row(rows, 5, baseline) : -1;
  enum { N_BOOT = 2000 };
  if (st == AF_OK)
    st = af_eval_compare_rows(rows, 5, ref, &sp, N_BOOT, so.seed, err);
  af_eval_report rep = {.catalog = d->o->catalog, .baskets = d->o->baskets,
                        .products = d->catalog.n, .split = &sp, .split_options = &so,
                        .rows = rows, .n_rows = 5, .reference = ref, .n_boot = N_BOOT,
                        .boot_seed = so.seed, .fusion = &ms[4].fuse, .text_weight = 0,
                        .cold_text_weight = 0};
  if (st == AF_OK)
    st = af_eval_write_json(out[0], &rep, err);
  free(ranks);
  af_eval_split_free(&sp);
  free(emb);
  return st;
}
