/* All-pairs top-k by inner product (see score.h and docs/scoring.md).
 *
 * Work split: OpenMP threads take blocks of block_rows query rows. Within a
 * block, for each slab of block_cols base columns (kept in L2), each group of
 * MR = 8 query rows (kept in L1) is multiplied with every 32-column panel of
 * the slab in registers; the 8 x 32 tile of scores is then compared against
 * the 8 rows' top-k thresholds and only the few candidates that pass touch
 * the heaps. Scores never leave the tile buffer. */
#include "affinity.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/topk.h"
#include "search/score_internal.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define MR 8  /* query rows per register tile */
#define NR 32 /* base columns per panel (two 16-float vectors) */

struct af_score_index {
  int64_t n;
  int d;
  int64_t n_panels;
  float *panels; // (n_panels, d, NR): panels[p][k][c] = base[p*NR + c][k], 0 past N
};

af_status af_score_index_build(const float *base, int64_t N, int d, af_score_index **out,
                               af_error *err) {
  *out = NULL;
  if (N < 0 || d < 1)
    return af_error_set(err, AF_ERR_ARG, "score index: invalid shape [%lld, %d]", (long long)N, d);
  af_score_index *ix = af_calloc(1, sizeof *ix, err);
  if (!ix)
    return AF_ERR_NOMEM;
  ix->n = N;
  ix->d = d;
  ix->n_panels = (N + NR - 1) / NR;
  size_t floats = (size_t)ix->n_panels * (size_t)d * NR;
  ix->panels = floats ? aligned_alloc(64, floats * sizeof(float)) : NULL;
  if (floats && !ix->panels) {
    free(ix);
    return af_error_set(err, AF_ERR_NOMEM, "score index: out of memory for %lld x %d floats",
                        (long long)N, d);
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < ix->n_panels; p++) {
    float *dst = ix->panels + (size_t)p * (size_t)d * NR; // (d, NR)
    for (int c = 0; c < NR; c++) {
      int64_t row = p * NR + c;
      const float *src = row < N ? base + (size_t)row * (size_t)d : NULL; // (d)
      for (int k = 0; k < d; k++)
        dst[(size_t)k * NR + c] = src ? src[k] : 0.0f;
    }
  }
  *out = ix;
  return AF_OK;
}

void af_score_index_free(af_score_index *ix) {
  if (!ix)
    return;
  free(ix->panels);
  free(ix);
}

int64_t af_score_index_rows(const af_score_index *ix) { return ix->n; }
int af_score_index_dim(const af_score_index *ix) { return ix->d; }

/* tile (MR, NR) = a[0..MR) (each (d)) . panel (d, NR), each score the fma chain
 * acc = fma(a[r][k], panel[k][c], acc) for k = 0..d-1 from acc = 0. */
