/* The CUDA backend's op table (ops_table.h). Each entry makes the context's
 * GPU current (af_cuda_enter), queues the op on the context's stream, and
 * returns the error the op recorded (an argument it cannot handle, a failed
 * launch or cuBLAS call) at once; a fault inside a running kernel surfaces at
 * the next sync or download. A NULL entry would make af_op_* report "op ... is
 * not implemented by the cuda backend"; every op has a CUDA entry now (the
 * training ones have not run on a GPU yet). */
#include "cuda_ops.h"
#include "cuda_ops_backward.h"
#include "ops_table.h"

#define CTX(v) ((af_cuda_context *)(v))

/* Runs `call` (a void af_cuda_* op) on the context's device; returns its error. */
#define RUN(v, err, call)                                                                          \
  do {                                                                                             \
    AF_TRY(af_cuda_enter(CTX(v), (err)));                                                          \
    call;                                                                                          \
    return af_cuda_take_pending(CTX(v), (err));                                                    \
  } while (0)

/* ---- memory ------------------------------------------------------------------ */

static af_status cu_malloc(void *v, size_t bytes, void **out, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  *out = af_cuda_malloc(CTX(v), bytes, err);
  return *out ? AF_OK : AF_ERR_CUDA; // af_cuda_malloc fails only when cudaMalloc does
}

static void cu_free(void *v, void *ptr) {
  // A failure of cudaFree is recorded in the context (reported at the next sync).
  if (af_cuda_enter(CTX(v), NULL) == AF_OK)
    af_cuda_free(CTX(v), ptr);
}

static af_status cu_memcpy(void *v, void *dst, const void *src, size_t bytes, int to_device,
                           af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_memcpy(CTX(v), dst, src, bytes, to_device, err);
}

static af_status cu_copy_async(void *v, int q, void *dst, const void *src, size_t bytes,
                               int to_device, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_copy_async(CTX(v), q, dst, src, bytes, to_device, err);
}

static af_status cu_event_create(void *v, void **out, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_event_create(CTX(v), out, err);
}

static void cu_event_free(void *v, void *ev) {
  if (af_cuda_enter(CTX(v), NULL) == AF_OK)
    af_cuda_event_free(CTX(v), ev);
}

static af_status cu_event_record(void *v, void *ev, int q, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_event_record(CTX(v), ev, q, err);
}

static af_status cu_queue_wait(void *v, int q, void *ev, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_queue_wait(CTX(v), q, ev, err);
}

static af_status cu_sync(void *v, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_sync(CTX(v), err);
}

/* ---- forward ------------------------------------------------------------------ */

static af_status cu_embedding_forward(void *v, float *out, const int32_t *ids, const int32_t *pos,
                                      const int32_t *type_ids, const float *wte, const float *wpe,
                                      const float *wtt, int T, int C, af_error *err) {
  RUN(v, err, af_cuda_embedding_forward(CTX(v), out, ids, pos, type_ids, wte, wpe, wtt, T, C));
}

static af_status cu_layernorm_forward(void *v, float *out, float *mean, float *rstd,
                                      const float *inp, const float *w, const float *b, int N,
                                      int C, float eps, af_error *err) {
  RUN(v, err, af_cuda_layernorm_forward(CTX(v), out, mean, rstd, inp, w, b, N, C, eps));
}

static af_status cu_linear_forward(void *v, float *out, const float *inp, const float *w,
                                   const float *bias, int N, int IC, int OC, af_error *err) {
  RUN(v, err, af_cuda_linear_forward(CTX(v), out, inp, w, bias, N, IC, OC));
}

static af_status cu_gelu_forward(void *v, float *out, const float *inp, int64_t n,
                                 af_error *err) {
  RUN(v, err, af_cuda_gelu_forward(CTX(v), out, inp, n));
}

static af_status cu_add_forward(void *v, float *out, const float *a, const float *b, int64_t n,
                                af_error *err) {
  RUN(v, err, af_cuda_add_forward(CTX(v), out, a, b, n));
}

static af_status cu_attention_forward(void *v, float *out, float *probs, const float *qkv,
                                      const int32_t *cu, int B, int C, int NH, af_error *err) {
  RUN(v, err, af_cuda_attention_forward(CTX(v), out, probs, qkv, cu, B, C, NH));
}

