/* node: the sans-I/O kith node — its life cycle, the action queue the driver
 * drains, and the calls the client makes. Rooms and messages are in
 * node_room.c, connections and the node protocol in node_net.c. */
#include <sodium.h>
#include <stdio.h>

#include "node/node_impl.h"

/* ---- action queue ---- */

static qact *q_push(kith_node *n)
{
    if (n->qlen == n->qcap) {
        if (n->qhead > 0) {
            memmove(n->q, n->q + n->qhead, (n->qlen - n->qhead) * sizeof *n->q);
            n->qlen -= n->qhead;
            n->qhead = 0;
        }
        if (n->qlen == n->qcap) {
            size_t ncap = n->qcap ? n->qcap * 2 : 64;
            qact *q = kith_realloc(n->env, n->q, ncap * sizeof *q);
            if (!q)
                return NULL;
            n->q = q;
            n->qcap = ncap;
        }
    }
    qact *a = &n->q[n->qlen++];
    memset(a, 0, sizeof *a);
    return a;
}

void node_push_write(kith_node *n, uint64_t conn, const uint8_t *data, size_t len)
{
    if (!len)
        return;
    uint8_t *blob = kith_malloc(n->env, len);
    qact *a = blob ? q_push(n) : NULL;
    if (!a) {
        /* Out of memory: the stream would have a hole, so the connection
         * can't go on. */
        kith_free(n->env, blob);
        KITH_LOGE(n->env, "out of memory queueing a write: closing connection");
        return;
    }
    memcpy(blob, data, len);
    n->stats.bytes_out += len;
    a->blob = blob;
    a->a.type = KITH_ACT_WRITE;
    a->a.conn = conn;
    a->a.data = blob;
    a->a.len = len;
}

void node_push_close(kith_node *n, uint64_t conn, const char *reason)
{
    qact *a = q_push(n);
    if (!a)
        return;
    a->a.type = KITH_ACT_CLOSE;
    a->a.conn = conn;
    a->a.reason = reason; /* static strings only */
}

void node_push_connect(kith_node *n, uint64_t conn, const char *addr)
{
    size_t len = strlen(addr) + 1;
    uint8_t *blob = kith_malloc(n->env, len);
    qact *a = blob ? q_push(n) : NULL;
    if (!a) {
        kith_free(n->env, blob);
        return;
    }
    memcpy(blob, addr, len);
    a->blob = blob;
    a->a.type = KITH_ACT_CONNECT;
    a->a.conn = conn;
    a->a.addr = (const char *)blob;
}

void node_push_beacon(kith_node *n, const uint8_t *data, size_t len)
{
    uint8_t *blob = kith_malloc(n->env, len);
    qact *a = blob ? q_push(n) : NULL;
    if (!a) {
        kith_free(n->env, blob); /* a lost beacon is harmless: another follows */
        return;
    }
    memcpy(blob, data, len);
    a->blob = blob;
    a->a.type = KITH_ACT_BEACON;
    a->a.data = blob;
    a->a.len = len;
}

static void push_timer(kith_node *n, uint64_t delay)
{
    qact *a = q_push(n);
    if (!a)
        return;
    a->a.type = KITH_ACT_TIMER;
    a->a.delay_ms = delay;
    n->timer_armed = true;
}

/* Events carry strings the client may read until the next node call: they
 * are copied into one blob owned by the queued action. */
