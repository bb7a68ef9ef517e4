/* Run-folder files shared by run, report, recommend and groups: hashing,
 * paths, CSV/JSON field writers, products.csv and associations.csv readers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "csv.h"
#include "run.h"
#include "strmap.h"

uint64_t af_run_hash_bytes(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

af_status af_run_hash_file(const char *path, uint64_t *h, af_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    *h = af_run_hash_bytes(*h, buf, n);
  int bad = ferror(f);
  fclose(f);
  if (bad)
    return af_error_set(err, AF_ERR_IO, "%s: read error", path);
  return AF_OK;
}

af_status af_run_path(const char *dir, const char *name, char *out, af_error *err) {
  int k = snprintf(out, AF_PATH_MAX, "%s/%s", dir, name);
  if (k < 0 || k >= AF_PATH_MAX)
    return af_error_set(err, AF_ERR_ARG, "path too long: %s/%s", dir, name);
  return AF_OK;
}


/* ---- products.csv ------------------------------------------------------------ */

static char *dup_str(const char *s, af_error *err) {
  size_t n = strlen(s) + 1;
  char *d = af_malloc(n, 1, err);
  if (d)
    memcpy(d, s, n);
  return d;
}

void af_run_products_free(af_run_products *p) {
  for (int64_t i = 0; i < p->n; i++) {
    if (p->ids)
      free(p->ids[i]);
    if (p->names)
      free(p->names[i]);
    if (p->categories)
      free(p->categories[i]);
  }
  free(p->ids);
  free(p->names);
  free(p->categories);
  free(p->baskets);
  af_strmap_free(p->index);
  memset(p, 0, sizeof *p);
}

int64_t af_run_products_find(const af_run_products *p, const char *id) {
  return af_strmap_get(p->index, id, strlen(id));
}

static af_status products_grow(af_run_products *p, int64_t *cap, af_error *err) {
  if (p->n < *cap)
    return AF_OK;
  int64_t nc = *cap ? *cap * 2 : 1024;
  char **a = af_realloc(p->ids, (size_t)nc, sizeof *a, err);
  if (!a)
    return AF_ERR_NOMEM;
  p->ids = a;
  a = af_realloc(p->names, (size_t)nc, sizeof *a, err);
  if (!a)
    return AF_ERR_NOMEM;
  p->names = a;
  a = af_realloc(p->categories, (size_t)nc, sizeof *a, err);
  if (!a)
    return AF_ERR_NOMEM;
  p->categories = a;
  int64_t *b = af_realloc(p->baskets, (size_t)nc, sizeof *b, err);
  if (!b)
    return AF_ERR_NOMEM;
  p->baskets = b;
  *cap = nc;
  return AF_OK;
}

af_status af_run_products_read(const char *run_dir, af_run_products *p, af_error *err) {
  memset(p, 0, sizeof *p);
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(run_dir, "products.csv", path, err));
  af_csv *r = NULL;
  af_status st = af_csv_open(path, ',', &r, err);
  if (st != AF_OK)
    return af_error_prefix(err, "run folder %s is incomplete (run `affinity run` first): ", run_dir);
  char **f;
  int nf, eof;
  int col[4];
  int64_t cap = 0;
  static const char *const COLS[4] = {"product_id", "product", "category", "baskets"};
  if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
    goto fail;
  if (eof) {
    st = af_error_set(err, AF_ERR_FORMAT, "%s: empty file", path);
    goto fail;
  }
  for (int i = 0; i < 4; i++)
    if ((st = af_csv_column(f, nf, COLS[i], path, &col[i], err)) != AF_OK)
      goto fail;
  if ((st = af_strmap_create(1024, &p->index, err)) != AF_OK)
    goto fail;
  for (;;) {
    if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
      goto fail;
    if (eof)
      break;
    int64_t line = af_csv_record_line(r);
    if (nf != 4) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected 4 fields, found %d", path,
                        (long long)line, nf);
      goto fail;
    }
    char *end;
    errno = 0;
    long long nb = strtoll(f[col[3]], &end, 10);
    if (!f[col[3]][0] || *end || errno || nb < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: field baskets: '%s' is not a count", path,
                        (long long)line, f[col[3]]);
      goto fail;
    }
    if ((st = products_grow(p, &cap, err)) != AF_OK)
      goto fail;
    int64_t existing;
    if ((st = af_strmap_put(p->index, f[col[0]], strlen(f[col[0]]), p->n, &existing, NULL, err)) !=
        AF_OK)
      goto fail;
    if (existing >= 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: duplicate product_id '%s'", path,
                        (long long)line, f[col[0]]);
      goto fail;
    }
    p->ids[p->n] = dup_str(f[col[0]], err);
    p->names[p->n] = dup_str(f[col[1]], err);
    p->categories[p->n] = dup_str(f[col[2]], err);
    p->baskets[p->n] = nb;
    p->n++;
    if (!p->ids[p->n - 1] || !p->names[p->n - 1] || !p->categories[p->n - 1]) {
      st = AF_ERR_NOMEM;
      goto fail;
    }
  }
  af_csv_close(r);
  return AF_OK;
