/* fuzzenv: the one environment the fuzz targets run in: a fixed clock
 * (FUZZ_NOW_MS), randomness from a splitmix64 stream whose state a target
 * may set (fuzz_rng_state, so runs and generated corpora reproduce), libc
 * memory, no log. */
#ifndef KITH_FUZZENV_H
#define KITH_FUZZENV_H

#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"

#define FUZZ_NOW_MS 1767225600000ull

extern uint64_t fuzz_rng_state;
extern const kith_env fuzz_env;

/* The memory functions on their own, for a target with its own env. */
void *fuzz_realloc(void *ctx, void *p, size_t n);
void fuzz_free(void *ctx, void *p);

#endif
