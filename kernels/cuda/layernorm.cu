/* LayerNorm forward (CUDA): one warp per row, two passes like the CPU twin
 * (the mean, then the centred variance; the row is re-read from L1/L2, which
 * for C = 384 is 1.5 KB), then the normalised output. Saves mean and rstd
 * when the pointers are given. */
#include <stdint.h>

#include "cuda_check.h"

#define LN_WARPS 8 // rows per block of 256 threads

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// out, inp (N, C); w, b (C); mean, rstd (N) or NULL.
__global__ void layernorm_kernel(float *__restrict__ out, float *__restrict__ mean,
                                 float *__restrict__ rstd, const float *__restrict__ inp,
                                 const float *__restrict__ w, const float *__restrict__ b, int N,
                                 int C, float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
  if (row >= N)
    return; // the whole warp leaves together: no shuffle is left half-populated
  const float *x = inp + (int64_t)row * C; // (C)
  float *y = out + (int64_t)row * C;       // (C)
  float s = 0.f;
  for (int c = lane; c < C; c += 32)
    s += x[c];
  const float m = warp_sum(s) / (float)C;
  float v = 0.f;
  for (int c = lane; c < C; c += 32) {
    float d = x[c] - m;
    v += d * d;
  }
  const float r = 1.0f / sqrtf(warp_sum(v) / (float)C + eps);
  for (int c = lane; c < C; c += 32)
    y[c] = (x[c] - m) * r * w[c] + b[c];
  if (lane == 0) {
    if (mean)
      mean[row] = m;
    if (rstd)
      rstd[row] = r;
  }
}

extern "C" void af_cuda_layernorm_forward(af_cuda_context *ctx, float *out, float *mean,
                                          float *rstd, const float *inp, const float *w,
                                          const float *b, int N, int C, float eps) {
  if (af_cuda_has_pending(ctx) || N <= 0 || C <= 0)
    return;
  unsigned blocks = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
  layernorm_kernel<<<blocks, LN_WARPS * 32, 0, ctx->stream>>>(out, mean, rstd, inp, w, b, N, C,
                                                              eps);
  af_cuda_check_launch(ctx, "layernorm_kernel");
}
