/* Unit tests for the sans-I/O node, driven by tworld (testenv.h): every
 * node's WRITE actions are delivered to the peer's conn_data, CONNECT looks
 * the address up among the test's nodes, time is virtual. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "crypto/crypto.h"
#include "kith/node.h"
#include "msg/msg.h"
#include "node/node_impl.h"
#include "room/room.h"
#include "session/session.h"
#include "store/store.h"
#include "testenv.h"

static tworld *W;

static bool has_error(const tnode *tn, const char *sub)
{
    for (size_t i = 0; i < tn->nev; i++) {
        if (tn->ev[i].type == KITH_EV_ERROR && strstr(tn->ev[i].text, sub))
            return true;
    }
    return false;
}

/* a creates a room, invites b; b joins. */
static void make_room(tworld *w, uint8_t room[32], int inviter, int joiner)
{
    char code[KITH_INVITE_CODE_MAX];
    if (inviter >= 0 && !kith_node_room_count(w->n[inviter].node))
        assert_int_equal(kith_node_create_room(w->n[inviter].node, "bookclub", room), 0);
    assert_int_equal(kith_node_invite(w->n[inviter].node, room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[joiner].node, code), 0);
    tw_settle(w);
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
    return 0;
}

static void test_create_invite_join_chat(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_ROOM, NULL), 1);
    assert_int_equal(kith_node_member_count(w->n[0].node, room), 2);
    assert_int_equal(kith_node_member_count(w->n[1].node, room), 2);
    make_room(w, room, 0, 2);
    tw_tick(w, 5); /* b and c find each other through the add op's address */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kith_node_member_count(w->n[i].node, room), 3);
        kith_room_info info;
        assert_int_equal(kith_node_room_info(w->n[i].node, room, &info), 0);
        assert_int_equal(info.online, 3); /* us, and every other member connected */
    }
    tw_send(w, 0, room, "hello from a");
    tw_send(w, 1, room, "hello from b");
    tw_send(w, 2, room, "hello from c");
    tw_settle(w);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "hello from a"), 1);
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "hello from b"), 1);
        assert_int_equal(tw_count(&w->n[i], KITH_EV_MESSAGE, "hello from c"), 1);
    }
    /* A member's nick is the one it chose when joining. */
    kith_member_info mi;
    bool saw_b = false;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kith_node_member_at(w->n[2].node, room, i, &mi), 0);
        saw_b |= strcmp(mi.nick, "b") == 0;
    }
    assert_true(saw_b);
    tw_free(w);
}

static void test_restart_keeps_room_and_history(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    for (int k = 0; k < 50; k++) {
        char text[32];
        snprintf(text, sizeof text, "msg %d", k);
        tw_send(w, k % 2, room, text);
    }
    tw_settle(w);
    tw_stop(w, 1);
    /* a keeps talking while b is away */
    tw_send(w, 0, room, "while you were out");
    tw_settle(w);
    tw_start(w, 1);
    assert_int_equal(kith_node_room_count(w->n[1].node), 1);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_int_equal(info.members, 2);
    assert_int_equal(info.messages, 50);
    tw_tick(w, 3); /* reconnect and sync */
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_int_equal(info.messages, 51);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "while you were out"), 1);
    /* b's sequence numbers continue: a new message is accepted by a. */
    tw_send(w, 1, room, "back again");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "back again"), 1);
    tw_free(w);
}

static size_t count_catchup(const tnode *tn)
{
    size_t c = 0;
    for (size_t i = 0; i < tn->nev; i++)
        c += tn->ev[i].type == KITH_EV_MESSAGE && tn->ev[i].catchup;
    return c;
}

typedef struct hist_ctx {
    size_t n;
    char last[64];
} hist_ctx;

static void on_hist(void *ud, const kith_event *ev)
{
    hist_ctx *h = ud;
    h->n++;
    snprintf(h->last, sizeof h->last, "%.*s", (int)ev->text_len, ev->text);
}

/* A member away for more than NODE_CATCHUP_QUIET messages gets progress
 * lines and a summary; the messages are flagged as caught up, all of them
 * arrive, and /history serves them. A short absence is shown as before. */
static void test_bulk_catchup(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    tw_stop(w, 1);
    for (int k = 0; k < 300; k++) {
        char text[32];
        snprintf(text, sizeof text, "away %d", k);
        tw_send(w, 0, room, text);
        if (k % 50 == 49)
            tw_settle(w);
    }
    tw_settle(w);
    size_t before = w->n[1].nev;
    tw_start(w, 1);
    tw_tick(w, 3);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_int_equal(info.messages, 300);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_INFO, "catching up bookclub: 0/300"), 1);
    assert_int_equal(
        tw_count(&w->n[1], KITH_EV_INFO, "caught up bookclub: 300 messages (/history shows them)"),
        1);
    assert_int_equal(count_catchup(&w->n[1]), 300);
    assert_true(w->n[1].nev > before);
    hist_ctx h = { 0, "" };
    assert_int_equal(kith_node_history(w->n[1].node, room, 10, on_hist, &h), 0);
    assert_int_equal(h.n, 10);
    assert_string_equal(h.last, "away 299");
    /* Back for a few messages only: no catch-up mode. */
    tw_stop(w, 1);
    for (int k = 0; k < 20; k++)
        tw_send(w, 0, room, "short");
    tw_settle(w);
    tw_start(w, 1);
    tw_tick(w, 3);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "short"), 20);
    assert_int_equal(count_catchup(&w->n[1]), 300);
    tw_free(w);
}

/* kith_env.verify_many as a driver with worker threads would offer it, but
 * on this thread: counts the batches and checks each job for real. */
typedef struct vstats {
    size_t calls, jobs, biggest, bad;
} vstats;
static vstats VS;

static void count_verify_many(void *ctx, kith_sig_job *jobs, size_t n)
{
    vstats *v = ctx;
    v->calls++;
    v->jobs += n;
    if (n > v->biggest)
        v->biggest = n;
    /* Backwards: the node must not depend on the order of the checks. */
    for (size_t i = n; i > 0; i--) {
        kith_sig_check(&jobs[i - 1]);
        v->bad += jobs[i - 1].ok != 1;
    }
}

