/* Basket loading and cleaning (see baskets.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "base/strmap.h"

/* One kept input row: its basket and a sort key (item << 32 | 32 bits of the
 * row's hash) so that sorting a basket groups repeats of an item and puts
 * exact duplicate rows next to each other. */
typedef struct {
  int64_t *basket; /* (n) */
  uint64_t *key;   /* (n) */
  int64_t n, cap;
} rowbuf;

typedef struct {
  char **v;
  int64_t n, cap;
} strvec;

static af_status strvec_push_copy(strvec *s, const char *x, size_t len, af_error *err) {
  if (s->n == s->cap) {
    int64_t cap = s->cap ? s->cap * 2 : 1024;
    char **p = af_realloc(s->v, (size_t)cap, sizeof *p, err);
    if (!p)
      return AF_ERR_NOMEM;
    s->v = p;
    s->cap = cap;
  }
  char *c = af_malloc(len + 1, 1, err);
  if (!c)
    return AF_ERR_NOMEM;
  memcpy(c, x, len);
  c[len] = '\0';
  s->v[s->n++] = c;
  return AF_OK;
}

static void strvec_free(strvec *s) {
  for (int64_t i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static af_status rowbuf_push(rowbuf *r, int64_t basket, int32_t item, uint64_t hash,
                             af_error *err) {
  if (r->n == r->cap) {
    int64_t cap = r->cap ? r->cap * 2 : 1024; /* doubling: small files allocate little */
    int64_t *b = af_realloc(r->basket, (size_t)cap, sizeof *b, err);
    if (!b)
      return AF_ERR_NOMEM;
    r->basket = b;
    uint64_t *k = af_realloc(r->key, (size_t)cap, sizeof *k, err);
    if (!k)
      return AF_ERR_NOMEM;
    r->key = k;
    r->cap = cap;
  }
  r->basket[r->n] = basket;
  r->key[r->n] = (uint64_t)(uint32_t)item << 32 | (hash >> 32);
  r->n++;
  return AF_OK;
}

void af_baskets_free(af_baskets *b) {
  if (!b)
    return;
  if (b->item_ids)
    for (int32_t i = 0; i < b->n_items; i++)
      free(b->item_ids[i]);
  if (b->basket_ids)
    for (int64_t i = 0; i < b->n_baskets; i++)
      free(b->basket_ids[i]);
  free(b->item_ids);
  free(b->basket_ids);
  free(b->offsets);
  free(b->items);
  memset(b, 0, sizeof *b);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static void sort_u64(uint64_t *v, int64_t n) {
  if (n <= 24) {
    for (int64_t i = 1; i < n; i++) {
      uint64_t x = v[i];
      int64_t j = i - 1;
      while (j >= 0 && v[j] > x) {
        v[j + 1] = v[j];
        j--;
      }
      v[j + 1] = x;
    }
  } else {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
  }
}

/* Groups rows by basket (counting sort), sorts each basket, removes repeats.
 * Fills out->offsets / out->items and the duplicate counters. */
static af_status build_csr(rowbuf *rows, int64_t n_baskets, af_baskets *out,
                           af_baskets_report *rep, af_error *err) {
  int64_t *off = af_calloc((size_t)n_baskets + 1, sizeof *off, err);
  uint64_t *keys = af_malloc((size_t)(rows->n ? rows->n : 1), sizeof *keys, err);
  if (!off || !keys) {
    free(off);
    free(keys);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = 0; i < rows->n; i++)
    off[rows->basket[i] + 1]++;
  for (int64_t b = 0; b < n_baskets; b++)
    off[b + 1] += off[b];
  /* Place rows; off[b] walks forward and ends at the start of basket b + 1. */
  for (int64_t i = 0; i < rows->n; i++)
    keys[off[rows->basket[i]]++] = rows->key[i];
  for (int64_t b = n_baskets; b > 0; b--)
    off[b] = off[b - 1];
  off[0] = 0;
  free(rows->basket);
  free(rows->key);
  rows->basket = NULL;
  rows->key = NULL;
  int32_t *items = af_malloc((size_t)(rows->n ? rows->n : 1), sizeof *items, err);
  if (!items) {
    free(off);
    free(keys);
    return AF_ERR_NOMEM;
  }
  int64_t w = 0;
  for (int64_t b = 0; b < n_baskets; b++) {
    int64_t s = off[b], e = off[b + 1];
    sort_u64(keys + s, e - s);
    off[b] = w;
    for (int64_t i = s; i < e; i++) {
      if (i > s && (keys[i] >> 32) == (keys[i - 1] >> 32)) {
        if (keys[i] == keys[i - 1])
          rep->dropped_duplicate++;
        else
          rep->items_repeated_in_basket++;
        continue;
      }
      items[w++] = (int32_t)(keys[i] >> 32);
    }
  }
  off[n_baskets] = w;
  free(keys);
  int32_t *shrunk = realloc(items, (size_t)(w ? w : 1) * sizeof *items);
  out->items = shrunk ? shrunk : items;
  out->offsets = off;
  out->n_baskets = n_baskets;
  return AF_OK;
}

static uint64_t row_hash(char **f, int nf) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < nf; i++)
    h = (h ^ af_hash_bytes(f[i], strlen(f[i]))) * 0xbf58476d1ce4e5b9ull + (uint64_t)i;
  return h;
}

typedef struct {
  const af_catalog *catalog;
  af_strmap *items; /* without a catalog: item id -> index */
  strvec item_ids;
  int drop_unknown;
} item_mapper;

/* Index of item id s (len bytes) at file:line; -1 when it is dropped. */
static af_status map_item(item_mapper *m, const char *s, size_t len, const char *path,
                          int64_t line, int64_t *idx, af_baskets_report *rep, af_error *err) {
  if (m->catalog) {
    *idx = af_strmap_get(m->catalog->index, s, len);
    if (*idx < 0) {
      if (m->drop_unknown) {
        rep->dropped_unknown_item++;
        return AF_OK;
      }
      return af_error_set(err, AF_ERR_FORMAT, "%s:%lld: unknown product id '%s' (not in the catalog)",
                          path, (long long)line, s);
    }
    return AF_OK;
  }
  int64_t existing;
  AF_TRY(af_strmap_put(m->items, s, len, m->item_ids.n, &existing, NULL, err));
  if (existing >= 0) {
    *idx = existing;
    return AF_OK;
  }
  if (m->item_ids.n >= INT32_MAX - 1)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "%s:%lld: more than 2^31 distinct items", path,
                        (long long)line);
  *idx = m->item_ids.n;
  return strvec_push_copy(&m->item_ids, s, len, err);
}

