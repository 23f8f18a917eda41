/* node internals shared by the node's source files (node.c: state, events,
 * actions; node_room.c: rooms, messages, persistence; node_net.c:
 * connections, sessions, joins and sync). Not a public interface. */
#ifndef KITH_NODE_IMPL_H
#define KITH_NODE_IMPL_H

#include "crypto/crypto.h"
#include "kith/node.h"
#include "msg/msg.h"
#include "node/frame.h"
#include "room/room.h"
#include "session/session.h"
#include "store/store.h"
#include "util/map.h"
#include "util/util.h"

#define NODE_MAX_CONNS 256
#define NODE_MAX_ROOMS 256
#define NODE_MAX_HELD 4096 /* out-of-order messages held per room */
#define NODE_MAX_HELD_BYTES (4u << 20) /* and their envelopes' bytes */
#define NODE_MAX_HELD_OPS 256 /* ops waiting for a parent */
#define NODE_MAX_SEEN (1u << 22)
#define NODE_MAX_INVITES 1024
#define NODE_INVITE_SHORT 4 /* bytes of an invite id shown (8 hex digits) */
#define NODE_TICK_MS 1000
#define NODE_HANDSHAKE_TIMEOUT_MS 10000
#define NODE_JOIN_TIMEOUT_MS 20000
/* A joiner takes a room's log of at most this many bytes of ops (JOIN_OK
 * parts are collected until the last; a 1000-member room's is about 1 MiB). */
#define NODE_JOIN_MAX_BYTES (64u << 20)
#define NODE_SYNC_INTERVAL_MS 60000
#define NODE_SYNC_BATCH_BYTES (2u << 20)
/* A SYNC this soon after a batch sent on the same link goes on after it. */
#define NODE_SERVED_WINDOW_MS 10000
#define NODE_BACKOFF_MIN_MS 1000
#define NODE_BACKOFF_MAX_MS 60000
#define NODE_MAX_LAZY 64
#define NODE_MAX_IHAVE 4096 /* ids queued for announcement per room */
#define NODE_MAX_WANTED 4096 /* ids wanted per room */
#define NODE_WANT_DELAY_MS 500 /* let the eager path deliver first */
/* The ids a room delivered go out as IHAVE at most this often (or when a
 * frame's worth is queued): one frame header, session tag and room id for
 * many ids instead of one per message. */
#define NODE_IHAVE_INTERVAL_MS 500
/* Lazy links of a room that get a round's announcements while messages
 * keep coming, drawn at random each round (node_gossip.c ann_round): each
 * id costs 34 bytes per link it is announced on, more than a tenth of a
 * 200-byte text's envelope, so one. */
#define NODE_IHAVE_FANOUT 1
#define NODE_WANT_RETRY_MS 3000
#define NODE_MAX_ORPHANS 64 /* reactions waiting for their target, per room */
#define NODE_DEPS_WAIT_MS 5000 /* then show a message despite missing deps */
#define NODE_GAP_NOTICE_MS 2000
/* A SYNC that shows a backlog of this many messages starts a bulk catch-up:
 * the client gets progress lines instead of every message as it arrives. */
#define NODE_CATCHUP_QUIET 200
#define NODE_CATCHUP_PROGRESS_MS 1000
#define NODE_CATCHUP_STALL_MS 15000 /* no progress this long: report and stop */
/* Per-link budget per tick (1 s): generous enough for catch-up at full
 * speed, small enough that one peer can't monopolise the node. */
/* MSG frames of one connection batched for kith_env.verify_many (a run:
 * consecutive MSG frames of one read, node_net.c). */
#define NODE_RUN_MAX 128
#define NODE_BUDGET_BYTES (64u << 20)
#define NODE_BUDGET_FRAMES 200000