/* Where in tn's events a message with this text is (SIZE_MAX: none). */
static size_t ev_index(const tnode *tn, const char *text)
{
    for (size_t i = 0; i < tn->nev; i++) {
        if (tn->ev[i].type == KITH_EV_MESSAGE && strcmp(tn->ev[i].text, text) == 0)
            return i;
    }
    return SIZE_MAX;
}

static nconn *conn_to(kith_node *n, const uint8_t peer[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->nconns; i++) {
        if (n->conns[i]->established && memcmp(n->conns[i]->peer, peer, KITH_ID_LEN) == 0)
            return n->conns[i];
    }
    return NULL;
}

/* With verify_many (docs/internals/uvnode.md), consecutive MSG frames are
 * checked as a batch: a catch-up arrives whole and in order, every new
 * signature is checked once, and a message whose signature is bad is
 * refused (the link closes) although the messages before it in its batch
 * are taken. */
static void test_batched_verify(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    memset(&VS, 0, sizeof VS);
    w->t.env.verify_many = count_verify_many;
    w->t.env.verify_ctx = &VS;
    uint8_t room[32];
    make_room(w, room, 0, 1);
    tw_stop(w, 1);
    for (int k = 0; k < 300; k++) {
        char text[32];
        snprintf(text, sizeof text, "away %d", k);
        tw_send(w, 0, room, text);
        if (k % 50 == 49)
            tw_settle(w);
    }
    tw_settle(w);
    VS.jobs = VS.calls = VS.biggest = 0;
    tw_start(w, 1);
    tw_tick(w, 3);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_int_equal(info.messages, 300);
    /* In order. */
    size_t prev = 0;
    for (int k = 0; k < 300; k++) {
        char text[32];
        snprintf(text, sizeof text, "away %d", k);
        size_t at = ev_index(&w->n[1], text);
        assert_true(at != SIZE_MAX);
        assert_true(k == 0 || at > prev);
        prev = at;
    }
    /* Checked in batches, each signature once. */
    assert_true(VS.biggest > 1);
    assert_int_equal(VS.jobs, 300);
    assert_int_equal(VS.bad, 0);

    /* Five good messages, then a sixth of a's chain whose signature is bad,
     * all in one read of b's. */
    tnode *a = &w->n[0];
    tnode *b = &w->n[1];
    for (int k = 0; k < 5; k++) {
        char text[32];
        snprintf(text, sizeof text, "good %d", k);
        tw_send(w, 0, room, text);
    }
    assert_int_equal(kith_node_flush(a->node), 0);
    tw_drain(w, 0);
    nroom *ar = node_room_by_id(a->node, room);
    author_st *au = node_author(a->node, ar, a->id.id_pk, false);
    assert_non_null(au);
    uint64_t epoch;
    const uint8_t *key = kith_room_current_key(ar->room, &epoch);
    assert_non_null(key);
    kith_inner in;
    memset(&in, 0, sizeof in);
    in.type = KITH_MSG_TEXT;
    memcpy(in.room_id, room, 32);
    in.epoch = epoch;
    memcpy(in.author, a->id.id_pk, KITH_ID_LEN);
    in.seq = au->seq + 1;
    memcpy(in.prev, au->last, KITH_HASH_LEN);
    in.lamport = 5000;
    in.wall_ms = w->t.wall;
    in.body = (const uint8_t *)"forged";
    in.body_len = 6;
    kith_buf plain, env, frame;
    kith_buf_init(&plain, &w->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&env, &w->t.env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&frame, &w->t.env, KITH_SESSION_MAX_APP);
    assert_int_equal(kith_msg_encode_inner(&in, &plain), 0);
    uint8_t sig[KITH_SIG_LEN];
    assert_int_equal(kith_sign(&w->t.env, &a->id, KITH_DOMAIN_MSG, plain.data, plain.len, sig), 0);
    sig[10] ^= 0x01;
    assert_int_equal(kith_buf_append(&plain, sig, sizeof sig), 0);
    assert_int_equal(kith_msg_seal_plain(&w->t.env, epoch, key, plain.data, plain.len, &env), 0);
    assert_int_equal(kith_frame_msg(&frame, env.data, env.len), 0);
    nconn *c = conn_to(a->node, b->id.id_pk);
    assert_non_null(c);
    assert_int_equal(node_conn_send(a->node, c, &frame), 0);
    kith_buf_free(&plain);
    kith_buf_free(&env);
    kith_buf_free(&frame);
    size_t calls = VS.calls, bad = VS.bad;
    size_t links = 0;
    for (size_t i = 0; i < b->node->nconns; i++)
        links += b->node->conns[i]->established;
    tw_settle(w);
    assert_int_equal(VS.calls, calls + 1); /* one batch: 5 good, 1 bad */
    assert_int_equal(VS.bad, bad + 1);
    for (int k = 0; k < 5; k++) {
        char text[32];
        snprintf(text, sizeof text, "good %d", k);
        assert_int_equal(tw_count(b, KITH_EV_MESSAGE, text), 1);
    }
    assert_int_equal(tw_count(b, KITH_EV_MESSAGE, "forged"), 0);
    assert_int_equal(kith_node_room_info(b->node, room, &info), 0);
    assert_int_equal(info.messages, 305);
    size_t after = 0;
    for (size_t i = 0; i < b->node->nconns; i++)
        after += b->node->conns[i]->established;
    assert_true(after < links); /* the link that carried it was closed */
    w->t.env.verify_many = NULL;
    w->t.env.verify_ctx = NULL;
    tw_free(w);
}

/* A member back from a long absence with two members online: the first
 * batch comes from both, the rest from one of them, and no batch twice
 * (before: every batch from both, and twice from each, 2.7 copies a
 * message in the bench). */
