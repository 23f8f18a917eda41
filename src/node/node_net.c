/* node/node_net: the node's connections — sessions, the node protocol frames
 * (proto/kith.md §6), joining with an invite, sync on connect, and dialing
 * members with backoff. A peer that sends anything malformed or unverifiable
 * is disconnected: garbage is never applied or passed on. */
#include <sodium.h>
#include <stdio.h>

#include "node/node_impl.h"

static nconn *conn_by_id(const kith_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->nconns; i++) {
        if (n->conns[i]->id == id)
            return n->conns[i];
    }
    return NULL;
}

nconn *node_conn_find(const kith_node *n, uint64_t id)
{
    return conn_by_id(n, id);
}

bool node_peer_online(const kith_node *n, const uint8_t id[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->nconns; i++) {
        const nconn *c = n->conns[i];
        if (c->established && memcmp(c->peer, id, KITH_ID_LEN) == 0)
            return true;
    }
    return false;
}

static bool shares_room(const kith_node *n, const uint8_t id[KITH_ID_LEN]);
static void conn_fail(kith_node *n, nconn *c, const char *reason);

/* Threat: whoever answers a dial learns our static key and member id from
 * Noise message 3. A replayed or forged LAN beacon, a stale address or a
 * doctored invite can make us dial a stranger, so before message 3 the
 * responder, whose identity message 2 just proved, must be someone the dial
 * was for: the invite's inviter; for a LAN dial a current member of a room
 * whose tag the beacon carried; for any other dial a current member of one
 * of our rooms. Anyone else gets no message 3 and the address is backed
 * off. A knock is the exception: the knocker asks strangers to let it in
 * and has no one to check against, so it shows its identity to whoever
 * answers at the beacon's address (proto/kith.md section 8). */
static int check_responder(void *ud, const uint8_t id[KITH_ID_LEN], const uint8_t dh[KITH_DH_LEN])
{
    (void)dh;
    kith_node *n = ud;
    nconn *c = n->feeding;
    if (!c)
        return KITH_ESTATE; /* only ever called from inside a feed */
    if (c->joining && c->knock)
        return 0;
    if (c->joining) {
        if (memcmp(id, c->inv.inviter, KITH_ID_LEN) == 0)
            return 0;
        node_event_error(n, NULL, KITH_ECRYPTO,
            "join failed: the node at %s is not the one that wrote the invite", c->inv.addr);
        c->joining = false; /* reported: conn_gone must not report it again */
        KITH_LOGW(
            n->env, "the node at %s is not the inviter: not telling it who we are", c->inv.addr);
        conn_fail(n, c, "wrong inviter");
        return KITH_EPERM;
    }
    if (c->origin == ORIGIN_LAN) {
        if (node_lan_check_responder(n, c, id) == 0)
            return 0;
        conn_fail(n, c, "LAN responder is not a member");
        return KITH_EPERM;
    }
    if (shares_room(n, id))
        return 0;
    const char *addr = c->dial >= 0 && (size_t)c->dial < n->ndials ? n->dials[c->dial].addr : "?";
    KITH_LOGW(
        n->env, "the node at %s is not a member of our rooms: not telling it who we are", addr);
    conn_fail(n, c, "responder shares no room");
    return KITH_EPERM;
}

static nconn *conn_new(kith_node *n, bool outbound)
{
    if (n->nconns >= NODE_MAX_CONNS)
        return NULL;
    nconn *c = kith_calloc(n->env, 1, sizeof *c);
    if (!c)
        return NULL;
    if (kith_session_new(n->env, n->self, outbound, &c->s)) {
        kith_free(n->env, c);
        return NULL;
    }
    if (outbound)
        kith_session_set_peer_check(c->s, check_responder, n);
    c->id = n->next_conn++;
    c->outbound = outbound;
    c->dial = -1;
    c->started_ms = kith_mono_ms(n->env);
    n->conns[n->nconns++] = c;
    return c;
}

nconn *node_conn_open(kith_node *n, bool outbound)
{
    return conn_new(n, outbound);
}

static const char *peer_nick(const kith_node *n, const uint8_t id[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->nrooms; i++) {
        if (node_is_member(n->rooms[i], id))
            return node_display(n, n->rooms[i], id);
    }
    return NULL;
}

static void peer_event(kith_node *n, int type, const uint8_t id[KITH_ID_LEN])
{
    const char *nick = peer_nick(n, id);
    if (!nick)
        return;
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    memcpy(ev.author, id, KITH_ID_LEN);
    ev.nick = nick;
    node_push_event(n, &ev, NULL, 0);
}

void node_conn_free(kith_node *n, nconn *c)
{
    for (size_t i = 0; i < n->nconns; i++) {
        if (n->conns[i] == c) {
            n->conns[i] = n->conns[--n->nconns];
            break;
        }
    }
    if (c->dial >= 0 && (size_t)c->dial < n->ndials && n->dials[c->dial].conn == c->id)
        n->dials[c->dial].conn = 0;
    /* A room left without any link: what comes on the next one is a
     * catch-up (node_catchup_sync), not live traffic. */
    for (size_t r = 0; c->established && r < n->nrooms; r++) {
        nroom *room = n->rooms[r];
        if (!node_is_member(room, c->peer))
            continue;
        bool linked = false;
        for (size_t i = 0; i < n->nconns && !linked; i++)
            linked = n->conns[i]->established && node_is_member(room, n->conns[i]->peer);
        if (!linked)
            room->cu_ready = true;
    }
    kith_session_free(c->s);
    sodium_memzero(&c->inv, sizeof c->inv);
    kith_buf_free(&c->join_ops);
    kith_free(n->env, c);
}

/* Joiner: ask over an established link with the inviter, if there is one
 * (it serves other rooms we share). True when asked. */
static void send_join_req(kith_node *n, nconn *c);
static bool join_over_link(kith_node *n, const kith_invite *inv)
{
    for (size_t i = 0; i < n->nconns; i++) {
        nconn *o = n->conns[i];
        if (o->established && !o->joining && !o->doomed
            && memcmp(o->peer, inv->inviter, KITH_ID_LEN) == 0) {
            o->joining = true;
            o->join_on_link = true;
            o->join_link = true;
            o->inv = *inv;
            o->started_ms = kith_mono_ms(n->env);
            send_join_req(n, o);
            return true;
        }
    }
    return false;
}

/* The connection is gone (closed by us or by the network). A join it
 * carried moves to another link with the inviter if one is up: a join
 * connection can lose to a link the two nodes made meanwhile for another
 * room they share, the inviter closing it as a duplicate. */
