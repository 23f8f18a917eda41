/* room: the membership log (a hash-linked DAG of signed ops) and the state
 * it defines: members, roles, and the epoch keys this node holds. Byte
 * formats are in proto/kith.md section 5; the reasoning is in
 * docs/internals/room.md.
 *
 * Validity of an op depends only on the op and its causal past (the ops
 * reachable through its parents), never on what else this node happens to
 * have received, so every node that holds an op reaches the same verdict on
 * it and the logs converge. That is why "is the author a member" and "is the
 * subject already a member" are answered by walking the op's ancestors, not by
 * looking at the current member list. */
#include "room/room.h"

#include <sodium.h>

#include "msg/msg.h"
#include "util/map.h"
#include "wire/wire.h"

/* Signed op map keys. */
enum { SK_BODY = 0, SK_SIG = 1 };

/* Op body keys (proto/kith.md 5.2). */
enum {
    OK_VERSION = 0,
    OK_KIND = 1,
    OK_ROOM = 2,
    OK_AUTHOR = 3,
    OK_PARENTS = 4,
    OK_WALL = 5,
    OK_LAMPORT = 6,
    OK_EPOCH = 7,
    OK_SUBJECT = 8,
    OK_SUBJECT_DH = 9,
    OK_SUBJECT_CERT = 10,
    OK_ROLE = 11,
    OK_NICK = 12,
    OK_ADDR = 13,
    OK_NAME = 14,
    OK_HISTORY = 15,
    OK_INVITE = 16,
    OK_NONCE = 17,
    OK_SEALED = 18,
};

#define GENESIS_KEYS 17 /* 0, 1, 3..15, 17, 18 */
#define ADD_KEYS 15 /* 0..13, 18; plus 16 when an invite id is given */
#define NONCE_LEN 16
#define KEYMSG_LEN (8 + KITH_KEY_LEN) /* epoch (u64 BE) || key */
#define SEALED_LEN (KEYMSG_LEN + KITH_SEAL_OVERHEAD)

enum { HISTORY_FROM_JOIN = 0, HISTORY_WHOLE = 1 };

/* An op as parsed, before it is checked against the room. String fields
 * point into the caller's bytes. */
typedef struct op_view {
    const uint8_t *body;
    size_t body_len;
    uint8_t sig[KITH_SIG_LEN];
    uint64_t kind;
    uint8_t room[KITH_HASH_LEN];
    uint8_t author[KITH_ID_LEN];
    size_t nparents;
    uint8_t parents[KITH_ROOM_MAX_PARENTS][KITH_HASH_LEN];
    uint64_t wall, lamport, epoch;
    uint8_t subject[KITH_ID_LEN];
    uint8_t subject_dh[KITH_DH_LEN];
    uint8_t subject_cert[KITH_SIG_LEN];
    uint64_t role;
    const char *nick, *addr, *name;
    size_t nick_len, addr_len, name_len;
    uint64_t history;
    bool has_invite;
    uint8_t invite[KITH_HASH_LEN];
    uint8_t sealed[SEALED_LEN];
} op_view;

typedef struct op_rec {
    uint8_t id[KITH_HASH_LEN];
    uint8_t *bytes;
    size_t len;
    uint64_t lamport;
    uint32_t parents[KITH_ROOM_MAX_PARENTS];
    uint8_t nparents;
    uint8_t role; /* role granted to the subject */
    bool head; /* no applied op names it as a parent */
    uint32_t subject; /* member index */
} op_rec;

typedef struct key_rec {
    uint64_t epoch;
    uint8_t key[KITH_KEY_LEN];
} key_rec;

struct kith_room {
    const kith_env *env;
    const kith_identity *self;
    uint8_t id[KITH_HASH_LEN];
    char name[KITH_ROOM_NAME_MAX + 1];
    uint8_t history;
    uint64_t epoch;

    op_rec *ops;
    size_t nops, capops;
    kith_map op_index; /* op id -> index into ops */

    kith_member *members;
    uint32_t *member_op; /* index of the add op whose nick/addr/dh are shown */
    size_t nmembers, capmembers, capmember_op;
    kith_map member_index; /* member id -> index into members */

    key_rec *keys; /* epoch keys self holds */
    size_t nkeys, capkeys;
};

/* ---- Small helpers ---- */

static int proto_err(int rc)
{
    return rc == KITH_ENOENT ? KITH_EPROTO : rc;
}

/* Names and nicks: UTF-8, no control characters (they would reach
 * terminals and the IRC gateway, where CR/LF could inject commands). */
static int check_text(const char *p, size_t len, size_t max, bool allow_empty)
{
    if (len > max)
        return KITH_ETOOBIG;
    if (!len && !allow_empty)
        return KITH_EPROTO;
    if (!kith_msg_utf8_valid((const uint8_t *)p, len))
        return KITH_EPROTO;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c < 0x20 || c == 0x7f)
            return KITH_EPROTO;
    }
    return 0;
}

