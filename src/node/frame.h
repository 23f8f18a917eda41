/* node/frame: the node protocol, i.e. the application messages two nodes
 * exchange inside an established session. Each frame is a canonical msgpack
 * map {0: type, ...}; the keys per type are in proto/kith.md section 6.
 * Decoding is bounded by the wire module; the decoded frame points into the
 * input bytes and the doc, which must outlive it. */
#ifndef KITH_FRAME_H
#define KITH_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "msg/msg.h"
#include "room/room.h"
#include "util/util.h"
#include "wire/wire.h"

enum kith_frame_type {
    KITH_FR_JOIN_REQ = 2, /* joiner -> inviter: room id, proof, nick, addr, cert */
    KITH_FR_JOIN_OK = 3, /* inviter -> joiner: room id, the room's ops (in parts when big) */
    KITH_FR_JOIN_ERR = 4, /* inviter -> joiner: room id, reason */
    KITH_FR_OP = 5, /* a membership op: room id, op */
    KITH_FR_MSG = 6, /* an envelope */
    KITH_FR_SYNC = 7, /* room id, op count, version vector [[author, seq], ...] */
    KITH_FR_KNOCK = 8, /* LAN knocker -> advertiser: room name, nick, addr, cert */
    /* Gossip (proto/kith.md §6.4): lazy push, pull and pruning. */
    KITH_FR_IHAVE = 16, /* room id, ids of messages the sender holds */
    KITH_FR_WANT = 17, /* room id, ids the sender lacks: send them, and push to me eagerly */
    KITH_FR_PRUNE = 18, /* room id: stop pushing this room's messages to me eagerly */
    KITH_FR_ADDR = 19, /* a member's signed, expiring address record */
};

#define KITH_FRAME_REASON_MAX 120
#define KITH_FRAME_MAX_VEC KITH_ROOM_MAX_MEMBERS
#define KITH_FRAME_MAX_IDS 512 /* ids in one IHAVE or WANT */
/* One JOIN_OK carries at most this many ops and bytes of ops; a room whose
 * log is bigger goes in several, each but the last marked "more". The
 * limits keep a frame under the session's and the decoder's caps
 * (KITH_SESSION_MAX_APP, KITH_WIRE_MAX_FRAME and KITH_WIRE_MAX_NODES). */
#define KITH_FRAME_JOIN_OPS 2048
#define KITH_FRAME_JOIN_BYTES (KITH_WIRE_MAX_FRAME - 4096)

typedef struct kith_frame {
    uint32_t type;
    uint8_t room_id[KITH_HASH_LEN];
    uint8_t proof[KITH_HASH_LEN];
    uint8_t cert[KITH_SIG_LEN];
    char nick[KITH_NICK_MAX + 1];
    char addr[KITH_ADDR_MAX + 1];
    char reason[KITH_FRAME_REASON_MAX + 1];
    char name[KITH_ROOM_NAME_MAX + 1]; /* KNOCK: the room name */
    const uint8_t *data; /* OP: signed op; MSG: envelope; ADDR: record */
    size_t len;
    uint64_t nops; /* SYNC: ops the sender holds */
    bool pulled; /* MSG: an answer to SYNC or WANT, not a push */
    bool more; /* JOIN_OK: more parts with the next ops follow */
    size_t count; /* JOIN_OK: ops; SYNC: vector entries */
    const kith_wire_doc *doc;
    const kith_wire_node *arr;
} kith_frame;

/* Encoders append one frame to out. */
KITH_WUR int kith_frame_join_req(kith_buf *out, const uint8_t room_id[KITH_HASH_LEN],
    const uint8_t proof[KITH_HASH_LEN], const uint8_t cert[KITH_SIG_LEN], const char *nick,
    const char *addr);
/* JOIN_OK with the room's ops from index `from` on, as many as fit
 * (KITH_FRAME_JOIN_OPS, KITH_FRAME_JOIN_BYTES; at least one); *next is
 * the index of the first op left for the next part (the op count when
 * this is the last). */
