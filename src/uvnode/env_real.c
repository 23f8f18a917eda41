/* uvnode/env_real: the real kith_env: clock_gettime, libsodium's RNG, libc's
 * allocator and stderr. Only drivers use it; the core sees kith_env. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kith/env.h"

static uint64_t real_mono(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t real_wall(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void real_random(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
}

static void *real_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void real_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static void real_log(void *ctx, int level, const char *line)
{
    (void)ctx;
    static const char *names[] = { "error", "warn", "info", "debug" };
    fprintf(stderr, "kith: %s: %s\n", names[level < 0 || level > 3 ? 0 : level], line);
}

void kith_env_init_real(kith_env *env)
{
    env->ctx = NULL;
    env->mono_ms = real_mono;
    env->wall_ms = real_wall;
    env->random = real_random;
    env->realloc = real_realloc;
    env->free = real_free;
    env->log = real_log;
    env->log_level = KITH_LOG_WARN;
    env->sig_known = NULL;
    env->sig_good = NULL;
    env->verify_many = NULL; /* src/uvnode/verify.c installs one */
    env->verify_ctx = NULL;
}
