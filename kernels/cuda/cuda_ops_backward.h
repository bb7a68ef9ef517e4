/* CUDA implementations of the training ops of ops_backward.h
 * (kernels/cuda/<op>_backward.cu) and the fused AdamW (kernels/cuda/adamw.cu).
 * Device pointers, queued on the context's stream, errors recorded in the
 * context as for the forward ops (cuda_check.h). Every op accumulates (+=)
 * like its CPU twin, and none uses float atomics: each output element is
 * written by one thread with its sum in one fixed order, so a run gives the
 * same bits every time. Scratch memory comes from the stream-ordered
 * allocator (cudaMallocAsync). */
#ifndef AF_CUDA_OPS_BACKWARD_H
#define AF_CUDA_OPS_BACKWARD_H

#include <stdint.h>

#include "cuda_ops.h"
#include "ops_backward.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bit-equal to af_cpu_dropout_forward/backward (same Philox words; the
 * backward's multiply-add is two rounded operations, as the C build). */
void af_cuda_dropout_forward(af_cuda_context *ctx, float *out, const float *inp, int64_t n,
                             float p_drop, uint64_t seed, uint64_t stream);
void af_cuda_dropout_backward(af_cuda_context *ctx, float *dinp, const float *dout, int64_t n,
                              float p_drop, uint64_t seed, uint64_t stream);
/* Token bucketing: the ids (and positions, types) are copied to the host,
 * sorted stably into buckets, and one thread per (bucket, column) adds its
 * tokens in token order: the CPU twin's order, so the sums are bit-equal. */
void af_cuda_embedding_backward(af_cuda_context *ctx, float *dwte, float *dwpe, float *dwtt,
                                const float *dout, const int32_t *ids, const int32_t *pos,
                                const int32_t *type_ids, int T, int C, const int32_t *ids_host,
                                const int32_t *pos_host);
/* dinp one warp per row; dw, db in two stages (per 64-row chunk partial sums,
 * then the chunks in order per column). */
void af_cuda_layernorm_backward(af_cuda_context *ctx, float *dinp, float *dw, float *db,
                                const float *dout, const float *inp, const float *w,
                                const float *mean, const float *rstd, int N, int C);
/* Two cublasSgemm with beta = 1 (fp32, no TF32) and a two-stage bias column sum. */
void af_cuda_linear_backward(af_cuda_context *ctx, float *dinp, float *dw, float *dbias,
                             const float *dout, const float *inp, const float *w, int N, int IC,
                             int OC);
void af_cuda_gelu_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                           const float *inp, int64_t n);
void af_cuda_add_backward(af_cuda_context *ctx, float *da, float *db, const float *dout,
                          int64_t n);
/* One block per (sequence, head), from the saved probabilities; any length. */
void af_cuda_attention_backward(af_cuda_context *ctx, float *dqkv, const float *dout,
                                const float *qkv, const float *probs, const int32_t *cu_seqlens,
                                int B, int C, int NH, const int32_t *cu_host);
void af_cuda_mean_pool_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                                const int32_t *cu_seqlens, int B, int C);
void af_cuda_cls_pool_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                               const int32_t *cu_seqlens, int B, int C);
void af_cuda_l2norm_backward(af_cuda_context *ctx, float *dinp, const float *dout,
                             const float *out, const float *norms, int N, int C);

/* ---- fused AdamW (kernels/cuda/adamw.cu) ----------------------------------- */

/* The per-tensor table and the step's scalars are the op interface's
 * (ops_backward.h: af_adamw_tensor, af_adamw_op_scalars). */
typedef af_adamw_tensor af_cuda_adamw_tensor;
typedef af_adamw_op_scalars af_cuda_adamw_scalars;

/* One AdamW step over the tensors of the table (host memory, n_tensors) in
 * the contiguous fp32 buffers param, grad, m, v (device), one launch. Each
 * element follows af_adamw_update's float operations one by one with
 * explicitly rounded intrinsics (no contraction), so fp32 results equal the
 * CPU's bit for bit. work_bf16 (device, same layout as param, may be NULL):
 * also writes the updated parameter rounded to bf16 (nearest even), the
 * working copy for mixed precision. */
