/* room: the membership log (a hash-linked DAG of signed ops) and the state
 * it defines: members, roles, bans, topic, name, and the epoch keys this
 * node holds. Byte formats are in proto/kith.md section 5; the reasoning is
 * in docs/internals/room.md.
 *
 * Two questions, one mechanism. Validity (is this op accepted into the log)
 * depends only on the op and its causal past: the ops reachable through its
 * parents, replayed in the total order; so every node that holds an op
 * reaches the same verdict on it. Effect (what the room looks like now) is
 * the replay of every accepted op in the total order (lamport, op id), an op
 * applying only if its author holds the needed role at its point of the
 * replay. Both are recomputed from scratch: rooms are small, and a replay
 * has no incremental state to get wrong. */
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
    OK_TOPIC = 19,
    OK_SEALS = 20,
    OK_EXPIRES = 21,
    OK_USES = 22,
    OK_LAN = 23,
};

#define NONCE_LEN 16
#define KEYMSG_LEN (8 + KITH_KEY_LEN) /* epoch (u64 BE) || key */
#define SEALED_LEN (KEYMSG_LEN + KITH_SEAL_OVERHEAD)
#define NONE UINT32_MAX
#define KIND_MAX KITH_OP_SET_LAN

enum { HISTORY_FROM_JOIN = 0, HISTORY_WHOLE = 1 };

/* Key bits: which body keys each kind has beyond the common 0..7 (room id,
 * key 2, is absent only in a genesis). */
#define B(k) (1u << (k))
static const uint32_t kind_keys[KIND_MAX + 1] = {
    [KITH_OP_GENESIS] = B(8) | B(9) | B(10) | B(11) | B(12) | B(13) | B(14) | B(15) | B(17) | B(18),
    [KITH_OP_ADD] = B(8) | B(9) | B(10) | B(11) | B(12) | B(13) | B(18),
    [KITH_OP_REMOVE] = B(8) | B(20),
    [KITH_OP_BAN] = B(8) | B(20),
    [KITH_OP_UNBAN] = B(8),
    [KITH_OP_SET_ROLE] = B(8) | B(11),
    [KITH_OP_SET_TOPIC] = B(19),
    [KITH_OP_SET_NAME] = B(14),
    [KITH_OP_INVITE] = B(16) | B(21) | B(22),
    [KITH_OP_REVOKE] = B(16),
    [KITH_OP_REKEY] = B(20),
    [KITH_OP_LEAVE] = 0,
    [KITH_OP_SET_LAN] = B(23),
};

static bool rekeying(uint64_t kind)
{
    return kind == KITH_OP_REMOVE || kind == KITH_OP_BAN || kind == KITH_OP_REKEY;
}

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
    bool has_subject;
    uint8_t subject[KITH_ID_LEN];
    uint8_t subject_dh[KITH_DH_LEN];
    uint8_t subject_cert[KITH_SIG_LEN];
    uint64_t role;
    const char *nick, *addr, *name, *topic;
    size_t nick_len, addr_len, name_len, topic_len;
    uint64_t history;
    bool has_invite;
    uint8_t invite[KITH_HASH_LEN];
    uint64_t expires, uses;
    uint64_t lan;
    uint8_t sealed[SEALED_LEN];
    size_t nseals;
    uint8_t seal_to[KITH_ROOM_MAX_SEALS][KITH_ID_LEN];
    uint8_t seals[KITH_ROOM_MAX_SEALS][SEALED_LEN];
} op_view;

typedef struct op_rec {
    uint8_t id[KITH_HASH_LEN];
    uint8_t *bytes;
    size_t len;
    uint64_t lamport, epoch;
    uint64_t wall; /* the author's clock (key 5): informational */
    uint32_t parents[KITH_ROOM_MAX_PARENTS];
    uint8_t nparents;
    uint8_t kind;
    uint8_t role; /* role granted or set */
    uint8_t lan; /* set LAN: the mode */
    bool head; /* no applied op names it as a parent */
    bool in_ck; /* in the checkpoint's prefix of the total order (kith_room.ck) */
    bool effective; /* took effect in the last full replay */
    uint32_t author, subject; /* member indexes; subject NONE when absent */
    uint32_t ctx_key; /* add: the key op current in its causal past */
    uint32_t *rcpt; /* rekeying ops: member indexes sealed to */
    uint32_t nrcpt;
    char *text; /* name or topic (heap), NULL otherwise */
    bool has_invite;
    uint8_t invite[KITH_HASH_LEN];
    uint8_t dh[KITH_DH_LEN]; /* genesis, add: subject's */
    char nick[KITH_NICK_MAX + 1];
    char addr[KITH_ADDR_MAX + 1];
} op_rec;

typedef struct key_rec {
    uint64_t epoch;
    uint32_t op; /* the op that introduced the key */
    uint8_t key[KITH_KEY_LEN];
} key_rec;

/* The state a replay produces; arrays indexed by member index. */
typedef struct mstate {
    size_t n;
    uint8_t *role; /* 0: not a member */
    uint8_t *banned;
    uint8_t *holder; /* was given the current key */
    uint32_t *since; /* replay position of the add that admitted */
    uint32_t *shown; /* that add (or the genesis) */
    uint32_t key_op;
    uint64_t epoch;
    uint32_t name_op, topic_op, lan_op;
} mstate;

struct kith_room {
    const kith_env *env;
    const kith_identity *self;
    uint8_t id[KITH_HASH_LEN];
    char name[KITH_ROOM_NAME_MAX + 1];
    char topic[KITH_TOPIC_MAX + 1];
    uint8_t history;
    uint8_t lan; /* enum kith_room_lan */
    uint64_t epoch;
    uint32_t key_op;
    bool needs_rekey;

    op_rec *ops;
    size_t nops, capops;
    uint32_t *order; /* op indexes in (lamport, id) order */
    size_t caporder;
    kith_map op_index; /* op id -> index into ops */

