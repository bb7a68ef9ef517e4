/* The CPU backend's op table (ops_table.h): every op, on host memory. The
 * kernels (af_cpu_*, one file per op) cannot fail; the adapters below check
 * the arguments a kernel relies on (the attention row limit, heads dividing
 * C) and return af_status like every backend. */
#include <stdlib.h>
#include <string.h>

#include "ops_backward.h"
#include "ops_table.h"

/* ---- memory ------------------------------------------------------------------ */

static af_status cpu_malloc(void *ctx, size_t bytes, void **out, af_error *err) {
  (void)ctx;
  *out = af_malloc(bytes, 1, err);
  return *out ? AF_OK : AF_ERR_NOMEM;
}

static void cpu_free(void *ctx, void *ptr) {
  (void)ctx;
  free(ptr);
}

static af_status cpu_memcpy(void *ctx, void *dst, const void *src, size_t bytes, int to_device,
                            af_error *err) {
  (void)ctx;
  (void)to_device;
  (void)err;
  if (bytes)
    memcpy(dst, src, bytes);
  return AF_OK;
}

static af_status cpu_sync(void *ctx, af_error *err) {
  (void)ctx;
  (void)err;
  return AF_OK;
}

/* What the CPU attention kernels need: NH | C and every sequence 0..AF_ATTN_MAX_LEN. */
static af_status check_attention(const char *op, const int32_t *cu, int B, int C, int NH,
                                 af_error *err) {
  if (NH < 1 || C % NH != 0)
    return af_error_set(err, AF_ERR_ARG, "%s: %d heads do not divide hidden size %d", op, NH, C);
  for (int b = 0; b < B; b++) {
    int L = cu[b + 1] - cu[b];
    if (L < 0 || L > AF_ATTN_MAX_LEN)
      return af_error_set(err, AF_ERR_UNSUPPORTED,
                          "%s: sequence %d has %d tokens (the CPU kernel takes 0..%d, "
                          "AF_ATTN_MAX_LEN)",
                          op, b, L, AF_ATTN_MAX_LEN);
  }
  return AF_OK;
}

/* ---- forward ------------------------------------------------------------------ */

static af_status cpu_embedding_forward(void *ctx, float *out, const int32_t *ids,
                                       const int32_t *pos, const int32_t *type_ids,
                                       const float *wte, const float *wpe, const float *wtt, int T,
                                       int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_embedding_forward(out, ids, pos, type_ids, wte, wpe, wtt, T, C);
  return AF_OK;
}

static af_status cpu_layernorm_forward(void *ctx, float *out, float *mean, float *rstd,
                                       const float *inp, const float *w, const float *b, int N,
                                       int C, float eps, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
  return AF_OK;
}

static af_status cpu_linear_forward(void *ctx, float *out, const float *inp, const float *w,
                                    const float *bias, int N, int IC, int OC, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_linear_forward(out, inp, w, bias, N, IC, OC);
  return AF_OK;
}

static af_status cpu_gelu_forward(void *ctx, float *out, const float *inp, int64_t n,
                                  af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_gelu_forward(out, inp, n);
  return AF_OK;
}

static af_status cpu_add_forward(void *ctx, float *out, const float *a, const float *b, int64_t n,
                                 af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_add_forward(out, a, b, n);
  return AF_OK;
}

static af_status cpu_attention_forward(void *ctx, float *out, float *probs, const float *qkv,
                                       const int32_t *cu, int B, int C, int NH, af_error *err) {
  (void)ctx;
  AF_TRY(check_attention("attention_forward", cu, B, C, NH, err));
  af_cpu_attention_forward(out, probs, qkv, cu, B, C, NH);
  return AF_OK;
}

static af_status cpu_mean_pool_forward(void *ctx, float *out, const float *inp, const int32_t *cu,
                                       int B, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_mean_pool_forward(out, inp, cu, B, C);
  return AF_OK;
}

