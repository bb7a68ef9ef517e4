/* Association rules from frequent itemsets (see rules.h). */
#include "rules.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* Itemset -> index, open addressing over the itemsets' own item arrays. */
typedef struct {
  const af_itemsets *fi;
  int64_t *slot; /* (cap) itemset index or -1 */
  uint64_t cap;
} set_index;

static uint64_t hash_items(const int32_t *it, int n) {
  return af_hash_bytes(it, (size_t)n * sizeof *it);
}

static af_status index_build(set_index *ix, const af_itemsets *fi, af_error *err) {
  ix->fi = fi;
  ix->cap = 64;
  while (ix->cap < (uint64_t)fi->n_itemsets * 2)
    ix->cap *= 2;
  ix->slot = af_malloc(ix->cap, sizeof *ix->slot, err);
  if (!ix->slot)
    return AF_ERR_NOMEM;
  memset(ix->slot, 0xff, ix->cap * sizeof *ix->slot);
  for (int64_t s = 0; s < fi->n_itemsets; s++) {
    const int32_t *it = fi->items + fi->offsets[s];
    int n = (int)(fi->offsets[s + 1] - fi->offsets[s]);
    uint64_t h = hash_items(it, n) & (ix->cap - 1);
    while (ix->slot[h] >= 0)
      h = (h + 1) & (ix->cap - 1);
    ix->slot[h] = s;
  }
  return AF_OK;
}

static int64_t index_find(const set_index *ix, const int32_t *it, int n) {
  const af_itemsets *fi = ix->fi;
  for (uint64_t h = hash_items(it, n) & (ix->cap - 1);; h = (h + 1) & (ix->cap - 1)) {
    int64_t s = ix->slot[h];
    if (s < 0)
      return -1;
    if (fi->offsets[s + 1] - fi->offsets[s] == n &&
        memcmp(fi->items + fi->offsets[s], it, (size_t)n * sizeof *it) == 0)
      return s;
  }
}

void af_rules_free(af_rules *r) {
  if (!r)
    return;
  free(r->rules);
  memset(r, 0, sizeof *r);
}

int af_rule_side(const af_itemsets *fi, const af_rule *r, int side, int32_t *dst) {
  const int32_t *it = fi->items + fi->offsets[r->itemset];
  int n = (int)(fi->offsets[r->itemset + 1] - fi->offsets[r->itemset]), k = 0;
  for (int i = 0; i < n; i++)
    if (((r->ante_mask >> i) & 1u) == (side == 0 ? 1u : 0u))
      dst[k++] = it[i];
  return k;
}

/* qsort has no context argument: sort an array of (rule, itemsets) views. */
typedef struct {
  af_rule r;
  const af_itemsets *fi;
} rule_view;

static int cmp_side(const rule_view *a, const rule_view *b, int side) {
  int32_t x[32], y[32];
  int nx = af_rule_side(a->fi, &a->r, side, x), ny = af_rule_side(b->fi, &b->r, side, y);
  for (int i = 0; i < nx && i < ny; i++)
    if (x[i] != y[i])
      return x[i] < y[i] ? -1 : 1;
  return (nx > ny) - (nx < ny);
}

static int cmp_rule(const void *pa, const void *pb) {
  const rule_view *a = pa, *b = pb;
  if (a->r.lift != b->r.lift)
    return a->r.lift > b->r.lift ? -1 : 1;
  if (a->r.confidence != b->r.confidence)
    return a->r.confidence > b->r.confidence ? -1 : 1;
  if (a->r.count != b->r.count)
    return a->r.count > b->r.count ? -1 : 1;
  int c = cmp_side(a, b, 0);
  return c ? c : cmp_side(a, b, 1);
}

af_status af_rules_generate(const af_itemsets *fi, const af_rules_options *opt, af_rules *out,
                            af_error *err) {
  memset(out, 0, sizeof *out);
  double min_conf = opt ? opt->min_confidence : 0, min_lift = opt ? opt->min_lift : 0;
  int max_cons = opt ? opt->max_consequent : 0;
  if (!(min_conf >= 0 && min_conf <= 1))
    return af_error_set(err, AF_ERR_ARG, "min_confidence must be in [0, 1] (got %g)", min_conf);
  set_index ix;
  AF_TRY(index_build(&ix, fi, err));
  const double n = (double)fi->n_baskets;
  rule_view *v = NULL;
  int64_t nv = 0, cap = 0;
  af_status st = AF_OK;
  for (int64_t s = 0; s < fi->n_itemsets && st == AF_OK; s++) {
    const int32_t *it = fi->items + fi->offsets[s];
    int k = (int)(fi->offsets[s + 1] - fi->offsets[s]);
    if (k < 2)
      continue;
    if (k > 31) {
      st = af_error_set(err, AF_ERR_UNSUPPORTED,
                        "an itemset of %d items is too long for rule generation (limit 31; "
                        "set max_len)", k);
      break;
    }
    const double s_ab = (double)fi->counts[s] / n;
    const uint32_t full = (1u << k) - 1;
    for (uint32_t mask = 1; mask < full; mask++) {
      uint32_t cons = full & ~mask;
      if (max_cons && __builtin_popcount(cons) > max_cons)
        continue;
      int32_t a[32], c[32];
      int na = 0, nc = 0;
      for (int i = 0; i < k; i++) {
        if ((mask >> i) & 1u)
          a[na++] = it[i];
        else
          c[nc++] = it[i];
      }
      int64_t ia = index_find(&ix, a, na), ic = index_find(&ix, c, nc);
      if (ia < 0 || ic < 0) {
        st = af_error_set(err, AF_ERR_INTERNAL,
                          "rules: a subset of a frequent itemset is missing from the itemsets");
        break;
      }
      const double s_a = (double)fi->counts[ia] / n, s_c = (double)fi->counts[ic] / n;
      const double conf = s_ab / s_a;
      if (!(conf >= min_conf))
        continue;
      const double lift = conf / s_c;
      if (min_lift > 0 && !(lift >= min_lift))
        continue;
      if (nv == cap) {
        cap = cap ? cap * 2 : 1024;
        rule_view *p = af_realloc(v, (size_t)cap, sizeof *p, err);
        if (!p) {
          st = AF_ERR_NOMEM;
          break;
        }
        v = p;
      }
      af_rule *r = &v[nv].r;
      v[nv].fi = fi;
      r->itemset = s;
      r->ante_mask = mask;
      r->count = fi->counts[s];
      r->ante_count = fi->counts[ia];
      r->cons_count = fi->counts[ic];
      r->support = s_ab;
      r->confidence = conf;
      r->lift = lift;
      r->leverage = s_ab - s_a * s_c;
      r->conviction = conf < 1.0 ? (1.0 - s_c) / (1.0 - conf) : INFINITY;
      nv++;
    }
  }
  free(ix.slot);
  if (st != AF_OK) {
    free(v);
    return st;
  }
  qsort(v, (size_t)nv, sizeof *v, cmp_rule);
  int64_t keep = opt && opt->max_rules > 0 && opt->max_rules < nv ? opt->max_rules : nv;
  out->rules = af_malloc((size_t)(keep ? keep : 1), sizeof *out->rules, err);
  if (!out->rules) {
    free(v);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < keep; i++)
    out->rules[i] = v[i].r;
  out->n_rules = keep;
  free(v);
  return AF_OK;
}
