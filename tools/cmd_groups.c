/* affinity groups: product groups from the complement graph of a run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "affinity.h"

static const af_flag_spec FLAGS[] = {
    {"run", "DIR", "run folder written by affinity run (required)"},
    {"out", "FILE.csv", "groups CSV to write (required)"},
    {"method", "M", "louvain (modularity, default) or lpa (label propagation)"},
    {"min-score", "S", "ignore complement links scoring below S (default 0)"},
    {"show", "N", "groups summarised on stderr (default 10)"},
};

static const af_cmd_spec SPEC = {
    "groups",
    "--run DIR --out groups.csv [--method louvain|lpa] [--min-score S]",
    "Groups products for inventory and bundles: deterministic Louvain modularity clustering\n"
    "(or label propagation) of the complement graph of associations.csv (one node per\n"
    "product with a complement link, edge weight = the link's score). Writes one row per product:\n"
    "group,group_size,rank,product_id,product,category,strength (strength = summed weight\n"
    "of its links inside the group; rank 1 = strongest member). Groups are numbered by size.",
    FLAGS,
    sizeof FLAGS / sizeof FLAGS[0],
};

static af_status run(const af_args *a, af_error *err) {
  const char *dir, *out;
  AF_TRY(af_arg_required(a, "run", &dir, err));
  AF_TRY(af_arg_required(a, "out", &out, err));
  af_groups_options o;
  af_groups_default_options(&o);
  int64_t show;
  AF_TRY(af_arg_f64(a, "min-score", 0, -1e300, 1e300, &o.min_score, err));
  AF_TRY(af_arg_i64(a, "show", 10, 0, 1 << 30, &show, err));
  const char *method = af_arg_str(a, "method");
  if (method && strcmp(method, "lpa") == 0)
    o.method = AF_GROUPS_LPA;
  else if (method && strcmp(method, "louvain") != 0)
    return af_error_set(err, AF_ERR_ARG, "--method: '%s' is not louvain or lpa", method);
  af_catalog p;
  af_assoc_list as = {0};
  af_groups g = {0};
  AF_TRY(af_run_products_read(dir, &p, err));
  af_status st = af_assoc_read(dir, &p, &as, err);
  if (st == AF_OK)
    st = af_groups_compute(&p, &as, &o, &g, err);
  if (st == AF_OK)
    st = af_groups_write_csv(out, &p, &g, err);
  if (st == AF_OK) {
    fprintf(stderr, "affinity groups: %lld groups of %lld products, modularity %.3f (%s, %d %s%s) -> %s\n",
            (long long)g.n_groups, (long long)(g.n_groups ? g.offsets[g.n_groups] : 0),
            g.modularity, o.method == AF_GROUPS_LPA ? "lpa" : "louvain", g.sweeps,
            o.method == AF_GROUPS_LPA ? "sweeps" : "levels", g.converged ? "" : ", not converged",
            out);
    for (int64_t k = 0; k < g.n_groups && k < show; k++) {
      int64_t size = g.offsets[k + 1] - g.offsets[k];
      fprintf(stderr, "  group %lld (%lld):", (long long)k + 1, (long long)size);
      for (int64_t j = 0; j < size && j < 4; j++)
        fprintf(stderr, "%s %s", j ? ";" : "", p.names[g.members[g.offsets[k] + j]]);
      fprintf(stderr, "%s\n", size > 4 ? "; ..." : "");
    }
  }
  af_groups_free(&g);
  af_assoc_free(&as);
  af_catalog_free(&p);
  return st;
}

int af_cmd_groups(int argc, char **argv) { return af_cli_main(&SPEC, argc, argv, run); }
