/* test_session: two sessions talking through buffers (handshake, identities,
 * binding, messages around every fragment boundary, 1-byte feeds), and a
 * hostile peer built from the raw Noise engine that can put any bytes in a
 * frame: tampering, bad flags, reassembly past the cap, bad certificates,
 * wrong sizes, garbage. */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "session/noise.h"
#include "session/session.h"
#include "util/util.h"

#define BUF_MAX ((size_t)8 << 20)

typedef struct inbox {
    size_t count;
    size_t last_len;
    uint8_t *last; /* malloc'd copy of the last message */
    int stop_after; /* return 99 after this many messages; 0 never */
} inbox;

static int on_msg(void *ud, const uint8_t *msg, size_t len)
{
    inbox *in = ud;
    free(in->last);
    in->last = malloc(len ? len : 1);
    assert_non_null(in->last);
    if (len)
        memcpy(in->last, msg, len);
    in->last_len = len;
    in->count++;
    if (in->stop_after && in->count % (size_t)in->stop_after == 0)
        return 99;
    return 0;
}

/* Feeds all of src into s, `step` bytes at a time, then empties src. */
static int feed(kith_session *s, kith_buf *src, size_t step, kith_buf *reply, inbox *in)
{
    int rc = 0;
    for (size_t off = 0; off < src->len && rc == 0; off += step) {
        size_t n = KITH_MIN(step, src->len - off);
        rc = kith_session_feed(s, src->data + off, n, reply, on_msg, in);
    }
    kith_buf_reset(src);
    return rc;
}

typedef struct pair {
    test_env t;
    kith_identity ia, ib;
    kith_session *a, *b; /* a initiates */
    kith_buf ab, ba; /* bytes in flight a->b, b->a */
    inbox ina, inb;
} pair;

static void pair_open(pair *p, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    test_env_init(&p->t, seed);
    assert_int_equal(kith_identity_generate(&p->t.env, &p->ia), 0);
    assert_int_equal(kith_identity_generate(&p->t.env, &p->ib), 0);
    kith_buf_init(&p->ab, &p->t.env, BUF_MAX);
    kith_buf_init(&p->ba, &p->t.env, BUF_MAX);
    assert_int_equal(kith_session_new(&p->t.env, &p->ia, true, &p->a), 0);
    assert_int_equal(kith_session_new(&p->t.env, &p->ib, false, &p->b), 0);
}

static void pair_handshake(pair *p, size_t step)
{
    assert_int_equal(kith_session_start(p->b, &p->ba), 0);
    assert_int_equal(p->ba.len, 0); /* responder start is a no-op */
    assert_int_equal(kith_session_start(p->a, &p->ab), 0);
    assert_int_equal(p->ab.len, 2 + 32);
    assert_int_equal(kith_session_start(p->a, &p->ab), KITH_ESTATE);
    assert_int_equal(feed(p->b, &p->ab, step, &p->ba, &p->inb), 0);
    assert_int_equal(p->ba.len, 2 + 199);
    assert_false(kith_session_established(p->b));
    assert_int_equal(feed(p->a, &p->ba, step, &p->ab, &p->ina), 0);
    assert_true(kith_session_established(p->a));
    assert_int_equal(p->ab.len, 2 + 167);
    assert_int_equal(feed(p->b, &p->ab, step, &p->ba, &p->inb), 0);
    assert_true(kith_session_established(p->b));
    assert_int_equal(p->ba.len, 0);
}

static void pair_close(pair *p)
{
    kith_session_free(p->a);
    kith_session_free(p->b);
    kith_buf_free(&p->ab);
    kith_buf_free(&p->ba);
    free(p->ina.last);
    free(p->inb.last);
    kith_identity_wipe(&p->ia);
    kith_identity_wipe(&p->ib);
    assert_int_equal(p->t.allocs, 0);
}

