/* msg: seal and open kith messages (see msg.h for the two layers and
 * proto/kith.md section 4 for every byte).
 *
 * The order of checks in open() is chosen so that the cheap ones run first
 * and nothing an attacker controls is trusted before it is authenticated:
 * envelope shape and caps, room tag, AEAD tag, then the inner map's shape and
 * rules, and the Ed25519 signature last, over exactly the bytes received. */
#include "msg/msg.h"

#include <sodium.h>

#include "wire/wire.h"

/* Labels for kith_keyed_hash: one per derived value, so the room tag (which
 * is public) never equals or reveals the message key. */
#define LABEL_ROOM_TAG "kith/1 room tag"
#define LABEL_MSG_KEY "kith/1 msg key"
/* First bytes of the AEAD associated data (a fixed layout, not msgpack). */
#define AD_PREFIX "kith/1 env"
#define AD_PREFIX_LEN 10
#define AD_LEN (AD_PREFIX_LEN + 4 + KITH_ROOM_TAG_LEN + 8 + KITH_MSG_NONCE_LEN)

#define AEAD_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

/* Inner map keys. */
enum {
    IK_VERSION = 0,
    IK_TYPE = 1,
    IK_ROOM = 2,
    IK_EPOCH = 3,
    IK_AUTHOR = 4,
    IK_SEQ = 5,
    IK_PREV = 6,
    IK_DEPS = 7,
    IK_LAMPORT = 8,
    IK_WALL = 9,
    IK_BODY = 10,
    IK_PAD = 11,
    IK_COUNT = 12,
    IK_TARGET = 12, /* only in edits, deletes and reactions: one more pair */
};

/* Key 12 after the padding: 1 byte key + bin8 header (2) + 32 bytes. */
#define TARGET_ENTRY_LEN (1 + 2 + KITH_HASH_LEN)

/* Envelope map keys. */
enum {
    EK_VERSION = 0,
    EK_TAG = 1,
    EK_EPOCH = 2,
    EK_NONCE = 3,
    EK_CT = 4,
    EK_COUNT = 5,
};

/* Padding buckets: 256; then every multiple of 64 up to 1024; 2048, 4096;
 * then multiples of 4096. Short lines (bodies up to ~50 bytes) all look the
 * same; a typical chat line (100-700 bytes) shows its length to within 64
 * bytes, which costs it at most 63 bytes of padding rather than up to half
 * its size (docs/decisions.md); long texts leak their length to within
 * 4 KiB. Pure powers of two beyond 4096 would push a full-size body over
 * the envelope cap. */
#define BUCKET_MIN 256u
#define BUCKET_FINE 64u
#define BUCKET_FINE_MAX 1024u
#define BUCKET_STEP 4096u

static size_t bucket_at_least(size_t n)
{
    if (n <= BUCKET_MIN)
        return BUCKET_MIN;
    if (n <= BUCKET_FINE_MAX)
        return (n + BUCKET_FINE - 1) / BUCKET_FINE * BUCKET_FINE;
    size_t b = BUCKET_FINE_MAX * 2;
    while (b < n && b < BUCKET_STEP)
        b *= 2;
    if (b >= n)
        return b;
    return (n + BUCKET_STEP - 1) / BUCKET_STEP * BUCKET_STEP;
}

