/* Philox4x32-10, the counter-based random number generator of Random123
 * (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11). A pure function of a 128-bit counter and a 64-bit key: any element
 * of a random stream can be drawn independently, in any order, on any device,
 * which is what lets CPU and GPU draw identical dropout masks.
 *
 * Everything here is static inline and free of libc, so that CUDA sources can
 * include this header as is (AF_PHILOX_FN adds __host__ __device__ there). */
#ifndef AF_PHILOX_H
#define AF_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define AF_PHILOX_FN static inline __host__ __device__
#else
#define AF_PHILOX_FN static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The constants of Random123's philox.h (PHILOX_M4x32_0/1, PHILOX_W32_0/1). */
#define AF_PHILOX_M0 0xD2511F53u
#define AF_PHILOX_M1 0xCD9E8D57u
#define AF_PHILOX_W0 0x9E3779B9u
#define AF_PHILOX_W1 0xBB67AE85u

/* out = Philox4x32-10(ctr, key). out may alias ctr. */
AF_PHILOX_FN void af_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) { // the key is bumped before every round but the first
      k0 += AF_PHILOX_W0;
      k1 += AF_PHILOX_W1;
    }
    uint64_t p0 = (uint64_t)AF_PHILOX_M0 * c0; // hi/lo of the two 32x32 products
    uint64_t p1 = (uint64_t)AF_PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* The four 32-bit words of block `block` of the stream (seed, stream):
 * counter = (block lo, block hi, stream lo, stream hi), key = (seed lo, seed hi).
 * Element i of a tensor uses word i % 4 of block i / 4. */
AF_PHILOX_FN void af_philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  af_philox4x32_10(ctr, key, out);
}

/* A 32-bit word as a uniform float in [0, 1): its top 24 bits times 2^-24
 * (exact in float; 1.0 is never returned). */
AF_PHILOX_FN float af_philox_uniform(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

#ifndef __CUDACC__
/* out[i] = af_philox_uniform(word i % 4 of block i / 4) for i < n: the same
 * numbers a device kernel draws for element i. out (n). */
void af_philox_fill_uniform(float *out, int64_t n, uint64_t seed, uint64_t stream);
#endif

#ifdef __cplusplus
}
#endif
#endif /* AF_PHILOX_H */