static void test_handshake_identities(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1);
    assert_null(kith_session_peer_id(p.a));
    assert_null(kith_session_binding(p.a));
    uint8_t m[4] = { 1, 2, 3, 4 };
    assert_int_equal(kith_session_send(p.a, m, 4, &p.ab), KITH_ESTATE);
    pair_handshake(&p, 1);
    assert_memory_equal(kith_session_peer_id(p.a), p.ib.id_pk, KITH_ID_LEN);
    assert_memory_equal(kith_session_peer_id(p.b), p.ia.id_pk, KITH_ID_LEN);
    assert_memory_equal(kith_session_peer_dh(p.a), p.ib.dh_pk, KITH_DH_LEN);
    assert_memory_equal(kith_session_peer_dh(p.b), p.ia.dh_pk, KITH_DH_LEN);
    assert_non_null(kith_session_binding(p.a));
    assert_memory_equal(kith_session_binding(p.a), kith_session_binding(p.b), 64);
    assert_false(kith_session_failed(p.a));
    pair_close(&p);
}

/* Two handshakes with other ephemerals have different bindings. */
static void test_binding_unique(void **state)
{
    (void)state;
    pair p, q;
    pair_open(&p, 2);
    pair_handshake(&p, 1000);
    pair_open(&q, 3);
    pair_handshake(&q, 1000);
    assert_memory_not_equal(kith_session_binding(p.a), kith_session_binding(q.a), 64);
    pair_close(&p);
    pair_close(&q);
}

static void roundtrip(pair *p, kith_session *from, kith_session *to, kith_buf *wire, inbox *in,
    size_t len, size_t step)
{
    uint8_t *msg = malloc(len ? len : 1);
    assert_non_null(msg);
    for (size_t i = 0; i < len; i++)
        msg[i] = (uint8_t)(i * 7 + len);
    size_t before = in->count;
    assert_int_equal(kith_session_send(from, msg, len, wire), 0);
    size_t frames = len == 0 ? 1 : (len + 65517) / 65518;
    assert_int_equal(wire->len, len + frames * 19);
    assert_int_equal(feed(to, wire, step, to == p->a ? &p->ab : &p->ba, in), 0);
    assert_int_equal(in->count, before + 1);
    assert_int_equal(in->last_len, len);
    if (len)
        assert_memory_equal(in->last, msg, len);
    free(msg);
}

static void test_message_sizes(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 4);
    pair_handshake(&p, 1);
    static const size_t sizes[] = { 0, 1, 65518, 65519, 65520, 200000, KITH_SESSION_MAX_APP };
    for (size_t i = 0; i < KITH_ARRAY_LEN(sizes); i++) {
        roundtrip(&p, p.a, p.b, &p.ab, &p.inb, sizes[i], 1);
        roundtrip(&p, p.b, p.a, &p.ba, &p.ina, sizes[i], 4093);
    }
    /* one past the cap is refused by send, and the session stays usable */
    uint8_t *big = calloc(1, KITH_SESSION_MAX_APP + 1);
    assert_non_null(big);
    assert_int_equal(kith_session_send(p.a, big, KITH_SESSION_MAX_APP + 1, &p.ab), KITH_ETOOBIG);
    assert_int_equal(p.ab.len, 0);
    free(big);
    assert_false(kith_session_failed(p.a));
    roundtrip(&p, p.a, p.b, &p.ab, &p.inb, 5, 1);
    /* several messages in one feed */
    for (int i = 0; i < 3; i++)
        assert_int_equal(kith_session_send(p.a, (const uint8_t *)"abc", 3, &p.ab), 0);
    size_t before = p.inb.count;
    assert_int_equal(feed(p.b, &p.ab, SIZE_MAX / 2, &p.ba, &p.inb), 0);
    assert_int_equal(p.inb.count, before + 3);
    pair_close(&p);
}

/* Output buffer full: send fails without touching the session. */
static void test_send_out_full(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 5);
    pair_handshake(&p, 64);
    kith_buf small;
    kith_buf_init(&small, &p.t.env, 100);
    uint8_t msg[200] = { 0 };
    assert_int_equal(kith_session_send(p.a, msg, sizeof msg, &small), KITH_ETOOBIG);
    assert_int_equal(small.len, 0);
    kith_buf_free(&small);
    roundtrip(&p, p.a, p.b, &p.ab, &p.inb, 200, 7);
    pair_close(&p);
}

