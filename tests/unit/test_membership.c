/* test_membership: the membership rules of the room log — removal and bans
 * with a new epoch key the removed member can't open, roles and who may use
 * them, the founder leaving, forged ops of every kind, and the property that
 * every arrival order of a set of concurrent ops gives the same state. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "testenv.h"

#include "crypto/crypto.h"
#include "room/room.h"
#include "wire/wire.h"

enum { ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GINA, MALLORY, NIDS };
static const char *names[NIDS]
    = { "alice", "bob", "carol", "dave", "erin", "frank", "gina", "mallory" };

typedef struct fx {
    test_env t;
    kith_identity id[NIDS];
    kith_buf genesis;
    kith_room *r[NIDS]; /* each person's replica; NULL when not opened */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    test_env_init(&f->t, 11);
    for (int i = 0; i < NIDS; i++)
        if (kith_identity_generate(&f->t.env, &f->id[i]) != 0)
            return -1;
    kith_buf_init(&f->genesis, &f->t.env, KITH_OP_MAX);
    if (kith_room_create(
            &f->t.env, &f->id[ALICE], "bookclub", "alice", "", &f->genesis, &f->r[ALICE])
        != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < NIDS; i++)
        kith_room_free(f->r[i]);
    kith_buf_free(&f->genesis);
    assert_int_equal(f->t.allocs, 0);
    free(f);
    return 0;
}

static kith_room *open_as(fx *f, int who)
{
    kith_room *r = NULL;
    assert_int_equal(
        kith_room_open(&f->t.env, &f->id[who], f->genesis.data, f->genesis.len, &r), 0);
    return r;
}

/* Apply every op of `from` that `to` lacks (parents come first in a log). */
static void sync_to(kith_room *to, const kith_room *from)
{
    for (size_t i = 1; i < kith_room_op_count(from); i++) {
        size_t len;
        const uint8_t *op = kith_room_op_at(from, i, &len);
        int rc = kith_room_apply(to, op, len);
        assert_true(rc == 0 || rc == KITH_EEXIST);
    }
}

static void sync_all(fx *f)
{
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < NIDS; i++)
            for (int j = 0; j < NIDS; j++)
                if (f->r[i] && f->r[j] && i != j)
                    sync_to(f->r[i], f->r[j]);
}

/* Alice admits `who` with the given role (via set role when not member). */
static void admit(fx *f, int who, int role)
{
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    const kith_identity *p = &f->id[who];
    assert_int_equal(
        kith_room_add(f->r[ALICE], p->id_pk, p->dh_pk, p->cert_sig, names[who], "", NULL, &op), 0);
    if (role != KITH_ROLE_MEMBER) {
        kith_buf_reset(&op);
        assert_int_equal(kith_room_set_role(f->r[ALICE], p->id_pk, role, &op), 0);
    }
    kith_buf_free(&op);
    if (!f->r[who])
        f->r[who] = open_as(f, who);
    sync_all(f);
}

static int role_in(const kith_room *r, const fx *f, int who)
{
    const kith_member *m = kith_room_member(r, f->id[who].id_pk);
    return m ? m->role : 0;
}

/* ---- removal, keys, roles ---- */

static void test_remove_rekeys(void **state)
{
    fx *f = *state;
    admit(f, BOB, KITH_ROLE_MEMBER);
    admit(f, CAROL, KITH_ROLE_MEMBER);
    uint8_t safety0[32], safety1[32];
    kith_room_safety(f->r[BOB], safety0);
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_remove(f->r[ALICE], f->id[CAROL].id_pk, &op), 0);
    sync_all(f);
    for (int i = ALICE; i <= CAROL; i++) {
        assert_int_equal(kith_room_epoch(f->r[i]), 1);
        assert_int_equal(kith_room_member_count(f->r[i]), 2);
        assert_null(kith_room_member(f->r[i], f->id[CAROL].id_pk));
        assert_false(kith_room_needs_rekey(f->r[i]));
    }
    kith_room_safety(f->r[BOB], safety1);
    assert_memory_not_equal(safety0, safety1, 32);
    uint64_t e;
    const uint8_t *ka = kith_room_current_key(f->r[ALICE], &e);
    assert_non_null(ka);
    assert_int_equal(e, 1);
    assert_memory_equal(ka, kith_room_current_key(f->r[BOB], NULL), KITH_KEY_LEN);
    /* Carol knows she was removed but holds no key of epoch 1. */
    assert_null(kith_room_current_key(f->r[CAROL], NULL));
    assert_null(kith_room_key(f->r[CAROL], 1));
    assert_non_null(kith_room_key(f->r[CAROL], 0));
    assert_non_null(kith_room_person(f->r[CAROL], f->id[CAROL].id_pk));
    /* She can author nothing any more. */
    kith_buf_reset(&op);
    assert_int_equal(kith_room_rekey(f->r[CAROL], &op), KITH_EPERM);
    assert_int_equal(kith_room_remove(f->r[CAROL], f->id[BOB].id_pk, &op), KITH_EPERM);
    /* Bob (member) can't remove alice, or anyone. */
    assert_int_equal(kith_room_remove(f->r[BOB], f->id[ALICE].id_pk, &op), KITH_EPERM);
    /* Ban: carol can't be re-added until unbanned. */
    assert_int_equal(kith_room_ban(f->r[ALICE], f->id[CAROL].id_pk, &op), 0);
    assert_int_equal(kith_room_epoch(f->r[ALICE]), 2);
    assert_true(kith_room_person(f->r[ALICE], f->id[CAROL].id_pk)->banned);
    kith_buf_reset(&op);
    const kith_identity *c = &f->id[CAROL];
    assert_int_equal(
        kith_room_add(f->r[ALICE], c->id_pk, c->dh_pk, c->cert_sig, "carol", "", NULL, &op),
        KITH_EPERM);
    assert_int_equal(kith_room_unban(f->r[ALICE], c->id_pk, &op), 0);
    kith_buf_reset(&op);
    assert_int_equal(
        kith_room_add(f->r[ALICE], c->id_pk, c->dh_pk, c->cert_sig, "carol", "", NULL, &op), 0);
    sync_all(f);
    /* Re-added: she gets the epoch-2 key through the add. */
    assert_non_null(kith_room_current_key(f->r[CAROL], &e));
    assert_int_equal(e, 2);
    assert_memory_equal(kith_room_current_key(f->r[CAROL], NULL),
        kith_room_current_key(f->r[BOB], NULL), KITH_KEY_LEN);
    kith_buf_free(&op);
}

