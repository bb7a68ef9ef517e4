/* The GPU all-pairs scorer's algorithm (docs/scoring.md, "bf16 candidates and
 * fp32 rescore"), with its memory plan, runnable on the CPU: the reference the
 * CUDA kernel is checked against and the place its recall is measured.
 *
 * Per query row: (1) candidate scores from bf16-rounded vectors (fp32 sums),
 * the k' = k + margin best kept per column chunk (ties to the lower index);
 * (2) each candidate rescored in fp32 with the CPU scorer's exact FMA chain
 * (acc = fmaf(q[i], x[i], acc), i = 0..d-1, from 0: engine/search/score.c), so
 * a score has the CPU's bits; (3) the top k of the rescored candidates (ties
 * to the lower index, below min_score dropped). The output equals
 * af_score_index_search's except where a true neighbour was not a candidate.
 * A row is CERTIFIED when that cannot have happened: every non-candidate j of a
 * chunk has bf16 score <= that chunk's cut (its k'-th candidate), so its fp32
 * score is <= cut + eps, with eps the bf16 error bound of a dot product below;
 * if the k-th final score exceeds every chunk's cut + eps (or, with fewer than
 * k results, min_score does), no neighbour was lost. Uncertified rows are
 * counted (an upper bound of the rows that differ from the CPU's). */
#ifndef AF_SCORE_BF16_H
#define AF_SCORE_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the scorer splits the work on a device with `budget` bytes. */
typedef struct {
  int64_t row0, row1;  /* query rows: shard i of n (af_shard_rows' split) */
  int64_t col_chunk;   /* base columns resident at once (N when all fit) */
  int64_t n_chunks;    /* ceil(N / col_chunk) */
  int64_t q_tile;      /* query rows per kernel launch */
  int kp;              /* k' = min(k + margin, N): candidates per row and chunk */
  size_t bytes;        /* device memory the plan needs */
} af_bf16_topk_plan;

/* Device bytes for a plan: bf16 (d padded to a multiple of 16) and fp32 base
 * chunk (col_chunk x ~6d), the query rows of the shard in bf16 and fp32
 * (R x ~6d), the per-row running lists (R x k' x 16: bf16 score, fp32 score,
 * int64 index) and a launch's work space (q_tile x 48 KB: the fused kernel's
 * partial lists or the tiled path's GEMM tile). O(N (d + k)) in all. */
size_t af_bf16_topk_plan_bytes(int64_t R, int64_t col_chunk, int64_t q_tile, int d, int kp);

/* The plan for N rows of dimension d, top k with `margin` extra candidates,
 * shard i of n, in `budget` bytes. AF_ERR_UNSUPPORTED naming the sizes when even
 * a chunk of 1024 columns does not fit. */
af_status af_bf16_topk_plan_make(int64_t N, int d, int k, int margin, int shard_i, int shard_n,
                                 size_t budget, af_bf16_topk_plan *out, af_error *err);

/* eps of one dot product: |fp32(q . x) - fp32(bf16(q) . bf16(x))| <= eps for
 * ||q|| <= qnorm, ||x|| <= xnorm (docs/scoring.md derives it). */
double af_bf16_dot_error_bound(int d, double qnorm, double xnorm);

/* The algorithm on the CPU over rows [row0, row1) of emb (N, d) against all of
 * emb, each row excluding itself, base columns in chunks of col_chunk.
 * nbr, scr (row1 - row0, k); *uncertified (may be NULL): rows not certified. */
af_status af_bf16_topk_emulate(const float *emb, int64_t N, int d, int k, int margin,
                               float min_score, int64_t row0, int64_t row1, int64_t col_chunk,
                               int64_t *nbr, float *scr, int64_t *uncertified, af_error *err);

/* The algorithm on a device through the op interface (the GPU scorer; any
 * backend with the all-pairs top-k ops: on the CPU backend their twins, which
 * is how CI runs the GPU's algorithm). Same arguments and results as
 * af_bf16_topk_emulate with one global candidate list per row. */
af_status af_bf16_topk_device(const af_device *dev, const float *emb, int64_t N, int d, int k,
                              int margin, float min_score, int64_t row0, int64_t row1,
                              int64_t *nbr, float *scr, int64_t *uncertified, af_error *err);

/* How af_bf16_topk_device_ex runs (designated initialisers; zero = defaults). */
enum { AF_TOPK_PATH_AUTO = 0, AF_TOPK_PATH_FUSED = 1, AF_TOPK_PATH_TILED = 2 };
typedef struct {
  int path;          /* AUTO: the fused kernel when k' <= AF_FUSED_MAX_KP and d <= AF_FUSED_MAX_D
                        (kernels/topk_fused.h), else the tiled path; FUSED: an error if it cannot */
  int64_t col_chunk; /* base columns resident at once; 0: as many as 90% of free memory holds */
  int64_t q_tile;    /* query rows per launch; 0: the plan's (<= 16,384) */
} af_bf16_topk_device_options;

typedef struct {
  int fused;                 /* 1: the fused kernel ran; 0: the tiled path */
  int64_t col_chunk, n_chunks, q_tile;
  int64_t uncertified;       /* rows not certified */
} af_bf16_topk_device_report;

/* af_bf16_topk_device with options (NULL: defaults) and a report (may be NULL).
 * The base streams through the device in column chunks: pass 1 uploads each
 * chunk in bf16 and merges its candidates into every query row's running list
 * (R x k', resident); pass 2 uploads each chunk in fp32 and rescores the
 * candidates that fall in it. Device memory: af_bf16_topk_plan_bytes. */
af_status af_bf16_topk_device_ex(const af_device *dev, const float *emb, int64_t N, int d, int k,
                                 int margin, float min_score, int64_t row0, int64_t row1,
                                 const af_bf16_topk_device_options *opt, int64_t *nbr,
                                 float *scr, af_bf16_topk_device_report *rep, af_error *err);

#ifdef __cplusplus
}
#endif
#endif
