/* The pipeline driver (see run.h): stage keys, the manifest, run.json, and
 * the stages that call the library. */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/csv.h"
#include "io/h5util.h"
#include "nn/model.h"
#include "io/run_files.h"
#include "pipeline/run_stages.h"

void af_run_default_options(af_run_options *o) {
  memset(o, 0, sizeof *o);
  o->score_k = 20;
  o->min_support = 0.002;
  o->min_confidence = 0.05;
  o->max_itemset_len = 3;
  o->cooccur_min_count = 2;
  o->itemcf_k = 10;
  o->itemcf_min_count = AF_EVAL_DEFAULT_MIN_COUNT; /* the rule eval uses */
  o->substitute_min_cosine = 0.6;
  o->assoc_k = 10;
  o->report_top = 30;
  o->binary_version = AF_VERSION_STRING;
}

/* ---- logging, time ----------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void logf_(const af_run_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const af_run_options *o, const char *fmt, ...) {
  if (!o->log)
    return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  o->log(o->log_ctx, buf);
}

static int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---- the manifest ---------------------------------------------------------------- */

static af_status json_write(const char *path, const cJSON *j, af_error *err) {
  char *text = cJSON_Print(j);
  if (!text)
    return af_error_set(err, AF_ERR_NOMEM, "%s: cannot format JSON", path);
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  af_status ost = af_atomic_open(path, tmp, &f, err);
  if (ost != AF_OK) {
    free(text);
    return ost;
  }
  fputs(text, f);
  fputc('\n', f);
  free(text);
  return af_atomic_fclose(f, tmp, path, err);
}

typedef struct {
  const af_run_options *o;
  char manifest_path[AF_PATH_MAX];
  cJSON *manifest;  /* {"format": ..., "stages": {name: {"key": hex, "outputs": [...]}}} */
  cJSON *timings;   /* run.json "stages": [{"name", "seconds", "skipped"}] */
  double t_start;
  af_run_data data; /* catalog, baskets, co-occurrence (run_stages.h) */
} run_ctx;

static af_status manifest_load(run_ctx *c, af_error *err) {
  AF_TRY(af_run_path(c->o->out_dir, "manifest.json", c->manifest_path, err));
  cJSON *m = NULL;
  AF_TRY(af_run_json_read(c->manifest_path, 1, &m, err));
  if (m && !cJSON_IsObject(cJSON_GetObjectItem(m, "stages"))) {
    /* An unreadable manifest only costs a full rerun. */
    cJSON_Delete(m);
    m = NULL;
  }
  if (!m) {
    m = cJSON_CreateObject();
    if (!m || !cJSON_AddStringToObject(m, "format", "affinity-run-manifest") ||
        !cJSON_AddNumberToObject(m, "format_version", 1) || !cJSON_AddObjectToObject(m, "stages")) {
      cJSON_Delete(m);
      return af_error_set(err, AF_ERR_NOMEM, "manifest: out of memory");
    }
  }
  c->manifest = m;
  return AF_OK;
}

/* Key of a stage: version, name, parameters and the bytes of its inputs. */
static af_status stage_key(run_ctx *c, const char *stage, const char *params,
                           const char *const *inputs, int n_inputs, char hex[17], af_error *err) {
  uint64_t h = AF_RUN_HASH_SEED;
  const char *v = c->o->binary_version ? c->o->binary_version : AF_VERSION_STRING;
  h = af_run_hash_bytes(h, v, strlen(v) + 1);
  h = af_run_hash_bytes(h, stage, strlen(stage) + 1);
  h = af_run_hash_bytes(h, params, strlen(params) + 1);
  for (int i = 0; i < n_inputs; i++) {
    h = af_run_hash_bytes(h, "\x01", 1);
    AF_TRY(af_run_hash_file(inputs[i], &h, err));
  }
  snprintf(hex, 17, "%016llx", (unsigned long long)h);
  return AF_OK;
}

/* 1 when the manifest holds this key for the stage and every output exists. */
static int stage_fresh(run_ctx *c, const char *stage, const char *key, const char *const *outputs,
                       int n_out) {
  if (c->o->force)
    return 0;
  cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(c->manifest, "stages"), stage);
  const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(s, "key"));
  if (!k || strcmp(k, key) != 0)
    return 0;
  for (int i = 0; i < n_out; i++) {
    char p[AF_PATH_MAX];
    if (af_run_path(c->o->out_dir, outputs[i], p, NULL) != AF_OK || !file_exists(p))
      return 0;
  }
  return 1;
}