static void test_roles_and_moderators(void **state)
{
    fx *f = *state;
    admit(f, BOB, KITH_ROLE_MODERATOR);
    admit(f, CAROL, KITH_ROLE_MEMBER);
    admit(f, DAVE, KITH_ROLE_OBSERVER);
    admit(f, ERIN, KITH_ROLE_ADMIN);
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    /* Moderators can't touch admins, or make admins. */
    assert_int_equal(kith_room_remove(f->r[BOB], f->id[ERIN].id_pk, &op), KITH_EPERM);
    assert_int_equal(
        kith_room_set_role(f->r[BOB], f->id[CAROL].id_pk, KITH_ROLE_ADMIN, &op), KITH_EPERM);
    assert_int_equal(kith_room_set_name(f->r[BOB], "x", &op), KITH_EPERM);
    /* ... but voice observers, set the topic and remove members. */
    assert_int_equal(kith_room_set_role(f->r[BOB], f->id[DAVE].id_pk, KITH_ROLE_MEMBER, &op), 0);
    kith_buf_reset(&op);
    assert_int_equal(kith_room_set_topic(f->r[BOB], "chapter 3 on friday", &op), 0);
    kith_buf_reset(&op);
    assert_int_equal(kith_room_remove(f->r[BOB], f->id[CAROL].id_pk, &op), 0);
    /* Members can't set the topic; admins rename. */
    kith_buf_reset(&op);
    sync_all(f);
    assert_int_equal(kith_room_set_topic(f->r[DAVE], "mine", &op), KITH_EPERM);
    assert_int_equal(kith_room_set_name(f->r[ERIN], "reading circle", &op), 0);
    sync_all(f);
    for (int i = ALICE; i <= ERIN; i++) {
        assert_string_equal(kith_room_topic(f->r[i]), "chapter 3 on friday");
        assert_string_equal(kith_room_name(f->r[i]), "reading circle");
        assert_int_equal(role_in(f->r[i], f, DAVE), KITH_ROLE_MEMBER);
        assert_int_equal(role_in(f->r[i], f, CAROL), 0);
    }
    kith_buf_free(&op);
}

/* Two admins remove each other, each unaware of the other: the op first in
 * (lamport, op id) order wins on every node; the other's author is gone by
 * then, so it has no effect. */