void node_push_event(kith_node *n, const kith_event *ev, const char *text, size_t text_len)
{
    size_t rn = ev->room_name ? strlen(ev->room_name) + 1 : 0;
    size_t nn = ev->nick ? strlen(ev->nick) + 1 : 0;
    size_t cn = ev->ctx ? strlen(ev->ctx) + 1 : 0;
    size_t cnn = ev->ctx_nick ? strlen(ev->ctx_nick) + 1 : 0;
    size_t sn = ev->subject_nick ? strlen(ev->subject_nick) + 1 : 0;
    uint8_t *blob = kith_malloc(n->env, rn + nn + cn + cnn + sn + text_len + 1);
    qact *a = blob ? q_push(n) : NULL;
    if (!a) {
        kith_free(n->env, blob);
        return;
    }
    a->blob = blob;
    a->a.type = KITH_ACT_EVENT;
    a->a.ev = *ev;
    uint8_t *p = blob;
    if (rn) {
        memcpy(p, ev->room_name, rn);
        a->a.ev.room_name = (const char *)p;
        p += rn;
    }
    if (nn) {
        memcpy(p, ev->nick, nn);
        a->a.ev.nick = (const char *)p;
        p += nn;
    }
    if (cn) {
        memcpy(p, ev->ctx, cn);
        a->a.ev.ctx = (const char *)p;
        p += cn;
    }
    if (cnn) {
        memcpy(p, ev->ctx_nick, cnn);
        a->a.ev.ctx_nick = (const char *)p;
        p += cnn;
    }
    if (sn) {
        memcpy(p, ev->subject_nick, sn);
        a->a.ev.subject_nick = (const char *)p;
        p += sn;
    }
    if (text_len)
        memcpy(p, text, text_len);
    p[text_len] = '\0';
    a->a.ev.text = (const char *)p;
    a->a.ev.text_len = text_len;
}

void node_room_event(kith_node *n, kith_event *ev, const nroom *r)
{
    (void)n;
    if (r) {
        ev->has_room = true;
        memcpy(ev->room_id, kith_room_id(r->room), KITH_HASH_LEN);
        ev->room_name = kith_room_name(r->room);
    }
}

