/* All-pairs top-k by inner product on the CPU (docs/scoring.md).
 *
 * For each query row q the k base rows with the largest inner product q . x,
 * best first, ties to the lower base index, entries below min_score dropped
 * (slots left over hold index -1 and score -inf). For L2-normalized
 * embeddings the inner product is the cosine similarity.
 *
 * Scores are computed by our own blocked kernel (8 x 32 register tiles over
 * a packed copy of the base; AVX-512 where the build has it, else portable C)
 * in which every score is the same float32 fused multiply-add chain over
 * the d components in order 0..d-1. A score therefore has the same bits
 * whatever the thread count, block sizes, shard or query batch, and the
 * result of a query never depends on how the work was split.
 * Memory: the packed base, about N x d floats, plus per thread a heap of k
 * entries per row of its current block; never N x N. */
#ifndef AF_SCORE_H
#define AF_SCORE_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AF_SCORE_MAX_K 2048

typedef struct {
  int threads;        /* OpenMP threads; 0 = the OpenMP default */
  int64_t block_rows; /* query rows per parallel task; 0 = default (256) */
  int64_t block_cols; /* base columns kept hot per pass; 0 = default (512) */
  int asymmetric;     /* 1: all-pairs never takes the symmetric path (tests, benchmarks) */
} af_score_options;

/* A base matrix packed for scoring: (ceil(N/32), d, 32) panels, zero padded. */
typedef struct af_score_index af_score_index;

af_status af_score_index_build(const float *base /* (N, d) */, int64_t N, int d,
                               af_score_index **out, af_error *err);
void af_score_index_free(af_score_index *ix);
int64_t af_score_index_rows(const af_score_index *ix);
int af_score_index_dim(const af_score_index *ix);

/* Top-k of M queries (M, d) against the base.
 *   exclude (M) or NULL: base row to skip for each query (-1: none), e.g. itself;
 *   base_skip (N) or NULL: base rows with a nonzero byte are never returned;
 *   nbr (M, k), scr (M, k): outputs. 0 <= k <= AF_SCORE_MAX_K. */
af_status af_score_index_search(const af_score_index *ix, const float *queries, int64_t M,
                                const int64_t *exclude, const unsigned char *base_skip, int k,
                                float min_score, int64_t *nbr, float *scr,
                                const af_score_options *opt, af_error *err);

/* All N rows of emb (N, d), packed in ix, against all of emb, each row
 * excluding itself, computing each pair of rows once (score(i, j) is
 * score(j, i) bit for bit: the fma chain's products commute) and feeding
 * both rows' top-k. The output is identical, bit for bit, to
 * af_score_index_search with exclude[i] = i, for any threads and block sizes.
 * nbr, scr (N, k): the heaps live there, so no memory beyond the output. */
af_status af_score_all_pairs_symmetric(const af_score_index *ix, const float *emb, int k,
                                       float min_score, int64_t *nbr, float *scr,
                                       const af_score_options *opt, af_error *err);

/* All-pairs convenience: rows [row0, row1) of emb (N, d) against all of emb,
 * each row excluding itself. nbr, scr (row1 - row0, k). Builds the packed
 * index each call: when scoring many row ranges, build one index and call
 * af_score_index_search instead. All rows (row0 = 0, row1 = N) take the
 * symmetric path unless opt->asymmetric. */
af_status af_topk_all_pairs(const float *emb, int64_t N, int d, int k, float min_score,
                            int64_t row0, int64_t row1, int64_t *nbr, float *scr,
                            const af_score_options *opt, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
