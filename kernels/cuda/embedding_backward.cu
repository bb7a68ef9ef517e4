/* Embedding backward (CUDA) by token bucketing: the index column (token ids,
 * positions or types) is counting-sorted on the host (stable: token order
 * within a bucket), then one thread per (bucket, column) adds its tokens'
 * gradient rows in token order into the table row. That is the CPU twin's
 * order for each row, so the sums are bit-equal, and no two threads touch one
 * element (no atomics). The column comes from the caller's host copy (the
 * trainer's ids and positions: no synchronisation) or else is downloaded (a
 * stream sync). The bucket lists go up with cudaMemcpyAsync from pageable
 * memory, which returns once the driver has staged the source ("API
 * synchronization behavior" in the CUDA runtime documentation), so the host
 * buffers are freed without waiting for the kernel. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "cuda_ops_backward.h"

// buckets: keys (nb), starts (nb + 1), order (T) token indices grouped by key.
__global__ void bucket_add_kernel(float *__restrict__ dtable, const float *__restrict__ dout,
                                  const int32_t *__restrict__ keys,
                                  const int32_t *__restrict__ starts,
                                  const int32_t *__restrict__ order, int C) {
  const int bk = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C)
    return;
  float *d = dtable + (int64_t)keys[bk] * C + c;
  float acc = *d;
  for (int r = starts[bk]; r < starts[bk + 1]; r++)
    acc += dout[(int64_t)order[r] * C + c];
  *d = acc;
}

/* dtable[idx[t]] += dout[t] (idx device, or NULL: every token to row 0; hidx_in: idx's host
 * copy, or NULL). */
static void bucket_add(af_cuda_context *ctx, float *dtable, const float *dout, const int32_t *idx,
                       const int32_t *hidx_in, int T, int C) {
  int32_t *h = (int32_t *)malloc(sizeof(int32_t) * (size_t)2 * T); // idx (T), order (T)
  if (!h) {
    af_cuda_record(ctx, AF_ERR_NOMEM, "embedding backward: out of host memory");
    return;
  }
  int32_t *hidx = h, *order = h + T;
  if (idx && hidx_in) {
    memcpy(hidx, hidx_in, sizeof(int32_t) * (size_t)T);
  } else if (idx) {
    AF_CUDA_RECORD(ctx, cudaMemcpyAsync(hidx, idx, sizeof(int32_t) * (size_t)T,
                                        cudaMemcpyDeviceToHost, ctx->stream));
    AF_CUDA_RECORD(ctx, cudaStreamSynchronize(ctx->stream));
  } else {
    memset(hidx, 0, sizeof(int32_t) * (size_t)T);
  }
  int32_t maxk = 0;
  for (int t = 0; t < T && !af_cuda_has_pending(ctx); t++) {
    if (hidx[t] < 0) {
      af_cuda_record(ctx, AF_ERR_ARG, "embedding backward: negative index %d at token %d",
                     hidx[t], t);
      break;
    }
    maxk = hidx[t] > maxk ? hidx[t] : maxk;
  }
  int32_t *count =
      af_cuda_has_pending(ctx) ? NULL : (int32_t *)calloc((size_t)maxk + 2, sizeof(int32_t));
  if (!count) {
    if (!af_cuda_has_pending(ctx))
      af_cuda_record(ctx, AF_ERR_NOMEM, "embedding backward: out of host memory");
    free(h);
    return;
  }
  for (int t = 0; t < T; t++)
    count[hidx[t] + 1]++;
  for (int32_t k = 0; k <= maxk; k++) // count[k] = first slot of key k
    count[k + 1] += count[k];
  int nb = 0;
  for (int32_t k = 0; k <= maxk; k++)
    if (count[k + 1] > count[k])
      nb++;
  // kb: the nb keys, then the nb + 1 bucket starts
  int32_t *kb = (int32_t *)malloc(sizeof(int32_t) * (size_t)(2 * nb + 1));
  if (!kb) {
    af_cuda_record(ctx, AF_ERR_NOMEM, "embedding backward: out of host memory");
    free(count);
    free(h);
    return;
  }
  int j = 0;
  for (int32_t k = 0; k <= maxk; k++)
    if (count[k + 1] > count[k]) {
      kb[j] = k;
      kb[nb + j] = count[k];
      j++;
    }
  kb[2 * nb] = T;
  for (int t = 0; t < T; t++) // stable: token order within each key
    order[count[hidx[t]]++] = t;
  int32_t *dev = NULL; // keys (nb), starts (nb + 1), order (T)
  const size_t bytes = sizeof(int32_t) * ((size_t)2 * nb + 1 + (size_t)T);
  AF_CUDA_RECORD(ctx, cudaMallocAsync((void **)&dev, bytes, ctx->stream));
  if (!af_cuda_has_pending(ctx)) {
    AF_CUDA_RECORD(ctx, cudaMemcpyAsync(dev, kb, sizeof(int32_t) * (size_t)(2 * nb + 1),
                                        cudaMemcpyHostToDevice, ctx->stream));
    AF_CUDA_RECORD(ctx, cudaMemcpyAsync(dev + 2 * nb + 1, order, sizeof(int32_t) * (size_t)T,
                                        cudaMemcpyHostToDevice, ctx->stream));
    dim3 grid((unsigned)((C + 127) / 128), (unsigned)nb);
    bucket_add_kernel<<<grid, 128, 0, ctx->stream>>>(dtable, dout, dev, dev + nb, dev + 2 * nb + 1,
                                                     C);
    af_cuda_check_launch(ctx, "bucket_add_kernel");
    AF_CUDA_RECORD(ctx, cudaFreeAsync(dev, ctx->stream)); // kb, order: staged by the copies
  }
  free(kb);
  free(count);
  free(h);
}

extern "C" void af_cuda_embedding_backward(af_cuda_context *ctx, float *dwte, float *dwpe,
                                           float *dwtt, const float *dout, const int32_t *ids,
                                           const int32_t *pos, const int32_t *type_ids, int T,
                                           int C, const int32_t *ids_host,
                                           const int32_t *pos_host) {
  if (af_cuda_has_pending(ctx) || T <= 0 || C <= 0)
    return;
  if (dwte)
    bucket_add(ctx, dwte, dout, ids, ids_host, T, C);
  if (dwpe)
    bucket_add(ctx, dwpe, dout, pos, pos_host, T, C);
  if (dwtt)
    bucket_add(ctx, dwtt, dout, type_ids, NULL, T, C); // type_ids NULL: type 0
}
