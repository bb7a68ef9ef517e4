/* Private to engine/comm: the backend table behind af_comm (the public API
 * and its contract are in include/affinity.h, layer comm). */
#ifndef AF_COMM_H
#define AF_COMM_H

#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- backend constructors (engine/comm/comm_*.c) -------------------------- */
/* Internal: each fills the vtable of a freshly allocated communicator. */
typedef struct af_comm_ops {
  af_status (*allreduce_f32)(af_comm *c, float *buf, int64_t n, af_error *err);
  af_status (*allreduce_f32_device)(af_comm *c, float *buf, int64_t n, af_error *err);
  af_status (*allgatherv)(af_comm *c, const void *send, void *recv, const int64_t *counts,
                          af_error *err);
  af_status (*bcast)(af_comm *c, void *buf, int64_t bytes, int root, af_error *err);
  af_status (*barrier)(af_comm *c, double timeout_s, af_error *err);
  void (*abort)(af_comm *c, int code);
  void (*destroy)(af_comm *c);
  /* NCCL only (NULL elsewhere): a device all-reduce queued after the work
   * queued so far on after_stream (a cudaStream_t), not waited for; wait
   * blocks until every queued collective is done. */
  af_status (*allreduce_f32_device_async)(af_comm *c, float *buf, int64_t n, void *after_stream,
                                          af_error *err);
  af_status (*wait)(af_comm *c, af_error *err);
} af_comm_ops;

struct af_comm {
  af_comm_backend backend;
  int rank, size, local_rank;
  double timeout_s;
  const af_comm_ops *ops;
  void *impl; /* the backend's state */
};

af_status af_comm_init_mpi(af_comm *c, const af_comm_options *opt, af_error *err);
af_status af_comm_init_nccl(af_comm *c, const af_comm_options *opt, af_error *err);

/* The chunk of rank j when n values are cut into R chunks: [j n / R, (j+1) n / R). */
void af_comm_chunk(int64_t n, int R, int j, int64_t *lo, int64_t *hi);

#ifdef __cplusplus
}
#endif
#endif /* AF_COMM_H */
