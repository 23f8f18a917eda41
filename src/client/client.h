/* client: the line client. Reads commands and chat lines from stdin (a
 * terminal or a pipe, line by line, same behaviour), calls the node, and
 * prints one line per event on stdout in the formats of the command-line
 * contract (docs/internals/client.md). The parser, the line splitter and the
 * formatters are pure functions (no I/O) so tests can hit them directly; the
 * rest ties them to the libuv driver. */
#ifndef KITH_CLIENT_H
#define KITH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"
#include "kith/node.h"

#define KITH_VERSION "0.1.0"
/* Longest input line accepted, newline excluded. */
#define KITH_CLIENT_LINE_MAX 16384
/* Longest nick accepted from the command line or /nick (bytes). */
#define KITH_CLIENT_NICK_MAX 32
#define KITH_CLIENT_HISTORY_DEFAULT 20
#define KITH_CLIENT_HISTORY_MAX 10000
/* Characters of a message quoted after a reaction ("to alice: \"hi…\""). */
#define KITH_CLIENT_SNIPPET 40
/* Hex digits of the short message ids /history ... ids shows. */
#define KITH_CLIENT_SHORT_ID 6

/* ---- commands (pure) ---- */

enum kith_cmd_kind {
    KITH_CMD_EMPTY = 0, /* nothing to do */
    KITH_CMD_SAY, /* plain line (or //escaped): arg is the text */
    KITH_CMD_CREATE,
    KITH_CMD_INVITE, /* arg optional */
    KITH_CMD_JOIN,
    KITH_CMD_ROOMS,
    KITH_CMD_SWITCH,
    KITH_CMD_WHO,
    KITH_CMD_NICK,
    KITH_CMD_ME,
    KITH_CMD_HISTORY, /* count */
    KITH_CMD_HELP, /* arg optional: command name without '/' */
    KITH_CMD_QUIT,
    KITH_CMD_KICK, /* membership (issue 5): arg is a member */
    KITH_CMD_BAN,
    KITH_CMD_UNBAN,
    KITH_CMD_OP,
    KITH_CMD_DEOP,
    KITH_CMD_VOICE,
    KITH_CMD_TOPIC, /* arg optional: the new topic */
    KITH_CMD_LEAVE,
    KITH_CMD_REKEY,
    KITH_CMD_VERIFY,
    KITH_CMD_REVOKE, /* arg optional: a code */
    KITH_CMD_INVALID, /* error holds the whole "! ..." line */
    KITH_CMD_LAN, /* arg optional: open, knock or off (for the current room) */
    KITH_CMD_KNOCK,
    KITH_CMD_ADMIT,
    KITH_CMD_PEERS,
    KITH_CMD_STATS, /* the node's gossip counters, for tools/bench */
    KITH_CMD_SEARCH, /* arg: the text to look for */
    /* Acting on a message: count = N (the Nth last; 1 by default) or ref =
     * a short id; arg = the new text or the emoji (optional for unreact). */
    KITH_CMD_EDIT,
    KITH_CMD_DELETE,
    KITH_CMD_REACT,
    KITH_CMD_UNREACT,
};

typedef struct kith_cmd {
    int kind;
    const char *arg; /* points into the parsed line; not NUL-terminated */
    size_t arg_len;
    size_t count;
    const char *ref; /* /edit etc.: a message id prefix (hex), not NUL-terminated */
    size_t ref_len;
    bool ids; /* /history ... ids */
    char error[192];
} kith_cmd;

/* Parse one input line (no newline). Arguments are trimmed of surrounding
 * blanks; /join takes one whitespace-free token. */
void kith_client_parse(const char *line, size_t len, kith_cmd *out);

/* Help: all commands (cmd NULL or "") or one ("join" or "/join"). Lines are
 * separated by '\n', each starting with "* " (or "! " for an unknown
 * command). Returns the length written (NUL-terminated, truncated to cap). */
size_t kith_client_help(const char *cmd, size_t cmd_len, char *out, size_t cap);

/* ---- text (pure) ---- */

/* Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF. */
bool kith_client_utf8_valid(const char *s, size_t len);
/* Copy text that came from someone else into out for display: invalid UTF-8,
 * C0/C1 controls, DEL and bidi overrides become '?', tab becomes a space, so
 * a peer can neither forge extra lines nor drive the terminal. Stops before a
 * character that would not fit. Returns bytes written (out NUL-terminated). */