static void test_mutual_removal(void **state)
{
    fx *f = *state;
    admit(f, BOB, KITH_ROLE_ADMIN);
    admit(f, CAROL, KITH_ROLE_MEMBER);
    kith_buf x, y;
    kith_buf_init(&x, &f->t.env, KITH_OP_MAX);
    kith_buf_init(&y, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_remove(f->r[ALICE], f->id[BOB].id_pk, &x), 0);
    assert_int_equal(kith_room_remove(f->r[BOB], f->id[ALICE].id_pk, &y), 0);
    assert_int_equal(kith_room_apply(f->r[CAROL], y.data, y.len), 0);
    assert_int_equal(kith_room_apply(f->r[CAROL], x.data, x.len), 0);
    sync_all(f);
    uint8_t xid[32], yid[32];
    kith_hash(xid, x.data, x.len);
    kith_hash(yid, y.data, y.len);
    int winner = memcmp(xid, yid, 32) < 0 ? ALICE : BOB; /* same lamport */
    int loser = winner == ALICE ? BOB : ALICE;
    uint8_t s0[32], s1[32];
    kith_room_safety(f->r[CAROL], s0);
    for (int i = ALICE; i <= CAROL; i++) {
        assert_int_equal(role_in(f->r[i], f, winner), KITH_ROLE_ADMIN);
        assert_int_equal(role_in(f->r[i], f, loser), 0);
        assert_int_equal(kith_room_member_count(f->r[i]), 2);
        kith_room_safety(f->r[i], s1);
        assert_memory_equal(s0, s1, 32);
    }
    /* The winner's new key is the current one; the loser holds neither. */
    assert_memory_equal(kith_room_current_key(f->r[winner], NULL),
        kith_room_current_key(f->r[CAROL], NULL), KITH_KEY_LEN);
    assert_null(kith_room_current_key(f->r[loser], NULL));
    kith_buf_free(&x);
    kith_buf_free(&y);
}

static void test_founder_leaves(void **state)
{
    fx *f = *state;
    admit(f, BOB, KITH_ROLE_ADMIN);
    admit(f, CAROL, KITH_ROLE_MEMBER);
    admit(f, DAVE, KITH_ROLE_MEMBER);
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_leave(f->r[ALICE], &op), 0);
    sync_all(f);
    /* Alice still holds the current key: the room must rekey. */
    assert_true(kith_room_needs_rekey(f->r[BOB]));
    kith_buf_reset(&op);
    assert_int_equal(kith_room_rekey(f->r[BOB], &op), 0);
    assert_false(kith_room_needs_rekey(f->r[BOB]));
    /* Bob removes carol and admits erin: the room works without its founder. */
    kith_buf_reset(&op);
    assert_int_equal(kith_room_remove(f->r[BOB], f->id[CAROL].id_pk, &op), 0);
    kith_buf_reset(&op);
    const kith_identity *e = &f->id[ERIN];
    assert_int_equal(
        kith_room_add(f->r[BOB], e->id_pk, e->dh_pk, e->cert_sig, "erin", "", NULL, &op), 0);
    f->r[ERIN] = open_as(f, ERIN);
    sync_all(f);
    for (int i = BOB; i <= ERIN; i++) {
        assert_int_equal(kith_room_member_count(f->r[i]), 3);
        assert_int_equal(kith_room_epoch(f->r[i]), 2);
    }
    assert_null(kith_room_current_key(f->r[ALICE], NULL));
    assert_null(kith_room_current_key(f->r[CAROL], NULL));
    assert_memory_equal(kith_room_current_key(f->r[ERIN], NULL),
        kith_room_current_key(f->r[DAVE], NULL), KITH_KEY_LEN);
    kith_buf_free(&op);
}

/* The last admin leaves: the longest-standing member with the highest role
 * becomes admin, so the room is never left without one. */
static void test_succession(void **state)
{
    fx *f = *state;
    admit(f, BOB, KITH_ROLE_MEMBER);
    admit(f, CAROL, KITH_ROLE_MODERATOR);
    admit(f, DAVE, KITH_ROLE_MODERATOR);
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_leave(f->r[ALICE], &op), 0);
    sync_all(f);
    for (int i = BOB; i <= DAVE; i++) {
        assert_int_equal(role_in(f->r[i], f, CAROL), KITH_ROLE_ADMIN);
        assert_int_equal(role_in(f->r[i], f, DAVE), KITH_ROLE_MODERATOR);
    }
    kith_buf_free(&op);
}

/* ---- forged ops ---- */

typedef struct raw {
    const kith_identity *signer;
    const uint8_t *author;
    uint64_t kind, lamport, epoch;
    size_t nparents;
    uint8_t parents[2][32];
    const uint8_t *subject; /* remove */
    size_t nseals;
    const kith_identity *seal_to[8];
} raw;

