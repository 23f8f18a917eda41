/* test_room: room creation, joining through add ops on several "nodes",
 * key delivery, every kind of forged op (each must leave the room exactly as
 * it was), concurrent adds, and invite codes. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "testenv.h"

#include "crypto/crypto.h"
#include "room/room.h"
#include "wire/wire.h"

typedef struct fx {
    test_env t;
    kith_identity alice, bob, carol, dave, mallory;
    kith_buf genesis;
    kith_room *room; /* alice's */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    test_env_init(&f->t, 7);
    kith_identity *ids[] = { &f->alice, &f->bob, &f->carol, &f->dave, &f->mallory };
    for (size_t i = 0; i < KITH_ARRAY_LEN(ids); i++)
        if (kith_identity_generate(&f->t.env, ids[i]) != 0)
            return -1;
    kith_buf_init(&f->genesis, &f->t.env, KITH_OP_MAX);
    if (kith_room_create(
            &f->t.env, &f->alice, "book club", "alice", "127.0.0.1:7000", &f->genesis, &f->room)
        != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kith_room_free(f->room);
    kith_buf_free(&f->genesis);
    assert_int_equal(f->t.allocs, 0);
    free(f);
    return 0;
}

static kith_room *open_as(fx *f, const kith_identity *self)
{
    kith_room *r = NULL;
    assert_int_equal(kith_room_open(&f->t.env, self, f->genesis.data, f->genesis.len, &r), 0);
    return r;
}

static void add(fx *f, kith_room *r, const kith_identity *who, const char *nick, kith_buf *op)
{
    kith_buf_init(op, &f->t.env, KITH_OP_MAX);
    assert_int_equal(
        kith_room_add(r, who->id_pk, who->dh_pk, who->cert_sig, nick, "", NULL, op), 0);
}