static af_status stage_done(run_ctx *c, const char *stage, const char *key,
                            const char *const *outputs, int n_out, double seconds, int skipped,
                            af_error *err) {
  cJSON *stages = cJSON_GetObjectItem(c->manifest, "stages");
  cJSON *s = cJSON_CreateObject();
  cJSON *outs = cJSON_CreateArray();
  cJSON *t = cJSON_CreateObject();
  if (!s || !outs || !t) {
    cJSON_Delete(s);
    cJSON_Delete(outs);
    cJSON_Delete(t);
    return af_error_set(err, AF_ERR_NOMEM, "manifest: out of memory");
  }
  for (int i = 0; i < n_out; i++)
    cJSON_AddItemToArray(outs, cJSON_CreateString(outputs[i]));
  cJSON_AddStringToObject(s, "key", key);
  cJSON_AddItemToObject(s, "outputs", outs);
  cJSON_DeleteItemFromObject(stages, stage);
  cJSON_AddItemToObject(stages, stage, s);
  cJSON_AddStringToObject(t, "name", stage);
  cJSON_AddNumberToObject(t, "seconds", seconds);
  cJSON_AddBoolToObject(t, "skipped", skipped);
  cJSON_AddItemToArray(c->timings, t);
  if (skipped)
    logf_(c->o, "%-9s skipped (inputs unchanged)", stage);
  else
    logf_(c->o, "%-9s %8.2f s", stage, seconds);
  return json_write(c->manifest_path, c->manifest, err);
}

static void stage_note(run_ctx *c, const char *stage, const char *why) {
  cJSON *t = cJSON_CreateObject();
  if (!t)
    return;
  cJSON_AddStringToObject(t, "name", stage);
  cJSON_AddNumberToObject(t, "seconds", 0);
  cJSON_AddBoolToObject(t, "skipped", 1);
  cJSON_AddStringToObject(t, "note", why);
  cJSON_AddItemToArray(c->timings, t);
  logf_(c->o, "%-9s not run: %s", stage, why);
}

/* Runs one stage through its key: fn(c->data, outputs as full paths). */
typedef af_status (*stage_fn)(af_run_data *d, char *const *out_paths, af_error *err);

static af_status run_stage(run_ctx *c, const char *stage, const char *params,
                           const char *const *inputs, int n_in, const char *const *outputs,
                           int n_out, stage_fn fn, af_error *err) {
  char key[17];
  AF_TRY(stage_key(c, stage, params, inputs, n_in, key, err));
  if (stage_fresh(c, stage, key, outputs, n_out))
    return stage_done(c, stage, key, outputs, n_out, 0, 1, err);
  char paths[8][AF_PATH_MAX];
  char *pp[8];
  if (n_out > 8)
    return af_error_set(err, AF_ERR_INTERNAL, "stage %s: too many outputs", stage);
  for (int i = 0; i < n_out; i++) {
    AF_TRY(af_run_path(c->o->out_dir, outputs[i], paths[i], err));
    pp[i] = paths[i];
  }
  logf_(c->o, "%-9s running", stage);
  double t0 = now_s();
  af_status st = fn(&c->data, pp, err);
  if (st != AF_OK)
    return af_error_prefix(err, "stage %s: ", stage);
  /* Re-key after the stage: an input it produced itself (none today) or a
   * changed input file would make the next run redo it. */
  return stage_done(c, stage, key, outputs, n_out, now_s() - t0, 0, err);
}

/* ---- run.json ------------------------------------------------------------------- */

