/* node/node_lan: LAN meetups. The node sends a beacon (node/beacon.h,
 * proto/kith.md section 8) every few seconds, jittered and slower the more
 * nodes it hears; it checks every beacon it hears against its own rooms and
 * dials the sender when one tag matches, after which the usual session and
 * membership checks decide everything. Rooms whose admins opened them for a
 * meetup (a set-LAN room op, so every admin's and moderator's node knows)
 * are named in those nodes' beacons; others can knock on them (KNOCK frame,
 * §6), and an admin or moderator admits, or the room lets anyone in at
 * once.
 *
 * Threat: anyone on the network can send beacons. Each one costs a bounded
 * amount of work (a cap per second, a cap on tags per beacon, one hash per
 * room, epoch and window), never opens a connection unless a tag matches
 * one of our rooms' discovery keys, and dials are rate-limited on top. */
#include <sodium.h>
#include <stdio.h>

#include "node/beacon.h"
#include "node/node_impl.h"

#define LAN_MAX_SOURCES 64 /* beacon senders remembered */
#define LAN_MAX_NEAR 32 /* discoverable rooms heard */
#define LAN_MAX_KNOCKS 16 /* knocks waiting for an admin */
#define LAN_MAX_NONCES 128 /* recent nonces, to drop replays and v4/v6 twins */
#define LAN_SENT_NONCES 8 /* our own recent nonces: multicast loops back */
#define LAN_BEACONS_PER_SEC 32 /* looked at; the rest are dropped unread */
#define LAN_DIALS_PER_SEC 2
#define LAN_REDIAL_MS 15000 /* per sender */
#define LAN_SOURCE_TTL_MS 120000 /* a sender counts as present this long */
#define LAN_NEAR_TTL_MS 90000 /* a named room is listed this long */
#define LAN_INTERVAL_MS 5000 /* base beacon interval, plus up to as much jitter */
#define LAN_INTERVAL_MAX_MS 60000
#define LAN_HOST_MAX 63
#define LAN_DIAL_ROOMS 4 /* rooms remembered per dial, for the responder check */
#define LAN_IMPOSTOR_MS 600000 /* a sender whose node is no member: not dialed again */

typedef struct node_lan node_lan;

typedef struct lan_source {
    char host[LAN_HOST_MAX + 1];
    uint16_t port;
    uint64_t heard_ms;
    uint64_t dial_ms; /* 0: never dialed */
    uint64_t conn; /* our latest dial, 0 when none */
    uint8_t peer[KITH_ID_LEN]; /* who answered that dial */
    bool has_peer;
    /* Rooms whose tags the beacon that made us dial carried: the responder
     * must be a member of one before it may learn who we are. */
    uint8_t rooms[LAN_DIAL_ROOMS][KITH_HASH_LEN];
    size_t nrooms;
    uint64_t hold_until_ms; /* an impostor answered here: no dial before */
} lan_source;

typedef struct lan_near {
    char name[KITH_ROOM_NAME_MAX + 1];
    int mode;
    char addr[LAN_HOST_MAX + 10];
    uint64_t heard_ms;
} lan_near;

typedef struct lan_knock {
    uint64_t conn;
    uint8_t room_id[KITH_HASH_LEN];
    char nick[KITH_NICK_MAX + 1];
    char addr[KITH_ADDR_MAX + 1];
    uint8_t cert[KITH_SIG_LEN];
    uint64_t at_ms;
} lan_knock;

_Static_assert((int)KITH_LAN_OFF == (int)KITH_ROOM_LAN_OFF
        && (int)KITH_LAN_OPEN == (int)KITH_ROOM_LAN_OPEN
        && (int)KITH_LAN_KNOCK == (int)KITH_ROOM_LAN_KNOCK,
    "the node's LAN modes are the room op's values");

