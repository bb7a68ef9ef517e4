/* CPU twins of the fused all-pairs top-k kernel, the partial-list merge and the
 * ranged rescore (kernels/cuda/topk_fused.cu, topk.cu; ops.h). The fused twin
 * runs the kernel's algorithm step for step: splits of a multiple of 32
 * columns, tiles of 32 columns in increasing order, each tile filtered against
 * the row's threshold as it stood when the tile began (the list's k'-th entry),
 * survivors appended to the row's buffer, the buffer merged into the list
 * (a total-order sort, best first, keep k') when the next tile could overflow
 * it and at the end of the split. Scores are the bf16-widened products summed
 * in fp32 (an fmaf chain over the padded dimension; the tensor core sums each
 * k16 step in its own order, a difference the certificate's eps covers:
 * docs/scoring.md). */
#include <math.h>
#include <stdlib.h>

#include "base/bf16.h"
#include "base/topk.h"
#include "ops.h"
#include "topk_fused.h"

#define EMPTY_IX 0x7fffffff

typedef struct {
  float s;
  int32_t ix;
} fz_entry;

/* best first: score desc, index asc (the kernel's bitonic order) */
static int fz_cmp(const void *pa, const void *pb) {
  const fz_entry *a = pa, *b = pb;
  if (a->s != b->s)
    return a->s > b->s ? -1 : 1;
  return (a->ix > b->ix) - (a->ix < b->ix);
}

static int fz_better(float as, int32_t ai, float bs, int32_t bi) {
  return as > bs || (as == bs && ai < bi);
}

/* A block's state: its rows' lists (QR, n2), buffer counts, widened queries. */
typedef struct {
  fz_entry e[AF_FUSED_QR][AF_FUSED_MAX_N2];
  int cnt[AF_FUSED_QR];
  float q[AF_FUSED_QR][AF_FUSED_MAX_D];
  float x[AF_FUSED_CT][AF_FUSED_MAX_D];
} fz_block;

/* Row lr's buffer merged into its list: sort best first, keep kp. */
static void fz_merge(fz_block *b, int lr, int kp, int n2) {
  fz_entry *e = b->e[lr];
  qsort(e, (size_t)(kp + b->cnt[lr]), sizeof *e, fz_cmp);
  for (int i = kp; i < n2; i++)
    e[i] = (fz_entry){-INFINITY, EMPTY_IX};
  b->cnt[lr] = 0;
}

/* Tile [t0, t1) of the chunk against the block's nr rows (first row r0). */
static void fz_tile(fz_block *b, int nr, int kp, int n2, const uint16_t *X, int dp, int t0,
                    int t1, int last, int64_t col0, int64_t self0) {
  for (int c = t0; c < t1; c++)
    for (int i = 0; i < dp; i++)
      b->x[c - t0][i] = af_f32_from_bf16(X[(size_t)c * dp + i]);
  for (int lr = 0; lr < nr; lr++) {
    const fz_entry thr = b->e[lr][kp - 1]; // the threshold as the tile began
    for (int c = t0; c < t1; c++) {
      const int64_t col = col0 + c;
      if (col == self0 + lr)
        continue;
      float acc = 0.f;
      for (int i = 0; i < dp; i++)
        acc = fmaf(b->q[lr][i], b->x[c - t0][i], acc);
      if (fz_better(acc, (int32_t)col, thr.s, thr.ix))
        b->e[lr][kp + b->cnt[lr]++] = (fz_entry){acc, (int32_t)col};
    }
    if (b->cnt[lr] > n2 - kp - AF_FUSED_CT || (last && b->cnt[lr] > 0))
      fz_merge(b, lr, kp, n2);
  }
}

int af_cpu_topk_fused(float *ps, int64_t *pi, int kp, const uint16_t *Q, const uint16_t *X,
                      int nq, int cc, int dp, int64_t col0, int64_t q0, int S) {
  const int n2 = af_fused_n2(kp), w = af_fused_split_width(cc, S);
  const int nb = (nq + AF_FUSED_QR - 1) / AF_FUSED_QR;
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    fz_block *b = malloc(sizeof *b); // a thread without one skips its work and fails the call
    failed |= !b;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bs = 0; bs < (int64_t)nb * S; bs++) {
      if (!b)
        continue;
      const int r0 = (int)(bs / S) * AF_FUSED_QR, s = (int)(bs % S);
      const int nr = nq - r0 < AF_FUSED_QR ? nq - r0 : AF_FUSED_QR;
      for (int lr = 0; lr < nr; lr++) {
        for (int i = 0; i < dp; i++)
          b->q[lr][i] = af_f32_from_bf16(Q[(size_t)(r0 + lr) * dp + i]);
        for (int i = 0; i < n2; i++)
          b->e[lr][i] = (fz_entry){-INFINITY, EMPTY_IX};
        b->cnt[lr] = 0;
      }
      const int cb = s * w < cc ? s * w : cc, ce = cb + w < cc ? cb + w : cc;
      for (int t0 = cb; t0 < ce; t0 += AF_FUSED_CT) {
        const int t1 = t0 + AF_FUSED_CT < ce ? t0 + AF_FUSED_CT : ce;
        fz_tile(b, nr, kp, n2, X, dp, t0, t1, t1 == ce, col0, q0 + r0);
      }
      for (int lr = 0; lr < nr; lr++)
        for (int i = 0; i < kp; i++) {
          const size_t o = ((size_t)(r0 + lr) * S + s) * kp + i;
          ps[o] = b->e[lr][i].s;
          pi[o] = b->e[lr][i].ix == EMPTY_IX ? -1 : b->e[lr][i].ix;
        }
    }
    free(b);
  }
  return !failed;
}

void af_cpu_topk_merge_partials(float *ls, int64_t *li, int kp, const float *ps,
                                const int64_t *pi, int nq, int S) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < nq; r++) {
    float hs[AF_FUSED_MAX_KP];
    int64_t hi[AF_FUSED_MAX_KP];
    af_topk t;
    af_topk_init(&t, hs, hi, kp, -INFINITY);
    for (int j = 0; j < kp; j++)
      if (li[(size_t)r * kp + j] >= 0)
        af_topk_push(&t, ls[(size_t)r * kp + j], li[(size_t)r * kp + j]);
    for (int j = 0; j < S * kp; j++)
      if (pi[(size_t)r * S * kp + j] >= 0)
        af_topk_push(&t, ps[(size_t)r * S * kp + j], pi[(size_t)r * S * kp + j]);
    af_topk_extract(&t, li + (size_t)r * kp, ls + (size_t)r * kp, kp);
  }
}

void af_cpu_rescore_fp32_range(float *out, const float *Q, const float *X, const int64_t *idx,
                               int QT, int kp, int d, int64_t c0, int64_t c1) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < QT; r++)
    for (int j = 0; j < kp; j++) {
      const int64_t x = idx[(size_t)r * kp + j];
      if (x < 0) {
        out[(size_t)r * kp + j] = -INFINITY;
        continue;
      }
      if (x < c0 || x >= c1)
        continue;
      float acc = 0.f; // the CPU scorer's chain: acc = fmaf(q[i], x[i], acc), i = 0..d-1
      for (int i = 0; i < d; i++)
        acc = fmaf(Q[(size_t)r * d + i], X[(size_t)(x - c0) * d + i], acc);
      out[(size_t)r * kp + j] = acc;
    }
}
