/* String -> int64 hash map (open addressing, linear probing).
 *
 * Keys are copied into an arena the map owns, so callers may pass transient
 * buffers (a CSV reader's fields). Used to map external ids (product ids,
 * order ids, item names) to dense row indices in O(1) expected time. */
#ifndef AF_STRMAP_H
#define AF_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_strmap af_strmap;

af_status af_strmap_create(size_t expected, af_strmap **out, af_error *err);
void af_strmap_free(af_strmap *m);

/* Value stored for key (len bytes), or -1 when absent. */
int64_t af_strmap_get(const af_strmap *m, const char *key, size_t len);

/* Inserts key -> value unless the key is present. *existing receives the
 * value already stored (or -1 when the key was new and is now inserted).
 * *stored_key (may be NULL) receives the map's NUL-terminated copy of the key,
 * valid for the map's lifetime. */
af_status af_strmap_put(af_strmap *m, const char *key, size_t len, int64_t value,
                        int64_t *existing, const char **stored_key, af_error *err);

size_t af_strmap_size(const af_strmap *m);

uint64_t af_hash_bytes(const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
