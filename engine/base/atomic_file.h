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

/* Writes the temporary path for final_path into tmp (AF_PATH_MAX bytes), and
 * removes the temporaries of final_path left by dead processes (a killed
 * earlier run), as af_clean_stale_tmp does for a whole folder. */
af_status af_tmp_path(const char *final_path, char *tmp, af_error *err);

/* fsyncs (when possible) and renames tmp over final_path. On failure removes tmp. */
af_status af_commit_file(const char *tmp, const char *final_path, af_error *err);

/* Removes tmp, ignoring errors (for cleanup paths). */
void af_discard_file(const char *tmp);

/* Convenience for stdio writers: opens the temporary file for final_path. */
FILE *af_atomic_fopen(const char *final_path, char *tmp, af_error *err);

/* Closes f (checking for write errors) and commits tmp to final_path.
 * On any failure the temporary file is removed. */
af_status af_atomic_fclose(FILE *f, const char *tmp, const char *final_path, af_error *err);

/* Removes the temporary files of dead processes in folder dir: regular files
 * named "<name>.tmp.<pid>" whose pid is not this process and no longer exists
 * (kill(pid, 0) fails with ESRCH). A pid that exists - even if reused by an
 * unrelated process - keeps its file. *removed (may be NULL) gets the count.
 * A folder shared by machines writing into it at the same time is not
 * supported (a pid there is another machine's). */
af_status af_clean_stale_tmp(const char *dir, int *removed, af_error *err);

/* Parses "<name>.tmp.<pid>" (name non-empty, pid all digits); 0 when the
 * file name has another form. */
long af_tmp_name_pid(const char *name);

#ifdef __cplusplus
}
#endif
#endif
