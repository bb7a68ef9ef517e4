/* The neighbours file written by `affinity score` (docs/scoring.md), its
 * reader, the merge of shard files, and the driver that scores an embeddings
 * file into a neighbours file while streaming rows to disk.
 *
 * HDF5 layout:
 *   /ids        variable-length UTF-8 strings [N]: every id of the embeddings file
 *   /neighbors  int64 [R, k]: row indices into /ids, best first; -1 = empty slot
 *   /scores     float32 [R, k]: inner products, descending; -inf = empty slot
 *   root attributes: format = "affinity-neighbors", format_version = 1,
 *     k (columns), k_requested, n_total (= N), row0, row_count (= R; the rows
 *     are row0 .. row0+R-1 of /ids), shard ("i/n", 0-based i), min_score
 *     (double, -inf when none), metric = "inner_product", normalized (0/1),
 *     model (string, from the embeddings file). */
#ifndef AF_NBRFILE_H
#define AF_NBRFILE_H

#include <stdint.h>

#include "base/error.h"
#include "comm/comm.h"
#include "search/score.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_NBR_FORMAT "affinity-neighbors"
#define AF_NBR_FORMAT_VERSION 1

typedef struct {
  int64_t n_total;   /* N: entries of ids */
  int k;             /* columns */
  int k_requested;
  int64_t row0;      /* first row covered */
  int64_t row_count; /* R */
  int shard_i, shard_n;
  double min_score;
  int normalized;
  char *model;
  char **ids;        /* (n_total) */
  int64_t *nbr;      /* (row_count, k) */
  float *scr;        /* (row_count, k) */
} af_neighbors;

af_status af_neighbors_read(const char *path, af_neighbors *out, af_error *err);
void af_neighbors_free(af_neighbors *nb);

/* Rows of shard i of n: [i*N/n, (i+1)*N/n). */
void af_shard_rows(int64_t N, int shard_i, int shard_n, int64_t *row0, int64_t *row1);

typedef void (*af_score_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
  int k;             /* requested; the file has min(k, N - 1) columns */
  float min_score;   /* -INFINITY for none */
  int shard_i, shard_n; /* 0 and 1 for the whole file */
  af_score_options score;
  af_score_progress_fn progress; /* may be NULL */
  void *progress_ctx;
} af_score_file_options;

/* Scores every row of shard i of embeddings file emb_path against all rows
 * and writes the neighbours file out_path atomically. Output rows go to the
 * file a chunk at a time, so memory is the embeddings, their packed copy and
 * one chunk of results. */
af_status af_score_file(const char *emb_path, const char *out_path,
                        const af_score_file_options *opt, af_error *err);

/* Merges shard files covering rows [0, N) exactly once into one file equal to
 * the unsharded run's. Inputs may come in any order. */
af_status af_neighbors_merge(const char *const *inputs, int n_inputs, const char *out_path,
                             af_error *err);

/* af_score_file over the ranks of comm (mpirun -np R affinity score): rank r
 * scores shard r of R into <out_path>.rank<r>-of-<R>.h5, every rank waits for
 * the slowest, rank 0 merges the shards into out_path (equal to the
 * single-process file) and every rank removes its shard. The output folder
 * must be one the ranks share. opt->shard_n must be 1. One rank: af_score_file. */
af_status af_score_file_ranks(af_comm *comm, const char *emb_path, const char *out_path,
                              const af_score_file_options *opt, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
