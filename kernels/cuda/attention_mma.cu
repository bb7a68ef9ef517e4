/* Fused multi-head attention on tensor cores (mma.sync m16n8k16, bf16 in,
 * fp32 accumulate) over the PACKED token axis: the bf16 path's attention
 * (ops.h af_op_attention_bf16_forward). Head sizes 32 and 64; any other head
 * size runs the SIMT fp32 kernel (attention.cu) and a cast.
 *
 * A block of 4 warps takes 64 consecutive tokens of the packed batch (whatever
 * sequences they belong to: product titles are ~9 tokens, so one tile holds
 * ~7 of them) and one head; blockIdx = (token tile, head). Each warp owns 16
 * query rows. Keys are streamed in tiles of 64 from the first key of the first
 * query's sequence to the last key of the last query's sequence, staged in
 * shared memory as bf16 (K row-major, V transposed so that the B fragments of
 * P V are 32-bit loads). The mask is block-diagonal: key j counts for query i
 * iff both lie in the same sequence (sequence ids found by binary search in
 * cu_seqlens). Softmax is single-pass online (running max m and sum l per row
 * in fp32, FlashAttention-2 style, in the exp2 domain); the probabilities go
 * from the S accumulators straight into the A fragments of P V as bf16, so no
 * score ever reaches device memory. The output is normalised by l and written
 * as bf16, the input of the next GEMM.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 .bf16): g = lane / 4, t = lane % 4;
 * A (16x16 row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 =
 * (g+8, 2t+8..); B (16x8 col): b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g);
 * C (16x8 f32): c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1). */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"

#define MMA_WARPS 4
#define MMA_THREADS (MMA_WARPS * 32)
#define MMA_TQ 64 // queries per block (16 per warp)
#define MMA_TK 64 // keys per tile
#define MMA_PAD 8 // bf16 elements of padding per shared row (bank spread, keeps 16-B rows)

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); // .x = lo (low half), .y = hi
  return *reinterpret_cast<uint32_t *>(&v);
}

static __device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4],
                                                uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The sequence of packed token t: the largest b with cu[b] <= t (cu has B + 1 entries).
