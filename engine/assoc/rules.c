/* Association rules from frequent itemsets (see rules.h). */
#include "affinity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* Itemset -> index, open addressing over the itemsets' own item arrays. Each
 * slot keeps the itemset index and 32 bits of its hash, so probes compare
 * items only on a hash match. */
typedef struct {
  int32_t set;  /* itemset index or -1 */
  uint32_t tag; /* high bits of the hash */
} set_slot;

typedef struct {
  const af_itemsets *fi;
  set_slot *slot; /* (cap) */
  uint64_t cap;
} set_index;

static inline uint64_t hash_items(const int32_t *it, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
  for (int i = 0; i < n; i++) {
    h = (h ^ (uint32_t)it[i]) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  return h * 0xc4ceb9fe1a85ec53ull;
}

/* Indexes the itemsets of more than skip_le items. */
static af_status index_build(set_index *ix, const af_itemsets *fi, int skip_le, af_error *err) {
  ix->fi = fi;
  if (fi->n_itemsets >= INT32_MAX)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "rules: more than 2^31 frequent itemsets");
  int64_t n_long = 0;
  for (int64_t s = 0; s < fi->n_itemsets; s++)
    n_long += fi->offsets[s + 1] - fi->offsets[s] > skip_le;
  ix->cap = 64;
  while (ix->cap < (uint64_t)n_long * 2)
    ix->cap *= 2;
  ix->slot = af_malloc(ix->cap, sizeof *ix->slot, err);
  if (!ix->slot)
    return AF_ERR_NOMEM;
  for (uint64_t i = 0; i < ix->cap; i++)
    ix->slot[i].set = -1;
  for (int64_t s = 0; s < fi->n_itemsets; s++) {
    const int32_t *it = fi->items + fi->offsets[s];
    int n = (int)(fi->offsets[s + 1] - fi->offsets[s]);
    if (n <= skip_le)
      continue;
    uint64_t hv = hash_items(it, n), h = hv & (ix->cap - 1);
    while (ix->slot[h].set >= 0)
      h = (h + 1) & (ix->cap - 1);
    ix->slot[h] = (set_slot){(int32_t)s, (uint32_t)(hv >> 32)};
  }
  return AF_OK;
}

