/* The MPI backend of af_comm (engine/comm/comm.h): MPI_COMM_WORLD, every
 * collective non-blocking and polled against a deadline, so that a dead or
 * stuck rank becomes an error instead of a hang. Built with AF_HAVE_MPI. */
#define _POSIX_C_SOURCE 200809L
#include "comm/comm.h"

#ifdef AF_HAVE_MPI
#include <limits.h>
#include <stdio.h>
#include <mpi.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  MPI_Comm world;   /* a duplicate of MPI_COMM_WORLD, errors returned */
  int own_init;     /* we called MPI_Init_thread: we finalise */
  float *scratch;   /* (R * chunk) all-reduce receive buffer */
  int64_t scratch_n;
} mpi_state;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static af_status mpi_fail(const af_comm *c, int rc, const char *op, af_error *err) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
    snprintf(msg, sizeof msg, "MPI error %d", rc);
  return af_error_set(err, AF_ERR_IO, "rank %d of %d: MPI %s failed: %s", c->rank, c->size, op,
                      msg);
}

/* Polls req until it completes or timeout_s passes. MPI moves a large
 * message a fragment per MPI_Test, so the first 50 ms poll back to back
 * (yielding the core between polls); after that a wait is a wait for another
 * rank's work, and polls sleep 20 us .. 200 us so waiting ranks leave the
 * cores to working ones. */
static af_status wait_req(const af_comm *c, MPI_Request *req, const char *op, int64_t bytes,
                          double timeout_s, af_error *err) {
  const double t0 = now_s();
  long nap_ns = 20000;
  for (;;) {
    int done = 0;
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
      return mpi_fail(c, rc, op, err);
    if (done)
      return AF_OK;
    if (now_s() - t0 > timeout_s)
      return af_error_set(err, AF_ERR_IO,
                          "rank %d of %d: %s of %lld bytes waited %.0f s for the other ranks: a "
                          "rank has died or hangs (communication timeout; see --comm-timeout)",
                          c->rank, c->size, op, (long long)bytes, timeout_s);
    if (now_s() - t0 < 0.05) {
      sched_yield();
      continue;
    }
    struct timespec nap = {0, nap_ns};
    nanosleep(&nap, NULL);
    nap_ns = nap_ns < 200000 ? nap_ns * 2 : 200000;
  }
}

static af_status int_count(const af_comm *c, int64_t n, const char *op, af_error *err) {
  return n > INT_MAX ? af_error_set(err, AF_ERR_UNSUPPORTED,
                                    "rank %d: %s of %lld elements exceeds MPI's int count",
                                    c->rank, op, (long long)n)
                     : AF_OK;
}

/* buf (n) = sum over ranks in rank order: all-to-all of the R chunks, each
 * rank sums its chunk in rank order, all-gather of the sums. */
static af_status mpi_allreduce(af_comm *c, float *buf, int64_t n, af_error *err) {
  mpi_state *s = c->impl;
  const int R = c->size, me = c->rank;
  AF_TRY(int_count(c, n, "all-reduce", err));
  int64_t lo, hi;
  af_comm_chunk(n, R, me, &lo, &hi);
  const int64_t mine = hi - lo;
  if (s->scratch_n < mine * R) {
    float *p = af_realloc(s->scratch, (size_t)(mine * R > 0 ? mine * R : 1), sizeof(float), err);
    if (!p)
      return AF_ERR_NOMEM;
    s->scratch = p;
    s->scratch_n = mine * R;
  }
  /* send counts, send displacements, receive counts, receive displacements */
  int *sc = af_malloc((size_t)R * 4, sizeof(int), err);
  if (!sc)
    return AF_ERR_NOMEM;
  int *sd = sc + R, *rc_ = sc + 2 * R, *rd = sc + 3 * R;
  for (int j = 0; j < R; j++) {
    int64_t jl, jh;
    af_comm_chunk(n, R, j, &jl, &jh);
    sc[j] = (int)(jh - jl);
    sd[j] = (int)jl;
    rc_[j] = (int)mine;
    rd[j] = (int)(mine * j);
  }
  MPI_Request req;
  af_status st = AF_OK;
  int rc = MPI_Ialltoallv(buf, sc, sd, MPI_FLOAT, s->scratch, rc_, rd, MPI_FLOAT, s->world, &req);
  st = rc != MPI_SUCCESS ? mpi_fail(c, rc, "all-to-all", err)
                         : wait_req(c, &req, "all-reduce", n * 4, c->timeout_s, err);
  if (st == AF_OK) {
    float *out = buf + lo; /* (mine): rank order, one addition per rank */
    for (int64_t i = 0; i < mine; i++) {
      float acc = s->scratch[i];
      for (int j = 1; j < R; j++)
        acc += s->scratch[(int64_t)j * mine + i];
      out[i] = acc;
    }
    for (int j = 0; j < R; j++) {
      rc_[j] = sc[j];
      rd[j] = sd[j];
    }
    rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, rc_, rd, MPI_FLOAT, s->world, &req);
    st = rc != MPI_SUCCESS ? mpi_fail(c, rc, "all-gather", err)
                           : wait_req(c, &req, "all-reduce", n * 4, c->timeout_s, err);
  }
  free(sc);
  return st;
}