static void test_catchup_served_once(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    make_room(w, room, 0, 2);
    tw_tick(w, 2);
    tw_stop(w, 2);
    for (int k = 0; k < 8000; k++) {
        char text[32];
        snprintf(text, sizeof text, "while away %d", k);
        tw_send(w, k % 2, room, text);
        if (k % 100 == 99)
            tw_settle(w);
    }
    tw_settle(w);
    tw_start(w, 2);
    tw_tick(w, 5);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[2].node, room, &info), 0);
    assert_int_equal(kith_node_room_info(w->n[0].node, room, &info), 0);
    uint64_t want = info.messages;
    assert_int_equal(kith_node_room_info(w->n[2].node, room, &info), 0);
    assert_int_equal(info.messages, want);
    kith_node_stats st;
    kith_node_stats_get(w->n[2].node, &st);
    assert_true(st.msgs_in >= 8000);
    assert_true(st.msgs_in < 8000 * 7 / 4); /* 2 MiB batches: ~3,500 twice */
    tw_free(w);
}

static void test_sent_only_after_flush(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    size_t before = tw_count(&w->n[0], KITH_EV_SENT, NULL);
    tw_send(w, 0, room, "durable?");
    /* Nothing is shown or sent before the flush. */
    tw_drain(w, 0);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_SENT, NULL), before);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "durable?"), 0);
    /* A crash now loses it, and the node reuses nothing a peer saw. */
    kith_store_mem_crash(w->n[0].store);
    tw_stop(w, 0);
    tw_start(w, 0);
    tw_tick(w, 3);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "durable?"), 0);
    tw_send(w, 0, room, "after crash");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "after crash"), 1);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "after crash"), 1);
    tw_free(w);
}

static void test_invite_refusals(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    char code[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_node_create_room(w->n[0].node, "club", room), 0);
    assert_int_equal(kith_node_invite(w->n[0].node, room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[1].node, code), 0);
    tw_settle(w);
    assert_int_equal(kith_node_room_count(w->n[1].node), 1);
    /* The same code again, by someone else: refused clearly. */
    assert_int_equal(kith_node_join(w->n[2].node, code), 0);
    tw_settle(w);
    assert_int_equal(kith_node_room_count(w->n[2].node), 0);
    assert_true(has_error(&w->n[2], "already used"));
    /* Expired: refused locally before any connection. */
    assert_int_equal(kith_node_invite(w->n[0].node, room, 1000, code, sizeof code), 0);
    w->t.wall += 5000;
    assert_int_equal(kith_node_join(w->n[2].node, code), KITH_EEXPIRED);
    /* Garbage codes. */
    assert_int_equal(kith_node_join(w->n[2].node, "kith1:not-a-code") < 0, 1);
    assert_int_equal(kith_node_join(w->n[2].node, "") < 0, 1);
    /* Joining a room one is already in. */
    assert_int_equal(kith_node_invite(w->n[0].node, room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[1].node, code), KITH_EEXIST);
    /* An unreachable inviter gives an error, not a hang. */
    assert_int_equal(kith_node_invite(w->n[0].node, room, 0, code, sizeof code), 0);
    tw_stop(w, 0);
    assert_int_equal(kith_node_join(w->n[2].node, code), 0);
    tw_settle(w);
    assert_true(has_error(&w->n[2], "could not reach"));
    tw_free(w);
}

static void test_garbage_closes_connection(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    /* A stranger connects to a and sends garbage. */
    uint64_t c = kith_node_accept(w->n[0].node);
    uint8_t junk[300];
    kith_random(&w->t.env, junk, sizeof junk);
    junk[0] = 0xff;
    junk[1] = 0xff;
    kith_node_conn_data(w->n[0].node, c, junk, sizeof junk);
    kith_action a;
    bool closed = false;
    while (kith_node_poll(w->n[0].node, &a)) {
        if (a.type == KITH_ACT_CLOSE && a.conn == c)
            closed = true;
        if (a.type == KITH_ACT_EVENT)
            tw_record(&w->n[0], &a.ev);
    }
    assert_true(closed);
    /* a still serves b. */
    tw_send(w, 1, room, "still there?");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "still there?"), 1);
    tw_free(w);
}

static void test_nick_change(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    assert_int_equal(kith_node_set_nick(w->n[1].node, "bobby"), 0);
    assert_int_equal(kith_node_set_nick(w->n[1].node, "has space"), KITH_EINVAL);
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_NICK, "bobby"), 1);
    tw_send(w, 1, room, "new name");
    tw_settle(w);
    bool ok = false;
    for (size_t i = 0; i < w->n[0].nev; i++) {
        if (strcmp(w->n[0].ev[i].text, "new name") == 0)
            ok = strcmp(w->n[0].ev[i].nick, "bobby") == 0;
    }
    assert_true(ok);
    tw_free(w);
}

/* The periodic SYNC re-sends a room's latest ops (two logs of one size may
 * differ) only when an op count changed since they last went over the
 * link: a quiet room's anti-entropy costs its SYNC frames, no ops. */
static void test_periodic_sync_ops_once(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    make_room(w, room, 0, 2);
    tw_tick(w, 70); /* one periodic SYNC on every link */
    kith_node_stats a[3], b[3];
    for (int i = 0; i < 3; i++)
        kith_node_stats_get(w->n[i].node, &a[i]);
    tw_tick(w, 130); /* two more */
    for (int i = 0; i < 3; i++) {
        kith_node_stats_get(w->n[i].node, &b[i]);
        assert_true(b[i].wire_sync_out > a[i].wire_sync_out);
        assert_int_equal(b[i].wire_op_out, a[i].wire_op_out);
    }
    /* A new op: its count changed, so the ops go out (once) again. */
    assert_int_equal(
        kith_node_member_op(w->n[0].node, room, KITH_MOP_SET_TOPIC, NULL, 0, "news"), 0);
    tw_settle(w);
    tw_tick(w, 130);
    for (int i = 0; i < 3; i++) {
        kith_room_info info;
        assert_int_equal(kith_node_room_info(w->n[i].node, room, &info), 0);
        assert_string_equal(info.topic, "news");
    }
    tw_free(w);
}