static af_status cpu_cls_pool_forward(void *ctx, float *out, const float *inp, const int32_t *cu,
                                      int B, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_cls_pool_forward(out, inp, cu, B, C);
  return AF_OK;
}

static af_status cpu_l2norm_forward(void *ctx, float *out, float *norms, const float *inp, int N,
                                    int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_l2norm_forward(out, norms, inp, N, C);
  return AF_OK;
}

/* ---- bf16 inference (exact emulation of the GPU path) ------------------------ */

static af_status cpu_cast_bf16(void *ctx, uint16_t *out, const float *inp, int64_t n,
                               af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_cast_bf16(out, inp, n);
  return AF_OK;
}

/* Widens both bf16 operands to fp32 (exact) and runs the fp32 kernel: every
 * product of two bf16 is exact in fp32, so only the fp32 summation order
 * differs from tensor cores. */
static af_status cpu_linear_bf16_forward(void *ctx, float *out, const uint16_t *inp,
                                         const uint16_t *w, const float *bias, int N, int IC,
                                         int OC, af_error *err) {
  (void)ctx;
  float *x = af_malloc((size_t)N * IC, sizeof(float), err);  // (N, IC)
  float *wf = x ? af_malloc((size_t)OC * IC, sizeof(float), err) : NULL; // (OC, IC)
  if (!wf) {
    free(x);
    return AF_ERR_NOMEM;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < (int64_t)N * IC; i++)
    x[i] = af_f32_from_bf16(inp[i]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < (int64_t)OC * IC; i++)
    wf[i] = af_f32_from_bf16(w[i]);
  af_cpu_linear_forward(out, x, wf, bias, N, IC, OC);
  free(x);
  free(wf);
  return AF_OK;
}

static af_status cpu_bias_gelu_bf16_forward(void *ctx, uint16_t *out, const float *inp,
                                            const float *bias, int N, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_bias_gelu_bf16_forward(out, inp, bias, N, C);
  return AF_OK;
}

static af_status cpu_add_layernorm_forward(void *ctx, float *out, uint16_t *out_bf16,
                                           const float *a, const float *b, const float *w,
                                           const float *beta, int N, int C, float eps,
                                           af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_add_layernorm_forward(out, out_bf16, a, b, w, beta, N, C, eps);
  return AF_OK;
}

/* The tensor-core kernel's arithmetic (kernels/cpu/attention_bf16.c). */
static af_status cpu_attention_bf16_forward(void *ctx, uint16_t *out, float *scratch,
                                            const float *qkv, const int32_t *cu, int B, int T,
                                            int C, int NH, af_error *err) {
  (void)ctx;
  (void)scratch;
  (void)T;
  AF_TRY(check_attention("attention_bf16_forward", cu, B, C, NH, err));
  if (C / NH > 256)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "attention_bf16_forward: head size %d above the CPU kernel's 256", C / NH);
  af_cpu_attention_bf16_forward(out, qkv, cu, B, C, NH);
  return AF_OK;
}

static af_status cpu_mean_pool_l2norm_forward(void *ctx, float *out, const float *inp,
                                              const int32_t *cu, int B, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_mean_pool_forward(out, inp, cu, B, C);
  af_cpu_l2norm_forward(out, NULL, out, B, C);
  return AF_OK;
}

/* ---- all-pairs top-k --------------------------------------------------------------- */

static af_status cpu_topk_merge_rows(void *ctx, float *ls, int64_t *li, int kp, const float *tile,
                                     int QT, int CC, int64_t col0, int64_t q0, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_topk_merge_rows(ls, li, kp, tile, QT, CC, col0, q0);
  return AF_OK;
}

static af_status cpu_rescore_fp32(void *ctx, float *out, const float *Q, const float *X,
                                  const int64_t *idx, int QT, int kp, int d, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_rescore_fp32(out, Q, X, idx, QT, kp, d);
  return AF_OK;
}