static void test_create(void **state)
{
    fx *f = *state;
    kith_room *r = f->room;
    assert_string_equal(kith_room_name(r), "book club");
    assert_int_equal(kith_room_epoch(r), 0);
    assert_non_null(kith_room_key(r, 0));
    assert_null(kith_room_key(r, 1));
    assert_int_equal(kith_room_member_count(r), 1);
    const kith_member *m = kith_room_member_at(r, 0);
    assert_memory_equal(m->id, f->alice.id_pk, KITH_ID_LEN);
    assert_memory_equal(m->dh, f->alice.dh_pk, KITH_DH_LEN);
    assert_int_equal(m->role, KITH_ROLE_ADMIN);
    assert_string_equal(m->nick, "alice");
    assert_string_equal(m->addr, "127.0.0.1:7000");
    assert_ptr_equal(kith_room_member(r, f->alice.id_pk), m);
    assert_null(kith_room_member(r, f->bob.id_pk));
    assert_null(kith_room_member_at(r, 1));
    uint8_t id[KITH_HASH_LEN];
    kith_hash(id, f->genesis.data, f->genesis.len);
    assert_memory_equal(kith_room_id(r), id, KITH_HASH_LEN);
    assert_int_equal(kith_room_op_count(r), 1);
    size_t len = 0;
    const uint8_t *op = kith_room_op_at(r, 0, &len);
    assert_int_equal(len, f->genesis.len);
    assert_memory_equal(op, f->genesis.data, len);
    assert_null(kith_room_op_at(r, 1, &len));

    /* Same name, founder and clock: still a different room. */
    kith_buf g2;
    kith_buf_init(&g2, &f->t.env, KITH_OP_MAX);
    kith_room *r2 = NULL;
    assert_int_equal(
        kith_room_create(&f->t.env, &f->alice, "book club", "alice", "127.0.0.1:7000", &g2, &r2),
        0);
    assert_memory_not_equal(kith_room_id(r2), kith_room_id(r), KITH_HASH_LEN);
    assert_memory_not_equal(kith_room_key(r2, 0), kith_room_key(r, 0), KITH_KEY_LEN);
    kith_room_free(r2);
    kith_buf_free(&g2);

    /* Bad names and nicks from the person. */
    kith_buf g3;
    kith_buf_init(&g3, &f->t.env, KITH_OP_MAX);
    kith_room *r3 = NULL;
    assert_int_equal(kith_room_create(&f->t.env, &f->alice, "", "a", NULL, &g3, &r3), KITH_EINVAL);
    assert_int_equal(
        kith_room_create(&f->t.env, &f->alice, "a\r\nQUIT", "a", NULL, &g3, &r3), KITH_EINVAL);
    assert_int_equal(
        kith_room_create(&f->t.env, &f->alice, "ok", "\xff", NULL, &g3, &r3), KITH_EINVAL);
    assert_int_equal(
        kith_room_create(&f->t.env, &f->alice, "ok", "a", "has space:1", &g3, &r3), KITH_EINVAL);
    char longname[KITH_ROOM_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(
        kith_room_create(&f->t.env, &f->alice, longname, "a", NULL, &g3, &r3), KITH_ETOOBIG);
    assert_int_equal(g3.len, 0);
    assert_null(r3);
    kith_buf_free(&g3);
}

static void test_join_and_keys(void **state)
{
    fx *f = *state;
    /* Bob's node opens the room from the genesis alone: no key yet. */
    kith_room *rb = open_as(f, &f->bob);
    assert_memory_equal(kith_room_id(rb), kith_room_id(f->room), KITH_HASH_LEN);
    assert_null(kith_room_key(rb, 0));
    assert_int_equal(kith_room_member_count(rb), 1);
    kith_buf tmp;
    kith_buf_init(&tmp, &f->t.env, KITH_OP_MAX);
    /* Bob is not a member: he can't admit anyone. */
    assert_int_equal(
        kith_room_add(rb, f->carol.id_pk, f->carol.dh_pk, f->carol.cert_sig, "c", "", NULL, &tmp),
        KITH_EPERM);

    kith_buf op1;
    uint8_t invite_id[KITH_HASH_LEN];
    memset(invite_id, 0x5a, sizeof invite_id);
    kith_buf_init(&op1, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_add(f->room, f->bob.id_pk, f->bob.dh_pk, f->bob.cert_sig, "bob",
                         "10.0.0.2:7000", invite_id, &op1),
        0);
    assert_int_equal(kith_room_member_count(f->room), 2);
    /* Adding him again is refused at once. */
    assert_int_equal(
        kith_room_add(f->room, f->bob.id_pk, f->bob.dh_pk, f->bob.cert_sig, "bob", "", NULL, &tmp),
        KITH_EEXIST);

    assert_int_equal(kith_room_apply(rb, op1.data, op1.len), 0);
    assert_int_equal(kith_room_apply(rb, op1.data, op1.len), KITH_EEXIST);
    assert_int_equal(kith_room_member_count(rb), 2);
    const kith_member *mb = kith_room_member(rb, f->bob.id_pk);
    assert_non_null(mb);
    assert_int_equal(mb->role, KITH_ROLE_MEMBER);
    assert_string_equal(mb->nick, "bob");
    assert_string_equal(mb->addr, "10.0.0.2:7000");
    assert_non_null(kith_room_key(rb, 0));
    assert_memory_equal(kith_room_key(rb, 0), kith_room_key(f->room, 0), KITH_KEY_LEN);

    /* Bob, a member now, admits carol; everyone converges. */
    kith_buf op2;
    add(f, rb, &f->carol, "carol", &op2);
    assert_int_equal(kith_room_apply(f->room, op2.data, op2.len), 0);

    kith_room *rc = open_as(f, &f->carol);
    size_t ops_before = kith_room_op_count(rc);
    assert_int_equal(kith_room_apply(rc, op2.data, op2.len), KITH_ENOENT); /* parent first */
    assert_int_equal(kith_room_op_count(rc), ops_before);
    assert_int_equal(kith_room_member_count(rc), 1);
    assert_int_equal(kith_room_apply(rc, op1.data, op1.len), 0);
    assert_int_equal(kith_room_apply(rc, op2.data, op2.len), 0);
    assert_memory_equal(kith_room_key(rc, 0), kith_room_key(f->room, 0), KITH_KEY_LEN);

    /* A bystander's node (dave, not added) sees members but holds no key. */
    kith_room *rd = open_as(f, &f->dave);
    assert_int_equal(kith_room_apply(rd, op1.data, op1.len), 0);
    assert_int_equal(kith_room_apply(rd, op2.data, op2.len), 0);
    assert_null(kith_room_key(rd, 0));

    kith_room *all[] = { f->room, rb, rc, rd };
    for (size_t i = 0; i < KITH_ARRAY_LEN(all); i++) {
        assert_int_equal(kith_room_member_count(all[i]), 3);
        assert_int_equal(kith_room_op_count(all[i]), 3);
        assert_int_equal(kith_room_member(all[i], f->carol.id_pk)->role, KITH_ROLE_MEMBER);
        assert_int_equal(kith_room_member(all[i], f->alice.id_pk)->role, KITH_ROLE_ADMIN);
    }
    /* Reopen from the log alone (what a node does at start-up). */
    kith_room *again = open_as(f, &f->bob);
    for (size_t i = 1; i < kith_room_op_count(rb); i++) {
        size_t len;
        const uint8_t *op = kith_room_op_at(rb, i, &len);
        assert_int_equal(kith_room_apply(again, op, len), 0);
    }
    assert_memory_equal(kith_room_key(again, 0), kith_room_key(f->room, 0), KITH_KEY_LEN);
    kith_room_free(again);

    kith_room_free(rb);
    kith_room_free(rc);
    kith_room_free(rd);
    kith_buf_free(&op1);
    kith_buf_free(&op2);
    kith_buf_free(&tmp);
}

/* A hand-built add op, every field settable, so each rule can be broken. */
typedef struct raw_add {
    const kith_identity *signer;
    const uint8_t *author;
    const uint8_t *room;
    size_t nparents;
    const uint8_t *parents[KITH_ROOM_MAX_PARENTS + 1];
    uint64_t lamport, epoch;
    const kith_identity *subject;
    const uint8_t *cert; /* default: the subject's */
    uint64_t role;
    const char *nick;
    bool noncanon; /* version written as 0xcc 0x01 */
    bool extra_key;
    uint64_t kind;
    uint8_t default_parent[KITH_HASH_LEN];
} raw_add;

static void raw_defaults(fx *f, raw_add *a, const kith_identity *subject)
{
    memset(a, 0, sizeof *a);
    a->signer = &f->alice;
    a->author = f->alice.id_pk;
    a->room = kith_room_id(f->room);
    a->nparents = 1;
    size_t len;
    const uint8_t *last = kith_room_op_at(f->room, kith_room_op_count(f->room) - 1, &len);
    kith_hash(a->default_parent, last, len);
    a->parents[0] = a->default_parent;
    a->subject = subject;
    a->role = KITH_ROLE_MEMBER;
    a->nick = "x";
    a->kind = KITH_OP_ADD;
}

static void op_id(const uint8_t *bytes, size_t len, uint8_t id[KITH_HASH_LEN])
{
    kith_hash(id, bytes, len);
}

static void build_add(fx *f, const raw_add *a, kith_buf *out)
{
    kith_buf body;
    kith_buf_init(&body, &f->t.env, KITH_OP_MAX);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &body);
    kith_wire_map(&w, a->extra_key ? 16 : 15);
    if (a->noncanon) {
        static const uint8_t v[] = { 0x00, 0xcc, 0x01 };
        kith_wire_raw(&w, v, sizeof v);
    } else {
        kith_wire_uint(&w, 0);
        kith_wire_uint(&w, 1);
    }
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, a->kind);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, a->room, KITH_HASH_LEN);
    kith_wire_uint(&w, 3);
    kith_wire_bin(&w, a->author, KITH_ID_LEN);
    /* The encoding lists parent ids in ascending order. */
    uint8_t ids[KITH_ROOM_MAX_PARENTS + 1][KITH_HASH_LEN];
    for (size_t i = 0; i < a->nparents; i++)
        memcpy(ids[i], a->parents[i], KITH_HASH_LEN);
    for (size_t i = 1; i < a->nparents; i++)
        for (size_t k = i; k > 0 && memcmp(ids[k - 1], ids[k], KITH_HASH_LEN) > 0; k--) {
            uint8_t t[KITH_HASH_LEN];
            memcpy(t, ids[k], KITH_HASH_LEN);
            memcpy(ids[k], ids[k - 1], KITH_HASH_LEN);
            memcpy(ids[k - 1], t, KITH_HASH_LEN);
        }
    kith_wire_uint(&w, 4);
    kith_wire_array(&w, (uint32_t)a->nparents);
    for (size_t i = 0; i < a->nparents; i++)
        kith_wire_bin(&w, ids[i], KITH_HASH_LEN);
    kith_wire_uint(&w, 5);
    kith_wire_uint(&w, 1767225600000ull);
    kith_wire_uint(&w, 6);
    kith_wire_uint(&w, a->lamport);
    kith_wire_uint(&w, 7);
    kith_wire_uint(&w, a->epoch);
    kith_wire_uint(&w, 8);
    kith_wire_bin(&w, a->subject->id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, 9);
    kith_wire_bin(&w, a->subject->dh_pk, KITH_DH_LEN);
    kith_wire_uint(&w, 10);
    kith_wire_bin(&w, a->cert ? a->cert : a->subject->cert_sig, KITH_SIG_LEN);
    kith_wire_uint(&w, 11);
    kith_wire_uint(&w, a->role);
    kith_wire_uint(&w, 12);
    kith_wire_str(&w, a->nick, strlen(a->nick));
    kith_wire_uint(&w, 13);
    kith_wire_str(&w, "", 0);
    if (a->extra_key) {
        kith_wire_uint(&w, 17);
        kith_wire_uint(&w, 0);
    }
    /* The seal is opaque to everyone but the subject; junk is fine here. */
    uint8_t sealed[88];
    memset(sealed, 0x77, sizeof sealed);
    kith_wire_uint(&w, 18);
    kith_wire_bin(&w, sealed, sizeof sealed);
    assert_int_equal(kith_wire_finish(&w), 0);

    uint8_t sig[KITH_SIG_LEN];
    assert_int_equal(kith_sign(&f->t.env, a->signer, KITH_DOMAIN_OP, body.data, body.len, sig), 0);
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 2);
    kith_wire_uint(&w, 0);
    kith_wire_bin(&w, body.data, body.len);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, sig, sizeof sig);
    assert_int_equal(kith_wire_finish(&w), 0);
    kith_buf_free(&body);
}