static void test_lingering_stranger_dropped(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 1, NULL);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "club", room), 0);
    /* A stranger completes a real handshake, then says nothing. */
    kith_identity stranger;
    assert_int_equal(kith_identity_generate(&w->t.env, &stranger), 0);
    kith_session *s;
    assert_int_equal(kith_session_new(&w->t.env, &stranger, true, &s), 0);
    uint64_t c = kith_node_accept(w->n[0].node);
    kith_buf out, in;
    kith_buf_init(&out, &w->t.env, 1 << 20);
    kith_buf_init(&in, &w->t.env, 1 << 20);
    assert_int_equal(kith_session_start(s, &out), 0);
    bool closed = false;
    for (int round = 0; round < 4 && !kith_session_established(s); round++) {
        kith_node_conn_data(w->n[0].node, c, out.data, out.len);
        kith_buf_reset(&out);
        kith_action a;
        while (kith_node_poll(w->n[0].node, &a)) {
            if (a.type == KITH_ACT_WRITE && a.conn == c)
                assert_int_equal(kith_buf_append(&in, a.data, a.len), 0);
            closed |= a.type == KITH_ACT_CLOSE && a.conn == c;
        }
        assert_int_equal(kith_session_feed(s, in.data, in.len, &out, NULL, NULL), 0);
        kith_buf_reset(&in);
    }
    assert_true(kith_session_established(s));
    kith_node_conn_data(w->n[0].node, c, out.data, out.len); /* message 3 */
    kith_action a;
    while (kith_node_poll(w->n[0].node, &a))
        closed |= a.type == KITH_ACT_CLOSE && a.conn == c;
    assert_false(closed); /* a stranger may ask to join... */
    for (int t = 0; t < 25 && !closed; t++) {
        w->t.mono += 1000;
        kith_node_timer(w->n[0].node);
        while (kith_node_poll(w->n[0].node, &a))
            closed |= a.type == KITH_ACT_CLOSE && a.conn == c;
    }
    assert_true(closed); /* ...but not hold a slot forever */
    kith_buf_free(&out);
    kith_buf_free(&in);
    kith_session_free(s);
    kith_identity_wipe(&stranger);
    tw_free(w);
}

/* A member moves to a new address. Its signed record, relayed by a member
 * it can reach, lets a member it can't reach find it. */
static void test_address_record_moves(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    make_room(w, room, 0, 2);
    tw_tick(w, 5);
    tw_stop(w, 1);
    snprintf(w->n[1].addr, sizeof w->n[1].addr, "node1-moved:2");
    w->block[1][2] = true; /* b can't reach c: c must come to b's new address */
    tw_start(w, 1);
    tw_tick(w, 70); /* c's dials to the old address fail until it is forgotten */
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[2].node, room, &info), 0);
    assert_int_equal(info.online, 3);
    tw_send(w, 1, room, "from my new home");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[2], KITH_EV_MESSAGE, "from my new home"), 1);
    tw_free(w);
}

/* ---- edits, deletes and reactions ---- */

typedef struct hline {
    uint32_t type;
    bool edited, deleted;
    char nick[16];
    char text[64];
} hline;

typedef struct hlist {
    hline l[32];
    size_t n;
} hlist;

static void on_hline(void *ud, const kith_event *ev)
{
    hlist *h = ud;
    assert_true(h->n < 32);
    hline *l = &h->l[h->n++];
    l->type = ev->msg_type;
    l->edited = ev->edited;
    l->deleted = ev->deleted;
    snprintf(l->nick, sizeof l->nick, "%s", ev->nick ? ev->nick : "");
    size_t len = KITH_MIN(ev->text_len, sizeof l->text - 1);
    memcpy(l->text, ev->text, len);
    l->text[len] = '\0';
}

/* The first two lines and the last one of a history, in an hlist. */
static void on_hfirst(void *ud, const kith_event *ev)
{
    hlist *h = ud;
    if (h->n == 3)
        h->n = 2;
    on_hline(ud, ev);
}

static void history(tworld *w, int i, const uint8_t room[32], hlist *out)
{
    memset(out, 0, sizeof *out);
    assert_int_equal(kith_node_history(w->n[i].node, room, 100, on_hline, out), 0);
}

/* "text" lines as one string: "a:hello*|r b:+1|..." (* edited, ~ deleted). */
static void hstr(const hlist *h, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < h->n; k++) {
        const hline *l = &h->l[k];
        int wn = snprintf(out + o, cap - o, "%s%s%s:%s%s%s", k ? "|" : "",
            l->type == KITH_MSG_REACTION ? "r " : "", l->nick, l->text, l->edited ? "*" : "",
            l->deleted ? "~" : "");
        assert_true(wn > 0 && (size_t)wn < cap - o);
        o += (size_t)wn;
    }
}

static size_t count_msg_type(const tnode *tn, uint32_t type)
{
    size_t c = 0;
    for (size_t i = 0; i < tn->nev; i++)
        c += tn->ev[i].type == KITH_EV_MESSAGE && tn->ev[i].msg_type == type;
    return c;
}

static void about(tworld *w, int i, const uint8_t room[32], uint32_t type, const uint8_t id[32],
    const char *text, int want)
{
    uint64_t seq;
    assert_int_equal(
        kith_node_send_about(w->n[i].node, room, type, id, text, text ? strlen(text) : 0, &seq),
        want);
}

/* b signs an edit of a's message with its own key, in its own chain, and
 * hands it to every node as if it came off the wire. */
