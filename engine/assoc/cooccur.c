/* Sparse co-occurrence counting (see cooccur.h). */
#include "affinity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/search.h"

void af_cooccur_free(af_cooccur *c) {
  if (!c)
    return;
  free(c->item_count);
  free(c->offsets);
  free(c->nbr);
  free(c->count);
  memset(c, 0, sizeof *c);
}

int64_t af_cooccur_n_pairs(const af_cooccur *c) { return c->offsets[c->n_items] / 2; }

int64_t af_cooccur_count(const af_cooccur *c, int32_t a, int32_t b) {
  if (a < 0 || b < 0 || a >= c->n_items || b >= c->n_items)
    return 0;
  const int64_t i = af_lower_bound_i32(c->nbr, c->offsets[a], c->offsets[a + 1], b);
  return i < c->offsets[a + 1] && c->nbr[i] == b ? c->count[i] : 0;
}

int af_cooccur_next(const af_cooccur *c, int64_t *pos, int32_t *row, int32_t *a, int32_t *b,
                    int64_t *count) {
  while (*row < c->n_items) {
    if (*pos < c->offsets[*row])
      *pos = c->offsets[*row];
    while (*pos < c->offsets[*row + 1]) {
      int64_t p = (*pos)++;
      if (c->nbr[p] > *row) {
        *a = *row;
        *b = c->nbr[p];
        *count = c->count[p];
        return 1;
      }
    }
    (*row)++;
  }
  return 0;
}

void af_pair_stats_compute(int64_t n, int64_t n_a, int64_t n_b, int64_t n_ab, af_pair_stats *s) {
  double dn = (double)n;
  double sa = (double)n_a / dn, sb = (double)n_b / dn, sab = (double)n_ab / dn;
  s->support = sab;
  s->confidence_ab = sab / sa;
  s->confidence_ba = sab / sb;
  s->lift = s->confidence_ab / sb;
  s->leverage = sab - sa * sb;
  s->conviction = s->confidence_ab >= 1.0 ? INFINITY : (1.0 - sb) / (1.0 - s->confidence_ab);
  s->jaccard = (double)n_ab / (double)(n_a + n_b - n_ab);
  s->cosine = (double)n_ab / sqrt((double)n_a * (double)n_b);
}

/* Upper-triangle pairs (a < b) for items [lo, hi): per-item pair counts and
 * concatenated (b, count) lists. */
typedef struct {
  int64_t n, cap;
  int32_t *nbr, *cnt;
  int64_t *per_item; /* (hi - lo) */
} chunk_out;

static int cmp_i32(const void *x, const void *y) {
  int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
  return (a > b) - (a < b);
}

/* Bytes held by every chunk's pair lists, against the memory budget. */
typedef struct {
  int64_t used, limit;
} pair_budget;

/* 1 when the budget allows `more` bytes (and takes them). */
static int budget_take(pair_budget *pb, int64_t more) {
  int64_t now;
#pragma omp atomic capture
  now = pb->used += more;
  return now <= pb->limit;
}

