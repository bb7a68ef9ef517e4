/* Private to kernels/cuda/*.cu: the CUDA context behind af_device.ctx and the
 * checking helpers every CUDA and cuBLAS call goes through.
 *
 * Two ways of reporting an error:
 *  - functions that return af_status use AF_CUDA_TRY / AF_CUBLAS_TRY, which
 *    fill af_error with the call, file, line, CUDA's name for the error and a
 *    hint, and return AF_ERR_CUDA;
 *  - the forward ops return void (see ops.h), so they record the FIRST error
 *    (a failed launch, a cuBLAS failure, an argument the kernel cannot handle)
 *    in the context with af_cuda_record / af_cuda_check_launch. The recorded
 *    error is reported, and then cleared, by the next af_cuda_sync or
 *    af_cuda_memcpy on that context; later errors are dropped until then, so
 *    the message always names the op that failed first. An op does nothing
 *    while an error is pending (its inputs may be garbage). */
#ifndef AF_CUDA_CHECK_H
#define AF_CUDA_CHECK_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cuda_ops.h"
#include "affinity.h"

struct af_cuda_context {
  int device;               // CUDA ordinal
  cudaStream_t stream;      // every op is queued here (AF_QUEUE_COMPUTE)
  cudaStream_t copy[2];     // AF_QUEUE_UPLOAD, AF_QUEUE_DOWNLOAD: copies beside the ops
  cublasHandle_t cublas;    // bound to `stream`
  cublasLtHandle_t cublaslt; // bf16 GEMMs (linear_bf16.cu); stream given per call
  void *workspace;          // (workspace_bytes) cuBLAS workspace
  size_t workspace_bytes;
  int sm_count;             // multiprocessors (grid sizing)
  af_error pending;         // first error of a void op, reported at sync
  void *scratch;            // (scratch_bytes) op-internal device scratch, grown on demand
  size_t scratch_bytes;
};

/* A hint for the most common failures, appended to every message. */
static inline const char *af_cuda_hint(cudaError_t e) {
  switch (e) {
  case cudaErrorMemoryAllocation:
    return "the GPU is out of memory: use a smaller batch or free other GPU jobs";
  case cudaErrorInsufficientDriver:
    return "the NVIDIA driver is missing or older than this CUDA runtime";
  case cudaErrorNoDevice:
    return "no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi)";
  case cudaErrorInvalidDevice:
    return "the GPU ordinal is out of range (see nvidia-smi -L)";
  case cudaErrorIllegalAddress:
  case cudaErrorLaunchFailure:
    return "a kernel read or wrote out of bounds: check token ids, positions and cu_seqlens";
  case cudaErrorNoKernelImageForDevice:
  case cudaErrorUnsupportedPtxVersion:
    return "this build has no code for this GPU: rebuild with -DCMAKE_CUDA_ARCHITECTURES=<sm>";
  case cudaErrorInvalidConfiguration:
    return "bad launch configuration: a shape is out of range";
  default:
    return "";
  }
}

static inline const char *af_cublas_hint(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "cuBLAS could not start: is libcublas.so.13 from the same CUDA major version?";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "the GPU is out of memory";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "a matrix dimension is negative or a leading dimension too small";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "this GPU lacks a feature cuBLAS needs";
  default:
    return "";
  }
}

static inline af_status af_cuda_fail(af_error *err, cudaError_t e, const char *what,
                                     const char *file, int line) {
  (void)cudaGetLastError(); // clear a non-sticky error so the next call starts clean
  const char *hint = af_cuda_hint(e);
  return af_error_set(err, AF_ERR_CUDA, "%s:%d: %s failed: %s (%s)%s%s", file, line, what,
                      cudaGetErrorName(e), cudaGetErrorString(e), *hint ? "; " : "", hint);
}

static inline af_status af_cublas_fail(af_error *err, cublasStatus_t s, const char *what,
                                       const char *file, int line) {
  const char *hint = af_cublas_hint(s);
  return af_error_set(err, AF_ERR_CUDA, "%s:%d: %s failed: %s (%s)%s%s", file, line, what,
                      cublasGetStatusName(s), cublasGetStatusString(s), *hint ? "; " : "", hint);
}

#define AF_CUDA_TRY(err, call)                                          \
  do {                                                                  \
    cudaError_t af_e_ = (call);                                         \
    if (af_e_ != cudaSuccess)                                           \
      return af_cuda_fail((err), af_e_, #call, __FILE__, __LINE__);     \
  } while (0)

#define AF_CUBLAS_TRY(err, call)                                        \
  do {                                                                  \
    cublasStatus_t af_s_ = (call);                                      \
    if (af_s_ != CUBLAS_STATUS_SUCCESS)                                 \
      return af_cublas_fail((err), af_s_, #call, __FILE__, __LINE__);   \
  } while (0)

/* ---- errors of the void ops: kept in ctx->pending ------------------------ */

static inline int af_cuda_has_pending(const af_cuda_context *ctx) {
  return ctx->pending.code != AF_OK;
}

/* Records an error unless one is already pending (the first one wins). */
static inline void af_cuda_record(af_cuda_context *ctx, af_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void af_cuda_record(af_cuda_context *ctx, af_status code, const char *fmt, ...) {
  if (af_cuda_has_pending(ctx))
    return;
  ctx->pending.code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->pending.msg, sizeof ctx->pending.msg, fmt, ap);
  va_end(ap);
}

static inline void af_cuda_record_cuda(af_cuda_context *ctx, cudaError_t e, const char *what,
                                       const char *file, int line) {
  if (e == cudaSuccess || af_cuda_has_pending(ctx))
    return;
  af_cuda_fail(&ctx->pending, e, what, file, line);
}

static inline void af_cuda_record_cublas(af_cuda_context *ctx, cublasStatus_t s,
                                         const char *what, const char *file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS || af_cuda_has_pending(ctx))
    return;
  af_cublas_fail(&ctx->pending, s, what, file, line);
}

/* After every kernel launch: a bad configuration or missing kernel image shows
 * up here at once; faults inside the kernel show up at the next sync. */
#define af_cuda_check_launch(ctx, name) \
  af_cuda_record_cuda((ctx), cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

#define AF_CUDA_RECORD(ctx, call) af_cuda_record_cuda((ctx), (call), #call, __FILE__, __LINE__)
#define AF_CUBLAS_RECORD(ctx, call) af_cuda_record_cublas((ctx), (call), #call, __FILE__, __LINE__)

/* Device scratch of at least `bytes` for the op being queued (context.cu);
 * NULL with the error recorded. Valid until the next call: ops on the one
 * stream run in order, so reuse by the next op is safe. */
void *af_cuda_scratch(af_cuda_context *ctx, size_t bytes);

/* Blocks for a grid-stride loop over n items: enough to fill the GPU, no more. */
static inline unsigned af_cuda_blocks(const af_cuda_context *ctx, long long n, int threads) {
  long long need = (n + threads - 1) / threads;
  long long cap = (long long)ctx->sm_count * 32;
  if (need > cap)
    need = cap;
  return (unsigned)(need > 0 ? need : 1);
}

#endif
