/* bf16 candidates + fp32 rescore on the CPU, and the GPU scorer's memory plan
 * (score_bf16.h). */
#include "search/score_bf16.h"

#include <math.h>
#include <stdlib.h>

#include "base/bf16.h"
#include "base/topk.h"
#include "ops.h"
#include "topk_fused.h"
#include "affinity.h"

size_t af_bf16_topk_plan_bytes(int64_t R, int64_t col_chunk, int64_t q_tile, int d, int kp) {
  const size_t per_vec = (size_t)(d + 15) / 16 * 16 * 2 + (size_t)d * 4; // padded bf16 + fp32
  // a launch's work space: the fused path's partial lists (at most
  // AF_FUSED_PARTIALS entries of 12 bytes per row) or the tiled path's tile
  const size_t work = AF_FUSED_PARTIALS * 12 > 8192 * 4 ? AF_FUSED_PARTIALS * 12 : 8192 * 4;
  return (size_t)col_chunk * per_vec + (size_t)R * per_vec + (size_t)R * kp * 16 +
         (size_t)q_tile * work;
}

af_status af_bf16_topk_plan_make(int64_t N, int d, int k, int margin, int shard_i, int shard_n,
                                 size_t budget, af_bf16_topk_plan *p, af_error *err) {
  if (N < 1 || d < 1 || k < 0 || margin < 0 || shard_n < 1 || shard_i < 0 || shard_i >= shard_n)
    return af_error_set(err, AF_ERR_ARG, "bf16 top-k plan: N=%lld d=%d k=%d margin=%d shard %d/%d",
                        (long long)N, d, k, margin, shard_i, shard_n);
  af_shard_rows(N, shard_i, shard_n, &p->row0, &p->row1);
  const int64_t R = p->row1 - p->row0;
  p->kp = (int)((int64_t)k + margin < N ? k + margin : N);
  p->q_tile = R < 16384 ? (R > 0 ? R : 1) : 16384;
  p->col_chunk = N;
  // Halve the resident base chunk (a multiple of 1024 columns) until it fits.
  while (af_bf16_topk_plan_bytes(R, p->col_chunk, p->q_tile, d, p->kp) > budget &&
         p->col_chunk > 1024)
    p->col_chunk = ((p->col_chunk / 2 + 1023) / 1024) * 1024;
  p->bytes = af_bf16_topk_plan_bytes(R, p->col_chunk, p->q_tile, d, p->kp);
  if (p->bytes > budget)
    return af_error_set(err, AF_ERR_UNSUPPORTED,
                        "all-pairs top-k of %lld rows x %d dims, k'=%d: %zu bytes even with %lld "
                        "resident columns, above the device's %zu; use --shard",
                        (long long)N, d, p->kp, p->bytes, (long long)p->col_chunk, budget);
  p->n_chunks = (N + p->col_chunk - 1) / p->col_chunk;
  return AF_OK;
}

double af_bf16_dot_error_bound(int d, double qnorm, double xnorm) {
  // Each bf16 rounding moves a value by <= 2^-8 relative (8 significant bits),
  // so |bq bx - q x| <= (2^-7 + 2^-16) |q x| per term. The fp32 reference sum
  // of d terms adds <= 1.01 d 2^-24 sum|q x| (gamma_d, round to nearest). The
  // candidate sum is a tensor core's: exact products, but additions that may
  // truncate and align within a k16 block (Fasi, Higham, Mikaitis, Pranesh,
  // "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021); we allow 4 ulp
  // (2^-22) per term there: 4.04 d 2^-24. sum|q_i x_i| <= ||q|| ||x||.
  // Subnormal inputs lose relative accuracy: d 2^-126 absolute covers them.
  const double rel = ldexp(1.0, -7) + ldexp(1.0, -16) + 5.05 * d * ldexp(1.0, -24);
  return rel * qnorm * xnorm + d * ldexp(1.0, -126);
}

/* bf16 score of q against column j (fp32 sum of exact bf16 products). */
static float bf16_dot(const float *bq, const float *bx, int d) {
  float acc = 0.f;
  for (int i = 0; i < d; i++)
    acc = fmaf(bq[i], bx[i], acc);
  return acc;
}