static void test_tamper_poisons(void **state)
{
    (void)state;
    for (size_t pos = 2; pos < 2 + 1 + 10 + 16; pos += 3) {
        pair p;
        pair_open(&p, 6);
        pair_handshake(&p, 100);
        assert_int_equal(kith_session_send(p.a, (const uint8_t *)"0123456789", 10, &p.ab), 0);
        p.ab.data[pos] ^= 0x80;
        assert_int_equal(feed(p.b, &p.ab, 1, &p.ba, &p.inb), KITH_ECRYPTO);
        assert_true(kith_session_failed(p.b));
        assert_false(kith_session_established(p.b));
        assert_null(kith_session_peer_id(p.b));
        assert_null(kith_session_binding(p.b));
        assert_int_equal(p.inb.count, 0);
        /* everything afterwards is refused */
        assert_int_equal(kith_session_send(p.a, (const uint8_t *)"x", 1, &p.ab), 0);
        assert_int_equal(feed(p.b, &p.ab, 100, &p.ba, &p.inb), KITH_ESTATE);
        assert_int_equal(kith_session_send(p.b, (const uint8_t *)"x", 1, &p.ba), KITH_ESTATE);
        assert_int_equal(kith_session_start(p.b, &p.ba), KITH_ESTATE);
        pair_close(&p);
    }
}

/* A replayed frame has an old nonce: refused. */
static void test_replay_poisons(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 7);
    pair_handshake(&p, 100);
    assert_int_equal(kith_session_send(p.a, (const uint8_t *)"hello", 5, &p.ab), 0);
    uint8_t copy[64];
    size_t n = p.ab.len;
    memcpy(copy, p.ab.data, n);
    assert_int_equal(feed(p.b, &p.ab, 100, &p.ba, &p.inb), 0);
    assert_int_equal(kith_session_feed(p.b, copy, n, &p.ba, on_msg, &p.inb), KITH_ECRYPTO);
    assert_true(kith_session_failed(p.b));
    pair_close(&p);
}

static void test_garbage_first_message(void **state)
{
    (void)state;
    static const char *junk[]
        = { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x00\x00", "\xff\xff", "\x00\x21", "\x00\x1f" };
    static const size_t junklen[] = { 27, 2, 2, 2, 2 };
    for (size_t i = 0; i < KITH_ARRAY_LEN(junk); i++) {
        pair p;
        pair_open(&p, 8);
        size_t allocs = p.t.allocs;
        int rc
            = kith_session_feed(p.b, (const uint8_t *)junk[i], junklen[i], &p.ba, on_msg, &p.inb);
        assert_int_equal(rc, KITH_EPROTO);
        assert_true(kith_session_failed(p.b));
        assert_int_equal(p.ba.len, 0);
        /* nothing was allocated for the declared length */
        assert_true(p.t.allocs <= allocs);
        pair_close(&p);
    }
}

/* An initiator that has not started must not accept bytes. */
static void test_initiator_unsolicited(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 9);
    uint8_t junk[34] = { 0, 32 };
    assert_int_equal(kith_session_feed(p.a, junk, sizeof junk, &p.ab, on_msg, &p.ina), KITH_ESTATE);
    assert_true(kith_session_failed(p.a));
    pair_close(&p);
}

static void test_truncated_handshake(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 10);
    assert_int_equal(kith_session_start(p.a, &p.ab), 0);
    /* half of message 1: nothing happens yet */
    assert_int_equal(kith_session_feed(p.b, p.ab.data, 20, &p.ba, on_msg, &p.inb), 0);
    assert_int_equal(p.ba.len, 0);
    assert_false(kith_session_failed(p.b));
    assert_false(kith_session_established(p.b));
    assert_int_equal(
        kith_session_feed(p.b, p.ab.data + 20, p.ab.len - 20, &p.ba, on_msg, &p.inb), 0);
    kith_buf_reset(&p.ab);
    assert_int_equal(p.ba.len, 201);
    /* message 2 with its length cut by one: the initiator fails at the header */
    kith_put_be16(p.ba.data, 198);
    assert_int_equal(kith_session_feed(p.a, p.ba.data, 2, &p.ab, on_msg, &p.ina), KITH_EPROTO);
    assert_true(kith_session_failed(p.a));
    pair_close(&p);
}

