/* AVX-512F micro-kernel of our GEMM: a 12 x 32 tile of C in 24 zmm
 * accumulators; per k, two aligned loads of B and 12 broadcasts of A, 24 FMAs.
 * Compiled for AVX-512 whatever the build flags; called only when the CPU has it. */
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

#define MR AF_GEMM_AVX512_MR
#define NR AF_GEMM_AVX512_NR

__attribute__((target("avx512f"))) void af_gemm_ukr_avx512(int kc, const float *ap,
                                                           const float *bp, float *c,
                                                           int64_t ldc, int load_c) {
  __m512 acc[MR][2]; // (MR, NR) tile, 16 floats per vector
  for (int r = 0; r < MR; r++) {
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    _mm_prefetch((const char *)(c + (int64_t)r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + (int64_t)r * ldc + 16), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int p = 0; p < kc; p++) {
    __m512 b0 = _mm512_load_ps(bp + (int64_t)p * NR);
    __m512 b1 = _mm512_load_ps(bp + (int64_t)p * NR + 16);
    const float *a = ap + (int64_t)p * MR; // (MR)
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      __m512 av = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
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
