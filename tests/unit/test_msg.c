/* test_msg: sealing and opening messages, and every way a hostile or broken
 * envelope or inner map must be refused. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "testenv.h"

#include "crypto/crypto.h"
#include "msg/msg.h"
#include "wire/wire.h"

typedef struct fx {
    test_env t;
    kith_identity alice, bob;
    uint8_t room[KITH_HASH_LEN];
    uint8_t key[KITH_KEY_LEN];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    test_env_init(&f->t, 42);
    if (kith_identity_generate(&f->t.env, &f->alice) != 0
        || kith_identity_generate(&f->t.env, &f->bob) != 0)
        return -1;
    memset(f->room, 0x11, sizeof f->room);
    kith_random(&f->t.env, f->key, sizeof f->key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(f->t.allocs, 0);
    kith_identity_wipe(&f->alice);
    kith_identity_wipe(&f->bob);
    free(f);
    return 0;
}

static void base_inner(fx *f, kith_inner *in, const char *body)
{
    memset(in, 0, sizeof *in);
    in->type = KITH_MSG_TEXT;
    memcpy(in->room_id, f->room, KITH_HASH_LEN);
    in->epoch = 0;
    memcpy(in->author, f->alice.id_pk, KITH_ID_LEN);
    in->seq = 1;
    in->lamport = 7;
    in->wall_ms = f->t.wall;
    in->body = (const uint8_t *)body;
    in->body_len = strlen(body);
}

/* Parse + open in one step; the plaintext buffer is freed before return. */
static int open_bytes(fx *f, const uint8_t *data, size_t len, const uint8_t *room,
    const uint8_t *key, kith_inner *out, char *body_copy, size_t body_cap)
{
    kith_envelope e;
    int rc = kith_msg_parse_envelope(&f->t.env, data, len, &e);
    if (rc)
        return rc;
    kith_buf plain;
    kith_buf_init(&plain, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    rc = kith_msg_open(&f->t.env, &e, room, key, &plain, out);
    if (rc == 0 && body_copy) {
        assert_true(out->body_len < body_cap);
        memcpy(body_copy, out->body, out->body_len);
        body_copy[out->body_len] = '\0';
        out->body = NULL;
    }
    kith_buf_free(&plain);
    return rc;
}

static void test_round_trip(void **state)
{
    fx *f = *state;
    kith_inner in, got;
    base_inner(f, &in, "hello, wörld");
    kith_buf env1;
    kith_buf_init(&env1, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &env1), 0);
    assert_true(env1.len <= KITH_MSG_MAX_ENVELOPE);

    char body[64];
    assert_int_equal(
        open_bytes(f, env1.data, env1.len, f->room, f->key, &got, body, sizeof body), 0);
    assert_string_equal(body, "hello, wörld");
    assert_int_equal(got.type, KITH_MSG_TEXT);
    assert_int_equal(got.seq, 1);
    assert_int_equal(got.lamport, 7);
    assert_int_equal(got.wall_ms, f->t.wall);
    assert_int_equal(got.ndeps, 0);
    assert_memory_equal(got.author, f->alice.id_pk, KITH_ID_LEN);
    assert_memory_equal(got.room_id, f->room, KITH_HASH_LEN);

    /* Second message: follows the first, with causal deps. */
    uint8_t id1[KITH_HASH_LEN];
    kith_msg_id(env1.data, env1.len, id1);
    kith_inner in2;
    base_inner(f, &in2, "second");
    in2.type = KITH_MSG_ACTION;
    in2.seq = 2;
    memcpy(in2.prev, id1, KITH_HASH_LEN);
    in2.ndeps = KITH_MSG_MAX_DEPS;
    for (size_t i = 0; i < in2.ndeps; i++)
        memset(in2.deps[i], (int)(0xa0 + i), KITH_HASH_LEN);
    in2.epoch = 3;
    kith_buf env2;
    kith_buf_init(&env2, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in2, f->key, &env2), 0);
    kith_envelope e;
    assert_int_equal(kith_msg_parse_envelope(&f->t.env, env2.data, env2.len, &e), 0);
    assert_int_equal(e.epoch, 3);
    uint8_t tag[KITH_ROOM_TAG_LEN];
    kith_msg_room_tag(f->key, 3, tag);
    assert_memory_equal(e.tag, tag, sizeof tag);
    /* The tag depends on the epoch, so epochs are unlinkable by tag. */
    uint8_t tag0[KITH_ROOM_TAG_LEN];
    kith_msg_room_tag(f->key, 0, tag0);
    assert_memory_not_equal(tag0, tag, sizeof tag);
    assert_int_equal(
        open_bytes(f, env2.data, env2.len, f->room, f->key, &got, body, sizeof body), 0);
    assert_string_equal(body, "second");
    assert_int_equal(got.seq, 2);
    assert_int_equal(got.epoch, 3);
    assert_int_equal(got.type, KITH_MSG_ACTION);
    assert_memory_equal(got.prev, id1, KITH_HASH_LEN);
    assert_int_equal(got.ndeps, KITH_MSG_MAX_DEPS);
    assert_memory_equal(got.deps[3], in2.deps[3], KITH_HASH_LEN);

    kith_buf_free(&env1);
    kith_buf_free(&env2);
}

