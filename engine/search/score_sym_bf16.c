/* bf16 all-pairs scoring (docs/scoring.md, "bf16 mode"): candidates from a
 * bf16 kernel (vdpbf16ps, fp32 accumulation) on the symmetric path, k + margin
 * per row, then every candidate rescored with the fp32 fma chain and the top-k
 * taken again: the output equals the fp32 scorer's, bit for bit, unless a true
 * neighbour fell outside the candidates; rows where that is possible (by the
 * bf16 error bound) are counted. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/topk.h"
#include "search/score_internal.h"

#define MR AF_SCORE_MR
#define NR AF_SCORE_NR

__attribute__((target("avx512f,avx512bf16"))) void
af_score_tile_bf16(const uint32_t *const a[MR], const uint32_t *panel, int d2,
                   float tile[MR][NR]) {
  __m512 acc[MR][2];
  for (int r = 0; r < MR; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int q = 0; q < d2; q++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(panel + (size_t)q * NR));
    __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(panel + (size_t)q * NR + 16));
    for (int r = 0; r < MR; r++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r][q]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(tile[r], acc[r][0]);
    _mm512_storeu_ps(tile[r] + 16, acc[r][1]);
  }
}

static inline uint32_t bf16_bits(float f) { /* nearest even; NaN stays NaN */
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

static inline uint32_t pair(float lo, float hi) { return bf16_bits(lo) | bf16_bits(hi) << 16; }

/* The fp32 scores of x against up to 8 rows y[0..n) of emb, exactly as the fp32
 * kernel computes them: each one fma chain over t = 0..d-1 from 0 (8 chains
 * interleaved so that the FMA latency is hidden; each chain's order is kept). */
static void exact_scores8(const float *x, const float *emb, const int64_t *j, int n, int d,
                          float out[8]) {
  const float *y[8];
  float acc[8];
  for (int c = 0; c < 8; c++) {
    y[c] = emb + (size_t)j[c < n ? c : 0] * d;
    acc[c] = 0.0f;
  }
  for (int t = 0; t < d; t++)
    for (int c = 0; c < 8; c++)
      acc[c] = fmaf(x[t], y[c][t], acc[c]);
  for (int c = 0; c < n; c++)
    out[c] = acc[c];
}

/* Rescores row i's candidates (cn, cs: kk, approx, best first) into nbr, scr (k);
 * returns 1 when a true neighbour may be missing (error bound e_i on any score). */
static int rescore_row(const float *emb, int d, int64_t i, const int64_t *cn, const float *cs,
                       int kk, int k, float min_score, double e_i, int64_t *nbr, float *scr) {
  af_topk t;
  af_topk_init(&t, scr, nbr, k, min_score);
  int n_cand = 0;
  while (n_cand < kk && cn[n_cand] >= 0)
    n_cand++;
  for (int c0 = 0; c0 < n_cand; c0 += 8) {
    float s[8];
    int n = n_cand - c0 < 8 ? n_cand - c0 : 8;
    exact_scores8(emb + (size_t)i * d, emb, cn + c0, n, d, s);
    for (int c = 0; c < n; c++)
      af_topk_push(&t, s[c], cn[c0 + c]);
  }
  int kept = t.size;
  af_topk_extract(&t, nbr, scr, k);
  if (n_cand < kk) /* every row above the candidate floor was a candidate */
    return 0;
  double floor_k = kept == k ? (double)scr[k - 1] : (double)min_score;
  return !(floor_k > (double)cs[kk - 1] + e_i);
}

af_status af_score_all_pairs_bf16(const af_score_index *ix, const float *emb, int k, int margin,
                                  float min_score, int64_t *nbr, float *scr,
                                  const af_score_options *opt, int64_t *n_unsure, af_error *err) {
  if (n_unsure)
    *n_unsure = 0;
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16"))
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "precision bf16 needs a CPU with AVX512_BF16 (the vdpbf16ps "
                        "instruction); this CPU does not have it: use fp32");
  if (k < 0 || k > AF_SCORE_MAX_K || margin < 0 || margin > AF_SCORE_MAX_K)
    return af_error_set(err, AF_ERR_ARG, "k = %d or margin = %d is outside [0, %d]", k, margin,
                        AF_SCORE_MAX_K);
  if (isnan(min_score))
    return af_error_set(err, AF_ERR_ARG, "min_score is NaN");
  const int64_t N = af_score_index_rows(ix), np = af_score_index_n_panels(ix);
  const int d = af_score_index_dim(ix), d2 = (d + 1) / 2, kk = k + margin;
  if (N == 0 || k == 0)
    return AF_OK;
  uint32_t *rows16 = aligned_alloc(64, ((size_t)N * d2 * 4 + 63) / 64 * 64);          // (N, d2)
  uint32_t *panels16 = aligned_alloc(64, (size_t)np * d2 * NR * 4);                     // (np, d2, NR)
  int64_t *cn = malloc((size_t)N * kk * sizeof *cn);                                     // (N, kk)
  float *cs = malloc((size_t)N * kk * sizeof *cs);                                       // (N, kk)
  double *norm = malloc((size_t)N * sizeof *norm);                                       // (N)
  af_status st = AF_OK;
  if (!rows16 || !panels16 || !cn || !cs || !norm) {
    st = af_error_set(err, AF_ERR_NOMEM, "bf16 scoring: out of memory for %lld rows",
                      (long long)N);
    goto done;
  }
  const float *panels = af_score_index_panels(ix);
  double maxnorm = 0;
#pragma omp parallel for schedule(static) reduction(max : maxnorm)
  for (int64_t i = 0; i < N; i++) {
    const float *x = emb + (size_t)i * d;
    double n2 = 0;
    for (int q = 0; q < d2; q++)
      rows16[(size_t)i * d2 + q] = pair(x[2 * q], 2 * q + 1 < d ? x[2 * q + 1] : 0.0f);
    for (int t = 0; t < d; t++)
      n2 += (double)x[t] * x[t];
    norm[i] = sqrt(n2);
    maxnorm = norm[i] > maxnorm ? norm[i] : maxnorm;
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < np; p++)
    for (int q = 0; q < d2; q++)
      for (int c = 0; c < NR; c++) {
        const float *src = panels + (size_t)p * d * NR; // (d, NR)
        float hi = 2 * q + 1 < d ? src[(size_t)(2 * q + 1) * NR + c] : 0.0f;
        panels16[((size_t)p * d2 + q) * NR + c] = pair(src[(size_t)(2 * q) * NR + c], hi);
      }
  /* |bf16 score - fp32 score| <= e |x_i| |x_j|: inputs rounded (2u + u^2, u = 2^-8), both
   * sums accumulated in fp32 (d roundings each), denormal products flushed (tiny). */
  const double e = ldexp(1.0, -7) + ldexp(1.0, -16) + 2.01 * (d + 1) * ldexp(1.0, -24);
  float cand_min = isinf(min_score) ? min_score : (float)(min_score - e * maxnorm * maxnorm);
  st = af_score_sym_run(ix, emb, rows16, panels16, kk, cand_min, cn, cs, opt, err);
  if (st != AF_OK)
    goto done;
  int64_t unsure = 0;
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : unsure)
  for (int64_t i = 0; i < N; i++)
    unsure += rescore_row(emb, d, i, cn + (size_t)i * kk, cs + (size_t)i * kk, kk, k, min_score,
                          e * norm[i] * maxnorm + 1e-30, nbr + (size_t)i * k, scr + (size_t)i * k);
  if (n_unsure)
    *n_unsure = unsure;
done:
  free(rows16);
  free(panels16);
  free(cn);
  free(cs);
  free(norm);
  return st;
}