bool kith_msg_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fu;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fu;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return false; /* continuation byte, overlong lead, or > U+10FFFF */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            uint8_t cc = p[i + k];
            if ((cc & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (cc & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

void kith_msg_room_tag(
    const uint8_t epoch_key[KITH_KEY_LEN], uint64_t epoch, uint8_t tag[KITH_ROOM_TAG_LEN])
{
    uint8_t e[8];
    kith_put_be64(e, epoch);
    kith_keyed_hash(tag, KITH_ROOM_TAG_LEN, epoch_key, LABEL_ROOM_TAG, e, sizeof e);
}

static void msg_key(const uint8_t epoch_key[KITH_KEY_LEN], uint64_t epoch, uint8_t key[32])
{
    uint8_t e[8];
    kith_put_be64(e, epoch);
    kith_keyed_hash(key, 32, epoch_key, LABEL_MSG_KEY, e, sizeof e);
}

void kith_msg_id(const uint8_t *envelope, size_t len, uint8_t id[KITH_HASH_LEN])
{
    kith_hash(id, envelope, len);
}

/* AD = "kith/1 env" || version (u32 BE) || tag || epoch (u64 BE) || nonce. */
static void envelope_ad(uint32_t version, const uint8_t tag[KITH_ROOM_TAG_LEN], uint64_t epoch,
    const uint8_t nonce[KITH_MSG_NONCE_LEN], uint8_t ad[AD_LEN])
{
    uint8_t *p = ad;
    memcpy(p, AD_PREFIX, AD_PREFIX_LEN);
    p += AD_PREFIX_LEN;
    kith_put_be32(p, version);
    p += 4;
    memcpy(p, tag, KITH_ROOM_TAG_LEN);
    p += KITH_ROOM_TAG_LEN;
    kith_put_be64(p, epoch);
    p += 8;
    memcpy(p, nonce, KITH_MSG_NONCE_LEN);
}

static bool all_zero(const uint8_t *p, size_t len)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    return acc == 0;
}

bool kith_msg_type_targets(uint32_t type)
{
    return type == KITH_MSG_EDIT || type == KITH_MSG_DELETE || type == KITH_MSG_REACTION;
}

/* A reaction is a short token: no ASCII blanks or controls, so it reads as
 * one thing on a line and a client can take it as one word. */
static bool reaction_ok(const uint8_t *p, size_t len)
{
    if (len == 0 || len > KITH_MSG_MAX_REACTION)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] <= 0x20 || p[i] == 0x7f)
            return false;
    }
    return true;
}

/* The rules shared by encode (KITH_EINVAL: the caller's bug) and parse
 * (KITH_EPROTO: the sender's). Body length is KITH_ETOOBIG in both. */
static int check_inner_rules(const kith_inner *in, int bad)
{
    if (in->type == 0)
        return bad;
    if (in->seq == 0)
        return bad;
    /* prev is zero exactly for an author's first message, so a chain can't
     * start twice and a first message can't pretend to follow another. */
    if ((in->seq == 1) != all_zero(in->prev, KITH_HASH_LEN))
        return bad;
    if (in->ndeps > KITH_MSG_MAX_DEPS)
        return bad;
    if (in->body_len > KITH_MSG_MAX_BODY)
        return KITH_ETOOBIG;
    if (in->body_len && !in->body)
        return bad;
    if (!kith_msg_utf8_valid(in->body, in->body_len))
        return bad;
    /* Key 12: required for the three types that act on another message,
     * forbidden for the three that don't, optional for types a later
     * version may add (so this version can carry them along). */
    if (in->type <= KITH_MSG_NICK && in->has_target)
        return bad;
    if (kith_msg_type_targets(in->type) && !in->has_target)
        return bad;
    if (in->type == KITH_MSG_EDIT && in->body_len == 0)
        return bad; /* an edit to nothing is a delete */
    if (in->type == KITH_MSG_DELETE && in->body_len != 0)
        return bad;
    if (in->type == KITH_MSG_REACTION && !reaction_ok(in->body, in->body_len))
        return bad;
    return 0;
}

static const uint8_t zeros[256];