static __device__ __forceinline__ int seq_of(const int32_t *__restrict__ cu, int B, int t) {
  int lo = 0, hi = B - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (__ldg(cu + mid) <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// out (T, C) bf16; qkv (T, 3C) fp32; cu_seqlens (B + 1). grid (ceil(T / 64), NH).
template <int HS>
__global__ void __launch_bounds__(MMA_THREADS)
    attention_mma_kernel(uint16_t *__restrict__ out, const float *__restrict__ qkv,
                         const int32_t *__restrict__ cu, int B, int T, int C, float scale_log2) {
  constexpr int QS = HS + MMA_PAD;     // Q and K row stride (bf16)
  constexpr int VS = MMA_TK + MMA_PAD; // Vt row stride (bf16)
  __shared__ __align__(16) __nv_bfloat16 Qs[MMA_TQ * QS];
  __shared__ __align__(16) __nv_bfloat16 Ks[MMA_TK * QS];
  __shared__ __align__(16) __nv_bfloat16 Vt[HS * VS];
  __shared__ int sq[MMA_TQ], sk[MMA_TK];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int q0 = blockIdx.x * MMA_TQ, h = blockIdx.y;
  const int64_t row = 3 * (int64_t)C;
  const int nq = min(MMA_TQ, T - q0);

  // Q tile (bf16, pre-scaled by log2(e) / sqrt(HS): scores come out in the exp2 domain).
  for (int e = threadIdx.x; e < MMA_TQ * HS; e += MMA_THREADS) {
    int i = e / HS, d = e - i * HS;
    float v = i < nq ? qkv[(int64_t)(q0 + i) * row + h * HS + d] * scale_log2 : 0.f;
    Qs[i * QS + d] = __float2bfloat16_rn(v);
  }
  for (int i = threadIdx.x; i < MMA_TQ; i += MMA_THREADS)
    sq[i] = i < nq ? seq_of(cu, B, q0 + i) : -1;
  __syncthreads();
  const int kbeg = __ldg(cu + sq[0]), kend = __ldg(cu + sq[nq - 1] + 1);

  // This warp's Q fragments for all HS / 16 k-steps.
  uint32_t qf[HS / 16][4];
  const int r0 = warp * 16 + g, r1 = r0 + 8;
#pragma unroll
  for (int ks = 0; ks < HS / 16; ks++) {
    const int c = ks * 16 + 2 * t4;
    qf[ks][0] = *reinterpret_cast<const uint32_t *>(&Qs[r0 * QS + c]);
    qf[ks][1] = *reinterpret_cast<const uint32_t *>(&Qs[r1 * QS + c]);
    qf[ks][2] = *reinterpret_cast<const uint32_t *>(&Qs[r0 * QS + c + 8]);
    qf[ks][3] = *reinterpret_cast<const uint32_t *>(&Qs[r1 * QS + c + 8]);
  }
  const int seq0 = sq[r0], seq1 = sq[r1]; // -1 past the end of the batch

  float o[HS / 8][4];
#pragma unroll
  for (int dt = 0; dt < HS / 8; dt++)
    o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

  for (int k0 = kbeg; k0 < kend; k0 += MMA_TK) {
    const int nk = min(MMA_TK, kend - k0);
    __syncthreads(); // the previous tile is no longer read
    for (int e = threadIdx.x; e < MMA_TK * HS; e += MMA_THREADS) {
      int j = e / HS, d = e - j * HS;
      const float *src = qkv + (int64_t)(k0 + j) * row + h * HS + d;
      float kv = j < nk ? src[C] : 0.f, vv = j < nk ? src[2 * C] : 0.f;
      Ks[j * QS + d] = __float2bfloat16_rn(kv);
      Vt[d * VS + j] = __float2bfloat16_rn(vv);
    }
    for (int j = threadIdx.x; j < MMA_TK; j += MMA_THREADS)
      sk[j] = j < nk ? seq_of(cu, B, k0 + j) : -2;
    __syncthreads();

    // S (16 x 64) = Q K^T for this warp's rows: 8 n-tiles of 8 keys.
    float s[MMA_TK / 8][4];
#pragma unroll
    for (int nt = 0; nt < MMA_TK / 8; nt++) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < HS / 16; ks++) {
        const __nv_bfloat16 *kr = &Ks[(nt * 8 + g) * QS + ks * 16 + 2 * t4];
        mma_bf16(s[nt], qf[ks], *reinterpret_cast<const uint32_t *>(kr),
                 *reinterpret_cast<const uint32_t *>(kr + 8));
      }
    }
    // Block-diagonal mask, then the online softmax update of rows r0 and r1.
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int nt = 0; nt < MMA_TK / 8; nt++)
#pragma unroll
      for (int q = 0; q < 2; q++) {
        const int key = nt * 8 + 2 * t4 + q;
        if (sk[key] != seq0) s[nt][q] = -INFINITY;
        if (sk[key] != seq1) s[nt][2 + q] = -INFINITY;
        mx0 = fmaxf(mx0, s[nt][q]);
        mx1 = fmaxf(mx1, s[nt][2 + q]);
      }
    // The 4 threads of a group hold one row between them.
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    // A row with no key yet keeps m = -inf: use 0 as the offset (every p is then 0).
    const float b0 = mx0 == -INFINITY ? 0.f : mx0, b1 = mx1 == -INFINITY ? 0.f : mx1;
    const float a0 = exp2f(m0 - b0), a1 = exp2f(m1 - b1); // rescale of the old sums (0 at start)
    m0 = mx0;
    m1 = mx1;
    float ps0 = 0.f, ps1 = 0.f;
    uint32_t pf[MMA_TK / 16][4]; // P as the A operand of P V, bf16
#pragma unroll
    for (int nt = 0; nt < MMA_TK / 8; nt++) {
      float p00 = exp2f(s[nt][0] - b0), p01 = exp2f(s[nt][1] - b0);
      float p10 = exp2f(s[nt][2] - b1), p11 = exp2f(s[nt][3] - b1);
      ps0 += p00 + p01;
      ps1 += p10 + p11;
      const int ks = nt >> 1, hi = nt & 1; // keys 16ks..: n-tile 2ks -> a0,a1; 2ks+1 -> a2,a3
      pf[ks][hi * 2 + 0] = pack_bf16(p00, p01);
      pf[ks][hi * 2 + 1] = pack_bf16(p10, p11);
    }
    ps0 += __shfl_xor_sync(0xffffffffu, ps0, 1);
    ps0 += __shfl_xor_sync(0xffffffffu, ps0, 2);
    ps1 += __shfl_xor_sync(0xffffffffu, ps1, 1);
    ps1 += __shfl_xor_sync(0xffffffffu, ps1, 2);
    l0 = l0 * a0 + ps0;
    l1 = l1 * a1 + ps1;
#pragma unroll
    for (int dt = 0; dt < HS / 8; dt++) {
      o[dt][0] *= a0;
      o[dt][1] *= a0;
      o[dt][2] *= a1;
      o[dt][3] *= a1;
#pragma unroll
      for (int ks = 0; ks < MMA_TK / 16; ks++) {
        const __nv_bfloat16 *vr = &Vt[(dt * 8 + g) * VS + ks * 16 + 2 * t4];
        mma_bf16(o[dt], pf[ks], *reinterpret_cast<const uint32_t *>(vr),
                 *reinterpret_cast<const uint32_t *>(vr + 8));
      }
    }
  }
  // o / l as bf16 (rows past the batch end are not written; l > 0 for the rest:
  // every query sees at least itself).
  const float inv0 = l0 > 0.f ? 1.0f / l0 : 0.f, inv1 = l1 > 0.f ? 1.0f / l1 : 0.f;
