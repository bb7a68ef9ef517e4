/* The fused all-pairs top-k kernel (ops.h af_op_topk_fused; geometry in
 * kernels/topk_fused.h; CPU twin kernels/cpu/topk_fused.c). NOT run on a card
 * yet (no GPU was lent while it was written).
 *
 * A block of 4 warps owns 64 query rows (16 per warp, one m16 tile) and one
 * split of the chunk's columns. Each warp keeps its 16 rows' bf16 A fragments
 * in registers for the whole scan (d <= 384: 24 k16 steps x 4 registers).
 * Catalog tiles of 32 rows (bf16, rows padded by 8 bf16 so fragment loads hit
 * 32 distinct banks) stream into shared memory with cp.async, double-buffered:
 * tile t + 1 is in flight while tile t is multiplied. Per tile a warp computes
 * its 16 x 32 scores with mma.sync m16n8k16 (bf16 in, fp32 accumulate) into
 * 16 accumulators; each score is compared with its row's threshold (the k'-th
 * entry of the row's list in shared memory, as it stood at the start of the
 * tile) and survivors are appended to the row's buffer behind the list (a
 * shared atomic counter per row). When the buffer could overflow on the next
 * tile, and at the end of the split, the warp sorts the row's n2 slots
 * (bitonic, best first: score desc, index asc) and keeps k': the warp-level
 * merge. The score matrix never reaches device memory: a block writes only its
 * rows' k' best of the split, which af_op_topk_merge_partials merges. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "topk_fused.h"

#define FZ_THREADS 128
#define FZ_KS (AF_FUSED_MAX_D / 16)
#define FZ_EMPTY 0x7fffffff

static __device__ __forceinline__ bool fz_better(float as, int ai, float bs, int bi) {
  return as > bs || (as == bs && ai < bi);
}

static __device__ __forceinline__ void fz_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                              uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16 bytes global -> shared; src_bytes 0 fills zeros (a column past the split).
static __device__ __forceinline__ void fz_cp_async16(void *smem, const void *gmem, int src_bytes) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
}

static __device__ __forceinline__ void fz_cp_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> static __device__ __forceinline__ void fz_cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Sorts one row's n2 slots (s, ix) best first with the 32 lanes of a warp;
// slots [n, n2) are emptied first.
static __device__ void fz_warp_merge(float *s, int *ix, int n, int n2, int lane) {
  for (int i = n + lane; i < n2; i += 32) {
    s[i] = -INFINITY;
    ix[i] = FZ_EMPTY;
  }
  __syncwarp();
  for (int k = 2; k <= n2; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = lane; i < n2; i += 32) {
        const int l = i ^ j;
        if (l > i) {
          const bool up = (i & k) == 0;
          const bool sw = up ? fz_better(s[l], ix[l], s[i], ix[i])
                             : fz_better(s[i], ix[i], s[l], ix[l]);
          if (sw) {
            const float ts = s[i];
            s[i] = s[l];
            s[l] = ts;
            const int ti = ix[i];
            ix[i] = ix[l];
            ix[l] = ti;
          }
        }
      }
      __syncwarp();
    }
}

// Catalog tile `tile` of the split [cb, ce) into buffer xs (CT, ldx); one commit group.
static __device__ __forceinline__ void fz_load_tile(uint16_t *xs, const uint16_t *__restrict__ X,
                                                    int dp, int ldx, int cb, int ce, int tile) {
  const int per_row = dp / 8, c0 = cb + tile * AF_FUSED_CT;
  for (int i = threadIdx.x; i < AF_FUSED_CT * per_row; i += FZ_THREADS) {
    const int r = i / per_row, ch = i - r * per_row, c = c0 + r;
    fz_cp_async16(xs + (size_t)r * ldx + ch * 8, X + (size_t)(c < ce ? c : cb) * dp + ch * 8,
                  c < ce ? 16 : 0);
  }
  fz_cp_commit();
}

// ps, pi (nq, S, kp); Q (nq, dp), X (cc, dp) bf16. grid (ceil(nq / 64), S), block 128.
__global__ void __launch_bounds__(FZ_THREADS)
    topk_fused_kernel(float *__restrict__ ps, int64_t *__restrict__ pi, int kp,
                      const uint16_t *__restrict__ Q, const uint16_t *__restrict__ X, int nq,
                      int cc, int dp, long long col0, long long q0, int S, int w, int n2) {
  extern __shared__ __align__(16) unsigned char fz_smem[];
  const int ldx = dp + 8;
  uint16_t *xs = (uint16_t *)fz_smem;                                      // (2, CT, ldx)
  float *ls = (float *)(fz_smem + (size_t)2 * AF_FUSED_CT * ldx * 2);     // (QR, n2)
  int *li = (int *)(ls + (size_t)AF_FUSED_QR * n2);                        // (QR, n2)
  int *cnt = li + (size_t)AF_FUSED_QR * n2;                                // (QR)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int rb = blockIdx.x * AF_FUSED_QR, s = blockIdx.y;
  const int cb = s * w < cc ? s * w : cc, ce = cb + w < cc ? cb + w : cc;
  for (int i = threadIdx.x; i < AF_FUSED_QR * n2; i += FZ_THREADS) {
    ls[i] = -INFINITY;
    li[i] = FZ_EMPTY;
  }
  for (int i = threadIdx.x; i < AF_FUSED_QR; i += FZ_THREADS)
    cnt[i] = 0;
  // This warp's A fragments (rows rb + 16 warp + g and + 8), all k16 steps.
  const int ks = dp / 16, qw = dp / 2, r0 = rb + warp * 16 + g, r1 = r0 + 8;
  const uint32_t *q32 = (const uint32_t *)Q;
  uint32_t a[FZ_KS][4];
#pragma unroll
  for (int kk = 0; kk < FZ_KS; kk++) {
    const bool on = kk < ks;
    a[kk][0] = on && r0 < nq ? q32[(size_t)r0 * qw + kk * 8 + t] : 0u;
    a[kk][1] = on && r1 < nq ? q32[(size_t)r1 * qw + kk * 8 + t] : 0u;
    a[kk][2] = on && r0 < nq ? q32[(size_t)r0 * qw + kk * 8 + 4 + t] : 0u;
    a[kk][3] = on && r1 < nq ? q32[(size_t)r1 * qw + kk * 8 + 4 + t] : 0u;
  }
  __syncthreads();
  const int nt = (ce - cb + AF_FUSED_CT - 1) / AF_FUSED_CT, ldw = ldx / 2;
  if (nt > 0)
    fz_load_tile(xs, X, dp, ldx, cb, ce, 0);
  for (int tile = 0; tile < nt; tile++) {
    const int buf = tile & 1;
    if (tile + 1 < nt) {
      fz_load_tile(xs + (size_t)(buf ^ 1) * AF_FUSED_CT * ldx, X, dp, ldx, cb, ce, tile + 1);
      fz_cp_wait<1>();
    } else {
      fz_cp_wait<0>();
    }
    __syncthreads();
    // scores (16, 32) of this warp: acc[n] = rows g, g + 8 x columns 8n + 2t, + 1
    const uint32_t *x32 = (const uint32_t *)(xs + (size_t)buf * AF_FUSED_CT * ldx);
    float acc[4][4];
#pragma unroll
    for (int n = 0; n < 4; n++)
      acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < FZ_KS; kk++)
      if (kk < ks) {
#pragma unroll
        for (int n = 0; n < 4; n++) {
          const uint32_t *xr = x32 + (size_t)(n * 8 + g) * ldw + kk * 8 + t;
          fz_mma(acc[n], a[kk], xr[0], xr[4]);
        }
      }
    // threshold filter: survivors into the row's buffer
    const int tc0 = cb + tile * AF_FUSED_CT;
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int lr = warp * 16 + g + 8 * h;
      if (rb + lr < nq) {
        const float ts = ls[lr * n2 + kp - 1];
        const int ti = li[lr * n2 + kp - 1];
        const long long self = q0 + rb + lr;
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
          for (int j = 0; j < 2; j++) {
            const int c = tc0 + n * 8 + 2 * t + j;
            const long long col = col0 + c;
            const float v = acc[n][2 * h + j];
            if (c < ce && col != self && fz_better(v, (int)col, ts, ti)) {
              const int p = atomicAdd(&cnt[lr], 1);
              ls[lr * n2 + kp + p] = v;
              li[lr * n2 + kp + p] = (int)col;
            }
          }
      }
    }
    __syncwarp();
    // warp-level merge of rows whose buffer could overflow (all of them at the end)
    const bool last = tile + 1 == nt;
    for (int lr = warp * 16; lr < warp * 16 + 16; lr++) {
      const int c = cnt[lr];
      if (c > n2 - kp - AF_FUSED_CT || (last && c > 0)) {
        fz_warp_merge(ls + (size_t)lr * n2, li + (size_t)lr * n2, kp + c, n2, lane);
        if (lane == 0)
          cnt[lr] = 0;
        __syncwarp();
      }
    }
    __syncthreads(); // the buffer just read is the target of the next prefetch
  }
  for (int lr = warp * 16; lr < warp * 16 + 16; lr++) {
    if (rb + lr >= nq)
      break;
    const size_t o = ((size_t)(rb + lr) * S + s) * kp;
    for (int i = lane; i < kp; i += 32) {
      const int x = li[lr * n2 + i];
      ps[o + i] = ls[lr * n2 + i];
      pi[o + i] = x == FZ_EMPTY ? -1 : x;
    }
  }
}

extern "C" void af_cuda_topk_fused(af_cuda_context *ctx, float *ps, int64_t *pi, int kp,
                                   const uint16_t *Q, const uint16_t *X, int nq, int cc, int dp,
                                   int64_t col0, int64_t q0, int S) {
  if (af_cuda_has_pending(ctx) || nq <= 0)
    return;
  const int n2 = af_fused_n2(kp), w = af_fused_split_width(cc, S);
  const size_t smem = (size_t)2 * AF_FUSED_CT * (dp + 8) * 2 + (size_t)AF_FUSED_QR * n2 * 8 +
                      AF_FUSED_QR * 4;
  AF_CUDA_RECORD(ctx, cudaFuncSetAttribute(topk_fused_kernel,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int)smem));
  if (af_cuda_has_pending(ctx))
    return;
  const unsigned qb = (unsigned)((nq + AF_FUSED_QR - 1) / AF_FUSED_QR);
  topk_fused_kernel<<<dim3(qb, (unsigned)S), FZ_THREADS, smem, ctx->stream>>>(
      ps, pi, kp, Q, X, nq, cc, dp, (long long)col0, (long long)q0, S, w, n2);
  af_cuda_check_launch(ctx, "topk_fused_kernel");
}
