/* FP-growth (Han, Pei and Yin 2000): frequent itemsets from recursive
 * conditional pattern bases. See rules.h for the support threshold and
 * docs/rules.md for the measurements behind each choice.
 *
 * Items are renamed to ranks by descending count (ties: lower item index), so
 * every path runs from frequent to rare. The top level works on the baskets
 * themselves (fp_top: each basket's ranks ascending, and where each rank
 * occurs): the base of rank r is the prefix before r of every basket holding
 * r. Deeper, a tree is an array of nodes; each rank has a header list of its
 * nodes and a total count, and the base of r is the paths above r's nodes.
 * A base keeps only the ranks frequent within it; with at most ZETA_MAX of
 * them its itemsets come from a subset-sum transform (mine_small), otherwise
 * from its conditional tree, recursively (a single-path tree is enumerated
 * directly). Scratch for depth d is kept in `level[d]` and reused, so the
 * recursion allocates only while its buffers grow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"

/* A node is split in two arrays by use: the upward walks and the child
 * searches read `link` (16 bytes), the header walks read `cnt`. */
typedef struct {
  int32_t rank, parent, child, sibling;
} fp_link;

typedef struct {
  int64_t count;
  int32_t next; /* next node of the same rank */
  int32_t pad;
} fp_cnt;

typedef struct {
  fp_link *link; /* (n_nodes) node 0 is the root */
  fp_cnt *cnt;   /* (n_nodes) */
  int32_t n_nodes, cap_nodes;
  int branched;  /* some node (root included) has two children: not a single path */
  int32_t *head;    /* (n_ranks) first node of each rank, -1 if none */
  int64_t *total;   /* (n_ranks) summed count of each rank */
  int32_t *active;  /* (n_active) ranks present, ascending */
  int32_t n_active;
  int32_t *root_child; /* (n_ranks) root's child of each rank, -1 if none */
  int32_t n_ranks;
} fp_tree;

typedef struct {
  int64_t count;
  int64_t start;
  int32_t len;
} fp_path;

/* Conditional bases with at most ZETA_MAX frequent ranks are mined without a
 * tree (mine_small). */
enum { ZETA_MAX = 8 };

typedef struct {
  fp_tree tree;
  int64_t *cond_count; /* (n_ranks) per-rank count in a conditional base */
  int32_t *touched;    /* (n_ranks) ranks with a non-zero cond_count */
  int32_t *path;       /* (n_ranks) one path, ranks ascending */
  int32_t *bitpos;     /* (n_ranks) bit of each active rank in a small base, see mine_small */
  int64_t *zeta;       /* (1 << ZETA_MAX) subset counts of a small base */
  int32_t *pbuf;       /* (cap_pbuf) the paths above one rank's nodes, as walked upward */
  int64_t cap_pbuf;
  fp_path *rec;        /* (cap_rec) one per node: count, start and length in pbuf */
  int64_t cap_rec;
} fp_level;

typedef struct {
  int64_t min_count;
  int max_len;
  int32_t n_ranks;
  const int32_t *rank_item; /* (n_ranks) item index of each rank */
  fp_level *level;          /* (n_levels) */
  int n_levels;
  int32_t *prefix; /* (n_levels) item indices of the current prefix */
  af_itemsets *out;
  af_error *err;
  int64_t max_itemsets, memory_limit;
  double min_support;
} fp_ctx;

static const char budget_hint[] =
    "raise --min-support, set --max-len (itemset length), or raise --max-itemsets / "
    "--memory-limit";

/* Bytes the output would hold with capacities sets and items. */
static int64_t itemsets_bytes(int64_t sets, int64_t items) {
  return sets * (int64_t)(2 * sizeof(int64_t)) + items * (int64_t)sizeof(int32_t);
}

static af_status budget(fp_ctx *c, int64_t sets, int64_t items) {
  af_itemsets *o = c->out;
  if (c->max_itemsets > 0 && o->n_itemsets >= c->max_itemsets)
    return af_error_set(c->err, AF_ERR_LIMIT,
                        "more than %lld frequent itemsets at min support %g (--max-itemsets); %s",
                        (long long)c->max_itemsets, c->min_support, budget_hint);
  char what[128];
  snprintf(what, sizeof what, "frequent itemsets at min support %g (%lld so far)",
           c->min_support, (long long)o->n_itemsets);
  return af_budget_check(itemsets_bytes(sets, items), c->memory_limit, what, budget_hint, c->err);
}

