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
    uint64_t dups, disorder, forged;
} snode;

typedef struct sent_rec {
    uint8_t room[KITH_ROOM_ID_LEN];
    uint8_t author[KITH_ID_LEN];
    uint64_t seq;
} sent_rec;

/* A room the simulation made, and who was put in it. */
typedef struct sroom {
    uint8_t id[KITH_ROOM_ID_LEN];
    int *members;
    int nmembers;
} sroom;

struct sim {
    sim_cfg cfg;
    kith_env env;
    uint64_t now, order, rng;
    snode *n;
    slink *links;
    size_t nlinks, caplinks;
    size_t *free_links; /* indexes of closed links, for reuse */
    size_t nfree, capfree;
    kith_map link_of; /* (node, conn) -> link index; checked on use, never pruned */
    sev *heap;
    size_t nheap, capheap;
    sent_rec *sent;
    size_t nsent, capsent;
    uint64_t bytes;
    kith_map sigs; /* signatures found good by any node (kith_env.sig_known) */
    kith_map joined; /* join_key(room, node) of every node that is in a room */
    kith_map bodies; /* seq_key(room, author, seq) -> hash of the text sent */
    sroom *rooms;
    int nrooms;
    crypto_generichash_state trace; /* every event handled, in order */
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

/* Every node checks the same signatures (each op, message and address
 * record once per node): the first check is real, the others find it here,
 * so n nodes cost one check per signature instead of n. The answer is the
 * same either way; only the time differs. */
static int s_sig_known(void *ctx, const uint8_t key[32])
{
    return kith_map_get(&((sim *)ctx)->sigs, key, NULL);
}

static void s_sig_good(void *ctx, const uint8_t key[32])
{
    if (kith_map_put(&((sim *)ctx)->sigs, key, 1))
        abort();
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

static void link_key(uint8_t key[32], int node, uint64_t conn)
{
    /* The map hashes the first 8 bytes: spread them (splitmix64). */
    uint64_t z = conn * 0x9E3779B97F4A7C15ull + (uint64_t)node;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    memset(key, 0, 32);
    memcpy(key, &z, 8);
    memcpy(key + 8, &conn, 8);
    memcpy(key + 16, &node, sizeof node);
}

static void link_index(sim *s, int node, uint64_t conn, size_t at)
{
    uint8_t key[32];
    link_key(key, node, conn);
    if (kith_map_put(&s->link_of, key, at))
        abort();
}

static slink *find_link(sim *s, int node, uint64_t conn, int *side)
{
    uint8_t key[32];
    uint64_t at;
    link_key(key, node, conn);
    if (!kith_map_get(&s->link_of, key, &at) || at >= s->nlinks)
        return NULL;
    slink *l = &s->links[at];
    if (!l->open)
        return NULL;
    if (l->a == node && l->ca == conn) {
        *side = 0;
        return l;
    }
    if (l->b == node && l->cb == conn) {
        *side = 1;
        return l;
    }
    return NULL;
}

static void break_link(sim *s, slink *l, int closer)
{
    if (!l->open)
        return;
    l->open = false;
    l->gen++;
    if (s->nfree == s->capfree) {
        s->capfree = s->capfree ? s->capfree * 2 : 256;
        s->free_links = realloc(s->free_links, s->capfree * sizeof *s->free_links);
        if (!s->free_links)
            abort();
    }
    s->free_links[s->nfree++] = (size_t)(l - s->links);
    if (closer != l->a && s->n[l->a].up)
        kith_node_conn_closed(s->n[l->a].node, l->ca);
    if (closer != l->b && s->n[l->b].up)
        kith_node_conn_closed(s->n[l->b].node, l->cb);
}

static slink *new_link(sim *s)
{
    if (s->nfree)
        return &s->links[s->free_links[--s->nfree]];
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

static void seq_key(uint8_t key[32], const uint8_t room[KITH_ROOM_ID_LEN],
    const uint8_t author[KITH_ID_LEN], uint64_t seq)
{
    uint8_t buf[KITH_ROOM_ID_LEN + KITH_ID_LEN + 8];
    memcpy(buf, room, KITH_ROOM_ID_LEN);
    memcpy(buf + KITH_ROOM_ID_LEN, author, KITH_ID_LEN);
    kith_put_be64(buf + KITH_ROOM_ID_LEN + KITH_ID_LEN, seq);
    kith_hash(key, buf, sizeof buf);
}

static void join_key(uint8_t key[32], const uint8_t room[KITH_ROOM_ID_LEN], int node)
{
    uint8_t buf[KITH_ROOM_ID_LEN + 8];
    memcpy(buf, room, KITH_ROOM_ID_LEN);
    kith_put_be64(buf + KITH_ROOM_ID_LEN, (uint64_t)node);
    kith_hash(key, buf, sizeof buf);
}

static uint64_t body_hash(const char *text, size_t len)
{
    uint8_t h[KITH_HASH_LEN];
    uint64_t v;
    kith_hash(h, (const uint8_t *)text, len);
    memcpy(&v, h, sizeof v);
    return v | 1; /* never 0 */
}

static bool in_room(const sim *s, const uint8_t room[KITH_ROOM_ID_LEN], int i)
{
    uint8_t key[32];
    join_key(key, room, i);
    return kith_map_get(&s->joined, key, NULL);
}

static void record_event(sim *s, int i, const kith_event *ev)
{
    snode *sn = &s->n[i];
    uint8_t key[32];
    if (ev->type == KITH_EV_ROOM && !ev->history && ev->has_room) {
        join_key(key, ev->room_id, i);
        if (kith_map_put(&s->joined, key, 1))
            abort();
    }
    if (ev->type == KITH_EV_SENT) {
        if (s->nsent == s->capsent) {
            s->capsent = s->capsent ? s->capsent * 2 : 1024;
            s->sent = realloc(s->sent, s->capsent * sizeof *s->sent);
            if (!s->sent)
                abort();
        }
        memcpy(s->sent[s->nsent].room, ev->room_id, KITH_ROOM_ID_LEN);
        memcpy(s->sent[s->nsent].author, ev->author, KITH_ID_LEN);
        s->sent[s->nsent].seq = ev->seq;
        s->nsent++;
    }
    if (ev->type != KITH_EV_MESSAGE && ev->type != KITH_EV_NICK)
        return;
    seq_key(key, ev->room_id, ev->author, ev->seq);
    /* What a client is shown must be exactly what its author sent. */
    if (ev->type == KITH_EV_MESSAGE && ev->msg_type == 1) {
        uint64_t want = 0;
        if (!kith_map_get(&s->bodies, key, &want) || want != body_hash(ev->text, ev->text_len))
            sn->forged++;
    }
    uint64_t count = 0;
    kith_map_get(&sn->delivered, key, &count);
    if (count)
        sn->dups++;
    if (kith_map_put(&sn->delivered, key, count + 1))
        abort();
    uint8_t akey[32];
    seq_key(akey, ev->room_id, ev->author, 0);
    uint64_t last = 0;
    kith_map_get(&sn->last_seq, akey, &last);
    if (ev->seq <= last && !count)
        sn->disorder++;
    if (ev->seq > last && kith_map_put(&sn->last_seq, akey, ev->seq))
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
            link_index(s, i, l->ca, (size_t)(l - s->links));
            link_index(s, t, l->cb, (size_t)(l - s->links));
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

static void trace_event(sim *s, const sev *e)
{
    uint8_t head[8 + 4 + 4 + 4 + 8];
    kith_put_be64(head, e->at);
    kith_put_be32(head + 8, (uint32_t)e->kind);
    kith_put_be32(head + 12, (uint32_t)(e->kind == EV_TIMER ? e->node : e->link));
    kith_put_be32(head + 16, (uint32_t)e->dir);
    kith_put_be64(head + 20, (uint64_t)e->len);
    crypto_generichash_update(&s->trace, head, sizeof head);
    if (e->len)
        crypto_generichash_update(&s->trace, e->data, e->len);
}

static void handle(sim *s, sev *e)
{
    trace_event(s, e);
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
    s->env.sig_known = s_sig_known;
    s->env.sig_good = s_sig_good;
    kith_map_init(&s->sigs, &s->env, SIZE_MAX);
    crypto_generichash_init(&s->trace, NULL, 0, KITH_HASH_LEN);
    kith_map_init(&s->link_of, &s->env, SIZE_MAX);
    kith_map_init(&s->joined, &s->env, SIZE_MAX);
    kith_map_init(&s->bodies, &s->env, SIZE_MAX);
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
    kith_map_free(&s->sigs);
    kith_map_free(&s->link_of);
    kith_map_free(&s->joined);
    kith_map_free(&s->bodies);
    for (int k = 0; k < s->nrooms; k++)
        free(s->rooms[k].members);
    free(s->rooms);
    free(s->free_links);
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

static sroom *room_rec(sim *s, const uint8_t room[KITH_ROOM_ID_LEN])
{
    for (int k = 0; k < s->nrooms; k++) {
        if (memcmp(s->rooms[k].id, room, KITH_ROOM_ID_LEN) == 0)
            return &s->rooms[k];
    }
    return NULL;
}

static int admit(sim *s, const uint8_t room[KITH_ROOM_ID_LEN], int inviter, int joiner)
{
    char code[KITH_INVITE_CODE_MAX];
    int rc = kith_node_invite(s->n[inviter].node, room, 0, code, sizeof code);
    if (!rc)
        rc = kith_node_join(s->n[joiner].node, code);
    if (rc)
        return rc;
    turn(s, inviter);
    turn(s, joiner);
    return 0;
}

int sim_rooms(
    sim *s, const sim_room_plan *plan, int nplan, int batch, uint8_t (*ids)[KITH_ROOM_ID_LEN])
{
    int rc = 0;
    sroom *grown = realloc(s->rooms, (size_t)(s->nrooms + nplan) * sizeof *grown);
    if (!grown)
        return KITH_ENOMEM;
    s->rooms = grown;
    int first = s->nrooms;
    for (int k = 0; k < nplan; k++) {
        const sim_room_plan *p = &plan[k];
        if (p->count < 1 || !s->n[p->members[0]].up)
            return KITH_EINVAL;
        char name[32];
        snprintf(name, sizeof name, "room%d", first + k);
        if ((rc = kith_node_create_room(s->n[p->members[0]].node, name, ids[k])))
            return rc;
        turn(s, p->members[0]);
        uint8_t key[32];
        join_key(key, ids[k], p->members[0]);
        if (kith_map_put(&s->joined, key, 1))
            abort();
        sroom *r = &s->rooms[s->nrooms++];
        memcpy(r->id, ids[k], KITH_ROOM_ID_LEN);
        r->members = malloc((size_t)p->count * sizeof *r->members);
        if (!r->members)
            return KITH_ENOMEM;
        memcpy(r->members, p->members, (size_t)p->count * sizeof *r->members);
        r->nmembers = p->count;
    }
    /* Waves: each room admits up to `batch` joiners at once, each invited
     * by a random member already in (any member may admit), and the wave
     * runs until all of them are in. Rooms fill side by side, but a node
     * takes part in one join per wave (two nodes inviting each other into
     * two rooms at once race, as two people would). */
    int *done = calloc((size_t)nplan, sizeof *done);
    int *took = calloc((size_t)nplan, sizeof *took);
    uint8_t *busy = calloc((size_t)s->cfg.nodes, 1);
    int *inviters = calloc((size_t)nplan * (size_t)batch, sizeof *inviters);
    if (!done || !took || !busy || !inviters) {
        free(inviters);
        free(done);
        free(took);
        free(busy);
        return KITH_ENOMEM;
    }
    for (int k = 0; k < nplan; k++)
        done[k] = 1;
    for (;;) {
        int waiting = 0;
        memset(busy, 0, (size_t)s->cfg.nodes);
        for (int k = 0; k < nplan && !rc; k++) {
            const sim_room_plan *p = &plan[k];
            took[k] = 0;
            for (int b = 0; b < batch && done[k] + b < p->count; b++) {
                int joiner = p->members[done[k] + b];
                int inviter = p->members[next_rand(s) % (uint64_t)done[k]];
                if (!s->n[inviter].up)
                    inviter = p->members[0];
                if (busy[joiner] || busy[inviter])
                    break;
                busy[joiner] = busy[inviter] = 1;
                inviters[k * batch + took[k]++] = inviter;
                if ((rc = admit(s, ids[k], inviter, joiner)))
                    break;
                waiting++;
            }
        }
        if (rc || !waiting)
            break;
        /* A join can fail as it would for a person (the inviter closed the
         * connection as a duplicate of a link the two made meanwhile for
         * another room): like a person, paste a fresh code again. */
        bool all = false;
        for (int attempt = 0; attempt < 4 && !all && !rc; attempt++) {
            for (int t = 0; t < 100 && !all; t++) {
                sim_run(s, 50);
                all = true;
                for (int k = 0; k < nplan && all; k++) {
                    for (int b = 0; b < took[k] && all; b++)
                        all = in_room(s, ids[k], plan[k].members[done[k] + b]);
                }
            }
            for (int k = 0; k < nplan && !all && !rc; k++) {
                for (int b = 0; b < took[k] && !rc; b++) {
                    int joiner = plan[k].members[done[k] + b];
                    if (!in_room(s, ids[k], joiner)) {
                        if (!s->cfg.quiet)
                            fprintf(stderr, "[%8llu ms] sim: node %d tries joining again\n",
                                (unsigned long long)s->now, joiner);
                        rc = admit(s, ids[k], inviters[k * batch + b], joiner);
                    }
                }
            }
        }
        if (!rc && !all)
            rc = KITH_EAGAIN;
        if (rc)
            break;
        for (int k = 0; k < nplan; k++)
            done[k] += took[k];
    }
    free(inviters);
    free(done);
    free(took);
    free(busy);
    return rc;
}

int sim_make_room(sim *s, int members, uint8_t room[KITH_ROOM_ID_LEN])
{
    int *all = malloc((size_t)members * sizeof *all);
    if (!all)
        return KITH_ENOMEM;
    for (int i = 0; i < members; i++)
        all[i] = i;
    sim_room_plan plan = { all, members };
    uint8_t ids[1][KITH_ROOM_ID_LEN];
    /* Batches grow with the room so a thousand members take tens of
     * waves, not a thousand. */
    int rc = sim_rooms(s, &plan, 1, members >= 256 ? 32 : members >= 64 ? 8 : 1, ids);
    memcpy(room, ids[0], KITH_ROOM_ID_LEN);
    free(all);
    return rc;
}

int sim_send(sim *s, int i, const uint8_t room[KITH_ROOM_ID_LEN], const char *text)
{
    if (!s->n[i].up)
        return KITH_ESTATE;
    uint64_t seq;
    size_t len = strlen(text);
    int rc = kith_node_send(s->n[i].node, room, 1, text, len, &seq);
    if (!rc) {
        /* A send lost in a crash may reuse its seq later: the last text
         * sent under a seq is the one any member may be shown. */
        uint8_t key[32];
        seq_key(key, room, s->n[i].id.id_pk, seq);
        if (kith_map_put(&s->bodies, key, body_hash(text, len)))
            abort();
        turn(s, i);
    }
    return rc;
}

typedef struct have_ctx {
    kith_map set;
    const uint8_t *room;
} have_ctx;

static void have_cb(void *ud, const kith_event *ev)
{
    have_ctx *h = ud;
    uint8_t key[32];
    seq_key(key, h->room, ev->author, ev->seq);
    if (kith_map_put(&h->set, key, 1))
        abort();
}

int sim_check(sim *s, const uint8_t room[KITH_ROOM_ID_LEN], char *err, size_t errlen)
{
    int bad = 0;
    err[0] = '\0';
    const sroom *r = room_rec(s, room);
    if (!r) {
        snprintf(err, errlen, "no such room in this simulation");
        return 1;
    }
    size_t nsent = 0;
    for (size_t k = 0; k < s->nsent; k++)
        nsent += memcmp(s->sent[k].room, room, KITH_ROOM_ID_LEN) == 0;
    for (int m = 0; m < r->nmembers; m++) {
        int i = r->members[m];
        snode *sn = &s->n[i];
        if (!sn->up || !in_room(s, room, i))
            continue;
        if (sn->dups || sn->disorder || sn->forged) {
            if (!bad++)
                snprintf(err, errlen,
                    "node %d: %llu duplicate, %llu out-of-order and %llu not-as-sent deliveries", i,
                    (unsigned long long)sn->dups, (unsigned long long)sn->disorder,
                    (unsigned long long)sn->forged);
        }
        have_ctx h;
        h.room = room;
        kith_map_init(&h.set, &s->env, SIZE_MAX);
        if (kith_node_history(sn->node, room, SIZE_MAX, have_cb, &h) != 0) {
            if (!bad++)
                snprintf(err, errlen, "node %d: no such room", i);
            kith_map_free(&h.set);
            continue;
        }
        size_t missing = 0;
        for (size_t k = 0; k < s->nsent; k++) {
            if (memcmp(s->sent[k].room, room, KITH_ROOM_ID_LEN) != 0)
                continue;
            uint8_t key[32];
            seq_key(key, room, s->sent[k].author, s->sent[k].seq);
            missing += !kith_map_get(&h.set, key, NULL);
        }
        kith_map_free(&h.set);
        if (missing && !bad++)
            snprintf(err, errlen, "node %d: %zu of %zu sent messages missing", i, missing, nsent);
        else if (missing)
            bad++;
    }
    return bad;
}

int sim_check_all(sim *s, char *err, size_t errlen)
{
    int bad = 0;
    char one[256];
    err[0] = '\0';
    for (int k = 0; k < s->nrooms; k++) {
        int b = sim_check(s, s->rooms[k].id, one, sizeof one);
        if (b && !bad)
            snprintf(err, errlen, "room %d: %s", k, one);
        bad += b;
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

void sim_digest(const sim *s, char out[17])
{
    crypto_generichash_state st = s->trace;
    uint8_t h[KITH_HASH_LEN];
    crypto_generichash_final(&st, h, sizeof h);
    kith_hex(out, h, 8);
}