/* Log record kinds: the first byte of every record in a room's log. */
enum {
    REC_OP = 1, /* signed op, sealed with the node's local key */
    REC_ENVELOPE = 2, /* envelope exactly as received or sent */
    REC_INVITE = 3, /* sealed: secret (16) || expires_ms (8, BE) */
    REC_INVITE_USED = 4, /* sealed: invite id (32), one record per use */
    REC_INVITE_REVOKED = 5, /* sealed: invite id (32) */
};

/* One delivered message: where its record is in the room log, and what the
 * room's view needs (type, author, sequence, links between messages). Its
 * text, time and full id stay in the log with the envelope and are read
 * back when something shows it (node_hist_open), so memory per message is
 * this entry (40 bytes) and its slot in the id index (4 bytes at a load of
 * 1/4 to 1/2), whatever its text. Entries live in fixed blocks of
 * NODE_HIST_BLOCK (node_hist_at): the history grows without copying what it
 * holds. */
typedef struct hist {
    uint64_t pos; /* position of its record in the room log */
    uint64_t idp; /* the first 8 bytes of its id (node_id_prefix): the id index's key */
    uint32_t seq; /* <= NODE_MAX_SEEN: no author delivers more than a room holds */
    uint32_t author; /* index into the room's authors (node_hist_author) */
    /* Edits, deletes and reactions (node_room.c, proto/kith.md 6). */
    uint32_t edit; /* text/action: 1 + index of the latest effective edit; 0 none */
    uint32_t
        react; /* text/action: 1 + index of the latest reaction to it; reaction: the one before */
    uint32_t target; /* edit/delete/reaction: 1 + index of its target once held; 0 not held */
    uint16_t env_len; /* <= KITH_MSG_MAX_ENVELOPE */
    uint8_t type; /* the message type; NODE_TYPE_OTHER for any type above it */
    bool has_target : 1;
    bool effective : 1; /* edit/delete/reaction: it applied (its author could) */
    /* text/action/reaction: deleted by its author (its text is not shown);
     * edit: its target was deleted (nor is its text) */
    bool deleted : 1;
    bool linked : 1; /* reaction: in its target's list */
} hist;
#define NODE_HIST_BLOCK 1024 /* entries per block of history */
#define NODE_RECENT 8 /* ids of the latest messages kept whole (nroom.recent) */
#define NODE_TYPE_OTHER 255
_Static_assert(sizeof(hist) <= 40, "a history entry is kept small: one per message held");
_Static_assert(KITH_MSG_MAX_ENVELOPE <= UINT16_MAX, "hist.env_len is 16 bits");
_Static_assert(NODE_MAX_SEEN < UINT32_MAX, "hist indices and sequences are 32 bits");

/* The id index's key: the first 8 bytes of a message id. */
static inline uint64_t node_id_prefix(const uint8_t id[KITH_HASH_LEN])
{
    uint64_t v;
    memcpy(&v, id, sizeof v);
    return v;
}

typedef struct dname {
    uint64_t group; /* kith_display_group of the name it was shown with */
    uint32_t next; /* 1 + index of the next person of the group; 0 at the end */
    char shown[KITH_DISPLAY_MAX + 1]; /* "" when unknown: the chosen name is shown */
} dname;

typedef struct author_st {
    uint8_t id[KITH_ID_LEN];
    uint64_t seq; /* highest sequence delivered without a gap */
    uint8_t last[KITH_HASH_LEN]; /* id of sequence seq: the next one's prev */
    char nick[KITH_NICK_MAX + 1]; /* from the author's latest nick message */
    uint64_t target; /* highest sequence a peer's SYNC said it holds */
    bool unannounced; /* delivered since the room's last quiet announcement round */
} author_st;

typedef struct held {
    uint8_t id[KITH_HASH_LEN];
    uint8_t author[KITH_ID_LEN];
    uint64_t seq;
    uint8_t *env;
    size_t len;
    uint64_t since_ms; /* when it was first held */
    uint64_t pos; /* its log record when held at start-up (else unused) */
    size_t ndeps;
    uint8_t deps[KITH_MSG_MAX_DEPS][KITH_HASH_LEN];
} held;

