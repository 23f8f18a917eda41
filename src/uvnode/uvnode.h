/* uvnode: the libuv driver of the sans-I/O node. It owns the uv_loop, the
 * TCP listener and connections, the node's one timer, SIGINT/SIGTERM, and the
 * group commit (kith_node_flush once per loop turn in which anything
 * happened). It turns libuv callbacks into kith_node_* events and executes the
 * actions kith_node_poll hands back; events meant for the person go to the
 * hooks (the line client). It decides nothing about peers: reconnects,
 * backoff and which addresses to dial are the node's. */
#ifndef KITH_UVNODE_H
#define KITH_UVNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "kith/env.h"
#include "kith/err.h"
#include "kith/node.h"

typedef struct kith_uvnode kith_uvnode;

/* Per-connection cap on bytes handed to the kernel but not yet written: a
 * peer that stops reading can't make us buffer without bound. */
#define KITH_UVNODE_MAX_UNSENT (8u << 20)
/* Flow control for local input (docs/decisions.md "Backpressure on local
 * input"): a source of new messages (the line client's stdin) pauses while
 * some link has more than KITH_UVNODE_BACKLOG_HIGH bytes waiting and resumes
 * below KITH_UVNODE_BACKLOG_LOW, so a fast local sender is slowed to what
 * its peers read instead of reaching KITH_UVNODE_MAX_UNSENT, which closes
 * the link as a peer that is not reading. */
#define KITH_UVNODE_BACKLOG_HIGH (KITH_UVNODE_MAX_UNSENT / 4)
#define KITH_UVNODE_BACKLOG_LOW (KITH_UVNODE_MAX_UNSENT / 16)
/* Longest pause of a local input: a peer that reads nothing for this long
 * gets the input again, whose writes then reach KITH_UVNODE_MAX_UNSENT and
 * close its link, so an input is never stuck. */
#define KITH_UVNODE_HOLD_MAX_MS 30000
/* How often a paused input's backlog is looked at. */
#define KITH_UVNODE_HOLD_CHECK_MS 10
/* A link with more than this many bytes waiting is slow: the node relays
 * others' messages to it as IHAVE announcements, not eagerly
 * (kith_node_conn_slow); it is fast again below KITH_UVNODE_BACKLOG_LOW. */
#define KITH_UVNODE_SLOW (KITH_UVNODE_MAX_UNSENT / 8)
/* Cap on open connections (inbound and outbound): an fd-exhaustion guard. */
#define KITH_UVNODE_MAX_CONNS 512
/* "host:port" and "[v6]:port" as text; enough for any DNS name. */
#define KITH_UVNODE_ADDR_MAX 300

typedef struct kith_uvnode_hooks {
    void *ud;
    /* An event for the person. The driver hands a private copy (strings
     * NUL-terminated, text_len always set), valid for the call; the hook may
     * call kith_node_* (queries and commands) and kith_uvnode_kick. */
    void (*event)(void *ud, const kith_event *ev);
    /* Once, after the actions queued by kith_node_new (rooms loaded from the
     * store) were executed and before the loop first waits. */
    void (*ready)(void *ud);
    /* Once, when shutdown starts: close the handles the hook owner opened on
     * the loop, and call the node no more. */
    void (*shutdown)(void *ud);
} kith_uvnode_hooks;

/* The node (and env) must outlive the driver. Nothing is started yet. node
 * may be NULL until kith_uvnode_set_node (e.g. to listen first and put the
 * bound port in the node's config); it must be set before kith_uvnode_run. */
KITH_WUR int kith_uvnode_new(const kith_env *env, kith_node *node, kith_uvnode **out);
void kith_uvnode_set_node(kith_uvnode *u, kith_node *node);
/* Closes every handle still open, runs the loop until they are gone, closes
 * the loop and frees. Does not free the node. NULL is fine. */
void kith_uvnode_free(kith_uvnode *u);

void kith_uvnode_set_hooks(kith_uvnode *u, const kith_uvnode_hooks *hooks);
/* More hook sets (the control socket, the IRC gateway) that see every event,
 * ready and shutdown after the main hooks, in the order added. KITH_ETOOBIG
 * past KITH_UVNODE_MAX_HOOKS. */
#define KITH_UVNODE_MAX_HOOKS 4
KITH_WUR int kith_uvnode_add_hooks(kith_uvnode *u, const kith_uvnode_hooks *hooks);
uv_loop_t *kith_uvnode_loop(kith_uvnode *u);

/* Listen on a numeric "a.b.c.d:port" or "[v6]:port". On failure, err gets a
 * line for the person, e.g. "cannot listen on 127.0.0.1:7415: address
 * already in use", and KITH_EINVAL (bad address) or KITH_EIO is returned. */
