/* wire (reader): turns untrusted msgpack bytes into a flat, bounded
 * kith_wire_doc. The only module that includes msgpack.h, together with
 * writer.c.
 *
 * Three passes, cheapest first:
 *   1. prescan: one non-allocating walk over the bytes that checks every
 *      declared length against what remains, the depth, the value count,
 *      trailing bytes and (with KITH_WIRE_CANONICAL) the canonical form.
 *      msgpack-c sizes its allocations from counts the sender declares, so it
 *      never sees bytes that did not pass this walk.
 *   2. msgpack_unpack into a msgpack_zone (the only allocation of a parse).
 *   3. copy the msgpack_object tree into doc->nodes, walking the bytes again
 *      in step so that every str/bin pointer is checked to lie where the
 *      pre-scan saw it, inside the caller's input, and every array/map node
 *      learns the exact bytes it was encoded as. */
#include "wire/wire.h"

#include <msgpack.h>

/* What one msgpack header says, decoded without looking past it. */
enum hdr_kind {
    K_NIL = KITH_WIRE_NIL,
    K_BOOL = KITH_WIRE_BOOL,
    K_UINT = KITH_WIRE_UINT,
    K_INT = KITH_WIRE_INT,
    K_STR = KITH_WIRE_STR,
    K_BIN = KITH_WIRE_BIN,
    K_ARRAY = KITH_WIRE_ARRAY,
    K_MAP = KITH_WIRE_MAP,
    K_FLOAT,
    K_EXT,
};

typedef struct hdr {
    uint8_t kind;
    uint8_t hlen; /* header bytes, tag included */
    bool canon; /* the shortest encoding of this value or length */
    uint64_t u; /* UINT, BOOL */
    int64_t i; /* INT */
    uint64_t n; /* STR/BIN/EXT/FLOAT: payload bytes after the header; ARRAY: elements; MAP: pairs */
} hdr;

/* Decode the header at p (avail bytes readable). Only checks that the header
 * itself is present and not the never-used tag 0xc1. */
