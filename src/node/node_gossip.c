/* node/node_gossip: how messages spread beyond the author's own links.
 *
 * Plumtree-like: a node pushes a new message at once over its "eager" links
 * of the room and only announces its id (IHAVE) over "lazy" ones. When a
 * message arrives a second time, the link that brought the copy is pruned
 * (PRUNE both ways): at steady state the eager links form a tree and a
 * message crosses each link about once. A node that hears of an id it lacks
 * waits a moment for the eager path, then asks (WANT), which also grafts the
 * link back to eager. Gaps in an author's sequence and missing causal
 * dependencies are asked for the same way; bulk gaps go to anti-entropy
 * (SYNC). Every queue here is bounded. */
#include <sodium.h>
#include <stdio.h>

#include "node/node_impl.h"

static bool is_lazy(const nconn *c, const nroom *r)
{
    for (size_t i = 0; i < c->nlazy; i++) {
        if (c->lazy[i] == r)
            return true;
    }
    return false;
}

static void set_lazy(nconn *c, const nroom *r, bool lazy)
{
    for (size_t i = 0; i < c->nlazy; i++) {
        if (c->lazy[i] == r) {
            if (!lazy)
                c->lazy[i] = c->lazy[--c->nlazy];
            return;
        }
    }
    if (lazy && c->nlazy < NODE_MAX_LAZY)
        c->lazy[c->nlazy++] = r;
}

static void queue_ihave(kith_node *n, nconn *c, const nroom *r, const uint8_t id[KITH_HASH_LEN])
{
    if (c->nihave >= NODE_MAX_IHAVE)
        return; /* the periodic SYNC covers what an overflowing queue drops */
    if (c->nihave == c->capihave) {
        size_t ncap = c->capihave ? c->capihave * 2 : 32;
        ihave_q *q = kith_realloc(n->env, c->ihave, ncap * sizeof *q);
        if (!q)
            return;
        c->ihave = q;
        c->capihave = ncap;
    }
    c->ihave[c->nihave].room = r;
    memcpy(c->ihave[c->nihave].id, id, KITH_HASH_LEN);
    c->nihave++;
}

static bool link_serves(const kith_node *n, const nconn *c, const nroom *r)
{
    (void)n;
    return c->established && !c->joining && !c->doomed && node_is_member(r, c->peer);
}

void node_gossip_relay(
    kith_node *n, nroom *r, size_t hist_idx, const uint8_t *env, size_t len, const nconn *from)
{
    const hist *h = node_hist_at(r, hist_idx);
    const uint8_t *author = node_hist_author(r, h);
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    bool encoded = false;
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *c = n->conns[i - 1];
        if (c == from || !link_serves(n, c, r) || memcmp(c->peer, author, KITH_ID_LEN) == 0)
            continue;
        if (is_lazy(c, r)) {
            queue_ihave(n, c, r, node_hist_id(r, h));
            continue;
        }
        if (!encoded) {
            if (kith_frame_msg(&frame, env, len))
                break;
            encoded = true;
        }
        if (node_conn_send(n, c, &frame))
            KITH_LOGW(n->env, "could not push a message to a peer");
        else
            n->stats.msgs_out++;
    }
    kith_buf_free(&frame);
}

static void send_ids(kith_node *n, nconn *c, uint32_t type, const nroom *r,
    const uint8_t (*ids)[KITH_HASH_LEN], size_t count)
{
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    if (kith_frame_ids(&frame, type, kith_room_id(r->room), ids, count) == 0
        && node_conn_send(n, c, &frame) != 0)
        KITH_LOGW(n->env, "could not send a gossip frame");
    else if (type == KITH_FR_IHAVE) {
        n->stats.ihave_out++;
        n->stats.ihave_ids_out += count;
    } else if (type == KITH_FR_WANT)
        n->stats.want_out++;
    else
        n->stats.prune_out++;
    kith_buf_free(&frame);
}

void node_gossip_duplicate(kith_node *n, nroom *r, nconn *from)
{
    if (!from || is_lazy(from, r))
        return;
    set_lazy(from, r, true);
    send_ids(n, from, KITH_FR_PRUNE, r, NULL, 0);
}