/* Address hints: printable ASCII without spaces, e.g. "198.51.100.7:7117". */
static int check_addr(const char *p, size_t len)
{
    if (len > KITH_ADDR_MAX)
        return KITH_ETOOBIG;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c <= 0x20 || c >= 0x7f)
            return KITH_EPROTO;
    }
    return 0;
}

static void copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = KITH_MIN(len, cap - 1);
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool find_op(const kith_room *r, const uint8_t id[KITH_HASH_LEN], size_t *idx)
{
    uint64_t v;
    /* The map can hold a stale entry from an apply that failed half-way
     * (it has no delete), so check the record it points at. */
    if (!kith_map_get(&r->op_index, id, &v) || v >= r->nops
        || memcmp(r->ops[v].id, id, KITH_HASH_LEN) != 0)
        return false;
    *idx = (size_t)v;
    return true;
}

static bool find_member(const kith_room *r, const uint8_t id[KITH_ID_LEN], size_t *idx)
{
    uint64_t v;
    if (!kith_map_get(&r->member_index, id, &v) || v >= r->nmembers
        || memcmp(r->members[v].id, id, KITH_ID_LEN) != 0)
        return false;
    *idx = (size_t)v;
    return true;
}

static const key_rec *find_key(const kith_room *r, uint64_t epoch)
{
    for (size_t i = 0; i < r->nkeys; i++)
        if (r->keys[i].epoch == epoch)
            return &r->keys[i];
    return NULL;
}

/* Grow an array to hold `need` elements. Returns the (possibly moved) array;
 * on failure the old one, untouched, and *ok is cleared. */
