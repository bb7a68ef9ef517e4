/* Attention-probability dropout for training (CUDA), the twin of
 * kernels/cpu/attention_dropout.c bit for bit: the same Philox words per
 * probability (mask index = its place in the probabilities layout, or
 * mask_base[b] + h L^2 + i L + j for a rank's share of a global batch), and
 * the CPU's float operations in the CPU's order with explicitly rounded
 * intrinsics (no FMA contraction; the C build does not contract either).
 *
 * One block per (sequence b, head h). A scratch copy Pd of the block's L x L
 * probabilities holds P_ij / (1 - p) where kept and -1 where dropped
 * (probabilities are >= 0, so the sign is the mask):
 *   forward   phase 1  Pd                                  thread per (i, j)
 *             phase 2  out_i = sum_j Pd_ij V_j (kept j)     thread per (i, d)
 *   backward  phase 1  Pd, and D_ij = dP_ij = (dO_i . V_j) / (1 - p) (kept; else 0)
 *             phase 2  rs_i = sum_j P_ij dP_ij (kept j), then
 *                      D_ij = P_ij (dP_ij - rs_i) scale    thread per row i
 *             phase 3  dQ_i += sum_j D_ij K_j, dK_j += sum_i D_ij Q_i,
 *                      dV_j += sum_i Pd_ij dO_i (kept)     thread per (row, d)
 * Each output element has one owner thread that adds in the CPU's order (j
 * for dQ and out, i for dK and dV): no atomics, the CPU's bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/philox.h"
#include "cuda_check.h"
#include "cuda_ops_backward.h"

#define ATD_THREADS 256

// probs offset of (b, h) in the probabilities layout: NH sum_{b'<b} L_b'^2 + h L_b^2.
static __device__ long long atd_offset(const int32_t *cu, int b, int h, int NH, int L) {
  long long off = 0;
  for (int bb = 0; bb < b; bb++) {
    const long long l = cu[bb + 1] - cu[bb];
    off += l * l;
  }
  return off * NH + (long long)h * L * L;
}

// Pd (L, L) of block (b, h): P / keep where kept, -1 where dropped.
static __device__ void atd_mask(float *Pd, const float *P, int L, uint64_t seed, uint64_t stream,
                                long long mbase, float keep, float inv_keep) {
  for (long long e = threadIdx.x; e < (long long)L * L; e += blockDim.x) {
    const uint64_t k = (uint64_t)(mbase + e);
    uint32_t w[4];
    af_philox_block(seed, stream, k / 4, w);
    Pd[e] = af_philox_uniform(w[k % 4]) < keep ? __fmul_rn(P[e], inv_keep) : -1.0f;
  }
}

__global__ void __launch_bounds__(ATD_THREADS)
    attention_dropout_fwd_kernel(float *__restrict__ out, float *__restrict__ Pd_all,
                                 const float *__restrict__ probs, const float *__restrict__ qkv,
                                 const int32_t *__restrict__ cu, const int64_t *mask_base, int NH,
                                 int C, int HS, float keep, float inv_keep, uint64_t seed,
                                 uint64_t stream) {
  const int b = blockIdx.x / NH, h = blockIdx.x - b * NH;
  const int t0 = cu[b], L = cu[b + 1] - t0;
  if (L <= 0)
    return;
  const long long off = atd_offset(cu, b, h, NH, L);
  const long long mbase = mask_base ? mask_base[b] + (long long)h * L * L : off;
  float *Pd = Pd_all + off;
  atd_mask(Pd, probs + off, L, seed, stream, mbase, keep, inv_keep);
  __syncthreads();
  const int64_t row = 3 * (int64_t)C;
  const float *V = qkv + (int64_t)t0 * row + 2 * C + h * HS; // stride row
  for (long long e = threadIdx.x; e < (long long)L * HS; e += blockDim.x) {
    const int i = (int)(e / HS), d = (int)(e - (long long)i * HS);
    float o = 0.f;
    for (int j = 0; j < L; j++) {
      const float pk = Pd[(long long)i * L + j];
      if (pk >= 0.f)
        o = __fadd_rn(o, __fmul_rn(pk, V[(int64_t)j * row + d]));
    }
    out[(int64_t)(t0 + i) * C + h * HS + d] = o;
  }
}

__global__ void __launch_bounds__(ATD_THREADS)
    attention_dropout_bwd_kernel(float *__restrict__ dqkv, float *__restrict__ Pd_all,
                                 float *__restrict__ D_all, const float *__restrict__ dout,
                                 const float *__restrict__ qkv, const float *__restrict__ probs,
                                 const int32_t *__restrict__ cu, const int64_t *mask_base, int NH,
                                 int C, int HS, float keep, float inv_keep, float scale,
                                 uint64_t seed, uint64_t stream) {
  const int b = blockIdx.x / NH, h = blockIdx.x - b * NH;
  const int t0 = cu[b], L = cu[b + 1] - t0;
  if (L <= 0)
    return;
  const long long off = atd_offset(cu, b, h, NH, L);
  const long long mbase = mask_base ? mask_base[b] + (long long)h * L * L : off;
  const float *P = probs + off;
  float *Pd = Pd_all + off, *D = D_all + off;
  const int64_t row = 3 * (int64_t)C;
  const float *Q = qkv + (int64_t)t0 * row + h * HS, *K = Q + C, *V = Q + 2 * C; // stride row
  float *dQ = dqkv + (int64_t)t0 * row + h * HS, *dK = dQ + C, *dV = dQ + 2 * C;  // stride row
  const float *dO = dout + (int64_t)t0 * C + h * HS;                              // stride C
  atd_mask(Pd, P, L, seed, stream, mbase, keep, inv_keep);
  __syncthreads();
  for (long long e = threadIdx.x; e < (long long)L * L; e += blockDim.x) { // phase 1
    const int i = (int)(e / L), j = (int)(e - (long long)i * L);
    float dp = 0.f;
    if (Pd[e] >= 0.f) {
      float dot = 0.f;
      for (int d = 0; d < HS; d++)
        dot = __fadd_rn(dot, __fmul_rn(dO[(int64_t)i * C + d], V[(int64_t)j * row + d]));
      dp = __fmul_rn(dot, inv_keep);
    }
    D[e] = dp;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < L; i += blockDim.x) { // phase 2
    const float *pi = P + (long long)i * L, *mi = Pd + (long long)i * L;
    float *di = D + (long long)i * L;
    float rs = 0.f;
    for (int j = 0; j < L; j++)
      if (mi[j] >= 0.f)
        rs = __fadd_rn(rs, __fmul_rn(pi[j], di[j]));
    for (int j = 0; j < L; j++)
      di[j] = __fmul_rn(__fmul_rn(pi[j], __fsub_rn(di[j], rs)), scale);
  }
  __syncthreads();
  for (long long e = threadIdx.x; e < (long long)L * HS; e += blockDim.x) { // phase 3
    const int r = (int)(e / HS), d = (int)(e - (long long)r * HS);
    float gq = dQ[(int64_t)r * row + d], gk = dK[(int64_t)r * row + d];
    float gv = dV[(int64_t)r * row + d];
    for (int j = 0; j < L; j++) // dQ_r: j order
      gq = __fadd_rn(gq, __fmul_rn(D[(long long)r * L + j], K[(int64_t)j * row + d]));
    for (int i = 0; i < L; i++) { // dK_r, dV_r: i order (the CPU's outer loop)
      gk = __fadd_rn(gk, __fmul_rn(D[(long long)i * L + r], Q[(int64_t)i * row + d]));
      const float pk = Pd[(long long)i * L + r];
      if (pk >= 0.f)
        gv = __fadd_rn(gv, __fmul_rn(pk, dO[(int64_t)i * C + d]));
    }
    dQ[(int64_t)r * row + d] = gq;
    dK[(int64_t)r * row + d] = gk;
    dV[(int64_t)r * row + d] = gv;
  }
}

/* Total of the probabilities layout (NH sum L_b^2): from the caller's host
 * copy cu_host, or else from the device's cu_seqlens (a stream sync). */