static af_status load_long(af_csv *r, const af_baskets_options *opt, item_mapper *im,
                           rowbuf *rows, strvec *basket_ids, af_baskets_report *rep,
                           af_error *err) {
  const char *path = af_csv_path(r);
  const char *oc = opt && opt->order_column ? opt->order_column : "order_id";
  const char *ic = opt && opt->item_column ? opt->item_column : "product_id";
  char **f;
  int nf, eof;
  AF_TRY(af_csv_next(r, &f, &nf, &eof, err));
  if (eof)
    return af_error_set(err, AF_ERR_FORMAT, "%s: empty file (expected a header row)", path);
  for (int i = 0; i < nf; i++)
    af_normalize_ws(f[i]);
  int n_header = nf, o_idx, i_idx;
  AF_TRY(af_csv_column(f, nf, oc, path, &o_idx, err));
  AF_TRY(af_csv_column(f, nf, ic, path, &i_idx, err));
  af_strmap *orders = NULL;
  AF_TRY(af_strmap_create(1 << 8, &orders, err));
  af_status st = AF_OK;
  int64_t last_basket = -1;
  for (;;) {
    if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
      break;
    if (eof)
      break;
    int64_t line = af_csv_record_line(r);
    rep->rows_read++;
    if (nf == 1 && f[0][0] == '\0') {
      rep->dropped_empty++;
      continue;
    }
    if (nf != n_header) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected %d fields (as in the header), found %d",
                        path, (long long)line, n_header, nf);
      break;
    }
    size_t ol = af_normalize_ws(f[o_idx]);
    size_t il = af_normalize_ws(f[i_idx]);
    if (ol == 0 || il == 0) {
      rep->dropped_empty++;
      continue;
    }
    int64_t item = -1;
    if ((st = map_item(im, f[i_idx], il, path, line, &item, rep, err)) != AF_OK)
      break;
    if (item < 0)
      continue;
    /* Rows of one order are usually adjacent: reuse the previous row's basket. */
    int64_t basket = last_basket;
    if (basket < 0 || strcmp(basket_ids->v[basket], f[o_idx]) != 0) {
      int64_t existing;
      if ((st = af_strmap_put(orders, f[o_idx], ol, basket_ids->n, &existing, NULL, err)) != AF_OK)
        break;
      basket = existing;
      if (existing < 0) {
        basket = basket_ids->n;
        if ((st = strvec_push_copy(basket_ids, f[o_idx], ol, err)) != AF_OK)
          break;
      }
      last_basket = basket;
    }
    for (int i = 0; i < nf; i++)
      if (i != o_idx && i != i_idx)
        af_normalize_ws(f[i]);
    if ((st = rowbuf_push(rows, basket, (int32_t)item, row_hash(f, nf), err)) != AF_OK)
      break;
  }
  af_strmap_free(orders);
  if (st == AF_OK && rep->rows_read == 0)
    st = af_error_set(err, AF_ERR_FORMAT, "%s: no rows after the header", path);
  return st;
}

