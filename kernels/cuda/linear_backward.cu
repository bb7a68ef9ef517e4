/* Linear layer backward (CUDA): two cublasSgemm with beta = 1 (the handle is
 * fp32, no TF32, as the forward; cuBLAS gives the same bits run to run on one
 * GPU model) and the bias gradient as a two-stage column sum (per chunk of
 * LIN_ROWS rows, then the chunks in order), no atomics.
 *
 * Row-major views as in linear.cu (cuBLAS is column-major):
 *   dinp^T (IC, N) += W^T (IC, OC) dout^T (OC, N):  gemm(N, N, IC, N, OC, w, IC, dout, OC, dinp, IC)
 *   dW^T (IC, OC) += inp^T (IC, N) dout (N, OC):    gemm(N, T, IC, OC, N, inp, IC, dout, OC, dw, IC)
 * (The issue asks for cuBLASLt's bias-gradient epilogue; this uses the plain
 * cuBLAS handle the forward already has and a deterministic reduction.) */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

#define LIN_ROWS 64

// part (n_chunks, OC): column sums of dout over the rows of chunk blockIdx.y.
__global__ void bias_partial_kernel(float *__restrict__ part, const float *__restrict__ dout,
                                    int N, int OC) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
  if (j >= OC)
    return;
  const int r0 = ch * LIN_ROWS, r1 = r0 + LIN_ROWS < N ? r0 + LIN_ROWS : N;
  float s = 0.f;
  for (int r = r0; r < r1; r++)
    s += dout[(int64_t)r * OC + j];
  part[(int64_t)ch * OC + j] = s;
}

__global__ void bias_final_kernel(float *__restrict__ dbias, const float *__restrict__ part,
                                  int n_chunks, int OC) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= OC)
    return;
  float s = 0.f;
  for (int k = 0; k < n_chunks; k++)
    s += part[(int64_t)k * OC + j];
  dbias[j] += s;
}

extern "C" void af_cuda_linear_backward(af_cuda_context *ctx, float *dinp, float *dw,
                                        float *dbias, const float *dout, const float *inp,
                                        const float *w, int N, int IC, int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || IC <= 0 || OC <= 0)
    return;
  const float one = 1.0f;
  if (dinp)
    AF_CUBLAS_RECORD(ctx, cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &one, w,
                                      IC, dout, OC, &one, dinp, IC));
  if (dw)
    AF_CUBLAS_RECORD(ctx, cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &one, inp,
                                      IC, dout, OC, &one, dw, IC));
  if (!dbias || af_cuda_has_pending(ctx))
    return;
  const int n_chunks = (N + LIN_ROWS - 1) / LIN_ROWS;
  float *part = NULL; // (n_chunks, OC)
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&part, sizeof(float) * (size_t)n_chunks * OC,
                                      ctx->stream));
  if (af_cuda_has_pending(ctx))
    return;
  dim3 grid((unsigned)((OC + 127) / 128), (unsigned)n_chunks);
  bias_partial_kernel<<<grid, 128, 0, ctx->stream>>>(part, dout, N, OC);
  af_cuda_check_launch(ctx, "bias_partial_kernel");
  bias_final_kernel<<<(unsigned)((OC + 127) / 128), 128, 0, ctx->stream>>>(dbias, part, n_chunks,
                                                                           OC);
  af_cuda_check_launch(ctx, "bias_final_kernel");
  AF_CUDA_RECORD(ctx, cudaFreeAsync(part, ctx->stream));
}