int kith_msg_encode_inner(const kith_inner *in, kith_buf *out)
{
    int rc = check_inner_rules(in, KITH_EINVAL);
    if (rc)
        return rc;
    size_t start = out->len;
    kith_wire_writer w;
    kith_wire_writer_init(&w, out);
    kith_wire_map(&w, IK_COUNT + (in->has_target ? 1u : 0u));
    kith_wire_uint(&w, IK_VERSION);
    kith_wire_uint(&w, KITH_MSG_VERSION);
    kith_wire_uint(&w, IK_TYPE);
    kith_wire_uint(&w, in->type);
    kith_wire_uint(&w, IK_ROOM);
    kith_wire_bin(&w, in->room_id, KITH_HASH_LEN);
    kith_wire_uint(&w, IK_EPOCH);
    kith_wire_uint(&w, in->epoch);
    kith_wire_uint(&w, IK_AUTHOR);
    kith_wire_bin(&w, in->author, KITH_ID_LEN);
    kith_wire_uint(&w, IK_SEQ);
    kith_wire_uint(&w, in->seq);
    kith_wire_uint(&w, IK_PREV);
    kith_wire_bin(&w, in->prev, KITH_HASH_LEN);
    kith_wire_uint(&w, IK_DEPS);
    kith_wire_array(&w, (uint32_t)in->ndeps);
    for (size_t i = 0; i < in->ndeps; i++)
        kith_wire_bin(&w, in->deps[i], KITH_HASH_LEN);
    kith_wire_uint(&w, IK_LAMPORT);
    kith_wire_uint(&w, in->lamport);
    kith_wire_uint(&w, IK_WALL);
    kith_wire_uint(&w, in->wall_ms);
    kith_wire_uint(&w, IK_BODY);
    kith_wire_str(&w, in->body ? (const char *)in->body : "", in->body_len);
    rc = kith_wire_finish(&w);
    if (rc)
        goto fail;

    /* Padding: key 11 (1 byte) + bin header (2 bytes for n <= 255, 3 for
     * n <= 65535) + n zero bytes, so that the whole map is a bucket size. A
     * total that would need a non-shortest header moves to the next bucket. */
    size_t base = out->len - start + (in->has_target ? TARGET_ENTRY_LEN : 0);
    size_t n = 0, hdr = 0;
    for (size_t t = bucket_at_least(base + 3);; t = bucket_at_least(t + 1)) {
        size_t r = t - base - 1;
        if (r >= 2 && r - 2 <= 255) {
            n = r - 2;
            hdr = 2;
            break;
        }
        if (r >= 3 && r - 3 >= 256 && r - 3 <= 65535) {
            n = r - 3;
            hdr = 3;
            break;
        }
    }
    uint8_t h[4] = { IK_PAD, 0, 0, 0 };
    if (hdr == 2) {
        h[1] = 0xc4;
        h[2] = (uint8_t)n;
    } else {
        h[1] = 0xc5;
        kith_put_be16(h + 2, (uint16_t)n);
    }
    kith_wire_writer_init(&w, out);
    kith_wire_raw(&w, h, 1 + hdr);
    for (size_t left = n; left > 0;) {
        size_t k = KITH_MIN(left, sizeof zeros);
        kith_wire_raw(&w, zeros, k);
        left -= k;
    }
    if (in->has_target) {
        kith_wire_uint(&w, IK_TARGET);
        kith_wire_bin(&w, in->target, KITH_HASH_LEN);
    }
    rc = kith_wire_finish(&w);
    if (rc)
        goto fail;
    return 0;
fail:
    if (out->data)
        sodium_memzero(out->data + start, out->len - start);
    out->len = start;
    return rc;
}

