/* Unit tests for the libuv driver: address parsing, listen errors, and two
 * real nodes (memory stores) talking over loopback TCP, each under its own
 * driver in its own thread: create, invite, join, send, receive, stop. */
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "testenv.h"
#include "uvnode/uvnode.h"

static void test_split_addr(void **state)
{
    (void)state;
    char host[64];
    uint16_t port;
    assert_int_equal(kith_uvnode_split_addr("127.0.0.1:7415", host, sizeof host, &port, false), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7415);
    assert_int_equal(kith_uvnode_split_addr("[::1]:65535", host, sizeof host, &port, false), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);
    assert_int_equal(kith_uvnode_split_addr("example.org:1", host, sizeof host, &port, false), 0);
    assert_string_equal(host, "example.org");
    assert_int_equal(kith_uvnode_split_addr("h:0", host, sizeof host, &port, true), 0);
    assert_int_equal(port, 0);
    const char *bad[] = { "", ":", "h:", ":1", "h:0", "h:65536", "h:99999999", "h:-1", "h:1x",
        "h: 1", "::1:7415", "[::1]7415", "[::1:7415", "[]:1", "a b:1", "h\n:1", "h:+1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            kith_uvnode_split_addr(bad[i], host, sizeof host, &port, false), KITH_EINVAL);
    /* The host must fit the caller's buffer. */
    assert_int_equal(kith_uvnode_split_addr("abcdefgh:1", host, 8, &port, false), KITH_EINVAL);
    assert_int_equal(kith_uvnode_split_addr(NULL, host, sizeof host, &port, false), KITH_EINVAL);
    char huge[1000];
    memset(huge, 'a', sizeof huge);
    huge[sizeof huge - 1] = '\0';
    huge[sizeof huge - 3] = ':';
    assert_int_equal(kith_uvnode_split_addr(huge, host, sizeof host, &port, false), KITH_EINVAL);
}

static void test_listen_errors(void **state)
{
    (void)state;
    kith_env env;
    kith_env_init_real(&env);
    env.log = NULL;
    kith_uvnode *a, *b;
    char err[256], want[300];
    assert_int_equal(kith_uvnode_new(&env, NULL, &a), 0);
    assert_int_equal(kith_uvnode_new(&env, NULL, &b), 0);
    assert_string_equal(kith_uvnode_listen_addr(a), "");
    assert_int_equal(kith_uvnode_listen(a, "127.0.0.1:0", err, sizeof err), 0);
    const char *bound = kith_uvnode_listen_addr(a);
    assert_memory_equal(bound, "127.0.0.1:", 10);
    assert_true(strlen(bound) > 10);
    assert_int_equal(kith_uvnode_listen(b, bound, err, sizeof err), KITH_EIO);
    snprintf(want, sizeof want, "cannot listen on %s: address already in use", bound);
    assert_string_equal(err, want);
    assert_int_equal(kith_uvnode_listen(b, "localhost:7415", err, sizeof err), KITH_EINVAL);
    assert_non_null(strstr(err, "cannot listen on localhost:7415"));
    assert_int_equal(kith_uvnode_listen(b, "nonsense", err, sizeof err), KITH_EINVAL);
    kith_uvnode_free(a);
    kith_uvnode_free(b);
}

/* ---- two nodes over TCP ---- */

typedef struct side {
    kith_env env;
    kith_store *store;
    kith_identity id;
    kith_node *node;
    kith_uvnode *uv;
    uv_timer_t deadline;
    uint8_t room[KITH_ROOM_ID_LEN];
    bool is_a;
    /* what the hooks saw */
    int joins_of_bob;
    int rooms;
    int own_msgs;
    int got_msgs;
    int errors;
    int send_rc;
    bool bad_text;
    bool ready;
    bool timed_out;
    char last_error[128];
    char last_text[64];
    char last_nick[32];
    /* LAN: B polls for A's room in beacons, then knocks */
    uv_timer_t poll;
    bool poll_on;
    bool knocked;
    int knock_rc;
    char heard_name[80];
    char heard_addr[80];
    /* burst: B sends this many messages "m0000".. at once, A waits for
     * them all and checks their order; A's signatures are checked by a
     * kith_verifier (worker threads), counted here. */
    int burst;
    int order_errors;
    kith_verifier *ver;
    void (*ver_fn)(void *ctx, kith_sig_job *jobs, size_t n);
    void *ver_ctx;
    size_t ver_batches, ver_jobs, ver_biggest;
    /* Flow control (test_hold_resumes): B sends two messages at once (burst
     * 2) and holds an input when it sees the second, whose event comes after the
     * first one's frames were queued; it stops when the input is resumed. */
    bool hold_test;
    kith_uvnode_pause pause;
    int held, resumed;
    size_t backlog_at_hold, backlog_at_resume;
} side;

static void on_resume(kith_uvnode_pause *p)
{
    side *s = (side *)((char *)p - offsetof(side, pause));
    s->resumed++;
    s->backlog_at_resume = kith_uvnode_backlog(s->uv);
    kith_uvnode_stop(s->uv);
}

static void hold_now(side *s)
{
    s->backlog_at_hold = kith_uvnode_backlog(s->uv);
    s->pause.resume = on_resume;
    if (kith_uvnode_hold(s->uv, &s->pause))
        s->held++;
    else
        kith_uvnode_stop(s->uv);
}

static void on_deadline(uv_timer_t *t)
{
    side *s = t->data;
    s->timed_out = true;
    kith_uvnode_stop(s->uv);
}

static void hook_event(void *ud, const kith_event *ev)
{
    side *s = ud;
    /* The driver promises a private, NUL-terminated copy. (No cmocka
     * asserts here: this runs on the side's thread.) */
    if (ev->text && ev->text[ev->text_len] != '\0')
        s->bad_text = true;
    switch (ev->type) {
    case KITH_EV_JOIN:
        if (ev->nick && strcmp(ev->nick, "bob") == 0)
            s->joins_of_bob++;
        break;
    case KITH_EV_ROOM:
        s->rooms++;
        if (!s->is_a) {
            /* Joined: say something. Calling the node from the hook is
             * allowed. */
            memcpy(s->room, ev->room_id, KITH_ROOM_ID_LEN);
            uint64_t seq;
            if (!s->burst)
                s->send_rc = kith_node_send(s->node, s->room, 1, "hello from b", 12, &seq);
            for (int k = 0; k < s->burst && !s->send_rc; k++) {
                char text[16];
                snprintf(text, sizeof text, "m%04d", k);
                s->send_rc = kith_node_send(s->node, s->room, 1, text, strlen(text), &seq);
            }
            kith_uvnode_kick(s->uv);
        }
        break;
    case KITH_EV_MESSAGE:
        if (ev->self) {
            s->own_msgs++;
            if (s->hold_test) {
                if (s->own_msgs == 2)
                    hold_now(s);
            } else if (!s->is_a && !s->burst)
                /* (A burst's sender waits for A to leave: stopping cancels
                 * writes the kernel has not taken yet.) */
                kith_uvnode_stop(s->uv); /* deferred until the writes went out */
        } else {
            char want[16];
            snprintf(want, sizeof want, "m%04d", s->got_msgs);
            if (s->burst && (ev->text_len != strlen(want) || memcmp(ev->text, want, ev->text_len)))
                s->order_errors++;
            s->got_msgs++;
            snprintf(s->last_text, sizeof s->last_text, "%.*s", (int)ev->text_len, ev->text);
            snprintf(s->last_nick, sizeof s->last_nick, "%s", ev->nick ? ev->nick : "");
            if (s->is_a && s->got_msgs >= (s->burst ? s->burst : 1))
                kith_uvnode_stop(s->uv);
        }
        break;
    case KITH_EV_PEER_DOWN:
        if (!s->is_a && s->burst && !s->hold_test)
            kith_uvnode_stop(s->uv);
        break;
    case KITH_EV_ERROR:
        s->errors++;
        snprintf(s->last_error, sizeof s->last_error, "%.*s", (int)ev->text_len, ev->text);
        if (!s->is_a)
            kith_uvnode_stop(s->uv);
        break;
    default:
        break;
    }
}

static void hook_ready(void *ud)
{
    side *s = ud;
    s->ready = true;
}

static void hook_shutdown(void *ud)
{
    side *s = ud;
    uv_close((uv_handle_t *)&s->deadline, NULL);
    if (s->poll_on)
        uv_close((uv_handle_t *)&s->poll, NULL);
}

static void *run_side(void *arg)
{
    side *s = arg;
    kith_uvnode_run(s->uv);
    return NULL;
}

/* verify_many of A: the verifier's, counted. Runs on A's loop thread. */
static void counted_verify(void *ctx, kith_sig_job *jobs, size_t n)
{
    side *s = ctx;
    s->ver_batches++;
    s->ver_jobs += n;
    if (n > s->ver_biggest)
        s->ver_biggest = n;
    s->ver_fn(s->ver_ctx, jobs, n);
}

/* host: what the node announces with the bound port (A announces
 * "localhost:PORT" so that B's dial goes through getaddrinfo). lan_port:
 * LAN discovery on loopback on that UDP port, 0 for none. */
static void side_init_lan(side *s, const char *nick, bool is_a, const char *host, uint16_t lan_port)
{
    int burst = s->burst; /* the one setting made before init */
    memset(s, 0, sizeof *s);
    s->burst = burst;
    s->is_a = is_a;
    kith_env_init_real(&s->env);
    s->env.log_level = KITH_LOG_ERROR;
    assert_int_equal(kith_store_open_mem(&s->env, &s->store), 0);
    assert_int_equal(kith_identity_generate(&s->env, &s->id), 0);
    assert_int_equal(kith_uvnode_new(&s->env, NULL, &s->uv), 0);
    char err[256];
    assert_int_equal(kith_uvnode_listen(s->uv, "127.0.0.1:0", err, sizeof err), 0);
    const char *bound = kith_uvnode_listen_addr(s->uv);
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%lu", host, strtoul(strrchr(bound, ':') + 1, NULL, 10));
    if (lan_port) {
        kith_uvnode_lan_opts lo = { .port = lan_port, .loopback = true };
        assert_int_equal(kith_uvnode_lan_start_opts(s->uv, &lo, err, sizeof err), 0);
    }
    kith_node_config cfg = { .addr = addr, .nick = nick, .lan = lan_port != 0 };
    if (s->burst && is_a) {
        /* Two worker threads even on a one-CPU machine. */
        assert_int_equal(kith_verifier_new(2, &s->ver), 0);
        assert_int_equal(kith_verifier_threads(s->ver), 2);
        kith_verifier_install(s->ver, &s->env);
        assert_non_null(s->env.verify_many);
        s->ver_fn = s->env.verify_many;
        s->ver_ctx = s->env.verify_ctx;
        s->env.verify_many = counted_verify;
        s->env.verify_ctx = s;
    }
    assert_int_equal(kith_node_new(&s->env, s->store, &s->id, &cfg, &s->node), 0);
    kith_uvnode_set_node(s->uv, s->node);
    kith_uvnode_hooks hooks = { s, hook_event, hook_ready, hook_shutdown };
    kith_uvnode_set_hooks(s->uv, &hooks);
    uv_timer_init(kith_uvnode_loop(s->uv), &s->deadline);
    s->deadline.data = s;
    /* Only a bound for a hung test: generous, since a loaded machine running
     * the sanitizer build can take seconds for a join. */
    uv_timer_start(&s->deadline, on_deadline, 30000, 0);
}

static void side_init(side *s, const char *nick, bool is_a, const char *host)
{
    side_init_lan(s, nick, is_a, host, 0);
}

static void side_free(side *s)
{
    kith_uvnode_free(s->uv);
    kith_node_free(s->node);
    kith_verifier_free(s->ver);
    kith_store_close(s->store);
    kith_identity_wipe(&s->id);
}

static void test_two_nodes(void **state)
{
    (void)state;
    side *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    side_init(a, "alice", true, "localhost");
    side_init(b, "bob", false, "127.0.0.1");
    char code[512];
    assert_int_equal(kith_node_create_room(a->node, "testroom", a->room), 0);
    assert_int_equal(kith_node_invite(a->node, a->room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(b->node, code), 0);

    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_side, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_side, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    assert_true(a->ready);
    assert_true(b->ready);
    assert_false(a->timed_out);
    assert_false(b->timed_out);
    assert_false(a->bad_text);
    assert_false(b->bad_text);
    assert_int_equal(a->errors, 0);
    assert_int_equal(b->errors, 0);
    assert_int_equal(b->send_rc, 0);
    assert_int_equal(b->rooms, 1);
    assert_int_equal(b->own_msgs, 1);
    assert_true(a->joins_of_bob >= 1);
    assert_int_equal(a->got_msgs, 1);
    assert_string_equal(a->last_text, "hello from b");
    assert_string_equal(a->last_nick, "bob");
    side_free(a);
    side_free(b);
    free(a);
    free(b);
}

/* The verifier alone, on worker threads: every result is the one a check
 * on this thread gives (bad signatures found wherever they are in the
 * batch), for small batches (checked by the caller alone) and big ones,
 * many times over (threads woken again and again). */
static void test_verifier_threads(void **state)
{
    (void)state;
    enum { N = 96 };
    kith_env env;
    kith_env_init_real(&env);
    kith_verifier *v = NULL;
    assert_int_equal(kith_verifier_new(3, &v), 0);
    assert_int_equal(kith_verifier_threads(v), 3);
    kith_verifier_install(v, &env);
    assert_non_null(env.verify_many);
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    static uint8_t msgs[N][40], sigs[N][64];
    bool good[N];
    for (int i = 0; i < N; i++) {
        snprintf((char *)msgs[i], sizeof msgs[i], "message number %d", i);
        crypto_sign_detached(sigs[i], NULL, msgs[i], sizeof msgs[i], sk);
        good[i] = i % 7 != 3;
        if (!good[i])
            sigs[i][i % 64] ^= 0x20;
    }
    kith_sig_job jobs[N];
    for (int round = 0; round < 40; round++) {
        size_t n = round < 6 ? (size_t)round : N - (size_t)round;
        for (size_t i = 0; i < n; i++)
            jobs[i] = (kith_sig_job) { pk, msgs[i], sizeof msgs[i], sigs[i], -1 };
        env.verify_many(env.verify_ctx, jobs, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(jobs[i].ok, good[i] ? 1 : 0);
    }
    kith_verifier_free(v);
    /* Zero threads (one CPU): nothing installed, the node checks alone. */
    kith_env e2;
    kith_env_init_real(&e2);
    assert_int_equal(kith_verifier_new(0, &v), 0);
    kith_verifier_install(v, &e2);
    assert_true(kith_verifier_threads(v) > 0 || e2.verify_many == NULL);
    kith_verifier_free(v);
    kith_verifier_free(NULL);
}

/* B sends 300 messages at once over real TCP; A checks their signatures
 * in batches on its verifier's threads and shows all of them, in order. */
static void test_burst_verified_on_threads(void **state)
{
    (void)state;
    enum { BURST = 300 };
    side *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    a->burst = b->burst = BURST;
    side_init(a, "alice", true, "127.0.0.1");
    side_init(b, "bob", false, "127.0.0.1");
    char code[512];
    assert_int_equal(kith_node_create_room(a->node, "burst", a->room), 0);
    assert_int_equal(kith_node_invite(a->node, a->room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(b->node, code), 0);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_side, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_side, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_false(a->timed_out);
    assert_false(b->timed_out);
    assert_int_equal(b->send_rc, 0);
    assert_int_equal(a->errors, 0);
    assert_int_equal(a->got_msgs, BURST);
    assert_int_equal(a->order_errors, 0);
    /* Every signature of the burst went through the verifier, most of them
     * in batches (a read carries many frames). */
    assert_true(a->ver_jobs >= BURST);
    assert_true(a->ver_biggest > 4);
    side_free(a);
    side_free(b);
    free(a);
    free(b);
}

/* Flow control for local input: with a 1-byte high mark, an input held while
 * B's message waits to be written is resumed once it is written (backlog
 * at the low mark), and only once. */
static void test_hold_resumes(void **state)
{
    (void)state;
    side *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    side_init(a, "alice", true, "127.0.0.1");
    side_init(b, "bob", false, "127.0.0.1");
    b->hold_test = true;
    b->burst = 2; /* two messages at once */
    kith_uvnode_set_marks(b->uv, 1, 1, 0);
    char code[512];
    assert_int_equal(kith_node_create_room(a->node, "holdroom", a->room), 0);
    assert_int_equal(kith_node_invite(a->node, a->room, 0, code, sizeof code), 0);
    assert_int_equal(kith_node_join(b->node, code), 0);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_side, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_side, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_false(a->timed_out);
    assert_false(b->timed_out);
    assert_true(a->got_msgs >= 1); /* A stops at the first */
    assert_int_equal(b->send_rc, 0);
    assert_true(b->backlog_at_hold > 1);
    assert_int_equal(b->held, 1);
    assert_int_equal(b->resumed, 1);
    assert_true(b->backlog_at_resume <= 1);
    side_free(a);
    side_free(b);
    free(a);
    free(b);
}

/* Stopping before the loop ever ran closes everything cleanly (no leaked
 * handles under ASan, run returns at once). */
static void test_stop_before_run(void **state)
{
    (void)state;
    side *s = calloc(1, sizeof *s);
    assert_non_null(s);
    side_init(s, "carol", true, "127.0.0.1");
    /* Stop before the loop runs: run drains, then returns promptly. */
    kith_uvnode_stop(s->uv);
    assert_int_equal(kith_uvnode_run(s->uv), 0);
    side_free(s);
    free(s);
}

/* An invite whose inviter is gone: the dial fails, the node hears the
 * connection closed and reports the failed join. */
static void test_join_unreachable(void **state)
{
    (void)state;
    side *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    side_init(a, "alice", true, "127.0.0.1");
    side_init(b, "bob", false, "127.0.0.1");
    char code[512];
    assert_int_equal(kith_node_create_room(a->node, "gone", a->room), 0);
    assert_int_equal(kith_node_invite(a->node, a->room, 0, code, sizeof code), 0);
    side_free(a); /* closes A's listener: nobody answers at that port now */
    assert_int_equal(kith_node_join(b->node, code), 0);
    assert_int_equal(kith_uvnode_run(b->uv), 0);
    assert_false(b->timed_out);
    assert_int_equal(b->rooms, 0);
    assert_true(b->errors >= 1);
    assert_non_null(strstr(b->last_error, "join failed"));
    side_free(b);
    free(a);
    free(b);
}

/* B's loop: once a beacon of A named the room, knock on it (once). */
static void on_poll(uv_timer_t *t)
{
    side *s = t->data;
    if (s->knocked || kith_node_lan_count(s->node) == 0)
        return;
    kith_lan_room lr;
    if (kith_node_lan_at(s->node, 0, &lr) != 0)
        return;
    snprintf(s->heard_name, sizeof s->heard_name, "%s", lr.name);
    snprintf(s->heard_addr, sizeof s->heard_addr, "%s", lr.addr);
    s->knocked = true;
    s->knock_rc = kith_node_knock(s->node, lr.name);
    kith_uvnode_kick(s->uv);
}

/* The LAN path through the real driver, on loopback: A's beacon leaves by
 * UDP multicast, B's driver hears it and hands it to B's node (which lists
 * the room A opened, at A's address), B knocks over TCP, A's node lets it
 * in, and they chat. */
static void test_lan_beacon_loopback(void **state)
{
    (void)state;
    uint16_t port = (uint16_t)(30000 + randombytes_uniform(30000));
    side *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    side_init_lan(a, "alice", true, "127.0.0.1", port);
    side_init_lan(b, "bob", false, "127.0.0.1", port);
    /* Loopback counts here (tests only), so both hear and send on it. */
    assert_true(kith_uvnode_lan_interfaces(a->uv, false, false) >= 1);
    assert_true(kith_uvnode_lan_interfaces(a->uv, false, true) >= 1);
    /* Looking again changes nothing when the interfaces didn't. */
    size_t heard = kith_uvnode_lan_interfaces(a->uv, false, false);
    size_t sent = kith_uvnode_lan_interfaces(a->uv, false, true);
    kith_uvnode_lan_rescan(a->uv);
    assert_int_equal(kith_uvnode_lan_interfaces(a->uv, false, false), heard);
    assert_int_equal(kith_uvnode_lan_interfaces(a->uv, false, true), sent);
    char err[128];
    kith_uvnode_lan_opts lo = { .port = port, .loopback = true };
    assert_int_equal(kith_uvnode_lan_start_opts(a->uv, &lo, err, sizeof err), KITH_ESTATE);
    assert_int_equal(kith_node_create_room(a->node, "lanroom", a->room), 0);
    assert_int_equal(kith_node_lan_set(a->node, a->room, KITH_LAN_OPEN), 0);
    uv_timer_init(kith_uvnode_loop(b->uv), &b->poll);
    b->poll.data = b;
    b->poll_on = true;
    uv_timer_start(&b->poll, on_poll, 50, 50);

    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_side, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_side, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    assert_false(a->timed_out);
    assert_false(b->timed_out);
    assert_true(b->knocked);
    assert_int_equal(b->knock_rc, 0);
    assert_string_equal(b->heard_name, "lanroom");
    assert_string_equal(b->heard_addr, kith_uvnode_listen_addr(a->uv));
    assert_int_equal(b->rooms, 1);
    assert_int_equal(a->got_msgs, 1);
    assert_string_equal(a->last_text, "hello from b");
    assert_int_equal(a->errors, 0);
    assert_int_equal(b->errors, 0);
    side_free(a);
    side_free(b);
    free(a);
    free(b);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    /* As kith's main does: a write to a peer that just closed must be an
     * error return, not a signal that kills the process. */
    signal(SIGPIPE, SIG_IGN);
    /* As kith itself does (main.c): a write to a link the other side just
     * closed must be an error, not a signal that kills the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_verifier_threads),
        cmocka_unit_test(test_burst_verified_on_threads),
        cmocka_unit_test(test_hold_resumes),
        cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_join_unreachable),
        cmocka_unit_test(test_lan_beacon_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
