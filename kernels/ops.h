/* The op interface: one function per op, explicit shapes, a device handle.
 *
 * Every backend fills a table of its ops (kernels/ops_table.h: the CPU's in
 * kernels/cpu/backend.c, CUDA's in kernels/cuda/backend.cu). The af_op_*
 * entry points in kernels/ops.c call through dev->ops; pointers are host
 * memory for AF_BACKEND_CPU and device memory for AF_BACKEND_CUDA.
 *
 * Errors: every op returns af_status and takes af_error *err last (NULL: no
 * message). An op the device's backend does not implement returns
 * AF_ERR_UNSUPPORTED naming the op and the backend, without touching memory.
 * Argument and launch errors are returned by the op that met them; a fault
 * inside a running GPU kernel surfaces at the next af_dev_sync /
 * af_dev_download of that device (CUDA reports those only then).
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
#include "base/bf16.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits every backend shares (the one place they are written down). */
/* Longest sequence of the attention ops: the CPU kernels keep one (L) row of
 * scores on the stack; BERT-family position tables are 512. Model loading
 * refuses max_position_embeddings above it. */
#define AF_ATTN_MAX_LEN 1024

/* af_device (affinity.h) carries the backend's op table, kernels/ops_table.h. */

/* Device memory: *out (NULL on failure) of bytes on dev. */
af_status af_dev_alloc(const af_device *dev, size_t bytes, void **out, af_error *err);
void *af_dev_malloc(const af_device *dev, size_t bytes, af_error *err);
void af_dev_free(const af_device *dev, void *ptr);
af_status af_dev_upload(const af_device *dev, void *dst, const void *host_src, size_t bytes,
                        af_error *err);
af_status af_dev_download(const af_device *dev, void *host_dst, const void *src, size_t bytes,
                          af_error *err);
/* Queues and events: the overlap of copies with compute (CUDA streams and
 * events underneath). A device has three queues; work on one queue runs in
 * the order it was queued, work on different queues may run at the same
 * time, in any order, unless ordered by an event: af_dev_event_record marks
 * the point a queue has reached, af_dev_queue_wait makes another queue wait
 * for the most recent record of that event made before the wait was queued
 * (an event never recorded does not hold anything up). Every af_op_* and the
 * synchronous copies run on AF_QUEUE_COMPUTE. A backend without queues (the
 * CPU) runs everything at once, in program order: the async copies are
 * memcpy, events are NULL and recording or waiting does nothing. */
typedef enum {
  AF_QUEUE_COMPUTE = 0,  /* the ops */
  AF_QUEUE_UPLOAD = 1,   /* host -> device copies beside the ops */
  AF_QUEUE_DOWNLOAD = 2, /* device -> host copies beside the ops */
} af_queue;
#define AF_N_QUEUES 3

typedef struct af_dev_event af_dev_event; /* opaque; NULL on a backend without queues */
af_status af_dev_event_create(const af_device *dev, af_dev_event **out, af_error *err);
void af_dev_event_free(const af_device *dev, af_dev_event *ev);
af_status af_dev_event_record(const af_device *dev, af_dev_event *ev, af_queue q, af_error *err);
af_status af_dev_queue_wait(const af_device *dev, af_queue q, af_dev_event *ev, af_error *err);

/* The copies queued on queue q, returning at once: the host buffer (from
 * af_host_alloc, so the copy is a DMA) must stay untouched, and a download is
 * readable, only after the next af_dev_sync. On the CPU (and a backend
 * without the op) they are the synchronous copies: plain memcpy, the same
 * bits. */
af_status af_dev_upload_async(const af_device *dev, af_queue q, void *dst, const void *host_src,
                              size_t bytes, af_error *err);
af_status af_dev_download_async(const af_device *dev, af_queue q, void *host_dst,
                                const void *src, size_t bytes, af_error *err);
/* Waits for the work queued on every queue; reports any asynchronous error. */
af_status af_dev_sync(const af_device *dev, af_error *err);

/* ---- forward ops ------------------------------------------------------------ */

