/* kith_env: the one way the core reaches the outside world for time,
 * randomness, memory and log output. The libuv driver fills it with the real
 * thing; tests and the simulator fill it with deterministic stand-ins. */
#ifndef KITH_ENV_H
#define KITH_ENV_H

#include <stddef.h>
#include <stdint.h>

enum kith_log_level {
    KITH_LOG_ERROR = 0,
    KITH_LOG_WARN = 1,
    KITH_LOG_INFO = 2,
    KITH_LOG_DEBUG = 3,
};

typedef struct kith_env {
    void *ctx;
    uint64_t (*mono_ms)(void *ctx); /* monotonic milliseconds */
    uint64_t (*wall_ms)(void *ctx); /* Unix time in milliseconds */
    void (*random)(void *ctx, void *buf, size_t len); /* cryptographic randomness */
    void *(*realloc)(void *ctx, void *ptr, size_t size); /* size 0 never passed */
    void (*free)(void *ctx, void *ptr);
    void (*log)(void *ctx, int level, const char *line); /* may be NULL */
    int log_level;
    /* Optional (NULL for a real node): a memo of signatures already checked
     * and found good, for many nodes in one process (the simulator), where
     * every node checks the same signatures. The key is BLAKE2b-256 of the
     * public key, the signed bytes (domain and message) and the signature,
     * so a hit means exactly this check succeeded before; a failed check is
     * never recorded. */
    int (*sig_known)(void *ctx, const uint8_t key[32]); /* nonzero: known good */
    void (*sig_good)(void *ctx, const uint8_t key[32]);
} kith_env;

/* The real environment: clock_gettime, libsodium's randombytes, libc malloc
 * and stderr. Lives in the driver layer (src/uvnode/env_real.c). */
void kith_env_init_real(kith_env *env);

#endif
