/* Data-parallel training over af_comm ranks (engine/train/train.h, "data
 * parallel"; docs/distributed.md): the rank's share of a global micro-batch,
 * embeddings all-gathered for the global MNR loss, dropout at global
 * positions, gradients summed over ranks. */
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "base/philox.h"
#include "comm/comm.h"
#include "nn/model.h"
#include "train/loss.h"
#include "ops.h"
#include "ops_backward.h"

void af_train_dropout_at(float *x, const float *dout, const int32_t *cu, int B, int C,
                         const int32_t *gtok, float p, uint64_t seed, uint64_t stream) {
  const float keep = 1.0f - p, scale = 1.0f / keep;
  if (p <= 0.0f) {
    if (dout)
      for (int64_t i = 0; i < (int64_t)cu[B] * C; i++)
        x[i] += dout[i];
    return;
  }
#pragma omp parallel for schedule(static)
  for (int i = 0; i < B; i++) {
    const int64_t n = (int64_t)(cu[i + 1] - cu[i]) * C; // elements of sequence i
    float *xi = x + (int64_t)cu[i] * C;
    const float *di = dout ? dout + (int64_t)cu[i] * C : NULL;
    const int64_t g0 = (int64_t)gtok[i] * C; // its first element in the global batch
    for (int64_t e = 0; e < n; e++) {
      uint32_t w[4];
      const uint64_t g = (uint64_t)(g0 + e);
      af_philox_block(seed, stream, g / 4, w); // the word of af_cpu_dropout_forward
      const int kept = af_philox_uniform(w[g % 4]) < keep;
      if (!di)
        xi[e] = kept ? xi[e] * scale : 0.0f;
      else if (kept)
        xi[e] += di[e] * scale;
    }
  }
}

/* The rank's local batch: anchors p0..p1-1 then positives p0..p1-1 of the
 * global batch g (2B sequences), with their global positions. ids (T_local),
 * cu (2b + 1), gtok (2b), gprob (2b). */
static void share_of(const af_batch *g, int p0, int p1, int NH, int32_t *ids, int32_t *cu,
                     int32_t *gtok, int64_t *gprob, const int64_t *gp_all) {
  const int B = g->B / 2, b = p1 - p0;
  int T = 0;
  cu[0] = 0;
  for (int k = 0; k < 2 * b; k++) {
    const int gi = k < b ? p0 + k : B + p0 + (k - b); // global sequence index
    const int t0 = g->cu_seqlens[gi], L = g->cu_seqlens[gi + 1] - t0;
    memcpy(ids + T, g->ids + t0, sizeof(int32_t) * (size_t)L);
    gtok[k] = t0;
    gprob[k] = gp_all[gi];
    T += L;
    cu[k + 1] = T;
  }
  (void)NH;
}

/* The MNR loss of the global batch: GA, GP (B, C) host -> *loss, dGA, dGP
 * (B, C) host. On a GPU it runs there (af_op_mnr_loss: O(B^2 C), seconds on a
 * host core for thousands of pairs); on the CPU it is af_mnr_loss. */
static af_status global_loss(af_trainer *t, const float *GA, const float *GP, int B, int C,
                             float *loss, float *dGA, float *dGP, af_error *err) {
  const af_device *d = af_trainer_device(t);
  const af_train_config *cfg = af_trainer_config(t);
  if (d->backend == AF_BACKEND_CPU)
    return af_mnr_loss(GA, GP, NULL, B, 0, C, cfg->scale, cfg->symmetric, loss, dGA, dGP, NULL,
                       err);
  const size_t BC = (size_t)B * C, bytes = sizeof(float) * BC;
  float *buf = NULL; // a, p, da, dp: (B, C) each
  AF_TRY(af_dev_alloc(d, 4 * bytes, (void **)&buf, err));
  af_status st = af_dev_upload(d, buf, GA, bytes, err);
  if (st == AF_OK)
    st = af_dev_upload(d, buf + BC, GP, bytes, err);
  if (st == AF_OK)
    st = af_op_mnr_loss(d, buf, buf + BC, B, C, cfg->scale, cfg->symmetric, loss, buf + 2 * BC,
                        buf + 3 * BC, err);
  if (st == AF_OK)
    st = af_dev_download(d, dGA, buf + 2 * BC, bytes, err);
  if (st == AF_OK)
    st = af_dev_download(d, dGP, buf + 3 * BC, bytes, err);
  af_dev_free(d, buf);
  return st;
}