static af_status cpu_topk_fused(void *ctx, float *ps, int64_t *pi, int kp, const uint16_t *Q,
                                const uint16_t *X, int nq, int cc, int dp, int64_t col0,
                                int64_t q0, int S, af_error *err) {
  (void)ctx;
  if (!af_cpu_topk_fused(ps, pi, kp, Q, X, nq, cc, dp, col0, q0, S))
    return af_error_set(err, AF_ERR_NOMEM, "topk_fused: out of memory for a block's lists");
  return AF_OK;
}

static af_status cpu_topk_merge_partials(void *ctx, float *ls, int64_t *li, int kp,
                                         const float *ps, const int64_t *pi, int nq, int S,
                                         af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_topk_merge_partials(ls, li, kp, ps, pi, nq, S);
  return AF_OK;
}

static af_status cpu_rescore_fp32_range(void *ctx, float *out, const float *Q, const float *X,
                                        const int64_t *idx, int QT, int kp, int d, int64_t c0,
                                        int64_t c1, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_rescore_fp32_range(out, Q, X, idx, QT, kp, d, c0, c1);
  return AF_OK;
}

/* ---- training ------------------------------------------------------------------ */

static af_status cpu_dropout_forward(void *ctx, float *out, const float *inp, int64_t n, float p,
                                     uint64_t seed, uint64_t stream, af_error *err) {
  (void)ctx;
  if (!(p >= 0.0f && p < 1.0f))
    return af_error_set(err, AF_ERR_ARG, "dropout_forward: p = %g is not in [0, 1)", p);
  af_cpu_dropout_forward(out, inp, n, p, seed, stream);
  return AF_OK;
}

static af_status cpu_dropout_backward(void *ctx, float *dinp, const float *dout, int64_t n,
                                      float p, uint64_t seed, uint64_t stream, af_error *err) {
  (void)ctx;
  if (!(p >= 0.0f && p < 1.0f))
    return af_error_set(err, AF_ERR_ARG, "dropout_backward: p = %g is not in [0, 1)", p);
  af_cpu_dropout_backward(dinp, dout, n, p, seed, stream);
  return AF_OK;
}

static af_status cpu_attention_dropout_forward(void *ctx, float *out, const float *probs,
                                               const float *qkv, const int32_t *cu, int B, int C,
                                               int NH, float p, uint64_t seed, uint64_t stream,
                                               const int64_t *mask_base, const int32_t *cu_host,
                                               af_error *err) {
  (void)ctx;
  (void)cu_host;
  if (!(p > 0.0f && p < 1.0f))
    return af_error_set(err, AF_ERR_ARG, "attention_dropout_forward: p = %g is not in (0, 1)", p);
  AF_TRY(check_attention("attention_dropout_forward", cu, B, C, NH, err));
  af_cpu_attention_dropout_forward(out, probs, qkv, cu, B, C, NH, p, seed, stream, mask_base);
  return AF_OK;
}

static af_status cpu_attention_dropout_backward(void *ctx, float *dqkv, const float *dout,
                                                const float *qkv, const float *probs,
                                                const int32_t *cu, int B, int C, int NH, float p,
                                                uint64_t seed, uint64_t stream,
                                                const int64_t *mask_base, const int32_t *cu_host,
                                                af_error *err) {
  (void)ctx;
  (void)cu_host;
  if (!(p > 0.0f && p < 1.0f))
    return af_error_set(err, AF_ERR_ARG, "attention_dropout_backward: p = %g is not in (0, 1)",
                        p);
  AF_TRY(check_attention("attention_dropout_backward", cu, B, C, NH, err));
  af_cpu_attention_dropout_backward(dqkv, dout, qkv, probs, cu, B, C, NH, p, seed, stream,
                                    mask_base);
  return AF_OK;
}

static af_status cpu_embedding_backward(void *ctx, float *dwte, float *dwpe, float *dwtt,
                                        const float *dout, const int32_t *ids, const int32_t *pos,
                                        const int32_t *type_ids, int T, int C,
                                        const int32_t *ids_host, const int32_t *pos_host,
                                        af_error *err) {
  (void)ctx;
  (void)err;
  (void)ids_host;
  (void)pos_host;
  af_cpu_embedding_backward(dwte, dwpe, dwtt, dout, ids, pos, type_ids, T, C);
  return AF_OK;
}

