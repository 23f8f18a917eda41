/* Gossip across hops, pruning, and recovery, in the deterministic
 * simulator (tools/sim/simnet.c). */
#include <stdio.h>

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
    for (int r = 0; r < 100; r++) {
        send_round(s, room, (r * 3) % 10, 1, "steady");
        sim_run(s, 100);
    }
    sim_run(s, 5000);
    sim_totals_get(s, &b);
    char err[256];
    if (sim_check(s, room, err, sizeof err))
        fail_msg("%s", err);
    uint64_t deliveries = b.delivered - a.delivered, copies = b.msgs_in - a.msgs_in;
    assert_int_equal(deliveries, 100 * 9);
    /* Without pruning every node would get 8 copies of each message. */
    assert_true(copies * 10 <= deliveries * 12);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_relays),
        cmocka_unit_test(test_pruning_converges),
        cmocka_unit_test(test_partition_heals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
