/* The trainer's device memory ops and token-position dropout (CUDA;
 * ops_backward.h: af_dev_zero, af_dev_copy, af_op_dropout_tokens_*). The
 * dropout is bit-equal to kernels/cpu/dropout_tokens.c: element c of token t
 * draws Philox word g % 4 of block g / 4 with g = gtok[t] C + c, and the
 * backward's dinp + dout * scale is two rounded operations, as the C build. */
#include <stdint.h>

#include "base/philox.h"
#include "cuda_check.h"
#include "cuda_ops_backward.h"

extern "C" void af_cuda_zero(af_cuda_context *ctx, void *dst, size_t bytes) {
  if (af_cuda_has_pending(ctx) || bytes == 0)
    return;
  AF_CUDA_RECORD(ctx, cudaMemsetAsync(dst, 0, bytes, ctx->stream));
}

extern "C" void *af_cuda_stream(af_cuda_context *ctx) { return (void *)ctx->stream; }

extern "C" void af_cuda_copy(af_cuda_context *ctx, void *dst, const void *src, size_t bytes) {
  if (af_cuda_has_pending(ctx) || bytes == 0)
    return;
  AF_CUDA_RECORD(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
}

// x (T, C): one thread per element; dout NULL: forward in place, else x += mask dout scale.
__global__ void dropout_tokens_kernel(float *__restrict__ x, const float *__restrict__ dout,
                                      const int32_t *__restrict__ gtok, int T, int C, float keep,
                                      float scale, uint64_t seed, uint64_t stream) {
  const int64_t n = (int64_t)T * C;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x) {
    const int t = (int)(e / C), c = (int)(e - (int64_t)t * C);
    const uint64_t g = (uint64_t)gtok[t] * (uint64_t)C + (uint64_t)c;
    uint32_t w[4];
    af_philox_block(seed, stream, g / 4, w);
    const int kept = af_philox_uniform(w[g % 4]) < keep;
    if (!dout)
      x[e] = kept ? __fmul_rn(x[e], scale) : 0.0f;
    else if (kept)
      x[e] = __fadd_rn(x[e], __fmul_rn(dout[e], scale));
  }
}

__global__ void accumulate_tokens_kernel(float *__restrict__ x, const float *__restrict__ dout,
                                         int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    x[i] = __fadd_rn(x[i], dout[i]);
}

extern "C" void af_cuda_dropout_tokens(af_cuda_context *ctx, float *x, const float *dout,
                                       const int32_t *gtok, int T, int C, float p, uint64_t seed,
                                       uint64_t stream) {
  if (af_cuda_has_pending(ctx) || T <= 0 || C <= 0)
    return;
  const int64_t n = (int64_t)T * C;
  if (p <= 0.0f) {
    if (dout) {
      accumulate_tokens_kernel<<<af_cuda_blocks(ctx, n, 256), 256, 0, ctx->stream>>>(x, dout, n);
      af_cuda_check_launch(ctx, "accumulate_tokens_kernel");
    }
    return;
  }
  const float keep = 1.0f - p, scale = 1.0f / keep;
  dropout_tokens_kernel<<<af_cuda_blocks(ctx, n, 256), 256, 0, ctx->stream>>>(
      x, dout, gtok, T, C, keep, scale, seed, stream);
  af_cuda_check_launch(ctx, "dropout_tokens_kernel");
}
