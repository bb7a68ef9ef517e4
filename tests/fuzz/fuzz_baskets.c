/* Baskets (engine/io/baskets.h): long and lines formats, without and with a
 * catalog (tests/fuzz/corpus/catalog.csv). */
#include "fuzz_util.h"
#include "affinity.h"

static af_catalog cat; /* loaded once (LLVMFuzzerInitialize) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static const char *text[] = {"product_name"};
  af_catalog_options co = {.id_column = "product_id", .text_columns = text, .n_text_columns = 1};
  af_error e = {0};
  if (af_catalog_load(AF_SOURCE_DIR "/tests/fuzz/catalog.csv", &co, &cat, &e) != AF_OK) {
    fprintf(stderr, "fuzz_baskets: %s\n", e.msg);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  const char *path = fuzz_write("baskets", data, n);
  for (int mode = 0; mode < 4; mode++) {
    af_baskets_options o = {.format = mode & 1 ? "lines" : "long", .drop_unknown_items = mode >> 1};
    af_baskets b = {0};
    af_baskets_report rep;
    af_error err = {0};
    if (af_baskets_load(path, &o, mode >= 2 ? &cat : NULL, &b, &rep, &err) == AF_OK)
      af_baskets_free(&b);
  }
  return 0;
}
