/* The GPU scorer's merge and rescore ops (ops.h, "all-pairs top-k ops"); CPU
 * twins in kernels/cpu/topk.c. NOT run on a card yet.
 *
 * topk_merge_rows: one block of 256 threads per query row. The row's running
 * list (kp entries, best first: score desc, index asc) sits at the front of a
 * shared array of n2 = next power of two >= kp + SEG entries. The tile row is
 * read in segments of SEG columns; a column survives when it beats the list's
 * last entry (the row's threshold), and survivors are appended with a shared
 * atomic counter. A segment with no survivor costs one coalesced read (the
 * common case once the list holds good candidates); otherwise the n2 entries
 * are bitonic-sorted (best first) and the threshold moves up.
 * rescore_fp32: one thread per (row, candidate), the fmaf chain in index order
 * (__fmaf_rn, no reassociation: the CPU scorer's bits). */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#define TK_THREADS 256
#define TK_SEG 1024
#define TK_EMPTY 0x7fffffffffffffffLL // index of an empty slot while sorting

static __device__ __forceinline__ bool better(float as, long long ai, float bs, long long bi) {
  return as > bs || (as == bs && ai < bi);
}

// Sorts s, ix (n2, a power of two) best first.
static __device__ void bitonic_best_first(float *s, long long *ix, int n2) {
  for (int k = 2; k <= n2; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n2; i += blockDim.x) {
        const int l = i ^ j;
        if (l > i) {
          const bool up = (i & k) == 0; // this run is sorted best first
          const bool sw = up ? better(s[l], ix[l], s[i], ix[i]) : better(s[i], ix[i], s[l], ix[l]);
          if (sw) {
            float ts = s[i];
            s[i] = s[l];
            s[l] = ts;
            long long ti = ix[i];
            ix[i] = ix[l];
            ix[l] = ti;
          }
        }
      }
      __syncthreads();
    }
}

// ls, li (QT, kp); tile (QT, CC). grid QT, block 256, dynamic smem n2 * 12 bytes.
__global__ void __launch_bounds__(TK_THREADS)
    topk_merge_kernel(float *__restrict__ ls, int64_t *__restrict__ li, int kp,
                      const float *__restrict__ tile, int CC, long long col0, long long q0,
                      int n2) {
  extern __shared__ __align__(16) unsigned char tk_smem[];
  long long *ix = (long long *)tk_smem;       // (n2)
  float *s = (float *)(tk_smem + 8 * (size_t)n2); // (n2)
  __shared__ int cnt;
  const int r = blockIdx.x;
  const long long self = q0 + r;
  for (int i = threadIdx.x; i < kp; i += blockDim.x) {
    long long x = li[(size_t)r * kp + i];
    s[i] = x >= 0 ? ls[(size_t)r * kp + i] : -INFINITY;
    ix[i] = x >= 0 ? x : TK_EMPTY;
  }
  __syncthreads();
  float ts = s[kp - 1];
  long long ti = ix[kp - 1];
  const float *row = tile + (size_t)r * CC;
  for (int c0 = 0; c0 < CC; c0 += TK_SEG) {
    if (threadIdx.x == 0)
      cnt = 0;
    __syncthreads();
    const int c1 = min(CC, c0 + TK_SEG);
    for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
      const long long col = col0 + c;
      const float v = row[c];
      if (col != self && better(v, col, ts, ti)) {
        int p = atomicAdd(&cnt, 1);
        s[kp + p] = v;
        ix[kp + p] = col;
      }
    }
    __syncthreads();
    const int n = kp + cnt; // uniform: read after the barrier
    if (n == kp)
      continue;
    for (int i = n + threadIdx.x; i < n2; i += blockDim.x) {
      s[i] = -INFINITY;
      ix[i] = TK_EMPTY;
    }
    __syncthreads();
    bitonic_best_first(s, ix, n2);
    ts = s[kp - 1];
    ti = ix[kp - 1];
    __syncthreads(); // everyone has read the threshold before cnt is reset
  }
  for (int i = threadIdx.x; i < kp; i += blockDim.x) {
    ls[(size_t)r * kp + i] = s[i];
    li[(size_t)r * kp + i] = ix[i] == TK_EMPTY ? -1 : ix[i];
  }
}

// out (QT, kp) = Q . X[idx] with the fmaf chain; idx -1 -> -inf.
__global__ void rescore_kernel(float *__restrict__ out, const float *__restrict__ Q,
                               const float *__restrict__ X, const int64_t *__restrict__ idx,
                               int QT, int kp, int d) {
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (long long)QT * kp)
    return;
  const int r = (int)(e / kp);
  const long long x = idx[e];
  float acc = 0.f;
  if (x >= 0)
    for (int i = 0; i < d; i++)
      acc = __fmaf_rn(Q[(size_t)r * d + i], X[(size_t)x * d + i], acc);
  out[e] = x >= 0 ? acc : -INFINITY;
}

