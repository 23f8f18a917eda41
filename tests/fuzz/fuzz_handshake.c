/* fuzz_handshake: a responder kith_session fed arbitrary bytes as handshake
 * messages. The first input byte picks how far a well-behaved initiator (the
 * raw Noise engine, deterministic) takes the handshake before the fuzz bytes
 * take over, so the fuzzer reaches every handshake step:
 *   0: the rest is fed raw from the start (message 1 framing and sizes);
 *   1: a valid message 1 first, then the rest raw (message 3 attempts);
 *   2: a valid handshake whose message 3 certificate payload is the genuine
 *      certificate XOR the next 103 input bytes (so the wire parser and the
 *      certificate check see arbitrary, correctly encrypted payloads), then
 *      the rest raw as transport frames.
 * The second byte sets the feed size, to exercise partial frames. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "session/noise.h"
#include "session/session.h"
#include "util/util.h"

#include "fuzzenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kith_identity ids[2]; /* 0 initiator, 1 responder */
static int ready;

static void setup(void)
{
    if (ready)
        return;
    if (sodium_init() < 0)
        abort();
    fuzz_rng_state = 42;
    if (kith_identity_generate(&fuzz_env, &ids[0]) || kith_identity_generate(&fuzz_env, &ids[1]))
        abort();
    ready = 1;
}

static int drop(void *ud, const uint8_t *m, size_t n)
{
    (void)ud;
    (void)m;
    (void)n;
    return 0;
}

static void frame(kith_buf *b, const uint8_t *m, size_t n)
{
    uint8_t hdr[2];
    kith_put_be16(hdr, (uint16_t)n);
    if (kith_buf_append(b, hdr, 2) || kith_buf_append(b, m, n))
        abort();
}

/* Feeds buf to s in pieces of `step`; stops at the first error. */
static int feed(kith_session *s, const uint8_t *p, size_t n, size_t step, kith_buf *out)
{
    for (size_t off = 0; off < n; off += step) {
        int rc = kith_session_feed(s, p + off, KITH_MIN(step, n - off), out, drop, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fuzz_rng_state = 7;
    if (size < 2)
        return 0;
    int mode = data[0] % 3;
    size_t step = (size_t)data[1] + 1;
    data += 2;
    size -= 2;

    kith_session *s;
    kith_noise *hs = NULL;
    kith_buf in, out;
    kith_buf_init(&in, &fuzz_env, 1 << 20);
    kith_buf_init(&out, &fuzz_env, 1 << 20);
    if (kith_session_new(&fuzz_env, &ids[1], false, &s))
        abort();
    uint8_t m[512], pl[512];
    size_t n, pn;
    if (mode >= 1) {
        if (kith_noise_new(&fuzz_env, "Noise_XX_25519_ChaChaPoly_BLAKE2b", true, &hs)
            || kith_noise_set_prologue(hs, (const uint8_t *)"kith/1", 6)
            || kith_noise_set_s(hs, ids[0].dh_sk)
            || kith_noise_write_message(hs, NULL, 0, m, sizeof m, &n))
            abort();
        frame(&in, m, n);
        if (feed(s, in.data, in.len, step, &out) || out.len != 201)
            abort(); /* a valid message 1 must be answered */
        kith_buf_reset(&in);
    }
    if (mode == 2) {
        if (kith_noise_read_message(hs, out.data + 2, out.len - 2, pl, sizeof pl, &pn) || pn != 103)
            abort();
        static const uint8_t h1[] = { 0x82, 0x01, 0xc4, 0x20 }, h2[] = { 0x02, 0xc4, 0x40 };
        memcpy(pl, h1, 4);
        memcpy(pl + 4, ids[0].id_pk, 32);
        memcpy(pl + 36, h2, 3);
        memcpy(pl + 39, ids[0].cert_sig, 64);
        size_t x = KITH_MIN(size, (size_t)103);
        for (size_t i = 0; i < x; i++)
            pl[i] ^= data[i];
        data += x;
        size -= x;
        if (kith_noise_write_message(hs, pl, 103, m, sizeof m, &n))
            abort();
        frame(&in, m, n);
        int rc = feed(s, in.data, in.len, step, &out);
        /* the genuine certificate must be accepted */
        if (x == 0 && (rc || !kith_session_established(s)))
            abort();
    }
    int rc = feed(s, data, size, step, &out);
    /* fail closed: once failed, always failed */
    if (rc && kith_session_failed(s) && kith_session_feed(s, m, 1, &out, drop, NULL) != KITH_ESTATE)
        abort();
    kith_noise_free(hs);
    kith_session_free(s);
    kith_buf_free(&in);
    kith_buf_free(&out);
    return 0;
}
