/* node/node_gossip: how messages spread beyond the author's own links.
 *
 * Plumtree-like: a node pushes a new message at once over its "eager" links
 * of the room and only announces its id (IHAVE) over "lazy" ones, in rounds
 * to a few of them drawn at random (gossipsub's lazy gossip). When a
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

/* A delivered id for the room's next round of announcements. */
static void queue_ann(
    kith_node *n, nroom *r, const uint8_t id[KITH_HASH_LEN], uint64_t from, uint32_t author)
{
    if (r->nann >= NODE_MAX_IHAVE)
        return; /* the periodic SYNC covers what an overflowing queue drops */
    if (r->nann == r->capann) {
        size_t ncap = r->capann ? r->capann * 2 : 32;
        ihave_q *q = kith_realloc(n->env, r->ann, ncap * sizeof *q);
        if (!q)
            return;
        r->ann = q;
        r->capann = ncap;
    }
    ihave_q *q = &r->ann[r->nann++];
    memcpy(q->id, id, KITH_HASH_LEN);
    q->from = from;
    q->author = author;
}

static bool link_serves(const kith_node *n, const nconn *c, const nroom *r)
{
    (void)n;
    return c->established && !c->joining && !c->doomed && node_is_member(r, c->peer);
}

void node_gossip_relay(kith_node *n, nroom *r, size_t author_idx, const uint8_t id[KITH_HASH_LEN],
    const uint8_t *env, size_t len, const nconn *from)
{
    const uint8_t *author = r->authors[author_idx].id;
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    bool encoded = false, lazy = false;
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *c = n->conns[i - 1];
        if (c == from || !link_serves(n, c, r) || memcmp(c->peer, author, KITH_ID_LEN) == 0)
            continue;
        /* A slow link gets announcements only, as a lazy one does:
         * docs/decisions.md "Backpressure on relays". */
        if (is_lazy(c, r) || c->slow) {
            lazy = true;
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
    if (lazy) {
        queue_ann(n, r, id, from ? from->id : 0, (uint32_t)author_idx);
        r->authors[author_idx].unannounced = true;
    }
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
    if (node_has_id(r, id))
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
        rc = kith_frame_id_at(f, i, id);
        size_t k = rc ? SIZE_MAX : node_hist_find(r, id);
        if (k == SIZE_MAX)
            continue;
        kith_buf_reset(&env);
        uint8_t got[KITH_HASH_LEN];
        if (node_hist_env(n, r, k, &env, got) != 0 || sodium_memcmp(got, id, KITH_HASH_LEN) != 0)
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

/* IHAVE to c with the queued ids [from, to) of the room, less those c
 * brought or authored. */
static void announce(
    kith_node *n, nroom *r, nconn *c, size_t from, size_t to, uint8_t (*ids)[KITH_HASH_LEN])
{
    size_t cnt = 0;
    for (size_t q = from; q < to; q++) {
        const ihave_q *a = &r->ann[q];
        if (a->from == c->id
            || (a->author < r->nauthors
                && memcmp(r->authors[a->author].id, c->peer, KITH_ID_LEN) == 0))
            continue;
        memcpy(ids[cnt++], a->id, KITH_HASH_LEN);
        if (cnt == KITH_FRAME_MAX_IDS) {
            send_ids(n, c, KITH_FR_IHAVE, r, (const uint8_t(*)[KITH_HASH_LEN])ids, cnt);
            cnt = 0;
        }
    }
    if (cnt)
        send_ids(n, c, KITH_FR_IHAVE, r, (const uint8_t(*)[KITH_HASH_LEN])ids, cnt);
}

static bool tail_sent(const nroom *r, const nconn *c)
{
    for (size_t k = 0; k < r->ntail_to; k++) {
        if (r->tail_to[k] == c->id)
            return true;
    }
    return false;
}

/* The round after the room fell quiet: the latest id of every author heard
 * from since the last such round goes to every lazy link (less the
 * author's own, and a link that had it in the last round or brought it).
 * A member that missed any of their messages learns of the latest, asks
 * for it, and its author's chain brings the rest. */
static void quiet_round(
    kith_node *n, nroom *r, nconn **links, size_t nlinks, uint8_t (*ids)[KITH_HASH_LEN])
{
    /* tailpos[a]: 1 + where author a's latest id is in the last round's tail. */
    size_t *tailpos = r->nauthors ? kith_calloc(n->env, r->nauthors, sizeof *tailpos) : NULL;
    for (size_t q = 0; tailpos && q < r->ntail; q++) {
        uint32_t a = r->ann[q].author;
        const author_st *au = a < r->nauthors ? &r->authors[a] : NULL;
        if (au && au->unannounced && au->seq && memcmp(au->last, r->ann[q].id, KITH_HASH_LEN) == 0)
            tailpos[a] = q + 1;
    }
    for (size_t k = 0; k < nlinks; k++) {
        nconn *c = links[k];
        bool had_tail = tail_sent(r, c);
        size_t cnt = 0;
        for (size_t a = 0; a < r->nauthors && cnt < KITH_FRAME_MAX_IDS; a++) {
            const author_st *au = &r->authors[a];
            if (!au->unannounced || !au->seq || memcmp(au->id, c->peer, KITH_ID_LEN) == 0)
                continue;
            size_t tp = tailpos ? tailpos[a] : 0;
            if (tp && (had_tail || r->ann[tp - 1].from == c->id))
                continue;
            memcpy(ids[cnt++], au->last, KITH_HASH_LEN);
        }
        if (cnt)
            send_ids(n, c, KITH_FR_IHAVE, r, (const uint8_t(*)[KITH_HASH_LEN])ids, cnt);
    }
    kith_free(n->env, tailpos);
    for (size_t a = 0; a < r->nauthors; a++)
        r->authors[a].unannounced = false;
    r->nann = r->ntail = r->ntail_to = 0;
}

/* One room's round of announcements. While messages keep coming, the ids
 * delivered since the last round go to NODE_IHAVE_FANOUT of its lazy links,
 * drawn at random: a member that missed one mostly learns of it sooner from
 * the dependencies and the author's chain of the messages that follow. The
 * round after the room fell quiet is quiet_round's. */
static void ann_round(kith_node *n, nroom *r, uint8_t (*ids)[KITH_HASH_LEN])
{
    nconn *pick[NODE_MAX_CONNS];
    size_t np = 0;
    for (size_t i = 0; i < n->nconns && np < NODE_MAX_CONNS; i++) {
        if (link_serves(n, n->conns[i], r) && (is_lazy(n->conns[i], r) || n->conns[i]->slow))
            pick[np++] = n->conns[i];
    }
    if (r->nann == r->ntail) {
        quiet_round(n, r, pick, np, ids);
        return;
    }
    r->ntail_to = 0;
    /* A slow link gets every round: announcements are all it gets in place
     * of the pushes it would have had (it is out of the draw below). */
    size_t nlazy = 0;
    for (size_t k = 0; k < np; k++) {
        if (pick[k]->slow && !is_lazy(pick[k], r))
            announce(n, r, pick[k], r->ntail, r->nann, ids);
        else
            pick[nlazy++] = pick[k];
    }
    np = nlazy;
    for (size_t k = 0; k < NODE_IHAVE_FANOUT && k < np; k++) {
        uint32_t x;
        kith_random(n->env, &x, sizeof x);
        size_t j = k + x % (np - k);
        nconn *c = pick[j];
        pick[j] = pick[k];
        pick[k] = c;
        announce(n, r, c, r->ntail, r->nann, ids);
        r->tail_to[r->ntail_to++] = c->id;
    }
    /* This round's ids are the new tail. */
    memmove(r->ann, r->ann + r->ntail, (r->nann - r->ntail) * sizeof *r->ann);
    r->nann -= r->ntail;
    r->ntail = r->nann;
}

/* Once per loop turn: a room's queued announcements go out at most every
 * NODE_IHAVE_INTERVAL_MS (or when a frame's worth is waiting). */
void node_gossip_flush(kith_node *n)
{
    uint8_t(*ids)[KITH_HASH_LEN] = NULL;
    uint64_t now = kith_mono_ms(n->env);
    for (size_t i = 0; i < n->nrooms; i++) {
        nroom *r = n->rooms[i];
        if (!r->nann
            || (r->nann - r->ntail < KITH_FRAME_MAX_IDS && r->ann_ms
                && now - r->ann_ms < NODE_IHAVE_INTERVAL_MS))
            continue;
        r->ann_ms = now;
        if (!ids) {
            ids = kith_malloc(n->env, KITH_FRAME_MAX_IDS * KITH_HASH_LEN);
            if (!ids)
                return;
        }
        ann_round(n, r, ids);
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
        if (node_has_id(r, w.id) || w.tries >= 5)
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
