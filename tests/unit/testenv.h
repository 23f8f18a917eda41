/* testenv: a deterministic kith_env for unit tests (seeded RNG, settable
 * clocks, counting allocator that can be told to fail), cmocka helpers, and
 * tworld, the in-process network of nodes the node tests share. */
#ifndef KITH_TESTENV_H
#define KITH_TESTENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/crypto.h"
#include "kith/env.h"
#include "kith/node.h"
#include "node/beacon.h"
#include "store/store.h"
#include "util/util.h"

typedef struct test_env {
    kith_env env;
    uint64_t mono;
    uint64_t wall;
    uint64_t rng_state;
    size_t allocs; /* live allocations */
    long fail_after; /* fail the allocation after this many more; -1 never */
} test_env;

/* Seeded env: wall clock 2026-01-01, mono 1000 ms, RNG from seed. */
void test_env_init(test_env *t, uint64_t seed);
/* Path of the shared directory (../shared beside the repo). */
const char *test_shared_dir(void);
/* mkdtemp under /tmp; returns a static-lifetime string the caller frees with free(). */
char *test_tmpdir(void);
/* rm -rf of a test directory (only under /tmp). */
void test_rmrf(const char *dir);

/* ---- tworld: nodes in one process (test_node, test_membership_node,
 * test_lan). Every WRITE is delivered to the peer's conn_data, CONNECT looks
 * the address up among the world's nodes, BEACON is handed to every node
 * with the sender's "IP", time is virtual (tw_tick). ---- */

#define TW_MAXN 8
#define TW_MAXLINKS 64
#define TW_MAXEV 8192
#define TW_MAXBEACONS 256

typedef struct tev {
    int type;
    bool self;
    bool catchup;
    uint32_t msg_type;
    char nick[40];
    char text[200];
} tev;

typedef struct tnode {
    kith_node *node;
    kith_store *store;
    kith_identity id;
    char addr[32];
    char host[16];
    char nick[16];
    tev *ev; /* the events seen, TW_MAXEV at most */
    size_t nev;
    size_t connects; /* CONNECT actions seen */
    bool up;
} tnode;

typedef struct tlink {
    int a, b;
    uint64_t ca, cb;
    bool open;
    kith_buf ab, ba; /* bytes in flight */
    size_t sent_ab, sent_ba; /* bytes each side wrote */
} tlink;

typedef struct tbeacon {
    int from;
    uint8_t data[KITH_BEACON_MAX];
    size_t len;
} tbeacon;

typedef struct tworld_opts {
    uint64_t seed; /* of the env's RNG; 0: 42 */
    bool lan; /* LAN on, addresses "10.0.0.N:7415" (else "nodeI:1") */
    uint64_t rekey_every_ms; /* node option; 0: the default */
} tworld_opts;

typedef struct tworld {
    test_env t;
    tworld_opts opts;
    tnode n[TW_MAXN];
    int count;
    tlink links[TW_MAXLINKS];
    int nlinks;
    bool drop_writes_from[TW_MAXN]; /* a peer that stops reading */
    bool drop_writes_to[TW_MAXN]; /* a node that hears nothing (keeps its old state) */
    bool block[TW_MAXN][TW_MAXN]; /* connects from i to k fail */
    tbeacon *pending; /* beacons to hand out */
    size_t npending;
    tbeacon *log; /* every beacon sent */
    size_t nlog;
    bool quiet; /* beacons are logged but nobody hears them */
} tworld;

/* count nodes, each with an identity, an in-memory store and a running node
 * (opts NULL: the defaults). */
void tw_init(tworld *w, int count, const tworld_opts *opts);
/* Stop every node and free everything; the world can be initialised again. */
void tw_free(tworld *w);
/* Start node i again (same identity and store, its addr as now). */
void tw_start(tworld *w, int i);
/* Close its links (the peers hear it) and free the node. */
void tw_stop(tworld *w, int i);
/* Execute one node's actions; how many there were. */
int tw_drain(tworld *w, int i);
/* Flush, drain and deliver until nothing moves (bounded). */
void tw_settle(tworld *w);
/* seconds of virtual time, a timer call and a settle each. */
void tw_tick(tworld *w, int seconds);
tlink *tw_find_link(tworld *w, int node, uint64_t conn, int *side);
void tw_close_link(tworld *w, tlink *l, int closer);
/* Keep an event in the node's list (tw_drain does it for every event). */
void tw_record(tnode *tn, const kith_event *ev);
/* Events of a type seen by a node, with exactly this text (NULL: any). */
size_t tw_count(const tnode *tn, int type, const char *text);
/* ... whose text contains sub (NULL: any). */
size_t tw_count_sub(const tnode *tn, int type, const char *sub);
/* A text message from node i (asserts it was accepted). */
void tw_send(tworld *w, int i, const uint8_t room[32], const char *text);

#endif
