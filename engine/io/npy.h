/* NumPy .npy matrices (numpy.save of a float32 or float16 [N, d] array), read
 * by our own parser: embeddings from other tools (docs/embeddings-format.md).
 *
 * Accepted: magic "\x93NUMPY", version 1.x, 2.x or 3.x, a header dict with
 * 'descr' '<f4' or '<f2' (also '=f4'/'=f2' on this little-endian build),
 * 'fortran_order': False and 'shape': (N, d) with d >= 1; the data section
 * holds exactly N * d elements. Anything else is an error naming the file and
 * the field. Never executes or unpickles anything (object arrays are refused). */
#ifndef AF_NPY_H
#define AF_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_NPY_MAGIC "\x93NUMPY"
#define AF_NPY_MAX_DIM (1 << 20)

typedef struct {
  int elem_size;      /* 4 (float32) or 2 (float16) */
  int64_t rows, cols; /* shape (rows, cols) */
  size_t data_offset; /* bytes before the data section */
} af_npy_header;

/* Parses the header in buf[0, len) (len = the whole file's size when known,
 * so the data section's size is checked too). `source` names the file in
 * errors. */
af_status af_npy_parse_header(const unsigned char *buf, size_t len, const char *source,
                              af_npy_header *h, af_error *err);

/* Reads a whole .npy file: *data (rows, cols) float32, malloc'd. */
af_status af_npy_read_f32(const char *path, float **data, int64_t *rows, int *cols,
                          af_error *err);

/* 1 when the first bytes of a file are the .npy magic. */
int af_npy_is_npy(const unsigned char *head, size_t n);

/* IEEE half -> float (exact). */
float af_half_to_float(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
