/* The linear layer of the CUDA bf16 table (training, af_cuda_bf16_backend_ops):
 * the fp32 op's interface, with every GEMM input rounded to bf16 (nearest
 * even) and fp32 accumulation on the tensor cores; bias, bias gradient and
 * outputs stay fp32. The trainer passes its persistent bf16 working copy of
 * the weights (the _w16 entries: AdamW refreshes it in the pass that writes
 * the fp32 master, kernels/cuda/adamw.cu); the fp32-weight entries (_bf16in,
 * the op interface's) round w per call into stream-ordered scratch and run
 * the same GEMMs, so both give the same bits. The CPU twin
 * is af_cpu_bf16_backend_ops (the vdpbf16ps GEMM): same rounding of the
 * inputs, fp32 sums in another order.
 *   forward   out = bf16(inp) bf16(w)^T + bias  (cuBLASLt with the bias epilogue,
 *             af_cuda_linear_bf16_forward of linear_bf16.cu)
 *   backward  dinp += bf16(dout) bf16(w);  dw += bf16(dout)^T bf16(inp)
 *             (cublasGemmEx, bf16 in, fp32 out, CUBLAS_COMPUTE_32F, beta = 1);
 *             dbias += column sums of the fp32 dout (linear_backward.cu). */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

/* bf16 copies (stream-ordered scratch, freed by the caller) of n floats. */
static uint16_t *to_bf16(af_cuda_context *ctx, const float *x, int64_t n) {
  uint16_t *b = NULL;
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&b, sizeof(uint16_t) * (size_t)n, ctx->stream));
  if (af_cuda_has_pending(ctx))
    return NULL;
  af_cuda_cast_bf16(ctx, b, x, n);
  return b;
}

static void free_async(af_cuda_context *ctx, void *p) {
  if (p)
    AF_CUDA_RECORD(ctx, cudaFreeAsync(p, ctx->stream));
}

extern "C" void af_cuda_linear_forward_w16(af_cuda_context *ctx, float *out, const float *inp,
                                           const uint16_t *w16, const float *bias, int N, int IC,
                                           int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || OC <= 0)
    return;
  if (IC <= 0) {
    af_cuda_linear_forward(ctx, out, NULL, NULL, bias, N, 0, OC);
    return;
  }
  uint16_t *xb = to_bf16(ctx, inp, (int64_t)N * IC); // (N, IC)
  if (xb)
    af_cuda_linear_bf16_forward(ctx, out, xb, w16, bias, N, IC, OC);
  free_async(ctx, xb);
}

extern "C" void af_cuda_linear_backward_w16(af_cuda_context *ctx, float *dinp, float *dw,
                                            float *dbias, const float *dout, const float *inp,
                                            const uint16_t *w16, int N, int IC, int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || IC <= 0 || OC <= 0)
    return;
  const float one = 1.0f;
  uint16_t *db = to_bf16(ctx, dout, (int64_t)N * OC); // (N, OC)
  // dinp^T (IC, N) += W^T (IC, OC) dout^T (OC, N), column-major views
  if (db && dinp)
    AF_CUBLAS_RECORD(ctx, cublasGemmEx(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &one, w16,
                                       CUDA_R_16BF, IC, db, CUDA_R_16BF, OC, &one, dinp,
                                       CUDA_R_32F, IC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (db && dw) {
    uint16_t *xb = to_bf16(ctx, inp, (int64_t)N * IC); // (N, IC)
    // dW^T (IC, OC) += inp^T (IC, N) dout (N, OC)
    if (xb)
      AF_CUBLAS_RECORD(ctx, cublasGemmEx(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &one,
                                         xb, CUDA_R_16BF, IC, db, CUDA_R_16BF, OC, &one, dw,
                                         CUDA_R_32F, IC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    free_async(ctx, xb);
  }
  free_async(ctx, db);
  if (dbias) // the fp32 column sums of dout
    af_cuda_linear_backward(ctx, NULL, NULL, dbias, dout, inp, NULL, N, IC, OC);
}

/* The fp32-weight entries: w rounded into scratch, then the w16 paths. */
extern "C" void af_cuda_linear_forward_bf16in(af_cuda_context *ctx, float *out, const float *inp,
                                              const float *w, const float *bias, int N, int IC,
                                              int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || OC <= 0)
    return;
  if (IC <= 0) {
    af_cuda_linear_forward(ctx, out, NULL, NULL, bias, N, 0, OC);
    return;
  }
  uint16_t *wb = to_bf16(ctx, w, (int64_t)OC * IC); // (OC, IC)
  if (wb)
    af_cuda_linear_forward_w16(ctx, out, inp, wb, bias, N, IC, OC);
  free_async(ctx, wb);
}

extern "C" void af_cuda_linear_backward_bf16in(af_cuda_context *ctx, float *dinp, float *dw,
                                               float *dbias, const float *dout, const float *inp,
                                               const float *w, int N, int IC, int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || IC <= 0 || OC <= 0)
    return;
  uint16_t *wb = dinp ? to_bf16(ctx, w, (int64_t)OC * IC) : NULL; // (OC, IC)
  if (!dinp || wb)
    af_cuda_linear_backward_w16(ctx, dinp, dw, dbias, dout, inp, wb, N, IC, OC);
  free_async(ctx, wb);
}