static void tile_scores(const float *const a[MR], const float *panel, int d,
                        float tile[MR][NR]) {
#if defined(__AVX512F__)
  __m512 acc[MR][2];
  for (int r = 0; r < MR; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < d; k++) {
    __m512 b0 = _mm512_load_ps(panel + (size_t)k * NR);
    __m512 b1 = _mm512_load_ps(panel + (size_t)k * NR + 16);
    for (int r = 0; r < MR; r++) {
      __m512 av = _mm512_set1_ps(a[r][k]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(tile[r], acc[r][0]);
    _mm512_storeu_ps(tile[r] + 16, acc[r][1]);
  }
#else
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++)
      tile[r][c] = 0.0f;
  for (int k = 0; k < d; k++)
    for (int r = 0; r < MR; r++) {
      float av = a[r][k];
      const float *b = panel + (size_t)k * NR;
      for (int c = 0; c < NR; c++)
        tile[r][c] = fmaf(av, b[c], tile[r][c]);
    }
#endif
}

/* Offers the NR scores of one tile row to a row's top-k. */
static inline void select_row(af_topk *t, const float *row, int64_t col0, int64_t n_base,
                              int64_t exclude, const unsigned char *skip) {
#if defined(__AVX512F__)
  __m512 thr = _mm512_set1_ps(af_topk_threshold(t));
  uint32_t mask = (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(row), thr, _CMP_GE_OQ) |
                  ((uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(row + 16), thr, _CMP_GE_OQ) << 16);
  while (mask) {
    int c = __builtin_ctz(mask);
    mask &= mask - 1;
#else
  for (int c = 0; c < NR; c++) {
    if (!(row[c] >= af_topk_threshold(t)))
      continue;
#endif
    int64_t j = col0 + c;
    if (j >= n_base || j == exclude || (skip && skip[j]))
      continue;
    af_topk_push(t, row[c], j);
  }
}

typedef struct {
  const af_score_index *ix;
  const float *queries; // (M, d)
  int64_t M;
  const int64_t *exclude;
  const unsigned char *skip;
  int k;
  float min_score;
  int64_t *nbr; // (M, k)
  float *scr;   // (M, k)
  int64_t block_rows, block_cols;
} search_job;

/* Queries [q0, q0 + nq) with heap storage hs (nq, k), hi (nq, k), heaps (nq). */
static void search_block(const search_job *job, int64_t q0, int64_t nq, float *hs, int64_t *hi,
                         af_topk *heaps) {
  const af_score_index *ix = job->ix;
  const int d = ix->d, k = job->k;
  for (int64_t i = 0; i < nq; i++)
    af_topk_init(&heaps[i], hs + i * k, hi + i * k, k, job->min_score);
  float tile[MR][NR] __attribute__((aligned(64)));
  const int64_t panels_per_slab = job->block_cols / NR;
  for (int64_t p0 = 0; p0 < ix->n_panels; p0 += panels_per_slab) {
    int64_t p1 = p0 + panels_per_slab < ix->n_panels ? p0 + panels_per_slab : ix->n_panels;
    for (int64_t r0 = 0; r0 < nq; r0 += MR) {
      int mr = nq - r0 < MR ? (int)(nq - r0) : MR;
      /* Missing rows of a partial group repeat the last row; their scores are ignored. */
      const float *a[MR];
      for (int r = 0; r < MR; r++)
        a[r] = job->queries + (size_t)(q0 + r0 + (r < mr ? r : mr - 1)) * (size_t)d;
      for (int64_t p = p0; p < p1; p++) {
        tile_scores(a, ix->panels + (size_t)p * (size_t)d * NR, d, tile);
        for (int r = 0; r < mr; r++) {
          int64_t q = q0 + r0 + r;
          select_row(&heaps[r0 + r], tile[r], p * NR, ix->n,
                     job->exclude ? job->exclude[q] : -1, job->skip);
        }
      }
    }
  }
  for (int64_t i = 0; i < nq; i++)
    af_topk_extract(&heaps[i], job->nbr + (size_t)(q0 + i) * k, job->scr + (size_t)(q0 + i) * k,
                    k);
}

af_status af_score_index_search(const af_score_index *ix, const float *queries, int64_t M,
                                const int64_t *exclude, const unsigned char *base_skip, int k,
                                float min_score, int64_t *nbr, float *scr,
                                const af_score_options *opt, af_error *err) {
  if (k < 0 || k > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "k = %d is outside [0, %d]", k, AF_SCORE_MAX_K);
  if (M < 0)
    return af_error_set(err, AF_ERR_ARG, "negative query count %lld", (long long)M);
  if (isnan(min_score))
    return af_error_set(err, AF_ERR_ARG, "min_score is NaN");
  if (M == 0 || k == 0)
    return AF_OK;
  search_job job = {ix, queries, M, exclude, base_skip, k, min_score, nbr, scr, 256, 512};
  if (opt && opt->block_rows > 0)
    job.block_rows = opt->block_rows;
  if (opt && opt->block_cols > 0)
    job.block_cols = opt->block_cols;
  /* Slabs are whole panels. */
  job.block_cols = (job.block_cols + NR - 1) / NR * NR;
  int threads = opt && opt->threads > 0 ? opt->threads : omp_get_max_threads();
  int64_t n_blocks = (M + job.block_rows - 1) / job.block_rows;
  if (threads > n_blocks)
    threads = (int)n_blocks;
  int64_t br = job.block_rows;
  int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
  {
    float *hs = malloc((size_t)br * (size_t)k * sizeof *hs);       // (block_rows, k)
    int64_t *hi = malloc((size_t)br * (size_t)k * sizeof *hi);     // (block_rows, k)
    af_topk *heaps = malloc((size_t)br * sizeof *heaps);           // (block_rows)
    if (!hs || !hi || !heaps)
      failed = 1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < n_blocks; b++) {
      if (failed)
        continue;
      int64_t q0 = b * br;
      search_block(&job, q0, M - q0 < br ? M - q0 : br, hs, hi, heaps);
    }
    free(hs);
    free(hi);
    free(heaps);
  }
  if (failed)
    return af_error_set(err, AF_ERR_NOMEM, "out of memory for top-k heaps (%lld rows x k = %d)",
                        (long long)br, k);
  return AF_OK;
}

/* ---- symmetric all-pairs ------------------------------------------------------
 * Rows are cut into blocks of bs (a multiple of NR) rows. Block pair (I, J),
 * I < J, multiplies rows of I with the panels of J once and offers each score
 * to row i's heap (row-wise, as in search_block) and to row j's heap
 * (column-wise); a diagonal block (I, I) offers rows only. Every ordered pair
 * (i, j), i != j, thus reaches row i's heap exactly once with the same bits as
 * the asymmetric search, and the heap's total order makes the result
 * independent of arrival order. Pairs run in rounds of a round-robin
 * tournament (each round's pairs share no block), so no two threads ever
 * touch one heap at the same time. */

typedef struct {
  const af_score_index *ix;
  const float *emb; // (N, d)
  af_topk *heaps;   // (N)
  float *thr;       // (N + NR) each heap's threshold, kept contiguous for the column compares
  int64_t bs;       // rows per block
  /* bf16 candidates (score_bf16.c): rows and panels as bf16 pairs, NULL for fp32 */
  const uint32_t *rows16;   // (N, d2)
  const uint32_t *panels16; // (n_panels, d2, NR)
  int d2;                   // ceil(d / 2)
} sym_job;

/* Offers tile (mr rows, NR columns from col0) column-wise to the column rows' heaps. */
static void select_cols(af_topk *heaps, float *thr, const float tile[MR][NR], int mr,
                        int64_t row0, int64_t col0, int64_t n) {
  float *t = thr + col0; // (NR): INFINITY past n, so padding columns never pass
  for (int r = 0; r < mr; r++) {
#if defined(__AVX512F__)
    uint32_t mask =
        (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(tile[r]), _mm512_loadu_ps(t), _CMP_GE_OQ) |
        ((uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(tile[r] + 16), _mm512_loadu_ps(t + 16),
                                      _CMP_GE_OQ)
         << 16);
    while (mask) {
      int c = __builtin_ctz(mask);
      mask &= mask - 1;
#else
    for (int c = 0; c < NR; c++) {
      if (!(tile[r][c] >= t[c]))
        continue;
#endif
      af_topk *h = &heaps[col0 + c];
      af_topk_push(h, tile[r][c], row0 + r);
      t[c] = af_topk_threshold(h);
    }
  }
  (void)n;
}

/* Block pair: rows [i0, i1) against panels [p0, p1); cols = 1 also feeds the columns. */
static void sym_pair(const sym_job *job, int64_t i0, int64_t i1, int64_t p0, int64_t p1,
                     int cols) {
  const af_score_index *ix = job->ix;
  const int d = ix->d, d2 = job->d2;
  float tile[MR][NR] __attribute__((aligned(64)));
  for (int64_t r0 = i0; r0 < i1; r0 += MR) {
    int mr = i1 - r0 < MR ? (int)(i1 - r0) : MR;
    const float *a[MR]; /* a partial group repeats its last row; those scores are ignored */
    const uint32_t *a16[MR];
    for (int r = 0; r < MR; r++) {
      int64_t row = r0 + (r < mr ? r : mr - 1);
      a[r] = job->emb + (size_t)row * (size_t)d;
      a16[r] = job->rows16 ? job->rows16 + (size_t)row * (size_t)d2 : NULL;
    }
    for (int64_t p = p0; p < p1; p++) {
      if (job->rows16)
        af_score_tile_bf16(a16, job->panels16 + (size_t)p * (size_t)d2 * NR, d2, tile);
      else
        tile_scores(a, ix->panels + (size_t)p * (size_t)d * NR, d, tile);
      for (int r = 0; r < mr; r++) {
        select_row(&job->heaps[r0 + r], tile[r], p * NR, ix->n, cols ? -1 : r0 + r, NULL);
        job->thr[r0 + r] = af_topk_threshold(&job->heaps[r0 + r]);
      }
      if (cols)
        select_cols(job->heaps, job->thr, (const float(*)[NR])tile, mr, r0, p * NR, ix->n);
    }
  }
}

/* Block b's rows [*r0, *r1) and panels [*p0, *p1). */
static void sym_block(const sym_job *job, int64_t b, int64_t *r0, int64_t *r1, int64_t *p0,
                      int64_t *p1) {
  *r0 = b * job->bs;
  *r1 = *r0 + job->bs < job->ix->n ? *r0 + job->bs : job->ix->n;
  *p0 = *r0 / NR;
  *p1 = (*r1 + NR - 1) / NR;
}

/* Pair q of round rnd of the circle-method tournament on m (even) players; -1 = a bye. */
static void tournament_pair(int64_t m, int64_t rnd, int64_t q, int64_t *x, int64_t *y) {
  if (q == 0) {
    *x = m - 1;
    *y = rnd;
  } else {
    *x = (rnd + q) % (m - 1);
    *y = (rnd - q + (m - 1)) % (m - 1);
  }
}

af_status af_score_sym_run(const af_score_index *ix, const float *emb, const uint32_t *rows16,
                           const uint32_t *panels16, int k, float min_score, int64_t *nbr,
                           float *scr, const af_score_options *opt, af_error *err) {
  const int64_t N = ix->n;
  if (N == 0 || k == 0)
    return AF_OK;
  af_topk *heaps = af_malloc((size_t)N, sizeof *heaps, err); // (N)
  float *thr = heaps ? af_malloc((size_t)N + NR, sizeof *thr, err) : NULL; // (N + NR)
  if (!thr) {
    free(heaps);
    return AF_ERR_NOMEM;
  }
  for (int64_t i = N; i < N + NR; i++)
    thr[i] = INFINITY;
  int64_t bs = opt && opt->block_rows > 0 ? opt->block_rows : 256;
  bs = (bs + NR - 1) / NR * NR; /* blocks are whole panels */
  sym_job job = {ix, emb, heaps, thr, bs, rows16, panels16, (ix->d + 1) / 2};
  const int64_t nb = (N + bs - 1) / bs, m = nb + (nb & 1); /* m even: one bye when nb is odd */
  int threads = opt && opt->threads > 0 ? opt->threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; i++) {
      af_topk_init(&heaps[i], scr + (size_t)i * k, nbr + (size_t)i * k, k, min_score);
      thr[i] = af_topk_threshold(&heaps[i]);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < nb; b++) {
      int64_t r0, r1, p0, p1;
      sym_block(&job, b, &r0, &r1, &p0, &p1);
      sym_pair(&job, r0, r1, p0, p1, 0);
    }
    for (int64_t rnd = 0; rnd < m - 1; rnd++) {
#pragma omp for schedule(dynamic, 1)
      for (int64_t q = 0; q < m / 2; q++) {
        int64_t x, y;
        tournament_pair(m, rnd, q, &x, &y);
        if (x >= nb || y >= nb)
          continue;
        int64_t I = x < y ? x : y, J = x < y ? y : x, r0, r1, p0, p1, s0, s1;
        sym_block(&job, I, &r0, &r1, &s0, &s1);
        sym_block(&job, J, &s0, &s1, &p0, &p1);
        sym_pair(&job, r0, r1, p0, p1, 1);
      }
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; i++)
      af_topk_extract(&heaps[i], nbr + (size_t)i * k, scr + (size_t)i * k, k);
  }
  free(heaps);
  free(thr);
  return AF_OK;
}

