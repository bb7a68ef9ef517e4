/* af_comm: the collective operations data-parallel training and sharded
 * scoring need, over one of three backends:
 *   single  one process (rank 0 of 1); every collective is a copy or nothing;
 *   mpi     MPI_COMM_WORLD (built when CMake finds MPI: AF_HAVE_MPI);
 *   nccl    NCCL across GPUs (built when CUDA and NCCL are found: AF_HAVE_NCCL),
 *           bootstrapped through MPI (rank 0's ncclUniqueId broadcast) or, under
 *           Slurm without MPI, through a file on a shared folder.
 * Buffers are host memory for every backend (NCCL stages them through the
 * device); af_comm_allreduce_sum_f32_device takes device memory (NCCL only).
 *
 * Determinism: af_comm_allreduce_sum_f32 adds the ranks' buffers in rank order
 * 0, 1, ..., R-1 (((x0 + x1) + x2) + ...), element by element, in float, and
 * every rank receives the same bits: the result depends on R and the inputs
 * only, never on MPI's or NCCL's choice of algorithm. (Implementation: the
 * buffer is cut into R chunks; rank j receives chunk j of every rank
 * (all-to-all), sums it in rank order, and the sums are all-gathered.)
 *
 * Failure: every collective waits at most the communicator's timeout (polling
 * non-blocking MPI calls); past it, it returns AF_ERR_IO naming the
 * operation, the rank and the wait, so that a dead or stuck peer ends the job
 * with an error instead of a hang. The caller then calls af_comm_abort, which
 * ends every rank (MPI_Abort). A rank that dies is also seen by mpirun/srun,
 * which end the others. */
#ifndef AF_COMM_H
#define AF_COMM_H

#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { AF_COMM_SINGLE = 0, AF_COMM_MPI = 1, AF_COMM_NCCL = 2 } af_comm_backend;

typedef struct af_comm af_comm;

typedef struct {
  af_comm_backend backend;
  double timeout_s;        /* collective wait limit; <= 0: 600 s */
  const char *nccl_id_dir; /* nccl without MPI: shared folder for the unique-id file */
} af_comm_options;

/* backend single, timeout 600 s, no id folder. */
af_comm_options af_comm_default_options(void);

/* 1 when this process was started by mpirun/mpiexec or srun with more than one
 * task (OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_STEP_NUM_TASKS > 1 in the
 * environment; not SLURM_NTASKS, which a batch script's own commands see
 * too), else 0. */
int af_comm_launched_parallel(void);

/* Creates the communicator. Backends not compiled in: AF_ERR_UNSUPPORTED. MPI
 * is initialised here (MPI_THREAD_FUNNELED) and finalised by af_comm_free. */
af_status af_comm_create(const af_comm_options *opt, af_comm **out, af_error *err);
/* Frees it; for MPI also MPI_Finalize (only when this communicator initialised MPI). */
void af_comm_free(af_comm *c);

int af_comm_rank(const af_comm *c);
int af_comm_size(const af_comm *c);
/* The rank on this node (GPU choice); 0 for single. */
int af_comm_local_rank(const af_comm *c);
af_comm_backend af_comm_backend_of(const af_comm *c);
const char *af_comm_backend_name(af_comm_backend b);

/* buf (n), host memory: buf = sum over ranks of buf, in rank order (above). */
af_status af_comm_allreduce_sum_f32(af_comm *c, float *buf, int64_t n, af_error *err);
/* The same on device memory (NCCL backend only; AF_ERR_UNSUPPORTED otherwise). */
af_status af_comm_allreduce_sum_f32_device(af_comm *c, float *dev_buf, int64_t n, af_error *err);
/* recv (sum of counts bytes) = the ranks' send buffers concatenated in rank
 * order; rank r sends counts[r] bytes. counts (R) must agree on all ranks. */
af_status af_comm_allgatherv(af_comm *c, const void *send, void *recv, const int64_t *counts,
                             af_error *err);
/* buf (bytes) = root's buf on every rank. */
af_status af_comm_bcast(af_comm *c, void *buf, int64_t bytes, int root, af_error *err);
/* Waits for every rank; timeout_s <= 0: the communicator's timeout. */
af_status af_comm_barrier(af_comm *c, double timeout_s, af_error *err);
/* *all = 1 on every rank when ok is 1 on every rank, else 0: how ranks agree
 * that a step (a file write, a shard) succeeded everywhere. */
af_status af_comm_all_ok(af_comm *c, int ok, int *all, af_error *err);
/* Ends every rank of the job with exit status code (MPI_Abort); for single, exit(code). */
void af_comm_abort(af_comm *c, int code);

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