fail:
  af_csv_close(r);
  af_run_products_free(p);
  return st;
}

/* ---- associations.csv ---------------------------------------------------------- */

void af_assoc_free(af_assoc_list *l) {
  free(l->rows);
  memset(l, 0, sizeof *l);
}

static af_status parse_num(const char *s, const char *path, int64_t line, const char *field,
                           double *v, af_error *err) {
  char *end;
  if (!s[0]) {
    *v = NAN; /* empty: no evidence of this kind */
    return AF_OK;
  }
  *v = strtod(s, &end);
  if (*end)
    return af_error_set(err, AF_ERR_FORMAT, "%s:%lld: field %s: '%s' is not a number", path,
                        (long long)line, field, s);
  return AF_OK;
}

af_status af_assoc_read(const char *run_dir, const af_run_products *p, af_assoc_list *out,
                        af_error *err) {
  memset(out, 0, sizeof *out);
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(run_dir, "associations.csv", path, err));
  af_csv *r = NULL;
  af_status st = af_csv_open(path, ',', &r, err);
  if (st != AF_OK)
    return af_error_prefix(err, "run folder %s is incomplete (run `affinity run` first): ", run_dir);
  static const char *const COLS[7] = {"product_id", "related_id", "type", "score",
                                      "count",      "lift",       "cosine"};
  int col[7], nf, eof, n_header;
  char **f;
  int64_t cap = 0;
  if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
    goto fail;
  if (eof) {
    st = af_error_set(err, AF_ERR_FORMAT, "%s: empty file", path);
    goto fail;
  }
  n_header = nf;
  for (int i = 0; i < 7; i++)
    if ((st = af_csv_column(f, nf, COLS[i], path, &col[i], err)) != AF_OK)
      goto fail;
  for (;;) {
    if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
      goto fail;
    if (eof)
      break;
    int64_t line = af_csv_record_line(r);
    if (nf != n_header) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected %d fields, found %d", path,
                        (long long)line, n_header, nf);
      goto fail;
    }
    af_assoc a;
    a.a = af_run_products_find(p, f[col[0]]);
    a.b = af_run_products_find(p, f[col[1]]);
    if (a.a < 0 || a.b < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: product id '%s' is not in products.csv",
                        path, (long long)line, a.a < 0 ? f[col[0]] : f[col[1]]);
      goto fail;
    }
    if (strcmp(f[col[2]], "complement") == 0) {
      a.substitute = 0;
    } else if (strcmp(f[col[2]], "substitute") == 0) {
      a.substitute = 1;
    } else {
      st = af_error_set(err, AF_ERR_FORMAT,
                        "%s:%lld: field type: '%s' is not complement or substitute", path,
                        (long long)line, f[col[2]]);
      goto fail;
    }
    double cnt;
    if ((st = parse_num(f[col[3]], path, line, "score", &a.score, err)) != AF_OK ||
        (st = parse_num(f[col[4]], path, line, "count", &cnt, err)) != AF_OK ||
        (st = parse_num(f[col[5]], path, line, "lift", &a.lift, err)) != AF_OK ||
        (st = parse_num(f[col[6]], path, line, "cosine", &a.cosine, err)) != AF_OK)
      goto fail;
    if (!isfinite(a.score)) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: field score: missing", path, (long long)line);
      goto fail;
    }
    a.count = isfinite(cnt) ? (int64_t)cnt : 0;
    if (out->n == cap) {
      int64_t nc = cap ? cap * 2 : 1024;
      af_assoc *nr = af_realloc(out->rows, (size_t)nc, sizeof *nr, err);
      if (!nr) {
        st = AF_ERR_NOMEM;
        goto fail;
      }
      out->rows = nr;
      cap = nc;
    }
    out->rows[out->n++] = a;
  }
  af_csv_close(r);
  return AF_OK;
fail:
  af_csv_close(r);
  af_assoc_free(out);
  return st;
}
