/* The device's GEMM precision (af_device_set_precision, docs/performance.md):
 * bf16 mode swaps the CPU device's op table for the one whose linear layers
 * run on the bf16 GEMM (kernels/cpu/backend.c). */
#include <string.h>

#include "cpu/gemm.h"
#include "ops.h"
#include "ops_table.h"

af_status af_device_set_precision_for(af_device *dev, const char *precision, int cpu_bf16,
                                      af_error *err) {
  if (!precision || strcmp(precision, "fp32") == 0) {
    if (dev->backend == AF_BACKEND_CPU)
      dev->ops = &af_cpu_backend_ops;
#ifdef AF_HAVE_CUDA
    else
      dev->ops = &af_cuda_backend_ops;
#endif
    return AF_OK;
  }
  if (strcmp(precision, "bf16") != 0)
    return af_error_set(err, AF_ERR_ARG, "precision '%s' is not fp32 or bf16", precision);
  if (dev->backend != AF_BACKEND_CPU) {
    /* CUDA: the table whose linear layers take bf16 GEMM inputs (training; the
     * encoder's own bf16 path is af_encoder_set_precision). */
#ifdef AF_HAVE_CUDA
    dev->ops = &af_cuda_bf16_backend_ops;
    return AF_OK;
#else
    return af_error_set(err, AF_ERR_UNSUPPORTED, "precision bf16: this build has no CUDA");
#endif
  }
  if (!cpu_bf16)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "precision bf16 needs a CPU with AVX512_BF16 (the vdpbf16ps "
                        "instruction); this CPU does not have it: use fp32");
  dev->ops = &af_cpu_bf16_backend_ops;
  return AF_OK;
}

int af_device_is_bf16(const af_device *dev) {
#ifdef AF_HAVE_CUDA
  if (dev->ops == &af_cuda_bf16_backend_ops)
    return 1;
#endif
  return dev->ops == &af_cpu_bf16_backend_ops;
}

af_status af_device_set_precision(af_device *dev, const char *precision, af_error *err) {
  return af_device_set_precision_for(dev, precision, af_gemm_isa_supported(AF_GEMM_AVX512_BF16),
                                     err);
}
