/* Shared by the libFuzzer targets (tests/fuzz/README.md): the parsers read
 * files, so each input is written to a per-process temporary file first. */
#ifndef AF_FUZZ_UTIL_H
#define AF_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"

/* /tmp/af-fuzz-<pid>-<tag>; written whole with data[0, n). */
static inline const char *fuzz_write(const char *tag, const uint8_t *data, size_t n) {
  static char path[256];
  snprintf(path, sizeof path, "/tmp/af-fuzz-%ld-%s", (long)getpid(), tag);
  FILE *f = fopen(path, "wb");
  if (!f)
    abort();
  if (n && fwrite(data, 1, n, f) != n)
    abort();
  fclose(f);
  return path;
}

/* The first call silences HDF5 (its error stack printing) and drops its exit handler. */
static inline void fuzz_init_hdf5(void) {
  static int done;
  if (!done) {
    af_h5_quiet();
    done = 1;
  }
}

#endif
