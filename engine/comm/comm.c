/* af_comm front end and the single-process backend (engine/comm/comm.h). */
#define _POSIX_C_SOURCE 200809L
#include "comm/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

af_comm_options af_comm_default_options(void) {
  af_comm_options o = {.backend = AF_COMM_SINGLE, .timeout_s = 600.0, .nccl_id_dir = NULL};
  return o;
}

int af_comm_launched_parallel(void) {
  static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && atoi(v) > 1)
      return 1;
  }
  return 0;
}

void af_comm_chunk(int64_t n, int R, int j, int64_t *lo, int64_t *hi) {
  *lo = n * j / R;
  *hi = n * (j + 1) / R;
}

/* ---- single process --------------------------------------------------------- */

static af_status single_allreduce(af_comm *c, float *buf, int64_t n, af_error *err) {
  return AF_OK; /* the sum over one rank */
}

static af_status single_allreduce_device(af_comm *c, float *buf, int64_t n, af_error *err) {
  return AF_OK;
}

static af_status single_allgatherv(af_comm *c, const void *send, void *recv,
                                   const int64_t *counts, af_error *err) {
  if (recv != send)
    memmove(recv, send, (size_t)counts[0]);
  return AF_OK;
}

static af_status single_bcast(af_comm *c, void *buf, int64_t bytes, int root, af_error *err) {
  return AF_OK;
}

static af_status single_barrier(af_comm *c, double timeout_s, af_error *err) { return AF_OK; }

static void single_abort(af_comm *c, int code) { exit(code); }

static void single_destroy(af_comm *c) {}

static const af_comm_ops kSingleOps = {single_allreduce, single_allreduce_device,
                                       single_allgatherv, single_bcast,
                                       single_barrier,    single_abort,
                                       single_destroy,   NULL,
                                       NULL};

/* ---- front end --------------------------------------------------------------- */

af_status af_comm_create(const af_comm_options *opt, af_comm **out, af_error *err) {
  *out = NULL;
  af_comm_options o = opt ? *opt : af_comm_default_options();
  af_comm *c = af_calloc(1, sizeof *c, err);
  if (!c)
    return AF_ERR_NOMEM;
  c->backend = o.backend;
  c->size = 1;
  c->timeout_s = o.timeout_s > 0 ? o.timeout_s : 600.0;
  c->ops = &kSingleOps;
  af_status st = AF_OK;
  if (o.backend == AF_COMM_MPI)
    st = af_comm_init_mpi(c, &o, err);
  else if (o.backend == AF_COMM_NCCL)
    st = af_comm_init_nccl(c, &o, err);
  else if (o.backend != AF_COMM_SINGLE)
    st = af_error_set(err, AF_ERR_ARG, "unknown communicator backend %d", (int)o.backend);
  if (st != AF_OK) {
    free(c);
    return st;
  }
  *out = c;
  return AF_OK;
}

void af_comm_free(af_comm *c) {
  if (!c)
    return;
  c->ops->destroy(c);
  free(c);
}

int af_comm_rank(const af_comm *c) { return c ? c->rank : 0; }
int af_comm_size(const af_comm *c) { return c ? c->size : 1; }
int af_comm_local_rank(const af_comm *c) { return c ? c->local_rank : 0; }
af_comm_backend af_comm_backend_of(const af_comm *c) { return c ? c->backend : AF_COMM_SINGLE; }

const char *af_comm_backend_name(af_comm_backend b) {
  switch (b) {
  case AF_COMM_SINGLE: return "single";
  case AF_COMM_MPI: return "mpi";
  case AF_COMM_NCCL: return "nccl";
  }
  return "unknown";
}

/* The single backend has nothing to do; MPI and NCCL run their collectives
 * even with one rank (a one-rank job exercises the real path). */
static int trivial(const af_comm *c) { return c->backend == AF_COMM_SINGLE; }

static af_status check_n(const char *op, int64_t n, af_error *err) {
  return n < 0 ? af_error_set(err, AF_ERR_ARG, "%s: negative size %lld", op, (long long)n) : AF_OK;
}

af_status af_comm_allreduce_sum_f32(af_comm *c, float *buf, int64_t n, af_error *err) {
  AF_TRY(check_n("all-reduce", n, err));
  return trivial(c) ? AF_OK : c->ops->allreduce_f32(c, buf, n, err);
}

af_status af_comm_allreduce_sum_f32_device(af_comm *c, float *buf, int64_t n, af_error *err) {
  AF_TRY(check_n("all-reduce", n, err));
  if (c->backend == AF_COMM_MPI)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "all-reduce of device memory needs the nccl backend (have %s)",
                        af_comm_backend_name(c->backend));
  return trivial(c) ? AF_OK : c->ops->allreduce_f32_device(c, buf, n, err);
}

