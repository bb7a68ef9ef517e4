/* The op interface's entry points (ops.h): each calls the op through the
 * device's backend table (ops_table.h), or reports that the backend lacks it. */
#include "ops.h"
#include "topk_fused.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops_table.h"

af_status af_op_missing(const af_backend_ops *ops, const char *op, af_error *err) {
  return af_error_set(err, AF_ERR_UNSUPPORTED, "op %s is not implemented by the %s backend", op,
                      ops && ops->name ? ops->name : "(no)");
}

af_device af_device_cpu(int n_threads) {
  af_device d = {.backend = AF_BACKEND_CPU,
                 .n_threads = n_threads,
                 .ctx = NULL,
                 .ops = &af_cpu_backend_ops};
  if (n_threads > 0)
    omp_set_num_threads(n_threads);
  return d;
}

#ifndef AF_HAVE_CUDA
af_status af_device_cuda(int ordinal, af_device *out, af_error *err) {
  (void)ordinal;
  (void)out;
  return af_error_set(err, AF_ERR_UNSUPPORTED, "this build of affinity has no CUDA support");
}
void af_device_release(af_device *dev) { (void)dev; }
int af_cuda_available(void) { return 0; }
#endif

/* ---- forward ops ------------------------------------------------------------ */

af_status af_op_embedding_forward(const af_device *dev, float *out, const int32_t *ids,
                                  const int32_t *pos, const int32_t *type_ids, const float *wte,
                                  const float *wpe, const float *wtt, int T, int C, af_error *err) {
  return AF_OP_CALL(dev, embedding_forward, err, out, ids, pos, type_ids, wte, wpe, wtt, T, C);
}

af_status af_op_layernorm_forward(const af_device *dev, float *out, float *mean, float *rstd,
                                  const float *inp, const float *w, const float *b, int N, int C,
                                  float eps, af_error *err) {
  return AF_OP_CALL(dev, layernorm_forward, err, out, mean, rstd, inp, w, b, N, C, eps);
}

af_status af_op_linear_forward(const af_device *dev, float *out, const float *inp, const float *w,
                               const float *bias, int N, int IC, int OC, af_error *err) {
  return AF_OP_CALL(dev, linear_forward, err, out, inp, w, bias, N, IC, OC);
}

af_status af_op_gelu_forward(const af_device *dev, float *out, const float *inp, int64_t n,
                             af_error *err) {
  return AF_OP_CALL(dev, gelu_forward, err, out, inp, n);
}

af_status af_op_add_forward(const af_device *dev, float *out, const float *a, const float *b,
                            int64_t n, af_error *err) {
  return AF_OP_CALL(dev, add_forward, err, out, a, b, n);
}

af_status af_op_attention_forward(const af_device *dev, float *out, float *probs, const float *qkv,
                                  const int32_t *cu_seqlens, int B, int C, int NH, af_error *err) {
  return AF_OP_CALL(dev, attention_forward, err, out, probs, qkv, cu_seqlens, B, C, NH);
}

af_status af_op_mean_pool_forward(const af_device *dev, float *out, const float *inp,
                                  const int32_t *cu_seqlens, int B, int C, af_error *err) {
  return AF_OP_CALL(dev, mean_pool_forward, err, out, inp, cu_seqlens, B, C);
}

af_status af_op_cls_pool_forward(const af_device *dev, float *out, const float *inp,
                                 const int32_t *cu_seqlens, int B, int C, af_error *err) {
  return AF_OP_CALL(dev, cls_pool_forward, err, out, inp, cu_seqlens, B, C);
}

af_status af_op_l2norm_forward(const af_device *dev, float *out, float *norms, const float *inp,
                               int N, int C, af_error *err) {
  return AF_OP_CALL(dev, l2norm_forward, err, out, norms, inp, N, C);
}

/* ---- bf16 inference ops --------------------------------------------------------- */

af_status af_op_cast_bf16(const af_device *dev, uint16_t *out, const float *inp, int64_t n,
                          af_error *err) {
  return AF_OP_CALL(dev, cast_bf16, err, out, inp, n);
}

af_status af_op_linear_bf16_forward(const af_device *dev, float *out, const uint16_t *inp,
                                    const uint16_t *w, const float *bias, int N, int IC, int OC,
                                    af_error *err) {
  return AF_OP_CALL(dev, linear_bf16_forward, err, out, inp, w, bias, N, IC, OC);
}

af_status af_op_bias_gelu_bf16_forward(const af_device *dev, uint16_t *out, const float *inp,
                                       const float *bias, int N, int C, af_error *err) {
  return AF_OP_CALL(dev, bias_gelu_bf16_forward, err, out, inp, bias, N, C);
}

