/* node/frame: encode and decode node-protocol frames (proto/kith.md §6).
 * Every field read from the network is type- and size-checked here so the
 * node sees only well-formed frames. */
#include "node/frame.h"

#include <sodium.h>

static int finish(kith_wire_writer *w)
{
    return kith_wire_finish(w);
}

static void put_str(kith_wire_writer *w, const char *s, size_t max)
{
    kith_wire_str(w, s ? s : "", s ? strnlen(s, max) : 0);
}

int kith_frame_join_req(kith_buf *out, const uint8_t room_id[KITH_HASH_LEN],
    const uint8_t proof[KITH_HASH_LEN], const uint8_t cert[KITH_SIG_LEN], const char *nick,
    const char *addr)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 6);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_JOIN_REQ);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, room_id, KITH_HASH_LEN);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, proof, KITH_HASH_LEN);
    kith_wire_uint(&w, 3);
    put_str(&w, nick, KITH_NICK_MAX);
    kith_wire_uint(&w, 4);
    put_str(&w, addr, KITH_ADDR_MAX);
    kith_wire_uint(&w, 5);
    kith_wire_bin(&w, cert, KITH_SIG_LEN);
    return finish(&w);
}

int kith_frame_knock(kith_buf *out, const char *room_name, const uint8_t cert[KITH_SIG_LEN],
    const char *nick, const char *addr)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 5);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_KNOCK);
    kith_wire_uint(&w, 1);
    put_str(&w, room_name, KITH_ROOM_NAME_MAX);
    kith_wire_uint(&w, 3);
    put_str(&w, nick, KITH_NICK_MAX);
    kith_wire_uint(&w, 4);
    put_str(&w, addr, KITH_ADDR_MAX);
    kith_wire_uint(&w, 5);
    kith_wire_bin(&w, cert, KITH_SIG_LEN);
    return finish(&w);
}

int kith_frame_join_ok(kith_buf *out, const kith_room *room, size_t from, size_t *next)
{
    size_t n = kith_room_op_count(room);
    if (from >= n)
        return KITH_EINVAL;
    /* Room for the map, the type, the room id, the array and the mark;
     * each op costs its bytes and a bin header of at most 5. */
    size_t end = from, bytes = 64;
    while (end < n && end - from < KITH_FRAME_JOIN_OPS) {
        size_t len;
        kith_room_op_at(room, end, &len);
        if (end > from && bytes + len + 5 > KITH_FRAME_JOIN_BYTES)
            break;
        bytes += len + 5;
        end++;
    }
    bool more = end < n;
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, more ? 4 : 3);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_JOIN_OK);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, kith_room_id(room), KITH_HASH_LEN);
    kith_wire_uint(&w, 2);
    kith_wire_array(&w, (uint32_t)(end - from));
    for (size_t i = from; i < end; i++) {
        size_t len;
        const uint8_t *op = kith_room_op_at(room, i, &len);
        kith_wire_bin(&w, op, len);
    }
    if (more) {
        kith_wire_uint(&w, 3);
        kith_wire_bool(&w, true);
    }
    *next = end;
    return finish(&w);
}

int kith_frame_join_err(kith_buf *out, const uint8_t room_id[KITH_HASH_LEN], const char *reason)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 3);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_JOIN_ERR);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, room_id, KITH_HASH_LEN);
    kith_wire_uint(&w, 2);
    put_str(&w, reason, KITH_FRAME_REASON_MAX);
    return finish(&w);
}

int kith_frame_op(
    kith_buf *out, const uint8_t room_id[KITH_HASH_LEN], const uint8_t *op, size_t len)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 3);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_OP);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, room_id, KITH_HASH_LEN);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, op, len);
    return finish(&w);
}

static int frame_msg(kith_buf *out, const uint8_t *envelope, size_t len, bool pulled)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, pulled ? 3 : 2);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_MSG);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, envelope, len);
    if (pulled) {
        kith_wire_uint(&w, 2);
        kith_wire_bool(&w, true);
    }
    return finish(&w);
}

int kith_frame_msg(kith_buf *out, const uint8_t *envelope, size_t len)
{
    return frame_msg(out, envelope, len, false);
}

int kith_frame_msg_pulled(kith_buf *out, const uint8_t *envelope, size_t len)
{
    return frame_msg(out, envelope, len, true);
}

int kith_frame_sync(kith_buf *out, const uint8_t room_id[KITH_HASH_LEN], uint64_t nops,
    const uint8_t (*authors)[KITH_ID_LEN], const uint64_t *seqs, size_t n)
{
    if (n > KITH_FRAME_MAX_VEC)
        return KITH_ETOOBIG;
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 4);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_SYNC);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, room_id, KITH_HASH_LEN);
    kith_wire_uint(&w, 2);
    kith_wire_uint(&w, nops);
    kith_wire_uint(&w, 3);
    kith_wire_array(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        kith_wire_array(&w, 2);
        kith_wire_bin(&w, authors[i], KITH_ID_LEN);
        kith_wire_uint(&w, seqs[i]);
    }
    return finish(&w);
}