static void test_ids_differ(void **state)
{
    fx *f = *state;
    kith_inner in;
    base_inner(f, &in, "same");
    kith_buf a, b;
    kith_buf_init(&a, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&b, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &a), 0);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &b), 0);
    assert_int_equal(a.len, b.len);
    uint8_t ida[KITH_HASH_LEN], idb[KITH_HASH_LEN], idc[KITH_HASH_LEN];
    kith_msg_id(a.data, a.len, ida);
    kith_msg_id(b.data, b.len, idb);
    kith_msg_id(a.data, a.len, idc);
    assert_memory_not_equal(ida, idb, KITH_HASH_LEN);
    assert_memory_equal(ida, idc, KITH_HASH_LEN);
    kith_buf_free(&a);
    kith_buf_free(&b);
}

static bool is_reject(int rc)
{
    return rc == KITH_ECRYPTO || rc == KITH_EPROTO || rc == KITH_ENONCANON || rc == KITH_ETOOBIG;
}

static void test_tamper_every_byte(void **state)
{
    fx *f = *state;
    kith_inner in, got;
    base_inner(f, &in, "do not touch");
    kith_buf e;
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), 0);
    static const uint8_t flips[] = { 0x01, 0x80, 0xff };
    for (size_t i = 0; i < e.len; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            e.data[i] ^= flips[k];
            int rc = open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0);
            if (!is_reject(rc))
                fail_msg("byte %zu ^ %02x accepted (rc %d)", i, flips[k], rc);
            e.data[i] ^= flips[k];
        }
    }
    /* Truncated and extended envelopes too. */
    for (size_t n = 0; n < e.len; n += 7)
        assert_true(is_reject(open_bytes(f, e.data, n, f->room, f->key, &got, NULL, 0)));
    assert_int_equal(kith_buf_append_u8(&e, 0), 0);
    assert_true(is_reject(open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0)));
    kith_buf_free(&e);
}

static void test_wrong_key_and_room(void **state)
{
    fx *f = *state;
    kith_inner in, got;
    base_inner(f, &in, "secret");
    kith_buf e;
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), 0);
    uint8_t other[KITH_KEY_LEN];
    memcpy(other, f->key, sizeof other);
    other[0] ^= 1;
    assert_int_equal(open_bytes(f, e.data, e.len, f->room, other, &got, NULL, 0), KITH_ECRYPTO);
    uint8_t room2[KITH_HASH_LEN];
    memset(room2, 0x22, sizeof room2);
    assert_int_equal(open_bytes(f, e.data, e.len, room2, f->key, &got, NULL, 0), KITH_EPROTO);
    kith_buf_free(&e);
}