/* out[t] = wte[ids[t]] + wpe[pos[t]] + wtt[type_ids[t]] (type_ids NULL: type 0).
 * out (T, C); ids, pos (T); wte (V, C); wpe (P, C); wtt (TT, C). */
af_status af_op_embedding_forward(const af_device *dev, float *out, const int32_t *ids,
                                  const int32_t *pos, const int32_t *type_ids, const float *wte,
                                  const float *wpe, const float *wtt, int T, int C, af_error *err);

/* LayerNorm over the last dim. out, inp (N, C); w, b (C); mean, rstd (N) may be
 * NULL (they are saved for the backward pass when given). */
af_status af_op_layernorm_forward(const af_device *dev, float *out, float *mean, float *rstd,
                                  const float *inp, const float *w, const float *b, int N, int C,
                                  float eps, af_error *err);

/* out (N, OC) = inp (N, IC) @ w^T (w: OC, IC) + bias (OC, may be NULL). */
af_status af_op_linear_forward(const af_device *dev, float *out, const float *inp, const float *w,
                               const float *bias, int N, int IC, int OC, af_error *err);

/* Exact (erf) GELU, elementwise over n values. out may equal inp. */
af_status af_op_gelu_forward(const af_device *dev, float *out, const float *inp, int64_t n,
                             af_error *err);

/* out = a + b elementwise over n values (out may alias a or b). */
af_status af_op_add_forward(const af_device *dev, float *out, const float *a, const float *b,
                            int64_t n, af_error *err);

/* Multi-head self-attention over packed variable-length sequences.
 * qkv (T, 3C): per token [q(C) | k(C) | v(C)], each split into NH heads of HS.
 * out (T, C): per token the heads' outputs concatenated.
 * probs: NULL, or the softmax probabilities saved for backward, laid out per
 *   sequence b and head h as an (L_b, L_b) block at offset
 *   NH * sum_{b'<b} L_b'^2 + h * L_b^2 (af_attention_probs_size gives the total).
 * Attention is within each sequence only; no padding anywhere. */
af_status af_op_attention_forward(const af_device *dev, float *out, float *probs, const float *qkv,
                                  const int32_t *cu_seqlens, int B, int C, int NH, af_error *err);
int64_t af_attention_probs_size(const int32_t *cu_seqlens_host, int B, int NH);

/* Pooling of each sequence. out (B, C); inp (T, C). mean: average over the
 * sequence's tokens; cls: its first token. An empty sequence gives a zero row
 * (never a read past the end of inp). */
af_status af_op_mean_pool_forward(const af_device *dev, float *out, const float *inp,
                                  const int32_t *cu_seqlens, int B, int C, af_error *err);
af_status af_op_cls_pool_forward(const af_device *dev, float *out, const float *inp,
                                 const int32_t *cu_seqlens, int B, int C, af_error *err);

/* Row-wise L2 normalisation: out[i] = inp[i] / max(||inp[i]||, 1e-12) (as
 * torch.nn.functional.normalize). out, inp (N, C); norms (N) may be NULL. */
af_status af_op_l2norm_forward(const af_device *dev, float *out, float *norms, const float *inp,
                               int N, int C, af_error *err);

/* ---- bf16 inference ops -------------------------------------------------------
 * bf16 tensors are uint16_t arrays: the upper 16 bits of an fp32, rounded to
 * nearest even (af_bf16_from_f32; CUDA's __float2bfloat16_rn). The bf16 path
 * keeps the residual stream, LayerNorm statistics, softmax and every
 * accumulation in fp32; only GEMM inputs (weights and activations) are bf16.
 * The CPU backend runs them as an exact emulation (bf16 inputs widened to fp32,
 * whose products of two bf16 are exact, fp32 sums): the reference of the GPU. */

/* af_bf16_from_f32 / af_f32_from_bf16: engine/base/bf16.h. */

/* out (n) = bf16(inp (n)). */
af_status af_op_cast_bf16(const af_device *dev, uint16_t *out, const float *inp, int64_t n,
                          af_error *err);