/* A message id we learned of (IHAVE, a gap, a missing dependency) and will
 * ask a peer for if it doesn't arrive by itself. */
typedef struct wanted {
    uint8_t id[KITH_HASH_LEN];
    uint64_t conn; /* who announced it */
    uint64_t due_ms;
    uint8_t tries;
} wanted;

typedef struct invite_st {
    uint8_t secret[KITH_INVITE_SECRET_LEN];
    uint8_t id[KITH_HASH_LEN];
    uint64_t expires_ms;
    bool used; /* no uses left */
    uint32_t uses, nused; /* allowed, used so far */
    bool revoked;
    bool bound; /* only for_id may use it */
    uint8_t for_id[KITH_ID_LEN];
} invite_st;
/* REC_INVITE payload: secret (16) || expires (8) [|| uses (4, BE) || bound (1) || for id (32)] */
#define INVITE_REC_OLD (KITH_INVITE_SECRET_LEN + 8)
#define INVITE_REC_LEN (KITH_INVITE_SECRET_LEN + 8 + 4 + 1 + KITH_ID_LEN)

typedef struct nroom {
    kith_room *room;
    char log[33];
    uint8_t tag[KITH_ROOM_TAG_LEN];
    uint64_t tag_epoch;
    bool has_tag; /* tag of the current key */
    uint8_t (*tags)[KITH_ROOM_TAG_LEN]; /* tags of every key held, as kith_room_key_at */
    size_t ntags;
    hist **hblk; /* blocks of NODE_HIST_BLOCK entries (node_hist_at) */
    size_t nhist, nhblk;
    /* The id index (node_hist_find): open addressing over 1 + history
     * index (0 free), keyed by hist.idp; capacity a power of two, at most
     * half full; hashed with a per-room random key, so nobody can aim ids
     * at one chain of slots. */
    uint32_t *ix;
    size_t ixcap, ixmax; /* ixmax: messages held at most (NODE_MAX_SEEN) */
    uint64_t ixkey;
    author_st *authors;
    size_t nauthors;
    held *held;
    size_t nheld, held_bytes; /* <= NODE_MAX_HELD, NODE_MAX_HELD_BYTES */
    invite_st *inv;
    size_t ninv;
    uint8_t **held_ops;
    size_t *held_op_len;
    size_t nheld_ops;
    uint64_t lamport;
    uint64_t rekey_since_ms; /* when we saw the room needs a rekey; 0 if it doesn't */
    uint64_t key_seen_wall; /* our wall clock when the current key became current here */
    uint64_t sched_retry_wall; /* a scheduled rekey failed: not before this */
    wanted *want;
    size_t nwant;
    uint64_t gap_noticed_seq; /* highest gap end already reported */
    /* Display names (node_display): dn[i] for the log's person i, linked
     * in groups of names with the same skeleton (kith_display_group). A
     * name depends only on its group, so a new person or a new nick
     * recomputes one group or two, not the room: a room of n members
     * costs O(n) to fill, not O(n^2). names_dirty: recompute them all. */
    struct dname *dn;
    size_t ndn, capdn;
    kith_map dn_group; /* group -> 1 + index of its first person */
    bool names_dirty;
    /* The ids of the latest messages delivered, by history index modulo
     * NODE_RECENT (recent_at says which index each is): sending names the
     * latest as dependencies without reading them back. */
    uint8_t recent[NODE_RECENT][KITH_HASH_LEN];
    size_t recent_at[NODE_RECENT];
    /* Bulk catch-up (node_room.c): messages delivered while it runs carry
     * kith_event.catchup; progress goes out as info lines. */
    bool catchup;
    bool cu_ready; /* just started or relinked: a big backlog may start one */
    uint64_t cu_done; /* delivered since it started */
    uint64_t cu_said_ms, cu_moved_ms; /* last progress line, last delivery */
    /* The link that serves the bulk catch-up (its conn id): while one
     * runs, only that peer is asked for more (node_net.c, on_sync). */
    uint64_t cu_src;
    /* Reactions delivered before their target (indices into hist), kept
     * to attach when it comes. A bounded ring: a member reacting to ids
     * that never come can't make each new message scan the history. */
    size_t orphans[NODE_MAX_ORPHANS];
    uint8_t orphan_target[NODE_MAX_ORPHANS][KITH_HASH_LEN]; /* the id each waits for */
    size_t norphans, orphan_next;
    /* The dependencies of the latest message delivered from someone else
     * (hist index last_other): a message we send names no dependency that
     * one already names (send_msg). */
    uint8_t last_deps[KITH_MSG_MAX_DEPS][KITH_HASH_LEN];
    size_t nlast_deps, last_other; /* last_other: 1 + hist index, 0 none */
    /* Ids to announce (node_gossip_flush): ann[0..ntail) went out in the
     * last round to the links tail_to, ann[ntail..nann) wait for the next. */
    struct ihave_q *ann;
    size_t nann, capann, ntail;
    uint64_t tail_to[NODE_IHAVE_FANOUT];
    size_t ntail_to;
    uint64_t ann_ms; /* when the last round went out */
} nroom;

