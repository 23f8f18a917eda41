/* Unit tests for LAN meetups: the beacon codec (node/beacon.c) and the
 * node's LAN logic (node/node_lan.c), driven by tworld (testenv.h) with LAN
 * on: WRITE goes to the peer's conn_data, CONNECT finds the
 * node by address, BEACON is handed to every other node with the sender's
 * "IP", time is virtual. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "crypto/crypto.h"
#include "kith/node.h"
#include "msg/msg.h"
#include "node/beacon.h"
#include "room/room.h"
#include "store/store.h"
#include "testenv.h"

static tworld *W;
/* LAN on, addresses 10.0.0.N:7415, the RNG seeded with 7. */
static const tworld_opts lan = { .seed = 7, .lan = true };

/* ---- codec ---- */

static void fill(kith_beacon *b)
{
    memset(b, 0, sizeof *b);
    b->port = 7415;
    for (size_t i = 0; i < sizeof b->nonce; i++)
        b->nonce[i] = (uint8_t)(i + 1);
    b->ntags = 4;
    for (size_t t = 0; t < 4; t++)
        memset(b->tags[t], (int)(0x10 + t), KITH_BEACON_TAG_LEN);
    b->nnames = 2;
    b->names[0].mode = KITH_BEACON_OPEN;
    snprintf(b->names[0].name, sizeof b->names[0].name, "meetup");
    b->names[1].mode = KITH_BEACON_KNOCK;
    snprintf(b->names[1].name, sizeof b->names[1].name, "knock-knock");
}

static void test_codec_roundtrip(void **state)
{
    (void)state;
    kith_beacon b, d;
    fill(&b);
    uint8_t buf[KITH_BEACON_MAX];
    size_t len;
    assert_int_equal(kith_beacon_encode(&b, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 22 + 4 * 16 + (2 + 6) + (2 + 11));
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[1], 4);
    assert_int_equal(buf[2], 2);
    assert_int_equal(buf[4] << 8 | buf[5], 7415);
    assert_int_equal(kith_beacon_decode(buf, len, &d), 0);
    assert_int_equal(d.port, 7415);
    assert_memory_equal(d.nonce, b.nonce, sizeof d.nonce);
    assert_int_equal(d.ntags, 4);
    assert_memory_equal(d.tags, b.tags, 4 * KITH_BEACON_TAG_LEN);
    assert_int_equal(d.nnames, 2);
    assert_string_equal(d.names[0].name, "meetup");
    assert_int_equal(d.names[1].mode, KITH_BEACON_KNOCK);
    /* The largest beacon fits the cap exactly. */
    b.ntags = KITH_BEACON_MAX_TAGS;
    b.nnames = KITH_BEACON_MAX_NAMES;
    for (size_t i = 0; i < KITH_BEACON_MAX_NAMES; i++) {
        b.names[i].mode = KITH_BEACON_OPEN;
        memset(b.names[i].name, 'x', KITH_ROOM_NAME_MAX);
        b.names[i].name[KITH_ROOM_NAME_MAX] = '\0';
    }
    assert_int_equal(kith_beacon_encode(&b, buf, sizeof buf, &len), 0);
    assert_int_equal(len, KITH_BEACON_MAX);
    assert_int_equal(kith_beacon_decode(buf, len, &d), 0);
    assert_int_equal(kith_beacon_encode(&b, buf, KITH_BEACON_MAX - 1, &len), KITH_ETOOBIG);
}