/* A hand-built remove or rekey op, every field settable. */
static void build_raw(fx *f, const raw *a, kith_buf *out)
{
    kith_buf body;
    kith_buf_init(&body, &f->t.env, KITH_OP_MAX);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &body);
    kith_wire_map(&w, 9 + (a->subject ? 1 : 0));
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, a->kind);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, kith_room_id(f->r[ALICE]), 32);
    kith_wire_uint(&w, 3);
    kith_wire_bin(&w, a->author, 32);
    kith_wire_uint(&w, 4);
    kith_wire_array(&w, (uint32_t)a->nparents);
    for (size_t i = 0; i < a->nparents; i++)
        kith_wire_bin(&w, a->parents[i], 32);
    kith_wire_uint(&w, 5);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, 6);
    kith_wire_uint(&w, a->lamport);
    kith_wire_uint(&w, 7);
    kith_wire_uint(&w, a->epoch);
    if (a->subject) {
        kith_wire_uint(&w, 8);
        kith_wire_bin(&w, a->subject, 32);
    }
    kith_wire_uint(&w, 20);
    kith_wire_array(&w, (uint32_t)a->nseals);
    for (size_t i = 0; i < a->nseals; i++) {
        uint8_t msg[40] = { 0 }, sealed[88];
        size_t n;
        msg[7] = (uint8_t)a->epoch;
        assert_int_equal(
            kith_seal_to_env(&f->t.env, a->seal_to[i]->dh_pk, msg, 40, sealed, 88, &n), 0);
        kith_wire_array(&w, 2);
        kith_wire_bin(&w, a->seal_to[i]->id_pk, 32);
        kith_wire_bin(&w, sealed, 88);
    }
    assert_int_equal(kith_wire_finish(&w), 0);
    uint8_t sig[64];
    assert_int_equal(kith_sign(&f->t.env, a->signer, KITH_DOMAIN_OP, body.data, body.len, sig), 0);
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 2);
    kith_wire_uint(&w, 0);
    kith_wire_bin(&w, body.data, body.len);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, sig, 64);
    assert_int_equal(kith_wire_finish(&w), 0);
    kith_buf_free(&body);
}

static int sort_ids(const void *a, const void *b)
{
    const kith_identity *const *x = a, *const *y = b;
    return memcmp((*x)->id_pk, (*y)->id_pk, 32);
}

/* A valid "alice removes carol" as a raw op, which each case then breaks. */
static void raw_remove(fx *f, raw *a)
{
    memset(a, 0, sizeof *a);
    a->signer = &f->id[ALICE];
    a->author = f->id[ALICE].id_pk;
    a->kind = KITH_OP_REMOVE;
    size_t n = kith_room_op_count(f->r[ALICE]), len;
    const uint8_t *last = kith_room_op_at(f->r[ALICE], n - 1, &len);
    kith_hash(a->parents[0], last, len);
    a->nparents = 1;
    a->lamport = n - 1 + 1; /* a chain: depth = index */
    a->epoch = kith_room_epoch(f->r[ALICE]) + 1;
    a->subject = f->id[CAROL].id_pk;
    a->nseals = 2;
    a->seal_to[0] = &f->id[ALICE];
    a->seal_to[1] = &f->id[BOB];
    qsort(a->seal_to, 2, sizeof a->seal_to[0], sort_ids);
}

static int try_raw(fx *f, const raw *a)
{
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    build_raw(f, a, &op);
    size_t before = kith_room_op_count(f->r[ALICE]);
    int rc = kith_room_apply(f->r[ALICE], op.data, op.len);
    if (rc)
        assert_int_equal(kith_room_op_count(f->r[ALICE]), before);
    kith_buf_free(&op);
    return rc;
}

static void test_forged_ops(void **state)
{
    fx *f = *state;
    admit(f, BOB, KITH_ROLE_MEMBER);
    admit(f, CAROL, KITH_ROLE_MEMBER);
    raw a;
    /* Wrong signer: alice's op signed by mallory. */
    raw_remove(f, &a);
    a.signer = &f->id[MALLORY];
    assert_int_equal(try_raw(f, &a), KITH_ECRYPTO);
    /* Missing role: bob, a member, removes carol. */
    raw_remove(f, &a);
    a.signer = &f->id[BOB];
    a.author = f->id[BOB].id_pk;
    a.seal_to[0] = &f->id[ALICE];
    a.seal_to[1] = &f->id[BOB];
    qsort(a.seal_to, 2, sizeof a.seal_to[0], sort_ids);
    assert_int_equal(try_raw(f, &a), KITH_EPERM);
    /* Not a member at all. */
    raw_remove(f, &a);
    a.signer = &f->id[MALLORY];
    a.author = f->id[MALLORY].id_pk;
    assert_int_equal(try_raw(f, &a), KITH_EPERM);
    /* Broken hash link: unknown parent; wrong depth. */
    raw_remove(f, &a);
    a.parents[0][0] ^= 1;
    assert_int_equal(try_raw(f, &a), KITH_ENOENT);
    raw_remove(f, &a);
    a.lamport++;
    assert_int_equal(try_raw(f, &a), KITH_EPROTO);
    /* Wrong epoch; a key sealed to the removed member; a member left out. */
    raw_remove(f, &a);
    a.epoch = 0;
    assert_int_equal(try_raw(f, &a), KITH_EPROTO);
    raw_remove(f, &a);
    a.nseals = 3;
    a.seal_to[2] = &f->id[CAROL];
    qsort(a.seal_to, 3, sizeof a.seal_to[0], sort_ids);
    assert_int_equal(try_raw(f, &a), KITH_EPROTO);
    raw_remove(f, &a);
    a.nseals = 1;
    a.seal_to[0] = &f->id[ALICE];
    assert_int_equal(try_raw(f, &a), KITH_EPROTO);
    /* Removing oneself is a leave, not a remove. */
    raw_remove(f, &a);
    a.subject = f->id[ALICE].id_pk;
    assert_int_equal(try_raw(f, &a), KITH_EPERM);
    /* The valid one, then its replay. */
    raw_remove(f, &a);
    kith_buf op;
    kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
    build_raw(f, &a, &op);
    assert_int_equal(kith_room_apply(f->r[ALICE], op.data, op.len), 0);
    assert_int_equal(kith_room_apply(f->r[ALICE], op.data, op.len), KITH_EEXIST);
    assert_null(kith_room_member(f->r[ALICE], f->id[CAROL].id_pk));
    /* An op from the removed member, after her removal: refused. */
    memset(&a, 0, sizeof a);
    a.signer = &f->id[CAROL];
    a.author = f->id[CAROL].id_pk;
    a.kind = KITH_OP_REKEY;
    kith_hash(a.parents[0], op.data, op.len);
    a.nparents = 1;
    a.lamport = kith_room_op_count(f->r[ALICE]);
    a.epoch = 2;
    a.nseals = 2;
    a.seal_to[0] = &f->id[ALICE];
    a.seal_to[1] = &f->id[BOB];
    qsort(a.seal_to, 2, sizeof a.seal_to[0], sort_ids);
    assert_int_equal(try_raw(f, &a), KITH_EPERM);
    /* Bytes tampered anywhere never apply. */
    for (size_t i = 0; i < op.len; i += 7) {
        kith_room *r = open_as(f, DAVE);
        for (size_t k = 1; k + 1 < kith_room_op_count(f->r[ALICE]); k++) {
            size_t len;
            const uint8_t *p = kith_room_op_at(f->r[ALICE], k, &len);
            assert_int_equal(kith_room_apply(r, p, len), 0);
        }
        op.data[i] ^= 0x20;
        assert_int_not_equal(kith_room_apply(r, op.data, op.len), 0);
        op.data[i] ^= 0x20;
        kith_room_free(r);
    }
    kith_buf_free(&op);
}