typedef struct nconn {
    uint64_t id;
    bool outbound;
    bool connected;
    bool established;
    bool doomed; /* close after the current feed returns */
    const char *doom_reason;
    kith_session *s;
    uint8_t peer[KITH_ID_LEN];
    uint64_t started_ms;
    uint64_t last_sync_ms;
    int dial; /* index into node->dials, or -1 */
    bool joining;
    bool join_link; /* a join went over it: kept over a duplicate (node_net.c keep_over) */
    bool join_on_link; /* the join goes over a link that serves other rooms */
    kith_invite inv;
    /* Joiner: the ops of JOIN_OK parts so far, each (u32 length, bytes),
     * until the part not marked "more" arrives. */
    kith_buf join_ops;
    size_t join_nops;
    uint8_t origin; /* how the peer was found: enum node_origin */
    bool knock; /* joining by a LAN knock on knock_name (no invite) */
    char knock_name[KITH_ROOM_NAME_MAX + 1];
    /* Gossip (node_gossip.c): rooms for which this link gets only lazy
     * announcements, budget counters. */
    const struct nroom *lazy[NODE_MAX_LAZY];
    size_t nlazy;
    uint64_t budget_bytes, budget_frames;
    uint64_t last_gap_sync_ms;
    /* The latest ops of ops_room went over this link in answer to a SYNC
     * when we held ops_ours and the peer ops_theirs (node_net.c on_sync). */
    uint8_t ops_room[KITH_HASH_LEN];
    uint64_t ops_ours, ops_theirs;
    bool slow; /* the driver says it is backed up (kith_node_conn_slow) */
    /* What this link was last sent in answer to a SYNC (on_sync): the
     * room, the history index the batch stopped at, when. */
    uint8_t served_room[KITH_HASH_LEN];
    size_t served_to;
    uint64_t served_ms;
} nconn;

/* An id delivered since the room's last round of announcements
 * (node_gossip.c), and the links that need not hear of it. */
typedef struct ihave_q {
    uint8_t id[KITH_HASH_LEN];
    uint64_t from; /* the connection it came over; 0 our own */
    uint32_t author; /* index into the room's authors */
} ihave_q;

enum node_origin {
    ORIGIN_INBOUND = 0, /* the peer connected to us */
    ORIGIN_ADDR, /* the address in the peer's membership record */
    ORIGIN_INVITE, /* the address hint in an invite we used */
    ORIGIN_LAN, /* a LAN beacon with a tag of one of our rooms */
    ORIGIN_KNOCK, /* a knock on a room named in a LAN beacon */
};