extern "C" void af_cuda_topk_merge_rows(af_cuda_context *ctx, float *ls, int64_t *li, int kp,
                                        const float *tile, int QT, int CC, int64_t col0,
                                        int64_t q0) {
  if (af_cuda_has_pending(ctx) || QT <= 0 || CC <= 0)
    return;
  int n2 = 1;
  while (n2 < kp + TK_SEG)
    n2 <<= 1;
  const size_t smem = (size_t)n2 * 12;
  if (smem > 48 * 1024)
    AF_CUDA_RECORD(ctx, cudaFuncSetAttribute(topk_merge_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem));
  if (af_cuda_has_pending(ctx))
    return;
  topk_merge_kernel<<<(unsigned)QT, TK_THREADS, smem, ctx->stream>>>(ls, li, kp, tile, CC,
                                                                     (long long)col0,
                                                                     (long long)q0, n2);
  af_cuda_check_launch(ctx, "topk_merge_kernel");
}

extern "C" void af_cuda_rescore_fp32(af_cuda_context *ctx, float *out, const float *Q,
                                     const float *X, const int64_t *idx, int QT, int kp, int d) {
  if (af_cuda_has_pending(ctx) || QT <= 0 || kp <= 0)
    return;
  const long long n = (long long)QT * kp;
  rescore_kernel<<<(unsigned)((n + 255) / 256), 256, 0, ctx->stream>>>(out, Q, X, idx, QT, kp, d);
  af_cuda_check_launch(ctx, "rescore_kernel");
}

// ls, li (nq, kp) running lists; ps, pi (nq, S, kp) partial lists. grid nq,
// block 256, dynamic smem n2 * 12 bytes (n2 = next power of two >= (S + 1) kp).
__global__ void __launch_bounds__(TK_THREADS)
    merge_partials_kernel(float *__restrict__ ls, int64_t *__restrict__ li, int kp,
                          const float *__restrict__ ps, const int64_t *__restrict__ pi, int S,
                          int n2) {
  extern __shared__ __align__(16) unsigned char mp_smem[];
  long long *ix = (long long *)mp_smem;            // (n2)
  float *s = (float *)(mp_smem + 8 * (size_t)n2); // (n2)
  const int r = blockIdx.x, n = (S + 1) * kp;
  for (int i = threadIdx.x; i < n2; i += blockDim.x) {
    long long x = -1;
    float v = -INFINITY;
    if (i < kp) {
      x = li[(size_t)r * kp + i];
      v = ls[(size_t)r * kp + i];
    } else if (i < n) {
      x = pi[(size_t)r * S * kp + (i - kp)];
      v = ps[(size_t)r * S * kp + (i - kp)];
    }
    s[i] = x >= 0 ? v : -INFINITY;
    ix[i] = x >= 0 ? x : TK_EMPTY;
  }
  __syncthreads();
  bitonic_best_first(s, ix, n2);
  for (int i = threadIdx.x; i < kp; i += blockDim.x) {
    ls[(size_t)r * kp + i] = s[i];
    li[(size_t)r * kp + i] = ix[i] == TK_EMPTY ? -1 : ix[i];
  }
}

// rescore_kernel for base rows [c0, c1) held in X (c1 - c0, d).
__global__ void rescore_range_kernel(float *__restrict__ out, const float *__restrict__ Q,
                                     const float *__restrict__ X,
                                     const int64_t *__restrict__ idx, int QT, int kp, int d,
                                     long long c0, long long c1) {
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (long long)QT * kp)
    return;
  const int r = (int)(e / kp);
  const long long x = idx[e];
  if (x < 0) {
    out[e] = -INFINITY;
    return;
  }
  if (x < c0 || x >= c1)
    return;
  float acc = 0.f;
  for (int i = 0; i < d; i++)
    acc = __fmaf_rn(Q[(size_t)r * d + i], X[(size_t)(x - c0) * d + i], acc);
  out[e] = acc;
}

extern "C" void af_cuda_topk_merge_partials(af_cuda_context *ctx, float *ls, int64_t *li, int kp,
                                            const float *ps, const int64_t *pi, int nq, int S) {
  if (af_cuda_has_pending(ctx) || nq <= 0)
    return;
  int n2 = 1;
  while (n2 < (S + 1) * kp)
    n2 <<= 1;
  const size_t smem = (size_t)n2 * 12; // <= 48 KB: (S + 1) kp <= AF_FUSED_PARTIALS (ops.c)
  merge_partials_kernel<<<(unsigned)nq, TK_THREADS, smem, ctx->stream>>>(ls, li, kp, ps, pi, S,
                                                                        n2);
  af_cuda_check_launch(ctx, "merge_partials_kernel");
}

extern "C" void af_cuda_rescore_fp32_range(af_cuda_context *ctx, float *out, const float *Q,
                                           const float *X, const int64_t *idx, int QT, int kp,
                                           int d, int64_t c0, int64_t c1) {
  if (af_cuda_has_pending(ctx) || QT <= 0 || kp <= 0)
    return;
  const long long n = (long long)QT * kp;
  rescore_range_kernel<<<(unsigned)((n + 255) / 256), 256, 0, ctx->stream>>>(
      out, Q, X, idx, QT, kp, d, (long long)c0, (long long)c1);
  af_cuda_check_launch(ctx, "rescore_range_kernel");
}