static void conn_gone(kith_node *n, nconn *c, bool tell_driver, const char *reason)
{
    if (tell_driver)
        node_push_close(n, c->id, reason);
    if (c->joining && !c->join_on_link && join_over_link(n, &c->inv)) {
        c->joining = false; /* moved to a link that came up meanwhile */
        sodium_memzero(&c->inv, sizeof c->inv);
    }
    if (c->joining) {
        node_event_error(n, NULL, KITH_EIO, "join failed: %s",
            c->established ? "the inviter closed the connection" : "could not reach the inviter");
    }
    if (c->dial >= 0 && (size_t)c->dial < n->ndials) {
        dial_st *d = &n->dials[c->dial];
        if (d->conn == c->id) {
            d->conn = 0;
            if (!c->established) {
                d->backoff_ms = d->backoff_ms ? KITH_MIN(d->backoff_ms * 2, NODE_BACKOFF_MAX_MS)
                                              : NODE_BACKOFF_MIN_MS;
                if (d->fails < 255)
                    d->fails++;
            }
            d->next_ms
                = kith_mono_ms(n->env) + (d->backoff_ms ? d->backoff_ms : NODE_BACKOFF_MIN_MS);
        }
    }
    bool was_up = c->established;
    uint8_t peer[KITH_ID_LEN];
    memcpy(peer, c->peer, KITH_ID_LEN);
    uint64_t cid = c->id;
    node_conn_free(n, c);
    /* The peer that served a bulk catch-up is gone: the others were not
     * asked for more meanwhile (on_sync), so ask them now. */
    for (size_t i = 0; i < n->nrooms; i++) {
        nroom *r = n->rooms[i];
        if (r->catchup && r->cu_src == cid) {
            r->cu_src = 0;
            node_sync_links(n, r);
        }
    }
    if (was_up && !node_peer_online(n, peer))
        peer_event(n, KITH_EV_PEER_DOWN, peer);
}

static void conn_fail(kith_node *n, nconn *c, const char *reason)
{
    if (n->feeding == c) {
        c->doomed = true;
        c->doom_reason = reason;
        return;
    }
    KITH_LOGI(n->env, "closing connection %llu: %s", (unsigned long long)c->id, reason);
    conn_gone(n, c, true, reason);
}

/* Handshake bytes produced during a feed go out before anything the frame
 * handlers send in the same turn. */
static void flush_feed_out(kith_node *n, nconn *c)
{
    if (n->feed_out.len) {
        node_push_write(n, c->id, n->feed_out.data, n->feed_out.len);
        kith_buf_reset(&n->feed_out);
    }
}

/* Wire bytes by frame kind, for /stats (every frame starts 8x 00 type). */
static void count_wire(kith_node *n, const kith_buf *frame, size_t len)
{
    if (frame->len < 3 || frame->data[1] != 0)
        return;
    switch (frame->data[2]) {
    case KITH_FR_MSG:
        n->stats.wire_msg_out += len;
        break;
    case KITH_FR_IHAVE:
        n->stats.wire_ihave_out += len;
        break;
    case KITH_FR_WANT:
        n->stats.wire_want_out += len;
        break;
    case KITH_FR_PRUNE:
        n->stats.wire_prune_out += len;
        break;
    case KITH_FR_SYNC:
        n->stats.wire_sync_out += len;
        break;
    case KITH_FR_OP:
        n->stats.wire_op_out += len;
        break;
    case KITH_FR_ADDR:
        n->stats.wire_addr_out += len;
        break;
    default:
        break;
    }
}

int node_conn_send(kith_node *n, nconn *c, const kith_buf *frame)
{
    if (n->feeding == c)
        flush_feed_out(n, c);
    kith_buf out;
    kith_buf_init(&out, n->env, KITH_SESSION_MAX_APP + KITH_SESSION_MAX_APP / 16);
    int rc = kith_session_send(c->s, frame->data, frame->len, &out);
    if (!rc) {
        node_push_write(n, c->id, out.data, out.len);
        count_wire(n, frame, out.len);
    }
    kith_buf_free(&out);
    return rc;
}

void node_broadcast(kith_node *n, nroom *r, const kith_buf *frame, const nconn *except)
{
    /* Backwards: a failed send frees its conn, moving the last one here. */
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *c = n->conns[i - 1];
        if (c == except || !c->established || c->joining || !node_is_member(r, c->peer))
            continue;
        if (node_conn_send(n, c, frame))
            conn_fail(n, c, "could not send");
    }
}

/* ---- sync ---- */

void node_send_sync(kith_node *n, nconn *c, nroom *r)
{
    /* Once we left or were removed, we ask nobody for the room any more
     * (we still answer a member who asks us: it may want our ops). */
    if (!node_is_member(r, n->self->id_pk))
        return;
    size_t na = r->nauthors;
    uint8_t(*authors)[KITH_ID_LEN] = kith_calloc(n->env, na ? na : 1, KITH_ID_LEN);
    uint64_t *seqs = kith_calloc(n->env, na ? na : 1, sizeof *seqs);
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    if (authors && seqs) {
        for (size_t i = 0; i < na; i++) {
            memcpy(authors[i], r->authors[i].id, KITH_ID_LEN);
            seqs[i] = r->authors[i].seq;
        }
        /* Holding an op whose parent we lack: ask for the whole log (op
         * counts alone can't show two different sets of equal size). */
        size_t nops = r->nheld_ops ? 0 : kith_room_op_count(r->room);
        if (kith_frame_sync(&frame, kith_room_id(r->room), nops,
                (const uint8_t(*)[KITH_ID_LEN])authors, seqs, KITH_MIN(na, KITH_FRAME_MAX_VEC))
                == 0
            && node_conn_send(n, c, &frame) != 0)
            conn_fail(n, c, "could not send");
    }
    c->last_sync_ms = kith_mono_ms(n->env);
    kith_buf_free(&frame);
    kith_free(n->env, authors);
    kith_free(n->env, seqs);
}

/* Answer a SYNC: the ops the peer lacks, then the messages it lacks, oldest
 * first, up to a batch limit; past the limit we send our own SYNC back,
 * which makes the peer ask again once it has processed this batch. */
