/* test_membership_node: membership on running nodes, through tworld, the
 * in-process driver in testenv.h (every WRITE is delivered to the peer's
 * conn_data, CONNECT looks the address up, time is virtual).
 *
 * Six members; one is removed while it hears nothing, so it keeps running
 * with its old state: it reads no message of the new epoch and none of its
 * later posts is accepted anywhere. Then the founder leaves and the admin it
 * named removes and admits members; the room keeps working. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "crypto/crypto.h"
#include "kith/node.h"
#include "msg/msg.h"
#include "room/room.h"
#include "session/session.h"
#include "store/store.h"
#include "testenv.h"

static tworld *W;
static tworld_opts opts; /* rekey_every_ms for the scheduled-rekey test */

static void invite_join(tworld *w, const uint8_t room[32], int inviter, int joiner)
{
    char code[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_node_invite(w->n[inviter].node, room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[joiner].node, code), 0);
    tw_settle(w);
}

static bool has_info(const tnode *tn, const char *sub)
{
    for (size_t i = 0; i < tn->nev; i++)
        if (tn->ev[i].type == KITH_EV_INFO && strstr(tn->ev[i].text, sub))
            return true;
    return false;
}

static void member_id(tworld *w, int i, uint8_t out[32])
{
    memcpy(out, w->n[i].id.id_pk, 32);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(sodium_init() >= 0, 1);
    W = calloc(1, sizeof *W);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tw_free(W);
    free(W);
    opts.rekey_every_ms = 0;
    return 0;
}

enum { A, B, C, D, E, F, G };

