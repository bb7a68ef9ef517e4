/* The report's HTML page: one self-contained file (inline CSS, SVG and a
 * small script; nothing fetched from the network). Every text from the data
 * goes through af_html_escape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "report/report_internal.h"

static const char CSS[] =
    "body{font-family:'Noto Sans CJK SC','DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;"
    "background:#fff;max-width:1350px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid "
    "#ddd;padding-bottom:4px}h3{font-size:15px;margin:16px 0 4px}"
    ".sub{color:#666;font-size:13px}.note{color:#8a5a00;font-size:13px}"
    "table{border-collapse:collapse;font-size:12.5px;margin:4px 0 10px}"
    "th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f3f5f8}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".fig{border:1px solid #e2e2e2;padding:8px;margin:8px 0;overflow:auto}"
    ".fig svg{max-width:100%;height:auto;max-height:1000px;display:block;margin:auto}"
    ".legend span{display:inline-block;margin:2px 12px 2px 0;font-size:12px}"
    ".sw{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:4px;"
    "vertical-align:-2px}"
    ".cols{display:flex;gap:16px;flex-wrap:wrap}.cols>div{flex:1;min-width:420px}"
    ".comp{color:#2b6cb0}.subs{color:#dd6b20}";

/* Runs after load: records where the figures are (tests screenshot the page
 * and check those areas are drawn) and marks the page as loaded. */
static const char SCRIPT[] =
    "<script>\n"
    "(function(){\n"
    "  function box(id){var e=document.getElementById(id);if(!e)return '';"
    "var r=e.getBoundingClientRect();"
    "return [Math.round(r.left+window.scrollX),Math.round(r.top+window.scrollY),"
    "Math.round(r.width),Math.round(r.height)].join(',');}\n"
    "  window.addEventListener('load',function(){\n"
    "    var b=document.body;\n"
    "    b.setAttribute('data-network-box',box('network-svg-box'));\n"
    "    b.setAttribute('data-heatmap-box',box('heatmap-svg-box'));\n"
    "    b.setAttribute('data-loaded','1');\n"
    "    document.title=document.title+' [loaded]';\n"
    "  });\n"
    "})();\n"
    "</script>\n";

static void esc(FILE *f, const char *s) { af_html_escape(f, s ? s : ""); }

static void num_cell(FILE *f, double x, const char *fmt) {
  fputs("<td class=\"n\">", f);
  if (isfinite(x))
    fprintf(f, fmt, x);
  else
    fputs("&mdash;", f);
  fputs("</td>", f);
}

/* ---- JSON as tables ------------------------------------------------------------- */

static void json_value(FILE *f, const cJSON *v) {
  if (cJSON_IsNumber(v)) {
    double x = v->valuedouble;
    if (x == floor(x) && fabs(x) < 1e15)
      fprintf(f, "%.0f", x);
    else
      fprintf(f, "%.4g", x);
  } else if (cJSON_IsString(v)) {
    esc(f, v->valuestring);
  } else if (cJSON_IsBool(v)) {
    fputs(cJSON_IsTrue(v) ? "yes" : "no", f);
  } else if (cJSON_IsNull(v) || !v) {
    fputs("&mdash;", f);
  } else {
    char *t = cJSON_PrintUnformatted(v);
    esc(f, t ? t : "");
    free(t);
  }
}

static int is_scalar(const cJSON *v) { return !cJSON_IsObject(v) && !cJSON_IsArray(v); }

/* An object or array whose children are objects of scalars: one table row per child. */
static int is_record_set(const cJSON *v) {
  if (!(cJSON_IsObject(v) || cJSON_IsArray(v)) || !v->child)
    return 0;
  for (const cJSON *c = v->child; c; c = c->next) {
    if (!cJSON_IsObject(c) || !c->child)
      return 0;
    for (const cJSON *x = c->child; x; x = x->next)
      if (!is_scalar(x))
        return 0;
  }
  return 1;
}

static void record_table(FILE *f, const cJSON *v) {
  const char *cols[64];
  int nc = 0;
  for (const cJSON *c = v->child; c; c = c->next)
    for (const cJSON *x = c->child; x; x = x->next) {
      int seen = 0;
      for (int i = 0; i < nc && !seen; i++)
        seen = strcmp(cols[i], x->string) == 0;
      if (!seen && nc < 64)
        cols[nc++] = x->string;
    }
  fputs("<table><tr>", f);
  if (cJSON_IsObject(v))
    fputs("<th></th>", f);
  for (int i = 0; i < nc; i++) {
    fputs("<th>", f);
    esc(f, cols[i]);
    fputs("</th>", f);
  }
  fputs("</tr>\n", f);
  for (const cJSON *c = v->child; c; c = c->next) {
    fputs("<tr>", f);
    if (cJSON_IsObject(v)) {
      fputs("<th>", f);
      esc(f, c->string);
      fputs("</th>", f);
    }
    for (int i = 0; i < nc; i++) {
      const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, cols[i]);
      fputs(cJSON_IsNumber(x) ? "<td class=\"n\">" : "<td>", f);
      json_value(f, x);
      fputs("</td>", f);
    }
    fputs("</tr>\n", f);
  }
  fputs("</table>\n", f);
}

