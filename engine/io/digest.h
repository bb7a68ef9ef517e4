/* The digest gate: every HDF5 file affinity writes (checkpoints, embeddings,
 * neighbours) starts with a 512-byte HDF5 user block holding a digest of the
 * whole file, checked by our own code before libhdf5 parses a byte of it
 * (HDF5, h5py and h5dump skip a user block). docs/checkpoint-format.md.
 *
 * User block (AF_DIGEST_BLOCK bytes, the HDF5 superblock follows):
 *   "\x89AFDGST\n"                                      8-byte magic
 *   "affinity-digest 1 xxh64 <16 hex> bytes <decimal>\n"  the digest line
 *   zero bytes up to 512
 * The digest is XXH64 (seed 0) of the file from byte 512 to its end; bytes is
 * that length. A reader rebuilds the block from the parsed line and compares
 * all 512 bytes, so a flip anywhere in the file is caught. It detects
 * corruption (disk, truncation, transfer, edits), not forgery: anyone can
 * recompute an unkeyed digest.
 *
 * Files without a digest (the HDF5 signature at byte 0: written by h5py or
 * another tool) pass the gate unchecked and are trusted input. */
#ifndef AF_DIGEST_H
#define AF_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_DIGEST_BLOCK 512

typedef enum {
  AF_DIGEST_NONE = 0, /* no digest: a file from another tool (or not HDF5 at all) */
  AF_DIGEST_OK = 1    /* a digest, and the content matches it */
} af_digest_state;

/* Computes the digest of path's bytes [512, end) and writes the user block.
 * The file must have been created with a 512-byte user block (af_h5_create). */
af_status af_digest_seal(const char *path, af_error *err);

/* Verifies path before it is opened: *state says whether it had a digest. A
 * mismatch, a damaged digest line, a wrong length or a user block that is not
 * ours is an AF_ERR_FORMAT error naming the file. */
af_status af_digest_check(const char *path, af_digest_state *state, af_error *err);

/* The same on a file already in memory (fuzzing, tests). */
af_status af_digest_check_buffer(const unsigned char *buf, size_t n, const char *source,
                                 af_digest_state *state, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