#define NODE_KNOCK_TIMEOUT_MS 300000 /* a knock waits this long for an admin */

typedef struct dial_st {
    bool fixed; /* a static peer: always kept, member id unknown until connected */
    uint8_t member[KITH_ID_LEN];
    char addr[KITH_ADDR_MAX + 1];
    uint64_t next_ms;
    uint64_t backoff_ms;
    uint64_t conn; /* 0 when not dialing */
    /* The member's latest address record (node_addr.c), if any. */
    uint64_t rec_issued, rec_expires;
    uint8_t rec[KITH_ADDR_REC_MAX];
    size_t rec_len;
    uint8_t rec_sig[KITH_SIG_LEN];
    uint8_t fails; /* dials in a row that never got through */
} dial_st;

/* An emptied action queue larger than this many entries is freed, so that a
 * burst (one message to every link is a write each) does not pin its
 * high-water array (344 bytes an entry: 5.6 MB after 2,000 messages to 15
 * links) for the life of the node. */
#define NODE_Q_KEEP 256
typedef struct qact {
    kith_action a;
    uint8_t *blob;
} qact;

/* Our own message, appended to the log, waiting for the flush. */
typedef struct outmsg {
    nroom *room;
    size_t hist;
    uint8_t *env; /* envelope (env_len) then body (body_len) */
    size_t env_len, body_len;
    uint64_t wall_ms;
    uint8_t target[KITH_HASH_LEN]; /* an edit's, delete's or reaction's */
} outmsg;

/* A MSG frame of a run. Before the run is handled in order, every frame
 * that is new (not seen, not a copy of an earlier one in the run) and opens
 * with a room key is decrypted and parsed here, and all their signatures
 * are checked at once (kith_env.verify_many). accept_one uses the result
 * for exactly this envelope (same room, same id): `ok` false is a bad
 * signature. */
typedef struct pre_msg {
    size_t off, len; /* the envelope in kith_node.run_bytes */
    bool pulled;
    bool has_id;
    bool opened; /* in, plain and ok are valid */
    bool ok; /* the signature is good */
    struct nroom *room;
    uint8_t id[KITH_HASH_LEN];
    kith_inner in; /* body points into plain */
    kith_buf plain;
} pre_msg;

struct kith_node {
    const kith_env *env;
    kith_store *store;
    const kith_identity *self;
    uint8_t local_key[KITH_KEY_LEN];
    char nick[KITH_NICK_MAX + 1];
    char addr[KITH_ADDR_MAX + 1];
    uint64_t invite_ttl_ms;
    uint64_t rekey_every_ms; /* scheduled rekey (node_room.c) */
    size_t degree;
    bool no_dial;

    nroom *rooms[NODE_MAX_ROOMS];
    size_t nrooms;
    nconn *conns[NODE_MAX_CONNS];
    size_t nconns;
    uint64_t next_conn;
    dial_st *dials;
    size_t ndials, capdials;
    kith_map dial_index; /* member id -> index of its dial (not static peers) */
    /* node_refresh_dials looks only at people a room's log named since its
     * last look (rooms[i] had dial_room[i] and dial_seen[i] people then),
     * and at all of them every NODE_DIAL_RESCAN_MS. */
    const kith_room *dial_room[NODE_MAX_ROOMS];
    size_t dial_seen[NODE_MAX_ROOMS];
    uint64_t dial_rescan_ms;

    qact *q;
    size_t qhead, qlen, qcap;
    uint8_t *last_blob;

    outmsg *out;
    size_t nout, capout;
    bool timer_armed;
    bool ticked; /* kith_node_timer ran at least once */