static void test_removed_member_reads_and_posts_nothing(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 7, &opts);
    uint8_t room[32], id[32];
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    for (int j = B; j <= F; j++)
        invite_join(w, room, A, j);
    tw_tick(w, 2);
    for (int i = A; i <= F; i++)
        assert_int_equal(kith_node_member_count(w->n[i].node, room), 6);
    tw_send(w, A, room, "before the removal");
    tw_tick(w, 2);
    for (int i = A; i <= F; i++)
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "before the removal"), 1);

    /* E hears nothing from now on: it keeps the state it has. */
    w->drop_writes_to[E] = true;
    member_id(w, E, id);
    kith_room_info before;
    assert_int_equal(kith_node_room_info(w->n[B].node, room, &before), 0);
    assert_int_equal(kith_node_member_op(w->n[A].node, room, KITH_MOP_REMOVE, id, 0, NULL), 0);
    tw_tick(w, 2);
    for (int i = A; i <= F; i++) {
        if (i == E)
            continue;
        kith_room_info ri;
        assert_int_equal(kith_node_room_info(w->n[i].node, room, &ri), 0);
        assert_int_equal(ri.members, 5);
        assert_int_equal(ri.epoch, 1);
        assert_string_not_equal(ri.safety, before.safety);
        assert_true(has_info(&w->n[i], "was removed from bookclub by"));
    }
    /* E still believes it is in the room, at epoch 0. */
    kith_room_info re;
    assert_int_equal(kith_node_room_info(w->n[E].node, room, &re), 0);
    assert_int_equal(re.members, 6);
    assert_int_equal(re.epoch, 0);

    char text[64];
    for (int k = 0; k < 5; k++) {
        snprintf(text, sizeof text, "epoch one %d", k);
        tw_send(w, B + k % 2, room, text);
    }
    /* E posts (with its old key, and its writes still go out). */
    tw_send(w, E, room, "from e after removal");
    tw_tick(w, 3);
    /* Now E hears again, reconnects and syncs for a while. */
    w->drop_writes_to[E] = false;
    tw_send(w, E, room, "from e, again");
    tw_tick(w, 130);
    size_t e_read = 0;
    for (int k = 0; k < 5; k++) {
        snprintf(text, sizeof text, "epoch one %d", k);
        e_read += tw_count(&w->n[E], KITH_EV_MESSAGE, text);
        for (int i = A; i <= F; i++)
            if (i != E)
                assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, text), 1);
    }
    assert_int_equal(e_read, 0);
    for (int i = A; i <= F; i++) {
        if (i == E)
            continue;
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "from e after removal"), 0);
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "from e, again"), 0);
    }

    /* The founder names B admin and leaves; B's node rekeys (A still holds
     * the key), removes C and admits G. */
    member_id(w, B, id);
    assert_int_equal(
        kith_node_member_op(w->n[A].node, room, KITH_MOP_SET_ROLE, id, KITH_ROLE_ADMIN, NULL), 0);
    tw_tick(w, 2);
    assert_int_equal(kith_node_member_op(w->n[A].node, room, KITH_MOP_LEAVE, NULL, 0, NULL), 0);
    tw_tick(w, 2);
    kith_room_info rb;
    assert_int_equal(kith_node_room_info(w->n[B].node, room, &rb), 0);
    assert_int_equal(rb.members, 4);
    assert_int_equal(rb.epoch, 2); /* the automatic rekey after A left */
    assert_true(has_info(&w->n[D], "rekeyed bookclub"));
    member_id(w, C, id);
    assert_int_equal(kith_node_member_op(w->n[B].node, room, KITH_MOP_REMOVE, id, 0, NULL), 0);
    tw_tick(w, 2);
    invite_join(w, room, B, G);
    tw_tick(w, 2);
    tw_send(w, G, room, "hello from g");
    tw_send(w, D, room, "welcome g");
    uint64_t seq;
    assert_int_equal(
        kith_node_send(w->n[A].node, room, KITH_MSG_TEXT, "a is gone", 9, &seq), KITH_EPERM);
    assert_int_equal(
        kith_node_send(w->n[C].node, room, KITH_MSG_TEXT, "c too", 5, &seq), KITH_EPERM);
    tw_tick(w, 70);
    int live[] = { B, D, F, G };
    kith_room_info now_b;
    assert_int_equal(kith_node_room_info(w->n[B].node, room, &now_b), 0);
    assert_string_not_equal(now_b.safety, rb.safety); /* C removed, G added since */
    for (size_t k = 0; k < KITH_ARRAY_LEN(live); k++) {
        int i = live[k];
        kith_room_info ri;
        assert_int_equal(kith_node_room_info(w->n[i].node, room, &ri), 0);
        assert_int_equal(ri.members, 4);
        assert_int_equal(ri.epoch, 3);
        assert_string_equal(ri.safety, now_b.safety);
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "hello from g"), 1);
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "welcome g"), 1);
    }
    kith_room_info rd, rg;
    assert_int_equal(kith_node_room_info(w->n[D].node, room, &rd), 0);
    assert_int_equal(kith_node_room_info(w->n[G].node, room, &rg), 0);
    assert_string_equal(rd.safety, rg.safety);
    assert_true(has_info(&w->n[C], "you were removed from bookclub by"));
    assert_int_equal(tw_count(&w->n[C], KITH_EV_MESSAGE, "hello from g"), 0);
    assert_int_equal(tw_count(&w->n[A], KITH_EV_MESSAGE, "hello from g"), 0);
}

/* Concurrent removals: two admins remove each other while cut off from
 * each other; once they hear each other, every node agrees on one outcome
 * and one epoch key, and messages flow. */
