/* The CUDA context behind af_device.ctx: one GPU, one stream on which every op
 * is queued (AF_QUEUE_COMPUTE) and two for copies beside it (AF_QUEUE_UPLOAD,
 * AF_QUEUE_DOWNLOAD: the two directions' copy engines), a cuBLAS handle bound to that stream with a fixed workspace, and
 * the first error of a void op (reported at af_cuda_sync / af_cuda_memcpy; see
 * cuda_check.h). Also the af_device_cuda / af_device_release /
 * af_cuda_available entry points of ops.h for CUDA builds. */
#include <stdlib.h>

#include "cuda_check.h"
#include "ops.h"
#include "ops_table.h"

// cuBLAS asks for a user workspace of 32 MiB on Hopper for full speed when it
// runs on a user stream (and for graph capture).
#define AF_CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

extern "C" int af_cuda_available(void) {
  int n = 0;
  // No driver, a stub libcuda or no GPU: an error code, never a crash.
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n > 0;
}

extern "C" af_status af_cuda_context_create(int ordinal, af_cuda_context **out, af_error *err) {
  *out = NULL;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return af_error_set(err, AF_ERR_UNSUPPORTED, "no usable CUDA GPU: cudaGetDeviceCount: %s (%s)%s%s",
                        cudaGetErrorName(e), cudaGetErrorString(e),
                        *af_cuda_hint(e) ? "; " : "", af_cuda_hint(e));
  }
  if (n == 0)
    return af_error_set(err, AF_ERR_UNSUPPORTED, "no CUDA GPU is visible");
  if (ordinal < 0 || ordinal >= n)
    return af_error_set(err, AF_ERR_ARG, "GPU ordinal %d is out of range: %d GPU(s) visible",
                        ordinal, n);
  AF_CUDA_TRY(err, cudaSetDevice(ordinal));

  af_cuda_context *ctx = (af_cuda_context *)calloc(1, sizeof *ctx);
  if (!ctx)
    return af_error_set(err, AF_ERR_NOMEM, "out of memory allocating the CUDA context");
  ctx->device = ordinal;
  af_error_clear(&ctx->pending);
  af_status st = AF_OK;
  cudaError_t ce;
  cublasStatus_t bs;
  if ((ce = cudaDeviceGetAttribute(&ctx->sm_count, cudaDevAttrMultiProcessorCount, ordinal)) !=
      cudaSuccess) {
    st = af_cuda_fail(err, ce, "cudaDeviceGetAttribute(MultiProcessorCount)", __FILE__, __LINE__);
  } else if ((ce = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) !=
             cudaSuccess) {
    st = af_cuda_fail(err, ce, "cudaStreamCreateWithFlags", __FILE__, __LINE__);
  } else if ((ce = cudaStreamCreateWithFlags(&ctx->copy[0], cudaStreamNonBlocking)) !=
                 cudaSuccess ||
             (ce = cudaStreamCreateWithFlags(&ctx->copy[1], cudaStreamNonBlocking)) !=
                 cudaSuccess) {
    st = af_cuda_fail(err, ce, "cudaStreamCreateWithFlags (copy streams)", __FILE__, __LINE__);
  } else if ((bs = cublasCreate(&ctx->cublas)) != CUBLAS_STATUS_SUCCESS) {
    st = af_cublas_fail(err, bs, "cublasCreate", __FILE__, __LINE__);
  } else if ((bs = cublasSetStream(ctx->cublas, ctx->stream)) != CUBLAS_STATUS_SUCCESS) {
    st = af_cublas_fail(err, bs, "cublasSetStream", __FILE__, __LINE__);
  } else if ((bs = cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH)) !=
             CUBLAS_STATUS_SUCCESS) {
    // DEFAULT_MATH: fp32 GEMMs stay fp32 (no TF32), so results match the CPU.
    st = af_cublas_fail(err, bs, "cublasSetMathMode", __FILE__, __LINE__);
  } else if ((ce = cudaMalloc(&ctx->workspace, AF_CUBLAS_WORKSPACE_BYTES)) != cudaSuccess) {
    ctx->workspace = NULL;
    st = af_cuda_fail(err, ce, "cudaMalloc(cuBLAS workspace)", __FILE__, __LINE__);
  } else if ((bs = cublasSetWorkspace(ctx->cublas, ctx->workspace, AF_CUBLAS_WORKSPACE_BYTES)) !=
             CUBLAS_STATUS_SUCCESS) {
    st = af_cublas_fail(err, bs, "cublasSetWorkspace", __FILE__, __LINE__);
  } else if ((bs = cublasLtCreate(&ctx->cublaslt)) != CUBLAS_STATUS_SUCCESS) {
    st = af_cublas_fail(err, bs, "cublasLtCreate", __FILE__, __LINE__);
  } else {
    ctx->workspace_bytes = AF_CUBLAS_WORKSPACE_BYTES;
  }
  if (st != AF_OK) {
    af_cuda_context_destroy(ctx);
    return st;
  }
  *out = ctx;
  return AF_OK;
}

