/* Internal to engine/report*.c: the run folder as the report sees it. */
#ifndef AF_REPORT_INTERNAL_H
#define AF_REPORT_INTERNAL_H

#include <cJSON.h>
#include <stdio.h>

#include "affinity.h"
#include "io/run_files.h"

typedef struct {
  char *ante, *cons; /* display names, " | " between items */
  double support, confidence, lift;
  long long count;
} af_report_rule;

typedef struct {
  const af_report_options *o;
  const char *run_dir;
  af_catalog p;
  af_assoc_list as;
  cJSON *run;  /* run.json */
  cJSON *eval; /* eval.json, NULL when absent */
  int have_rules;
  int n_rules;
  af_report_rule *rules; /* (n_rules) the first table_rules rows of rules.csv */
  int64_t n_rules_total;
  /* categories */
  int n_cat;
  char **cat_names; /* (n_cat) sorted; "(none)" for an empty category */
  int *prod_cat;    /* (p.n) */
  /* products ranked by association strength */
  double *strength;  /* (p.n) sum of association scores touching the product */
  int64_t *ranked;   /* (p.n) product rows, strongest first */
  /* the network */
  int n_nodes;
  int n_anchors;  /* the first n_anchors nodes are top products, the rest their partners */
  int64_t *nodes; /* (n_nodes) product rows */
  int n_edges;
  int64_t *edges; /* (n_edges) rows of as */
  double *heat;   /* (n_cat, n_cat) complement associations from category i to j */
} af_report_data;

/* report_graph.c: Graphviz. *svg is malloc'd (the <svg> element only). */
af_status af_report_network(const af_report_data *d, char **svg, const char *png_path,
                            af_error *err);
af_status af_report_heatmap_png(const af_report_data *d, const char *png_path, af_error *err);
/* report_heatmap.c: the heatmap as inline SVG written to f. */
void af_report_heatmap_svg(const af_report_data *d, FILE *f);
/* report_html.c */
af_status af_report_html(const af_report_data *d, const char *network_svg, const char *html_path,
                         af_error *err);

/* Helpers shared by the writers. */
void af_html_escape(FILE *f, const char *s);
const char *af_report_color(int i);      /* category colour, cycling a 20-colour palette */
void af_heat_color(double t, char out[8]); /* t in [0, 1] -> "#rrggbb" */
/* Copies at most max_chars characters of UTF-8 s into out (cap bytes), adding "…". */
void af_utf8_truncate(const char *s, int max_chars, char *out, size_t cap);

#endif