int kith_msg_seal_plain(const kith_env *env, uint64_t epoch, const uint8_t epoch_key[KITH_KEY_LEN],
    const uint8_t *plain, size_t len, kith_buf *out)
{
    if (len > KITH_MSG_MAX_ENVELOPE)
        return KITH_ETOOBIG;
    uint8_t key[32], tag[KITH_ROOM_TAG_LEN], nonce[KITH_MSG_NONCE_LEN], ad[AD_LEN];
    kith_buf ct, env_bytes;
    kith_buf_init(&ct, env, KITH_MSG_MAX_ENVELOPE);
    kith_buf_init(&env_bytes, env, KITH_MSG_MAX_ENVELOPE);
    msg_key(epoch_key, epoch, key);
    kith_msg_room_tag(epoch_key, epoch, tag);
    /* A random 24-byte nonce: XChaCha20's nonce is long enough that random
     * choice never collides in practice, and no counter state is needed. */
    kith_random(env, nonce, sizeof nonce);
    envelope_ad(KITH_MSG_VERSION, tag, epoch, nonce, ad);

    int rc = kith_buf_reserve(&ct, len + AEAD_ABYTES);
    if (rc)
        goto done;
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        ct.data, &clen, plain, len, ad, sizeof ad, NULL, nonce, key);
    ct.len = (size_t)clen;

    kith_wire_writer w;
    kith_wire_writer_init(&w, &env_bytes);
    kith_wire_map(&w, EK_COUNT);
    kith_wire_uint(&w, EK_VERSION);
    kith_wire_uint(&w, KITH_MSG_VERSION);
    kith_wire_uint(&w, EK_TAG);
    kith_wire_bin(&w, tag, sizeof tag);
    kith_wire_uint(&w, EK_EPOCH);
    kith_wire_uint(&w, epoch);
    kith_wire_uint(&w, EK_NONCE);
    kith_wire_bin(&w, nonce, sizeof nonce);
    kith_wire_uint(&w, EK_CT);
    kith_wire_bin(&w, ct.data, ct.len);
    rc = kith_wire_finish(&w);
    if (rc)
        goto done;
    rc = kith_buf_append(out, env_bytes.data, env_bytes.len);
done:
    sodium_memzero(key, sizeof key);
    kith_buf_free(&ct);
    kith_buf_free(&env_bytes);
    return rc;
}

int kith_msg_seal(const kith_env *env, const kith_identity *author, const kith_inner *in,
    const uint8_t epoch_key[KITH_KEY_LEN], kith_buf *out)
{
    if (sodium_memcmp(in->author, author->id_pk, KITH_ID_LEN) != 0)
        return KITH_EINVAL;
    kith_buf plain;
    kith_buf_init(&plain, env, KITH_MSG_MAX_ENVELOPE);
    int rc = kith_msg_encode_inner(in, &plain);
    if (rc)
        goto done;
    uint8_t sig[KITH_SIG_LEN];
    rc = kith_sign(env, author, KITH_DOMAIN_MSG, plain.data, plain.len, sig);
    if (rc)
        goto done;
    rc = kith_buf_append(&plain, sig, sizeof sig);
    if (rc)
        goto done;
    rc = kith_msg_seal_plain(env, in->epoch, epoch_key, plain.data, plain.len, out);
done:
    kith_buf_free(&plain); /* wipes the plaintext */
    return rc;
}

/* Wire getters say ENOENT for a missing key; to a receiver that is a
 * malformed message like any other. */
static int proto_err(int rc)
{
    return rc == KITH_ENOENT ? KITH_EPROTO : rc;
}

int kith_msg_parse_envelope(
    const kith_env *env, const uint8_t *data, size_t len, kith_envelope *out)
{
    if (len > KITH_MSG_MAX_ENVELOPE)
        return KITH_ETOOBIG;
    kith_wire_doc *doc = kith_malloc(env, sizeof *doc);
    if (!doc)
        return KITH_ENOMEM;
    kith_envelope e;
    memset(&e, 0, sizeof e);
    uint64_t v;
    int rc = kith_wire_parse(env, data, len, KITH_MSG_MAX_ENVELOPE, KITH_WIRE_CANONICAL, doc);
    if (rc)
        goto done;
    const kith_wire_node *root = kith_wire_root(doc);
    rc = KITH_EPROTO;
    if (root->type != KITH_WIRE_MAP || root->n != EK_COUNT)
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, EK_VERSION, &v))))
        goto done;
    rc = KITH_EPROTO;
    if (v != KITH_MSG_VERSION)
        goto done;
    e.version = (uint32_t)v;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, EK_TAG, e.tag, sizeof e.tag))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, EK_EPOCH, &e.epoch))))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, EK_NONCE, e.nonce, sizeof e.nonce))))
        goto done;
    if ((rc = proto_err(kith_wire_get_bin(doc, root, EK_CT, &e.ct, &e.ct_len))))
        goto done;
    rc = KITH_EPROTO;
    /* Smallest possible plaintext: a one-byte inner plus a signature. */
    if (e.ct_len < AEAD_ABYTES + KITH_SIG_LEN + 1)
        goto done;
    *out = e;
    rc = 0;
