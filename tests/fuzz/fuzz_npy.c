/* .npy (engine/io/npy.h): the header parser on the buffer, then the file
 * through af_embeddings_read (magic sniffing, data size, finite values). */
#include "fuzz_util.h"
#include "affinity.h"
#include "io/npy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_init_hdf5();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  af_npy_header h;
  af_error err = {0};
  (void)af_npy_parse_header(data, n, "fuzz.npy", &h, &err);
  if (!af_npy_is_npy(data, n))
    return 0; /* anything else would be an HDF5 file: see fuzz_h5gate */
  const char *path = fuzz_write("npy", data, n);
  af_embeddings e;
  if (af_embeddings_read(path, &e, &err) == AF_OK)
    af_embeddings_free(&e);
  return 0;
}
