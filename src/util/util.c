/* util: env shorthands, bounded buffers, logging and hex. The core calls
 * these instead of libc's allocator, clock or stdio so that a test or the
 * simulator decides what they do. */
#include "util/util.h"

#include <sodium.h>
#include <stdio.h>

void *kith_malloc(const kith_env *env, size_t size)
{
    return env->realloc(env->ctx, NULL, size ? size : 1);
}

void *kith_calloc(const kith_env *env, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = kith_malloc(env, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *kith_realloc(const kith_env *env, void *ptr, size_t size)
{
    return env->realloc(env->ctx, ptr, size ? size : 1);
}

void kith_free(const kith_env *env, void *ptr)
{
    if (ptr)
        env->free(env->ctx, ptr);
}

char *kith_strndup(const kith_env *env, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = kith_malloc(env, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void kith_random(const kith_env *env, void *buf, size_t len)
{
    env->random(env->ctx, buf, len);
}

uint64_t kith_mono_ms(const kith_env *env)
{
    return env->mono_ms(env->ctx);
}

uint64_t kith_wall_ms(const kith_env *env)
{
    return env->wall_ms(env->ctx);
}

void kith_buf_init(kith_buf *b, const kith_env *env, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->env = env;
}

int kith_buf_reserve(kith_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return KITH_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max)
        ncap = b->max;
    /* Not realloc: the old block may hold plaintext or keys, so it is
     * wiped before it goes back to the allocator. */
    uint8_t *p = kith_malloc(b->env, ncap);
    if (!p)
        return KITH_ENOMEM;
    if (b->data) {
        memcpy(p, b->data, b->len);
        sodium_memzero(b->data, b->cap);
        kith_free(b->env, b->data);
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int kith_buf_append(kith_buf *b, const void *data, size_t len)
{
    int rc = kith_buf_reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int kith_buf_append_u8(kith_buf *b, uint8_t v)
{
    return kith_buf_append(b, &v, 1);
}

void kith_buf_consume(kith_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void kith_buf_reset(kith_buf *b)
{
    b->len = 0;
}

void kith_buf_free(kith_buf *b)
{
    if (b->data) {
        sodium_memzero(b->data, b->cap);
        kith_free(b->env, b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

void kith_log(const kith_env *env, int level, const char *fmt, ...)
{
    if (!env || !env->log || level > env->log_level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    env->log(env->ctx, level, line);
}

void kith_hex(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kith_unhex(uint8_t *out, size_t outlen, const char *in, size_t inlen)
{
    if (inlen != 2 * outlen)
        return KITH_EINVAL;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return KITH_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