void node_gossip_want(
    kith_node *n, nroom *r, const uint8_t id[KITH_HASH_LEN], uint64_t conn, uint64_t delay_ms)
{
    if (kith_map_get(&r->seen, id, NULL))
        return;
    for (size_t i = 0; i < r->nwant; i++) {
        if (memcmp(r->want[i].id, id, KITH_HASH_LEN) == 0)
            return;
    }
    if (r->nwant >= NODE_MAX_WANTED)
        return;
    wanted *w = kith_realloc(n->env, r->want, (r->nwant + 1) * sizeof *w);
    if (!w)
        return;
    r->want = w;
    w = &r->want[r->nwant++];
    memcpy(w->id, id, KITH_HASH_LEN);
    w->conn = conn;
    w->due_ms = kith_mono_ms(n->env) + delay_ms;
    w->tries = 0;
}

/* WANT: send what we hold of the ids asked for. */
static int on_want(kith_node *n, nconn *c, nroom *r, const kith_frame *f)
{
    kith_buf frame, env;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    kith_buf_init(&env, n->env, KITH_MSG_MAX_ENVELOPE);
    int rc = 0;
    set_lazy(c, r, false);
    for (size_t i = 0; i < f->count && !rc; i++) {
        uint8_t id[KITH_HASH_LEN];
        uint64_t v;
        rc = kith_frame_id_at(f, i, id);
        if (rc || !kith_map_get(&r->seen, id, &v) || v == 0 || v > r->nhist)
            continue;
        kith_buf_reset(&env);
        if (node_hist_env(n, r, (size_t)(v - 1), &env) != 0)
            continue;
        kith_buf_reset(&frame);
        rc = kith_frame_msg_pulled(&frame, env.data, env.len);
        if (!rc)
            rc = node_conn_send(n, c, &frame);
        n->stats.msgs_out += rc == 0;
    }
    kith_buf_free(&frame);
    kith_buf_free(&env);
    return rc;
}

void kith_node_stats_get(const kith_node *n, kith_node_stats *out)
{
    *out = n->stats;
    out->held = 0;
    for (size_t i = 0; i < n->nrooms; i++)
        out->held += n->rooms[i]->nheld;
}

int node_gossip_frame(kith_node *n, nconn *c, nroom *r, const kith_frame *f)
{
    if (f->type == KITH_FR_PRUNE) {
        set_lazy(c, r, true);
        return 0;
    }
    if (f->type == KITH_FR_WANT)
        return on_want(n, c, r, f);
    if (f->type == KITH_FR_IHAVE) {
        for (size_t i = 0; i < f->count; i++) {
            uint8_t id[KITH_HASH_LEN];
            int rc = kith_frame_id_at(f, i, id);
            if (rc)
                return rc;
            node_gossip_want(n, r, id, c->id, NODE_WANT_DELAY_MS);
        }
        return 0;
    }
    return KITH_EPROTO;
}

/* Once per loop turn: the queued announcements go out, one IHAVE per room
 * and link (batched up to KITH_FRAME_MAX_IDS ids), at most every
 * NODE_IHAVE_INTERVAL_MS per link unless a full frame is waiting. */
void node_gossip_flush(kith_node *n)
{
    uint8_t(*ids)[KITH_HASH_LEN] = NULL;
    uint64_t now = kith_mono_ms(n->env);
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *c = n->conns[i - 1];
        if (!c->nihave
            || (c->nihave < KITH_FRAME_MAX_IDS && c->ihave_ms
                && now - c->ihave_ms < NODE_IHAVE_INTERVAL_MS))
            continue;
        c->ihave_ms = now;
        if (!ids) {
            ids = kith_malloc(n->env, KITH_FRAME_MAX_IDS * KITH_HASH_LEN);
            if (!ids)
                return;
        }
        while (c->nihave) {
            const nroom *r = c->ihave[0].room;
            size_t k = 0, keep = 0;
            for (size_t j = 0; j < c->nihave; j++) {
                if (c->ihave[j].room == r && k < KITH_FRAME_MAX_IDS)
                    memcpy(ids[k++], c->ihave[j].id, KITH_HASH_LEN);
                else
                    c->ihave[keep++] = c->ihave[j];
            }
            c->nihave = keep;
            bool live = false;
            for (size_t q = 0; q < n->nrooms; q++)
                live |= n->rooms[q] == r;
            if (live && link_serves(n, c, r))
                send_ids(n, c, KITH_FR_IHAVE, r, (const uint8_t(*)[KITH_HASH_LEN])ids, k);
        }
    }
    kith_free(n->env, ids);
}

