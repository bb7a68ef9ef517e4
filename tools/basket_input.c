/* Baskets (+ catalog) flags for the association commands (see basket_input.h). */
#include "basket_input.h"

#include <string.h>

af_status af_basket_input_load(const af_args *a, af_basket_input *in, af_error *err) {
  memset(in, 0, sizeof *in);
  const char *path;
  AF_TRY(af_arg_required(a, "baskets", &path, err));
  const char *cat = af_arg_str(a, "catalog");
  if (cat) {
    const char *id_col = af_arg_str(a, "id-column");
    const char *text_col = af_arg_str(a, "text-column");
    const char *text_cols[1] = {text_col ? text_col : "product_name"};
    af_catalog_options co = {
        .id_column = id_col ? id_col : "product_id", .text_columns = text_cols, .n_text_columns = 1};
    AF_TRY(af_catalog_load(cat, &co, &in->catalog, err));
    in->has_catalog = 1;
  }
  af_baskets_options bo = {af_arg_str(a, "baskets-format"), af_arg_str(a, "order-column"),
                           af_arg_str(a, "item-column"), ',', af_arg_flag(a, "drop-unknown")};
  af_status st = af_baskets_load(path, &bo, cat ? &in->catalog : NULL, &in->baskets, &in->report, err);
  if (st != AF_OK)
    af_basket_input_free(in);
  return st;
}

void af_basket_input_print_report(const char *cmd, const af_basket_input *in, FILE *f) {
  const af_baskets_report *r = &in->report;
  fprintf(f,
          "affinity %s: %lld baskets, %d items; %lld rows read, %lld kept; dropped: %lld exact "
          "duplicate rows, %lld empty, %lld unknown items; %lld repeated items counted once\n",
          cmd, (long long)in->baskets.n_baskets, in->baskets.n_items, (long long)r->rows_read,
          (long long)r->rows_kept, (long long)r->dropped_duplicate, (long long)r->dropped_empty,
          (long long)r->dropped_unknown_item, (long long)r->items_repeated_in_basket);
}

const char *af_basket_input_name(const af_basket_input *in, int32_t item) {
  if (in->has_catalog)
    return in->catalog.names[item];
  return in->baskets.item_ids[item];
}

af_item_labels af_basket_input_labels(const af_basket_input *in) {
  return (af_item_labels){.ids = (const char *const *)in->baskets.item_ids,
                          .names = in->has_catalog ? (const char *const *)in->catalog.names : NULL};
}

void af_basket_input_free(af_basket_input *in) {
  af_baskets_free(&in->baskets);
  if (in->has_catalog)
    af_catalog_free(&in->catalog);
  memset(in, 0, sizeof *in);
}