static af_status write_run_json(run_ctx *c, int final, af_error *err) {
  const af_run_options *o = c->o;
  const af_run_data *d = &c->data;
  cJSON *j = cJSON_CreateObject();
  if (!j)
    return af_error_set(err, AF_ERR_NOMEM, "run.json: out of memory");
  cJSON_AddStringToObject(j, "format", "affinity-run");
  cJSON_AddNumberToObject(j, "format_version", 1);
  cJSON_AddStringToObject(j, "affinity_version", o->binary_version ? o->binary_version : AF_VERSION_STRING);
  char when[64];
  time_t t = time(NULL);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  cJSON_AddStringToObject(j, "finished_utc", when);
  cJSON_AddBoolToObject(j, "complete", final);

  cJSON *data = cJSON_AddObjectToObject(j, "data");
  cJSON_AddStringToObject(data, "catalog", o->catalog);
  cJSON_AddNumberToObject(data, "products", (double)d->catalog.n);
  cJSON_AddStringToObject(data, "id_column", d->id_column);
  cJSON *tc = cJSON_AddArrayToObject(data, "text_columns");
  for (int i = 0; i < d->n_text_columns; i++)
    cJSON_AddItemToArray(tc, cJSON_CreateString(d->text_columns[i]));
  if (d->category_column)
    cJSON_AddStringToObject(data, "category_column", d->category_column);
  else
    cJSON_AddNullToObject(data, "category_column");
  if (o->baskets) {
    cJSON_AddStringToObject(data, "baskets", o->baskets);
    /* how they were read (recommend --ranker learned reads them again) */
    cJSON_AddStringToObject(data, "baskets_format",
                            o->baskets_opt.format ? o->baskets_opt.format : "long");
    if (o->baskets_opt.order_column)
      cJSON_AddStringToObject(data, "order_column", o->baskets_opt.order_column);
    if (o->baskets_opt.item_column)
      cJSON_AddStringToObject(data, "item_column", o->baskets_opt.item_column);
    cJSON_AddBoolToObject(data, "drop_unknown", o->baskets_opt.drop_unknown_items);
    cJSON_AddNumberToObject(data, "n_baskets", (double)d->baskets.n_baskets);
    cJSON_AddNumberToObject(data, "basket_rows_read", (double)d->brep.rows_read);
    cJSON_AddNumberToObject(data, "basket_rows_kept", (double)d->brep.rows_kept);
    cJSON_AddNumberToObject(data, "dropped_duplicate", (double)d->brep.dropped_duplicate);
    cJSON_AddNumberToObject(data, "dropped_empty", (double)d->brep.dropped_empty);
    cJSON_AddNumberToObject(data, "dropped_unknown_item", (double)d->brep.dropped_unknown_item);
    int64_t sold = 0;
    for (int64_t i = 0; i < d->catalog.n; i++)
      sold += d->item_baskets[i] > 0;
    cJSON_AddNumberToObject(data, "products_with_baskets", (double)sold);
  } else {
    cJSON_AddNullToObject(data, "baskets");
  }
  cJSON *model = cJSON_AddObjectToObject(j, "model");
  cJSON_AddStringToObject(model, "path", o->model);
  if (d->model_name[0])
    cJSON_AddStringToObject(model, "name", d->model_name);
  cJSON_AddNumberToObject(model, "fine_tune_steps", o->fine_tune_steps);
  if (d->embed_model && d->embed_model != o->model)
    cJSON_AddStringToObject(model, "embedded_with", d->embed_model);
  cJSON_AddStringToObject(model, "device", o->dev && o->dev->backend == AF_BACKEND_CUDA ? "cuda" : "cpu");

  cJSON *p = cJSON_AddObjectToObject(j, "parameters");
  cJSON_AddNumberToObject(p, "max_len", o->max_len);
  cJSON_AddNumberToObject(p, "score_k", o->score_k);
  cJSON_AddNumberToObject(p, "min_support", o->min_support);
  cJSON_AddNumberToObject(p, "min_confidence", o->min_confidence);
  cJSON_AddNumberToObject(p, "max_itemset_len", o->max_itemset_len);
  cJSON_AddNumberToObject(p, "cooccur_min_count", (double)o->cooccur_min_count);
  cJSON_AddNumberToObject(p, "itemcf_k", o->itemcf_k);
  cJSON_AddNumberToObject(p, "itemcf_min_count", (double)o->itemcf_min_count);
  cJSON_AddNumberToObject(p, "substitute_min_cosine", o->substitute_min_cosine);
  cJSON_AddNumberToObject(p, "assoc_k", o->assoc_k);
  cJSON_AddStringToObject(p, "associations", "fusion (include/affinity.h)");
  cJSON_AddNumberToObject(p, "threads", o->threads);

  cJSON_AddItemToObject(j, "stages", cJSON_Duplicate(c->timings, 1));
  cJSON_AddNumberToObject(j, "total_seconds", now_s() - c->t_start);
  char path[AF_PATH_MAX];
  af_status st = af_run_path(o->out_dir, "run.json", path, err);
  if (st == AF_OK)
    st = json_write(path, j, err);
  cJSON_Delete(j);
  return st;
}