static int on_sync(kith_node *n, nconn *c, nroom *r, const kith_frame *f)
{
    node_catchup_sync(n, r, f);
    kith_map theirs;
    kith_map_init(&theirs, n->env, KITH_FRAME_MAX_VEC);
    int rc = 0;
    for (size_t i = 0; i < f->count && !rc; i++) {
        uint8_t author[KITH_ID_LEN];
        uint64_t seq;
        rc = kith_frame_vec_at(f, i, author, &seq);
        if (!rc)
            rc = kith_map_put(&theirs, author, seq);
    }
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    size_t nops = kith_room_op_count(r->room);
    /* All ops when the peer has fewer; else our latest few, so that two
     * logs of equal size but different ops still meet (the peer asks for
     * everything if one of them lacks a parent there). */
    size_t from = f->nops < nops ? 0 : nops - KITH_MIN(nops, (size_t)4);
    /* Not again when they went over this link with both counts as now
     * (the periodic SYNC would resend ~2 KB of ops every minute). */
    bool again = memcmp(c->ops_room, kith_room_id(r->room), KITH_HASH_LEN) == 0
        && c->ops_ours == nops && c->ops_theirs == f->nops;
    if (f->nops >= nops && again)
        from = nops;
    else if (f->nops >= nops) {
        memcpy(c->ops_room, kith_room_id(r->room), KITH_HASH_LEN);
        c->ops_ours = nops;
        c->ops_theirs = f->nops;
    }
    for (size_t i = from; !rc && i < nops; i++) {
        size_t len;
        const uint8_t *op = kith_room_op_at(r->room, i, &len);
        kith_buf_reset(&frame);
        rc = kith_frame_op(&frame, kith_room_id(r->room), op, len);
        if (!rc)
            rc = node_conn_send(n, c, &frame);
    }
    size_t sent = 0;
    bool more = false;
    /* What the peer holds of each of our authors. */
    uint64_t *have = kith_calloc(n->env, r->nauthors ? r->nauthors : 1, sizeof *have);
    if (!have && !rc)
        rc = KITH_ENOMEM;
    size_t pending = 0;
    for (size_t k = 0; !rc && k < r->nauthors; k++) {
        kith_map_get(&theirs, r->authors[k].id, &have[k]);
        pending += r->authors[k].seq > have[k];
    }
    /* Start at the oldest message the peer lacks, not at the beginning of
     * history: a long catch-up asks many times. Each author's messages
     * are in the history in sequence order, so walking back from the end
     * finds it once every author the peer lacks messages of has shown the
     * first one the peer lacks. */
    size_t start = r->nhist;
    for (size_t i = r->nhist; !rc && i > 0 && pending; i--) {
        const hist *h = node_hist_at(r, i - 1);
        if (h->seq == have[h->author] + 1) {
            start = i - 1;
            pending--;
        }
    }
    /* What we sent this link in answer to its last SYNC is on its way (a
     * stream loses nothing): a SYNC that crossed that batch would get it
     * again, and a catch-up asks twice at the start (its SYNC on connect,
     * and its answer to ours), which doubled every batch after. Go on from
     * where that batch stopped, unless the peer lacks ops (it may have
     * dropped messages of authors it did not know) or it is old. */
    uint64_t now = kith_mono_ms(n->env);
    if (memcmp(c->served_room, kith_room_id(r->room), KITH_HASH_LEN) == 0 && f->nops >= nops
        && now - c->served_ms < NODE_SERVED_WINDOW_MS && c->served_to > start
        && c->served_to <= r->nhist)
        start = c->served_to;
    size_t next = start;
    kith_buf env;
    kith_buf_init(&env, n->env, KITH_MSG_MAX_ENVELOPE);
    for (size_t i = start; !rc && i < r->nhist; i++, next = i) {
        const hist *h = node_hist_at(r, i);
        if (h->seq <= have[h->author])
            continue;
        /* Our own unsent messages go out after the flush, not here. */
        bool unsent = false;
        for (size_t o = 0; o < n->nout; o++)
            unsent |= n->out[o].room == r && n->out[o].hist == i;
        if (unsent)
            continue;
        if (sent >= NODE_SYNC_BATCH_BYTES) {
            more = true;
            break;
        }
        kith_buf_reset(&env);
        if (node_hist_env(n, r, i, &env, NULL) != 0)
            continue; /* logged; the peer asks again at the next sync */
        kith_buf_reset(&frame);
        rc = kith_frame_msg_pulled(&frame, env.data, env.len);
        if (!rc)
            rc = node_conn_send(n, c, &frame);
        n->stats.msgs_out += rc == 0;
        sent += h->env_len;
    }
    kith_buf_free(&env);
    kith_buf_free(&frame);
    kith_map_free(&theirs);
    kith_free(n->env, have);
    if (sent) {
        memcpy(c->served_room, kith_room_id(r->room), KITH_HASH_LEN);
        c->served_to = next;
        c->served_ms = now;
    }
    /* The peer holds what we lack (or it sent its SYNC to say "there is
     * more"): ask at once rather than at the next periodic sync. Each side
     * asks only while the other is ahead, so the exchange ends. */
    bool behind = f->nops > nops;
    for (size_t i = 0; !rc && !behind && i < f->count; i++) {
        uint8_t author[KITH_ID_LEN];
        uint64_t seq;
        if (kith_frame_vec_at(f, i, author, &seq) == 0) {
            const author_st *a = node_author(n, r, author, false);
            behind = seq > (a ? a->seq : 0);
        }
    }
    bool ask = !rc && (more || behind);
    if (ask && r->catchup) {
        /* A bulk catch-up is served by one peer: every peer would send the
         * same batches, and each copy costs both ends (the first batches
         * still come from all, as everyone answers the SYNC on connect). */
        nconn *src = r->cu_src ? conn_by_id(n, r->cu_src) : NULL;
        if (!src || !src->established || src->doomed)
            r->cu_src = c->id;
        else if (src != c)
            ask = false;
    }
    if (ask) {
        node_send_sync(n, c, r);
    } else if (!rc && r->catchup && r->cu_src == c->id) {
        /* The peer serving the catch-up has nothing more, yet others
         * claimed more: ask them all now (not after the stall). */
        r->cu_src = 0;
        node_sync_links(n, r);
    }
    return rc;
}

void node_sync_links(kith_node *n, nroom *r)
{
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *c = n->conns[i - 1];
        if (c->established && !c->joining && !c->doomed && node_is_member(r, c->peer))
            node_send_sync(n, c, r);
    }
}

/* ---- joining ---- */

static void send_join_err(
    kith_node *n, nconn *c, const uint8_t room_id[KITH_HASH_LEN], const char *reason)
{
    kith_buf frame;
    kith_buf_init(&frame, n->env, 512);
    if (kith_frame_join_err(&frame, room_id, reason) == 0 && node_conn_send(n, c, &frame) != 0)
        conn_fail(n, c, "could not send");
    kith_buf_free(&frame);
}

void node_send_join_err(
    kith_node *n, nconn *c, const uint8_t room_id[KITH_HASH_LEN], const char *reason)
{
    send_join_err(n, c, room_id, reason);
}

/* The room's whole log, in as many JOIN_OK parts as it takes: a room of
 * about a thousand members has more than one frame's worth of ops. */
static int send_join_ok(kith_node *n, nconn *c, nroom *r)
{
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    size_t nops = kith_room_op_count(r->room), at = 0;
    int rc = 0;
    while (!rc && at < nops) {
        kith_buf_reset(&frame);
        rc = kith_frame_join_ok(&frame, r->room, at, &at);
        if (!rc)
            rc = node_conn_send(n, c, &frame);
    }
    kith_buf_free(&frame);
    return rc;
}

/* Inviter side: the joiner proves it holds an invite secret we issued,
 * bound to this session's handshake hash so the proof can't be replayed on
 * another connection. */