KITH_WUR int kith_uvnode_listen(kith_uvnode *u, const char *hostport, char *err, size_t errcap);
/* LAN discovery (proto/kith.md §8): UDP multicast on port 7416, groups
 * 239.255.74.16 (IPv4) and ff02::6b69:7468 (IPv6 link-local), one socket
 * per family bound with SO_REUSEADDR (several nodes on one host all hear),
 * the group joined on every interface that is up and not loopback. Beacons
 * are heard in both families; KITH_ACT_BEACON goes out on every interface
 * in each family the node can be dialed in: listening on 0.0.0.0, IPv4 on
 * all; on [::], IPv6 on all and IPv4 too when the listener is dual-stack;
 * on one address, only the interface that has it (IPv6 only if it is
 * link-local: beacons leave from the link-local address). When listening
 * on loopback, beacons are heard but none are sent (nobody else could
 * connect to us). Interfaces are looked at again every 10 s, so one that
 * comes up later (or comes back) is joined then. Call after
 * kith_uvnode_listen. On failure err says why (once) and the driver goes on
 * without LAN. */
KITH_WUR int kith_uvnode_lan_start(kith_uvnode *u, char *err, size_t errcap);

#define KITH_UVNODE_LAN_PORT 7416
#define KITH_UVNODE_LAN_MAX_IFS 16
typedef struct kith_uvnode_lan_opts {
    uint16_t port; /* UDP port; 0: KITH_UVNODE_LAN_PORT */
    bool loopback; /* tests: loopback interfaces count, and beacons are sent
                      while listening on loopback */
} kith_uvnode_lan_opts;
KITH_WUR int kith_uvnode_lan_start_opts(
    kith_uvnode *u, const kith_uvnode_lan_opts *opts, char *err, size_t errcap);
/* Interfaces of one family the group was joined on (or, with sending,
 * that beacons go out on); 0 when that family's socket is not open. */
size_t kith_uvnode_lan_interfaces(const kith_uvnode *u, bool v6, bool sending);
/* Look at the interfaces now rather than at the next 10 s tick (tests). */
void kith_uvnode_lan_rescan(kith_uvnode *u);
/* The bound address as text ("127.0.0.1:7415"), "" when not listening. */
/* The most bytes waiting to be written to any one connection (handed to
 * libuv and not yet written, plus this loop turn's frames): 0 when every
 * link is keeping up. */
size_t kith_uvnode_backlog(const kith_uvnode *u);

/* A local input that can be paused (stdin, a control connection, an IRC
 * client): the owner embeds it and sets resume; the rest is the driver's. */
typedef struct kith_uvnode_pause {
    void (*resume)(struct kith_uvnode_pause *h);
    struct kith_uvnode_pause *next;
    uint64_t since_ms;
    bool held;
} kith_uvnode_pause;
/* Call after feeding what an input read (it may have queued messages).
 * True when some link has more than the high mark (KITH_UVNODE_BACKLOG_HIGH)
 * waiting: the caller stops reading, and h->resume(h) is called once when
 * the backlog is under the low mark (KITH_UVNODE_BACKLOG_LOW) or after
 * KITH_UVNODE_HOLD_MAX_MS. False: go on reading. Also true, without a
 * second resume, when h is held already. */
bool kith_uvnode_hold(kith_uvnode *u, kith_uvnode_pause *h);
/* Forget h without resuming it (its input is closing). Safe when not held. */
void kith_uvnode_release(kith_uvnode *u, kith_uvnode_pause *h);
/* Tests: other marks for kith_uvnode_hold and slow links (0 keeps one). */
void kith_uvnode_set_marks(kith_uvnode *u, size_t high, size_t low, size_t slow);
const char *kith_uvnode_listen_addr(const kith_uvnode *u);

/* Run until kith_uvnode_stop (or a signal) finished. Returns 0, or 1 when the
 * final flush failed. */
int kith_uvnode_run(kith_uvnode *u);
/* Clean shutdown: flush the node, execute what it still asks for, then close
 * every handle. Safe to call more than once and from any callback. */
void kith_uvnode_stop(kith_uvnode *u);
/* Tell the driver that its user called into the node: the actions are
 * executed now and the next loop turn flushes. */
void kith_uvnode_kick(kith_uvnode *u);

/* Split "host:port" / "[v6]:port" (pure). host gets the host without
 * brackets; port must be 1..65535 unless allow_zero. KITH_EINVAL otherwise. */
KITH_WUR int kith_uvnode_split_addr(
    const char *s, char *host, size_t hostcap, uint16_t *port, bool allow_zero);

/* Signature checks on worker threads: fills kith_env.verify_many, so a node
 * checks the signatures of a run of incoming messages on every core
 * (src/uvnode/verify.c; docs/internals/uvnode.md). threads: workers beside
 * the calling thread, 0 -> one less than the CPUs; at most
 * KITH_VERIFIER_MAX_THREADS. Install into the env before kith_node_new;
 * free after kith_node_free. On a one-CPU machine it installs nothing. */
#define KITH_VERIFIER_MAX_THREADS 7
typedef struct kith_verifier kith_verifier;
KITH_WUR int kith_verifier_new(size_t threads, kith_verifier **out);
void kith_verifier_install(kith_verifier *v, kith_env *env);
size_t kith_verifier_threads(const kith_verifier *v);
void kith_verifier_free(kith_verifier *v); /* NULL is fine */

#endif
