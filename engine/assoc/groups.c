/* Product groups from the complement graph: the graph, label propagation,
 * grouping and groups.csv (see groups.h; Louvain in groups_louvain.c). */
#include "affinity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assoc/groups_internal.h"
#include "base/topk.h"

void af_groups_default_options(af_groups_options *o) {
  o->method = AF_GROUPS_LOUVAIN;
  o->min_score = 0;
  o->max_sweeps = 100;
}

void af_groups_free(af_groups *g) {
  free(g->offsets);
  free(g->members);
  free(g->strength);
  memset(g, 0, sizeof *g);
}

typedef struct {
  int64_t u, v; /* u < v */
  double w;
} edge;

static int edge_cmp(const void *x, const void *y) {
  const edge *a = x, *b = y;
  if (a->u != b->u)
    return a->u < b->u ? -1 : 1;
  return a->v < b->v ? -1 : a->v > b->v;
}

typedef struct {
  int64_t size, first, label;
} group_key;

static int group_cmp(const void *x, const void *y) {
  const group_key *a = x, *b = y;
  if (a->size != b->size)
    return a->size > b->size ? -1 : 1;
  return a->first < b->first ? -1 : a->first > b->first;
}

/* The undirected weighted graph as CSR: off (n + 1), adj and w (off[n]); every
 * edge appears in both of its rows, no self loops. */
typedef struct {
  int64_t n;
  int64_t *off, *adj;
  double *w;
} graph;

static void graph_free(graph *g) {
  free(g->off);
  free(g->adj);
  free(g->w);
}

/* Complement rows with score > 0 and >= min_score, one edge per pair weighted
 * by the larger score of its two directions. */
static af_status build_graph(int64_t n, const af_assoc_list *as, double min_score, graph *g,
                             af_error *err) {
  memset(g, 0, sizeof *g);
  g->n = n;
  edge *ed = af_malloc((size_t)as->n + 1, sizeof *ed, err);       /* (<= as->n) */
  g->off = af_calloc((size_t)n + 2, sizeof *g->off, err);         /* (n + 1) */
  int64_t *cursor = af_malloc((size_t)n + 1, sizeof *cursor, err); /* (n) fill position */
  af_status st = AF_ERR_NOMEM;
  if (!ed || !g->off || !cursor)
    goto done;
  int64_t ne = 0;
  for (int64_t i = 0; i < as->n; i++) {
    const af_assoc *a = &as->rows[i];
    if (a->substitute || a->a == a->b || !(a->score >= min_score) || !(a->score > 0))
      continue;
    ed[ne++] = (edge){a->a < a->b ? a->a : a->b, a->a < a->b ? a->b : a->a, a->score};
  }
  qsort(ed, (size_t)ne, sizeof *ed, edge_cmp);
  int64_t m = 0;
  for (int64_t i = 0; i < ne; i++) {
    if (m > 0 && ed[m - 1].u == ed[i].u && ed[m - 1].v == ed[i].v) {
      if (ed[i].w > ed[m - 1].w)
        ed[m - 1].w = ed[i].w;
    } else {
      ed[m++] = ed[i];
    }
  }
  for (int64_t i = 0; i < m; i++) {
    g->off[ed[i].u + 1]++;
    g->off[ed[i].v + 1]++;
  }
  for (int64_t i = 0; i < n; i++)
    g->off[i + 1] += g->off[i];
  g->adj = af_malloc((size_t)(2 * m) + 1, sizeof *g->adj, err); /* (2m) */
  g->w = af_malloc((size_t)(2 * m) + 1, sizeof *g->w, err);     /* (2m) */
  if (!g->adj || !g->w)
    goto done;
  for (int64_t i = 0; i < n; i++)
    cursor[i] = g->off[i];
  for (int64_t i = 0; i < m; i++) {
    g->adj[cursor[ed[i].u]] = ed[i].v;
    g->w[cursor[ed[i].u]++] = ed[i].w;
    g->adj[cursor[ed[i].v]] = ed[i].u;
    g->w[cursor[ed[i].v]++] = ed[i].w;
  }
  st = AF_OK;
done:
  free(ed);
  free(cursor);
  if (st != AF_OK)
    graph_free(g);
  return st;
}