/* out (N, OC) fp32 = inp (N, IC) bf16 @ w^T (w: OC, IC bf16) + bias (OC fp32, may
 * be NULL); products and sums in fp32 (tensor cores on CUDA, cuBLASLt with the
 * bias in its epilogue). */
af_status af_op_linear_bf16_forward(const af_device *dev, float *out, const uint16_t *inp,
                                    const uint16_t *w, const float *bias, int N, int IC, int OC,
                                    af_error *err);

/* out (N, C) bf16 = bf16(gelu(inp (N, C) + bias (C))), exact (erf) GELU in fp32. */
af_status af_op_bias_gelu_bf16_forward(const af_device *dev, uint16_t *out, const float *inp,
                                       const float *bias, int N, int C, af_error *err);

/* out (N, C) = LayerNorm(a + b) with fp32 statistics (two passes, as
 * af_op_layernorm_forward); b may be NULL (plain LayerNorm). out_bf16 (N, C):
 * bf16(out), or NULL. out may alias a or b. w, beta (C). */
af_status af_op_add_layernorm_forward(const af_device *dev, float *out, uint16_t *out_bf16,
                                      const float *a, const float *b, const float *w,
                                      const float *beta, int N, int C, float eps, af_error *err);

/* Attention of the bf16 path: out (T, C) bf16 = bf16(attention(qkv)) with Q, K,
 * V and the probabilities rounded to bf16, fp32 scores, softmax and sums. On
 * CUDA, head sizes 32 and 64 run the fused tensor-core kernel over the packed
 * token axis (attention_mma.cu); others the fp32 kernel into scratch (T, C)
 * and a cast. The CPU twin (attention_bf16.c) does the tensor-core kernel's
 * arithmetic: bf16 Q (pre-scaled), K, V and probabilities, fp32 scores, max,
 * sum and products, without the tiling. qkv (T, 3C) fp32; T = cu_seqlens[B] (given because
 * the device cannot read cu_seqlens from the host side). */
af_status af_op_attention_bf16_forward(const af_device *dev, uint16_t *out, float *scratch,
                                       const float *qkv, const int32_t *cu_seqlens, int B, int T,
                                       int C, int NH, af_error *err);

/* out (B, C) = l2normalize(mean over each sequence of inp (T, C)): the mean
 * pool and the L2 norm in one pass (an empty sequence gives a zero row). */
af_status af_op_mean_pool_l2norm_forward(const af_device *dev, float *out, const float *inp,
                                         const int32_t *cu_seqlens, int B, int C, af_error *err);

/* ---- all-pairs top-k ops (the GPU scorer, engine/search/score_bf16.h) ---------- */
#define AF_TOPK_OP_MAX_KP 4096 /* k' limit of the merge op (k 2048 + margin) */

/* Merges a score tile into each row's running candidate list. ls, li (QT, kp):
 * the list, best first (score desc, index asc), empty slots -inf / -1; tile
 * (QT, CC) scores of columns col0 .. col0 + CC - 1; row r is query q0 + r and
 * never takes itself. kp <= AF_TOPK_OP_MAX_KP. */
af_status af_op_topk_merge_rows(const af_device *dev, float *ls, int64_t *li, int kp,
                                const float *tile, int QT, int CC, int64_t col0, int64_t q0,
                                af_error *err);

/* out (QT, kp) = Q (QT, d) . X[idx] in fp32 with the CPU scorer's exact FMA
 * chain (acc = fmaf(q[i], x[i], acc), i = 0..d-1): the CPU's bits. idx (QT, kp),
 * -1 gives -inf. X (N, d). */
af_status af_op_rescore_fp32(const af_device *dev, float *out, const float *Q, const float *X,
                             const int64_t *idx, int QT, int kp, int d, af_error *err);

/* The fused all-pairs top-k kernel (kernels/topk_fused.h has its geometry):
 * for each query row r (query q0 + r) and split s of the chunk's columns (split
 * width af_fused_split_width(cc, S)), the best kp columns of the split by bf16
 * score (fp32 sums of exact bf16 products; desc, ties to the lower index),
 * global index col0 + c, never the row itself, into ps, pi (nq, S, kp); empty
 * slots -inf / -1. Q (nq, dp), X (cc, dp) bf16, dp a multiple of 16 and
 * <= AF_FUSED_MAX_D, kp <= AF_FUSED_MAX_KP, S <= af_fused_max_splits(kp).
 * The score matrix is never stored. */