/* Apply raw bytes and check that a failure left the room exactly as it was. */
static int apply_checked(fx *f, kith_room *r, const uint8_t *op, size_t len)
{
    size_t ops = kith_room_op_count(r), members = kith_room_member_count(r);
    int rc = kith_room_apply(r, op, len);
    if (rc != 0) {
        assert_int_equal(kith_room_op_count(r), ops);
        assert_int_equal(kith_room_member_count(r), members);
    }
    (void)f;
    return rc;
}

static int apply_raw(fx *f, kith_room *r, const raw_add *a)
{
    kith_buf op;
    kith_buf_init(&op, &f->t.env, 2 * KITH_OP_MAX);
    build_add(f, a, &op);
    int rc = apply_checked(f, r, op.data, op.len);
    kith_buf_free(&op);
    return rc;
}

static void test_forged_ops(void **state)
{
    fx *f = *state;
    raw_add a;
    /* The builder itself is right: a well-formed op by alice applies. */
    raw_defaults(f, &a, &f->dave);
    a.lamport = 1;
    assert_int_equal(apply_raw(f, f->room, &a), 0);
    assert_non_null(kith_room_member(f->room, f->dave.id_pk));

    /* From here on, ops that try to add carol. */
    size_t len;
    const uint8_t *last = kith_room_op_at(f->room, 1, &len);
    uint8_t last_id[KITH_HASH_LEN];
    op_id(last, len, last_id);

    /* Signed by mallory, claims alice as author. */
    raw_defaults(f, &a, &f->carol);
    a.parents[0] = last_id;
    a.lamport = 2;
    a.signer = &f->mallory;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_ECRYPTO);
    /* Mallory as herself: not a member. */
    a.author = f->mallory.id_pk;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPERM);
    /* Unknown parent. */
    raw_defaults(f, &a, &f->carol);
    uint8_t nowhere[KITH_HASH_LEN];
    memset(nowhere, 0xee, sizeof nowhere);
    a.parents[0] = nowhere;
    a.lamport = 2;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_ENOENT);
    /* Wrong depth. */
    raw_defaults(f, &a, &f->carol);
    a.parents[0] = last_id;
    a.lamport = 5;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    /* Wrong room. */
    raw_defaults(f, &a, &f->carol);
    a.parents[0] = last_id;
    a.lamport = 2;
    uint8_t other_room[KITH_HASH_LEN];
    memset(other_room, 0x42, sizeof other_room);
    a.room = other_room;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    /* Non-canonical body, correctly signed. */
    raw_defaults(f, &a, &f->carol);
    a.parents[0] = last_id;
    a.lamport = 2;
    a.noncanon = true;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_ENONCANON);
    /* Unknown key, unknown kind, epoch from the future, bad role. */
    a.noncanon = false;
    a.extra_key = true;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.extra_key = false;
    a.kind = 9;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.kind = KITH_OP_ADD;
    a.epoch = 1;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.epoch = 0;
    a.role = 5;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.role = 0;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.role = KITH_ROLE_MEMBER;
    /* Certificate of someone else. */
    a.cert = f->bob.cert_sig;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_ECRYPTO);
    a.cert = NULL;
    /* Nick with a line break (would reach IRC clients). */
    a.nick = "car\nol";
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.nick = "carolcarolcarolcarolcarolcarolcarol"; /* 35 > KITH_NICK_MAX */
    assert_int_equal(apply_raw(f, f->room, &a), KITH_ETOOBIG);
    a.nick = "carol";
    /* Re-adding dave, already a member in the op's past. */
    a.subject = &f->dave;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EEXIST);
    a.subject = &f->carol;
    /* Duplicate parent. */
    a.nparents = 2;
    a.parents[1] = last_id;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPROTO);
    a.nparents = KITH_ROOM_MAX_PARENTS + 1;
    for (size_t i = 0; i < a.nparents; i++)
        a.parents[i] = last_id;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_ETOOBIG);
    a.nparents = 1;

    /* The genesis again, and another room's genesis. */
    assert_int_equal(apply_checked(f, f->room, f->genesis.data, f->genesis.len), KITH_EEXIST);
    kith_buf g2;
    kith_buf_init(&g2, &f->t.env, KITH_OP_MAX);
    kith_room *r2 = NULL;
    assert_int_equal(kith_room_create(&f->t.env, &f->mallory, "evil", "m", NULL, &g2, &r2), 0);
    assert_int_equal(apply_checked(f, f->room, g2.data, g2.len), KITH_EPROTO);
    /* An add op from that room does not apply here either. */
    kith_buf op;
    add(f, r2, &f->carol, "carol", &op);
    int rc = apply_checked(f, f->room, op.data, op.len);
    assert_true(rc == KITH_EPROTO || rc == KITH_ENOENT);
    kith_room_free(r2);
    kith_buf_free(&g2);
    kith_buf_free(&op);

    /* And the valid op still applies after all that. */
    raw_defaults(f, &a, &f->carol);
    a.parents[0] = last_id;
    a.lamport = 2;
    assert_int_equal(apply_raw(f, f->room, &a), 0);
    assert_int_equal(kith_room_member_count(f->room), 3);
}