/* Sign inner bytes with `signer` and wrap them under the fixture key. */
static void sign_and_wrap(fx *f, const kith_identity *signer, const uint8_t *inner, size_t len,
    uint64_t epoch, kith_buf *out)
{
    kith_buf plain;
    kith_buf_init(&plain, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_buf_append(&plain, inner, len), 0);
    uint8_t sig[KITH_SIG_LEN];
    assert_int_equal(kith_sign(&f->t.env, signer, KITH_DOMAIN_MSG, inner, len, sig), 0);
    assert_int_equal(kith_buf_append(&plain, sig, sizeof sig), 0);
    assert_int_equal(kith_msg_seal_plain(&f->t.env, epoch, f->key, plain.data, plain.len, out), 0);
    kith_buf_free(&plain);
}

static void test_forged_author(void **state)
{
    fx *f = *state;
    kith_inner in, got;
    base_inner(f, &in, "I am alice");
    kith_buf inner, e;
    kith_buf_init(&inner, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_encode_inner(&in, &inner), 0);
    sign_and_wrap(f, &f->bob, inner.data, inner.len, 0, &e);
    assert_int_equal(open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0), KITH_ECRYPTO);
    /* The same bytes signed by alice are fine: the test above is not
     * failing for some other reason. */
    kith_buf_reset(&e);
    sign_and_wrap(f, &f->alice, inner.data, inner.len, 0, &e);
    assert_int_equal(open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0), 0);
    /* open_known skips exactly the signature: the forged copy opens, the
     * room and key checks still hold. */
    kith_buf_reset(&e);
    sign_and_wrap(f, &f->bob, inner.data, inner.len, 0, &e);
    kith_envelope env;
    kith_buf plain;
    kith_buf_init(&plain, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_parse_envelope(&f->t.env, e.data, e.len, &env), 0);
    assert_int_equal(kith_msg_open(&f->t.env, &env, f->room, f->key, &plain, &got), KITH_ECRYPTO);
    assert_int_equal(kith_msg_open_known(&f->t.env, &env, f->room, f->key, &plain, &got), 0);
    assert_int_equal(got.body_len, strlen("I am alice"));
    uint8_t other[KITH_HASH_LEN];
    memset(other, 0x33, sizeof other);
    assert_int_equal(
        kith_msg_open_known(&f->t.env, &env, other, f->key, &plain, &got), KITH_EPROTO);
    kith_buf_free(&plain);
    /* seal() refuses an inner naming someone else. */
    kith_buf_reset(&e);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->bob, &in, f->key, &e), KITH_EINVAL);
    kith_buf_free(&inner);
    kith_buf_free(&e);
}

static void test_noncanonical_inner(void **state)
{
    fx *f = *state;
    kith_inner in, got;
    base_inner(f, &in, "canon");
    kith_buf inner, bad, e;
    kith_buf_init(&inner, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&bad, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_encode_inner(&in, &inner), 0);
    /* 0x8c {0x00: 0x01 ...}: write the version 1 as uint8 0xcc 0x01. */
    assert_int_equal(inner.data[0], 0x8c);
    assert_int_equal(inner.data[1], 0x00);
    assert_int_equal(inner.data[2], 0x01);
    static const uint8_t head[] = { 0x8c, 0x00, 0xcc, 0x01 };
    assert_int_equal(kith_buf_append(&bad, head, sizeof head), 0);
    assert_int_equal(kith_buf_append(&bad, inner.data + 3, inner.len - 3), 0);
    sign_and_wrap(f, &f->alice, bad.data, bad.len, 0, &e);
    assert_int_equal(open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0), KITH_ENONCANON);
    kith_buf_free(&inner);
    kith_buf_free(&bad);
    kith_buf_free(&e);
}

/* Hand-built inner maps that break one rule each, signed correctly. */
typedef struct raw_inner {
    uint64_t version, type, seq, epoch;
    bool zero_prev;
    uint32_t ndeps;
    const char *body;
    size_t body_len;
    uint8_t pad_byte;
    bool extra_key;
    bool drop_pad;
    int target; /* key 12 as bin of this many bytes; 0: absent */
} raw_inner;

