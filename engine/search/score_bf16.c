/* bf16 candidates + fp32 rescore on the CPU, and the GPU scorer's memory plan
 * (score_bf16.h). */
#include "search/score_bf16.h"

#include <math.h>
#include <stdlib.h>

#include "base/bf16.h"
#include "base/topk.h"
#include "ops.h"
#include "affinity.h"

size_t af_bf16_topk_plan_bytes(int64_t R, int64_t col_chunk, int64_t q_tile, int d, int kp) {
  const size_t per_vec = (size_t)d * 6; // bf16 + fp32 copy of one vector
  return (size_t)col_chunk * per_vec + (size_t)R * per_vec + (size_t)R * kp * 12 +
         (size_t)q_tile * kp * 24;
}

af_status af_bf16_topk_plan_make(int64_t N, int d, int k, int margin, int shard_i, int shard_n,
                                 size_t budget, af_bf16_topk_plan *p, af_error *err) {
  if (N < 1 || d < 1 || k < 0 || margin < 0 || shard_n < 1 || shard_i < 0 || shard_i >= shard_n)
    return af_error_set(err, AF_ERR_ARG, "bf16 top-k plan: N=%lld d=%d k=%d margin=%d shard %d/%d",
                        (long long)N, d, k, margin, shard_i, shard_n);
  af_shard_rows(N, shard_i, shard_n, &p->row0, &p->row1);
  const int64_t R = p->row1 - p->row0;
  p->kp = (int)((int64_t)k + margin < N ? k + margin : N);
  p->q_tile = R < 65536 ? (R > 0 ? R : 1) : 65536;
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
  // so |bq bx - q x| <= (2^-7 + 2^-16) |q x| per term; both fp32 sums of d terms
  // add <= 1.01 d 2^-24 sum|q x| each (gamma_d); sum|q_i x_i| <= ||q|| ||x||.
  // Subnormal inputs lose relative accuracy: d 2^-126 absolute covers them.
  const double rel = ldexp(1.0, -7) + ldexp(1.0, -16) + 2.02 * d * ldexp(1.0, -24);
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

typedef struct {
  const af_device *dev;
  int64_t N, QT, CC;
  int d, k, kp;
  float min_score;
  double eps;
  float *x;        /* (N, d) fp32 on the device */
  uint16_t *xb;    /* (N, d) bf16 on the device */
  float *tile;     /* (QT, CC) bf16 scores */
  float *ls, *rs;  /* (QT, kp) candidate bf16 scores, fp32 rescores */
  int64_t *li;     /* (QT, kp) candidate indices */
  float *h_ls, *h_rs; /* host copies (QT, kp); h_ls is also the empty-list template */
  int64_t *h_li;
} dev_job;

static void dev_job_free(dev_job *j) {
  af_dev_free(j->dev, j->x);
  af_dev_free(j->dev, j->xb);
  af_dev_free(j->dev, j->tile);
  af_dev_free(j->dev, j->ls);
  af_dev_free(j->dev, j->rs);
  af_dev_free(j->dev, j->li);
  free(j->h_ls);
  free(j->h_rs);
  free(j->h_li);
}

static af_status dev_job_init(dev_job *j, const float *emb, af_error *err) {
  const size_t Nd = (size_t)j->N * j->d, Qk = (size_t)j->QT * j->kp;
  AF_TRY(af_dev_alloc(j->dev, Nd * sizeof(float), (void **)&j->x, err));
  AF_TRY(af_dev_alloc(j->dev, Nd * sizeof(uint16_t), (void **)&j->xb, err));
  AF_TRY(af_dev_alloc(j->dev, (size_t)j->QT * j->CC * sizeof(float), (void **)&j->tile, err));
  AF_TRY(af_dev_alloc(j->dev, Qk * sizeof(float), (void **)&j->ls, err));
  AF_TRY(af_dev_alloc(j->dev, Qk * sizeof(float), (void **)&j->rs, err));
  AF_TRY(af_dev_alloc(j->dev, Qk * sizeof(int64_t), (void **)&j->li, err));
  j->h_ls = af_malloc(Qk, sizeof(float), err);
  j->h_rs = j->h_ls ? af_malloc(Qk, sizeof(float), err) : NULL;
  j->h_li = j->h_rs ? af_malloc(Qk, sizeof(int64_t), err) : NULL;
  uint16_t *hb = j->h_li ? af_malloc(Nd, sizeof(uint16_t), err) : NULL;
  if (!hb)
    return AF_ERR_NOMEM;
  for (size_t i = 0; i < Nd; i++)
    hb[i] = af_bf16_from_f32(emb[i]);
  af_status st = af_dev_upload(j->dev, j->xb, hb, Nd * sizeof(uint16_t), err);
  free(hb);
  AF_TRY(st);
  return af_dev_upload(j->dev, j->x, emb, Nd * sizeof(float), err);
}

/* Candidates of queries [q0, q0 + nq): empty lists, every column tile merged. */
static af_status dev_candidates(dev_job *j, int64_t q0, int nq, af_error *err) {
  const size_t Qk = (size_t)nq * j->kp;
  for (size_t i = 0; i < Qk; i++) {
    j->h_ls[i] = -INFINITY;
    j->h_li[i] = -1;
  }
  AF_TRY(af_dev_upload(j->dev, j->ls, j->h_ls, Qk * sizeof(float), err));
  AF_TRY(af_dev_upload(j->dev, j->li, j->h_li, Qk * sizeof(int64_t), err));
  for (int64_t c0 = 0; c0 < j->N; c0 += j->CC) {
    const int cc = (int)(j->N - c0 < j->CC ? j->N - c0 : j->CC);
    // tile (nq, cc) = bf16 queries . bf16 columns^T, fp32 accumulation
    AF_TRY(af_op_linear_bf16_forward(j->dev, j->tile, j->xb + (size_t)q0 * j->d,
                                     j->xb + (size_t)c0 * j->d, NULL, nq, j->d, cc, err));
    AF_TRY(af_op_topk_merge_rows(j->dev, j->ls, j->li, j->kp, j->tile, nq, cc, c0, q0, err));
  }
  AF_TRY(af_op_rescore_fp32(j->dev, j->rs, j->x + (size_t)q0 * j->d, j->x, j->li, nq, j->kp,
                            j->d, err));
  AF_TRY(af_dev_download(j->dev, j->h_ls, j->ls, Qk * sizeof(float), err));
  AF_TRY(af_dev_download(j->dev, j->h_li, j->li, Qk * sizeof(int64_t), err));
  return af_dev_download(j->dev, j->h_rs, j->rs, Qk * sizeof(float), err);
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

af_status af_bf16_topk_device(const af_device *dev, const float *emb, int64_t N, int d, int k,
                              int margin, float min_score, int64_t row0, int64_t row1,
                              int64_t *nbr, float *scr, int64_t *uncertified, af_error *err) {
  if (uncertified)
    *uncertified = 0;
  if (k < 0 || margin < 0 || row0 < 0 || row1 > N || row0 > row1 || N > 0x7fffffff)
    return af_error_set(err, AF_ERR_ARG, "bf16 top-k: k=%d margin=%d rows [%lld, %lld) of %lld",
                        k, margin, (long long)row0, (long long)row1, (long long)N);
  if (k == 0 || row0 == row1)
    return AF_OK;
  double maxn = 0;
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int c = 0; c < d; c++)
      s += (double)emb[(size_t)i * d + c] * emb[(size_t)i * d + c];
    maxn = s > maxn ? s : maxn;
  }
  dev_job j = {.dev = dev, .N = N, .d = d, .k = k, .min_score = min_score,
               .kp = (int)((int64_t)k + margin < N ? k + margin : N),
               .QT = row1 - row0 < 1024 ? row1 - row0 : 1024, .CC = N < 8192 ? N : 8192,
               .eps = af_bf16_dot_error_bound(d, sqrt(maxn), sqrt(maxn))};
  float *fs = af_malloc((size_t)k, sizeof(float), err);
  int64_t *fi = fs ? af_malloc((size_t)k, sizeof(int64_t), err) : NULL;
  af_status st = fi ? dev_job_init(&j, emb, err) : AF_ERR_NOMEM;
  int64_t bad = 0;
  for (int64_t q0 = row0; st == AF_OK && q0 < row1; q0 += j.QT) {
    const int nq = (int)(row1 - q0 < j.QT ? row1 - q0 : j.QT);
    st = dev_candidates(&j, q0, nq, err);
    for (int r = 0; st == AF_OK && r < nq; r++) {
      const size_t o = (size_t)(q0 - row0 + r) * k;
      bad += !dev_finish_row(&j, r, fs, fi, nbr + o, scr + o);
    }
  }
  dev_job_free(&j);
  free(fs);
  free(fi);
  if (st == AF_OK && uncertified)
    *uncertified = bad;
  return st;
}
