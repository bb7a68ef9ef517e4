/* The NCCL backend of af_comm (engine/comm/comm.h). Built with AF_HAVE_NCCL.
 *
 * Bootstrap: under mpirun (and an MPI build) rank 0's ncclUniqueId is
 * broadcast over MPI; under srun without MPI, rank 0 writes it to
 * <nccl_id_dir>/affinity-nccl-<job>.<step>.id (tmp + rename) and the others
 * poll for that file (same timeout as the collectives). The local rank picks
 * the GPU (local_rank % device count).
 *
 * The all-reduce keeps af_comm's rank order: chunk j of every rank goes to
 * rank j (grouped ncclSend/ncclRecv), rank j adds the R copies in rank order
 * (kernels/cuda/comm_reduce.cu) and broadcasts its sum. Host buffers are
 * staged through one device buffer. Every wait polls the stream against the
 * timeout and aborts the NCCL communicator when it passes.
 *
 * libnccl is not linked: it is opened with dlopen when the backend is created
 * ($AF_NCCL_LIBRARY, else libnccl.so.2 on the loader's path), so binaries
 * built with NCCL headers run, and their other backends work, on machines
 * without it (libnccl.so.2 is 218 MB: linking it would also put it in every
 * packed binary's dependencies). Built with AF_HAVE_NCCL (nccl.h found). */
#define _POSIX_C_SOURCE 200809L
#include "comm/comm.h"

#ifdef AF_HAVE_NCCL
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda/comm_reduce.h"

/* The NCCL entry points used here, resolved from the opened library. */
typedef struct {
  void *lib;
  const char *(*GetErrorString)(ncclResult_t);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t *);
  ncclResult_t (*CommAbort)(ncclComm_t);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  ncclResult_t (*CommInitRank)(ncclComm_t *, int, ncclUniqueId, int);
  ncclResult_t (*GetUniqueId)(ncclUniqueId *);
  ncclResult_t (*GroupStart)(void);
  ncclResult_t (*GroupEnd)(void);
  ncclResult_t (*Send)(const void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*Recv)(void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*Broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t,
                            cudaStream_t);
  ncclResult_t (*AllReduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                            ncclComm_t, cudaStream_t);
} nccl_api;

typedef struct {
  nccl_api api;
  ncclComm_t nccl;
  cudaStream_t stream;
  int device;
  af_comm *boot;     /* the MPI communicator used for the bootstrap, or NULL */
  void *stage;       /* device staging buffer (stage_bytes) */
  size_t stage_bytes;
  float *sums;       /* device (R * chunk) receive buffer of the all-reduce */
  size_t sums_n;
  cudaEvent_t ready; /* the queued all-reduce's start: after the caller's work */
} nccl_state;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define API (((nccl_state *)c->impl)->api) /* in functions with a communicator c */

#define NCCL_TRY(c, call)                                                                    \
  do {                                                                                       \
    ncclResult_t r_ = (call);                                                                \
    if (r_ != ncclSuccess)                                                                   \
      return af_error_set(err, AF_ERR_IO, "rank %d of %d: %s failed at %s:%d: %s", (c)->rank, \
                          (c)->size, #call, __FILE__, __LINE__, API.GetErrorString(r_)); \
  } while (0)

#define CUDA_TRY(c, call)                                                                    \
  do {                                                                                       \
    cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess)                                                                   \
      return af_error_set(err, AF_ERR_CUDA, "rank %d of %d: %s failed at %s:%d: %s",         \
                          (c)->rank, (c)->size, #call, __FILE__, __LINE__,                   \
                          cudaGetErrorString(e_));                                           \
  } while (0)

/* Waits for the stream, polling NCCL's asynchronous errors, at most timeout_s. */
static af_status wait_stream(af_comm *c, const char *op, double timeout_s, af_error *err) {
  nccl_state *s = c->impl;
  const double t0 = now_s();
  for (;;) {
    cudaError_t q = cudaStreamQuery(s->stream);
    if (q == cudaSuccess)
      return AF_OK;
    if (q != cudaErrorNotReady)
      CUDA_TRY(c, q);
    ncclResult_t async = ncclSuccess;
    NCCL_TRY(c, API.CommGetAsyncError(s->nccl, &async));
    NCCL_TRY(c, async);
    if (now_s() - t0 > timeout_s) {
      API.CommAbort(s->nccl);
      s->nccl = NULL;
      return af_error_set(err, AF_ERR_IO,
                          "rank %d of %d: NCCL %s waited %.0f s for the other ranks: a rank has "
                          "died or hangs (communication timeout; see --comm-timeout)",
                          c->rank, c->size, op, timeout_s);
    }
    struct timespec nap = {0, 100000};
    nanosleep(&nap, NULL);
  }
}

