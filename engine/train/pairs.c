/* Training pairs from co-purchases or a CSV, seeded split and epoch order
 * (include/affinity.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "base/philox.h"

void af_pairs_default_options(af_pairs_options *o) {
  memset(o, 0, sizeof *o);
  o->min_count = 2;
  o->min_lift = 1.0;
  o->max_pairs = 0;
  o->val_fraction = 0.05;
  o->max_val = 1000;
  o->seed = 42;
}

uint64_t af_pairs_rand_below(uint64_t seed, uint64_t stream, uint64_t i, uint64_t bound) {
  uint32_t w[4];
  af_philox_block(seed, stream, i, w);
  uint64_t x = ((uint64_t)w[0] << 32) | w[1];
  return bound ? x % bound : 0; /* modulo bias < bound / 2^64: negligible */
}

void af_pairs_epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm) {
  for (int64_t i = 0; i < n; i++)
    perm[i] = i;
  const uint64_t stream = AF_PAIRS_STREAM_EPOCH + (uint64_t)epoch;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)af_pairs_rand_below(seed, stream, (uint64_t)i, (uint64_t)i + 1);
    int64_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
}

void af_pair_set_free(af_pair_set *s) {
  if (!s)
    return;
  for (int64_t i = 0; i < s->n; i++) {
    free(s->anchor ? s->anchor[i] : NULL);
    free(s->positive ? s->positive[i] : NULL);
  }
  free(s->anchor);
  free(s->positive);
  free(s->item_a);
  free(s->item_b);
  free(s->count);
  free(s->lift);
  memset(s, 0, sizeof *s);
}

uint64_t af_pair_set_fingerprint(const af_pair_set *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < s->n; i++)
    for (int k = 0; k < 2; k++) {
      const unsigned char *p = (const unsigned char *)(k ? s->positive[i] : s->anchor[i]);
      for (; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
      }
      h ^= 0xff; /* separator */
      h *= 0x100000001b3ULL;
    }
  return h;
}

static af_status set_alloc(af_pair_set *s, int64_t n, af_error *err) {
  memset(s, 0, sizeof *s);
  size_t k = (size_t)(n > 0 ? n : 1);
  s->anchor = af_calloc(k, sizeof(char *), err);
  s->positive = s->anchor ? af_calloc(k, sizeof(char *), err) : NULL;
  s->item_a = s->positive ? af_malloc(k, sizeof(int32_t), err) : NULL;
  s->item_b = s->item_a ? af_malloc(k, sizeof(int32_t), err) : NULL;
  s->count = s->item_b ? af_malloc(k, sizeof(int64_t), err) : NULL;
  s->lift = s->count ? af_malloc(k, sizeof(double), err) : NULL;
  if (!s->lift) {
    af_pair_set_free(s);
    return AF_ERR_NOMEM;
  }
  return AF_OK;
}

/* A candidate pair before the split: two texts (borrowed) + item stats. */
typedef struct {
  const char *a, *b;
  int32_t ia, ib;
  int64_t count;
  double lift;
} cand;

static char *dup_str(const char *s, af_error *err) {
  size_t n = strlen(s) + 1;
  char *d = af_malloc(n, 1, err);
  if (d)
    memcpy(d, s, n);
  return d;
}

/* Shuffles candidates (stream SPLIT), flips orientations (stream SPLIT + 1),
 * when flip, then fills val (first n_val) and train (next, up to max_pairs). */
static af_status split(cand *c, int64_t n, int flip, const af_pairs_options *opt,
                       af_pair_set *train, af_pair_set *val, af_error *err) {
  const uint64_t seed = opt->seed;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)af_pairs_rand_below(seed, AF_PAIRS_STREAM_SPLIT, (uint64_t)i,
                                             (uint64_t)i + 1);
    cand tmp = c[i];
    c[i] = c[j];
    c[j] = tmp;
  }
  for (int64_t i = 0; i < n && flip; i++)
    if (af_pairs_rand_below(seed, AF_PAIRS_STREAM_SPLIT + 1, (uint64_t)i, 2)) {
      const char *t = c[i].a;
      c[i].a = c[i].b;
      c[i].b = t;
      int32_t k = c[i].ia;
      c[i].ia = c[i].ib;
      c[i].ib = k;
    }
  int64_t n_val = (int64_t)floor(opt->val_fraction * (double)n);
  if (n_val > opt->max_val)
    n_val = opt->max_val;
  if (n_val < 0)
    n_val = 0;
  int64_t n_train = n - n_val;
  if (opt->max_pairs > 0 && n_train > opt->max_pairs)
    n_train = opt->max_pairs;
  if (n_train < 1)
    return af_error_set(err, AF_ERR_ARG,
                        "no training pairs (%lld eligible, %lld held out): lower --min-count or "
                        "--min-lift",
                        (long long)n, (long long)n_val);
  memset(train, 0, sizeof *train);
  memset(val, 0, sizeof *val);
  af_status st = set_alloc(val, n_val, err);
  if (st == AF_OK)
    st = set_alloc(train, n_train, err);
  for (int64_t i = 0; i < n_val + n_train && st == AF_OK; i++) {
    af_pair_set *s = i < n_val ? val : train;
    int64_t k = i < n_val ? i : i - n_val;
    s->anchor[k] = dup_str(c[i].a, err);
    s->positive[k] = s->anchor[k] ? dup_str(c[i].b, err) : NULL;
    if (!s->positive[k]) {
      st = AF_ERR_NOMEM;
      break;
    }
    s->n = k + 1;
    s->item_a[k] = c[i].ia;
    s->item_b[k] = c[i].ib;
    s->count[k] = c[i].count;
    s->lift[k] = c[i].lift;
  }
  if (st != AF_OK) {
    af_pair_set_free(train);
    af_pair_set_free(val);
  }
  return st;
}