done:
    kith_free(env, doc);
    return rc;
}

static int parse_inner(const kith_env *env, const uint8_t *plain, size_t len,
    const uint8_t room_id[KITH_HASH_LEN], uint64_t epoch, bool verify, kith_inner *out)
{
    if (len > KITH_MSG_MAX_ENVELOPE)
        return KITH_ETOOBIG;
    if (len <= KITH_SIG_LEN)
        return KITH_EPROTO;
    size_t ilen = len - KITH_SIG_LEN;
    const uint8_t *sig = plain + ilen;
    kith_wire_doc *doc = kith_malloc(env, sizeof *doc);
    if (!doc)
        return KITH_ENOMEM;
    kith_inner in;
    memset(&in, 0, sizeof in);
    uint64_t v;
    const kith_wire_node *deps;
    const uint8_t *pad;
    size_t padlen;
    int rc = kith_wire_parse(env, plain, ilen, KITH_MSG_MAX_ENVELOPE, KITH_WIRE_CANONICAL, doc);
    if (rc)
        goto done;
    const kith_wire_node *root = kith_wire_root(doc);
    rc = KITH_EPROTO;
    /* Keys are unique and ascending (canonical) and keys 0..11 are required
     * below, so n == 12 rules out unknown keys, and with n == 13 the one
     * more key must be 12 (the target, read below). */
    if (root->type != KITH_WIRE_MAP || (root->n != IK_COUNT && root->n != IK_COUNT + 1))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, IK_VERSION, &v))))
        goto done;
    rc = KITH_EPROTO;
    if (v != KITH_MSG_VERSION)
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, IK_TYPE, &v))))
        goto done;
    rc = KITH_EPROTO;
    if (v == 0 || v > UINT32_MAX)
        goto done;
    in.type = (uint32_t)v;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, IK_ROOM, in.room_id, KITH_HASH_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, IK_EPOCH, &in.epoch))))
        goto done;
    rc = KITH_EPROTO;
    /* The inner names its room and epoch so that a member can't lift a
     * signed message from one room (or epoch) and re-encrypt it into
     * another: the signature covers them. */
    if (sodium_memcmp(in.room_id, room_id, KITH_HASH_LEN) != 0 || in.epoch != epoch)
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, IK_AUTHOR, in.author, KITH_ID_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, IK_SEQ, &in.seq))))
        goto done;
    if ((rc = proto_err(kith_wire_get_fixed(doc, root, IK_PREV, in.prev, KITH_HASH_LEN))))
        goto done;
    if ((rc = proto_err(kith_wire_get_array(doc, root, IK_DEPS, &deps))))
        goto done;
    rc = KITH_EPROTO;
    if (deps->type != KITH_WIRE_ARRAY || deps->n > KITH_MSG_MAX_DEPS)
        goto done;
    in.ndeps = deps->n;
    for (size_t i = 0; i < in.ndeps; i++) {
        const kith_wire_node *d = kith_wire_elem(doc, deps, i);
        if (!d || d->type != KITH_WIRE_BIN || d->len != KITH_HASH_LEN)
            goto done;
        memcpy(in.deps[i], d->p, KITH_HASH_LEN);
    }
    if ((rc = proto_err(kith_wire_get_uint(doc, root, IK_LAMPORT, &in.lamport))))
        goto done;
    if ((rc = proto_err(kith_wire_get_uint(doc, root, IK_WALL, &in.wall_ms))))
        goto done;
    const char *body;
    if ((rc = proto_err(kith_wire_get_str(doc, root, IK_BODY, &body, &in.body_len))))
        goto done;
    in.body = (const uint8_t *)body;
    if ((rc = proto_err(kith_wire_get_bin(doc, root, IK_PAD, &pad, &padlen))))
        goto done;
    rc = KITH_EPROTO;
    /* Zero padding only: it is signed, but must not become a covert channel. */
    if (!all_zero(pad, padlen))
        goto done;
    if (root->n == IK_COUNT + 1) {
        if ((rc = proto_err(kith_wire_get_fixed(doc, root, IK_TARGET, in.target, KITH_HASH_LEN))))
            goto done;
        in.has_target = true;
    }
    if ((rc = check_inner_rules(&in, KITH_EPROTO)))
        goto done;
    /* Last and most expensive: the signature, over the exact bytes received
     * (never a re-encoding). */
    if (verify && kith_verify(env, in.author, KITH_DOMAIN_MSG, plain, ilen, sig) != 0) {
        rc = KITH_ECRYPTO;
        goto done;
    }
    *out = in;
    rc = 0;