static void test_codec_hostile(void **state)
{
    (void)state;
    kith_beacon b, d;
    fill(&b);
    uint8_t buf[KITH_BEACON_MAX + 8], bad[KITH_BEACON_MAX + 8];
    size_t len;
    assert_int_equal(kith_beacon_encode(&b, buf, sizeof buf, &len), 0);
    /* Every truncation and one trailing byte are rejected, leaving out zeroed. */
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(kith_beacon_decode(buf, cut, &d), KITH_EPROTO);
        assert_int_equal(d.ntags, 0);
        assert_int_equal(d.port, 0);
    }
    memcpy(bad, buf, len);
    bad[len] = 0;
    assert_int_equal(kith_beacon_decode(bad, len + 1, &d), KITH_EPROTO);
    struct {
        size_t at;
        uint8_t v;
    } flips[] = {
        { 0, 2 }, /* version */
        { 1, 17 }, /* too many tags */
        { 1, 5 }, /* tag count disagrees with length */
        { 2, 5 }, /* too many names */
        { 3, 1 }, /* reserved */
        { 4, 0 }, /* port 0 (with byte 5 below) */
        { 22 + 64, 3 }, /* bad mode */
        { 22 + 64 + 1, 0 }, /* empty name */
        { 22 + 64 + 1, 200 }, /* name past the end */
        { 22 + 64 + 2, 0x07 }, /* control character in a name */
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(bad, buf, len);
        bad[flips[i].at] = flips[i].v;
        if (flips[i].at == 4)
            bad[5] = 0;
        assert_int_equal(kith_beacon_decode(bad, len, &d), KITH_EPROTO);
    }
    assert_int_equal(kith_beacon_decode(buf, KITH_BEACON_MAX + 1, &d), KITH_EPROTO);
    /* The encoder refuses what the decoder would refuse. */
    kith_beacon e = b;
    e.port = 0;
    assert_int_equal(kith_beacon_encode(&e, buf, sizeof buf, &len), KITH_EINVAL);
    e = b;
    e.ntags = KITH_BEACON_MAX_TAGS + 1;
    assert_int_equal(kith_beacon_encode(&e, buf, sizeof buf, &len), KITH_EINVAL);
    e = b;
    e.names[0].name[0] = '\0';
    assert_int_equal(kith_beacon_encode(&e, buf, sizeof buf, &len), KITH_EINVAL);
    e = b;
    e.names[1].mode = 9;
    assert_int_equal(kith_beacon_encode(&e, buf, sizeof buf, &len), KITH_EINVAL);
}

static void test_tags(void **state)
{
    (void)state;
    uint8_t epoch_key[KITH_KEY_LEN], other_key[KITH_KEY_LEN], room[KITH_HASH_LEN];
    randombytes_buf(epoch_key, sizeof epoch_key);
    randombytes_buf(other_key, sizeof other_key);
    randombytes_buf(room, sizeof room);
    uint8_t disc[KITH_KEY_LEN], disc_other[KITH_KEY_LEN], disc_room2[KITH_KEY_LEN];
    kith_beacon_room_key(epoch_key, room, disc);
    kith_beacon_room_key(other_key, room, disc_other);
    uint8_t room2[KITH_HASH_LEN];
    memcpy(room2, room, sizeof room2);
    room2[0] ^= 1;
    kith_beacon_room_key(epoch_key, room2, disc_room2);
    assert_memory_not_equal(disc, disc_other, KITH_KEY_LEN);
    assert_memory_not_equal(disc, disc_room2, KITH_KEY_LEN);
    uint8_t n1[KITH_BEACON_NONCE_LEN], n2[KITH_BEACON_NONCE_LEN];
    randombytes_buf(n1, sizeof n1);
    randombytes_buf(n2, sizeof n2);
    uint64_t w = kith_beacon_window(1767225600000ull);
    assert_int_equal(kith_beacon_window(1767225600000ull + KITH_BEACON_WINDOW_MS), w + 1);
    uint8_t t1[16], t1b[16], t2[16], tw[16], tk[16];
    kith_beacon_tag(disc, w, n1, t1);
    kith_beacon_tag(disc, w, n1, t1b);
    kith_beacon_tag(disc, w, n2, t2);
    kith_beacon_tag(disc, w + 1, n1, tw);
    kith_beacon_tag(disc_other, w, n1, tk);
    assert_memory_equal(t1, t1b, 16); /* deterministic: the listener can recompute */
    assert_memory_not_equal(t1, t2, 16); /* a fresh nonce: unrelated tag */
    assert_memory_not_equal(t1, tw, 16); /* another window */
    assert_memory_not_equal(t1, tk, 16); /* another key */
}

