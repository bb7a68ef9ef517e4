/* safetensors (engine/io/safetensors.h): header JSON, dtypes, shapes, offsets,
 * then every tensor read as float32. */
#include "fuzz_util.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  const char *path = fuzz_write("st", data, n);
  af_safetensors st;
  af_error err = {0};
  if (af_safetensors_open(path, &st, &err) != AF_OK)
    return 0;
  for (int i = 0; i < st.n_tensors; i++) {
    const af_st_tensor *t = &st.tensors[i];
    if (t->numel > (1 << 20))
      continue;
    float *dst = malloc((size_t)t->numel * sizeof *dst + 1);
    if (dst && af_safetensors_read_f32(&st, t, dst, &err) == AF_OK && t->numel)
      (void)dst[0];
    free(dst);
  }
  af_safetensors_close(&st);
  return 0;
}