static void forge_edit(tworld *w, const uint8_t room[32], const uint8_t target[32])
{
    kith_node *bn = w->n[1].node;
    nroom *br = node_room_by_id(bn, room);
    assert_non_null(br);
    author_st *a = node_author(bn, br, w->n[1].id.id_pk, false);
    assert_non_null(a);
    uint64_t epoch;
    const uint8_t *key = kith_room_current_key(br->room, &epoch);
    assert_non_null(key);
    kith_inner in;
    memset(&in, 0, sizeof in);
    in.type = KITH_MSG_EDIT;
    memcpy(in.room_id, room, 32);
    in.epoch = epoch;
    memcpy(in.author, w->n[1].id.id_pk, KITH_ID_LEN);
    in.seq = a->seq + 1;
    memcpy(in.prev, a->last, KITH_HASH_LEN);
    in.lamport = 1000;
    in.wall_ms = w->t.wall;
    in.body = (const uint8_t *)"forged";
    in.body_len = 6;
    in.has_target = true;
    memcpy(in.target, target, 32);
    kith_buf env;
    kith_buf_init(&env, &w->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(kith_msg_seal(&w->t.env, &w->n[1].id, &in, key, &env), 0);
    for (int i = 0; i < w->count; i++) {
        kith_node *tn = w->n[i].node;
        /* Accepted into the log (it is b's valid message), without effect. */
        assert_int_equal(
            node_accept_envelope(tn, node_room_by_id(tn, room), env.data, env.len, true, true), 0);
    }
    kith_buf_free(&env);
}

static void test_edit_delete_react(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    make_room(w, room, 0, 2);
    tw_tick(w, 3);
    tw_send(w, 0, room, "hello");
    tw_settle(w);
    tw_send(w, 0, room, "second");
    tw_settle(w);
    tw_send(w, 1, room, "from b");
    tw_settle(w);

    uint8_t hello[32], second[32], fromb[32], x[32];
    assert_int_equal(kith_node_find_message(w->n[0].node, room, NULL, 2, true, hello), 0);
    assert_int_equal(kith_node_find_message(w->n[0].node, room, NULL, 1, true, second), 0);
    assert_int_equal(kith_node_find_message(w->n[2].node, room, NULL, 1, false, fromb), 0);
    /* Every node names the same message the same way. */
    assert_int_equal(kith_node_find_message(w->n[1].node, room, NULL, 3, false, x), 0);
    assert_memory_equal(x, hello, 32);
    char hex[65];
    kith_hex(hex, hello, 32);
    hex[6] = '\0';
    assert_int_equal(kith_node_find_message(w->n[2].node, room, hex, 0, false, x), 0);
    assert_memory_equal(x, hello, 32);
    assert_int_equal(kith_node_find_message(w->n[2].node, room, NULL, 4, false, x), KITH_ENOENT);
    assert_int_equal(kith_node_find_message(w->n[2].node, room, NULL, 1, true, x), KITH_ENOENT);

    /* a edits its first message; everyone sees it once, live. */
    about(w, 0, room, KITH_MSG_EDIT, hello, "hello, edited", 0);
    tw_settle(w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(count_msg_type(&w->n[i], KITH_MSG_EDIT), 1);
    assert_int_equal(tw_count(&w->n[2], KITH_EV_MESSAGE, "hello, edited"), 1);
    /* Nobody else may edit or delete it; empty edits are refused. */
    about(w, 1, room, KITH_MSG_EDIT, hello, "mine now", KITH_EPERM);
    about(w, 1, room, KITH_MSG_DELETE, hello, NULL, KITH_EPERM);
    about(w, 0, room, KITH_MSG_EDIT, hello, "", KITH_EINVAL);
    about(w, 0, room, KITH_MSG_REACTION, hello, "two words", KITH_EINVAL);

    /* Reactions from b and c. */
    about(w, 1, room, KITH_MSG_REACTION, hello, "+1", 0);
    tw_settle(w);
    about(w, 2, room, KITH_MSG_REACTION, hello, "+1", 0);
    tw_settle(w);
    about(w, 2, room, KITH_MSG_REACTION, hello, "\xe2\x9d\xa4", 0);
    tw_settle(w);
    about(w, 1, room, KITH_MSG_REACTION, hello, "+1", KITH_EEXIST);
    about(w, 0, room, KITH_MSG_REACTION, fromb, "ok", 0);
    tw_settle(w);
    assert_int_equal(count_msg_type(&w->n[0], KITH_MSG_REACTION), 4);

    hlist h;
    char str[512];
    const char *want = "a:hello, edited*|r b:+1|r c:+1|r c:\xe2\x9d\xa4|a:second|b:from b|r a:ok";
    for (int i = 0; i < 3; i++) {
        history(w, i, room, &h);
        hstr(&h, str, sizeof str);
        assert_string_equal(str, want);
    }

    /* b takes its reaction back; c's stays. */
    assert_int_equal(kith_node_unreact(w->n[1].node, room, hello, "+1", 2), 1);
    assert_int_equal(kith_node_unreact(w->n[1].node, room, hello, NULL, 0), KITH_ENOENT);
    tw_settle(w);
    want = "a:hello, edited*|r c:+1|r c:\xe2\x9d\xa4|a:second|b:from b|r a:ok";
    for (int i = 0; i < 3; i++) {
        history(w, i, room, &h);
        hstr(&h, str, sizeof str);
        assert_string_equal(str, want);
    }
    assert_int_equal(count_msg_type(&w->n[2], KITH_MSG_DELETE), 1);

    /* A forged edit: b's signature, a's message. Taken into b's chain (so
     * b's later messages still chain), but without effect and unreported. */
    size_t before = count_msg_type(&w->n[0], KITH_MSG_EDIT);
    forge_edit(w, room, second);
    tw_settle(w);
    assert_int_equal(count_msg_type(&w->n[0], KITH_MSG_EDIT), before);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "forged"), 0);
    tw_send(w, 1, room, "b goes on");
    /* The forgeries' relays pruned every link: pulled after an IHAVE, which
     * may come only in the round after the room fell quiet. */
    tw_tick(w, 3);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "b goes on"), 1);

    /* a deletes its second message; a later edit of it has no effect. */
    about(w, 0, room, KITH_MSG_DELETE, second, NULL, 0);
    tw_settle(w);
    about(w, 0, room, KITH_MSG_EDIT, second, "too late", KITH_EINVAL);
    about(w, 0, room, KITH_MSG_DELETE, second, NULL, KITH_EINVAL);
    assert_int_equal(kith_node_find_message(w->n[0].node, room, NULL, 1, true, x), 0);
    assert_memory_equal(x, hello, 32); /* deleted ones are not counted */
    want = "a:hello, edited*|r c:+1|r c:\xe2\x9d\xa4|a:~|b:from b|r a:ok|b:b goes on";
    for (int i = 0; i < 3; i++) {
        history(w, i, room, &h);
        hstr(&h, str, sizeof str);
        assert_string_equal(str, want);
    }
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[2].node, room, &info), 0);
    assert_int_equal(info.messages, 4);

    /* The view is rebuilt from the log after a restart. */
    tw_stop(w, 2);
    tw_start(w, 2);
    history(w, 2, room, &h);
    hstr(&h, str, sizeof str);
    assert_string_equal(str, want);
    tw_free(w);
}