af_status af_score_all_pairs_symmetric(const af_score_index *ix, const float *emb, int k,
                                       float min_score, int64_t *nbr, float *scr,
                                       const af_score_options *opt, af_error *err) {
  if (k < 0 || k > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "k = %d is outside [0, %d]", k, AF_SCORE_MAX_K);
  if (isnan(min_score))
    return af_error_set(err, AF_ERR_ARG, "min_score is NaN");
  return af_score_sym_run(ix, emb, NULL, NULL, k, min_score, nbr, scr, opt, err);
}

const float *af_score_index_panels(const af_score_index *ix) { return ix->panels; }
int64_t af_score_index_n_panels(const af_score_index *ix) { return ix->n_panels; }

af_status af_topk_all_pairs(const float *emb, int64_t N, int d, int k, float min_score,
                            int64_t row0, int64_t row1, int64_t *nbr, float *scr,
                            const af_score_options *opt, af_error *err) {
  if (row0 < 0 || row1 < row0 || row1 > N)
    return af_error_set(err, AF_ERR_ARG, "rows [%lld, %lld) outside [0, %lld)", (long long)row0,
                        (long long)row1, (long long)N);
  int64_t M = row1 - row0;
  int64_t *exclude = af_malloc(M ? (size_t)M : 1, sizeof *exclude, err); // (M)
  if (!exclude)
    return AF_ERR_NOMEM;
  for (int64_t i = 0; i < M; i++)
    exclude[i] = row0 + i;
  af_score_index *ix = NULL;
  af_status st = af_score_index_build(emb, N, d, &ix, err);
  if (st == AF_OK && row0 == 0 && row1 == N && !(opt && opt->asymmetric))
    st = af_score_all_pairs_symmetric(ix, emb, k, min_score, nbr, scr, opt, err);
  else if (st == AF_OK)
    st = af_score_index_search(ix, emb + (size_t)row0 * (size_t)d, M, exclude, NULL, k, min_score,
                               nbr, scr, opt, err);
  af_score_index_free(ix);
  free(exclude);
  return st;
}