extern "C" void af_cuda_context_destroy(af_cuda_context *ctx) {
  if (!ctx)
    return;
  // Teardown errors (e.g. after a sticky kernel fault) cannot be acted upon:
  // every handle is released regardless.
  (void)cudaSetDevice(ctx->device);
  for (int i = 0; i < 2; i++)
    if (ctx->copy[i])
      (void)cudaStreamSynchronize(ctx->copy[i]);
  if (ctx->stream)
    (void)cudaStreamSynchronize(ctx->stream);
  if (ctx->cublaslt)
    (void)cublasLtDestroy(ctx->cublaslt);
  if (ctx->cublas)
    (void)cublasDestroy(ctx->cublas);
  if (ctx->workspace)
    (void)cudaFree(ctx->workspace);
  if (ctx->scratch)
    (void)cudaFree(ctx->scratch);
  if (ctx->stream)
    (void)cudaStreamDestroy(ctx->stream);
  for (int i = 0; i < 2; i++)
    if (ctx->copy[i])
      (void)cudaStreamDestroy(ctx->copy[i]);
  (void)cudaGetLastError();
  free(ctx);
}

/* Reports (and clears) the error a void op recorded. */
extern "C" af_status af_cuda_take_pending(af_cuda_context *ctx, af_error *err) {
  if (!af_cuda_has_pending(ctx))
    return AF_OK;
  af_status code = ctx->pending.code;
  af_error_set(err, code, "%s", ctx->pending.msg);
  af_error_clear(&ctx->pending);
  return code;
}

extern "C" void *af_cuda_malloc(af_cuda_context *ctx, size_t bytes, af_error *err) {
  void *p = NULL;
  // Like af_malloc: a zero-byte request still returns a distinct, freeable pointer.
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    af_cuda_fail(err, e, "cudaMalloc", __FILE__, __LINE__);
    af_error_prefix(err, "allocating %zu bytes on GPU %d: ", bytes, ctx->device);
    return NULL;
  }
  return p;
}

extern "C" void af_cuda_free(af_cuda_context *ctx, void *ptr) {
  if (!ptr)
    return;
  // cudaFree waits for the device, so no queued op still uses ptr afterwards.
  AF_CUDA_RECORD(ctx, cudaFree(ptr));
}

extern "C" af_status af_cuda_memcpy(af_cuda_context *ctx, void *dst, const void *src,
                                    size_t bytes, int to_device, af_error *err) {
  // The compute queue's copy, then a wait: synchronous for the caller (a
  // download is readable, an upload's source may be reused, once this returns).
  AF_TRY(af_cuda_copy_async(ctx, 0, dst, src, bytes, to_device, err));
  AF_CUDA_TRY(err, cudaStreamSynchronize(ctx->stream));
  return AF_OK;
}

/* The stream of queue q (af_queue: 0 compute, 1 upload, 2 download). */
static cudaStream_t queue_stream(af_cuda_context *ctx, int q) {
  return q == 0 ? ctx->stream : ctx->copy[q == 1 ? 0 : 1];
}

extern "C" af_status af_cuda_copy_async(af_cuda_context *ctx, int q, void *dst, const void *src,
                                        size_t bytes, int to_device, af_error *err) {
  AF_TRY(af_cuda_take_pending(ctx, err));
  if (bytes == 0)
    return AF_OK;
  // Queued in order with queue q's work; the caller syncs before it reads a
  // download or reuses an upload's source, and orders the queues by events.
  AF_CUDA_TRY(err, cudaMemcpyAsync(dst, src, bytes,
                                   to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                   queue_stream(ctx, q)));
  return AF_OK;
}