/* ---- convergence property ---- */

typedef struct opset {
    kith_buf ops[64];
    size_t n;
} opset;

static int random_op(fx *f, int actor, uint64_t *rng, kith_buf *out)
{
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t x = (uint32_t)(*rng >> 33);
    int target = (int)((x >> 4) % 7);
    const uint8_t *tid = f->id[target].id_pk;
    const kith_identity *t = &f->id[target];
    kith_room *r = f->r[actor];
    switch (x % 9) {
    case 0:
        return kith_room_remove(r, tid, out);
    case 1:
        return kith_room_ban(r, tid, out);
    case 2:
        return kith_room_unban(r, tid, out);
    case 3:
        return kith_room_set_role(r, tid, (int)((x >> 8) % 4) + 1, out);
    case 4:
        return kith_room_set_topic(r, names[target], out);
    case 5:
        return kith_room_rekey(r, out);
    case 6:
        return kith_room_leave(r, out);
    case 7:
        return kith_room_add(r, t->id_pk, t->dh_pk, t->cert_sig, names[actor], "", NULL, out);
    default:
        return kith_room_set_name(r, names[actor], out);
    }
}

static int sort_members(const void *a, const void *b)
{
    const kith_member *const *x = a, *const *y = b;
    return memcmp((*x)->id, (*y)->id, KITH_ID_LEN);
}

