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

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads a whole JSON file (run.json, eval.json); a missing file gives
 * *out = NULL and AF_OK when missing_ok; an unparsable one is an error naming
 * the file and line. */
af_status af_run_json_read(const char *path, int missing_ok, cJSON **out, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
