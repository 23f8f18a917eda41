/* simnet: see simnet.h. A binary heap of timed events drives the nodes;
 * each event is one "loop turn" for the node it concerns: handle it, flush
 * (group commit), then carry out every action the node asks for. */
#include "simnet.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "room/room.h"
#include "store/store.h"
#include "util/map.h"
#include "util/util.h"

enum { EV_DATA = 1, EV_TIMER };

typedef struct sev {
    uint64_t at, order;
    int kind;
    int node; /* EV_TIMER */
    int link, dir; /* EV_DATA: dir 0 = a->b */
    uint64_t gen; /* EV_TIMER: the node's timer generation; EV_DATA: link generation */
    uint8_t *data;
    size_t len;
} sev;

typedef struct slink {
    int a, b;
    uint64_t ca, cb;
    bool open;
    uint64_t gen;
    uint32_t lat;
    uint64_t last_at[2];
} slink;

typedef struct snode {
    kith_node *node;
    kith_store *store;
    kith_identity id;
    char addr[32];
    char nick[16];
    bool up;
    int group;
    uint64_t timer_gen;
    kith_map delivered; /* hash(author || seq) of delivered messages, this run */
    kith_map last_seq; /* author -> last delivered seq, this run */
    uint64_t dups, disorder;
    char last_invite[KITH_INVITE_CODE_MAX];
    bool joined;
} snode;

typedef struct sent_rec {
    uint8_t author[KITH_ID_LEN];
    uint64_t seq;
} sent_rec;

struct sim {
    sim_cfg cfg;
    kith_env env;
    uint64_t now, order, rng;
    snode *n;
    slink *links;
    size_t nlinks, caplinks;
    sev *heap;
    size_t nheap, capheap;
    sent_rec *sent;
    size_t nsent, capsent;
    uint64_t bytes;
};

/* ---- environment: virtual clock, seeded RNG ---- */

static uint64_t s_mono(void *ctx)
{
    return ((sim *)ctx)->now;
}

static uint64_t s_wall(void *ctx)
{
    return 1767225600000ull + ((sim *)ctx)->now;
}

static uint64_t next_rand(sim *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void s_random(void *ctx, void *buf, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t r = next_rand(ctx);
        memcpy(p + i, &r, KITH_MIN(8, len - i));
    }
}

static void *s_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

static void s_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void s_log(void *ctx, int level, const char *line)
{
    sim *s = ctx;
    if (!s->cfg.quiet)
        fprintf(stderr, "[%8llu ms] log %d: %s\n", (unsigned long long)s->now, level, line);
}

/* ---- event heap ---- */

static bool before(const sev *x, const sev *y)
{
    return x->at < y->at || (x->at == y->at && x->order < y->order);
}