extern "C" af_status af_cuda_event_create(af_cuda_context *ctx, void **out, af_error *err) {
  (void)ctx;
  cudaEvent_t ev = NULL;
  *out = NULL;
  AF_CUDA_TRY(err, cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  *out = (void *)ev;
  return AF_OK;
}

extern "C" void af_cuda_event_free(af_cuda_context *ctx, void *ev) {
  // Destroying an event still recorded by queued work is allowed: CUDA frees
  // it once that work completes.
  if (ev)
    AF_CUDA_RECORD(ctx, cudaEventDestroy((cudaEvent_t)ev));
}

extern "C" af_status af_cuda_event_record(af_cuda_context *ctx, void *ev, int q, af_error *err) {
  AF_CUDA_TRY(err, cudaEventRecord((cudaEvent_t)ev, queue_stream(ctx, q)));
  return AF_OK;
}

extern "C" af_status af_cuda_queue_wait(af_cuda_context *ctx, int q, void *ev, af_error *err) {
  AF_CUDA_TRY(err, cudaStreamWaitEvent(queue_stream(ctx, q), (cudaEvent_t)ev, 0));
  return AF_OK;
}

extern "C" af_status af_cuda_host_alloc(af_cuda_context *ctx, size_t bytes, void **out,
                                        af_error *err) {
  *out = NULL;
  cudaError_t e = cudaMallocHost(out, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    *out = NULL;
    af_cuda_fail(err, e, "cudaMallocHost", __FILE__, __LINE__);
    af_error_prefix(err, "allocating %zu bytes of pinned host memory for GPU %d: ", bytes,
                    ctx->device);
    return AF_ERR_CUDA;
  }
  return AF_OK;
}

extern "C" void af_cuda_host_free(af_cuda_context *ctx, void *ptr) {
  if (ptr)
    AF_CUDA_RECORD(ctx, cudaFreeHost(ptr));
}

extern "C" af_status af_cuda_mem_free(af_cuda_context *ctx, size_t *free_bytes, af_error *err) {
  (void)ctx;
  size_t total = 0;
  AF_CUDA_TRY(err, cudaMemGetInfo(free_bytes, &total));
  return AF_OK;
}

extern "C" af_status af_cuda_sync(af_cuda_context *ctx, af_error *err) {
  // Every stream, the copy streams first (a download is read after this).
  cudaError_t e = cudaSuccess, ei;
  for (int i = 0; i < 2; i++)
    if ((ei = cudaStreamSynchronize(ctx->copy[i])) != cudaSuccess && e == cudaSuccess)
      e = ei;
  if ((ei = cudaStreamSynchronize(ctx->stream)) != cudaSuccess && e == cudaSuccess)
    e = ei;
  AF_TRY(af_cuda_take_pending(ctx, err));
  if (e != cudaSuccess)
    return af_cuda_fail(err, e, "cudaStreamSynchronize (a queued kernel or copy failed)", __FILE__,
                        __LINE__);
  return AF_OK;
}

void *af_cuda_scratch(af_cuda_context *ctx, size_t bytes) {
  if (bytes <= ctx->scratch_bytes)
    return ctx->scratch;
  // cudaFree waits for the device, so no queued op still uses the old buffer.
  if (ctx->scratch) {
    AF_CUDA_RECORD(ctx, cudaFree(ctx->scratch));
    ctx->scratch = NULL;
    ctx->scratch_bytes = 0;
  }
  size_t n = bytes + bytes / 2;
  cudaError_t e = cudaMalloc(&ctx->scratch, n);
  if (e != cudaSuccess) {
    ctx->scratch = NULL;
    af_cuda_record_cuda(ctx, e, "cudaMalloc(op scratch)", __FILE__, __LINE__);
    return NULL;
  }
  ctx->scratch_bytes = n;
  return ctx->scratch;
}

/* Makes the context's GPU current on the calling thread: every entry point of
 * the backend table calls it first, so a context on GPU 1, or one used from a
 * thread other than its creator's, never runs on another card. cudaGetDevice
 * is a host-side read; cudaSetDevice runs only when the device differs. */
extern "C" af_status af_cuda_enter(af_cuda_context *ctx, af_error *err) {
  int cur = -1;
  AF_CUDA_TRY(err, cudaGetDevice(&cur));
  if (cur != ctx->device)
    AF_CUDA_TRY(err, cudaSetDevice(ctx->device));
  return AF_OK;
}

/* ---- ops.h entry points --------------------------------------------------- */

extern "C" af_status af_device_cuda(int ordinal, af_device *out, af_error *err) {
  if (!af_cuda_available())
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "no usable CUDA GPU (no driver or no device visible); use the CPU");
  af_cuda_context *ctx = NULL;
  AF_TRY(af_cuda_context_create(ordinal, &ctx, err));
  out->backend = AF_BACKEND_CUDA;
  out->n_threads = 0;
  out->ctx = ctx;
  out->ops = &af_cuda_backend_ops;
  return AF_OK;
}

extern "C" void af_device_release(af_device *dev) {
  if (!dev || dev->backend != AF_BACKEND_CUDA)
    return;
  af_cuda_context_destroy((af_cuda_context *)dev->ctx);
  *dev = af_device_cpu(0);
}
