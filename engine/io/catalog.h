/* Product catalog: one row per product, loaded from a CSV with a header.
 *
 * Ids are trimmed and their inner whitespace collapsed (af_normalize_ws: the
 * one id rule of docs/data-formats.md, also applied by embed and baskets); so
 * are text and category fields. A duplicate id is an error naming both lines;
 * an empty id, a row with the wrong number of fields, invalid UTF-8 and a
 * missing column are errors naming file and line (or column). */
#ifndef AF_CATALOG_H
#define AF_CATALOG_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct af_strmap;

typedef struct af_catalog {
  int64_t n;
  char **ids;        /* (n) */
  char **texts;      /* (n) the text columns joined with one space */
  char **categories; /* (n) or NULL when no category column */
  char **names;      /* (n) display name: the first text column */
  int64_t *counts;   /* (n) the count column (a run folder's products.csv "baskets"), or NULL */
  struct af_strmap *index; /* id -> row */
} af_catalog;

typedef struct {
  const char *id_column;
  const char *const *text_columns;
  int n_text_columns;
  const char *category_column; /* may be NULL */
  char delimiter;              /* 0 means ',' */
  const char *count_column;    /* may be NULL: a column of non-negative integers (counts) */
} af_catalog_options;

af_status af_catalog_load(const char *path, const af_catalog_options *opt, af_catalog *out,
                          af_error *err);
int64_t af_catalog_find(const af_catalog *c, const char *id); /* -1 if absent */
void af_catalog_free(af_catalog *c);

#ifdef __cplusplus
}
#endif
#endif