    kith_member *members; /* everyone the log names */
    size_t nmembers, capmembers;
    kith_map member_index; /* member id -> index into members */
    uint32_t *cur; /* indexes of current members */
    size_t ncur, capcur;
    /* The state the whole log defines (the last full or incremental
     * replay), so that an op appended at the end of the total order, or one
     * whose past is the whole log, costs O(members) and not a replay. */
    mstate st;
    size_t nheads; /* ops with head set */
    /* A checkpoint: the replay's state before position ck_pos of the total
     * order, a little behind its end (ck.role NULL when there is none).
     * Concurrent ops land near the end of the order, so the replay after
     * one, and the state of its causal past, start here instead of at the
     * genesis: O(ops since the checkpoint), not O(ops). ck_front: the ops
     * of the prefix that no op of the prefix names as a parent. */
    mstate ck;
    uint32_t ck_pos;
    uint32_t *ck_front;
    size_t nck_front;

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

static int parse_seals(const kith_wire_doc *doc, const kith_wire_node *root, op_view *v)
{
    const kith_wire_node *arr;
    int rc = proto_err(kith_wire_get_array(doc, root, OK_SEALS, &arr));
    if (rc)
        return rc;
    if (arr->type != KITH_WIRE_ARRAY || arr->n == 0)
        return KITH_EPROTO;
    if (arr->n > KITH_ROOM_MAX_SEALS)
        return KITH_ETOOBIG;
    v->nseals = arr->n;
    for (size_t i = 0; i < arr->n; i++) {
        const kith_wire_node *e = kith_wire_elem(doc, arr, i);
        if (!e || e->type != KITH_WIRE_ARRAY || e->n != 2)
            return KITH_EPROTO;
        const kith_wire_node *id = kith_wire_elem(doc, e, 0);
        const kith_wire_node *sl = kith_wire_elem(doc, e, 1);
        if (!id || id->type != KITH_WIRE_BIN || id->len != KITH_ID_LEN || !sl
            || sl->type != KITH_WIRE_BIN || sl->len != SEALED_LEN)
            return KITH_EPROTO;
        /* Strictly ascending ids: one encoding, no member twice. */
        if (i && memcmp(v->seal_to[i - 1], id->p, KITH_ID_LEN) >= 0)
            return KITH_EPROTO;
        memcpy(v->seal_to[i], id->p, KITH_ID_LEN);
        memcpy(v->seals[i], sl->p, SEALED_LEN);
    }
    return 0;
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
    size_t want = 7; /* 0, 1, 3..7 */
    uint32_t keys;
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
    if (version != KITH_OP_VERSION || v->kind > KIND_MAX)
        goto done;
    keys = kind_keys[v->kind];

    if (v->kind != KITH_OP_GENESIS) {
        want++;
        if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_ROOM, v->room, KITH_HASH_LEN))))
            goto done;
    }
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
    if (keys & B(OK_SUBJECT)) {
        v->has_subject = true;
        if ((rc = proto_err(kith_wire_get_fixed(doc, root, OK_SUBJECT, v->subject, KITH_ID_LEN))))
            goto done;
    }
    if (keys & B(OK_SUBJECT_DH)) {
        if ((rc = proto_err(
                 kith_wire_get_fixed(doc, root, OK_SUBJECT_DH, v->subject_dh, KITH_DH_LEN))))
            goto done;
        if ((rc = proto_err(
                 kith_wire_get_fixed(doc, root, OK_SUBJECT_CERT, v->subject_cert, KITH_SIG_LEN))))
            goto done;
    }
    if (keys & B(OK_ROLE)) {
        if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_ROLE, &v->role))))
            goto done;
        rc = KITH_EPROTO;
        if (v->role < KITH_ROLE_OBSERVER || v->role > KITH_ROLE_ADMIN)
            goto done;
    }
    if (keys & B(OK_NICK)) {
        if ((rc = get_text(doc, root, OK_NICK, &v->nick, &v->nick_len)))
            goto done;
        if ((rc = check_text(v->nick, v->nick_len, KITH_NICK_MAX, true)))
            goto done;
        if ((rc = get_text(doc, root, OK_ADDR, &v->addr, &v->addr_len)))
            goto done;
        if ((rc = check_addr(v->addr, v->addr_len)))
            goto done;
    }
    if (keys & B(OK_SEALED)
        && (rc = proto_err(kith_wire_get_fixed(doc, root, OK_SEALED, v->sealed, SEALED_LEN))))
        goto done;
    if (keys & B(OK_NAME)) {
        if ((rc = get_text(doc, root, OK_NAME, &v->name, &v->name_len)))
            goto done;
        if ((rc = check_text(v->name, v->name_len, KITH_ROOM_NAME_MAX, false)))
            goto done;
    }
    if (keys & B(OK_TOPIC)) {
        if ((rc = get_text(doc, root, OK_TOPIC, &v->topic, &v->topic_len)))
            goto done;
        if ((rc = check_text(v->topic, v->topic_len, KITH_TOPIC_MAX, true)))
            goto done;
    }
    if (keys & B(OK_SEALS) && (rc = parse_seals(doc, root, v)))
        goto done;
    if (keys & B(OK_INVITE)
        && (rc = proto_err(kith_wire_get_fixed(doc, root, OK_INVITE, v->invite, KITH_HASH_LEN))))
        goto done;
    v->has_invite = keys & B(OK_INVITE);
    if (keys & B(OK_EXPIRES)) {
        if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_EXPIRES, &v->expires))))
            goto done;
        if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_USES, &v->uses))))
            goto done;
        rc = KITH_EPROTO;
        if (v->uses == 0 || v->uses > UINT32_MAX)
            goto done;
    }
    if (keys & B(OK_LAN)) {
        if ((rc = proto_err(kith_wire_get_uint(doc, root, OK_LAN, &v->lan))))
            goto done;
        rc = KITH_EPROTO;
        if (v->lan > KITH_ROOM_LAN_KNOCK)
            goto done;
    }
    want += (size_t)__builtin_popcount(keys);

    rc = KITH_EPROTO;
    if (v->kind == KITH_OP_GENESIS) {
        uint8_t nonce[NONCE_LEN];
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
        if (v->kind == KITH_OP_ADD) {
            /* The invite id is optional in an add. */
            const kith_wire_node *inv = kith_wire_get(doc, root, OK_INVITE);
            if (inv) {
                if (inv->type != KITH_WIRE_BIN || inv->len != KITH_HASH_LEN)
                    goto done;
                memcpy(v->invite, inv->p, KITH_HASH_LEN);
                v->has_invite = true;
                want++;
            }
        }
        if (v->lamport == 0)
            goto done;
    }
    /* Every key read above is required (or counted when optional), and
     * canonical maps have unique keys, so a count mismatch is a key this
     * kind does not have. */
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
    if (kind_keys[v->kind] & B(OK_SUBJECT_CERT)
        && kith_cert_verify(env, v->subject, v->subject_dh, v->subject_cert) != 0)
        return KITH_ECRYPTO;
    return 0;
}

/* ---- Keys ---- */

static const key_rec *find_key_op(const kith_room *r, uint32_t op)
{
    for (size_t i = 0; i < r->nkeys; i++)
        if (r->keys[i].op == op)
            return &r->keys[i];
    return NULL;
}

/* Open a sealed epoch key meant for self and keep it. Failure is not an
 * error of the op (only the recipient can check the seal, and every node
 * must reach the same verdict on an op); it is logged and self simply holds
 * no key for that epoch. The key array has room reserved. */
static void take_key(kith_room *r, const uint8_t sealed[SEALED_LEN], uint64_t epoch, uint32_t op)
{
    if (find_key_op(r, op))
        return;
    uint8_t msg[KEYMSG_LEN];
    size_t n = 0;
    if (kith_seal_open(r->self, sealed, SEALED_LEN, msg, sizeof msg, &n) != 0 || n != KEYMSG_LEN
        || kith_get_be64(msg) != epoch) {
        KITH_LOGW(r->env, "room: sealed epoch key for us does not open");
        sodium_memzero(msg, sizeof msg);
        return;
    }
    key_rec *k = &r->keys[r->nkeys++];
    k->epoch = epoch;
    k->op = op;
    memcpy(k->key, msg + 8, KITH_KEY_LEN);
    sodium_memzero(msg, sizeof msg);
}

/* ---- Replay: the state a set of ops defines ---- */

static void state_free(const kith_env *env, mstate *s)
{
    kith_free(env, s->role);
    kith_free(env, s->banned);
    kith_free(env, s->holder);
    kith_free(env, s->since);
    kith_free(env, s->shown);
    memset(s, 0, sizeof *s);
}

static int state_alloc(const kith_env *env, size_t n, mstate *s)
{
    memset(s, 0, sizeof *s);
    size_t k = n ? n : 1;
    s->n = n;
    s->role = kith_calloc(env, k, 1);
    s->banned = kith_calloc(env, k, 1);
    s->holder = kith_calloc(env, k, 1);
    s->since = kith_calloc(env, k, sizeof *s->since);
    s->shown = kith_calloc(env, k, sizeof *s->shown);
    if (!s->role || !s->banned || !s->holder || !s->since || !s->shown) {
        state_free(env, s);
        return KITH_ENOMEM;
    }
    return 0;
}