/* Copy a str field into a NUL-terminated buffer, rejecting embedded NULs and
 * anything over the cap rather than truncating it silently. */
static int get_cstr(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, char *out, size_t max)
{
    const char *p;
    size_t len;
    int rc = kith_wire_get_str(doc, map, key, &p, &len);
    if (rc)
        return rc == KITH_ENOENT ? KITH_EPROTO : rc;
    if (len > max || memchr(p, '\0', len))
        return KITH_EPROTO;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

static int need(int rc)
{
    return rc == KITH_ENOENT ? KITH_EPROTO : rc;
}

int kith_frame_decode(
    const kith_env *env, const uint8_t *data, size_t len, kith_wire_doc *doc, kith_frame *f)
{
    memset(f, 0, sizeof *f);
    int rc = kith_wire_parse(env, data, len, KITH_WIRE_MAX_FRAME, KITH_WIRE_CANONICAL, doc);
    if (rc)
        return rc;
    const kith_wire_node *m = kith_wire_root(doc);
    if (m->type != KITH_WIRE_MAP)
        return KITH_EPROTO;
    uint64_t type;
    if ((rc = need(kith_wire_get_uint(doc, m, 0, &type))))
        return rc;
    f->doc = doc;
    f->type = (uint32_t)type;
    if (type != KITH_FR_MSG && type != KITH_FR_KNOCK && type != KITH_FR_ADDR) {
        if ((rc = need(kith_wire_get_fixed(doc, m, 1, f->room_id, KITH_HASH_LEN))))
            return rc;
    }
    switch (type) {
    case KITH_FR_JOIN_REQ:
        if ((rc = need(kith_wire_get_fixed(doc, m, 2, f->proof, KITH_HASH_LEN))))
            return rc;
        if ((rc = get_cstr(doc, m, 3, f->nick, KITH_NICK_MAX)))
            return rc;
        if ((rc = get_cstr(doc, m, 4, f->addr, KITH_ADDR_MAX)))
            return rc;
        return need(kith_wire_get_fixed(doc, m, 5, f->cert, KITH_SIG_LEN));
    case KITH_FR_KNOCK:
        if ((rc = get_cstr(doc, m, 1, f->name, KITH_ROOM_NAME_MAX)))
            return rc;
        if (!f->name[0])
            return KITH_EPROTO;
        if ((rc = get_cstr(doc, m, 3, f->nick, KITH_NICK_MAX)))
            return rc;
        if ((rc = get_cstr(doc, m, 4, f->addr, KITH_ADDR_MAX)))
            return rc;
        return need(kith_wire_get_fixed(doc, m, 5, f->cert, KITH_SIG_LEN));
    case KITH_FR_JOIN_OK: {
        if ((rc = need(kith_wire_get_array(doc, m, 2, &f->arr))))
            return rc;
        f->count = f->arr->n;
        if (f->count == 0 || f->count > KITH_ROOM_MAX_OPS)
            return KITH_EPROTO;
        const kith_wire_node *more = kith_wire_get(doc, m, 3);
        if (more && (more->type != KITH_WIRE_BOOL || !more->u))
            return KITH_EPROTO; /* present only as true: one encoding */
        f->more = more != NULL;
        return 0;
    }
    case KITH_FR_JOIN_ERR:
        return get_cstr(doc, m, 2, f->reason, KITH_FRAME_REASON_MAX);
    case KITH_FR_OP:
        if ((rc = need(kith_wire_get_bin(doc, m, 2, &f->data, &f->len))))
            return rc;
        return f->len > KITH_OP_MAX ? KITH_ETOOBIG : 0;
    case KITH_FR_MSG: {
        if ((rc = need(kith_wire_get_bin(doc, m, 1, &f->data, &f->len))))
            return rc;
        const kith_wire_node *pulled = kith_wire_get(doc, m, 2);
        if (pulled && (pulled->type != KITH_WIRE_BOOL || !pulled->u))
            return KITH_EPROTO; /* present only as true: one encoding */
        f->pulled = pulled != NULL;
        return f->len > KITH_MSG_MAX_ENVELOPE ? KITH_ETOOBIG : 0;
    }
    case KITH_FR_SYNC:
        if ((rc = need(kith_wire_get_uint(doc, m, 2, &f->nops))))
            return rc;
        if ((rc = need(kith_wire_get_array(doc, m, 3, &f->arr))))
            return rc;
        f->count = f->arr->n;
        return f->count > KITH_FRAME_MAX_VEC ? KITH_ETOOBIG : 0;
    case KITH_FR_IHAVE:
    case KITH_FR_WANT:
        if ((rc = need(kith_wire_get_array(doc, m, 2, &f->arr))))
            return rc;
        f->count = f->arr->n;
        return f->count > KITH_FRAME_MAX_IDS ? KITH_ETOOBIG : 0;
    case KITH_FR_PRUNE:
        return 0;
    case KITH_FR_ADDR:
        if ((rc = need(kith_wire_get_bin(doc, m, 1, &f->data, &f->len))))
            return rc;
        if (f->len > KITH_ADDR_REC_MAX)
            return KITH_ETOOBIG;
        return need(kith_wire_get_fixed(doc, m, 2, f->cert, KITH_SIG_LEN));
    default:
        return KITH_EPROTO;
    }
}

int kith_frame_ids(kith_buf *out, uint32_t type, const uint8_t room_id[KITH_HASH_LEN],
    const uint8_t (*ids)[KITH_HASH_LEN], size_t n)
{
    if (n > KITH_FRAME_MAX_IDS || (type == KITH_FR_PRUNE && n))
        return KITH_EINVAL;
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, type == KITH_FR_PRUNE ? 2 : 3);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, type);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, room_id, KITH_HASH_LEN);
    if (type != KITH_FR_PRUNE) {
        kith_wire_uint(&w, 2);
        kith_wire_array(&w, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            kith_wire_bin(&w, ids[i], KITH_HASH_LEN);
    }
    return kith_wire_finish(&w);
}