    kith_wire_doc *doc; /* scratch for frame decoding */
    /* Scratch for messages read back from the log (node_message_event):
     * an envelope, its plaintext, and the two texts an event may show
     * (NUL-terminated). Each at most KITH_MSG_MAX_ENVELOPE bytes. */
    kith_buf rd_env, rd_plain, rd_text, rd_ctx;
    kith_buf feed_out; /* handshake bytes produced during a feed */
    nconn *feeding;
    bool loading;
    uint64_t load_pos; /* log position of the envelope being loaded */
    struct nconn *cur_from; /* the link whose frame is being handled */
    bool last_dup; /* the last envelope accepted was a duplicate */
    /* The run of MSG frames being batched (only with env->verify_many). */
    pre_msg *run; /* NODE_RUN_MAX entries, allocated on first use */
    size_t nrun;
    kith_buf run_bytes; /* their envelopes */
    kith_buf run_signed; /* domain || inner of each, for the checks */
    const pre_msg *pre; /* the frame of the run being accepted */
    kith_node_stats stats;
    uint8_t own_rec[KITH_ADDR_REC_MAX];
    size_t own_rec_len;
    uint8_t own_rec_sig[KITH_SIG_LEN];
    uint64_t own_rec_expires;
    struct node_lan *lan; /* LAN discovery state (node_lan.c); NULL when off */
};

