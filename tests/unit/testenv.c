/* testenv: deterministic kith_env for unit tests. */
#define _DEFAULT_SOURCE
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t t_mono(void *ctx)
{
    return ((test_env *)ctx)->mono;
}

static uint64_t t_wall(void *ctx)
{
    return ((test_env *)ctx)->wall;
}

/* splitmix64: deterministic, good enough for tests (never for keys in use). */
static void t_random(void *ctx, void *buf, size_t len)
{
    test_env *t = ctx;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint64_t z = (t->rng_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        p[i] = (uint8_t)(z ^ (z >> 31));
    }
}

static void *t_realloc(void *ctx, void *ptr, size_t size)
{
    test_env *t = ctx;
    if (t->fail_after == 0)
        return NULL;
    if (t->fail_after > 0)
        t->fail_after--;
    void *p = realloc(ptr, size);
    if (p && !ptr)
        t->allocs++;
    return p;
}

static void t_free(void *ctx, void *ptr)
{
    test_env *t = ctx;
    if (ptr)
        t->allocs--;
    free(ptr);
}

static void t_log(void *ctx, int level, const char *line)
{
    (void)ctx;
    fprintf(stderr, "[log %d] %s\n", level, line);
}

void test_env_init(test_env *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->mono = 1000;
    t->wall = 1767225600000ull;
    t->rng_state = seed;
    t->fail_after = -1;
    t->env.ctx = t;
    t->env.mono_ms = t_mono;
    t->env.wall_ms = t_wall;
    t->env.random = t_random;
    t->env.realloc = t_realloc;
    t->env.free = t_free;
    t->env.log = t_log;
    t->env.log_level = getenv("KITH_TEST_LOG") ? KITH_LOG_DEBUG : KITH_LOG_ERROR;
}

const char *test_shared_dir(void)
{
    const char *e = getenv("KITH_SHARED_DIR");
    return e ? e : KITH_SHARED_DIR;
}

char *test_tmpdir(void)
{
    char tmpl[] = "/tmp/kith-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d)
        return NULL;
    chmod(d, 0700);
    return strdup(d);
}

void test_rmrf(const char *dir)
{
    if (!dir || strncmp(dir, "/tmp/kith-test-", 15) != 0)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "rm -rf %s failed\n", dir);
}