static void vevent(kith_node *n, int type, const nroom *r, int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void vevent(kith_node *n, int type, const nroom *r, int err, const char *fmt, va_list ap)
{
    char text[256];
    vsnprintf(text, sizeof text, fmt, ap);
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.err = err;
    node_room_event(n, &ev, r);
    node_push_event(n, &ev, text, strlen(text));
}

void node_event_error(kith_node *n, const nroom *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vevent(n, KITH_EV_ERROR, r, err, fmt, ap);
    va_end(ap);
}

void node_event_info(kith_node *n, const nroom *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vevent(n, KITH_EV_INFO, r, 0, fmt, ap);
    va_end(ap);
}

int kith_node_poll(kith_node *n, kith_action *out)
{
    kith_free(n->env, n->last_blob);
    n->last_blob = NULL;
    /* The first tick comes at once: dialing members should not wait a
     * tick after start-up. */
    if (!n->timer_armed)
        push_timer(n, n->ticked ? NODE_TICK_MS : 0);
    if (n->qhead == n->qlen) {
        n->qhead = n->qlen = 0;
        if (n->qcap > NODE_Q_KEEP) {
            kith_free(n->env, n->q);
            n->q = NULL;
            n->qcap = 0;
        }
        return 0;
    }
    qact *a = &n->q[n->qhead++];
    *out = a->a;
    n->last_blob = a->blob;
    return 1;
}

/* ---- life cycle ---- */

static void set_nick(kith_node *n, const char *nick)
{
    size_t len = nick ? strnlen(nick, KITH_NICK_MAX) : 0;
    if (!len) {
        nick = "anon";
        len = 4;
    }
    memcpy(n->nick, nick, len);
    n->nick[len] = '\0';
}

int kith_node_new(const kith_env *env, kith_store *store, const kith_identity *self,
    const kith_node_config *cfg, kith_node **out)
{
    *out = NULL;
    kith_node *n = kith_calloc(env, 1, sizeof *n);
    if (!n)
        return KITH_ENOMEM;
    n->env = env;
    n->store = store;
    n->self = self;
    n->next_conn = 1;
    n->invite_ttl_ms = cfg && cfg->invite_ttl_ms ? cfg->invite_ttl_ms : 24ull * 3600 * 1000;
    n->degree = cfg && cfg->degree ? cfg->degree : 8;
    n->rekey_every_ms = cfg && cfg->rekey_every_ms ? cfg->rekey_every_ms : KITH_REKEY_DEFAULT_MS;
    n->no_dial = cfg && cfg->no_dial;
    set_nick(n, cfg ? cfg->nick : NULL);
    if (cfg && cfg->addr) {
        size_t len = strnlen(cfg->addr, KITH_ADDR_MAX);
        memcpy(n->addr, cfg->addr, len);
        n->addr[len] = '\0';
    }
    /* The local key seals what the node keeps about its rooms (ops,
     * invites) at rest; it is derived from the identity seed so nothing new
     * needs storing, and it is as safe as the key file itself. */
    kith_keyed_hash(n->local_key, KITH_KEY_LEN, self->id_sk, "kith/1 local store", NULL, 0);
    kith_buf_init(&n->feed_out, env, 1u << 20);
    kith_buf_init(&n->run_bytes, env, NODE_RUN_MAX * (KITH_MSG_MAX_ENVELOPE + 64));
    kith_buf_init(&n->run_signed, env, NODE_RUN_MAX * (KITH_MSG_MAX_ENVELOPE + 64));
    kith_buf_init(&n->rd_env, env, KITH_STORE_MAX_RECORD);
    kith_buf_init(&n->rd_plain, env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&n->rd_text, env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&n->rd_ctx, env, KITH_MSG_MAX_ENVELOPE);
    n->doc = kith_malloc(env, sizeof *n->doc);
    if (!n->doc) {
        kith_node_free(n);
        return KITH_ENOMEM;
    }
    n->loading = true;
    int rc = node_load(n);
    n->loading = false;
    if (rc) {
        kith_node_free(n);
        return rc;
    }
    node_refresh_dials(n);
    for (size_t i = 0; cfg && i < cfg->npeers; i++) {
        if ((rc = node_add_static_peer(n, cfg->peers[i])) != 0) {
            kith_node_free(n);
            return rc;
        }
    }
    if (cfg && cfg->lan && (rc = node_lan_new(n)) != 0) {
        kith_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

void kith_node_free(kith_node *n)
{
    if (!n)
        return;
    while (n->nconns)
        node_conn_free(n, n->conns[n->nconns - 1]);
    for (size_t i = 0; i < n->nrooms; i++)
        node_room_free(n, n->rooms[i]);
    for (size_t i = n->qhead; i < n->qlen; i++)
        kith_free(n->env, n->q[i].blob);
    kith_free(n->env, n->q);
    kith_free(n->env, n->last_blob);
    for (size_t i = 0; i < n->nout; i++)
        kith_free(n->env, n->out[i].env);
    kith_free(n->env, n->out);
    kith_free(n->env, n->dials);
    kith_map_free(&n->dial_index);
    node_lan_free(n);
    kith_free(n->env, n->doc);
    kith_buf_free(&n->feed_out);
    kith_buf_free(&n->run_bytes);
    kith_buf_free(&n->run_signed);
    for (size_t i = 0; n->run && i < NODE_RUN_MAX; i++)
        kith_buf_free(&n->run[i].plain);
    kith_free(n->env, n->run);
    kith_buf_free(&n->rd_env);
    kith_buf_free(&n->rd_plain);
    kith_buf_free(&n->rd_text);
    kith_buf_free(&n->rd_ctx);
    sodium_memzero(n->local_key, sizeof n->local_key);
    kith_free(n->env, n);
}

/* Group commit: one sync for everything appended since the last flush, then
 * our own messages are shown as sent and transmitted. Transmitting only
 * after the sync means a crash can never make us reuse a sequence number
 * that a peer already saw (which peers would reject as equivocation). */
int kith_node_flush(kith_node *n)
{
    if (kith_store_pending(n->store) == 0 && n->nout == 0) {
        node_gossip_flush(n);
        return 0;
    }
    int rc = kith_store_sync(n->store);
    if (rc) {
        node_event_error(n, NULL, rc, "could not save to disk (%s): %zu messages wait",
            kith_strerror(rc), n->nout);
        return rc;
    }
    for (size_t i = 0; i < n->nout; i++) {
        outmsg *o = &n->out[i];
        nroom *r = o->room;
        /* What the event shows is at hand: no need to read the log. */
        const hist *h = node_hist_at(r, o->hist);
        uint8_t id[KITH_HASH_LEN];
        kith_msg_id(o->env, o->env_len, id);
        kith_inner in;
        memset(&in, 0, sizeof in);
        in.type = h->type;
        in.wall_ms = o->wall_ms;
        in.body = o->env + o->env_len;
        in.body_len = o->body_len;
        in.has_target = h->has_target;
        memcpy(in.target, o->target, KITH_HASH_LEN);
        kith_event ev;
        node_message_event_with(n, r, o->hist, &in, id, &ev);
        ev.self = true;
        node_push_event(n, &ev, ev.text, ev.text_len);
        ev.type = KITH_EV_SENT;
        node_push_event(n, &ev, NULL, 0);
        node_gossip_relay(n, r, h->author, id, o->env, o->env_len, NULL);
        kith_free(n->env, o->env);
        o->env = NULL;
    }
    n->nout = 0;
    node_gossip_flush(n);
    return 0;
}

/* ---- client calls ---- */

int kith_node_create_room(kith_node *n, const char *name, uint8_t room_id[KITH_ROOM_ID_LEN])
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > KITH_ROOM_NAME_MAX)
        return KITH_EINVAL;
    if (n->nrooms >= NODE_MAX_ROOMS)
        return KITH_ETOOBIG;
    kith_buf genesis;
    kith_buf_init(&genesis, n->env, KITH_OP_MAX);
    kith_room *room = NULL;
    int rc = kith_room_create(n->env, n->self, name, n->nick, n->addr, &genesis, &room);
    if (rc) {
        kith_buf_free(&genesis);
        return rc;
    }
    nroom *r;
    rc = node_room_add(n, room, &r);
    if (rc) {
        kith_room_free(room);
        kith_buf_free(&genesis);
        return rc;
    }
    rc = node_persist_op(n, r, genesis.data, genesis.len);
    kith_buf_free(&genesis);
    if (rc) {
        n->nrooms--;
        node_room_free(n, r);
        return rc;
    }
    memcpy(room_id, kith_room_id(room), KITH_ROOM_ID_LEN);
    return 0;
}

int kith_node_invite(
    kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], uint64_t ttl_ms, char *code, size_t cap)
{
    kith_invite_opts o = { .ttl_ms = ttl_ms, .uses = 1, .for_id = NULL };
    return kith_node_invite_ex(n, room_id, &o, code, cap);
}