/* Scalars as key/value rows; nested record sets as their own tables. */
static void json_section(FILE *f, const cJSON *v, int depth) {
  if (is_record_set(v)) {
    record_table(f, v);
    return;
  }
  int any_scalar = 0;
  for (const cJSON *c = v->child; c; c = c->next)
    any_scalar |= is_scalar(c) || (cJSON_IsArray(c) && !is_record_set(c));
  if (any_scalar) {
    fputs("<table>", f);
    for (const cJSON *c = v->child; c; c = c->next)
      if (is_scalar(c) || (cJSON_IsArray(c) && !is_record_set(c))) {
        fputs("<tr><th>", f);
        esc(f, c->string ? c->string : "");
        fputs(cJSON_IsNumber(c) ? "</th><td class=\"n\">" : "</th><td>", f);
        json_value(f, c);
        fputs("</td></tr>\n", f);
      }
    fputs("</table>\n", f);
  }
  for (const cJSON *c = v->child; c; c = c->next)
    if (cJSON_IsObject(c) || is_record_set(c)) {
      fprintf(f, "<h3>%s", depth > 1 ? "&rarr; " : "");
      esc(f, c->string ? c->string : "");
      fputs("</h3>\n", f);
      if (depth < 4)
        json_section(f, c, depth + 1);
    }
}

/* ---- sections --------------------------------------------------------------------- */

static void header(const af_report_data *d, FILE *f) {
  const cJSON *data = cJSON_GetObjectItem(d->run, "data");
  const cJSON *model = cJSON_GetObjectItem(d->run, "model");
  fputs("<h1>affinity report</h1>\n<p class=\"sub\">catalog <b>", f);
  esc(f, cJSON_GetStringValue(cJSON_GetObjectItem(data, "catalog")));
  fprintf(f, "</b> (%lld products)", (long long)d->p.n);
  const char *bk = cJSON_GetStringValue(cJSON_GetObjectItem(data, "baskets"));
  if (bk) {
    fputs(" &middot; baskets <b>", f);
    esc(f, bk);
    fputs("</b> (", f);
    json_value(f, cJSON_GetObjectItem(data, "n_baskets"));
    fputs(")", f);
  } else {
    fputs(" &middot; no baskets (text similarity only)", f);
  }
  fputs(" &middot; model <b>", f);
  const char *mn = cJSON_GetStringValue(cJSON_GetObjectItem(model, "name"));
  esc(f, mn ? mn : cJSON_GetStringValue(cJSON_GetObjectItem(model, "path")));
  fputs("</b> &middot; ", f);
  esc(f, cJSON_GetStringValue(cJSON_GetObjectItem(d->run, "finished_utc")));
  int64_t nc = 0, ns = 0;
  for (int64_t i = 0; i < d->as.n; i++)
    d->as.rows[i].substitute ? ns++ : nc++;
  fprintf(f, "<br>%lld complement and %lld substitute associations", (long long)nc, (long long)ns);
  if (d->have_rules)
    fprintf(f, " &middot; %lld rules", (long long)d->n_rules_total);
  fputs("</p>\n", f);
}

static void network_section(const af_report_data *d, const char *svg, FILE *f) {
  fprintf(f,
          "<h2>Association network</h2>\n<p class=\"sub\">The %d strongest products (thick "
          "border) and their best partners: %d products, %d links. Node colour: category. "
          "<span class=\"comp\">Solid blue: complement</span> (bought together more than "
          "chance), <span class=\"subs\">dashed orange: substitute</span> (similar title, same "
          "category, not bought together). Line width: score. Hover for evidence. Layout: "
          "Graphviz %s.</p>\n",
          d->n_anchors, d->n_nodes, d->n_edges,
          d->o->layout ? d->o->layout : "neato");
  fputs("<div class=\"fig\" id=\"network-figure\"><div id=\"network-svg-box\">\n", f);
  fputs(svg ? svg : "", f);
  fputs("</div></div>\n", f);
  if (d->n_nodes == 0)
    fputs("<p class=\"note\">No associations in this run: the network is empty.</p>\n", f);
}

