/* LayerNorm backward (CUDA) from the saved mean and rstd. With
 * n = (x - mean) rstd and g = w dout:
 *   dx += rstd (g - mean(g) - n mean(g n))    one warp per row;
 *   dw += sum_rows n dout, db += sum_rows dout in two stages: per chunk of
 *   LNB_ROWS rows a partial sum per column (rows in order), then per column
 *   the chunks in order. No atomics: the same bits on every run. */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

#define LNB_WARPS 8
#define LNB_ROWS 64 // rows per partial sum

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// dinp, dout, inp (N, C); w (C); mean, rstd (N).
__global__ void ln_bwd_dx_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                 const float *__restrict__ inp, const float *__restrict__ w,
                                 const float *__restrict__ mean, const float *__restrict__ rstd,
                                 int N, int C) {
  const int lane = threadIdx.x & 31, row = blockIdx.x * LNB_WARPS + (threadIdx.x >> 5);
  if (row >= N)
    return;
  const float *x = inp + (int64_t)row * C, *dy = dout + (int64_t)row * C; // (C)
  float *dx = dinp + (int64_t)row * C;                                     // (C)
  const float m = mean[row], s = rstd[row];
  float a = 0.f, b = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float g = w[c] * dy[c];
    a += g;
    b += g * (x[c] - m) * s;
  }
  const float g_mean = warp_sum(a) / (float)C, gn_mean = warp_sum(b) / (float)C;
  for (int c = lane; c < C; c += 32) {
    const float n = (x[c] - m) * s;
    dx[c] += s * (w[c] * dy[c] - g_mean - n * gn_mean);
  }
}

// part_w, part_b (n_chunks, C): sums over the rows of chunk blockIdx.y, column c.
__global__ void ln_bwd_partial_kernel(float *__restrict__ part_w, float *__restrict__ part_b,
                                      const float *__restrict__ dout,
                                      const float *__restrict__ inp,
                                      const float *__restrict__ mean,
                                      const float *__restrict__ rstd, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
  if (c >= C)
    return;
  const int r0 = ch * LNB_ROWS, r1 = r0 + LNB_ROWS < N ? r0 + LNB_ROWS : N;
  float sw = 0.f, sb = 0.f;
  for (int r = r0; r < r1; r++) {
    const float dy = dout[(int64_t)r * C + c];
    sw += (inp[(int64_t)r * C + c] - mean[r]) * rstd[r] * dy;
    sb += dy;
  }
  part_w[(int64_t)ch * C + c] = sw;
  part_b[(int64_t)ch * C + c] = sb;
}

// dw, db (C) += the chunk sums of column c in chunk order (either may be NULL).
__global__ void ln_bwd_final_kernel(float *__restrict__ dw, float *__restrict__ db,
                                    const float *__restrict__ part_w,
                                    const float *__restrict__ part_b, int n_chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C)
    return;
  float sw = 0.f, sb = 0.f;
  for (int k = 0; k < n_chunks; k++) {
    sw += part_w[(int64_t)k * C + c];
    sb += part_b[(int64_t)k * C + c];
  }
  if (dw)
    dw[c] += sw;
  if (db)
    db[c] += sb;
}

extern "C" void af_cuda_layernorm_backward(af_cuda_context *ctx, float *dinp, float *dw, float *db,
                                           const float *dout, const float *inp, const float *w,
                                           const float *mean, const float *rstd, int N, int C) {
  if (af_cuda_has_pending(ctx) || N <= 0 || C <= 0)
    return;
  if (dinp) {
    ln_bwd_dx_kernel<<<(unsigned)((N + LNB_WARPS - 1) / LNB_WARPS), LNB_WARPS * 32, 0,
                       ctx->stream>>>(dinp, dout, inp, w, mean, rstd, N, C);
    af_cuda_check_launch(ctx, "ln_bwd_dx_kernel");
  }
  if (!dw && !db)
    return;
  const int n_chunks = (N + LNB_ROWS - 1) / LNB_ROWS;
  float *part = NULL; // (2, n_chunks, C)
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&part, sizeof(float) * 2 * (size_t)n_chunks * C,
                                      ctx->stream));
  if (af_cuda_has_pending(ctx))
    return;
  float *pw = part, *pb = part + (size_t)n_chunks * C;
  dim3 grid((unsigned)((C + 127) / 128), (unsigned)n_chunks);
  ln_bwd_partial_kernel<<<grid, 128, 0, ctx->stream>>>(pw, pb, dout, inp, mean, rstd, N, C);
  af_cuda_check_launch(ctx, "ln_bwd_partial_kernel");
  ln_bwd_final_kernel<<<(unsigned)((C + 127) / 128), 128, 0, ctx->stream>>>(dw, db, pw, pb,
                                                                            n_chunks, C);
  af_cuda_check_launch(ctx, "ln_bwd_final_kernel");
  AF_CUDA_RECORD(ctx, cudaFreeAsync(part, ctx->stream));
}