/* ---- the pipeline ------------------------------------------------------------- */

/* mkdir -p */
static af_status make_dir(const char *dir, af_error *err) {
  char buf[AF_PATH_MAX];
  int k = snprintf(buf, sizeof buf, "%s", dir);
  if (k < 0 || k >= (int)sizeof buf)
    return af_error_set(err, AF_ERR_ARG, "path too long: %s", dir);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return af_error_set(err, AF_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
      *p = '/';
    }
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return af_error_set(err, AF_ERR_IO, "%s: not a folder", dir);
  return AF_OK;
}

/* Stage parameters as text, part of each key. */
#define PARAMS(buf, ...) snprintf(buf, sizeof buf, __VA_ARGS__)

static af_status pipeline(run_ctx *c, af_error *err) {
  const af_run_options *o = c->o;
  af_run_data *d = &c->data;
  char params[1024];
  char cols[512] = "";
  for (int i = 0; i < d->n_text_columns; i++) {
    size_t w = strlen(cols);
    snprintf(cols + w, sizeof cols - w, "%s|", d->text_columns[i]);
  }
  const char *bfmt = o->baskets_opt.format ? o->baskets_opt.format : "long";
  char basket_params[512];
  PARAMS(basket_params, "baskets=%s fmt=%s order=%s item=%s drop=%d", o->baskets ? "1" : "0", bfmt,
         o->baskets_opt.order_column ? o->baskets_opt.order_column : "",
         o->baskets_opt.item_column ? o->baskets_opt.item_column : "",
         o->baskets_opt.drop_unknown_items);

  /* load */
  const char *in_load[2] = {o->catalog, o->baskets};
  const char *out_load[1] = {"products.csv"};
  PARAMS(params, "id=%s text=%s cat=%s %s", d->id_column, cols,
         d->category_column ? d->category_column : "", basket_params);
  AF_TRY(run_stage(c, "load", params, in_load, o->baskets ? 2 : 1, out_load, 1, af_stage_load, err));

  /* fine-tune (optional): DIR/finetuned.h5 replaces the model for embed */
  char ft_path[AF_PATH_MAX];
  AF_TRY(af_run_path(o->out_dir, "finetuned.h5", ft_path, err));
  d->embed_model = o->model;
  if (o->fine_tune_steps > 0) {
    if (!o->baskets)
      return af_error_set(err, AF_ERR_ARG,
                          "--fine-tune-steps: fine-tuning learns from co-purchases and needs "
                          "--baskets");
    char prod[AF_PATH_MAX];
    AF_TRY(af_run_path(o->out_dir, "products.csv", prod, err));
    const char *in_ft[3] = {prod, o->baskets, o->model};
    const char *out_ft[1] = {"finetuned.h5"};
    PARAMS(params, "%s steps=%d min=%lld", basket_params, o->fine_tune_steps,
           (long long)o->itemcf_min_count);
    AF_TRY(run_stage(c, "finetune", params, in_ft, 3, out_ft, 1, af_stage_finetune, err));
    d->embed_model = ft_path;
  }

  /* embed */
  const char *in_embed[2] = {o->catalog, d->embed_model};
  const char *out_embed[1] = {"embeddings.h5"};
  PARAMS(params, "id=%s text=%s max_len=%d", d->id_column, cols, o->max_len);
  AF_TRY(run_stage(c, "embed", params, in_embed, 2, out_embed, 1, af_stage_embed, err));

  if (!d->model_name[0]) { /* embed was skipped: the name is in the embeddings file */
    char ep[AF_PATH_MAX];
    char *name = NULL;
    hid_t f = H5I_INVALID_HID;
    if (af_run_path(o->out_dir, "embeddings.h5", ep, NULL) == AF_OK &&
        af_h5_open(ep, 0, &f, NULL) == AF_OK &&
        af_h5_attr_get_str(f, ".", "model", &name, NULL) == AF_OK)
      snprintf(d->model_name, sizeof d->model_name, "%s", name);
    free(name);
    if (f != H5I_INVALID_HID)
      af_h5_close(f, ep, NULL);
  }


  char emb_path[AF_PATH_MAX], nbr_path[AF_PATH_MAX], prod_path[AF_PATH_MAX], co_path[AF_PATH_MAX];
  AF_TRY(af_run_path(o->out_dir, "embeddings.h5", emb_path, err));
  AF_TRY(af_run_path(o->out_dir, "neighbors.h5", nbr_path, err));
  AF_TRY(af_run_path(o->out_dir, "products.csv", prod_path, err));
  AF_TRY(af_run_path(o->out_dir, "cooccur.csv", co_path, err));

  /* score */
  const char *in_score[1] = {emb_path};
  const char *out_score[1] = {"neighbors.h5"};
  PARAMS(params, "k=%d", o->score_k);
  AF_TRY(run_stage(c, "score", params, in_score, 1, out_score, 1, af_stage_score, err));

  if (o->baskets) {
    /* products.csv carries the catalog and each product's basket count, but
     * not the baskets themselves: hash the baskets file too. */
    const char *in_bb[2] = {prod_path, o->baskets};
    const char *out_rules[2] = {"rules.csv", "rules.jsonl"};
    PARAMS(params, "%s sup=%.17g conf=%.17g len=%d max_rules=%d", basket_params, o->min_support,
           o->min_confidence, o->max_itemset_len, AF_RUN_MAX_RULES);
    AF_TRY(run_stage(c, "rules", params, in_bb, 2, out_rules, 2, af_stage_rules, err));
    const char *out_co[1] = {"cooccur.csv"};
    PARAMS(params, "%s min=%lld", basket_params, (long long)o->cooccur_min_count);
    AF_TRY(run_stage(c, "cooccur", params, in_bb, 2, out_co, 1, af_stage_cooccur, err));
    const char *out_cf[1] = {"itemcf.csv"};
    PARAMS(params, "%s k=%d min=%lld", basket_params, o->itemcf_k, (long long)o->itemcf_min_count);
    AF_TRY(run_stage(c, "itemcf", params, in_bb, 2, out_cf, 1, af_stage_itemcf, err));
  } else {
    stage_note(c, "rules", "no baskets");
    stage_note(c, "cooccur", "no baskets");
    stage_note(c, "itemcf", "no baskets");
  }

  /* associate */
  const char *in_assoc[4] = {prod_path, emb_path, nbr_path, co_path};
  const char *out_assoc[1] = {"associations.csv"};
  PARAMS(params, "fuse sub=%.17g k=%d cf_min=%lld", o->substitute_min_cosine, o->assoc_k,
         (long long)o->itemcf_min_count);
  AF_TRY(run_stage(c, "associate", params, in_assoc, o->baskets ? 4 : 3, out_assoc, 1,
                   af_stage_fuse, err));

  if (!o->baskets) {
    stage_note(c, "eval", "no baskets");
  } else {
    const char *in_eval[3] = {prod_path, o->baskets, emb_path};
    const char *out_eval[1] = {"eval.json"};
    PARAMS(params, "%s seed=42 test=0.2 cold=0.1 sub=%.17g k=%d min=%lld", basket_params,
           o->substitute_min_cosine, o->assoc_k, (long long)o->itemcf_min_count);
    AF_TRY(run_stage(c, "eval", params, in_eval, 3, out_eval, 1, af_stage_eval, err));
  }

  /* report: run.json first (the report shows it), then the report, then
   * run.json again with the report's time. */
  AF_TRY(write_run_json(c, 0, err));
  char assoc_path[AF_PATH_MAX], rules_path[AF_PATH_MAX], eval_path[AF_PATH_MAX];
  AF_TRY(af_run_path(o->out_dir, "associations.csv", assoc_path, err));
  AF_TRY(af_run_path(o->out_dir, "rules.csv", rules_path, err));
  AF_TRY(af_run_path(o->out_dir, "eval.json", eval_path, err));
  const char *in_rep[3] = {assoc_path, rules_path, eval_path};
  int n_rep = 1;
  if (file_exists(rules_path) && o->baskets)
    n_rep = 2;
  if (file_exists(eval_path))
    in_rep[n_rep++] = eval_path;
  const char *out_rep[3] = {"report.html", "network.png", "heatmap.png"};
  PARAMS(params, "top=%d", o->report_top);
  AF_TRY(run_stage(c, "report", params, in_rep, n_rep, out_rep, 3, af_stage_report, err));
  return write_run_json(c, 1, err);
}