static void heatmap_section(const af_report_data *d, FILE *f) {
  fputs("<h2>Category &times; category complements</h2>\n<p class=\"sub\">Number of complement "
        "associations from a product of the row's category to one of the column's (log colour "
        "scale).</p>\n",
        f);
  if (d->n_cat == 1 && strcmp(d->cat_names[0], "(none)") == 0)
    fputs("<p class=\"note\">The catalog of this run has no category column: one cell.</p>\n", f);
  fputs("<div class=\"fig\" id=\"heatmap-figure\"><div id=\"heatmap-svg-box\" "
        "style=\"display:inline-block\">\n",
        f);
  af_report_heatmap_svg(d, f);
  fputs("</div></div>\n", f);
}

/* The five best rows of a product and type, by score (ties: file order). */
static void assoc_table(const af_report_data *d, FILE *f, int64_t prod, int substitute) {
  int64_t best[5];
  int n = 0;
  for (int64_t i = 0; i < d->as.n; i++) {
    const af_assoc *a = &d->as.rows[i];
    if (a->a != prod || a->substitute != substitute)
      continue;
    int j = n < 5 ? n++ : 5;
    while (j > 0 && d->as.rows[best[j - 1]].score < a->score) {
      if (j < 5)
        best[j] = best[j - 1];
      j--;
    }
    if (j < 5)
      best[j] = i;
  }
  if (!n) {
    fputs("<p class=\"sub\">none</p>\n", f);
    return;
  }
  fputs("<table><tr><th>product</th><th>score</th><th>together</th><th>lift</th>"
        "<th>text cosine</th></tr>\n",
        f);
  for (int k = 0; k < n; k++) {
    const af_assoc *a = &d->as.rows[best[k]];
    fputs("<tr><td>", f);
    esc(f, d->p.names[a->b]);
    fputs("</td>", f);
    num_cell(f, a->score, "%.3f");
    num_cell(f, (double)a->count, "%.0f");
    num_cell(f, a->lift, "%.2f");
    num_cell(f, a->cosine, "%.3f");
    fputs("</tr>\n", f);
  }
  fputs("</table>\n", f);
}

static void products_section(const af_report_data *d, FILE *f) {
  fputs("<h2>Top products: complements and substitutes</h2>\n<p class=\"sub\">Best five of each, "
        "with their evidence: baskets holding both (together), lift, and the cosine similarity "
        "of the titles' embeddings.</p>\n",
        f);
  int shown = 0;
  for (int64_t i = 0; i < d->p.n && shown < d->o->table_products; i++) {
    int64_t r = d->ranked[i];
    if (d->strength[r] <= 0)
      break;
    fputs("<h3>", f);
    esc(f, d->p.names[r]);
    fputs(" <span class=\"sub\">(", f);
    esc(f, d->cat_names[d->prod_cat[r]]);
    fputs(", id ", f);
    esc(f, d->p.ids[r]);
    fprintf(f, ", %lld baskets)</span></h3>\n<div class=\"cols\"><div><b class=\"comp\">"
               "complements</b>\n",
            (long long)d->p.counts[r]);
    assoc_table(d, f, r, 0);
    fputs("</div><div><b class=\"subs\">substitutes</b>\n", f);
    assoc_table(d, f, r, 1);
    fputs("</div></div>\n", f);
    shown++;
  }
  if (!shown)
    fputs("<p class=\"note\">No associations.</p>\n", f);
}

static void rules_section(const af_report_data *d, FILE *f) {
  fputs("<h2>Top association rules</h2>\n", f);
  if (!d->have_rules) {
    fputs("<p class=\"note\">No rules: this run had no baskets.</p>\n", f);
    return;
  }
  fprintf(f, "<p class=\"sub\">The first %d of %lld rules (FP-growth), by lift, then confidence."
             "</p>\n",
          d->n_rules, (long long)d->n_rules_total);
  fputs("<table><tr><th>if bought</th><th>then also</th><th>support</th><th>confidence</th>"
        "<th>lift</th><th>baskets</th></tr>\n",
        f);
  for (int i = 0; i < d->n_rules; i++) {
    const af_report_rule *r = &d->rules[i];
    fputs("<tr><td>", f);
    esc(f, r->ante);
    fputs("</td><td>", f);
    esc(f, r->cons);
    fputs("</td>", f);
    num_cell(f, r->support, "%.4f");
    num_cell(f, r->confidence, "%.3f");
    num_cell(f, r->lift, "%.2f");
    num_cell(f, (double)r->count, "%.0f");
    fputs("</tr>\n", f);
  }
  fputs("</table>\n", f);
}

/* eval.json as `affinity eval` writes it: "methods": [{"name", "seconds",
 * "warm": {metrics}, "cold": {metrics}}], "protocol": {...}. One row per
 * method and group. Returns 0 when the file has another shape. */
