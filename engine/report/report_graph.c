/* The report's figures through Graphviz (libgvc): the association network
 * (laid out by neato/sfdp, rendered to SVG for the HTML and to PNG) and the
 * heatmap PNG (an HTML-like table rendered by dot).
 *
 * Graphviz reports problems through a process-wide error hook; while we call
 * it we raise its print threshold to AGMAX (nothing printed) and restore it
 * after, and read its last message with aglasterr() to name the failure. */
#define _POSIX_C_SOURCE 200809L
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "report/report_internal.h"

#define AF_FONT "Noto Sans CJK SC,DejaVu Sans,sans-serif"
#define COLOR_COMPLEMENT "#2b6cb0"
#define COLOR_SUBSTITUTE "#dd6b20"

/* A DOT string literal: backslash and quote escaped, no line breaks. */
static void dot_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fputc('\\', f);
    fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
  }
  fputc('"', f);
}

/* Text inside a Graphviz HTML-like label. */
static void dot_html(FILE *f, const char *s) { af_html_escape(f, s); }

static void legend(const af_report_data *d, FILE *f) {
  int *used = calloc((size_t)d->n_cat + 1, sizeof *used);
  if (!used)
    return;
  for (int i = 0; i < d->n_nodes; i++)
    used[d->prod_cat[d->nodes[i]]] = 1;
  fputs("  legend [shape=plaintext, style=filled, fillcolor=white, color=white, fontsize=10, label=<<TABLE BORDER=\"0\" CELLBORDER=\"0\" "
        "CELLSPACING=\"2\"><TR><TD ALIGN=\"LEFT\" COLSPAN=\"2\"><B>category</B></TD></TR>",
        f);
  for (int c = 0; c < d->n_cat; c++)
    if (used[c]) {
      fprintf(f, "<TR><TD BGCOLOR=\"%s\" WIDTH=\"14\" HEIGHT=\"10\"></TD><TD ALIGN=\"LEFT\">",
              af_report_color(c));
      dot_html(f, d->cat_names[c]);
      fputs("</TD></TR>", f);
    }
  fputs("<TR><TD COLSPAN=\"2\" ALIGN=\"LEFT\"><FONT COLOR=\"" COLOR_COMPLEMENT
        "\">━━ complement</FONT></TD></TR><TR><TD COLSPAN=\"2\" ALIGN=\"LEFT\"><FONT COLOR=\"" COLOR_SUBSTITUTE
        "\">╍╍ substitute</FONT></TD></TR></TABLE>>];\n",
        f);
  free(used);
}

static af_status network_dot(const af_report_data *d, char **text, af_error *err) {
  size_t len;
  FILE *f = open_memstream(text, &len);
  if (!f)
    return af_error_set(err, AF_ERR_NOMEM, "report: cannot open a memory stream");
  fprintf(f,
          "graph network {\n"
          "  graph [overlap=false, splines=true, outputorder=edgesfirst, pad=0.2, pack=true, "
          "sep=\"+6\", bgcolor=\"white\", fontname=\"%s\"];\n"
          "  node [shape=box, style=\"rounded,filled\", fontname=\"%s\", fontsize=10, "
          "penwidth=0.6, color=\"#444444\", margin=\"0.06,0.03\"];\n"
          "  edge [fontname=\"%s\"];\n",
          AF_FONT, AF_FONT, AF_FONT);
  double max_score[2] = {0, 0};
  for (int e = 0; e < d->n_edges; e++) {
    const af_assoc *a = &d->as.rows[d->edges[e]];
    if (a->score > max_score[a->substitute])
      max_score[a->substitute] = a->score;
  }
  for (int i = 0; i < d->n_nodes; i++) {
    int64_t r = d->nodes[i];
    char label[256], tip[1024];
    af_utf8_truncate(d->p.names[r], 26, label, sizeof label);
    snprintf(tip, sizeof tip, "%s (%s, %lld baskets)", d->p.names[r],
             d->cat_names[d->prod_cat[r]], (long long)d->p.counts[r]);
    fprintf(f, "  n%d [label=", i);
    dot_str(f, label);
    fputs(", tooltip=", f);
    dot_str(f, tip);
    fprintf(f, ", fillcolor=\"%sb0\"%s];\n", af_report_color(d->prod_cat[r]),
            i < d->n_anchors ? ", penwidth=1.4" : "");
  }
  for (int e = 0; e < d->n_edges; e++) {
    const af_assoc *a = &d->as.rows[d->edges[e]];
    int ia = -1, ib = -1;
    for (int i = 0; i < d->n_nodes; i++) {
      if (d->nodes[i] == a->a)
        ia = i;
      if (d->nodes[i] == a->b)
        ib = i;
    }
    double w = max_score[a->substitute] > 0 ? a->score / max_score[a->substitute] : 1;
    char tip[256];
    snprintf(tip, sizeof tip, "%s: score %.3f, together %lld, lift %.2f, text cosine %.2f",
             a->substitute ? "substitute" : "complement", a->score, (long long)a->count,
             isfinite(a->lift) ? a->lift : 0.0, isfinite(a->cosine) ? a->cosine : 0.0);
    fprintf(f, "  n%d -- n%d [color=\"%s\", penwidth=%.2f, style=%s, tooltip=", ia, ib,
            a->substitute ? COLOR_SUBSTITUTE : COLOR_COMPLEMENT, 0.8 + 4.2 * w,
            a->substitute ? "dashed" : "solid");
    dot_str(f, tip);
    fputs("];\n", f);
  }
  legend(d, f);
  fputs("}\n", f);
  if (fclose(f) != 0 || !*text)
    return af_error_set(err, AF_ERR_NOMEM, "report: cannot build the network graph");
  return AF_OK;
}

