/* XXH64 (see xxh64.h). */
#include "base/xxh64.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p) { /* little-endian */
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static inline uint32_t read32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t round64(uint64_t acc, uint64_t in) {
  acc += in * P2;
  return rotl(acc, 31) * P1;
}

static inline uint64_t merge(uint64_t h, uint64_t v) {
  h ^= round64(0, v);
  return h * P1 + P4;
}

void af_xxh64_init(af_xxh64_state *s, uint64_t seed) {
  memset(s, 0, sizeof *s);
  s->v[0] = seed + P1 + P2;
  s->v[1] = seed + P2;
  s->v[2] = seed;
  s->v[3] = seed - P1;
}

static void stripe(uint64_t v[4], const unsigned char *p) {
  v[0] = round64(v[0], read64(p));
  v[1] = round64(v[1], read64(p + 8));
  v[2] = round64(v[2], read64(p + 16));
  v[3] = round64(v[3], read64(p + 24));
}

void af_xxh64_update(af_xxh64_state *s, const void *data, size_t n) {
  const unsigned char *p = data;
  s->total += n;
  if (s->buffered) {
    size_t take = 32 - s->buffered < n ? 32 - s->buffered : n;
    memcpy(s->buf + s->buffered, p, take);
    s->buffered += take;
    p += take;
    n -= take;
    if (s->buffered < 32)
      return;
    stripe(s->v, s->buf);
    s->buffered = 0;
  }
  for (; n >= 32; p += 32, n -= 32)
    stripe(s->v, p);
  memcpy(s->buf, p, n);
  s->buffered = n;
}

uint64_t af_xxh64_final(const af_xxh64_state *s) {
  uint64_t h;
  if (s->total >= 32) {
    h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
    for (int i = 0; i < 4; i++)
      h = merge(h, s->v[i]);
  } else {
    h = s->v[2] + P5; /* v[2] is the seed */
  }
  h += s->total;
  const unsigned char *p = s->buf;
  size_t n = s->buffered;
  for (; n >= 8; p += 8, n -= 8) {
    h ^= round64(0, read64(p));
    h = rotl(h, 27) * P1 + P4;
  }
  if (n >= 4) {
    h ^= (uint64_t)read32(p) * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
    n -= 4;
  }
  for (; n; p++, n--) {
    h ^= *p * P5;
    h = rotl(h, 11) * P1;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

uint64_t af_xxh64(const void *data, size_t n, uint64_t seed) {
  af_xxh64_state s;
  af_xxh64_init(&s, seed);
  af_xxh64_update(&s, data, n);
  return af_xxh64_final(&s);
}
