/* Basket recommendations with their reasons (see recommend.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"
#include "base/topk.h"

#include <cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "io/run_files.h"

void af_recommend_default_options(af_recommend_options *o) {
  o->k = 10;
  o->text_weight = 0.3;
  o->min_text_cosine = 0.5;
  o->learned = 0;
  o->threads = 0;
  o->cold_slots = 0;
  o->learn_folds = AF_EVAL_DEFAULT_LEARN_FOLDS;
}

void af_recommendations_free(af_recommendations *r) {
  for (int i = 0; i < r->n; i++)
    free(r->recs[i].rule_antecedent);
  free(r->recs);
  af_catalog_free(&r->products);
  memset(r, 0, sizeof *r);
}

/* Evidence per product row, (n) arrays. */
typedef struct {
  double *rule_conf, *rule_lift;
  int64_t *rule_count;
  char **rule_ante;
  int64_t *cop_with, *cop_count;
  double *cop_cos, *cop_lift;
  int64_t *text_with;
  double *text_cos;
} evidence;

static void evidence_free(evidence *e, int64_t n) {
  if (e->rule_ante)
    for (int64_t i = 0; i < n; i++)
      free(e->rule_ante[i]);
  free(e->rule_conf), free(e->rule_lift), free(e->rule_count), free(e->rule_ante);
  free(e->cop_with), free(e->cop_count), free(e->cop_cos), free(e->cop_lift);
  free(e->text_with), free(e->text_cos);
}

static af_status evidence_alloc(evidence *e, int64_t n, af_error *err) {
  memset(e, 0, sizeof *e);
  size_t m = (size_t)n + 1;
  e->rule_conf = af_calloc(m, sizeof(double), err);
  e->rule_lift = af_calloc(m, sizeof(double), err);
  e->rule_count = af_calloc(m, sizeof(int64_t), err);
  e->rule_ante = af_calloc(m, sizeof(char *), err);
  e->cop_with = af_malloc(m, sizeof(int64_t), err);
  e->cop_count = af_calloc(m, sizeof(int64_t), err);
  e->cop_cos = af_calloc(m, sizeof(double), err);
  e->cop_lift = af_calloc(m, sizeof(double), err);
  e->text_with = af_malloc(m, sizeof(int64_t), err);
  e->text_cos = af_calloc(m, sizeof(double), err);
  if (!e->rule_conf || !e->rule_lift || !e->rule_count || !e->rule_ante || !e->cop_with ||
      !e->cop_count || !e->cop_cos || !e->cop_lift || !e->text_with || !e->text_cos)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < n; i++)
    e->cop_with[i] = e->text_with[i] = -1;
  return AF_OK;
}

/* ids in a JSON array -> product rows; *ok = 0 when one is unknown. */
static int json_ids(const cJSON *arr, const af_catalog *p, int64_t *rows, int cap, int *n) {
  *n = 0;
  if (!cJSON_IsArray(arr))
    return 0;
  for (const cJSON *c = arr->child; c; c = c->next) {
    if (!cJSON_IsString(c) || *n >= cap)
      return 0;
    rows[(*n)++] = af_catalog_find(p, c->valuestring);
  }
  return 1;
}

static af_status read_rules(const char *run_dir, const af_catalog *p, const char *in_basket,
                            evidence *e, af_error *err) {
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(run_dir, "rules.jsonl", path, err));
  FILE *f = fopen(path, "r");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open (%s): run folder incomplete", path,
                        strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  int64_t lineno = 0;
  af_status st = AF_OK;
  while (st == AF_OK && getline(&line, &cap, f) > 0) {
    lineno++;
    cJSON *j = cJSON_Parse(line);
    int64_t ante[32], cons[32];
    int na, nc;
    const cJSON *conf = cJSON_GetObjectItem(j, "confidence"), *lift = cJSON_GetObjectItem(j, "lift"),
                *cnt = cJSON_GetObjectItem(j, "count");
    if (!j || !json_ids(cJSON_GetObjectItem(j, "antecedent_ids"), p, ante, 32, &na) ||
        !json_ids(cJSON_GetObjectItem(j, "consequent_ids"), p, cons, 32, &nc) ||
        !cJSON_IsNumber(conf) || !cJSON_IsNumber(cnt)) {
      st = af_error_set(err, AF_ERR_FORMAT,
                        "%s:%lld: not a rule (needs antecedent_ids, consequent_ids, confidence, "
                        "count)",
                        path, (long long)lineno);
      cJSON_Delete(j);
      break;
    }
    /* single-item consequents: the rule's confidence is then P(c | X) */
    int applies = na > 0 && nc == 1;
    for (int i = 0; i < na && applies; i++)
      applies = ante[i] >= 0 && in_basket[ante[i]];
    for (int i = 0; applies && i < nc; i++) {
      int64_t c = cons[i];
      if (c < 0 || in_basket[c] || conf->valuedouble <= e->rule_conf[c])
        continue;
      size_t len = 1;
      for (int k = 0; k < na; k++)
        len += strlen(p->names[ante[k]]) + 3;
      char *s = af_malloc(len, 1, err);
      if (!s) {
        st = AF_ERR_NOMEM;
        break;
      }
      s[0] = '\0';
      for (int k = 0; k < na; k++) {
        if (k)
          strcat(s, " + ");
        strcat(s, p->names[ante[k]]);
      }
      free(e->rule_ante[c]);
      e->rule_ante[c] = s;
      e->rule_conf[c] = conf->valuedouble;
      e->rule_lift[c] = cJSON_IsNumber(lift) ? lift->valuedouble : NAN;
      /* range-checked: a double beyond int64 cast to int64 is undefined */
      double cv = cnt->valuedouble;
      e->rule_count[c] = cv >= 0 && cv < 9.2e18 ? (int64_t)cv : -1;
    }
    cJSON_Delete(j);
  }
  free(line);
  fclose(f);
  return st;
}