static void test_concurrent_removals_converge(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 4, &opts);
    uint8_t room[32], id[32];
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    for (int j = B; j <= D; j++)
        invite_join(w, room, A, j);
    member_id(w, B, id);
    assert_int_equal(
        kith_node_member_op(w->n[A].node, room, KITH_MOP_SET_ROLE, id, KITH_ROLE_ADMIN, NULL), 0);
    tw_tick(w, 2);
    /* Cut A and B off from everyone, each removes the other. */
    w->drop_writes_from[A] = w->drop_writes_from[B] = true;
    assert_int_equal(kith_node_member_op(w->n[A].node, room, KITH_MOP_REMOVE, id, 0, NULL), 0);
    member_id(w, A, id);
    assert_int_equal(kith_node_member_op(w->n[B].node, room, KITH_MOP_REMOVE, id, 0, NULL), 0);
    tw_settle(w);
    w->drop_writes_from[A] = w->drop_writes_from[B] = false;
    tw_tick(w, 130); /* periodic syncs spread both ops */
    kith_room_info rc, rd;
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &rc), 0);
    assert_int_equal(kith_node_room_info(w->n[D].node, room, &rd), 0);
    assert_int_equal(rc.members, 3);
    assert_string_equal(rc.safety, rd.safety);
    assert_int_equal(rc.epoch, rd.epoch);
    /* One of the two is still a member, everywhere; the other learns it
     * was removed when it next syncs. */
    int winner = -1;
    for (int i = A; i <= B; i++) {
        kith_room_info ri;
        assert_int_equal(kith_node_room_info(w->n[i].node, room, &ri), 0);
        if (ri.member) {
            assert_int_equal(winner, -1);
            winner = i;
            assert_string_equal(ri.safety, rc.safety);
        }
    }
    assert_true(has_info(&w->n[A + B - winner], "you were removed from bookclub by"));
    assert_true(winner == A || winner == B);
    tw_send(w, C, room, "after the dust settles");
    tw_tick(w, 2);
    assert_int_equal(tw_count(&w->n[D], KITH_EV_MESSAGE, "after the dust settles"), 1);
    assert_int_equal(tw_count(&w->n[winner], KITH_EV_MESSAGE, "after the dust settles"), 1);
    assert_int_equal(tw_count(&w->n[A + B - winner], KITH_EV_MESSAGE, "after the dust settles"), 0);
}

static bool has_event(const tnode *tn, int type, const char *sub)
{
    for (size_t i = 0; i < tn->nev; i++)
        if (tn->ev[i].type == type && strstr(tn->ev[i].text, sub))
            return true;
    return false;
}

/* Invites: several uses, bound to one invitee, revoked, expired; every
 * refusal says why. */
static void test_invite_hygiene(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 6, &opts);
    uint8_t room[32];
    char code[KITH_INVITE_CODE_MAX], code2[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    kith_invite_opts o = { .ttl_ms = 0, .uses = 2, .for_id = NULL };
    assert_int_equal(kith_node_invite_ex(w->n[A].node, room, &o, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[B].node, code), 0);
    tw_settle(w);
    assert_int_equal(kith_node_join(w->n[C].node, code), 0);
    tw_settle(w);
    assert_int_equal(kith_node_join(w->n[D].node, code), 0);
    tw_settle(w);
    assert_int_equal(kith_node_member_count(w->n[A].node, room), 3);
    assert_true(has_event(&w->n[D], KITH_EV_ERROR, "invite already used"));
    assert_true(has_event(&w->n[B], KITH_EV_INFO, "c joined bookclub with a's invite"));

    /* Bound to E: D is refused, E gets in. */
    o.uses = 1;
    o.for_id = w->n[E].id.id_pk;
    assert_int_equal(kith_node_invite_ex(w->n[A].node, room, &o, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[D].node, code), 0);
    tw_settle(w);
    assert_true(has_event(&w->n[D], KITH_EV_ERROR, "invite is for someone else"));
    assert_int_equal(kith_node_join(w->n[E].node, code), 0);
    tw_settle(w);
    assert_int_equal(kith_node_member_count(w->n[A].node, room), 4);

    /* Revoked, one by code and then all: refused with the reason. */
    o.for_id = NULL;
    assert_int_equal(kith_node_invite_ex(w->n[A].node, room, &o, code, sizeof code), 0);
    assert_int_equal(kith_node_invite_ex(w->n[A].node, room, &o, code2, sizeof code2), 0);
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, code), 1);
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, code), 0);
    assert_int_equal(kith_node_join(w->n[D].node, code), 0);
    tw_settle(w);
    assert_true(has_event(&w->n[D], KITH_EV_ERROR, "invite revoked"));
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, NULL), 1); /* code2 */
    assert_int_equal(kith_node_join(w->n[F].node, code2), 0);
    tw_settle(w);
    assert_true(has_event(&w->n[F], KITH_EV_ERROR, "invite revoked"));
    assert_int_equal(kith_node_member_count(w->n[A].node, room), 4);

    /* Revocation survives a restart of the inviter. */
    assert_int_equal(kith_node_flush(w->n[A].node), 0);
    tw_stop(w, A);
    tw_start(w, A);
    tw_settle(w);
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, code2), 0);

    /* Expired: the joiner's node refuses at once, the inviter too. */
    o.ttl_ms = 1000;
    assert_int_equal(kith_node_invite_ex(w->n[A].node, room, &o, code, sizeof code), 0);
    tw_tick(w, 2);
    assert_int_equal(kith_node_join(w->n[D].node, code), KITH_EEXPIRED);
    /* A member who is not an observer can invite; an observer can't. */
    uint8_t id[32];
    memcpy(id, w->n[B].id.id_pk, 32);
    assert_int_equal(
        kith_node_member_op(w->n[A].node, room, KITH_MOP_SET_ROLE, id, KITH_ROLE_OBSERVER, NULL),
        0);
    tw_tick(w, 1);
    assert_int_equal(kith_node_invite(w->n[B].node, room, 0, code, sizeof code), KITH_EPERM);
    uint64_t seq;
    assert_int_equal(
        kith_node_send(w->n[B].node, room, KITH_MSG_TEXT, "hush", 4, &seq), KITH_EPERM);
    assert_true(has_event(&w->n[B], KITH_EV_INFO, "a made you an observer in bookclub"));
}

