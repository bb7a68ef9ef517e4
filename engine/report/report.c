/* The report: reading a run folder, choosing what the figures show, and
 * writing the HTML and PNGs (see report.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"
#include "base/topk.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/csv.h"
#include "report/report_internal.h"
#include "io/run_files.h"

void af_report_default_options(af_report_options *o) {
  memset(o, 0, sizeof *o);
  o->top = 30;
  o->max_nodes = 60;
  o->max_edges = 150;
  o->table_products = 15;
  o->table_rules = 25;
  o->layout = "neato";
}

/* ---- helpers -------------------------------------------------------------------- */

void af_html_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* Tableau 20, reordered so neighbours differ. */
static const char *const PALETTE[20] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
    "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"};

const char *af_report_color(int i) { return PALETTE[(i < 0 ? 0 : i) % 20]; }

void af_heat_color(double t, char out[8]) {
  /* white (#f7fbff) -> dark blue (#08306b), ColorBrewer Blues end points */
  if (!(t > 0))
    t = 0;
  if (t > 1)
    t = 1;
  int r = (int)lround(0xf7 + t * (0x08 - 0xf7));
  int g = (int)lround(0xfb + t * (0x30 - 0xfb));
  int b = (int)lround(0xff + t * (0x6b - 0xff));
  snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

void af_utf8_truncate(const char *s, int max_chars, char *out, size_t cap) {
  size_t w = 0;
  int chars = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p && w + 8 < cap) {
    if ((*p & 0xC0) != 0x80) {
      if (chars == max_chars) {
        memcpy(out + w, "\xe2\x80\xa6", 3); /* … */
        w += 3;
        break;
      }
      chars++;
    }
    out[w++] = (char)*p++;
  }
  out[w] = '\0';
}

/* ---- loading ----------------------------------------------------------------- */

static void data_free(af_report_data *d) {
  af_catalog_free(&d->p);
  af_assoc_free(&d->as);
  cJSON_Delete(d->run);
  cJSON_Delete(d->eval);
  for (int i = 0; i < d->n_rules; i++) {
    free(d->rules[i].ante);
    free(d->rules[i].cons);
  }
  free(d->rules);
  for (int i = 0; i < d->n_cat; i++)
    free(d->cat_names[i]);
  free(d->cat_names);
  free(d->prod_cat);
  free(d->strength);
  free(d->ranked);
  free(d->nodes);
  free(d->edges);
  free(d->heat);
  free(d->heat_borrowed);
}

static char *dup_s(const char *s, af_error *err) {
  size_t n = strlen(s) + 1;
  char *d = af_malloc(n, 1, err);
  if (d)
    memcpy(d, s, n);
  return d;
}