af_status af_op_topk_fused(const af_device *dev, float *ps, int64_t *pi, int kp,
                           const uint16_t *Q, const uint16_t *X, int nq, int cc, int dp,
                           int64_t col0, int64_t q0, int S, af_error *err);

/* Merges the S partial lists ps, pi (nq, S, kp) of each row into its running
 * list ls, li (nq, kp) (best first; empty -inf / -1). (S + 1) kp <=
 * AF_FUSED_PARTIALS. */
af_status af_op_topk_merge_partials(const af_device *dev, float *ls, int64_t *li, int kp,
                                    const float *ps, const int64_t *pi, int nq, int S,
                                    af_error *err);

/* af_op_rescore_fp32 for a column chunk: X (c1 - c0, d) holds base rows
 * c0 .. c1 - 1; out[e] is written where c0 <= idx[e] < c1 (the CPU's bits) or
 * idx[e] < 0 (-inf), and left as it is otherwise. */
af_status af_op_rescore_fp32_range(const af_device *dev, float *out, const float *Q,
                                   const float *X, const int64_t *idx, int QT, int kp, int d,
                                   int64_t c0, int64_t c1, af_error *err);

/* Free device memory in bytes (the CUDA backend's cudaMemGetInfo); a backend
 * without the op (the CPU) has no device limit: SIZE_MAX. */
af_status af_op_mem_free(const af_device *dev, size_t *free_bytes, af_error *err);

/* Host memory for transfers: page-locked (cudaMallocHost) on CUDA, so uploads
 * from it run at the link's full rate; plain malloc on a backend without the
 * op. Zero-filled. Free with af_host_free on the same device. */
af_status af_host_alloc(const af_device *dev, size_t bytes, void **out, af_error *err);
void af_host_free(const af_device *dev, void *ptr);

/* ---- CPU implementations (kernels/cpu) -------------------------------------- */
/* 1 on success, 0 when a block's 200 KB of working memory could not be allocated. */
int af_cpu_topk_fused(float *ps, int64_t *pi, int kp, const uint16_t *Q, const uint16_t *X,
                      int nq, int cc, int dp, int64_t col0, int64_t q0, int S);
void af_cpu_topk_merge_partials(float *ls, int64_t *li, int kp, const float *ps,
                                const int64_t *pi, int nq, int S);
void af_cpu_rescore_fp32_range(float *out, const float *Q, const float *X, const int64_t *idx,
                               int QT, int kp, int d, int64_t c0, int64_t c1);
void af_cpu_topk_merge_rows(float *ls, int64_t *li, int kp, const float *tile, int QT, int CC,
                            int64_t col0, int64_t q0);
void af_cpu_rescore_fp32(float *out, const float *Q, const float *X, const int64_t *idx, int QT,
                         int kp, int d);
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
void af_cpu_attention_forward(float *out, float *probs, const float *qkv, const int32_t *cu_seqlens,
                              int B, int C, int NH);
void af_cpu_mean_pool_forward(float *out, const float *inp, const int32_t *cu_seqlens, int B,
                              int C);
void af_cpu_cls_pool_forward(float *out, const float *inp, const int32_t *cu_seqlens, int B, int C);
void af_cpu_l2norm_forward(float *out, float *norms, const float *inp, int N, int C);
void af_cpu_cast_bf16(uint16_t *out, const float *inp, int64_t n);
void af_cpu_attention_bf16_forward(uint16_t *out, const float *qkv, const int32_t *cu_seqlens,
                                   int B, int C, int NH);
void af_cpu_bias_gelu_bf16_forward(uint16_t *out, const float *inp, const float *bias, int N,
                                   int C);
void af_cpu_add_layernorm_forward(float *out, uint16_t *out_bf16, const float *a, const float *b,
                                  const float *w, const float *beta, int N, int C, float eps);

#ifdef __cplusplus
}
#endif
#endif