/* The member due to rekey after a leave is offline: another member does it
 * after a while, and the room moves on. */
static void test_rekey_fallback(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 4, &opts);
    uint8_t room[32], id[32];
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    for (int j = B; j <= D; j++)
        invite_join(w, room, A, j);
    memcpy(id, w->n[B].id.id_pk, 32);
    assert_int_equal(
        kith_node_member_op(w->n[A].node, room, KITH_MOP_SET_ROLE, id, KITH_ROLE_ADMIN, NULL), 0);
    tw_tick(w, 2);
    assert_int_equal(kith_node_flush(w->n[B].node), 0);
    tw_stop(w, B);
    assert_int_equal(kith_node_member_op(w->n[A].node, room, KITH_MOP_LEAVE, NULL, 0, NULL), 0);
    tw_tick(w, 5);
    kith_room_info ri;
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &ri), 0);
    assert_int_equal(ri.epoch, 0); /* B is due, and offline */
    tw_tick(w, 70);
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &ri), 0);
    assert_true(ri.epoch >= 1);
    kith_room_info rd;
    assert_int_equal(kith_node_room_info(w->n[D].node, room, &rd), 0);
    assert_string_equal(rd.safety, ri.safety);
    tw_send(w, D, room, "new key, same room");
    tw_tick(w, 2);
    assert_int_equal(tw_count(&w->n[C], KITH_EV_MESSAGE, "new key, same room"), 1);
    assert_int_equal(tw_count(&w->n[A], KITH_EV_MESSAGE, "new key, same room"), 0);
}

static void fpr4(tworld *w, int i, char out[8])
{
    char fpr[KITH_FPR_STRLEN];
    kith_fingerprint(w->n[i].id.id_pk, fpr);
    memcpy(out, fpr, 4);
    out[4] = '\0';
}

static const tev *last_msg(const tnode *tn, const char *text)
{
    for (size_t i = tn->nev; i-- > 0;)
        if (tn->ev[i].type == KITH_EV_MESSAGE && strcmp(tn->ev[i].text, text) == 0)
            return &tn->ev[i];
    return NULL;
}

/* Two members pick names that pass for each other: everywhere a name is
 * shown (messages, renames, system lines, the member list) both carry their
 * fingerprint suffix; when the collision ends, so do the suffixes. */