static af_status read_cooccur(const char *run_dir, const af_catalog *p, const char *in_basket,
                              evidence *e, af_error *err) {
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(run_dir, "cooccur.csv", path, err));
  af_csv *r;
  af_status st = af_csv_open(path, ',', &r, err);
  if (st != AF_OK)
    return af_error_prefix(err, "run folder incomplete: ");
  char **f;
  int nf, eof, col[5];
  static const char *const COLS[5] = {"item_a", "item_b", "count", "lift", "cosine"};
  st = af_csv_next(r, &f, &nf, &eof, err);
  if (st == AF_OK && eof)
    st = af_error_set(err, AF_ERR_FORMAT, "%s: empty file", path);
  for (int i = 0; st == AF_OK && i < 5; i++)
    st = af_csv_column(f, nf, COLS[i], path, &col[i], err);
  int n_header = nf;
  while (st == AF_OK) {
    if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK || eof)
      break;
    if (nf != n_header) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected %d fields, found %d", path,
                        (long long)af_csv_record_line(r), n_header, nf);
      break;
    }
    int64_t a = af_catalog_find(p, f[col[0]]), b = af_catalog_find(p, f[col[1]]);
    if (a < 0 || b < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: id not in products.csv", path,
                        (long long)af_csv_record_line(r));
      break;
    }
    if (in_basket[a] == in_basket[b])
      continue;
    int64_t from = in_basket[a] ? a : b, to = in_basket[a] ? b : a;
    char *e1, *e2, *e3;
    double cnt = strtod(f[col[2]], &e1), lift = strtod(f[col[3]], &e2), cs = strtod(f[col[4]], &e3);
    if (*e1 || *e2 || *e3) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: count, lift or cosine is not a number",
                        path, (long long)af_csv_record_line(r));
      break;
    }
    if (cs > e->cop_cos[to] || (cs == e->cop_cos[to] && e->cop_with[to] > from)) {
      e->cop_cos[to] = cs;
      e->cop_with[to] = from;
      e->cop_count[to] = (int64_t)cnt;
      e->cop_lift[to] = lift;
    }
  }
  af_csv_close(r);
  return st;
}

