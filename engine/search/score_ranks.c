/* Scoring over the ranks of an af_comm (engine/search/nbrfile.h,
 * af_score_file_ranks): each rank scores its shard into a sibling of the
 * output, rank 0 merges the shards (af_neighbors_merge: the unsharded file
 * exactly) once every rank has succeeded, and each rank removes its shard. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "affinity.h"

/* Rank 0: merges <out>.rank<j>-of-<R>.h5, j < R, into out. */
static af_status merge_shards(const char *out_path, int R, af_error *err) {
  const size_t len = 4200;
  char *names = af_malloc((size_t)R, len, err);  // (R, len) shard paths
  char **paths = names ? af_malloc((size_t)R, sizeof(char *), err) : NULL;
  af_status st = paths ? AF_OK : AF_ERR_NOMEM;
  for (int j = 0; j < R && st == AF_OK; j++) {
    paths[j] = names + (size_t)j * len;
    snprintf(paths[j], len, "%s.rank%d-of-%d.h5", out_path, j, R);
  }
  if (st == AF_OK)
    st = af_neighbors_merge((const char *const *)paths, R, out_path, err);
  free(paths);
  free(names);
  return st;
}

af_status af_score_file_ranks(af_comm *comm, const char *emb_path, const char *out_path,
                              const af_score_file_options *opt, af_error *err) {
  const int R = af_comm_size(comm), r = af_comm_rank(comm);
  if (R == 1)
    return af_score_file(emb_path, out_path, opt, err);
  if (opt->shard_n != 1)
    return af_error_set(err, AF_ERR_ARG, "--shard and several ranks: the ranks are the shards");
  char shard[4200];
  snprintf(shard, sizeof shard, "%s.rank%d-of-%d.h5", out_path, r, R);
  af_score_file_options o = *opt;
  o.shard_i = r;
  o.shard_n = R;
  if (r != 0)
    o.progress = NULL;
  af_status st = af_score_file(emb_path, shard, &o, err);
  /* the slowest shard decides: wait without a deadline (mpirun/srun end the
   * job if a rank dies), then agree */
  af_status bs = af_comm_barrier(comm, 1e9, st == AF_OK ? err : NULL);
  if (st == AF_OK)
    st = bs;
  st = af_comm_agree(comm, st, err);
  af_status ms = AF_OK;
  if (st == AF_OK && r == 0)
    ms = merge_shards(out_path, R, err);
  if (st == AF_OK)
    st = af_comm_agree(comm, ms, err);
  unlink(shard); /* success or not: no shard is left behind */
  return st;
}
