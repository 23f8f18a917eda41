/* Gossip across hops, pruning, and recovery, in the deterministic
 * simulator (tools/sim/simnet.c). */
#include <stdio.h>

#include "node/node_impl.h"
#include "simnet.h"
#include "testenv.h"

static void send_round(sim *s, const uint8_t room[32], int from, int count, const char *tag)
{
    for (int k = 0; k < count; k++) {
        char text[48];
        snprintf(text, sizeof text, "%s-%d-%d", tag, from, k);
        assert_int_equal(sim_send(s, from, room, text), 0);
    }
}

static nroom *room_of(kith_node *n, const uint8_t room[32])
{
    for (size_t i = 0; i < n->nrooms; i++) {
        if (memcmp(kith_room_id(n->rooms[i]->room), room, 32) == 0)
            return n->rooms[i];
    }
    fail_msg("node not in the room");
    return NULL;
}

/* Node i's link to node k, or NULL. */
static nconn *link_to(sim *s, int i, int k)
{
    kith_node *n = sim_node(s, i);
    const uint8_t *peer = sim_node(s, k)->self->id_pk;
    for (size_t j = 0; j < n->nconns; j++) {
        if (n->conns[j]->established && memcmp(n->conns[j]->peer, peer, KITH_ID_LEN) == 0)
            return n->conns[j];
    }
    return NULL;
}

/* Node i's side of its link to k: lazy (announcements only) or eager. */
static void set_side(sim *s, const uint8_t room[32], int i, int k, bool lazy)
{
    nconn *c = link_to(s, i, k);
    assert_non_null(c);
    nroom *r = room_of(sim_node(s, i), room);
    size_t j = 0;
    while (j < c->nlazy && c->lazy[j] != r)
        j++;
    if (lazy && j == c->nlazy)
        c->lazy[c->nlazy++] = r;
    else if (!lazy && j < c->nlazy)
        c->lazy[j] = c->lazy[--c->nlazy];
}

static kith_node_stats stats_of(sim *s, int i)
{
    kith_node_stats st;
    kith_node_stats_get(sim_node(s, i), &st);
    return st;
}

static uint64_t ids_announced(sim *s)
{
    uint64_t sum = 0;
    for (int i = 0; i < sim_count(s); i++)
        sum += stats_of(s, i).ihave_ids_out;
    return sum;
}

/* Nodes linked only in a ring: what one says reaches the far side through
 * the others, and every node ends with everything exactly once, in order. */
static void test_ring_relays(void **state)
{
    (void)state;
    sim_cfg cfg = {
        .seed = 11, .nodes = 8, .lat_min_ms = 5, .lat_max_ms = 30, .ring = true, .quiet = true
    };
    sim *s = sim_new(&cfg);
    assert_non_null(s);
    uint8_t room[32];
    assert_int_equal(sim_make_room(s, 8, room), 0);
    /* Restart everyone so only the ring links remain (the joins made others). */
    for (int i = 0; i < 8; i++)
        sim_stop(s, i);
    for (int i = 0; i < 8; i++)
        assert_int_equal(sim_restart(s, i), 0);
    sim_run(s, 5000);
    for (int i = 0; i < 8; i++) {
        kith_room_info info;
        assert_int_equal(kith_node_room_info(sim_node(s, i), room, &info), 0);
        assert_true(info.online <= 3); /* itself and its two ring neighbours */
    }
    send_round(s, room, 0, 20, "ring");
    send_round(s, room, 4, 20, "ring");
    sim_run(s, 10000);
    char err[256];
    int bad = sim_check(s, room, err, sizeof err);
    if (bad)
        fail_msg("%s", err);
    kith_room_info info;
    assert_int_equal(kith_node_room_info(sim_node(s, 2), room, &info), 0);
    assert_int_equal(info.messages, 40);
    sim_free(s);
}