/* node.c */
void node_push_write(kith_node *n, uint64_t conn, const uint8_t *data, size_t len);
void node_push_close(kith_node *n, uint64_t conn, const char *reason);
void node_push_connect(kith_node *n, uint64_t conn, const char *addr);
void node_push_event(kith_node *n, const kith_event *ev, const char *text, size_t text_len);
void node_event_error(kith_node *n, const nroom *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void node_event_info(kith_node *n, const nroom *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void node_room_event(kith_node *n, kith_event *ev, const nroom *r);
void node_push_beacon(kith_node *n, const uint8_t *data, size_t len);

/* node_room.c */
/* Fill a MESSAGE event for history entry i: author, type, time, and for an
 * edit, delete or reaction its target and the target's text and author
 * (ctx, ctx_nick). Strings point into the node; node_push_event copies. */
void node_message_event(kith_node *n, nroom *r, size_t i, kith_event *ev);
/* The same, given what the envelope of entry i holds (its type, time,
 * target and body in `in`, and its id), so the log is not read for it. */
void node_message_event_with(kith_node *n, nroom *r, size_t i, const kith_inner *in,
    const uint8_t id[KITH_HASH_LEN], kith_event *ev);
/* Is history entry i a message people read (text or action)? */
bool node_hist_visible(const hist *h);
nroom *node_room_by_id(const kith_node *n, const uint8_t id[KITH_HASH_LEN]);
KITH_WUR int node_room_add(kith_node *n, kith_room *room, nroom **out);
void node_room_free(kith_node *n, nroom *r);
KITH_WUR int node_persist(kith_node *n, nroom *r, int kind, const uint8_t *data, size_t len);
KITH_WUR int node_persist_op(kith_node *n, nroom *r, const uint8_t *op, size_t len);
/* Parse and open (decrypt, verify) an envelope of room r; `known` skips
 * the signature (an envelope from node_hist_env: verified before, id
 * checked). */
KITH_WUR int node_open_envelope(kith_node *n, const nroom *r, const uint8_t *env, size_t len,
    bool known, kith_buf *plain, kith_inner *in);
/* The same for an envelope already parsed (e.ct points into its bytes). */
KITH_WUR int node_open_parsed(kith_node *n, const nroom *r, const kith_envelope *e, bool known,
    kith_buf *plain, kith_inner *in);
/* The envelope of history entry idx (from the log), appended to out; its
 * id checked against the entry's and, unless NULL, written to id. */
KITH_WUR int node_hist_env(
    kith_node *n, const nroom *r, size_t idx, kith_buf *out, uint8_t id[KITH_HASH_LEN]);
/* History entry idx read back from the log and opened (no signature check:
 * it was verified when delivered, and its id is checked): *in, whose body
 * points into plain, and its id. */
KITH_WUR int node_hist_open(kith_node *n, const nroom *r, size_t idx, kith_buf *plain,
    kith_inner *in, uint8_t id[KITH_HASH_LEN]);
/* The full id of history entry idx (read from the log). */
KITH_WUR int node_hist_full_id(kith_node *n, const nroom *r, size_t idx, uint8_t id[KITH_HASH_LEN]);
/* The text of entry idx read back from the log into buf (NUL-terminated),
 * its length in *len: "" for a deleted text or an edit of one, or when the
 * log can't be read. */
const char *node_hist_text(kith_node *n, const nroom *r, size_t idx, kith_buf *buf, size_t *len);
/* The history index of a delivered message, SIZE_MAX when not held. */
size_t node_hist_find(const nroom *r, const uint8_t id[KITH_HASH_LEN]);
static inline bool node_has_id(const nroom *r, const uint8_t id[KITH_HASH_LEN])
{
    return node_hist_find(r, id) != SIZE_MAX;
}
static inline hist *node_hist_at(const nroom *r, size_t i)
{
    return &r->hblk[i / NODE_HIST_BLOCK][i % NODE_HIST_BLOCK];
}
static inline const uint8_t *node_hist_author(const nroom *r, const hist *h)
{
    return r->authors[h->author].id;
}
KITH_WUR int node_load(kith_node *n);
/* Process an envelope for a room: dedup, open, order, deliver. from_conn is
 * NULL when it comes from our own log or our own send. 0 when accepted or a
 * harmless duplicate; KITH_ECRYPTO / KITH_EPROTO when the sender is at fault. */
KITH_WUR int node_accept_envelope(
    kith_node *n, nroom *r, const uint8_t *env, size_t len, bool persist, bool notify);
nroom *node_room_by_tag(const kith_node *n, const uint8_t tag[KITH_ROOM_TAG_LEN]);
KITH_WUR int node_apply_op(
    kith_node *n, nroom *r, const uint8_t *op, size_t len, bool persist, bool notify);
/* The name a member chose (its latest nick message, else the one it was
 * added with); "?" when unknown. */
const char *node_nick_of(const kith_node *n, const nroom *r, const uint8_t id[KITH_ID_LEN]);
/* What to show for a member: the chosen name, with a fingerprint suffix
 * when it could be taken for another's (proto 5.7). Valid until the next
 * change of names in the room. */
const char *node_display(const kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN]);
/* A member's chosen name changed (a nick message): its display name and
 * those of the names it now or before could be taken for. */
void node_names_renamed(const kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN]);
author_st *node_author(kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN], bool create);
bool node_is_member(const nroom *r, const uint8_t id[KITH_ID_LEN]);
void node_refresh_tag(kith_node *n, nroom *r);
/* An op we authored (already applied): log it, send it to the room, and
 * tell the client. */
KITH_WUR int node_publish_op(kith_node *n, nroom *r, const kith_buf *op);
/* Safety number as 6 groups of 5 digits (proto 5.4). */
void node_safety_string(const nroom *r, char out[32]);
/* A peer that is no longer a member syncs with us: send it the log up to
 * the op that removed it, so its node can say so and stop. */
void node_tell_removed(kith_node *n, struct nconn *c, nroom *r);
/* Log, broadcast and announce an op we authored (already applied). */
KITH_WUR int node_publish_op(kith_node *n, nroom *r, const kith_buf *op);
/* Rekey when the room needs it and we are the one to (or anyone: a fallback). */
void node_maybe_rekey(kith_node *n, nroom *r, bool anyone);
/* Timer: if a needed rekey has not come from the member due to do it
 * (offline?), any member does it after a while. */
void node_membership_tick(kith_node *n, uint64_t now);
/* A peer's SYNC: note how far ahead it is; a big backlog starts a catch-up. */
void node_catchup_sync(kith_node *n, nroom *r, const kith_frame *f);
/* Timer: end a catch-up that made no progress for a while. */
void node_catchup_tick(kith_node *n, uint64_t now);

