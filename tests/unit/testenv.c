/* testenv: deterministic kith_env for unit tests. */
#define _DEFAULT_SOURCE
#include "testenv.h"

#include "msg/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t t_mono(void *ctx)
{
    return ((test_env *)ctx)->mono;
}

static uint64_t t_wall(void *ctx)
{
    return ((test_env *)ctx)->wall;
}

/* splitmix64: deterministic, good enough for tests (never for keys in use). */
static void t_random(void *ctx, void *buf, size_t len)
{
    test_env *t = ctx;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint64_t z = (t->rng_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        p[i] = (uint8_t)(z ^ (z >> 31));
    }
}

static void *t_realloc(void *ctx, void *ptr, size_t size)
{
    test_env *t = ctx;
    if (t->fail_after == 0)
        return NULL;
    if (t->fail_after > 0)
        t->fail_after--;
    void *p = realloc(ptr, size);
    if (p && !ptr)
        t->allocs++;
    return p;
}

static void t_free(void *ctx, void *ptr)
{
    test_env *t = ctx;
    if (ptr)
        t->allocs--;
    free(ptr);
}

static void t_log(void *ctx, int level, const char *line)
{
    (void)ctx;
    fprintf(stderr, "[log %d] %s\n", level, line);
}

void test_env_init(test_env *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->mono = 1000;
    t->wall = 1767225600000ull;
    t->rng_state = seed;
    t->fail_after = -1;
    t->env.ctx = t;
    t->env.mono_ms = t_mono;
    t->env.wall_ms = t_wall;
    t->env.random = t_random;
    t->env.realloc = t_realloc;
    t->env.free = t_free;
    t->env.log = t_log;
    t->env.log_level = getenv("KITH_TEST_LOG") ? KITH_LOG_DEBUG : KITH_LOG_ERROR;
}

const char *test_shared_dir(void)
{
    const char *e = getenv("KITH_SHARED_DIR");
    return e ? e : KITH_SHARED_DIR;
}

char *test_tmpdir(void)
{
    char tmpl[] = "/tmp/kith-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d)
        return NULL;
    chmod(d, 0700);
    return strdup(d);
}

void test_rmrf(const char *dir)
{
    if (!dir || strncmp(dir, "/tmp/kith-test-", 15) != 0)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "rm -rf %s failed\n", dir);
}

/* ---- tworld ---- */

void tw_start(tworld *w, int i)
{
    tnode *tn = &w->n[i];
    kith_node_config cfg = { .addr = tn->addr,
        .nick = tn->nick,
        .invite_ttl_ms = 0,
        .lan = w->opts.lan,
        .rekey_every_ms = w->opts.rekey_every_ms };
    assert_int_equal(kith_node_new(&w->t.env, tn->store, &tn->id, &cfg, &tn->node), 0);
    tn->up = true;
}

void tw_init(tworld *w, int count, const tworld_opts *opts)
{
    assert_true(count <= TW_MAXN);
    memset(w, 0, sizeof *w);
    if (opts)
        w->opts = *opts;
    test_env_init(&w->t, w->opts.seed ? w->opts.seed : 42);
    w->count = count;
    w->pending = calloc(TW_MAXBEACONS, sizeof *w->pending);
    w->log = calloc(TW_MAXBEACONS, sizeof *w->log);
    assert_non_null(w->pending);
    assert_non_null(w->log);
    for (int i = 0; i < count; i++) {
        tnode *tn = &w->n[i];
        if (w->opts.lan) {
            snprintf(tn->host, sizeof tn->host, "10.0.0.%d", (i + 1) % 10);
            snprintf(tn->addr, sizeof tn->addr, "10.0.0.%d:7415", (i + 1) % 10);
        } else {
            snprintf(tn->addr, sizeof tn->addr, "node%d:1", i);
        }
        snprintf(tn->nick, sizeof tn->nick, "%c", 'a' + i);
        assert_int_equal(kith_identity_generate(&w->t.env, &tn->id), 0);
        assert_int_equal(kith_store_open_mem(&w->t.env, &tn->store), 0);
        tn->ev = calloc(TW_MAXEV, sizeof *tn->ev);
        assert_non_null(tn->ev);
        tw_start(w, i);
    }
}