/* Message 2 truncated in body (right length, last byte missing, then
 * another frame's bytes): the tag fails. */
static void test_corrupt_message2(void **state)
{
    (void)state;
    for (size_t pos = 2; pos < 201; pos += 11) {
        pair p;
        pair_open(&p, 11);
        assert_int_equal(kith_session_start(p.a, &p.ab), 0);
        assert_int_equal(feed(p.b, &p.ab, 64, &p.ba, &p.inb), 0);
        p.ba.data[pos] ^= 4;
        int rc = feed(p.a, &p.ba, 64, &p.ab, &p.ina);
        assert_int_equal(rc, KITH_ECRYPTO);
        assert_true(kith_session_failed(p.a));
        assert_int_equal(p.ab.len, 0);
        pair_close(&p);
    }
}

/* A peer whose certificate was signed by another identity is refused, on
 * either side of the handshake. */
static void test_bad_cert(void **state)
{
    (void)state;
    for (int side = 0; side < 2; side++) {
        for (int kind = 0; kind < 2; kind++) {
            pair p;
            pair_open(&p, 12);
            kith_identity other;
            assert_int_equal(kith_identity_generate(&p.t.env, &other), 0);
            kith_identity *victim = side == 0 ? &p.ia : &p.ib;
            if (kind == 0) {
                /* signed by someone else over the right key */
                assert_int_equal(kith_sign(&p.t.env, &other, KITH_DOMAIN_CERT, victim->dh_pk,
                                     KITH_DH_LEN, victim->cert_sig),
                    0);
            } else {
                /* claims another's id and its valid cert, over its own key */
                memcpy(victim->id_pk, other.id_pk, KITH_ID_LEN);
                memcpy(victim->cert_sig, other.cert_sig, KITH_SIG_LEN);
            }
            kith_identity_wipe(&other);
            assert_int_equal(kith_session_start(p.a, &p.ab), 0);
            assert_int_equal(feed(p.b, &p.ab, 1, &p.ba, &p.inb), 0);
            int rc = feed(p.a, &p.ba, 1, &p.ab, &p.ina);
            if (side == 1) {
                assert_int_equal(rc, KITH_ECRYPTO); /* initiator refuses the responder */
                assert_true(kith_session_failed(p.a));
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(feed(p.b, &p.ab, 1, &p.ba, &p.inb), KITH_ECRYPTO);
                assert_true(kith_session_failed(p.b));
                assert_null(kith_session_peer_id(p.b));
            }
            pair_close(&p);
        }
    }
}

/* The initiator's responder check: what it was shown, and whether it said
 * yes. */
typedef struct peer_judge {
    const uint8_t *allow; /* the one member id let through; NULL: nobody */
    int calls;
    uint8_t seen_id[KITH_ID_LEN];
    uint8_t seen_dh[KITH_DH_LEN];
} peer_judge;

static int judge(void *ud, const uint8_t id[KITH_ID_LEN], const uint8_t dh[KITH_DH_LEN])
{
    peer_judge *j = ud;
    j->calls++;
    memcpy(j->seen_id, id, KITH_ID_LEN);
    memcpy(j->seen_dh, dh, KITH_DH_LEN);
    return j->allow && memcmp(id, j->allow, KITH_ID_LEN) == 0 ? 0 : KITH_EPERM;
}

/* An impostor answers where the initiator expected someone else: the
 * initiator learns the responder's identity from message 2, refuses it, and
 * never writes message 3, so the responder never learns who dialled. */
