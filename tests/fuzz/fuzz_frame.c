/* fuzz_frame: the session's transport side. Each input first builds an
 * established session deterministically (a raw Noise initiator, which keeps
 * its transport keys, against a kith_session responder), then:
 *   byte 0 even: the rest is fed raw to the established session (framing,
 *     length checks, tag failures);
 *   byte 0 odd: the rest is read as records [flag][len:2 BE][bytes] that the
 *     raw initiator encrypts into valid frames, so the flag handling and
 *     reassembly (cap, delivery) see arbitrary authenticated plaintext.
 * Byte 1 sets the feed size, to exercise frames split across feeds. */
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

static kith_identity ids[2];
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

static size_t delivered;

static int count(void *ud, const uint8_t *m, size_t n)
{
    (void)ud;
    if (n > KITH_SESSION_MAX_APP || (n && !m))
        abort();
    delivered++;
    return 0;
}

static void frame(kith_buf *b, const uint8_t *m, size_t n)
{
    uint8_t hdr[2];
    kith_put_be16(hdr, (uint16_t)n);
    if (kith_buf_append(b, hdr, 2) || kith_buf_append(b, m, n))
        abort();
}

/* Raw initiator + responder session, handshake done. */
static kith_session *establish(kith_noise_cs *send)
{
    kith_session *s;
    kith_noise *hs;
    kith_noise_cs recv;
    kith_buf in, out;
    uint8_t m[512], pl[512];
    size_t n, pn;
    kith_buf_init(&in, &fuzz_env, 4096);
    kith_buf_init(&out, &fuzz_env, 4096);
    if (kith_session_new(&fuzz_env, &ids[1], false, &s)
        || kith_noise_new(&fuzz_env, "Noise_XX_25519_ChaChaPoly_BLAKE2b", true, &hs)
        || kith_noise_set_prologue(hs, (const uint8_t *)"kith/1", 6)
        || kith_noise_set_s(hs, ids[0].dh_sk)
        || kith_noise_write_message(hs, NULL, 0, m, sizeof m, &n))
        abort();
    frame(&in, m, n);
    if (kith_session_feed(s, in.data, in.len, &out, count, NULL) || out.len < 2
        || kith_noise_read_message(hs, out.data + 2, out.len - 2, pl, sizeof pl, &pn) || pn != 103)
        abort();
    static const uint8_t h1[] = { 0x82, 0x01, 0xc4, 0x20 }, h2[] = { 0x02, 0xc4, 0x40 };
    memcpy(pl, h1, 4);
    memcpy(pl + 4, ids[0].id_pk, 32);
    memcpy(pl + 36, h2, 3);
    memcpy(pl + 39, ids[0].cert_sig, 64);
    if (kith_noise_write_message(hs, pl, 103, m, sizeof m, &n))
        abort();
    kith_buf_reset(&in);
    frame(&in, m, n);
    if (kith_session_feed(s, in.data, in.len, &out, count, NULL) || !kith_session_established(s)
        || kith_noise_split(hs, send, &recv))
        abort();
    kith_noise_free(hs);
    kith_buf_free(&in);
    kith_buf_free(&out);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    fuzz_rng_state = 7;
    delivered = 0;
    if (size < 2)
        return 0;
    bool structured = data[0] & 1;
    size_t step = (size_t)data[1] * 257 + 1;
    data += 2;
    size -= 2;

    kith_noise_cs send;
    kith_session *s = establish(&send);
    kith_buf stream, out;
    kith_buf_init(&stream, &fuzz_env, (size_t)4 << 20);
    kith_buf_init(&out, &fuzz_env, 1 << 20);
    if (!structured) {
        if (kith_buf_append(&stream, data, size))
            abort();
    } else {
        static uint8_t pt[KITH_NOISE_MAX_MSG];
        size_t i = 0;
        while (i < size) {
            uint8_t flag = data[i++];
            size_t len = 0;
            if (i + 2 <= size)
                len = kith_get_be16(data + i);
            i += 2;
            len = KITH_MIN(len, (size_t)KITH_NOISE_MAX_MSG - KITH_NOISE_TAG - 1);
            if (stream.len + 2 + 1 + len + KITH_NOISE_TAG > stream.max)
                break; /* enough: the stream is capped */
            size_t have = i < size ? KITH_MIN(len, size - i) : 0;
            pt[0] = flag;
            /* the chunk repeats the input bytes it has to reach `len` */
            for (size_t k = 0; k < len; k++)
                pt[1 + k] = have ? data[i + k % have] : (uint8_t)k;
            i += have;
            size_t n;
            if (kith_noise_cs_encrypt(&send, NULL, 0, pt, 1 + len, pt, sizeof pt, &n))
                abort();
            frame(&stream, pt, n);
        }
    }
    /* small steps split frames in every way; bounded so a large stream is
     * not fed a byte at a time (which only costs time) */
    step = KITH_MAX(step, stream.len / 4096);
    int rc = 0;
    for (size_t off = 0; off < stream.len && rc == 0; off += step)
        rc = kith_session_feed(
            s, stream.data + off, KITH_MIN(step, stream.len - off), &out, count, NULL);
    if (rc && (!kith_session_failed(s) || kith_session_send(s, NULL, 0, &out) != KITH_ESTATE))
        abort(); /* every error poisons */
    if (!rc && kith_session_failed(s))
        abort();
    kith_noise_cs_wipe(&send);
    kith_session_free(s);
    kith_buf_free(&stream);
    kith_buf_free(&out);
    return 0;
}