/* ---- node logic ---- */

/* Members of one room who never met over an address: the room is made
 * while every node has an address nobody can reach (the driver knows no
 * "old" hosts), then the nodes restart on their LAN addresses. */
static void make_room_offline(tworld *w, uint8_t room[32], int founder, const int *joiners, int nj)
{
    for (int i = 0; i < w->count; i++) {
        tw_stop(w, i);
        snprintf(w->n[i].addr, sizeof w->n[i].addr, "old%d:1", i);
        tw_start(w, i);
    }
    assert_int_equal(kith_node_create_room(w->n[founder].node, "bookclub", room), 0);
    for (int j = 0; j < nj; j++) {
        char code[KITH_INVITE_CODE_MAX];
        assert_int_equal(kith_node_invite(w->n[founder].node, room, 0, code, sizeof code), 0);
        assert_int_equal(kith_node_join(w->n[joiners[j]].node, code), 0);
        tw_settle(w);
    }
    for (int i = 0; i < w->count; i++) {
        tw_stop(w, i);
        snprintf(w->n[i].addr, sizeof w->n[i].addr, "10.0.0.%d:7415", (i + 1) % 10);
        tw_start(w, i);
        w->n[i].connects = 0;
    }
    tw_settle(w);
}

/* The "old" dials fail; count only dials to LAN addresses. */
static bool peer_found(tworld *w, int i, const char *how)
{
    size_t np = kith_node_peer_count(w->n[i].node);
    for (size_t k = 0; k < np; k++) {
        kith_peer_info p;
        assert_int_equal(kith_node_peer_at(w->n[i].node, k, &p), 0);
        if (strcmp(p.found, how) == 0)
            return true;
    }
    return false;
}

static void test_members_find_each_other(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, &lan);
    uint8_t room[32];
    int joiners[] = { 1 };
    make_room_offline(w, room, 0, joiners, 1);
    /* Node 2 is in a room of its own: a non-member of bookclub. */
    uint8_t other[32];
    assert_int_equal(kith_node_create_room(w->n[2].node, "elsewhere", other), 0);
    tw_tick(w, 12);
    assert_true(w->nlog > 0);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[0].node, room, &info), 0);
    assert_int_equal(info.online, 2);
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_int_equal(info.online, 2);
    assert_true(peer_found(w, 0, "lan") || peer_found(w, 1, "lan"));
    /* The non-member connected to nobody and nobody to it. */
    assert_int_equal(kith_node_peer_count(w->n[2].node), 0);
    for (size_t i = 0; i < w->n[0].nev; i++)
        assert_false(w->n[0].ev[i].type == KITH_EV_ERROR);
    tw_send(w, 0, room, "found you");
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_MESSAGE, "found you"), 1);
    /* Settled: more beacons make no new connections. */
    size_t c0 = w->n[0].connects, c1 = w->n[1].connects, c2 = w->n[2].connects;
    tw_tick(w, 60);
    assert_true(w->n[0].connects + w->n[1].connects <= c0 + c1 + 2);
    assert_int_equal(w->n[2].connects, c2);
    tw_free(w);
}