/* Weighted label propagation (groups.h), starting from label; acc and
 * touched (n) are scratch, zero on entry and exit. */
static void label_propagation(const graph *g, int max_sweeps, int64_t *label, double *acc,
                              int64_t *touched, af_groups *out) {
  int changed = 1;
  while (changed && out->sweeps < max_sweeps) {
    changed = 0;
    out->sweeps++;
    for (int64_t u = 0; u < g->n; u++) {
      if (label[u] < 0)
        continue;
      int64_t nt = 0;
      for (int64_t e = g->off[u]; e < g->off[u + 1]; e++) {
        int64_t l = label[g->adj[e]];
        if (acc[l] == 0)
          touched[nt++] = l;
        acc[l] += g->w[e];
      }
      double best = 0;
      for (int64_t t = 0; t < nt; t++)
        if (acc[touched[t]] > best)
          best = acc[touched[t]];
      int64_t pick = -1;
      if (acc[label[u]] == best) {
        pick = label[u];
      } else {
        for (int64_t t = 0; t < nt; t++)
          if (acc[touched[t]] == best && (pick < 0 || touched[t] < pick))
            pick = touched[t];
      }
      for (int64_t t = 0; t < nt; t++)
        acc[touched[t]] = 0;
      if (pick >= 0 && pick != label[u]) {
        label[u] = pick;
        changed = 1;
      }
    }
  }
  out->converged = !changed;
}

/* Q = sum over groups of in/2m - (tot/2m)^2; acc (n) is scratch. */
static double modularity(const graph *g, const int64_t *label, double *acc) {
  double m2 = 0, inside = 0;
  for (int64_t e = 0; e < g->off[g->n]; e++)
    m2 += g->w[e];
  for (int64_t i = 0; i < g->n; i++)
    acc[i] = 0; /* k-sum per label */
  for (int64_t i = 0; i < g->n; i++)
    for (int64_t e = g->off[i]; e < g->off[i + 1]; e++) {
      acc[label[i]] += g->w[e];
      if (label[g->adj[e]] == label[i])
        inside += g->w[e];
    }
  if (m2 <= 0)
    return 0;
  double q = inside / m2;
  for (int64_t i = 0; i < g->n; i++)
    q -= (acc[i] / m2) * (acc[i] / m2);
  return q;
}

/* Groups from the labels: numbered by size, members by strength (groups.h). */
static af_status make_groups(const graph *g, const int64_t *label, af_groups *out,
                             af_error *err) {
  const int64_t n = g->n;
  group_key *keys = af_malloc((size_t)n + 1, sizeof *keys, err);
  int64_t *gid = af_malloc((size_t)n + 1, sizeof *gid, err);  /* (n) label -> key slot, then group */
  int64_t *fill = af_calloc((size_t)n + 1, sizeof *fill, err); /* (n) members placed per group */
  af_scored *mem = NULL; /* (total) members with their strength */
  af_status st = AF_ERR_NOMEM;
  if (!keys || !gid || !fill)
    goto done;
  int64_t ng = 0, total = 0;
  for (int64_t i = 0; i < n; i++)
    gid[i] = -1;
  for (int64_t i = 0; i < n; i++) {
    if (label[i] < 0)
      continue;
    total++;
    int64_t l = label[i];
    if (gid[l] < 0) {
      gid[l] = ng;
      keys[ng++] = (group_key){0, i, l};
    }
    keys[gid[l]].size++;
  }
  qsort(keys, (size_t)ng, sizeof *keys, group_cmp);
  for (int64_t k = 0; k < ng; k++)
    gid[keys[k].label] = k;
  out->n_groups = ng;
  out->offsets = af_calloc((size_t)ng + 2, sizeof *out->offsets, err);
  out->members = af_malloc((size_t)total + 1, sizeof *out->members, err);
  out->strength = af_malloc((size_t)total + 1, sizeof *out->strength, err);
  mem = af_malloc((size_t)total + 1, sizeof *mem, err);
  if (!out->offsets || !out->members || !out->strength || !mem)
    goto done;
  for (int64_t k = 0; k < ng; k++)
    out->offsets[k + 1] = out->offsets[k] + keys[k].size;
  for (int64_t i = 0; i < n; i++) {
    if (label[i] < 0)
      continue;
    int64_t k = gid[label[i]];
    double s = 0;
    for (int64_t e = g->off[i]; e < g->off[i + 1]; e++)
      if (label[g->adj[e]] == label[i])
        s += g->w[e];
    mem[out->offsets[k] + fill[k]++] = (af_scored){.score = s, .i = i};
  }
  for (int64_t k = 0; k < ng; k++) {
    af_scored *b = mem + out->offsets[k];
    int64_t cnt = out->offsets[k + 1] - out->offsets[k];
    qsort(b, (size_t)cnt, sizeof *b, af_scored_cmp); /* strongest first, ties to the lower index */
    for (int64_t j = 0; j < cnt; j++) {
      out->members[out->offsets[k] + j] = b[j].i;
      out->strength[out->offsets[k] + j] = b[j].score;
    }
  }
  st = AF_OK;
done:
  free(keys);
  free(gid);
  free(fill);
  free(mem);
  return st;
}