static af_status reserve(af_comm *c, void **buf, size_t *have, size_t bytes, af_error *err) {
  if (*have >= bytes)
    return AF_OK;
  if (*buf)
    CUDA_TRY(c, cudaFree(*buf));
  *buf = NULL;
  *have = 0;
  CUDA_TRY(c, cudaMalloc(buf, bytes));
  *have = bytes;
  return AF_OK;
}

/* Queues the rank-ordered all-reduce of buf (n, device) on s->stream. */
static af_status nccl_allreduce_queue(af_comm *c, float *buf, int64_t n, af_error *err) {
  nccl_state *s = c->impl;
  const int R = c->size, me = c->rank;
  int64_t lo, hi;
  af_comm_chunk(n, R, me, &lo, &hi);
  const int64_t mine = hi - lo;
  size_t have = s->sums_n * sizeof(float);
  AF_TRY(reserve(c, (void **)&s->sums, &have, (size_t)(mine * R + 1) * sizeof(float), err));
  s->sums_n = have / sizeof(float);
  NCCL_TRY(c, API.GroupStart());
  for (int j = 0; j < R; j++) {
    int64_t jl, jh;
    af_comm_chunk(n, R, j, &jl, &jh);
    NCCL_TRY(c, API.Send(buf + jl, (size_t)(jh - jl), ncclFloat, j, s->nccl, s->stream));
    NCCL_TRY(c, API.Recv(s->sums + (size_t)j * mine, (size_t)mine, ncclFloat, j, s->nccl,
                         s->stream));
  }
  NCCL_TRY(c, API.GroupEnd());
  int e = af_cuda_sum_ranks(buf + lo, s->sums, R, mine, mine, s->stream);
  if (e != 0)
    return af_error_set(err, AF_ERR_CUDA, "rank %d: rank-ordered sum launch failed: %s", me,
                        cudaGetErrorString((cudaError_t)e));
  NCCL_TRY(c, API.GroupStart());
  for (int j = 0; j < R; j++) {
    int64_t jl, jh;
    af_comm_chunk(n, R, j, &jl, &jh);
    NCCL_TRY(c, API.Broadcast(buf + jl, buf + jl, (size_t)(jh - jl), ncclFloat, j, s->nccl,
                              s->stream));
  }
  NCCL_TRY(c, API.GroupEnd());
  return AF_OK;
}

static af_status nccl_allreduce_device(af_comm *c, float *buf, int64_t n, af_error *err) {
  AF_TRY(nccl_allreduce_queue(c, buf, n, err));
  return wait_stream(c, "all-reduce", c->timeout_s, err);
}

/* After the work queued on after_stream (an event recorded there, waited for
 * by the communicator's stream), without blocking the host. */
static af_status nccl_allreduce_async(af_comm *c, float *buf, int64_t n, void *after_stream,
                                      af_error *err) {
  nccl_state *s = c->impl;
  if (!s->ready)
    CUDA_TRY(c, cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming));
  CUDA_TRY(c, cudaEventRecord(s->ready, (cudaStream_t)after_stream));
  CUDA_TRY(c, cudaStreamWaitEvent(s->stream, s->ready, 0));
  return nccl_allreduce_queue(c, buf, n, err);
}

static af_status nccl_wait(af_comm *c, af_error *err) {
  return wait_stream(c, "all-reduce", c->timeout_s, err);
}

static af_status nccl_allreduce(af_comm *c, float *buf, int64_t n, af_error *err) {
  nccl_state *s = c->impl;
  const size_t bytes = (size_t)n * sizeof(float);
  AF_TRY(reserve(c, &s->stage, &s->stage_bytes, bytes + 1, err));
  CUDA_TRY(c, cudaMemcpyAsync(s->stage, buf, bytes, cudaMemcpyHostToDevice, s->stream));
  AF_TRY(nccl_allreduce_device(c, s->stage, n, err));
  CUDA_TRY(c, cudaMemcpyAsync(buf, s->stage, bytes, cudaMemcpyDeviceToHost, s->stream));
  return wait_stream(c, "all-reduce copy", c->timeout_s, err);
}