static af_status read_text(const char *run_dir, const af_catalog *p, const char *in_basket,
                           const af_recommend_options *o, evidence *e, af_error *err) {
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(run_dir, "neighbors.h5", path, err));
  af_neighbors nb;
  af_status st = af_neighbors_read(path, &nb, err);
  if (st != AF_OK)
    return af_error_prefix(err, "run folder incomplete: ");
  /* Scores are inner products; for a model that does not normalise its
   * embeddings, divide by the norms to get cosines. */
  double *norm = NULL; /* (nb.n_total) or NULL when normalised */
  if (!nb.normalized) {
    af_embeddings emb = {0};
    char epath[AF_PATH_MAX];
    if ((st = af_run_path(run_dir, "embeddings.h5", epath, err)) == AF_OK &&
        (st = af_embeddings_read(epath, &emb, err)) == AF_OK) {
      if (emb.n != nb.n_total)
        st = af_error_set(err, AF_ERR_FORMAT, "%s: %lld rows, neighbors.h5 has %lld ids", epath,
                          (long long)emb.n, (long long)nb.n_total);
      else if (!(norm = af_malloc((size_t)emb.n + 1, sizeof *norm, err)))
        st = AF_ERR_NOMEM;
      for (int64_t i = 0; st == AF_OK && i < emb.n; i++) {
        double q = 0;
        for (int j = 0; j < emb.d; j++)
          q += (double)emb.emb[i * emb.d + j] * emb.emb[i * emb.d + j];
        norm[i] = q > 0 ? sqrt(q) : 1;
      }
    }
    af_embeddings_free(&emb);
  }
  for (int64_t r = 0; r < nb.row_count && st == AF_OK; r++) {
    int64_t a = af_catalog_find(p, nb.ids[nb.row0 + r]);
    if (a < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s: id '%s' is not in products.csv", path,
                        nb.ids[nb.row0 + r]);
      break;
    }
    if (!in_basket[a])
      continue;
    for (int j = 0; j < nb.k; j++) {
      int64_t q = nb.nbr[r * nb.k + j];
      if (q < 0)
        break;
      int64_t b = af_catalog_find(p, nb.ids[q]);
      double cs = nb.scr[r * nb.k + j];
      if (norm)
        cs /= norm[nb.row0 + r] * norm[q];
      if (b < 0 || in_basket[b] || cs < o->min_text_cosine)
        continue;
      if (cs > e->text_cos[b] || (cs == e->text_cos[b] && e->text_with[b] > a)) {
        e->text_cos[b] = cs;
        e->text_with[b] = a;
      }
    }
  }
  free(norm);
  af_neighbors_free(&nb);
  return st;
}

/* The run's baskets, read as the run read them (run.json "data"). */
static af_status run_baskets(const char *run_dir, const af_catalog *p, af_baskets *b,
                             af_error *err) {
  char path[AF_PATH_MAX];
  cJSON *run = NULL;
  AF_TRY(af_run_path(run_dir, "run.json", path, err));
  AF_TRY(af_run_json_read(path, 0, &run, err));
  const cJSON *data = cJSON_GetObjectItem(run, "data");
  const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(data, "baskets"));
  af_baskets_options bo = {cJSON_GetStringValue(cJSON_GetObjectItem(data, "baskets_format")),
                           cJSON_GetStringValue(cJSON_GetObjectItem(data, "order_column")),
                           cJSON_GetStringValue(cJSON_GetObjectItem(data, "item_column")), ',',
                           cJSON_IsTrue(cJSON_GetObjectItem(data, "drop_unknown"))};
  af_status st = file ? af_baskets_load(file, &bo, p, b, NULL, err)
                      : af_error_set(err, AF_ERR_ARG, "%s: the run has no baskets: the learned "
                                     "ranker needs them", path);
  if (st != AF_OK && file)
    af_error_prefix(err, "the run's baskets (run.json data.baskets): ");
  cJSON_Delete(run);
  return st;
}

/* score (n): the learned ranker's score of every product for the basket
 * (-FLT_MAX outside its pool), refitted on the run's baskets and embeddings. */
static af_status learned_scores(const char *run_dir, const af_catalog *p, const char *in_basket,
                                const af_recommend_options *o, float *score, af_error *err) {
  char path[AF_PATH_MAX];
  af_baskets b = {0};
  af_embeddings e = {0};
  int32_t *items = af_malloc((size_t)p->n + 1, sizeof *items, err), n = 0;
  int32_t *codes = p->categories ? af_malloc((size_t)p->n + 1, sizeof *codes, err) : NULL;
  float *emb = NULL;
  int32_t n_codes = 0;
  af_status st = items && (codes || !p->categories) ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK)
    st = run_baskets(run_dir, p, &b, err);
  if (st == AF_OK && (st = af_run_path(run_dir, "embeddings.h5", path, err)) == AF_OK)
    st = af_embeddings_read(path, &e, err);
  if (st == AF_OK && !(emb = af_malloc((size_t)p->n * e.d + 1, sizeof *emb, err)))
    st = AF_ERR_NOMEM;
  if (st == AF_OK)
    st = af_fuse_align_embeddings(path, (const char *const *)e.ids, e.emb, e.n, e.d,
                                  (const char *const *)p->ids, p->n, emb, err);
  if (st == AF_OK && codes)
    st = af_eval_category_codes((const char *const *)p->categories, p->n, codes, &n_codes, err);
  for (int64_t i = 0; i < p->n; i++)
    if (in_basket[i])
      items[n++] = (int32_t)i;
  af_eval_method m;
  af_eval_method_init(&m, AF_EVAL_LEARNED, "learned");
  const int32_t *levels[1] = {codes};
  m.emb = emb, m.d = e.d, m.n_levels = codes ? 1 : 0, m.category = levels, m.n_codes = &n_codes;
  m.learn_cold_slots = o->cold_slots, m.learn_folds = o->learn_folds;
  if (st == AF_OK)
    st = af_eval_learned_query(&m, &b, items, n, o->threads, score, err);
  af_baskets_free(&b);
  af_embeddings_free(&e);
  free(items), free(codes), free(emb);
  return st;
}

