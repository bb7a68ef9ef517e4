/* Micro-kernels of kernels/cpu/gemm.c (internal).
 *
 * A micro-kernel multiplies one packed A micro-panel ap (kc, MR) by one packed
 * B micro-panel bp (kc, NR), both 64-byte aligned, into a full MR x NR tile of
 * C (row-major, leading dimension ldc): c = ap^T . bp (load_c = 0) or
 * c += ap^T . bp (load_c = 1). Each element is one accumulator summed over
 * p = 0..kc-1 in order. */
#ifndef AF_CPU_GEMM_KERNELS_H
#define AF_CPU_GEMM_KERNELS_H

#include <stdint.h>

typedef void (*af_gemm_ukr_fn)(int kc, const float *ap, const float *bp, float *c, int64_t ldc,
                               int load_c);

#define AF_GEMM_AVX512_MR 12
#define AF_GEMM_AVX512_NR 32
#define AF_GEMM_AVX2_MR 6
#define AF_GEMM_AVX2_NR 16
#define AF_GEMM_SCALAR_MR 4
#define AF_GEMM_SCALAR_NR 8

void af_gemm_ukr_avx512(int kc, const float *ap, const float *bp, float *c, int64_t ldc,
                        int load_c);
void af_gemm_ukr_avx2(int kc, const float *ap, const float *bp, float *c, int64_t ldc,
                      int load_c);
/* bf16: kc counts bf16 pairs along K, the panels hold 32-bit pairs (see gemm_bf16.c). */
void af_gemm_ukr_avx512_bf16(int kp, const float *ap, const float *bp, float *c, int64_t ldc,
                             int load_c);
void af_gemm_ukr_scalar(int kc, const float *ap, const float *bp, float *c, int64_t ldc,
                        int load_c);

#endif