/* A reaction that arrives before its target (its author's chain ran ahead):
 * held for the dependency, shown after the wait without a target, and
 * attached to the message when that comes. */
static void test_reaction_before_target(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    make_room(w, room, 0, 2);
    tw_tick(w, 3);
    kith_node *a = w->n[0].node, *b = w->n[1].node, *c = w->n[2].node;
    /* a's message, not flushed (so not sent): c gets it by hand, b not. */
    tw_send(w, 0, room, "late target");
    nroom *ra = node_room_by_id(a, room);
    uint8_t mid[32];
    assert_int_equal(node_hist_full_id(a, ra, ra->nhist - 1, mid), 0);
    kith_buf mb;
    kith_buf_init(&mb, &w->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(node_hist_env(a, ra, ra->nhist - 1, &mb, NULL), 0);
    size_t mlen = mb.len;
    uint8_t *menv = malloc(mlen);
    memcpy(menv, mb.data, mlen);
    kith_buf_free(&mb);
    assert_int_equal(node_accept_envelope(c, node_room_by_id(c, room), menv, mlen, true, false), 0);
    about(w, 2, room, KITH_MSG_REACTION, mid, "+1", 0);
    nroom *rc = node_room_by_id(c, room);
    const hist *x = node_hist_at(rc, rc->nhist - 1);
    assert_int_equal(x->type, KITH_MSG_REACTION);
    nroom *rb = node_room_by_id(b, room);
    kith_buf xb;
    kith_buf_init(&xb, &w->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_int_equal(node_hist_env(c, rc, rc->nhist - 1, &xb, NULL), 0);
    assert_int_equal(node_accept_envelope(b, rb, xb.data, xb.len, true, true), 0);
    kith_buf_free(&xb);
    assert_int_equal(rb->nheld, 1); /* waits for its dependency, the target */
    w->t.mono += 6000;
    node_release_held(b, rb);
    assert_int_equal(rb->nheld, 0);
    assert_int_equal(rb->norphans, 1);
    hlist h;
    char str[256];
    history(w, 1, room, &h);
    hstr(&h, str, sizeof str);
    assert_null(strstr(str, "+1")); /* nothing to hang it on yet */
    assert_int_equal(node_accept_envelope(b, rb, menv, mlen, true, true), 0);
    assert_int_equal(rb->norphans, 0);
    history(w, 1, room, &h);
    hstr(&h, str, sizeof str);
    assert_string_equal(str, "a:late target|r c:+1");
    free(menv);
    tw_free(w);
}

/* b signs two messages for one sequence number: the first is delivered,
 * the second refused as equivocation (the id index says it is no copy of
 * the first), and a copy of the first is a harmless duplicate. */
static void test_equivocation(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    tw_tick(w, 3);
    tw_send(w, 1, room, "one");
    tw_settle(w);
    kith_node *an = w->n[0].node, *bn = w->n[1].node;
    nroom *ar = node_room_by_id(an, room), *br = node_room_by_id(bn, room);
    author_st *a = node_author(bn, br, w->n[1].id.id_pk, false);
    assert_non_null(a);
    uint64_t epoch;
    const uint8_t *key = kith_room_current_key(br->room, &epoch);
    kith_buf env[2];
    for (int k = 0; k < 2; k++) {
        kith_inner in;
        memset(&in, 0, sizeof in);
        in.type = KITH_MSG_TEXT;
        memcpy(in.room_id, room, 32);
        in.epoch = epoch;
        memcpy(in.author, w->n[1].id.id_pk, KITH_ID_LEN);
        in.seq = a->seq + 1;
        memcpy(in.prev, a->last, KITH_HASH_LEN);
        in.lamport = 1000;
        in.wall_ms = w->t.wall;
        in.body = (const uint8_t *)(k ? "two, again" : "two");
        in.body_len = k ? 10 : 3;
        kith_buf_init(&env[k], &w->t.env, KITH_MSG_MAX_ENVELOPE);
        assert_int_equal(kith_msg_seal(&w->t.env, &w->n[1].id, &in, key, &env[k]), 0);
    }
    size_t before = ar->nhist;
    assert_int_equal(node_accept_envelope(an, ar, env[0].data, env[0].len, true, true), 0);
    assert_int_equal(ar->nhist, before + 1);
    assert_int_equal(
        node_accept_envelope(an, ar, env[1].data, env[1].len, true, true), KITH_EREPLAY);
    an->last_dup = false;
    assert_int_equal(node_accept_envelope(an, ar, env[0].data, env[0].len, true, true), 0);
    assert_true(an->last_dup);
    assert_int_equal(ar->nhist, before + 1);
    size_t tl;
    kith_buf txt;
    kith_buf_init(&txt, &w->t.env, KITH_MSG_MAX_ENVELOPE);
    assert_string_equal(node_hist_text(an, ar, before, &txt, &tl), "two");
    kith_buf_free(&txt);
    kith_buf_free(&env[0]);
    kith_buf_free(&env[1]);
    tw_free(w);
}

/* More messages than one block of history entries: edits, reactions and
 * deletes reach across blocks, and survive a restart (replayed from the
 * log). */
static void test_history_blocks(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 1, NULL);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "club", room), 0);
    size_t total = NODE_HIST_BLOCK + 10;
    for (size_t k = 0; k < total; k++) {
        char text[32];
        snprintf(text, sizeof text, "line %zu", k);
        tw_send(w, 0, room, text);
        if (k % 64 == 63)
            tw_settle(w);
    }
    tw_settle(w);
    uint8_t first[32], last[32];
    assert_int_equal(kith_node_find_message(w->n[0].node, room, NULL, total, true, first), 0);
    assert_int_equal(kith_node_find_message(w->n[0].node, room, NULL, 1, true, last), 0);
    about(w, 0, room, KITH_MSG_EDIT, first, "first, edited", 0);
    about(w, 0, room, KITH_MSG_REACTION, first, "+1", 0);
    about(w, 0, room, KITH_MSG_DELETE, last, NULL, 0);
    tw_settle(w);
    for (int round = 0; round < 2; round++) {
        nroom *r = node_room_by_id(w->n[0].node, room);
        assert_non_null(r);
        size_t after = total + 3; /* the lines and the three above */
        assert_true(
            r->nhist >= after && r->nhblk == (r->nhist + NODE_HIST_BLOCK - 1) / NODE_HIST_BLOCK);
        /* The id index finds every message at its place in the history
         * (it grew by rehashing past several sizes, and was rebuilt from
         * the log after the restart). */
        kith_node *nd = w->n[0].node;
        for (size_t i = 0; i < r->nhist; i++) {
            uint8_t id[32];
            assert_int_equal(node_hist_full_id(nd, r, i, id), 0);
            assert_int_equal(node_hist_find(r, id), i);
        }
        uint8_t none[32];
        memcpy(none, first, 32);
        none[31] ^= 1; /* same 8-byte prefix, another id */
        size_t fi = node_hist_find(r, first), li = node_hist_find(r, last);
        assert_true(fi != SIZE_MAX && li != SIZE_MAX);
        const hist *f = node_hist_at(r, fi), *l = node_hist_at(r, li);
        assert_true(f->edit > NODE_HIST_BLOCK && f->react > NODE_HIST_BLOCK);
        kith_buf txt;
        kith_buf_init(&txt, &w->t.env, KITH_MSG_MAX_ENVELOPE);
        size_t tl;
        /* Texts are read back from the log. */
        assert_string_equal(node_hist_text(nd, r, f->edit - 1, &txt, &tl), "first, edited");
        assert_int_equal(tl, strlen("first, edited"));
        assert_string_equal(node_hist_text(nd, r, fi, &txt, &tl), "line 0");
        assert_int_equal(node_hist_at(r, f->edit - 1)->target, fi + 1);
        assert_int_equal(node_hist_at(r, f->react - 1)->target, fi + 1);
        assert_memory_equal(node_hist_author(r, f), w->n[0].id.id_pk, KITH_ID_LEN);
        assert_true(l->deleted);
        assert_string_equal(node_hist_text(nd, r, li, &txt, &tl), "");
        assert_int_equal(tl, 0);
        kith_buf_free(&txt);
        /* Ids named by a prefix: within the 8 bytes the entry keeps, and
         * past them (checked against the log). */
        char hex[65];
        uint8_t got[32];
        kith_hex(hex, first, 32);
        for (size_t len = 12; len <= 64; len += 26) {
            char pre[65];
            memcpy(pre, hex, len);
            pre[len] = '\0';
            memset(got, 0, sizeof got);
            assert_int_equal(kith_node_find_message(nd, room, pre, 0, false, got), 0);
            assert_memory_equal(got, first, 32);
        }
        kith_hex(hex, none, 32);
        assert_int_equal(kith_node_find_message(nd, room, hex, 0, false, got), KITH_ENOENT);
        kith_buf env;
        kith_buf_init(&env, &w->t.env, KITH_MSG_MAX_ENVELOPE);
        assert_int_equal(node_hist_env(w->n[0].node, r, r->nhist - 1, &env, NULL), 0);
        kith_buf_free(&env);
        /* What /history shows: the edited first line with its reaction,
         * the deleted last one without its text. */
        hlist h;
        memset(&h, 0, sizeof h);
        assert_int_equal(kith_node_history(nd, room, SIZE_MAX, on_hfirst, &h), 0);
        char str[256];
        hstr(&h, str, sizeof str);
        assert_string_equal(str, "a:first, edited*|r a:+1|a:~");
        tw_stop(w, 0);
        tw_start(w, 0);
        tw_settle(w);
    }
    tw_free(w);
}