static af_status nccl_allgatherv(af_comm *c, const void *send, void *recv, const int64_t *counts,
                                 af_error *err) {
  nccl_state *s = c->impl;
  size_t total = 0, off = 0;
  for (int j = 0; j < c->size; j++) {
    if (j == c->rank)
      off = total;
    total += (size_t)counts[j];
  }
  AF_TRY(reserve(c, &s->stage, &s->stage_bytes, total + 1, err));
  char *d = s->stage;
  CUDA_TRY(c, cudaMemcpyAsync(d + off, send, (size_t)counts[c->rank], cudaMemcpyHostToDevice,
                              s->stream));
  NCCL_TRY(c, API.GroupStart());
  size_t at = 0;
  for (int j = 0; j < c->size; j++) {
    NCCL_TRY(c,
             API.Broadcast(d + at, d + at, (size_t)counts[j], ncclChar, j, s->nccl, s->stream));
    at += (size_t)counts[j];
  }
  NCCL_TRY(c, API.GroupEnd());
  CUDA_TRY(c, cudaMemcpyAsync(recv, d, total, cudaMemcpyDeviceToHost, s->stream));
  return wait_stream(c, "all-gather", c->timeout_s, err);
}

static af_status nccl_bcast(af_comm *c, void *buf, int64_t bytes, int root, af_error *err) {
  nccl_state *s = c->impl;
  AF_TRY(reserve(c, &s->stage, &s->stage_bytes, (size_t)bytes + 1, err));
  if (c->rank == root)
    CUDA_TRY(c, cudaMemcpyAsync(s->stage, buf, (size_t)bytes, cudaMemcpyHostToDevice, s->stream));
  NCCL_TRY(c, API.Broadcast(s->stage, s->stage, (size_t)bytes, ncclChar, root, s->nccl,
                            s->stream));
  CUDA_TRY(c, cudaMemcpyAsync(buf, s->stage, (size_t)bytes, cudaMemcpyDeviceToHost, s->stream));
  return wait_stream(c, "broadcast", c->timeout_s, err);
}

static af_status nccl_barrier(af_comm *c, double timeout_s, af_error *err) {
  nccl_state *s = c->impl;
  AF_TRY(reserve(c, &s->stage, &s->stage_bytes, sizeof(float), err));
  NCCL_TRY(c, API.AllReduce(s->stage, s->stage, 1, ncclFloat, ncclSum, s->nccl, s->stream));
  return wait_stream(c, "barrier", timeout_s, err);
}

static void nccl_abort(af_comm *c, int code) {
  nccl_state *s = c->impl;
  if (s && s->nccl) {
    API.CommAbort(s->nccl);
    s->nccl = NULL;
  }
  if (s && s->boot)
    af_comm_abort(s->boot, code);
  exit(code);
}

static void nccl_destroy(af_comm *c) {
  nccl_state *s = c->impl;
  if (!s)
    return;
  if (s->nccl)
    API.CommDestroy(s->nccl);
  if (s->stage)
    cudaFree(s->stage);
  if (s->sums)
    cudaFree(s->sums);
  if (s->ready)
    cudaEventDestroy(s->ready);
  if (s->stream)
    cudaStreamDestroy(s->stream);
  af_comm_free(s->boot);
  /* libnccl stays loaded: it keeps threads and exit handlers of its own, and
   * unmapping it under them crashes the process at exit. */
  free(s);
  c->impl = NULL;
}

static const af_comm_ops kNcclOps = {nccl_allreduce, nccl_allreduce_device, nccl_allgatherv,
                                     nccl_bcast,     nccl_barrier,          nccl_abort,
                                     nccl_destroy,   nccl_allreduce_async,  nccl_wait};