static long long atd_probs_size(af_cuda_context *ctx, const int32_t *cu_seqlens,
                                const int32_t *cu_host, int B, int NH) {
  int32_t *cu = cu_host ? NULL : (int32_t *)malloc(sizeof(int32_t) * (size_t)(B + 1));
  if (!cu_host && !cu) {
    af_cuda_record(ctx, AF_ERR_NOMEM, "attention dropout: out of host memory");
    return 0;
  }
  if (cu) {
    AF_CUDA_RECORD(ctx, cudaMemcpyAsync(cu, cu_seqlens, sizeof(int32_t) * (size_t)(B + 1),
                                        cudaMemcpyDeviceToHost, ctx->stream));
    AF_CUDA_RECORD(ctx, cudaStreamSynchronize(ctx->stream));
  }
  const int32_t *c = cu_host ? cu_host : cu;
  long long n = 0;
  for (int b = 0; b < B && !af_cuda_has_pending(ctx); b++) {
    const long long l = c[b + 1] - c[b];
    n += l * l;
  }
  free(cu);
  return n * NH;
}

static int atd_check(af_cuda_context *ctx, int B, int C, int NH, float p) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0 || NH <= 0)
    return 0;
  if (C % NH != 0 || !(p > 0.f && p < 1.f)) {
    af_cuda_record(ctx, AF_ERR_ARG, "attention dropout: C = %d, %d heads, p = %g", C, NH,
                   (double)p);
    return 0;
  }
  return 1;
}