static void test_beacons_unlinkable(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 1, &lan);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "bookclub", room), 0);
    tw_tick(w, 40);
    assert_true(w->nlog >= 3);
    for (size_t i = 0; i + 1 < w->nlog; i++) {
        kith_beacon a, b;
        assert_int_equal(kith_beacon_decode(w->log[i].data, w->log[i].len, &a), 0);
        assert_int_equal(kith_beacon_decode(w->log[i + 1].data, w->log[i + 1].len, &b), 0);
        assert_int_equal(a.ntags, 4); /* one room, padded */
        assert_int_equal(a.nnames, 0);
        assert_memory_not_equal(a.nonce, b.nonce, KITH_BEACON_NONCE_LEN);
        for (size_t x = 0; x < a.ntags; x++)
            for (size_t y = 0; y < b.ntags; y++)
                assert_memory_not_equal(a.tags[x], b.tags[y], KITH_BEACON_TAG_LEN);
        /* Nothing in the datagram is the room id or a public key. */
        const uint8_t *id = w->n[0].id.id_pk;
        for (size_t off = 0; off + 8 <= w->log[i].len; off++) {
            for (size_t k = 0; k + 8 <= 32; k++) {
                assert_false(memcmp(w->log[i].data + off, room + k, 8) == 0);
                assert_false(memcmp(w->log[i].data + off, id + k, 8) == 0);
            }
        }
    }
    /* Beacons are spaced 5-10 s apart (a single node hears nobody). */
    assert_true(w->nlog <= 40 / 5 + 1);
    tw_free(w);
}

static void test_flood_opens_nothing(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 1, &lan);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "bookclub", room), 0);
    tw_settle(w);
    size_t before = w->n[0].connects;
    kith_beacon b;
    uint8_t buf[KITH_BEACON_MAX];
    size_t len;
    for (int s = 0; s < 5; s++) {
        for (int k = 0; k < 2000; k++) {
            memset(&b, 0, sizeof b);
            b.port = (uint16_t)(1000 + k);
            randombytes_buf(b.nonce, sizeof b.nonce);
            b.ntags = KITH_BEACON_MAX_TAGS;
            randombytes_buf(b.tags, sizeof b.tags);
            assert_int_equal(kith_beacon_encode(&b, buf, sizeof buf, &len), 0);
            char host[32];
            snprintf(host, sizeof host, "10.9.%d.%d", k / 250, k % 250);
            kith_node_beacon(w->n[0].node, buf, len, host);
            /* and junk */
            randombytes_buf(buf, 64);
            kith_node_beacon(w->n[0].node, buf, 64, host);
            kith_node_beacon(w->n[0].node, buf, 0, host);
            kith_node_beacon(w->n[0].node, buf, len, "not a host;rm -rf");
        }
        tw_tick(w, 1);
    }
    assert_int_equal(w->n[0].connects, before);
    assert_int_equal(kith_node_peer_count(w->n[0].node), 0);
    /* The node still works and still beacons. */
    size_t sent = w->nlog;
    tw_tick(w, 15);
    assert_true(w->nlog > sent);
    tw_free(w);
}

/* Bytes node `from` wrote to node `to` over all their links. */
static size_t bytes_sent(const tworld *w, int from, int to)
{
    size_t sum = 0;
    for (int k = 0; k < w->nlinks; k++) {
        const tlink *l = &w->links[k];
        if (l->a == from && l->b == to)
            sum += l->sent_ab;
        if (l->b == from && l->a == to)
            sum += l->sent_ba;
    }
    return sum;
}

static int dials(const tworld *w, int from, int to)
{
    int count = 0;
    for (int k = 0; k < w->nlinks; k++)
        count += w->links[k].a == from && w->links[k].b == to;
    return count;
}

/* Someone who is in none of the room's member lists replays a member's
 * beacon from its own address (or builds one with an observed nonce and
 * tags). A member who hears it dials the replayer, but sees from handshake
 * message 2 who answered, and never sends message 3: the replayer learns
 * nothing of who dialed. Before the fix, message 3 went out and only then
 * was the connection closed ("peer shares no room"). */
