/* Training ops: the backward pass of every forward op in ops.h, and dropout.
 *
 * Conventions (as llm.c):
 *  - Every backward op ACCUMULATES: input gradients (dinp, da, dqkv...) and
 *    parameter gradients (dw, db, dwte...) are all updated with +=. The caller
 *    zeroes the gradient buffers once per optimizer step (parameters) or per
 *    pass (activations). A NULL gradient pointer means "not wanted" where the
 *    comment says so.
 *  - Gradient buffers never alias the op's other arguments.
 *  - Shapes and layouts are exactly those of the forward op (see ops.h):
 *    packed sequences with cu_seqlens, qkv (T, 3C), Linear weights (OC, IC),
 *    attention probabilities saved per (sequence, head).
 *  - Results do not depend on the thread count or schedule: every reduction
 *    has one fixed order (no atomics), so gradients are bitwise reproducible
 *    for a given BLAS.
 *  - Each backend implements what it can (its table in kernels/ops_table.h):
 *    an op the device's backend lacks returns AF_ERR_UNSUPPORTED naming the
 *    op and the backend ("op linear_backward is not implemented by the cuda
 *    backend") and touches nothing. af_backward_supported(dev) says whether
 *    dev's backend has every op of this header, so a trainer can refuse up
 *    front.
 *
 * The math of each op is written out in docs/training.md. */
#ifndef AF_OPS_BACKWARD_H
#define AF_OPS_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the backward ops below run on dev's backend. */
int af_backward_supported(const af_device *dev);

/* ---- dropout ------------------------------------------------------------------
 * Element i of an n-element tensor is kept iff u_i < 1 - p_drop, where u_i is
 * word i % 4 of Philox4x32-10 block i / 4 with key `seed` and stream `stream`
 * (engine/base/philox.h), as a 24-bit uniform in [0, 1). Kept values are scaled by
 * 1 / (1 - p_drop) (inverted dropout, as torch). The mask is a function of
 * (seed, stream, i) only: it is never stored; backward draws it again. The
 * caller gives every dropout site of every step its own stream, e.g.
 * stream = step * n_sites + site. p_drop = 0: identity. 0 <= p_drop < 1. */
af_status af_op_dropout_forward(const af_device *dev, float *out, const float *inp, int64_t n,
                                float p_drop, uint64_t seed, uint64_t stream, af_error *err);
/* dinp += mask * dout / (1 - p_drop). dinp, dout (n). */
af_status af_op_dropout_backward(const af_device *dev, float *dinp, const float *dout, int64_t n,
                                 float p_drop, uint64_t seed, uint64_t stream, af_error *err);

/* ---- attention-probability dropout -----------------------------------------
 * Hugging Face BertSelfAttention's dropout(attention_probs), a training-only
 * op beside af_op_attention_forward: from the undropped softmax P the forward
 * op saved (its probs layout), out (T, C) = P' V with P' = m * P / (1 - p),
 * overwriting the attention op's output. Element k of the probs layout is
 * kept iff its Philox uniform < 1 - p (the af_op_dropout_forward convention,
 * k as the element index). qkv (T, 3C); probs as in af_op_attention_forward;
 * every sequence at most AF_ATTN_MAX_LEN tokens. 0 < p < 1. mask_base (B) or
 * NULL: the mask index of each sequence's first probability (NULL: the batch's
 * own layout; a data-parallel rank passes its sequences' places in the global
 * batch, so every rank draws the masks one process would). cu_host (B + 1)
 * or NULL: a host copy of cu_seqlens (the trainer has one), which spares the
 * CUDA backend a stream synchronisation to read the lengths; the CPU ignores
 * it. The results do not depend on it. */
af_status af_op_attention_dropout_forward(const af_device *dev, float *out, const float *probs,
                                          const float *qkv, const int32_t *cu_seqlens, int B,
                                          int C, int NH, float p, uint64_t seed, uint64_t stream,
                                          const int64_t *mask_base, const int32_t *cu_host,
                                          af_error *err);
/* Its backward through the mask and the softmax: dqkv (T, 3C) +=; dout (T, C);
 * qkv, probs, cu_seqlens, (p, seed, stream) and cu_host as in the forward call. */
