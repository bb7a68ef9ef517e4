/* Rank-ordered sum for the NCCL all-reduce (kernels/cuda/comm_reduce.h).
 * One thread per element adds the R rows in rank order; only additions, so
 * there is nothing for nvcc to contract into an FMA. */
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda/comm_reduce.h"

__global__ void sum_ranks_kernel(float *__restrict__ out, const float *__restrict__ in, int R,
                                 int64_t stride, int64_t n) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    float acc = in[i];
    for (int j = 1; j < R; j++)
      acc = __fadd_rn(acc, in[(int64_t)j * stride + i]);
    out[i] = acc;
  }
}

extern "C" int af_cuda_sum_ranks(float *out, const float *in, int R, int64_t stride, int64_t n,
                                 void *stream) {
  if (n <= 0)
    return 0;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65535)
    blocks = 65535;
  sum_ranks_kernel<<<(unsigned)blocks, 256, 0, (cudaStream_t)stream>>>(out, in, R, stride, n);
  return (int)cudaGetLastError();
}
