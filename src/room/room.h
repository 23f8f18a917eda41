/* room: a room's membership log and the state it defines.
 *
 * A room begins with a genesis op signed by its founder; the room id is the
 * BLAKE2b-256 of the genesis op's signed bytes. Every op names the ops it
 * follows (their ids), so the log is a hash-linked DAG verified back to the
 * genesis: an op is applied only when its parents are known, its signature is
 * valid and its author held the needed role in the state those parents define.
 *
 * A signed op is the canonical map {0: body (bin), 1: Ed25519 signature over
 * KITH_DOMAIN_OP || body}; the body is a canonical map whose keys are listed
 * in proto/kith.md. Op id = BLAKE2b-256 of the signed op bytes.
 *
 * Keys live in the log too: the genesis seals epoch key 0 to the founder's
 * X25519 key, each add op seals the current epoch key to the new member
 * (crypto_box_seal), and every rekeying op (remove, ban, rekey) seals a fresh
 * key to each remaining member, so a node rebuilds its keys from its log
 * alone.
 *
 * State: the ops are totally ordered by (lamport, op id) (a causal order,
 * as lamport is the depth); the membership state is the replay of every op
 * in that order from the genesis, applying an op only if its author holds
 * the needed role at that point of the replay. Validity (acceptance into
 * the log) uses the same replay restricted to the op's causal past.
 *
 * Invites: codes a person can paste, "kith1:" + base64url of a canonical map
 * (room id, inviter id, one-time secret, address hint, expiry). The secret
 * only proves to the inviter that the joiner was invited; it never is, and
 * never derives, a room key. */
#ifndef KITH_ROOM_H
#define KITH_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "util/util.h"

#define KITH_OP_VERSION 1
#define KITH_ROOM_NAME_MAX 64 /* bytes of UTF-8 */
#define KITH_NICK_MAX 32
#define KITH_ADDR_MAX 96 /* "host:port" hint */
#define KITH_ROOM_MAX_MEMBERS 1024
#define KITH_ROOM_MAX_OPS 65536
#define KITH_ROOM_MAX_PARENTS 8
#define KITH_OP_MAX 16384 /* bytes of one signed op (a rekey carries one seal per member) */
#define KITH_ROOM_MAX_SEALS 120 /* members one rekeying op can seal a key to */
#define KITH_TOPIC_MAX 256
#define KITH_INVITE_SECRET_LEN 16
#define KITH_INVITE_CODE_MAX 320

enum kith_op_kind {
    KITH_OP_GENESIS = 0,
    KITH_OP_ADD = 1,
    KITH_OP_REMOVE = 2, /* rekeys */
    KITH_OP_BAN = 3, /* removes if a member, bars re-adding; rekeys */
    KITH_OP_UNBAN = 4,
    KITH_OP_SET_ROLE = 5,
    KITH_OP_SET_TOPIC = 6,
    KITH_OP_SET_NAME = 7,
    KITH_OP_INVITE = 8, /* invite issued: its id, expiry and uses, for admins to see */
    KITH_OP_REVOKE = 9, /* invite revoked */
    KITH_OP_REKEY = 10,
    KITH_OP_LEAVE = 11, /* the author leaves; members then rekey (no key in it) */
    KITH_OP_SET_LAN = 12, /* admins: is the room named on the LAN for a meetup */
};

/* A room's LAN meetup setting (op kind 12, proto/kith.md 5.2 and 8). */
enum kith_room_lan {
    KITH_ROOM_LAN_OFF = 0, /* not named on the LAN (the default) */
    KITH_ROOM_LAN_OPEN = 1, /* named; anyone on the LAN who knocks is admitted */
    KITH_ROOM_LAN_KNOCK = 2, /* named; a knock waits for an admin or moderator */
};

enum kith_role {
    KITH_ROLE_OBSERVER = 1,
    KITH_ROLE_MEMBER = 2,
    KITH_ROLE_MODERATOR = 3,
    KITH_ROLE_ADMIN = 4,
};

typedef struct kith_member {
    uint8_t id[KITH_ID_LEN];
    uint8_t dh[KITH_DH_LEN];
    uint8_t role;
    char nick[KITH_NICK_MAX + 1]; /* as given in the op that added them */
    char addr[KITH_ADDR_MAX + 1]; /* address hint, may be empty */
    bool banned;
} kith_member;

/* One op as the room sees it (kith_room_op_info). */
typedef struct kith_op_info {
    int kind;
    uint8_t author[KITH_ID_LEN];
    uint8_t subject[KITH_ID_LEN]; /* zero when the kind has none */
    uint8_t role;
    uint64_t epoch;
    bool effective; /* took effect in the total order */
    uint64_t wall_ms; /* the author's clock when it signed (informational) */
    bool has_invite;
    uint8_t invite[KITH_HASH_LEN];
    const char *text; /* topic or name; "" otherwise */
    uint8_t lan; /* set LAN: enum kith_room_lan */
} kith_op_info;