static void encode_raw(fx *f, const raw_inner *r, kith_buf *out)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, (r->drop_pad ? 11u : 12u) + (r->extra_key ? 1u : 0u) + (r->target ? 1u : 0u));
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, r->version);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, r->type);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, f->room, KITH_HASH_LEN);
    kith_wire_uint(&w, 3);
    kith_wire_uint(&w, r->epoch);
    kith_wire_uint(&w, 4);
    kith_wire_bin(&w, f->alice.id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, 5);
    kith_wire_uint(&w, r->seq);
    uint8_t prev[KITH_HASH_LEN];
    memset(prev, r->zero_prev ? 0 : 0x33, sizeof prev);
    kith_wire_uint(&w, 6);
    kith_wire_bin(&w, prev, sizeof prev);
    kith_wire_uint(&w, 7);
    kith_wire_array(&w, r->ndeps);
    for (uint32_t i = 0; i < r->ndeps; i++)
        kith_wire_bin(&w, prev, sizeof prev);
    kith_wire_uint(&w, 8);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, 9);
    kith_wire_uint(&w, 2);
    kith_wire_uint(&w, 10);
    /* Raw, so that invalid UTF-8 can be written (the writer refuses it). */
    assert_true(r->body_len < 256);
    uint8_t sh[2] = { (uint8_t)(0xa0 | r->body_len), 0 };
    if (r->body_len >= 32)
        sh[0] = 0xd9, sh[1] = (uint8_t)r->body_len;
    kith_wire_raw(&w, sh, r->body_len >= 32 ? 2 : 1);
    if (r->body_len)
        kith_wire_raw(&w, r->body, r->body_len);
    if (!r->drop_pad) {
        uint8_t pad[16];
        memset(pad, 0, sizeof pad);
        pad[5] = r->pad_byte;
        kith_wire_uint(&w, 11);
        kith_wire_bin(&w, pad, sizeof pad);
    }
    if (r->target) {
        uint8_t t[64];
        memset(t, 0x77, sizeof t);
        assert_true(r->target <= 64);
        kith_wire_uint(&w, 12);
        kith_wire_bin(&w, t, (size_t)r->target);
    }
    if (r->extra_key) {
        kith_wire_uint(&w, r->target ? 13 : 12);
        kith_wire_uint(&w, 0);
    }
    assert_int_equal(kith_wire_finish(&w), 0);
}

static int open_raw(fx *f, const raw_inner *r)
{
    kith_buf inner, e;
    kith_buf_init(&inner, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    encode_raw(f, r, &inner);
    sign_and_wrap(f, &f->alice, inner.data, inner.len, 0, &e);
    kith_inner got;
    int rc = open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0);
    kith_buf_free(&inner);
    kith_buf_free(&e);
    return rc;
}