static void test_tamper_every_byte(void **state)
{
    fx *f = *state;
    kith_room *r = open_as(f, &f->bob);
    kith_buf op;
    add(f, f->room, &f->bob, "bob", &op);
    static const uint8_t flips[] = { 0x01, 0x80 };
    for (size_t i = 0; i < op.len; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            op.data[i] ^= flips[k];
            int rc = apply_checked(f, r, op.data, op.len);
            if (rc == 0)
                fail_msg("byte %zu ^ %02x accepted", i, flips[k]);
            op.data[i] ^= flips[k];
        }
    }
    for (size_t n = 0; n < op.len; n += 5)
        assert_int_not_equal(apply_checked(f, r, op.data, n), 0);
    assert_int_equal(apply_checked(f, r, op.data, op.len), 0);
    assert_memory_equal(kith_room_key(r, 0), kith_room_key(f->room, 0), KITH_KEY_LEN);
    kith_room_free(r);
    kith_buf_free(&op);

    /* A tampered genesis does not open. */
    for (size_t i = 0; i < f->genesis.len; i += 3) {
        kith_room *x = NULL;
        f->genesis.data[i] ^= 0x04;
        assert_int_not_equal(
            kith_room_open(&f->t.env, &f->bob, f->genesis.data, f->genesis.len, &x), 0);
        assert_null(x);
        f->genesis.data[i] ^= 0x04;
    }
    /* An add op is not a genesis. */
    kith_room *x = NULL;
    kith_buf op2;
    add(f, f->room, &f->carol, "carol", &op2);
    assert_int_equal(kith_room_open(&f->t.env, &f->bob, op2.data, op2.len, &x), KITH_EPROTO);
    kith_buf_free(&op2);
}