struct node_lan {
    uint16_t port; /* ours, from the node's address; 0: we can't be dialed */
    uint64_t next_beacon_ms;
    size_t rr; /* first room of the next beacon, when there are more than fit */
    uint64_t rx_sec, dial_sec;
    unsigned rx_n, dial_n;
    lan_source src[LAN_MAX_SOURCES];
    size_t nsrc;
    lan_near near[LAN_MAX_NEAR]; /* newest first */
    size_t nnear;
    lan_knock knocks[LAN_MAX_KNOCKS];
    size_t nknocks;
    size_t name_rr; /* first named room of the next beacon */
    uint8_t sent[LAN_SENT_NONCES][KITH_BEACON_NONCE_LEN];
    size_t sent_next;
    uint8_t seen[LAN_MAX_NONCES][KITH_BEACON_NONCE_LEN];
    size_t seen_next;
};

static uint16_t port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) > 5)
        return 0;
    uint32_t v = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10u + (uint32_t)(*p - '0');
    }
    return v > 65535 ? 0 : (uint16_t)v;
}

int node_lan_new(kith_node *n)
{
    node_lan *l = kith_calloc(n->env, 1, sizeof *l);
    if (!l)
        return KITH_ENOMEM;
    l->port = port_of(n->addr);
    /* The first beacon goes out within about a second of start-up. */
    uint8_t r;
    kith_random(n->env, &r, 1);
    l->next_beacon_ms = kith_mono_ms(n->env) + 200u + r * 4u;
    n->lan = l;
    return 0;
}

void node_lan_free(kith_node *n)
{
    if (!n->lan)
        return;
    sodium_memzero(n->lan, sizeof *n->lan);
    kith_free(n->env, n->lan);
    n->lan = NULL;
}

static bool may_admit(const kith_node *n, const nroom *r)
{
    const kith_member *m = kith_room_member(r->room, n->self->id_pk);
    return m && m->role >= KITH_ROLE_MODERATOR;
}

/* Named on the LAN by this node: the room's setting says so, and we can
 * answer a knock (a member can't admit, so it doesn't advertise). */
static bool advertised(const kith_node *n, const nroom *r)
{
    return kith_room_lan(r->room) != KITH_ROOM_LAN_OFF && may_admit(n, r);
}

/* ---- sending ---- */

static size_t present(const node_lan *l, uint64_t now)
{
    size_t count = 0;
    for (size_t i = 0; i < l->nsrc; i++)
        count += now - l->src[i].heard_ms < LAN_SOURCE_TTL_MS;
    return count;
}

/* 5-10 s, times one more for every 8 nodes heard: a meetup of 80 nodes sends
 * about as many beacons per second in total as one of 8. */
static uint64_t interval(kith_node *n, uint64_t now)
{
    uint16_t jitter;
    kith_random(n->env, &jitter, sizeof jitter);
    uint64_t ms = LAN_INTERVAL_MS + jitter % (LAN_INTERVAL_MS + 1);
    ms *= 1 + present(n->lan, now) / 8;
    return KITH_MIN(ms, LAN_INTERVAL_MAX_MS);
}