static int read_hdr(const uint8_t *p, size_t avail, hdr *h)
{
    if (avail < 1)
        return KITH_EPROTO;
    uint8_t t = p[0];
    memset(h, 0, sizeof *h);
    h->hlen = 1;
    h->canon = true;

    if (t <= 0x7f) {
        h->kind = K_UINT;
        h->u = t;
        return 0;
    }
    if (t >= 0xe0) {
        h->kind = K_INT;
        h->i = (int64_t)(int8_t)t;
        return 0;
    }
    if (t <= 0x8f) {
        h->kind = K_MAP;
        h->n = t & 0x0fu;
        return 0;
    }
    if (t <= 0x9f) {
        h->kind = K_ARRAY;
        h->n = t & 0x0fu;
        return 0;
    }
    if (t <= 0xbf) {
        h->kind = K_STR;
        h->n = t & 0x1fu;
        return 0;
    }

    /* Tags 0xc0..0xdf: the size of what follows the tag. */
    static const uint8_t extra[32] = {
        [0x00] = 0,
        [0x01] = 0,
        [0x02] = 0,
        [0x03] = 0, /* nil, (never used), false, true */
        [0x04] = 1,
        [0x05] = 2,
        [0x06] = 4, /* bin 8/16/32 */
        [0x07] = 2,
        [0x08] = 3,
        [0x09] = 5, /* ext 8/16/32 (length + type) */
        [0x0a] = 0,
        [0x0b] = 0, /* float 32/64: payload counted in n */
        [0x0c] = 1,
        [0x0d] = 2,
        [0x0e] = 4,
        [0x0f] = 8, /* uint 8..64 */
        [0x10] = 1,
        [0x11] = 2,
        [0x12] = 4,
        [0x13] = 8, /* int 8..64 */
        [0x14] = 1,
        [0x15] = 1,
        [0x16] = 1,
        [0x17] = 1,
        [0x18] = 1, /* fixext (type) */
        [0x19] = 1,
        [0x1a] = 2,
        [0x1b] = 4, /* str 8/16/32 */
        [0x1c] = 2,
        [0x1d] = 4, /* array 16/32 */
        [0x1e] = 2,
        [0x1f] = 4, /* map 16/32 */
    };
    if (t == 0xc1)
        return KITH_EPROTO;
    size_t x = extra[t - 0xc0];
    if (avail - 1 < x)
        return KITH_EPROTO;
    h->hlen = (uint8_t)(1 + x);
    const uint8_t *q = p + 1;
    uint64_t v = 0; /* the big-endian length or integer after the tag */
    switch (x == 5 ? 4 : x) {
    case 1:
        v = q[0];
        break;
    case 2:
        v = kith_get_be16(q);
        break;
    case 4:
        v = kith_get_be32(q);
        break;
    case 8:
        v = kith_get_be64(q);
        break;
    default:
        break;
    }

    switch (t) {
    case 0xc0:
        h->kind = K_NIL;
        break;
    case 0xc2:
    case 0xc3:
        h->kind = K_BOOL;
        h->u = t == 0xc3;
        break;
    case 0xc4: /* bin8 is the shortest bin header for every length below 256 */
    case 0xc5:
    case 0xc6:
        h->kind = K_BIN;
        h->n = v;
        h->canon = t == 0xc4 || (t == 0xc5 ? v > 0xff : v > 0xffff);
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        h->kind = K_EXT;
        h->n = v;
        h->canon = false;
        break;
    case 0xca:
    case 0xcb:
        h->kind = K_FLOAT;
        h->n = t == 0xca ? 4 : 8;
        h->canon = false;
        break;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        h->kind = K_UINT;
        h->u = v;
        h->canon = t == 0xcc ? v > 0x7f
            : t == 0xcd      ? v > 0xff
            : t == 0xce      ? v > 0xffff
                             : v > 0xffffffffu;
        break;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        /* Sign-extend from the encoded width. */
        int64_t s = t == 0xd0 ? (int64_t)(int8_t)(uint8_t)v
            : t == 0xd1       ? (int64_t)(int16_t)(uint16_t)v
            : t == 0xd2       ? (int64_t)(int32_t)(uint32_t)v
                              : (int64_t)v;
        if (s >= 0) {
            /* A non-negative value in a signed type: msgpack-c reads it as a
             * positive integer; canonical form is the uint family. */
            h->kind = K_UINT;
            h->u = (uint64_t)s;
            h->canon = false;
        } else {
            h->kind = K_INT;
            h->i = s;
            h->canon = t == 0xd0 ? s < -32
                : t == 0xd1      ? s < INT8_MIN
                : t == 0xd2      ? s < INT16_MIN
                                 : s < INT32_MIN;
        }
        break;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        h->kind = K_EXT;
        h->n = (uint64_t)1 << (t - 0xd4);
        h->canon = false;
        break;
    case 0xd9:
    case 0xda:
    case 0xdb:
        h->kind = K_STR;
        h->n = v;
        h->canon = t == 0xd9 ? v > 31 : t == 0xda ? v > 0xff : v > 0xffff;
        break;
    case 0xdc:
    case 0xdd:
        h->kind = K_ARRAY;
        h->n = v;
        h->canon = t == 0xdc ? v > 15 : v > 0xffff;
        break;
    default: /* 0xde, 0xdf */
        h->kind = K_MAP;
        h->n = v;
        h->canon = t == 0xde ? v > 15 : v > 0xffff;
        break;
    }
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Canonical strings must be valid so that every node that displays
 * or re-encodes them agrees on what they say. */
bool kith_wire_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

/* One open container (or the root slot) during the pre-scan. */
typedef struct scan_frame {
    uint64_t left; /* values still to read: elements, or keys + values */
    bool is_map;
    bool have_key;
    uint64_t last_key;
} scan_frame;

int kith_wire_prescan(const uint8_t *data, size_t len, size_t max_len, unsigned flags)
{
    if (flags & ~KITH_WIRE_CANONICAL)
        return KITH_EINVAL;
    if (len > max_len || len > KITH_WIRE_MAX_FRAME)
        return KITH_ETOOBIG;
    if (!data && len)
        return KITH_EINVAL;
    bool canonical = flags & KITH_WIRE_CANONICAL;

    /* stack[0] is the root slot (one value); stack[d] the container at depth d. */
    scan_frame stack[KITH_WIRE_MAX_DEPTH + 1];
    size_t top = 0;
    stack[0] = (scan_frame) { .left = 1 };
    /* pending: values promised by open containers and not read yet. Each takes
     * at least one byte, so pending never exceeds the bytes left; together
     * with `nodes` it bounds the tree before anything is allocated. */
    uint64_t pending = 1, nodes = 0;
    size_t pos = 0;

    while (pending > 0) {
        while (stack[top].left == 0)
            top--; /* stack[0].left > 0 while pending > 0 */
        scan_frame *f = &stack[top];
        bool is_key = f->is_map && f->left % 2 == 0;
        f->left--;
        pending--;
        nodes++;

        hdr h;
        int rc = read_hdr(data + pos, len - pos, &h);
        if (rc)
            return rc;
        if (h.kind == K_FLOAT || h.kind == K_EXT) /* a doc has no node type for them */
            return canonical ? KITH_ENONCANON : KITH_EPROTO;
        if (canonical && !h.canon)
            return KITH_ENONCANON;
        if (canonical && is_key) {
            if (h.kind != K_UINT || (f->have_key && h.u <= f->last_key))
                return KITH_ENONCANON;
            f->have_key = true;
            f->last_key = h.u;
        }
        pos += h.hlen;
        uint64_t rem = len - pos;

        switch (h.kind) {
        case K_STR:
        case K_BIN:
            if (h.n + pending > rem)
                return KITH_EPROTO;
            if (canonical && h.kind == K_STR && !kith_wire_utf8_valid(data + pos, (size_t)h.n))
                return KITH_ENONCANON;
            pos += (size_t)h.n;
            break;
        case K_ARRAY:
        case K_MAP: {
            uint64_t count = h.kind == K_MAP ? 2 * h.n : h.n;
            if (top + 1 > KITH_WIRE_MAX_DEPTH)
                return KITH_ETOOBIG;
            if (count + pending > rem)
                return KITH_EPROTO;
            if (nodes + pending + count > KITH_WIRE_MAX_NODES)
                return KITH_ETOOBIG;
            pending += count;
            if (count)
                stack[++top] = (scan_frame) { .left = count, .is_map = h.kind == K_MAP };
            break;
        }
        default:
            break;
        }
    }
    return pos == len ? 0 : KITH_EPROTO; /* trailing bytes */
}

/* Copy state: the doc being filled and a cursor over the same bytes that
 * msgpack-c read, advanced in step with the tree. */
typedef struct conv {
    kith_wire_doc *doc;
    const uint8_t *data;
    size_t len;
    size_t pos;
} conv;

static int fill(conv *c, size_t idx, const msgpack_object *o, unsigned depth)
{
    if (depth > KITH_WIRE_MAX_DEPTH)
        return KITH_ETOOBIG;
    size_t start = c->pos;
    hdr h;
    int rc = read_hdr(c->data + start, c->len - start, &h);
    if (rc)
        return rc;
    c->pos += h.hlen;

    kith_wire_node *nd = &c->doc->nodes[idx];
    memset(nd, 0, sizeof *nd);
    nd->type = h.kind;

    /* msgpack-c and the pre-scan must agree on every value; a disagreement
     * means one of them misread the bytes, and the input is refused. */
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return h.kind == K_NIL ? 0 : KITH_EPROTO;
    case MSGPACK_OBJECT_BOOLEAN:
        if (h.kind != K_BOOL || o->via.boolean != (h.u != 0))
            return KITH_EPROTO;
        nd->u = h.u;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (h.kind != K_UINT || o->via.u64 != h.u)
            return KITH_EPROTO;
        nd->u = h.u;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (h.kind != K_INT || o->via.i64 != h.i)
            return KITH_EPROTO;
        nd->i = h.i;
        return 0;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        /* str and bin share a layout in msgpack_object. msgpack_unpack points
         * them into the input; check it did, exactly where the header ends. */
        const char *ptr = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
        uint32_t size = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
        uint8_t want = o->type == MSGPACK_OBJECT_STR ? K_STR : K_BIN;
        if (h.kind != want || size != h.n || h.n > c->len - c->pos)
            return KITH_EPROTO;
        if (size && (const uint8_t *)ptr != c->data + c->pos)
            return KITH_EPROTO;
        nd->p = c->data + c->pos;
        nd->len = size;
        c->pos += size;
        return 0;
    }
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP: {
        bool is_map = o->type == MSGPACK_OBJECT_MAP;
        uint32_t n = is_map ? o->via.map.size : o->via.array.size;
        size_t kids = is_map ? 2 * (size_t)n : n;
        if (h.kind != (is_map ? K_MAP : K_ARRAY) || n != h.n)
            return KITH_EPROTO;
        if (kids > KITH_WIRE_MAX_NODES - c->doc->count)
            return KITH_ETOOBIG;
        size_t first = c->doc->count;
        c->doc->count += kids;
        nd->n = n;
        nd->first = (uint32_t)first;
        for (size_t k = 0; k < n; k++) {
            if (is_map) {
                rc = fill(c, first + 2 * k, &o->via.map.ptr[k].key, depth + 1);
                if (!rc)
                    rc = fill(c, first + 2 * k + 1, &o->via.map.ptr[k].val, depth + 1);
            } else {
                rc = fill(c, first + k, &o->via.array.ptr[k], depth + 1);
            }
            if (rc)
                return rc;
        }
        /* The exact encoded bytes of the container, for hashing or verifying
         * a nested signed structure without re-encoding it. */
        nd->p = c->data + start;
        nd->len = c->pos - start;
        return 0;
    }
    default:
        return KITH_EPROTO;
    }
}