static void test_roles(void **state)
{
    fx *f = *state;
    raw_add a;
    /* Alice admits dave as an observer. */
    raw_defaults(f, &a, &f->dave);
    a.lamport = 1;
    a.role = KITH_ROLE_OBSERVER;
    assert_int_equal(apply_raw(f, f->room, &a), 0);
    assert_int_equal(kith_room_member(f->room, f->dave.id_pk)->role, KITH_ROLE_OBSERVER);
    size_t len;
    const uint8_t *dave_op = kith_room_op_at(f->room, 1, &len);
    uint8_t dave_id[KITH_HASH_LEN];
    op_id(dave_op, len, dave_id);
    /* An observer can't admit anyone. */
    raw_defaults(f, &a, &f->carol);
    a.signer = &f->dave;
    a.author = f->dave.id_pk;
    a.parents[0] = dave_id;
    a.lamport = 2;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPERM);
    /* Bob, a member, can't grant admin. */
    kith_buf op;
    add(f, f->room, &f->bob, "bob", &op);
    uint8_t bob_id[KITH_HASH_LEN];
    op_id(op.data, op.len, bob_id);
    raw_defaults(f, &a, &f->carol);
    a.signer = &f->bob;
    a.author = f->bob.id_pk;
    a.parents[0] = bob_id;
    a.lamport = 3;
    a.role = KITH_ROLE_ADMIN;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPERM);
    /* Bob must be a member in the op's past: naming only the genesis as
     * parent (from before he was added) makes his op invalid everywhere,
     * whatever this node already knows. */
    raw_defaults(f, &a, &f->carol);
    a.signer = &f->bob;
    a.author = f->bob.id_pk;
    uint8_t gid[KITH_HASH_LEN];
    op_id(f->genesis.data, f->genesis.len, gid);
    a.parents[0] = gid;
    a.lamport = 1;
    assert_int_equal(apply_raw(f, f->room, &a), KITH_EPERM);
    /* With his add op in its past, the same op is fine. */
    a.parents[0] = bob_id;
    a.lamport = 3;
    assert_int_equal(apply_raw(f, f->room, &a), 0);
    kith_buf_free(&op);
}

/* A hand-built set-LAN op (kind 12, key 23), so non-admins and bad modes
 * can be tried. */
static void build_set_lan(fx *f, const kith_identity *signer, const uint8_t parent[KITH_HASH_LEN],
    uint64_t lamport, uint64_t mode, kith_buf *out)
{
    kith_buf body;
    kith_buf_init(&body, &f->t.env, KITH_OP_MAX);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &body);
    kith_wire_map(&w, 9);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, KITH_OP_SET_LAN);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, kith_room_id(f->room), KITH_HASH_LEN);
    kith_wire_uint(&w, 3);
    kith_wire_bin(&w, signer->id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, 4);
    kith_wire_array(&w, 1);
    kith_wire_bin(&w, parent, KITH_HASH_LEN);
    kith_wire_uint(&w, 5);
    kith_wire_uint(&w, 1767225600000ull);
    kith_wire_uint(&w, 6);
    kith_wire_uint(&w, lamport);
    kith_wire_uint(&w, 7);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, 23);
    kith_wire_uint(&w, mode);
    assert_int_equal(kith_wire_finish(&w), 0);
    uint8_t sig[KITH_SIG_LEN];
    assert_int_equal(kith_sign(&f->t.env, signer, KITH_DOMAIN_OP, body.data, body.len, sig), 0);
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 2);
    kith_wire_uint(&w, 0);
    kith_wire_bin(&w, body.data, body.len);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, sig, sizeof sig);
    assert_int_equal(kith_wire_finish(&w), 0);
    kith_buf_free(&body);
}

static void last_op_id(const kith_room *r, uint8_t id[KITH_HASH_LEN], uint64_t *lamport)
{
    size_t len;
    const uint8_t *op = kith_room_op_at(r, kith_room_op_count(r) - 1, &len);
    op_id(op, len, id);
    *lamport = kith_room_op_count(r) - 1; /* every op here follows the one before */
}

/* The LAN meetup setting is a signed room op that only admins may issue;
 * every replica ends with the same setting. */
