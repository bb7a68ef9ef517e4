/* Pooling and L2-normalisation backward (CUDA). Sequences own disjoint token
 * ranges and rows are independent, so no two threads write one element. */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

// One block per sequence b, threads over (token, column): dinp (T, C) += dout[b] / L.
__global__ void mean_pool_bwd_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                     const int32_t *__restrict__ cu, int C) {
  const int b = blockIdx.x, t0 = cu[b], L = cu[b + 1] - t0;
  const float inv = 1.0f / (float)(L > 0 ? L : 1); // as the forward
  const float *g = dout + (int64_t)b * C;          // (C)
  for (int64_t e = threadIdx.x; e < (int64_t)L * C; e += blockDim.x) {
    const int t = (int)(e / C), c = (int)(e - (int64_t)t * C);
    float *dx = dinp + (int64_t)(t0 + t) * C + c;
    *dx = __fadd_rn(*dx, __fmul_rn(g[c], inv));
  }
}

__global__ void cls_pool_bwd_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                    const int32_t *__restrict__ cu, int C) {
  const int b = blockIdx.x;
  if (cu[b + 1] == cu[b])
    return; // an empty sequence pooled nothing
  float *dx = dinp + (int64_t)cu[b] * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dx[c] += dout[(int64_t)b * C + c];
}

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp per row: dinp (N, C) += (dout - y (y . dout)) / n, or dout * 1e12 below the clamp.
__global__ void l2norm_bwd_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                  const float *__restrict__ out, const float *__restrict__ norms,
                                  int N, int C) {
  const int lane = threadIdx.x & 31, row = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= N)
    return;
  const float *y = out + (int64_t)row * C, *dy = dout + (int64_t)row * C; // (C)
  float *dx = dinp + (int64_t)row * C;                                     // (C)
  const float n = norms[row];
  if (n > 1e-12f) {
    float s = 0.f;
    for (int c = lane; c < C; c += 32)
      s += y[c] * dy[c];
    const float ydy = warp_sum(s), inv = 1.0f / n;
    for (int c = lane; c < C; c += 32)
      dx[c] += (dy[c] - y[c] * ydy) * inv;
  } else {
    for (int c = lane; c < C; c += 32)
      dx[c] += dy[c] * 1e12f;
  }
}

extern "C" void af_cuda_mean_pool_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                                           const int32_t *cu_seqlens, int B, int C) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0)
    return;
  mean_pool_bwd_kernel<<<(unsigned)B, 256, 0, ctx->stream>>>(dinp, dout, cu_seqlens, C);
  af_cuda_check_launch(ctx, "mean_pool_bwd_kernel");
}

extern "C" void af_cuda_cls_pool_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                                          const int32_t *cu_seqlens, int B, int C) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0)
    return;
  cls_pool_bwd_kernel<<<(unsigned)B, 128, 0, ctx->stream>>>(dinp, dout, cu_seqlens, C);
  af_cuda_check_launch(ctx, "cls_pool_bwd_kernel");
}

extern "C" void af_cuda_l2norm_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                                        const float *out, const float *norms, int N, int C) {
  if (af_cuda_has_pending(ctx) || N <= 0 || C <= 0)
    return;
  const int warps = 8;
  l2norm_bwd_kernel<<<(unsigned)((N + warps - 1) / warps), warps * 32, 0, ctx->stream>>>(
      dinp, dout, out, norms, N, C);
  af_cuda_check_launch(ctx, "l2norm_bwd_kernel");
}