af_status af_op_add_layernorm_forward(const af_device *dev, float *out, uint16_t *out_bf16,
                                      const float *a, const float *b, const float *w,
                                      const float *beta, int N, int C, float eps, af_error *err) {
  return AF_OP_CALL(dev, add_layernorm_forward, err, out, out_bf16, a, b, w, beta, N, C, eps);
}

af_status af_op_attention_bf16_forward(const af_device *dev, uint16_t *out, float *scratch,
                                       const float *qkv, const int32_t *cu_seqlens, int B, int T,
                                       int C, int NH, af_error *err) {
  return AF_OP_CALL(dev, attention_bf16_forward, err, out, scratch, qkv, cu_seqlens, B, T, C, NH);
}

af_status af_op_mean_pool_l2norm_forward(const af_device *dev, float *out, const float *inp,
                                         const int32_t *cu_seqlens, int B, int C, af_error *err) {
  return AF_OP_CALL(dev, mean_pool_l2norm_forward, err, out, inp, cu_seqlens, B, C);
}

/* ---- all-pairs top-k ops ------------------------------------------------------ */

af_status af_op_topk_merge_rows(const af_device *dev, float *ls, int64_t *li, int kp,
                                const float *tile, int QT, int CC, int64_t col0, int64_t q0,
                                af_error *err) {
  if (kp < 1 || kp > AF_TOPK_OP_MAX_KP)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "topk_merge_rows: k' = %d is not in 1..%d", kp,
                        AF_TOPK_OP_MAX_KP);
  return AF_OP_CALL(dev, topk_merge_rows, err, ls, li, kp, tile, QT, CC, col0, q0);
}

af_status af_op_rescore_fp32(const af_device *dev, float *out, const float *Q, const float *X,
                             const int64_t *idx, int QT, int kp, int d, af_error *err) {
  return AF_OP_CALL(dev, rescore_fp32, err, out, Q, X, idx, QT, kp, d);
}

af_status af_op_topk_fused(const af_device *dev, float *ps, int64_t *pi, int kp,
                           const uint16_t *Q, const uint16_t *X, int nq, int cc, int dp,
                           int64_t col0, int64_t q0, int S, af_error *err) {
  if (kp < 1 || kp > AF_FUSED_MAX_KP || dp < 16 || dp % 16 || dp > AF_FUSED_MAX_D || nq < 0 ||
      cc < 0 || S < 1 || S > af_fused_max_splits(kp) || col0 < 0 || col0 + cc > 0x7fffffff)
    return af_error_set(err, AF_ERR_ARG,
                        "topk_fused: k'=%d (1..%d), padded d=%d (16..%d, multiple of 16), "
                        "splits %d (1..%d), columns [%lld, +%d) must stay below 2^31",
                        kp, AF_FUSED_MAX_KP, dp, AF_FUSED_MAX_D, S, af_fused_max_splits(kp),
                        (long long)col0, cc);
  return AF_OP_CALL(dev, topk_fused, err, ps, pi, kp, Q, X, nq, cc, dp, col0, q0, S);
}

af_status af_op_topk_merge_partials(const af_device *dev, float *ls, int64_t *li, int kp,
                                    const float *ps, const int64_t *pi, int nq, int S,
                                    af_error *err) {
  if (kp < 1 || kp > AF_FUSED_MAX_KP || S < 1 || (int64_t)(S + 1) * kp > AF_FUSED_PARTIALS)
    return af_error_set(err, AF_ERR_ARG, "topk_merge_partials: k'=%d, %d splits: (S + 1) k' "
                        "must be at most %d", kp, S, AF_FUSED_PARTIALS);
  return AF_OP_CALL(dev, topk_merge_partials, err, ls, li, kp, ps, pi, nq, S);
}

af_status af_op_rescore_fp32_range(const af_device *dev, float *out, const float *Q,
                                   const float *X, const int64_t *idx, int QT, int kp, int d,
                                   int64_t c0, int64_t c1, af_error *err) {
  return AF_OP_CALL(dev, rescore_fp32_range, err, out, Q, X, idx, QT, kp, d, c0, c1);
}

af_status af_host_alloc(const af_device *dev, size_t bytes, void **out, af_error *err) {
  *out = NULL;
  if (dev->ops && dev->ops->host_alloc) {
    AF_TRY(dev->ops->host_alloc(dev->ctx, bytes, out, err));
    memset(*out, 0, bytes);
    return AF_OK;
  }
  *out = af_calloc(bytes ? bytes : 1, 1, err);
  return *out ? AF_OK : AF_ERR_NOMEM;
}

