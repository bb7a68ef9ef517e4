/* The fused all-pairs top-k kernel's geometry, shared by the CUDA kernel
 * (kernels/cuda/topk_fused.cu), its CPU twin (kernels/cpu/topk_fused.c) and the
 * driver (engine/search/score_bf16.c): plain C, no dependencies, so that both
 * sides compute the same split boundaries and list sizes. */
#ifndef AF_TOPK_FUSED_H
#define AF_TOPK_FUSED_H

#define AF_FUSED_QR 64     /* query rows per block: 4 warps x 16 (one m16 tile each) */
#define AF_FUSED_CT 32     /* catalog columns per streamed tile (4 n8 tiles per warp) */
#define AF_FUSED_MAX_D 384 /* padded dimension limit: the query fragments live in registers */
#define AF_FUSED_MAX_KP 96 /* k' limit: a row's list + one tile's survivors fit 128 slots */
#define AF_FUSED_MAX_N2 128
#define AF_FUSED_PARTIALS 4096 /* (S + 1) k' limit of the partial-list merge (48 KB of smem) */

/* Slots of a row's shared list: the power of two >= kp + AF_FUSED_CT. */
static inline int af_fused_n2(int kp) {
  int n2 = 1;
  while (n2 < kp + AF_FUSED_CT)
    n2 <<= 1;
  return n2;
}

/* Columns per split of a chunk of cc columns in S splits: a multiple of the
 * tile width; split s covers [s w, min(cc, (s + 1) w)) (possibly empty). */
static inline int af_fused_split_width(int cc, int S) {
  const int w = (cc + S - 1) / S;
  return (w + AF_FUSED_CT - 1) / AF_FUSED_CT * AF_FUSED_CT;
}

/* The largest split count the partial merge accepts for k'. */
static inline int af_fused_max_splits(int kp) {
  const int s = AF_FUSED_PARTIALS / kp - 1;
  return s < 1 ? 1 : (s > 64 ? 64 : s);
}

#endif
