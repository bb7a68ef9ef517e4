/* The stages of `affinity run` that call the library: load, embed, score,
 * rules, co-occurrence, item-CF, report. Output formats are the ones the
 * single-purpose commands write (docs/data-formats.md), plus names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "nn/model.h"
#include "pipeline/run_stages.h"

af_status af_run_data_load(af_run_data *d, af_error *err) {
  const af_run_options *o = d->o;
  af_catalog_options co = {.id_column = d->id_column,
                           .text_columns = d->text_columns,
                           .n_text_columns = d->n_text_columns,
                           .category_column = d->category_column,
                           .delimiter = ','};
  AF_TRY(af_catalog_load(o->catalog, &co, &d->catalog, err));
  d->have_catalog = 1;
  d->item_baskets = af_calloc((size_t)d->catalog.n + 1, sizeof *d->item_baskets, err);
  if (!d->item_baskets)
    return AF_ERR_NOMEM;
  if (!o->baskets)
    return AF_OK;
  AF_TRY(af_baskets_load(o->baskets, &o->baskets_opt, &d->catalog, &d->baskets, &d->brep, err));
  d->have_baskets = 1;
  for (int64_t i = 0; i < d->baskets.offsets[d->baskets.n_baskets]; i++)
    d->item_baskets[d->baskets.items[i]]++;
  return AF_OK;
}

void af_run_data_free(af_run_data *d) {
  if (d->have_co)
    af_cooccur_free(&d->co);
  if (d->have_baskets)
    af_baskets_free(&d->baskets);
  if (d->have_catalog)
    af_catalog_free(&d->catalog);
  free(d->item_baskets);
  d->have_co = d->have_baskets = d->have_catalog = 0;
  d->item_baskets = NULL;
}

static af_status need_cooccur(af_run_data *d, af_error *err) {
  if (d->have_co)
    return AF_OK;
  /* Every pair (min count 1): the associate stage needs the true count of
   * any pair, also below the thresholds of cooccur.csv and item-CF. */
  AF_TRY(af_cooccur_build(&d->baskets, 1, &d->co, err));
  d->have_co = 1;
  return AF_OK;
}

/* ---- load: products.csv ------------------------------------------------------- */

af_status af_stage_load(af_run_data *d, char *const *out, af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(out[0], tmp, &f, err));
  fputs("product_id,product,category,baskets\n", f);
  const af_catalog *c = &d->catalog;
  for (int64_t i = 0; i < c->n; i++) {
    af_write_csv_field(f, c->ids[i]);
    fputc(',', f);
    af_write_csv_field(f, c->names[i]);
    fputc(',', f);
    af_write_csv_field(f, c->categories ? c->categories[i] : "");
    fprintf(f, ",%lld\n", (long long)d->item_baskets[i]);
  }
  return af_atomic_fclose(f, tmp, out[0], err);
}

/* ---- embed, score ------------------------------------------------------------ */

af_status af_stage_embed(af_run_data *d, char *const *out, af_error *err) {
  const af_run_options *o = d->o;
  af_model m;
  AF_TRY(af_model_load(d->embed_model ? d->embed_model : o->model, &m, err));
  snprintf(d->model_name, sizeof d->model_name, "%s", m.name ? m.name : "");
  af_catalog_source src = {o->catalog, d->id_column, d->text_columns, d->n_text_columns, ','};
  af_embed_options eo;
  af_embed_default_options(&eo);
  eo.max_len = o->max_len;
  af_device cpu = af_device_cpu(o->threads);
  int64_t n = 0;
  af_status st = af_embed_catalog(&m, o->dev ? o->dev : &cpu, &src, &eo, out[0], &n, err);
  af_model_free(&m);
  if (st == AF_OK && n != d->catalog.n)
    st = af_error_set(err, AF_ERR_INTERNAL, "%s: embedded %lld rows, catalog has %lld", o->catalog,
                      (long long)n, (long long)d->catalog.n);
  return st;
}

af_status af_stage_score(af_run_data *d, char *const *out, af_error *err) {
  const af_run_options *o = d->o;
  char emb[AF_PATH_MAX];
  AF_TRY(af_run_path(o->out_dir, "embeddings.h5", emb, err));
  af_score_file_options so;
  memset(&so, 0, sizeof so);
  so.k = o->score_k;
  so.min_score = -INFINITY;
  so.shard_i = 0;
  so.shard_n = 1;
  so.score.threads = o->threads;
  return af_score_file(emb, out[0], &so, err);
}

/* ---- rules, co-occurrence, item-CF (writers: engine/assoc/assoc_files.h) ---------- */

static af_item_labels catalog_labels(const af_catalog *c) {
  return (af_item_labels){.ids = (const char *const *)c->ids,
                          .names = (const char *const *)c->names};
}

af_status af_stage_rules(af_run_data *d, char *const *out, af_error *err) {
  const af_run_options *o = d->o;
  af_itemsets fi = {0};
  af_rules rs = {0};
  af_status st = af_fpgrowth(&d->baskets, o->min_support, o->max_itemset_len, &fi, err);
  af_rules_options ro = {.min_confidence = o->min_confidence, .max_rules = AF_RUN_MAX_RULES};
  if (st == AF_OK)
    st = af_rules_generate(&fi, &ro, &rs, err);
  af_item_labels lab = catalog_labels(&d->catalog);
  for (int jsonl = 0; st == AF_OK && jsonl < 2; jsonl++)
    st = af_rules_write(out[jsonl], jsonl, &fi, &rs, &lab, err);
  af_rules_free(&rs);
  af_itemsets_free(&fi);
  return st;
}

af_status af_stage_cooccur(af_run_data *d, char *const *out, af_error *err) {
  AF_TRY(need_cooccur(d, err));
  af_item_labels lab = catalog_labels(&d->catalog);
  return af_cooccur_write_csv(out[0], &d->co, d->o->cooccur_min_count, &lab, err);
}

af_status af_stage_itemcf(af_run_data *d, char *const *out, af_error *err) {
  AF_TRY(need_cooccur(d, err));
  const af_cooccur *co = &d->co;
  int k = d->o->itemcf_k;
  int32_t *nbr = af_malloc((size_t)co->n_items * (size_t)k + 1, sizeof *nbr, err); // (n_items, k)
  double *score = af_malloc((size_t)co->n_items * (size_t)k + 1, sizeof *score, err); // (n_items, k)
  af_status st = AF_ERR_NOMEM;
  if (nbr && score)
    st = af_itemcf_topk(co, AF_ITEMCF_COSINE, k, d->o->itemcf_min_count, nbr, score, err);
  af_item_labels lab = catalog_labels(&d->catalog);
  if (st == AF_OK)
    st = af_itemcf_write_csv(out[0], co, k, nbr, score, &lab, err);
  free(nbr);
  free(score);
  return st;
}

/* ---- report ------------------------------------------------------------------- */

af_status af_stage_report(af_run_data *d, char *const *out, af_error *err) {
  af_report_options ro;
  af_report_default_options(&ro);
  ro.top = d->o->report_top;
  ro.network_png = out[1];
  ro.heatmap_png = out[2];
  return af_report_write(d->o->out_dir, out[0], &ro, err);
}