static af_status cu_mean_pool_forward(void *v, float *out, const float *inp, const int32_t *cu,
                                      int B, int C, af_error *err) {
  RUN(v, err, af_cuda_mean_pool_forward(CTX(v), out, inp, cu, B, C));
}

static af_status cu_cls_pool_forward(void *v, float *out, const float *inp, const int32_t *cu,
                                     int B, int C, af_error *err) {
  RUN(v, err, af_cuda_cls_pool_forward(CTX(v), out, inp, cu, B, C));
}

static af_status cu_l2norm_forward(void *v, float *out, float *norms, const float *inp, int N,
                                   int C, af_error *err) {
  RUN(v, err, af_cuda_l2norm_forward(CTX(v), out, norms, inp, N, C));
}

/* ---- bf16 inference -------------------------------------------------------------- */

static af_status cu_cast_bf16(void *v, uint16_t *out, const float *inp, int64_t n,
                              af_error *err) {
  RUN(v, err, af_cuda_cast_bf16(CTX(v), out, inp, n));
}

static af_status cu_linear_bf16_forward(void *v, float *out, const uint16_t *inp,
                                        const uint16_t *w, const float *bias, int N, int IC,
                                        int OC, af_error *err) {
  RUN(v, err, af_cuda_linear_bf16_forward(CTX(v), out, inp, w, bias, N, IC, OC));
}

static af_status cu_bias_gelu_bf16_forward(void *v, uint16_t *out, const float *inp,
                                           const float *bias, int N, int C, af_error *err) {
  RUN(v, err, af_cuda_bias_gelu_bf16_forward(CTX(v), out, inp, bias, N, C));
}

static af_status cu_add_layernorm_forward(void *v, float *out, uint16_t *out_bf16, const float *a,
                                          const float *b, const float *w, const float *beta,
                                          int N, int C, float eps, af_error *err) {
  RUN(v, err, af_cuda_add_layernorm_forward(CTX(v), out, out_bf16, a, b, w, beta, N, C, eps));
}

static af_status cu_attention_bf16_forward(void *v, uint16_t *out, float *scratch,
                                           const float *qkv, const int32_t *cu, int B, int T,
                                           int C, int NH, af_error *err) {
  RUN(v, err, af_cuda_attention_bf16_forward(CTX(v), out, scratch, qkv, cu, B, T, C, NH));
}

static af_status cu_mean_pool_l2norm_forward(void *v, float *out, const float *inp,
                                             const int32_t *cu, int B, int C, af_error *err) {
  RUN(v, err, af_cuda_mean_pool_l2norm_forward(CTX(v), out, inp, cu, B, C));
}

/* ---- all-pairs top-k ---------------------------------------------------------------- */

static af_status cu_topk_merge_rows(void *v, float *ls, int64_t *li, int kp, const float *tile,
                                    int QT, int CC, int64_t col0, int64_t q0, af_error *err) {
  RUN(v, err, af_cuda_topk_merge_rows(CTX(v), ls, li, kp, tile, QT, CC, col0, q0));
}

static af_status cu_rescore_fp32(void *v, float *out, const float *Q, const float *X,
                                 const int64_t *idx, int QT, int kp, int d, af_error *err) {
  RUN(v, err, af_cuda_rescore_fp32(CTX(v), out, Q, X, idx, QT, kp, d));
}

static af_status cu_topk_fused(void *v, float *ps, int64_t *pi, int kp, const uint16_t *Q,
                               const uint16_t *X, int nq, int cc, int dp, int64_t col0,
                               int64_t q0, int S, af_error *err) {
  RUN(v, err, af_cuda_topk_fused(CTX(v), ps, pi, kp, Q, X, nq, cc, dp, col0, q0, S));
}

static af_status cu_topk_merge_partials(void *v, float *ls, int64_t *li, int kp, const float *ps,
                                        const int64_t *pi, int nq, int S, af_error *err) {
  RUN(v, err, af_cuda_topk_merge_partials(CTX(v), ls, li, kp, ps, pi, nq, S));
}

static af_status cu_rescore_fp32_range(void *v, float *out, const float *Q, const float *X,
                                       const int64_t *idx, int QT, int kp, int d, int64_t c0,
                                       int64_t c1, af_error *err) {
  RUN(v, err, af_cuda_rescore_fp32_range(CTX(v), out, Q, X, idx, QT, kp, d, c0, c1));
}

