/* Louvain modularity clustering (Blondel, Guillaume, Lambiotte, Lefebvre
 * 2008), deterministic: nodes visited in index order, a node moves only for
 * a strictly larger modularity gain, ties go to the community seen first.
 *
 * Level graph: N nodes, CSR adjacency without self entries (each undirected
 * edge in both rows), self[i] = weight inside node i (each edge once),
 * k[i] = sum of i's adjacency weights + 2 self[i], 2m = sum k. Moving node i
 * from its community (after removing it) into community D gains
 *   dQ ~ k_i,in(D) - tot(D) k_i / 2m        (up to the factor 1/m)
 * where k_i,in(D) is the weight from i to D and tot(D) the k-sum of D.
 * Local moving repeats sweeps until none moves a node; then communities
 * become nodes (internal weights -> self) and the next level starts; stop
 * when a level moves nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "assoc/groups_internal.h"

typedef struct {
  int64_t N;
  int64_t *off;  /* (N + 1) */
  int64_t *nbr;  /* (off[N]) */
  double *w;     /* (off[N]) */
  double *self;  /* (N) */
} level_graph;

static void level_free(level_graph *g) {
  free(g->off);
  free(g->nbr);
  free(g->w);
  free(g->self);
  memset(g, 0, sizeof *g);
}

/* Local moving on g; comm (N) in/out. Returns the number of moves. */
static int64_t local_moving(const level_graph *g, int64_t *comm, double *tot, double *acc,
                            int64_t *touched, int max_sweeps) {
  int64_t N = g->N, moves_total = 0;
  double m2 = 0;
  for (int64_t i = 0; i < N; i++) {
    double k = 2 * g->self[i];
    for (int64_t e = g->off[i]; e < g->off[i + 1]; e++)
      k += g->w[e];
    tot[i] = 0;
    acc[i] = -1; /* -1: community not touched yet */
    m2 += k;
  }
  if (m2 <= 0)
    return 0;
  for (int64_t i = 0; i < N; i++) {
    double k = 2 * g->self[i];
    for (int64_t e = g->off[i]; e < g->off[i + 1]; e++)
      k += g->w[e];
    tot[comm[i]] += k;
  }
  for (int sweep = 0; sweep < max_sweeps; sweep++) {
    int64_t moves = 0;
    for (int64_t i = 0; i < N; i++) {
      double ki = 2 * g->self[i];
      for (int64_t e = g->off[i]; e < g->off[i + 1]; e++)
        ki += g->w[e];
      if (ki <= 0)
        continue;
      int64_t c = comm[i], nt = 0;
      acc[c] = 0;
      touched[nt++] = c;
      for (int64_t e = g->off[i]; e < g->off[i + 1]; e++) {
        int64_t d = comm[g->nbr[e]];
        if (acc[d] < 0) {
          acc[d] = 0;
          touched[nt++] = d;
        }
        acc[d] += g->w[e];
      }
      tot[c] -= ki;
      int64_t best = c;
      double best_gain = acc[c] - tot[c] * ki / m2;
      for (int64_t t = 1; t < nt; t++) {
        int64_t d = touched[t];
        double gain = acc[d] - tot[d] * ki / m2;
        /* strictly better by more than rounding, so no move can cycle */
        if (gain > best_gain + 1e-12 * (fabs(best_gain) + ki)) {
          best = d;
          best_gain = gain;
        }
      }
      tot[best] += ki;
      comm[i] = best;
      moves += best != c;
      for (int64_t t = 0; t < nt; t++)
        acc[touched[t]] = -1;
    }
    moves_total += moves;
    if (moves == 0)
      break;
  }
  return moves_total;
}