/* The CPU scorer's bits: acc = fmaf(q[i], x[i], acc) in order from 0. */
static float fp32_dot(const float *q, const float *x, int d) {
  float acc = 0.f;
  for (int i = 0; i < d; i++)
    acc = fmaf(q[i], x[i], acc);
  return acc;
}

typedef struct {
  const float *emb, *bemb; /* (N, d) fp32 and bf16-rounded (widened) */
  int64_t N;
  int d, k, kp;
  float min_score;
  double eps;
  int64_t col_chunk;
} emu_job;

/* One query row q: the final top k into nbr, scr (k); returns 1 when certified. */
static int emulate_row(const emu_job *j, int64_t q, float *cs, int64_t *ci, float *fs, int64_t *fi,
                       int64_t *nbr, float *scr) {
  const float *bq = j->bemb + (size_t)q * j->d, *fq = j->emb + (size_t)q * j->d;
  af_topk fin;
  af_topk_init(&fin, fs, fi, j->k, j->min_score);
  double worst_cut = -INFINITY; // max over chunks of (cut + eps) for a full candidate list
  for (int64_t c0 = 0; c0 < j->N; c0 += j->col_chunk) {
    const int64_t c1 = c0 + j->col_chunk < j->N ? c0 + j->col_chunk : j->N;
    af_topk cand;
    af_topk_init(&cand, cs, ci, j->kp, -INFINITY);
    for (int64_t x = c0; x < c1; x++)
      if (x != q)
        af_topk_push(&cand, bf16_dot(bq, j->bemb + (size_t)x * j->d, j->d), x);
    if (cand.size == j->kp) { // a non-candidate may exist in this chunk
      double cut = cand.score[0] + j->eps;
      worst_cut = cut > worst_cut ? cut : worst_cut;
    }
    for (int e = 0; e < cand.size; e++)
      af_topk_push(&fin, fp32_dot(fq, j->emb + (size_t)ci[e] * j->d, j->d), ci[e]);
  }
  // Certified: the k-th result (or min_score when fewer) beats every cut + eps.
  const double bar = fin.size == j->k ? (double)fin.score[0] : (double)j->min_score;
  const int ok = worst_cut == -INFINITY || bar > worst_cut;
  af_topk_extract(&fin, nbr, scr, j->k);
  return ok;
}

af_status af_bf16_topk_emulate(const float *emb, int64_t N, int d, int k, int margin,
                               float min_score, int64_t row0, int64_t row1, int64_t col_chunk,
                               int64_t *nbr, float *scr, int64_t *uncertified, af_error *err) {
  if (k < 0 || margin < 0 || col_chunk < 1 || row0 < 0 || row1 > N || row0 > row1)
    return af_error_set(err, AF_ERR_ARG, "bf16 top-k emulation: k=%d margin=%d chunk=%lld rows "
                        "[%lld, %lld) of %lld", k, margin, (long long)col_chunk, (long long)row0,
                        (long long)row1, (long long)N);
  if (uncertified)
    *uncertified = 0;
  if (k == 0 || row0 == row1)
    return AF_OK;
  float *bemb = af_malloc((size_t)N * d, sizeof(float), err); // (N, d)
  if (!bemb)
    return AF_ERR_NOMEM;
  double maxn = 0;
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int c = 0; c < d; c++) {
      const float v = emb[(size_t)i * d + c];
      bemb[(size_t)i * d + c] = af_f32_from_bf16(af_bf16_from_f32(v));
      s += (double)v * v;
    }
    maxn = s > maxn ? s : maxn;
  }
  maxn = sqrt(maxn);
  const int kp = (int)((int64_t)k + margin < N ? k + margin : N);
  emu_job j = {emb, bemb, N, d, k, kp, min_score, af_bf16_dot_error_bound(d, maxn, maxn),
               col_chunk};
  int64_t bad = 0;
  af_status st = AF_OK;