static void test_inner_rules(void **state)
{
    fx *f = *state;
    const raw_inner good
        = { .version = 1, .type = 1, .seq = 1, .zero_prev = true, .body = "ok", .body_len = 2 };
    assert_int_equal(open_raw(f, &good), 0);
    raw_inner r;
    r = good, r.version = 2;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.type = 0;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.type = (uint64_t)UINT32_MAX + 1;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.seq = 0;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.zero_prev = false; /* seq 1 with a prev */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.seq = 2; /* seq 2 without a prev */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.seq = 2, r.zero_prev = false;
    assert_int_equal(open_raw(f, &r), 0);
    r = good, r.ndeps = KITH_MSG_MAX_DEPS + 1;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.epoch = 1; /* envelope says epoch 0 */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    /* Invalid UTF-8 is not canonical msgpack (the wire reader's rule). */
    r = good, r.body = "\xc0\xaf", r.body_len = 2; /* overlong '/' */
    assert_int_equal(open_raw(f, &r), KITH_ENONCANON);
    r = good, r.body = "\xed\xa0\x80", r.body_len = 3; /* surrogate */
    assert_int_equal(open_raw(f, &r), KITH_ENONCANON);
    r = good, r.body = "", r.body_len = 0;
    assert_int_equal(open_raw(f, &r), 0);
    r = good, r.body = "a\0b", r.body_len = 3;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.pad_byte = 1;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.extra_key = true;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.drop_pad = true;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);

    /* Key 12, the target: exactly for edit, delete and reaction. */
    r = good, r.target = 32; /* text with a target */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.type = KITH_MSG_NICK, r.target = 32;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.type = KITH_MSG_EDIT, r.target = 32, r.body = "new", r.body_len = 3;
    assert_int_equal(open_raw(f, &r), 0);
    r.target = 0; /* edit without a target */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.target = 31;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.target = 33;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.target = 32, r.extra_key = true; /* a key 13 after it */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.extra_key = false, r.body = "", r.body_len = 0; /* an edit to nothing */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.type = KITH_MSG_DELETE, r.target = 32, r.body = "", r.body_len = 0;
    assert_int_equal(open_raw(f, &r), 0);
    r.body = "x", r.body_len = 1; /* a delete says nothing */
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.body = "", r.body_len = 0, r.target = 0;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r = good, r.type = KITH_MSG_REACTION, r.target = 32;
    r.body = "\xf0\x9f\x91\x8d", r.body_len = 4; /* thumbs up */
    assert_int_equal(open_raw(f, &r), 0);
    r.body = "+1", r.body_len = 2;
    assert_int_equal(open_raw(f, &r), 0);
    r.body = "", r.body_len = 0;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.body = "a b", r.body_len = 3;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.body = "a\tb", r.body_len = 3;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.body = "a\x7f", r.body_len = 2;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.body = "0123456789abcdef0123456789abcdef", r.body_len = KITH_MSG_MAX_REACTION;
    assert_int_equal(open_raw(f, &r), 0);
    r.body = "0123456789abcdef0123456789abcdef!", r.body_len = KITH_MSG_MAX_REACTION + 1;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    r.body = "\xf0\x9f\x91\x8d", r.body_len = 4, r.target = 0;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
    /* A type this version doesn't know may carry a target or not. */
    r = good, r.type = 99;
    assert_int_equal(open_raw(f, &r), 0);
    r.target = 32;
    assert_int_equal(open_raw(f, &r), 0);
    r.target = 16;
    assert_int_equal(open_raw(f, &r), KITH_EPROTO);
}

/* Edit, delete and reaction round-trip with their target, and are padded
 * like any short message. */
static void test_targets(void **state)
{
    fx *f = *state;
    size_t plain_len = 0;
    const struct {
        uint32_t type;
        const char *body;
    } cases[] = {
        { KITH_MSG_TEXT, "hi" },
        { KITH_MSG_EDIT, "hi, edited" },
        { KITH_MSG_DELETE, "" },
        { KITH_MSG_REACTION, "\xe2\x9d\xa4\xef\xb8\x8f" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kith_inner in, got;
        base_inner(f, &in, cases[i].body);
        in.type = cases[i].type;
        in.has_target = kith_msg_type_targets(in.type);
        memset(in.target, (int)(0x50 + i), KITH_HASH_LEN);
        kith_buf e;
        kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
        assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), 0);
        if (i == 0)
            plain_len = e.len;
        assert_int_equal(e.len, plain_len);
        char body[64];
        assert_int_equal(open_bytes(f, e.data, e.len, f->room, f->key, &got, body, sizeof body), 0);
        assert_int_equal(got.type, cases[i].type);
        assert_string_equal(body, cases[i].body);
        assert_int_equal(got.has_target, in.has_target);
        if (got.has_target)
            assert_memory_equal(got.target, in.target, KITH_HASH_LEN);
        kith_buf_free(&e);
    }
    /* seal refuses what open would. */
    kith_inner in;
    kith_buf e;
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    base_inner(f, &in, "x");
    in.type = KITH_MSG_EDIT; /* no target */
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    in.type = KITH_MSG_TEXT, in.has_target = true;
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    base_inner(f, &in, "two words");
    in.type = KITH_MSG_REACTION, in.has_target = true;
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    base_inner(f, &in, "x");
    in.type = KITH_MSG_DELETE, in.has_target = true;
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    assert_int_equal(e.len, 0);
    kith_buf_free(&e);
    /* Padding still lands on buckets with the target after it. */
    for (size_t n = 1; n < 9000; n += 7) {
        char *body = malloc(n + 1);
        memset(body, 'y', n);
        body[n] = '\0';
        base_inner(f, &in, body);
        in.type = KITH_MSG_EDIT, in.has_target = true;
        kith_buf inner;
        kith_buf_init(&inner, &f->t.env, KITH_MSG_MAX_ENVELOPE);
        assert_int_equal(kith_msg_encode_inner(&in, &inner), 0);
        size_t L = inner.len;
        bool fine = L >= 256 && L <= 1024 && L % 64 == 0;
        if (!fine && L != 2048 && L % 4096 != 0)
            fail_msg("edit body %zu -> inner %zu, not a bucket", n, L);
        kith_buf_free(&inner);
        free(body);
    }
}