static int eval_table(const af_report_data *d, FILE *f) {
  const cJSON *methods = cJSON_GetObjectItem(d->eval, "methods");
  if (!cJSON_IsArray(methods) || !methods->child)
    return 0;
  static const char *const GROUPS[2] = {"warm", "cold"};
  static const char *const COLS[6] = {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr", NULL};
  for (const cJSON *m = methods->child; m; m = m->next)
    if (!cJSON_IsString(cJSON_GetObjectItem(m, "name")) ||
        !cJSON_IsObject(cJSON_GetObjectItem(m, "warm")))
      return 0;
  fputs("<p class=\"sub\">Hide one product of each held-out basket, rank every other product "
        "with each method; warm: the hidden product was sold in training, cold: it was not "
        "(docs/evaluation.md).</p>\n<table><tr><th>method</th><th>group</th><th>queries</th>",
        f);
  for (int c = 0; COLS[c]; c++)
    fprintf(f, "<th>%s</th>", COLS[c]);
  fputs("<th>seconds</th></tr>\n", f);
  for (const cJSON *m = methods->child; m; m = m->next)
    for (int g = 0; g < 2; g++) {
      const cJSON *gr = cJSON_GetObjectItem(m, GROUPS[g]);
      if (!cJSON_IsObject(gr))
        continue;
      fputs("<tr><td>", f);
      esc(f, cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")));
      fprintf(f, "</td><td>%s</td><td class=\"n\">", GROUPS[g]);
      json_value(f, cJSON_GetObjectItem(gr, "queries"));
      fputs("</td>", f);
      for (int c = 0; COLS[c]; c++) {
        const cJSON *v = cJSON_GetObjectItem(gr, COLS[c]);
        num_cell(f, cJSON_IsNumber(v) ? v->valuedouble : NAN, "%.4f");
      }
      const cJSON *sec = cJSON_GetObjectItem(m, "seconds");
      num_cell(f, cJSON_IsNumber(sec) ? sec->valuedouble : NAN, "%.1f");
      fputs("</tr>\n", f);
    }
  fputs("</table>\n", f);
  const cJSON *proto = cJSON_GetObjectItem(d->eval, "protocol");
  if (cJSON_IsObject(proto)) {
    fputs("<h3>protocol</h3>\n", f);
    json_section(f, proto, 2);
  }
  return 1;
}

static void eval_section(const af_report_data *d, FILE *f) {
  fputs("<h2>Evaluation</h2>\n", f);
  if (!d->eval) {
    fputs("<p class=\"note\">No eval.json in this run folder: the evaluation stage did not run "
          "(see the stage table below).</p>\n",
          f);
    return;
  }
  if (!eval_table(d, f))
    json_section(f, d->eval, 1);
}

static void meta_section(const af_report_data *d, FILE *f) {
  fputs("<h2>Run</h2>\n", f);
  static const char *const PARTS[3] = {"data", "model", "parameters"};
  fputs("<div class=\"cols\">", f);
  for (int i = 0; i < 3; i++) {
    const cJSON *v = cJSON_GetObjectItem(d->run, PARTS[i]);
    fprintf(f, "<div><h3>%s</h3>\n", PARTS[i]);
    if (cJSON_IsObject(v))
      json_section(f, v, 2);
    fputs("</div>", f);
  }
  fputs("</div>\n<h3>stages</h3>\n<table><tr><th>stage</th><th>seconds</th><th>status</th></tr>\n",
        f);
  const cJSON *st = cJSON_GetObjectItem(d->run, "stages");
  for (const cJSON *s = cJSON_IsArray(st) ? st->child : NULL; s; s = s->next) {
    fputs("<tr><td>", f);
    esc(f, cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")));
    fputs("</td>", f);
    const cJSON *sec = cJSON_GetObjectItem(s, "seconds");
    num_cell(f, cJSON_IsNumber(sec) ? sec->valuedouble : NAN, "%.2f");
    const char *note = cJSON_GetStringValue(cJSON_GetObjectItem(s, "note"));
    fputs("<td>", f);
    if (note)
      esc(f, note);
    else
      fputs(cJSON_IsTrue(cJSON_GetObjectItem(s, "skipped")) ? "skipped (inputs unchanged)" : "ran",
            f);
    fputs("</td></tr>\n", f);
  }
  fputs("</table>\n<p class=\"sub\">affinity ", f);
  esc(f, cJSON_GetStringValue(cJSON_GetObjectItem(d->run, "affinity_version")));
  fputs("</p>\n", f);
}

af_status af_report_html(const af_report_data *d, const char *network_svg, const char *html_path,
                         af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(html_path, tmp, &f, err));
  fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<title>affinity report</title>\n<style>%s</style>\n</head>\n<body>\n",
          CSS);
  header(d, f);
  network_section(d, network_svg, f);
  heatmap_section(d, f);
  products_section(d, f);
  rules_section(d, f);
  eval_section(d, f);
  meta_section(d, f);
  fputs(SCRIPT, f);
  fputs("</body>\n</html>\n", f);
  return af_atomic_fclose(f, tmp, html_path, err);
}
