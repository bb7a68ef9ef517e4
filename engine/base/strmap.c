/* String -> int64 hash map (see strmap.h). */
#include "base/strmap.h"

#include <stdlib.h>
#include <string.h>

/* Arena blocks double from ARENA_FIRST to ARENA_BLOCK bytes: a small map
 * (one catalog of a few rows) does not take a megabyte. */
#define ARENA_FIRST ((size_t)1 << 12)
#define ARENA_BLOCK ((size_t)1 << 20)

/* 32 bytes; keys of up to 8 bytes (most ids) are also kept inline so that a
 * lookup touches one slot and not the arena. The slot index uses the low bits
 * of the hash, which `hash` keeps (tables stay below 2^32 slots). */
typedef struct {
  const char *key; /* NULL marks an empty slot */
  uint32_t hash;   /* low 32 bits of the key's hash */
  uint32_t len;
  int64_t value;
  char inl[8];     /* the key's first min(len, 8) bytes */
} slot;

static inline int slot_matches(const slot *s, uint32_t h, const char *key, size_t len) {
  if (s->hash != h || s->len != len)
    return 0;
  if (len <= sizeof s->inl)
    return memcmp(s->inl, key, len) == 0;
  return memcmp(s->key, key, len) == 0;
}

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  char data[];
} arena_block;

struct af_strmap {
  slot *slots; /* (cap) power of two */
  size_t cap, size;
  arena_block *arena;
};

/* 64-bit FNV-1a over 8-byte words, then a murmur-style finaliser: fast for
 * short ids and well mixed in the low bits used for the slot index. */
uint64_t af_hash_bytes(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)len;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
    p += 8;
    len -= 8;
  }
  while (len--)
    h = (h ^ *p++) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

af_status af_strmap_create(size_t expected, af_strmap **out, af_error *err) {
  *out = NULL;
  af_strmap *m = af_calloc(1, sizeof *m, err);
  if (!m)
    return AF_ERR_NOMEM;
  size_t cap = 64;
  while (cap < expected * 2)
    cap *= 2;
  m->slots = af_calloc(cap, sizeof *m->slots, err);
  if (!m->slots) {
    free(m);
    return AF_ERR_NOMEM;
  }
  m->cap = cap;
  *out = m;
  return AF_OK;
}

void af_strmap_free(af_strmap *m) {
  if (!m)
    return;
  arena_block *b = m->arena;
  while (b) {
    arena_block *n = b->next;
    free(b);
    b = n;
  }
  free(m->slots);
  free(m);
}

size_t af_strmap_size(const af_strmap *m) { return m->size; }

int64_t af_strmap_get(const af_strmap *m, const char *key, size_t len) {
  uint64_t h = af_hash_bytes(key, len);
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const slot *s = &m->slots[i];
    if (!s->key)
      return -1;
    if (slot_matches(s, (uint32_t)h, key, len))
      return s->value;
  }
}

static const char *arena_copy(af_strmap *m, const char *key, size_t len, af_error *err) {
  arena_block *b = m->arena;
  if (!b || b->cap - b->used < len + 1) {
    size_t cap = !b ? ARENA_FIRST : b->cap < ARENA_BLOCK ? 2 * b->cap : ARENA_BLOCK;
    if (cap < len + 1)
      cap = len + 1;
    arena_block *nb = af_malloc(1, sizeof *nb + cap, err);
    if (!nb)
      return NULL;
    nb->next = b;
    nb->used = 0;
    nb->cap = cap;
    m->arena = b = nb;
  }
  char *dst = b->data + b->used;
  memcpy(dst, key, len);
  dst[len] = '\0';
  b->used += len + 1;
  return dst;
}

static af_status grow(af_strmap *m, af_error *err) {
  size_t cap = m->cap * 2;
  slot *ns = af_calloc(cap, sizeof *ns, err);
  if (!ns)
    return AF_ERR_NOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slots[i].key)
      continue;
    size_t j = m->slots[i].hash & (cap - 1);
    while (ns[j].key)
      j = (j + 1) & (cap - 1);
    ns[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = ns;
  m->cap = cap;
  return AF_OK;
}

af_status af_strmap_put(af_strmap *m, const char *key, size_t len, int64_t value,
                        int64_t *existing, const char **stored_key, af_error *err) {
  if (len > UINT32_MAX || m->cap > ((size_t)1 << 31))
    return af_error_set(err, AF_ERR_ARG, "key too long (%zu bytes)", len);
  if ((m->size + 1) * 2 > m->cap)
    AF_TRY(grow(m, err));
  uint64_t h = af_hash_bytes(key, len);
  size_t mask = m->cap - 1;
  size_t i = h & mask;
  for (;; i = (i + 1) & mask) {
    slot *s = &m->slots[i];
    if (!s->key)
      break;
    if (slot_matches(s, (uint32_t)h, key, len)) {
      if (existing)
        *existing = s->value;
      if (stored_key)
        *stored_key = s->key;
      return AF_OK;
    }
  }
  const char *copy = arena_copy(m, key, len, err);
  if (!copy)
    return AF_ERR_NOMEM;
  slot *ns = &m->slots[i];
  ns->key = copy;
  ns->hash = (uint32_t)h;
  ns->len = (uint32_t)len;
  ns->value = value;
  memcpy(ns->inl, key, len < sizeof ns->inl ? len : sizeof ns->inl);
  m->size++;
  if (existing)
    *existing = -1;
  if (stored_key)
    *stored_key = copy;
  return AF_OK;
}
