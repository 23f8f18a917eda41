/* tools/sim: run kith scenarios in the deterministic simulator.
 *
 *   sim --scenario NAME [--seed N | --seeds A-B] [--nodes N] [--verbose]
 *
 * Every run prints its seed and scenario; a failure prints the command that
 * reproduces it exactly. Exit status 0 when every run kept the invariants. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simnet.h"

#define KITH_MIN(a, b) ((a) < (b) ? (a) : (b))

typedef struct scenario {
    const char *name;
    const char *what;
    int nodes;
    int (*run)(sim *s, uint64_t seed, char *err, size_t errlen);
} scenario;

static uint8_t g_room[KITH_ROOM_ID_LEN];

static int burst(sim *s, int from, int count, const char *tag)
{
    for (int k = 0; k < count; k++) {
        char text[64];
        snprintf(text, sizeof text, "%s-%d-%d", tag, from, k);
        if (sim_send(s, from, g_room, text) != 0)
            return -1;
    }
    return 0;
}

static int settle_and_check(sim *s, uint64_t ms, char *err, size_t errlen)
{
    sim_run(s, ms);
    return sim_check(s, g_room, err, errlen);
}

static int sc_basic(sim *s, uint64_t seed, char *err, size_t errlen)
{
    (void)seed;
    if (sim_make_room(s, sim_count(s), g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 5000);
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < sim_count(s); i++)
            burst(s, i, 4, "basic");
        sim_run(s, 200);
    }
    return settle_and_check(s, 30000, err, errlen);
}

static int sc_loss(sim *s, uint64_t seed, char *err, size_t errlen)
{
    (void)seed;
    if (sim_make_room(s, sim_count(s), g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 5000);
    /* 20% of chunks break their link: every connection is short-lived. */
    sim_set_reset(s, 200);
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < sim_count(s); i++)
            burst(s, i, 2, "loss");
        sim_run(s, 1000);
    }
    sim_run(s, 30000);
    sim_set_reset(s, 0);
    return settle_and_check(s, 120000, err, errlen);
}

static int sc_partition(sim *s, uint64_t seed, char *err, size_t errlen)
{
    (void)seed;
    int n = sim_count(s);
    if (sim_make_room(s, n, g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 5000);
    for (int i = 0; i < n; i++)
        sim_set_group(s, i, i < n / 2 ? 1 : 2);
    for (int i = 0; i < n; i++)
        burst(s, i, 10, "split");
    sim_run(s, 20000);
    for (int i = 0; i < n; i++)
        sim_set_group(s, i, 0);
    return settle_and_check(s, 120000, err, errlen);
}

static int sc_crash(sim *s, uint64_t seed, char *err, size_t errlen)
{
    int n = sim_count(s);
    if (sim_make_room(s, n, g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 5000);
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < n; i++)
            burst(s, i, 3, "crash");
        /* A quarter of the nodes crash mid-traffic, then come back. */
        for (int k = 0; k < n / 4; k++)
            sim_crash(s, (int)((seed + (uint64_t)(r * 7 + k * 3)) % (uint64_t)(n - 1)) + 1);
        sim_run(s, 3000);
        for (int i = 0; i < n; i++)
            if (!sim_up(s, i) && sim_restart(s, i))
                return snprintf(err, errlen, "node %d did not restart", i), 1;
        sim_run(s, 2000);
    }
    return settle_and_check(s, 120000, err, errlen);
}

