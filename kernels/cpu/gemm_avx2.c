/* AVX2 + FMA micro-kernel of our GEMM: a 6 x 16 tile of C in 12 ymm
 * accumulators. Compiled for AVX2 whatever the build flags; called only when
 * the CPU has it. */
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

#define MR AF_GEMM_AVX2_MR
#define NR AF_GEMM_AVX2_NR

__attribute__((target("avx2,fma"))) void af_gemm_ukr_avx2(int kc, const float *ap,
                                                          const float *bp, float *c, int64_t ldc,
                                                          int load_c) {
  __m256 acc[MR][2]; // (MR, NR) tile, 8 floats per vector
  for (int r = 0; r < MR; r++)
    acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(bp + (int64_t)p * NR);
    __m256 b1 = _mm256_load_ps(bp + (int64_t)p * NR + 8);
    const float *a = ap + (int64_t)p * MR; // (MR)
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      __m256 av = _mm256_broadcast_ss(a + r);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; r++) {
    float *cr = c + (int64_t)r * ldc; // (NR)
    if (load_c) {
      acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(cr));
      acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, acc[r][0]);
    _mm256_storeu_ps(cr + 8, acc[r][1]);
  }
}