static void test_replayed_beacon_reveals_nobody(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, &lan);
    uint8_t room[32];
    int joiners[] = { 1 };
    make_room_offline(w, room, 0, joiners, 1);
    /* The impostor (node 2) runs kith too: it answers the dial as a real
     * Noise responder would. */
    uint8_t other[32];
    assert_int_equal(kith_node_create_room(w->n[2].node, "elsewhere", other), 0);
    w->quiet = true; /* node 1 must not have heard the original */
    size_t logged = w->nlog;
    tw_tick(w, 11);
    int from0 = -1;
    for (size_t i = logged; i < w->nlog; i++) {
        if (w->log[i].from == 0)
            from0 = (int)i;
    }
    assert_true(from0 >= 0);
    assert_int_equal(kith_node_peer_count(w->n[1].node), 0);
    assert_int_equal(dials(w, 1, 2), 0);
    /* Replayed from the impostor's host; the beacon's port is the same. */
    kith_node_beacon(w->n[1].node, w->log[from0].data, w->log[from0].len, w->n[2].host);
    tw_settle(w);
    assert_int_equal(dials(w, 1, 2), 1); /* the tag matched: it dialed */
    assert_int_equal(bytes_sent(w, 1, 2), 2 + 32); /* message 1 only, never 3 */
    assert_int_equal(bytes_sent(w, 2, 1), 2 + 199); /* the impostor's message 2 */
    assert_int_equal(kith_node_peer_count(w->n[1].node), 0);
    assert_int_equal(kith_node_peer_count(w->n[2].node), 0);
    /* More replays (fresh beacons of node 0, from the same impostor host)
     * are not dialed again for a good while. */
    for (int round = 0; round < 3; round++) {
        logged = w->nlog;
        tw_tick(w, 20);
        for (size_t i = logged; i < w->nlog; i++) {
            if (w->log[i].from == 0)
                kith_node_beacon(w->n[1].node, w->log[i].data, w->log[i].len, w->n[2].host);
        }
        tw_settle(w);
    }
    assert_int_equal(dials(w, 1, 2), 1);
    assert_int_equal(bytes_sent(w, 1, 2), 2 + 32);
    /* The real member is still found once beacons are heard again. */
    w->quiet = false;
    tw_tick(w, 12);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(w->n[1].node, room, &info), 0);
    assert_int_equal(info.online, 2);
    tw_free(w);
}

/* An invite whose address hint leads to another node: the joiner sees who
 * answered before saying who it is, and gives up without message 3. */
static void test_invite_to_wrong_node(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, &lan);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "bookclub", room), 0);
    char code[KITH_INVITE_CODE_MAX];
    assert_int_equal(kith_node_invite(w->n[0].node, room, 0, code, sizeof code), 0);
    kith_invite inv;
    assert_int_equal(kith_invite_decode(&w->t.env, code, &inv), 0);
    snprintf(inv.addr, sizeof inv.addr, "%s", w->n[2].addr);
    assert_int_equal(kith_invite_encode(&w->t.env, &inv, code, sizeof code), 0);
    assert_int_equal(kith_node_join(w->n[1].node, code), 0);
    tw_settle(w);
    assert_int_equal(bytes_sent(w, 1, 2), 2 + 32);
    assert_int_equal(kith_node_room_count(w->n[1].node), 0);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_ERROR, "not the one that wrote the invite"), 1);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_ERROR, "join failed"), 1);
    assert_int_equal(kith_node_peer_count(w->n[2].node), 0);
    tw_free(w);
}

