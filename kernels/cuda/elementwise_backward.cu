/* Elementwise backward (CUDA): exact (erf) GELU and the residual add, one
 * element per thread (grid-stride), no reductions. */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

// dinp, dout, inp (n): dinp += dout * (Phi(x) + x phi(x)), as the CPU twin.
__global__ void gelu_bwd_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                const float *__restrict__ inp, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.0f + erff(x * inv_sqrt2));
    const float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

// da, db (n) or NULL; dout (n).
__global__ void add_bwd_kernel(float *__restrict__ da, float *__restrict__ db,
                               const float *__restrict__ dout, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (da)
      da[i] += dout[i];
    if (db)
      db[i] += dout[i];
  }
}

extern "C" void af_cuda_gelu_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                                      const float *inp, int64_t n) {
  if (af_cuda_has_pending(ctx) || n <= 0)
    return;
  gelu_bwd_kernel<<<af_cuda_blocks(ctx, n, 256), 256, 0, ctx->stream>>>(dinp, dout, inp, n);
  af_cuda_check_launch(ctx, "gelu_bwd_kernel");
}

extern "C" void af_cuda_add_backward(af_cuda_context *ctx, float *da, float *db,
                                     const float *dout, int64_t n) {
  if (af_cuda_has_pending(ctx) || n <= 0 || (!da && !db))
    return;
  add_bwd_kernel<<<af_cuda_blocks(ctx, n, 256), 256, 0, ctx->stream>>>(da, db, dout, n);
  af_cuda_check_launch(ctx, "add_bwd_kernel");
}
