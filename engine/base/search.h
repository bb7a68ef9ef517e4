/* Binary search in a sorted run of int32: the CSR rows of co-occurrence
 * (engine/assoc/cooccur.c) and the baskets' item lists (engine/train/basket.c)
 * are both ascending. */
#ifndef AF_SEARCH_H
#define AF_SEARCH_H

#include <stdint.h>

/* The first index i in [lo, hi) with v[i] >= x (v ascending there), or hi. */
static inline int64_t af_lower_bound_i32(const int32_t *v, int64_t lo, int64_t hi, int32_t x) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (v[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

#endif