static int sc_week(sim *s, uint64_t seed, char *err, size_t errlen)
{
    (void)seed;
    int n = sim_count(s);
    if (sim_make_room(s, n, g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 5000);
    sim_stop(s, n - 1);
    /* A simulated week of light chat while one member is away. */
    for (int day = 0; day < 7; day++) {
        for (int i = 0; i < n - 1; i++)
            burst(s, i, 20, "week");
        sim_run(s, 24ull * 3600 * 1000);
    }
    if (sim_restart(s, n - 1))
        return snprintf(err, errlen, "could not restart the absent member"), 1;
    return settle_and_check(s, 120000, err, errlen);
}

static int sc_big(sim *s, uint64_t seed, char *err, size_t errlen)
{
    (void)seed;
    if (sim_make_room(s, sim_count(s), g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 20000);
    for (int i = 0; i < sim_count(s); i += 4)
        burst(s, i, 2, "big");
    return settle_and_check(s, 60000, err, errlen);
}

/* A thousand members in one room: set-up in waves, then one message from
 * every tenth member, spread over ten seconds. */
static int sc_huge(sim *s, uint64_t seed, char *err, size_t errlen)
{
    int n = sim_count(s);
    if (sim_make_room(s, n, g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 10000);
    for (int r = 0; r < 10; r++) {
        for (int i = r; i < n; i += 100)
            burst(s, (int)(((uint64_t)i + seed) % (uint64_t)n), 1, "huge");
        sim_run(s, 1000);
    }
    return settle_and_check(s, 60000, err, errlen);
}

static uint64_t mix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Many small rooms over the same nodes: one room per three nodes, each of
 * 3 to 12 members drawn from shuffled passes over all nodes, so every node
 * is in two rooms or more. Everyone talks in all their rooms while links
 * break now and then; every room must converge on its own. */
#define ROOMS_MAX 400
static int sc_rooms(sim *s, uint64_t seed, char *err, size_t errlen)
{
    int n = sim_count(s), nrooms = n / 3 < 2 ? 2 : n / 3;
    if (nrooms > ROOMS_MAX)
        nrooms = ROOMS_MAX;
    uint64_t rng = seed ^ 0x726f6f6d73ull;
    int *pool = malloc((size_t)n * sizeof *pool);
    int *members = malloc((size_t)nrooms * 12 * sizeof *members);
    sim_room_plan *plan = calloc((size_t)nrooms, sizeof *plan);
    uint8_t(*ids)[KITH_ROOM_ID_LEN] = calloc((size_t)nrooms, sizeof *ids);
    int bad = 1, used = n, at = 0;
    if (!pool || !members || !plan || !ids) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int k = 0; k < nrooms; k++) {
        int size = 3 + (int)(mix(&rng) % 10);
        if (size > n)
            size = n;
        int *m = &members[at], count = 0;
        while (count < size) {
            if (used == n) { /* a new shuffled pass over every node */
                for (int i = 0; i < n; i++)
                    pool[i] = i;
                for (int i = n - 1; i > 0; i--) {
                    int j = (int)(mix(&rng) % (uint64_t)(i + 1)), t = pool[i];
                    pool[i] = pool[j];
                    pool[j] = t;
                }
                used = 0;
            }
            int cand = pool[used++];
            bool dup = false;
            for (int j = 0; j < count; j++)
                dup |= m[j] == cand;
            if (!dup)
                m[count++] = cand;
        }
        plan[k].members = m;
        plan[k].count = count;
        at += count;
    }
    if (sim_rooms(s, plan, nrooms, 4, ids)) {
        snprintf(err, errlen, "room set-up failed");
        goto done;
    }
    sim_run(s, 5000);
    sim_set_reset(s, 20); /* 2% of chunks break their link */
    for (int r = 0; r < 3; r++) {
        for (int k = 0; k < nrooms; k++) {
            for (int j = 0; j < plan[k].count; j++) {
                char text[64];
                snprintf(text, sizeof text, "rooms-%d-%d-%d", k, plan[k].members[j], r);
                if (sim_send(s, plan[k].members[j], ids[k], text) != 0) {
                    snprintf(err, errlen, "node %d could not send", plan[k].members[j]);
                    goto done;
                }
            }
        }
        sim_run(s, 2000);
    }
    sim_set_reset(s, 0);
    sim_run(s, 60000);
    bad = sim_check_all(s, err, errlen);
done:
    free(pool);
    free(members);
    free(plan);
    free(ids);
    return bad;
}

/* Every node's counters summed (live nodes only). */
static void stats_sum(sim *s, kith_node_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < sim_count(s); i++) {
        if (!sim_up(s, i))
            continue;
        kith_node_stats st;
        kith_node_stats_get(sim_node(s, i), &st);
        out->delivered += st.delivered;
        out->msgs_in += st.msgs_in;
        out->bytes_out += st.bytes_out;
        out->ihave_ids_out += st.ihave_ids_out;
        out->wire_msg_out += st.wire_msg_out;
        out->wire_ihave_out += st.wire_ihave_out;
        out->wire_want_out += st.wire_want_out;
        out->wire_prune_out += st.wire_prune_out;
        out->wire_sync_out += st.wire_sync_out;
        out->wire_op_out += st.wire_op_out;
        out->wire_addr_out += st.wire_addr_out;
    }
}

#define STEADY_PAYLOAD 200

/* Steady chat after a warm-up, 200-byte texts at 20/s from senders in turn
 * (as tools/bench's steady phase): reports redundant copies per delivery
 * (the gossip target is about 1) and wire bytes per delivery by frame kind
 * (the target is 3x the payload in all). */
static int sc_steady(sim *s, uint64_t seed, char *err, size_t errlen)
{
    int n = sim_count(s);
    if (sim_make_room(s, n, g_room))
        return snprintf(err, errlen, "room set-up failed"), 1;
    sim_run(s, 5000);
    for (int r = 0; r < 100; r++) {
        burst(s, (int)((seed + (uint64_t)r) % (uint64_t)n), 1, "warm");
        sim_run(s, 100);
    }
    sim_run(s, 5000);
    kith_node_stats a, b;
    stats_sum(s, &a);
    for (int r = 0; r < 400; r++) {
        char text[STEADY_PAYLOAD + 1];
        int from = (int)((seed * 7 + (uint64_t)r * 3) % (uint64_t)n);
        int k = snprintf(text, sizeof text, "steady-%d-%d ", from, r);
        memset(text + k, 'x', STEADY_PAYLOAD - (size_t)k);
        text[STEADY_PAYLOAD] = 0;
        if (sim_send(s, from, g_room, text) != 0)
            return snprintf(err, errlen, "send failed"), 1;
        sim_run(s, 50);
    }
    sim_run(s, 1000);
    stats_sum(s, &b);
    int bad = settle_and_check(s, 30000, err, errlen);
    uint64_t dl = b.delivered - a.delivered;
    double d = dl ? (double)dl : 1.0;
    printf("  steady state: %.3f copies per delivery (%llu MSG frames for %llu deliveries)\n",
        (double)(b.msgs_in - a.msgs_in) / d, (unsigned long long)(b.msgs_in - a.msgs_in),
        (unsigned long long)dl);
    uint64_t known = (b.wire_msg_out - a.wire_msg_out) + (b.wire_ihave_out - a.wire_ihave_out)
        + (b.wire_want_out - a.wire_want_out) + (b.wire_prune_out - a.wire_prune_out)
        + (b.wire_sync_out - a.wire_sync_out) + (b.wire_op_out - a.wire_op_out)
        + (b.wire_addr_out - a.wire_addr_out);
    printf("  wire: %.3fx payload per delivery; bytes per delivery: msg %.1f ihave %.1f"
           " (%.2f ids) want %.1f prune %.1f sync %.1f op %.1f addr %.1f other %.1f\n",
        (double)(b.bytes_out - a.bytes_out) / d / STEADY_PAYLOAD,
        (double)(b.wire_msg_out - a.wire_msg_out) / d,
        (double)(b.wire_ihave_out - a.wire_ihave_out) / d,
        (double)(b.ihave_ids_out - a.ihave_ids_out) / d,
        (double)(b.wire_want_out - a.wire_want_out) / d,
        (double)(b.wire_prune_out - a.wire_prune_out) / d,
        (double)(b.wire_sync_out - a.wire_sync_out) / d,
        (double)(b.wire_op_out - a.wire_op_out) / d,
        (double)(b.wire_addr_out - a.wire_addr_out) / d,
        (double)(b.bytes_out - a.bytes_out - known) / d);
    return bad;
}

static const scenario scenarios[] = {
    { "steady", "16 members chat steadily; measures copies and wire bytes per delivery", 16,
        sc_steady },
    { "basic", "8 members chat; latency 5-50 ms", 8, sc_basic },
    { "loss", "12 members; 20% of chunks break their link", 12, sc_loss },
    { "partition", "16 members split in two, both sides talk, then heal", 16, sc_partition },
    { "crash", "16 members; a quarter crash mid-traffic and restart", 16, sc_crash },
    { "week", "6 members; one is away for a simulated week", 6, sc_week },
    { "big", "a room of 256 members", 256, sc_big },
    { "huge", "a room of 1000 members", 1000, sc_huge },
    { "rooms", "300 nodes in 100 rooms of 3-12 members, each node in several", 300, sc_rooms },
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: sim --scenario NAME [--seed N | --seeds A-B] [--nodes N] [--verbose]\n"
        "scenarios:\n");
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        fprintf(f, "  %-10s %s\n", scenarios[i].name, scenarios[i].what);
}