static void *grow(const kith_env *env, void *arr, size_t *cap, size_t need, size_t elem, bool *ok)
{
    if (!*ok || need <= *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = kith_realloc(env, arr, ncap * elem);
    if (!p) {
        *ok = false;
        return arr;
    }
    *cap = ncap;
    return p;
}

/* ---- Parsing ---- */

static int get_text(
    const kith_wire_doc *doc, const kith_wire_node *m, uint64_t key, const char **p, size_t *len)
{
    return proto_err(kith_wire_get_str(doc, m, key, p, len));
}

/* Parse and check everything about an op that needs no room state. */
static int parse_op(const kith_env *env, const uint8_t *data, size_t len, op_view *v)
{
    if (len > KITH_OP_MAX)
        return KITH_ETOOBIG;
    kith_wire_doc *doc = kith_malloc(env, sizeof *doc);
    if (!doc)
        return KITH_ENOMEM;
    memset(v, 0, sizeof *v);
    uint64_t version;
    const kith_wire_node *root, *parents;
    size_t want;
    int rc = kith_wire_parse(env, data, len, KITH_OP_MAX, KITH_WIRE_CANONICAL, doc);
    if (rc)
        goto done;
    root = kith_wire_root(doc);
    rc = KITH_EPROTO;
    if (root->type != KITH_WIRE_MAP || root->n != 2)
        goto done;
    if ((rc = proto_err(kith_wire_get_bin(doc, root, SK_BODY, &v->body, &v->body_len))))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, SK_SIG, v->sig, KITH_SIG_LEN))))
        goto done;

    /* The body lies inside `data`, so its pointers stay valid when the doc
     * is reused for it. */
    rc = kith_wire_parse(env, v->body, v->body_len, KITH_OP_MAX, KITH_WIRE_CANONICAL, doc);
    if (rc)
        goto done;
    root = kith_wire_root(doc);
    rc = KITH_EPROTO;
    if (root->type != KITH_WIRE_MAP)
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_VERSION, &version))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_KIND, &v->kind))))
        goto done;
    rc = KITH_EPROTO;
    if (version != KITH_OP_VERSION)
        goto done;
    /* Unknown kinds are refused for now; later versions add kinds (remove,
     * ban, set role, rekey, ...) with their own key sets. */
    if (v->kind == KITH_OP_GENESIS)
        want = GENESIS_KEYS;
    else if (v->kind == KITH_OP_ADD)
        want = ADD_KEYS;
    else
        goto done;

    if (v->kind == KITH_OP_ADD
        && (rc = proto_err(kith_wire_get_fixed(doc, root, OK_ROOM, v->room, KITH_HASH_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_AUTHOR, v->author, KITH_ID_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_array(doc, root, OK_PARENTS, &parents))))
        goto done;
    rc = KITH_EPROTO;
    if (parents->type != KITH_WIRE_ARRAY)
        goto done;
    if (parents->n > KITH_ROOM_MAX_PARENTS) {
        rc = KITH_ETOOBIG;
        goto done;
    }
    /* A genesis has no parents; every other op at least one. */
    if ((v->kind == KITH_OP_GENESIS) != (parents->n == 0))
        goto done;
    v->nparents = parents->n;
    for (size_t i = 0; i < v->nparents; i++) {
        const kith_wire_node *p = kith_wire_elem(doc, parents, i);
        if (!p || p->type != KITH_WIRE_BIN || p->len != KITH_HASH_LEN)
            goto done;
        /* Strictly ascending: one op, one encoding, no repeated parent. */
        if (i && memcmp(v->parents[i - 1], p->p, KITH_HASH_LEN) >= 0)
            goto done;
        memcpy(v->parents[i], p->p, KITH_HASH_LEN);
    }
    if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_WALL, &v->wall))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_LAMPORT, &v->lamport))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_EPOCH, &v->epoch))))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_SUBJECT, v->subject, KITH_ID_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_SUBJECT_DH, v->subject_dh, KITH_DH_LEN))))
        goto done;
    if ((rc = proto_err(
             kith_wire_get_fixed(doc, root, OK_SUBJECT_CERT, v->subject_cert, KITH_SIG_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_ROLE, &v->role))))
        goto done;
    rc = KITH_EPROTO;
    if (v->role < KITH_ROLE_OBSERVER || v->role > KITH_ROLE_ADMIN)
        goto done;
    if ((rc = get_text(doc, root, OK_NICK, &v->nick, &v->nick_len)))
        goto done;
    if ((rc = check_text(v->nick, v->nick_len, KITH_NICK_MAX, true)))
        goto done;
    if ((rc = get_text(doc, root, OK_ADDR, &v->addr, &v->addr_len)))
        goto done;
    if ((rc = check_addr(v->addr, v->addr_len)))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_SEALED, v->sealed, SEALED_LEN))))
        goto done;

    if (v->kind == KITH_OP_GENESIS) {
        uint8_t nonce[NONCE_LEN];
        if ((rc = get_text(doc, root, OK_NAME, &v->name, &v->name_len)))
            goto done;
        if ((rc = check_text(v->name, v->name_len, KITH_ROOM_NAME_MAX, false)))
            goto done;
        if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_HISTORY, &v->history))))
            goto done;
        if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_NONCE, nonce, NONCE_LEN))))
            goto done;
        rc = KITH_EPROTO;
        if (v->history > HISTORY_WHOLE)
            goto done;
        /* The founder adds itself, as admin, at depth 0 and epoch 0. */
        if (memcmp(v->author, v->subject, KITH_ID_LEN) != 0 || v->role != KITH_ROLE_ADMIN
            || v->lamport != 0 || v->epoch != 0)
            goto done;
    } else {
        const kith_wire_node *inv = kith_wire_get(doc, root, OK_INVITE);
        if (inv) {
            if (inv->type != KITH_WIRE_BIN || inv->len != KITH_HASH_LEN)
                goto done;
            memcpy(v->invite, inv->p, KITH_HASH_LEN);
            v->has_invite = true;
            want++;
        }
        if (v->lamport == 0)
            goto done;
    }
    /* Every key read above is required (or counted when optional), and
     * canonical maps have unique keys, so a count mismatch is a key this
     * version does not know. */
    rc = root->n == want ? 0 : KITH_EPROTO;
done:
    kith_free(env, doc);
    return rc;
}

/* Signature and certificate: the expensive checks, run after the cheap
 * ones have passed. */
static int verify_op(const kith_env *env, const op_view *v)
{
    if (kith_verify(env, v->author, KITH_DOMAIN_OP, v->body, v->body_len, v->sig) != 0)
        return KITH_ECRYPTO;
    if (kith_cert_verify(v->subject, v->subject_dh, v->subject_cert) != 0)
        return KITH_ECRYPTO;
    return 0;
}

/* ---- Keys ---- */

/* If self is the subject, open the sealed epoch key and keep it. Failure is
 * not an error of the op (only the subject can check the seal, and every
 * node must reach the same verdict on an op); it is logged and self simply
 * holds no key for that epoch. The key array has room reserved. */
static void take_key(kith_room *r, const op_view *v)
{
    if (memcmp(v->subject, r->self->id_pk, KITH_ID_LEN) != 0 || find_key(r, v->epoch))
        return;
    uint8_t msg[KEYMSG_LEN];
    size_t n = 0;
    if (kith_seal_open(r->self, v->sealed, SEALED_LEN, msg, sizeof msg, &n) != 0 || n != KEYMSG_LEN
        || kith_get_be64(msg) != v->epoch) {
        KITH_LOGW(r->env, "room: sealed epoch key for us does not open");
        sodium_memzero(msg, sizeof msg);
        return;
    }
    key_rec *k = &r->keys[r->nkeys++];
    k->epoch = v->epoch;
    memcpy(k->key, msg + 8, KITH_KEY_LEN);
    sodium_memzero(msg, sizeof msg);
}

