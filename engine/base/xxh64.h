/* XXH64 (Yann Collet's xxHash, 64-bit; the published algorithm, written
 * here from its specification): the content digest of the files affinity
 * writes (io/digest.h). Streaming: init, update any number of times, final. */
#ifndef AF_XXH64_H
#define AF_XXH64_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint64_t v[4];
  uint64_t total;
  unsigned char buf[32];
  size_t buffered;
} af_xxh64_state;

void af_xxh64_init(af_xxh64_state *s, uint64_t seed);
void af_xxh64_update(af_xxh64_state *s, const void *data, size_t n);
uint64_t af_xxh64_final(const af_xxh64_state *s);
/* One shot. */
uint64_t af_xxh64(const void *data, size_t n, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