af_status af_pairs_from_baskets(const af_baskets *b, const af_catalog *catalog,
                                const af_pairs_options *opt, af_pair_set *train, af_pair_set *val,
                                af_error *err) {
  if (opt->min_count < 1 || !(opt->val_fraction >= 0 && opt->val_fraction < 1) ||
      opt->max_val < 0 || opt->max_pairs < 0 || !isfinite(opt->min_lift))
    return af_error_set(err, AF_ERR_ARG, "invalid pair options (min_count %lld, val_fraction %g)",
                        (long long)opt->min_count, opt->val_fraction);
  if (catalog && catalog->n != b->n_items)
    return af_error_set(err, AF_ERR_INTERNAL, "baskets were not loaded against this catalog");
  af_cooccur co;
  AF_TRY(af_cooccur_build(b, opt->min_count, &co, err));
  int64_t cap = af_cooccur_n_pairs(&co);
  cand *c = af_malloc((size_t)(cap > 0 ? cap : 1), sizeof *c, err);
  if (!c) {
    af_cooccur_free(&co);
    return AF_ERR_NOMEM;
  }
  int64_t n = 0, pos = 0, cnt;
  int32_t row = 0, ia, ib;
  while (af_cooccur_next(&co, &pos, &row, &ia, &ib, &cnt)) {
    af_pair_stats s;
    af_pair_stats_compute(b->n_baskets, co.item_count[ia], co.item_count[ib], cnt, &s);
    if (!(s.lift >= opt->min_lift))
      continue;
    const char *ta = catalog ? catalog->texts[ia] : b->item_ids[ia];
    const char *tb = catalog ? catalog->texts[ib] : b->item_ids[ib];
    if (!ta || !tb || !*ta || !*tb)
      continue;
    c[n++] = (cand){ta, tb, ia, ib, cnt, s.lift};
  }
  af_status st = split(c, n, 1, opt, train, val, err);
  free(c);
  af_cooccur_free(&co);
  return st;
}

af_status af_pairs_from_csv(const char *path, const af_pairs_options *opt, af_pair_set *train,
                            af_pair_set *val, af_error *err) {
  if (!(opt->val_fraction >= 0 && opt->val_fraction < 1) || opt->max_val < 0 || opt->max_pairs < 0)
    return af_error_set(err, AF_ERR_ARG, "invalid pair options");
  af_csv *r;
  AF_TRY(af_csv_open(path, ',', &r, err));
  char **f;
  int nf, eof;
  af_status st = af_csv_next(r, &f, &nf, &eof, err);
  if (st == AF_OK && (eof || nf < 2))
    st = af_error_set(err, AF_ERR_FORMAT, "%s: line 1: expected a header with two columns "
                      "(anchor,positive)", path);
  char **texts = NULL; /* (2 n) */
  int64_t n = 0, cap = 0;
  while (st == AF_OK) {
    st = af_csv_next(r, &f, &nf, &eof, err);
    if (st != AF_OK || eof)
      break;
    int64_t line = af_csv_record_line(r);
    if (nf == 1 && f[0][0] == '\0')
      continue; /* blank line */
    if (nf < 2) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s: line %lld: expected 2 fields, got %d", path,
                        (long long)line, nf);
      break;
    }
    af_normalize_ws(f[0]);
    af_normalize_ws(f[1]);
    if (!f[0][0] || !f[1][0]) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s: line %lld: empty anchor or positive text", path,
                        (long long)line);
      break;
    }
    if (n == cap) {
      int64_t nc = cap ? cap * 2 : 1024;
      char **t2 = af_realloc(texts, (size_t)nc * 2, sizeof(char *), err);
      if (!t2) {
        st = AF_ERR_NOMEM;
        break;
      }
      texts = t2;
      cap = nc;
    }
    texts[2 * n] = dup_str(f[0], err);
    texts[2 * n + 1] = texts[2 * n] ? dup_str(f[1], err) : NULL;
    if (!texts[2 * n + 1]) {
      free(texts[2 * n]);
      st = AF_ERR_NOMEM;
      break;
    }
    n++;
  }
  af_csv_close(r);
  cand *c = st == AF_OK ? af_malloc((size_t)(n > 0 ? n : 1), sizeof *c, err) : NULL;
  if (st == AF_OK && !c)
    st = AF_ERR_NOMEM;
  if (st == AF_OK) {
    for (int64_t i = 0; i < n; i++)
      c[i] = (cand){texts[2 * i], texts[2 * i + 1], -1, -1, 0, 0.0};
    st = split(c, n, 0, opt, train, val, err);
    if (st != AF_OK)
      af_error_prefix(err, "%s: ", path);
  }
  free(c);
  for (int64_t i = 0; i < 2 * n; i++)
    free(texts[i]);
  free(texts);
  return st;
}