size_t kith_client_sanitize(char *out, size_t cap, const char *in, size_t len);

/* "[HH:MM] <nick> text", "[HH:MM] * nick text", with "#room " after the
 * time when show_room; msg_type 3 (nick change) is "[HH:MM] * nick is now known as
 * text". HH:MM is local time of ev->wall_ms. Returns 0 for events that are
 * not displayable messages. */
size_t kith_client_format_message(const kith_event *ev, bool show_room, char *out, size_t cap);
/* Lines for JOIN, NICK, PEER_UP/DOWN, ERROR, INFO, and MESSAGE (as above).
 * 0 when the event has no line of its own (SENT, ROOM, unknown). */
size_t kith_client_format_event(const kith_event *ev, bool show_room, char *out, size_t cap);

/* Nick rules for the command line and /nick: 1..KITH_CLIENT_NICK_MAX bytes
 * of UTF-8 without controls or whitespace. */
bool kith_client_nick_valid(const char *nick, size_t len);

/* The "settings" blob: lines "key=value\n"; only "nick" is known. Parse
 * copies the nick into out (NUL-terminated), KITH_ENOENT when absent. */
KITH_WUR int kith_client_settings_nick(const uint8_t *data, size_t len, char *out, size_t cap);
/* Returns the length written, or 0 when it does not fit. */
size_t kith_client_settings_format(const char *nick, char *out, size_t cap);

/* ---- line splitting (pure) ---- */

/* Called per complete line (without "\n" or "\r\n"); too_long when the line
 * was over KITH_CLIENT_LINE_MAX and was dropped whole. Non-zero return stops
 * the splitter (e.g. after /quit). */
typedef int (*kith_client_line_cb)(void *ud, const char *line, size_t len, bool too_long);

typedef struct kith_client_lines {
    char buf[KITH_CLIENT_LINE_MAX + 2];
    size_t len;
    bool overlong; /* discarding until the next newline */
    bool stopped;
} kith_client_lines;

void kith_client_lines_init(kith_client_lines *l);
/* Returns the callback's non-zero value when it stopped, else 0. */
int kith_client_lines_feed(
    kith_client_lines *l, const char *data, size_t len, kith_client_line_cb cb, void *ud);
/* End of input: a last line without newline is still a line. */
int kith_client_lines_eof(kith_client_lines *l, kith_client_line_cb cb, void *ud);

/* ---- the running client ---- */

typedef struct kith_client kith_client;
struct kith_uvnode;
struct kith_store;

/* Registers itself as the driver's hooks. store (may be NULL) receives the
 * "settings" blob when /nick succeeds. */
KITH_WUR int kith_client_new(const kith_env *env, kith_node *node, struct kith_uvnode *uv,
    struct kith_store *store, kith_client **out);
/* Free after kith_uvnode_free (the stdin handle lives in the client). */
void kith_client_free(kith_client *c);
/* Banner: version, nick, fingerprint, listen (and announce) address. */
void kith_client_banner(kith_client *c, const char *listen, const char *announce);
/* Input history file for line editing (HOME/history); before start. */
void kith_client_set_history_file(kith_client *c, const char *path);
/* Start reading stdin: through libedit (term.h) when stdin and stdout are
 * terminals, else plain lines. */
KITH_WUR int kith_client_start(kith_client *c);
/* One input line, exactly as if typed (for tests and the driver). Returns 1
 * when the line asked to quit. */
int kith_client_line(kith_client *c, const char *line, size_t len);
/* Print a line on stdout (flushed). */
void kith_client_print(const char *line);
/* Send the client's output lines to sink instead of stdout (NULL: back to
 * stdout). The node without a terminal sends them to the control socket. */
typedef void (*kith_client_sink_fn)(void *ud, const char *line);
void kith_client_set_sink(kith_client *c, kith_client_sink_fn sink, void *ud);

/* The i-th command's name (no '/'), NULL past the last: for completion. */
const char *kith_client_command_name(size_t i);

/* Decode one code point at s (n > 0 bytes). Returns its length, or 0 when
 * the bytes are not valid UTF-8 (overlong, surrogate, past U+10FFFF). */
size_t kith_client_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
