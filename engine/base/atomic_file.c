/* Whole-or-nothing output files (see atomic_file.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

af_status af_tmp_path(const char *final_path, char *tmp, af_error *err) {
  int n = snprintf(tmp, AF_PATH_MAX, "%s.tmp.%ld", final_path, (long)getpid());
  if (n < 0 || n >= AF_PATH_MAX)
    return af_error_set(err, AF_ERR_ARG, "%s: path too long", final_path);
  return AF_OK;
}

af_status af_commit_file(const char *tmp, const char *final_path, af_error *err) {
  int fd = open(tmp, O_RDONLY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  if (rename(tmp, final_path) != 0) {
    int e = errno;
    remove(tmp);
    return af_error_set(err, AF_ERR_IO, "%s: cannot rename %s into place: %s", final_path, tmp,
                        strerror(e));
  }
  return AF_OK;
}

void af_discard_file(const char *tmp) {
  if (tmp && tmp[0])
    remove(tmp);
}

af_status af_atomic_open(const char *final_path, char *tmp, FILE **out, af_error *err) {
  *out = NULL;
  AF_TRY(af_tmp_path(final_path, tmp, err));
  *out = fopen(tmp, "wb");
  if (!*out)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create: %s", final_path, strerror(errno));
  return AF_OK;
}

void af_atomic_abort(FILE *f, const char *tmp) {
  if (f)
    fclose(f);
  af_discard_file(tmp);
}

af_status af_atomic_fclose(FILE *f, const char *tmp, const char *final_path, af_error *err) {
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    remove(tmp);
    return af_error_set(err, AF_ERR_IO, "%s: write failed", final_path);
  }
  return af_commit_file(tmp, final_path, err);
}