/* ---- Causal past ---- */

typedef struct past_info {
    uint8_t author_role; /* highest role granted to the author; 0 if none */
    bool subject_member;
} past_info;

/* Walk every ancestor of the given parents (inclusive). Membership ops only
 * add members and grant roles, so a member's role in the state at the
 * parents is the highest role any ancestor add granted it. */
static int scan_past(const kith_room *r, const uint32_t *parents, size_t np, size_t author,
    bool have_author, size_t subject, bool have_subject, past_info *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *seen = kith_calloc(r->env, (r->nops + 7) / 8, 1);
    uint32_t *stack = kith_calloc(r->env, r->nops, sizeof *stack);
    if (!seen || !stack) {
        kith_free(r->env, seen);
        kith_free(r->env, stack);
        return KITH_ENOMEM;
    }
    size_t top = 0;
    for (size_t i = 0; i < np; i++) {
        uint32_t p = parents[i];
        if (!(seen[p / 8] & (1u << (p % 8)))) {
            seen[p / 8] = (uint8_t)(seen[p / 8] | (1u << (p % 8)));
            stack[top++] = p;
        }
    }
    while (top) {
        const op_rec *o = &r->ops[stack[--top]];
        if (have_author && o->subject == author && o->role > out->author_role)
            out->author_role = o->role;
        if (have_subject && o->subject == subject)
            out->subject_member = true;
        for (size_t i = 0; i < o->nparents; i++) {
            uint32_t p = o->parents[i];
            if (!(seen[p / 8] & (1u << (p % 8)))) {
                seen[p / 8] = (uint8_t)(seen[p / 8] | (1u << (p % 8)));
                stack[top++] = p;
            }
        }
    }
    kith_free(r->env, seen);
    kith_free(r->env, stack);
    return 0;
}

/* ---- Applying ---- */

/* (lamport, id) order: the deterministic tie-break between concurrent adds
 * of the same member, so every node shows the same nick and address. */
static bool op_before(const op_rec *a, uint64_t lamport, const uint8_t id[KITH_HASH_LEN])
{
    if (a->lamport != lamport)
        return a->lamport < lamport;
    return memcmp(a->id, id, KITH_HASH_LEN) < 0;
}

/* Record a verified op. Everything that can fail is done before the room is
 * changed, so a failure leaves it as it was. */
static int commit_op(kith_room *r, const op_view *v, const uint8_t id[KITH_HASH_LEN],
    const uint8_t *data, size_t len, const uint32_t *parents)
{
    size_t midx;
    bool existing = find_member(r, v->subject, &midx);
    if (r->nops >= KITH_ROOM_MAX_OPS)
        return KITH_ETOOBIG;
    if (!existing && r->nmembers >= KITH_ROOM_MAX_MEMBERS)
        return KITH_ETOOBIG;
    bool ok = true;
    r->ops = grow(r->env, r->ops, &r->capops, r->nops + 1, sizeof *r->ops, &ok);
    r->members = grow(r->env, r->members, &r->capmembers, r->nmembers + 1, sizeof *r->members, &ok);
    r->member_op
        = grow(r->env, r->member_op, &r->capmember_op, r->nmembers + 1, sizeof *r->member_op, &ok);
    if (ok && r->nkeys + 1 > r->capkeys) {
        /* Keys are secrets: move them by hand so the old block is wiped
         * (realloc would free it with the keys still in it). */
        size_t ncap = r->capkeys ? r->capkeys * 2 : 4;
        key_rec *nk = kith_calloc(r->env, ncap, sizeof *nk);
        if (!nk)
            return KITH_ENOMEM;
        if (r->keys) {
            memcpy(nk, r->keys, r->nkeys * sizeof *nk);
            sodium_memzero(r->keys, r->capkeys * sizeof *r->keys);
            kith_free(r->env, r->keys);
        }
        r->keys = nk;
        r->capkeys = ncap;
    }
    if (!ok)
        return KITH_ENOMEM;
    int rc;
    uint8_t *copy = kith_malloc(r->env, len);
    if (!copy)
        return KITH_ENOMEM;
    memcpy(copy, data, len);
    if (!existing)
        midx = r->nmembers;
    if ((rc = kith_map_put(&r->op_index, id, r->nops))
        || (!existing && (rc = kith_map_put(&r->member_index, v->subject, midx)))) {
        kith_free(r->env, copy); /* a stale map entry is ignored by find_* */
        return rc;
    }

    size_t oidx = r->nops++;
    op_rec *o = &r->ops[oidx];
    memset(o, 0, sizeof *o);
    memcpy(o->id, id, KITH_HASH_LEN);
    o->bytes = copy;
    o->len = len;
    o->lamport = v->lamport;
    o->nparents = (uint8_t)v->nparents;
    for (size_t i = 0; i < v->nparents; i++) {
        o->parents[i] = parents[i];
        r->ops[parents[i]].head = false;
    }
    o->role = (uint8_t)v->role;
    o->head = true;
    o->subject = (uint32_t)midx;

    kith_member *m = &r->members[midx];
    if (!existing) {
        r->nmembers++;
        memset(m, 0, sizeof *m);
        memcpy(m->id, v->subject, KITH_ID_LEN);
        m->role = (uint8_t)v->role;
    } else if (v->role > m->role) {
        m->role = (uint8_t)v->role; /* roles only grow with add ops */
    }
    if (!existing || !op_before(&r->ops[r->member_op[midx]], v->lamport, id)) {
        r->member_op[midx] = (uint32_t)oidx;
        memcpy(m->dh, v->subject_dh, KITH_DH_LEN);
        copy_str(m->nick, sizeof m->nick, v->nick, v->nick_len);
        copy_str(m->addr, sizeof m->addr, v->addr, v->addr_len);
    }
    take_key(r, v);
    return 0;
}