static void test_peer_check_refuses_impostor(void **state)
{
    (void)state;
    for (size_t step = 1; step <= 1000; step += 999) {
        pair p;
        pair_open(&p, 14);
        kith_identity expected;
        assert_int_equal(kith_identity_generate(&p.t.env, &expected), 0);
        peer_judge j = { .allow = expected.id_pk };
        kith_session_set_peer_check(p.a, judge, &j);
        kith_session_set_peer_check(p.b, judge, &j); /* ignored: b responds */
        assert_int_equal(kith_session_start(p.a, &p.ab), 0);
        assert_int_equal(feed(p.b, &p.ab, step, &p.ba, &p.inb), 0);
        assert_int_equal(p.ba.len, 2 + 199);
        assert_int_equal(feed(p.a, &p.ba, step, &p.ab, &p.ina), KITH_EPERM);
        assert_int_equal(j.calls, 1);
        assert_memory_equal(j.seen_id, p.ib.id_pk, KITH_ID_LEN);
        assert_memory_equal(j.seen_dh, p.ib.dh_pk, KITH_DH_LEN);
        assert_int_equal(p.ab.len, 0); /* no message 3 */
        assert_true(kith_session_failed(p.a));
        assert_null(kith_session_peer_id(p.a));
        uint8_t m[1] = { 0 };
        assert_int_equal(kith_session_send(p.a, m, 1, &p.ab), KITH_ESTATE);
        assert_int_equal(p.ab.len, 0);
        /* The responder is left waiting for a message 3 that never comes. */
        assert_false(kith_session_established(p.b));
        assert_null(kith_session_peer_id(p.b));
        kith_identity_wipe(&expected);
        pair_close(&p);
    }
}

/* The expected responder passes, once, and the handshake completes. */
static void test_peer_check_accepts(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 15);
    peer_judge j = { .allow = p.ib.id_pk };
    kith_session_set_peer_check(p.a, judge, &j);
    pair_handshake(&p, 7);
    assert_int_equal(j.calls, 1);
    assert_memory_equal(kith_session_peer_id(p.b), p.ia.id_pk, KITH_ID_LEN);
    roundtrip(&p, p.a, p.b, &p.ab, &p.inb, 10, 3);
    pair_close(&p);
}

/* The callback's non-zero return stops feeding; the rest is kept. */
static void test_callback_stop(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 13);
    pair_handshake(&p, 100);
    p.inb.stop_after = 1;
    assert_int_equal(kith_session_send(p.a, (const uint8_t *)"one", 3, &p.ab), 0);
    assert_int_equal(kith_session_send(p.a, (const uint8_t *)"two", 3, &p.ab), 0);
    assert_int_equal(kith_session_send(p.a, (const uint8_t *)"three", 5, &p.ab), 0);
    assert_int_equal(kith_session_feed(p.b, p.ab.data, p.ab.len, &p.ba, on_msg, &p.inb), 99);
    kith_buf_reset(&p.ab);
    assert_int_equal(p.inb.count, 1);
    assert_false(kith_session_failed(p.b));
    assert_int_equal(kith_session_feed(p.b, NULL, 0, &p.ba, on_msg, &p.inb), 99);
    assert_int_equal(p.inb.count, 2);
    assert_memory_equal(p.inb.last, "two", 3);
    p.inb.stop_after = 0;
    assert_int_equal(kith_session_feed(p.b, NULL, 0, &p.ba, on_msg, &p.inb), 0);
    assert_int_equal(p.inb.count, 3);
    assert_memory_equal(p.inb.last, "three", 5);
    pair_close(&p);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 14);
    kith_identity id;
    assert_int_equal(kith_identity_generate(&t.env, &id), 0);
    for (long k = 0; k < 3; k++) {
        kith_session *s = (kith_session *)1;
        t.fail_after = k;
        int rc = kith_session_new(&t.env, &id, k % 2 == 0, &s);
        t.fail_after = -1;
        if (rc == 0) {
            kith_session_free(s);
        } else {
            assert_int_equal(rc, KITH_ENOMEM);
            assert_null(s);
        }
    }
    assert_int_equal(t.allocs, 0);
    kith_identity_wipe(&id);
}

/* ---- a hostile initiator built on the raw Noise engine ---- */

typedef struct raw_peer {
    pair p; /* p.a unused; p.b is the kith session under attack */
    kith_noise_cs send, recv;
} raw_peer;

