/* Token + position + token-type embeddings (CUDA): a gather-add, one thread
 * per output element (four with float4 when C % 4 == 0). Pure bandwidth:
 * reads three rows of C floats and writes one per token. */
#include <stdint.h>

#include "cuda_check.h"

// out (T, C); ids, pos, type_ids (T); wte (V, C); wpe (P, C); wtt (TT, C).
// Each thread handles elements e of the (T, C/VEC) grid, VEC floats at a time.
template <typename VT>
__global__ void embedding_kernel(VT *__restrict__ out, const int32_t *__restrict__ ids,
                                 const int32_t *__restrict__ pos,
                                 const int32_t *__restrict__ type_ids,
                                 const VT *__restrict__ wte, const VT *__restrict__ wpe,
                                 const VT *__restrict__ wtt, int T, int CV) {
  const int64_t n = (int64_t)T * CV;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x) {
    int t = (int)(e / CV), c = (int)(e % CV);
    VT a = wte[(int64_t)ids[t] * CV + c];
    VT p = wpe[(int64_t)pos[t] * CV + c];
    VT y = wtt[(int64_t)(type_ids ? type_ids[t] : 0) * CV + c];
    out[e] = a + p + y;
  }
}

static __device__ __forceinline__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

extern "C" void af_cuda_embedding_forward(af_cuda_context *ctx, float *out, const int32_t *ids,
                                          const int32_t *pos, const int32_t *type_ids,
                                          const float *wte, const float *wpe, const float *wtt,
                                          int T, int C) {
  if (af_cuda_has_pending(ctx) || T <= 0 || C <= 0)
    return;
  const int threads = 256;
  if (C % 4 == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe) && aligned16(wtt)) {
    int CV = C / 4;
    embedding_kernel<float4><<<af_cuda_blocks(ctx, (int64_t)T * CV, threads), threads, 0,
                               ctx->stream>>>((float4 *)out, ids, pos, type_ids,
                                              (const float4 *)wte, (const float4 *)wpe,
                                              (const float4 *)wtt, T, CV);
  } else {
    embedding_kernel<float><<<af_cuda_blocks(ctx, (int64_t)T * C, threads), threads, 0,
                              ctx->stream>>>(out, ids, pos, type_ids, wte, wpe, wtt, T, C);
  }
  af_cuda_check_launch(ctx, "embedding_kernel");
}