done:
    kith_free(env, doc);
    return rc;
}

int kith_msg_parse_inner(const kith_env *env, const uint8_t *plain, size_t len,
    const uint8_t room_id[KITH_HASH_LEN], uint64_t epoch, kith_inner *out)
{
    return parse_inner(env, plain, len, room_id, epoch, true, out);
}

static int open_envelope(const kith_env *env, const kith_envelope *envl,
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t epoch_key[KITH_KEY_LEN], bool verify,
    kith_buf *plain, kith_inner *out)
{
    if (envl->version != KITH_MSG_VERSION || envl->ct_len < AEAD_ABYTES + KITH_SIG_LEN + 1)
        return KITH_EPROTO;
    if (envl->ct_len > KITH_MSG_MAX_ENVELOPE)
        return KITH_ETOOBIG;
    uint8_t tag[KITH_ROOM_TAG_LEN];
    kith_msg_room_tag(epoch_key, envl->epoch, tag);
    /* Wrong key (or another room's envelope): no need to try the AEAD. */
    if (sodium_memcmp(tag, envl->tag, sizeof tag) != 0)
        return KITH_ECRYPTO;

    uint8_t key[32], ad[AD_LEN];
    msg_key(epoch_key, envl->epoch, key);
    envelope_ad(envl->version, envl->tag, envl->epoch, envl->nonce, ad);
    kith_buf_reset(plain);
    int rc = kith_buf_reserve(plain, envl->ct_len - AEAD_ABYTES);
    if (rc)
        goto done;
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain->data, &plen, NULL, envl->ct, envl->ct_len, ad, sizeof ad, envl->nonce, key)
        != 0) {
        rc = KITH_ECRYPTO;
        goto done;
    }
    plain->len = (size_t)plen;
    rc = parse_inner(env, plain->data, plain->len, room_id, envl->epoch, verify, out);
done:
    sodium_memzero(key, sizeof key);
    if (rc && plain->data) {
        sodium_memzero(plain->data, plain->cap);
        plain->len = 0;
    }
    return rc;
}

int kith_msg_open(const kith_env *env, const kith_envelope *envl,
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t epoch_key[KITH_KEY_LEN], kith_buf *plain,
    kith_inner *out)
{
    return open_envelope(env, envl, room_id, epoch_key, true, plain, out);
}

int kith_msg_open_known(const kith_env *env, const kith_envelope *envl,
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t epoch_key[KITH_KEY_LEN], kith_buf *plain,
    kith_inner *out)
{
    return open_envelope(env, envl, room_id, epoch_key, false, plain, out);
}