int kith_room_apply(kith_room *room, const uint8_t *op, size_t len)
{
    if (!room || (!op && len))
        return KITH_EINVAL;
    if (len > KITH_OP_MAX)
        return KITH_ETOOBIG;
    uint8_t id[KITH_HASH_LEN];
    size_t idx;
    kith_hash(id, op, len);
    /* A duplicate is dropped before any parsing or signature check. */
    if (find_op(room, id, &idx))
        return KITH_EEXIST;

    op_view *v = kith_malloc(room->env, sizeof *v);
    if (!v)
        return KITH_ENOMEM;
    uint32_t parents[KITH_ROOM_MAX_PARENTS];
    uint64_t depth = 0;
    size_t author = 0, subject = 0;
    bool have_author, have_subject;
    past_info past;
    int rc = parse_op(room->env, op, len, v);
    if (rc)
        goto done;
    rc = KITH_EPROTO;
    /* A genesis is never applied: it defines a room (kith_room_open). */
    if (v->kind != KITH_OP_ADD)
        goto done;
    if (memcmp(v->room, room->id, KITH_HASH_LEN) != 0)
        goto done;
    for (size_t i = 0; i < v->nparents; i++) {
        if (!find_op(room, v->parents[i], &idx)) {
            rc = KITH_ENOENT;
            goto done;
        }
        parents[i] = (uint32_t)idx;
        depth = KITH_MAX(depth, room->ops[idx].lamport + 1);
    }
    /* The lamport value is the op's depth in the DAG: checkable, and the
     * first key of the deterministic order later kinds will need. */
    if (v->lamport != depth)
        goto done;
    /* Epochs only change with rekey ops, which this version does not have. */
    if (v->epoch != room->epoch)
        goto done;
    if ((rc = verify_op(room->env, v)))
        goto done;

    have_author = find_member(room, v->author, &author);
    have_subject = find_member(room, v->subject, &subject);
    if (!have_author) {
        rc = KITH_EPERM;
        goto done;
    }
    if ((rc = scan_past(
             room, parents, v->nparents, author, have_author, subject, have_subject, &past)))
        goto done;
    /* Any member (not an observer) may admit, and grant at most its own
     * role. The member must be one in the state the op's parents define. */
    if (past.author_role < KITH_ROLE_MEMBER || v->role > past.author_role) {
        rc = KITH_EPERM;
        goto done;
    }
    /* Already a member in that state: the op adds nothing and is refused.
     * A concurrent add of the same member (not in the past) is valid on
     * every node and merged. */
    if (past.subject_member) {
        rc = KITH_EEXIST;
        goto done;
    }
    rc = commit_op(room, v, id, op, len, parents);
done:
    sodium_memzero(v, sizeof *v);
    kith_free(room->env, v);
    return rc;
}

/* ---- Life cycle ---- */