/* After a warm-up on a full mesh, a message crosses each link about once. */
static void test_pruning_converges(void **state)
{
    (void)state;
    sim_cfg cfg = { .seed = 5, .nodes = 10, .lat_min_ms = 5, .lat_max_ms = 40, .quiet = true };
    sim *s = sim_new(&cfg);
    assert_non_null(s);
    uint8_t room[32];
    assert_int_equal(sim_make_room(s, 10, room), 0);
    sim_run(s, 5000);
    for (int r = 0; r < 60; r++) {
        send_round(s, room, r % 10, 1, "warm");
        sim_run(s, 100);
    }
    sim_run(s, 3000);
    sim_totals a, b;
    sim_totals_get(s, &a);
    uint64_t ids0 = ids_announced(s);
    for (int r = 0; r < 100; r++) {
        send_round(s, room, (r * 3) % 10, 1, "steady");
        sim_run(s, 100);
    }
    sim_run(s, 5000);
    sim_totals_get(s, &b);
    uint64_t ids = ids_announced(s) - ids0;
    char err[256];
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    uint64_t deliveries = b.delivered - a.delivered, copies = b.msgs_in - a.msgs_in;
    assert_int_equal(deliveries, 100 * 9);
    /* Without pruning every node would get 8 copies of each message. */
    assert_true(copies * 10 <= deliveries * 12);
    /* Each node announces what it delivered or sent to NODE_IHAVE_FANOUT
     * lazy links per round, and once quiet, each author's latest id to
     * every lazy link (at most 10 nodes x 9 links x 10 authors); before,
     * every id went to every lazy link (6-7 per delivery here). */
    assert_true(ids > 0);
    assert_true(ids <= NODE_IHAVE_FANOUT * (deliveries + 100) + 10 * 9 * 10);
    sim_free(s);
}

/* With every link lazy, announcements alone bring a message to everyone:
 * the first round goes to NODE_IHAVE_FANOUT links, the round after the
 * room fell quiet to every other one; each WANT grafts a link. */
static void test_announcements_spread(void **state)
{
    (void)state;
    sim_cfg cfg = { .seed = 7, .nodes = 10, .lat_min_ms = 5, .lat_max_ms = 30, .quiet = true };
    sim *s = sim_new(&cfg);
    assert_non_null(s);
    uint8_t room[32];
    assert_int_equal(sim_make_room(s, 10, room), 0);
    sim_run(s, 5000);
    for (int i = 0; i < 10; i++) {
        for (int k = 0; k < 10; k++) {
            if (k != i && link_to(s, i, k))
                set_side(s, room, i, k, true);
        }
    }
    kith_node_stats a0 = stats_of(s, 0);
    sim_totals t0, t1;
    sim_totals_get(s, &t0);
    send_round(s, room, 0, 1, "lazy");
    sim_run(s, 200);
    kith_node_stats a1 = stats_of(s, 0);
    assert_true(a1.ihave_ids_out - a0.ihave_ids_out >= 1);
    assert_true(a1.ihave_ids_out - a0.ihave_ids_out <= NODE_IHAVE_FANOUT);
    sim_run(s, 4000);
    sim_totals_get(s, &t1);
    assert_int_equal(t1.delivered - t0.delivered, 9);
    a1 = stats_of(s, 0);
    assert_true(a1.ihave_ids_out - a0.ihave_ids_out <= 9); /* each link once at most */
    assert_true(a1.msgs_out - a0.msgs_out >= 1); /* answers to WANT */
    char err[256];
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    sim_free(s);
}

/* A node announces an id to none of the links that brought it or lead to
 * its author: node 2 gets node 0's message from node 1, and of its lazy
 * links only the one to node 3 may hear of it. */
