/* testenv: a deterministic kith_env for unit tests (seeded RNG, settable
 * clocks, counting allocator that can be told to fail), and cmocka helpers. */
#ifndef KITH_TESTENV_H
#define KITH_TESTENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kith/env.h"

typedef struct test_env {
    kith_env env;
    uint64_t mono;
    uint64_t wall;
    uint64_t rng_state;
    size_t allocs; /* live allocations */
    long fail_after; /* fail the allocation after this many more; -1 never */
} test_env;

/* Seeded env: wall clock 2026-01-01, mono 1000 ms, RNG from seed. */
void test_env_init(test_env *t, uint64_t seed);
/* Path of the shared directory (../shared beside the repo). */
const char *test_shared_dir(void);
/* mkdtemp under /tmp; returns a static-lifetime string the caller frees with free(). */
char *test_tmpdir(void);
/* rm -rf of a test directory (only under /tmp). */
void test_rmrf(const char *dir);

#endif