/* Returns 1 on success, 0 when out of memory, 2 past the budget. */
static int count_chunk(const af_baskets *bk, const int64_t *t_off, const int64_t *t_bask,
                       int32_t lo, int32_t hi, int64_t min_count, int32_t *acc, int32_t *touched,
                       chunk_out *o, pair_budget *pb) {
  o->per_item = calloc((size_t)(hi - lo), sizeof *o->per_item);
  if (!o->per_item)
    return 0;
  for (int32_t a = lo; a < hi; a++) {
    int32_t nt = 0;
    for (int64_t k = t_off[a]; k < t_off[a + 1]; k++) {
      int64_t bsk = t_bask[k];
      const int32_t *it = bk->items + bk->offsets[bsk];
      int64_t len = bk->offsets[bsk + 1] - bk->offsets[bsk];
      /* Items are sorted: skip to just past a. */
      int64_t l = 0, h = len;
      while (l < h) {
        int64_t m = l + (h - l) / 2;
        if (it[m] <= a)
          l = m + 1;
        else
          h = m;
      }
      for (int64_t j = l; j < len; j++)
        if (acc[it[j]]++ == 0)
          touched[nt++] = it[j];
    }
    qsort(touched, (size_t)nt, sizeof *touched, cmp_i32);
    if (o->cap - o->n < nt) {
      int64_t cap = o->cap * 2 > o->n + nt ? o->cap * 2 : o->n + nt + 1024;
      if (!budget_take(pb, (cap - o->cap) * (int64_t)(2 * sizeof(int32_t)))) {
        for (int32_t t = 0; t < nt; t++)
          acc[touched[t]] = 0;
        return 2;
      }
      int32_t *p = realloc(o->nbr, (size_t)cap * sizeof *p);
      if (!p)
        return 0;
      o->nbr = p;
      int32_t *q = realloc(o->cnt, (size_t)cap * sizeof *q);
      if (!q)
        return 0;
      o->cnt = q;
      o->cap = cap;
    }
    int64_t kept = 0;
    for (int32_t t = 0; t < nt; t++) {
      int32_t b = touched[t];
      if (acc[b] >= min_count) {
        o->nbr[o->n] = b;
        o->cnt[o->n] = acc[b];
        o->n++;
        kept++;
      }
      acc[b] = 0;
    }
    o->per_item[a - lo] = kept;
  }
  return 1;
}

af_status af_cooccur_build(const af_baskets *bk, int64_t min_count, af_cooccur *out,
                           af_error *err) {
  return af_cooccur_build_limited(bk, min_count, 0, out, err);
}

static const char cooccur_hint[] =
    "raise --min-count, drop the largest baskets, or raise --memory-limit";

af_status af_cooccur_build_limited(const af_baskets *bk, int64_t min_count, int64_t memory_limit,
                                   af_cooccur *out, af_error *err) {
  memset(out, 0, sizeof *out);
  pair_budget pb = {0, af_memory_limit_or_default(memory_limit)};
  if (min_count < 1)
    return af_error_set(err, AF_ERR_ARG, "co-occurrence: min_count must be >= 1 (got %lld)",
                        (long long)min_count);
  if (bk->n_baskets >= INT32_MAX)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "co-occurrence: more than 2^31 baskets");
  const int32_t n_items = bk->n_items;
  out->n_baskets = bk->n_baskets;
  out->n_items = n_items;
  out->min_count = min_count;
  /* Transpose: the baskets holding each item. */
  int64_t nnz = bk->offsets[bk->n_baskets];
  int64_t *t_off = af_calloc((size_t)n_items + 1, sizeof *t_off, err);   // (n_items + 1)
  int64_t *t_bask = af_malloc((size_t)(nnz ? nnz : 1), sizeof *t_bask, err); // (nnz)
  out->item_count = af_calloc((size_t)(n_items ? n_items : 1), sizeof *out->item_count, err);
  out->offsets = af_calloc((size_t)n_items + 1, sizeof *out->offsets, err);
  if (!t_off || !t_bask || !out->item_count || !out->offsets) {
    free(t_off);
    free(t_bask);
    af_cooccur_free(out);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < nnz; i++)
    t_off[bk->items[i] + 1]++;
  for (int32_t a = 0; a < n_items; a++) {
    out->item_count[a] = t_off[a + 1];
    t_off[a + 1] += t_off[a];
  }
  for (int64_t b = 0; b < bk->n_baskets; b++)
    for (int64_t i = bk->offsets[b]; i < bk->offsets[b + 1]; i++)
      t_bask[t_off[bk->items[i]]++] = b;
  for (int32_t a = n_items; a > 0; a--)
    t_off[a] = t_off[a - 1];
  t_off[0] = 0;

  /* Chunks of items balanced by work (sum of basket sizes over each item's baskets ~ its count). */
  int n_chunks = n_items < 256 ? (n_items ? n_items : 1) : 256;
  int32_t *bounds = af_malloc((size_t)n_chunks + 1, sizeof *bounds, err);
  chunk_out *chunks = af_calloc((size_t)n_chunks, sizeof *chunks, err);
  if (!bounds || !chunks) {
    free(bounds);
    free(chunks);
    free(t_off);
    free(t_bask);
    af_cooccur_free(out);
    return AF_ERR_NOMEM;
  }
  for (int c = 0; c <= n_chunks; c++)
    bounds[c] = (int32_t)((int64_t)n_items * c / n_chunks);
  int failed = 0;
  /* the transposed index and per-thread counters count against the budget too */
  pb.used = (int64_t)nnz * 8 + (int64_t)n_items * 24;