static int on_join_req(kith_node *n, nconn *c, const kith_frame *f)
{
    nroom *r = node_room_by_id(n, f->room_id);
    if (!r) {
        send_join_err(n, c, f->room_id, "this node is not in that room");
        return 0;
    }
    if (node_is_member(r, c->peer)) {
        /* A retry after a lost answer: send the room again. */
        return send_join_ok(n, c, r);
    }
    invite_st *match = NULL;
    for (size_t i = 0; i < r->ninv && !match; i++) {
        uint8_t proof[KITH_HASH_LEN];
        kith_invite_proof(r->inv[i].secret, f->room_id, c->peer, kith_session_binding(c->s), proof);
        if (sodium_memcmp(proof, f->proof, KITH_HASH_LEN) == 0)
            match = &r->inv[i];
    }
    if (!match) {
        send_join_err(n, c, f->room_id, "invite not recognised");
        return 0;
    }
    if (match->revoked || kith_room_invite_revoked(r->room, match->id)) {
        send_join_err(n, c, f->room_id, "invite revoked");
        return 0;
    }
    if (match->bound && memcmp(match->for_id, c->peer, KITH_ID_LEN) != 0) {
        send_join_err(n, c, f->room_id, "invite is for someone else");
        return 0;
    }
    if (match->used) {
        send_join_err(n, c, f->room_id, "invite already used");
        return 0;
    }
    if (kith_wall_ms(n->env) > match->expires_ms) {
        send_join_err(n, c, f->room_id, "invite expired");
        return 0;
    }
    bool admitted = false;
    int rc = node_admit(n, c, r, f->cert, f->nick, f->addr, match->id, &admitted);
    if (admitted)
        match->used = ++match->nused >= match->uses;
    return rc;
}

int node_admit(kith_node *n, nconn *c, nroom *r, const uint8_t cert[KITH_SIG_LEN], const char *nick,
    const char *addr, const uint8_t *invite_id, bool *admitted)
{
    *admitted = false;
    kith_buf op;
    kith_buf_init(&op, n->env, KITH_OP_MAX);
    size_t before = kith_room_member_count(r->room);
    int rc = kith_room_add(
        r->room, c->peer, kith_session_peer_dh(c->s), cert, nick, addr, invite_id, &op);
    if (rc) {
        kith_buf_free(&op);
        send_join_err(n, c, kith_room_id(r->room), "could not admit you (bad certificate?)");
        KITH_LOGW(n->env, "join refused: %s", kith_strerror(rc));
        return 0;
    }
    *admitted = true;
    c->join_link = true;
    rc = node_persist_op(n, r, op.data, op.len);
    if (!rc && invite_id)
        rc = node_persist(n, r, REC_INVITE_USED, invite_id, KITH_HASH_LEN);
    if (rc)
        KITH_LOGE(n->env, "could not log the new member: %s", kith_strerror(rc));
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    if (kith_frame_op(&frame, kith_room_id(r->room), op.data, op.len) == 0)
        node_broadcast(n, r, &frame, c);
    kith_buf_free(&frame);
    kith_buf_free(&op);
    for (size_t i = before; i < kith_room_member_count(r->room); i++) {
        const kith_member *m = kith_room_member_at(r->room, i);
        kith_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = KITH_EV_JOIN;
        node_room_event(n, &ev, r);
        memcpy(ev.author, m->id, KITH_ID_LEN);
        node_names_renamed(n, r, m->id); /* a new person, or one back with another name */
        ev.nick = node_display(n, r, m->id);
        node_push_event(n, &ev, NULL, 0);
    }
    rc = send_join_ok(n, c, r);
    if (!rc)
        node_send_sync(n, c, r);
    node_refresh_dials(n);
    peer_event(n, KITH_EV_PEER_UP, c->peer);
    return rc;
}

static int join_op_at(const nconn *c, size_t *off, const uint8_t **op, size_t *len)
{
    const kith_buf *b = &c->join_ops;
    if (*off + 4 > b->len)
        return KITH_EPROTO;
    size_t l = kith_get_be32(b->data + *off);
    if (l > b->len - *off - 4)
        return KITH_EPROTO;
    *op = b->data + *off + 4;
    *len = l;
    *off += 4 + l;
    return 0;
}

/* Joiner side, once every part is in: rebuild the room from its ops,
 * verified from the genesis. */
static int join_finish(kith_node *n, nconn *c)
{
    size_t off = 0;
    const uint8_t *op;
    size_t len;
    int rc = join_op_at(c, &off, &op, &len);
    if (rc)
        return rc;
    kith_room *room;
    rc = kith_room_open(n->env, n->self, op, len, &room);
    if (rc)
        return rc;
    if (memcmp(kith_room_id(room), c->inv.room_id, KITH_HASH_LEN) != 0
        || (c->knock && strcmp(kith_room_name(room), c->knock_name) != 0)) {
        kith_room_free(room);
        return KITH_EPROTO;
    }
    nroom *r;
    rc = node_room_add(n, room, &r);
    if (rc) {
        kith_room_free(room);
        return rc;
    }
    rc = node_persist_op(n, r, op, len);
    for (size_t i = 1; !rc && i < c->join_nops; i++) {
        rc = join_op_at(c, &off, &op, &len);
        if (!rc)
            rc = node_apply_op(n, r, op, len, true, false);
        if (rc == KITH_EEXIST)
            rc = 0;
    }
    if (!rc && (!node_is_member(r, n->self->id_pk) || !r->has_tag))
        rc = KITH_EPROTO; /* the inviter did not admit us after all */
    if (rc) {
        n->nrooms--;
        node_room_free(n, r);
        return rc;
    }
    c->joining = false;
    c->join_on_link = false;
    sodium_memzero(&c->inv, sizeof c->inv);
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_ROOM;
    node_room_event(n, &ev, r);
    node_push_event(n, &ev, NULL, 0);
    peer_event(n, KITH_EV_PEER_UP, c->peer);
    node_send_sync(n, c, r);
    node_refresh_dials(n);
    return 0;
}

/* Joiner side: collect the ops of each JOIN_OK part; the last one (not
 * marked "more") completes the join. */
static int on_join_ok(kith_node *n, nconn *c, const kith_frame *f)
{
    /* A knock names the room, not its id: the id comes with the answer and
     * the room's name is checked once the genesis is verified. */
    if (c->joining && c->knock && !c->join_nops)
        memcpy(c->inv.room_id, f->room_id, KITH_HASH_LEN);
    if (!c->joining || memcmp(f->room_id, c->inv.room_id, KITH_HASH_LEN) != 0)
        return KITH_EPROTO;
    if (!c->join_nops)
        kith_buf_init(&c->join_ops, n->env, NODE_JOIN_MAX_BYTES);
    int rc = c->join_nops + f->count > KITH_ROOM_MAX_OPS ? KITH_ETOOBIG : 0;
    for (size_t i = 0; !rc && i < f->count; i++) {
        const uint8_t *op;
        size_t len;
        uint8_t hdr[4];
        rc = kith_frame_op_at(f, i, &op, &len);
        kith_put_be32(hdr, (uint32_t)len);
        if (!rc)
            rc = kith_buf_append(&c->join_ops, hdr, sizeof hdr);
        if (!rc)
            rc = kith_buf_append(&c->join_ops, op, len);
    }
    c->join_nops += f->count;
    if (rc == KITH_ETOOBIG) {
        node_event_error(n, NULL, rc, "join failed: the room's log is bigger than %u MiB",
            NODE_JOIN_MAX_BYTES >> 20);
        c->joining = false; /* reported: conn_gone must not report it again */
    }
    if (!rc && !f->more)
        rc = join_finish(n, c);
    if (rc || !f->more) {
        kith_buf_free(&c->join_ops);
        c->join_nops = 0;
    }
    return rc;
}