static void describe(const kith_room *r, char *out, size_t cap)
{
    size_t off = (size_t)snprintf(out, cap, "%s|%s|%llu|%d|", kith_room_name(r), kith_room_topic(r),
        (unsigned long long)kith_room_epoch(r), kith_room_needs_rekey(r));
    uint8_t s[32];
    kith_room_safety(r, s);
    for (int i = 0; i < 8 && off + 3 < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%02x", s[i]);
    /* Members in id order (the member list is in first-seen order). */
    const kith_member *ms[NIDS];
    size_t n = 0;
    for (size_t i = 0; i < kith_room_member_count(r) && n < NIDS; i++)
        ms[n++] = kith_room_member_at(r, i);
    qsort(ms, n, sizeof ms[0], sort_members);
    for (size_t i = 0; i < n && off + 8 < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, ",%02x%d", ms[i]->id[0], ms[i]->role);
}

/* Apply ops in the given order, holding those whose parent is missing. */
static void apply_order(kith_room *r, opset *set, const size_t *perm)
{
    bool done[64] = { false };
    size_t left = set->n;
    while (left) {
        bool progress = false;
        for (size_t k = 0; k < set->n; k++) {
            size_t i = perm[k];
            if (done[i])
                continue;
            int rc = kith_room_apply(r, set->ops[i].data, set->ops[i].len);
            if (rc == KITH_ENOENT)
                continue;
            assert_true(rc == 0 || rc == KITH_EEXIST);
            done[i] = true;
            left--;
            progress = true;
            break; /* restart: earlier held ops may now fit */
        }
        assert_true(progress);
    }
}

/* `history` topic ops first: a long log, so that the room's replay
 * checkpoint (which trails the end of the order) is in use. */
static void convergence(fx *f, int rounds, int history)
{
    admit(f, BOB, KITH_ROLE_ADMIN);
    admit(f, CAROL, KITH_ROLE_MODERATOR);
    admit(f, DAVE, KITH_ROLE_MEMBER);
    admit(f, ERIN, KITH_ROLE_OBSERVER);
    for (int i = 0; i < history; i++) {
        kith_buf op;
        kith_buf_init(&op, &f->t.env, KITH_OP_MAX);
        char topic[32];
        snprintf(topic, sizeof topic, "chapter %d", i);
        assert_int_equal(kith_room_set_topic(f->r[i % 2 ? ALICE : CAROL], topic, &op), 0);
        assert_int_equal(kith_room_apply(f->r[i % 2 ? CAROL : ALICE], op.data, op.len), 0);
        kith_buf_free(&op);
    }
    f->r[FRANK] = open_as(f, FRANK);
    f->r[GINA] = open_as(f, GINA);
    sync_all(f);
    size_t base = kith_room_op_count(f->r[ALICE]);
    uint64_t rng = 42;
    size_t total = 0;
    for (int round = 0; round < rounds; round++) {
        /* Fresh replicas of the base state for each round. */
        kith_room *rep[5];
        for (int i = 0; i < 5; i++) {
            rep[i] = open_as(f, i);
            sync_to(rep[i], f->r[ALICE]);
        }
        kith_room *saved[5];
        memcpy(saved, f->r, sizeof saved);
        memcpy(f->r, rep, sizeof rep);
        opset set;
        set.n = 0;
        /* Each step: a random actor authors a random op in its own view;
         * sometimes it first hears one op another made (partial sync). */
        for (int step = 0; step < 10 && set.n < 64; step++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int actor = (int)((rng >> 40) % 5);
            if (set.n && (rng >> 20) % 3 == 0) {
                size_t pick = (size_t)((rng >> 8) % set.n);
                int rc = kith_room_apply(f->r[actor], set.ops[pick].data, set.ops[pick].len);
                (void)rc; /* may lack a parent: fine */
            }
            kith_buf_init(&set.ops[set.n], &f->t.env, KITH_OP_MAX);
            if (random_op(f, actor, &rng, &set.ops[set.n]) == 0)
                set.n++;
            else
                kith_buf_free(&set.ops[set.n]);
        }
        memcpy(f->r, saved, sizeof saved);
        /* Every arrival order gives the same state, on members' nodes and
         * on a bystander's. */
        char first[2048] = "", now[2048];
        for (int perm_i = 0; perm_i < 6; perm_i++) {
            size_t perm[64];
            for (size_t i = 0; i < set.n; i++)
                perm[i] = i;
            for (size_t i = set.n; i > 1; i--) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                size_t j = (size_t)((rng >> 33) % i);
                size_t t = perm[i - 1];
                perm[i - 1] = perm[j];
                perm[j] = t;
            }
            kith_room *r = open_as(f, (perm_i % 2) ? FRANK : perm_i % 5);
            sync_to(r, f->r[ALICE]);
            apply_order(r, &set, perm);
            describe(r, now, sizeof now);
            if (perm_i == 0)
                snprintf(first, sizeof first, "%s", now);
            assert_string_equal(first, now);
            kith_room_free(r);
        }
        /* The replicas that authored converge too, and members that hold the
         * current key hold the same one. */
        const uint8_t *key = NULL;
        uint8_t keep[KITH_KEY_LEN];
        size_t order[64];
        for (size_t i = 0; i < set.n; i++)
            order[i] = set.n - 1 - i;
        for (int i = 0; i < 5; i++) {
            apply_order(rep[i], &set, order);
            describe(rep[i], now, sizeof now);
            assert_string_equal(first, now);
            const uint8_t *k = kith_room_current_key(rep[i], NULL);
            if (k && kith_room_member(rep[i], f->id[i].id_pk)) {
                if (!key) {
                    memcpy(keep, k, sizeof keep);
                    key = keep;
                }
                assert_memory_equal(key, k, KITH_KEY_LEN);
            }
            kith_room_free(rep[i]);
        }
        total += set.n;
        for (size_t i = 0; i < set.n; i++)
            kith_buf_free(&set.ops[i]);
    }
    /* Not vacuous: most random ops were allowed in their author's view. */
    fprintf(stderr, "convergence: %zu concurrent ops in %d rounds\n", total, rounds);
    assert_true(total >= (size_t)rounds * 5 / 2);
    assert_int_equal(kith_room_op_count(f->r[ALICE]), base);
}

