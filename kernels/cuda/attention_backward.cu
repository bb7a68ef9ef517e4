/* Attention backward over packed sequences (CUDA), from the probabilities the
 * forward saved. One block per (sequence b, head h), in three phases over a
 * scratch copy D of the block's L x L matrix (same layout as probs):
 *   A  D_ij = dP_ij = dO_i . V_j                       thread per (i, j)
 *   B  D_ij = P_ij (dP_ij - sum_k P_ik dP_ik) * scale   thread per row i
 *   C  dQ_i += sum_j D_ij K_j,  dK_i += sum_j D_ji Q_j,  dV_i += sum_j P_ji dO_j
 *                                                     thread per (i, dim)
 * Every output element has one owner thread and sums in j order: no atomics,
 * the same bits every run. Any sequence length; head size any (<= C). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

#define ATB_THREADS 256

__global__ void __launch_bounds__(ATB_THREADS)
    attention_bwd_kernel(float *__restrict__ dqkv, float *__restrict__ D,
                         const float *__restrict__ dout, const float *__restrict__ qkv,
                         const float *__restrict__ probs, const int32_t *__restrict__ cu, int NH,
                         int C, int HS, float scale) {
  const int b = blockIdx.x / NH, h = blockIdx.x - b * NH;
  const int t0 = cu[b], L = cu[b + 1] - t0;
  if (L <= 0)
    return;
  long long off = 0; // probs offset of (b, 0): NH * sum_{b' < b} L_b'^2
  for (int bb = 0; bb < b; bb++) {
    long long l = cu[bb + 1] - cu[bb];
    off += l * l;
  }
  off = off * NH + (long long)h * L * L;
  const float *P = probs + off; // (L, L)
  float *Dm = D + off;          // (L, L)
  const int64_t row = 3 * (int64_t)C;
  const float *Q = qkv + (int64_t)t0 * row + h * HS, *K = Q + C, *V = Q + 2 * C; // stride row
  float *dQ = dqkv + (int64_t)t0 * row + h * HS, *dK = dQ + C, *dV = dQ + 2 * C;  // stride row
  const float *dO = dout + (int64_t)t0 * C + h * HS;                              // stride C

  for (int64_t e = threadIdx.x; e < (int64_t)L * L; e += ATB_THREADS) { // phase A
    const int i = (int)(e / L), j = (int)(e - (int64_t)i * L);
    float s = 0.f;
    for (int d = 0; d < HS; d++)
      s += dO[(int64_t)i * C + d] * V[(int64_t)j * row + d];
    Dm[e] = s;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < L; i += ATB_THREADS) { // phase B
    const float *pi = P + (int64_t)i * L;
    float *di = Dm + (int64_t)i * L;
    float pdp = 0.f;
    for (int j = 0; j < L; j++)
      pdp += pi[j] * di[j];
    for (int j = 0; j < L; j++)
      di[j] = pi[j] * (di[j] - pdp) * scale;
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < (int64_t)L * HS; e += ATB_THREADS) { // phase C
    const int i = (int)(e / HS), d = (int)(e - (int64_t)i * HS);
    float gq = 0.f, gk = 0.f, gv = 0.f;
    for (int j = 0; j < L; j++) {
      gq += Dm[(int64_t)i * L + j] * K[(int64_t)j * row + d];
      gk += Dm[(int64_t)j * L + i] * Q[(int64_t)j * row + d];
      gv += P[(int64_t)j * L + i] * dO[(int64_t)j * C + d];
    }
    dQ[(int64_t)i * row + d] += gq;
    dK[(int64_t)i * row + d] += gk;
    dV[(int64_t)i * row + d] += gv;
  }
}

extern "C" void af_cuda_attention_backward(af_cuda_context *ctx, float *dqkv, const float *dout,
                                           const float *qkv, const float *probs,
                                           const int32_t *cu_seqlens, int B, int C, int NH,
                                           const int32_t *cu_host) {
  if (af_cuda_has_pending(ctx) || B <= 0 || C <= 0 || NH <= 0)
    return;
  if (C % NH != 0) {
    af_cuda_record(ctx, AF_ERR_ARG, "attention backward: C = %d not a multiple of %d heads", C,
                   NH);
    return;
  }
  // the scratch matrix has the probabilities' size: sum of L^2 over sequences, times NH,
  // from the caller's host copy of cu_seqlens, else downloaded (a stream sync)
  int32_t *cu = cu_host ? NULL : (int32_t *)malloc(sizeof(int32_t) * (size_t)(B + 1));
  if (!cu_host && !cu) {
    af_cuda_record(ctx, AF_ERR_NOMEM, "attention backward: out of host memory");
    return;
  }
  if (cu) {
    AF_CUDA_RECORD(ctx, cudaMemcpyAsync(cu, cu_seqlens, sizeof(int32_t) * (size_t)(B + 1),
                                        cudaMemcpyDeviceToHost, ctx->stream));
    AF_CUDA_RECORD(ctx, cudaStreamSynchronize(ctx->stream));
  }
  const int32_t *hc = cu_host ? cu_host : cu;
  long long n = 0;
  for (int b = 0; b < B && !af_cuda_has_pending(ctx); b++) {
    long long l = hc[b + 1] - hc[b];
    n += l * l;
  }
  free(cu);
  if (af_cuda_has_pending(ctx) || n == 0)
    return;
  float *D = NULL;
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&D, sizeof(float) * (size_t)n * NH, ctx->stream));
  if (af_cuda_has_pending(ctx))
    return;
  const int HS = C / NH;
  attention_bwd_kernel<<<(unsigned)B * NH, ATB_THREADS, 0, ctx->stream>>>(
      dqkv, D, dout, qkv, probs, cu_seqlens, NH, C, HS, 1.0f / sqrtf((float)HS));
  af_cuda_check_launch(ctx, "attention_bwd_kernel");
  AF_CUDA_RECORD(ctx, cudaFreeAsync(D, ctx->stream));
}