int kith_room_open(const kith_env *env, const kith_identity *self, const uint8_t *genesis,
    size_t len, kith_room **out)
{
    if (!env || !self || !genesis || !out)
        return KITH_EINVAL;
    if (len > KITH_OP_MAX)
        return KITH_ETOOBIG;
    op_view *v = kith_malloc(env, sizeof *v);
    if (!v)
        return KITH_ENOMEM;
    kith_room *r = NULL;
    int rc = parse_op(env, genesis, len, v);
    if (rc)
        goto done;
    rc = KITH_EPROTO;
    if (v->kind != KITH_OP_GENESIS)
        goto done;
    if ((rc = verify_op(env, v)))
        goto done;
    rc = KITH_ENOMEM;
    r = kith_calloc(env, 1, sizeof *r);
    if (!r)
        goto done;
    r->env = env;
    r->self = self;
    kith_hash(r->id, genesis, len);
    copy_str(r->name, sizeof r->name, v->name, v->name_len);
    r->history = (uint8_t)v->history;
    r->epoch = 0;
    kith_map_init(&r->op_index, env, KITH_ROOM_MAX_OPS);
    kith_map_init(&r->member_index, env, KITH_ROOM_MAX_MEMBERS);
    rc = commit_op(r, v, r->id, genesis, len, NULL);
done:
    sodium_memzero(v, sizeof *v);
    kith_free(env, v);
    if (rc) {
        kith_room_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void kith_room_free(kith_room *room)
{
    if (!room)
        return;
    const kith_env *env = room->env;
    for (size_t i = 0; i < room->nops; i++)
        kith_free(env, room->ops[i].bytes);
    kith_free(env, room->ops);
    kith_free(env, room->members);
    kith_free(env, room->member_op);
    if (room->keys) {
        sodium_memzero(room->keys, room->capkeys * sizeof *room->keys);
        kith_free(env, room->keys);
    }
    kith_map_free(&room->op_index);
    kith_map_free(&room->member_index);
    sodium_memzero(room, sizeof *room);
    kith_free(env, room);
}

/* ---- Authoring ---- */

/* Sign body and wrap it as {0: body, 1: sig}, appended to out. */
static int sign_op(
    const kith_env *env, const kith_identity *self, const kith_buf *body, kith_buf *out)
{
    uint8_t sig[KITH_SIG_LEN];
    int rc = kith_sign(env, self, KITH_DOMAIN_OP, body->data, body->len, sig);
    if (rc)
        return rc;
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, 2);
    kith_wire_uint(&w, SK_BODY);
    kith_wire_bin(&w, body->data, body->len);
    kith_wire_uint(&w, SK_SIG);
    kith_wire_bin(&w, sig, sizeof sig);
    return kith_wire_finish(&w);
}

static int seal_key(const kith_env *env, const uint8_t dh[KITH_DH_LEN], uint64_t epoch,
    const uint8_t key[KITH_KEY_LEN], uint8_t sealed[SEALED_LEN])
{
    uint8_t msg[KEYMSG_LEN];
    kith_put_be64(msg, epoch);
    memcpy(msg + 8, key, KITH_KEY_LEN);
    size_t n = 0;
    int rc = kith_seal_to_env(env, dh, msg, sizeof msg, sealed, SEALED_LEN, &n);
    sodium_memzero(msg, sizeof msg);
    if (!rc && n != SEALED_LEN)
        rc = KITH_ECRYPTO;
    return rc;
}

/* Caller input: a bad name or nick is the person's mistake (EINVAL), a long
 * one is ETOOBIG. */
static int user_text(const char *s, size_t max, bool allow_empty, size_t *len)
{
    if (!s)
        s = "";
    *len = strnlen(s, max + 1);
    int rc = check_text(s, *len, max, allow_empty);
    return rc == KITH_EPROTO ? KITH_EINVAL : rc;
}

static int user_addr(const char *s, size_t *len)
{
    if (!s)
        s = "";
    *len = strnlen(s, KITH_ADDR_MAX + 1);
    int rc = check_addr(s, *len);
    return rc == KITH_EPROTO ? KITH_EINVAL : rc;
}

int kith_room_create(const kith_env *env, const kith_identity *self, const char *name,
    const char *nick, const char *addr, kith_buf *genesis_out, kith_room **out)
{
    if (!env || !self || !name || !genesis_out || !out)
        return KITH_EINVAL;
    size_t name_len, nick_len, addr_len;
    int rc;
    if ((rc = user_text(name, KITH_ROOM_NAME_MAX, false, &name_len))
        || (rc = user_text(nick, KITH_NICK_MAX, true, &nick_len))
        || (rc = user_addr(addr, &addr_len)))
        return rc;
    if (!nick)
        nick = "";
    if (!addr)
        addr = "";

    uint8_t key[KITH_KEY_LEN], sealed[SEALED_LEN], nonce[NONCE_LEN];
    kith_buf body, op;
    kith_buf_init(&body, env, KITH_OP_MAX);
    kith_buf_init(&op, env, KITH_OP_MAX);
    kith_random(env, key, sizeof key);
    /* The nonce makes two rooms of the same name, founder and time differ. */
    kith_random(env, nonce, sizeof nonce);
    if ((rc = seal_key(env, self->dh_pk, 0, key, sealed)))
        goto done;

    kith_wire_writer w;
    kith_wire_writer_init(&w, &body);
    kith_wire_map(&w, GENESIS_KEYS);
    kith_wire_uint(&w, OK_VERSION);
    kith_wire_uint(&w, KITH_OP_VERSION);
    kith_wire_uint(&w, OK_KIND);
    kith_wire_uint(&w, KITH_OP_GENESIS);
    kith_wire_uint(&w, OK_AUTHOR);
    kith_wire_bin(&w, self->id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, OK_PARENTS);
    kith_wire_array(&w, 0);
    kith_wire_uint(&w, OK_WALL);
    kith_wire_uint(&w, kith_wall_ms(env));
    kith_wire_uint(&w, OK_LAMPORT);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, OK_EPOCH);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, OK_SUBJECT);
    kith_wire_bin(&w, self->id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, OK_SUBJECT_DH);
    kith_wire_bin(&w, self->dh_pk, KITH_DH_LEN);
    kith_wire_uint(&w, OK_SUBJECT_CERT);
    kith_wire_bin(&w, self->cert_sig, KITH_SIG_LEN);
    kith_wire_uint(&w, OK_ROLE);
    kith_wire_uint(&w, KITH_ROLE_ADMIN);
    kith_wire_uint(&w, OK_NICK);
    kith_wire_str(&w, nick, nick_len);
    kith_wire_uint(&w, OK_ADDR);
    kith_wire_str(&w, addr, addr_len);
    kith_wire_uint(&w, OK_NAME);
    kith_wire_str(&w, name, name_len);
    kith_wire_uint(&w, OK_HISTORY);
    kith_wire_uint(&w, HISTORY_FROM_JOIN);
    kith_wire_uint(&w, OK_NONCE);
    kith_wire_bin(&w, nonce, sizeof nonce);
    kith_wire_uint(&w, OK_SEALED);
    kith_wire_bin(&w, sealed, sizeof sealed);
    if ((rc = kith_wire_finish(&w)) || (rc = sign_op(env, self, &body, &op)))
        goto done;
    /* Open it like any received genesis: one code path verifies both. */
    kith_room *r = NULL;
    if ((rc = kith_buf_reserve(genesis_out, op.len)))
        goto done;
    if ((rc = kith_room_open(env, self, op.data, op.len, &r)))
        goto done;
    if (!kith_room_key(r, 0)) { /* our own seal must open */
        kith_room_free(r);
        rc = KITH_ECRYPTO;
        goto done;
    }
    rc = kith_buf_append(genesis_out, op.data, op.len); /* reserved: can't fail */
    if (rc) {
        kith_room_free(r);
        goto done;
    }
    *out = r;