/* s (allocated for at least src->n members, zeroed) takes src's state. */
static void state_copy(mstate *s, const mstate *src)
{
    size_t n = src->n;
    memcpy(s->role, src->role, n);
    memcpy(s->banned, src->banned, n);
    memcpy(s->holder, src->holder, n);
    memcpy(s->since, src->since, n * sizeof *s->since);
    memcpy(s->shown, src->shown, n * sizeof *s->shown);
    s->key_op = src->key_op;
    s->epoch = src->epoch;
    s->name_op = src->name_op;
    s->topic_op = src->topic_op;
    s->lan_op = src->lan_op;
}

static uint8_t role_of(const mstate *s, uint32_t m)
{
    return m == NONE || m >= s->n ? 0 : s->role[m];
}

static bool revoker_issued(const kith_room *r, const op_rec *o)
{
    for (size_t i = 0; i < r->nops; i++) {
        const op_rec *p = &r->ops[i];
        if (p->kind == KITH_OP_INVITE && p->author == o->author
            && memcmp(p->invite, o->invite, KITH_HASH_LEN) == 0)
            return true;
    }
    return false;
}

/* May the op's author do this in state s? The one permission table,
 * used both for validity (s = the op's causal past) and for effect (s = the
 * replay so far). */
static bool allowed(const kith_room *r, const mstate *s, const op_rec *o)
{
    uint8_t a = role_of(s, o->author);
    uint8_t t = role_of(s, o->subject);
    bool banned = o->subject != NONE && o->subject < s->n && s->banned[o->subject];
    /* Admins act on anyone; moderators on members and observers. */
    bool over = a == KITH_ROLE_ADMIN || (a == KITH_ROLE_MODERATOR && t <= KITH_ROLE_MEMBER);
    switch (o->kind) {
    case KITH_OP_ADD:
        return a >= KITH_ROLE_MEMBER && o->role <= a && !t && !banned;
    case KITH_OP_REMOVE:
        return o->subject != o->author && t && over;
    case KITH_OP_BAN:
        return o->subject != o->author && !banned && over && a >= KITH_ROLE_MODERATOR;
    case KITH_OP_UNBAN:
        return banned && a >= KITH_ROLE_MODERATOR;
    case KITH_OP_SET_ROLE:
        if (!t || o->role == t || o->subject == o->author)
            return false;
        return a == KITH_ROLE_ADMIN
            || (a == KITH_ROLE_MODERATOR && t <= KITH_ROLE_MEMBER && o->role <= KITH_ROLE_MEMBER);
    case KITH_OP_SET_TOPIC:
        return a >= KITH_ROLE_MODERATOR;
    case KITH_OP_SET_NAME:
    case KITH_OP_SET_LAN: /* naming the room to strangers: admins only */
        return a == KITH_ROLE_ADMIN;
    case KITH_OP_INVITE:
    case KITH_OP_REKEY:
        return a >= KITH_ROLE_MEMBER;
    case KITH_OP_REVOKE:
        return a >= KITH_ROLE_MODERATOR || (a >= KITH_ROLE_MEMBER && revoker_issued(r, o));
    case KITH_OP_LEAVE:
        return a > 0;
    default:
        return false;
    }
}

/* The room must keep an admin: when none is left (the last admin left, or
 * concurrent ops removed or demoted them all) the member with the highest
 * role who was admitted first becomes admin. Deterministic, so every node
 * agrees; it is what lets a room outlive its founder by accident too. */
static void succession(mstate *s)
{
    uint32_t best = NONE;
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->role[i] == KITH_ROLE_ADMIN)
            return;
        if (s->role[i]
            && (best == NONE || s->role[i] > s->role[best]
                || (s->role[i] == s->role[best] && s->since[i] < s->since[best])))
            best = i;
    }
    if (best != NONE)
        s->role[best] = KITH_ROLE_ADMIN;
}

static void effect(mstate *s, const op_rec *o, uint32_t oidx, uint32_t pos)
{
    switch (o->kind) {
    case KITH_OP_GENESIS:
    case KITH_OP_ADD:
        s->role[o->subject] = o->role;
        s->since[o->subject] = pos;
        s->shown[o->subject] = oidx;
        s->holder[o->subject] = o->kind == KITH_OP_GENESIS || o->ctx_key == s->key_op;
        if (o->kind == KITH_OP_GENESIS) {
            s->key_op = oidx;
            s->epoch = 0;
            s->name_op = oidx;
        }
        break;
    case KITH_OP_BAN:
        s->banned[o->subject] = 1;
        /* fall through */
    case KITH_OP_REMOVE:
        s->role[o->subject] = 0;
        /* fall through */
    case KITH_OP_REKEY:
        s->key_op = oidx;
        s->epoch = o->epoch;
        memset(s->holder, 0, s->n);
        for (uint32_t i = 0; i < o->nrcpt; i++)
            s->holder[o->rcpt[i]] = 1;
        break;
    case KITH_OP_UNBAN:
        s->banned[o->subject] = 0;
        break;
    case KITH_OP_SET_ROLE:
        s->role[o->subject] = o->role;
        break;
    case KITH_OP_SET_TOPIC:
        s->topic_op = oidx;
        break;
    case KITH_OP_SET_NAME:
        s->name_op = oidx;
        break;
    case KITH_OP_SET_LAN:
        s->lan_op = oidx;
        break;
    case KITH_OP_LEAVE:
        s->role[o->author] = 0; /* it still holds the key: members rekey */
        break;
    default:
        break;
    }
    succession(s);
}

#define CK_LAG 64 /* the checkpoint trails the end of the order by about this */

static void ck_drop(kith_room *r)
{
    for (uint32_t pos = 0; pos < r->ck_pos && pos < r->nops; pos++)
        r->ops[r->order[pos]].in_ck = false;
    state_free(r->env, &r->ck);
    kith_free(r->env, r->ck_front);
    r->ck_front = NULL;
    r->nck_front = 0;
    r->ck_pos = 0;
}

/* Take s, the full replay's state before position pos, as the checkpoint
 * (out of memory: keep the old one). */
static void ck_take(kith_room *r, const mstate *s, uint32_t pos)
{
    mstate c;
    uint8_t *named = kith_calloc(r->env, r->nops / 8 + 1, 1);
    uint32_t *front = kith_calloc(r->env, pos ? pos : 1, sizeof *front);
    if (!named || !front || state_alloc(r->env, s->n, &c) != 0) {
        kith_free(r->env, named);
        kith_free(r->env, front);
        return;
    }
    state_copy(&c, s);
    for (uint32_t p = r->ck_pos; p < pos; p++)
        r->ops[r->order[p]].in_ck = true;
    for (uint32_t p = 0; p < pos; p++) {
        const op_rec *o = &r->ops[r->order[p]];
        for (size_t i = 0; i < o->nparents; i++)
            named[o->parents[i] / 8]
                = (uint8_t)(named[o->parents[i] / 8] | 1u << (o->parents[i] % 8));
    }
    size_t nf = 0;
    for (uint32_t p = 0; p < pos; p++) {
        uint32_t oi = r->order[p];
        if (!(named[oi / 8] & (1u << (oi % 8))))
            front[nf++] = oi;
    }
    kith_free(r->env, named);
    state_free(r->env, &r->ck);
    kith_free(r->env, r->ck_front);
    r->ck = c;
    r->ck_pos = pos;
    r->ck_front = front;
    r->nck_front = nf;
}

/* Replay the ops in total order; only those whose bit is set in `filter`
 * when it is given. With `mark`, record on each op whether it took effect.
 * From the checkpoint when `from_ck` (s then holds its state), else from
 * the genesis; a full replay moves the checkpoint when it trails. */