#pragma omp parallel reduction(+ : bad)
  {
    float *cs = malloc(sizeof(float) * (size_t)(kp + k + 1));
    int64_t *ci = malloc(sizeof(int64_t) * (size_t)(kp + k + 1));
    if (!cs || !ci) {
#pragma omp atomic write
      st = AF_ERR_NOMEM;
    }
    // Every thread reaches the loop (a worksharing construct); one without
    // buffers skips its rows and the call fails.
#pragma omp for schedule(dynamic, 16)
    for (int64_t q = row0; q < row1; q++) {
      const size_t o = (size_t)(q - row0) * k;
      if (cs && ci)
        bad += !emulate_row(&j, q, cs, ci, cs + kp, ci + kp, nbr + o, scr + o);
    }
    free(cs);
    free(ci);
  }
  free(bemb);
  if (st != AF_OK)
    return af_error_set(err, st, "bf16 top-k emulation: out of memory for the candidate lists");
  if (uncertified)
    *uncertified = bad;
  return AF_OK;
}

/* ---- on a device ------------------------------------------------------------ */

#define DEV_TC 8192 /* the tiled path's GEMM tile width */

typedef struct {
  const af_device *dev;
  int64_t N, R, row0, CC, QT;
  int d, dp, k, kp, S_max, fused;
  float min_score;
  double eps;
  uint16_t *qb;        /* (R, dp) bf16 query rows of the shard, zero-padded */
  float *qf;           /* (R, d) fp32 query rows */
  float *ls, *rs;      /* (R, kp) candidate bf16 scores, fp32 rescores */
  int64_t *li;         /* (R, kp) candidate indices */
  uint16_t *xb;        /* (CC, dp) bf16 base chunk */
  float *xf;           /* (CC, d) fp32 base chunk (the rescore pass) */
  float *ps;           /* fused: (QT, S_max, kp) partial lists; tiled: (QT, DEV_TC) tile */
  int64_t *pi;         /* fused: (QT, S_max, kp) */
  uint16_t *hb;        /* host (N, dp) bf16 copy of the base */
  float *h_ls, *h_rs;  /* host (QT, kp) */
  int64_t *h_li;
} dev_job;

static void dev_job_free(dev_job *j) {
  void *dv[] = {j->qb, j->qf, j->ls, j->rs, j->li, j->xb, j->xf, j->ps, j->pi};
  for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++)
    af_dev_free(j->dev, dv[i]);
  af_host_free(j->dev, j->hb);
  free(j->h_ls);
  free(j->h_rs);
  free(j->h_li);
}

static af_status dev_alloc_all(dev_job *j, af_error *err) {
  const size_t Rk = (size_t)j->R * j->kp, Q = (size_t)j->QT;
  AF_TRY(af_dev_alloc(j->dev, (size_t)j->R * j->dp * 2, (void **)&j->qb, err));
  AF_TRY(af_dev_alloc(j->dev, (size_t)j->R * j->d * 4, (void **)&j->qf, err));
  AF_TRY(af_dev_alloc(j->dev, Rk * 4, (void **)&j->ls, err));
  AF_TRY(af_dev_alloc(j->dev, Rk * 4, (void **)&j->rs, err));
  AF_TRY(af_dev_alloc(j->dev, Rk * 8, (void **)&j->li, err));
  AF_TRY(af_dev_alloc(j->dev, (size_t)j->CC * j->dp * 2, (void **)&j->xb, err));
  AF_TRY(af_dev_alloc(j->dev, (size_t)j->CC * j->d * 4, (void **)&j->xf, err));
  if (j->fused) {
    AF_TRY(af_dev_alloc(j->dev, Q * j->S_max * j->kp * 4, (void **)&j->ps, err));
    AF_TRY(af_dev_alloc(j->dev, Q * j->S_max * j->kp * 8, (void **)&j->pi, err));
  } else {
    const int64_t tc = j->CC < DEV_TC ? j->CC : DEV_TC;
    AF_TRY(af_dev_alloc(j->dev, Q * (size_t)tc * 4, (void **)&j->ps, err));
  }
  j->h_ls = af_malloc(Q * j->kp, sizeof(float), err);
  j->h_rs = j->h_ls ? af_malloc(Q * j->kp, sizeof(float), err) : NULL;
  j->h_li = j->h_rs ? af_malloc(Q * j->kp, sizeof(int64_t), err) : NULL;
  if (!j->h_li)
    return AF_ERR_NOMEM;
  // the bf16 base the chunks stream from: pinned on CUDA (full-rate uploads), zero-padded
  return af_host_alloc(j->dev, (size_t)j->N * j->dp * sizeof(uint16_t), (void **)&j->hb, err);
}

