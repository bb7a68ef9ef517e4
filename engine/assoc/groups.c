/* Product groups from the complement graph: the graph, label propagation,
 * grouping and groups.csv (see groups.h; Louvain in groups_louvain.c). */
#include "affinity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assoc/groups_internal.h"

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

typedef struct {
  double s;
  int64_t i;
} member;

static int member_cmp(const void *x, const void *y) {
  const member *a = x, *b = y;
  if (a->s != b->s)
    return a->s > b->s ? -1 : 1;
  return a->i < b->i ? -1 : a->i > b->i;
}

af_status af_groups_compute(const af_catalog *p, const af_assoc_list *as,
                            const af_groups_options *o, af_groups *out, af_error *err) {
  memset(out, 0, sizeof *out);
  af_groups_options def;
  if (!o) {
    af_groups_default_options(&def);
    o = &def;
  }
  int64_t n = p->n;
  edge *ed = af_malloc((size_t)as->n + 1, sizeof *ed, err); /* (<= as->n) */
  int64_t *deg = af_calloc((size_t)n + 2, sizeof *deg, err); /* (n + 1) CSR offsets */
  int64_t *label = af_malloc((size_t)n + 1, sizeof *label, err); /* (n) -1: not in the graph */
  double *acc = af_calloc((size_t)n + 1, sizeof *acc, err);     /* (n) weight per label */
  int64_t *touched = af_malloc((size_t)n + 1, sizeof *touched, err);
  int64_t *adj = NULL;
  double *adj_w = NULL;
  group_key *keys = NULL;
  member *mem = NULL;
  int64_t *gid = NULL;
  af_status st = AF_OK;
  if (!ed || !deg || !label || !acc || !touched) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  /* undirected edges, max over directions */
  int64_t ne = 0;
  for (int64_t i = 0; i < as->n; i++) {
    const af_assoc *a = &as->rows[i];
    if (a->substitute || a->a == a->b || !(a->score >= o->min_score) || !(a->score > 0))
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
    deg[ed[i].u + 1]++;
    deg[ed[i].v + 1]++;
  }
  for (int64_t i = 0; i < n; i++)
    deg[i + 1] += deg[i];
  adj = af_malloc((size_t)(2 * m) + 1, sizeof *adj, err);     /* (2m) */
  adj_w = af_malloc((size_t)(2 * m) + 1, sizeof *adj_w, err); /* (2m) */
  if (!adj || !adj_w) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  for (int64_t i = 0; i < n; i++)
    touched[i] = deg[i]; /* fill cursor */
  for (int64_t i = 0; i < m; i++) {
    adj[touched[ed[i].u]] = ed[i].v;
    adj_w[touched[ed[i].u]++] = ed[i].w;
    adj[touched[ed[i].v]] = ed[i].u;
    adj_w[touched[ed[i].v]++] = ed[i].w;
  }
  if (o->method == AF_GROUPS_LOUVAIN) {
    if ((st = af_groups_louvain(n, deg, adj, adj_w, o->max_sweeps, label, &out->sweeps, err)) !=
        AF_OK)
      goto done;
    out->converged = 1;
  } else {
    for (int64_t i = 0; i < n; i++)
      label[i] = deg[i + 1] > deg[i] ? i : -1;
  }
  /* label propagation */
  int changed = o->method == AF_GROUPS_LPA;
  while (changed && out->sweeps < o->max_sweeps) {
    changed = 0;
    out->sweeps++;
    for (int64_t u = 0; u < n; u++) {
      if (label[u] < 0)
        continue;
      int64_t nt = 0;
      for (int64_t e = deg[u]; e < deg[u + 1]; e++) {
        int64_t l = label[adj[e]];
        if (acc[l] == 0)
          touched[nt++] = l;
        acc[l] += adj_w[e];
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
  if (o->method == AF_GROUPS_LPA)
    out->converged = !changed;
  /* modularity of the result */
  double m2 = 0;
  for (int64_t e = 0; e < deg[n]; e++)
    m2 += adj_w[e];
  for (int64_t i = 0; i < n; i++)
    acc[i] = 0; /* acc: k-sum per label */
  double inside = 0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t e = deg[i]; e < deg[i + 1]; e++) {
      acc[label[i]] += adj_w[e];
      if (label[adj[e]] == label[i])
        inside += adj_w[e];
    }
  out->modularity = 0;
  if (m2 > 0) {
    out->modularity = inside / m2;
    for (int64_t i = 0; i < n; i++)
      out->modularity -= (acc[i] / m2) * (acc[i] / m2);
  }
  /* groups by size */
  keys = af_malloc((size_t)n + 1, sizeof *keys, err);
  gid = af_malloc((size_t)n + 1, sizeof *gid, err); /* (n) label -> key slot, then group */
  if (!keys || !gid) {
    st = AF_ERR_NOMEM;
    goto done;
  }
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
  for (int64_t g = 0; g < ng; g++)
    gid[keys[g].label] = g;
  out->n_groups = ng;
  out->offsets = af_calloc((size_t)ng + 2, sizeof *out->offsets, err);
  out->members = af_malloc((size_t)total + 1, sizeof *out->members, err);
  out->strength = af_malloc((size_t)total + 1, sizeof *out->strength, err);
  mem = af_malloc((size_t)total + 1, sizeof *mem, err);
  if (!out->offsets || !out->members || !out->strength || !mem) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  for (int64_t g = 0; g < ng; g++)
    out->offsets[g + 1] = out->offsets[g] + keys[g].size;
  for (int64_t i = 0; i < n; i++)
    touched[i] = 0;
  for (int64_t i = 0; i < n; i++) {
    if (label[i] < 0)
      continue;
    int64_t g = gid[label[i]];
    double s = 0;
    for (int64_t e = deg[i]; e < deg[i + 1]; e++)
      if (label[adj[e]] == label[i])
        s += adj_w[e];
    mem[out->offsets[g] + touched[g]++] = (member){s, i};
  }
  for (int64_t g = 0; g < ng; g++) {
    member *b = mem + out->offsets[g];
    int64_t k = out->offsets[g + 1] - out->offsets[g];
    qsort(b, (size_t)k, sizeof *b, member_cmp);
    for (int64_t j = 0; j < k; j++) {
      out->members[out->offsets[g] + j] = b[j].i;
      out->strength[out->offsets[g] + j] = b[j].s;
    }
  }
done:
  free(ed);
  free(deg);
  free(label);
  free(acc);
  free(touched);
  free(adj);
  free(adj_w);
  free(keys);
  free(mem);
  free(gid);
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