int main(int argc, char **argv)
{
    static const struct option opts[]
        = { { "scenario", required_argument, 0, 's' }, { "seed", required_argument, 0, 'S' },
              { "seeds", required_argument, 0, 'R' }, { "nodes", required_argument, 0, 'n' },
              { "verbose", no_argument, 0, 'v' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    const char *name = NULL;
    unsigned long long first = 1, last = 1;
    int nodes = 0, verbose = 0, c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            name = optarg;
            break;
        case 'S':
            first = last = strtoull(optarg, &end, 10);
            if (*end)
                return usage(stderr), 2;
            break;
        case 'R':
            first = strtoull(optarg, &end, 10);
            if (*end != '-')
                return usage(stderr), 2;
            last = strtoull(end + 1, &end, 10);
            if (*end || last < first)
                return usage(stderr), 2;
            break;
        case 'n':
            nodes = (int)strtol(optarg, &end, 10);
            if (*end || nodes < 2 || nodes > 1024)
                return usage(stderr), 2;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const scenario *sc = NULL;
    for (size_t i = 0; name && i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (strcmp(scenarios[i].name, name) == 0)
            sc = &scenarios[i];
    }
    if (!sc)
        return usage(stderr), 2;
    /* KITH_SIM_QUICK (the sanitizer pass of tools/test): at most 3 seeds
     * and 64 nodes, since instrumented runs are several times slower. */
    const char *quick = getenv("KITH_SIM_QUICK");
    int node_cap = 1024;
    if (quick && quick[0] && strcmp(quick, "0") != 0) {
        if (last - first > 2)
            last = first + 2;
        node_cap = 64;
        printf("KITH_SIM_QUICK: seeds %llu-%llu, at most %d nodes\n", first, last, node_cap);
    }
    int failed = 0, passed = 0;
    for (unsigned long long seed = first; seed <= last; seed++) {
        sim_cfg cfg = { .seed = seed,
            .nodes = KITH_MIN(nodes ? nodes : sc->nodes, node_cap),
            .lat_min_ms = 5,
            .lat_max_ms = 50,
            .quiet = !verbose };
        sim *s = sim_new(&cfg);
        if (!s) {
            fprintf(stderr, "sim: could not set up %d nodes\n", cfg.nodes);
            return 1;
        }
        char err[256];
        int bad = sc->run(s, seed, err, sizeof err);
        sim_totals t;
        sim_totals_get(s, &t);
        double copies = t.delivered ? (double)t.msgs_in / (double)t.delivered : 0;
        char digest[17];
        sim_digest(s, digest);
        printf("%s seed=%llu nodes=%d sent=%llu delivered=%llu copies/delivery=%.2f "
               "virtual=%llus digest=%s %s\n",
            sc->name, seed, cfg.nodes, (unsigned long long)t.sent, (unsigned long long)t.delivered,
            copies, (unsigned long long)(sim_now(s) / 1000), digest, bad ? "FAIL" : "ok");
        if (bad) {
            char extra[32] = "";
            if (cfg.nodes != sc->nodes) /* --nodes, or capped by KITH_SIM_QUICK */
                snprintf(extra, sizeof extra, " --nodes %d", cfg.nodes);
            printf("  %d violation(s); first: %s\n  reproduce: tools/sim/run --scenario %s "
                   "--seed %llu%s\n",
                bad, err, sc->name, seed, extra);
            failed++;
        } else {
            passed++;
        }
        sim_free(s);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
