/* remote: the client side of the control socket (docs/control.md). What
 * `kith` runs when a node is already running with the home (attach), and
 * the one-shot commands for scripts: `kith send`, `kith me`, `kith tail`,
 * `kith stop`. Plain POSIX (poll, blocking sockets): no node, no store, no
 * identity in this process. Every function returns a process exit code
 * (KITH_EXIT_* in control.h) and prints errors on stderr as "! text". */
#ifndef KITH_REMOTE_H
#define KITH_REMOTE_H

#include <stdbool.h>

/* Connect and read the greeting. Returns the socket, or -1 when no node
 * answers at path (no file, stale file, refused). */
int kith_remote_connect(const char *path);
/* Is a node answering at path? */
bool kith_remote_running(const char *path);

/* Interactive: stdin lines go to the node's line client, its output comes
 * out on stdout; /quit or end of input detaches. fd from
 * kith_remote_connect (closed here). On a terminal the lines are edited
 * with libedit (term.h), input history in history_path (may be NULL). */
int kith_remote_attach(int fd, const char *history_path);
/* Send text (an action when action is set) and return once it is durable. */
int kith_remote_send(const char *path, const char *room, const char *text, bool action);
/* Print the room's new messages as they come ("*" for every room), as
 * text lines or JSON lines; returns when the node stops. */
int kith_remote_tail(const char *path, const char *room, bool json);
/* Stop the node. */
int kith_remote_stop(const char *path);

#endif
