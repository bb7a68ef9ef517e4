/* Fused AdamW and the gradient sum of squares (CUDA), equal to the CPU's
 * (engine/train/adamw.c) bit for bit in fp32: each element does the CPU's
 * float operations in the CPU's order with explicitly rounded intrinsics
 * (__fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn, __fsqrt_rn), which nvcc never
 * contracts into FMAs (the C build compiles with -std=c11, i.e.
 * -ffp-contract=off). The scalar factors come from the host, computed as the
 * CPU computes them. One launch covers every trained tensor: the host cuts the
 * table into chunks of at most ADAMW_CHUNK elements, one block each. */
#include <stdint.h>
#include <stdlib.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

#define ADAMW_CHUNK 16384
#define SUMSQ_CHUNK 4096 // af_grad_sumsq's AF_SUMSQ_CHUNK

typedef struct {
  int64_t offset;
  int32_t len, decay;
} adamw_chunk;

// float -> bf16, round to nearest even (NaN stays a quiet NaN).
static __device__ __forceinline__ uint16_t to_bf16(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

__global__ void adamw_kernel(float *__restrict__ param, const float *__restrict__ grad,
                             float *__restrict__ m, float *__restrict__ v,
                             uint16_t *__restrict__ work, const adamw_chunk *__restrict__ chunks,
                             af_cuda_adamw_scalars s) {
  const adamw_chunk ck = chunks[blockIdx.x];
  const float keep = ck.decay ? s.keep_decay : 1.0f;
  for (int k = threadIdx.x; k < ck.len; k += blockDim.x) {
    const int64_t i = ck.offset + k;
    const float g = __fmul_rn(grad[i], s.grad_scale);
    const float p = __fmul_rn(param[i], keep);
    const float mi = __fadd_rn(m[i], __fmul_rn(s.w1, __fsub_rn(g, m[i]))); // m + w1 (g - m)
    const float vi = __fadd_rn(__fmul_rn(v[i], s.fb2), __fmul_rn(__fmul_rn(s.w2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
    const float np = __fadd_rn(p, __fdiv_rn(__fmul_rn(-s.step_size, mi), denom));
    param[i] = np;
    m[i] = mi;
    v[i] = vi;
    if (work)
      work[i] = to_bf16(np);
  }
}

extern "C" void af_cuda_adamw_step(af_cuda_context *ctx, float *param, const float *grad,
                                   float *m, float *v, uint16_t *work_bf16,
                                   const af_cuda_adamw_tensor *table, int n_tensors,
                                   const af_cuda_adamw_scalars *s) {
  if (af_cuda_has_pending(ctx) || n_tensors <= 0)
    return;
  int64_t nc = 0;
  for (int t = 0; t < n_tensors; t++)
    nc += (table[t].numel + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
  if (nc == 0)
    return;
  adamw_chunk *h = (adamw_chunk *)malloc(sizeof(adamw_chunk) * (size_t)nc);
  if (!h) {
    af_cuda_record(ctx, AF_ERR_NOMEM, "adamw: out of host memory");
    return;
  }
  int64_t j = 0;
  for (int t = 0; t < n_tensors; t++)
    for (int64_t o = 0; o < table[t].numel; o += ADAMW_CHUNK) {
      int64_t len = table[t].numel - o < ADAMW_CHUNK ? table[t].numel - o : ADAMW_CHUNK;
      h[j++] = {table[t].offset + o, (int32_t)len, table[t].decay != 0};
    }
  adamw_chunk *d = NULL;
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&d, sizeof(adamw_chunk) * (size_t)nc, ctx->stream));
  if (!af_cuda_has_pending(ctx)) {
    AF_CUDA_RECORD(ctx, cudaMemcpyAsync(d, h, sizeof(adamw_chunk) * (size_t)nc,
                                        cudaMemcpyHostToDevice, ctx->stream));
    adamw_kernel<<<(unsigned)nc, 256, 0, ctx->stream>>>(param, grad, m, v, work_bf16, d, *s);
    af_cuda_check_launch(ctx, "adamw_kernel");
    AF_CUDA_RECORD(ctx, cudaFreeAsync(d, ctx->stream));
    AF_CUDA_RECORD(ctx, cudaStreamSynchronize(ctx->stream)); // h is freed next
  }
  free(h);
}

// part (n_chunks): sum of squares of chunk blockIdx*blockDim+threadIdx, sequential, in double.
__global__ void sumsq_partial_kernel(double *__restrict__ part, const float *__restrict__ g,
                                     int64_t n, int64_t n_chunks) {
  const int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= n_chunks)
    return;
  const int64_t i0 = ch * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
  double s = 0.0;
  for (int64_t i = i0; i < i1; i++)
    s = __dadd_rn(s, __dmul_rn((double)g[i], (double)g[i]));
  part[ch] = s;
}

// part[0] = the chunk sums in chunk order (one thread).
__global__ void sumsq_final_kernel(double *part, int64_t n_chunks) {
  double t = 0.0;
  for (int64_t k = 0; k < n_chunks; k++)
    t = __dadd_rn(t, part[k]);
  part[0] = t;
}

extern "C" af_status af_cuda_grad_sumsq(af_cuda_context *ctx, const float *grad, int64_t n,
                                        double *out, af_error *err) {
  *out = 0.0;
  if (n <= 0)
    return AF_OK;
  AF_TRY(af_cuda_sync(ctx, err)); // report an earlier op's error first
  const int64_t nch = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
  double *part = NULL;
  AF_CUDA_TRY(err, cudaMallocAsync((void **)&part, sizeof(double) * (size_t)nch, ctx->stream));
  sumsq_partial_kernel<<<(unsigned)((nch + 127) / 128), 128, 0, ctx->stream>>>(part, grad, n, nch);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    sumsq_final_kernel<<<1, 1, 0, ctx->stream>>>(part, nch);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(out, part, sizeof(double), cudaMemcpyDeviceToHost, ctx->stream);
  cudaError_t f = cudaFreeAsync(part, ctx->stream);
  if (e == cudaSuccess)
    e = f;
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(ctx->stream);
  if (e != cudaSuccess)
    return af_cuda_fail(err, e, "gradient sum of squares", __FILE__, __LINE__);
  return AF_OK;
}

// The chunks of every tensor of the table: (offset, len, tensor index).
typedef struct {
  int64_t offset;
  int32_t len, tensor;
} sumsq_chunk;

// part (n_chunks): sum of squares of chunk k (sequential, double), as sumsq_partial_kernel.
__global__ void sumsq_table_partial_kernel(double *__restrict__ part, const float *__restrict__ g,
                                           const sumsq_chunk *__restrict__ ck, int64_t n_chunks) {
  const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n_chunks)
    return;
  const float *x = g + ck[k].offset;
  double s = 0.0;
  for (int32_t i = 0; i < ck[k].len; i++)
    s = __dadd_rn(s, __dmul_rn((double)x[i], (double)x[i]));
  part[k] = s;
}

// part[0] = sum over tensors in table order of (its chunk sums in chunk order): one thread,
// the CPU loop's additions exactly (each tensor's sum starts at 0, then joins the total).
__global__ void sumsq_table_final_kernel(double *part, const sumsq_chunk *ck, int64_t n_chunks) {
  double total = 0.0, cur = 0.0;
  for (int64_t k = 0; k < n_chunks; k++) {
    if (k > 0 && ck[k].tensor != ck[k - 1].tensor) {
      total = __dadd_rn(total, cur);
      cur = 0.0;
    }
    cur = __dadd_rn(cur, part[k]);
  }
  part[0] = __dadd_rn(total, cur);
}

/* The host chunk list of the table (NULL: out of memory); *n_chunks its length. */
static sumsq_chunk *sumsq_chunks(const af_cuda_adamw_tensor *table, int n_tensors,
                                 int64_t *n_chunks) {
  int64_t nc = 0;
  for (int t = 0; t < n_tensors; t++)
    nc += (table[t].numel + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
  *n_chunks = nc;
  sumsq_chunk *h = (sumsq_chunk *)malloc(sizeof(sumsq_chunk) * (size_t)(nc > 0 ? nc : 1));
  int64_t j = 0;
  for (int t = 0; h && t < n_tensors; t++)
    for (int64_t o = 0; o < table[t].numel; o += SUMSQ_CHUNK) {
      const int64_t len = table[t].numel - o < SUMSQ_CHUNK ? table[t].numel - o : SUMSQ_CHUNK;
      h[j++] = {table[t].offset + o, (int32_t)len, (int32_t)t};
    }
  return h;
}

extern "C" af_status af_cuda_grad_sumsq_table(af_cuda_context *ctx, const float *grad,
                                              const af_cuda_adamw_tensor *table, int n_tensors,
                                              double *out, af_error *err) {
  *out = 0.0;
  int64_t nc = 0;
  sumsq_chunk *h = sumsq_chunks(table, n_tensors, &nc);
  if (!h)
    return af_error_set(err, AF_ERR_NOMEM, "gradient norm: out of host memory");
  if (nc == 0) {
    free(h);
    return AF_OK;
  }
  // dev: the chunk list, then the (nc) partial sums (8-byte aligned: 16-byte chunks)
  const size_t bl = sizeof(sumsq_chunk) * (size_t)nc, bytes = bl + sizeof(double) * (size_t)nc;
  void *dev = NULL;
  cudaError_t e = cudaMallocAsync(&dev, bytes, ctx->stream);
  if (e == cudaSuccess) {
    sumsq_chunk *dck = (sumsq_chunk *)dev;
    double *part = (double *)((char *)dev + bl);
    e = cudaMemcpyAsync(dck, h, bl, cudaMemcpyHostToDevice, ctx->stream);
    if (e == cudaSuccess) {
      sumsq_table_partial_kernel<<<(unsigned)((nc + 127) / 128), 128, 0, ctx->stream>>>(
          part, grad, dck, nc);
      e = cudaGetLastError();
    }
    if (e == cudaSuccess) {
      sumsq_table_final_kernel<<<1, 1, 0, ctx->stream>>>(part, dck, nc);
      e = cudaGetLastError();
    }
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(out, part, sizeof(double), cudaMemcpyDeviceToHost, ctx->stream);
    const cudaError_t f = cudaFreeAsync(dev, ctx->stream);
    e = e == cudaSuccess ? f : e;
  }
  const cudaError_t s = cudaStreamSynchronize(ctx->stream); // the one sync: *out, then h
  e = e == cudaSuccess ? s : e;
  free(h);
  if (e != cudaSuccess)
    return af_cuda_fail(err, e, "gradient sum of squares", __FILE__, __LINE__);
  return AF_OK;
}