typedef struct kith_room kith_room;

/* New room: signs a genesis op (name, founder as admin, epoch key 0 from env
 * randomness sealed to the founder). The signed genesis is appended to
 * genesis_out. `self` must outlive the room. */
KITH_WUR int kith_room_create(const kith_env *env, const kith_identity *self, const char *name,
    const char *nick, const char *addr, kith_buf *genesis_out, kith_room **out);
/* Room from a received or stored genesis; verifies it. */
KITH_WUR int kith_room_open(const kith_env *env, const kith_identity *self, const uint8_t *genesis,
    size_t len, kith_room **out);
void kith_room_free(kith_room *room); /* wipes keys */

/* Verify and apply one signed op. 0 when applied; KITH_EEXIST when already
 * applied (harmless); KITH_ENOENT when a parent is unknown (try again after
 * the parent); KITH_EPERM when the author lacks the role; KITH_ECRYPTO,
 * KITH_EPROTO, KITH_ENONCANON for bad bytes. The room is unchanged on error. */
KITH_WUR int kith_room_apply(kith_room *room, const uint8_t *op, size_t len);

/* Admit a member: sign an add op (parents = current heads, the current epoch
 * key sealed to member_dh after checking member_cert), apply it, and append
 * the signed op to op_out. invite_id may be NULL. */
KITH_WUR int kith_room_add(kith_room *room, const uint8_t member_id[KITH_ID_LEN],
    const uint8_t member_dh[KITH_DH_LEN], const uint8_t member_cert[KITH_SIG_LEN], const char *nick,
    const char *addr, const uint8_t *invite_id, kith_buf *op_out);

/* Membership ops authored by self, signed with the current heads as parents
 * and checked against the state they define, applied, and appended to
 * op_out. KITH_EPERM when self lacks the role, KITH_ENOENT when the subject
 * is not a member (not banned, for unban), KITH_EINVAL for bad input. Remove,
 * ban and rekey seal a fresh epoch key to every remaining member. */
KITH_WUR int kith_room_remove(
    kith_room *room, const uint8_t subject[KITH_ID_LEN], kith_buf *op_out);
KITH_WUR int kith_room_ban(kith_room *room, const uint8_t subject[KITH_ID_LEN], kith_buf *op_out);
KITH_WUR int kith_room_unban(kith_room *room, const uint8_t subject[KITH_ID_LEN], kith_buf *op_out);
KITH_WUR int kith_room_set_role(
    kith_room *room, const uint8_t subject[KITH_ID_LEN], int role, kith_buf *op_out);
KITH_WUR int kith_room_set_topic(kith_room *room, const char *topic, kith_buf *op_out);
KITH_WUR int kith_room_set_name(kith_room *room, const char *name, kith_buf *op_out);
/* Admins only: mode is enum kith_room_lan. */
KITH_WUR int kith_room_set_lan(kith_room *room, int mode, kith_buf *op_out);
KITH_WUR int kith_room_rekey(kith_room *room, kith_buf *op_out);
KITH_WUR int kith_room_leave(kith_room *room, kith_buf *op_out);
KITH_WUR int kith_room_invite_issued(kith_room *room, const uint8_t invite_id[KITH_HASH_LEN],
    uint64_t expires_ms, uint32_t uses, kith_buf *op_out);
KITH_WUR int kith_room_invite_revoke(
    kith_room *room, const uint8_t invite_id[KITH_HASH_LEN], kith_buf *op_out);

const uint8_t *kith_room_id(const kith_room *room);
const char *kith_room_topic(const kith_room *room);
/* The key messages are sent with now (NULL if self holds none) and its epoch. */
const uint8_t *kith_room_current_key(const kith_room *room, uint64_t *epoch);
/* Author's wall clock (Unix ms) of the op that made the current key current
 * (a claim: the node checks it against its own clock). */
uint64_t kith_room_key_since(const kith_room *room);
/* Every epoch key self holds (several may share an epoch number when
 * rekeys were concurrent; the room tag tells them apart). */
size_t kith_room_key_count(const kith_room *room);
const uint8_t *kith_room_key_at(const kith_room *room, size_t i, uint64_t *epoch);
/* True when the current key is held by someone who is no longer a member,
 * or a member was not given it: a member should rekey. */