int kith_wire_parse(const kith_env *env, const uint8_t *data, size_t len, size_t max_len,
    unsigned flags, kith_wire_doc *doc)
{
    doc->count = 0;
    int rc = kith_wire_prescan(data, len, max_len, flags);
    if (rc) {
        KITH_LOGD(env, "wire: rejected %zu bytes: %s", len, kith_strerror(rc));
        return rc;
    }

    /* The pre-scan bounded the tree to KITH_WIRE_MAX_NODES values, so the
     * zone holds at most that many msgpack_objects (a few dozen KiB). */
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return KITH_ENOMEM;
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack((const char *)data, len, &off, &zone, &obj);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        rc = KITH_ENOMEM;
    } else if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        rc = KITH_EPROTO;
    } else {
        conv c = { .doc = doc, .data = data, .len = len, .pos = 0 };
        doc->count = 1;
        rc = fill(&c, 0, &obj, 0);
        if (!rc && c.pos != len)
            rc = KITH_EPROTO;
    }
    msgpack_zone_destroy(&zone);
    if (rc) {
        doc->count = 0;
        KITH_LOGD(env, "wire: unpack of %zu bytes failed: %s", len, kith_strerror(rc));
    }
    return rc;
}

const kith_wire_node *kith_wire_elem(const kith_wire_doc *doc, const kith_wire_node *arr, size_t i)
{
    if (!doc || !arr || arr->type != KITH_WIRE_ARRAY || i >= arr->n)
        return NULL;
    return &doc->nodes[arr->first + i];
}