int kith_node_join(kith_node *n, const char *code)
{
    kith_invite inv;
    int rc = kith_invite_decode(n->env, code, &inv);
    if (rc)
        return rc;
    if (node_room_by_id(n, inv.room_id)) {
        sodium_memzero(&inv, sizeof inv);
        return KITH_EEXIST;
    }
    if (kith_wall_ms(n->env) > inv.expires_ms) {
        sodium_memzero(&inv, sizeof inv);
        return KITH_EEXPIRED;
    }
    if (memcmp(inv.inviter, n->self->id_pk, KITH_ID_LEN) == 0) {
        sodium_memzero(&inv, sizeof inv);
        return KITH_EINVAL; /* our own invite */
    }
    /* Already linked with the inviter (through another room): ask over
     * that link. A second connection would be closed by the inviter as a
     * duplicate of the first before it could ask. */
    if (join_over_link(n, &inv)) {
        sodium_memzero(&inv, sizeof inv);
        return 0;
    }
    nconn *c = conn_new(n, true);
    if (!c) {
        sodium_memzero(&inv, sizeof inv);
        return KITH_ENOMEM;
    }
    c->joining = true;
    c->join_link = true;
    c->origin = ORIGIN_INVITE;
    c->inv = inv;
    sodium_memzero(&inv, sizeof inv);
    node_push_connect(n, c->id, c->inv.addr);
    return 0;
}

/* ---- frames ---- */

static void on_established(kith_node *n, nconn *c);

typedef struct feed_ctx {
    kith_node *n;
    nconn *c;
} feed_ctx;

static int on_msg(kith_node *n, nconn *c, const uint8_t *data, size_t len, bool pulled)
{
    nroom *r;
    int rc;
    if (n->pre) {
        r = n->pre->room; /* parsed and found with its run */
    } else {
        kith_envelope e;
        rc = kith_msg_parse_envelope(n->env, data, len, &e);
        if (rc)
            return rc;
        r = node_room_by_tag(n, e.tag);
    }
    if (!r || !node_is_member(r, c->peer))
        return 0; /* not a room we share (yet): ignore, don't punish */
    n->cur_from = c;
    n->last_dup = false;
    n->stats.msgs_in++;
    rc = node_accept_envelope(n, r, data, len, true, true);
    n->cur_from = NULL;
    n->stats.dups_in += n->last_dup;
    if (n->last_dup && !pulled && !c->doomed)
        node_gossip_duplicate(n, r, c);
    uint64_t now = kith_mono_ms(n->env);
    if (rc == KITH_EPERM && !c->doomed && now - c->last_gap_sync_ms > NODE_GAP_NOTICE_MS) {
        /* From someone we don't know as a member: the peer knows ops
         * we lack. Sync fetches them and then the messages. */
        c->last_gap_sync_ms = now;
        node_send_sync(n, c, r);
    }
    /* Unverifiable bytes are the sender's fault; a duplicate or an
     * equivocation we detected is not grounds to drop the link. */
    return rc == KITH_ECRYPTO || rc == KITH_EPROTO || rc == KITH_ENONCANON ? rc : 0;
}

/* ---- runs of MSG frames (kith_env.verify_many) ----
 *
 * With a driver that checks signatures in parallel, consecutive MSG frames
 * of one read are not handled one by one: they are kept (copied) as a run,
 * up to NODE_RUN_MAX, until another kind of frame comes or the read ends.
 * Then every envelope of the run that is new (not seen, not a copy of an
 * earlier one in the run: dedup still comes before any signature check) and
 * opens with a key of its room is decrypted and parsed, all their
 * signatures are checked in one verify_many call, and the frames are
 * handled in order as if they had come one by one; accept_one takes the
 * checked result instead of opening the envelope again. Nothing is
 * accepted or relayed before the whole run was checked, so order and
 * causality are those of the frames; a bad signature fails the link as
 * before, and the frames after it are dropped with it. */

static bool run_dup(const kith_node *n, size_t i)
{
    for (size_t k = 0; k < i; k++) {
        if (n->run[k].has_id && memcmp(n->run[k].id, n->run[i].id, KITH_HASH_LEN) == 0)
            return true;
    }
    return false;
}

static void run_check(kith_node *n, nconn *c, size_t nrun)
{
    static const char domain[] = KITH_DOMAIN_MSG;
    const size_t dlen = sizeof domain - 1;
    kith_sig_job jobs[NODE_RUN_MAX];
    size_t at[NODE_RUN_MAX], which[NODE_RUN_MAX], nj = 0;
    kith_buf_reset(&n->run_signed);
    for (size_t i = 0; i < nrun; i++) {
        pre_msg *p = &n->run[i];
        const uint8_t *env = n->run_bytes.data + p->off;
        kith_envelope e;
        if (kith_msg_parse_envelope(n->env, env, p->len, &e))
            continue;
        nroom *r = node_room_by_tag(n, e.tag);
        if (!r || !node_is_member(r, c->peer))
            continue;
        kith_msg_id(env, p->len, p->id);
        p->has_id = true;
        if (node_has_id(r, p->id) || run_dup(n, i))
            continue;
        /* Decrypt and parse only; the signature is checked below. */
        /* Each entry keeps its buffer from run to run (wiped in between). */
        if (!p->plain.env)
            kith_buf_init(&p->plain, n->env, KITH_MSG_MAX_ENVELOPE);
        if (node_open_parsed(n, r, &e, true, &p->plain, &p->in) != 0 || p->plain.len < KITH_SIG_LEN)
            continue; /* handled in order, it fails (or is ignored) there */
        size_t ilen = p->plain.len - KITH_SIG_LEN;
        at[nj] = n->run_signed.len;
        if (kith_buf_append(&n->run_signed, (const uint8_t *)domain, dlen)
            || kith_buf_append(&n->run_signed, p->plain.data, ilen))
            continue; /* no memory: opened and checked in order */
        p->opened = true;
        p->room = r;
        jobs[nj].pk = p->in.author;
        jobs[nj].len = dlen + ilen;
        jobs[nj].sig = p->plain.data + ilen;
        jobs[nj].ok = 0;
        which[nj++] = i;
    }
    for (size_t j = 0; j < nj; j++)
        jobs[j].msg = n->run_signed.data + at[j]; /* the buffer no longer moves */
    if (nj)
        n->env->verify_many(n->env->verify_ctx, jobs, nj);
    for (size_t j = 0; j < nj; j++)
        n->run[which[j]].ok = jobs[j].ok == 1;
}

static void run_clear(kith_node *n)
{
    for (size_t i = 0; i < n->nrun; i++) {
        pre_msg *p = &n->run[i];
        if (p->plain.len)
            sodium_memzero(p->plain.data, p->plain.len); /* plaintext */
        kith_buf_reset(&p->plain);
        p->opened = p->has_id = false;
    }
    n->nrun = 0;
    kith_buf_reset(&n->run_bytes);
    if (n->run_signed.len)
        sodium_memzero(n->run_signed.data, n->run_signed.len); /* plaintext */
    kith_buf_reset(&n->run_signed);
}

