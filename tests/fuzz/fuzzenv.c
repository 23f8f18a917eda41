/* fuzzenv: see fuzzenv.h. */
#include "fuzzenv.h"

#include <stdlib.h>

uint64_t fuzz_rng_state = 1;

static uint64_t fuzz_ms(void *ctx)
{
    (void)ctx;
    return FUZZ_NOW_MS;
}

static void fuzz_random(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint64_t z = (fuzz_rng_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        p[i] = (uint8_t)(z ^ (z >> 31));
    }
}

void *fuzz_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

void fuzz_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

const kith_env fuzz_env = {
    .mono_ms = fuzz_ms,
    .wall_ms = fuzz_ms,
    .random = fuzz_random,
    .realloc = fuzz_realloc,
    .free = fuzz_free,
};
