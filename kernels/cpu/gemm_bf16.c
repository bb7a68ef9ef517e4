/* AVX512_BF16 micro-kernel of our GEMM: bf16 inputs, fp32 accumulation.
 *
 * Panels hold bf16 pairs along K: one 32-bit word = (x[2q] low, x[2q+1] high).
 * Per pair-step q: two loads of B (16 columns x 2 k each), 12 broadcasts of
 * A's pair, 24 vdpbf16ps: acc[r][j] += a[r][2q] b[2q][j] + a[r][2q+1] b[2q+1][j].
 * Each vdpbf16ps does 32 multiply-adds, twice an fp32 FMA's 16.
 * Compiled for AVX512_BF16 whatever the build flags; called only when the CPU has it. */
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

#define MR AF_GEMM_AVX512_MR
#define NR AF_GEMM_AVX512_NR

__attribute__((target("avx512f,avx512bf16"))) void
af_gemm_ukr_avx512_bf16(int kp, const float *ap_, const float *bp_, float *c, int64_t ldc,
                        int load_c) {
  const uint32_t *ap = (const uint32_t *)(const void *)ap_; // (kp, MR) bf16 pairs
  const uint32_t *bp = (const uint32_t *)(const void *)bp_; // (kp, NR) bf16 pairs
  __m512 acc[MR][2]; // (MR, NR) tile, 16 floats per vector
  for (int r = 0; r < MR; r++) {
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    _mm_prefetch((const char *)(c + (int64_t)r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + (int64_t)r * ldc + 16), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (int q = 0; q < kp; q++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(bp + (int64_t)q * NR));
    __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(bp + (int64_t)q * NR + 16));
    const uint32_t *a = ap + (int64_t)q * MR; // (MR)
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  for (int r = 0; r < MR; r++) {
    float *cr = c + (int64_t)r * ldc; // (NR)
    if (load_c) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(cr));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(cr + 16));
    }
    _mm512_storeu_ps(cr, acc[r][0]);
    _mm512_storeu_ps(cr + 16, acc[r][1]);
  }
}