static size_t sealed_len(fx *f, size_t body_len)
{
    char *body = malloc(body_len + 1);
    assert_non_null(body);
    memset(body, 'x', body_len);
    body[body_len] = '\0';
    kith_inner in;
    base_inner(f, &in, body);
    kith_buf e;
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), 0);
    size_t n = e.len;
    /* And it opens. */
    kith_inner got;
    assert_int_equal(open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0), 0);
    kith_buf_free(&e);
    free(body);
    return n;
}

static void test_padding(void **state)
{
    fx *f = *state;
    size_t one = sealed_len(f, 1);
    assert_int_equal(one, sealed_len(f, 100));
    assert_int_equal(one, sealed_len(f, 0));
    assert_true(sealed_len(f, 1000) > one);
    assert_int_equal(sealed_len(f, 1500), sealed_len(f, 1200));
    /* Medium lines: to within 64 bytes. */
    assert_int_equal(sealed_len(f, 300) - sealed_len(f, 236), 64);
    /* Every body length lands on a bucket: walk the boundaries, including
     * the sizes where the padding header changes width. */
    for (size_t n = 0; n < 9000; n++) {
        char *body = malloc(n + 1);
        memset(body, 'y', n);
        body[n] = '\0';
        kith_inner in;
        base_inner(f, &in, body);
        kith_buf inner;
        kith_buf_init(&inner, &f->t.env, KITH_MSG_MAX_ENVELOPE);
        assert_int_equal(kith_msg_encode_inner(&in, &inner), 0);
        size_t L = inner.len;
        bool fine = L >= 256 && L <= 1024 && L % 64 == 0;
        if (!fine && L != 2048 && L % 4096 != 0)
            fail_msg("body %zu -> inner %zu, not a bucket", n, L);
        kith_buf_free(&inner);
        free(body);
    }
    /* The largest body fits the envelope cap. */
    size_t max = sealed_len(f, KITH_MSG_MAX_BODY);
    assert_true(max <= KITH_MSG_MAX_ENVELOPE);
}

static void test_seal_rejects(void **state)
{
    fx *f = *state;
    char *big = malloc(KITH_MSG_MAX_BODY + 2);
    memset(big, 'z', KITH_MSG_MAX_BODY + 1);
    big[KITH_MSG_MAX_BODY + 1] = '\0';
    kith_inner in;
    base_inner(f, &in, big);
    kith_buf e;
    kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_ETOOBIG);
    assert_int_equal(e.len, 0);
    free(big);
    base_inner(f, &in, "\xff");
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    base_inner(f, &in, "ok");
    in.seq = 0;
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    base_inner(f, &in, "ok");
    in.seq = 3; /* no prev */
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    base_inner(f, &in, "ok");
    in.ndeps = KITH_MSG_MAX_DEPS + 1;
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    base_inner(f, &in, "ok");
    in.type = 0;
    assert_int_equal(kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e), KITH_EINVAL);
    assert_int_equal(e.len, 0);
    kith_buf_free(&e);
}

