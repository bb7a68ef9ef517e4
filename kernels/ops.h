/* The op interface: one function per op, explicit shapes, a device handle.
 *
 * Every op exists as a CPU implementation (kernels/cpu/<op>.c, af_cpu_*) and,
 * where written, a CUDA one (kernels/cuda/<op>.cu, af_cuda_*). The af_op_*
 * entry points in kernels/ops.c dispatch on dev->backend; pointers are host
 * memory for AF_BACKEND_CPU and device memory for AF_BACKEND_CUDA.
 *
 * Dimension names used in every shape comment:
 *   T  tokens in a packed batch (sum of the sequence lengths, no padding)
 *   B  sequences in the batch;  cu_seqlens[B+1] are their cumulative offsets
 *   C  hidden size;  NH heads;  HS = C / NH head size;  F intermediate size
 *   V  vocabulary;  P  max positions;  TT token types
 * Matrices are row-major. Linear weights use the Hugging Face layout
 * [out_features, in_features], so y = x W^T + b. */
#ifndef AF_OPS_H
#define AF_OPS_H

#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device memory: *out (NULL on failure) of bytes on dev. */
af_status af_dev_alloc(const af_device *dev, size_t bytes, void **out, af_error *err);
void *af_dev_malloc(const af_device *dev, size_t bytes, af_error *err);
void af_dev_free(const af_device *dev, void *ptr);
af_status af_dev_upload(const af_device *dev, void *dst, const void *host_src, size_t bytes,
                        af_error *err);
af_status af_dev_download(const af_device *dev, void *host_dst, const void *src, size_t bytes,
                          af_error *err);
/* Waits for queued work; reports any asynchronous error. */
af_status af_dev_sync(const af_device *dev, af_error *err);

/* ---- forward ops ------------------------------------------------------------ */

/* out[t] = wte[ids[t]] + wpe[pos[t]] + wtt[type_ids[t]] (type_ids NULL: type 0).
 * out (T, C); ids, pos (T); wte (V, C); wpe (P, C); wtt (TT, C). */
void af_op_embedding_forward(const af_device *dev, float *out, const int32_t *ids,
                             const int32_t *pos, const int32_t *type_ids, const float *wte,
                             const float *wpe, const float *wtt, int T, int C);

/* LayerNorm over the last dim. out, inp (N, C); w, b (C); mean, rstd (N) may be
 * NULL (they are saved for the backward pass when given). */
void af_op_layernorm_forward(const af_device *dev, float *out, float *mean, float *rstd,
                             const float *inp, const float *w, const float *b, int N, int C,
                             float eps);

/* out (N, OC) = inp (N, IC) @ w^T (w: OC, IC) + bias (OC, may be NULL). */
void af_op_linear_forward(const af_device *dev, float *out, const float *inp, const float *w,
                          const float *bias, int N, int IC, int OC);

/* Exact (erf) GELU, elementwise over n values. out may equal inp. */
void af_op_gelu_forward(const af_device *dev, float *out, const float *inp, int64_t n);

/* out = a + b elementwise over n values (out may alias a or b). */
void af_op_add_forward(const af_device *dev, float *out, const float *a, const float *b, int64_t n);

/* Multi-head self-attention over packed variable-length sequences.
 * qkv (T, 3C): per token [q(C) | k(C) | v(C)], each split into NH heads of HS.
 * out (T, C): per token the heads' outputs concatenated.
 * probs: NULL, or the softmax probabilities saved for backward, laid out per
 *   sequence b and head h as an (L_b, L_b) block at offset
 *   NH * sum_{b'<b} L_b'^2 + h * L_b^2 (af_attention_probs_size gives the total).
 * Attention is within each sequence only; no padding anywhere. */
void af_op_attention_forward(const af_device *dev, float *out, float *probs, const float *qkv,
                             const int32_t *cu_seqlens, int B, int C, int NH);
int64_t af_attention_probs_size(const int32_t *cu_seqlens_host, int B, int NH);

/* Pooling of each sequence. out (B, C); inp (T, C). mean: average over the
 * sequence's tokens; cls: its first token. */
void af_op_mean_pool_forward(const af_device *dev, float *out, const float *inp,
                             const int32_t *cu_seqlens, int B, int C);
void af_op_cls_pool_forward(const af_device *dev, float *out, const float *inp,
                            const int32_t *cu_seqlens, int B, int C);

/* Row-wise L2 normalisation: out[i] = inp[i] / max(||inp[i]||, 1e-12) (as
 * torch.nn.functional.normalize). out, inp (N, C); norms (N) may be NULL. */
void af_op_l2norm_forward(const af_device *dev, float *out, float *norms, const float *inp, int N,
                          int C);

/* ---- CPU implementations (kernels/cpu) -------------------------------------- */
void af_cpu_embedding_forward(float *out, const int32_t *ids, const int32_t *pos,
                              const int32_t *type_ids, const float *wte, const float *wpe,
                              const float *wtt, int T, int C);
void af_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps);
void af_cpu_linear_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                           int IC, int OC);
/* The same with bf16 GEMM inputs, fp32 accumulation (the CPU must have AVX512_BF16). */
void af_cpu_linear_forward_bf16(float *out, const float *inp, const float *w, const float *bias,
                                int N, int IC, int OC);
/* af_device_set_precision for a CPU that has (cpu_bf16 = 1) or lacks AVX512_BF16
 * (tests force the refusal with 0). */
af_status af_device_set_precision_for(af_device *dev, const char *precision, int cpu_bf16,
                                      af_error *err);
void af_cpu_gelu_forward(float *out, const float *inp, int64_t n);
void af_cpu_add_forward(float *out, const float *a, const float *b, int64_t n);
void af_cpu_attention_forward(float *out, float *probs, const float *qkv,
                              const int32_t *cu_seqlens, int B, int C, int NH);
void af_cpu_mean_pool_forward(float *out, const float *inp, const int32_t *cu_seqlens, int B,
                              int C);
void af_cpu_cls_pool_forward(float *out, const float *inp, const int32_t *cu_seqlens, int B, int C);
void af_cpu_l2norm_forward(float *out, float *norms, const float *inp, int N, int C);

#ifdef __cplusplus
}
#endif
#endif
