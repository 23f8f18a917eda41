/* node/node_addr: members' addresses as signed, expiring records.
 *
 * A member's address can change (a new port, another network). Each node
 * that has an address signs a record {member, addr, issued, expires}
 * (proto/kith.md §6, ADDR) and gives it to every member it links to; a
 * node that learns a newer record about a member of one of its rooms keeps
 * it, dials the new address, and passes it on over its other links of the
 * rooms the member is in, so a record crosses hops like a message. Records
 * about strangers are ignored: a room's member addresses stay in the room.
 * Only news travels: a record is passed on when it changed the address we
 * dial, and handed to a new link when it says something other than the
 * address in the member's add op (which every member has from the log);
 * our own record goes to each link. Otherwise every member's record would
 * cross every link of the room, n records per new link.
 * An address that failed NODE_DEAD_AFTER_FAILS dials in a row is forgotten
 * until a newer record arrives. */
#include <sodium.h>

#include "node/node_impl.h"

static void make_own(kith_node *n, uint64_t now_wall)
{
    n->own_rec_len = 0;
    if (!n->addr[0])
        return;
    kith_addr_rec rec;
    memset(&rec, 0, sizeof rec);
    memcpy(rec.member, n->self->id_pk, KITH_ID_LEN);
    memcpy(rec.addr, n->addr, sizeof rec.addr);
    rec.issued_ms = now_wall;
    rec.expires_ms = now_wall + NODE_ADDR_TTL_MS;
    kith_buf b;
    kith_buf_init(&b, n->env, KITH_ADDR_REC_MAX);
    if (kith_addr_encode(&b, &rec) == 0
        && kith_sign(n->env, n->self, KITH_DOMAIN_ADDR, b.data, b.len, n->own_rec_sig) == 0) {
        memcpy(n->own_rec, b.data, b.len);
        n->own_rec_len = b.len;
        n->own_rec_expires = rec.expires_ms;
    }
    kith_buf_free(&b);
}

/* Refresh our own record when half its life is gone. */
void node_addr_tick(kith_node *n)
{
    uint64_t now = kith_wall_ms(n->env);
    if (n->addr[0] && (!n->own_rec_len || n->own_rec_expires - now < NODE_ADDR_TTL_MS / 2))
        make_own(n, now);
}

static bool shares_with(
    const kith_node *n, const uint8_t a[KITH_ID_LEN], const uint8_t b[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->nrooms; i++) {
        if (node_is_member(n->rooms[i], a) && node_is_member(n->rooms[i], b))
            return true;
    }
    return false;
}

static void send_rec(
    kith_node *n, nconn *c, const uint8_t *rec, size_t len, const uint8_t sig[KITH_SIG_LEN])
{
    kith_buf frame;
    kith_buf_init(&frame, n->env, 1024);
    if (kith_frame_addr(&frame, rec, len, sig) == 0 && node_conn_send(n, c, &frame) != 0)
        KITH_LOGW(n->env, "could not send an address record");
    kith_buf_free(&frame);
}

/* The address a room's log gives for a member, or "". */
static const char *logged_addr(const kith_node *n, const uint8_t member[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->nrooms; i++) {
        const kith_member *m = kith_room_member(n->rooms[i]->room, member);
        if (m && m->addr[0])
            return m->addr;
    }
    return "";
}

/* A new link: our own record, and those we hold about members this peer
 * shares a room with whose address is not the one in the log. */
void node_addr_send_all(kith_node *n, nconn *c)
{
    node_addr_tick(n);
    if (n->own_rec_len)
        send_rec(n, c, n->own_rec, n->own_rec_len, n->own_rec_sig);
    uint64_t now = kith_wall_ms(n->env);
    for (size_t i = 0; i < n->ndials; i++) {
        const dial_st *d = &n->dials[i];
        if (d->rec_len && d->rec_expires > now && memcmp(d->member, c->peer, KITH_ID_LEN) != 0
            && strcmp(d->addr, logged_addr(n, d->member)) != 0
            && shares_with(n, d->member, c->peer))
            send_rec(n, c, d->rec, d->rec_len, d->rec_sig);
    }
}

/* A record is dropped unverified when it is about ourselves or a stranger,
 * or is not newer than the one held: every link hands over every record it
 * holds, so most arrivals are copies, and a room of n members would
 * otherwise pay n signature checks per new link. Only a record that will
 * be kept and passed on is verified. */
int node_addr_frame(kith_node *n, nconn *c, const kith_frame *f)
{
    kith_addr_rec rec;
    int rc = kith_addr_parse(n->env, f->data, f->len, kith_wall_ms(n->env), n->doc, &rec);
    if (rc == KITH_EEXPIRED)
        return 0; /* stale, not malicious */
    if (rc)
        return rc;
    if (memcmp(rec.member, n->self->id_pk, KITH_ID_LEN) == 0)
        return 0;
    bool known = false;
    for (size_t i = 0; i < n->nrooms && !known; i++)
        known = node_is_member(n->rooms[i], rec.member);
    if (!known)
        return 0;
    const dial_st *have = node_dial_of(n, rec.member, false);
    if (have && rec.issued_ms <= have->rec_issued)
        return 0;
    if ((rc = kith_verify(n->env, rec.member, KITH_DOMAIN_ADDR, f->data, f->len, f->cert)))
        return rc;
    dial_st *d = node_dial_of(n, rec.member, true);
    if (!d)
        return 0;
    bool moved = strcmp(d->addr, rec.addr) != 0;
    memcpy(d->addr, rec.addr, sizeof d->addr);
    memcpy(d->rec, f->data, f->len);
    d->rec_len = f->len;
    memcpy(d->rec_sig, f->cert, KITH_SIG_LEN);
    d->rec_issued = rec.issued_ms;
    d->rec_expires = rec.expires_ms;
    if (moved) {
        d->fails = 0;
        d->backoff_ms = 0;
        d->next_ms = kith_mono_ms(n->env);
    }
    /* Pass it on to the member's other room-mates we are linked to, when
     * it is news: it changed where we reach the member. */
    for (size_t i = n->nconns; moved && i > 0; i--) {
        nconn *o = n->conns[i - 1];
        if (o != c && o->established && !o->joining && memcmp(o->peer, rec.member, KITH_ID_LEN) != 0
            && shares_with(n, rec.member, o->peer))
            send_rec(n, o, f->data, f->len, f->cert);
    }
    return 0;
}