af_status af_op_attention_dropout_backward(const af_device *dev, float *dqkv, const float *dout,
                                           const float *qkv, const float *probs,
                                           const int32_t *cu_seqlens, int B, int C, int NH,
                                           float p, uint64_t seed, uint64_t stream,
                                           const int64_t *mask_base, const int32_t *cu_host,
                                           af_error *err);

/* ---- backward ops ---------------------------------------------------------- */

/* dwte[ids[t]] += dout[t]; dwpe[pos[t]] += dout[t]; dwtt[type_ids[t] or 0] += dout[t].
 * dout (T, C); dwte (V, C), dwpe (P, C), dwtt (TT, C): each may be NULL (frozen).
 * ids_host, pos_host (T) or NULL: host copies of ids and pos (the trainer
 * has them): the CUDA backend buckets the tokens on the host and otherwise
 * downloads the column (a stream synchronisation); the CPU ignores them. The
 * results do not depend on them. */
af_status af_op_embedding_backward(const af_device *dev, float *dwte, float *dwpe, float *dwtt,
                                   const float *dout, const int32_t *ids, const int32_t *pos,
                                   const int32_t *type_ids, int T, int C, const int32_t *ids_host,
                                   const int32_t *pos_host, af_error *err);

/* LayerNorm with the mean and rstd saved by the forward pass.
 * dinp (N, C) +=; dw, db (C) += (dw, db may be NULL); dout, inp (N, C);
 * w (C); mean, rstd (N). */
af_status af_op_layernorm_backward(const af_device *dev, float *dinp, float *dw, float *db,
                                   const float *dout, const float *inp, const float *w,
                                   const float *mean, const float *rstd, int N, int C,
                                   af_error *err);

/* out = inp w^T + bias.  dinp (N, IC) += dout w;  dw (OC, IC) += dout^T inp;
 * dbias (OC) += sum over rows of dout. dout (N, OC); inp (N, IC); w (OC, IC).
 * dinp, dw, dbias may each be NULL. */
af_status af_op_linear_backward(const af_device *dev, float *dinp, float *dw, float *dbias,
                                const float *dout, const float *inp, const float *w, int N, int IC,
                                int OC, af_error *err);

/* Exact GELU: dinp += dout * gelu'(inp). dinp, dout, inp (n): inp is the GELU's input. */
af_status af_op_gelu_backward(const af_device *dev, float *dinp, const float *dout,
                              const float *inp, int64_t n, af_error *err);

/* Residual add out = a + b: da += dout, db += dout (either may be NULL). (n) */
af_status af_op_add_backward(const af_device *dev, float *da, float *db, const float *dout,
                             int64_t n, af_error *err);

/* Attention over packed sequences, from the probabilities the forward pass saved.
 * dqkv (T, 3C) +=; dout (T, C); qkv (T, 3C); probs as in af_op_attention_forward.
 * cu_host (B + 1) or NULL: a host copy of cu_seqlens, as in
 * af_op_attention_dropout_forward (no synchronisation on CUDA). */
af_status af_op_attention_backward(const af_device *dev, float *dqkv, const float *dout,
                                   const float *qkv, const float *probs, const int32_t *cu_seqlens,
                                   int B, int C, int NH, const int32_t *cu_host, af_error *err);

/* Pooling. dinp (T, C) +=; dout (B, C). mean: each token gets dout / L;
 * cls: the first token of each sequence gets dout. */
af_status af_op_mean_pool_backward(const af_device *dev, float *dinp, const float *dout,
                                   const int32_t *cu_seqlens, int B, int C, af_error *err);
af_status af_op_cls_pool_backward(const af_device *dev, float *dinp, const float *dout,
                                  const int32_t *cu_seqlens, int B, int C, af_error *err);

/* Row-wise L2 normalisation y = x / max(||x||, 1e-12), from the forward's
 * output y and norms ||x||. dinp (N, C) += (dout - y (y . dout)) / ||x||
 * (dout / 1e-12 for a row whose norm is below 1e-12). dout, out (N, C); norms (N). */
af_status af_op_l2norm_backward(const af_device *dev, float *dinp, const float *dout,
                                const float *out, const float *norms, int N, int C, af_error *err);