static af_status read_rules(af_report_data *d, af_error *err) {
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(d->run_dir, "rules.csv", path, err));
  struct stat sb;
  if (stat(path, &sb) != 0)
    return AF_OK; /* a text-only run has none */
  af_csv *r;
  AF_TRY(af_csv_open(path, ',', &r, err));
  char **f;
  int nf, eof, col[6];
  static const char *const COLS[6] = {"antecedent", "consequent", "support",
                                      "confidence", "lift",       "count"};
  af_status st = af_csv_next(r, &f, &nf, &eof, err);
  if (st == AF_OK && eof)
    st = af_error_set(err, AF_ERR_FORMAT, "%s: empty file", path);
  for (int i = 0; st == AF_OK && i < 6; i++)
    st = af_csv_column(f, nf, COLS[i], path, &col[i], err);
  int n_header = nf;
  if (st == AF_OK) {
    d->rules = af_calloc((size_t)d->o->table_rules + 1, sizeof *d->rules, err);
    if (!d->rules)
      st = AF_ERR_NOMEM;
  }
  while (st == AF_OK) {
    if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK || eof)
      break;
    if (nf != n_header) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected %d fields, found %d", path,
                        (long long)af_csv_record_line(r), n_header, nf);
      break;
    }
    d->n_rules_total++;
    if (d->n_rules >= d->o->table_rules)
      continue;
    af_report_rule *x = &d->rules[d->n_rules];
    char *e1, *e2, *e3, *e4;
    x->support = strtod(f[col[2]], &e1);
    x->confidence = strtod(f[col[3]], &e2);
    x->lift = strtod(f[col[4]], &e3);
    x->count = strtoll(f[col[5]], &e4, 10);
    if (*e1 || *e2 || *e3 || *e4 || !f[col[2]][0] || !f[col[5]][0]) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: a number field is malformed", path,
                        (long long)af_csv_record_line(r));
      break;
    }
    x->ante = dup_s(f[col[0]], err);
    x->cons = dup_s(f[col[1]], err);
    d->n_rules++;
    if (!x->ante || !x->cons)
      st = AF_ERR_NOMEM;
  }
  af_csv_close(r);
  if (st == AF_OK)
    d->have_rules = 1;
  return st;
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static af_status categories(af_report_data *d, af_error *err) {
  int64_t n = d->p.n;
  char **sorted = af_malloc((size_t)n + 1, sizeof *sorted, err);
  d->prod_cat = af_malloc((size_t)n + 1, sizeof *d->prod_cat, err);
  if (!sorted || !d->prod_cat) {
    free(sorted);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < n; i++)
    sorted[i] = d->p.categories[i][0] ? d->p.categories[i] : "(none)";
  qsort(sorted, (size_t)n, sizeof *sorted, str_cmp);
  int64_t u = 0;
  for (int64_t i = 0; i < n; i++)
    if (u == 0 || strcmp(sorted[u - 1], sorted[i]) != 0)
      sorted[u++] = sorted[i];
  d->cat_names = af_calloc((size_t)u + 1, sizeof *d->cat_names, err);
  if (!d->cat_names) {
    free(sorted);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < u; i++) {
    d->cat_names[i] = dup_s(sorted[i], err);
    if (!d->cat_names[i]) {
      free(sorted);
      return AF_ERR_NOMEM;
    }
    d->n_cat = (int)i + 1;
  }
  for (int64_t i = 0; i < n; i++) {
    const char *c = d->p.categories[i][0] ? d->p.categories[i] : "(none)";
    char *const *hit = bsearch(&c, sorted, (size_t)u, sizeof *sorted, str_cmp);
    d->prod_cat[i] = (int)(hit - sorted);
  }
  free(sorted);
  d->heat = af_calloc((size_t)d->n_cat * (size_t)d->n_cat + 1, sizeof *d->heat, err);
  d->heat_borrowed = af_calloc((size_t)d->n_cat * (size_t)d->n_cat + 1, sizeof *d->heat, err);
  if (!d->heat || !d->heat_borrowed)
    return AF_ERR_NOMEM;
  /* the minimum evidence: the run's co-purchase threshold (fusion's min_count) */
  const cJSON *par = cJSON_GetObjectItem(d->run, "parameters");
  const cJSON *mc = cJSON_GetObjectItem(par, "itemcf_min_count");
  d->min_evidence = cJSON_IsNumber(mc) && mc->valuedouble >= 1 ? (int64_t)mc->valuedouble : 2;
  for (int64_t i = 0; i < d->as.n; i++) {
    const af_assoc *a = &d->as.rows[i];
    if (!a->substitute)
      (af_report_direct(d, a) ? d->heat : d->heat_borrowed)[(int64_t)d->prod_cat[a->a] * d->n_cat +
                                                             d->prod_cat[a->b]] += 1;
  }
  return AF_OK;
}

int af_report_direct(const af_report_data *d, const af_assoc *a) {
  return a->count >= d->min_evidence;
}

/* Strength of a product: the summed scores of its complement rows (both
 * ends); substitutes count a tenth, so a text-only run still ranks. */
static af_status rank(af_report_data *d, af_error *err) {
  int64_t n = d->p.n;
  d->strength = af_calloc((size_t)n + 1, sizeof *d->strength, err);
  d->ranked = af_malloc((size_t)n + 1, sizeof *d->ranked, err);
  if (!d->strength || !d->ranked)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < d->as.n; i++) {
    const af_assoc *a = &d->as.rows[i];
    double w = a->substitute ? 0.1 * a->score : a->score;
    d->strength[a->a] += w;
    d->strength[a->b] += w;
  }
  af_scored *tmp = af_malloc((size_t)n + 1, sizeof *tmp, err);
  if (!tmp)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < n; i++)
    tmp[i] = (af_scored){d->strength[i], i};
  qsort(tmp, (size_t)n, sizeof *tmp, af_scored_cmp);
  for (int64_t i = 0; i < n; i++)
    d->ranked[i] = tmp[i].i;
  free(tmp);
  return AF_OK;
}

/* Nodes: the `top` strongest products with any association, then the best
 * partners of each while there is room. Edges: association rows between two
 * nodes, one per unordered pair and type, strongest first, capped. */