bool kith_room_needs_rekey(const kith_room *room);
/* Any id the log names, members or not (role 0 when not a member). */
const kith_member *kith_room_person(const kith_room *room, const uint8_t id[KITH_ID_LEN]);
/* Everyone the log names, members or not, by index. */
size_t kith_room_person_count(const kith_room *room);
const kith_member *kith_room_person_at(const kith_room *room, size_t i);
/* The index of a person for kith_room_person_at (it never changes: people
 * are only ever added), or false when the log doesn't name the id. */
bool kith_room_person_index(const kith_room *room, const uint8_t id[KITH_ID_LEN], size_t *idx);
bool kith_room_invite_revoked(const kith_room *room, const uint8_t invite_id[KITH_HASH_LEN]);
KITH_WUR int kith_room_op_info(const kith_room *room, size_t i, kith_op_info *out);
/* Safety number: H("kith/1 safety" || each member (id || role) by id ||
 * each head op id by id), see proto 5.4. Changes with membership. */
void kith_room_safety(const kith_room *room, uint8_t out[KITH_HASH_LEN]);
const char *kith_room_name(const kith_room *room);
/* The LAN meetup setting: the latest effective set-LAN op, else off. */
int kith_room_lan(const kith_room *room);
/* Current epoch and a key of that number; the key is NULL when self holds none. */
uint64_t kith_room_epoch(const kith_room *room);
const uint8_t *kith_room_key(const kith_room *room, uint64_t epoch);

/* Current members only (role > 0). */
size_t kith_room_member_count(const kith_room *room);
const kith_member *kith_room_member_at(const kith_room *room, size_t i);
const kith_member *kith_room_member(const kith_room *room, const uint8_t id[KITH_ID_LEN]);

/* Applied ops in application order (a causal order: parents first). */
size_t kith_room_op_count(const kith_room *room);
const uint8_t *kith_room_op_at(const kith_room *room, size_t i, size_t *len);

/* Display names (proto 5.7): what a member's chosen name is shown as. */
#define KITH_FPR_DIGITS 20 /* base32 digits of a fingerprint, without the dashes */
#define KITH_FPR_SUFFIX_MIN 4 /* "alice~3f2a" */
#define KITH_DISPLAY_MAX (KITH_NICK_MAX + 1 + KITH_FPR_DIGITS)
/* The skeleton two names are compared by: the name up to its first '~' (or
 * a look-alike), with blanks, invisible characters and ASCII punctuation
 * dropped, case and look-alike letters and digits folded. NUL-terminated;
 * returns its length. */
size_t kith_nick_skeleton(const char *nick, char *out, size_t cap);
/* Display names for everyone sharing a room: out[i] for ids[i] and
 * nicks[i]. The chosen name up to its first '~', plus "~" and a prefix of
 * the fingerprint (at least 4 digits, more until it differs from every
 * other) when another name has the same skeleton, when the name had a '~',
 * or when nothing of it is visible. */
KITH_WUR int kith_display_names(const kith_env *env, size_t count,
    const uint8_t (*ids)[KITH_ID_LEN], const char *const *nicks, char (*out)[KITH_DISPLAY_MAX + 1]);
/* A hash of the skeleton kith_display_names compares a name by: names of
 * different groups never change each other's display names, so a room's
 * names can be computed group by group (with every member of the group). */
uint64_t kith_display_group(const char *nick);

typedef struct kith_invite {
    uint8_t room_id[KITH_HASH_LEN];
    uint8_t inviter[KITH_ID_LEN];
    uint8_t secret[KITH_INVITE_SECRET_LEN];
    char addr[KITH_ADDR_MAX + 1];
    uint64_t expires_ms; /* Unix ms */
} kith_invite;

/* Code into out (NUL-terminated, at most KITH_INVITE_CODE_MAX bytes). */
KITH_WUR int kith_invite_encode(const kith_env *env, const kith_invite *inv, char *out, size_t cap);
/* Parse a pasted code (surrounding whitespace ignored). KITH_EINVAL with
 * nothing filled in when the code is not a kith invite. */
KITH_WUR int kith_invite_decode(const kith_env *env, const char *code, kith_invite *out);
/* Public id of an invite: BLAKE2b-256 keyed by the secret, of "kith/1 invite id". */
void kith_invite_id(const uint8_t secret[KITH_INVITE_SECRET_LEN], uint8_t id[KITH_HASH_LEN]);
/* Proof the joiner sends: keyed by the secret over room id, joiner id and the
 * Noise handshake hash of this session, so it can't be replayed elsewhere. */
void kith_invite_proof(const uint8_t secret[KITH_INVITE_SECRET_LEN],
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t joiner[KITH_ID_LEN],
    const uint8_t binding[64], uint8_t proof[KITH_HASH_LEN]);

#endif
