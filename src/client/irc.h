/* irc: an IRC gateway into the node, so irssi, WeeChat and other IRC
 * clients can use kith unmodified. It listens on 127.0.0.1 only, wants a
 * password (generated, kept in the home), and maps rooms to #channels.
 * It speaks the part of RFC 1459/2812 and IRCv3 those clients need:
 * CAP LS 302 with server-time and message-tags, registration (PASS, NICK,
 * USER, 001-005), JOIN/PART, PRIVMSG/NOTICE, CTCP ACTION as /me, TOPIC,
 * NAMES, WHO, MODE, PING/PONG, QUIT, history replayed on JOIN (with @time
 * tags when server-time was negotiated) and a "*kith" service nick for what
 * IRC has no command for (invite, join by code, verify). docs/irc.md.
 *
 * The line parser and the name mappings are pure functions (no I/O), fuzzed
 * by tests/fuzz/fuzz_ircline.c. */
#ifndef KITH_IRC_H
#define KITH_IRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"
#include "kith/node.h"

/* RFC 1459: 512 bytes with CRLF for the message; IRCv3 message-tags adds
 * up to 8191 bytes of tags (with '@' and the space) in front. */
#define KITH_IRC_BODY_MAX 512
#define KITH_IRC_TAGS_MAX 8191
#define KITH_IRC_LINE_MAX (KITH_IRC_BODY_MAX + KITH_IRC_TAGS_MAX)
#define KITH_IRC_PARAMS_MAX 15
#define KITH_IRC_CMD_MAX 32
/* Channel and nick lengths we produce and accept. */
#define KITH_IRC_CHAN_MAX 64
#define KITH_IRC_NICK_MAX 32
#define KITH_IRC_MAX_CONNS 16
#define KITH_IRC_MAX_UNSENT (1u << 20)
/* Blob in the home holding the password. */
#define KITH_IRC_PASS_BLOB "irc-password"
#define KITH_IRC_PASS_LEN 24
/* Messages replayed when a channel is joined. */
#define KITH_IRC_REPLAY 50

/* One parsed line. Pointers go into the parsed buffer (not NUL-terminated);
 * command is upper-cased and NUL-terminated. */
typedef struct kith_irc_msg {
    const char *tags;
    size_t tags_len;
    const char *prefix;
    size_t prefix_len;
    char command[KITH_IRC_CMD_MAX + 1];
    size_t nparams;
    const char *params[KITH_IRC_PARAMS_MAX];
    size_t param_len[KITH_IRC_PARAMS_MAX];
} kith_irc_msg;

/* Parse one line without its CRLF. KITH_EPROTO for an empty command, a NUL,
 * CR or LF inside, or a bad command; KITH_ETOOBIG when the tags or the body
 * are over the caps. Params past the 15th are merged into the 15th. */
KITH_WUR int kith_irc_parse(const char *line, size_t len, kith_irc_msg *out);

/* "#" + a room name made safe for IRC: spaces, commas, controls, BEL and
 * ':' become '_', cut to KITH_IRC_CHAN_MAX bytes on a character boundary;
 * a room with no name is "#" + 8 hex digits of its id. */
size_t kith_irc_channel(
    const char *room_name, const uint8_t room_id[KITH_ROOM_ID_LEN], char *out, size_t cap);
/* A kith nick as an IRC nick: ASCII letters, digits and []\`_^{|}- kept,
 * anything else '_'; must not start with a digit or '-'; empty -> "anon". */
size_t kith_irc_nick(const char *nick, char *out, size_t cap);
/* Case-insensitive (ascii) equality of two names. */
bool kith_irc_name_eq(const char *a, size_t alen, const char *b, size_t blen);

/* A fresh password: KITH_IRC_PASS_LEN characters from [A-Za-z0-9_-] (irssi
 * can't send a password with a space in it). out gets a NUL. */
void kith_irc_gen_password(const kith_env *env, char out[KITH_IRC_PASS_LEN + 1]);

typedef struct kith_irc kith_irc;
struct kith_uvnode;
struct kith_store;

/* Listen on 127.0.0.1:port, with the password kept in the store's blob
 * (created on first use). The password is copied into pass_out (for the
 * banner). err gets a line for the person on failure; *out may be set even
 * then and is freed with kith_irc_free. */
KITH_WUR int kith_irc_new(const kith_env *env, kith_node *node, struct kith_uvnode *uv,
    struct kith_store *store, uint16_t port, char pass_out[KITH_IRC_PASS_LEN + 1], char *err,
    size_t errcap, kith_irc **out);
/* After kith_uvnode_free. NULL is fine. */
void kith_irc_free(kith_irc *irc);

#endif
