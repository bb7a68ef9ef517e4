/* Product catalog loading (see catalog.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "base/strmap.h"

typedef struct {
  char **v;
  int64_t n, cap;
} strvec;

static af_status strvec_push(strvec *s, char *x, af_error *err) {
  if (s->n == s->cap) {
    int64_t cap = s->cap ? s->cap * 2 : 1024;
    char **p = af_realloc(s->v, (size_t)cap, sizeof *p, err);
    if (!p)
      return AF_ERR_NOMEM;
    s->v = p;
    s->cap = cap;
  }
  s->v[s->n++] = x;
  return AF_OK;
}

static void strvec_free(strvec *s) {
  for (int64_t i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
}

static char *dup_norm(const char *s, af_error *err) {
  char *d = strdup(s);
  if (!d) {
    af_error_set(err, AF_ERR_NOMEM, "out of memory");
    return NULL;
  }
  af_normalize_ws(d);
  return d;
}

void af_catalog_free(af_catalog *c) {
  if (!c)
    return;
  for (int64_t i = 0; i < c->n; i++) {
    if (c->ids)
      free(c->ids[i]);
    if (c->texts)
      free(c->texts[i]);
    if (c->categories)
      free(c->categories[i]);
    if (c->names)
      free(c->names[i]);
  }
  free(c->ids);
  free(c->texts);
  free(c->categories);
  free(c->names);
  free(c->counts);
  af_strmap_free(c->index);
  memset(c, 0, sizeof *c);
}

af_status af_catalog_load(const char *path, const af_catalog_options *opt, af_catalog *out,
                          af_error *err) {
  memset(out, 0, sizeof *out);
  if (!opt || !opt->id_column || opt->n_text_columns < 1 || !opt->text_columns)
    return af_error_set(err, AF_ERR_ARG, "%s: catalog needs an id column and a text column", path);
  af_csv *r = NULL;
  AF_TRY(af_csv_open(path, opt->delimiter ? opt->delimiter : ',', &r, err));
  af_status st = AF_OK;
  strvec ids = {0}, texts = {0}, cats = {0}, names = {0};
  int64_t *lines = NULL, lines_cap = 0;
  int64_t *counts = NULL; /* (lines_cap) when a count column is read */
  int *text_idx = NULL;
  af_strmap *index = NULL;
  char **f;
  int nf, eof, n_header;
  if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
    goto fail;
  if (eof) {
    st = af_error_set(err, AF_ERR_FORMAT, "%s: empty file (expected a header row)", path);
    goto fail;
  }
  n_header = nf;
  int id_idx, cat_idx = -1, count_idx = -1;
  text_idx = af_malloc((size_t)opt->n_text_columns, sizeof *text_idx, err);
  if (!text_idx) {
    st = AF_ERR_NOMEM;
    goto fail;
  }
  for (int i = 0; i < nf; i++)
    af_normalize_ws(f[i]);
  if ((st = af_csv_column(f, nf, opt->id_column, path, &id_idx, err)) != AF_OK)
    goto fail;
  for (int t = 0; t < opt->n_text_columns; t++)
    if ((st = af_csv_column(f, nf, opt->text_columns[t], path, &text_idx[t], err)) != AF_OK)
      goto fail;
  if (opt->category_column &&
      (st = af_csv_column(f, nf, opt->category_column, path, &cat_idx, err)) != AF_OK)
    goto fail;
  if (opt->count_column &&
      (st = af_csv_column(f, nf, opt->count_column, path, &count_idx, err)) != AF_OK)
    goto fail;
  if ((st = af_strmap_create(1024, &index, err)) != AF_OK)
    goto fail;
  for (;;) {
    if ((st = af_csv_next(r, &f, &nf, &eof, err)) != AF_OK)
      goto fail;
    if (eof)
      break;
    int64_t line = af_csv_record_line(r);
    if (nf == 1 && f[0][0] == '\0')
      continue; /* blank line */
    if (nf != n_header) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: expected %d fields (as in the header), found %d",
                        path, (long long)line, n_header, nf);
      goto fail;
    }
    size_t id_len = af_normalize_ws(f[id_idx]);
    if (id_len == 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: empty id in column '%s'", path,
                        (long long)line, opt->id_column);
      goto fail;
    }
    int64_t existing;
    if ((st = af_strmap_put(index, f[id_idx], id_len, ids.n, &existing, NULL, err)) != AF_OK)
      goto fail;
    if (existing >= 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: duplicate id '%s' (first on line %lld)", path,
                        (long long)line, f[id_idx], (long long)lines[existing]);
      goto fail;
    }
    if (ids.n == lines_cap) {
      lines_cap = lines_cap ? lines_cap * 2 : 1024;
      int64_t *p = af_realloc(lines, (size_t)lines_cap, sizeof *p, err);
      if (!p) {
        st = AF_ERR_NOMEM;
        goto fail;
      }
      lines = p;
      if (count_idx >= 0) {
        int64_t *q = af_realloc(counts, (size_t)lines_cap, sizeof *q, err);
        if (!q) {
          st = AF_ERR_NOMEM;
          goto fail;
        }
        counts = q;
      }
    }
    lines[ids.n] = line;
    if (count_idx >= 0) {
      const char *cs = f[count_idx];
      char *end;
      errno = 0;
      long long cv = strtoll(cs, &end, 10);
      if (!cs[0] || *end || errno || cv < 0) {
        st = af_error_set(err, AF_ERR_FORMAT, "%s:%lld: field %s: '%s' is not a count", path,
                          (long long)line, opt->count_column, cs);
        goto fail;
      }
      counts[ids.n] = cv;
    }
    /* Join the text columns with one space, skipping empty ones. */
    size_t total = 1;
    for (int t = 0; t < opt->n_text_columns; t++)
      total += af_normalize_ws(f[text_idx[t]]) + 1;
    char *text = af_malloc(total, 1, err);
    char *name = dup_norm(f[text_idx[0]], err);
    char *id = strdup(f[id_idx]);
    char *cat = cat_idx >= 0 ? dup_norm(f[cat_idx], err) : NULL;
    if (!text || !name || !id || (cat_idx >= 0 && !cat)) {
      free(text), free(name), free(id), free(cat);
      st = af_error_set(err, AF_ERR_NOMEM, "%s:%lld: out of memory", path, (long long)line);
      goto fail;
    }
    size_t w = 0;
    for (int t = 0; t < opt->n_text_columns; t++) {
      const char *s = f[text_idx[t]];
      if (!*s)
        continue;
      if (w)
        text[w++] = ' ';
      size_t l = strlen(s);
      memcpy(text + w, s, l);
      w += l;
    }
    text[w] = '\0';
    if ((st = strvec_push(&ids, id, err)) != AF_OK) {
      free(text), free(name), free(id), free(cat);
      goto fail;
    }
    if ((st = strvec_push(&texts, text, err)) != AF_OK) {
      free(name), free(cat), free(text);
      goto fail;
    }
    if ((st = strvec_push(&names, name, err)) != AF_OK) {
      free(cat);
      free(name);
      goto fail;
    }
    if (cat_idx >= 0 && (st = strvec_push(&cats, cat, err)) != AF_OK) {
      free(cat);
      goto fail;
    }
  }
  if (ids.n == 0) {
    st = af_error_set(err, AF_ERR_FORMAT, "%s: no rows after the header", path);
    goto fail;
  }
  af_csv_close(r);
  free(lines);
  free(text_idx);
  out->n = ids.n;
  out->ids = ids.v;
  out->texts = texts.v;
  out->names = names.v;
  out->categories = cat_idx >= 0 ? cats.v : NULL;
  out->counts = counts;
  out->index = index;
  return AF_OK;
fail:
  af_csv_close(r);
  free(lines);
  free(counts);
  free(text_idx);
  strvec_free(&ids);
  strvec_free(&texts);
  strvec_free(&cats);
  strvec_free(&names);
  af_strmap_free(index);
  return st;
}

int64_t af_catalog_find(const af_catalog *c, const char *id) {
  if (!c || !c->index || !id)
    return -1;
  return af_strmap_get(c->index, id, strlen(id));
}