void af_host_free(const af_device *dev, void *ptr) {
  if (dev->ops && dev->ops->host_free)
    dev->ops->host_free(dev->ctx, ptr);
  else
    free(ptr);
}

af_status af_op_mem_free(const af_device *dev, size_t *free_bytes, af_error *err) {
  if (!dev->ops || !dev->ops->mem_free) {
    *free_bytes = SIZE_MAX;
    return AF_OK;
  }
  return dev->ops->mem_free(dev->ctx, free_bytes, err);
}

/* ---- device memory ----------------------------------------------------------- */

af_status af_dev_alloc(const af_device *dev, size_t bytes, void **out, af_error *err) {
  *out = NULL;
  if (!dev->ops || !dev->ops->malloc)
    return af_op_missing(dev->ops, "malloc", err);
  return dev->ops->malloc(dev->ctx, bytes, out, err);
}

void *af_dev_malloc(const af_device *dev, size_t bytes, af_error *err) {
  void *p = NULL;
  return af_dev_alloc(dev, bytes, &p, err) == AF_OK ? p : NULL;
}

void af_dev_free(const af_device *dev, void *ptr) {
  if (dev->ops && dev->ops->free)
    dev->ops->free(dev->ctx, ptr);
}

af_status af_dev_upload(const af_device *dev, void *dst, const void *host_src, size_t bytes,
                        af_error *err) {
  return AF_OP_CALL(dev, memcpy, err, dst, host_src, bytes, 1);
}

af_status af_dev_download(const af_device *dev, void *host_dst, const void *src, size_t bytes,
                          af_error *err) {
  return AF_OP_CALL(dev, memcpy, err, host_dst, src, bytes, 0);
}

static af_status check_queue(af_queue q, af_error *err) {
  if ((int)q < 0 || (int)q >= AF_N_QUEUES)
    return af_error_set(err, AF_ERR_ARG, "queue %d is not a device queue (0..%d)", (int)q,
                        AF_N_QUEUES - 1);
  return AF_OK;
}

/* The queued copy, or the synchronous one where the backend has none. */
static af_status copy_async(const af_device *dev, af_queue q, void *dst, const void *src,
                            size_t bytes, int to_device, af_error *err) {
  AF_TRY(check_queue(q, err));
  if (dev->ops && dev->ops->copy_async)
    return dev->ops->copy_async(dev->ctx, (int)q, dst, src, bytes, to_device, err);
  return AF_OP_CALL(dev, memcpy, err, dst, src, bytes, to_device);
}

af_status af_dev_upload_async(const af_device *dev, af_queue q, void *dst, const void *host_src,
                              size_t bytes, af_error *err) {
  return copy_async(dev, q, dst, host_src, bytes, 1, err);
}

af_status af_dev_download_async(const af_device *dev, af_queue q, void *host_dst,
                                const void *src, size_t bytes, af_error *err) {
  return copy_async(dev, q, host_dst, src, bytes, 0, err);
}

af_status af_dev_event_create(const af_device *dev, af_dev_event **out, af_error *err) {
  *out = NULL;
  if (!dev->ops || !dev->ops->event_create)
    return AF_OK; // no queues: nothing to order
  void *ev = NULL;
  AF_TRY(dev->ops->event_create(dev->ctx, &ev, err));
  *out = (af_dev_event *)ev;
  return AF_OK;
}

void af_dev_event_free(const af_device *dev, af_dev_event *ev) {
  if (ev && dev->ops && dev->ops->event_free)
    dev->ops->event_free(dev->ctx, ev);
}

af_status af_dev_event_record(const af_device *dev, af_dev_event *ev, af_queue q,
                              af_error *err) {
  AF_TRY(check_queue(q, err));
  if (!ev || !dev->ops || !dev->ops->event_record)
    return AF_OK;
  return dev->ops->event_record(dev->ctx, ev, (int)q, err);
}

af_status af_dev_queue_wait(const af_device *dev, af_queue q, af_dev_event *ev, af_error *err) {
  AF_TRY(check_queue(q, err));
  if (!ev || !dev->ops || !dev->ops->queue_wait)
    return AF_OK;
  return dev->ops->queue_wait(dev->ctx, (int)q, ev, err);
}

af_status af_dev_sync(const af_device *dev, af_error *err) {
  if (!dev->ops || !dev->ops->sync)
    return af_op_missing(dev->ops, "sync", err);
  return dev->ops->sync(dev->ctx, err);
}