/* Handle the run in order; its first error, like dispatch's. */
static int run_flush(kith_node *n, nconn *c)
{
    size_t nrun = n->nrun;
    if (!nrun)
        return 0;
    if (nrun > 1)
        run_check(n, c, nrun);
    int rc = 0;
    for (size_t i = 0; i < nrun && !rc && !c->doomed; i++) {
        const pre_msg *p = &n->run[i];
        n->pre = p->opened ? p : NULL;
        rc = on_msg(n, c, n->run_bytes.data + p->off, p->len, p->pulled);
        n->pre = NULL;
    }
    run_clear(n);
    return rc;
}

/* Keep a MSG frame in the run (flushing a full run first). */
static int run_add(kith_node *n, nconn *c, const kith_frame *f)
{
    if (!n->run) {
        n->run = kith_calloc(n->env, NODE_RUN_MAX, sizeof *n->run);
        if (!n->run)
            return on_msg(n, c, f->data, f->len, f->pulled);
    }
    int rc = n->nrun == NODE_RUN_MAX ? run_flush(n, c) : 0;
    if (rc || c->doomed)
        return rc;
    size_t off = n->run_bytes.len;
    if (kith_buf_append(&n->run_bytes, f->data, f->len) != 0) {
        rc = run_flush(n, c); /* no room: this one alone, now */
        return rc || c->doomed ? rc : on_msg(n, c, f->data, f->len, f->pulled);
    }
    pre_msg *p = &n->run[n->nrun++];
    p->off = off;
    p->len = f->len;
    p->pulled = f->pulled;
    p->opened = p->has_id = false;
    return 0;
}

static bool batched(const kith_node *n, const nconn *c, const kith_frame *f)
{
    return f->type == KITH_FR_MSG && n->env->verify_many && !(c->joining && !c->join_on_link);
}

static int dispatch(kith_node *n, nconn *c, const kith_frame *f)
{
    if (f->type == KITH_FR_JOIN_REQ)
        return on_join_req(n, c, f);
    if (f->type == KITH_FR_JOIN_OK)
        return on_join_ok(n, c, f);
    if (f->type == KITH_FR_KNOCK)
        return c->joining ? KITH_EPROTO : node_lan_on_knock(n, c, f);
    if (f->type == KITH_FR_JOIN_ERR) {
        if (!c->joining)
            return KITH_EPROTO;
        node_event_error(n, NULL, KITH_EPERM, "join failed: %s", f->reason);
        c->joining = false; /* reported: conn_gone must not report it again */
        kith_buf_free(&c->join_ops);
        c->join_nops = 0;
        if (c->join_on_link) {
            c->join_on_link = false; /* the link still serves its rooms */
            sodium_memzero(&c->inv, sizeof c->inv);
        } else {
            conn_fail(n, c, "join refused");
        }
        return 0;
    }
    if (c->joining && !c->join_on_link)
        return 0; /* nothing else matters until the join is answered */
    if (f->type == KITH_FR_ADDR)
        return node_addr_frame(n, c, f);
    if (f->type == KITH_FR_MSG)
        return on_msg(n, c, f->data, f->len, f->pulled);
    nroom *r = node_room_by_id(n, f->room_id);
    if (r && !node_is_member(r, c->peer) && f->type == KITH_FR_SYNC)
        node_tell_removed(n, c, r); /* a former member still syncing */
    /* Ops are taken from former members too: one removed concurrently may
     * hold a valid op that wins in the total order (each op is verified on
     * its own causal past, so nothing else is gained by sending them). */
    bool former_op = r && f->type == KITH_FR_OP && kith_room_person(r->room, c->peer);
    if (!r || (!node_is_member(r, c->peer) && !former_op))
        return 0;
    if (f->type == KITH_FR_OP) {
        size_t before = kith_room_op_count(r->room);
        int rc = node_apply_op(n, r, f->data, f->len, true, true);
        if (rc == 0 && kith_room_op_count(r->room) > before) {
            /* Ops travel across hops like messages, so members who are
             * not linked to the op's author learn it too. */
            kith_buf frame;
            kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
            if (kith_frame_op(&frame, kith_room_id(r->room), f->data, f->len) == 0)
                node_broadcast(n, r, &frame, c);
            kith_buf_free(&frame);
        }
        if (rc == 0 && r->nheld_ops)
            node_send_sync(n, c, r); /* a parent is missing: fetch the log */
        return rc == KITH_EEXIST || rc == KITH_ETOOBIG ? 0 : rc;
    }
    if (f->type == KITH_FR_SYNC)
        return on_sync(n, c, r, f);
    if (f->type == KITH_FR_IHAVE || f->type == KITH_FR_WANT || f->type == KITH_FR_PRUNE)
        return node_gossip_frame(n, c, r, f);
    return KITH_EPROTO;
}

static int on_frame(void *ud, const uint8_t *data, size_t len)
{
    feed_ctx *fc = ud;
    /* The handshake's last message and the first frames can arrive in one
     * read: the session is established before its first frame is handled. */
    if (!fc->c->established)
        on_established(fc->n, fc->c);
    if (fc->c->doomed)
        return KITH_EPROTO;
    fc->c->budget_frames++;
    fc->c->budget_bytes += len;
    if (fc->c->budget_frames > NODE_BUDGET_FRAMES || fc->c->budget_bytes > NODE_BUDGET_BYTES) {
        conn_fail(fc->n, fc->c, "over budget");
        return KITH_EPROTO;
    }
    kith_frame f;
    int rc = kith_frame_decode(fc->n->env, data, len, fc->n->doc, &f);
    if (!rc && batched(fc->n, fc->c, &f)) {
        rc = run_add(fc->n, fc->c, &f);
    } else {
        /* Frames keep their order: the run first. (The MSG path never uses
         * n->doc, so f stays intact.) */
        int rc2 = run_flush(fc->n, fc->c);
        if (!rc)
            rc = rc2;
        if (!rc && !fc->c->doomed)
            rc = dispatch(fc->n, fc->c, &f);
    }
    if (rc && !fc->c->doomed) {
        KITH_LOGI(fc->n->env, "bad frame from a peer: %s", kith_strerror(rc));
        conn_fail(fc->n, fc->c, "protocol error");
    }
    return fc->c->doomed ? KITH_EPROTO : 0;
}

/* Two sessions with one peer: keep the one whose initiator has the smaller
 * member id. Both ends apply the same rule, so they close the same one. */
static bool keep_over(const kith_node *n, const nconn *c, const nconn *o)
{
    /* The link a join went over is kept: closing it could drop the answer
     * still in flight (JOIN_OK, or the joiner's first sync). Both ends know
     * which link that was, so they agree. */
    if (c->join_link != o->join_link)
        return c->join_link;
    const uint8_t *initiator = c->outbound ? n->self->id_pk : c->peer;
    const uint8_t *other = c->outbound ? c->peer : n->self->id_pk;
    return memcmp(initiator, other, KITH_ID_LEN) < 0;
}

