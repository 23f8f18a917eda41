/* demo: `kith demo`, kith for a person alone. The user's node runs in a
 * temporary home with a room "demo"; two or three bots, each the same kith
 * binary as `kith demo-bot` in its own temporary home on a free loopback
 * port, join it with an invite and answer, so joins, gossip, reactions and
 * history catch-up show within seconds. Everything lives under one
 * directory made with mkdtemp in $TMPDIR, which is removed, bots and all,
 * when the demo ends (docs/decisions.md, "kith demo").
 *
 * Two halves: the bot (hooks on a bot's own driver, deciding what it says)
 * and the host (the user's process: the temporary directory and the bot
 * processes). */
#ifndef KITH_DEMO_H
#define KITH_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kith/env.h"
#include "kith/node.h"

struct kith_uvnode;

#define KITH_DEMO_BOTS 3
#define KITH_DEMO_ROOM "demo"

/* ---- the bot, inside a `kith demo-bot` process ---- */

typedef struct kith_demo_bot kith_demo_bot;
/* Bot number `which` (0..KITH_DEMO_BOTS-1: a different manner each) joins
 * with `code` once the driver is ready, then answers the room's admin (the
 * person running the demo) and nobody else, so bots never talk in a loop. */
KITH_WUR int kith_demo_bot_new(const kith_env *env, kith_node *node, struct kith_uvnode *uv,
    const char *code, int which, kith_demo_bot **out);
void kith_demo_bot_free(kith_demo_bot *b);
/* The bots' display names, by number. */
const char *kith_demo_bot_nick(int which);

/* ---- the host, in the user's `kith demo` process ---- */

typedef struct kith_demo {
    char dir[4096]; /* the temporary directory holding every home */
    pid_t pid[KITH_DEMO_BOTS];
    int nbots;
} kith_demo;

/* Make the temporary directory ($TMPDIR or /tmp, "kith-demo-XXXXXX", mode
 * 0700) and the user's home inside it (written to home). */
KITH_WUR int kith_demo_prepare(kith_demo *d, char *home, size_t cap);
/* Start the bots (this binary, /proc/self/exe) with the invite code. */
KITH_WUR int kith_demo_spawn(kith_demo *d, const char *code, int log_level);
/* Stop every bot (SIGTERM, then SIGKILL after a few seconds), wait for
 * each, and remove the directory. Safe to call twice. */
void kith_demo_finish(kith_demo *d);

#endif
