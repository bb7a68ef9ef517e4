/* CUDA implementations of the ops in ops.h (kernels/cuda/<op>.cu), plus the
 * CUDA context behind af_device.ctx. The backend table
 * (backend.cu) wraps these void ops into af_status entries. Plain C declarations: included from C
 * (kernels/ops.c) and from CUDA sources. All pointers are device memory;
 * every op is queued on the context's stream. Errors of a launch are checked
 * with af_cuda_check_launch / reported by af_dev_sync. */
#ifndef AF_CUDA_OPS_H
#define AF_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_cuda_context af_cuda_context;

af_status af_cuda_context_create(int ordinal, af_cuda_context **out, af_error *err);
void af_cuda_context_destroy(af_cuda_context *ctx);

void *af_cuda_malloc(af_cuda_context *ctx, size_t bytes, af_error *err);
void af_cuda_free(af_cuda_context *ctx, void *ptr);
/* to_device: 1 host->device, 0 device->host. */
af_status af_cuda_memcpy(af_cuda_context *ctx, void *dst, const void *src, size_t bytes,
                         int to_device, af_error *err);
/* The copy queued on queue q's stream (af_queue; no wait): the host side must
 * be pinned and stay untouched until af_cuda_sync. */
af_status af_cuda_copy_async(af_cuda_context *ctx, int q, void *dst, const void *src, size_t bytes,
                             int to_device, af_error *err);
/* Events (a cudaEvent_t without timing) ordering the queues' streams. */
af_status af_cuda_event_create(af_cuda_context *ctx, void **out, af_error *err);
void af_cuda_event_free(af_cuda_context *ctx, void *ev);
af_status af_cuda_event_record(af_cuda_context *ctx, void *ev, int q, af_error *err);
af_status af_cuda_queue_wait(af_cuda_context *ctx, int q, void *ev, af_error *err);
/* Waits for every queue's stream. */
af_status af_cuda_sync(af_cuda_context *ctx, af_error *err);
/* Makes ctx's GPU the calling thread's current device (every table entry
 * calls it first). */
af_status af_cuda_enter(af_cuda_context *ctx, af_error *err);
/* Returns, and clears, the first error a void af_cuda_* op recorded. */
af_status af_cuda_take_pending(af_cuda_context *ctx, af_error *err);

void af_cuda_embedding_forward(af_cuda_context *ctx, float *out, const int32_t *ids,
                               const int32_t *pos, const int32_t *type_ids, const float *wte,
                               const float *wpe, const float *wtt, int T, int C);
void af_cuda_layernorm_forward(af_cuda_context *ctx, float *out, float *mean, float *rstd,
                               const float *inp, const float *w, const float *b, int N, int C,
                               float eps);
void af_cuda_linear_forward(af_cuda_context *ctx, float *out, const float *inp, const float *w,
                            const float *bias, int N, int IC, int OC);
void af_cuda_gelu_forward(af_cuda_context *ctx, float *out, const float *inp, int64_t n);
void af_cuda_add_forward(af_cuda_context *ctx, float *out, const float *a, const float *b,
                         int64_t n);
void af_cuda_attention_forward(af_cuda_context *ctx, float *out, float *probs, const float *qkv,
                               const int32_t *cu_seqlens, int B, int C, int NH);
void af_cuda_mean_pool_forward(af_cuda_context *ctx, float *out, const float *inp,
                               const int32_t *cu_seqlens, int B, int C);
void af_cuda_cls_pool_forward(af_cuda_context *ctx, float *out, const float *inp,
                              const int32_t *cu_seqlens, int B, int C);
void af_cuda_l2norm_forward(af_cuda_context *ctx, float *out, float *norms, const float *inp,
                            int N, int C);

/* bf16 inference (bf16.cu, linear_bf16.cu); bf16 tensors are uint16_t. */
void af_cuda_cast_bf16(af_cuda_context *ctx, uint16_t *out, const float *inp, int64_t n);
void af_cuda_linear_bf16_forward(af_cuda_context *ctx, float *out, const uint16_t *inp,
                                 const uint16_t *w, const float *bias, int N, int IC, int OC);
void af_cuda_bias_gelu_bf16_forward(af_cuda_context *ctx, uint16_t *out, const float *inp,
                                    const float *bias, int N, int C);
void af_cuda_add_layernorm_forward(af_cuda_context *ctx, float *out, uint16_t *out_bf16,
                                   const float *a, const float *b, const float *w,
                                   const float *beta, int N, int C, float eps);
void af_cuda_attention_bf16_forward(af_cuda_context *ctx, uint16_t *out, float *scratch,
                                    const float *qkv, const int32_t *cu_seqlens, int B, int T,
                                    int C, int NH);
void af_cuda_topk_merge_rows(af_cuda_context *ctx, float *ls, int64_t *li, int kp,
                             const float *tile, int QT, int CC, int64_t col0, int64_t q0);
void af_cuda_rescore_fp32(af_cuda_context *ctx, float *out, const float *Q, const float *X,
                          const int64_t *idx, int QT, int kp, int d);
void af_cuda_topk_fused(af_cuda_context *ctx, float *ps, int64_t *pi, int kp,
                        const uint16_t *Q, const uint16_t *X, int nq, int cc, int dp,
                        int64_t col0, int64_t q0, int S);
void af_cuda_topk_merge_partials(af_cuda_context *ctx, float *ls, int64_t *li, int kp,
                                 const float *ps, const int64_t *pi, int nq, int S);
void af_cuda_rescore_fp32_range(af_cuda_context *ctx, float *out, const float *Q, const float *X,
                                const int64_t *idx, int QT, int kp, int d, int64_t c0,
                                int64_t c1);
af_status af_cuda_mem_free(af_cuda_context *ctx, size_t *free_bytes, af_error *err);
af_status af_cuda_host_alloc(af_cuda_context *ctx, size_t bytes, void **out, af_error *err);
void af_cuda_host_free(af_cuda_context *ctx, void *ptr);
void af_cuda_mean_pool_l2norm_forward(af_cuda_context *ctx, float *out, const float *inp,
                                      const int32_t *cu_seqlens, int B, int C);

#ifdef __cplusplus
}
#endif
#endif
