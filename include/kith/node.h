/* kith_node: the sans-I/O node. The driver (libuv in src/uvnode, an
 * in-process loop in tests, the simulator later) feeds it events and drains
 * the actions it wants done. The node never blocks, never reads the clock or
 * the RNG except through kith_env, and touches storage only through the
 * kith_store interface.
 *
 *   events in:  kith_node_accept / conn_opened / conn_data / conn_closed,
 *               kith_node_timer, kith_node_flush, client calls
 *   actions out: kith_node_poll() -> write, connect, close, arm timer, and
 *               events for the client (messages, joins, errors, ...)
 *
 * Durability: kith_node_send() appends the message to the room log; it is
 * transmitted and reported as sent (KITH_EV_SENT) only after the next
 * kith_node_flush() has synced the store. The driver calls flush once per
 * loop turn, so many sends share one fdatasync (group commit). */
#ifndef KITH_NODE_H
#define KITH_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"

typedef struct kith_node kith_node;
struct kith_identity;
struct kith_store;

#define KITH_ROOM_ID_LEN 32
#define KITH_MEMBER_ID_LEN 32

typedef struct kith_node_config {
    const char *addr; /* address hint others use to reach us, "host:port"; may be NULL */
    const char *nick; /* default display name; NULL -> "anon" */
    uint64_t invite_ttl_ms; /* default invite lifetime; 0 -> 24 h */
    bool lan; /* LAN discovery: emit KITH_ACT_BEACON, act on kith_node_beacon */
    size_t degree; /* links to keep per room (dialing stops there); 0 -> 8 */
    bool no_dial; /* never dial members' addresses (tests; static peers only) */
    const char *const *peers; /* static peers to keep connected to, "host:port" */
    size_t npeers;
    /* Scheduled rekey: an admin's node gives a room a fresh epoch key when
     * the current one is this old; 0 -> 7 days, KITH_REKEY_NEVER -> never. */
    uint64_t rekey_every_ms;
} kith_node_config;

#define KITH_REKEY_NEVER UINT64_MAX
#define KITH_REKEY_DEFAULT_MS (7ull * 24 * 3600 * 1000)

enum kith_event_type {
    KITH_EV_MESSAGE = 1, /* a message in a room (also our own, once sent) */
    KITH_EV_SENT, /* our message is durable and on its way: `seq` */
    KITH_EV_ROOM, /* we joined or created a room */
    KITH_EV_JOIN, /* a member joined a room */
    KITH_EV_NICK, /* a member changed display name: text = new name */
    KITH_EV_PEER_UP, /* a session with a member is established */
    KITH_EV_PEER_DOWN,
    KITH_EV_ERROR, /* something failed: text says what, err the code */
    KITH_EV_INFO, /* a notice for the person: text */
    /* A membership op took effect (after its KITH_EV_INFO line): `op` is
     * its kind (enum kith_member_op), author/nick who did it, subject and
     * subject_nick whom it is about (the author for a leave), `role` the new
     * role of a set role, text the topic of a set topic. For gateways that
     * show membership in their own terms (IRC KICK, MODE, TOPIC, PART). */
    KITH_EV_MEMBER,
};

typedef struct kith_event {
    int type;
    bool has_room;
    uint8_t room_id[KITH_ROOM_ID_LEN];
    const char *room_name;
    uint8_t author[KITH_MEMBER_ID_LEN];
    const char *nick; /* author's or member's display name */
    uint32_t msg_type; /* 1 text, 2 action, 3 nick, 4 edit, 5 delete, 6 reaction */
    const char *text; /* not NUL-terminated for messages: use text_len */
    size_t text_len;
    uint64_t wall_ms;
    uint64_t seq;
    bool self; /* authored by this node */
    bool history; /* replayed from the log at start-up or from a sync */
    bool catchup; /* delivered during a bulk catch-up, which is reported by
                     KITH_EV_INFO progress lines: a client may skip printing it */
    int err;
    /* MESSAGE events: the message id. Edits (text = the new text), deletes
     * (text empty, or the emoji when a reaction is taken back) and reactions
     * (text = the emoji) name their target, with the target's type, current
     * text and author when the node holds it (ctx NULL when it doesn't). Only
     * edits and deletes by the target's author are reported. */
    uint8_t id[KITH_ROOM_ID_LEN];
    bool has_target;
    uint8_t target[KITH_ROOM_ID_LEN];
    uint32_t target_type;
    const char *ctx;
    const char *ctx_nick;
    /* kith_node_history: the text shown is the latest edit's; the message
     * was deleted (text empty). */
    bool edited;
    bool deleted;
    /* KITH_EV_MEMBER */
    int op;
    int role;
    uint8_t subject[KITH_MEMBER_ID_LEN];
    const char *subject_nick;
} kith_event;

