/* Dropout forward and backward (CUDA), bit-equal to kernels/cpu/dropout.c:
 * one thread per Philox block of 4 elements draws the same 4 words
 * (base/philox.h is shared), and the backward's dinp + dout * scale is two
 * rounded operations (__fmul_rn, __fadd_rn) as in the C build, which does not
 * contract to FMA. */
#include <stdint.h>

#include "base/philox.h"
#include "cuda_check.h"
#include "cuda_ops_backward.h"

// out, inp (n); out may alias inp.
__global__ void dropout_fwd_kernel(float *out, const float *inp, int64_t n, float keep,
                                   float scale, uint64_t seed, uint64_t stream) {
  const int64_t nb = (n + 3) / 4, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < nb; blk += step) {
    uint32_t w[4];
    af_philox_block(seed, stream, (uint64_t)blk, w);
    for (int k = 0; k < 4 && blk * 4 + k < n; k++) {
      const int64_t i = blk * 4 + k;
      out[i] = af_philox_uniform(w[k]) < keep ? __fmul_rn(inp[i], scale) : 0.0f;
    }
  }
}

// dinp, dout (n).
__global__ void dropout_bwd_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                   int64_t n, float keep, float scale, uint64_t seed,
                                   uint64_t stream) {
  const int64_t nb = (n + 3) / 4, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < nb; blk += step) {
    uint32_t w[4];
    af_philox_block(seed, stream, (uint64_t)blk, w);
    for (int k = 0; k < 4 && blk * 4 + k < n; k++) {
      const int64_t i = blk * 4 + k;
      if (af_philox_uniform(w[k]) < keep)
        dinp[i] = __fadd_rn(dinp[i], __fmul_rn(dout[i], scale));
    }
  }
}

__global__ void accumulate_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                  int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dinp[i] = __fadd_rn(dinp[i], dout[i]);
}

extern "C" void af_cuda_dropout_forward(af_cuda_context *ctx, float *out, const float *inp,
                                        int64_t n, float p_drop, uint64_t seed, uint64_t stream) {
  if (af_cuda_has_pending(ctx) || n <= 0)
    return;
  if (p_drop <= 0.0f) { // identity
    if (out != inp)
      AF_CUDA_RECORD(ctx, cudaMemcpyAsync(out, inp, (size_t)n * sizeof(float),
                                          cudaMemcpyDeviceToDevice, ctx->stream));
    return;
  }
  const float keep = 1.0f - p_drop, scale = 1.0f / keep;
  dropout_fwd_kernel<<<af_cuda_blocks(ctx, (n + 3) / 4, 256), 256, 0, ctx->stream>>>(
      out, inp, n, keep, scale, seed, stream);
  af_cuda_check_launch(ctx, "dropout_fwd_kernel");
}

extern "C" void af_cuda_dropout_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                                         int64_t n, float p_drop, uint64_t seed, uint64_t stream) {
  if (af_cuda_has_pending(ctx) || n <= 0)
    return;
  if (p_drop <= 0.0f) {
    accumulate_kernel<<<af_cuda_blocks(ctx, n, 256), 256, 0, ctx->stream>>>(dinp, dout, n);
    af_cuda_check_launch(ctx, "accumulate_kernel");
    return;
  }
  const float keep = 1.0f - p_drop, scale = 1.0f / keep;
  dropout_bwd_kernel<<<af_cuda_blocks(ctx, (n + 3) / 4, 256), 256, 0, ctx->stream>>>(
      dinp, dout, n, keep, scale, seed, stream);
  af_cuda_check_launch(ctx, "dropout_bwd_kernel");
}