static void test_lan_setting(void **state)
{
    fx *f = *state;
    kith_buf op_b, op_c, op;
    add(f, f->room, &f->bob, "bob", &op_b);
    add(f, f->room, &f->carol, "carol", &op_c);
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_set_role(f->room, f->carol.id_pk, KITH_ROLE_MODERATOR, &op), 0);
    kith_room *bob = open_as(f, &f->bob);
    for (size_t i = 1; i < kith_room_op_count(f->room); i++) {
        size_t len;
        const uint8_t *o = kith_room_op_at(f->room, i, &len);
        assert_int_equal(kith_room_apply(bob, o, len), 0);
    }
    kith_room *carol = open_as(f, &f->carol);
    for (size_t i = 1; i < kith_room_op_count(f->room); i++) {
        size_t len;
        const uint8_t *o = kith_room_op_at(f->room, i, &len);
        assert_int_equal(kith_room_apply(carol, o, len), 0);
    }
    assert_int_equal(kith_room_lan(f->room), KITH_ROOM_LAN_OFF);
    assert_int_equal(kith_room_lan(bob), KITH_ROOM_LAN_OFF);
    /* Not a member's or a moderator's to set; nor an unknown mode. */
    kith_buf_reset(&op);
    assert_int_equal(kith_room_set_lan(bob, KITH_ROOM_LAN_OPEN, &op), KITH_EPERM);
    assert_int_equal(kith_room_set_lan(carol, KITH_ROOM_LAN_KNOCK, &op), KITH_EPERM);
    assert_int_equal(kith_room_set_lan(f->room, 3, &op), KITH_EINVAL);
    assert_int_equal(kith_room_set_lan(f->room, -1, &op), KITH_EINVAL);
    assert_int_equal(op.len, 0);
    /* ... nor can they sign one by hand: every replica refuses it. */
    uint8_t parent[KITH_HASH_LEN];
    uint64_t lamport;
    last_op_id(f->room, parent, &lamport);
    kith_buf raw;
    kith_buf_init(&raw, &f->t.env, 2 * KITH_OP_MAX);
    build_set_lan(f, &f->carol, parent, lamport + 1, KITH_ROOM_LAN_OPEN, &raw);
    assert_int_equal(apply_checked(f, f->room, raw.data, raw.len), KITH_EPERM);
    assert_int_equal(apply_checked(f, bob, raw.data, raw.len), KITH_EPERM);
    kith_buf_reset(&raw);
    build_set_lan(f, &f->alice, parent, lamport + 1, 3, &raw); /* no such mode */
    assert_int_equal(apply_checked(f, bob, raw.data, raw.len), KITH_EPROTO);
    kith_buf_reset(&raw);
    build_set_lan(f, &f->alice, parent, lamport + 1, KITH_ROOM_LAN_OPEN, &raw);
    assert_int_equal(apply_checked(f, bob, raw.data, raw.len), 0);
    assert_int_equal(kith_room_lan(bob), KITH_ROOM_LAN_OPEN);
    assert_int_equal(kith_room_apply(f->room, raw.data, raw.len), 0);
    assert_int_equal(kith_room_apply(carol, raw.data, raw.len), 0);
    assert_int_equal(kith_room_lan(f->room), KITH_ROOM_LAN_OPEN);
    /* The admin's own: knock, then off; the replicas follow. */
    for (int mode = KITH_ROOM_LAN_KNOCK; mode >= KITH_ROOM_LAN_OFF; mode -= 2) {
        kith_buf_reset(&op);
        assert_int_equal(kith_room_set_lan(f->room, mode, &op), 0);
        assert_int_equal(kith_room_lan(f->room), mode);
        assert_int_equal(kith_room_apply(bob, op.data, op.len), 0);
        assert_int_equal(kith_room_apply(carol, op.data, op.len), 0);
        assert_int_equal(kith_room_lan(bob), mode);
        assert_int_equal(kith_room_lan(carol), mode);
        kith_op_info info;
        assert_int_equal(kith_room_op_info(bob, kith_room_op_count(bob) - 1, &info), 0);
        assert_int_equal(info.kind, KITH_OP_SET_LAN);
        assert_int_equal(info.lan, mode);
        assert_true(info.effective);
        assert_memory_equal(info.author, f->alice.id_pk, KITH_ID_LEN);
    }
    /* A replica rebuilt from the log alone has the same setting. */
    kith_buf_reset(&op);
    assert_int_equal(kith_room_set_lan(f->room, KITH_ROOM_LAN_KNOCK, &op), 0);
    kith_room *again = open_as(f, &f->bob);
    for (size_t i = 1; i < kith_room_op_count(f->room); i++) {
        size_t len;
        const uint8_t *o = kith_room_op_at(f->room, i, &len);
        assert_int_equal(kith_room_apply(again, o, len), 0);
    }
    assert_int_equal(kith_room_lan(again), KITH_ROOM_LAN_KNOCK);
    kith_room_free(again);
    kith_room_free(bob);
    kith_room_free(carol);
    kith_buf_free(&raw);
    kith_buf_free(&op);
    kith_buf_free(&op_b);
    kith_buf_free(&op_c);
}