static af_status cpu_layernorm_backward(void *ctx, float *dinp, float *dw, float *db,
                                        const float *dout, const float *inp, const float *w,
                                        const float *mean, const float *rstd, int N, int C,
                                        af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  return AF_OK;
}

static af_status cpu_linear_backward(void *ctx, float *dinp, float *dw, float *dbias,
                                     const float *dout, const float *inp, const float *w, int N,
                                     int IC, int OC, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_linear_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC);
  return AF_OK;
}

static af_status cpu_gelu_backward(void *ctx, float *dinp, const float *dout, const float *inp,
                                   int64_t n, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_gelu_backward(dinp, dout, inp, n);
  return AF_OK;
}

static af_status cpu_add_backward(void *ctx, float *da, float *db, const float *dout, int64_t n,
                                  af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_add_backward(da, db, dout, n);
  return AF_OK;
}

static af_status cpu_attention_backward(void *ctx, float *dqkv, const float *dout,
                                        const float *qkv, const float *probs, const int32_t *cu,
                                        int B, int C, int NH, const int32_t *cu_host,
                                        af_error *err) {
  (void)ctx;
  (void)cu_host;
  AF_TRY(check_attention("attention_backward", cu, B, C, NH, err));
  af_cpu_attention_backward(dqkv, dout, qkv, probs, cu, B, C, NH);
  return AF_OK;
}

static af_status cpu_mean_pool_backward(void *ctx, float *dinp, const float *dout,
                                        const int32_t *cu, int B, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_mean_pool_backward(dinp, dout, cu, B, C);
  return AF_OK;
}

static af_status cpu_cls_pool_backward(void *ctx, float *dinp, const float *dout,
                                       const int32_t *cu, int B, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_cls_pool_backward(dinp, dout, cu, B, C);
  return AF_OK;
}

static af_status cpu_l2norm_backward(void *ctx, float *dinp, const float *dout, const float *out,
                                     const float *norms, int N, int C, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_l2norm_backward(dinp, dout, out, norms, N, C);
  return AF_OK;
}

/* bf16 mode (af_device_set_precision, kernels/cpu/precision.c): the linear
 * layers' GEMMs round their inputs to bf16 and accumulate in fp32
 * (vdpbf16ps); every other op is the fp32 one. */
static af_status cpu_linear_forward_bf16(void *ctx, float *out, const float *inp, const float *w,
                                         const float *bias, int N, int IC, int OC, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_linear_forward_bf16(out, inp, w, bias, N, IC, OC);
  return AF_OK;
}

static af_status cpu_linear_backward_bf16(void *ctx, float *dinp, float *dw, float *dbias,
                                          const float *dout, const float *inp, const float *w,
                                          int N, int IC, int OC, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_linear_backward_bf16(dinp, dw, dbias, dout, inp, w, N, IC, OC);
  return AF_OK;
}

/* The trainer's memory and optimizer ops (ops_backward.h). */
static af_status cpu_zero(void *ctx, void *dst, size_t bytes, af_error *err) {
  (void)ctx;
  (void)err;
  memset(dst, 0, bytes);
  return AF_OK;
}

static af_status cpu_stream(void *ctx, void **out, af_error *err) {
  (void)ctx;
  (void)err;
  *out = NULL;
  return AF_OK;
}

static af_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes, af_error *err) {
  (void)ctx;
  (void)err;
  memcpy(dst, src, bytes);
  return AF_OK;
}

static af_status cpu_dropout_tokens_forward(void *ctx, float *x, const int32_t *gtok, int T, int C,
                                            float p, uint64_t seed, uint64_t stream,
                                            af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_dropout_tokens(x, NULL, gtok, T, C, p, seed, stream);
  return AF_OK;
}

