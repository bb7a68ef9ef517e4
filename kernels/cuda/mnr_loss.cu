/* The multiple-negatives ranking loss on the device (CUDA; af_op_mnr_loss,
 * in-batch negatives), the twin of kernels/cpu/mnr_loss.c: the same double
 * arithmetic in the same order with explicitly rounded intrinsics, so only
 * the double exp/log of CUDA's math library may differ from glibc's (<= 1 ulp
 * each; float results then agree to the last bit almost always). Each stage
 * is a small kernel; every output element has one owner thread summing in
 * the CPU's order (no atomics):
 *   normalise   one block per row of [A; P]: sum of squares (one thread, c order), y = x / n
 *   scores      S_ij = scale (a_i . d_j)                     thread per (i, j)
 *   lse         row (and, symmetric, column) logsumexp        thread per row / column
 *   loss        mean_i (w lse_r + w lse_c - S_ii)             one thread, i order
 *   dS          (w softmax_row + w softmax_col - delta) / B scale   thread per (i, j)
 *   grads       ga_i = sum_j dS_ij d_j, gd_j = sum_i dS_ij a_i       thread per (row, c)
 *   back        dx = (g - y (y . g)) / n, as float            one block per row
 * O(B^2 C) on the GPU instead of the host; the (B, C) inputs never leave it. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

#define MNR_THREADS 128

// y (2B, C) double, nrm (2B): rows of [A; P] normalised with the 1e-12 clamp.
__global__ void mnr_normalize_kernel(double *__restrict__ y, double *__restrict__ nrm,
                                     const float *__restrict__ A, const float *__restrict__ P,
                                     int B, int C) {
  const int r = blockIdx.x;
  const float *x = r < B ? A + (int64_t)r * C : P + (int64_t)(r - B) * C;
  __shared__ double n_sh;
  if (threadIdx.x == 0) {
    double ss = 0.0;
    for (int c = 0; c < C; c++)
      ss = __dadd_rn(ss, __dmul_rn((double)x[c], (double)x[c]));
    double n = __dsqrt_rn(ss);
    n = n > 1e-12 ? n : 1e-12;
    nrm[r] = n;
    n_sh = n;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    y[(int64_t)r * C + c] = __ddiv_rn((double)x[c], n_sh);
}

// S (B, B) = scale a d^T; a = y[0..B), d = y[B..2B).
__global__ void mnr_scores_kernel(double *__restrict__ S, const double *__restrict__ y, int B,
                                  int C, double scale) {
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)B * B)
    return;
  const int i = (int)(e / B), j = (int)(e - (int64_t)i * B);
  const double *a = y + (int64_t)i * C, *d = y + (int64_t)(B + j) * C;
  double dot = 0.0;
  for (int c = 0; c < C; c++)
    dot = __dadd_rn(dot, __dmul_rn(a[c], d[c]));
  S[e] = __dmul_rn(scale, dot);
}

// lse (2B): [0, B) rows; [B, 2B) columns (symmetric only).
__global__ void mnr_lse_kernel(double *__restrict__ lse, const double *__restrict__ S, int B,
                               int symmetric) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (symmetric ? 2 * B : B))
    return;
  const int col = k >= B, i = col ? k - B : k;
  double mx = -INFINITY, s = 0.0;
  for (int j = 0; j < B; j++)
    mx = fmax(mx, col ? S[(int64_t)j * B + i] : S[(int64_t)i * B + j]);
  for (int j = 0; j < B; j++)
    s = __dadd_rn(s, exp(__dsub_rn(col ? S[(int64_t)j * B + i] : S[(int64_t)i * B + j], mx)));
  lse[k] = __dadd_rn(mx, log(s));
}

__global__ void mnr_loss_kernel(double *__restrict__ out, const double *__restrict__ lse,
                                const double *__restrict__ S, int B, int symmetric) {
  const double w = symmetric ? 0.5 : 1.0;
  double total = 0.0;
  for (int i = 0; i < B; i++) {
    double term = __dadd_rn(__dmul_rn(w, lse[i]), symmetric ? __dmul_rn(w, lse[B + i]) : 0.0);
    total = __dadd_rn(total, __dsub_rn(term, S[(int64_t)i * B + i]));
  }
  out[0] = __ddiv_rn(total, (double)B);
}

// S (B, B) <- dS scaled: (w softmax_row + w softmax_col - delta) / B * scale.
__global__ void mnr_dscores_kernel(double *__restrict__ S, const double *__restrict__ lse, int B,
                                   int symmetric, double scale) {
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)B * B)
    return;
  const int i = (int)(e / B), j = (int)(e - (int64_t)i * B);
  const double w = symmetric ? 0.5 : 1.0, s = S[e];
  double g = __dmul_rn(w, exp(__dsub_rn(s, lse[i])));
  if (symmetric)
    g = __dadd_rn(g, __dmul_rn(w, exp(__dsub_rn(s, lse[B + j]))));
  if (i == j)
    g = __dsub_rn(g, 1.0);
  S[e] = __dmul_rn(__ddiv_rn(g, (double)B), scale);
}

// gy (2B, C): rows [0, B) ga_i = sum_j dS_ij d_j; rows [B, 2B) gd_j = sum_i dS_ij a_i.
__global__ void mnr_grads_kernel(double *__restrict__ gy, const double *__restrict__ S,
                                 const double *__restrict__ y, int B, int C) {
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)2 * B * C)
    return;
  const int r = (int)(e / C), c = (int)(e - (int64_t)r * C);
  double acc = 0.0;
  if (r < B)
    for (int j = 0; j < B; j++)
      acc = __dadd_rn(acc, __dmul_rn(S[(int64_t)r * B + j], y[(int64_t)(B + j) * C + c]));
  else
    for (int i = 0; i < B; i++)
      acc = __dadd_rn(acc, __dmul_rn(S[(int64_t)i * B + (r - B)], y[(int64_t)i * C + c]));
  gy[e] = acc;
}

// dA (B, C), dP (B, C) float = (g - y (y . g)) / n per row of [A; P].
__global__ void mnr_back_kernel(float *__restrict__ dA, float *__restrict__ dP,
                                const double *__restrict__ gy, const double *__restrict__ y,
                                const double *__restrict__ nrm, int B, int C) {
  const int r = blockIdx.x;
  float *dx = r < B ? dA : dP;
  if (!dx)
    return;
  dx += (int64_t)(r < B ? r : r - B) * C;
  const double *yr = y + (int64_t)r * C, *gr = gy + (int64_t)r * C;
  const double n = nrm[r];
  __shared__ double ydy_sh;
  if (threadIdx.x == 0) {
    double ydy = 0.0;
    if (n > 1e-12)
      for (int c = 0; c < C; c++)
        ydy = __dadd_rn(ydy, __dmul_rn(yr[c], gr[c]));
    ydy_sh = ydy;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dx[c] = (float)__ddiv_rn(__dsub_rn(gr[c], __dmul_rn(yr[c], ydy_sh)), n);
}

extern "C" af_status af_cuda_mnr_loss(af_cuda_context *ctx, const float *A, const float *P, int B,
                                      int C, float scale, int symmetric, float *loss, float *dA,
                                      float *dP, af_error *err) {
  if (B < 1 || C < 1 || !(scale > 0.0f))
    return af_error_set(err, AF_ERR_ARG, "mnr loss: invalid shape or scale (B=%d, C=%d, scale=%g)",
                        B, C, (double)scale);
  AF_TRY(af_cuda_take_pending(ctx, err));
  const size_t BC = (size_t)B * C, BB = (size_t)B * B;
  // y (2BC), gy (2BC), S (BB), nrm (2B), lse (2B), out (1)
  const size_t nd = 4 * BC + BB + 4 * (size_t)B + 1;
  double *buf = NULL;
  AF_CUDA_TRY(err, cudaMallocAsync((void **)&buf, sizeof(double) * nd, ctx->stream));
  double *y = buf, *gy = y + 2 * BC, *S = gy + 2 * BC, *nrm = S + BB, *lse = nrm + 2 * B;
  double *out = lse + 2 * B, hloss = 0.0;
  const unsigned gBB = (unsigned)((BB + MNR_THREADS - 1) / MNR_THREADS);
  mnr_normalize_kernel<<<2 * B, MNR_THREADS, 0, ctx->stream>>>(y, nrm, A, P, B, C);
  mnr_scores_kernel<<<gBB, MNR_THREADS, 0, ctx->stream>>>(S, y, B, C, (double)scale);
  mnr_lse_kernel<<<(2 * B + MNR_THREADS - 1) / MNR_THREADS, MNR_THREADS, 0, ctx->stream>>>(
      lse, S, B, symmetric);
  mnr_loss_kernel<<<1, 1, 0, ctx->stream>>>(out, lse, S, B, symmetric);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && (dA || dP)) {
    mnr_dscores_kernel<<<gBB, MNR_THREADS, 0, ctx->stream>>>(S, lse, B, symmetric, (double)scale);
    mnr_grads_kernel<<<(unsigned)((2 * BC + MNR_THREADS - 1) / MNR_THREADS), MNR_THREADS, 0,
                       ctx->stream>>>(gy, S, y, B, C);
    mnr_back_kernel<<<2 * B, MNR_THREADS, 0, ctx->stream>>>(dA, dP, gy, y, nrm, B, C);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(&hloss, out, sizeof(double), cudaMemcpyDeviceToHost, ctx->stream);
  cudaError_t f = cudaFreeAsync(buf, ctx->stream);
  if (e == cudaSuccess)
    e = f;
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(ctx->stream);
  if (e != cudaSuccess)
    return af_cuda_fail(err, e, "mnr loss", __FILE__, __LINE__);
  *loss = (float)hloss;
  return AF_OK;
}