int kith_node_invite_ex(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const kith_invite_opts *opts, char *code, size_t cap)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    if (!opts)
        return KITH_EINVAL;
    if (!n->addr[0])
        return KITH_ESTATE; /* nobody could reach us with this code */
    if (r->ninv >= NODE_MAX_INVITES)
        return KITH_ETOOBIG;
    const kith_member *me = kith_room_member(r->room, n->self->id_pk);
    if (!me || me->role < KITH_ROLE_MEMBER)
        return KITH_EPERM; /* we could not admit anyone */
    uint32_t uses = opts->uses ? opts->uses : 1;
    kith_invite inv;
    memset(&inv, 0, sizeof inv);
    memcpy(inv.room_id, room_id, KITH_HASH_LEN);
    memcpy(inv.inviter, n->self->id_pk, KITH_ID_LEN);
    kith_random(n->env, inv.secret, sizeof inv.secret);
    memcpy(inv.addr, n->addr, sizeof inv.addr);
    inv.expires_ms = kith_wall_ms(n->env) + (opts->ttl_ms ? opts->ttl_ms : n->invite_ttl_ms);
    int rc = kith_invite_encode(n->env, &inv, code, cap);
    uint8_t rec[INVITE_REC_LEN];
    memset(rec, 0, sizeof rec);
    memcpy(rec, inv.secret, KITH_INVITE_SECRET_LEN);
    kith_put_be64(rec + KITH_INVITE_SECRET_LEN, inv.expires_ms);
    kith_put_be32(rec + INVITE_REC_OLD, uses);
    rec[INVITE_REC_OLD + 4] = opts->for_id != NULL;
    if (opts->for_id)
        memcpy(rec + INVITE_REC_OLD + 5, opts->for_id, KITH_ID_LEN);
    if (!rc)
        rc = node_persist(n, r, REC_INVITE, rec, sizeof rec);
    if (!rc) {
        invite_st *s = kith_realloc(n->env, r->inv, (r->ninv + 1) * sizeof *s);
        if (!s) {
            rc = KITH_ENOMEM;
        } else {
            r->inv = s;
            s = &r->inv[r->ninv++];
            memset(s, 0, sizeof *s);
            memcpy(s->secret, inv.secret, sizeof s->secret);
            kith_invite_id(inv.secret, s->id);
            s->expires_ms = inv.expires_ms;
            s->uses = uses;
            s->bound = opts->for_id != NULL;
            if (opts->for_id)
                memcpy(s->for_id, opts->for_id, KITH_ID_LEN);
            /* The invite-issued op: every member sees that an invite
             * exists (its id, expiry and uses, never its secret), and a
             * moderator can revoke it in the log. */
            kith_buf op;
            kith_buf_init(&op, n->env, KITH_OP_MAX);
            int orc = kith_room_invite_issued(r->room, s->id, s->expires_ms, uses, &op);
            if (!orc)
                orc = node_publish_op(n, r, &op);
            kith_buf_free(&op);
            if (orc)
                KITH_LOGW(n->env, "could not publish an invite: %s", kith_strerror(orc));
        }
    }
    sodium_memzero(rec, sizeof rec);
    sodium_memzero(&inv, sizeof inv);
    return rc;
}

