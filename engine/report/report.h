/* The HTML report of a run folder (docs/report.md): one self-contained file
 * (inline CSS and SVG, no network access) with the association network of the
 * top products (laid out by Graphviz), a category x category heatmap of
 * complement associations, the top rules, each top product's complements and
 * substitutes with their evidence, the evaluation table and the run's
 * metadata; plus PNG exports of both figures (rendered by Graphviz).
 *
 * Reads from the run folder: run.json, products.csv and associations.csv
 * (required), rules.csv and eval.json (optional: the report says when they
 * are absent). Every text is HTML-escaped. */
#ifndef AF_REPORT_H
#define AF_REPORT_H

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int top;               /* products ranked by association strength that anchor the network */
  int max_nodes;         /* network nodes in all (top + their strongest partners) */
  int max_edges;         /* strongest edges kept */
  int table_products;    /* products with a complements/substitutes table */
  int table_rules;       /* rules listed */
  const char *layout;    /* Graphviz engine for the network: "neato" (default), "sfdp", "fdp" */
  const char *network_png; /* NULL: no PNG */
  const char *heatmap_png; /* NULL: no PNG */
} af_report_options;

void af_report_default_options(af_report_options *o);

/* Writes html_path (and the PNGs) atomically. */
af_status af_report_write(const char *run_dir, const char *html_path, const af_report_options *o,
                          af_error *err);

#ifdef __cplusplus
}
#endif
#endif