static void test_knock_and_admit(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, &lan);
    uint8_t room[32];
    int joiners[] = { 1 };
    make_room_offline(w, room, 0, joiners, 1);
    /* Only an admin may open a room; the LAN doesn't know it yet. */
    assert_int_equal(kith_node_lan_set(w->n[1].node, room, KITH_LAN_KNOCK), KITH_EPERM);
    assert_int_equal(kith_node_knock(w->n[2].node, "bookclub"), KITH_ENOENT);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_KNOCK), 0);
    assert_int_equal(kith_node_lan_mode(w->n[0].node, room), KITH_LAN_KNOCK);
    tw_tick(w, 12);
    assert_int_equal(kith_node_lan_count(w->n[2].node), 1);
    kith_lan_room lr;
    assert_int_equal(kith_node_lan_at(w->n[2].node, 0, &lr), 0);
    assert_string_equal(lr.name, "bookclub");
    assert_int_equal(lr.mode, KITH_LAN_KNOCK);
    assert_string_equal(lr.addr, "10.0.0.1:7415");
    assert_int_equal(kith_node_admit(w->n[0].node, "c"), KITH_ENOENT);
    assert_int_equal(kith_node_knock(w->n[2].node, "#bookclub"), 0);
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[0], KITH_EV_INFO, "c knocks on bookclub"), 1);
    assert_int_equal(kith_node_room_count(w->n[2].node), 0);
    tw_tick(w, 30); /* waiting is fine */
    assert_int_equal(kith_node_room_count(w->n[2].node), 0);
    assert_int_equal(kith_node_admit(w->n[0].node, "nobody"), KITH_ENOENT);
    assert_int_equal(kith_node_admit(w->n[0].node, "c"), 0);
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[2], KITH_EV_ROOM, NULL), 1);
    assert_int_equal(kith_node_member_count(w->n[2].node, room), 3);
    assert_true(peer_found(w, 2, "knock"));
    tw_tick(w, 15);
    tw_send(w, 2, room, "thanks for having me");
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[0], KITH_EV_MESSAGE, "thanks for having me"), 1);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_MESSAGE, "thanks for having me"), 1);
    /* Off: no longer named, and a knock is turned away. */
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_OFF), 0);
    tw_free(w);
}

/* Names in the beacons node `from` sent since log entry `since`. */
static size_t names_sent(const tworld *w, int from, size_t since, const char *name)
{
    size_t count = 0;
    for (size_t i = since; i < w->nlog; i++) {
        kith_beacon b;
        if (w->log[i].from != from)
            continue;
        assert_int_equal(kith_beacon_decode(w->log[i].data, w->log[i].len, &b), 0);
        for (size_t k = 0; k < b.nnames; k++)
            count += strcmp(b.names[k].name, name) == 0;
    }
    return count;
}

/* The meetup setting is a room op: only an admin sets it, every member's
 * node learns it, a moderator's node names the room and answers knocks on
 * its own (with the admin gone), and it outlives a restart. */