int kith_node_set_nick(kith_node *n, const char *nick)
{
    size_t len = nick ? strlen(nick) : 0;
    if (len == 0 || len > KITH_NICK_MAX)
        return KITH_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)nick[i];
        if (c < 0x21 || c == 0x7f)
            return KITH_EINVAL; /* no spaces or control characters */
    }
    set_nick(n, nick);
    for (size_t i = 0; i < n->nrooms; i++) {
        uint64_t seq;
        int rc = kith_node_send(n, kith_room_id(n->rooms[i]->room), KITH_MSG_NICK, nick, len, &seq);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- queries ---- */

const char *kith_node_nick(const kith_node *n)
{
    return n->nick;
}

void kith_node_fingerprint(const kith_node *n, char out[24])
{
    kith_fingerprint(n->self->id_pk, out);
}

size_t kith_node_room_count(const kith_node *n)
{
    return n->nrooms;
}

static void fill_info(const kith_node *n, const nroom *r, kith_room_info *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->id, kith_room_id(r->room), KITH_ROOM_ID_LEN);
    out->name = kith_room_name(r->room);
    out->members = kith_room_member_count(r->room);
    out->epoch = kith_room_epoch(r->room);
    for (size_t i = 0; i < out->members; i++) {
        const kith_member *m = kith_room_member_at(r->room, i);
        if (memcmp(m->id, n->self->id_pk, KITH_ID_LEN) == 0 || node_peer_online(n, m->id))
            out->online++;
    }
    for (size_t i = 0; i < r->nhist; i++)
        out->messages += node_hist_visible(node_hist_at(r, i));
    out->topic = kith_room_topic(r->room);
    out->member = node_is_member(r, n->self->id_pk);
    node_safety_string(r, out->safety);
}

int kith_node_room_at(const kith_node *n, size_t i, kith_room_info *out)
{
    if (i >= n->nrooms)
        return KITH_ENOENT;
    fill_info(n, n->rooms[i], out);
    return 0;
}

int kith_node_room_info(
    const kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], kith_room_info *out)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    fill_info(n, r, out);
    return 0;
}

int kith_node_room_find(const kith_node *n, const char *q, uint8_t room_id[KITH_ROOM_ID_LEN])
{
    if (!q || !*q)
        return KITH_EINVAL;
    if (q[0] == '#')
        q++;
    for (size_t i = 0; i < n->nrooms; i++) {
        if (strcmp(kith_room_name(n->rooms[i]->room), q) == 0) {
            memcpy(room_id, kith_room_id(n->rooms[i]->room), KITH_ROOM_ID_LEN);
            return 0;
        }
    }
    size_t len = strlen(q);
    if (len < 4 || len > 64)
        return KITH_ENOENT;
    int found = -1;
    for (size_t i = 0; i < n->nrooms; i++) {
        char hex[65];
        kith_hex(hex, kith_room_id(n->rooms[i]->room), KITH_HASH_LEN);
        if (strncmp(hex, q, len) == 0) {
            if (found >= 0)
                return KITH_EEXIST; /* ambiguous prefix */
            found = (int)i;
        }
    }
    if (found < 0)
        return KITH_ENOENT;
    memcpy(room_id, kith_room_id(n->rooms[found]->room), KITH_ROOM_ID_LEN);
    return 0;
}