static void replay_at(kith_room *r, const uint8_t *filter, mstate *s, bool mark, bool from_ck)
{
    uint32_t start = 0;
    if (from_ck) {
        state_copy(s, &r->ck);
        start = r->ck_pos;
    } else {
        memset(s->role, 0, s->n);
        memset(s->banned, 0, s->n);
        memset(s->holder, 0, s->n);
        s->key_op = s->name_op = s->topic_op = s->lan_op = NONE;
        s->epoch = 0;
    }
    uint32_t take = r->nops > CK_LAG ? (uint32_t)(r->nops - CK_LAG) : 0;
    bool moving = !filter && mark && take >= r->ck_pos + CK_LAG;
    for (uint32_t pos = start; pos < r->nops; pos++) {
        if (moving && pos == take)
            ck_take(r, s, pos);
        uint32_t oi = r->order[pos];
        if (filter && !(filter[oi / 8] & (1u << (oi % 8))))
            continue;
        op_rec *o = &r->ops[oi];
        bool ok = o->kind == KITH_OP_GENESIS || allowed(r, s, o);
        if (ok)
            effect(s, o, oi, pos);
        if (mark)
            o->effective = ok;
    }
}

/* Do the parents name every head, so that their causal past is the whole
 * log? Parents may repeat; each head is counted once. */
static bool past_is_all(const kith_room *r, const uint32_t *parents, size_t np)
{
    size_t heads = 0;
    for (size_t i = 0; i < np; i++) {
        bool again = false;
        for (size_t j = 0; j < i; j++)
            again = again || parents[j] == parents[i];
        if (!again && r->ops[parents[i]].head)
            heads++;
    }
    return r->st.role && heads == r->nheads;
}

