/* control: the node's control socket, a Unix socket (mode 0600) in the home
 * directory through which `kith` attaches to a node that runs without a
 * terminal (`kith node`) and scripts run one-shot commands (`kith send`,
 * `kith tail`, `kith stop`). It is I/O, so it lives beside the line client
 * on the driver's loop, not in the sans-I/O node. The protocol is in
 * docs/control.md; the client side (what `kith send` etc. run) is remote.c.
 *
 * The JSON and command-line helpers are pure functions so tests can hit
 * them without a loop. */
#ifndef KITH_CONTROL_H
#define KITH_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"
#include "kith/node.h"

/* Protocol version in the greeting "kith-control 1". */
#define KITH_CONTROL_VERSION 1
/* File name of the socket in the home directory. */
#define KITH_CONTROL_SOCK "control.sock"
/* At most this many control connections at once. */
#define KITH_CONTROL_MAX_CONNS 64
/* Bytes queued for one connection that does not read; past it, it is cut. */
#define KITH_CONTROL_MAX_UNSENT (4u << 20)

/* Exit codes of the one-shot commands, also carried in "error N text". */
enum {
    KITH_EXIT_OK = 0,
    KITH_EXIT_RUNTIME = 1,
    KITH_EXIT_USAGE = 2,
    KITH_EXIT_NO_NODE = 3,
    KITH_EXIT_NO_ROOM = 4,
};

typedef struct kith_control kith_control;
struct kith_uvnode;
struct kith_client;

/* Where the socket of the node with this home lives: HOME/control.sock, or,
 * when that path is too long for a Unix socket (108 bytes),
 * $XDG_RUNTIME_DIR/kith-HASH.sock with HASH from the home's path. KITH_ETOOBIG
 * when neither fits. */
KITH_WUR int kith_control_path(const char *home, char *out, size_t cap);

/* Bind and listen (a stale socket file is replaced: the caller holds the
 * home's lock, so no other node owns it), add hook sets to the driver, and
 * route the line client's output (client may be NULL) to attached sessions
 * as well as stdout. err gets a line for the person on failure; *out may be
 * set even then, and is freed with kith_control_free as usual. */
KITH_WUR int kith_control_new(const kith_env *env, kith_node *node, struct kith_uvnode *uv,
    struct kith_client *client, const char *path, char *err, size_t errcap, kith_control **out);
/* After kith_uvnode_free. Removes the socket file. NULL is fine. */
void kith_control_free(kith_control *ctl);

/* One event as a JSON object (no newline): "event" (message, join, nick,
 * peer_up, peer_down, error, info, room, sent), "time" (UTC ISO 8601),
 * "ts" (ms), "room", "room_id", "nick", "author" (fingerprint), "type"
 * (text, action, nick), "text", "seq", "self", "history". Text is kept as
 * sent (escaped for JSON; invalid UTF-8 becomes U+FFFD). Returns the length,
 * 0 when it did not fit. */
size_t kith_control_json_event(const kith_event *ev, char *out, size_t cap);

#endif