/* Device buffers, the bf16 copy, the shard's query rows, empty lists. */
static af_status dev_job_init(dev_job *j, const float *emb, af_error *err) {
  AF_TRY(dev_alloc_all(j, err));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < j->N; i++)
    for (int c = 0; c < j->d; c++)
      j->hb[(size_t)i * j->dp + c] = af_bf16_from_f32(emb[(size_t)i * j->d + c]);
  AF_TRY(af_dev_upload(j->dev, j->qb, j->hb + (size_t)j->row0 * j->dp,
                       (size_t)j->R * j->dp * 2, err));
  AF_TRY(af_dev_upload(j->dev, j->qf, emb + (size_t)j->row0 * j->d, (size_t)j->R * j->d * 4,
                       err));
  for (size_t i = 0; i < (size_t)j->QT * j->kp; i++) {
    j->h_ls[i] = -INFINITY;
    j->h_li[i] = -1;
  }
  for (int64_t q0 = 0; q0 < j->R; q0 += j->QT) {
    const size_t n = (size_t)(j->R - q0 < j->QT ? j->R - q0 : j->QT) * j->kp;
    AF_TRY(af_dev_upload(j->dev, j->ls + (size_t)q0 * j->kp, j->h_ls, n * 4, err));
    AF_TRY(af_dev_upload(j->dev, j->li + (size_t)q0 * j->kp, j->h_li, n * 8, err));
  }
  return AF_OK;
}

/* Splits of a fused launch: about 1,056 blocks (8 per SM of a 132-SM card) of
 * at least 1,024 columns each, within the partial merge's limit. A function of
 * the shapes only, so a CPU run takes the same splits. */
static int fused_splits(int nq, int64_t cc, int S_max) {
  const int64_t qb = (nq + AF_FUSED_QR - 1) / AF_FUSED_QR;
  int64_t S = (1056 + qb - 1) / qb;
  const int64_t by_width = (cc + 1023) / 1024;
  S = S < by_width ? S : by_width;
  S = S < S_max ? S : S_max;
  return S < 1 ? 1 : (int)S;
}

/* Candidates of query rows [q0, q0 + nq) of the shard against chunk [c0, c0 + cc). */
static af_status dev_chunk_rows(dev_job *j, int64_t c0, int cc, int64_t q0, int nq,
                                af_error *err) {
  const uint16_t *q = j->qb + (size_t)q0 * j->dp;
  float *ls = j->ls + (size_t)q0 * j->kp;
  int64_t *li = j->li + (size_t)q0 * j->kp;
  if (j->fused) {
    const int S = fused_splits(nq, cc, j->S_max);
    AF_TRY(af_op_topk_fused(j->dev, j->ps, j->pi, j->kp, q, j->xb, nq, cc, j->dp, c0,
                            j->row0 + q0, S, err));
    return af_op_topk_merge_partials(j->dev, ls, li, j->kp, j->ps, j->pi, nq, S, err);
  }
  for (int t0 = 0; t0 < cc; t0 += DEV_TC) {
    const int tc = cc - t0 < DEV_TC ? cc - t0 : DEV_TC;
    // tile (nq, tc) = bf16 queries . bf16 columns^T, fp32 accumulation
    AF_TRY(af_op_linear_bf16_forward(j->dev, j->ps, q, j->xb + (size_t)t0 * j->dp, NULL, nq,
                                     j->dp, tc, err));
    AF_TRY(af_op_topk_merge_rows(j->dev, ls, li, j->kp, j->ps, nq, tc, c0 + t0, j->row0 + q0,
                                 err));
  }
  return AF_OK;
}

/* Pass 1 (bf16 chunks: candidates), pass 2 (fp32 chunks: the rescore of the
 * candidates each chunk holds). One chunk: each upload happens once. */