KITH_WUR int kith_frame_join_ok(kith_buf *out, const kith_room *room, size_t from, size_t *next);
KITH_WUR int kith_frame_knock(kith_buf *out, const char *room_name,
    const uint8_t cert[KITH_SIG_LEN], const char *nick, const char *addr);
KITH_WUR int kith_frame_join_err(
    kith_buf *out, const uint8_t room_id[KITH_HASH_LEN], const char *reason);
KITH_WUR int kith_frame_op(
    kith_buf *out, const uint8_t room_id[KITH_HASH_LEN], const uint8_t *op, size_t len);
KITH_WUR int kith_frame_msg(kith_buf *out, const uint8_t *envelope, size_t len);
/* A MSG sent because the peer asked (SYNC or WANT): its duplicates don't
 * prune the link. */
KITH_WUR int kith_frame_msg_pulled(kith_buf *out, const uint8_t *envelope, size_t len);
/* SYNC: vec holds n entries of (32-byte author, 8-byte big-endian seq). */
KITH_WUR int kith_frame_sync(kith_buf *out, const uint8_t room_id[KITH_HASH_LEN], uint64_t nops,
    const uint8_t (*authors)[KITH_ID_LEN], const uint64_t *seqs, size_t n);

/* Decode one frame. KITH_EPROTO / KITH_ENONCANON / KITH_ETOOBIG on bad bytes. */
KITH_WUR int kith_frame_decode(
    const kith_env *env, const uint8_t *data, size_t len, kith_wire_doc *doc, kith_frame *out);
/* JOIN_OK: i-th op. SYNC: i-th vector entry. */
KITH_WUR int kith_frame_op_at(const kith_frame *f, size_t i, const uint8_t **op, size_t *len);
/* ADDR: record bytes (canonical map, see kith_addr_*) and the member's signature. */
KITH_WUR int kith_frame_addr(
    kith_buf *out, const uint8_t *rec, size_t len, const uint8_t sig[KITH_SIG_LEN]);

/* Address records: {0: member id (bin32), 1: "host:port" (str), 2: issued
 * (Unix ms), 3: expires (Unix ms)}, signed by the member over
 * KITH_DOMAIN_ADDR || record. */
#define KITH_DOMAIN_ADDR "kith/1 addr"
#define KITH_ADDR_REC_MAX 256
#define KITH_ADDR_TTL_MAX (7ull * 24 * 3600 * 1000)
typedef struct kith_addr_rec {
    uint8_t member[KITH_ID_LEN];
    char addr[KITH_ADDR_MAX + 1];
    uint64_t issued_ms, expires_ms;
} kith_addr_rec;
KITH_WUR int kith_addr_encode(kith_buf *out, const kith_addr_rec *rec);
/* Parse only, the signature unchecked: for dropping a record that is not
 * newer than one held before paying for its signature. */
KITH_WUR int kith_addr_parse(const kith_env *env, const uint8_t *data, size_t len, uint64_t now_ms,
    kith_wire_doc *doc, kith_addr_rec *out);
/* Parse and verify: canonical, signed by rec->member, not expired at now_ms,
 * lifetime at most KITH_ADDR_TTL_MAX, issued no more than 10 min ahead. */
KITH_WUR int kith_addr_verify(const kith_env *env, const uint8_t *data, size_t len,
    const uint8_t sig[KITH_SIG_LEN], uint64_t now_ms, kith_wire_doc *doc, kith_addr_rec *out);

/* IHAVE / WANT: n message ids; PRUNE: n = 0. */
KITH_WUR int kith_frame_ids(kith_buf *out, uint32_t type, const uint8_t room_id[KITH_HASH_LEN],
    const uint8_t (*ids)[KITH_HASH_LEN], size_t n);
/* IHAVE / WANT: i-th id. */
KITH_WUR int kith_frame_id_at(const kith_frame *f, size_t i, uint8_t id[KITH_HASH_LEN]);
KITH_WUR int kith_frame_vec_at(
    const kith_frame *f, size_t i, uint8_t author[KITH_ID_LEN], uint64_t *seq);

#endif