af_status af_trainer_accumulate_shared(af_trainer *t, af_comm *comm, const af_batch *pairs,
                                       uint64_t micro, float *loss, af_error *err) {
  const int R = af_comm_size(comm), r = af_comm_rank(comm);
  if (R == 1)
    return af_trainer_accumulate(t, pairs, micro, loss, err);
  if (pairs->B < 2 || pairs->B % 2 != 0)
    return af_error_set(err, AF_ERR_ARG, "a pair batch needs an even number of sequences (got %d)",
                        pairs->B);
  const int B = pairs->B / 2;
  const af_model_config *mc = &af_trainer_model(t)->cfg;
  const int C = mc->hidden_size, NH = mc->num_heads;
  if (B < R)
    return af_error_set(err, AF_ERR_ARG, "global batch of %d pairs over %d ranks: give every rank "
                        "at least one pair (--batch >= ranks)", B, R);
  int64_t lo, hi;
  af_comm_chunk(B, R, r, &lo, &hi);
  const int p0 = (int)lo, p1 = (int)hi, b = p1 - p0;
  const size_t BC = (size_t)B * C;
  int32_t *ids = af_malloc((size_t)pairs->T, sizeof(int32_t), err);
  int32_t *cu = af_malloc((size_t)2 * b + 1, sizeof(int32_t), err);
  int32_t *gtok = af_malloc((size_t)2 * b, sizeof(int32_t), err);
  int64_t *gprob = af_malloc((size_t)2 * b, sizeof(int64_t), err);
  int64_t *gp_all = af_malloc((size_t)2 * B, sizeof(int64_t), err); // (2B) global probs offsets
  int64_t *counts = af_malloc((size_t)R, sizeof(int64_t), err);     // (R) bytes per rank
  float *local = af_malloc((size_t)2 * b * C, sizeof(float), err);   // (2b, C) this rank's rows
  float *all = af_malloc(4 * BC, sizeof(float), err); // GA, GP, dGA, dGP: (B, C) each
  af_status st = AF_OK;
  if (!ids || !cu || !gtok || !gprob || !gp_all || !counts || !local || !all) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  int64_t off = 0;
  for (int i = 0; i < 2 * B; i++) {
    const int64_t L = pairs->cu_seqlens[i + 1] - pairs->cu_seqlens[i];
    gp_all[i] = off;
    off += (int64_t)NH * L * L;
  }
  share_of(pairs, p0, p1, NH, ids, cu, gtok, gprob, gp_all);
  for (int j = 0; j < R; j++) {
    int64_t jl, jh;
    af_comm_chunk(B, R, j, &jl, &jh);
    counts[j] = (jh - jl) * C * (int64_t)sizeof(float);
  }
  af_batch mine = {2 * b, cu[2 * b], ids, cu};
  float *GA = all, *GP = all + BC, *dGA = all + 2 * BC, *dGP = all + 3 * BC;
  st = af_trainer_set_layout(t, gtok, gprob, 2 * b, err);
  if (st == AF_OK)
    st = af_trainer_forward(t, &mine, micro, local, err); // (2b, C)
  if (st == AF_OK) // the global anchors (B, C) and positives (B, C), rank order = batch order
    st = af_comm_allgatherv(comm, local, GA, counts, err);
  if (st == AF_OK)
    st = af_comm_allgatherv(comm, local + (size_t)b * C, GP, counts, err);
  if (st == AF_OK)
    st = global_loss(t, GA, GP, B, C, loss, dGA, dGP, err);
  if (st == AF_OK) { // this rank's rows of d loss / d embeddings: (2b, C)
    memcpy(local, dGA + (size_t)p0 * C, sizeof(float) * (size_t)b * C);
    memcpy(local + (size_t)b * C, dGP + (size_t)p0 * C, sizeof(float) * (size_t)b * C);
    st = af_trainer_backward(t, local, err);
  }
  af_trainer_set_layout(t, NULL, NULL, 0, NULL);
done:
  free(ids);
  free(cu);
  free(gtok);
  free(gprob);
  free(gp_all);
  free(counts);
  free(local);
  free(all);
  return st;
}

/* The gradient summed over the ranks: in place on the CPU; on a GPU with the
 * NCCL backend in device memory (after the device's queued backward is done);
 * on a GPU under the MPI backend through a host copy. */
af_status af_trainer_allreduce_grad(af_trainer *t, af_comm *comm, af_error *err) {
  const af_device *d = af_trainer_device(t);
  const int64_t n = af_trainer_model(t)->n_floats;
  float *g = af_trainer_grad(t);
  if (d->backend == AF_BACKEND_CPU)
    return af_comm_allreduce_sum_f32(comm, g, n, err);
  AF_TRY(af_dev_sync(d, err));
  if (af_comm_backend_of(comm) == AF_COMM_NCCL)
    return af_comm_allreduce_sum_f32_device(comm, g, n, err);
  float *h = af_malloc((size_t)n, sizeof(float), err);
  if (!h)
    return AF_ERR_NOMEM;
  af_status st = af_dev_download(d, h, g, sizeof(float) * (size_t)n, err);
  if (st == AF_OK)
    st = af_comm_allreduce_sum_f32(comm, h, n, err);
  if (st == AF_OK)
    st = af_dev_upload(d, g, h, sizeof(float) * (size_t)n, err);
  free(h);
  return st;
}
