/* The run folder's shared files (run_files.h): hashing, paths, products.csv,
 * associations.csv and JSON readers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "io/csv.h"
#include "io/run_files.h"
#include "base/strmap.h"

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

af_status af_run_products_read(const char *run_dir, af_catalog *p, af_error *err) {
  memset(p, 0, sizeof *p);
  char path[AF_PATH_MAX];
  AF_TRY(af_run_path(run_dir, "products.csv", path, err));
  static const char *const TEXT[1] = {"product"};
  af_catalog_options o = {.id_column = "product_id",
                          .text_columns = TEXT,
                          .n_text_columns = 1,
                          .category_column = "category",
                          .count_column = "baskets"};
  FILE *probe = fopen(path, "rb");
  if (!probe)
    return af_error_set(err, AF_ERR_IO,
                        "run folder %s is incomplete (run `affinity run` first): %s: cannot open: %s",
                        run_dir, path, strerror(errno));
  fclose(probe);
  return af_catalog_load(path, &o, p, err);
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

af_status af_assoc_read(const char *run_dir, const af_catalog *p, af_assoc_list *out,
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
    a.a = af_catalog_find(p, f[col[0]]);
    a.b = af_catalog_find(p, f[col[1]]);
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
    if (isfinite(cnt) && !(cnt >= 0 && cnt < 9.2e18)) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: field count: '%s' is out of range", path,
                        (long long)line, f[col[4]]);
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

/* ---- run.json, eval.json --------------------------------------------------------- */

/* Reads a JSON file; a missing file gives *out = NULL and AF_OK when
 * missing_ok, and an unparsable one is an error naming the file. */
af_status af_run_json_read(const char *path, int missing_ok, cJSON **out, af_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (missing_ok && errno == ENOENT)
      return AF_OK;
    return af_error_set(err, AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  }
  size_t cap = 1 << 14, n = 0;
  char *buf = af_malloc(cap, 1, err);
  if (!buf) {
    fclose(f);
    return AF_ERR_NOMEM;
  }
  size_t k;
  while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += k;
    if (n + 1 == cap) {
      char *nb = af_realloc(buf, cap * 2, 1, err);
      if (!nb) {
        free(buf);
        fclose(f);
        return AF_ERR_NOMEM;
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  buf[n] = '\0';
  const char *end = NULL;
  *out = cJSON_ParseWithOpts(buf, &end, 1);
  if (!*out) {
    size_t off = end ? (size_t)(end - buf) : 0;
    int line = 1;
    for (size_t i = 0; i < off && i < n; i++)
      line += buf[i] == '\n';
    free(buf);
    return af_error_set(err, AF_ERR_FORMAT, "%s:%d: malformed JSON", path, line);
  }
  free(buf);
  return AF_OK;
}
