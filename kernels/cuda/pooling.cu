/* Sequence pooling and L2 normalisation (CUDA).
 * mean/cls: grid (B, ceil(C / 128)); a thread owns one channel of one
 * sequence and walks its tokens in order (the same summation order as the
 * CPU twin; reads are coalesced across channels).
 * l2norm: one warp per row, the sum of squares in double like the CPU. */
#include <stdint.h>

#include "cuda_check.h"

#define POOL_THREADS 128
#define L2_WARPS 8

// out (B, C); inp (T, C); cu_seqlens (B + 1) on the device.
__global__ void mean_pool_kernel(float *__restrict__ out, const float *__restrict__ inp,
                                 const int32_t *__restrict__ cu_seqlens, int C) {
  const int b = blockIdx.x, c = blockIdx.y * POOL_THREADS + threadIdx.x;
  if (c >= C)
    return;
  const int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
  float s = 0.f;
  for (int t = 0; t < L; t++)
    s += inp[(int64_t)(t0 + t) * C + c];
  // sentence-transformers divides by max(count, 1e-9): an empty sequence gives 0
  out[(int64_t)b * C + c] = s * (1.0f / (float)(L > 0 ? L : 1));
}

__global__ void cls_pool_kernel(float *__restrict__ out, const float *__restrict__ inp,
                                const int32_t *__restrict__ cu_seqlens, int C) {
  const int b = blockIdx.x, c = blockIdx.y * POOL_THREADS + threadIdx.x;
  if (c >= C)
    return;
  // An empty sequence has no first token (the last one's would be past the
  // end of inp): a zero row, as mean pooling and the CPU twin give.
  const int t0 = cu_seqlens[b], empty = cu_seqlens[b + 1] == t0;
  out[(int64_t)b * C + c] = empty ? 0.f : inp[(int64_t)t0 * C + c];
}

// out, inp (N, C); norms (N) or NULL.
__global__ void l2norm_kernel(float *__restrict__ out, float *__restrict__ norms,
                              const float *__restrict__ inp, int N, int C) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * L2_WARPS + (threadIdx.x >> 5);
  if (row >= N)
    return;
  const float *x = inp + (int64_t)row * C; // (C)
  float *y = out + (int64_t)row * C;       // (C)
  double ss = 0.0;
  for (int c = lane; c < C; c += 32)
    ss += (double)x[c] * x[c];
  for (int o = 16; o > 0; o >>= 1)
    ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float nrm = (float)sqrt(ss);
  const float inv = 1.0f / (nrm > 1e-12f ? nrm : 1e-12f); // as torch.nn.functional.normalize
  for (int c = lane; c < C; c += 32)
    y[c] = x[c] * inv;
  if (norms && lane == 0)
    norms[row] = nrm;
}

static dim3 pool_grid(int B, int C) {
  return dim3((unsigned)B, (unsigned)((C + POOL_THREADS - 1) / POOL_THREADS));
}

extern "C" void af_cuda_mean_pool_forward(af_cuda_context *ctx, float *out, const float *inp,
                                          const int32_t *cu_seqlens, int B, int C) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0)
    return;
  mean_pool_kernel<<<pool_grid(B, C), POOL_THREADS, 0, ctx->stream>>>(out, inp, cu_seqlens, C);
  af_cuda_check_launch(ctx, "mean_pool_kernel");
}

extern "C" void af_cuda_cls_pool_forward(af_cuda_context *ctx, float *out, const float *inp,
                                         const int32_t *cu_seqlens, int B, int C) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0)
    return;
  cls_pool_kernel<<<pool_grid(B, C), POOL_THREADS, 0, ctx->stream>>>(out, inp, cu_seqlens, C);
  af_cuda_check_launch(ctx, "cls_pool_kernel");
}

extern "C" void af_cuda_l2norm_forward(af_cuda_context *ctx, float *out, float *norms,
                                       const float *inp, int N, int C) {
  if (af_cuda_has_pending(ctx) || N <= 0 || C <= 0)
    return;
  unsigned blocks = (unsigned)((N + L2_WARPS - 1) / L2_WARPS);
  l2norm_kernel<<<blocks, L2_WARPS * 32, 0, ctx->stream>>>(out, norms, inp, N, C);
  af_cuda_check_launch(ctx, "l2norm_kernel");
}