/* Joiner: ask over c, whose session is with the inviter. The proof is
 * bound to this session. */
static void send_join_req(kith_node *n, nconn *c)
{
    uint8_t proof[KITH_HASH_LEN];
    kith_invite_proof(
        c->inv.secret, c->inv.room_id, n->self->id_pk, kith_session_binding(c->s), proof);
    kith_buf frame;
    kith_buf_init(&frame, n->env, 1024);
    int rc
        = kith_frame_join_req(&frame, c->inv.room_id, proof, n->self->cert_sig, n->nick, n->addr);
    if (!rc)
        rc = node_conn_send(n, c, &frame);
    kith_buf_free(&frame);
    if (rc)
        conn_fail(n, c, "could not send");
}

static void on_established(kith_node *n, nconn *c)
{
    c->established = true;
    memcpy(c->peer, kith_session_peer_id(c->s), KITH_ID_LEN);
    if (memcmp(c->peer, n->self->id_pk, KITH_ID_LEN) == 0) {
        conn_fail(n, c, "connected to ourselves");
        return;
    }
    node_lan_established(n, c);
    if (c->joining && c->knock) {
        /* A knock trusts the LAN as far as the room name goes: whoever
         * answers the beacon's port gets to offer us the room. */
        kith_buf frame;
        kith_buf_init(&frame, n->env, 1024);
        int rc = kith_frame_knock(&frame, c->knock_name, n->self->cert_sig, n->nick, n->addr);
        if (!rc)
            rc = node_conn_send(n, c, &frame);
        kith_buf_free(&frame);
        if (rc)
            conn_fail(n, c, "could not send");
        return;
    }
    if (c->joining) {
        /* check_responder made sure the peer is the inviter */
        send_join_req(n, c);
        return;
    }
    bool shared = false;
    for (size_t i = 0; i < n->nrooms; i++) {
        shared |= node_is_member(n->rooms[i], c->peer);
        if (!node_is_member(n->rooms[i], c->peer))
            node_tell_removed(n, c, n->rooms[i]); /* only if it was removed */
    }
    /* Inbound peers may be joiners who are not members yet: they get to ask. */
    if (!shared && c->outbound) {
        conn_fail(n, c, "peer shares no room");
        return;
    }
    for (size_t i = 0; i < n->nconns; i++) {
        nconn *o = n->conns[i];
        if (o == c || !o->established || memcmp(o->peer, c->peer, KITH_ID_LEN) != 0)
            continue;
        if (keep_over(n, c, o)) {
            conn_fail(n, o, "duplicate connection");
            break;
        }
        conn_fail(n, c, "duplicate connection");
        /* The kept one may have missed what went over this one. */
        for (size_t r = 0; r < n->nrooms; r++) {
            if (node_is_member(n->rooms[r], o->peer))
                node_send_sync(n, o, n->rooms[r]);
        }
        return;
    }
    if (c->dial >= 0 && (size_t)c->dial < n->ndials) {
        n->dials[c->dial].backoff_ms = 0;
        n->dials[c->dial].fails = 0;
        if (n->dials[c->dial].fixed)
            memcpy(n->dials[c->dial].member, c->peer, KITH_ID_LEN);
    }
    if (!shared)
        return;
    bool other_up = false;
    for (size_t i = 0; i < n->nconns; i++) {
        const nconn *o = n->conns[i];
        other_up |= o != c && o->established && memcmp(o->peer, c->peer, KITH_ID_LEN) == 0;
    }
    if (!other_up)
        peer_event(n, KITH_EV_PEER_UP, c->peer);
    for (size_t i = 0; i < n->nrooms; i++) {
        if (node_is_member(n->rooms[i], c->peer))
            node_send_sync(n, c, n->rooms[i]);
    }
    node_addr_send_all(n, c);
}

/* ---- driver events ---- */

uint64_t kith_node_accept(kith_node *n)
{
    nconn *c = conn_new(n, false);
    if (!c) {
        /* Too many connections: hand out an id that is closed at once. */
        uint64_t id = n->next_conn++;
        node_push_close(n, id, "too many connections");
        return id;
    }
    c->connected = true;
    return c->id;
}

void kith_node_conn_opened(kith_node *n, uint64_t id)
{
    nconn *c = conn_by_id(n, id);
    if (!c)
        return;
    c->connected = true;
    kith_buf out;
    kith_buf_init(&out, n->env, 1024);
    if (kith_session_start(c->s, &out) == 0)
        node_push_write(n, c->id, out.data, out.len);
    else
        conn_fail(n, c, "handshake failed");
    kith_buf_free(&out);
}

void kith_node_conn_data(kith_node *n, uint64_t id, const uint8_t *data, size_t len)
{
    nconn *c = conn_by_id(n, id);
    if (!c)
        return;
    n->stats.bytes_in += len;
    feed_ctx fc = { n, c };
    n->feeding = c;
    kith_buf_reset(&n->feed_out);
    int rc = kith_session_feed(c->s, data, len, &n->feed_out, on_frame, &fc);
    if (!c->doomed) {
        int rc2 = run_flush(n, c);
        if (rc2 && !c->doomed) {
            KITH_LOGI(n->env, "bad frame from a peer: %s", kith_strerror(rc2));
            conn_fail(n, c, "protocol error");
        }
    }
    run_clear(n);
    flush_feed_out(n, c);
    n->feeding = NULL;
    if (c->doomed) {
        conn_fail(n, c, c->doom_reason);
        return;
    }
    if (rc) {
        conn_fail(n, c, kith_session_established(c->s) ? "decryption failed" : "handshake failed");
        return;
    }
    if (!c->established && kith_session_established(c->s))
        on_established(n, c);
}

void kith_node_conn_slow(kith_node *n, uint64_t id, bool slow)
{
    nconn *c = conn_by_id(n, id);
    if (c)
        c->slow = slow;
}

void kith_node_conn_closed(kith_node *n, uint64_t id)
{
    nconn *c = conn_by_id(n, id);
    if (c)
        conn_gone(n, c, false, NULL);
}

static bool shares_room(const kith_node *n, const uint8_t id[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->nrooms; i++) {
        if (node_is_member(n->rooms[i], id))
            return true;
    }
    return false;
}

/* ---- dialing ---- */

/* Links that serve a room: established sessions with members, and dials to
 * members still in progress. */
static size_t room_links(const kith_node *n, const nroom *r)
{
    size_t count = 0;
    for (size_t i = 0; i < n->nconns; i++) {
        const nconn *c = n->conns[i];
        if (c->established)
            count += node_is_member(r, c->peer);
        else if (c->dial >= 0 && (size_t)c->dial < n->ndials && !n->dials[c->dial].fixed)
            count += node_is_member(r, n->dials[c->dial].member);
    }
    return count;
}

/* Dial a member only while one of its rooms has fewer links than the
 * node's degree: a room of hundreds gets a few links per node, not a mesh.
 * links[i] is room_links of rooms[i], counted once per timer. */
static bool wanted_link(const kith_node *n, const dial_st *d, const size_t *links)
{
    for (size_t i = 0; i < n->nrooms; i++) {
        if (links[i] < n->degree && node_is_member(n->rooms[i], d->member))
            return true;
    }
    return false;
}