static void raw_frame(kith_buf *out, const uint8_t *m, size_t n)
{
    uint8_t hdr[2];
    kith_put_be16(hdr, (uint16_t)n);
    assert_int_equal(kith_buf_append(out, hdr, 2), 0);
    assert_int_equal(kith_buf_append(out, m, n), 0);
}

static void raw_open(raw_peer *r, uint64_t seed)
{
    pair_open(&r->p, seed);
    kith_noise *hs;
    uint8_t m[512], pl[512];
    size_t n, pn;
    assert_int_equal(
        kith_noise_new(&r->p.t.env, "Noise_XX_25519_ChaChaPoly_BLAKE2b", true, &hs), 0);
    assert_int_equal(kith_noise_set_prologue(hs, (const uint8_t *)"kith/1", 6), 0);
    assert_int_equal(kith_noise_set_s(hs, r->p.ia.dh_sk), 0);
    assert_int_equal(kith_noise_write_message(hs, NULL, 0, m, sizeof m, &n), 0);
    raw_frame(&r->p.ab, m, n);
    assert_int_equal(feed(r->p.b, &r->p.ab, 1000, &r->p.ba, &r->p.inb), 0);
    assert_int_equal(r->p.ba.len, 201);
    assert_int_equal(
        kith_noise_read_message(hs, r->p.ba.data + 2, r->p.ba.len - 2, pl, sizeof pl, &pn), 0);
    kith_buf_reset(&r->p.ba);
    /* the responder's certificate, byte for byte */
    assert_int_equal(pn, 103);
    static const uint8_t h1[] = { 0x82, 0x01, 0xc4, 0x20 }, h2[] = { 0x02, 0xc4, 0x40 };
    assert_memory_equal(pl, h1, 4);
    assert_memory_equal(pl + 4, r->p.ib.id_pk, 32);
    assert_memory_equal(pl + 36, h2, 3);
    assert_memory_equal(pl + 39, r->p.ib.cert_sig, 64);
    /* our certificate, hand-encoded the same way */
    memcpy(pl, h1, 4);
    memcpy(pl + 4, r->p.ia.id_pk, 32);
    memcpy(pl + 36, h2, 3);
    memcpy(pl + 39, r->p.ia.cert_sig, 64);
    assert_int_equal(kith_noise_write_message(hs, pl, 103, m, sizeof m, &n), 0);
    raw_frame(&r->p.ab, m, n);
    assert_int_equal(feed(r->p.b, &r->p.ab, 1000, &r->p.ba, &r->p.inb), 0);
    assert_true(kith_session_established(r->p.b));
    assert_memory_equal(kith_session_binding(r->p.b), kith_noise_handshake_hash(hs), 64);
    assert_int_equal(kith_noise_split(hs, &r->send, &r->recv), 0);
    kith_noise_free(hs);
}

/* Encrypt flag || chunk into one frame on p.ab. */
static void raw_send(raw_peer *r, uint8_t flag, const uint8_t *chunk, size_t len)
{
    static uint8_t buf[KITH_NOISE_MAX_MSG];
    size_t n;
    buf[0] = flag;
    if (len)
        memcpy(buf + 1, chunk, len);
    assert_int_equal(
        kith_noise_cs_encrypt(&r->send, NULL, 0, buf, 1 + len, buf, sizeof buf, &n), 0);
    raw_frame(&r->p.ab, buf, n);
}

static void test_raw_peer_ok(void **state)
{
    (void)state;
    raw_peer r;
    raw_open(&r, 20);
    raw_send(&r, 1, (const uint8_t *)"ab", 2);
    raw_send(&r, 1, NULL, 0); /* an empty middle fragment is fine */
    raw_send(&r, 0, (const uint8_t *)"c", 1);
    assert_int_equal(feed(r.p.b, &r.p.ab, 1, &r.p.ba, &r.p.inb), 0);
    assert_int_equal(r.p.inb.count, 1);
    assert_int_equal(r.p.inb.last_len, 3);
    assert_memory_equal(r.p.inb.last, "abc", 3);
    pair_close(&r.p);
}