static af_status dev_passes(dev_job *j, const float *emb, af_error *err) {
  for (int64_t c0 = 0; c0 < j->N; c0 += j->CC) {
    const int cc = (int)(j->N - c0 < j->CC ? j->N - c0 : j->CC);
    AF_TRY(af_dev_upload(j->dev, j->xb, j->hb + (size_t)c0 * j->dp, (size_t)cc * j->dp * 2, err));
    for (int64_t q0 = 0; q0 < j->R; q0 += j->QT)
      AF_TRY(dev_chunk_rows(j, c0, cc, q0, (int)(j->R - q0 < j->QT ? j->R - q0 : j->QT), err));
  }
  for (int64_t c0 = 0; c0 < j->N; c0 += j->CC) {
    const int cc = (int)(j->N - c0 < j->CC ? j->N - c0 : j->CC);
    AF_TRY(af_dev_upload(j->dev, j->xf, emb + (size_t)c0 * j->d, (size_t)cc * j->d * 4, err));
    for (int64_t q0 = 0; q0 < j->R; q0 += j->QT) {
      const int nq = (int)(j->R - q0 < j->QT ? j->R - q0 : j->QT);
      AF_TRY(af_op_rescore_fp32_range(j->dev, j->rs + (size_t)q0 * j->kp, j->qf + (size_t)q0 * j->d,
                                      j->xf, j->li + (size_t)q0 * j->kp, nq, j->kp, j->d, c0,
                                      c0 + cc, err));
    }
  }
  return AF_OK;
}

/* Final top k of one row from its rescored candidates; 1 when certified. */
static int dev_finish_row(const dev_job *j, int r, float *fs, int64_t *fi, int64_t *nbr,
                          float *scr) {
  const float *bs = j->h_ls + (size_t)r * j->kp, *rs = j->h_rs + (size_t)r * j->kp;
  const int64_t *ix = j->h_li + (size_t)r * j->kp;
  af_topk fin;
  af_topk_init(&fin, fs, fi, j->k, j->min_score);
  for (int e = 0; e < j->kp && ix[e] >= 0; e++)
    af_topk_push(&fin, rs[e], ix[e]);
  // The global list is full only when a non-candidate may exist.
  const int full = ix[j->kp - 1] >= 0 && j->kp < j->N - 1;
  const double bar = fin.size == j->k ? (double)fin.score[0] : (double)j->min_score;
  const int ok = !full || bar > (double)bs[j->kp - 1] + j->eps;
  af_topk_extract(&fin, nbr, scr, j->k);
  return ok;
}

static af_status dev_finish(dev_job *j, int64_t *nbr, float *scr, int64_t *bad, af_error *err) {
  float *fs = af_malloc((size_t)j->k, sizeof(float), err);
  int64_t *fi = fs ? af_malloc((size_t)j->k, sizeof(int64_t), err) : NULL;
  af_status st = fi ? AF_OK : AF_ERR_NOMEM;
  for (int64_t q0 = 0; st == AF_OK && q0 < j->R; q0 += j->QT) {
    const int nq = (int)(j->R - q0 < j->QT ? j->R - q0 : j->QT);
    const size_t o = (size_t)q0 * j->kp, n = (size_t)nq * j->kp;
    st = af_dev_download(j->dev, j->h_ls, j->ls + o, n * 4, err);
    st = st ? st : af_dev_download(j->dev, j->h_li, j->li + o, n * 8, err);
    st = st ? st : af_dev_download(j->dev, j->h_rs, j->rs + o, n * 4, err);
    for (int r = 0; st == AF_OK && r < nq; r++)
      *bad += !dev_finish_row(j, r, fs, fi, nbr + (size_t)(q0 + r) * j->k,
                              scr + (size_t)(q0 + r) * j->k);
  }
  free(fs);
  free(fi);
  return st;
}