tlink *tw_find_link(tworld *w, int node, uint64_t conn, int *side)
{
    for (int i = 0; i < w->nlinks; i++) {
        tlink *l = &w->links[i];
        if (!l->open)
            continue;
        if (l->a == node && l->ca == conn) {
            *side = 0;
            return l;
        }
        if (l->b == node && l->cb == conn) {
            *side = 1;
            return l;
        }
    }
    return NULL;
}

void tw_close_link(tworld *w, tlink *l, int closer)
{
    if (!l->open)
        return;
    l->open = false;
    kith_buf_free(&l->ab);
    kith_buf_free(&l->ba);
    int other = closer == l->a ? l->b : l->a;
    uint64_t oc = closer == l->a ? l->cb : l->ca;
    if (w->n[other].up)
        kith_node_conn_closed(w->n[other].node, oc);
}

void tw_record(tnode *tn, const kith_event *ev)
{
    if (tn->nev >= TW_MAXEV)
        return;
    tev *r = &tn->ev[tn->nev++];
    r->type = ev->type;
    r->self = ev->self;
    r->catchup = ev->catchup;
    r->msg_type = ev->msg_type;
    snprintf(r->nick, sizeof r->nick, "%s", ev->nick ? ev->nick : "");
    size_t len = ev->text ? KITH_MIN(ev->text_len, sizeof r->text - 1) : 0;
    if (len)
        memcpy(r->text, ev->text, len);
    r->text[len] = '\0';
    if (getenv("KITH_TEST_LOG"))
        fprintf(stderr, "[%s] event %d nick=%s text=%s\n", tn->nick, r->type, r->nick, r->text);
}

static void tw_connect(tworld *w, int i, uint64_t conn, const char *addr)
{
    tnode *tn = &w->n[i];
    tn->connects++;
    int target = -1;
    for (int k = 0; k < w->count; k++) {
        if (w->n[k].up && strcmp(w->n[k].addr, addr) == 0)
            target = k;
    }
    if (target < 0 || w->nlinks >= TW_MAXLINKS || w->block[i][target]) {
        kith_node_conn_closed(tn->node, conn);
        return;
    }
    tlink *l = &w->links[w->nlinks++];
    memset(l, 0, sizeof *l);
    l->a = i;
    l->b = target;
    l->ca = conn;
    l->cb = kith_node_accept(w->n[target].node);
    l->open = true;
    kith_buf_init(&l->ab, &w->t.env, 64u << 20);
    kith_buf_init(&l->ba, &w->t.env, 64u << 20);
    kith_node_conn_opened(tn->node, conn);
}

static void tw_beacon(tworld *w, int i, const uint8_t *data, size_t len)
{
    assert_true(len <= KITH_BEACON_MAX);
    if (!w->quiet && w->npending < TW_MAXBEACONS) {
        tbeacon *b = &w->pending[w->npending++];
        b->from = i;
        memcpy(b->data, data, len);
        b->len = len;
    }
    if (w->nlog < TW_MAXBEACONS) {
        tbeacon *b = &w->log[w->nlog++];
        b->from = i;
        memcpy(b->data, data, len);
        b->len = len;
    }
}

int tw_drain(tworld *w, int i)
{
    tnode *tn = &w->n[i];
    kith_action a;
    int count = 0;
    while (tn->up && kith_node_poll(tn->node, &a)) {
        count++;
        int side;
        tlink *l;
        switch (a.type) {
        case KITH_ACT_WRITE:
            l = tw_find_link(w, i, a.conn, &side);
            if (l && !w->drop_writes_from[i] && !w->drop_writes_to[side ? l->a : l->b]) {
                assert_int_equal(kith_buf_append(side ? &l->ba : &l->ab, a.data, a.len), 0);
                *(side ? &l->sent_ba : &l->sent_ab) += a.len;
            }
            break;
        case KITH_ACT_CONNECT:
            tw_connect(w, i, a.conn, a.addr);
            break;
        case KITH_ACT_CLOSE:
            l = tw_find_link(w, i, a.conn, &side);
            if (l)
                tw_close_link(w, l, i);
            break;
        case KITH_ACT_TIMER:
            break;
        case KITH_ACT_EVENT:
            tw_record(tn, &a.ev);
            break;
        case KITH_ACT_BEACON:
            tw_beacon(w, i, a.data, a.len);
            break;
        default:
            fail_msg("unknown action %d", a.type);
        }
    }
    return count;
}