static void test_raw_bad_flag(void **state)
{
    (void)state;
    static const uint8_t flags[] = { 2, 0x80, 0xff };
    for (size_t i = 0; i < KITH_ARRAY_LEN(flags); i++) {
        raw_peer r;
        raw_open(&r, 21);
        raw_send(&r, flags[i], (const uint8_t *)"x", 1);
        assert_int_equal(feed(r.p.b, &r.p.ab, 7, &r.p.ba, &r.p.inb), KITH_EPROTO);
        assert_true(kith_session_failed(r.p.b));
        assert_int_equal(r.p.inb.count, 0);
        pair_close(&r.p);
    }
}

/* A frame with no room for flag + tag, and an empty-plaintext frame. */
static void test_raw_short_frames(void **state)
{
    (void)state;
    raw_peer r;
    raw_open(&r, 22);
    uint8_t tag_only[16];
    size_t n;
    assert_int_equal(kith_noise_cs_encrypt(&r.send, NULL, 0, NULL, 0, tag_only, 16, &n), 0);
    raw_frame(&r.p.ab, tag_only, n);
    assert_int_equal(feed(r.p.b, &r.p.ab, 1, &r.p.ba, &r.p.inb), KITH_EPROTO);
    pair_close(&r.p);
}

/* Fragments that add up to more than the cap: refused, fail closed; exactly
 * the cap is fine. */
static void test_raw_reassembly_cap(void **state)
{
    (void)state;
    static uint8_t chunk[65518];
    for (int over = 0; over < 2; over++) {
        raw_peer r;
        raw_open(&r, 23);
        size_t total = KITH_SESSION_MAX_APP + (size_t)over, sent = 0;
        int rc = 0;
        while (sent < total && rc == 0) {
            size_t c = KITH_MIN(sizeof chunk, total - sent);
            sent += c;
            raw_send(&r, sent < total ? 1 : 0, chunk, c);
            rc = feed(r.p.b, &r.p.ab, 65536, &r.p.ba, &r.p.inb);
        }
        if (over) {
            assert_int_equal(rc, KITH_ETOOBIG);
            assert_true(kith_session_failed(r.p.b));
            assert_int_equal(r.p.inb.count, 0);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(r.p.inb.count, 1);
            assert_int_equal(r.p.inb.last_len, KITH_SESSION_MAX_APP);
        }
        pair_close(&r.p);
    }
}

/* A never-ending message of "more" fragments fails at the cap, not later. */
static void test_raw_more_forever(void **state)
{
    (void)state;
    static uint8_t chunk[65518];
    raw_peer r;
    raw_open(&r, 24);
    int rc = 0;
    size_t frames = 0;
    while (rc == 0 && frames < 100) {
        raw_send(&r, 1, chunk, sizeof chunk);
        rc = feed(r.p.b, &r.p.ab, 65536, &r.p.ba, &r.p.inb);
        frames++;
    }
    assert_int_equal(rc, KITH_ETOOBIG);
    assert_int_equal(frames, KITH_SESSION_MAX_APP / sizeof chunk + 1);
    pair_close(&r.p);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_identities),
        cmocka_unit_test(test_binding_unique),
        cmocka_unit_test(test_message_sizes),
        cmocka_unit_test(test_send_out_full),
        cmocka_unit_test(test_tamper_poisons),
        cmocka_unit_test(test_replay_poisons),
        cmocka_unit_test(test_garbage_first_message),
        cmocka_unit_test(test_initiator_unsolicited),
        cmocka_unit_test(test_truncated_handshake),
        cmocka_unit_test(test_corrupt_message2),
        cmocka_unit_test(test_bad_cert),
        cmocka_unit_test(test_peer_check_refuses_impostor),
        cmocka_unit_test(test_peer_check_accepts),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_raw_peer_ok),
        cmocka_unit_test(test_raw_bad_flag),
        cmocka_unit_test(test_raw_short_frames),
        cmocka_unit_test(test_raw_reassembly_cap),
        cmocka_unit_test(test_raw_more_forever),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