/* The state an op's parents define: the replay of its causal past. */
static int past_state(kith_room *r, const uint32_t *parents, size_t np, size_t nmembers, mstate *s)
{
    uint8_t *seen = kith_calloc(r->env, (r->nops + 7) / 8 + 1, 1);
    uint32_t *stack = kith_calloc(r->env, r->nops + 1, sizeof *stack);
    int rc = KITH_ENOMEM;
    if (!seen || !stack || (rc = state_alloc(r->env, nmembers, s)))
        goto done;
    if (past_is_all(r, parents, np) && r->st.n <= nmembers) {
        state_copy(s, &r->st); /* the same fold as replay(r, all, s) */
        goto done;
    }
    /* The past is found walking back from the parents. With a checkpoint,
     * first only over the ops after it: the checkpoint's prefix is closed
     * under parents (a parent is earlier in the order), so it is all in
     * the past exactly when each op of its front is reached, and then the
     * replay starts from the checkpoint. Otherwise the walk goes on. */
    bool ck = r->ck.role && r->ck.n <= nmembers;
    size_t top = 0;
    for (size_t i = 0; i < np; i++) {
        uint32_t p = parents[i];
        if (!(seen[p / 8] & (1u << (p % 8)))) {
            seen[p / 8] = (uint8_t)(seen[p / 8] | (1u << (p % 8)));
            if (!ck || !r->ops[p].in_ck)
                stack[top++] = p;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        while (top) {
            const op_rec *o = &r->ops[stack[--top]];
            for (size_t i = 0; i < o->nparents; i++) {
                uint32_t p = o->parents[i];
                if (!(seen[p / 8] & (1u << (p % 8)))) {
                    seen[p / 8] = (uint8_t)(seen[p / 8] | (1u << (p % 8)));
                    if (!ck || !r->ops[p].in_ck)
                        stack[top++] = p;
                }
            }
        }
        if (!ck)
            break;
        for (size_t i = 0; ck && i < r->nck_front; i++)
            ck = (seen[r->ck_front[i] / 8] & (1u << (r->ck_front[i] % 8))) != 0;
        if (ck)
            break;
        /* Not all of the prefix: walk on from every op reached in it. */
        for (uint32_t pos = 0; pos < r->ck_pos; pos++) {
            uint32_t oi = r->order[pos];
            if (seen[oi / 8] & (1u << (oi % 8)))
                stack[top++] = oi;
        }
    }
    replay_at(r, seen, s, false, ck);
done:
    kith_free(r->env, seen);
    kith_free(r->env, stack);
    return rc;
}

/* After a new op: publish s, the state of the whole log, and keep it. */
static void refresh(kith_room *r, mstate *s)
{
    r->ncur = 0;
    r->needs_rekey = false;
    const mstate *was = r->st.role ? &r->st : NULL;
    for (uint32_t i = 0; i < r->nmembers; i++) {
        kith_member *m = &r->members[i];
        m->role = s->role[i];
        m->banned = s->banned[i];
        if (s->role[i]) {
            r->cur[r->ncur++] = i;
            /* A member's key, nick and address come from the add that
             * shows it: copied again only when that changed (a room of n
             * members would otherwise copy n of each per op). */
            bool same = was && i < was->n && was->role[i] && was->shown[i] == s->shown[i];
            const op_rec *a = &r->ops[s->shown[i]];
            if (!same) {
                memcpy(m->dh, a->dh, KITH_DH_LEN);
                copy_str(m->nick, sizeof m->nick, a->nick, strlen(a->nick));
                copy_str(m->addr, sizeof m->addr, a->addr, strlen(a->addr));
            }
        }
        if (!s->role[i] != !s->holder[i])
            r->needs_rekey = true;
    }
    r->key_op = s->key_op;
    r->epoch = s->epoch;
    const op_rec *n = &r->ops[s->name_op];
    copy_str(r->name, sizeof r->name, n->text, strlen(n->text));
    r->lan = s->lan_op != NONE ? r->ops[s->lan_op].lan : KITH_ROOM_LAN_OFF;
    r->topic[0] = '\0';
    if (s->topic_op != NONE) {
        const op_rec *t = &r->ops[s->topic_op];
        copy_str(r->topic, sizeof r->topic, t->text, strlen(t->text));
    }
    state_free(r->env, &r->st);
    r->st = *s;
    memset(s, 0, sizeof *s);
}

/* ---- Applying ---- */

static bool order_before(const op_rec *a, const op_rec *b)
{
    if (a->lamport != b->lamport)
        return a->lamport < b->lamport;
    return memcmp(a->id, b->id, KITH_HASH_LEN) < 0;
}

static int reserve_keys(kith_room *r)
{
    if (r->nkeys + 1 <= r->capkeys)
        return 0;
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
    return 0;
}

/* Record a verified op and recompute the state. Everything that can fail
 * is done before the room is changed, so a failure leaves it as it was.
 * `o` is filled in except for the fields set here. */
static int commit_op(kith_room *r, const op_view *v, op_rec *o, const uint8_t *data, size_t len,
    const uint32_t *rcpt)
{
    bool new_subject = v->has_subject && o->subject == NONE;
    if (r->nops >= KITH_ROOM_MAX_OPS)
        return KITH_ETOOBIG;
    if (new_subject && r->nmembers >= KITH_ROOM_MAX_MEMBERS)
        return KITH_ETOOBIG;
    bool ok = true;
    size_t nm = r->nmembers + (new_subject ? 1 : 0);
    r->ops = grow(r->env, r->ops, &r->capops, r->nops + 1, sizeof *r->ops, &ok);
    r->order = grow(r->env, r->order, &r->caporder, r->nops + 1, sizeof *r->order, &ok);
    r->members = grow(r->env, r->members, &r->capmembers, nm, sizeof *r->members, &ok);
    r->cur = grow(r->env, r->cur, &r->capcur, nm, sizeof *r->cur, &ok);
    if (!ok || reserve_keys(r))
        return KITH_ENOMEM;
    mstate s;
    int rc = state_alloc(r->env, nm, &s);
    if (rc)
        return rc;
    uint8_t *copy = kith_malloc(r->env, len);
    uint32_t *rc_copy = o->nrcpt ? kith_calloc(r->env, o->nrcpt, sizeof *rc_copy) : NULL;
    const char *txt = v->kind == KITH_OP_SET_TOPIC ? v->topic : v->name;
    size_t txt_len = v->kind == KITH_OP_SET_TOPIC ? v->topic_len : v->name_len;
    bool has_text
        = v->kind == KITH_OP_SET_TOPIC || v->kind == KITH_OP_SET_NAME || v->kind == KITH_OP_GENESIS;
    char *text = has_text ? kith_malloc(r->env, txt_len + 1) : NULL;
    if (!copy || (o->nrcpt && !rc_copy) || (has_text && !text)) {
        rc = KITH_ENOMEM;
        goto fail;
    }
    memcpy(copy, data, len);
    if (o->nrcpt)
        memcpy(rc_copy, rcpt, o->nrcpt * sizeof *rc_copy);
    if (has_text)
        copy_str(text, txt_len + 1, txt, txt_len);
    if ((rc = kith_map_put(&r->op_index, o->id, r->nops))
        || (new_subject && (rc = kith_map_put(&r->member_index, v->subject, r->nmembers))))
        goto fail; /* a stale map entry is ignored by find_* */

    if (new_subject) {
        kith_member *m = &r->members[r->nmembers];
        memset(m, 0, sizeof *m);
        memcpy(m->id, v->subject, KITH_ID_LEN);
        o->subject = (uint32_t)r->nmembers++;
    }
    size_t oidx = r->nops++;
    o->bytes = copy;
    o->len = len;
    o->rcpt = rc_copy;
    o->text = text;
    o->head = true;
    r->ops[oidx] = *o;
    r->nheads++;
    for (size_t i = 0; i < o->nparents; i++) {
        if (r->ops[o->parents[i]].head)
            r->nheads--;
        r->ops[o->parents[i]].head = false;
    }
    /* Insert into the total order. */
    size_t pos = oidx;
    while (pos > 0 && order_before(o, &r->ops[r->order[pos - 1]]))
        pos--;
    if (pos < r->ck_pos)
        ck_drop(r); /* the prefix changes */
    memmove(&r->order[pos + 1], &r->order[pos], (oidx - pos) * sizeof *r->order);
    r->order[pos] = (uint32_t)oidx;

    /* Keys sealed to self. */
    const uint8_t *me = r->self->id_pk;
    if ((v->kind == KITH_OP_GENESIS || v->kind == KITH_OP_ADD)
        && memcmp(v->subject, me, KITH_ID_LEN) == 0)
        take_key(r, v->sealed, v->epoch, v->kind == KITH_OP_GENESIS ? (uint32_t)oidx : o->ctx_key);
    for (size_t i = 0; i < v->nseals; i++)
        if (memcmp(v->seal_to[i], me, KITH_ID_LEN) == 0)
            take_key(r, v->seals[i], v->epoch, (uint32_t)oidx);
    s.n = r->nmembers;
    if (pos == oidx && r->st.role && r->st.n <= s.n) {
        /* Last in the total order: the replay so far is r->st; one step. */
        state_copy(&s, &r->st);
        bool ok_op = o->kind == KITH_OP_GENESIS || allowed(r, &s, &r->ops[oidx]);
        if (ok_op)
            effect(&s, &r->ops[oidx], (uint32_t)oidx, (uint32_t)pos);
        r->ops[oidx].effective = ok_op;
    } else {
        replay_at(r, NULL, &s, true, r->ck.role && r->ck.n <= s.n);
    }
    refresh(r, &s);
    return 0;
fail:
    kith_free(r->env, copy);
    kith_free(r->env, rc_copy);
    kith_free(r->env, text);
    state_free(r->env, &s);
    return rc;
}

static int cmp_member_id(const kith_room *r, uint32_t a, uint32_t b)
{
    return memcmp(r->members[a].id, r->members[b].id, KITH_ID_LEN);
}

/* Members of state s except `skip`, sorted by id: who a rekey seals to. */
static size_t remaining(const kith_room *r, const mstate *s, uint32_t skip, uint32_t *out)
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (!s->role[i] || i == skip)
            continue;
        size_t k = n++;
        while (k > 0 && cmp_member_id(r, out[k - 1], i) > 0) {
            out[k] = out[k - 1];
            k--;
        }
        out[k] = i;
    }
    return n;
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
    uint32_t *rcpt = kith_calloc(room->env, room->nmembers + 1, sizeof *rcpt);
    if (!v || !rcpt) {
        kith_free(room->env, v);
        kith_free(room->env, rcpt);
        return KITH_ENOMEM;
    }
    op_rec o;
    memset(&o, 0, sizeof o);
    mstate s;
    memset(&s, 0, sizeof s);
    uint64_t depth = 0;
    size_t nr;
    int rc = parse_op(room->env, op, len, v);
    if (rc)
        goto done;
    rc = KITH_EPROTO;
    /* A genesis is never applied: it defines a room (kith_room_open). */
    if (v->kind == KITH_OP_GENESIS)
        goto done;
    if (memcmp(v->room, room->id, KITH_HASH_LEN) != 0)
        goto done;
    for (size_t i = 0; i < v->nparents; i++) {
        if (!find_op(room, v->parents[i], &idx)) {
            rc = KITH_ENOENT;
            goto done;
        }
        o.parents[i] = (uint32_t)idx;
        depth = KITH_MAX(depth, room->ops[idx].lamport + 1);
    }
    /* The lamport value is the op's depth in the DAG: checkable, and the
     * first key of the total order. */
    if (v->lamport != depth)
        goto done;
    if ((rc = verify_op(room->env, v)))
        goto done;

    memcpy(o.id, id, KITH_HASH_LEN);
    o.lamport = v->lamport;
    o.epoch = v->epoch;
    o.nparents = (uint8_t)v->nparents;
    o.wall = v->wall;
    o.kind = (uint8_t)v->kind;
    o.role = (uint8_t)v->role;
    o.lan = (uint8_t)v->lan;
    o.subject = NONE;
    o.ctx_key = NONE;
    if (v->has_subject && find_member(room, v->subject, &idx))
        o.subject = (uint32_t)idx;
    o.has_invite = v->has_invite;
    memcpy(o.invite, v->invite, KITH_HASH_LEN);
    memcpy(o.dh, v->subject_dh, KITH_DH_LEN);
    copy_str(o.nick, sizeof o.nick, v->nick, v->nick_len);
    copy_str(o.addr, sizeof o.addr, v->addr, v->addr_len);
    /* Every author was a member somewhere in the log, so it has an index. */
    if (!find_member(room, v->author, &idx)) {
        rc = KITH_EPERM;
        goto done;
    }
    o.author = (uint32_t)idx;

    if ((rc = past_state(room, o.parents, v->nparents, room->nmembers, &s)))
        goto done;
    /* Already a member in that state: the add adds nothing and is refused
     * (a concurrent add of the same member, not in the past, is valid; the
     * first in the total order takes effect). */
    if (v->kind == KITH_OP_ADD && role_of(&s, o.subject)) {
        rc = KITH_EEXIST;
        goto done;
    }
    if (!allowed(room, &s, &o)) {
        rc = KITH_EPERM;
        goto done;
    }
    rc = KITH_EPROTO;
    /* A rekeying op opens the next epoch of its past; others stay in it. */
    if (v->epoch != s.epoch + (rekeying(v->kind) ? 1 : 0))
        goto done;
    if (rekeying(v->kind)) {
        /* Sealed to exactly the members that remain in its past. */
        nr = remaining(room, &s, v->kind == KITH_OP_REKEY ? NONE : o.subject, rcpt);
        if (nr != v->nseals)
            goto done;
        for (size_t i = 0; i < nr; i++)
            if (memcmp(room->members[rcpt[i]].id, v->seal_to[i], KITH_ID_LEN) != 0)
                goto done;
        o.nrcpt = (uint32_t)nr;
    }
    o.ctx_key = s.key_op;
    rc = commit_op(room, v, &o, op, len, rcpt);
