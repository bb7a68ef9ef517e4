/* The rank-ordered sum behind af_comm's NCCL all-reduce (engine/comm/comm_nccl.c):
 * out[i] = ((in[0][i] + in[1][i]) + in[2][i]) + ... in float, no FMA, so every
 * rank count R gives the sum the MPI backend computes on the CPU. */
#ifndef AF_CUDA_COMM_REDUCE_H
#define AF_CUDA_COMM_REDUCE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out (n) device; in (R, stride) device, row j = rank j's chunk; stream a
 * cudaStream_t. Returns 0 or the cudaError_t of the launch. */
int af_cuda_sum_ranks(float *out, const float *in, int R, int64_t stride, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif
#endif
