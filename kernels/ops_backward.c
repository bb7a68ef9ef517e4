/* Backend dispatch for the training ops (see ops_backward.h). Only the CPU
 * backend implements them so far; on any other backend the entry points do
 * nothing, and af_backward_supported() lets the caller refuse up front. */
#include "ops_backward.h"

int af_backward_supported(const af_device *dev) { return dev->backend == AF_BACKEND_CPU; }

#define CPU_ONLY(dev)                \
  do {                               \
    if (!af_backward_supported(dev)) \
      return;                        \
  } while (0)

void af_op_dropout_forward(const af_device *dev, float *out, const float *inp, int64_t n,
                           float p_drop, uint64_t seed, uint64_t stream) {
  CPU_ONLY(dev);
  af_cpu_dropout_forward(out, inp, n, p_drop, seed, stream);
}

void af_op_dropout_backward(const af_device *dev, float *dinp, const float *dout, int64_t n,
                            float p_drop, uint64_t seed, uint64_t stream) {
  CPU_ONLY(dev);
  af_cpu_dropout_backward(dinp, dout, n, p_drop, seed, stream);
}

void af_op_embedding_backward(const af_device *dev, float *dwte, float *dwpe, float *dwtt,
                              const float *dout, const int32_t *ids, const int32_t *pos,
                              const int32_t *type_ids, int T, int C) {
  CPU_ONLY(dev);
  af_cpu_embedding_backward(dwte, dwpe, dwtt, dout, ids, pos, type_ids, T, C);
}

void af_op_layernorm_backward(const af_device *dev, float *dinp, float *dw, float *db,
                              const float *dout, const float *inp, const float *w,
                              const float *mean, const float *rstd, int N, int C) {
  CPU_ONLY(dev);
  af_cpu_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

void af_op_linear_backward(const af_device *dev, float *dinp, float *dw, float *dbias,
                           const float *dout, const float *inp, const float *w, int N, int IC,
                           int OC) {
  CPU_ONLY(dev);
  if (dev->bf16)
    af_cpu_linear_backward_bf16(dinp, dw, dbias, dout, inp, w, N, IC, OC);
  else
    af_cpu_linear_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC);
}

void af_op_gelu_backward(const af_device *dev, float *dinp, const float *dout, const float *inp,
                         int64_t n) {
  CPU_ONLY(dev);
  af_cpu_gelu_backward(dinp, dout, inp, n);
}

void af_op_add_backward(const af_device *dev, float *da, float *db, const float *dout,
                        int64_t n) {
  CPU_ONLY(dev);
  af_cpu_add_backward(da, db, dout, n);
}

void af_op_attention_backward(const af_device *dev, float *dqkv, const float *dout,
                              const float *qkv, const float *probs, const int32_t *cu_seqlens,
                              int B, int C, int NH) {
  CPU_ONLY(dev);
  af_cpu_attention_backward(dqkv, dout, qkv, probs, cu_seqlens, B, C, NH);
}

void af_op_mean_pool_backward(const af_device *dev, float *dinp, const float *dout,
                              const int32_t *cu_seqlens, int B, int C) {
  CPU_ONLY(dev);
  af_cpu_mean_pool_backward(dinp, dout, cu_seqlens, B, C);
}

void af_op_cls_pool_backward(const af_device *dev, float *dinp, const float *dout,
                             const int32_t *cu_seqlens, int B, int C) {
  CPU_ONLY(dev);
  af_cpu_cls_pool_backward(dinp, dout, cu_seqlens, B, C);
}

void af_op_l2norm_backward(const af_device *dev, float *dinp, const float *dout, const float *out,
                           const float *norms, int N, int C) {
  CPU_ONLY(dev);
  af_cpu_l2norm_backward(dinp, dout, out, norms, N, C);
}