/* A member linked with the inviter through one room joins a second room
 * over that link: no second connection (the inviter would close it as a
 * duplicate of the first), and both rooms work over the one link. */
static void test_second_room_over_link(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t r1[32], r2[32];
    make_room(w, r1, 0, 1);
    assert_int_equal(kith_node_create_room(w->n[0].node, "second", r2), 0);
    tw_settle(w);
    int links = w->nlinks;
    char code[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_node_invite(w->n[0].node, r2, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[1].node, code), 0);
    tw_settle(w);
    assert_int_equal(w->nlinks, links);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_ROOM, NULL), 2);
    assert_int_equal(kith_node_member_count(w->n[1].node, r2), 2);
    tw_send(w, 0, r2, "in the second room");
    tw_send(w, 1, r1, "still in the first");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "in the second room"), 1);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "still in the first"), 1);
    tw_free(w);
}

/* A room whose log is more than one frame's worth of ops (here by its
 * topic history; in a room of a thousand members by its add ops) is sent
 * to a joiner in several JOIN_OK parts, and the joiner gets all of it. */
static void test_join_big_log(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "archive", room), 0);
    char topic[KITH_TOPIC_MAX + 1];
    for (int i = 0; i < 3000; i++) {
        memset(topic, 'a' + i % 26, KITH_TOPIC_MAX);
        snprintf(topic, sizeof topic, "topic %d ", i);
        topic[strlen(topic)] = 'x';
        topic[KITH_TOPIC_MAX] = '\0';
        assert_int_equal(
            kith_node_member_op(w->n[0].node, room, KITH_MOP_SET_TOPIC, NULL, 0, topic), 0);
    }
    tw_settle(w);
    const kith_room *big = node_room_by_id(w->n[0].node, room)->room;
    size_t nops = kith_room_op_count(big), bytes = 0;
    for (size_t i = 0; i < nops; i++) {
        size_t len;
        kith_room_op_at(big, i, &len);
        bytes += len;
    }
    assert_true(nops > KITH_FRAME_JOIN_OPS);
    assert_true(bytes > KITH_SESSION_MAX_APP); /* more than one frame can carry */
    make_room(w, room, 0, 1);
    assert_false(has_error(&w->n[1], "join failed"));
    assert_int_equal(tw_count(&w->n[1], KITH_EV_ROOM, NULL), 1);
    const nroom *got = node_room_by_id(w->n[1].node, room);
    assert_non_null(got);
    assert_int_equal(kith_room_op_count(got->room), nops + 2); /* + invite and add */
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_string_equal(info.topic, topic);
    tw_send(w, 1, room, "read it all");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[0], KITH_EV_MESSAGE, "read it all"), 1);
    /* The mark is `true` or absent: `false` is not a second spelling. */
    uint8_t part[]
        = { 0x84, 0x00, 0x03, 0x01, 0xc4, 0x20, [38] = 0x02, 0x91, 0xc4, 0x01, 'x', 0x03, 0xc3 };
    kith_wire_doc *doc = malloc(sizeof *doc);
    assert_non_null(doc);
    kith_frame f;
    assert_int_equal(kith_frame_decode(&w->t.env, part, sizeof part, doc, &f), 0);
    assert_true(f.more);
    part[sizeof part - 1] = 0xc2;
    assert_int_equal(kith_frame_decode(&w->t.env, part, sizeof part, doc, &f), KITH_EPROTO);
    free(doc);
    tw_free(w);
}