static void test_concurrent_adds(void **state)
{
    fx *f = *state;
    kith_room *rb = open_as(f, &f->bob);
    kith_buf opb;
    add(f, f->room, &f->bob, "bob", &opb);
    assert_int_equal(kith_room_apply(rb, opb.data, opb.len), 0);
    /* Alice and bob both admit carol, each unaware of the other. */
    kith_buf x, y;
    add(f, f->room, &f->carol, "carol-a", &x);
    add(f, rb, &f->carol, "carol-b", &y);
    assert_int_equal(kith_room_apply(f->room, y.data, y.len), 0);
    assert_int_equal(kith_room_apply(rb, x.data, x.len), 0);
    /* Both nodes end with the same members, the same displayed nick and two
     * heads; carol's node too, whichever order it hears them in. */
    kith_room *rc = open_as(f, &f->carol);
    assert_int_equal(kith_room_apply(rc, opb.data, opb.len), 0);
    assert_int_equal(kith_room_apply(rc, y.data, y.len), 0);
    assert_int_equal(kith_room_apply(rc, x.data, x.len), 0);
    assert_non_null(kith_room_key(rc, 0));
    kith_room *all[] = { f->room, rb, rc };
    const char *nick = kith_room_member(f->room, f->carol.id_pk)->nick;
    for (size_t i = 0; i < KITH_ARRAY_LEN(all); i++) {
        assert_int_equal(kith_room_member_count(all[i]), 3);
        assert_int_equal(kith_room_op_count(all[i]), 4);
        assert_string_equal(kith_room_member(all[i], f->carol.id_pk)->nick, nick);
    }
    /* A later op names both heads. */
    kith_buf z;
    add(f, rb, &f->dave, "dave", &z);
    assert_int_equal(kith_room_apply(f->room, z.data, z.len), 0);
    assert_int_equal(kith_room_apply(rc, z.data, z.len), 0);
    kith_room_free(rb);
    kith_room_free(rc);
    kith_buf_free(&opb);
    kith_buf_free(&x);
    kith_buf_free(&y);
    kith_buf_free(&z);
}

static void test_alloc_failure(void **state)
{
    fx *f = *state;
    kith_room *rb = open_as(f, &f->bob);
    kith_buf op;
    add(f, f->room, &f->bob, "bob", &op);
    for (long n = 0; n < 40; n++) {
        f->t.fail_after = n;
        int rc = kith_room_apply(rb, op.data, op.len);
        f->t.fail_after = -1;
        if (rc == 0)
            break;
        assert_int_equal(rc, KITH_ENOMEM);
        assert_int_equal(kith_room_op_count(rb), 1);
        assert_int_equal(kith_room_member_count(rb), 1);
        assert_null(kith_room_key(rb, 0));
    }
    assert_int_equal(kith_room_apply(rb, op.data, op.len), KITH_EEXIST);
    assert_int_equal(kith_room_member_count(rb), 2);
    kith_room_free(rb);
    kith_buf_free(&op);
}

/* ---- Invites ---- */

static void sample_invite(fx *f, kith_invite *inv)
{
    memset(inv, 0, sizeof *inv);
    memcpy(inv->room_id, kith_room_id(f->room), KITH_HASH_LEN);
    memcpy(inv->inviter, f->alice.id_pk, KITH_ID_LEN);
    kith_random(&f->t.env, inv->secret, KITH_INVITE_SECRET_LEN);
    snprintf(inv->addr, sizeof inv->addr, "203.0.113.9:7117");
    inv->expires_ms = f->t.wall + 86400000ull;
}

static void test_invite_round_trip(void **state)
{
    fx *f = *state;
    kith_invite inv, got;
    sample_invite(f, &inv);
    char code[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_invite_encode(&f->t.env, &inv, code, sizeof code), 0);
    assert_true(strncmp(code, "kith1:", 6) == 0);
    assert_true(strlen(code) < KITH_INVITE_CODE_MAX);
    assert_null(strpbrk(code + 6, "+/=: "));
    assert_int_equal(kith_invite_decode(&f->t.env, code, &got), 0);
    assert_memory_equal(&got, &inv, sizeof inv);

    /* Pasted with whitespace around it. */
    char padded[KITH_INVITE_CODE_MAX + 16];
    snprintf(padded, sizeof padded, "  \t%s \r\n", code);
    memset(&got, 0, sizeof got);
    assert_int_equal(kith_invite_decode(&f->t.env, padded, &got), 0);
    assert_memory_equal(&got, &inv, sizeof inv);

    /* Longest address still fits. */
    memset(inv.addr, 'a', KITH_ADDR_MAX);
    inv.addr[KITH_ADDR_MAX] = '\0';
    inv.expires_ms = UINT64_MAX;
    assert_int_equal(kith_invite_encode(&f->t.env, &inv, code, sizeof code), 0);
    assert_int_equal(kith_invite_decode(&f->t.env, code, &got), 0);
    assert_memory_equal(&got, &inv, sizeof inv);
    /* Too small a buffer. */
    char small[64];
    assert_int_equal(kith_invite_encode(&f->t.env, &inv, small, sizeof small), KITH_ETOOBIG);
    /* A bad address is refused at encode. */
    snprintf(inv.addr, sizeof inv.addr, "a b");
    assert_int_equal(kith_invite_encode(&f->t.env, &inv, code, sizeof code), KITH_EINVAL);
}