static af_status load_lines(af_csv *r, item_mapper *im, rowbuf *rows, strvec *basket_ids,
                            af_baskets_report *rep, af_error *err) {
  const char *path = af_csv_path(r);
  char **f;
  int nf, eof;
  for (;;) {
    AF_TRY(af_csv_next(r, &f, &nf, &eof, err));
    if (eof)
      break;
    int64_t line = af_csv_record_line(r);
    rep->rows_read++;
    int64_t basket = basket_ids->n, kept = 0;
    for (int i = 0; i < nf; i++) {
      size_t l = af_normalize_ws(f[i]);
      if (l == 0)
        continue;
      int64_t item = -1;
      AF_TRY(map_item(im, f[i], l, path, line, &item, rep, err));
      if (item < 0)
        continue;
      /* Distinct per field: a repeated item on a line is a repeat, not a duplicate row. */
      AF_TRY(rowbuf_push(rows, basket, (int32_t)item, (uint64_t)i << 32, err));
      kept++;
    }
    if (kept == 0) {
      rep->dropped_empty++;
      continue;
    }
    char id[48];
    snprintf(id, sizeof id, "line %lld", (long long)line);
    AF_TRY(strvec_push_copy(basket_ids, id, strlen(id), err));
  }
  if (rep->rows_read == 0)
    return af_error_set(err, AF_ERR_FORMAT, "%s: empty file (no baskets)", path);
  return AF_OK;
}