static af_status select_network(af_report_data *d, af_error *err) {
  const af_report_options *o = d->o;
  int64_t n = d->p.n;
  int *in = af_calloc((size_t)n + 1, sizeof *in, err); /* (n) 1 + node index, 0 = not a node */
  d->nodes = af_malloc((size_t)o->max_nodes + 1, sizeof *d->nodes, err);
  af_scored *sc = af_malloc((size_t)d->as.n + 1, sizeof *sc, err);
  int64_t *order = af_malloc((size_t)d->as.n + 1, sizeof *order, err); /* (as.n) rows by score */
  d->edges = af_malloc((size_t)o->max_edges + 1, sizeof *d->edges, err);
  if (!in || !d->nodes || !order || !d->edges || !sc) {
    free(in);
    free(sc);
    free(order);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < n && d->n_nodes < o->top && d->n_nodes < o->max_nodes; i++) {
    int64_t r = d->ranked[i];
    if (d->strength[r] <= 0)
      break;
    d->nodes[d->n_nodes++] = r;
    in[r] = d->n_nodes;
  }
  for (int64_t i = 0; i < d->as.n; i++)
    sc[i] = (af_scored){d->as.rows[i].score, i};
  qsort(sc, (size_t)d->as.n, sizeof *sc, af_scored_cmp);
  for (int64_t i = 0; i < d->as.n; i++)
    order[i] = sc[i].i;
  free(sc);
  /* partners: for each anchor, its two best rows to a product not yet in */
  int n_anchor = d->n_nodes;
  for (int k = 0; k < n_anchor && d->n_nodes < o->max_nodes; k++) {
    int added = 0;
    for (int64_t i = 0; i < d->as.n && added < 2 && d->n_nodes < o->max_nodes; i++) {
      const af_assoc *a = &d->as.rows[order[i]];
      if (a->a != d->nodes[k] || in[a->b])
        continue;
      d->nodes[d->n_nodes++] = a->b;
      in[a->b] = d->n_nodes;
      added++;
    }
  }
  for (int64_t i = 0; i < d->as.n && d->n_edges < o->max_edges; i++) {
    const af_assoc *a = &d->as.rows[order[i]];
    if (!in[a->a] || !in[a->b] || a->a == a->b)
      continue;
    int dup = 0;
    for (int e = 0; e < d->n_edges && !dup; e++) {
      const af_assoc *b = &d->as.rows[d->edges[e]];
      dup = b->substitute == a->substitute &&
            ((b->a == a->a && b->b == a->b) || (b->a == a->b && b->b == a->a));
    }
    if (!dup)
      d->edges[d->n_edges++] = order[i];
  }
  /* drop nodes that kept no edge (the edge cap can strand a partner) */
  int kept = 0, anchors = 0;
  for (int i = 0; i < d->n_nodes; i++) {
    int used = 0;
    for (int e = 0; e < d->n_edges && !used; e++)
      used = d->as.rows[d->edges[e]].a == d->nodes[i] || d->as.rows[d->edges[e]].b == d->nodes[i];
    if (used) {
      anchors += i < n_anchor;
      d->nodes[kept++] = d->nodes[i];
    }
  }
  d->n_nodes = kept;
  d->n_anchors = anchors;
  free(in);
  free(order);
  return AF_OK;
}

af_status af_report_write(const char *run_dir, const char *html_path, const af_report_options *o,
                          af_error *err) {
  af_report_options def;
  if (!o) {
    af_report_default_options(&def);
    o = &def;
  }
  if (o->top < 1 || o->max_nodes < 1 || o->max_edges < 0 || o->table_rules < 0 ||
      o->table_products < 0)
    return af_error_set(err, AF_ERR_ARG, "report: top, max_nodes must be >= 1");
  struct stat sb;
  if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return af_error_set(err, AF_ERR_IO, "%s: not a run folder (no such folder)", run_dir);
  af_report_data d;
  memset(&d, 0, sizeof d);
  d.o = o;
  d.run_dir = run_dir;
  char path[AF_PATH_MAX];
  char *svg = NULL;
  af_status st = af_run_path(run_dir, "run.json", path, err);
  if (st == AF_OK && (st = af_run_json_read(path, 0, &d.run, err)) != AF_OK)
    af_error_prefix(err, "run folder %s is incomplete (run `affinity run` first): ", run_dir);
  if (st == AF_OK && !cJSON_IsObject(d.run))
    st = af_error_set(err, AF_ERR_FORMAT, "%s: not a JSON object", path);
  if (st == AF_OK)
    st = af_run_products_read(run_dir, &d.p, err);
  if (st == AF_OK)
    st = af_assoc_read(run_dir, &d.p, &d.as, err);
  if (st == AF_OK)
    st = read_rules(&d, err);
  if (st == AF_OK && (st = af_run_path(run_dir, "eval.json", path, err)) == AF_OK)
    st = af_run_json_read(path, 1, &d.eval, err);
  if (st == AF_OK)
    st = categories(&d, err);
  if (st == AF_OK)
    st = rank(&d, err);
  if (st == AF_OK)
    st = select_network(&d, err);
  if (st == AF_OK)
    st = af_report_network(&d, &svg, o->network_png, err);
  if (st == AF_OK && o->heatmap_png)
    st = af_report_heatmap_png(&d, o->heatmap_png, err);
  if (st == AF_OK)
    st = af_report_html(&d, svg, html_path, err);
  free(svg);
  data_free(&d);
  return st;
}
