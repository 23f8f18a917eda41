/* util/map: an open-addressing hash map from 32-byte keys (ids and hashes,
 * already uniformly distributed) to a 64-bit value. Used for dedup sets of
 * message ids and (author, seq) indexes. Memory through kith_env; the map
 * refuses to grow past its max entries (KITH_ETOOBIG) so a peer can't make it
 * unbounded. */
#ifndef KITH_MAP_H
#define KITH_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct kith_map_slot {
    uint8_t key[32];
    uint64_t val;
    uint8_t used;
} kith_map_slot;

typedef struct kith_map {
    const kith_env *env;
    kith_map_slot *slots;
    size_t cap; /* power of two */
    size_t count;
    size_t max;
} kith_map;

void kith_map_init(kith_map *m, const kith_env *env, size_t max);
void kith_map_free(kith_map *m);
/* Insert or overwrite. */
KITH_WUR int kith_map_put(kith_map *m, const uint8_t key[32], uint64_t val);
/* True and *val set when present (val may be NULL). */
bool kith_map_get(const kith_map *m, const uint8_t key[32], uint64_t *val);

#endif