/* Opens libnccl and resolves the entry points into s->api. */
static af_status load_api(af_comm *c, nccl_state *s, af_error *err) {
  const char *path = getenv("AF_NCCL_LIBRARY");
  s->api.lib = dlopen(path && *path ? path : "libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!s->api.lib)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "the nccl backend cannot open %s: %s (install NCCL, or set "
                        "AF_NCCL_LIBRARY to the path of libnccl.so.2)",
                        path && *path ? path : "libnccl.so.2", dlerror());
  struct {
    const char *name;
    void **slot;
  } syms[] = {
      {"ncclGetErrorString", (void **)&s->api.GetErrorString},
      {"ncclCommGetAsyncError", (void **)&s->api.CommGetAsyncError},
      {"ncclCommAbort", (void **)&s->api.CommAbort},
      {"ncclCommDestroy", (void **)&s->api.CommDestroy},
      {"ncclCommInitRank", (void **)&s->api.CommInitRank},
      {"ncclGetUniqueId", (void **)&s->api.GetUniqueId},
      {"ncclGroupStart", (void **)&s->api.GroupStart},
      {"ncclGroupEnd", (void **)&s->api.GroupEnd},
      {"ncclSend", (void **)&s->api.Send},
      {"ncclRecv", (void **)&s->api.Recv},
      {"ncclBroadcast", (void **)&s->api.Broadcast},
      {"ncclAllReduce", (void **)&s->api.AllReduce},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
    if (!(*syms[i].slot = dlsym(s->api.lib, syms[i].name)))
      return af_error_set(err, AF_ERR_UNSUPPORTED, "rank %d: libnccl has no %s (NCCL >= 2.7 "
                          "needed)", c->rank, syms[i].name);
  return AF_OK;
}

static int env_int(const char *name, int fallback) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : fallback;
}

/* The unique id through a file: rank 0 writes it (tmp + rename), the others
 * poll for it. */
static af_status id_by_file(af_comm *c, const char *dir, ncclUniqueId *id, af_error *err) {
  if (!dir)
    return af_error_set(err, AF_ERR_ARG,
                        "nccl without MPI needs a shared folder for the bootstrap "
                        "(--nccl-id-dir, visible to every node)");
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/affinity-nccl-%s.%s.id", dir,
           getenv("SLURM_JOB_ID") ? getenv("SLURM_JOB_ID") : "0",
           getenv("SLURM_STEP_ID") ? getenv("SLURM_STEP_ID") : "0");
  if (c->rank == 0) {
    NCCL_TRY(c, API.GetUniqueId(id));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int bad = !f || fwrite(id, sizeof *id, 1, f) != 1;
    bad |= f && fclose(f) != 0;
    if (bad || rename(tmp, path) != 0)
      return af_error_set(err, AF_ERR_IO, "%s: cannot write the NCCL bootstrap file", path);
    return AF_OK;
  }
  const double t0 = now_s();
  for (;;) {
    FILE *f = fopen(path, "rb");
    if (f) {
      size_t got = fread(id, sizeof *id, 1, f);
      fclose(f);
      if (got == 1)
        return AF_OK;
    }
    if (now_s() - t0 > c->timeout_s)
      return af_error_set(err, AF_ERR_IO, "rank %d: %s did not appear within %.0f s (rank 0 "
                          "failed, or the folder is not shared)", c->rank, path, c->timeout_s);
    sleep(1);
  }
}

static af_status nccl_setup(af_comm *c, nccl_state *s, const af_comm_options *opt,
                            af_error *err) {
  /* A GPU first: NCCL started on a machine without one leaves state behind
   * that crashes the process at exit. */
  int n_dev = 0;
  CUDA_TRY(c, cudaGetDeviceCount(&n_dev));
  if (n_dev < 1)
    return af_error_set(err, AF_ERR_CUDA, "rank %d: no CUDA device for the nccl backend", c->rank);
  AF_TRY(load_api(c, s, err));
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  /* srun with --nccl-id-dir: the file; otherwise an MPI launch: MPI. */
  const int by_file = getenv("SLURM_PROCID") && opt->nccl_id_dir;
#ifdef AF_HAVE_MPI
  const int by_mpi = !by_file && af_comm_launched_parallel();
#else
  const int by_mpi = 0;
#endif
  if (by_mpi) {
    af_comm_options mo = *opt;
    mo.backend = AF_COMM_MPI;
    AF_TRY(af_comm_create(&mo, &s->boot, err));
    c->rank = af_comm_rank(s->boot);
    c->size = af_comm_size(s->boot);
    c->local_rank = af_comm_local_rank(s->boot);
    if (c->rank == 0)
      NCCL_TRY(c, API.GetUniqueId(&id));
    AF_TRY(af_comm_bcast(s->boot, &id, sizeof id, 0, err));
  } else if (getenv("SLURM_PROCID")) {
    c->rank = env_int("SLURM_PROCID", 0);
    c->size = env_int("SLURM_NTASKS", 1);
    c->local_rank = env_int("SLURM_LOCALID", 0);
    if (c->size > 1)
      AF_TRY(id_by_file(c, opt->nccl_id_dir, &id, err));
    else
      NCCL_TRY(c, API.GetUniqueId(&id));
  } else {
    NCCL_TRY(c, API.GetUniqueId(&id)); /* one rank */
  }
  s->device = c->local_rank % n_dev;
  CUDA_TRY(c, cudaSetDevice(s->device));
  CUDA_TRY(c, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
  NCCL_TRY(c, API.CommInitRank(&s->nccl, c->size, id, c->rank));
  return AF_OK;
}

af_status af_comm_init_nccl(af_comm *c, const af_comm_options *opt, af_error *err) {
  nccl_state *s = af_calloc(1, sizeof *s, err);
  if (!s)
    return AF_ERR_NOMEM;
  c->impl = s;
  c->ops = &kNcclOps;
  af_status st = nccl_setup(c, s, opt, err);
  if (st != AF_OK)
    nccl_destroy(c);
  return st;
}
#endif /* AF_HAVE_NCCL */
