/* msg: kith's two-layer message.
 *
 * Inner, signed: a canonical msgpack map (keys in proto/kith.md) with version,
 * type, room id, epoch, author id, author sequence number, the id of the
 * author's previous message, up to KITH_MSG_MAX_DEPS causal dependencies, a
 * Lamport clock, the author's wall time, the body and padding. The author
 * signs KITH_DOMAIN_MSG || inner bytes with Ed25519.
 *
 * Outer envelope: canonical map {0: version, 1: room tag (bin16), 2: epoch,
 * 3: nonce (bin24), 4: ciphertext}. The ciphertext is XChaCha20-Poly1305 of
 * (inner || signature) under a key derived from the epoch key, with the
 * header (version, tag, epoch, nonce) as associated data. The room tag is a
 * keyed digest of the epoch key, not the room id, so an envelope does not
 * name its room. Message id = BLAKE2b-256 of the envelope bytes, so a node
 * drops a duplicate before any signature check.
 *
 * Edits, deletes and reactions carry one more key (12, the target message
 * id) after the padding.
 *
 * Padding: the inner map is padded so that its length is a bucket size
 * (256, 512, 1024, ... bytes), hiding the length of short messages. */
#ifndef KITH_MSG_H
#define KITH_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "util/util.h"

#define KITH_MSG_VERSION 1
#define KITH_MSG_MAX_DEPS 4
#define KITH_MSG_MAX_BODY 16384 /* bytes of text a person can send at once */
#define KITH_MSG_MAX_ENVELOPE 32768
#define KITH_ROOM_TAG_LEN 16
#define KITH_MSG_NONCE_LEN 24

enum kith_msg_type {
    KITH_MSG_TEXT = 1,
    KITH_MSG_ACTION = 2, /* /me */
    KITH_MSG_NICK = 3, /* body = the author's new display name */
    /* The next three name another message of the room (`target`). Who may
     * do what to which message is the node's rule (proto/kith.md 4.2). */
    KITH_MSG_EDIT = 4, /* body = the new text (1..KITH_MSG_MAX_BODY bytes) */
    KITH_MSG_DELETE = 5, /* body empty; deleting a reaction takes it back */
    KITH_MSG_REACTION = 6, /* body = 1..KITH_MSG_MAX_REACTION bytes, no blanks or controls */
};

/* Longest reaction: room for a few emoji with modifiers and joiners. */
#define KITH_MSG_MAX_REACTION 32
/* Does this type carry a target (inner map key 12)? Types 1..3 must not,
 * 4..6 must; types msg doesn't know may (for later versions). */
bool kith_msg_type_targets(uint32_t type);

typedef struct kith_inner {
    uint32_t type;
    uint8_t room_id[KITH_HASH_LEN];
    uint64_t epoch;
    uint8_t author[KITH_ID_LEN];
    uint64_t seq; /* 1, 2, 3, ... per author per room */
    uint8_t prev[KITH_HASH_LEN]; /* id of the author's message seq-1; zero when seq == 1 */
    size_t ndeps;
    uint8_t deps[KITH_MSG_MAX_DEPS][KITH_HASH_LEN];
    uint64_t lamport;
    uint64_t wall_ms;
    const uint8_t *body; /* UTF-8 text; not NUL-terminated */
    size_t body_len;
    bool has_target; /* key 12: the message an edit, delete or reaction is about */
    uint8_t target[KITH_HASH_LEN];
} kith_inner;

typedef struct kith_envelope {
    uint32_t version;
    uint8_t tag[KITH_ROOM_TAG_LEN];
    uint64_t epoch;
    uint8_t nonce[KITH_MSG_NONCE_LEN];
    const uint8_t *ct; /* points into the parsed bytes */
    size_t ct_len;
} kith_envelope;

/* Room tag of an epoch: keyed BLAKE2b-128(epoch key, "kith/1 room tag" || epoch). */
void kith_msg_room_tag(
    const uint8_t epoch_key[KITH_KEY_LEN], uint64_t epoch, uint8_t tag[KITH_ROOM_TAG_LEN]);
/* Message id: BLAKE2b-256 of the envelope bytes. */
void kith_msg_id(const uint8_t *envelope, size_t len, uint8_t id[KITH_HASH_LEN]);

/* Encode, pad, sign and encrypt. The envelope is appended to out. in->author
 * must be author->id_pk. */
KITH_WUR int kith_msg_seal(const kith_env *env, const kith_identity *author, const kith_inner *in,
    const uint8_t epoch_key[KITH_KEY_LEN], kith_buf *out);

/* Parse an envelope (canonical, bounded). */
KITH_WUR int kith_msg_parse_envelope(
    const kith_env *env, const uint8_t *data, size_t len, kith_envelope *out);

/* Decrypt with the epoch key, parse the inner map (canonical), check it
 * names the envelope's epoch and the given room, and verify the author's
 * signature. The plaintext is kept in `plain` (caller frees); out->body points
 * into it. KITH_ECRYPTO for a bad tag or signature, KITH_EPROTO or
 * KITH_ENONCANON for bad encoding. */
KITH_WUR int kith_msg_open(const kith_env *env, const kith_envelope *envl,
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t epoch_key[KITH_KEY_LEN], kith_buf *plain,
    kith_inner *out);

/* kith_msg_open without the signature check, for an envelope already
 * verified once whose bytes are known to be the same (the caller checked
 * its message id, e.g. read back from our own log). */
KITH_WUR int kith_msg_open_known(const kith_env *env, const kith_envelope *envl,
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t epoch_key[KITH_KEY_LEN], kith_buf *plain,
    kith_inner *out);

/* Below: internals exposed for tests, fuzzing and tools. */

/* Room tag, message key and envelope AD are defined byte by byte in
 * proto/kith.md section 4. Valid UTF-8 (shortest forms, no surrogates, no
 * NUL): the rule for bodies, shared with room names and nicks. */
bool kith_msg_utf8_valid(const uint8_t *p, size_t len);

/* Canonical, padded inner map for `in` (no signature), appended to out.
 * KITH_EINVAL when `in` breaks a rule open() would reject, KITH_ETOOBIG for
 * an oversize body. */
KITH_WUR int kith_msg_encode_inner(const kith_inner *in, kith_buf *out);

/* Encrypt an already signed plaintext (inner || signature) into an envelope
 * for `epoch`, appended to out. seal() = encode_inner + sign + this. */
KITH_WUR int kith_msg_seal_plain(const kith_env *env, uint64_t epoch,
    const uint8_t epoch_key[KITH_KEY_LEN], const uint8_t *plain, size_t len, kith_buf *out);

/* The decoder open() runs on the decrypted plaintext: split off the last 64
 * bytes as the signature, parse the inner map canonically, check version,
 * room id, epoch, body, deps, seq/prev, then verify the signature over the
 * exact inner bytes. out->body points into plain. */
KITH_WUR int kith_msg_parse_inner(const kith_env *env, const uint8_t *plain, size_t len,
    const uint8_t room_id[KITH_HASH_LEN], uint64_t epoch, kith_inner *out);

#endif