size_t kith_node_member_count(const kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN])
{
    nroom *r = node_room_by_id(n, room_id);
    return r ? kith_room_member_count(r->room) : 0;
}

int kith_node_member_at(
    const kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], size_t i, kith_member_info *out)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r || i >= kith_room_member_count(r->room))
        return KITH_ENOENT;
    const kith_member *m = kith_room_member_at(r->room, i);
    memset(out, 0, sizeof *out);
    memcpy(out->id, m->id, KITH_ID_LEN);
    out->self = memcmp(m->id, n->self->id_pk, KITH_ID_LEN) == 0;
    out->nick = node_display(n, r, m->id);
    kith_fingerprint(m->id, out->fingerprint);
    out->role = m->role;
    out->online = out->self || node_peer_online(n, m->id);
    return 0;
}

/* The reactions to history entry i, as events: one per (reactor, emoji),
 * grouped by emoji in the order each emoji first came. A member could post
 * thousands; the first HIST_REACTIONS_MAX are shown. */
#define HIST_REACTIONS_MAX 128
static void history_reactions(kith_node *n, nroom *r, size_t i, kith_history_cb cb, void *ud)
{
    size_t idx[HIST_REACTIONS_MAX], k = 0;
    for (size_t at = node_hist_at(r, i)->react; at; at = node_hist_at(r, at - 1)->react) {
        const hist *x = node_hist_at(r, at - 1);
        if (x->deleted)
            continue;
        if (k == HIST_REACTIONS_MAX) {
            memmove(idx, idx + 1, (k - 1) * sizeof idx[0]); /* keep the earliest */
            k--;
        }
        idx[k++] = at - 1;
    }
    /* The list runs newest first: reverse it. */
    for (size_t a = 0, b = k; a + 1 < b; a++, b--) {
        size_t t = idx[a];
        idx[a] = idx[b - 1];
        idx[b - 1] = t;
    }
    /* Their texts (a reaction is short), read back from the log. */
    char txt[HIST_REACTIONS_MAX][KITH_MSG_MAX_REACTION + 1];
    size_t tl[HIST_REACTIONS_MAX];
    for (size_t a = 0; a < k; a++) {
        size_t len;
        const char *t = node_hist_text(n, r, idx[a], &n->rd_text, &len);
        tl[a] = KITH_MIN(len, (size_t)KITH_MSG_MAX_REACTION);
        memcpy(txt[a], t, tl[a]);
    }
    bool done[HIST_REACTIONS_MAX] = { false };
    for (size_t a = 0; a < k; a++) {
        if (done[a])
            continue;
        for (size_t b = a; b < k; b++) {
            const hist *hb = node_hist_at(r, idx[b]);
            if (done[b] || tl[b] != tl[a] || memcmp(txt[b], txt[a], tl[a]) != 0)
                continue;
            done[b] = true;
            /* One per reactor: the same emoji twice from one member counts once. */
            bool dup = false;
            for (size_t c = a; c < b && !dup; c++) {
                const hist *hc = node_hist_at(r, idx[c]);
                dup = c != b && tl[c] == tl[b] && memcmp(txt[c], txt[b], tl[b]) == 0
                    && memcmp(node_hist_author(r, hc), node_hist_author(r, hb), KITH_ID_LEN) == 0;
            }
            if (dup)
                continue;
            kith_event ev;
            node_message_event(n, r, idx[b], &ev);
            ev.history = true;
            cb(ud, &ev);
        }
    }
}

int kith_node_history(
    kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], size_t max, kith_history_cb cb, void *ud)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    /* Walk back to find where the last `max` visible messages start. */
    size_t start = r->nhist, shown = 0;
    while (start > 0 && shown < max) {
        start--;
        shown += node_hist_visible(node_hist_at(r, start));
    }
    for (size_t i = start; i < r->nhist; i++) {
        const hist *h = node_hist_at(r, i);
        if (!node_hist_visible(h))
            continue;
        kith_event ev;
        node_message_event(n, r, i, &ev);
        ev.history = true;
        cb(ud, &ev);
        if (!h->deleted)
            history_reactions(n, r, i, cb, ud);
    }
    return 0;
}
