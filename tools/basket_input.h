/* Shared by the rules, cooccur and itemcf commands: the flags that name a
 * baskets file (and optionally a catalog), loading them, and printing the
 * cleaning report to stderr. */
#ifndef AF_BASKET_INPUT_H
#define AF_BASKET_INPUT_H

#include <stdio.h>

#include "affinity.h"
#include "cli.h"

#define AF_BASKET_INPUT_FLAGS                                                                   \
  {"baskets", "FILE", "baskets CSV (required)"},                                               \
      {"baskets-format", "FMT", "long (one row per order line, default) or lines (one basket a line)"}, \
      {"order-column", "NAME", "long format: order id column (default order_id)"},             \
      {"item-column", "NAME", "long format: item id column (default product_id)"},             \
      {"catalog", "FILE", "catalog CSV: item ids must be its ids; names come from it"},        \
      {"id-column", "NAME", "catalog id column (default product_id)"},                         \
      {"text-column", "NAME", "catalog name column (default product_name)"},                   \
      {"drop-unknown", NULL, "drop (and count) basket items missing from the catalog instead of failing"}

typedef struct {
  int has_catalog;
  af_catalog catalog;
  af_baskets baskets;
  af_baskets_report report;
} af_basket_input;

af_status af_basket_input_load(const af_args *a, af_basket_input *in, af_error *err);
void af_basket_input_print_report(const char *cmd, const af_basket_input *in, FILE *f);
/* Display name of an item: the catalog name, else its id. */
const char *af_basket_input_name(const af_basket_input *in, int32_t item);
/* The item labels for the association writers: ids, and names with a catalog. */
af_item_labels af_basket_input_labels(const af_basket_input *in);
void af_basket_input_free(af_basket_input *in);

#endif