static af_status cpu_dropout_tokens_backward(void *ctx, float *dinp, const float *dout,
                                             const int32_t *gtok, int T, int C, float p,
                                             uint64_t seed, uint64_t stream, af_error *err) {
  (void)ctx;
  (void)err;
  af_cpu_dropout_tokens(dinp, dout, gtok, T, C, p, seed, stream);
  return AF_OK;
}

static af_status cpu_grad_sumsq(void *ctx, const float *grad, int64_t n, double *out,
                                af_error *err) {
  (void)ctx;
  (void)err;
  *out = af_cpu_grad_sumsq(grad, n);
  return AF_OK;
}

static af_status cpu_mnr_loss(void *ctx, const float *a, const float *p, int B, int C, float scale,
                              int symmetric, float *loss, float *da, float *dp, af_error *err) {
  (void)ctx;
  return af_cpu_mnr_loss(a, p, NULL, B, 0, C, scale, symmetric, loss, da, dp, NULL, err);
}

static af_status cpu_adamw_step(void *ctx, float *param, const float *grad, float *m, float *v,
                                uint16_t *work_bf16, const af_adamw_tensor *table, int n_tensors,
                                const af_adamw_op_scalars *s, af_error *err) {
  (void)ctx;
  if (work_bf16)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "adamw_step: the cpu fp32 table keeps no "
                        "bf16 working copy (its bf16 table does)");
  for (int i = 0; i < n_tensors; i++) {
    const int64_t o = table[i].offset;
    af_cpu_adamw_update(param + o, grad + o, m + o, v + o, table[i].numel, table[i].decay, s);
  }
  return AF_OK;
}

/* The bf16 table's AdamW also writes the bf16 rounding of every updated
 * parameter into work_bf16 (the trainer's working copy). */
static af_status cpu_adamw_step_bf16(void *ctx, float *param, const float *grad, float *m,
                                     float *v, uint16_t *work_bf16, const af_adamw_tensor *table,
                                     int n_tensors, const af_adamw_op_scalars *s, af_error *err) {
  AF_TRY(cpu_adamw_step(ctx, param, grad, m, v, NULL, table, n_tensors, s, err));
  for (int i = 0; i < n_tensors && work_bf16; i++) {
    const int64_t o = table[i].offset, n = table[i].numel;
#pragma omp parallel for schedule(static)
    for (int64_t k = o; k < o + n; k++)
      work_bf16[k] = af_bf16_from_f32(param[k]);
  }
  return AF_OK;
}

static af_status cpu_grad_sumsq_table(void *ctx, const float *grad, const af_adamw_tensor *table,
                                      int n_tensors, double *out, af_error *err) {
  (void)ctx;
  (void)err;
  double ss = 0.0;
  for (int i = 0; i < n_tensors; i++)
    ss += af_cpu_grad_sumsq(grad + table[i].offset, table[i].numel);
  *out = ss;
  return AF_OK;
}

/* w16 (OC, IC) widened to fp32 (exact): the bf16 GEMM's rounding of it is
 * itself, so the results are those of the fp32 weights w16 rounds. */
static float *widen_w16(const uint16_t *w16, int64_t n, af_error *err) {
  float *w = af_malloc((size_t)n, sizeof(float), err);
  if (w)
    for (int64_t i = 0; i < n; i++)
      w[i] = af_f32_from_bf16(w16[i]);
  return w;
}

static af_status cpu_linear_forward_w16(void *ctx, float *out, const float *inp,
                                        const uint16_t *w16, const float *bias, int N, int IC,
                                        int OC, af_error *err) {
  float *w = widen_w16(w16, (int64_t)OC * IC, err); // (OC, IC)
  if (!w)
    return AF_ERR_NOMEM;
  af_status st = cpu_linear_forward_bf16(ctx, out, inp, w, bias, N, IC, OC, err);
  free(w);
  return st;
}

