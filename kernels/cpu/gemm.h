/* Our own single-precision GEMM for the encoder's and trainer's matrix products
 * (docs/performance.md): packed panels, cache blocking, register-blocked FMA
 * micro-kernels for AVX-512, AVX2+FMA and portable C, chosen at run time with
 * __builtin_cpu_supports. No BLAS: results do not depend on OPENBLAS_CORETYPE.
 *
 * C (M, N) = A (M, K) . B (K, N)            (accumulate = 0)
 * C (M, N) += A (M, K) . B (K, N)           (accumulate = 1)
 * with A's element (i, p) at a[i*rsa + p*csa] and B's (p, j) at b[p*rsb + j*csb]
 * (any transposition is a choice of strides); C is row-major with leading
 * dimension ldc. Each C element is summed over p in the same order whatever the
 * thread count (threads split rows and columns, never K), so the result does not
 * depend on the number of threads. OpenMP-parallel. */
#ifndef AF_CPU_GEMM_H
#define AF_CPU_GEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  AF_GEMM_AUTO = 0,   /* the best this CPU supports */
  AF_GEMM_SCALAR = 1, /* portable C */
  AF_GEMM_AVX2 = 2,   /* AVX2 + FMA, 6 x 16 tiles */
  AF_GEMM_AVX512 = 3, /* AVX-512F, 12 x 32 tiles */
  AF_GEMM_AVX512_BF16 = 4, /* A and B rounded to bf16 (nearest even) while packing, fp32
                              accumulation with vdpbf16ps (AVX512_BF16), 12 x 32 tiles.
                              Never picked by AUTO: asked for by the bf16 mode only. */
} af_gemm_isa;

/* Nonzero if this CPU (and build) can run the path. AUTO and SCALAR always can. */
int af_gemm_isa_supported(af_gemm_isa isa);
/* The path AUTO picks: AVX512 > AVX2 > SCALAR. */
af_gemm_isa af_gemm_isa_best(void);
const char *af_gemm_isa_name(af_gemm_isa isa);

/* C (+)= A . B on the given path (AUTO = best fp32 path; an unsupported path
 * falls back to the best supported one below it, bf16 to fp32 AVX-512: callers
 * of the bf16 path check af_gemm_isa_supported first). M, N, K >= 0. */
void af_gemm_isa_run(af_gemm_isa isa, int M, int N, int K, const float *a, int64_t rsa,
                     int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c,
                     int64_t ldc, int accumulate);

/* af_gemm_isa_run on the best path. */
void af_sgemm(int M, int N, int K, const float *a, int64_t rsa, int64_t csa, const float *b,
              int64_t rsb, int64_t csb, float *c, int64_t ldc, int accumulate);

#ifdef __cplusplus
}
#endif
#endif
