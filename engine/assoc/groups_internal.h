/* Internal to engine/groups*.c. */
#ifndef AF_GROUPS_INTERNAL_H
#define AF_GROUPS_INTERNAL_H

#include <stdint.h>

#include "affinity.h"

/* Louvain on the undirected graph given as CSR over n nodes (off (n + 1),
 * adj/w (off[n]), each edge in both rows, no self entries). label (n) out:
 * the smallest node index of the node's community, -1 for a node without
 * edges. *levels: aggregation levels that moved nodes. */
af_status af_groups_louvain(int64_t n, const int64_t *off, const int64_t *adj, const double *w,
                            int max_sweeps, int64_t *label, int *levels, af_error *err);

#endif