/* Finds whether the catalog's header has a column (for the default category). */
static af_status catalog_has_column(const char *path, const char *name, int *has, af_error *err) {
  af_csv *r;
  AF_TRY(af_csv_open(path, ',', &r, err));
  char **f;
  int nf, eof;
  af_status st = af_csv_next(r, &f, &nf, &eof, err);
  *has = 0;
  for (int i = 0; st == AF_OK && !eof && i < nf; i++)
    if (strcmp(f[i], name) == 0)
      *has = 1;
  af_csv_close(r);
  return st;
}

af_status af_run_pipeline(const af_run_options *o, af_error *err) {
  if (!o || !o->out_dir || !o->catalog || !o->model)
    return af_error_set(err, AF_ERR_ARG, "run: out_dir, catalog and model are required");
  if (!file_exists(o->catalog))
    return af_error_set(err, AF_ERR_IO, "%s: catalog not found", o->catalog);
  if (o->baskets && !file_exists(o->baskets))
    return af_error_set(err, AF_ERR_IO, "%s: baskets file not found", o->baskets);
  if (!file_exists(o->model))
    return af_error_set(err, AF_ERR_IO, "%s: model checkpoint not found", o->model);
  AF_TRY(make_dir(o->out_dir, err));
  int stale = 0;
  AF_TRY(af_clean_stale_tmp(o->out_dir, &stale, err)); /* temporaries of killed runs */
  if (stale)
    logf_(o, "removed %d temporary file%s of killed runs from %s\n", stale, stale > 1 ? "s" : "",
          o->out_dir);
  run_ctx c;
  memset(&c, 0, sizeof c);
  c.o = o;
  c.t_start = now_s();
  af_run_data *d = &c.data;
  d->o = o;
  static const char *const DEFAULT_TEXT[1] = {"product_name"};
  d->id_column = o->id_column ? o->id_column : "product_id";
  d->text_columns = o->n_text_columns > 0 ? o->text_columns : DEFAULT_TEXT;
  d->n_text_columns = o->n_text_columns > 0 ? o->n_text_columns : 1;
  if (o->category_column) {
    d->category_column = o->category_column[0] ? o->category_column : NULL;
  } else {
    int has = 0;
    AF_TRY(catalog_has_column(o->catalog, "department", &has, err));
    d->category_column = has ? "department" : NULL;
  }
  af_status st = manifest_load(&c, err);
  if (st == AF_OK) {
    c.timings = cJSON_CreateArray();
    if (!c.timings)
      st = af_error_set(err, AF_ERR_NOMEM, "run: out of memory");
  }
  if (st == AF_OK)
    st = af_run_data_load(d, err);
  if (st == AF_OK) {
    logf_(o, "load      %lld products from %s%s", (long long)d->catalog.n, o->catalog,
          o->baskets ? "" : " (no baskets: text-only run)");
    if (o->baskets)
      logf_(o, "          %lld baskets from %s: %lld rows read, %lld dropped (dup %lld, empty %lld, unknown %lld)",
            (long long)d->baskets.n_baskets, o->baskets, (long long)d->brep.rows_read,
            (long long)(d->brep.dropped_duplicate + d->brep.dropped_empty +
                        d->brep.dropped_unknown_item),
            (long long)d->brep.dropped_duplicate, (long long)d->brep.dropped_empty,
            (long long)d->brep.dropped_unknown_item);
    st = pipeline(&c, err);
  }
  if (st == AF_OK)
    logf_(o, "done in %.1f s -> %s/report.html", now_s() - c.t_start, o->out_dir);
  af_run_data_free(d);
  cJSON_Delete(c.manifest);
  cJSON_Delete(c.timings);
  return st;
}