extern "C" void af_cuda_attention_dropout_forward(af_cuda_context *ctx, float *out,
                                                  const float *probs, const float *qkv,
                                                  const int32_t *cu_seqlens, int B, int C, int NH,
                                                  float p, uint64_t seed, uint64_t stream,
                                                  const int64_t *mask_base,
                                                  const int32_t *cu_host) {
  if (!atd_check(ctx, B, C, NH, p))
    return;
  const long long n = atd_probs_size(ctx, cu_seqlens, cu_host, B, NH);
  if (af_cuda_has_pending(ctx) || n == 0)
    return;
  float *Pd = NULL;
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&Pd, sizeof(float) * (size_t)n, ctx->stream));
  if (af_cuda_has_pending(ctx))
    return;
  const float keep = 1.0f - p, inv_keep = 1.0f / keep;
  attention_dropout_fwd_kernel<<<(unsigned)B * NH, ATD_THREADS, 0, ctx->stream>>>(
      out, Pd, probs, qkv, cu_seqlens, mask_base, NH, C, C / NH, keep, inv_keep, seed, stream);
  af_cuda_check_launch(ctx, "attention_dropout_fwd_kernel");
  AF_CUDA_RECORD(ctx, cudaFreeAsync(Pd, ctx->stream));
}

extern "C" void af_cuda_attention_dropout_backward(af_cuda_context *ctx, float *dqkv,
                                                   const float *dout, const float *qkv,
                                                   const float *probs, const int32_t *cu_seqlens,
                                                   int B, int C, int NH, float p, uint64_t seed,
                                                   uint64_t stream, const int64_t *mask_base,
                                                   const int32_t *cu_host) {
  if (!atd_check(ctx, B, C, NH, p))
    return;
  const long long n = atd_probs_size(ctx, cu_seqlens, cu_host, B, NH);
  if (af_cuda_has_pending(ctx) || n == 0)
    return;
  float *S = NULL; // Pd (n), then D (n)
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&S, sizeof(float) * (size_t)n * 2, ctx->stream));
  if (af_cuda_has_pending(ctx))
    return;
  const int HS = C / NH;
  const float keep = 1.0f - p, inv_keep = 1.0f / keep, scale = 1.0f / sqrtf((float)HS);
  attention_dropout_bwd_kernel<<<(unsigned)B * NH, ATD_THREADS, 0, ctx->stream>>>(
      dqkv, S, S + n, dout, qkv, probs, cu_seqlens, mask_base, NH, C, HS, keep, inv_keep, scale,
      seed, stream);
  af_cuda_check_launch(ctx, "attention_dropout_bwd_kernel");
  AF_CUDA_RECORD(ctx, cudaFreeAsync(S, ctx->stream));
}