static void send_beacon(kith_node *n)
{
    node_lan *l = n->lan;
    kith_beacon b;
    memset(&b, 0, sizeof b);
    b.port = l->port;
    kith_random(n->env, b.nonce, sizeof b.nonce);
    uint64_t window = kith_beacon_window(kith_wall_ms(n->env));
    size_t start = n->nrooms ? l->rr % n->nrooms : 0;
    size_t i = 0;
    for (; i < n->nrooms && b.ntags < KITH_BEACON_MAX_TAGS; i++) {
        const kith_room *room = n->rooms[(start + i) % n->nrooms]->room;
        const uint8_t *key = kith_room_key(room, kith_room_epoch(room));
        if (!key)
            continue;
        uint8_t disc[KITH_KEY_LEN];
        kith_beacon_room_key(key, kith_room_id(room), disc);
        kith_beacon_tag(disc, window, b.nonce, b.tags[b.ntags++]);
        sodium_memzero(disc, sizeof disc);
    }
    l->rr = start + i;
    size_t real = b.ntags;
    /* More named rooms than fit take turns, as tags do. */
    size_t nstart = n->nrooms ? l->name_rr % n->nrooms : 0;
    size_t k = 0;
    for (; k < n->nrooms && b.nnames < KITH_BEACON_MAX_NAMES; k++) {
        const nroom *r = n->rooms[(nstart + k) % n->nrooms];
        if (!advertised(n, r))
            continue;
        kith_beacon_name *e = &b.names[b.nnames++];
        e->mode
            = kith_room_lan(r->room) == KITH_ROOM_LAN_OPEN ? KITH_BEACON_OPEN : KITH_BEACON_KNOCK;
        snprintf(e->name, sizeof e->name, "%s", kith_room_name(r->room));
    }
    l->name_rr = nstart + k;
    if (real == 0 && b.nnames == 0)
        return; /* nothing anyone could find us by */
    /* Random filler up to a multiple of 4 tags: the count tells an onlooker
     * little about how many rooms we are in. */
    size_t padded = KITH_MIN((real + 3) / 4 * 4, (size_t)KITH_BEACON_MAX_TAGS);
    if (padded == 0)
        padded = 4;
    for (; b.ntags < padded; b.ntags++)
        kith_random(n->env, b.tags[b.ntags], KITH_BEACON_TAG_LEN);
    uint8_t out[KITH_BEACON_MAX];
    size_t len;
    if (kith_beacon_encode(&b, out, sizeof out, &len) != 0)
        return;
    memcpy(l->sent[l->sent_next], b.nonce, KITH_BEACON_NONCE_LEN);
    l->sent_next = (l->sent_next + 1) % LAN_SENT_NONCES;
    node_push_beacon(n, out, len);
}

void node_lan_timer(kith_node *n, uint64_t now)
{
    node_lan *l = n->lan;
    if (!l)
        return;
    /* Knocks go when the knocker left, they waited too long, or the room
     * is no longer open here (an admin turned it off, we lost the role). */
    for (size_t i = l->nknocks; i > 0; i--) {
        lan_knock *k = &l->knocks[i - 1];
        const nroom *r = node_room_by_id(n, k->room_id);
        if (!node_conn_find(n, k->conn) || now - k->at_ms > NODE_KNOCK_TIMEOUT_MS || !r
            || !advertised(n, r))
            l->knocks[i - 1] = l->knocks[--l->nknocks];
    }
    if (now < l->next_beacon_ms)
        return;
    l->next_beacon_ms = now + interval(n, now);
    if (l->port)
        send_beacon(n);
}

/* ---- hearing ---- */

/* An IP literal as the driver formats it: hex digits, '.', ':', and a
 * '%'-scope of letters and digits. Anything else is not from a real socket. */