#pragma omp parallel
  {
    int32_t *acc = calloc((size_t)(n_items ? n_items : 1), sizeof *acc);
    int32_t *touched = malloc((size_t)(n_items ? n_items : 1) * sizeof *touched);
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < n_chunks; c++) {
      int failed_now;
#pragma omp atomic read
      failed_now = failed;
      if (failed_now)
        continue;
      int r = acc && touched ? count_chunk(bk, t_off, t_bask, bounds[c], bounds[c + 1], min_count,
                                           acc, touched, &chunks[c], &pb)
                             : 0;
      if (r != 1) {
#pragma omp atomic write
        failed = r == 2 ? 2 : 1;
      }
    }
    free(acc);
    free(touched);
  }
  free(t_off);
  free(t_bask);
  af_status st = AF_OK;
  if (failed == 2) {
    st = af_budget_check(pb.used, pb.limit, "co-occurrence pairs", cooccur_hint, err);
    goto done;
  }
  if (failed) {
    st = af_error_set(err, AF_ERR_NOMEM, "co-occurrence: out of memory");
    goto done;
  }
  /* Symmetric CSR: degree of a = its upper pairs + the lower pairs naming it. */
  for (int c = 0; c < n_chunks; c++) {
    int64_t p = 0;
    for (int32_t a = bounds[c]; a < bounds[c + 1]; a++) {
      int64_t k = chunks[c].per_item[a - bounds[c]];
      out->offsets[a + 1] += k;
      for (int64_t j = 0; j < k; j++)
        out->offsets[chunks[c].nbr[p + j] + 1]++;
      p += k;
    }
  }
  for (int32_t a = 0; a < n_items; a++)
    out->offsets[a + 1] += out->offsets[a];
  int64_t total = out->offsets[n_items];
  /* the symmetric CSR: (nbr, count) for both directions of every pair */
  st = af_budget_check(pb.used + total * (int64_t)(2 * sizeof(int32_t)), pb.limit,
                       "co-occurrence pairs", cooccur_hint, err);
  if (st != AF_OK)
    goto done;
  out->nbr = af_malloc((size_t)(total ? total : 1), sizeof *out->nbr, err);
  out->count = af_malloc((size_t)(total ? total : 1), sizeof *out->count, err);
  int64_t *fill = af_malloc((size_t)n_items + 1, sizeof *fill, err);
  if (!out->nbr || !out->count || !fill) {
    free(fill);
    st = AF_ERR_NOMEM;
    goto done;
  }
  memcpy(fill, out->offsets, ((size_t)n_items + 1) * sizeof *fill);
  /* a ascending: row b receives its lower neighbours in order before its own uppers. */
  for (int c = 0; c < n_chunks; c++) {
    int64_t p = 0;
    for (int32_t a = bounds[c]; a < bounds[c + 1]; a++) {
      int64_t k = chunks[c].per_item[a - bounds[c]];
      for (int64_t j = 0; j < k; j++) {
        int32_t b = chunks[c].nbr[p + j];
        int32_t n = chunks[c].cnt[p + j];
        out->nbr[fill[a]] = b;
        out->count[fill[a]++] = n;
        out->nbr[fill[b]] = a;
        out->count[fill[b]++] = n;
      }
      p += k;
    }
  }
  free(fill);
done:
  for (int c = 0; c < n_chunks; c++) {
    free(chunks[c].nbr);
    free(chunks[c].cnt);
    free(chunks[c].per_item);
  }
  free(chunks);
  free(bounds);
  if (st != AF_OK)
    af_cooccur_free(out);
  return st;
}