done:
    state_free(room->env, &s);
    sodium_memzero(v, sizeof *v);
    kith_free(room->env, v);
    kith_free(room->env, rcpt);
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
    op_rec o;
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
    r->history = (uint8_t)v->history;
    kith_map_init(&r->op_index, env, KITH_ROOM_MAX_OPS);
    kith_map_init(&r->member_index, env, KITH_ROOM_MAX_MEMBERS);
    memset(&o, 0, sizeof o);
    memcpy(o.id, r->id, KITH_HASH_LEN);
    o.kind = KITH_OP_GENESIS;
    o.wall = v->wall;
    o.role = KITH_ROLE_ADMIN;
    o.author = 0;
    o.subject = NONE; /* new: commit gives it index 0 */
    o.ctx_key = NONE;
    memcpy(o.dh, v->subject_dh, KITH_DH_LEN);
    copy_str(o.nick, sizeof o.nick, v->nick, v->nick_len);
    copy_str(o.addr, sizeof o.addr, v->addr, v->addr_len);
    rc = commit_op(r, v, &o, genesis, len, NULL);
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
    for (size_t i = 0; i < room->nops; i++) {
        kith_free(env, room->ops[i].bytes);
        kith_free(env, room->ops[i].rcpt);
        kith_free(env, room->ops[i].text);
    }
    kith_free(env, room->ops);
    kith_free(env, room->order);
    kith_free(env, room->members);
    kith_free(env, room->cur);
    state_free(env, &room->st);
    state_free(env, &room->ck);
    kith_free(env, room->ck_front);
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
    kith_wire_map(&w, 7 + (uint32_t)__builtin_popcount(kind_keys[KITH_OP_GENESIS]));
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

/* Is op a in the causal past of op h (or h itself)? A walk back from h
 * that goes no shallower than a. */
static bool in_past(const kith_room *r, uint32_t h, uint32_t a, uint8_t *seen, uint32_t *stack)
{
    memset(seen, 0, r->nops / 8 + 1);
    size_t top = 0;
    stack[top++] = h;
    seen[h / 8] = (uint8_t)(seen[h / 8] | 1u << (h % 8));
    while (top) {
        uint32_t x = stack[--top];
        if (x == a)
            return true;
        const op_rec *o = &r->ops[x];
        for (size_t i = 0; i < o->nparents; i++) {
            uint32_t p = o->parents[i];
            if (!(seen[p / 8] & (1u << (p % 8))) && r->ops[p].lamport >= r->ops[a].lamport) {
                seen[p / 8] = (uint8_t)(seen[p / 8] | 1u << (p % 8));
                stack[top++] = p;
            }
        }
    }
    return false;
}

/* Parents for an op of self: the deepest heads can all be concurrent with
 * the add that made self a member (a wave of joins leaves dozens of heads,
 * and only KITH_ROOM_MAX_PARENTS are named), and then self is no member in
 * their past: the op would be refused ("not permitted"). Swap the
 * shallowest pick for a head that has that add in its past. True when the
 * parents changed. */
static bool heads_with_self(const kith_room *r, uint32_t self, uint32_t *parents, size_t np)
{
    if (!r->st.role || self >= r->st.n || !r->st.role[self])
        return false;
    uint32_t add = r->st.shown[self];
    uint8_t *seen = kith_calloc(r->env, r->nops / 8 + 1, 1);
    uint32_t *stack = kith_calloc(r->env, r->nops + 1, sizeof *stack);
    bool found = false;
    for (size_t h = r->nops; seen && stack && !found && h-- > 0;) {
        bool picked = false;
        for (size_t i = 0; i < np; i++)
            picked |= parents[i] == h;
        if (!r->ops[h].head || picked || !in_past(r, (uint32_t)h, add, seen, stack))
            continue;
        size_t lo = 0;
        for (size_t k = 1; k < np; k++)
            if (r->ops[parents[k]].lamport < r->ops[parents[lo]].lamport)
                lo = k;
        parents[lo] = (uint32_t)h;
        for (size_t i = 1; i < np; i++) /* by id, as pick_heads leaves them */
            for (size_t k = i;
                 k > 0 && memcmp(r->ops[parents[k - 1]].id, r->ops[parents[k]].id, 32) > 0; k--) {
                uint32_t t = parents[k];
                parents[k] = parents[k - 1];
                parents[k - 1] = t;
            }
        found = true;
    }
    kith_free(r->env, seen);
    kith_free(r->env, stack);
    return found;
}

typedef struct op_args {
    int kind;
    const uint8_t *subject;
    const uint8_t *subject_dh, *subject_cert;
    uint64_t role;
    const char *nick, *addr, *text;
    size_t nick_len, addr_len, text_len;
    const uint8_t *invite;
    uint64_t expires, uses;
    uint64_t lan;
} op_args;

/* Sign an op of self with the current heads as parents, checked against
 * the state those parents define (the same check every node makes), apply
 * it and append it to op_out. */
