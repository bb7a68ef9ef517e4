/* Shared by the libFuzzer targets (tests/fuzz/README.md). The parsers read
 * files, so each input is written to a per-process file first: on /dev/shm
 * (memory) where it exists, else /tmp. One-time setup (vocabularies,
 * catalogs, fixture folders, HDF5's settings) belongs in
 * LLVMFuzzerInitialize, not in the per-input function. */
#ifndef AF_FUZZ_UTIL_H
#define AF_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/h5util.h"

/* The folder for per-process scratch files: /dev/shm when present. */
static inline const char *fuzz_tmpdir(void) {
  struct stat s;
  return stat("/dev/shm", &s) == 0 && S_ISDIR(s.st_mode) && access("/dev/shm", W_OK) == 0
             ? "/dev/shm"
             : "/tmp";
}

/* <tmpdir>/af-fuzz-<pid>-<tag>; written whole with data[0, n). */
static inline const char *fuzz_write(const char *tag, const uint8_t *data, size_t n) {
  static char path[256];
  snprintf(path, sizeof path, "%s/af-fuzz-%ld-%s", fuzz_tmpdir(), (long)getpid(), tag);
  FILE *f = fopen(path, "wb");
  if (!f)
    abort();
  if (n && fwrite(data, 1, n, f) != n)
    abort();
  fclose(f);
  return path;
}

/* Silences HDF5 (its error stack printing) and drops its exit handler; call
 * once from LLVMFuzzerInitialize. */
static inline void fuzz_init_hdf5(void) { af_h5_quiet(); }

#endif