af_status af_recommend(const char *run_dir, const char *const *basket_ids, int n_basket,
                       const af_recommend_options *o, af_recommendations *out, af_error *err) {
  memset(out, 0, sizeof *out);
  af_recommend_options def;
  if (!o) {
    af_recommend_default_options(&def);
    o = &def;
  }
  if (o->k < 1 || n_basket < 1)
    return af_error_set(err, AF_ERR_ARG, "recommend: need k >= 1 and a non-empty basket");
  char path[AF_PATH_MAX];
  cJSON *run = NULL;
  AF_TRY(af_run_path(run_dir, "run.json", path, err));
  if (af_run_json_read(path, 0, &run, err) != AF_OK)
    return af_error_prefix(err, "run folder %s is incomplete (run `affinity run` first): ", run_dir);
  int has_baskets = cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(run, "data"), "baskets"));
  cJSON_Delete(run);
  af_catalog *p = &out->products;
  AF_TRY(af_run_products_read(run_dir, p, err));
  int64_t n = p->n;
  char *in_basket = af_calloc((size_t)n + 1, 1, err); /* (n) */
  evidence e;
  memset(&e, 0, sizeof e);
  af_scored *sc = NULL;
  af_status st = in_basket ? evidence_alloc(&e, n, err) : AF_ERR_NOMEM;
  for (int i = 0; st == AF_OK && i < n_basket; i++) {
    int64_t r = af_catalog_find(p, basket_ids[i]);
    if (r < 0)
      st = af_error_set(err, AF_ERR_ARG,
                        "basket item '%s' is not a product of this run (%s/products.csv)",
                        basket_ids[i], run_dir);
    else
      in_basket[r] = 1;
  }
  if (st == AF_OK && has_baskets)
    st = read_rules(run_dir, p, in_basket, &e, err);
  if (st == AF_OK && has_baskets)
    st = read_cooccur(run_dir, p, in_basket, &e, err);
  if (st == AF_OK)
    st = read_text(run_dir, p, in_basket, o, &e, err);
  if (st == AF_OK) {
    sc = af_malloc((size_t)n + 1, sizeof *sc, err);
    if (!sc)
      st = AF_ERR_NOMEM;
  }
  int64_t m = 0;
  float *ls = NULL; /* (n) the learned ranker's scores */
  if (st == AF_OK && o->learned && !has_baskets)
    st = af_error_set(err, AF_ERR_ARG, "recommend: the learned ranker needs a run with baskets");
  if (st == AF_OK && o->learned && !(ls = af_malloc((size_t)n + 1, sizeof *ls, err)))
    st = AF_ERR_NOMEM;
  if (st == AF_OK && o->learned)
    st = learned_scores(run_dir, p, in_basket, o, ls, err);
  if (st == AF_OK) {
    for (int64_t i = 0; i < n; i++) {
      if (in_basket[i])
        continue;
      double s = e.rule_conf[i] + e.cop_cos[i] + (e.text_with[i] >= 0 ? o->text_weight * e.text_cos[i] : 0);
      if (ls ? ls[i] > -FLT_MAX : s > 0)
        sc[m++] = (af_scored){ls ? ls[i] : s, i};
    }
    qsort(sc, (size_t)m, sizeof *sc, af_scored_cmp);
    int k = m < o->k ? (int)m : o->k;
    out->recs = af_calloc((size_t)k + 1, sizeof *out->recs, err);
    if (!out->recs)
      st = AF_ERR_NOMEM;
    for (int j = 0; st == AF_OK && j < k; j++) {
      int64_t i = sc[j].i;
      af_recommendation *r = &out->recs[j];
      r->product = i;
      r->score = sc[j].score;
      r->rule_count = e.rule_count[i];
      r->rule_confidence = e.rule_conf[i];
      r->rule_lift = e.rule_lift[i];
      r->rule_antecedent = e.rule_ante[i];
      e.rule_ante[i] = NULL;
      r->cop_with = e.cop_with[i];
      r->cop_count = e.cop_count[i];
      r->cop_cosine = e.cop_cos[i];
      r->cop_lift = e.cop_lift[i];
      r->text_with = e.text_with[i];
      r->text_cosine = e.text_cos[i];
      out->n = j + 1;
    }
  }
  if (in_basket)
    evidence_free(&e, n);
  free(in_basket);
  free(sc);
  free(ls);
  if (st != AF_OK)
    af_recommendations_free(out);
  return st;
}
