/* Elementwise ops (CUDA): exact (erf) GELU and addition. Grid-stride loops,
 * float4 when every pointer is 16-byte aligned, a scalar tail otherwise. */
#include <stdint.h>

#include "cuda_check.h"

static __device__ __forceinline__ float gelu(float x) {
  // 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.functional.gelu; erff, not a tanh fit
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

// out, inp (n); n4 = number of leading float4s processed vectorised.
__global__ void gelu_kernel(float *__restrict__ out, const float *__restrict__ inp, int64_t n,
                            int64_t n4) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (int64_t i = i0; i < n4; i += stride) {
    float4 x = ((const float4 *)inp)[i];
    ((float4 *)out)[i] = make_float4(gelu(x.x), gelu(x.y), gelu(x.z), gelu(x.w));
  }
  for (int64_t i = 4 * n4 + i0; i < n; i += stride)
    out[i] = gelu(inp[i]);
}

// out, a, b (n). out may alias a or b (each element is read before it is written).
__global__ void add_kernel(float *out, const float *a, const float *b, int64_t n, int64_t n4) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (int64_t i = i0; i < n4; i += stride) {
    float4 x = ((const float4 *)a)[i], y = ((const float4 *)b)[i];
    ((float4 *)out)[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
  }
  for (int64_t i = 4 * n4 + i0; i < n; i += stride)
    out[i] = a[i] + b[i];
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

extern "C" void af_cuda_gelu_forward(af_cuda_context *ctx, float *out, const float *inp,
                                     int64_t n) {
  if (af_cuda_has_pending(ctx) || n <= 0)
    return;
  int64_t n4 = aligned16(out) && aligned16(inp) ? n / 4 : 0;
  const int threads = 256;
  gelu_kernel<<<af_cuda_blocks(ctx, n4 ? n4 : n, threads), threads, 0, ctx->stream>>>(out, inp,
                                                                                      n, n4);
  af_cuda_check_launch(ctx, "gelu_kernel");
}

extern "C" void af_cuda_add_forward(af_cuda_context *ctx, float *out, const float *a,
                                    const float *b, int64_t n) {
  if (af_cuda_has_pending(ctx) || n <= 0)
    return;
  int64_t n4 = aligned16(out) && aligned16(a) && aligned16(b) ? n / 4 : 0;
  const int threads = 256;
  add_kernel<<<af_cuda_blocks(ctx, n4 ? n4 : n, threads), threads, 0, ctx->stream>>>(out, a, b,
                                                                                     n, n4);
  af_cuda_check_launch(ctx, "add_kernel");
}