/* ---- trainer memory, token dropout, optimizer (the trainer keeps its state in
 * device memory through these; on the CPU backend they are plain loops) ------ */

/* dst (bytes) = 0, device memory. */
af_status af_dev_zero(const af_device *dev, void *dst, size_t bytes, af_error *err);
/* dst = src (bytes), both device memory, no overlap. */
af_status af_dev_copy(const af_device *dev, void *dst, const void *src, size_t bytes,
                      af_error *err);

/* *out = the device's queue: its cudaStream_t on CUDA (for a collective that
 * must start after the work queued so far), NULL on the CPU. */
af_status af_dev_stream(const af_device *dev, void **out, af_error *err);

/* Hidden dropout at given positions of a larger batch (data parallel): token t
 * of x (T, C) is token gtok[t] of the global batch, so element c of token t is
 * element gtok[t] * C + c of af_op_dropout_forward's mask (same Philox words).
 * Forward: x = mask * x / (1 - p) in place (p > 0). Backward: dinp += mask *
 * dout / (1 - p) (p = 0: dinp += dout). gtok (T) device memory. */
af_status af_op_dropout_tokens_forward(const af_device *dev, float *x, const int32_t *gtok, int T,
                                       int C, float p, uint64_t seed, uint64_t stream,
                                       af_error *err);
af_status af_op_dropout_tokens_backward(const af_device *dev, float *dinp, const float *dout,
                                        const int32_t *gtok, int T, int C, float p, uint64_t seed,
                                        uint64_t stream, af_error *err);

/* Sum of squares of grad (n, device) in double, af_grad_sumsq's order (chunks
 * of 4096 summed in order, chunk sums in chunk order): the same bits on every
 * backend. *out on the host. */
af_status af_op_grad_sumsq(const af_device *dev, const float *grad, int64_t n, double *out,
                           af_error *err);

/* The multiple-negatives ranking loss with in-batch negatives
 * (engine/train/loss.h's af_mnr_loss with M = 0) on the device: anchors,
 * positives (B, C) device; *loss host; d_anchors, d_positives (B, C) device,
 * WRITTEN (may be NULL: forward only). Double inside on every backend; the
 * CUDA kernels do the CPU's double operations in its order (only exp/log may
 * differ in the last bit). */
af_status af_op_mnr_loss(const af_device *dev, const float *anchors, const float *positives, int B,
                         int C, float scale, int symmetric, float *loss, float *d_anchors,
                         float *d_positives, af_error *err);

/* One trained tensor of the contiguous parameter buffer (the per-tensor table
 * of the fused AdamW). */
typedef struct {
  int64_t offset, numel;
  int decay; /* takes weight decay (af_param_decays) */
} af_adamw_tensor;

/* The scalars of one AdamW step, computed on the host (af_adamw_step_scalars:
 * double, then rounded to float), plus the gradient factor. */
typedef struct {
  float keep_decay;  /* 1 - lr * weight_decay, for decaying tensors */
  float w1, w2, fb2; /* 1 - beta1, 1 - beta2, beta2 */
  float step_size;   /* lr / (1 - beta1^step) */
  float bc2_sqrt;    /* sqrt(1 - beta2^step) */
  float eps;
  float grad_scale;  /* accumulation mean x clipping factor */
} af_adamw_op_scalars;

/* One AdamW step over every tensor of table (host memory, n_tensors) of the
 * contiguous buffers param, grad, m, v (device, n_floats each): torch's
 * single-tensor AdamW per element in float (engine/train/adamw.c), the same
 * bits on every backend in fp32. work_bf16 (device, parameter layout) or NULL:
 * also the updated parameters rounded to bf16 (nearest even), written in the
 * same pass (the bf16 tables; the fp32 tables refuse it). */
af_status af_op_adamw_step(const af_device *dev, float *param, const float *grad, float *m,
                           float *v, uint16_t *work_bf16, const af_adamw_tensor *table,
                           int n_tensors, const af_adamw_op_scalars *s, af_error *err);

