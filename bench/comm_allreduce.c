/* af_comm's rank-ordered all-reduce (engine/comm) against MPI_Allreduce, the
 * peer, on the same buffer in the same run: n floats (default 22.7M, the
 * gradient of all-MiniLM-L6-v2), median of --reps runs after a warm-up, the
 * ratio printed (ours faster when > 1). Also reports whether the two sums
 * are bitwise equal (they need not be: MPI chooses its own order).
 *   mpirun -np 2 build/bench_comm_allreduce [n] [reps] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"

#ifdef AF_HAVE_MPI
#include <mpi.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  const int64_t n = argc > 1 ? atoll(argv[1]) : 22713216;
  const int reps = argc > 2 ? atoi(argv[2]) : 5;
  af_comm *c = NULL;
  af_error err = {0};
  af_comm_options o = af_comm_default_options();
  o.backend = AF_COMM_MPI;
  if (af_comm_create(&o, &c, &err) != AF_OK) {
    fprintf(stderr, "bench_comm_allreduce: %s\n", err.msg);
    return 1;
  }
  const int me = af_comm_rank(c), R = af_comm_size(c);
  float *src = malloc(sizeof(float) * (size_t)n), *a = malloc(sizeof(float) * (size_t)n);
  float *b = malloc(sizeof(float) * (size_t)n);
  double *ta = malloc(sizeof(double) * (size_t)(reps + 1)), *tb = malloc(sizeof(double) * (size_t)(reps + 1));
  for (int64_t i = 0; i < n; i++)
    src[i] = (float)((i % 1000) - 500) * 1e-3f * (float)(me + 1);
  for (int r = 0; r <= reps; r++) { /* r = 0: warm-up */
    memcpy(a, src, sizeof(float) * (size_t)n);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    if (af_comm_allreduce_sum_f32(c, a, n, &err) != AF_OK) {
      fprintf(stderr, "rank %d: %s\n", me, err.msg);
      return 1;
    }
    ta[r] = now_s() - t0;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = now_s();
    MPI_Allreduce(src, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    tb[r] = now_s() - t0;
  }
  qsort(ta + 1, (size_t)reps, sizeof(double), cmp);
  qsort(tb + 1, (size_t)reps, sizeof(double), cmp);
  if (me == 0)
    printf("ranks %d, %lld floats (%.1f MB): af_comm rank-ordered %.4f s, MPI_Allreduce %.4f s, "
           "ratio %.2f (ours faster when > 1); sums bitwise equal: %s\n",
           R, (long long)n, 4e-6 * (double)n, ta[1 + reps / 2], tb[1 + reps / 2],
           tb[1 + reps / 2] / ta[1 + reps / 2], memcmp(a, b, sizeof(float) * (size_t)n) ? "no" : "yes");
  free(src);
  free(a);
  free(b);
  free(ta);
  free(tb);
  af_comm_free(c);
  return 0;
}
#else
int main(void) {
  printf("bench_comm_allreduce: this build has no MPI\n");
  return 0;
}
#endif