static void test_envelope_garbage(void **state)
{
    fx *f = *state;
    kith_envelope e;
    static const uint8_t empty[1] = { 0 };
    assert_true(is_reject(kith_msg_parse_envelope(&f->t.env, empty, 0, &e)));
    assert_true(is_reject(kith_msg_parse_envelope(&f->t.env, empty, 1, &e)));
    /* A map claiming 5 pairs in 1 byte; a bin32 claiming 4 GiB. */
    static const uint8_t short_map[] = { 0x85 };
    assert_true(is_reject(kith_msg_parse_envelope(&f->t.env, short_map, sizeof short_map, &e)));
    static const uint8_t huge_bin[] = { 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00 };
    assert_true(is_reject(kith_msg_parse_envelope(&f->t.env, huge_bin, sizeof huge_bin, &e)));
    /* Over the cap. */
    uint8_t *big = calloc(1, KITH_MSG_MAX_ENVELOPE + 1);
    assert_int_equal(
        kith_msg_parse_envelope(&f->t.env, big, KITH_MSG_MAX_ENVELOPE + 1, &e), KITH_ETOOBIG);
    free(big);
    /* Well formed map, version 2. */
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 4096);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    uint8_t z[128];
    memset(z, 0, sizeof z);
    kith_wire_map(&w, 5);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, 2);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, z, 16);
    kith_wire_uint(&w, 2);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, 3);
    kith_wire_bin(&w, z, 24);
    kith_wire_uint(&w, 4);
    kith_wire_bin(&w, z, 128);
    assert_int_equal(kith_wire_finish(&w), 0);
    assert_int_equal(kith_msg_parse_envelope(&f->t.env, b.data, b.len, &e), KITH_EPROTO);
    /* Same with version 1 parses, but a ciphertext of zeros does not open. */
    b.data[2] = 1;
    assert_int_equal(kith_msg_parse_envelope(&f->t.env, b.data, b.len, &e), 0);
    kith_buf plain;
    kith_buf_init(&plain, &f->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_inner got;
    assert_int_equal(kith_msg_open(&f->t.env, &e, f->room, f->key, &plain, &got), KITH_ECRYPTO);
    kith_buf_free(&plain);
    kith_buf_free(&b);
}

static void test_alloc_failure(void **state)
{
    fx *f = *state;
    kith_inner in;
    base_inner(f, &in, "memory");
    for (long n = 0; n < 8; n++) {
        kith_buf e;
        kith_buf_init(&e, &f->t.env, KITH_MSG_MAX_ENVELOPE);
        f->t.fail_after = n;
        int rc = kith_msg_seal(&f->t.env, &f->alice, &in, f->key, &e);
        f->t.fail_after = -1;
        assert_true(rc == 0 || rc == KITH_ENOMEM);
        if (rc == 0) {
            kith_inner got;
            f->t.fail_after = n;
            int rc2 = open_bytes(f, e.data, e.len, f->room, f->key, &got, NULL, 0);
            f->t.fail_after = -1;
            assert_true(rc2 == 0 || rc2 == KITH_ENOMEM);
        }
        kith_buf_free(&e);
    }
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        { "", 0, true },
        { "plain", 5, true },
        { "\xc3\xa9", 2, true },
        { "\xe2\x82\xac", 3, true },
        { "\xf0\x9f\x98\x80", 4, true },
        { "\xf4\x8f\xbf\xbf", 4, true },
        { "\xf4\x90\x80\x80", 4, false }, /* > U+10FFFF */
        { "\xe0\x80\xaf", 3, false }, /* overlong */
        { "\xf0\x80\x80\xaf", 4, false },
        { "\xc3", 1, false }, /* truncated */
        { "\xe2\x82", 2, false },
        { "\x80", 1, false },
        { "\xed\xbf\xbf", 3, false }, /* surrogate */
        { "\xfe", 1, false },
    };
    for (size_t i = 0; i < KITH_ARRAY_LEN(cases); i++)
        if (kith_msg_utf8_valid((const uint8_t *)cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("utf8 case %zu", i);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_and_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_author, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noncanonical_inner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inner_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_padding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelope_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