static int author_op(kith_room *room, const op_args *a, kith_buf *op_out)
{
    const kith_env *env = room->env;
    size_t idx;
    if (!find_member(room, room->self->id_pk, &idx))
        return KITH_EPERM;
    op_rec o;
    memset(&o, 0, sizeof o);
    o.kind = (uint8_t)a->kind;
    o.role = (uint8_t)a->role;
    o.lan = (uint8_t)a->lan;
    o.author = (uint32_t)idx;
    o.subject = NONE;
    if (a->subject && find_member(room, a->subject, &idx))
        o.subject = (uint32_t)idx;
    if (a->invite)
        memcpy(o.invite, a->invite, KITH_HASH_LEN);
    uint32_t parents[KITH_ROOM_MAX_PARENTS];
    size_t np = pick_heads(room, parents);

    mstate s;
    uint32_t *rcpt = kith_calloc(env, room->nmembers + 1, sizeof *rcpt);
    uint8_t(*seals)[SEALED_LEN] = kith_calloc(env, KITH_ROOM_MAX_SEALS, SEALED_LEN);
    kith_buf body, op;
    kith_buf_init(&body, env, KITH_OP_MAX);
    kith_buf_init(&op, env, KITH_OP_MAX);
    uint8_t key[KITH_KEY_LEN], sealed[SEALED_LEN];
    size_t nr = 0;
    int rc = rcpt && seals ? 0 : KITH_ENOMEM;
    if (rc || (rc = past_state(room, parents, np, room->nmembers, &s))) {
        kith_free(env, rcpt);
        kith_free(env, seals);
        return rc;
    }
    if (np == KITH_ROOM_MAX_PARENTS && !role_of(&s, o.author)
        && heads_with_self(room, o.author, parents, np)) {
        state_free(env, &s);
        if ((rc = past_state(room, parents, np, room->nmembers, &s))) {
            kith_free(env, rcpt);
            kith_free(env, seals);
            return rc;
        }
    }
    uint64_t depth = 0;
    for (size_t i = 0; i < np; i++)
        depth = KITH_MAX(depth, room->ops[parents[i]].lamport + 1);
    uint64_t epoch = s.epoch + (rekeying((uint64_t)a->kind) ? 1 : 0);
    if (a->kind == KITH_OP_ADD && role_of(&s, o.subject)) {
        rc = KITH_EEXIST;
        goto done;
    }
    if ((a->kind == KITH_OP_REMOVE || a->kind == KITH_OP_SET_ROLE) && !role_of(&s, o.subject)) {
        rc = KITH_ENOENT;
        goto done;
    }
    if (a->kind == KITH_OP_UNBAN && (o.subject == NONE || !s.banned[o.subject])) {
        rc = KITH_ENOENT;
        goto done;
    }
    if (!allowed(room, &s, &o)) {
        rc = KITH_EPERM;
        goto done;
    }
    if (a->kind == KITH_OP_ADD) {
        const key_rec *k = find_key_op(room, s.key_op);
        if (!k) {
            rc = KITH_ESTATE; /* we hold no current key to give */
            goto done;
        }
        if ((rc = seal_key(env, a->subject_dh, epoch, k->key, sealed)))
            goto done;
    }
    if (rekeying((uint64_t)a->kind)) {
        nr = remaining(room, &s, a->kind == KITH_OP_REKEY ? NONE : o.subject, rcpt);
        if (nr > KITH_ROOM_MAX_SEALS) {
            rc = KITH_ETOOBIG;
            goto done;
        }
        kith_random(env, key, sizeof key);
        for (size_t i = 0; i < nr && !rc; i++)
            rc = seal_key(env, room->ops[s.shown[rcpt[i]]].dh, epoch, key, seals[i]);
        sodium_memzero(key, sizeof key);
        if (rc)
            goto done;
    }

    uint32_t keys = kind_keys[a->kind];
    kith_wire_writer w;
    kith_wire_writer_init(&w, &body);
    kith_wire_map(
        &w, 8 + (uint32_t)__builtin_popcount(keys) + (a->kind == KITH_OP_ADD && a->invite ? 1 : 0));
    kith_wire_uint(&w, OK_VERSION);
    kith_wire_uint(&w, KITH_OP_VERSION);
    kith_wire_uint(&w, OK_KIND);
    kith_wire_uint(&w, (uint64_t)a->kind);
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
    kith_wire_uint(&w, epoch);
    if (keys & B(OK_SUBJECT)) {
        kith_wire_uint(&w, OK_SUBJECT);
        kith_wire_bin(&w, a->subject, KITH_ID_LEN);
    }
    if (keys & B(OK_SUBJECT_DH)) {
        kith_wire_uint(&w, OK_SUBJECT_DH);
        kith_wire_bin(&w, a->subject_dh, KITH_DH_LEN);
        kith_wire_uint(&w, OK_SUBJECT_CERT);
        kith_wire_bin(&w, a->subject_cert, KITH_SIG_LEN);
    }
    if (keys & B(OK_ROLE)) {
        kith_wire_uint(&w, OK_ROLE);
        kith_wire_uint(&w, a->role);
    }
    if (keys & B(OK_NICK)) {
        kith_wire_uint(&w, OK_NICK);
        kith_wire_str(&w, a->nick, a->nick_len);
        kith_wire_uint(&w, OK_ADDR);
        kith_wire_str(&w, a->addr, a->addr_len);
    }
    if (keys & B(OK_NAME)) {
        kith_wire_uint(&w, OK_NAME);
        kith_wire_str(&w, a->text, a->text_len);
    }
    if ((keys & B(OK_INVITE)) || (a->kind == KITH_OP_ADD && a->invite)) {
        kith_wire_uint(&w, OK_INVITE);
        kith_wire_bin(&w, a->invite, KITH_HASH_LEN);
    }
    if (keys & B(OK_SEALED)) {
        kith_wire_uint(&w, OK_SEALED);
        kith_wire_bin(&w, sealed, sizeof sealed);
    }
    if (keys & B(OK_TOPIC)) {
        kith_wire_uint(&w, OK_TOPIC);
        kith_wire_str(&w, a->text, a->text_len);
    }
    if (keys & B(OK_SEALS)) {
        kith_wire_uint(&w, OK_SEALS);
        kith_wire_array(&w, (uint32_t)nr);
        for (size_t i = 0; i < nr; i++) {
            kith_wire_array(&w, 2);
            kith_wire_bin(&w, room->members[rcpt[i]].id, KITH_ID_LEN);
            kith_wire_bin(&w, seals[i], SEALED_LEN);
        }
    }
    if (keys & B(OK_EXPIRES)) {
        kith_wire_uint(&w, OK_EXPIRES);
        kith_wire_uint(&w, a->expires);
        kith_wire_uint(&w, OK_USES);
        kith_wire_uint(&w, a->uses);
    }
    if (keys & B(OK_LAN)) {
        kith_wire_uint(&w, OK_LAN);
        kith_wire_uint(&w, a->lan);
    }
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
    state_free(env, &s);
    kith_free(env, rcpt);
    kith_free(env, seals);
    kith_buf_free(&body);
    kith_buf_free(&op);
    return rc;
}

int kith_room_add(kith_room *room, const uint8_t member_id[KITH_ID_LEN],
    const uint8_t member_dh[KITH_DH_LEN], const uint8_t member_cert[KITH_SIG_LEN], const char *nick,
    const char *addr, const uint8_t *invite_id, kith_buf *op_out)
{
    if (!room || !member_id || !member_dh || !member_cert || !op_out)
        return KITH_EINVAL;
    op_args a;
    memset(&a, 0, sizeof a);
    int rc;
    const kith_member *me = kith_room_member(room, room->self->id_pk);
    if (!me || me->role < KITH_ROLE_MEMBER)
        return KITH_EPERM;
    if (kith_room_member(room, member_id))
        return KITH_EEXIST;
    if (kith_cert_verify(room->env, member_id, member_dh, member_cert) != 0)
        return KITH_ECRYPTO;
    if ((rc = user_text(nick, KITH_NICK_MAX, true, &a.nick_len))
        || (rc = user_addr(addr, &a.addr_len)))
        return rc;
    a.kind = KITH_OP_ADD;
    a.subject = member_id;
    a.subject_dh = member_dh;
    a.subject_cert = member_cert;
    a.role = KITH_ROLE_MEMBER;
    a.nick = nick ? nick : "";
    a.addr = addr ? addr : "";
    a.invite = invite_id;
    return author_op(room, &a, op_out);
}

static int subject_op(kith_room *room, int kind, const uint8_t *subject, int role, kith_buf *out)
{
    if (!room || !subject || !out)
        return KITH_EINVAL;
    if (memcmp(subject, room->self->id_pk, KITH_ID_LEN) == 0)
        return KITH_EINVAL; /* use leave */
    op_args a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    a.subject = subject;
    a.role = (uint64_t)role;
    return author_op(room, &a, out);
}

int kith_room_remove(kith_room *room, const uint8_t subject[KITH_ID_LEN], kith_buf *op_out)
{
    return subject_op(room, KITH_OP_REMOVE, subject, 0, op_out);
}

int kith_room_ban(kith_room *room, const uint8_t subject[KITH_ID_LEN], kith_buf *op_out)
{
    return subject_op(room, KITH_OP_BAN, subject, 0, op_out);
}

int kith_room_unban(kith_room *room, const uint8_t subject[KITH_ID_LEN], kith_buf *op_out)
{
    return subject_op(room, KITH_OP_UNBAN, subject, 0, op_out);
}

int kith_room_set_role(
    kith_room *room, const uint8_t subject[KITH_ID_LEN], int role, kith_buf *op_out)
{
    if (role < KITH_ROLE_OBSERVER || role > KITH_ROLE_ADMIN)
        return KITH_EINVAL;
    return subject_op(room, KITH_OP_SET_ROLE, subject, role, op_out);
}

static int text_op(
    kith_room *room, int kind, const char *text, size_t max, bool allow_empty, kith_buf *out)
{
    if (!room || !out)
        return KITH_EINVAL;
    op_args a;
    memset(&a, 0, sizeof a);
    int rc = user_text(text, max, allow_empty, &a.text_len);
    if (rc)
        return rc;
    a.kind = kind;
    a.text = text ? text : "";
    return author_op(room, &a, out);
}

