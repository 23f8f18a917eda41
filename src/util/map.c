/* util/map: open-addressing hash map keyed by 32 uniformly random bytes, so
 * the first 8 key bytes serve as the hash. Keys come from BLAKE2b outputs or
 * public keys; an attacker who grinds keys to collide only slows lookups in a
 * map whose size is capped. Linear probing, load factor <= 1/2, no deletes. */
#include "util/map.h"

void kith_map_init(kith_map *m, const kith_env *env, size_t max)
{
    memset(m, 0, sizeof *m);
    m->env = env;
    m->max = max;
}

void kith_map_free(kith_map *m)
{
    kith_free(m->env, m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static size_t slot_of(const kith_map *m, const uint8_t key[32])
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 32)) & (m->cap - 1);
}

static kith_map_slot *find(const kith_map *m, const uint8_t key[32])
{
    if (!m->cap)
        return NULL;
    size_t i = slot_of(m, key);
    for (;;) {
        kith_map_slot *s = &m->slots[i];
        if (!s->used || memcmp(s->key, key, 32) == 0)
            return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static int grow(kith_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    kith_map_slot *old = m->slots;
    size_t ocap = m->cap;
    kith_map_slot *n = kith_calloc(m->env, ncap, sizeof *n);
    if (!n)
        return KITH_ENOMEM;
    m->slots = n;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].used)
            *find(m, old[i].key) = old[i];
    }
    kith_free(m->env, old);
    return 0;
}

int kith_map_put(kith_map *m, const uint8_t key[32], uint64_t val)
{
    kith_map_slot *s = find(m, key);
    if (s && s->used) {
        s->val = val;
        return 0;
    }
    if (m->count >= m->max)
        return KITH_ETOOBIG;
    if ((m->count + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc)
            return rc;
        s = find(m, key);
    }
    memcpy(s->key, key, 32);
    s->val = val;
    s->used = 1;
    m->count++;
    return 0;
}

bool kith_map_get(const kith_map *m, const uint8_t key[32], uint64_t *val)
{
    const kith_map_slot *s = find(m, key);
    if (!s || !s->used)
        return false;
    if (val)
        *val = s->val;
    return true;
}
