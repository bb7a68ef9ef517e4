/* Multi-head self-attention over packed variable-length sequences (CUDA).
 *
 * One block of ATT_WARPS warps per (sequence b, head h): blockIdx.x = b*NH + h.
 * The sequence's keys and values for head h are staged in shared memory in
 * tiles of TK keys (K rows padded to an odd stride so that the 32 lanes of a
 * warp, each on a different key, hit 32 different banks). Each warp takes one
 * query at a time:
 *   - L <= TK (one tile, the common case for product texts): the tile is
 *     loaded once; the warp computes the L scores (lane j takes keys j, j+32,
 *     ...), the row max and sum by shuffles, the probabilities exactly as the
 *     CPU twin does (p = exp(s - max) * (1 / sum)), then o = P V with lane d
 *     owning output dims d, d+32, ...;
 *   - L > TK: two sweeps over the tiles, the first for the row max and sum
 *     (online rescaling per lane, then combined across the warp), the second
 *     for the final probabilities and P V. Scores are recomputed rather than
 *     stored, so any length works in a fixed amount of shared memory.
 * probs (when not NULL) gets each (b, h) block of L*L probabilities at offset
 * NH * sum_{b'<b} L_b'^2 + h * L^2, row-major (query, key), as ops.h says; the
 * per-sequence sums come from one O(B) prefix kernel (probs_offsets_kernel)
 * into the context's scratch buffer.
 *
 * Limits: HS = C / NH <= 128 (per-lane registers); any sequence length. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_MAX_HS 128
#define ATT_SMEM_BUDGET (48 * 1024) // no opt-in needed; leaves room for several blocks per SM
#define ATT_MAX_TK 128

static __device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Stride of a K row in shared memory: odd, so lanes on consecutive keys and
// the same dim fall in distinct banks.
static __host__ __device__ __forceinline__ int k_stride(int HS) { return HS | 1; }

static size_t att_smem_bytes(int HS, int TK) {
  return sizeof(float) *
         ((size_t)TK * k_stride(HS) + (size_t)TK * HS + (size_t)ATT_WARPS * HS +
          (size_t)ATT_WARPS * TK);
}

// Loads keys (and values if Vs) j0 .. j0+nk-1 of this (b, h) into Ks (nk, KP), Vs (nk, HS).
static __device__ __forceinline__ void load_tile(float *Ks, float *Vs, const float *kbase,
                                                 const float *vbase, int64_t row, int j0,
                                                 int nk, int HS, int KP) {
  for (int e = threadIdx.x; e < nk * HS; e += ATT_THREADS) {
    int j = e / HS, d = e - j * HS;
    Ks[j * KP + d] = kbase[(int64_t)(j0 + j) * row + d];
    if (Vs)
      Vs[j * HS + d] = vbase[(int64_t)(j0 + j) * row + d];
  }
}

static __device__ __forceinline__ float qk(const float *q, const float *k, int HS) {
  float s = 0.f;
  for (int d = 0; d < HS; d++)
    s += q[d] * k[d];
  return s;
}

// out (T, C); probs (NH * sum L^2) or NULL; qkv (T, 3C); cu_seqlens (B + 1).
// DPL = output dims per lane (HS <= 32 * DPL).
template <int DPL>
__global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(float *__restrict__ out, float *__restrict__ probs,
                     const long long *__restrict__ probs_off, const float *__restrict__ qkv,
                     const int32_t *__restrict__ cu_seqlens, int NH, int C, int HS, float scale,
                     int TK) {
  extern __shared__ float smem[];
  const int KP = k_stride(HS);
  float *Ks = smem;               // (TK, KP) keys of the current tile
  float *Vs = Ks + TK * KP;       // (TK, HS) values of the current tile
  float *Qs = Vs + TK * HS;       // (ATT_WARPS, HS) each warp's query
  float *Ps = Qs + ATT_WARPS * HS; // (ATT_WARPS, TK) each warp's scores / probabilities

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int b = blockIdx.x / NH, h = blockIdx.x - b * NH;
  const int t0 = cu_seqlens[b], L = cu_seqlens[b + 1] - t0;
  if (L <= 0)
    return; // uniform across the block

  // (L, L) this (b, h)'s probabilities; probs_off[b] = sum_{b'<b} L_b'^2 (probs_offsets_kernel)
  float *P = probs ? probs + probs_off[b] * NH + (long long)h * L * L : NULL;

  const int64_t row = 3 * (int64_t)C;                      // qkv stride between tokens
  const float *qbase = qkv + (int64_t)t0 * row + h * HS;   // (L, HS) with stride row
  const float *kbase = qbase + C;
  const float *vbase = qbase + 2 * C;
  float *obase = out + (int64_t)t0 * C + h * HS;           // (L, HS) with stride C
  const int ntiles = (L + TK - 1) / TK;
  float *qs = Qs + warp * HS; // (HS)
  float *ps = Ps + warp * TK; // (TK)

  if (ntiles == 1) {
    load_tile(Ks, Vs, kbase, vbase, row, 0, L, HS, KP);
    __syncthreads();
  }
  // Every warp runs the same number of iterations (L is block-uniform), so the
  // __syncthreads of the multi-tile sweeps are reached by all of them.
  for (int i0 = 0; i0 < L; i0 += ATT_WARPS) {
    const int i = i0 + warp;
    const bool active = i < L;
    if (active)
      for (int d = lane; d < HS; d += 32)
        qs[d] = qbase[(int64_t)i * row + d];
    __syncwarp();
    float acc[DPL];
#pragma unroll
    for (int r = 0; r < DPL; r++)
      acc[r] = 0.f;

    if (ntiles == 1) {
      if (active) {
        float mx = -INFINITY;
        for (int j = lane; j < L; j += 32) {
          float s = qk(qs, Ks + j * KP, HS) * scale;
          ps[j] = s;
          mx = fmaxf(mx, s);
        }
        mx = warp_max(mx);
        float sum = 0.f;
        for (int j = lane; j < L; j += 32) {
          float e = expf(ps[j] - mx);
          ps[j] = e;
          sum += e;
        }
        const float inv = 1.0f / warp_sum(sum);
        for (int j = lane; j < L; j += 32) {
          float p = ps[j] * inv;
          ps[j] = p;
          if (P)
            P[(int64_t)i * L + j] = p;
        }
        __syncwarp();
        for (int j = 0; j < L; j++) {
          const float p = ps[j];
#pragma unroll
          for (int r = 0; r < DPL; r++) {
            int d = lane + 32 * r;
            if (d < HS)
              acc[r] += p * Vs[j * HS + d];
          }
        }
      }
    } else {
      // Sweep 1: row max and sum. Each lane keeps a running (m, l) over its keys.
      float m = -INFINITY, l = 0.f;
      for (int j0 = 0; j0 < L; j0 += TK) {
        const int nk = min(TK, L - j0);
        __syncthreads(); // the previous tile is no longer read
        load_tile(Ks, NULL, kbase, vbase, row, j0, nk, HS, KP);
        __syncthreads();
        if (active)
          for (int j = lane; j < nk; j += 32) {
            float s = qk(qs, Ks + j * KP, HS) * scale;
            if (s > m) {
              l = l * expf(m - s) + 1.f;
              m = s;
            } else {
              l += expf(s - m);
            }
          }
      }
      const float M = warp_max(m);
      const float inv = 1.0f / warp_sum(l > 0.f ? l * expf(m - M) : 0.f);
      // Sweep 2: probabilities and P V.
      for (int j0 = 0; j0 < L; j0 += TK) {
        const int nk = min(TK, L - j0);
        __syncthreads();
        load_tile(Ks, Vs, kbase, vbase, row, j0, nk, HS, KP);
        __syncthreads();
        if (active) {
          for (int j = lane; j < nk; j += 32) {
            float p = expf(qk(qs, Ks + j * KP, HS) * scale - M) * inv;
            ps[j] = p;
            if (P)
              P[(int64_t)i * L + j0 + j] = p;
          }
          __syncwarp();
          for (int j = 0; j < nk; j++) {
            const float p = ps[j];
#pragma unroll
            for (int r = 0; r < DPL; r++) {
              int d = lane + 32 * r;
              if (d < HS)
                acc[r] += p * Vs[j * HS + d];
            }
          }
          __syncwarp(); // ps is rewritten by the next tile
        }
      }
    }
    if (active) {
#pragma unroll
      for (int r = 0; r < DPL; r++) {
        int d = lane + 32 * r;
        if (d < HS)
          obase[(int64_t)i * C + d] = acc[r];
      }
    }
    __syncwarp(); // qs is rewritten by the next query
  }
}

// off (B) = exclusive prefix sums of L_b^2, in one block: each thread sums a
// contiguous chunk, the chunk totals are scanned in shared memory, then each
// thread writes its chunk. O(B) work (it was O(B^2 NH): every (b, h) block
// summed all the sequences before it).
#define OFF_THREADS 1024
__global__ void __launch_bounds__(OFF_THREADS)
    probs_offsets_kernel(long long *__restrict__ off, const int32_t *__restrict__ cu, int B) {
  __shared__ long long part[OFF_THREADS];
  const int chunk = (B + OFF_THREADS - 1) / OFF_THREADS;
  const int b0 = threadIdx.x * chunk, b1 = min(B, b0 + chunk);
  long long s = 0;
  for (int b = b0; b < b1; b++) {
    long long l = cu[b + 1] - cu[b];
    s += l * l;
  }
  part[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0) { // 1024 adds: negligible beside the attention itself
    long long run = 0;
    for (int i = 0; i < OFF_THREADS; i++) {
      long long v = part[i];
      part[i] = run;
      run += v;
    }
  }
  __syncthreads();
  s = part[threadIdx.x];
  for (int b = b0; b < b1; b++) {
    off[b] = s;
    long long l = cu[b + 1] - cu[b];
    s += l * l;
  }
}

template <int DPL>
static void launch(af_cuda_context *ctx, float *out, float *probs, const float *qkv,
                   const int32_t *cu_seqlens, int B, int C, int NH, int HS, int TK) {
  const float scale = 1.0f / sqrtf((float)HS);
  long long *off = NULL;
  if (probs) {
    off = (long long *)af_cuda_scratch(ctx, sizeof(long long) * (size_t)B);
    if (!off)
      return; // recorded
    probs_offsets_kernel<<<1, OFF_THREADS, 0, ctx->stream>>>(off, cu_seqlens, B);
    af_cuda_check_launch(ctx, "probs_offsets_kernel");
  }
  attention_kernel<DPL><<<(unsigned)((int64_t)B * NH), ATT_THREADS, att_smem_bytes(HS, TK),
                          ctx->stream>>>(out, probs, off, qkv, cu_seqlens, NH, C, HS, scale, TK);
  af_cuda_check_launch(ctx, "attention_kernel");
}

extern "C" void af_cuda_attention_forward(af_cuda_context *ctx, float *out, float *probs,
                                          const float *qkv, const int32_t *cu_seqlens, int B,
                                          int C, int NH) {
  if (af_cuda_has_pending(ctx) || B <= 0)
    return;
  if (C <= 0 || NH <= 0 || C % NH != 0) {
    af_cuda_record(ctx, AF_ERR_ARG,
                   "attention: hidden size C = %d is not a positive multiple of the %d heads", C,
                   NH);
    return;
  }
  const int HS = C / NH;
  if (HS > ATT_MAX_HS) {
    af_cuda_record(ctx, AF_ERR_UNSUPPORTED,
                   "attention: head size %d (C = %d / NH = %d) exceeds the CUDA kernel's limit "
                   "of %d",
                   HS, C, NH, ATT_MAX_HS);
    return;
  }
  if ((int64_t)B * NH > 0x7fffffff) {
    af_cuda_record(ctx, AF_ERR_UNSUPPORTED, "attention: B * NH = %lld blocks is too many",
                   (long long)B * NH);
    return;
  }
  // The largest key tile (a multiple of 32, at most ATT_MAX_TK) that fits the budget.
  int TK = ATT_MAX_TK;
  while (TK > 32 && att_smem_bytes(HS, TK) > ATT_SMEM_BUDGET)
    TK -= 32;
  if (HS <= 32)
    launch<1>(ctx, out, probs, qkv, cu_seqlens, B, C, NH, HS, TK);
  else if (HS <= 64)
    launch<2>(ctx, out, probs, qkv, cu_seqlens, B, C, NH, HS, TK);
  else
    launch<4>(ctx, out, probs, qkv, cu_seqlens, B, C, NH, HS, TK);
}
