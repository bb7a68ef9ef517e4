/* The bf16 inference kernels (CUDA; ops.h "bf16 inference ops"); the CPU twins
 * are kernels/cpu/bf16.c. bf16 tensors are uint16_t in memory, converted with
 * __float2bfloat16_rn (round to nearest even, as af_bf16_from_f32).
 *  - cast: grid-stride, one element per thread-iteration.
 *  - bias + erf-GELU + cast: our own kernel, because cuBLASLt's GELU epilogue
 *    is documented as the tanh approximation, not BERT's erf GELU.
 *  - add + LayerNorm (+ cast): one warp per row, the two-pass fp32 statistics
 *    of layernorm.cu over a + b, the bf16 copy written beside the fp32 row.
 *  - mean pool + L2 norm: one block per sequence; threads own channels, walk
 *    the tokens in order (the CPU twin's order), then a block reduction of the
 *    squares in double (as af_cpu_l2norm_forward) and the scaling. */
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"

#define BF_LN_WARPS 8     // rows per block of 256 threads
#define BF_POOL_THREADS 128

static __device__ __forceinline__ uint16_t to_bf16(float x) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// out (n) = bf16(inp (n)).
__global__ void cast_bf16_kernel(uint16_t *__restrict__ out, const float *__restrict__ inp,
                                 int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    out[i] = to_bf16(inp[i]);
}

// out (N, C) = bf16(gelu(inp (N, C) + bias (C))), erf GELU as elementwise.cu.
__global__ void bias_gelu_bf16_kernel(uint16_t *__restrict__ out, const float *__restrict__ inp,
                                      const float *__restrict__ bias, int N, int C) {
  const int64_t n = (int64_t)N * C;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x) {
    float x = inp[e] + bias[e % C];
    out[e] = to_bf16(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
  }
}

// out (N, C) = LN(a + b) (b may be NULL); out_bf16 (N, C) or NULL. out may alias
// a or b: every element is read by the lane that later writes it.
__global__ void add_layernorm_kernel(float *out, uint16_t *__restrict__ out_bf16, const float *a,
                                     const float *b, const float *__restrict__ w,
                                     const float *__restrict__ beta, int N, int C, float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * BF_LN_WARPS + (threadIdx.x >> 5);
  if (row >= N)
    return; // the whole warp leaves together
  const float *x = a + (int64_t)row * C;             // (C)
  const float *r = b ? b + (int64_t)row * C : NULL;  // (C)
  float *y = out + (int64_t)row * C;                 // (C)
  float s = 0.f;
  for (int c = lane; c < C; c += 32)
    s += r ? x[c] + r[c] : x[c];
  const float m = warp_sum(s) / (float)C;
  float v = 0.f;
  for (int c = lane; c < C; c += 32) {
    float d = (r ? x[c] + r[c] : x[c]) - m;
    v += d * d;
  }
  const float rs = 1.0f / sqrtf(warp_sum(v) / (float)C + eps);
  for (int c = lane; c < C; c += 32) {
    float h = r ? x[c] + r[c] : x[c];
    float o = (h - m) * rs * w[c] + beta[c];
    y[c] = o;
    if (out_bf16)
      out_bf16[(int64_t)row * C + c] = to_bf16(o);
  }
}

// out (B, C) = l2normalize(mean of inp over each sequence); grid B, block 128.
__global__ void mean_pool_l2norm_kernel(float *__restrict__ out, const float *__restrict__ inp,
                                        const int32_t *__restrict__ cu_seqlens, int C) {
  __shared__ double partial[BF_POOL_THREADS / 32];
  const int b = blockIdx.x, tid = threadIdx.x;
  const int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
  const float inv_L = 1.0f / (float)(L > 0 ? L : 1); // an empty sequence: a zero row
  float *o = out + (int64_t)b * C;                    // (C)
  double ss = 0.0;
  for (int c = tid; c < C; c += BF_POOL_THREADS) {
    float s = 0.f;
    for (int t = 0; t < L; t++)
      s += inp[(int64_t)(t0 + t) * C + c];
    s *= inv_L;
    o[c] = s;
    ss += (double)s * s;
  }
  for (int k = 16; k > 0; k >>= 1)
    ss += __shfl_xor_sync(0xffffffffu, ss, k);
  if ((tid & 31) == 0)
    partial[tid >> 5] = ss;
  __syncthreads();
  double tot = 0.0;
  for (int k = 0; k < BF_POOL_THREADS / 32; k++)
    tot += partial[k];
  const float nrm = (float)sqrt(tot);
  const float inv = 1.0f / (nrm > 1e-12f ? nrm : 1e-12f); // as torch.nn.functional.normalize
  for (int c = tid; c < C; c += BF_POOL_THREADS)
    o[c] *= inv; // this thread's own writes above
}

extern "C" void af_cuda_cast_bf16(af_cuda_context *ctx, uint16_t *out, const float *inp,
                                  int64_t n) {
  if (af_cuda_has_pending(ctx) || n <= 0)
    return;
  cast_bf16_kernel<<<af_cuda_blocks(ctx, n, 256), 256, 0, ctx->stream>>>(out, inp, n);
  af_cuda_check_launch(ctx, "cast_bf16_kernel");
}

extern "C" void af_cuda_bias_gelu_bf16_forward(af_cuda_context *ctx, uint16_t *out,
                                               const float *inp, const float *bias, int N, int C) {
  if (af_cuda_has_pending(ctx) || N <= 0 || C <= 0)
    return;
  bias_gelu_bf16_kernel<<<af_cuda_blocks(ctx, (int64_t)N * C, 256), 256, 0, ctx->stream>>>(
      out, inp, bias, N, C);
  af_cuda_check_launch(ctx, "bias_gelu_bf16_kernel");
}

extern "C" void af_cuda_add_layernorm_forward(af_cuda_context *ctx, float *out, uint16_t *out_bf16,
                                              const float *a, const float *b, const float *w,
                                              const float *beta, int N, int C, float eps) {
  if (af_cuda_has_pending(ctx) || N <= 0 || C <= 0)
    return;
  unsigned blocks = (unsigned)((N + BF_LN_WARPS - 1) / BF_LN_WARPS);
  add_layernorm_kernel<<<blocks, BF_LN_WARPS * 32, 0, ctx->stream>>>(out, out_bf16, a, b, w, beta,
                                                                     N, C, eps);
  af_cuda_check_launch(ctx, "add_layernorm_kernel");
}

extern "C" void af_cuda_mean_pool_l2norm_forward(af_cuda_context *ctx, float *out,
                                                 const float *inp, const int32_t *cu_seqlens,
                                                 int B, int C) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0)
    return;
  mean_pool_l2norm_kernel<<<(unsigned)B, BF_POOL_THREADS, 0, ctx->stream>>>(out, inp, cu_seqlens,
                                                                            C);
  af_cuda_check_launch(ctx, "mean_pool_l2norm_kernel");
}