af_status af_groups_compute(const af_catalog *p, const af_assoc_list *as,
                            const af_groups_options *o, af_groups *out, af_error *err) {
  memset(out, 0, sizeof *out);
  af_groups_options def;
  if (!o) {
    af_groups_default_options(&def);
    o = &def;
  }
  const int64_t n = p->n;
  graph g;
  AF_TRY(build_graph(n, as, o->min_score, &g, err));
  int64_t *label = af_malloc((size_t)n + 1, sizeof *label, err);     /* (n) -1: not in the graph */
  double *acc = af_calloc((size_t)n + 1, sizeof *acc, err);          /* (n) weight per label */
  int64_t *touched = af_malloc((size_t)n + 1, sizeof *touched, err); /* (n) labels seen */
  af_status st = label && acc && touched ? AF_OK : AF_ERR_NOMEM;
  if (st == AF_OK && o->method == AF_GROUPS_LOUVAIN) {
    st = af_groups_louvain(n, g.off, g.adj, g.w, o->max_sweeps, label, &out->sweeps, err);
    out->converged = 1;
  } else if (st == AF_OK) {
    for (int64_t i = 0; i < n; i++)
      label[i] = g.off[i + 1] > g.off[i] ? i : -1;
    label_propagation(&g, o->max_sweeps, label, acc, touched, out);
  }
  if (st == AF_OK) {
    out->modularity = modularity(&g, label, acc);
    st = make_groups(&g, label, out, err);
  }
  graph_free(&g);
  free(label);
  free(acc);
  free(touched);
  if (st != AF_OK)
    af_groups_free(out);
  return st;
}

static void csv_field(FILE *f, const char *s) { af_write_csv_field(f, s); }

af_status af_groups_write_csv(const char *path, const af_catalog *p, const af_groups *g,
                              af_error *err) {
  char tmp[AF_PATH_MAX];
  FILE *f = NULL;
  AF_TRY(af_atomic_open(path, tmp, &f, err));
  fputs("group,group_size,rank,product_id,product,category,strength\n", f);
  for (int64_t k = 0; k < g->n_groups; k++) {
    int64_t size = g->offsets[k + 1] - g->offsets[k];
    for (int64_t j = 0; j < size; j++) {
      int64_t i = g->members[g->offsets[k] + j];
      fprintf(f, "%lld,%lld,%lld,", (long long)k + 1, (long long)size, (long long)j + 1);
      csv_field(f, p->ids[i]);
      fputc(',', f);
      csv_field(f, p->names[i]);
      fputc(',', f);
      csv_field(f, p->categories[i]);
      fprintf(f, ",%.6f\n", g->strength[g->offsets[k] + j]);
    }
  }
  return af_atomic_fclose(f, tmp, path, err);
}
