/* Catalog (engine/io/catalog.h) with text, category and count columns. */
#include "fuzz_util.h"
#include "affinity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  const char *path = fuzz_write("catalog", data, n);
  static const char *text[] = {"product_name", "aisle"};
  af_catalog_options opts[] = {
      {.id_column = "product_id", .text_columns = text, .n_text_columns = 1},
      {.id_column = "product_id", .text_columns = text, .n_text_columns = 2,
       .category_column = "department"},
      {.id_column = "product_id", .text_columns = text, .n_text_columns = 1,
       .count_column = "baskets"},
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    af_catalog c = {0};
    af_error err = {0};
    if (af_catalog_load(path, &opts[i], &c, &err) == AF_OK) {
      if (c.n)
        (void)af_catalog_find(&c, c.ids[c.n - 1]);
      af_catalog_free(&c);
    }
  }
  return 0;
}