static nconn *conn_find(const kith_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->nconns; i++) {
        if (n->conns[i]->id == id)
            return n->conns[i];
    }
    return NULL;
}

static nconn *any_link(const kith_node *n, const nroom *r, size_t salt)
{
    size_t count = 0;
    for (size_t i = 0; i < n->nconns; i++)
        count += link_serves(n, n->conns[i], r);
    if (!count)
        return NULL;
    size_t pick = salt % count;
    for (size_t i = 0; i < n->nconns; i++) {
        if (link_serves(n, n->conns[i], r) && pick-- == 0)
            return n->conns[i];
    }
    return NULL;
}

/* Ask for wanted ids that are due; forget them after a few tries. */
static void want_due(kith_node *n, nroom *r, uint64_t now)
{
    uint8_t(*ids)[KITH_HASH_LEN] = NULL;
    size_t keep = 0;
    for (size_t i = 0; i < r->nwant; i++) {
        wanted w = r->want[i];
        if (kith_map_get(&r->seen, w.id, NULL) || w.tries >= 5)
            continue;
        if (w.due_ms <= now) {
            nconn *c = conn_find(n, w.conn);
            if (!c || !link_serves(n, c, r))
                c = any_link(n, r, w.tries + i);
            if (c) {
                if (!ids)
                    ids = kith_malloc(n->env, KITH_HASH_LEN);
                if (ids) {
                    memcpy(ids[0], w.id, KITH_HASH_LEN);
                    send_ids(n, c, KITH_FR_WANT, r, (const uint8_t(*)[KITH_HASH_LEN])ids, 1);
                    set_lazy(c, r, false); /* graft */
                }
                w.conn = c->id;
            }
            w.tries++;
            w.due_ms = now + NODE_WANT_RETRY_MS;
        }
        r->want[keep++] = w;
    }
    r->nwant = keep;
    kith_free(n->env, ids);
}

/* Tell the person about a known gap instead of pretending the history is
 * whole: "2 earlier messages from alice not yet received". */
static void gap_notice(kith_node *n, nroom *r, uint64_t now)
{
    for (size_t i = 0; i < r->nheld; i++) {
        const held *h = &r->held[i];
        if (now - h->since_ms < NODE_GAP_NOTICE_MS)
            continue;
        author_st *a = node_author(n, r, h->author, false);
        uint64_t have = a ? a->seq : 0;
        uint64_t lowest = h->seq;
        for (size_t j = 0; j < r->nheld; j++) {
            if (memcmp(r->held[j].author, h->author, KITH_ID_LEN) == 0 && r->held[j].seq < lowest)
                lowest = r->held[j].seq;
        }
        if (lowest <= have + 1 || lowest <= r->gap_noticed_seq)
            continue;
        r->gap_noticed_seq = lowest;
        uint64_t missing = lowest - have - 1;
        node_event_info(n, r, "%llu earlier message%s from %s not yet received",
            (unsigned long long)missing, missing == 1 ? "" : "s", node_display(n, r, h->author));
    }
}

void node_gossip_tick(kith_node *n)
{
    uint64_t now = kith_mono_ms(n->env);
    for (size_t i = 0; i < n->nrooms; i++) {
        nroom *r = n->rooms[i];
        if (r->nwant)
            want_due(n, r, now);
        if (r->nheld) {
            node_release_held(n, r);
            gap_notice(n, r, now);
        }
    }
    for (size_t i = 0; i < n->nconns; i++) {
        n->conns[i]->budget_bytes = 0;
        n->conns[i]->budget_frames = 0;
    }
}

void node_gossip_conn_gone(kith_node *n, nconn *c)
{
    kith_free(n->env, c->ihave);
    c->ihave = NULL;
    c->nihave = c->capihave = 0;
}