/* More concurrent heads than an op names (8), all deeper than the add that
 * made bob a member: bob's next op must still have that add in its past,
 * else it is refused as "not permitted" (a wave of joins in a big room). */
static void test_parents_keep_own_add(void **state)
{
    fx *f = *state;
    admit(f, CAROL, KITH_ROLE_MODERATOR);
    const kith_identity *p = &f->id[BOB];
    kith_buf add, ops[18], inv;
    kith_buf_init(&add, &f->t.env, KITH_OP_MAX);
    assert_int_equal(
        kith_room_add(f->r[ALICE], p->id_pk, p->dh_pk, p->cert_sig, "bob", "", NULL, &add), 0);
    /* Nine replicas of carol's node, unaware of bob, each set the topic twice. */
    for (int k = 0; k < 9; k++) {
        kith_room *rep = open_as(f, CAROL);
        sync_to(rep, f->r[CAROL]);
        for (int j = 0; j < 2; j++) {
            char topic[32];
            snprintf(topic, sizeof topic, "draft %d.%d", k, j);
            kith_buf_init(&ops[k * 2 + j], &f->t.env, KITH_OP_MAX);
            assert_int_equal(kith_room_set_topic(rep, topic, &ops[k * 2 + j]), 0);
        }
        kith_room_free(rep);
    }
    f->r[BOB] = open_as(f, BOB);
    sync_to(f->r[BOB], f->r[ALICE]);
    for (int k = 0; k < 18; k++) {
        assert_int_equal(kith_room_apply(f->r[BOB], ops[k].data, ops[k].len), 0);
        assert_int_equal(kith_room_apply(f->r[ALICE], ops[k].data, ops[k].len), 0);
    }
    uint8_t invite_id[KITH_HASH_LEN] = { 1, 2, 3 };
    kith_buf_init(&inv, &f->t.env, KITH_OP_MAX);
    assert_int_equal(kith_room_invite_issued(f->r[BOB], invite_id, UINT64_MAX / 2, 1, &inv), 0);
    assert_int_equal(kith_room_apply(f->r[ALICE], inv.data, inv.len), 0);
    assert_int_equal(kith_room_op_count(f->r[ALICE]), kith_room_op_count(f->r[BOB]));
    kith_buf_free(&add);
    kith_buf_free(&inv);
    for (int k = 0; k < 18; k++)
        kith_buf_free(&ops[k]);
}

static void test_convergence_property(void **state)
{
    convergence(*state, 40, 0);
}

static void test_convergence_long_log(void **state)
{
    convergence(*state, 8, 200);
}

/* ---- display names (proto 5.7) ---- */

static void skel(const char *nick, const char *want)
{
    char out[KITH_NICK_MAX * 4 + 1];
    kith_nick_skeleton(nick, out, sizeof out);
    if (strcmp(out, want) != 0)
        fail_msg("skeleton of \"%s\" is \"%s\", want \"%s\"", nick, out, want);
}

static void test_name_skeleton(void **state)
{
    (void)state;
    skel("alice", "allce"); /* i and l fold together */
    skel("Alice", "allce");
    skel("ALICE", "allce");
    skel("al1ce", "allce");
    skel("a l i c e", "allce");
    skel("al\xe2\x80\x8b"
         "ice",
        "allce"); /* zero-width space */
    skel("al\xc2\xa0ice", "allce"); /* no-break space */
    skel("\xd0\xb0lice", "allce"); /* Cyrillic a */
    skel("\xef\xbd\x81lice", "allce"); /* fullwidth a */
    skel("\xc3\xa1lice", "allce"); /* a with acute */
    skel("a\xcc\x81lice", "allce"); /* a + combining acute */
    skel("al.ice", "allce");
    skel("alice~3f2a", "allce"); /* the chosen name ends at '~' */
    skel("alice\xe2\x88\xbcxyz", "allce"); /* U+223C, a tilde look-alike */
    skel("bob0", "bobo");
    skel("rnallory", "mallory");
    skel("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"); /* kept as is */
    skel("~", "");
    skel("", "");
}

static void names_of(
    fx *f, size_t count, const char *const *nicks, char (*out)[KITH_DISPLAY_MAX + 1])
{
    uint8_t ids[NIDS][KITH_ID_LEN];
    for (size_t i = 0; i < count; i++)
        memcpy(ids[i], f->id[i].id_pk, KITH_ID_LEN);
    assert_int_equal(
        kith_display_names(&f->t.env, count, (const uint8_t(*)[KITH_ID_LEN])ids, nicks, out), 0);
}

static void suffix_of(fx *f, int who, size_t k, char *out)
{
    char fpr[KITH_FPR_STRLEN];
    kith_fingerprint(f->id[who].id_pk, fpr);
    size_t o = 0;
    for (size_t i = 0; fpr[i] && o < k; i++)
        if (fpr[i] != '-')
            out[o++] = fpr[i];
    out[o] = '\0';
}

