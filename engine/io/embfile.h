/* The embeddings file: one vector per catalog row, written by `affinity embed`
 * and read by `affinity score`, fusion and evaluation.
 *
 * Also read: an HDF5 file from another tool with only /embeddings (float32 or
 * float16) and optionally /ids (strings or integers), and a .npy matrix.
 *
 * HDF5 layout (docs/embeddings-format.md):
 *   /ids         variable-length UTF-8 strings [N]
 *   /embeddings  float32 [N, d]
 *   root attributes: format = "affinity-embeddings", format_version = 1,
 *                    model (string), pooling (string), normalized (int 0/1), dim (int = d)
 * Every value in /embeddings must be finite. */
#ifndef AF_EMBFILE_H
#define AF_EMBFILE_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_EMB_FORMAT "affinity-embeddings"
#define AF_EMB_FORMAT_VERSION 1

typedef struct {
  int64_t n;      /* rows */
  int d;          /* dimension */
  char **ids;     /* (n) */
  float *emb;     /* (n, d) */
  char *model;
  char *pooling;
  int normalized; /* 1 when every row has unit L2 norm (inner product = cosine) */
} af_embeddings;

/* Reads and validates a whole file. Errors name the file and the dataset or
 * attribute at fault. On failure *out is left empty (safe to free). */
af_status af_embeddings_read(const char *path, af_embeddings *out, af_error *err);
void af_embeddings_free(af_embeddings *e);

/* af_embeddings_read for a catalog of n rows with these ids: a file without
 * ids (a .npy, or an HDF5 file with only /embeddings) reads row i as catalog
 * row i and takes copies of the catalog's ids, and a row count that differs
 * from the catalog's is an error naming both files. A file with ids reads as
 * af_embeddings_read does (its ids are matched by the caller). Without ids,
 * af_embeddings_read gives the 0-based row numbers "0", "1", ... as ids. */
af_status af_embeddings_read_catalog(const char *path, const char *const *ids, int64_t n,
                                     const char *catalog_path, af_embeddings *out,
                                     af_error *err);

/* Writes e atomically (temporary file + rename). */
af_status af_embeddings_write(const char *path, const af_embeddings *e, af_error *err);

/* Streaming writer: `embed` hands rows over batch by batch and never needs the
 * whole matrix. Everything goes to "<path>.tmp.<pid>"; commit renames it into
 * place only when every row and every id has been written; abort deletes it. */
typedef struct af_emb_writer af_emb_writer;

/* Creates the temporary file with /embeddings [n, d] and /ids [n] allocated. */
af_status af_emb_writer_open(const char *path, int64_t n, int d, const char *model,
                             const char *pooling, int normalized, af_emb_writer **out,
                             af_error *err);
/* Writes rows [row0, row0 + nrows): rows (nrows, d). Rejects non-finite values. */
af_status af_emb_writer_rows(af_emb_writer *w, int64_t row0, int64_t nrows, const float *rows,
                             af_error *err);
/* Writes all n ids at once. */
af_status af_emb_writer_ids(af_emb_writer *w, const char *const *ids, int64_t n, af_error *err);
/* Writes ids of rows [row0, row0 + n) (for a streamed catalog). */
af_status af_emb_writer_id_rows(af_emb_writer *w, int64_t row0, int64_t n,
                                const char *const *ids, af_error *err);
/* Checks that every row and id was written, closes and renames; frees w
 * (also on failure, after deleting the temporary file). */
af_status af_emb_writer_commit(af_emb_writer *w, af_error *err);
/* Closes and deletes the temporary file; frees w. NULL is a no-op. */
void af_emb_writer_abort(af_emb_writer *w);

#ifdef __cplusplus
}
#endif
#endif