const kith_wire_node *kith_wire_get(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key)
{
    if (!doc || !map || map->type != KITH_WIRE_MAP)
        return NULL;
    /* Maps are small; a linear scan works for canonical (sorted) and
     * non-canonical maps alike. With duplicate keys (possible only without
     * KITH_WIRE_CANONICAL) the first one wins. */
    const kith_wire_node *kv = &doc->nodes[map->first];
    for (size_t k = 0; k < map->n; k++, kv += 2)
        if (kv->type == KITH_WIRE_UINT && kv->u == key)
            return kv + 1;
    return NULL;
}

/* The value for key, checked to be of type t: KITH_EPROTO if map is not a
 * map or the value has another type, KITH_ENOENT if absent. */
static int get_typed(const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, uint8_t t,
    const kith_wire_node **out)
{
    *out = NULL;
    if (!doc || !map || map->type != KITH_WIRE_MAP)
        return KITH_EPROTO;
    const kith_wire_node *v = kith_wire_get(doc, map, key);
    if (!v)
        return KITH_ENOENT;
    if (v->type != t)
        return KITH_EPROTO;
    *out = v;
    return 0;
}

int kith_wire_get_uint(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, uint64_t *out)
{
    const kith_wire_node *v;
    int rc = get_typed(doc, map, key, KITH_WIRE_UINT, &v);
    if (rc)
        return rc;
    *out = v->u;
    return 0;
}

int kith_wire_get_bool(const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, bool *out)
{
    const kith_wire_node *v;
    int rc = get_typed(doc, map, key, KITH_WIRE_BOOL, &v);
    if (rc)
        return rc;
    *out = v->u != 0;
    return 0;
}

int kith_wire_get_bin(const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key,
    const uint8_t **p, size_t *len)
{
    const kith_wire_node *v;
    int rc = get_typed(doc, map, key, KITH_WIRE_BIN, &v);
    if (rc)
        return rc;
    *p = v->p;
    *len = v->len;
    return 0;
}

int kith_wire_get_fixed(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, uint8_t *out, size_t len)
{
    const kith_wire_node *v;
    int rc = get_typed(doc, map, key, KITH_WIRE_BIN, &v);
    if (rc)
        return rc;
    if (v->len != len)
        return KITH_EPROTO;
    if (len)
        memcpy(out, v->p, len);
    return 0;
}

int kith_wire_get_str(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, const char **p, size_t *len)
{
    const kith_wire_node *v;
    int rc = get_typed(doc, map, key, KITH_WIRE_STR, &v);
    if (rc)
        return rc;
    *p = (const char *)v->p;
    *len = v->len;
    return 0;
}

int kith_wire_get_array(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, const kith_wire_node **arr)
{
    return get_typed(doc, map, key, KITH_WIRE_ARRAY, arr);
}

int kith_wire_get_map(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, const kith_wire_node **out)
{
    return get_typed(doc, map, key, KITH_WIRE_MAP, out);
}