/* Lays out `dot_text` with `engine`; renders SVG into *svg (when svg != NULL)
 * and PNG into png_path (when not NULL, atomically). */
static af_status render(const char *what, const char *dot_text, const char *engine, char **svg,
                        const char *png_path, af_error *err) {
  agerrlevel_t prev = agseterr(AGMAX);
  af_status st = AF_OK;
  GVC_t *gvc = gvContext();
  Agraph_t *g = gvc ? agmemread(dot_text) : NULL;
  int laid = 0;
  char tmp[AF_PATH_MAX];
  if (!gvc || !g) {
    const char *m = aglasterr();
    st = af_error_set(err, AF_ERR_INTERNAL, "report %s: Graphviz could not read the graph%s%s", what,
                      m ? ": " : "", m ? m : "");
    goto done;
  }
  if (gvLayout(gvc, g, engine) != 0) {
    const char *m = aglasterr();
    st = af_error_set(err, AF_ERR_UNSUPPORTED, "report %s: Graphviz layout '%s' failed%s%s", what,
                      engine, m ? ": " : "", m ? m : "");
    goto done;
  }
  laid = 1;
  if (svg) {
    char *data = NULL;
    unsigned int len = 0;
    if (gvRenderData(gvc, g, "svg", &data, &len) != 0 || !data) {
      st = af_error_set(err, AF_ERR_UNSUPPORTED, "report %s: Graphviz cannot render SVG", what);
      goto done;
    }
    const char *start = strstr(data, "<svg");
    size_t n = start ? len - (size_t)(start - data) : 0;
    *svg = af_malloc(n + 1, 1, err);
    if (*svg) {
      memcpy(*svg, start ? start : "", n);
      (*svg)[n] = '\0';
    }
    gvFreeRenderData(data);
    if (!*svg) {
      st = AF_ERR_NOMEM;
      goto done;
    }
    if (!start) {
      st = af_error_set(err, AF_ERR_INTERNAL, "report %s: Graphviz SVG has no <svg> element", what);
      goto done;
    }
  }
  if (png_path) {
    if ((st = af_tmp_path(png_path, tmp, err)) != AF_OK)
      goto done;
    if (gvRenderFilename(gvc, g, "png", tmp) != 0) {
      af_discard_file(tmp);
      st = af_error_set(err, AF_ERR_UNSUPPORTED, "report %s: Graphviz cannot render PNG to %s", what,
                        png_path);
      goto done;
    }
    st = af_commit_file(tmp, png_path, err);
  }
done:
  if (laid)
    gvFreeLayout(gvc, g);
  if (g)
    agclose(g);
  if (gvc)
    gvFreeContext(gvc);
  agseterr(prev);
  if (st != AF_OK && svg) {
    free(*svg);
    *svg = NULL;
  }
  return st;
}

af_status af_report_network(const af_report_data *d, char **svg, const char *png_path,
                            af_error *err) {
  *svg = NULL;
  char *text = NULL;
  af_status st = network_dot(d, &text, err);
  if (st == AF_OK)
    st = render("network", text, d->o->layout ? d->o->layout : "neato", svg, png_path, err);
  free(text);
  return st;
}

af_status af_report_heatmap_png(const af_report_data *d, const char *png_path, af_error *err) {
  char *text = NULL;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return af_error_set(err, AF_ERR_NOMEM, "report: cannot open a memory stream");
  double max = 0;
  for (int i = 0; i < d->n_cat * d->n_cat; i++)
    if (d->heat[i] > max)
      max = d->heat[i];
  fprintf(f, "digraph heatmap {\n  graph [pad=0.2, bgcolor=\"white\"];\n"
             "  node [shape=plaintext, fontname=\"%s\", fontsize=9];\n"
             "  h [label=<<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"1\" CELLPADDING=\"3\">\n"
             "<TR><TD COLSPAN=\"%d\"><FONT POINT-SIZE=\"12\">complement associations: "
             "category of the product (rows) to category of the related product (columns)"
             "</FONT></TD></TR>\n<TR><TD></TD>",
          AF_FONT, d->n_cat + 1);
  for (int j = 0; j < d->n_cat; j++) {
    char lab[64];
    af_utf8_truncate(d->cat_names[j], 9, lab, sizeof lab);
    fputs("<TD>", f);
    dot_html(f, lab);
    fputs("</TD>", f);
  }
  fputs("</TR>\n", f);
  for (int i = 0; i < d->n_cat; i++) {
    fputs("<TR><TD ALIGN=\"RIGHT\">", f);
    dot_html(f, d->cat_names[i]);
    fputs("</TD>", f);
    for (int j = 0; j < d->n_cat; j++) {
      double v = d->heat[(int64_t)i * d->n_cat + j];
      char col[8];
      double t = max > 0 ? log1p(v) / log1p(max) : 0;
      af_heat_color(t, col);
      /* an empty <FONT></FONT> is a syntax error in Graphviz HTML-like labels */
      fprintf(f, "<TD BGCOLOR=\"%s\" WIDTH=\"40\" HEIGHT=\"22\">", col);
      if (v > 0)
        fprintf(f, "<FONT COLOR=\"%s\">%.0f</FONT>", t > 0.55 ? "white" : "#333333", v);
      fputs("</TD>", f);
    }
    fputs("</TR>\n", f);
  }
  fputs("</TABLE>>];\n}\n", f);
  if (fclose(f) != 0 || !text)
    return af_error_set(err, AF_ERR_NOMEM, "report: cannot build the heatmap graph");
  af_status st = render("heatmap", text, "dot", NULL, png_path, err);
  free(text);
  return st;
}