static af_status cu_host_alloc(void *v, size_t bytes, void **out, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_host_alloc(CTX(v), bytes, out, err);
}

static void cu_host_free(void *v, void *ptr) {
  if (af_cuda_enter(CTX(v), NULL) == AF_OK)
    af_cuda_host_free(CTX(v), ptr);
}

static af_status cu_mem_free(void *v, size_t *free_bytes, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_mem_free(CTX(v), free_bytes, err);
}

/* ---- training (kernels/cuda/*_backward.cu; not yet run on a GPU) --------------------- */

static af_status cu_dropout_forward(void *v, float *out, const float *inp, int64_t n, float p,
                                    uint64_t seed, uint64_t stream, af_error *err) {
  RUN(v, err, af_cuda_dropout_forward(CTX(v), out, inp, n, p, seed, stream));
}

static af_status cu_dropout_backward(void *v, float *dinp, const float *dout, int64_t n, float p,
                                     uint64_t seed, uint64_t stream, af_error *err) {
  RUN(v, err, af_cuda_dropout_backward(CTX(v), dinp, dout, n, p, seed, stream));
}

static af_status cu_embedding_backward(void *v, float *dwte, float *dwpe, float *dwtt,
                                       const float *dout, const int32_t *ids, const int32_t *pos,
                                       const int32_t *type_ids, int T, int C,
                                       const int32_t *ids_host, const int32_t *pos_host,
                                       af_error *err) {
  RUN(v, err, af_cuda_embedding_backward(CTX(v), dwte, dwpe, dwtt, dout, ids, pos, type_ids, T, C,
                                         ids_host, pos_host));
}