/* Path and chunking of a job; the budget is 90% of the device's free memory. */
static af_status dev_job_plan(dev_job *j, const af_bf16_topk_device_options *o, int margin,
                              af_error *err) {
  const int can_fuse = j->kp <= AF_FUSED_MAX_KP && j->dp <= AF_FUSED_MAX_D;
  if (o->path == AF_TOPK_PATH_FUSED && !can_fuse)
    return af_error_set(err, AF_ERR_ARG, "bf16 top-k: the fused kernel takes k' <= %d and d <= %d "
                        "(k'=%d, d=%d)", AF_FUSED_MAX_KP, AF_FUSED_MAX_D, j->kp, j->d);
  j->fused = can_fuse && o->path != AF_TOPK_PATH_TILED;
  j->S_max = af_fused_max_splits(j->kp);
  size_t budget;
  AF_TRY(af_op_mem_free(j->dev, &budget, err));
  budget = budget == SIZE_MAX ? budget : budget / 10 * 9;
  af_bf16_topk_plan p;
  AF_TRY(af_bf16_topk_plan_make(j->N, j->d, j->k, margin, 0, 1, SIZE_MAX, &p, err));
  p.row0 = j->row0;
  p.row1 = j->row0 + j->R;
  // the shard's rows, not plan_make's split: re-plan in the budget for these rows
  int64_t cc = j->N;
  while (af_bf16_topk_plan_bytes(j->R, cc, p.q_tile, j->d, j->kp) > budget && cc > 1024)
    cc = ((cc / 2 + 1023) / 1024) * 1024;
  if (af_bf16_topk_plan_bytes(j->R, cc, p.q_tile, j->d, j->kp) > budget)
    return af_error_set(err, AF_ERR_NOMEM, "all-pairs top-k of %lld query rows x %d dims, k'=%d: "
                        "%zu bytes even with %lld resident columns, above the device's free "
                        "%zu; use --shard", (long long)j->R, j->d, j->kp,
                        af_bf16_topk_plan_bytes(j->R, cc, p.q_tile, j->d, j->kp),
                        (long long)cc, budget);
  j->CC = o->col_chunk > 0 && o->col_chunk < cc ? o->col_chunk : cc;
  j->QT = o->q_tile > 0 ? o->q_tile : (p.q_tile < j->R ? p.q_tile : j->R);
  return AF_OK;
}

static double max_norm(const float *emb, int64_t N, int d) {
  double maxn = 0;
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int c = 0; c < d; c++)
      s += (double)emb[(size_t)i * d + c] * emb[(size_t)i * d + c];
    maxn = s > maxn ? s : maxn;
  }
  return sqrt(maxn);
}

af_status af_bf16_topk_device_ex(const af_device *dev, const float *emb, int64_t N, int d, int k,
                                 int margin, float min_score, int64_t row0, int64_t row1,
                                 const af_bf16_topk_device_options *opt, int64_t *nbr,
                                 float *scr, af_bf16_topk_device_report *rep, af_error *err) {
  static const af_bf16_topk_device_options defaults = {.path = AF_TOPK_PATH_AUTO};
  const af_bf16_topk_device_options *o = opt ? opt : &defaults;
  if (rep)
    *rep = (af_bf16_topk_device_report){0};
  if (k < 0 || margin < 0 || d < 1 || row0 < 0 || row1 > N || row0 > row1 || N > 0x7fffffff)
    return af_error_set(err, AF_ERR_ARG, "bf16 top-k: k=%d margin=%d d=%d rows [%lld, %lld) of "
                        "%lld", k, margin, d, (long long)row0, (long long)row1, (long long)N);
  if (k == 0 || row0 == row1)
    return AF_OK;
  const double mn = max_norm(emb, N, d);
  dev_job j = {.dev = dev, .N = N, .R = row1 - row0, .row0 = row0, .d = d,
               .dp = (d + 15) / 16 * 16, .k = k, .min_score = min_score,
               .kp = (int)((int64_t)k + margin < N ? k + margin : N),
               .eps = af_bf16_dot_error_bound(d, mn, mn)};
  af_status st = dev_job_plan(&j, o, margin, err);
  st = st ? st : dev_job_init(&j, emb, err);
  st = st ? st : dev_passes(&j, emb, err);
  int64_t bad = 0;
  st = st ? st : dev_finish(&j, nbr, scr, &bad, err);
  dev_job_free(&j);
  if (st == AF_OK && rep)
    *rep = (af_bf16_topk_device_report){.fused = j.fused, .col_chunk = j.CC,
                                        .n_chunks = (N + j.CC - 1) / j.CC, .q_tile = j.QT,
                                        .uncertified = bad};
  return st;
}

af_status af_bf16_topk_device(const af_device *dev, const float *emb, int64_t N, int d, int k,
                              int margin, float min_score, int64_t row0, int64_t row1,
                              int64_t *nbr, float *scr, int64_t *uncertified, af_error *err) {
  af_bf16_topk_device_report rep;
  AF_TRY(af_bf16_topk_device_ex(dev, emb, N, d, k, margin, min_score, row0, row1, NULL, nbr,
                                scr, &rep, err));
  if (uncertified)
    *uncertified = rep.uncertified;
  return AF_OK;
}
