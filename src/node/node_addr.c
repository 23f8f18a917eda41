/* node/node_addr: members' addresses as signed, expiring records.
 *
 * A member's address can change (a new port, another network). Each node
 * that has an address signs a record {member, addr, issued, expires}
 * (proto/kith.md §6, ADDR) and gives it to every member it links to; a
 * node that learns a newer record about a member of one of its rooms keeps
 * it, dials the new address, and passes it on over its other links of the
 * rooms the member is in, so a record crosses hops like a message. Records
 * about strangers are ignored: a room's member addresses stay in the room.
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

/* A new link: our own record, and those we hold about members this peer
 * shares a room with. */
void node_addr_send_all(kith_node *n, nconn *c)
{
    node_addr_tick(n);
    if (n->own_rec_len)
        send_rec(n, c, n->own_rec, n->own_rec_len, n->own_rec_sig);
    uint64_t now = kith_wall_ms(n->env);
    for (size_t i = 0; i < n->ndials; i++) {
        const dial_st *d = &n->dials[i];
        if (d->rec_len && d->rec_expires > now && memcmp(d->member, c->peer, KITH_ID_LEN) != 0
            && shares_with(n, d->member, c->peer))
            send_rec(n, c, d->rec, d->rec_len, d->rec_sig);
    }
}

static dial_st *dial_of(kith_node *n, const uint8_t member[KITH_ID_LEN])
{
    for (size_t i = 0; i < n->ndials; i++) {
        if (!n->dials[i].fixed && memcmp(n->dials[i].member, member, KITH_ID_LEN) == 0)
            return &n->dials[i];
    }
    dial_st *d = kith_realloc(n->env, n->dials, (n->ndials + 1) * sizeof *d);
    if (!d)
        return NULL;
    n->dials = d;
    d = &n->dials[n->ndials++];
    memset(d, 0, sizeof *d);
    memcpy(d->member, member, KITH_ID_LEN);
    d->next_ms = kith_mono_ms(n->env);
    return d;
}

int node_addr_frame(kith_node *n, nconn *c, const kith_frame *f)
{
    kith_addr_rec rec;
    int rc = kith_addr_verify(n->env, f->data, f->len, f->cert, kith_wall_ms(n->env), n->doc, &rec);
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
    dial_st *d = dial_of(n, rec.member);
    if (!d || rec.issued_ms <= d->rec_issued)
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
    /* Pass it on to the member's other room-mates we are linked to. */
    for (size_t i = n->nconns; i > 0; i--) {
        nconn *o = n->conns[i - 1];
        if (o != c && o->established && !o->joining && memcmp(o->peer, rec.member, KITH_ID_LEN) != 0
            && shares_with(n, rec.member, o->peer))
            send_rec(n, o, f->data, f->len, f->cert);
    }
    return 0;
}