static bool host_ok(const char *h)
{
    size_t len = strnlen(h, LAN_HOST_MAX + 1);
    if (len == 0 || len > LAN_HOST_MAX)
        return false;
    bool scope = false;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
            || c == '.' || c == ':';
        if (c == '%' && !scope) {
            scope = true;
            continue;
        }
        if (scope)
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || c == '_' || c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

static void format_addr(char *out, size_t cap, const char *host, uint16_t port)
{
    if (strchr(host, ':'))
        snprintf(out, cap, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(out, cap, "%s:%u", host, (unsigned)port);
}

static lan_source *source(node_lan *l, const char *host, uint16_t port, uint64_t now)
{
    size_t oldest = 0;
    for (size_t i = 0; i < l->nsrc; i++) {
        if (l->src[i].port == port && strcmp(l->src[i].host, host) == 0)
            return &l->src[i];
        if (l->src[i].heard_ms < l->src[oldest].heard_ms)
            oldest = i;
    }
    /* Full: forget the sender heard longest ago (a flood of fake senders can
     * only make us redial a real one a little sooner). */
    lan_source *s = l->nsrc < LAN_MAX_SOURCES ? &l->src[l->nsrc++] : &l->src[oldest];
    memset(s, 0, sizeof *s);
    snprintf(s->host, sizeof s->host, "%s", host);
    s->port = port;
    s->heard_ms = now;
    return s;
}

static void heard_name(node_lan *l, const kith_beacon_name *e, const char *addr, uint64_t now)
{
    size_t at = l->nnear;
    for (size_t i = 0; i < l->nnear; i++) {
        if (strcmp(l->near[i].name, e->name) == 0 && strcmp(l->near[i].addr, addr) == 0)
            at = i;
    }
    if (at == l->nnear) {
        if (l->nnear < LAN_MAX_NEAR)
            l->nnear++;
        at = l->nnear - 1; /* full: the oldest (last) entry makes room */
    }
    memmove(&l->near[1], &l->near[0], at * sizeof l->near[0]);
    lan_near *v = &l->near[0];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", e->name);
    snprintf(v->addr, sizeof v->addr, "%s", addr);
    v->mode = e->mode == KITH_BEACON_OPEN ? KITH_LAN_OPEN : KITH_LAN_KNOCK;
    v->heard_ms = now;
}

/* Which of our rooms have a tag in b? Current and previous epoch (a member
 * may not have the newest key yet), window -1, 0, +1 (clocks differ a
 * little). The first LAN_DIAL_ROOMS matching rooms' ids go to rooms; the
 * count is returned. */
static size_t matches(
    const kith_node *n, const kith_beacon *b, uint8_t rooms[LAN_DIAL_ROOMS][KITH_HASH_LEN])
{
    uint64_t w = kith_beacon_window(kith_wall_ms(n->env));
    size_t found = 0;
    for (size_t i = 0; i < n->nrooms && found < LAN_DIAL_ROOMS; i++) {
        const kith_room *room = n->rooms[i]->room;
        bool hit = false;
        uint64_t epoch = kith_room_epoch(room);
        for (uint64_t e = epoch > 0 ? epoch - 1 : 0; e <= epoch && !hit; e++) {
            const uint8_t *key = kith_room_key(room, e);
            if (!key)
                continue;
            uint8_t disc[KITH_KEY_LEN];
            kith_beacon_room_key(key, kith_room_id(room), disc);
            for (uint64_t win = w > 0 ? w - 1 : 0; win <= w + 1 && !hit; win++) {
                uint8_t tag[KITH_BEACON_TAG_LEN];
                kith_beacon_tag(disc, win, b->nonce, tag);
                for (size_t t = 0; t < b->ntags && !hit; t++)
                    hit = sodium_memcmp(tag, b->tags[t], KITH_BEACON_TAG_LEN) == 0;
            }
            sodium_memzero(disc, sizeof disc);
        }
        if (hit)
            memcpy(rooms[found++], kith_room_id(room), KITH_HASH_LEN);
    }
    return found;
}

static bool take(uint64_t *sec, unsigned *count, unsigned cap, uint64_t now)
{
    if (*sec != now / 1000) {
        *sec = now / 1000;
        *count = 0;
    }
    if (*count >= cap)
        return false;
    (*count)++;
    return true;
}

static void maybe_dial(kith_node *n, lan_source *s, uint64_t now)
{
    node_lan *l = n->lan;
    if (s->has_peer && node_peer_online(n, s->peer))
        return;
    if (s->conn && node_conn_find(n, s->conn))
        return;
    if (s->dial_ms && now - s->dial_ms < LAN_REDIAL_MS)
        return;
    if (now < s->hold_until_ms)
        return;
    if (!take(&l->dial_sec, &l->dial_n, LAN_DIALS_PER_SEC, now))
        return;
    nconn *c = node_conn_open(n, true);
    if (!c)
        return;
    c->origin = ORIGIN_LAN;
    s->conn = c->id;
    s->dial_ms = now;
    char addr[LAN_HOST_MAX + 10];
    format_addr(addr, sizeof addr, s->host, s->port);
    KITH_LOGI(n->env, "LAN: a beacon from %s matches one of our rooms: dialing", addr);
    node_push_connect(n, c->id, addr);
}

void kith_node_beacon(kith_node *n, const uint8_t *data, size_t len, const char *from_host)
{
    node_lan *l = n->lan;
    if (!l || !data || !from_host || len > KITH_BEACON_MAX)
        return;
    uint64_t now = kith_mono_ms(n->env);
    if (!take(&l->rx_sec, &l->rx_n, LAN_BEACONS_PER_SEC, now))
        return;
    kith_beacon b;
    if (kith_beacon_decode(data, len, &b) != 0 || !host_ok(from_host))
        return;
    for (size_t i = 0; i < LAN_SENT_NONCES; i++) {
        if (memcmp(l->sent[i], b.nonce, KITH_BEACON_NONCE_LEN) == 0)
            return; /* our own, looped back */
    }
    /* Each nonce is looked at once: the IPv4 and IPv6 copies of one beacon,
     * and a beacon replayed from another host, are dropped. */
    for (size_t i = 0; i < LAN_MAX_NONCES; i++) {
        if (memcmp(l->seen[i], b.nonce, KITH_BEACON_NONCE_LEN) == 0)
            return;
    }
    memcpy(l->seen[l->seen_next], b.nonce, KITH_BEACON_NONCE_LEN);
    l->seen_next = (l->seen_next + 1) % LAN_MAX_NONCES;
    lan_source *s = source(l, from_host, b.port, now);
    s->heard_ms = now;
    char addr[LAN_HOST_MAX + 10];
    format_addr(addr, sizeof addr, from_host, b.port);
    for (size_t i = 0; i < b.nnames; i++)
        heard_name(l, &b.names[i], addr, now);
    if (!b.ntags || now < s->hold_until_ms)
        return;
    uint8_t rooms[LAN_DIAL_ROOMS][KITH_HASH_LEN];
    size_t nrooms = matches(n, &b, rooms);
    if (!nrooms)
        return;
    /* The rooms of a dial under way stay those of the beacon that started
     * it (maybe_dial starts no second one meanwhile). */
    if (!(s->conn && node_conn_find(n, s->conn))) {
        memcpy(s->rooms, rooms, sizeof s->rooms);
        s->nrooms = nrooms;
    }
    maybe_dial(n, s, now);
}

int node_lan_check_responder(kith_node *n, const nconn *c, const uint8_t id[KITH_ID_LEN])
{
    node_lan *l = n->lan;
    lan_source *s = NULL;
    for (size_t i = 0; l && i < l->nsrc && !s; i++) {
        if (l->src[i].conn == c->id)
            s = &l->src[i];
    }
    if (!s)
        return KITH_EPERM; /* forgotten (a flood of senders): don't risk it */
    for (size_t i = 0; i < s->nrooms; i++) {
        const nroom *r = node_room_by_id(n, s->rooms[i]);
        if (r && node_is_member(r, id))
            return 0;
    }
    char addr[LAN_HOST_MAX + 10];
    format_addr(addr, sizeof addr, s->host, s->port);
    char fpr[24];
    kith_fingerprint(id, fpr);
    KITH_LOGW(n->env,
        "LAN: the node at %s (fingerprint %s) answered a beacon of our room but is no member "
        "of it (a replayed beacon?): not telling it who we are, not dialing it for %u min",
        addr, fpr, (unsigned)(LAN_IMPOSTOR_MS / 60000));
    s->hold_until_ms = kith_mono_ms(n->env) + LAN_IMPOSTOR_MS;
    return KITH_EPERM;
}

void node_lan_established(kith_node *n, nconn *c)
{
    node_lan *l = n->lan;
    for (size_t i = 0; l && i < l->nsrc; i++) {
        if (l->src[i].conn == c->id) {
            memcpy(l->src[i].peer, c->peer, KITH_ID_LEN);
            l->src[i].has_peer = true;
        }
    }
}

/* ---- meetup rooms ---- */

bool node_lan_knocking(const kith_node *n, uint64_t conn)
{
    const node_lan *l = n->lan;
    for (size_t i = 0; l && i < l->nknocks; i++) {
        if (l->knocks[i].conn == conn)
            return true;
    }
    return false;
}

/* The setting is a room op (admins only, proto 5.2), not this node's own:
 * every admin's and moderator's node then names the room and answers
 * knocks, and it outlives a restart. */
int kith_node_lan_set(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], int mode)
{
    if (mode != KITH_LAN_OFF && mode != KITH_LAN_OPEN && mode != KITH_LAN_KNOCK)
        return KITH_EINVAL;
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    const kith_member *me = kith_room_member(r->room, n->self->id_pk);
    if (!me || me->role != KITH_ROLE_ADMIN)
        return KITH_EPERM;
    if (kith_room_lan(r->room) == mode)
        return 0; /* already so: no op */
    kith_buf op;
    kith_buf_init(&op, n->env, KITH_OP_MAX);
    int rc = kith_room_set_lan(r->room, mode, &op);
    if (!rc)
        rc = node_publish_op(n, r, &op);
    kith_buf_free(&op);
    node_lan *l = n->lan;
    if (rc || !l)
        return rc;
    for (size_t i = l->nknocks; mode == KITH_LAN_OFF && i > 0; i--) {
        if (memcmp(l->knocks[i - 1].room_id, room_id, KITH_HASH_LEN) == 0)
            l->knocks[i - 1] = l->knocks[--l->nknocks];
    }
    /* Say so soon, but never more than once a second. */
    uint64_t soon = kith_mono_ms(n->env) + 1000;
    if (mode != KITH_LAN_OFF && l->next_beacon_ms > soon)
        l->next_beacon_ms = soon;
    return 0;
}

int kith_node_lan_mode(const kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN])
{
    const nroom *r = node_room_by_id(n, room_id);
    return r ? kith_room_lan(r->room) : KITH_LAN_OFF;
}