static void heap_push(sim *s, sev e)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 1024;
        s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
        if (!s->heap)
            abort();
    }
    e.order = s->order++;
    size_t i = s->nheap++;
    while (i > 0 && before(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static sev heap_pop(sim *s)
{
    sev top = s->heap[0];
    sev last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const sev *best = &last;
        if (l < s->nheap && before(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (l + 1 < s->nheap && before(&s->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->nheap)
        s->heap[i] = last;
    return top;
}

/* ---- links ---- */

static slink *find_link(sim *s, int node, uint64_t conn, int *side)
{
    for (size_t i = 0; i < s->nlinks; i++) {
        slink *l = &s->links[i];
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

static void break_link(sim *s, slink *l, int closer)
{
    if (!l->open)
        return;
    l->open = false;
    l->gen++;
    if (closer != l->a && s->n[l->a].up)
        kith_node_conn_closed(s->n[l->a].node, l->ca);
    if (closer != l->b && s->n[l->b].up)
        kith_node_conn_closed(s->n[l->b].node, l->cb);
}

static slink *new_link(sim *s)
{
    for (size_t i = 0; i < s->nlinks; i++) {
        if (!s->links[i].open)
            return &s->links[i];
    }
    if (s->nlinks == s->caplinks) {
        s->caplinks = s->caplinks ? s->caplinks * 2 : 256;
        s->links = realloc(s->links, s->caplinks * sizeof *s->links);
        if (!s->links)
            abort();
    }
    slink *l = &s->links[s->nlinks++];
    memset(l, 0, sizeof *l);
    return l;
}

/* ---- recording what clients see ---- */

static void seq_key(uint8_t key[32], const uint8_t author[KITH_ID_LEN], uint64_t seq)
{
    uint8_t buf[KITH_ID_LEN + 8];
    memcpy(buf, author, KITH_ID_LEN);
    kith_put_be64(buf + KITH_ID_LEN, seq);
    kith_hash(key, buf, sizeof buf);
}

static void record_event(sim *s, int i, const kith_event *ev)
{
    snode *sn = &s->n[i];
    if (ev->type == KITH_EV_ROOM && !ev->history)
        sn->joined = true;
    if (ev->type == KITH_EV_SENT) {
        if (s->nsent == s->capsent) {
            s->capsent = s->capsent ? s->capsent * 2 : 1024;
            s->sent = realloc(s->sent, s->capsent * sizeof *s->sent);
            if (!s->sent)
                abort();
        }
        memcpy(s->sent[s->nsent].author, ev->author, KITH_ID_LEN);
        s->sent[s->nsent].seq = ev->seq;
        s->nsent++;
    }
    if (ev->type != KITH_EV_MESSAGE && ev->type != KITH_EV_NICK)
        return;
    uint8_t key[32];
    seq_key(key, ev->author, ev->seq);
    uint64_t count = 0;
    kith_map_get(&sn->delivered, key, &count);
    if (count)
        sn->dups++;
    if (kith_map_put(&sn->delivered, key, count + 1))
        abort();
    uint64_t last = 0;
    kith_map_get(&sn->last_seq, ev->author, &last);
    if (ev->seq <= last && !count)
        sn->disorder++;
    if (ev->seq > last && kith_map_put(&sn->last_seq, ev->author, ev->seq))
        abort();
}

/* ---- running nodes ---- */

static int find_addr(sim *s, const char *addr)
{
    for (int k = 0; k < s->cfg.nodes; k++) {
        if (strcmp(s->n[k].addr, addr) == 0)
            return k;
    }
    return -1;
}

static void drain(sim *s, int i)
{
    snode *sn = &s->n[i];
    kith_action a;
    while (sn->up && kith_node_poll(sn->node, &a)) {
        int side;
        slink *l;
        switch (a.type) {
        case KITH_ACT_WRITE:
            l = find_link(s, i, a.conn, &side);
            if (l) {
                sev e = { 0 };
                uint64_t at = s->now + l->lat;
                if (at < l->last_at[side])
                    at = l->last_at[side]; /* a stream keeps its order */
                l->last_at[side] = at;
                e.at = at;
                e.kind = EV_DATA;
                e.link = (int)(l - s->links);
                e.dir = side;
                e.gen = l->gen;
                e.data = malloc(a.len);
                if (!e.data)
                    abort();
                memcpy(e.data, a.data, a.len);
                e.len = a.len;
                s->bytes += a.len;
                heap_push(s, e);
            }
            break;
        case KITH_ACT_CONNECT: {
            int t = find_addr(s, a.addr);
            uint64_t conn = a.conn;
            if (t < 0 || !s->n[t].up || s->n[t].group != sn->group) {
                kith_node_conn_closed(sn->node, conn);
                break;
            }
            l = new_link(s);
            l->a = i;
            l->b = t;
            l->ca = conn;
            l->open = true;
            l->gen++;
            l->last_at[0] = l->last_at[1] = 0;
            uint32_t span = s->cfg.lat_max_ms - s->cfg.lat_min_ms + 1;
            l->lat = s->cfg.lat_min_ms + (uint32_t)(next_rand(s) % span);
            l->cb = kith_node_accept(s->n[t].node);
            kith_node_conn_opened(sn->node, conn);
            drain(s, t);
            break;
        }
        case KITH_ACT_CLOSE:
            l = find_link(s, i, a.conn, &side);
            if (l)
                break_link(s, l, i);
            break;
        case KITH_ACT_TIMER: {
            sev e = { 0 };
            e.at = s->now + a.delay_ms;
            e.kind = EV_TIMER;
            e.node = i;
            e.gen = ++sn->timer_gen;
            heap_push(s, e);
            break;
        }
        case KITH_ACT_EVENT:
            record_event(s, i, &a.ev);
            if (a.ev.type == KITH_EV_ERROR && !s->cfg.quiet)
                fprintf(stderr, "[%8llu ms] node %d error: %s\n", (unsigned long long)s->now, i,
                    a.ev.text);
            break;
        default:
            break;
        }
    }
}

/* One loop turn of node i: flush (group commit), then its actions. */
static void turn(sim *s, int i)
{
    if (!s->n[i].up)
        return;
    if (kith_node_flush(s->n[i].node) != 0 && !s->cfg.quiet)
        fprintf(stderr, "node %d: flush failed\n", i);
    drain(s, i);
}

static void handle(sim *s, sev *e)
{
    if (e->kind == EV_TIMER) {
        snode *sn = &s->n[e->node];
        if (sn->up && e->gen == sn->timer_gen) {
            kith_node_timer(sn->node);
            turn(s, e->node);
        }
        return;
    }
    slink *l = &s->links[e->link];
    if (!l->open || l->gen != e->gen)
        return;
    int to = e->dir == 0 ? l->b : l->a;
    uint64_t conn = e->dir == 0 ? l->cb : l->ca;
    if (s->cfg.reset_permille && next_rand(s) % 1000 < s->cfg.reset_permille) {
        break_link(s, l, -1);
        turn(s, l->a);
        turn(s, l->b);
        return;
    }
    kith_node_conn_data(s->n[to].node, conn, e->data, e->len);
    turn(s, to);
}

void sim_run(sim *s, uint64_t ms)
{
    uint64_t end = s->now + ms;
    while (s->nheap && s->heap[0].at <= end) {
        sev e = heap_pop(s);
        if (e.at > s->now)
            s->now = e.at;
        handle(s, &e);
        free(e.data);
    }
    s->now = end;
}

/* ---- life cycle ---- */

static int start_node(sim *s, int i)
{
    snode *sn = &s->n[i];
    kith_node_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.addr = sn->addr;
    cfg.nick = sn->nick;
    cfg.degree = s->cfg.degree;
    const char *peer = s->n[(i + 1) % s->cfg.nodes].addr;
    if (s->cfg.ring) {
        cfg.no_dial = true;
        cfg.peers = &peer;
        cfg.npeers = 1;
    }
    int rc = kith_node_new(&s->env, sn->store, &sn->id, &cfg, &sn->node);
    if (rc)
        return rc;
    sn->up = true;
    kith_map_free(&sn->delivered);
    kith_map_free(&sn->last_seq);
    kith_map_init(&sn->delivered, &s->env, SIZE_MAX);
    kith_map_init(&sn->last_seq, &s->env, SIZE_MAX);
    turn(s, i);
    return 0;
}

sim *sim_new(const sim_cfg *cfg)
{
    if (sodium_init() < 0)
        return NULL;
    sim *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    if (s->cfg.lat_max_ms < s->cfg.lat_min_ms)
        s->cfg.lat_max_ms = s->cfg.lat_min_ms;
    s->rng = cfg->seed;
    s->env.ctx = s;
    s->env.mono_ms = s_mono;
    s->env.wall_ms = s_wall;
    s->env.random = s_random;
    s->env.realloc = s_realloc;
    s->env.free = s_free;
    s->env.log = s_log;
    s->env.log_level = KITH_LOG_WARN;
    s->now = 1000;
    s->n = calloc((size_t)cfg->nodes, sizeof *s->n);
    if (!s->n) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < cfg->nodes; i++) {
        snprintf(s->n[i].addr, sizeof s->n[i].addr, "sim%d:7415", i);
        snprintf(s->n[i].nick, sizeof s->n[i].nick, "n%d", i);
    }
    for (int i = 0; i < cfg->nodes; i++) {
        snode *sn = &s->n[i];
        if (kith_identity_generate(&s->env, &sn->id) || kith_store_open_mem(&s->env, &sn->store)
            || start_node(s, i)) {
            s->cfg.nodes = i;
            sim_free(s);
            return NULL;
        }
    }
    return s;
}

static void down(sim *s, int i)
{
    snode *sn = &s->n[i];
    if (!sn->up)
        return;
    for (size_t k = 0; k < s->nlinks; k++) {
        slink *l = &s->links[k];
        if (l->open && (l->a == i || l->b == i)) {
            break_link(s, l, i);
            turn(s, l->a == i ? l->b : l->a);
        }
    }
    kith_node_free(sn->node);
    sn->node = NULL;
    sn->up = false;
}

void sim_crash(sim *s, int i)
{
    if (!s->n[i].up)
        return;
    kith_store_mem_crash(s->n[i].store);
    down(s, i);
}

void sim_stop(sim *s, int i)
{
    if (!s->n[i].up)
        return;
    turn(s, i);
    down(s, i);
}

int sim_restart(sim *s, int i)
{
    if (s->n[i].up)
        return 0;
    return start_node(s, i);
}

void sim_free(sim *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->cfg.nodes; i++) {
        snode *sn = &s->n[i];
        if (sn->up)
            kith_node_free(sn->node);
        kith_store_close(sn->store);
        kith_identity_wipe(&sn->id);
        kith_map_free(&sn->delivered);
        kith_map_free(&sn->last_seq);
    }
    for (size_t i = 0; i < s->nheap; i++)
        free(s->heap[i].data);
    free(s->heap);
    free(s->links);
    free(s->sent);
    free(s->n);
    free(s);
}

int sim_count(const sim *s)
{
    return s->cfg.nodes;
}

uint64_t sim_now(const sim *s)
{
    return s->now;
}

kith_node *sim_node(sim *s, int i)
{
    return s->n[i].up ? s->n[i].node : NULL;
}

bool sim_up(const sim *s, int i)
{
    return s->n[i].up;
}

void sim_set_group(sim *s, int i, int group)
{
    s->n[i].group = group;
    for (size_t k = 0; k < s->nlinks; k++) {
        slink *l = &s->links[k];
        if (l->open && s->n[l->a].group != s->n[l->b].group) {
            break_link(s, l, -1);
            turn(s, l->a);
            turn(s, l->b);
        }
    }
}

void sim_set_reset(sim *s, uint32_t permille)
{
    s->cfg.reset_permille = permille;
}

int sim_make_room(sim *s, int members, uint8_t room[KITH_ROOM_ID_LEN])
{
    int rc = kith_node_create_room(s->n[0].node, "simroom", room);
    if (rc)
        return rc;
    s->n[0].joined = true;
    for (int i = 1; i < members; i++) {
        /* Any member may admit: spread the work over those already in. */
        int inviter = (int)(next_rand(s) % (uint64_t)i);
        if (!s->n[inviter].up)
            inviter = 0;
        char code[KITH_INVITE_CODE_MAX];
        rc = kith_node_invite(s->n[inviter].node, room, 0, code, sizeof code);
        if (!rc)
            rc = kith_node_join(s->n[i].node, code);
        if (rc)
            return rc;
        turn(s, i);
        for (int t = 0; t < 200 && !s->n[i].joined; t++)
            sim_run(s, 50);
        if (!s->n[i].joined)
            return KITH_EAGAIN;
    }
    return 0;
}

int sim_send(sim *s, int i, const uint8_t room[KITH_ROOM_ID_LEN], const char *text)
{
    if (!s->n[i].up)
        return KITH_ESTATE;
    uint64_t seq;
    int rc = kith_node_send(s->n[i].node, room, 1, text, strlen(text), &seq);
    if (!rc)
        turn(s, i);
    return rc;
}

typedef struct have_ctx {
    kith_map set;
} have_ctx;

static void have_cb(void *ud, const kith_event *ev)
{
    have_ctx *h = ud;
    uint8_t key[32];
    seq_key(key, ev->author, ev->seq);
    if (kith_map_put(&h->set, key, 1))
        abort();
}

int sim_check(sim *s, const uint8_t room[KITH_ROOM_ID_LEN], char *err, size_t errlen)
{
    int bad = 0;
    err[0] = '\0';
    for (int i = 0; i < s->cfg.nodes; i++) {
        snode *sn = &s->n[i];
        if (!sn->up || !sn->joined)
            continue;
        if (sn->dups || sn->disorder) {
            if (!bad++)
                snprintf(err, errlen, "node %d: %llu duplicate and %llu out-of-order deliveries", i,
                    (unsigned long long)sn->dups, (unsigned long long)sn->disorder);
        }
        have_ctx h;
        kith_map_init(&h.set, &s->env, SIZE_MAX);
        if (kith_node_history(sn->node, room, SIZE_MAX, have_cb, &h) != 0) {
            if (!bad++)
                snprintf(err, errlen, "node %d: no such room", i);
            kith_map_free(&h.set);
            continue;
        }
        size_t missing = 0;
        for (size_t k = 0; k < s->nsent; k++) {
            uint8_t key[32];
            seq_key(key, s->sent[k].author, s->sent[k].seq);
            missing += !kith_map_get(&h.set, key, NULL);
        }
        kith_map_free(&h.set);
        if (missing && !bad++)
            snprintf(
                err, errlen, "node %d: %zu of %zu sent messages missing", i, missing, s->nsent);
        else if (missing)
            bad++;
    }
    return bad;
}

void sim_totals_get(sim *s, sim_totals *out)
{
    memset(out, 0, sizeof *out);
    out->sent = s->nsent;
    out->bytes = s->bytes;
    for (int i = 0; i < s->cfg.nodes; i++) {
        if (!s->n[i].up)
            continue;
        kith_node_stats st;
        kith_node_stats_get(s->n[i].node, &st);
        out->delivered += st.delivered;
        out->msgs_in += st.msgs_in;
        out->dups_in += st.dups_in;
    }
}