enum kith_action_type {
    KITH_ACT_WRITE = 1, /* write data to conn */
    KITH_ACT_CONNECT, /* open conn to addr ("host:port"); answer with conn_opened or conn_closed */
    KITH_ACT_CLOSE, /* close conn; reason says why */
    KITH_ACT_TIMER, /* call kith_node_timer after delay_ms (replaces any armed timer) */
    KITH_ACT_EVENT, /* give ev to the client */
    KITH_ACT_BEACON, /* multicast data (a LAN beacon, proto/kith.md §8) on every LAN socket */
};

typedef struct kith_action {
    int type;
    uint64_t conn;
    const uint8_t *data;
    size_t len;
    const char *addr;
    const char *reason;
    uint64_t delay_ms;
    kith_event ev;
} kith_action;

/* The identity and store must outlive the node. Loads every room found in the
 * store (replaying its log; KITH_EV_ROOM and history events are queued). */
KITH_WUR int kith_node_new(const kith_env *env, struct kith_store *store,
    const struct kith_identity *self, const kith_node_config *cfg, kith_node **out);
/* Frees without I/O: call kith_node_flush first for a clean shutdown. */
void kith_node_free(kith_node *node);

/* Next action, 1 if one was returned, 0 when none is pending. Pointers in
 * the action stay valid until the next call to any kith_node function. */
int kith_node_poll(kith_node *node, kith_action *out);

/* Driver events. */
uint64_t kith_node_accept(kith_node *node); /* inbound connection: its new id */
void kith_node_conn_opened(kith_node *node, uint64_t conn); /* outbound connect succeeded */
void kith_node_conn_data(kith_node *node, uint64_t conn, const uint8_t *data, size_t len);
void kith_node_conn_closed(kith_node *node, uint64_t conn);
/* The driver's word that a link is backed up (slow: bytes pile up unsent) or
 * keeping up again. While slow, others' messages go to it as IHAVE
 * announcements instead of eager pushes (the peer pulls them with WANT at
 * its own pace, and SYNC covers what an announcement queue drops), so one
 * slow member does not make its relays buffer without bound. */
void kith_node_conn_slow(kith_node *node, uint64_t conn, bool slow);
void kith_node_timer(kith_node *node);
/* Sync the store and release what waited on it. */
KITH_WUR int kith_node_flush(kith_node *node);

/* Client calls. Errors come back at once; later results come as events. */
KITH_WUR int kith_node_create_room(
    kith_node *node, const char *name, uint8_t room_id[KITH_ROOM_ID_LEN]);
/* A fresh invite code for the room (expiry: ttl_ms, 0 -> default). */
KITH_WUR int kith_node_invite(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    uint64_t ttl_ms, char *code, size_t cap);
/* Invite with options: uses (0 -> 1), lifetime (0 -> the default), and
 * optionally bound to one invitee's member id (others are refused). */
typedef struct kith_invite_opts {
    uint64_t ttl_ms;
    uint32_t uses;
    const uint8_t *for_id; /* KITH_MEMBER_ID_LEN bytes, or NULL */
} kith_invite_opts;
KITH_WUR int kith_node_invite_ex(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const kith_invite_opts *opts, char *code, size_t cap);
/* Revoke this node's invites to a room: the one whose code is given, or
 * (code NULL) every one still usable. Returns how many were revoked (0 or
 * more), or a negative kith_err. A revoked code is refused with "invite
 * revoked". */
KITH_WUR int kith_node_invite_revoke(
    kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN], const char *code);