static void test_no_announcement_back(void **state)
{
    (void)state;
    sim_cfg cfg = { .seed = 9, .nodes = 4, .lat_min_ms = 5, .lat_max_ms = 10, .quiet = true };
    sim *s = sim_new(&cfg);
    assert_non_null(s);
    uint8_t room[32];
    assert_int_equal(sim_make_room(s, 4, room), 0);
    sim_run(s, 5000);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 4; k++) {
            if (k != i)
                set_side(s, room, i, k, true);
        }
    }
    /* The eager path 0 -> 1 -> 2; node 2 sees its link to 1 as lazy. */
    set_side(s, room, 0, 1, false);
    set_side(s, room, 1, 2, false);
    kith_node_stats c0 = stats_of(s, 2);
    send_round(s, room, 0, 1, "path");
    sim_run(s, 3000);
    kith_node_stats c1 = stats_of(s, 2);
    assert_int_equal(c1.delivered - c0.delivered, 1);
    assert_int_equal(c1.want_out - c0.want_out, 0); /* it came eagerly, from 1 */
    /* A round to 2 of its 3 lazy links names the id to node 3 at most. */
    assert_true(c1.ihave_ids_out - c0.ihave_ids_out <= 1);
    char err[256];
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    sim_free(s);
}

/* A partition heals: both sides' messages reach everyone. */
static void test_partition_heals(void **state)
{
    (void)state;
    sim_cfg cfg = { .seed = 3, .nodes = 6, .lat_min_ms = 5, .lat_max_ms = 20, .quiet = true };
    sim *s = sim_new(&cfg);
    assert_non_null(s);
    uint8_t room[32];
    assert_int_equal(sim_make_room(s, 6, room), 0);
    sim_run(s, 3000);
    for (int i = 0; i < 6; i++)
        sim_set_group(s, i, i < 3 ? 1 : 2);
    send_round(s, room, 0, 10, "left");
    send_round(s, room, 5, 10, "right");
    sim_run(s, 5000);
    char err[256];
    assert_true(sim_check(s, room, err, sizeof err) > 0); /* split: not converged */
    for (int i = 0; i < 6; i++)
        sim_set_group(s, i, 0);
    sim_run(s, 90000);
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    sim_free(s);
}

/* A member whose links are all slow (its driver says bytes pile up unsent)
 * relays others' messages to them as announcements only: it pushes no MSG
 * frame, and the room still converges (its peers have the messages from
 * the sender, or pull them). Marked fast again, it pushes eagerly again. */
static void test_slow_links_get_announcements(void **state)
{
    (void)state;
    sim_cfg cfg = { .seed = 17, .nodes = 5, .lat_min_ms = 5, .lat_max_ms = 20, .quiet = true };
    sim *s = sim_new(&cfg);
    assert_non_null(s);
    uint8_t room[32];
    assert_int_equal(sim_make_room(s, 5, room), 0);
    sim_run(s, 3000);
    /* Connection ids are small and sequential: mark every one of node 1's. */
    for (uint64_t id = 1; id < 256; id++)
        kith_node_conn_slow(sim_node(s, 1), id, true);
    kith_node_stats a, b;
    kith_node_stats_get(sim_node(s, 1), &a);
    send_round(s, room, 0, 10, "slow");
    sim_run(s, 5000);
    kith_node_stats_get(sim_node(s, 1), &b);
    char err[256];
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(b.delivered - a.delivered, 10);
    assert_int_equal(b.msgs_out, a.msgs_out); /* no eager push */
    assert_true(b.ihave_out > a.ihave_out); /* announced instead */
    for (uint64_t id = 1; id < 256; id++)
        kith_node_conn_slow(sim_node(s, 1), id, false);
    /* Fast again: everything still reaches everyone. */
    send_round(s, room, 2, 10, "fast");
    sim_run(s, 5000);
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_relays),
        cmocka_unit_test(test_pruning_converges),
        cmocka_unit_test(test_partition_heals),
        cmocka_unit_test(test_announcements_spread),
        cmocka_unit_test(test_no_announcement_back),
        cmocka_unit_test(test_slow_links_get_announcements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
