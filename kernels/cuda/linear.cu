/* Linear layer forward (CUDA): one cublasSgemm plus a bias kernel.
 *
 * Row-major trick: cuBLAS is column-major, and a row-major (N, OC) matrix is
 * the column-major (OC, N) matrix out^T. So out^T = W * inp^T, where W (OC, IC)
 * row-major is seen by cuBLAS as the column-major (IC, OC) matrix W^T: hence
 * transa = T on w (ld IC), transb = N on inp (ld IC), ldc = OC.
 *
 * Math is fp32 (the handle is in CUBLAS_DEFAULT_MATH, no TF32), so results
 * match the CPU's sgemm to about 1e-6 relative; TF32 would cost ~1e-3. */
#include <stdint.h>

#include "cuda_check.h"

// out (N, OC) += bias (OC) broadcast over rows. OC4 = OC / 4 when vectorised.
__global__ void bias_add_kernel(float *__restrict__ out, const float *__restrict__ bias, int N,
                                int OC) {
  const int64_t n = (int64_t)N * OC;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x)
    out[e] += bias[e % OC];
}

__global__ void bias_add4_kernel(float4 *__restrict__ out, const float4 *__restrict__ bias, int N,
                                 int OC4) {
  const int64_t n = (int64_t)N * OC4;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x) {
    float4 o = out[e], b = bias[e % OC4];
    out[e] = make_float4(o.x + b.x, o.y + b.y, o.z + b.z, o.w + b.w);
  }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

extern "C" void af_cuda_linear_forward(af_cuda_context *ctx, float *out, const float *inp,
                                       const float *w, const float *bias, int N, int IC, int OC) {
  if (af_cuda_has_pending(ctx) || N <= 0 || OC <= 0)
    return;
  if (IC <= 0) {
    // An empty sum: out = bias (or 0). cuBLAS with k = 0 would leave C as beta*C.
    AF_CUDA_RECORD(ctx, cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof(float), ctx->stream));
  } else {
    const float alpha = 1.0f, beta = 0.0f;
    // out^T (OC, N) = W (OC, IC) * inp^T (IC, N), all column-major views.
    AF_CUBLAS_RECORD(ctx, cublasSgemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &alpha,
                                      w, IC, inp, IC, &beta, out, OC));
  }
  if (!bias || af_cuda_has_pending(ctx))
    return;
  const int threads = 256;
  if (OC % 4 == 0 && aligned16(out) && aligned16(bias)) {
    bias_add4_kernel<<<af_cuda_blocks(ctx, (int64_t)N * (OC / 4), threads), threads, 0,
                       ctx->stream>>>((float4 *)out, (const float4 *)bias, N, OC / 4);
    af_cuda_check_launch(ctx, "bias_add4_kernel");
  } else {
    bias_add_kernel<<<af_cuda_blocks(ctx, (int64_t)N * OC, threads), threads, 0, ctx->stream>>>(
        out, bias, N, OC);
    af_cuda_check_launch(ctx, "bias_add_kernel");
  }
}