/* Display names are kept group by group (names with one skeleton): after
 * every join and rename each is what a computation over the whole room
 * gives. */
static void check_names(tworld *w, int at, const uint8_t room[32])
{
    kith_node *node = w->n[at].node;
    nroom *r = node_room_by_id(node, room);
    assert_non_null(r);
    size_t np = kith_room_person_count(r->room);
    uint8_t(*ids)[KITH_ID_LEN] = calloc(np, KITH_ID_LEN);
    const char **nicks = calloc(np, sizeof *nicks);
    char(*want)[KITH_DISPLAY_MAX + 1] = calloc(np, sizeof *want);
    assert_true(ids && nicks && want);
    for (size_t i = 0; i < np; i++) {
        memcpy(ids[i], kith_room_person_at(r->room, i)->id, KITH_ID_LEN);
        nicks[i] = node_nick_of(node, r, ids[i]);
    }
    assert_int_equal(
        kith_display_names(&w->t.env, np, (const uint8_t(*)[KITH_ID_LEN])ids, nicks, want), 0);
    for (size_t i = 0; i < np; i++)
        assert_string_equal(node_display(node, r, ids[i]), want[i]);
    free(ids);
    free(nicks);
    free(want);
}

static void test_display_names_by_group(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 4, NULL);
    assert_int_equal(kith_node_set_nick(w->n[1].node, "ann"), 0);
    assert_int_equal(kith_node_set_nick(w->n[2].node, "Ann"), 0);
    assert_int_equal(kith_node_set_nick(w->n[3].node, "bob"), 0);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    check_names(w, 0, room);
    make_room(w, room, 0, 2); /* a look-alike joins: both get a suffix */
    check_names(w, 0, room);
    check_names(w, 1, room);
    assert_non_null(strchr(
        node_display(w->n[0].node, node_room_by_id(w->n[0].node, room), w->n[1].id.id_pk), '~'));
    make_room(w, room, 0, 3);
    tw_tick(w, 3);
    assert_int_equal(kith_node_set_nick(w->n[3].node, "ANN"), 0); /* three of a kind */
    tw_tick(w, 1);
    for (int i = 0; i < 4; i++)
        check_names(w, i, room);
    assert_int_equal(kith_node_set_nick(w->n[2].node, "carl"), 0); /* one leaves the group */
    tw_tick(w, 1);
    for (int i = 0; i < 4; i++)
        check_names(w, i, room);
    assert_string_equal(
        node_display(w->n[0].node, node_room_by_id(w->n[0].node, room), w->n[2].id.id_pk), "carl");
    tw_free(w);
}

/* A message the id index has no room for is not half delivered: no history
 * entry, the author's chain not advanced, so when it comes again (pulled
 * for the next message's gap) it is delivered and shown once. */
static void test_deliver_all_or_nothing(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, NULL);
    uint8_t room[32];
    make_room(w, room, 0, 1);
    tw_send(w, 0, room, "one");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "one"), 1);
    nroom *r = node_room_by_id(w->n[1].node, room);
    assert_non_null(r);
    author_st *a = node_author(w->n[1].node, r, w->n[0].id.id_pk, false);
    assert_non_null(a);
    size_t nhist = r->nhist;
    uint64_t seq = a->seq;
    size_t max = r->ixmax;
    r->ixmax = r->nhist; /* the next new id does not fit */
    tw_send(w, 0, room, "two");
    tw_settle(w);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "two"), 0);
    assert_int_equal(r->nhist, nhist);
    assert_int_equal(a->seq, seq);
    r->ixmax = max;
    tw_send(w, 0, room, "three");
    tw_settle(w);
    tw_tick(w, 5);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "two"), 1);
    assert_int_equal(tw_count(&w->n[1], KITH_EV_MESSAGE, "three"), 1);
    assert_int_equal(r->nhist, nhist + 2);
    tw_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_invite_join_chat, setup, NULL),
        cmocka_unit_test_setup_teardown(test_restart_keeps_room_and_history, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_bulk_catchup, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_history_blocks, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_equivocation, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_sent_only_after_flush, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_invite_refusals, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_garbage_closes_connection, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_nick_change, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_periodic_sync_ops_once, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_lingering_stranger_dropped, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_address_record_moves, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_edit_delete_react, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_batched_verify, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_catchup_served_once, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_second_room_over_link, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_join_big_log, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_display_names_by_group, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_deliver_all_or_nothing, NULL, NULL),
        cmocka_unit_test_setup_teardown(test_reaction_before_target, NULL, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