static void test_name_collision(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, &opts);
    uint8_t room[32], id[32];
    char fb[8], fc[8], want[64];
    fpr4(w, B, fb);
    fpr4(w, C, fc);
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    invite_join(w, room, A, B);
    invite_join(w, room, A, C);
    tw_send(w, B, room, "before");
    tw_tick(w, 1);
    assert_string_equal(last_msg(&w->n[A], "before")->nick, "b");

    /* C renames itself "B": a look-alike of b's name. */
    assert_int_equal(kith_node_set_nick(w->n[C].node, "B"), 0);
    tw_tick(w, 1);
    snprintf(want, sizeof want, "B~%s", fc);
    assert_true(has_event(&w->n[A], KITH_EV_NICK, want));
    tw_send(w, B, room, "from b");
    tw_send(w, C, room, "from c");
    tw_tick(w, 1);
    for (int at = A; at <= C; at++) {
        snprintf(want, sizeof want, "b~%s", fb);
        assert_string_equal(last_msg(&w->n[at], "from b")->nick, want);
        snprintf(want, sizeof want, "B~%s", fc);
        assert_string_equal(last_msg(&w->n[at], "from c")->nick, want);
    }
    /* The member list, and finding a member by the name shown. */
    for (size_t i = 0; i < kith_node_member_count(w->n[A].node, room); i++) {
        kith_member_info mi;
        assert_int_equal(kith_node_member_at(w->n[A].node, room, i, &mi), 0);
        if (memcmp(mi.id, w->n[A].id.id_pk, 32) != 0)
            assert_non_null(strchr(mi.nick, '~'));
    }
    snprintf(want, sizeof want, "B~%s", fc);
    assert_int_equal(kith_node_find_member(w->n[A].node, room, want, false, id), 0);
    assert_memory_equal(id, w->n[C].id.id_pk, 32);
    /* A system line names the removed member with its suffix. */
    assert_int_equal(kith_node_member_op(w->n[A].node, room, KITH_MOP_REMOVE, id, 0, NULL), 0);
    tw_tick(w, 1);
    snprintf(want, sizeof want, "B~%s was removed", fc);
    assert_true(has_info(&w->n[B], want));

    /* Names stay suffixed while the log names both (C's old lines are in
     * the history); a fresh name ends it. */
    assert_int_equal(kith_node_set_nick(w->n[B].node, "bea"), 0);
    tw_send(w, B, room, "after");
    tw_tick(w, 10);
    assert_string_equal(last_msg(&w->n[A], "after")->nick, "bea");
    assert_true(has_event(&w->n[A], KITH_EV_NICK, "bea"));
    /* The rename is in the log: A still knows it after a restart. */
    assert_int_equal(kith_node_flush(w->n[A].node), 0);
    tw_stop(w, A);
    tw_start(w, A);
    tw_settle(w);
    bool seen = false;
    for (size_t i = 0; i < kith_node_member_count(w->n[A].node, room); i++) {
        kith_member_info mi;
        assert_int_equal(kith_node_member_at(w->n[A].node, room, i, &mi), 0);
        if (memcmp(mi.id, w->n[B].id.id_pk, 32) == 0) {
            assert_string_equal(mi.nick, "bea");
            seen = true;
        }
    }
    assert_true(seen);
}

static void invite_short_id(tworld *w, const char *code, char out[16])
{
    kith_invite inv;
    assert_int_equal(kith_invite_decode(&w->t.env, code, &inv), 0);
    uint8_t id[KITH_HASH_LEN];
    kith_invite_id(inv.secret, id);
    kith_hex(out, id, 4);
}

/* Invites are room ops: every member sees one issued (with its id) and
 * used; a moderator or admin revokes someone else's invite by that id, and
 * the issuer's node then refuses it with a reason the joiner sees. */
static void test_invite_ops(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 5, &opts);
    uint8_t room[32];
    char code[KITH_INVITE_CODE_MAX], idhex[16], want[128];
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    invite_join(w, room, A, B);
    invite_join(w, room, A, C);
    tw_tick(w, 1);

    /* C, a member, issues an invite: everyone sees it. */
    assert_int_equal(kith_node_invite(w->n[C].node, room, 0, code, sizeof code), 0);
    tw_tick(w, 1);
    invite_short_id(w, code, idhex);
    snprintf(want, sizeof want, "c issued an invite to bookclub (id %s)", idhex);
    assert_true(has_info(&w->n[A], want));
    assert_true(has_info(&w->n[B], want));

    /* B, a member, may not revoke C's invite; A, the admin, may. */
    assert_int_equal(kith_node_invite_revoke(w->n[B].node, room, idhex), KITH_EPERM);
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, "00000000"), KITH_ENOENT);
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, idhex), 1);
    assert_int_equal(kith_node_invite_revoke(w->n[A].node, room, idhex), 0); /* again: harmless */
    tw_tick(w, 1);
    snprintf(want, sizeof want, "a revoked the invite %s", idhex);
    assert_true(has_info(&w->n[C], want));
    assert_true(has_info(&w->n[B], want));

    /* C's own record does not know; the log does: D is refused. */
    assert_int_equal(kith_node_join(w->n[D].node, code), 0);
    tw_settle(w);
    assert_true(has_event(&w->n[D], KITH_EV_ERROR, "join failed: invite revoked"));
    assert_int_equal(kith_node_member_count(w->n[C].node, room), 3);
    assert_int_equal(kith_node_room_count(w->n[D].node), 0);

    /* A use of an invite is visible to everyone, with the invite's id. */
    assert_int_equal(kith_node_invite(w->n[C].node, room, 0, code, sizeof code), 0);
    invite_short_id(w, code, idhex);
    assert_int_equal(kith_node_join(w->n[D].node, code), 0);
    tw_settle(w);
    tw_tick(w, 1);
    snprintf(want, sizeof want, "d joined bookclub with c's invite %s", idhex);
    assert_true(has_info(&w->n[A], want));
    assert_true(has_info(&w->n[B], want));
    /* A second use of a one-use invite is refused, with the reason. */
    assert_int_equal(kith_node_join(w->n[E].node, code), 0);
    tw_settle(w);
    assert_true(has_event(&w->n[E], KITH_EV_ERROR, "join failed: invite already used"));
}

