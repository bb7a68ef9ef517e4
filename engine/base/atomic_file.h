/* Whole-or-nothing output files: write to "<final>.tmp.<pid>" in the same
 * folder, then rename over the final path. A failed run leaves no file behind
 * and never truncates an existing one. */
#ifndef AF_ATOMIC_FILE_H
#define AF_ATOMIC_FILE_H

#include <stdio.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_PATH_MAX 4096

/* Writes the temporary path for final_path into tmp (AF_PATH_MAX bytes). */
af_status af_tmp_path(const char *final_path, char *tmp, af_error *err);

/* fsyncs (when possible) and renames tmp over final_path. On failure removes tmp. */
af_status af_commit_file(const char *tmp, const char *final_path, af_error *err);

/* Removes tmp, ignoring errors (for cleanup paths). */
void af_discard_file(const char *tmp);

/* For stdio writers: opens the temporary file for final_path into *out
 * (tmp receives its path, AF_PATH_MAX bytes). */
af_status af_atomic_open(const char *final_path, char *tmp, FILE **out, af_error *err);

/* Gives up a file from af_atomic_open: closes it and removes tmp. */
void af_atomic_abort(FILE *f, const char *tmp);

/* Closes f (checking for write errors) and commits tmp to final_path.
 * On any failure the temporary file is removed. */
af_status af_atomic_fclose(FILE *f, const char *tmp, const char *final_path, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