done:
    sodium_memzero(key, sizeof key);
    kith_buf_free(&body);
    kith_buf_free(&op);
    return rc;
}

/* Heads, at most KITH_ROOM_MAX_PARENTS, highest depth first, then sorted by
 * id as the encoding requires. */
static size_t pick_heads(const kith_room *r, uint32_t out[KITH_ROOM_MAX_PARENTS])
{
    size_t n = 0;
    for (size_t i = r->nops; i-- > 0;) {
        if (!r->ops[i].head)
            continue;
        if (n < KITH_ROOM_MAX_PARENTS) {
            out[n++] = (uint32_t)i;
            continue;
        }
        /* Replace the shallowest pick if this one is deeper. */
        size_t lo = 0;
        for (size_t k = 1; k < n; k++)
            if (r->ops[out[k]].lamport < r->ops[out[lo]].lamport)
                lo = k;
        if (r->ops[i].lamport > r->ops[out[lo]].lamport)
            out[lo] = (uint32_t)i;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort by id */
        for (size_t k = i; k > 0 && memcmp(r->ops[out[k - 1]].id, r->ops[out[k]].id, 32) > 0; k--) {
            uint32_t t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

int kith_room_add(kith_room *room, const uint8_t member_id[KITH_ID_LEN],
    const uint8_t member_dh[KITH_DH_LEN], const uint8_t member_cert[KITH_SIG_LEN], const char *nick,
    const char *addr, const uint8_t *invite_id, kith_buf *op_out)
{
    if (!room || !member_id || !member_dh || !member_cert || !op_out)
        return KITH_EINVAL;
    size_t idx, nick_len, addr_len;
    int rc;
    if (!find_member(room, room->self->id_pk, &idx) || room->members[idx].role < KITH_ROLE_MEMBER)
        return KITH_EPERM;
    const key_rec *k = find_key(room, room->epoch);
    if (!k)
        return KITH_ESTATE;
    if (find_member(room, member_id, &idx))
        return KITH_EEXIST;
    if (kith_cert_verify(member_id, member_dh, member_cert) != 0)
        return KITH_ECRYPTO;
    if ((rc = user_text(nick, KITH_NICK_MAX, true, &nick_len)) || (rc = user_addr(addr, &addr_len)))
        return rc;
    if (!nick)
        nick = "";
    if (!addr)
        addr = "";

    const kith_env *env = room->env;
    uint32_t parents[KITH_ROOM_MAX_PARENTS];
    size_t np = pick_heads(room, parents);
    uint64_t depth = 0;
    for (size_t i = 0; i < np; i++)
        depth = KITH_MAX(depth, room->ops[parents[i]].lamport + 1);
    uint8_t sealed[SEALED_LEN];
    kith_buf body, op;
    kith_buf_init(&body, env, KITH_OP_MAX);
    kith_buf_init(&op, env, KITH_OP_MAX);
    if ((rc = seal_key(env, member_dh, room->epoch, k->key, sealed)))
        goto done;

    kith_wire_writer w;
    kith_wire_writer_init(&w, &body);
    kith_wire_map(&w, ADD_KEYS + (invite_id ? 1 : 0));
    kith_wire_uint(&w, OK_VERSION);
    kith_wire_uint(&w, KITH_OP_VERSION);
    kith_wire_uint(&w, OK_KIND);
    kith_wire_uint(&w, KITH_OP_ADD);
    kith_wire_uint(&w, OK_ROOM);
    kith_wire_bin(&w, room->id, KITH_HASH_LEN);
    kith_wire_uint(&w, OK_AUTHOR);
    kith_wire_bin(&w, room->self->id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, OK_PARENTS);
    kith_wire_array(&w, (uint32_t)np);
    for (size_t i = 0; i < np; i++)
        kith_wire_bin(&w, room->ops[parents[i]].id, KITH_HASH_LEN);
    kith_wire_uint(&w, OK_WALL);
    kith_wire_uint(&w, kith_wall_ms(env));
    kith_wire_uint(&w, OK_LAMPORT);
    kith_wire_uint(&w, depth);
    kith_wire_uint(&w, OK_EPOCH);
    kith_wire_uint(&w, room->epoch);
    kith_wire_uint(&w, OK_SUBJECT);
    kith_wire_bin(&w, member_id, KITH_ID_LEN);
    kith_wire_uint(&w, OK_SUBJECT_DH);
    kith_wire_bin(&w, member_dh, KITH_DH_LEN);
    kith_wire_uint(&w, OK_SUBJECT_CERT);
    kith_wire_bin(&w, member_cert, KITH_SIG_LEN);
    kith_wire_uint(&w, OK_ROLE);
    kith_wire_uint(&w, KITH_ROLE_MEMBER);
    kith_wire_uint(&w, OK_NICK);
    kith_wire_str(&w, nick, nick_len);
    kith_wire_uint(&w, OK_ADDR);
    kith_wire_str(&w, addr, addr_len);
    if (invite_id) {
        kith_wire_uint(&w, OK_INVITE);
        kith_wire_bin(&w, invite_id, KITH_HASH_LEN);
    }
    kith_wire_uint(&w, OK_SEALED);
    kith_wire_bin(&w, sealed, sizeof sealed);
    if ((rc = kith_wire_finish(&w)) || (rc = sign_op(env, room->self, &body, &op)))
        goto done;
    /* Reserve first so that once the op is applied, handing it out can't
     * fail. */
    if ((rc = kith_buf_reserve(op_out, op.len)))
        goto done;
    if ((rc = kith_room_apply(room, op.data, op.len)))
        goto done;
    rc = kith_buf_append(op_out, op.data, op.len);
done:
    kith_buf_free(&body);
    kith_buf_free(&op);
    return rc;
}

/* ---- Queries ---- */

const uint8_t *kith_room_id(const kith_room *room)
{
    return room->id;
}

const char *kith_room_name(const kith_room *room)
{
    return room->name;
}

uint64_t kith_room_epoch(const kith_room *room)
{
    return room->epoch;
}

const uint8_t *kith_room_key(const kith_room *room, uint64_t epoch)
{
    const key_rec *k = find_key(room, epoch);
    return k ? k->key : NULL;
}

size_t kith_room_member_count(const kith_room *room)
{
    return room->nmembers;
}

const kith_member *kith_room_member_at(const kith_room *room, size_t i)
{
    return i < room->nmembers ? &room->members[i] : NULL;
}

const kith_member *kith_room_member(const kith_room *room, const uint8_t id[KITH_ID_LEN])
{
    size_t idx;
    return find_member(room, id, &idx) ? &room->members[idx] : NULL;
}

size_t kith_room_op_count(const kith_room *room)
{
    return room->nops;
}

const uint8_t *kith_room_op_at(const kith_room *room, size_t i, size_t *len)
{
    if (i >= room->nops)
        return NULL;
    if (len)
        *len = room->ops[i].len;
    return room->ops[i].bytes;
}