/* Start joining with a pasted code; KITH_EV_ROOM or KITH_EV_ERROR follows. */
KITH_WUR int kith_node_join(kith_node *node, const char *code);
/* msg_type 1 text, 2 action. Returns the message's sequence number in *seq. */
KITH_WUR int kith_node_send(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    uint32_t msg_type, const char *text, size_t len, uint64_t *seq);
/* Edits, deletes and reactions (proto/kith.md 4.2 and 6). `target` is a
 * message id from kith_node_find_message or an event. msg_type 4 edit (text
 * = the new text), 5 delete (no text), 6 reaction (text = a short token,
 * usually one emoji). KITH_ENOENT: no such message; KITH_EPERM: editing or
 * deleting someone else's message; KITH_EINVAL: a target that can't be
 * acted on (already deleted, not a text) or a bad text; KITH_EEXIST: that
 * reaction is already there. */
KITH_WUR int kith_node_send_about(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    uint32_t msg_type, const uint8_t target[KITH_ROOM_ID_LEN], const char *text, size_t len,
    uint64_t *seq);
/* Take back our reactions to `target`: the one with this text, or (text
 * NULL) all of them; target NULL: our latest reaction (with this text).
 * Returns how many (a delete each), KITH_ENOENT for none. */
KITH_WUR int kith_node_unreact(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const uint8_t target[KITH_ROOM_ID_LEN], const char *text, size_t len);
/* Find a message (text or action, not deleted): by a hex prefix of its id
 * (id_hex, at least 4 characters), or else the nth most recent (1 = the
 * last), counting only our own when `mine`. KITH_ENOENT: none; KITH_EEXIST:
 * the prefix is ambiguous. */
KITH_WUR int kith_node_find_message(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const char *id_hex, size_t nth, bool mine, uint8_t id[KITH_ROOM_ID_LEN]);
/* Membership changes (proto/kith.md 5): `member` names the subject of
 * remove, ban, unban and set role; `role` is the new role (1 observer ..
 * 4 admin); `text` the topic or room name. The op is logged, sent to the
 * members and reported as a KITH_EV_INFO line. KITH_EPERM without the
 * role, KITH_ENOENT when the member is not in the room (not banned, for
 * unban), KITH_EINVAL for a bad topic or name or acting on ourselves. */
enum kith_member_op {
    KITH_MOP_REMOVE = 2,
    KITH_MOP_BAN = 3,
    KITH_MOP_UNBAN = 4,
    KITH_MOP_SET_ROLE = 5,
    KITH_MOP_SET_TOPIC = 6,
    KITH_MOP_SET_NAME = 7,
    KITH_MOP_REKEY = 10,
    KITH_MOP_LEAVE = 11,
};
KITH_WUR int kith_node_member_op(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN], int kind,
    const uint8_t *member, int role, const char *text);
/* Find a member (or, with `former`, anyone the room's log names) by nick,
 * "nick~abcd" (nick and the start of the fingerprint), or a fingerprint
 * prefix of at least 4 characters. KITH_ENOENT: nobody; KITH_EEXIST: more
 * than one matches. */
KITH_WUR int kith_node_find_member(const kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const char *who, bool former, uint8_t member_id[KITH_MEMBER_ID_LEN]);
/* Change our display name (announced in every room). */
KITH_WUR int kith_node_set_nick(kith_node *node, const char *nick);

/* LAN meetups (proto/kith.md §8). A datagram received on the beacon port;
 * from_host is the sender's IP as text ("10.0.0.2", "fe80::1%eth0"). Cheap
 * for junk: the node caps how many it looks at per second. */
void kith_node_beacon(kith_node *node, const uint8_t *data, size_t len, const char *from_host);

enum kith_lan_mode {
    KITH_LAN_OFF = 0, /* not discoverable by name (the default) */
    KITH_LAN_OPEN = 1, /* named in beacons; anyone on the LAN who knocks is admitted */
    KITH_LAN_KNOCK = 2, /* named in beacons; a knock waits for kith_node_admit */
};
/* Make a room discoverable by name on the LAN, or not (KITH_EPERM unless we
 * are an admin of it). The setting is a signed room op: it reaches every
 * member, every admin's and moderator's node names the room and answers
 * knocks, and it is kept across restarts. Setting the current mode again
 * does nothing. Works with LAN discovery off on this node too (other admins'
 * and moderators' nodes can still advertise). */
KITH_WUR int kith_node_lan_set(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN], int mode);
int kith_node_lan_mode(const kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN]);
/* Does this node send and hear beacons (false with --no-lan)? */
bool kith_node_lan_enabled(const kith_node *node);