/* af_op_grad_sumsq of every tensor of table (host, n_tensors) of grad (device,
 * parameter layout), added in table order: the bits of the loop
 *   s = 0; for each tensor i: s += af_op_grad_sumsq(grad + offset_i, numel_i)
 * on every backend, with one host synchronisation (CUDA: one launch over all
 * the tensors' chunks, one thread adding the chunk sums in the loop's order).
 * A backend without the op gets that loop. */
af_status af_op_grad_sumsq_table(const af_device *dev, const float *grad,
                                 const af_adamw_tensor *table, int n_tensors, double *out,
                                 af_error *err);

/* The bf16 linear layer with weights already in bf16 (the trainer's persistent
 * working copy, refreshed by af_op_adamw_step's work_bf16): the results of
 * af_op_linear_forward / af_op_linear_backward on a bf16 device given the
 * fp32 weights whose bf16 rounding is w16 (the bf16 tables round w to bf16
 * anyway, so the bits are the same), without rounding w at every call.
 * w16 (OC, IC) device. Only the bf16 tables have them (af_op_has_linear_w16). */
af_status af_op_linear_forward_w16(const af_device *dev, float *out, const float *inp,
                                   const uint16_t *w16, const float *bias, int N, int IC, int OC,
                                   af_error *err);
af_status af_op_linear_backward_w16(const af_device *dev, float *dinp, float *dw, float *dbias,
                                    const float *dout, const float *inp, const uint16_t *w16,
                                    int N, int IC, int OC, af_error *err);
/* 1 when dev's table has both w16 linear ops and an AdamW (the bf16 tables: their AdamW
 * writes work_bf16). */
int af_op_has_linear_w16(const af_device *dev);

/* ---- CPU implementations (kernels/cpu/<op>_backward.c, dropout.c) --------------- */
void af_cpu_dropout_forward(float *out, const float *inp, int64_t n, float p_drop, uint64_t seed,
                            uint64_t stream);
void af_cpu_dropout_backward(float *dinp, const float *dout, int64_t n, float p_drop, uint64_t seed,
                             uint64_t stream);
void af_cpu_attention_dropout_forward(float *out, const float *probs, const float *qkv,
                                      const int32_t *cu_seqlens, int B, int C, int NH, float p,
                                      uint64_t seed, uint64_t stream,
    const int64_t *mask_base);
void af_cpu_attention_dropout_backward(float *dqkv, const float *dout, const float *qkv,
                                       const float *probs, const int32_t *cu_seqlens, int B,
                                       int C, int NH, float p, uint64_t seed, uint64_t stream,
    const int64_t *mask_base);
void af_cpu_dropout_tokens(float *x, const float *dout, const int32_t *gtok, int T, int C,
                           float p, uint64_t seed, uint64_t stream);
double af_cpu_grad_sumsq(const float *grad, int64_t n);
/* af_mnr_loss's kernel (kernels/cpu/mnr_loss.c; engine/train/loss.h documents it). */
af_status af_cpu_mnr_loss(const float *anchors, const float *positives, const float *negatives,
                          int B, int M, int C, float scale, int symmetric, float *loss,
                          float *d_anchors, float *d_positives, float *d_negatives, af_error *err);
void af_cpu_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n,
                         int decay, const af_adamw_op_scalars *s);
void af_cpu_embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                               const int32_t *ids, const int32_t *pos, const int32_t *type_ids,
                               int T, int C);
void af_cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C);
void af_cpu_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC);
/* The same with bf16 GEMM inputs, fp32 accumulation (the CPU must have AVX512_BF16). */
void af_cpu_linear_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout,
                                 const float *inp, const float *w, int N, int IC, int OC);
void af_cpu_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n);
void af_cpu_add_backward(float *da, float *db, const float *dout, int64_t n);
void af_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *probs,
                               const int32_t *cu_seqlens, int B, int C, int NH);
void af_cpu_mean_pool_backward(float *dinp, const float *dout, const int32_t *cu_seqlens, int B,
                               int C);
void af_cpu_cls_pool_backward(float *dinp, const float *dout, const int32_t *cu_seqlens, int B,
                              int C);
void af_cpu_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norms,
                            int N, int C);

#ifdef __cplusplus
}
#endif
#endif /* AF_OPS_BACKWARD_H */
