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

static void json_num(FILE *f, double x) {
  if (isfinite(x))
    fprintf(f, "%.17g", x);
  else
    fputs("null", f);
}

/* eval.json in the format of `affinity eval` (tools/cmd_eval.c). */
static af_status write_eval(const char *path, const af_run_data *d, const af_eval_split *sp,
                            const af_eval_split_options *so, af_eval_method *ms,
                            const af_eval_result *rs, int n, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  fputs("{\n  \"catalog\": ", f);
  af_write_json_string(f, d->o->catalog);
  fputs(",\n  \"baskets\": ", f);
  af_write_json_string(f, d->o->baskets);
  fprintf(f,
          ",\n  \"test_baskets\": null,\n  \"products\": %lld,\n  \"protocol\": {\"split\": "
          "\"random\", \"seed\": %llu, \"test_fraction\": %.17g, \"cold_fraction\": %.17g, "
          "\"train_baskets\": %lld, \"test_baskets\": %lld, \"test_baskets_too_small\": %lld, "
          "\"cold_products\": %lld, \"queries\": %lld, \"cold_queries_seeded\": %lld, \"ks\": "
          "[%d, %d]},\n  \"methods\": [",
          (long long)d->catalog.n, (unsigned long long)so->seed, so->test_fraction,
          so->cold_fraction, (long long)sp->train.n_baskets, (long long)sp->n_test_baskets,
          (long long)sp->n_test_too_small, (long long)sp->n_cold_products,
          (long long)sp->n_queries, (long long)sp->n_cold_seeded, af_eval_ks[0], af_eval_ks[1]);
  static const char *const GROUPS[2] = {"warm", "cold"};
  for (int i = 0; i < n; i++) {
    fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
    af_write_json_string(f, ms[i].name);
    fputs(", \"seconds\": ", f);
    json_num(f, rs[i].seconds);
    for (int g = 0; g < AF_EVAL_N_GROUPS; g++) {
      const af_eval_metrics *m = &rs[i].group[g];
      fprintf(f, ", \"%s\": {\"queries\": %lld", GROUPS[g], (long long)m->n);
      for (int k = 0; k < AF_EVAL_NK; k++) {
        fprintf(f, ", \"recall@%d\": ", af_eval_ks[k]);
        json_num(f, m->recall[k]);
        fprintf(f, ", \"ndcg@%d\": ", af_eval_ks[k]);
        json_num(f, m->ndcg[k]);
      }
      fputs(", \"mrr\": ", f);
      json_num(f, m->mrr);
      fputc('}', f);
    }
    fputc('}', f);
  }
  fputs("\n  ]\n}\n", f);
  return af_atomic_fclose(f, tmp, path, err);
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
  af_eval_result rs[5];
  memset(rs, 0, sizeof rs);
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
  int n = 0;
  for (; st == AF_OK && n < 5; n++)
    st = af_eval_run(&ms[n], &sp, d->o->threads, &rs[n], err);
  if (st == AF_OK)
    st = write_eval(out[0], d, &sp, &so, ms, rs, 5, err);
  af_eval_split_free(&sp);
  free(emb);
  return st;
}
