/* The files of a run folder (docs/report.md) that more than one layer reads:
 * products.csv (the cleaned catalog with its basket counts), associations.csv,
 * run.json / eval.json, and the helpers every run-folder reader and writer
 * shares (paths, the FNV-1a content hash of the stage keys).
 * The pipeline (engine/pipeline) writes these files; report, recommend and
 * groups read them through this header, never through the pipeline's. */
#ifndef AF_RUN_FILES_H
#define AF_RUN_FILES_H

#include <cJSON.h>
#include <stdint.h>

#include "base/error.h"
#include "io/catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 64-bit FNV-1a over a file's bytes, continuing from h. */
af_status af_run_hash_file(const char *path, uint64_t *h, af_error *err);
uint64_t af_run_hash_bytes(uint64_t h, const void *data, size_t n);
#define AF_RUN_HASH_SEED 0xcbf29ce484222325ULL

/* Joins dir and name into out (AF_PATH_MAX bytes). */
af_status af_run_path(const char *dir, const char *name, char *out, af_error *err);

/* DIR/products.csv (product_id,product,category,baskets) as a catalog:
 * names = texts = the product column, categories = the category column ("" when
 * the run had none), counts = the baskets column. A missing file says the run
 * folder is incomplete. */
af_status af_run_products_read(const char *run_dir, af_catalog *p, af_error *err);

/* One row of associations.csv: product_id,product,related_id,related,type,score,count,lift,cosine */
typedef struct {
  int64_t a, b; /* rows of the run's products */
  int substitute; /* 0: complement, 1: substitute */
  double score, lift, cosine;
  int64_t count;
} af_assoc;

typedef struct {
  int64_t n;
  af_assoc *rows; /* (n) in file order */
} af_assoc_list;

/* Reads DIR/associations.csv; every id must be in products. Errors name file and line. */
af_status af_assoc_read(const char *run_dir, const af_catalog *p, af_assoc_list *out,
                        af_error *err);
void af_assoc_free(af_assoc_list *l);

/* Reads a whole JSON file (run.json, eval.json); a missing file gives
 * *out = NULL and AF_OK when missing_ok; an unparsable one is an error naming
 * the file and line. */
af_status af_run_json_read(const char *path, int missing_ok, cJSON **out, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
