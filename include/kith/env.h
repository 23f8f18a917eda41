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

/* One signature check (kith_env.verify_many): Ed25519 of `msg` (the signed
 * bytes, domain included) under `pk`. The checker sets `ok` to 1 when the
 * signature is good, 0 otherwise (kith_sig_check in src/crypto). */
typedef struct kith_sig_job {
    const uint8_t *pk; /* 32 bytes */
    const uint8_t *msg;
    size_t len;
    const uint8_t *sig; /* 64 bytes */
    int ok;
} kith_sig_job;

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
    /* Optional (NULL: the node checks signatures one at a time, in order):
     * check n independent signatures and return when all are done, each
     * job's `ok` set by kith_sig_check. The driver may spread the jobs over
     * threads (src/uvnode/verify.c); the node calls it from its own thread
     * and is not re-entered meanwhile. It takes verify_ctx, not ctx. */
    void (*verify_many)(void *verify_ctx, kith_sig_job *jobs, size_t n);
    void *verify_ctx;
} kith_env;

/* The real environment: clock_gettime, libsodium's randombytes, libc malloc
 * and stderr. Lives in the driver layer (src/uvnode/env_real.c). */
void kith_env_init_real(kith_env *env);

#endif