static af_status cu_layernorm_backward(void *v, float *dinp, float *dw, float *db,
                                       const float *dout, const float *inp, const float *w,
                                       const float *mean, const float *rstd, int N, int C,
                                       af_error *err) {
  RUN(v, err, af_cuda_layernorm_backward(CTX(v), dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

static af_status cu_linear_backward(void *v, float *dinp, float *dw, float *dbias,
                                    const float *dout, const float *inp, const float *w, int N,
                                    int IC, int OC, af_error *err) {
  RUN(v, err, af_cuda_linear_backward(CTX(v), dinp, dw, dbias, dout, inp, w, N, IC, OC));
}

static af_status cu_gelu_backward(void *v, float *dinp, const float *dout, const float *inp,
                                  int64_t n, af_error *err) {
  RUN(v, err, af_cuda_gelu_backward(CTX(v), dinp, dout, inp, n));
}

static af_status cu_add_backward(void *v, float *da, float *db, const float *dout, int64_t n,
                                 af_error *err) {
  RUN(v, err, af_cuda_add_backward(CTX(v), da, db, dout, n));
}

static af_status cu_attention_backward(void *v, float *dqkv, const float *dout, const float *qkv,
                                       const float *probs, const int32_t *cu, int B, int C, int NH,
                                       const int32_t *cu_host, af_error *err) {
  RUN(v, err, af_cuda_attention_backward(CTX(v), dqkv, dout, qkv, probs, cu, B, C, NH, cu_host));
}

static af_status cu_mean_pool_backward(void *v, float *dinp, const float *dout, const int32_t *cu,
                                       int B, int C, af_error *err) {
  RUN(v, err, af_cuda_mean_pool_backward(CTX(v), dinp, dout, cu, B, C));
}

static af_status cu_cls_pool_backward(void *v, float *dinp, const float *dout, const int32_t *cu,
                                      int B, int C, af_error *err) {
  RUN(v, err, af_cuda_cls_pool_backward(CTX(v), dinp, dout, cu, B, C));
}

static af_status cu_l2norm_backward(void *v, float *dinp, const float *dout, const float *out,
                                    const float *norms, int N, int C, af_error *err) {
  RUN(v, err, af_cuda_l2norm_backward(CTX(v), dinp, dout, out, norms, N, C));
}

/* ---- attention dropout and the trainer on the device (not yet run on a GPU) ---------- */

static af_status cu_attention_dropout_forward(void *v, float *out, const float *probs,
                                              const float *qkv, const int32_t *cu, int B, int C,
                                              int NH, float p, uint64_t seed, uint64_t stream,
                                              const int64_t *mask_base, const int32_t *cu_host,
                                              af_error *err) {
  RUN(v, err, af_cuda_attention_dropout_forward(CTX(v), out, probs, qkv, cu, B, C, NH, p, seed,
                                                stream, mask_base, cu_host));
}

static af_status cu_attention_dropout_backward(void *v, float *dqkv, const float *dout,
                                               const float *qkv, const float *probs,
                                               const int32_t *cu, int B, int C, int NH, float p,
                                               uint64_t seed, uint64_t stream,
                                               const int64_t *mask_base, const int32_t *cu_host,
                                               af_error *err) {
  RUN(v, err, af_cuda_attention_dropout_backward(CTX(v), dqkv, dout, qkv, probs, cu, B, C, NH, p,
                                                 seed, stream, mask_base, cu_host));
}

static af_status cu_zero(void *v, void *dst, size_t bytes, af_error *err) {
  RUN(v, err, af_cuda_zero(CTX(v), dst, bytes));
}

static af_status cu_stream(void *v, void **out, af_error *err) {
  (void)err;
  *out = af_cuda_stream(CTX(v));
  return AF_OK;
}

static af_status cu_copy(void *v, void *dst, const void *src, size_t bytes, af_error *err) {
  RUN(v, err, af_cuda_copy(CTX(v), dst, src, bytes));
}

static af_status cu_dropout_tokens_forward(void *v, float *x, const int32_t *gtok, int T, int C,
                                           float p, uint64_t seed, uint64_t stream,
                                           af_error *err) {
  RUN(v, err, af_cuda_dropout_tokens(CTX(v), x, NULL, gtok, T, C, p, seed, stream));
}

static af_status cu_dropout_tokens_backward(void *v, float *dinp, const float *dout,
                                            const int32_t *gtok, int T, int C, float p,
                                            uint64_t seed, uint64_t stream, af_error *err) {
  RUN(v, err, af_cuda_dropout_tokens(CTX(v), dinp, dout, gtok, T, C, p, seed, stream));
}

static af_status cu_grad_sumsq(void *v, const float *grad, int64_t n, double *out,
                               af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  AF_TRY(af_cuda_take_pending(CTX(v), err));
  return af_cuda_grad_sumsq(CTX(v), grad, n, out, err);
}

static af_status cu_mnr_loss(void *v, const float *a, const float *p, int B, int C, float scale,
                             int symmetric, float *loss, float *da, float *dp, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  return af_cuda_mnr_loss(CTX(v), a, p, B, C, scale, symmetric, loss, da, dp, err);
}

static af_status cu_adamw_step(void *v, float *param, const float *grad, float *m, float *vv,
                               uint16_t *work_bf16, const af_adamw_tensor *table, int n_tensors,
                               const af_adamw_op_scalars *s, af_error *err) {
  RUN(v, err, af_cuda_adamw_step(CTX(v), param, grad, m, vv, work_bf16, table, n_tensors, s));
}

static af_status cu_linear_forward_bf16in(void *v, float *out, const float *inp, const float *w,
                                          const float *bias, int N, int IC, int OC,
                                          af_error *err) {
  RUN(v, err, af_cuda_linear_forward_bf16in(CTX(v), out, inp, w, bias, N, IC, OC));
}

static af_status cu_linear_backward_bf16in(void *v, float *dinp, float *dw, float *dbias,
                                           const float *dout, const float *inp, const float *w,
                                           int N, int IC, int OC, af_error *err) {
  RUN(v, err, af_cuda_linear_backward_bf16in(CTX(v), dinp, dw, dbias, dout, inp, w, N, IC, OC));
}

static af_status cu_grad_sumsq_table(void *v, const float *grad, const af_adamw_tensor *table,
                                     int n_tensors, double *out, af_error *err) {
  AF_TRY(af_cuda_enter(CTX(v), err));
  AF_TRY(af_cuda_take_pending(CTX(v), err));
  return af_cuda_grad_sumsq_table(CTX(v), grad, table, n_tensors, out, err);
}

static af_status cu_linear_forward_w16(void *v, float *out, const float *inp, const uint16_t *w16,
                                       const float *bias, int N, int IC, int OC, af_error *err) {
  RUN(v, err, af_cuda_linear_forward_w16(CTX(v), out, inp, w16, bias, N, IC, OC));
}

static af_status cu_linear_backward_w16(void *v, float *dinp, float *dw, float *dbias,
                                        const float *dout, const float *inp, const uint16_t *w16,
                                        int N, int IC, int OC, af_error *err) {
  RUN(v, err, af_cuda_linear_backward_w16(CTX(v), dinp, dw, dbias, dout, inp, w16, N, IC, OC));
}

/* The trainer's entries, added to the table below (one place for merges). */
static void cuda_table_training(af_backend_ops *t) {
  t->attention_dropout_forward = cu_attention_dropout_forward;
  t->attention_dropout_backward = cu_attention_dropout_backward;
  t->zero = cu_zero;
  t->copy = cu_copy;
  t->stream = cu_stream;
  t->dropout_tokens_forward = cu_dropout_tokens_forward;
  t->dropout_tokens_backward = cu_dropout_tokens_backward;
  t->grad_sumsq = cu_grad_sumsq;
  t->grad_sumsq_table = cu_grad_sumsq_table;
  t->mnr_loss = cu_mnr_loss;
  t->adamw_step = cu_adamw_step;
}

/* bf16 mode for training (af_device_set_precision on CUDA): the fp32 table with
 * the linear layers' GEMM inputs rounded to bf16. */
static af_backend_ops cuda_bf16_table(void);

/* The table, filled member by member (C++17 has no designated initialisers). */
static af_backend_ops cuda_table(void) {
  af_backend_ops t = {};
  t.name = "cuda";
  t.malloc = cu_malloc;
  t.free = cu_free;
  t.memcpy = cu_memcpy;
  t.copy_async = cu_copy_async;
  t.event_create = cu_event_create;
  t.event_free = cu_event_free;
  t.event_record = cu_event_record;
  t.queue_wait = cu_queue_wait;
  t.sync = cu_sync;
  t.embedding_forward = cu_embedding_forward;
  t.layernorm_forward = cu_layernorm_forward;
  t.linear_forward = cu_linear_forward;
  t.gelu_forward = cu_gelu_forward;
  t.add_forward = cu_add_forward;
  t.attention_forward = cu_attention_forward;
  t.mean_pool_forward = cu_mean_pool_forward;
  t.cls_pool_forward = cu_cls_pool_forward;
  t.l2norm_forward = cu_l2norm_forward;
  t.cast_bf16 = cu_cast_bf16;
  t.linear_bf16_forward = cu_linear_bf16_forward;
  t.bias_gelu_bf16_forward = cu_bias_gelu_bf16_forward;
  t.add_layernorm_forward = cu_add_layernorm_forward;
  t.attention_bf16_forward = cu_attention_bf16_forward;
  t.mean_pool_l2norm_forward = cu_mean_pool_l2norm_forward;
  t.topk_merge_rows = cu_topk_merge_rows;
  t.rescore_fp32 = cu_rescore_fp32;
  t.topk_fused = cu_topk_fused;
  t.topk_merge_partials = cu_topk_merge_partials;
  t.rescore_fp32_range = cu_rescore_fp32_range;
  t.mem_free = cu_mem_free;
  t.host_alloc = cu_host_alloc;
  t.host_free = cu_host_free;
  t.dropout_forward = cu_dropout_forward;
  t.dropout_backward = cu_dropout_backward;
  t.embedding_backward = cu_embedding_backward;
  t.layernorm_backward = cu_layernorm_backward;
  t.linear_backward = cu_linear_backward;
  t.gelu_backward = cu_gelu_backward;
  t.add_backward = cu_add_backward;
  t.attention_backward = cu_attention_backward;
  t.mean_pool_backward = cu_mean_pool_backward;
  t.cls_pool_backward = cu_cls_pool_backward;
  t.l2norm_backward = cu_l2norm_backward;
  cuda_table_training(&t);
  return t;
}

extern "C" const af_backend_ops af_cuda_backend_ops = cuda_table();

static af_backend_ops cuda_bf16_table(void) {
  af_backend_ops t = cuda_table();
  t.name = "cuda (bf16)";
  t.linear_forward = cu_linear_forward_bf16in;
  t.linear_backward = cu_linear_backward_bf16in;
  t.linear_forward_w16 = cu_linear_forward_w16; // the trainer's bf16 working copy
  t.linear_backward_w16 = cu_linear_backward_w16;
  return t;
}

extern "C" const af_backend_ops af_cuda_bf16_backend_ops = cuda_bf16_table();