static void test_meetup_setting_is_a_room_op(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 3, &lan);
    uint8_t room[32];
    int joiners[] = { 1 };
    make_room_offline(w, room, 0, joiners, 1);
    tw_tick(w, 12); /* 0 and 1 find each other on the LAN */
    assert_int_equal(kith_node_member_op(w->n[0].node, room, KITH_MOP_SET_ROLE, w->n[1].id.id_pk,
                         KITH_ROLE_MODERATOR, NULL),
        0);
    tw_settle(w);
    assert_int_equal(kith_node_lan_set(w->n[1].node, room, KITH_LAN_KNOCK), KITH_EPERM);
    assert_int_equal(kith_node_lan_set(w->n[2].node, room, KITH_LAN_KNOCK), KITH_ENOENT);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, 7), KITH_EINVAL);
    assert_int_equal(kith_node_lan_mode(w->n[1].node, room), KITH_LAN_OFF);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_KNOCK), 0);
    tw_settle(w);
    assert_int_equal(kith_node_lan_mode(w->n[1].node, room), KITH_LAN_KNOCK);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_INFO, "bookclub discoverable on the LAN"), 1);
    /* Again: nothing new is signed. */
    size_t evs = w->n[1].nev;
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_KNOCK), 0);
    tw_settle(w);
    assert_int_equal(w->n[1].nev, evs);
    /* Both nodes that can admit name the room. */
    size_t logged = w->nlog;
    tw_tick(w, 12);
    assert_true(names_sent(w, 0, logged, "bookclub") > 0);
    assert_true(names_sent(w, 1, logged, "bookclub") > 0);
    /* The admin restarts: the setting is in its log. */
    tw_stop(w, 0);
    tw_start(w, 0);
    assert_int_equal(kith_node_lan_mode(w->n[0].node, room), KITH_LAN_KNOCK);
    /* The admin leaves the meetup; the stranger hears only the moderator. */
    tw_stop(w, 0);
    tw_stop(w, 2);
    tw_start(w, 2);
    tw_tick(w, 12);
    assert_int_equal(kith_node_lan_count(w->n[2].node), 1);
    kith_lan_room lr;
    assert_int_equal(kith_node_lan_at(w->n[2].node, 0, &lr), 0);
    assert_string_equal(lr.addr, w->n[1].addr);
    assert_int_equal(lr.mode, KITH_LAN_KNOCK);
    assert_int_equal(kith_node_knock(w->n[2].node, "bookclub"), 0);
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_INFO, "c knocks on bookclub"), 1);
    assert_int_equal(kith_node_admit(w->n[1].node, "c"), 0);
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[2], KITH_EV_ROOM, NULL), 1);
    assert_int_equal(kith_node_member_count(w->n[2].node, room), 3);
    /* The newcomer, a plain member, learned the setting but doesn't name
     * the room (it couldn't let anyone in). */
    assert_int_equal(kith_node_lan_mode(w->n[2].node, room), KITH_LAN_KNOCK);
    logged = w->nlog;
    tw_tick(w, 12);
    assert_int_equal(names_sent(w, 2, logged, "bookclub"), 0);
    /* The admin comes back and closes the room: the moderator stops naming
     * it once the op reaches it. */
    tw_start(w, 0);
    tw_tick(w, 12);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_OFF), 0);
    tw_settle(w);
    assert_int_equal(kith_node_lan_mode(w->n[1].node, room), KITH_LAN_OFF);
    assert_int_equal(kith_node_lan_mode(w->n[2].node, room), KITH_LAN_OFF);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_INFO, "no longer discoverable"), 1);
    logged = w->nlog;
    tw_tick(w, 12);
    assert_int_equal(names_sent(w, 0, logged, "bookclub"), 0);
    assert_int_equal(names_sent(w, 1, logged, "bookclub"), 0);
    tw_free(w);
}

static void test_open_room_admits_at_once(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, &lan);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "meetup", room), 0);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_OPEN), 0);
    tw_tick(w, 3);
    assert_int_equal(kith_node_knock(w->n[1].node, "meetup"), 0);
    tw_settle(w);
    assert_int_equal(tw_count_sub(&w->n[1], KITH_EV_ROOM, NULL), 1);
    assert_int_equal(kith_node_member_count(w->n[1].node, room), 2);
    /* Knocking on a room we are in, or on one that closed, fails cleanly. */
    assert_int_equal(kith_node_knock(w->n[1].node, "meetup"), KITH_EEXIST);
    tw_free(w);
}

static void test_knock_refused_when_closed(void **state)
{
    (void)state;
    tworld *w = W;
    tw_init(w, 2, &lan);
    uint8_t room[32];
    assert_int_equal(kith_node_create_room(w->n[0].node, "meetup", room), 0);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_OPEN), 0);
    tw_tick(w, 3);
    assert_int_equal(kith_node_lan_set(w->n[0].node, room, KITH_LAN_OFF), 0);
    assert_int_equal(kith_node_knock(w->n[1].node, "meetup"), 0); /* still listed */
    tw_settle(w);
    assert_int_equal(kith_node_room_count(w->n[1].node), 0);
    assert_true(tw_count_sub(&w->n[1], KITH_EV_ERROR, "no room by that name") == 1);
    tw_free(w);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_codec_hostile),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_members_find_each_other),
        cmocka_unit_test(test_beacons_unlinkable),
        cmocka_unit_test(test_flood_opens_nothing),
        cmocka_unit_test(test_replayed_beacon_reveals_nobody),
        cmocka_unit_test(test_invite_to_wrong_node),
        cmocka_unit_test(test_knock_and_admit),
        cmocka_unit_test(test_meetup_setting_is_a_room_op),
        cmocka_unit_test(test_open_room_admits_at_once),
        cmocka_unit_test(test_knock_refused_when_closed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