bool kith_node_lan_enabled(const kith_node *n)
{
    return n->lan != NULL;
}

size_t kith_node_lan_count(const kith_node *n)
{
    const node_lan *l = n->lan;
    if (!l)
        return 0;
    uint64_t now = kith_mono_ms(n->env);
    size_t count = 0;
    while (count < l->nnear && now - l->near[count].heard_ms < LAN_NEAR_TTL_MS)
        count++;
    return count;
}

int kith_node_lan_at(const kith_node *n, size_t i, kith_lan_room *out)
{
    if (i >= kith_node_lan_count(n))
        return KITH_ENOENT;
    const lan_near *v = &n->lan->near[i];
    memset(out, 0, sizeof *out);
    out->name = v->name;
    out->mode = v->mode;
    out->addr = v->addr;
    out->age_ms = kith_mono_ms(n->env) - v->heard_ms;
    return 0;
}

int kith_node_knock(kith_node *n, const char *name)
{
    if (!n->lan)
        return KITH_ESTATE;
    if (!name || !*name)
        return KITH_EINVAL;
    if (name[0] == '#')
        name++;
    const lan_near *v = NULL;
    size_t count = kith_node_lan_count(n);
    for (size_t i = 0; i < count && !v; i++) {
        if (strcmp(n->lan->near[i].name, name) == 0)
            v = &n->lan->near[i];
    }
    if (!v)
        return KITH_ENOENT;
    for (size_t i = 0; i < n->nrooms; i++) {
        if (strcmp(kith_room_name(n->rooms[i]->room), name) == 0)
            return KITH_EEXIST;
    }
    nconn *c = node_conn_open(n, true);
    if (!c)
        return KITH_ENOMEM;
    c->joining = true;
    c->join_link = true;
    c->knock = true;
    c->origin = ORIGIN_KNOCK;
    snprintf(c->knock_name, sizeof c->knock_name, "%s", v->name);
    snprintf(c->inv.addr, sizeof c->inv.addr, "%s", v->addr);
    node_push_connect(n, c->id, v->addr);
    return 0;
}

