/* Multiple-negatives ranking loss (sentence-transformers'
 * MultipleNegativesRankingLoss, in-batch negatives), forward and backward.
 *
 * Given anchors A (B, C), positives P (B, C) and optional hard negatives
 * N (M, C), with candidates D = [P; N] (B + M, C):
 *   S = scale * cos_sim(A, D)        (B, B + M)   cos_sim as sentence-transformers
 *                                                  (rows L2-normalised, eps 1e-12)
 *   loss = mean_i ( logsumexp_j S_ij - S_ii )      (cross-entropy, labels i)
 * Symmetric (MultipleNegativesSymmetricRankingLoss, i.e. directions
 * query_to_doc + doc_to_query with partition_mode "per_direction"):
 *   loss = mean_i ( (logsumexp_j S_ij + logsumexp_{j<B} S_ji) / 2 - S_ii )
 * i.e. the mean of the anchor->positive and positive->anchor cross-entropies.
 * Computed in double internally; O(B (B + M) C). */
#ifndef AF_LOSS_H
#define AF_LOSS_H

#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sentence-transformers' default scale (temperature 0.05). */
#define AF_MNR_DEFAULT_SCALE 20.0f

/* Forward and (optionally) backward.
 * anchors, positives (B, C); negatives (M, C) or NULL with M = 0.
 * *loss receives the mean loss. d_anchors (B, C), d_positives (B, C),
 * d_negatives (M, C): d loss / d input, WRITTEN (not accumulated); pass NULL
 * for any gradient not wanted (all NULL: forward only).
 * Errors: AF_ERR_ARG for B < 1, C < 1, M < 0, scale <= 0; AF_ERR_NOMEM. */
af_status af_mnr_loss(const float *anchors, const float *positives, const float *negatives, int B,
                      int M, int C, float scale, int symmetric, float *loss, float *d_anchors,
                      float *d_positives, float *d_negatives, af_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AF_LOSS_H */