int64_t af_min_count_for_support(double min_support, int64_t n) {
  if (!(min_support > 0))
    return 1;
  double c = ceil(min_support * (double)n);
  if (c < 1)
    c = 1;
  int64_t k = (int64_t)c;
  /* Fix floating rounding both ways so that k is the least count with k / n >= s. */
  while (k > 1 && (double)(k - 1) / (double)n >= min_support)
    k--;
  while ((double)k / (double)n < min_support)
    k++;
  return k;
}

void af_itemsets_free(af_itemsets *s) {
  if (!s)
    return;
  free(s->offsets);
  free(s->items);
  free(s->counts);
  memset(s, 0, sizeof *s);
}

static int cmp_i32(const void *x, const void *y) {
  int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
  return (a > b) - (a < b);
}

/* Ascending sort of short arrays (paths, conditional rank lists): insertion
 * sort below 32 elements, qsort above. */
static void sort_i32(int32_t *v, int32_t n) {
  if (n > 32) {
    qsort(v, (size_t)n, sizeof *v, cmp_i32);
    return;
  }
  for (int32_t i = 1; i < n; i++) {
    int32_t x = v[i], j = i;
    while (j > 0 && v[j - 1] > x) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
}

static af_status emit(fp_ctx *c, int len, int64_t count) {
  af_itemsets *o = c->out;
  if (c->max_itemsets > 0 && o->n_itemsets >= c->max_itemsets)
    return budget(c, o->cap_sets, o->cap_items);
  if (o->n_itemsets + 1 >= o->cap_sets) {
    int64_t cap = o->cap_sets ? o->cap_sets * 2 : 4096;
    AF_TRY(budget(c, cap, o->cap_items));
    int64_t *off = af_realloc(o->offsets, (size_t)cap + 1, sizeof *off, c->err);
    if (!off)
      return AF_ERR_NOMEM;
    o->offsets = off;
    int64_t *cnt = af_realloc(o->counts, (size_t)cap, sizeof *cnt, c->err);
    if (!cnt)
      return AF_ERR_NOMEM;
    o->counts = cnt;
    o->cap_sets = cap;
  }
  int64_t at = o->offsets[o->n_itemsets];
  if (at + len > o->cap_items) {
    int64_t cap = o->cap_items ? o->cap_items * 2 : 16384;
    while (cap < at + len)
      cap *= 2;
    AF_TRY(budget(c, o->cap_sets, cap));
    int32_t *it = af_realloc(o->items, (size_t)cap, sizeof *it, c->err);
    if (!it)
      return AF_ERR_NOMEM;
    o->items = it;
    o->cap_items = cap;
  }
  int32_t *dst = o->items + at;
  for (int i = 0; i < len; i++) { /* insertion sort: itemsets are short */
    int32_t v = c->prefix[i];
    int j = i;
    while (j > 0 && dst[j - 1] > v) {
      dst[j] = dst[j - 1];
      j--;
    }
    dst[j] = v;
  }
  o->counts[o->n_itemsets] = count;
  o->offsets[++o->n_itemsets] = at + len;
  return AF_OK;
}

static void tree_free(fp_tree *t) {
  free(t->link);
  free(t->cnt);
  free(t->head);
  free(t->total);
  free(t->active);
  free(t->root_child);
}

static af_status tree_alloc(fp_tree *t, int32_t n_ranks, af_error *err) {
  memset(t, 0, sizeof *t);
  size_t n = (size_t)(n_ranks ? n_ranks : 1);
  t->head = af_malloc(n, sizeof *t->head, err);
  t->total = af_calloc(n, sizeof *t->total, err);
  t->active = af_malloc(n, sizeof *t->active, err);
  t->root_child = af_malloc(n, sizeof *t->root_child, err);
  t->cap_nodes = 1024;
  t->link = af_malloc((size_t)t->cap_nodes, sizeof *t->link, err);
  t->cnt = af_malloc((size_t)t->cap_nodes, sizeof *t->cnt, err);
  if (!t->head || !t->total || !t->active || !t->root_child || !t->link || !t->cnt)
    return AF_ERR_NOMEM;
  for (int32_t r = 0; r < n_ranks; r++) {
    t->head[r] = -1;
    t->root_child[r] = -1;
  }
  t->n_ranks = n_ranks;
  return AF_OK;
}

/* Empties t for ranks listed in active[0..n_active) (their header entries
 * reset); the tree then holds only the root. */
static void tree_reset(fp_tree *t, const int32_t *active, int32_t n_active) {
  for (int32_t i = 0; i < t->n_active; i++) {
    int32_t r = t->active[i];
    t->head[r] = -1;
    t->root_child[r] = -1;
    t->total[r] = 0;
  }
  memcpy(t->active, active, (size_t)n_active * sizeof *active);
  t->n_active = n_active;
  t->n_nodes = 1;
  t->branched = 0;
  t->link[0] = (fp_link){-1, -1, -1, -1};
  t->cnt[0] = (fp_cnt){0, -1, 0};
}

/* Inserts a path of ranks (ascending) with a count. */
static af_status tree_insert(fp_tree *t, const int32_t *path, int32_t len, int64_t count,
                             af_error *err) {
  int32_t cur = 0;
  for (int32_t i = 0; i < len; i++) {
    int32_t r = path[i];
    int32_t ch;
    if (cur == 0) {
      ch = t->root_child[r];
    } else {
      ch = t->link[cur].child;
      int32_t prev = -1;
      while (ch >= 0 && t->link[ch].rank != r) {
        prev = ch;
        ch = t->link[ch].sibling;
      }
      if (ch >= 0 && prev >= 0) { /* move to front: busy children are found sooner */
        t->link[prev].sibling = t->link[ch].sibling;
        t->link[ch].sibling = t->link[cur].child;
        t->link[cur].child = ch;
      }
    }
    if (ch < 0) {
      if (t->n_nodes == t->cap_nodes) {
        if (t->cap_nodes > INT32_MAX / 2)
          return af_error_set(err, AF_ERR_UNSUPPORTED, "FP-tree larger than 2^31 nodes");
        int32_t cap = t->cap_nodes * 2;
        fp_link *nl = af_realloc(t->link, (size_t)cap, sizeof *nl, err);
        if (!nl)
          return AF_ERR_NOMEM;
        t->link = nl;
        fp_cnt *nc = af_realloc(t->cnt, (size_t)cap, sizeof *nc, err);
        if (!nc)
          return AF_ERR_NOMEM;
        t->cnt = nc;
        t->cap_nodes = cap;
      }
      ch = t->n_nodes++;
      fp_link *n = &t->link[ch];
      n->rank = r;
      n->parent = cur;
      n->child = -1;
      t->cnt[ch] = (fp_cnt){0, t->head[r], 0};
      t->head[r] = ch;
      /* The root's children are found through root_child; link[0].child
       * still records one of them so that a second one marks a branch. */
      n->sibling = t->link[cur].child;
      if (n->sibling >= 0)
        t->branched = 1;
      t->link[cur].child = ch;
      if (cur == 0)
        t->root_child[r] = ch;
    }
    t->cnt[ch].count += count;
    t->total[r] += count;
    cur = ch;
  }
  return AF_OK;
}

static af_status mine(fp_ctx *c, const fp_tree *t, int depth);

static af_status level_alloc(fp_level *L, int32_t n_ranks, af_error *err) {
  AF_TRY(tree_alloc(&L->tree, n_ranks, err));
  L->cond_count = af_calloc((size_t)(n_ranks ? n_ranks : 1), sizeof *L->cond_count, err);
  L->touched = af_malloc((size_t)(n_ranks ? n_ranks : 1), sizeof *L->touched, err);
  L->path = af_malloc((size_t)(n_ranks ? n_ranks : 1), sizeof *L->path, err);
  L->bitpos = af_malloc((size_t)(n_ranks ? n_ranks : 1), sizeof *L->bitpos, err);
  L->zeta = af_malloc((size_t)1 << ZETA_MAX, sizeof *L->zeta, err);
  if (!L->cond_count || !L->touched || !L->path || !L->bitpos || !L->zeta)
    return AF_ERR_NOMEM;
  return AF_OK;
}

/* A conditional base with m <= ZETA_MAX frequent ranks (L->touched[0..m),
 * ascending, marked in cond_count): each path becomes a bit mask over them,
 * zeta[mask] sums the counts of the paths holding exactly mask, and a
 * superset-sum transform turns that into the count of every subset. Every
 * non-empty subset T with count >= min_count is a frequent itemset
 * prefix + T: the same itemsets and counts as the recursive tree mining. */
static af_status mine_small(fp_ctx *c, fp_level *L, int64_t n_rec, int32_t m, int depth) {
  const uint32_t size = 1u << m;
  for (int32_t i = 0; i < m; i++)
    L->bitpos[L->touched[i]] = i;
  memset(L->zeta, 0, size * sizeof *L->zeta);
  for (int64_t i = 0; i < n_rec; i++) {
    const int32_t *up = L->pbuf + L->rec[i].start;
    uint32_t mask = 0;
    for (int32_t j = 0; j < L->rec[i].len; j++)
      if (L->cond_count[up[j]])
        mask |= 1u << L->bitpos[up[j]];
    L->zeta[mask] += L->rec[i].count;
  }
  for (int32_t b = 0; b < m; b++)
    for (uint32_t x = 0; x < size; x++)
      if (!(x & (1u << b)))
        L->zeta[x] += L->zeta[x | (1u << b)];
  for (int32_t i = 0; i < m; i++)
    L->cond_count[L->touched[i]] = 0;
  const int max_items = c->n_levels; /* itemsets hold at most n_levels items */
  for (uint32_t x = 1; x < size; x++) {
    if (L->zeta[x] < c->min_count)
      continue;
    int len = depth;
    if (len + __builtin_popcount(x) > max_items)
      continue;
    for (uint32_t y = x; y; y &= y - 1)
      c->prefix[len++] = c->rank_item[L->touched[__builtin_ctz(y)]];
    AF_TRY(emit(c, len, L->zeta[x]));
  }
  return AF_OK;
}

/* Room for one more path record and `more` ranks in L's path buffers. */
static af_status base_reserve(fp_level *L, int64_t n_rec, int64_t used, int64_t more,
                              af_error *err) {
  if (n_rec == L->cap_rec) {
    int64_t cap = L->cap_rec ? L->cap_rec * 2 : 256;
    fp_path *nr = af_realloc(L->rec, (size_t)cap, sizeof *nr, err);
    if (!nr)
      return AF_ERR_NOMEM;
    L->rec = nr;
    L->cap_rec = cap;
  }
  if (used + more > L->cap_pbuf) {
    int64_t cap = L->cap_pbuf ? L->cap_pbuf * 2 : 4096;
    while (cap < used + more)
      cap *= 2;
    int32_t *nb = af_realloc(L->pbuf, (size_t)cap, sizeof *nb, err);
    if (!nb)
      return AF_ERR_NOMEM;
    L->pbuf = nb;
    L->cap_pbuf = cap;
  }
  return AF_OK;
}

/* Mines a gathered conditional base: L->rec[0..n_rec) paths in L->pbuf
 * (ranks descending), L->cond_count the per-rank counts of the n_touched
 * ranks in L->touched. Keeps the frequent ranks, then mines small bases
 * directly and larger ones through their conditional tree. */
static af_status mine_base(fp_ctx *c, fp_level *L, int32_t n_touched, int64_t n_rec, int depth) {
  int32_t n_active = 0;
  for (int32_t i = 0; i < n_touched; i++) {
    int32_t q = L->touched[i];
    if (L->cond_count[q] >= c->min_count)
      L->touched[n_active++] = q; /* compact in place: the frequent ranks */
    else
      L->cond_count[q] = 0;
  }
  if (n_active == 0)
    return AF_OK;
  sort_i32(L->touched, n_active);
  if (n_active <= ZETA_MAX)
    return mine_small(c, L, n_rec, n_active, depth);
  tree_reset(&L->tree, L->touched, n_active);
  /* cond_count[q] != 0 now marks the frequent ranks of this base. */
  for (int64_t i = 0; i < n_rec; i++) {
    const int32_t *up = L->pbuf + L->rec[i].start;
    int32_t len = 0;
    for (int32_t j = L->rec[i].len - 1; j >= 0; j--) /* read backward: ranks ascending */
      if (L->cond_count[up[j]])
        L->path[len++] = up[j];
    if (len)
      AF_TRY(tree_insert(&L->tree, L->path, len, L->rec[i].count, c->err));
  }
  for (int32_t i = 0; i < n_active; i++)
    L->cond_count[L->touched[i]] = 0;
  return mine(c, &L->tree, depth);
}

static fp_level *level_get(fp_ctx *c, int depth) {
  fp_level *L = &c->level[depth];
  if (!L->tree.link && level_alloc(L, c->n_ranks, c->err) != AF_OK)
    return NULL;
  return L;
}

/* Builds the conditional base of rank r of tree t into level[depth] and mines it. */
static af_status mine_rank(fp_ctx *c, const fp_tree *t, int32_t r, int depth) {
  fp_level *L = level_get(c, depth);
  if (!L)
    return AF_ERR_NOMEM;
  /* One upward walk per node: count the ranks above r and keep the paths. */
  int32_t n_touched = 0;
  int64_t n_rec = 0, used = 0;
  for (int32_t x = t->head[r]; x >= 0; x = t->cnt[x].next) {
    int64_t cnt = t->cnt[x].count;
    AF_TRY(base_reserve(L, n_rec, used, r, c->err)); /* a path above r holds < r ranks */
    int64_t start = used;
    for (int32_t p = t->link[x].parent; p > 0; p = t->link[p].parent) {
      int32_t q = t->link[p].rank;
      L->pbuf[used++] = q;
      if (L->cond_count[q] == 0)
        L->touched[n_touched++] = q;
      L->cond_count[q] += cnt;
    }
    if (used > start)
      L->rec[n_rec++] = (fp_path){cnt, start, (int32_t)(used - start)};
  }
  return mine_base(c, L, n_touched, n_rec, depth);
}

/* The transactions as ascending rank lists, and where each rank occurs. The
 * top level is mined from these instead of an FP-tree: the base of rank r is
 * the ranks before r in every transaction holding r, read sequentially. */
typedef struct {
  const int64_t *tx_off; /* (n_tx + 1) */
  const int32_t *tx;     /* (tx_off[n_tx]) ranks, ascending within a transaction */
  const int64_t *occ_off; /* (n_ranks + 1) */
  const int64_t *occ;     /* (occ_off[n_ranks]) pairs: transaction start, position of the rank */
} fp_top;

static af_status mine_rank_top(fp_ctx *c, const fp_top *tp, int32_t r) {
  fp_level *L = level_get(c, 1);
  if (!L)
    return AF_ERR_NOMEM;
  int32_t n_touched = 0;
  int64_t n_rec = 0, used = 0;
  for (int64_t o = tp->occ_off[r]; o < tp->occ_off[r + 1]; o++) {
    int64_t s0 = tp->occ[2 * o], k = tp->occ[2 * o + 1];
    if (k == s0)
      continue;
    AF_TRY(base_reserve(L, n_rec, used, k - s0, c->err));
    int64_t start = used;
    for (int64_t j = k - 1; j >= s0; j--) { /* descending, as an upward tree walk */
      int32_t q = tp->tx[j];
      L->pbuf[used++] = q;
      if (L->cond_count[q] == 0)
        L->touched[n_touched++] = q;
      L->cond_count[q] += 1;
    }
    L->rec[n_rec++] = (fp_path){1, start, (int32_t)(used - start)};
  }
  return mine_base(c, L, n_touched, n_rec, 1);
}

/* A single-path tree: ranks chain[0..m) from the root down. Every subset
 * of the chain whose deepest node is j has count `cap` = that node's count
 * (counts fall along a path); enumerated in the order mine() would. */
static af_status mine_chain(fp_ctx *c, const int32_t *chain, const int64_t *counts, int32_t m,
                            int depth, int64_t cap) {
  for (int32_t j = m - 1; j >= 0; j--) {
    int64_t n = cap >= 0 ? cap : counts[j];
    if (n < c->min_count)
      continue;
    c->prefix[depth] = c->rank_item[chain[j]];
    AF_TRY(emit(c, depth + 1, n));
    if (c->max_len && depth + 1 >= c->max_len)
      continue;
    if (depth + 1 >= c->n_levels)
      continue;
    AF_TRY(mine_chain(c, chain, counts, j, depth + 1, n));
  }
  return AF_OK;
}

static af_status mine(fp_ctx *c, const fp_tree *t, int depth) {
  if (!t->branched && t->n_nodes > 1 && t->n_nodes <= 64) {
    int32_t chain[64];
    int64_t counts[64];
    int32_t m = 0;
    for (int32_t x = t->link[0].child; x >= 0; x = t->link[x].child) {
      chain[m] = t->link[x].rank;
      counts[m++] = t->cnt[x].count;
    }
    return mine_chain(c, chain, counts, m, depth, -1);
  }
  for (int32_t i = t->n_active - 1; i >= 0; i--) {
    int32_t r = t->active[i];
    if (t->total[r] < c->min_count)
      continue;
    c->prefix[depth] = c->rank_item[r];
    AF_TRY(emit(c, depth + 1, t->total[r]));
    if (c->max_len && depth + 1 >= c->max_len)
      continue;
    if (depth + 1 >= c->n_levels)
      continue;
    AF_TRY(mine_rank(c, t, r, depth + 1));
  }
  return AF_OK;
}

typedef struct {
  int64_t count;
  int32_t item;
} item_count;

static int cmp_item_count(const void *x, const void *y) {
  const item_count *a = x, *b = y;
  if (a->count != b->count)
    return a->count > b->count ? -1 : 1;
  return (a->item > b->item) - (a->item < b->item);
}

af_status af_fpgrowth(const af_baskets *b, double min_support, int max_len, af_itemsets *out,
                      af_error *err) {
  af_fpgrowth_options o = {.min_support = min_support, .max_len = max_len};
  return af_fpgrowth_ex(b, &o, out, err);
}

af_status af_fpgrowth_ex(const af_baskets *b, const af_fpgrowth_options *opt, af_itemsets *out,
                         af_error *err) {
  memset(out, 0, sizeof *out);
  const double min_support = opt->min_support;
  const int max_len = opt->max_len;
  if (!(min_support > 0 && min_support <= 1))
    return af_error_set(err, AF_ERR_ARG, "min_support must be in (0, 1] (got %g)", min_support);
  if (max_len < 0)
    return af_error_set(err, AF_ERR_ARG, "max_len must be >= 0 (got %d)", max_len);
  out->n_baskets = b->n_baskets;
  out->min_count = af_min_count_for_support(min_support, b->n_baskets);
  out->offsets = af_calloc(1, sizeof *out->offsets, err);
  if (!out->offsets)
    return AF_ERR_NOMEM;
  int32_t n_items = b->n_items;
  item_count *ic = af_calloc((size_t)(n_items ? n_items : 1), sizeof *ic, err);
  int32_t *item_rank = af_malloc((size_t)(n_items ? n_items : 1), sizeof *item_rank, err);
  if (!ic || !item_rank) {
    free(ic);
    free(item_rank);
    af_itemsets_free(out);
    return AF_ERR_NOMEM;
  }
  for (int32_t i = 0; i < n_items; i++)
    ic[i].item = i;
  for (int64_t k = 0; k < b->offsets[b->n_baskets]; k++)
    ic[b->items[k]].count++;
  qsort(ic, (size_t)n_items, sizeof *ic, cmp_item_count);
  int32_t n_ranks = 0;
  while (n_ranks < n_items && ic[n_ranks].count >= out->min_count)
    n_ranks++;
  int32_t *rank_item = af_malloc((size_t)(n_ranks ? n_ranks : 1), sizeof *rank_item, err);
  int n_levels = max_len ? (max_len < n_ranks ? max_len : n_ranks) : n_ranks;
  if (n_levels < 1)
    n_levels = 1;
  fp_ctx c = {out->min_count, max_len, n_ranks, rank_item, NULL, n_levels, NULL, out, err,
              opt->max_itemsets, af_memory_limit_or_default(opt->memory_limit), min_support};
  c.level = af_calloc((size_t)n_levels, sizeof *c.level, err);
  c.prefix = af_malloc((size_t)n_levels, sizeof *c.prefix, err);
  int32_t *path = af_malloc((size_t)(n_ranks ? n_ranks : 1), sizeof *path, err);
  int64_t *path64 = af_malloc((size_t)(n_ranks ? n_ranks : 1), sizeof *path64, err);
  int64_t *tx_off = NULL, *occ_off = NULL, *occ = NULL;
  int32_t *tx = NULL;
  af_status st = AF_OK;
  if (!rank_item || !c.level || !c.prefix || !path || !path64) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  for (int32_t i = 0; i < n_items; i++)
    item_rank[i] = -1;
  for (int32_t r = 0; r < n_ranks; r++) {
    rank_item[r] = ic[r].item;
    item_rank[ic[r].item] = r;
  }
  /* Level d >= 1 holds the conditional bases and trees at depth d, allocated
   * when the recursion first gets that deep (n_levels can be n_ranks, and
   * each level is O(n_ranks)). The top level is mined from the transactions
   * (fp_top), so no full FP-tree is built. */
  int64_t n_occ = 0;
  for (int64_t k = 0; k < b->offsets[b->n_baskets]; k++)
    n_occ += item_rank[b->items[k]] >= 0;
  tx_off = af_malloc((size_t)b->n_baskets + 1, sizeof *tx_off, err);
  tx = af_malloc((size_t)(n_occ ? n_occ : 1), sizeof *tx, err);
  occ_off = af_calloc((size_t)n_ranks + 1, sizeof *occ_off, err);
  occ = af_malloc((size_t)(n_occ ? 2 * n_occ : 1), sizeof *occ, err);
  if (!tx_off || !tx || !occ_off || !occ) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  int64_t at = 0;
  tx_off[0] = 0;
  for (int64_t bk = 0; bk < b->n_baskets; bk++) {
    int32_t len = 0;
    for (int64_t k = b->offsets[bk]; k < b->offsets[bk + 1]; k++)
      if (item_rank[b->items[k]] >= 0)
        path[len++] = item_rank[b->items[k]];
    sort_i32(path, len);
    for (int32_t i = 0; i < len; i++) {
      tx[at + i] = path[i];
      occ_off[path[i] + 1]++;
    }
    at += len;
    tx_off[bk + 1] = at;
  }
  for (int32_t r = 0; r < n_ranks; r++)
    occ_off[r + 1] += occ_off[r];
  {
    int64_t *fill = path64;
    for (int32_t r = 0; r < n_ranks; r++)
      fill[r] = occ_off[r];
    for (int64_t bk = 0; bk < b->n_baskets; bk++)
      for (int64_t k = tx_off[bk]; k < tx_off[bk + 1]; k++) {
        int64_t o = fill[tx[k]]++;
        occ[2 * o] = tx_off[bk];
        occ[2 * o + 1] = k;
      }
  }
  fp_top top = {tx_off, tx, occ_off, occ};
  for (int32_t r = n_ranks - 1; r >= 0 && st == AF_OK; r--) {
    c.prefix[0] = rank_item[r];
    if ((st = emit(&c, 1, occ_off[r + 1] - occ_off[r])) != AF_OK)
      break;
    if ((max_len && max_len <= 1) || n_levels <= 1)
      continue;
    st = mine_rank_top(&c, &top, r);
  }
done:
  if (c.level)
    for (int d = 0; d < n_levels; d++) {
      tree_free(&c.level[d].tree);
      free(c.level[d].cond_count);
      free(c.level[d].touched);
      free(c.level[d].path);
      free(c.level[d].pbuf);
      free(c.level[d].bitpos);
      free(c.level[d].zeta);
      free(c.level[d].rec);
    }
  free(c.level);
  free(c.prefix);
  free(path);
  free(path64);
  free(tx_off);
  free(tx);
  free(occ_off);
  free(occ);
  free(ic);
  free(item_rank);
  free(rank_item);
  if (st != AF_OK)
    af_itemsets_free(out);
  return st;
}