int kith_room_set_topic(kith_room *room, const char *topic, kith_buf *op_out)
{
    return text_op(room, KITH_OP_SET_TOPIC, topic, KITH_TOPIC_MAX, true, op_out);
}

int kith_room_set_name(kith_room *room, const char *name, kith_buf *op_out)
{
    return text_op(room, KITH_OP_SET_NAME, name, KITH_ROOM_NAME_MAX, false, op_out);
}

int kith_room_set_lan(kith_room *room, int mode, kith_buf *op_out)
{
    if (!room || !op_out || mode < KITH_ROOM_LAN_OFF || mode > KITH_ROOM_LAN_KNOCK)
        return KITH_EINVAL;
    op_args a;
    memset(&a, 0, sizeof a);
    a.kind = KITH_OP_SET_LAN;
    a.lan = (uint64_t)mode;
    return author_op(room, &a, op_out);
}

static int plain_op(kith_room *room, int kind, kith_buf *out)
{
    if (!room || !out)
        return KITH_EINVAL;
    op_args a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    return author_op(room, &a, out);
}

int kith_room_rekey(kith_room *room, kith_buf *op_out)
{
    return plain_op(room, KITH_OP_REKEY, op_out);
}

int kith_room_leave(kith_room *room, kith_buf *op_out)
{
    return plain_op(room, KITH_OP_LEAVE, op_out);
}

int kith_room_invite_issued(kith_room *room, const uint8_t invite_id[KITH_HASH_LEN],
    uint64_t expires_ms, uint32_t uses, kith_buf *op_out)
{
    if (!room || !invite_id || !op_out || uses == 0)
        return KITH_EINVAL;
    op_args a;
    memset(&a, 0, sizeof a);
    a.kind = KITH_OP_INVITE;
    a.invite = invite_id;
    a.expires = expires_ms;
    a.uses = uses;
    return author_op(room, &a, op_out);
}

int kith_room_invite_revoke(
    kith_room *room, const uint8_t invite_id[KITH_HASH_LEN], kith_buf *op_out)
{
    if (!room || !invite_id || !op_out)
        return KITH_EINVAL;
    op_args a;
    memset(&a, 0, sizeof a);
    a.kind = KITH_OP_REVOKE;
    a.invite = invite_id;
    return author_op(room, &a, op_out);
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

int kith_room_lan(const kith_room *room)
{
    return room ? room->lan : KITH_ROOM_LAN_OFF;
}

const char *kith_room_topic(const kith_room *room)
{
    return room->topic;
}

uint64_t kith_room_epoch(const kith_room *room)
{
    return room->epoch;
}

const uint8_t *kith_room_current_key(const kith_room *room, uint64_t *epoch)
{
    const key_rec *k = find_key_op(room, room->key_op);
    if (epoch)
        *epoch = room->epoch;
    return k ? k->key : NULL;
}

uint64_t kith_room_key_since(const kith_room *room)
{
    return room->key_op < room->nops ? room->ops[room->key_op].wall : 0;
}

const uint8_t *kith_room_key(const kith_room *room, uint64_t epoch)
{
    const uint8_t *cur = kith_room_current_key(room, NULL);
    if (cur && epoch == room->epoch)
        return cur;
    for (size_t i = room->nkeys; i-- > 0;)
        if (room->keys[i].epoch == epoch)
            return room->keys[i].key;
    return NULL;
}

size_t kith_room_key_count(const kith_room *room)
{
    return room->nkeys;
}

const uint8_t *kith_room_key_at(const kith_room *room, size_t i, uint64_t *epoch)
{
    if (i >= room->nkeys)
        return NULL;
    if (epoch)
        *epoch = room->keys[i].epoch;
    return room->keys[i].key;
}

bool kith_room_needs_rekey(const kith_room *room)
{
    return room->needs_rekey;
}

size_t kith_room_member_count(const kith_room *room)
{
    return room->ncur;
}

const kith_member *kith_room_member_at(const kith_room *room, size_t i)
{
    return i < room->ncur ? &room->members[room->cur[i]] : NULL;
}

const kith_member *kith_room_person(const kith_room *room, const uint8_t id[KITH_ID_LEN])
{
    size_t idx;
    return find_member(room, id, &idx) ? &room->members[idx] : NULL;
}

const kith_member *kith_room_member(const kith_room *room, const uint8_t id[KITH_ID_LEN])
{
    const kith_member *m = kith_room_person(room, id);
    return m && m->role ? m : NULL;
}

size_t kith_room_person_count(const kith_room *room)
{
    return room->nmembers;
}

const kith_member *kith_room_person_at(const kith_room *room, size_t i)
{
    return i < room->nmembers ? &room->members[i] : NULL;
}

bool kith_room_person_index(const kith_room *room, const uint8_t id[KITH_ID_LEN], size_t *idx)
{
    return find_member(room, id, idx);
}

bool kith_room_invite_revoked(const kith_room *room, const uint8_t invite_id[KITH_HASH_LEN])
{
    for (size_t i = 0; i < room->nops; i++) {
        const op_rec *o = &room->ops[i];
        if (o->kind == KITH_OP_REVOKE && o->effective
            && memcmp(o->invite, invite_id, KITH_HASH_LEN) == 0)
            return true;
    }
    return false;
}

int kith_room_op_info(const kith_room *room, size_t i, kith_op_info *out)
{
    if (!room || !out || i >= room->nops)
        return KITH_EINVAL;
    const op_rec *o = &room->ops[i];
    memset(out, 0, sizeof *out);
    out->kind = o->kind;
    memcpy(out->author, room->members[o->author].id, KITH_ID_LEN);
    if (o->subject != NONE)
        memcpy(out->subject, room->members[o->subject].id, KITH_ID_LEN);
    out->role = o->role;
    out->epoch = o->epoch;
    out->effective = o->effective;
    out->wall_ms = o->wall;
    out->has_invite = o->has_invite;
    memcpy(out->invite, o->invite, KITH_HASH_LEN);
    out->text = o->text ? o->text : "";
    out->lan = o->lan;
    return 0;
}

void kith_room_safety(const kith_room *room, uint8_t out[KITH_HASH_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, KITH_HASH_LEN);
    static const char label[] = "kith/1 safety";
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label - 1);
    /* cur is in member-index order; hash in id order. */
    uint32_t prev = NONE;
    for (size_t n = 0; n < room->ncur; n++) {
        uint32_t best = NONE;
        for (size_t i = 0; i < room->ncur; i++) {
            uint32_t c = room->cur[i];
            if (prev != NONE && cmp_member_id(room, c, prev) <= 0)
                continue;
            if (best == NONE || cmp_member_id(room, c, best) < 0)
                best = c;
        }
        const kith_member *m = &room->members[best];
        crypto_generichash_update(&st, m->id, KITH_ID_LEN);
        crypto_generichash_update(&st, &m->role, 1);
        prev = best;
    }

    /* All heads, in id order. */
    const uint8_t *last = NULL;
    for (;;) {
        const uint8_t *next = NULL;
        for (size_t i = 0; i < room->nops; i++) {
            const uint8_t *id = room->ops[i].id;
            if (!room->ops[i].head || (last && memcmp(id, last, KITH_HASH_LEN) <= 0))
                continue;
            if (!next || memcmp(id, next, KITH_HASH_LEN) < 0)
                next = id;
        }
        if (!next)
            break;
        crypto_generichash_update(&st, next, KITH_HASH_LEN);
        last = next;
    }

    crypto_generichash_final(&st, out, KITH_HASH_LEN);
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
