/* Product groups from the complement graph (docs/report.md).
 *
 * Graph: one node per product with a complement association of score > 0 and >=
 * min_score; one undirected edge per pair, weighted by the larger score of
 * its two directions (associations.csv lists a -> b and b -> a separately).
 *
 * Grouping, --method:
 *  louvain (default): modularity clustering (Blondel et al. 2008), made
 *    deterministic (nodes in catalog order, a move needs a strictly larger
 *    gain, ties to the community seen first); local moving, then communities
 *    become nodes, repeated while anything moves (engine/groups_louvain.c).
 *  lpa: weighted label propagation (Raghavan, Albert, Kumara 2007), made
 *    deterministic: every node starts with its own label; sweeps visit nodes
 *    in catalog order and give each the label with the largest summed edge
 *    weight among its neighbours, keeping its current label on a tie with the
 *    best and otherwise taking the smallest tied label; stop when a sweep
 *    changes nothing (or after max_sweeps). At the end every node's label is
 *    a best label among its neighbours. It grows groups around hubs.
 * Connected components are no use here: on the Instacart sample 1,948 of the
 * 2,022 linked products form one component.
 *
 * Groups are numbered by size (largest first, ties by smallest member row);
 * members are ordered by strength (summed weight of their edges inside the
 * group), strongest first. */
#ifndef AF_GROUPS_H
#define AF_GROUPS_H

#include <stdint.h>

#include "base/error.h"
#include "io/run_files.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { AF_GROUPS_LOUVAIN = 0, AF_GROUPS_LPA = 1 } af_groups_method;

typedef struct {
  af_groups_method method; /* default louvain */
  double min_score; /* complement rows below this are ignored (default 0) */
  int max_sweeps;   /* per level (default 100) */
} af_groups_options;

void af_groups_default_options(af_groups_options *o);

typedef struct {
  int64_t n_groups;
  int64_t *offsets;  /* (n_groups + 1) into members */
  int64_t *members;  /* (offsets[n_groups]) product rows */
  double *strength;  /* (offsets[n_groups]) per member */
  int sweeps;        /* lpa: sweeps run; louvain: levels that moved nodes */
  int converged;     /* lpa: the last sweep changed nothing */
  double modularity; /* Q = sum over groups of in/m - (tot/2m)^2 on the weighted graph */
} af_groups;

af_status af_groups_compute(const af_catalog *p, const af_assoc_list *as,
                            const af_groups_options *o, af_groups *out, af_error *err);
void af_groups_free(af_groups *g);

/* groups.csv: group,group_size,rank,product_id,product,category,strength */
af_status af_groups_write_csv(const char *path, const af_catalog *p, const af_groups *g,
                              af_error *err);

#ifdef __cplusplus
}
#endif
#endif