static void test_display_names(void **state)
{
    fx *f = *state;
    char out[NIDS][KITH_DISPLAY_MAX + 1], want[64], sfx[32];

    /* Distinct names are shown as chosen. */
    const char *plain[] = { "alice", "bob", "carol" };
    names_of(f, 3, plain, out);
    assert_string_equal(out[0], "alice");
    assert_string_equal(out[1], "bob");
    assert_string_equal(out[2], "carol");

    /* Two members called alice: both get their own fingerprint suffix. */
    const char *twins[] = { "alice", "bob", "alice" };
    names_of(f, 3, twins, out);
    suffix_of(f, 0, 4, sfx);
    snprintf(want, sizeof want, "alice~%s", sfx);
    assert_string_equal(out[0], want);
    suffix_of(f, 2, 4, sfx);
    snprintf(want, sizeof want, "alice~%s", sfx);
    assert_string_equal(out[2], want);
    assert_string_equal(out[1], "bob");
    assert_string_not_equal(out[0], out[2]);

    /* Look-alikes collide too: case, a digit, an invisible character, a
     * Cyrillic letter. Every one of them is suffixed; no two are equal. */
    const char *alikes[]
        = { "alice", "Alice", "al1ce", "al\xe2\x80\x8bice", "\xd0\xb0lice", "bob" };
    names_of(f, 6, alikes, out);
    for (int i = 0; i < 5; i++) {
        suffix_of(f, i, 4, sfx);
        assert_non_null(strstr(out[i], sfx));
        assert_non_null(strchr(out[i], '~'));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(out[i], out[j]);
    }
    assert_string_equal(out[5], "bob");

    /* A name that copies another's displayed form: mallory calls herself
     * "alice~<alice's suffix>". What follows '~' is always the real
     * fingerprint, so she shows as alice~<her own>, and alice (whose name
     * now collides) as alice~<hers>. */
    suffix_of(f, 0, 4, sfx);
    char fake[64];
    snprintf(fake, sizeof fake, "alice~%s", sfx);
    const char *imp[] = { "alice", "bob" };
    imp[1] = fake;
    names_of(f, 2, imp, out);
    assert_string_equal(out[0], fake);
    suffix_of(f, 1, 4, sfx);
    snprintf(want, sizeof want, "alice~%s", sfx);
    assert_string_equal(out[1], want);
    /* Alone, a name with a '~' is still cut there and suffixed. */
    const char *alone[] = { "x~y", "~" };
    names_of(f, 2, alone, out);
    suffix_of(f, 0, 4, sfx);
    snprintf(want, sizeof want, "x~%s", sfx);
    assert_string_equal(out[0], want);
    suffix_of(f, 1, 4, sfx);
    snprintf(want, sizeof want, "anon~%s", sfx);
    assert_string_equal(out[1], want);
}

/* Someone who grinds a key whose fingerprint starts like alice's gets a
 * longer suffix: the suffixes differ however many digits they share. Two
 * ids whose fingerprints share 4 digits are found by the birthday paradox
 * among 4096 random ids (about 8 such pairs are expected). */
typedef struct fid {
    uint8_t id[KITH_ID_LEN];
    char fpr[KITH_FPR_STRLEN];
} fid;

static int by_fpr(const void *a, const void *b)
{
    return strcmp(((const fid *)a)->fpr, ((const fid *)b)->fpr);
}

static void test_display_names_grind(void **state)
{
    fx *f = *state;
    enum { N = 4096 };
    fid *v = calloc(N, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < N; i++) {
        kith_random(&f->t.env, v[i].id, KITH_ID_LEN);
        kith_fingerprint(v[i].id, v[i].fpr);
    }
    qsort(v, N, sizeof *v, by_fpr);
    size_t at = N;
    for (size_t i = 1; i < N && at == N; i++)
        if (memcmp(v[i - 1].fpr, v[i].fpr, 4) == 0)
            at = i;
    assert_true(at < N);
    uint8_t ids[2][KITH_ID_LEN];
    memcpy(ids[0], v[at - 1].id, KITH_ID_LEN);
    memcpy(ids[1], v[at].id, KITH_ID_LEN);
    const char *nicks[] = { "alice", "alice" };
    char out[2][KITH_DISPLAY_MAX + 1];
    assert_int_equal(
        kith_display_names(&f->t.env, 2, (const uint8_t(*)[KITH_ID_LEN])ids, nicks, out), 0);
    assert_string_not_equal(out[0], out[1]);
    assert_true(strlen(out[0]) > strlen("alice~") + 4);
    assert_int_equal(memcmp(out[0], out[1], strlen("alice~") + 4), 0);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remove_rekeys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles_and_moderators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutual_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_founder_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_succession, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convergence_property, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convergence_long_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parents_keep_own_add, setup, teardown),
        cmocka_unit_test(test_name_skeleton),
        cmocka_unit_test_setup_teardown(test_display_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_display_names_grind, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