static af_status cpu_linear_backward_w16(void *ctx, float *dinp, float *dw, float *dbias,
                                         const float *dout, const float *inp, const uint16_t *w16,
                                         int N, int IC, int OC, af_error *err) {
  float *w = widen_w16(w16, (int64_t)OC * IC, err); // (OC, IC)
  if (!w)
    return AF_ERR_NOMEM;
  af_status st = cpu_linear_backward_bf16(ctx, dinp, dw, dbias, dout, inp, w, N, IC, OC, err);
  free(w);
  return st;
}

/* The two CPU tables differ only in the linear layers (and the bf16 one's
 * working copy: AdamW writes it, the w16 linear ops read it). */
#define CPU_TABLE(NAME, LINEAR_FWD, LINEAR_BWD, ADAMW) \
    .name = NAME,                                                   \
    .malloc = cpu_malloc,                                           \
    .free = cpu_free,                                               \
    .memcpy = cpu_memcpy,                                           \
    .sync = cpu_sync,                                               \
    .embedding_forward = cpu_embedding_forward,                     \
    .layernorm_forward = cpu_layernorm_forward,                     \
    .linear_forward = LINEAR_FWD,                                   \
    .gelu_forward = cpu_gelu_forward,                               \
    .add_forward = cpu_add_forward,                                 \
    .attention_forward = cpu_attention_forward,                     \
    .mean_pool_forward = cpu_mean_pool_forward,                     \
    .cls_pool_forward = cpu_cls_pool_forward,                       \
    .l2norm_forward = cpu_l2norm_forward,                           \
    .cast_bf16 = cpu_cast_bf16,                                     \
    .linear_bf16_forward = cpu_linear_bf16_forward,                 \
    .bias_gelu_bf16_forward = cpu_bias_gelu_bf16_forward,           \
    .add_layernorm_forward = cpu_add_layernorm_forward,             \
    .attention_bf16_forward = cpu_attention_bf16_forward,           \
    .mean_pool_l2norm_forward = cpu_mean_pool_l2norm_forward,       \
    .topk_merge_rows = cpu_topk_merge_rows,                         \
    .rescore_fp32 = cpu_rescore_fp32,                               \
    .topk_fused = cpu_topk_fused,                                   \
    .topk_merge_partials = cpu_topk_merge_partials,                 \
    .rescore_fp32_range = cpu_rescore_fp32_range,                   \
    .dropout_forward = cpu_dropout_forward,                         \
    .dropout_backward = cpu_dropout_backward,                       \
    .attention_dropout_forward = cpu_attention_dropout_forward,     \
    .attention_dropout_backward = cpu_attention_dropout_backward,   \
    .embedding_backward = cpu_embedding_backward,                   \
    .layernorm_backward = cpu_layernorm_backward,                   \
    .linear_backward = LINEAR_BWD,                                  \
    .gelu_backward = cpu_gelu_backward,                             \
    .add_backward = cpu_add_backward,                               \
    .attention_backward = cpu_attention_backward,                   \
    .mean_pool_backward = cpu_mean_pool_backward,                   \
    .cls_pool_backward = cpu_cls_pool_backward,                     \
    .l2norm_backward = cpu_l2norm_backward,                         \
    .zero = cpu_zero,                                               \
    .copy = cpu_copy,                                               \
    .stream = cpu_stream,                                           \
    .dropout_tokens_forward = cpu_dropout_tokens_forward,           \
    .dropout_tokens_backward = cpu_dropout_tokens_backward,         \
    .grad_sumsq = cpu_grad_sumsq,                                   \
    .mnr_loss = cpu_mnr_loss,                                       \
    .grad_sumsq_table = cpu_grad_sumsq_table,                       \
    .adamw_step = ADAMW

const af_backend_ops af_cpu_backend_ops = {
    CPU_TABLE("cpu", cpu_linear_forward, cpu_linear_backward, cpu_adamw_step)};
const af_backend_ops af_cpu_bf16_backend_ops = {
    CPU_TABLE("cpu (bf16)", cpu_linear_forward_bf16, cpu_linear_backward_bf16, cpu_adamw_step_bf16),
    .linear_forward_w16 = cpu_linear_forward_w16,
    .linear_backward_w16 = cpu_linear_backward_w16};