static af_status mpi_allreduce_device(af_comm *c, float *buf, int64_t n, af_error *err) {
  return af_error_set(err, AF_ERR_UNSUPPORTED, "the mpi backend reduces host memory only");
}

static af_status mpi_allgatherv(af_comm *c, const void *send, void *recv, const int64_t *counts,
                                af_error *err) {
  mpi_state *s = c->impl;
  const int R = c->size;
  int *rc_ = af_malloc((size_t)R * 2, sizeof(int), err);
  if (!rc_)
    return AF_ERR_NOMEM;
  int *rd = rc_ + R;
  int64_t total = 0;
  af_status st = AF_OK;
  for (int j = 0; j < R && st == AF_OK; j++) {
    st = int_count(c, total + counts[j], "all-gather", err);
    rc_[j] = (int)counts[j];
    rd[j] = (int)total;
    total += counts[j];
  }
  MPI_Request req;
  if (st == AF_OK) {
    int rc = MPI_Iallgatherv(send, rc_[c->rank], MPI_BYTE, recv, rc_, rd, MPI_BYTE, s->world,
                             &req);
    st = rc != MPI_SUCCESS ? mpi_fail(c, rc, "all-gather", err)
                           : wait_req(c, &req, "all-gather", total, c->timeout_s, err);
  }
  free(rc_);
  return st;
}

static af_status mpi_bcast(af_comm *c, void *buf, int64_t bytes, int root, af_error *err) {
  mpi_state *s = c->impl;
  AF_TRY(int_count(c, bytes, "broadcast", err));
  MPI_Request req;
  int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, s->world, &req);
  return rc != MPI_SUCCESS ? mpi_fail(c, rc, "broadcast", err)
                           : wait_req(c, &req, "broadcast", bytes, c->timeout_s, err);
}

static af_status mpi_barrier(af_comm *c, double timeout_s, af_error *err) {
  mpi_state *s = c->impl;
  MPI_Request req;
  int rc = MPI_Ibarrier(s->world, &req);
  return rc != MPI_SUCCESS ? mpi_fail(c, rc, "barrier", err)
                           : wait_req(c, &req, "barrier", 0, timeout_s, err);
}

static void mpi_abort(af_comm *c, int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static void mpi_destroy(af_comm *c) {
  mpi_state *s = c->impl;
  if (!s)
    return;
  free(s->scratch);
  MPI_Comm_free(&s->world);
  int fin = 0;
  if (s->own_init && MPI_Finalized(&fin) == MPI_SUCCESS && !fin)
    MPI_Finalize();
  free(s);
  c->impl = NULL;
}

static const af_comm_ops kMpiOps = {mpi_allreduce, mpi_allreduce_device, mpi_allgatherv,
                                    mpi_bcast,     mpi_barrier,          mpi_abort,
                                    mpi_destroy,   NULL, /* no queued device all-reduce */
                                    NULL};

af_status af_comm_init_mpi(af_comm *c, const af_comm_options *opt, af_error *err) {
  mpi_state *s = af_calloc(1, sizeof *s, err);
  if (!s)
    return AF_ERR_NOMEM;
  int inited = 0, provided = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      free(s);
      return af_error_set(err, AF_ERR_IO, "MPI_Init_thread failed");
    }
    s->own_init = 1;
  }
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &s->world);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(s->world, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_rank(s->world, &c->rank);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_size(s->world, &c->size);
  MPI_Comm node = MPI_COMM_NULL;
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_split_type(s->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_rank(node, &c->local_rank);
  if (node != MPI_COMM_NULL)
    MPI_Comm_free(&node);
  c->impl = s;
  c->ops = &kMpiOps;
  if (rc != MPI_SUCCESS) {
    af_status st = mpi_fail(c, rc, "set-up", err);
    mpi_destroy(c);
    return st;
  }
  return AF_OK;
}
#endif /* AF_HAVE_MPI */
