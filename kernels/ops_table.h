/* The per-backend op table behind the op interface (ggml's ggml_backend_i
 * idea). Each backend fills one constant table of the ops it implements
 * (kernels/cpu/backend.c: af_cpu_backend_ops; kernels/cuda/backend.cu:
 * af_cuda_backend_ops); af_device.ops points at it and kernels/ops.c calls
 * through it. A NULL entry means "this backend lacks the op": the af_op_*
 * entry point then returns AF_ERR_UNSUPPORTED with
 *   "op <name> is not implemented by the <backend> backend"
 * and touches nothing. Adding an op: a member here, a dispatcher in ops.c
 * (or ops_backward.c), an entry in every backend that has it.
 *
 * Every entry takes the device's context first (af_device.ctx) and an
 * af_error *err last, and has the shapes and semantics of the af_op_* function
 * of the same name (ops.h, ops_backward.h). */
#ifndef AF_OPS_TABLE_H
#define AF_OPS_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"
#include "ops.h"
#include "ops_backward.h"

#ifdef __cplusplus
extern "C" {
#endif

struct af_backend_ops {
  const char *name; /* "cpu", "cuda": named in every error */

  /* ---- memory ---- */
  af_status (*malloc)(void *ctx, size_t bytes, void **out, af_error *err);
  void (*free)(void *ctx, void *ptr);
  /* to_device: 1 host->device, 0 device->host; synchronous for the caller. */
  af_status (*memcpy)(void *ctx, void *dst, const void *src, size_t bytes, int to_device,
                      af_error *err);
  af_status (*sync)(void *ctx, af_error *err);
  /* copy_async: the copy queued on queue q (af_queue), returning at once; the
   * host side (pinned: host_alloc) must stay untouched until the next sync.
   * NULL: af_dev_*_async fall back to the synchronous memcpy. */
  af_status (*copy_async)(void *ctx, int q, void *dst, const void *src, size_t bytes,
                          int to_device, af_error *err);
  /* Events (ops.h "Queues and events"); all four NULL on a backend without
   * queues. event_create gives an opaque handle; event_record marks queue q;
   * queue_wait makes queue q wait for the event's latest record. */
  af_status (*event_create)(void *ctx, void **out, af_error *err);
  void (*event_free)(void *ctx, void *ev);
  af_status (*event_record)(void *ctx, void *ev, int q, af_error *err);
  af_status (*queue_wait)(void *ctx, int q, void *ev, af_error *err);

  /* ---- forward (ops.h) ---- */
  af_status (*embedding_forward)(void *ctx, float *out, const int32_t *ids, const int32_t *pos,
                                 const int32_t *type_ids, const float *wte, const float *wpe,
                                 const float *wtt, int T, int C, af_error *err);
  af_status (*layernorm_forward)(void *ctx, float *out, float *mean, float *rstd,
                                 const float *inp, const float *w, const float *b, int N, int C,
                                 float eps, af_error *err);
  af_status (*linear_forward)(void *ctx, float *out, const float *inp, const float *w,
                              const float *bias, int N, int IC, int OC, af_error *err);
  af_status (*gelu_forward)(void *ctx, float *out, const float *inp, int64_t n, af_error *err);
  af_status (*add_forward)(void *ctx, float *out, const float *a, const float *b, int64_t n,
                           af_error *err);
  af_status (*attention_forward)(void *ctx, float *out, float *probs, const float *qkv,
                                 const int32_t *cu_seqlens, int B, int C, int NH, af_error *err);
  af_status (*mean_pool_forward)(void *ctx, float *out, const float *inp,
                                 const int32_t *cu_seqlens, int B, int C, af_error *err);
  af_status (*cls_pool_forward)(void *ctx, float *out, const float *inp,
                                const int32_t *cu_seqlens, int B, int C, af_error *err);
  af_status (*l2norm_forward)(void *ctx, float *out, float *norms, const float *inp, int N, int C,
                              af_error *err);

  /* ---- bf16 inference (ops.h) ---- */
  af_status (*cast_bf16)(void *ctx, uint16_t *out, const float *inp, int64_t n, af_error *err);
  af_status (*linear_bf16_forward)(void *ctx, float *out, const uint16_t *inp, const uint16_t *w,
                                   const float *bias, int N, int IC, int OC, af_error *err);
  af_status (*bias_gelu_bf16_forward)(void *ctx, uint16_t *out, const float *inp,
                                      const float *bias, int N, int C, af_error *err);
  af_status (*add_layernorm_forward)(void *ctx, float *out, uint16_t *out_bf16, const float *a,
                                     const float *b, const float *w, const float *beta, int N,
                                     int C, float eps, af_error *err);
  af_status (*attention_bf16_forward)(void *ctx, uint16_t *out, float *scratch, const float *qkv,
                                      const int32_t *cu_seqlens, int B, int T, int C, int NH,
                                      af_error *err);
  af_status (*mean_pool_l2norm_forward)(void *ctx, float *out, const float *inp,
                                        const int32_t *cu_seqlens, int B, int C, af_error *err);

  /* ---- all-pairs top-k (ops.h) ---- */
  af_status (*topk_merge_rows)(void *ctx, float *ls, int64_t *li, int kp, const float *tile,
                               int QT, int CC, int64_t col0, int64_t q0, af_error *err);
  af_status (*rescore_fp32)(void *ctx, float *out, const float *Q, const float *X,
                            const int64_t *idx, int QT, int kp, int d, af_error *err);
  af_status (*topk_fused)(void *ctx, float *ps, int64_t *pi, int kp, const uint16_t *Q,
                          const uint16_t *X, int nq, int cc, int dp, int64_t col0, int64_t q0,
                          int S, af_error *err);
  af_status (*topk_merge_partials)(void *ctx, float *ls, int64_t *li, int kp, const float *ps,
                                   const int64_t *pi, int nq, int S, af_error *err);
  af_status (*rescore_fp32_range)(void *ctx, float *out, const float *Q, const float *X,
                                  const int64_t *idx, int QT, int kp, int d, int64_t c0,
                                  int64_t c1, af_error *err);
  af_status (*mem_free)(void *ctx, size_t *free_bytes, af_error *err);
  af_status (*host_alloc)(void *ctx, size_t bytes, void **out, af_error *err); /* pinned */
  void (*host_free)(void *ctx, void *ptr);

  /* ---- training (ops_backward.h) ---- */
  af_status (*dropout_forward)(void *ctx, float *out, const float *inp, int64_t n, float p_drop,
                               uint64_t seed, uint64_t stream, af_error *err);
  af_status (*dropout_backward)(void *ctx, float *dinp, const float *dout, int64_t n,
                                float p_drop, uint64_t seed, uint64_t stream, af_error *err);
  af_status (*attention_dropout_forward)(void *ctx, float *out, const float *probs,
                                         const float *qkv, const int32_t *cu_seqlens, int B,
                                         int C, int NH, float p, uint64_t seed, uint64_t stream,
                                         const int64_t *mask_base, const int32_t *cu_host,
                                         af_error *err);
  af_status (*attention_dropout_backward)(void *ctx, float *dqkv, const float *dout,
                                          const float *qkv, const float *probs,
                                          const int32_t *cu_seqlens, int B, int C, int NH,
                                          float p, uint64_t seed, uint64_t stream,
                                          const int64_t *mask_base, const int32_t *cu_host,
                                          af_error *err);
  af_status (*embedding_backward)(void *ctx, float *dwte, float *dwpe, float *dwtt,
                                  const float *dout, const int32_t *ids, const int32_t *pos,
                                  const int32_t *type_ids, int T, int C, const int32_t *ids_host,
                                  const int32_t *pos_host, af_error *err);
  af_status (*layernorm_backward)(void *ctx, float *dinp, float *dw, float *db, const float *dout,
                                  const float *inp, const float *w, const float *mean,
                                  const float *rstd, int N, int C, af_error *err);
  af_status (*linear_backward)(void *ctx, float *dinp, float *dw, float *dbias, const float *dout,
                               const float *inp, const float *w, int N, int IC, int OC,
                               af_error *err);
  af_status (*gelu_backward)(void *ctx, float *dinp, const float *dout, const float *inp,
                             int64_t n, af_error *err);
  af_status (*add_backward)(void *ctx, float *da, float *db, const float *dout, int64_t n,
                            af_error *err);
  af_status (*attention_backward)(void *ctx, float *dqkv, const float *dout, const float *qkv,
                                  const float *probs, const int32_t *cu_seqlens, int B, int C,
                                  int NH, const int32_t *cu_host, af_error *err);
  af_status (*mean_pool_backward)(void *ctx, float *dinp, const float *dout,
                                  const int32_t *cu_seqlens, int B, int C, af_error *err);
  af_status (*cls_pool_backward)(void *ctx, float *dinp, const float *dout,
                                 const int32_t *cu_seqlens, int B, int C, af_error *err);
  af_status (*l2norm_backward)(void *ctx, float *dinp, const float *dout, const float *out,
                               const float *norms, int N, int C, af_error *err);

  /* ---- the trainer on the device (ops_backward.h: af_dev_zero ... af_op_adamw_step) ---- */
  af_status (*zero)(void *ctx, void *dst, size_t bytes, af_error *err);
  af_status (*stream)(void *ctx, void **out, af_error *err);
  af_status (*copy)(void *ctx, void *dst, const void *src, size_t bytes, af_error *err);
  af_status (*dropout_tokens_forward)(void *ctx, float *x, const int32_t *gtok, int T, int C,
                                      float p, uint64_t seed, uint64_t stream, af_error *err);
  af_status (*dropout_tokens_backward)(void *ctx, float *dinp, const float *dout,
                                       const int32_t *gtok, int T, int C, float p, uint64_t seed,
                                       uint64_t stream, af_error *err);
  af_status (*grad_sumsq)(void *ctx, const float *grad, int64_t n, double *out, af_error *err);
  af_status (*mnr_loss)(void *ctx, const float *anchors, const float *positives, int B, int C,
                        float scale, int symmetric, float *loss, float *d_anchors,
                        float *d_positives, af_error *err);
  af_status (*adamw_step)(void *ctx, float *param, const float *grad, float *m, float *v,
                          uint16_t *work_bf16, const af_adamw_tensor *table, int n_tensors,
                          const af_adamw_op_scalars *s, af_error *err);
  af_status (*grad_sumsq_table)(void *ctx, const float *grad, const af_adamw_tensor *table,
                                int n_tensors, double *out, af_error *err);

  /* ---- bf16 training with the persistent bf16 weights (the bf16 tables only) ---- */
  af_status (*linear_forward_w16)(void *ctx, float *out, const float *inp, const uint16_t *w16,
                                  const float *bias, int N, int IC, int OC, af_error *err);
  af_status (*linear_backward_w16)(void *ctx, float *dinp, float *dw, float *dbias,
                                   const float *dout, const float *inp, const uint16_t *w16,
                                   int N, int IC, int OC, af_error *err);
};

/* The CPU backend's table: every op (kernels/cpu/backend.c). */
extern const struct af_backend_ops af_cpu_backend_ops;
/* The CPU table in bf16 mode: the linear layers on the bf16 GEMM. */
extern const struct af_backend_ops af_cpu_bf16_backend_ops;
/* The CUDA backend's table (kernels/cuda/backend.cu; CUDA builds only): memory
 * and the forward ops; training ops are added there as they are written. */
extern const struct af_backend_ops af_cuda_backend_ops;
/* The CUDA table in bf16 mode (training): the linear layers' GEMMs take bf16
 * inputs with fp32 accumulation (kernels/cuda/linear_bf16_train.cu). */
extern const struct af_backend_ops af_cuda_bf16_backend_ops;

/* The call of op `op` through dev's table, or the missing-op error. */
#define AF_OP_CALL(dev, op, err, ...)                                                             \
  (((dev)->ops && (dev)->ops->op) ? (dev)->ops->op((dev)->ctx, __VA_ARGS__, (err))                \
                                  : af_op_missing((dev)->ops, #op, (err)))

/* The error of an op `op` that the device's backend lacks (used by ops.c). */
af_status af_op_missing(const struct af_backend_ops *ops, const char *op, af_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AF_OPS_TABLE_H */