af_status af_baskets_load(const char *path, const af_baskets_options *opt,
                          const af_catalog *catalog, af_baskets *out, af_baskets_report *report,
                          af_error *err) {
  memset(out, 0, sizeof *out);
  af_baskets_report local;
  af_baskets_report *rep = report ? report : &local;
  memset(rep, 0, sizeof *rep);
  const char *format = opt && opt->format ? opt->format : "long";
  int lines = strcmp(format, "lines") == 0;
  if (!lines && strcmp(format, "long") != 0)
    return af_error_set(err, AF_ERR_ARG, "%s: unknown baskets format '%s' (long or lines)", path,
                        format);
  if (catalog && catalog->n >= INT32_MAX)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "catalog too large for 32-bit item indices");
  af_csv *r = NULL;
  AF_TRY(af_csv_open(path, opt && opt->delimiter ? opt->delimiter : ',', &r, err));
  item_mapper im = {catalog, NULL, {0}, opt ? opt->drop_unknown_items : 0};
  rowbuf rows = {0};
  strvec basket_ids = {0};
  af_status st = AF_OK;
  if (!catalog)
    st = af_strmap_create(1 << 8, &im.items, err);
  if (st == AF_OK)
    st = lines ? load_lines(r, &im, &rows, &basket_ids, rep, err)
               : load_long(r, opt, &im, &rows, &basket_ids, rep, err);
  af_csv_close(r);
  af_strmap_free(im.items);
  if (st == AF_OK && basket_ids.n == 0)
    st = af_error_set(err, AF_ERR_FORMAT, "%s: no baskets left after cleaning", path);
  if (st == AF_OK)
    st = build_csr(&rows, basket_ids.n, out, rep, err);
  free(rows.basket);
  free(rows.key);
  if (st != AF_OK) {
    strvec_free(&im.item_ids);
    strvec_free(&basket_ids);
    af_baskets_free(out);
    return st;
  }
  out->basket_ids = basket_ids.v;
  if (catalog) {
    out->n_items = (int32_t)catalog->n;
    out->item_ids = af_calloc((size_t)catalog->n, sizeof *out->item_ids, err);
    if (!out->item_ids) {
      strvec_free(&basket_ids);
      out->basket_ids = NULL;
      af_baskets_free(out);
      return AF_ERR_NOMEM;
    }
    for (int64_t i = 0; i < catalog->n; i++) {
      out->item_ids[i] = strdup(catalog->ids[i]);
      if (!out->item_ids[i]) {
        af_baskets_free(out);
        return af_error_set(err, AF_ERR_NOMEM, "out of memory");
      }
    }
  } else {
    out->n_items = (int32_t)im.item_ids.n;
    out->item_ids = im.item_ids.v;
  }
  rep->rows_kept = lines ? out->n_baskets
                         : rows.n - rep->dropped_duplicate - rep->items_repeated_in_basket;
  return AF_OK;
}

af_status af_baskets_from_arrays(int64_t n_baskets, int32_t n_items, const int64_t *offsets,
                                 const int32_t *items, af_baskets *out, af_error *err) {
  memset(out, 0, sizeof *out);
  rowbuf rows = {0};
  for (int64_t b = 0; b < n_baskets; b++)
    for (int64_t i = offsets[b]; i < offsets[b + 1]; i++) {
      if (items[i] < 0 || items[i] >= n_items) {
        free(rows.basket);
        free(rows.key);
        return af_error_set(err, AF_ERR_ARG, "basket %lld: item %d out of range [0, %d)",
                            (long long)b, items[i], n_items);
      }
      af_status st = rowbuf_push(&rows, b, items[i], (uint64_t)i << 32, err);
      if (st != AF_OK) {
        free(rows.basket);
        free(rows.key);
        return st;
      }
    }
  af_baskets_report rep = {0};
  af_status st = build_csr(&rows, n_baskets, out, &rep, err);
  free(rows.basket);
  free(rows.key);
  if (st != AF_OK)
    return st;
  out->n_items = n_items;
  out->item_ids = af_calloc((size_t)(n_items ? n_items : 1), sizeof *out->item_ids, err);
  out->basket_ids = af_calloc((size_t)(n_baskets ? n_baskets : 1), sizeof *out->basket_ids, err);
  if (!out->item_ids || !out->basket_ids) {
    af_baskets_free(out);
    return AF_ERR_NOMEM;
  }
  char buf[32];
  for (int32_t i = 0; i < n_items; i++) {
    snprintf(buf, sizeof buf, "%d", i);
    if (!(out->item_ids[i] = strdup(buf))) {
      af_baskets_free(out);
      return af_error_set(err, AF_ERR_NOMEM, "out of memory");
    }
  }
  for (int64_t b = 0; b < n_baskets; b++) {
    snprintf(buf, sizeof buf, "%lld", (long long)b);
    if (!(out->basket_ids[b] = strdup(buf))) {
      af_baskets_free(out);
      return af_error_set(err, AF_ERR_NOMEM, "out of memory");
    }
  }
  return AF_OK;
}