static void count_dial(const kith_node *n, const dial_st *d, size_t *links)
{
    for (size_t i = 0; i < n->nrooms; i++)
        links[i] += node_is_member(n->rooms[i], d->member);
}

/* A static peer is up while a connection made for it exists, or while we
 * have a session with the member we found there (perhaps one it made). */
static bool fixed_up(const kith_node *n, const dial_st *d)
{
    static const uint8_t zero[KITH_ID_LEN];
    if (memcmp(d->member, zero, KITH_ID_LEN) != 0 && node_peer_online(n, d->member))
        return true;
    for (size_t i = 0; i < n->nconns; i++) {
        const nconn *c = n->conns[i];
        if (c->dial >= 0 && (size_t)c->dial < n->ndials && &n->dials[c->dial] == d)
            return true;
    }
    return false;
}

/* Room for one more dial (doubling: a big room adds hundreds). */
static dial_st *grow_dials(kith_node *n)
{
    if (n->ndials < n->capdials)
        return n->dials;
    size_t cap = n->capdials ? n->capdials * 2 : 8;
    dial_st *d = kith_realloc(n->env, n->dials, cap * sizeof *d);
    if (!d)
        return NULL;
    n->dials = d;
    n->capdials = cap;
    return d;
}

int node_add_static_peer(kith_node *n, const char *addr)
{
    size_t len = addr ? strlen(addr) : 0;
    if (!len || len > KITH_ADDR_MAX)
        return KITH_EINVAL;
    dial_st *d = grow_dials(n);
    if (!d)
        return KITH_ENOMEM;
    d = &n->dials[n->ndials++];
    memset(d, 0, sizeof *d);
    d->fixed = true;
    memcpy(d->addr, addr, len);
    d->next_ms = kith_mono_ms(n->env);
    return 0;
}

dial_st *node_dial_of(kith_node *n, const uint8_t member[KITH_ID_LEN], bool create)
{
    uint64_t at;
    if (!n->dial_index.env)
        kith_map_init(&n->dial_index, n->env, (size_t)NODE_MAX_ROOMS * KITH_ROOM_MAX_MEMBERS);
    if (kith_map_get(&n->dial_index, member, &at) && at < n->ndials)
        return &n->dials[at];
    if (!create)
        return NULL;
    dial_st *d = grow_dials(n);
    if (!d)
        return NULL;
    if (kith_map_put(&n->dial_index, member, n->ndials))
        return NULL;
    d = &n->dials[n->ndials++];
    memset(d, 0, sizeof *d);
    memcpy(d->member, member, KITH_ID_LEN);
    d->next_ms = kith_mono_ms(n->env);
    return d;
}

/* A dial for every member with an address hint. Called after each op, so
 * it looks only at the people the log named since the last call (a room
 * of n members would otherwise cost n lookups per op), and at everyone
 * now and then, for a person who became a member again or got an address
 * later than first named. */
void node_refresh_dials(kith_node *n)
{
    uint64_t now = kith_mono_ms(n->env);
    bool all = !n->dial_rescan_ms || now - n->dial_rescan_ms >= NODE_DIAL_RESCAN_MS;
    if (all)
        n->dial_rescan_ms = now ? now : 1;
    for (size_t r = 0; r < n->nrooms; r++) {
        kith_room *room = n->rooms[r]->room;
        size_t from = !all && n->dial_room[r] == room ? n->dial_seen[r] : 0;
        size_t count = kith_room_person_count(room);
        n->dial_room[r] = room;
        n->dial_seen[r] = count;
        for (size_t i = from; i < count; i++) {
            const kith_member *m = kith_room_person_at(room, i);
            if (!m->role || !m->addr[0] || memcmp(m->id, n->self->id_pk, KITH_ID_LEN) == 0
                || node_dial_of(n, m->id, false))
                continue;
            dial_st *d = node_dial_of(n, m->id, true);
            if (!d)
                return;
            memcpy(d->addr, m->addr, sizeof d->addr);
            /* The member with the larger id waits a little before dialing,
             * so two nodes rarely dial each other at the same moment. */
            bool wait = memcmp(n->self->id_pk, m->id, KITH_ID_LEN) > 0;
            d->next_ms = now + (wait ? 2000 : 0);
        }
    }
}

void kith_node_timer(kith_node *n)
{
    n->timer_armed = false;
    n->ticked = true;
    node_gossip_tick(n);
    node_addr_tick(n);
    uint64_t now = kith_mono_ms(n->env);
    node_catchup_tick(n, now);
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *c = n->conns[i - 1];
        if (!c->established && now - c->started_ms > NODE_HANDSHAKE_TIMEOUT_MS) {
            conn_fail(n, c, "handshake timed out");
        } else if (c->joining
            && now - c->started_ms > (c->knock ? NODE_KNOCK_TIMEOUT_MS : NODE_JOIN_TIMEOUT_MS)) {
            conn_fail(n, c, "join timed out");
        } else if (c->established && !c->joining && now - c->started_ms > NODE_JOIN_TIMEOUT_MS
            && !shares_room(n, c->peer) && !node_lan_knocking(n, c->id)) {
            /* A stranger may connect to ask to join; one that lingers
             * without becoming a member only holds a connection slot. */
            conn_fail(n, c, "peer shares no room");
        } else if (c->established && !c->joining && now - c->last_sync_ms > NODE_SYNC_INTERVAL_MS) {
            for (size_t r = 0; r < n->nrooms; r++) {
                if (node_is_member(n->rooms[r], c->peer))
                    node_send_sync(n, c, n->rooms[r]);
            }
        }
    }
    node_refresh_dials(n);
    size_t links[NODE_MAX_ROOMS];
    bool short_of_links = false;
    for (size_t r = 0; r < n->nrooms; r++) {
        links[r] = room_links(n, n->rooms[r]);
        short_of_links |= links[r] < n->degree;
    }
    size_t start = 0;
    if (n->ndials) {
        uint32_t rnd;
        kith_random(n->env, &rnd, sizeof rnd);
        start = rnd % n->ndials;
    }
    for (size_t k = 0; k < n->ndials; k++) {
        size_t i = (start + k) % n->ndials;
        dial_st *d = &n->dials[i];
        if (d->conn || now < d->next_ms || (!d->fixed && d->fails >= NODE_DEAD_AFTER_FAILS))
            continue; /* a dead address waits for a newer record */
        if (d->fixed ? fixed_up(n, d)
                     : (n->no_dial || !short_of_links || !wanted_link(n, d, links)
                         || node_peer_online(n, d->member)))
            continue;
        if (!d->fixed)
            count_dial(n, d, links);
        nconn *c = conn_new(n, true);
        if (!c)
            break;
        c->dial = (int)i;
        c->origin = ORIGIN_ADDR;
        d->conn = c->id;
        d->next_ms = now + NODE_BACKOFF_MIN_MS;
        node_push_connect(n, c->id, d->addr);
    }
    node_lan_timer(n, now);
    node_membership_tick(n, now);
}