static inline int64_t index_find(const set_index *ix, const int32_t *it, int n) {
  const af_itemsets *fi = ix->fi;
  uint64_t hv = hash_items(it, n);
  uint32_t tag = (uint32_t)(hv >> 32);
  for (uint64_t h = hv & (ix->cap - 1);; h = (h + 1) & (ix->cap - 1)) {
    const set_slot *sl = &ix->slot[h];
    if (sl->set < 0)
      return -1;
    if (sl->tag != tag || fi->offsets[sl->set + 1] - fi->offsets[sl->set] != n)
      continue;
    const int32_t *x = fi->items + fi->offsets[sl->set];
    int i = 0;
    while (i < n && x[i] == it[i])
      i++;
    if (i == n)
      return sl->set;
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

/* Sorting: a compact key per rule (lift, confidence, count, rule index) is
 * merge-sorted with the comparison inlined; ties on all three compare the
 * antecedent items, then the consequent items, read from the itemset through
 * the rule's masks without copying. */
typedef struct {
  double lift, conf;
  int64_t count;
  uint64_t seq[2]; /* packed prefix of the rule's item sequence, see pack_seq */
  int64_t idx;
} rule_key;

typedef struct {
  const af_itemsets *fi;
  const af_rule *rules;
} sort_ctx;

/* Lexicographic comparison of the items of x selected by mask mx with those of
 * y selected by my (items ascending within each itemset). */
static int cmp_masked(const int32_t *x, uint32_t mx, const int32_t *y, uint32_t my) {
  while (mx && my) {
    int32_t a = x[__builtin_ctz(mx)], b = y[__builtin_ctz(my)];
    if (a != b)
      return a < b ? -1 : 1;
    mx &= mx - 1;
    my &= my - 1;
  }
  return (mx != 0) - (my != 0);
}

static int key_less_tie(const sort_ctx *c, const rule_key *a, const rule_key *b);

static inline int key_less(const sort_ctx *c, const rule_key *a, const rule_key *b) {
  if (__builtin_expect(a->lift != b->lift, 1))
    return a->lift > b->lift;
  return key_less_tie(c, a, b);
}

/* key_less for equal lifts (rare: kept out of line). */
static int key_less_tie(const sort_ctx *c, const rule_key *a, const rule_key *b) {
  if (a->conf != b->conf)
    return a->conf > b->conf;
  if (a->count != b->count)
    return a->count > b->count;
  if (a->seq[0] != b->seq[0])
    return a->seq[0] < b->seq[0];
  if (a->seq[1] != b->seq[1])
    return a->seq[1] < b->seq[1];
  const af_rule *ra = &c->rules[a->idx], *rb = &c->rules[b->idx];
  const af_itemsets *fi = c->fi;
  const int32_t *xa = fi->items + fi->offsets[ra->itemset], *xb = fi->items + fi->offsets[rb->itemset];
  uint32_t fa = (uint32_t)((1ull << (fi->offsets[ra->itemset + 1] - fi->offsets[ra->itemset])) - 1);
  uint32_t fb = (uint32_t)((1ull << (fi->offsets[rb->itemset + 1] - fi->offsets[rb->itemset])) - 1);
  int r = cmp_masked(xa, ra->ante_mask, xb, rb->ante_mask);
  if (!r)
    r = cmp_masked(xa, fa & ~ra->ante_mask, xb, fb & ~rb->ante_mask);
  return r < 0;
}

/* The tie-break order (antecedent items, then consequent items) is the
 * lexicographic order of the symbol sequence: antecedent items + 2, a
 * separator 1, consequent items + 2, then 0s. Its first symbols are packed
 * `bits` wide, first symbol highest, into two words, so that comparing the
 * words compares those prefixes; equal words fall back to the items. */
static void pack_seq(const af_itemsets *fi, const af_rule *r, int bits, uint64_t seq[2]) {
  const int32_t *x = fi->items + fi->offsets[r->itemset];
  int k = (int)(fi->offsets[r->itemset + 1] - fi->offsets[r->itemset]);
  uint32_t full = (uint32_t)((1ull << k) - 1);
  int per = 64 / bits, slots = 2 * per, n = 0;
  uint64_t sym[64];
  for (uint32_t m = r->ante_mask; m && n < slots; m &= m - 1)
    sym[n++] = (uint64_t)(uint32_t)x[__builtin_ctz(m)] + 2;
  if (n < slots)
    sym[n++] = 1;
  for (uint32_t m = full & ~r->ante_mask; m && n < slots; m &= m - 1)
    sym[n++] = (uint64_t)(uint32_t)x[__builtin_ctz(m)] + 2;
  while (n < slots)
    sym[n++] = 0;
  for (int w = 0; w < 2; w++) {
    uint64_t v = 0;
    for (int i = 0; i < per; i++)
      v = v << bits | sym[w * per + i];
    seq[w] = v;
  }
}

/* Sorts k[0..n) by key_less; tmp has room for n keys. Insertion-sorted runs
 * of 16, then bottom-up merges alternating between k and tmp. */
static void sort_keys(const sort_ctx *c, rule_key *k, rule_key *tmp, int64_t n) {
  const int64_t RUN = 16;
  for (int64_t lo = 0; lo < n; lo += RUN) {
    int64_t hi = lo + RUN < n ? lo + RUN : n;
    for (int64_t i = lo + 1; i < hi; i++) {
      rule_key v = k[i];
      int64_t j = i;
      while (j > lo && key_less(c, &v, &k[j - 1])) {
        k[j] = k[j - 1];
        j--;
      }
      k[j] = v;
    }
  }
  rule_key *src = k, *dst = tmp;
  for (int64_t w = RUN; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      int64_t i = lo, j = mid, o = lo;
      while (i < mid && j < hi) { /* branch-free select: the outcome is unpredictable */
        int take_j = key_less(c, &src[j], &src[i]);
        const rule_key *p = take_j ? &src[j] : &src[i];
        dst[o++] = *p;
        j += take_j;
        i += 1 - take_j;
      }
      while (i < mid)
        dst[o++] = src[i++];
      while (j < hi)
        dst[o++] = src[j++];
    }
    rule_key *t = src;
    src = dst;
    dst = t;
  }
  if (src != k)
    memcpy(k, src, (size_t)n * sizeof *k);
}

/* The whole order: an LSD radix sort (11-bit digits) of the keys by lift
 * descending (the IEEE bits of a positive double order like its value;
 * complemented for descending), then each run of equal lifts by sort_keys. */
static void sort_rules(const sort_ctx *c, rule_key *k, rule_key *tmp, int64_t n) {
  enum { DIGIT = 11, PASSES = 6, BUCKETS = 1 << DIGIT };
  uint32_t hist[PASSES][BUCKETS];
  memset(hist, 0, sizeof hist);
  for (int64_t i = 0; i < n; i++) {
    uint64_t b;
    memcpy(&b, &k[i].lift, sizeof b);
    b = ~b;
    for (int p = 0; p < PASSES; p++)
      hist[p][(b >> (p * DIGIT)) & (BUCKETS - 1)]++;
  }
  rule_key *src = k, *dst = tmp;
  for (int p = 0; p < PASSES; p++) {
    uint32_t *h = hist[p];
    int single = 0;
    for (int d = 0; d < BUCKETS; d++)
      if (h[d] == (uint32_t)n)
        single = 1;
    if (single)
      continue; /* every key has this digit */
    uint32_t sum = 0;
    for (int d = 0; d < BUCKETS; d++) {
      uint32_t t = h[d];
      h[d] = sum;
      sum += t;
    }
    for (int64_t i = 0; i < n; i++) {
      uint64_t b;
      memcpy(&b, &src[i].lift, sizeof b);
      dst[h[(~b >> (p * DIGIT)) & (BUCKETS - 1)]++] = src[i];
    }
    rule_key *t = src;
    src = dst;
    dst = t;
  }
  if (src != k)
    memcpy(k, src, (size_t)n * sizeof *k);
  for (int64_t lo = 0; lo < n;) {
    int64_t hi = lo + 1;
    while (hi < n && k[hi].lift == k[lo].lift)
      hi++;
    if (hi - lo > 1)
      sort_keys(c, k + lo, tmp, hi - lo);
    lo = hi;
  }
}

/* Itemsets whose items fit `bits` wide into 64 bits have an exact key: the
 * items + 1 packed, first item highest (a leading non-zero symbol keeps
 * lengths apart). Their counts sit in an open-addressing table keyed by it, so
 * a lookup costs one probe sequence and no item comparison. */
typedef struct {
  uint64_t key; /* 0 = empty */
  int64_t count;
} pk_slot;

typedef struct {
  pk_slot *slot; /* (cap) */
  uint64_t cap;
  int bits, max_n; /* item width; longest packable itemset */
} packed_index;

static inline uint64_t pk_hash(uint64_t key) {
  key ^= key >> 31;
  key *= 0x9e3779b97f4a7c15ull;
  return key ^ (key >> 29);
}

static inline int64_t pk_find(const packed_index *px, uint64_t key) {
  for (uint64_t h = pk_hash(key) & (px->cap - 1);; h = (h + 1) & (px->cap - 1)) {
    if (px->slot[h].key == key)
      return px->slot[h].count;
    if (px->slot[h].key == 0)
      return -1;
  }
}

/* Support counts of the subsets of one itemset during rule generation:
 * single items from a direct table, packable subsets from the packed index,
 * longer ones from the hash index over the items,
 * memoised by mask for itemsets of up to MEMO_BITS items (a subset is needed
 * both as an antecedent and as a consequent). */
enum { MEMO_BITS = 12 };

typedef struct {
  packed_index px;
  set_index ix;     /* over the itemsets too long to pack */
  int64_t *single;  /* (n_single) count of each single item, -1 if not frequent */
  int32_t n_single;
  int64_t *memo;    /* (1 << MEMO_BITS) */
  int64_t *stamp;   /* (1 << MEMO_BITS) itemset index + 1 whose memo is valid */
} subset_counts;

static inline int64_t subset_count(subset_counts *sc, int64_t s, const int32_t *it, int k,
                                   uint32_t mask) {
  if (!(mask & (mask - 1))) {
    int32_t x = it[__builtin_ctz(mask)];
    return x >= 0 && x < sc->n_single ? sc->single[x] : -1;
  }
  if (k <= MEMO_BITS && sc->stamp[mask] == s + 1)
    return sc->memo[mask];
  int64_t c;
  if (__builtin_popcount(mask) <= sc->px.max_n) {
    uint64_t key = 0;
    for (uint32_t m = mask; m; m &= m - 1)
      key = key << sc->px.bits | (uint64_t)(uint32_t)(it[__builtin_ctz(m)] + 1);
    c = pk_find(&sc->px, key);
  } else {
    int32_t a[32];
    int na = 0;
    for (uint32_t m = mask; m; m &= m - 1)
      a[na++] = it[__builtin_ctz(m)];
    int64_t i = index_find(&sc->ix, a, na);
    c = i < 0 ? -1 : sc->ix.fi->counts[i];
  }
  if (k <= MEMO_BITS) {
    sc->stamp[mask] = s + 1;
    sc->memo[mask] = c;
  }
  return c;
}

static void subset_counts_free(subset_counts *sc) {
  free(sc->px.slot);
  free(sc->ix.slot);
  free(sc->single);
  free(sc->memo);
  free(sc->stamp);
}

static af_status subset_counts_init(subset_counts *sc, const af_itemsets *fi, af_error *err) {
  memset(sc, 0, sizeof *sc);
  int32_t max_item = 0;
  for (int64_t i = 0; i < fi->offsets[fi->n_itemsets]; i++)
    if (fi->items[i] > max_item)
      max_item = fi->items[i];
  packed_index *px = &sc->px;
  px->bits = 1;
  while (((uint64_t)max_item + 1) >> px->bits)
    px->bits++;
  px->max_n = 64 / px->bits;
  int64_t n_packed = 0;
  for (int64_t s = 0; s < fi->n_itemsets; s++)
    n_packed += fi->offsets[s + 1] - fi->offsets[s] <= px->max_n;
  px->cap = 64;
  while (px->cap < (uint64_t)n_packed * 2)
    px->cap *= 2;
  px->slot = af_calloc(px->cap, sizeof *px->slot, err);
  if (!px->slot)
    return AF_ERR_NOMEM;
  for (int64_t s = 0; s < fi->n_itemsets; s++) {
    int n = (int)(fi->offsets[s + 1] - fi->offsets[s]);
    if (n > px->max_n)
      continue;
    uint64_t key = 0;
    for (int i = 0; i < n; i++)
      key = key << px->bits | (uint64_t)(uint32_t)(fi->items[fi->offsets[s] + i] + 1);
    uint64_t h = pk_hash(key) & (px->cap - 1);
    while (px->slot[h].key != 0 && px->slot[h].key != key)
      h = (h + 1) & (px->cap - 1);
    px->slot[h] = (pk_slot){key, fi->counts[s]};
  }
  AF_TRY(index_build(&sc->ix, fi, px->max_n, err));
  int32_t n_single = 0;
  for (int64_t s = 0; s < fi->n_itemsets; s++)
    if (fi->offsets[s + 1] - fi->offsets[s] == 1 && fi->items[fi->offsets[s]] >= n_single)
      n_single = fi->items[fi->offsets[s]] + 1;
  sc->n_single = n_single;
  sc->single = af_malloc((size_t)(n_single ? n_single : 1), sizeof *sc->single, err);
  sc->memo = af_malloc((size_t)1 << MEMO_BITS, sizeof *sc->memo, err);
  sc->stamp = af_calloc((size_t)1 << MEMO_BITS, sizeof *sc->stamp, err);
  if (!sc->single || !sc->memo || !sc->stamp)
    return AF_ERR_NOMEM;
  for (int32_t i = 0; i < n_single; i++)
    sc->single[i] = -1;
  for (int64_t s = 0; s < fi->n_itemsets; s++)
    if (fi->offsets[s + 1] - fi->offsets[s] == 1 && fi->items[fi->offsets[s]] >= 0)
      sc->single[fi->items[fi->offsets[s]]] = fi->counts[s];
  return AF_OK;
}

/* Next k-bit mask after m with the same number of set bits (Gosper); 0 when
 * none is below 2^k. */
static inline uint32_t next_same_popcount(uint32_t m, int k) {
  uint64_t x = m, c = x & (0 - x), r = x + c;
  uint64_t nx = (((r ^ x) >> 2) / c) | r;
  return nx >> k ? 0 : (uint32_t)nx;
}

af_status af_rules_generate(const af_itemsets *fi, const af_rules_options *opt, af_rules *out,
                            af_error *err) {
  memset(out, 0, sizeof *out);
  double min_conf = opt ? opt->min_confidence : 0, min_lift = opt ? opt->min_lift : 0;
  int max_cons = opt ? opt->max_consequent : 0;
  if (!(min_conf >= 0 && min_conf <= 1))
    return af_error_set(err, AF_ERR_ARG, "min_confidence must be in [0, 1] (got %g)", min_conf);
  subset_counts sc;
  af_status st = subset_counts_init(&sc, fi, err);
  if (st != AF_OK) {
    subset_counts_free(&sc);
    return st;
  }
  const double n = (double)fi->n_baskets;
  af_rule *v = NULL;
  int64_t nv = 0, cap = 0;
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
    int max_nc = max_cons && max_cons < k - 1 ? max_cons : k - 1;
    if (k - 1 <= sc.px.max_n && k - 1 >= 2) {
      /* Prefetch the k antecedents of the one-item consequents: their
       * probes are cache misses, overlapped this way. */
      for (int j = 0; j < k; j++) {
        uint64_t key = 0;
        for (int i = 0; i < k; i++)
          if (i != j)
            key = key << sc.px.bits | (uint64_t)(uint32_t)(it[i] + 1);
        __builtin_prefetch(&sc.px.slot[pk_hash(key) & (sc.px.cap - 1)]);
      }
    }
    /* Consequents by size 1..max_nc, each size in increasing mask order. */
    for (int nc = 1; nc <= max_nc && st == AF_OK; nc++) {
      for (uint32_t cons = (1u << nc) - 1; cons; cons = next_same_popcount(cons, k)) {
        uint32_t mask = full & ~cons;
        int64_t ca = subset_count(&sc, s, it, k, mask), cc = subset_count(&sc, s, it, k, cons);
        if (ca < 0 || cc < 0) {
          st = af_error_set(err, AF_ERR_INTERNAL,
                            "rules: a subset of a frequent itemset is missing from the itemsets");
          break;
        }
        const double s_a = (double)ca / n, s_c = (double)cc / n;
        const double conf = s_ab / s_a;
        if (!(conf >= min_conf))
          continue;
        const double lift = conf / s_c;
        if (min_lift > 0 && !(lift >= min_lift))
          continue;
        if (nv == cap) {
          cap = cap ? cap * 2 : 1024;
          af_rule *p = af_realloc(v, (size_t)cap, sizeof *p, err);
          if (!p) {
            st = AF_ERR_NOMEM;
            break;
          }
          v = p;
        }
        af_rule *r = &v[nv];
        r->itemset = s;
        r->ante_mask = mask;
        r->count = fi->counts[s];
        r->ante_count = ca;
        r->cons_count = cc;
        r->support = s_ab;
        r->confidence = conf;
        r->lift = lift;
        r->leverage = s_ab - s_a * s_c;
        r->conviction = conf < 1.0 ? (1.0 - s_c) / (1.0 - conf) : INFINITY;
        nv++;
      }
    }
  }
  subset_counts_free(&sc);
  if (st != AF_OK) {
    free(v);
    return st;
  }
  rule_key *keys = af_malloc((size_t)(nv ? nv : 1), sizeof *keys, err);
  rule_key *tmp = af_malloc((size_t)(nv ? nv : 1), sizeof *tmp, err);
  if (!keys || !tmp) {
    free(keys);
    free(tmp);
    free(v);
    return AF_ERR_NOMEM;
  }
  int32_t max_item = 0;
  for (int64_t i = 0; i < fi->offsets[fi->n_itemsets]; i++)
    if (fi->items[i] > max_item)
      max_item = fi->items[i];
  int bits = 1;
  while (bits < 32 && ((uint64_t)max_item + 2) >> bits)
    bits++;
  for (int64_t i = 0; i < nv; i++) {
    keys[i] = (rule_key){v[i].lift, v[i].confidence, v[i].count, {0, 0}, i};
    pack_seq(fi, &v[i], bits, keys[i].seq);
  }
  sort_ctx sctx = {fi, v};
  sort_rules(&sctx, keys, tmp, nv);
  free(tmp);
  int64_t keep = opt && opt->max_rules > 0 && opt->max_rules < nv ? opt->max_rules : nv;
  out->rules = af_malloc((size_t)(keep ? keep : 1), sizeof *out->rules, err);
  if (!out->rules) {
    free(keys);
    free(v);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < keep; i++) {
    if (i + 8 < keep)
      __builtin_prefetch(&v[keys[i + 8].idx]);
    out->rules[i] = v[keys[i].idx];
  }
  out->n_rules = keep;
  free(keys);
  free(v);
  return AF_OK;
}