int kith_frame_id_at(const kith_frame *f, size_t i, uint8_t id[KITH_HASH_LEN])
{
    const kith_wire_node *e = kith_wire_elem(f->doc, f->arr, i);
    if (!e || e->type != KITH_WIRE_BIN || e->len != KITH_HASH_LEN)
        return KITH_EPROTO;
    memcpy(id, e->p, KITH_HASH_LEN);
    return 0;
}

int kith_frame_op_at(const kith_frame *f, size_t i, const uint8_t **op, size_t *len)
{
    const kith_wire_node *n = kith_wire_elem(f->doc, f->arr, i);
    if (!n || n->type != KITH_WIRE_BIN || n->len > KITH_OP_MAX)
        return KITH_EPROTO;
    *op = n->p;
    *len = n->len;
    return 0;
}

int kith_frame_vec_at(const kith_frame *f, size_t i, uint8_t author[KITH_ID_LEN], uint64_t *seq)
{
    const kith_wire_node *e = kith_wire_elem(f->doc, f->arr, i);
    if (!e || e->type != KITH_WIRE_ARRAY || e->n != 2)
        return KITH_EPROTO;
    const kith_wire_node *a = kith_wire_elem(f->doc, e, 0);
    const kith_wire_node *s = kith_wire_elem(f->doc, e, 1);
    if (!a || a->type != KITH_WIRE_BIN || a->len != KITH_ID_LEN || !s || s->type != KITH_WIRE_UINT)
        return KITH_EPROTO;
    memcpy(author, a->p, KITH_ID_LEN);
    *seq = s->u;
    return 0;
}

int kith_frame_addr(kith_buf *out, const uint8_t *rec, size_t len, const uint8_t sig[KITH_SIG_LEN])
{
    if (len > KITH_ADDR_REC_MAX)
        return KITH_ETOOBIG;
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 3);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, KITH_FR_ADDR);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, rec, len);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, sig, KITH_SIG_LEN);
    return kith_wire_finish(&w);
}

int kith_addr_encode(kith_buf *out, const kith_addr_rec *rec)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 4);
    kith_wire_uint(&w, 0);
    kith_wire_bin(&w, rec->member, KITH_ID_LEN);
    kith_wire_uint(&w, 1);
    put_str(&w, rec->addr, KITH_ADDR_MAX);
    kith_wire_uint(&w, 2);
    kith_wire_uint(&w, rec->issued_ms);
    kith_wire_uint(&w, 3);
    kith_wire_uint(&w, rec->expires_ms);
    return kith_wire_finish(&w);
}

int kith_addr_parse(const kith_env *env, const uint8_t *data, size_t len, uint64_t now_ms,
    kith_wire_doc *doc, kith_addr_rec *out)
{
    memset(out, 0, sizeof *out);
    int rc = kith_wire_parse(env, data, len, KITH_ADDR_REC_MAX, KITH_WIRE_CANONICAL, doc);
    if (rc)
        return rc;
    const kith_wire_node *m = kith_wire_root(doc);
    if (m->type != KITH_WIRE_MAP || m->n != 4)
        return KITH_EPROTO;
    if ((rc = need(kith_wire_get_fixed(doc, m, 0, out->member, KITH_ID_LEN)))
        || (rc = get_cstr(doc, m, 1, out->addr, KITH_ADDR_MAX))
        || (rc = need(kith_wire_get_uint(doc, m, 2, &out->issued_ms)))
        || (rc = need(kith_wire_get_uint(doc, m, 3, &out->expires_ms))))
        return rc;
    if (!out->addr[0] || out->expires_ms <= out->issued_ms
        || out->expires_ms - out->issued_ms > KITH_ADDR_TTL_MAX)
        return KITH_EPROTO;
    if (out->expires_ms <= now_ms || out->issued_ms > now_ms + 600000)
        return KITH_EEXPIRED;
    return 0;
}

int kith_addr_verify(const kith_env *env, const uint8_t *data, size_t len,
    const uint8_t sig[KITH_SIG_LEN], uint64_t now_ms, kith_wire_doc *doc, kith_addr_rec *out)
{
    int rc = kith_addr_parse(env, data, len, now_ms, doc, out);
    if (rc)
        return rc;
    return kith_verify(env, out->member, KITH_DOMAIN_ADDR, data, len, sig);
}
