/* CSV reader (engine/io/csv.h): every record of an arbitrary file. */
#include "fuzz_util.h"
#include "io/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  const char *path = fuzz_write("csv", data, n);
  for (int d = 0; d < 2; d++) {
    af_csv *r = NULL;
    af_error err = {0};
    if (af_csv_open(path, d ? '\t' : ',', &r, &err) != AF_OK)
      continue;
    for (int rec = 0; rec < 100000; rec++) {
      char **fields;
      int nf, eof = 0;
      if (af_csv_next(r, &fields, &nf, &eof, &err) != AF_OK || eof)
        break;
      for (int i = 0; i < nf; i++) /* touch every field */
        if (fields[i][0] == '\x01')
          (void)af_utf8_valid(fields[i], strlen(fields[i]));
    }
    af_csv_close(r);
  }
  return 0;
}