typedef struct kith_lan_room {
    const char *name; /* as the beacon said: untrusted text */
    int mode; /* KITH_LAN_OPEN or KITH_LAN_KNOCK */
    const char *addr; /* where the beacon came from, "host:port" */
    uint64_t age_ms; /* since it was last heard */
} kith_lan_room;
/* Discoverable rooms heard on the LAN recently, newest first. */
size_t kith_node_lan_count(const kith_node *node);
KITH_WUR int kith_node_lan_at(const kith_node *node, size_t i, kith_lan_room *out);
/* Ask the node that advertises the room `name` to let us in; KITH_EV_ROOM or
 * KITH_EV_ERROR follows. KITH_ENOENT when no such room was heard. */
KITH_WUR int kith_node_knock(kith_node *node, const char *name);
/* Admit someone who knocked (by the nick they gave). KITH_ENOENT when nobody
 * by that name is waiting. */
KITH_WUR int kith_node_admit(kith_node *node, const char *nick);

/* Peers with an established session, and how each was found. */
typedef struct kith_peer_info {
    uint8_t id[KITH_MEMBER_ID_LEN];
    const char *nick; /* NULL when the peer shares no room (yet) */
    char fingerprint[24];
    const char *found; /* "lan", "address", "invite", "knock" or "inbound" */
    bool outbound;
} kith_peer_info;
size_t kith_node_peer_count(const kith_node *node);
KITH_WUR int kith_node_peer_at(const kith_node *node, size_t i, kith_peer_info *out);

/* Queries. */
typedef struct kith_room_info {
    uint8_t id[KITH_ROOM_ID_LEN];
    const char *name;
    size_t members;
    size_t online; /* members online: ourselves and those with a session */
    uint64_t epoch;
    size_t messages;
    const char *topic; /* "" when none */
    char safety[32]; /* safety number, "12345 67890 ..." (proto 5.4); changes with membership */
    bool member; /* false once we left or were removed */
} kith_room_info;

typedef struct kith_member_info {
    uint8_t id[KITH_MEMBER_ID_LEN];
    const char *nick;
    char fingerprint[24];
    int role; /* 4 admin, 3 moderator, 2 member, 1 observer */
    bool self;
    bool online;
} kith_member_info;

const char *kith_node_nick(const kith_node *node);
void kith_node_fingerprint(const kith_node *node, char out[24]);
size_t kith_node_room_count(const kith_node *node);
KITH_WUR int kith_node_room_at(const kith_node *node, size_t i, kith_room_info *out);
/* Find a room by exact name or by a hex prefix of its id (>= 4 chars). */
KITH_WUR int kith_node_room_find(
    const kith_node *node, const char *name_or_id, uint8_t room_id[KITH_ROOM_ID_LEN]);
KITH_WUR int kith_node_room_info(
    const kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN], kith_room_info *out);
size_t kith_node_member_count(const kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN]);
KITH_WUR int kith_node_member_at(const kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN],
    size_t i, kith_member_info *out);
/* Call cb for the last `max` messages of a room, oldest first (ev->history
 * set): texts and actions as they read now (edited, deleted), each followed
 * by a MESSAGE event of msg_type 6 per reaction to it (one per reactor and
 * emoji, grouped by emoji in the order they first came). */
typedef void (*kith_history_cb)(void *ud, const kith_event *ev);
KITH_WUR int kith_node_history(kith_node *node, const uint8_t room_id[KITH_ROOM_ID_LEN], size_t max,
    kith_history_cb cb, void *ud);

/* Counters since the node started, for tools/bench and tests. */
typedef struct kith_node_stats {
    uint64_t msgs_in; /* MSG frames received */
    uint64_t dups_in; /* of which already held */
    uint64_t delivered; /* messages of others accepted and delivered */
    uint64_t msgs_out; /* MSG frames sent */
    uint64_t ihave_out, want_out, prune_out;
    uint64_t held; /* messages currently held for a gap or a dependency */
    uint64_t bytes_out, bytes_in; /* on the wire, all connections */
    /* Of bytes_out, what frames of each kind took on the wire (session
     * overhead included); handshakes and the rest are bytes_out minus
     * their sum. ihave_ids_out counts the ids announced. */
    uint64_t wire_msg_out, wire_ihave_out, wire_want_out, wire_prune_out;
    uint64_t wire_sync_out, wire_op_out, wire_addr_out;
    uint64_t ihave_ids_out;
} kith_node_stats;
void kith_node_stats_get(const kith_node *node, kith_node_stats *out);

#endif