af_status af_comm_allreduce_sum_f32_device_async(af_comm *c, float *buf, int64_t n,
                                                 void *after_stream, af_error *err) {
  AF_TRY(check_n("all-reduce", n, err));
  if (trivial(c))
    return AF_OK;
  if (!c->ops->allreduce_f32_device_async)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "a queued all-reduce of device memory needs the nccl backend (have %s)",
                        af_comm_backend_name(c->backend));
  return c->ops->allreduce_f32_device_async(c, buf, n, after_stream, err);
}

af_status af_comm_wait(af_comm *c, af_error *err) {
  return c->ops->wait ? c->ops->wait(c, err) : AF_OK;
}

af_status af_comm_allgatherv(af_comm *c, const void *send, void *recv, const int64_t *counts,
                             af_error *err) {
  for (int r = 0; r < c->size; r++)
    AF_TRY(check_n("all-gather", counts[r], err));
  return c->ops->allgatherv(c, send, recv, counts, err);
}

af_status af_comm_bcast(af_comm *c, void *buf, int64_t bytes, int root, af_error *err) {
  AF_TRY(check_n("broadcast", bytes, err));
  if (root < 0 || root >= c->size)
    return af_error_set(err, AF_ERR_ARG, "broadcast: root %d not a rank of %d", root, c->size);
  return trivial(c) ? AF_OK : c->ops->bcast(c, buf, bytes, root, err);
}

af_status af_comm_barrier(af_comm *c, double timeout_s, af_error *err) {
  return trivial(c) ? AF_OK : c->ops->barrier(c, timeout_s > 0 ? timeout_s : c->timeout_s, err);
}

af_status af_comm_all_ok(af_comm *c, int ok, int *all, af_error *err) {
  float v = ok ? 0.0f : 1.0f; /* failures counted exactly (small integers in float) */
  AF_TRY(af_comm_allreduce_sum_f32(c, &v, 1, err));
  *all = v == 0.0f;
  return AF_OK;
}

/* The message of the first failing rank, as every rank carries it. */
typedef struct {
  int32_t code;
  char msg[AF_ERROR_MSG_MAX];
} wire_error;

af_status af_comm_agree(af_comm *c, af_status st, af_error *err) {
  if (!c || trivial(c) || c->size == 1)
    return st;
  int32_t *failed = af_calloc((size_t)c->size, sizeof(int32_t), NULL); /* (R) 1 = failed */
  if (!failed)
    return st != AF_OK ? st : af_error_set(err, AF_ERR_NOMEM, "agreement: out of memory");
  int64_t *counts = af_calloc((size_t)c->size, sizeof(int64_t), NULL);
  af_status cs = counts ? AF_OK : AF_ERR_NOMEM;
  for (int r = 0; r < c->size && counts; r++)
    counts[r] = sizeof(int32_t);
  int32_t mine = st != AF_OK;
  af_error e2 = {0};
  if (cs == AF_OK)
    cs = af_comm_allgatherv(c, &mine, failed, counts, &e2);
  int first = -1;
  for (int r = 0; r < c->size && cs == AF_OK && first < 0; r++)
    if (failed[r])
      first = r;
  free(failed);
  free(counts);
  if (cs != AF_OK) { /* the agreement itself failed: report that (or our own error) */
    if (st == AF_OK && err)
      *err = e2;
    return st != AF_OK ? st : cs;
  }
  if (first < 0)
    return AF_OK;
  wire_error w;
  memset(&w, 0, sizeof w);
  if (c->rank == first) {
    w.code = (int32_t)st;
    snprintf(w.msg, sizeof w.msg, "%s", err ? err->msg : af_status_name(st));
  }
  cs = af_comm_bcast(c, &w, sizeof w, first, &e2);
  if (cs != AF_OK) {
    if (st == AF_OK && err)
      *err = e2;
    return st != AF_OK ? st : cs;
  }
  if (c->rank == first && strncmp(w.msg, "rank ", 5) == 0)
    return st; /* our own message, already naming the rank */
  af_status code = w.code != AF_OK ? (af_status)w.code : AF_ERR_IO;
  if (strncmp(w.msg, "rank ", 5) == 0)
    return af_error_set(err, code, "%s", w.msg);
  return af_error_set(err, code, "rank %d of %d: %s", first, c->size, w.msg);
}

void af_comm_abort(af_comm *c, int code) {
  if (c)
    c->ops->abort(c, code);
  exit(code);
}

#ifndef AF_HAVE_MPI
af_status af_comm_init_mpi(af_comm *c, const af_comm_options *opt, af_error *err) {
  return af_error_set(err, AF_ERR_UNSUPPORTED,
                      "this build has no MPI (install libopenmpi-dev and rebuild)");
}
#endif

#ifndef AF_HAVE_NCCL
af_status af_comm_init_nccl(af_comm *c, const af_comm_options *opt, af_error *err) {
  return af_error_set(err, AF_ERR_UNSUPPORTED,
                      "this build has no NCCL (needs the CUDA toolkit with NCCL and "
                      "-DAF_WITH_CUDA=ON)");
}
#endif