int node_lan_on_knock(kith_node *n, nconn *c, const kith_frame *f)
{
    static const uint8_t none[KITH_HASH_LEN];
    node_lan *l = n->lan;
    nroom *r = NULL;
    for (size_t i = 0; l && i < n->nrooms && !r; i++) {
        if (advertised(n, n->rooms[i]) && strcmp(kith_room_name(n->rooms[i]->room), f->name) == 0)
            r = n->rooms[i];
    }
    if (!r) {
        node_send_join_err(n, c, none, "no room by that name is open here");
        return 0;
    }
    if (!f->nick[0]) {
        node_send_join_err(n, c, kith_room_id(r->room), "a knock needs a nick");
        return 0;
    }
    if (kith_room_lan(r->room) == KITH_ROOM_LAN_OPEN) {
        bool admitted;
        return node_admit(n, c, r, f->cert, f->nick, f->addr, NULL, &admitted);
    }
    for (size_t i = 0; i < l->nknocks; i++) {
        if (l->knocks[i].conn == c->id)
            return KITH_EPROTO; /* one knock per connection */
    }
    if (l->nknocks >= LAN_MAX_KNOCKS) {
        node_send_join_err(n, c, kith_room_id(r->room), "too many knocks are waiting: try later");
        return 0;
    }
    lan_knock *k = &l->knocks[l->nknocks++];
    memset(k, 0, sizeof *k);
    k->conn = c->id;
    memcpy(k->room_id, kith_room_id(r->room), KITH_HASH_LEN);
    snprintf(k->nick, sizeof k->nick, "%s", f->nick);
    snprintf(k->addr, sizeof k->addr, "%s", f->addr);
    memcpy(k->cert, f->cert, KITH_SIG_LEN);
    k->at_ms = kith_mono_ms(n->env);
    char fpr[24];
    kith_fingerprint(c->peer, fpr);
    node_event_info(n, r, "%s knocks on %s (fingerprint %s): /admit %s", k->nick,
        kith_room_name(r->room), fpr, k->nick);
    return 0;
}