void af_cuda_adamw_step(af_cuda_context *ctx, float *param, const float *grad, float *m, float *v,
                        uint16_t *work_bf16, const af_cuda_adamw_tensor *table, int n_tensors,
                        const af_cuda_adamw_scalars *s);

/* Sum of squares of grad (n, device) in double, in af_grad_sumsq's order
 * (chunks of 4096 summed sequentially, the chunk sums in chunk order): equal
 * to the CPU's bit for bit. Synchronises the stream; *out on the host. */
af_status af_cuda_grad_sumsq(af_cuda_context *ctx, const float *grad, int64_t n, double *out,
                             af_error *err);

/* af_cuda_grad_sumsq of every tensor of table (host, n_tensors) of grad,
 * added in table order, in one launch and one synchronisation: the bits of
 * the per-tensor loop (ops_backward.h, af_op_grad_sumsq_table). */
af_status af_cuda_grad_sumsq_table(af_cuda_context *ctx, const float *grad,
                                   const af_cuda_adamw_tensor *table, int n_tensors, double *out,
                                   af_error *err);

/* ---- attention-probability dropout (attention_dropout.cu) ------------------
 * Bit-equal to kernels/cpu/attention_dropout.c; mask_base (B) device or NULL. */
void af_cuda_attention_dropout_forward(af_cuda_context *ctx, float *out, const float *probs,
                                       const float *qkv, const int32_t *cu_seqlens, int B, int C,
                                       int NH, float p, uint64_t seed, uint64_t stream,
                                       const int64_t *mask_base, const int32_t *cu_host);
void af_cuda_attention_dropout_backward(af_cuda_context *ctx, float *dqkv, const float *dout,
                                        const float *qkv, const float *probs,
                                        const int32_t *cu_seqlens, int B, int C, int NH, float p,
                                        uint64_t seed, uint64_t stream, const int64_t *mask_base,
                                        const int32_t *cu_host);

/* ---- the trainer's memory ops and token dropout (train_ops.cu) ------------- */
void af_cuda_zero(af_cuda_context *ctx, void *dst, size_t bytes);
void af_cuda_copy(af_cuda_context *ctx, void *dst, const void *src, size_t bytes);
/* The context's stream as a void * (cudaStream_t). */
void *af_cuda_stream(af_cuda_context *ctx);
/* Bit-equal to af_cpu_dropout_tokens: dout NULL forward in place, else backward. */
void af_cuda_dropout_tokens(af_cuda_context *ctx, float *x, const float *dout,
                            const int32_t *gtok, int T, int C, float p, uint64_t seed,
                            uint64_t stream);

/* ---- the multiple-negatives ranking loss (mnr_loss.cu): af_op_mnr_loss;
 * synchronises the stream (the loss goes to the host). */
af_status af_cuda_mnr_loss(af_cuda_context *ctx, const float *A, const float *P, int B, int C,
                           float scale, int symmetric, float *loss, float *dA, float *dP,
                           af_error *err);

/* ---- the linear layer of the bf16 table (linear_bf16_train.cu): fp32
 * interface, GEMM inputs rounded to bf16, fp32 accumulation. */
void af_cuda_linear_forward_bf16in(af_cuda_context *ctx, float *out, const float *inp,
                                   const float *w, const float *bias, int N, int IC, int OC);
void af_cuda_linear_backward_bf16in(af_cuda_context *ctx, float *dinp, float *dw, float *dbias,
                                    const float *dout, const float *inp, const float *w, int N,
                                    int IC, int OC);
/* The same with the weights already bf16 (w16 (OC, IC), the trainer's
 * persistent working copy): only inp and dout are rounded per call. */
void af_cuda_linear_forward_w16(af_cuda_context *ctx, float *out, const float *inp,
                                const uint16_t *w16, const float *bias, int N, int IC, int OC);
void af_cuda_linear_backward_w16(af_cuda_context *ctx, float *dinp, float *dw, float *dbias,
                                 const float *dout, const float *inp, const uint16_t *w16, int N,
                                 int IC, int OC);

#ifdef __cplusplus
}
#endif
#endif
