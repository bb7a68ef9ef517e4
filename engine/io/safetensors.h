/* Reader for the safetensors format (Hugging Face): an 8-byte little-endian
 * header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b, e]}},
 * then the raw little-endian tensor bytes. Nothing is executed or unpickled.
 * Every offset, dtype and shape is validated against the file size. */
#ifndef AF_SAFETENSORS_H
#define AF_SAFETENSORS_H

#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { AF_ST_F32, AF_ST_F16, AF_ST_BF16, AF_ST_F64, AF_ST_I64, AF_ST_I32, AF_ST_OTHER } af_st_dtype;

typedef struct {
  char *name;
  af_st_dtype dtype;
  char dtype_name[16];
  int rank;
  int64_t shape[8];
  int64_t numel;
  uint64_t begin, end; /* byte range within the data section */
} af_st_tensor;

typedef struct {
  char *path;
  int n_tensors;
  af_st_tensor *tensors;
  uint64_t data_start; /* file offset of the data section */
  uint64_t file_size;
} af_safetensors;

af_status af_safetensors_open(const char *path, af_safetensors *out, af_error *err);
void af_safetensors_close(af_safetensors *st);
const af_st_tensor *af_safetensors_find(const af_safetensors *st, const char *name);
/* Reads tensor t into dst as float32 (converting F16/BF16/F64); dst holds t->numel floats. */
af_status af_safetensors_read_f32(const af_safetensors *st, const af_st_tensor *t, float *dst,
                                  af_error *err);

/* Writes float32 tensors as a safetensors file (atomic). names[i] with shape
 * shapes[i][0..ranks[i]) and data[i]. metadata_format may be NULL ("pt"). */
af_status af_safetensors_write_f32(const char *path, int n, const char *const *names,
                                   const int *ranks, const int64_t (*shapes)[8],
                                   const float *const *data, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
