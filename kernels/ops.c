/* Backend dispatch for the op interface (see ops.h): the one place that picks
 * the CPU or CUDA implementation of each op. */
#include "ops.h"

#include <omp.h>

#ifdef AF_HAVE_CUDA
#include "cuda/cuda_ops.h"
#define ON_CUDA(dev) ((dev)->backend == AF_BACKEND_CUDA)
#else
#define ON_CUDA(dev) 0
#endif

af_device af_device_cpu(int n_threads) {
  af_device d = {AF_BACKEND_CPU, n_threads, NULL, 0};
  if (n_threads > 0)
    omp_set_num_threads(n_threads);
  return d;
}

void af_op_embedding_forward(const af_device *dev, float *out, const int32_t *ids,
                             const int32_t *pos, const int32_t *type_ids, const float *wte,
                             const float *wpe, const float *wtt, int T, int C) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_embedding_forward(dev->cuda, out, ids, pos, type_ids, wte, wpe, wtt, T, C);
    return;
  }
#endif
  af_cpu_embedding_forward(out, ids, pos, type_ids, wte, wpe, wtt, T, C);
}

void af_op_layernorm_forward(const af_device *dev, float *out, float *mean, float *rstd,
                             const float *inp, const float *w, const float *b, int N, int C,
                             float eps) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_layernorm_forward(dev->cuda, out, mean, rstd, inp, w, b, N, C, eps);
    return;
  }
#endif
  af_cpu_layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
}

void af_op_linear_forward(const af_device *dev, float *out, const float *inp, const float *w,
                          const float *bias, int N, int IC, int OC) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_linear_forward(dev->cuda, out, inp, w, bias, N, IC, OC);
    return;
  }
#endif
  if (dev->bf16)
    af_cpu_linear_forward_bf16(out, inp, w, bias, N, IC, OC);
  else
    af_cpu_linear_forward(out, inp, w, bias, N, IC, OC);
}

void af_op_gelu_forward(const af_device *dev, float *out, const float *inp, int64_t n) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_gelu_forward(dev->cuda, out, inp, n);
    return;
  }
#endif
  af_cpu_gelu_forward(out, inp, n);
}

void af_op_add_forward(const af_device *dev, float *out, const float *a, const float *b,
                       int64_t n) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_add_forward(dev->cuda, out, a, b, n);
    return;
  }
#endif
  af_cpu_add_forward(out, a, b, n);
}

void af_op_attention_forward(const af_device *dev, float *out, float *probs, const float *qkv,
                             const int32_t *cu_seqlens, int B, int C, int NH) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_attention_forward(dev->cuda, out, probs, qkv, cu_seqlens, B, C, NH);
    return;
  }
#endif
  af_cpu_attention_forward(out, probs, qkv, cu_seqlens, B, C, NH);
}

void af_op_mean_pool_forward(const af_device *dev, float *out, const float *inp,
                             const int32_t *cu_seqlens, int B, int C) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_mean_pool_forward(dev->cuda, out, inp, cu_seqlens, B, C);
    return;
  }
#endif
  af_cpu_mean_pool_forward(out, inp, cu_seqlens, B, C);
}

void af_op_cls_pool_forward(const af_device *dev, float *out, const float *inp,
                            const int32_t *cu_seqlens, int B, int C) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_cls_pool_forward(dev->cuda, out, inp, cu_seqlens, B, C);
    return;
  }
#endif
  af_cpu_cls_pool_forward(out, inp, cu_seqlens, B, C);
}

void af_op_l2norm_forward(const af_device *dev, float *out, float *norms, const float *inp, int N,
                          int C) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_l2norm_forward(dev->cuda, out, norms, inp, N, C);
    return;
  }
#endif
  af_cpu_l2norm_forward(out, norms, inp, N, C);
}

/* ---- device memory ----------------------------------------------------------- */
#include <stdlib.h>
#include <string.h>

#ifndef AF_HAVE_CUDA
af_status af_device_cuda(int ordinal, af_device *out, af_error *err) {
  (void)ordinal;
  (void)out;
  return af_error_set(err, AF_ERR_UNSUPPORTED, "this build of affinity has no CUDA support");
}
void af_device_release(af_device *dev) { (void)dev; }
int af_cuda_available(void) { return 0; }
#endif

void *af_dev_malloc(const af_device *dev, size_t bytes, af_error *err) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev))
    return af_cuda_malloc(dev->cuda, bytes, err);
#endif
  return af_malloc(bytes, 1, err);
}

af_status af_dev_alloc(const af_device *dev, size_t bytes, void **out, af_error *err) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    *out = af_cuda_malloc(dev->cuda, bytes, err);
    return *out ? AF_OK : AF_ERR_CUDA; /* af_cuda_malloc reports only cudaMalloc failures */
  }
#endif
  *out = af_malloc(bytes, 1, err);
  return *out ? AF_OK : AF_ERR_NOMEM;
}

void af_dev_free(const af_device *dev, void *ptr) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev)) {
    af_cuda_free(dev->cuda, ptr);
    return;
  }
#endif
  free(ptr);
}

af_status af_dev_upload(const af_device *dev, void *dst, const void *host_src, size_t bytes,
                        af_error *err) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev))
    return af_cuda_memcpy(dev->cuda, dst, host_src, bytes, 1, err);
#endif
  if (bytes)
    memcpy(dst, host_src, bytes);
  return AF_OK;
}

af_status af_dev_download(const af_device *dev, void *host_dst, const void *src, size_t bytes,
                          af_error *err) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev))
    return af_cuda_memcpy(dev->cuda, host_dst, src, bytes, 0, err);
#endif
  if (bytes)
    memcpy(host_dst, src, bytes);
  return AF_OK;
}

af_status af_dev_sync(const af_device *dev, af_error *err) {
#ifdef AF_HAVE_CUDA
  if (ON_CUDA(dev))
    return af_cuda_sync(dev->cuda, err);
#endif
  return AF_OK;
}