static size_t count_info(const tnode *tn, const char *sub)
{
    size_t c = 0;
    for (size_t i = 0; i < tn->nev; i++)
        if (tn->ev[i].type == KITH_EV_INFO && strstr(tn->ev[i].text, sub))
            c++;
    return c;
}

/* Scheduled rekey on a virtual clock (period 60 s here, 7 days by
 * default): the admin due does it once the key is that old, one rekey
 * for the room, not one per admin; when that admin is offline the other
 * admin does it a little later; a plain member never does. */
static void test_scheduled_rekey(void **state)
{
    (void)state;
    tworld *w = W;
    opts.rekey_every_ms = 60000;
    tw_init(w, 3, &opts);
    uint8_t room[32], id[32];
    assert_int_equal(kith_node_create_room(w->n[A].node, "bookclub", room), 0);
    invite_join(w, room, A, B);
    invite_join(w, room, A, C);
    memcpy(id, w->n[B].id.id_pk, 32);
    assert_int_equal(
        kith_node_member_op(w->n[A].node, room, KITH_MOP_SET_ROLE, id, KITH_ROLE_ADMIN, NULL), 0);
    tw_tick(w, 30);
    kith_room_info ri;
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &ri), 0);
    assert_int_equal(ri.epoch, 0);
    tw_tick(w, 35);
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &ri), 0);
    assert_int_equal(ri.epoch, 1);
    assert_int_equal(count_info(&w->n[C], "rekeyed bookclub"), 1);
    for (int i = A; i <= B; i++) {
        kith_room_info o;
        assert_int_equal(kith_node_room_info(w->n[i].node, room, &o), 0);
        assert_string_equal(o.safety, ri.safety);
        assert_int_equal(o.epoch, 1);
    }
    /* The admin due (the smaller id) goes offline: the other one rekeys
     * within an eighth of the period plus its spread. */
    int due = memcmp(w->n[A].id.id_pk, w->n[B].id.id_pk, 32) < 0 ? A : B;
    int other = due == A ? B : A;
    assert_int_equal(kith_node_flush(w->n[due].node), 0);
    tw_stop(w, due);
    tw_tick(w, 61);
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &ri), 0);
    assert_int_equal(ri.epoch, 1);
    tw_tick(w, 20);
    assert_int_equal(kith_node_room_info(w->n[C].node, room, &ri), 0);
    assert_int_equal(ri.epoch, 2);
    char want[64];
    snprintf(want, sizeof want, "%s rekeyed bookclub", w->n[other].nick);
    assert_int_equal(count_info(&w->n[C], want), 1);
    assert_int_equal(count_info(&w->n[C], "rekeyed bookclub"), 2);
    /* Messages flow under the new key. */
    tw_send(w, C, room, "fresh key");
    tw_tick(w, 2);
    assert_int_equal(tw_count(&w->n[other], KITH_EV_MESSAGE, "fresh key"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_removed_member_reads_and_posts_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_removals_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_hygiene, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduled_rekey, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