/* Communities of g (comm, renumbered into 0..C-1 by first node) -> next level. */
static af_status aggregate(const level_graph *g, int64_t *comm, level_graph *next, double *acc,
                           int64_t *touched, af_error *err) {
  int64_t N = g->N, C = 0;
  int64_t *map = af_malloc((size_t)N + 1, sizeof *map, err);   /* (N) old id -> new */
  int64_t *first = af_calloc((size_t)N + 2, sizeof *first, err); /* (C + 1) member offsets */
  int64_t *members = af_malloc((size_t)N + 1, sizeof *members, err);
  af_status st = map && first && members ? AF_OK : AF_ERR_NOMEM;
  memset(next, 0, sizeof *next);
  if (st == AF_OK) {
    for (int64_t i = 0; i < N; i++)
      map[i] = -1;
    for (int64_t i = 0; i < N; i++) {
      if (map[comm[i]] < 0)
        map[comm[i]] = C++;
      comm[i] = map[comm[i]];
      first[comm[i] + 1]++;
    }
    for (int64_t c = 0; c < C; c++)
      first[c + 1] += first[c];
    for (int64_t c = 0; c < C; c++)
      touched[c] = first[c]; /* fill cursor per community */
    for (int64_t i = 0; i < N; i++)
      members[touched[comm[i]]++] = i;
    next->N = C;
    next->off = af_calloc((size_t)C + 2, sizeof *next->off, err);
    next->self = af_calloc((size_t)C + 1, sizeof *next->self, err);
    next->nbr = af_malloc((size_t)g->off[N] + 1, sizeof *next->nbr, err); /* at most as many */
    next->w = af_malloc((size_t)g->off[N] + 1, sizeof *next->w, err);
    if (!next->off || !next->self || !next->nbr || !next->w)
      st = AF_ERR_NOMEM;
  }
  for (int64_t i = 0; st == AF_OK && i < C; i++)
    acc[i] = -1;
  int64_t pos = 0;
  for (int64_t c = 0; st == AF_OK && c < C; c++) {
    int64_t nt = 0;
    for (int64_t p = first[c]; p < first[c + 1]; p++) {
      int64_t i = members[p];
      next->self[c] += g->self[i];
      for (int64_t e = g->off[i]; e < g->off[i + 1]; e++) {
        int64_t d = comm[g->nbr[e]];
        if (d == c) {
          next->self[c] += 0.5 * g->w[e]; /* each inside edge is seen from both ends */
          continue;
        }
        if (acc[d] < 0) {
          acc[d] = 0;
          touched[nt++] = d;
        }
        acc[d] += g->w[e];
      }
    }
    for (int64_t t = 0; t < nt; t++) {
      next->nbr[pos] = touched[t];
      next->w[pos++] = acc[touched[t]];
      acc[touched[t]] = -1;
    }
    next->off[c + 1] = pos;
  }
  free(map);
  free(first);
  free(members);
  if (st != AF_OK)
    level_free(next);
  return st;
}

af_status af_groups_louvain(int64_t n, const int64_t *off, const int64_t *adj, const double *w,
                            int max_sweeps, int64_t *label, int *levels, af_error *err) {
  level_graph g = {0}, next = {0};
  int64_t *comm = af_malloc((size_t)n + 1, sizeof *comm, err);   /* (N) level communities */
  int64_t *node = af_malloc((size_t)n + 1, sizeof *node, err);   /* (n) product -> level node */
  double *tot = af_malloc((size_t)n + 1, sizeof *tot, err);
  double *acc = af_malloc((size_t)n + 1, sizeof *acc, err);
  int64_t *touched = af_malloc((size_t)n + 1, sizeof *touched, err);
  g.N = n;
  g.off = af_malloc((size_t)n + 1, sizeof *g.off, err);
  g.nbr = af_malloc((size_t)off[n] + 1, sizeof *g.nbr, err);
  g.w = af_malloc((size_t)off[n] + 1, sizeof *g.w, err);
  g.self = af_calloc((size_t)n + 1, sizeof *g.self, err);
  af_status st = comm && node && tot && acc && touched && g.off && g.nbr && g.w && g.self
                     ? AF_OK
                     : AF_ERR_NOMEM;
  *levels = 0;
  if (st == AF_OK) {
    memcpy(g.off, off, ((size_t)n + 1) * sizeof *off);
    memcpy(g.nbr, adj, (size_t)off[n] * sizeof *adj);
    memcpy(g.w, w, (size_t)off[n] * sizeof *w);
    for (int64_t i = 0; i < n; i++)
      node[i] = i;
  }
  while (st == AF_OK) {
    for (int64_t i = 0; i < g.N; i++)
      comm[i] = i;
    int64_t moves = local_moving(&g, comm, tot, acc, touched, max_sweeps);
    if (moves == 0)
      break;
    (*levels)++;
    if ((st = aggregate(&g, comm, &next, acc, touched, err)) != AF_OK)
      break;
    for (int64_t i = 0; i < n; i++)
      node[i] = comm[node[i]];
    level_free(&g);
    g = next;
    memset(&next, 0, sizeof next);
  }
  if (st == AF_OK) {
    /* label = the smallest product index of the community; -1 when unlinked */
    for (int64_t c = 0; c < g.N; c++)
      comm[c] = -1;
    for (int64_t i = 0; i < n; i++) {
      if (off[i + 1] == off[i]) {
        label[i] = -1;
        continue;
      }
      if (comm[node[i]] < 0)
        comm[node[i]] = i;
      label[i] = comm[node[i]];
    }
  }
  level_free(&g);
  level_free(&next);
  free(comm);
  free(node);
  free(tot);
  free(acc);
  free(touched);
  return st;
}
