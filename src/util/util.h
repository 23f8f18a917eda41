/* util: small helpers every core module uses: env shorthands, bounded
 * buffers, logging, and big-endian integer access. */
#ifndef KITH_UTIL_H
#define KITH_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kith/env.h"
#include "kith/err.h"

#define KITH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KITH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KITH_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation through the env. kith_calloc zeroes and checks n*size for overflow. */
void *kith_malloc(const kith_env *env, size_t size);
void *kith_calloc(const kith_env *env, size_t n, size_t size);
void *kith_realloc(const kith_env *env, void *ptr, size_t size);
void kith_free(const kith_env *env, void *ptr);
char *kith_strndup(const kith_env *env, const char *s, size_t max);
void kith_random(const kith_env *env, void *buf, size_t len);
uint64_t kith_mono_ms(const kith_env *env);
uint64_t kith_wall_ms(const kith_env *env);

/* Bounded growable byte buffer. Appends past `max` fail with KITH_ETOOBIG and
 * leave the buffer as it was. */
typedef struct kith_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
    const kith_env *env;
} kith_buf;

void kith_buf_init(kith_buf *b, const kith_env *env, size_t max);
KITH_WUR int kith_buf_reserve(kith_buf *b, size_t extra);
KITH_WUR int kith_buf_append(kith_buf *b, const void *data, size_t len);
KITH_WUR int kith_buf_append_u8(kith_buf *b, uint8_t v);
/* Drop the first n bytes (n <= len). */
void kith_buf_consume(kith_buf *b, size_t n);
void kith_buf_reset(kith_buf *b);
/* Wipe (sodium_memzero) and free. */
void kith_buf_free(kith_buf *b);

/* Logging: printf-style, goes to env->log when level <= env->log_level. */
void kith_log(const kith_env *env, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define KITH_LOGE(env, ...) kith_log((env), KITH_LOG_ERROR, __VA_ARGS__)
#define KITH_LOGW(env, ...) kith_log((env), KITH_LOG_WARN, __VA_ARGS__)
#define KITH_LOGI(env, ...) kith_log((env), KITH_LOG_INFO, __VA_ARGS__)
#define KITH_LOGD(env, ...) kith_log((env), KITH_LOG_DEBUG, __VA_ARGS__)

/* Big-endian helpers for fixed headers. */
static inline void kith_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline uint16_t kith_get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline void kith_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t kith_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void kith_put_be64(uint8_t *p, uint64_t v)
{
    kith_put_be32(p, (uint32_t)(v >> 32));
    kith_put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t kith_get_be64(const uint8_t *p)
{
    return (uint64_t)kith_get_be32(p) << 32 | kith_get_be32(p + 4);
}

/* Hex for logs and tests; out must hold 2*len+1. */
void kith_hex(char *out, const uint8_t *in, size_t len);
/* Parse exactly outlen bytes of hex; KITH_EINVAL on anything else. */
KITH_WUR int kith_unhex(uint8_t *out, size_t outlen, const char *in, size_t inlen);

#endif
