/* Backend dispatch for the training ops (see ops_backward.h): the CPU
 * implementations, and with AF_HAVE_CUDA their CUDA twins
 * (kernels/cuda/<op>_backward.cu, compiled but not yet run on a GPU here). */
#include "ops_backward.h"

#ifdef AF_HAVE_CUDA
#include "cuda/cuda_ops_backward.h"
/* The CUDA twin (kernels/cuda/<op>_backward.cu) on a CUDA device. */
#define ON_CUDA(dev, call)                  \
  do {                                      \
    if ((dev)->backend == AF_BACKEND_CUDA) { \
      call;                                 \
      return;                               \
    }                                       \
  } while (0)
int af_backward_supported(const af_device *dev) {
  return dev->backend == AF_BACKEND_CPU || dev->backend == AF_BACKEND_CUDA;
}
#else
#define ON_CUDA(dev, call) \
  do {                     \
  } while (0)
int af_backward_supported(const af_device *dev) { return dev->backend == AF_BACKEND_CPU; }
#endif

#define CPU_ONLY(dev)                \
  do {                               \
    if (!af_backward_supported(dev)) \
      return;                        \
  } while (0)

void af_op_dropout_forward(const af_device *dev, float *out, const float *inp, int64_t n,
                           float p_drop, uint64_t seed, uint64_t stream) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_dropout_forward(dev->cuda, out, inp, n, p_drop, seed, stream));
  af_cpu_dropout_forward(out, inp, n, p_drop, seed, stream);
}

void af_op_dropout_backward(const af_device *dev, float *dinp, const float *dout, int64_t n,
                            float p_drop, uint64_t seed, uint64_t stream) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_dropout_backward(dev->cuda, dinp, dout, n, p_drop, seed, stream));
  af_cpu_dropout_backward(dinp, dout, n, p_drop, seed, stream);
}

void af_op_embedding_backward(const af_device *dev, float *dwte, float *dwpe, float *dwtt,
                              const float *dout, const int32_t *ids, const int32_t *pos,
                              const int32_t *type_ids, int T, int C) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_embedding_backward(dev->cuda, dwte, dwpe, dwtt, dout, ids, pos, type_ids,
          T, C));
  af_cpu_embedding_backward(dwte, dwpe, dwtt, dout, ids, pos, type_ids, T, C);
}

void af_op_layernorm_backward(const af_device *dev, float *dinp, float *dw, float *db,
                              const float *dout, const float *inp, const float *w,
                              const float *mean, const float *rstd, int N, int C) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_layernorm_backward(dev->cuda, dinp, dw, db, dout, inp, w, mean, rstd, N, C));
  af_cpu_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

void af_op_linear_backward(const af_device *dev, float *dinp, float *dw, float *dbias,
                           const float *dout, const float *inp, const float *w, int N, int IC,
                           int OC) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_linear_backward(dev->cuda, dinp, dw, dbias, dout, inp, w, N, IC, OC));
  af_cpu_linear_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC);
}

void af_op_gelu_backward(const af_device *dev, float *dinp, const float *dout, const float *inp,
                         int64_t n) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_gelu_backward(dev->cuda, dinp, dout, inp, n));
  af_cpu_gelu_backward(dinp, dout, inp, n);
}

void af_op_add_backward(const af_device *dev, float *da, float *db, const float *dout,
                        int64_t n) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_add_backward(dev->cuda, da, db, dout, n));
  af_cpu_add_backward(da, db, dout, n);
}

void af_op_attention_backward(const af_device *dev, float *dqkv, const float *dout,
                              const float *qkv, const float *probs, const int32_t *cu_seqlens,
                              int B, int C, int NH) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_attention_backward(dev->cuda, dqkv, dout, qkv, probs, cu_seqlens, B, C, NH));
  af_cpu_attention_backward(dqkv, dout, qkv, probs, cu_seqlens, B, C, NH);
}

void af_op_mean_pool_backward(const af_device *dev, float *dinp, const float *dout,
                              const int32_t *cu_seqlens, int B, int C) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_mean_pool_backward(dev->cuda, dinp, dout, cu_seqlens, B, C));
  af_cpu_mean_pool_backward(dinp, dout, cu_seqlens, B, C);
}

void af_op_cls_pool_backward(const af_device *dev, float *dinp, const float *dout,
                             const int32_t *cu_seqlens, int B, int C) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_cls_pool_backward(dev->cuda, dinp, dout, cu_seqlens, B, C));
  af_cpu_cls_pool_backward(dinp, dout, cu_seqlens, B, C);
}

void af_op_l2norm_backward(const af_device *dev, float *dinp, const float *dout, const float *out,
                           const float *norms, int N, int C) {
  CPU_ONLY(dev);
  ON_CUDA(dev, af_cuda_l2norm_backward(dev->cuda, dinp, dout, out, norms, N, C));
  af_cpu_l2norm_backward(dinp, dout, out, norms, N, C);
}