/* Hand what a link's side holds to the other side's node. */
static int tw_deliver(tworld *w, kith_buf *q, int to, uint64_t conn)
{
    if (!q->len)
        return 0;
    kith_buf b = *q;
    kith_buf_init(q, &w->t.env, 64u << 20);
    kith_node_conn_data(w->n[to].node, conn, b.data, b.len);
    kith_buf_free(&b);
    return 1;
}

void tw_settle(tworld *w)
{
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        for (int i = 0; i < w->count; i++) {
            if (w->n[i].up) {
                assert_int_equal(kith_node_flush(w->n[i].node), 0);
                moved += tw_drain(w, i);
            }
        }
        /* Multicast: every node hears it (the sender too, looped). */
        size_t np = w->npending;
        w->npending = 0;
        for (size_t b = 0; b < np; b++) {
            tbeacon r = w->pending[b];
            for (int k = 0; k < w->count; k++) {
                if (w->n[k].up)
                    kith_node_beacon(w->n[k].node, r.data, r.len, w->n[r.from].host);
            }
            moved++;
        }
        for (int k = 0; k < w->nlinks; k++) {
            tlink *l = &w->links[k];
            if (l->open)
                moved += tw_deliver(w, &l->ab, l->b, l->cb);
            if (l->open)
                moved += tw_deliver(w, &l->ba, l->a, l->ca);
        }
        if (!moved)
            return;
    }
    fail_msg("network did not settle");
}

void tw_tick(tworld *w, int seconds)
{
    for (int s = 0; s < seconds; s++) {
        w->t.mono += 1000;
        w->t.wall += 1000;
        for (int i = 0; i < w->count; i++) {
            if (w->n[i].up)
                kith_node_timer(w->n[i].node);
        }
        tw_settle(w);
    }
}

void tw_stop(tworld *w, int i)
{
    tnode *tn = &w->n[i];
    for (int k = 0; k < w->nlinks; k++) {
        tlink *l = &w->links[k];
        if (l->open && (l->a == i || l->b == i))
            tw_close_link(w, l, i);
    }
    kith_node_free(tn->node);
    tn->node = NULL;
    tn->up = false;
}

void tw_free(tworld *w)
{
    for (int i = 0; i < w->count; i++) {
        if (w->n[i].up)
            tw_stop(w, i);
        kith_store_close(w->n[i].store);
        kith_identity_wipe(&w->n[i].id);
        free(w->n[i].ev);
    }
    for (int k = 0; k < w->nlinks; k++) {
        kith_buf_free(&w->links[k].ab);
        kith_buf_free(&w->links[k].ba);
    }
    free(w->pending);
    free(w->log);
    memset(w, 0, sizeof *w);
}

size_t tw_count(const tnode *tn, int type, const char *text)
{
    size_t c = 0;
    for (size_t i = 0; i < tn->nev; i++) {
        if (tn->ev[i].type == type && (!text || strcmp(tn->ev[i].text, text) == 0))
            c++;
    }
    return c;
}

size_t tw_count_sub(const tnode *tn, int type, const char *sub)
{
    size_t c = 0;
    for (size_t i = 0; i < tn->nev; i++) {
        if (tn->ev[i].type == type && (!sub || strstr(tn->ev[i].text, sub)))
            c++;
    }
    return c;
}

void tw_send(tworld *w, int i, const uint8_t room[32], const char *text)
{
    uint64_t seq;
    assert_int_equal(
        kith_node_send(w->n[i].node, room, KITH_MSG_TEXT, text, strlen(text), &seq), 0);
}
