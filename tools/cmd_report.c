/* affinity report: the HTML report (and PNG figures) of a run folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"run", "DIR", "run folder written by affinity run (required)"},
    {"out", "FILE.html", "report to write (default DIR/report.html)"},
    {"png-prefix", "P", "write the figures as P-network.png and P-heatmap.png (default: none)"},
    {"top", "N", "products anchoring the network (default 30)"},
    {"max-nodes", "N", "network nodes in all (default 60)"},
    {"max-edges", "N", "network links (default 150)"},
    {"layout", "ENGINE", "Graphviz layout of the network: neato (default), sfdp or fdp"},
};

static const af_cmd_spec SPEC = {
    "report",
    "--run DIR [--out report.html] [--png-prefix P] [--top N]",
    "Writes one self-contained HTML page (inline SVG and CSS, nothing loaded from the\n"
    "network) with the association network of the top products (Graphviz layout, nodes\n"
    "coloured by category, complement and substitute links), a category x category heatmap\n"
    "of complements, the top rules, each top product's complements and substitutes with\n"
    "their evidence, the evaluation table and the run's metadata.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

static af_status run(const af_args *a, af_error *err) {
  const char *dir;
  AF_TRY(af_arg_required(a, "run", &dir, err));
  af_report_options o;
  af_report_default_options(&o);
  int64_t top, nodes, edges;
  AF_TRY(af_arg_i64(a, "top", o.top, 1, 500, &top, err));
  AF_TRY(af_arg_i64(a, "max-nodes", o.max_nodes, 1, 2000, &nodes, err));
  AF_TRY(af_arg_i64(a, "max-edges", o.max_edges, 0, 10000, &edges, err));
  o.top = (int)top;
  o.max_nodes = (int)nodes;
  o.max_edges = (int)edges;
  const char *layout = af_arg_str(a, "layout");
  if (layout) {
    if (strcmp(layout, "neato") && strcmp(layout, "sfdp") && strcmp(layout, "fdp"))
      return af_error_set(err, AF_ERR_ARG, "--layout: '%s' is not neato, sfdp or fdp", layout);
    o.layout = layout;
  }
  char out_buf[4096], net[4096], heat[4096];
  const char *out = af_arg_str(a, "out");
  if (!out) {
    snprintf(out_buf, sizeof out_buf, "%s/report.html", dir);
    out = out_buf;
  }
  const char *prefix = af_arg_str(a, "png-prefix");
  if (prefix) {
    snprintf(net, sizeof net, "%s-network.png", prefix);
    snprintf(heat, sizeof heat, "%s-heatmap.png", prefix);
    o.network_png = net;
    o.heatmap_png = heat;
  }
  AF_TRY(af_report_write(dir, out, &o, err));
  fprintf(stderr, "affinity report: %s%s%s%s%s\n", out, prefix ? ", " : "", prefix ? net : "",
          prefix ? ", " : "", prefix ? heat : "");
  return AF_OK;
}

int af_cmd_report(int argc, char **argv) { return af_cli_main(&SPEC, argc, argv, run); }
