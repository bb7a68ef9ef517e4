/* Purchase baskets in CSR form, loaded from a CSV.
 *
 * Two input formats:
 *  - "long": a header row, then one row per (order, item): order_column and
 *    item_column name the columns (defaults "order_id", "product_id"). Rows
 *    of one order need not be adjacent.
 *  - "lines": no header; each line is one basket, its fields the items
 *    (Groceries). Empty fields (a trailing comma) are ignored.
 * Preprocessing: ids and items are trimmed and inner whitespace collapsed;
 * an item counts once per basket; exact duplicate rows are dropped; rows with
 * an empty order or item and baskets with no items are dropped; all drops are
 * counted in af_baskets_report. Invalid UTF-8, a wrong field count, and (with
 * a catalog) an unknown item id are errors naming file and line. Baskets keep
 * their order of first appearance. Time and memory are linear in the input. */
#ifndef AF_BASKETS_H
#define AF_BASKETS_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct af_catalog;

typedef struct {
  int64_t n_baskets;
  int32_t n_items;
  int64_t *offsets;  /* (n_baskets + 1) */
  int32_t *items;    /* (offsets[n_baskets]) dense item indices, each basket sorted ascending, unique */
  char **item_ids;   /* (n_items) external ids as strings (product ids, or names for lines format) */
  char **basket_ids; /* (n_baskets) order ids (lines format: "line N") */
} af_baskets;

typedef struct {
  const char *format;       /* "long" (default when NULL) | "lines" */
  const char *order_column; /* long format; NULL means "order_id" */
  const char *item_column;  /* long format; NULL means "product_id" */
  char delimiter;           /* 0 means ',' */
  int drop_unknown_items;   /* with a catalog: 0 = unknown id is an error, 1 = drop and count */
} af_baskets_options;

typedef struct {
  int64_t rows_read;                /* data rows (long) or lines (lines format) read */
  int64_t rows_kept;                /* rows (long) / lines (lines) that contributed to a basket */
  int64_t dropped_duplicate;        /* long: a row identical to an earlier row */
  int64_t dropped_empty;            /* empty order/item (long) or empty line (lines) */
  int64_t dropped_unknown_item;     /* with drop_unknown_items */
  int64_t items_repeated_in_basket; /* an item repeated in a basket (not an exact duplicate row) */
} af_baskets_report;

/* If catalog != NULL, item index == catalog row and n_items == catalog->n;
 * otherwise items get dense indices in order of first appearance.
 * report may be NULL. */
af_status af_baskets_load(const char *path, const af_baskets_options *opt,
                          const struct af_catalog *catalog, af_baskets *out,
                          af_baskets_report *report, af_error *err);
void af_baskets_free(af_baskets *b);

/* Builds baskets from memory (tests, tools): basket b holds items[offsets[b]..offsets[b+1]),
 * any order, repeats allowed (removed). Item ids become "0", "1", ... */
af_status af_baskets_from_arrays(int64_t n_baskets, int32_t n_items, const int64_t *offsets,
                                 const int32_t *items, af_baskets *out, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
