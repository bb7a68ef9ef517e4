/* Product groups from the complement graph (docs/report.md).
 *
 * Graph: one node per product with a complement association of score > 0 and >=
 * min_score; one undirected edge per pair, weighted by the larger score of
 * its two directions (associations.csv lists a -> b and b -> a separately).
 *
 * Grouping: weighted label propagation (Raghavan, Albert, Kumara 2007) made
 * deterministic: every node starts with its own label; sweeps visit nodes in
 * catalog order and give each the label with the largest summed edge weight
 * among its neighbours, keeping its current label on a tie with the best and
 * otherwise taking the smallest tied label; stop when a sweep changes nothing
 * (or after max_sweeps). At the end every node's label is a best label among
 * its neighbours. Near-linear per sweep (O(edges)); unlike connected
 * components it splits weakly linked clusters, unlike modularity optimisation
 * (Louvain) it needs no resolution parameter and stays a few dozen lines.
 *
 * Groups are numbered by size (largest first, ties by smallest member row);
 * members are ordered by strength (summed weight of their edges inside the
 * group), strongest first. */
#ifndef AF_GROUPS_H
#define AF_GROUPS_H

#include <stdint.h>

#include "error.h"
#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  double min_score; /* complement rows below this are ignored (default 0) */
  int max_sweeps;   /* default 100 */
} af_groups_options;

void af_groups_default_options(af_groups_options *o);

typedef struct {
  int64_t n_groups;
  int64_t *offsets;  /* (n_groups + 1) into members */
  int64_t *members;  /* (offsets[n_groups]) product rows */
  double *strength;  /* (offsets[n_groups]) per member */
  int sweeps;        /* sweeps run */
  int converged;
} af_groups;

af_status af_groups_compute(const af_run_products *p, const af_assoc_list *as,
                            const af_groups_options *o, af_groups *out, af_error *err);
void af_groups_free(af_groups *g);

/* groups.csv: group,group_size,rank,product_id,product,category,strength */
af_status af_groups_write_csv(const char *path, const af_run_products *p, const af_groups *g,
                              af_error *err);

#ifdef __cplusplus
}
#endif
#endif