static void test_invite_garbage(void **state)
{
    fx *f = *state;
    kith_invite inv;
    sample_invite(f, &inv);
    char code[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_invite_encode(&f->t.env, &inv, code, sizeof code), 0);
    size_t n = strlen(code);

    char buf[2 * KITH_INVITE_CODE_MAX];
    const char *bad[] = { "", "   ", "kith1:", "kith1", "KITH1:", "kith2:AAAA", "kith1:AAAA",
        "kith1:!!!!", "kith1:gqA=", "http://example.com/" };
    kith_invite got, untouched;
    memset(&untouched, 0xab, sizeof untouched);
    for (size_t i = 0; i < KITH_ARRAY_LEN(bad); i++) {
        got = untouched;
        if (kith_invite_decode(&f->t.env, bad[i], &got) != KITH_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_memory_equal(&got, &untouched, sizeof got);
    }
    /* Every truncation, and every single-character change. */
    for (size_t k = 0; k < n; k++) {
        memcpy(buf, code, k);
        buf[k] = '\0';
        assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);
    }
    int accepted = 0;
    for (size_t k = 6; k < n; k++) {
        memcpy(buf, code, n + 1);
        buf[k] = buf[k] == 'A' ? 'B' : 'A';
        if (kith_invite_decode(&f->t.env, buf, &got) == 0)
            accepted++; /* a change inside the secret or the ids is still a code */
    }
    assert_true(accepted < (int)(n - 6));
    /* Bytes outside the base64url alphabet, in every position (libsodium's
     * decoder alone accepts some bytes >= 0x80). */
    for (size_t k = 6; k < n; k++) {
        memcpy(buf, code, n + 1);
        buf[k] = (char)0xa0;
        assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);
        buf[k] = '=';
        assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);
    }
    /* Trailing junk, prefix case, a space inside. */
    snprintf(buf, sizeof buf, "%s#", code);
    assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);
    snprintf(buf, sizeof buf, "%.10s %s", code, code + 10);
    assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);
    /* Over the length cap. */
    memset(buf, 'A', sizeof buf - 1);
    memcpy(buf, "kith1:", 6);
    buf[sizeof buf - 1] = '\0';
    assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);

    /* A well-formed base64 of a non-canonical or wrong map. */
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 512);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    kith_wire_map(&w, 4); /* missing expiry */
    kith_wire_uint(&w, 0);
    kith_wire_bin(&w, inv.room_id, 32);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, inv.inviter, 32);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, inv.secret, 16);
    kith_wire_uint(&w, 3);
    kith_wire_str(&w, "x:1", 3);
    assert_int_equal(kith_wire_finish(&w), 0);
    memcpy(buf, "kith1:", 6);
    sodium_bin2base64(
        buf + 6, sizeof buf - 6, b.data, b.len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_int_equal(kith_invite_decode(&f->t.env, buf, &got), KITH_EINVAL);
    kith_buf_free(&b);
}

static void test_invite_id_and_proof(void **state)
{
    fx *f = *state;
    uint8_t s1[KITH_INVITE_SECRET_LEN], s2[KITH_INVITE_SECRET_LEN];
    kith_random(&f->t.env, s1, sizeof s1);
    memcpy(s2, s1, sizeof s2);
    s2[15] ^= 1;
    uint8_t id1[KITH_HASH_LEN], id1b[KITH_HASH_LEN], id2[KITH_HASH_LEN];
    kith_invite_id(s1, id1);
    kith_invite_id(s1, id1b);
    kith_invite_id(s2, id2);
    assert_memory_equal(id1, id1b, KITH_HASH_LEN);
    assert_memory_not_equal(id1, id2, KITH_HASH_LEN);

    uint8_t room[KITH_HASH_LEN], bind1[64], bind2[64];
    memset(room, 1, sizeof room);
    memset(bind1, 2, sizeof bind1);
    memcpy(bind2, bind1, sizeof bind2);
    bind2[63] ^= 1;
    uint8_t p1[KITH_HASH_LEN], p1b[KITH_HASH_LEN], p2[KITH_HASH_LEN], p3[KITH_HASH_LEN],
        p4[KITH_HASH_LEN], p5[KITH_HASH_LEN];
    kith_invite_proof(s1, room, f->bob.id_pk, bind1, p1);
    kith_invite_proof(s1, room, f->bob.id_pk, bind1, p1b);
    kith_invite_proof(s1, room, f->bob.id_pk, bind2, p2); /* other session */
    kith_invite_proof(s1, room, f->carol.id_pk, bind1, p3); /* other joiner */
    kith_invite_proof(s2, room, f->bob.id_pk, bind1, p4); /* other secret */
    room[0] ^= 1;
    kith_invite_proof(s1, room, f->bob.id_pk, bind1, p5); /* other room */
    assert_memory_equal(p1, p1b, KITH_HASH_LEN);
    const uint8_t *others[] = { p2, p3, p4, p5, id1 };
    for (size_t i = 0; i < KITH_ARRAY_LEN(others); i++)
        assert_memory_not_equal(p1, others[i], KITH_HASH_LEN);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lan_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_adds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_id_and_proof, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
