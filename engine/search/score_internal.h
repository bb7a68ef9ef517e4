/* Internals shared by score.c and score_bf16.c (not public). */
#ifndef AF_SCORE_INTERNAL_H
#define AF_SCORE_INTERNAL_H

#include <stdint.h>

#include "affinity.h"

#define AF_SCORE_MR 8  /* query rows per register tile */
#define AF_SCORE_NR 32 /* base columns per panel */

/* The symmetric all-pairs driver (score.c). rows16 (N, d2) and panels16
 * (n_panels, d2, 32), bf16 pairs along d (d2 = ceil(d/2)), or both NULL for the
 * fp32 kernel; heaps of k entries live in nbr, scr (N, k), extracted sorted. */
af_status af_score_sym_run(const af_score_index *ix, const float *emb, const uint32_t *rows16,
                           const uint32_t *panels16, int k, float min_score, int64_t *nbr,
                           float *scr, const af_score_options *opt, af_error *err);

/* tile (8, 32) = bf16 rows a[0..8) (each (d2) pairs) . panel (d2, 32) pairs,
 * fp32 accumulation (vdpbf16ps; the CPU must have AVX512_BF16). */
void af_score_tile_bf16(const uint32_t *const a[AF_SCORE_MR], const uint32_t *panel, int d2,
                        float tile[AF_SCORE_MR][AF_SCORE_NR]);

const float *af_score_index_panels(const af_score_index *ix); /* (n_panels, d, 32) */
int64_t af_score_index_n_panels(const af_score_index *ix);

#endif