/* node_addr.c: signed, expiring address records */
#define NODE_ADDR_TTL_MS (24ull * 3600 * 1000)
#define NODE_DEAD_AFTER_FAILS 6 /* then the address is forgotten until a new record */
void node_addr_tick(kith_node *n);
void node_addr_send_all(kith_node *n, struct nconn *c);
KITH_WUR int node_addr_frame(kith_node *n, struct nconn *c, const kith_frame *f);

/* node_gossip.c */
/* A message just delivered: push it to eager links, announce it to lazy ones. */
void node_gossip_relay(kith_node *n, nroom *r, size_t author_idx, const uint8_t id[KITH_HASH_LEN],
    const uint8_t *env, size_t len, const struct nconn *from);
/* A duplicate arrived on `from`: prune that link for the room. */
void node_gossip_duplicate(kith_node *n, nroom *r, struct nconn *from);
KITH_WUR int node_gossip_frame(kith_node *n, struct nconn *c, nroom *r, const kith_frame *f);
void node_gossip_want(
    kith_node *n, nroom *r, const uint8_t id[KITH_HASH_LEN], uint64_t conn, uint64_t delay_ms);
void node_gossip_flush(kith_node *n);
void node_gossip_tick(kith_node *n);
/* node_room.c, used by gossip */
void node_release_held(kith_node *n, nroom *r);

/* node_net.c */
void node_refresh_dials(kith_node *n);
#define NODE_DIAL_RESCAN_MS 10000
/* The dial for a member (not a static peer); with create, a new one when
 * there is none (NULL when out of memory). */
dial_st *node_dial_of(kith_node *n, const uint8_t member[KITH_ID_LEN], bool create);
KITH_WUR int node_add_static_peer(kith_node *n, const char *addr);
void node_broadcast(kith_node *n, nroom *r, const kith_buf *frame, const nconn *except);
KITH_WUR int node_conn_send(kith_node *n, nconn *c, const kith_buf *frame);
bool node_peer_online(const kith_node *n, const uint8_t id[KITH_ID_LEN]);
void node_conn_free(kith_node *n, nconn *c);
void node_send_sync(kith_node *n, nconn *c, nroom *r);
/* SYNC for room r on every established link to a member of it. */
void node_sync_links(kith_node *n, nroom *r);
nconn *node_conn_open(kith_node *n, bool outbound);
nconn *node_conn_find(const kith_node *n, uint64_t id);
void node_send_join_err(
    kith_node *n, nconn *c, const uint8_t room_id[KITH_HASH_LEN], const char *reason);
/* Add the peer of c to r without an invite check (the caller did its own):
 * sign and spread the add op, answer JOIN_OK and sync. *admitted is false
 * when the room refused (the peer got a JOIN_ERR). */
KITH_WUR int node_admit(kith_node *n, nconn *c, nroom *r, const uint8_t cert[KITH_SIG_LEN],
    const char *nick, const char *addr, const uint8_t *invite_id, bool *admitted);

/* node_lan.c */
KITH_WUR int node_lan_new(kith_node *n);
void node_lan_free(kith_node *n);
void node_lan_timer(kith_node *n, uint64_t now);
void node_lan_established(kith_node *n, nconn *c);
bool node_lan_knocking(const kith_node *n, uint64_t conn); /* a knock waits on conn */
KITH_WUR int node_lan_on_knock(kith_node *n, nconn *c, const kith_frame *f);
/* A LAN dial's responder proved its id in handshake message 2: 0 when it is
 * a current member of a room whose tag made us dial, else KITH_EPERM (the
 * sender is logged and not dialed again for a while). */
KITH_WUR int node_lan_check_responder(kith_node *n, const nconn *c, const uint8_t id[KITH_ID_LEN]);

#endif
