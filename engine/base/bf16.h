/* bf16 (bfloat16) conversion: the upper 16 bits of an fp32, rounded to nearest
 * even (as CUDA's __float2bfloat16_rn). Used by the bf16 kernels' CPU twins
 * (kernels/cpu/bf16.c) and the bf16 scorer's emulation (engine/search). */
#ifndef AF_BF16_H
#define AF_BF16_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Round to nearest even; NaN stays a (quiet) NaN of the same sign; values at or
 * above the midpoint between the largest bf16 and 2^128 become infinity. */
static inline uint16_t af_bf16_from_f32(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((u >> 16) | 0x0040u); // NaN: keep the sign, force quiet
  u += 0x7fffu + ((u >> 16) & 1u);           // ties to even: + 0x7fff + the lowest kept bit
  return (uint16_t)(u >> 16);
}

static inline float af_f32_from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

#ifdef __cplusplus
}
#endif
#endif /* AF_BF16_H */