int kith_node_admit(kith_node *n, const char *nick)
{
    node_lan *l = n->lan;
    if (!l)
        return KITH_ESTATE;
    if (!nick || !*nick)
        return KITH_EINVAL;
    for (size_t i = 0; i < l->nknocks; i++) {
        lan_knock k = l->knocks[i];
        if (strcmp(k.nick, nick) != 0)
            continue;
        l->knocks[i] = l->knocks[--l->nknocks];
        nconn *c = node_conn_find(n, k.conn);
        nroom *r = node_room_by_id(n, k.room_id);
        if (!c || !c->established || !r)
            return KITH_ENOENT; /* they left, or the room is gone */
        if (!may_admit(n, r))
            return KITH_EPERM;
        bool admitted;
        int rc = node_admit(n, c, r, k.cert, k.nick, k.addr, NULL, &admitted);
        return rc ? rc : admitted ? 0 : KITH_EPERM;
    }
    return KITH_ENOENT;
}

/* ---- peers ---- */

static const char *origin_name(int origin)
{
    switch (origin) {
    case ORIGIN_ADDR:
        return "address";
    case ORIGIN_INVITE:
        return "invite";
    case ORIGIN_LAN:
        return "lan";
    case ORIGIN_KNOCK:
        return "knock";
    default:
        return "inbound";
    }
}

size_t kith_node_peer_count(const kith_node *n)
{
    size_t count = 0;
    for (size_t i = 0; i < n->nconns; i++)
        count += n->conns[i]->established;
    return count;
}

int kith_node_peer_at(const kith_node *n, size_t i, kith_peer_info *out)
{
    for (size_t k = 0; k < n->nconns; k++) {
        const nconn *c = n->conns[k];
        if (!c->established || i--)
            continue;
        memset(out, 0, sizeof *out);
        memcpy(out->id, c->peer, KITH_ID_LEN);
        kith_fingerprint(c->peer, out->fingerprint);
        for (size_t r = 0; r < n->nrooms && !out->nick; r++) {
            if (node_is_member(n->rooms[r], c->peer))
                out->nick = node_display(n, n->rooms[r], c->peer);
        }
        out->found = origin_name(c->origin);
        out->outbound = c->outbound;
        return 0;
    }
    return KITH_ENOENT;
}