#pragma unroll
  for (int dt = 0; dt < HS / 8; dt++) {
    const int col = h * HS + dt * 8 + 2 * t4;
    if (r0 < nq) {
      __nv_bfloat162 v = __floats2bfloat162_rn(o[dt][0] * inv0, o[dt][1] * inv0);
      *reinterpret_cast<__nv_bfloat162 *>(out + (int64_t)(q0 + r0) * C + col) = v;
    }
    if (r1 < nq) {
      __nv_bfloat162 v = __floats2bfloat162_rn(o[dt][2] * inv1, o[dt][3] * inv1);
      *reinterpret_cast<__nv_bfloat162 *>(out + (int64_t)(q0 + r1) * C + col) = v;
    }
  }
}

extern "C" void af_cuda_attention_bf16_forward(af_cuda_context *ctx, uint16_t *out,
                                               float *scratch, const float *qkv,
                                               const int32_t *cu_seqlens, int B, int T, int C,
                                               int NH) {
  if (af_cuda_has_pending(ctx) || B <= 0 || T <= 0)
    return;
  if (C <= 0 || NH <= 0 || C % NH != 0) {
    af_cuda_record(ctx, AF_ERR_ARG,
                   "attention_bf16: hidden size C = %d is not a positive multiple of the %d heads",
                   C, NH);
    return;
  }
  const int HS = C / NH;
  if ((HS == 32 || HS == 64) && C % 2 == 0) {
    const float scale_log2 = 1.4426950408889634f / sqrtf((float)HS); // log2(e) / sqrt(HS)
    dim3 grid((unsigned)((T + MMA_TQ - 1) / MMA_TQ), (unsigned)NH);
    if (HS == 32)
      attention_mma_kernel<32><<<grid, MMA_THREADS, 0, ctx->stream>>>(out, qkv, cu_seqlens, B, T,
                                                                      C, scale_log2);
    else
      attention_mma_kernel<64><<<grid, MMA_THREADS, 0, ctx->stream>>>(out, qkv, cu_seqlens, B, T,
                                                                      C, scale_log2);
    af_cuda_check_launch(ctx, "attention_mma_kernel");
    return;
  }
  // Other head sizes: the SIMT fp32 kernel into scratch (T, C), then a cast.
  af_cuda_attention_forward(ctx, scratch, NULL, qkv, cu_seqlens, B, C, NH);
  af_cuda_cast_bf16(ctx, out, scratch, (int64_t)T * C);
}
