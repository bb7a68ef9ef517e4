/* The digest gate (engine/io/digest.h) in front of our HDF5 readers: an input
 * that claims to be ours (the digest magic) goes through af_embeddings_read,
 * af_neighbors_read and af_model_load, which must reject it before libhdf5
 * sees it unless its digest matches. Inputs without the magic are the
 * documented trusted path (libhdf5 parses them) and are only gate-checked. */
#include "fuzz_util.h"
#include "io/digest.h"
#include "affinity.h"
#include "nn/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_init_hdf5();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  af_digest_state ds;
  af_error err = {0};
  af_status st = af_digest_check_buffer(data, n, "fuzz.h5", &ds, &err);
  if (!(n >= 8 && memcmp(data, "\x89" "AFDGST\n", 8) == 0))
    return 0;
  const char *path = fuzz_write("h5", data, n);
  af_digest_state fs;
  if (af_digest_check(path, &fs, &err) != st)
    abort(); /* the file and buffer checks must agree */
  af_embeddings e;
  if (af_embeddings_read(path, &e, &err) == AF_OK)
    af_embeddings_free(&e);
  af_neighbors nb;
  if (af_neighbors_read(path, &nb, &err) == AF_OK)
    af_neighbors_free(&nb);
  af_model m;
  if (af_model_load(path, &m, &err) == AF_OK)
    af_model_free(&m);
  return 0;
}
