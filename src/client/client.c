/* client: the line client (see client.h and docs/internals/client.md).
 * Layout: pure helpers first (UTF-8, sanitizing, parsing, formatting, the
 * line splitter, settings), then the running client: stdin on the driver's
 * loop, command dispatch to kith_node_*, and the driver's event hook.
 *
 * Everything a peer controls (nicks, room names, message text) goes through
 * kith_client_sanitize before it reaches the terminal: a message must not be
 * able to print a second, forged line or send escape sequences. */
#include "client/client.h"
#include "client/term.h"

#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "msg/msg.h"
#include "room/room.h"
#include "store/store.h"
#include "util/util.h"
#include "uvnode/uvnode.h"

/* The plural "s" for a count shown to people. */
#define PL(n) ((n) == 1 ? "" : "s")

/* ---- UTF-8 ---- */

size_t kith_client_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((b & 0xe0) == 0xc0) {
        len = 2;
        v = b & 0x1fu;
        min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
        len = 3;
        v = b & 0x0fu;
        min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
        len = 4;
        v = b & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

bool kith_client_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = kith_client_utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static bool cp_unsafe(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) /* C0, DEL, C1 */
        || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) /* bidi */
        || cp == 0x2028 || cp == 0x2029; /* line and paragraph separators */
}

size_t kith_client_sanitize(char *out, size_t cap, const char *in, size_t len)
{
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = kith_client_utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp_unsafe(cp)) {
            if (o + 1 >= cap)
                break;
            out[o++] = (n && cp == '\t') ? ' ' : '?';
            i += n ? n : 1;
            continue;
        }
        if (o + n >= cap)
            break;
        memcpy(out + o, p + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return o;
}

/* ---- an appender for building output lines ---- */

typedef struct outbuf {
    char *p;
    size_t cap;
    size_t len;
} outbuf;

static void ob_init(outbuf *o, char *p, size_t cap)
{
    o->p = p;
    o->cap = cap;
    o->len = 0;
    if (cap)
        p[0] = '\0';
}

static void ob_raw(outbuf *o, const char *s)
{
    size_t n = strlen(s);
    if (o->cap == 0 || o->len + 1 >= o->cap)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* Untrusted text: sanitized. */
static void ob_text(outbuf *o, const char *s, size_t n)
{
    if (o->cap == 0 || o->len + 1 >= o->cap || !s)
        return;
    o->len += kith_client_sanitize(o->p + o->len, o->cap - o->len, s, n);
}

static void ob_str(outbuf *o, const char *s)
{
    if (s)
        ob_text(o, s, strnlen(s, 4096));
}

static void ob_fmt(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_fmt(outbuf *o, const char *fmt, ...)
{
    if (o->cap == 0 || o->len + 1 >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    o->len += KITH_MIN((size_t)n, o->cap - 1 - o->len);
}

/* A short hex name for something that has no name (8 hex digits). */
static void ob_hexid(outbuf *o, const uint8_t *id)
{
    char hex[9];
    kith_hex(hex, id, 4);
    ob_raw(o, hex);
}

/* ---- command parsing ---- */

enum { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

typedef struct cmd_spec {
    const char *name;
    int kind;
    int arg;
    const char *usage;
    const char *help;
} cmd_spec;

static const cmd_spec commands[] = {
    { "create", KITH_CMD_CREATE, ARG_REQUIRED, "/create NAME", "create a room and switch to it" },
    { "invite", KITH_CMD_INVITE, ARG_OPTIONAL,
        "/invite [ROOM] [--uses N] [--expires 2h] [--for NICK]",
        "make an invite code (default: one use, 24h, the current room; --for binds it to one "
        "person's key)" },
    { "revoke", KITH_CMD_REVOKE, ARG_OPTIONAL, "/revoke [CODE|ID]",
        "revoke an invite (its code, or the id the room's system line showed: moderators and "
        "admins may revoke anyone's), or all your usable ones for the current room" },
    { "join", KITH_CMD_JOIN, ARG_REQUIRED, "/join CODE", "join a room with an invite code" },
    { "rooms", KITH_CMD_ROOMS, ARG_NONE, "/rooms",
        "list your rooms, with messages unread since you last were in each" },
    { "switch", KITH_CMD_SWITCH, ARG_REQUIRED, "/switch ROOM", "make ROOM the current room" },
    { "who", KITH_CMD_WHO, ARG_NONE, "/who", "list the members of the current room" },
    { "nick", KITH_CMD_NICK, ARG_REQUIRED, "/nick NAME", "change your display name" },
    { "me", KITH_CMD_ME, ARG_REQUIRED, "/me TEXT", "send an action to the current room" },
    { "history", KITH_CMD_HISTORY, ARG_OPTIONAL, "/history [N] [ids]",
        "show the last N messages of the current room (default 20); with ids, each message's "
        "short id (for /edit, /delete, /react)" },
    { "edit", KITH_CMD_EDIT, ARG_REQUIRED, "/edit [N|ID] TEXT",
        "replace the text of your last message (or your Nth last, or the one with that id)" },
    { "delete", KITH_CMD_DELETE, ARG_OPTIONAL, "/delete [N|ID]",
        "delete your last message (or your Nth last, or the one with that id)" },
    { "react", KITH_CMD_REACT, ARG_REQUIRED, "/react [N|ID] EMOJI",
        "react to the last message (or the Nth last, or the one with that id)" },
    { "unreact", KITH_CMD_UNREACT, ARG_OPTIONAL, "/unreact [N|ID] [EMOJI]",
        "take back your latest reaction (or those to the Nth last message, or that id)" },
    { "search", KITH_CMD_SEARCH, ARG_REQUIRED, "/search TEXT",
        "show the current room's messages containing TEXT (any case; the last 20 matches)" },
    { "kick", KITH_CMD_KICK, ARG_REQUIRED, "/kick NICK",
        "remove a member (admins; moderators for members and observers); rekeys" },
    { "ban", KITH_CMD_BAN, ARG_REQUIRED, "/ban NICK", "remove a member and bar re-adding; rekeys" },
    { "unban", KITH_CMD_UNBAN, ARG_REQUIRED, "/unban NICK", "lift a ban" },
    { "op", KITH_CMD_OP, ARG_REQUIRED, "/op NICK", "make a member an admin (admins only)" },
    { "deop", KITH_CMD_DEOP, ARG_REQUIRED, "/deop NICK", "make an admin or moderator a member" },
    { "voice", KITH_CMD_VOICE, ARG_REQUIRED, "/voice NICK", "let an observer speak (member)" },
    { "topic", KITH_CMD_TOPIC, ARG_OPTIONAL, "/topic [TEXT]",
        "show or set the room's topic (moderators and admins)" },
    { "leave", KITH_CMD_LEAVE, ARG_NONE, "/leave", "leave the current room; the others rekey" },
    { "rekey", KITH_CMD_REKEY, ARG_NONE, "/rekey", "start a new epoch key for the current room" },
    { "verify", KITH_CMD_VERIFY, ARG_REQUIRED, "/verify NICK",
        "show a member's fingerprint, to compare in person" },
    { "lan", KITH_CMD_LAN, ARG_OPTIONAL, "/lan [open|knock|off]",
        "list rooms open on the LAN, or open the current one to it (admins)" },
    { "knock", KITH_CMD_KNOCK, ARG_REQUIRED, "/knock ROOM", "ask to join a room open on the LAN" },
    { "admit", KITH_CMD_ADMIT, ARG_REQUIRED, "/admit NICK", "let in someone who knocked" },
    { "peers", KITH_CMD_PEERS, ARG_NONE, "/peers", "list connected peers and how each was found" },
    { "stats", KITH_CMD_STATS, ARG_NONE, "/stats",
        "show the node's message and byte counters (all rooms)" },
    { "help", KITH_CMD_HELP, ARG_OPTIONAL, "/help [COMMAND]", "list commands, or describe one" },
    { "quit", KITH_CMD_QUIT, ARG_NONE, "/quit", "save everything and exit" },
};

const char *kith_client_command_name(size_t i)
{
    return i < KITH_ARRAY_LEN(commands) ? commands[i].name : NULL;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static const cmd_spec *find_command(const char *name, size_t len)
{
    for (size_t i = 0; i < KITH_ARRAY_LEN(commands); i++) {
        const char *n = commands[i].name;
        if (strlen(n) != len)
            continue;
        size_t j = 0;
        while (j < len) {
            char ch = name[j];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if (ch != n[j])
                break;
            j++;
        }
        if (j == len)
            return &commands[i];
    }
    return NULL;
}

static void set_error(kith_cmd *out, const char *pre, const char *a, size_t alen, const char *post)
{
    char clean[64];
    size_t n = kith_client_sanitize(clean, sizeof clean - 4, a ? a : "", a ? alen : 0);
    if (a && n < alen)
        snprintf(clean + n, sizeof clean - n, "\xe2\x80\xa6"); /* "…": cut short */
    out->kind = KITH_CMD_INVALID;
    out->arg = NULL;
    out->arg_len = 0;
    snprintf(out->error, sizeof out->error, "%s%s%s", pre, clean, post);
}

/* "/history 50 ids", "/history ids 50", "/history ids": take the word
 * "ids" off the argument. */
static void history_ids(kith_cmd *out)
{
    const char *a = out->arg;
    size_t n = out->arg_len;
    if (!a)
        return;
    if (n >= 3 && strncasecmp(a + n - 3, "ids", 3) == 0 && (n == 3 || is_blank(a[n - 4]))) {
        out->ids = true;
        n -= 3;
    } else if (n > 3 && strncasecmp(a, "ids", 3) == 0 && is_blank(a[3])) {
        out->ids = true;
        a += 3;
        n -= 3;
    }
    while (n && is_blank(a[0]))
        a++, n--;
    while (n && is_blank(a[n - 1]))
        n--;
    out->arg = n ? a : NULL;
    out->arg_len = n;
}

/* Is a word a message reference: N (1..999) or a short id (6..64 hex)? */
static bool word_ref(const char *w, size_t n, kith_cmd *out)
{
    bool digits = n >= 1 && n <= 3, hex = n >= 6 && n <= 64;
    for (size_t k = 0; k < n; k++) {
        char ch = w[k];
        digits = digits && ch >= '0' && ch <= '9';
        hex = hex
            && ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'));
    }
    if (digits) {
        size_t v = 0;
        for (size_t k = 0; k < n; k++)
            v = v * 10 + (size_t)(w[k] - '0');
        if (v == 0)
            return false;
        out->count = v;
        return true;
    }
    if (hex) {
        out->ref = w;
        out->ref_len = n;
        return true;
    }
    return false;
}

/* /edit [N|ID] TEXT, /delete [N|ID], /react [N|ID] EMOJI, /unreact [N|ID]
 * [EMOJI]: the reference goes to count or ref, arg keeps the rest. */
static bool parse_ref(const cmd_spec *spec, kith_cmd *out)
{
    const char *a = out->arg;
    size_t n = out->arg_len, w = 0;
    while (a && w < n && !is_blank(a[w]))
        w++;
    size_t rest = w;
    while (rest < n && is_blank(a[rest]))
        rest++;
    bool more = rest < n;
    int kind = spec->kind;
    /* The first word is a reference when something follows it (or, for
     * /delete and /unreact, it is one). A text or emoji alone is just that. */
    bool took
        = a && (more || kind == KITH_CMD_DELETE || kind == KITH_CMD_UNREACT) && word_ref(a, w, out);
    if (took) {
        out->arg = more ? a + rest : NULL;
        out->arg_len = more ? n - rest : 0;
    } else if (kind == KITH_CMD_DELETE && a) {
        set_error(out, "! usage: ", spec->usage, strlen(spec->usage), "");
        return false;
    }
    /* No reference: the last message; for /unreact, our latest reaction
     * (count stays 0). */
    if (!out->count && !out->ref && kind != KITH_CMD_UNREACT)
        out->count = 1;
    bool one_word = true;
    for (size_t k = 0; k < out->arg_len; k++)
        one_word = one_word && !is_blank(out->arg[k]);
    if ((kind == KITH_CMD_EDIT || kind == KITH_CMD_REACT) && !out->arg) {
        set_error(out, "! usage: ", spec->usage, strlen(spec->usage), "");
        return false;
    }
    if ((kind == KITH_CMD_REACT || kind == KITH_CMD_UNREACT) && out->arg
        && (!one_word || out->arg_len > KITH_MSG_MAX_REACTION)) {
        set_error(out, "! usage: ", spec->usage, strlen(spec->usage),
            " (one emoji or word, at most 32 bytes)");
        return false;
    }
    return true;
}

void kith_client_parse(const char *line, size_t len, kith_cmd *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len && is_blank(line[i]))
        i++;
    if (i == len) {
        out->kind = KITH_CMD_EMPTY;
        return;
    }
    if (line[0] != '/' || (len >= 2 && line[1] == '/')) {
        /* A chat line, verbatim; "//x" escapes a leading slash. */
        out->kind = KITH_CMD_SAY;
        out->arg = line[0] == '/' ? line + 1 : line;
        out->arg_len = line[0] == '/' ? len - 1 : len;
        return;
    }
    size_t name_start = 1, name_end = 1;
    while (name_end < len && !is_blank(line[name_end]))
        name_end++;
    const char *name = line + name_start;
    size_t name_len = name_end - name_start;
    size_t a = name_end, b = len;
    while (a < b && is_blank(line[a]))
        a++;
    while (b > a && is_blank(line[b - 1]))
        b--;
    const cmd_spec *spec = find_command(name, name_len);
    if (!spec) {
        set_error(out, "! unknown command /", name, name_len, ": try /help");
        return;
    }
    if (spec->arg == ARG_REQUIRED && a == b) {
        set_error(out, "! usage: ", spec->usage, strlen(spec->usage), "");
        return;
    }
    out->kind = spec->kind;
    if (spec->arg != ARG_NONE && a < b) {
        out->arg = line + a;
        out->arg_len = b - a;
    }
    if (spec->kind == KITH_CMD_JOIN) {
        for (size_t k = 0; k < out->arg_len; k++)
            if (is_blank(out->arg[k])) {
                set_error(
                    out, "! usage: ", spec->usage, strlen(spec->usage), " (one code, no spaces)");
                return;
            }
    } else if (spec->kind == KITH_CMD_HISTORY) {
        out->count = KITH_CLIENT_HISTORY_DEFAULT;
        history_ids(out);
        if (out->arg) {
            size_t v = 0;
            bool ok = out->arg_len <= 5;
            for (size_t k = 0; ok && k < out->arg_len; k++) {
                char ch = out->arg[k];
                ok = ch >= '0' && ch <= '9';
                v = v * 10 + (size_t)(ch - '0');
            }
            if (!ok || v == 0 || v > KITH_CLIENT_HISTORY_MAX) {
                set_error(
                    out, "! usage: ", spec->usage, strlen(spec->usage), " with N from 1 to 10000");
                return;
            }
            out->count = v;
        }
    } else if (spec->kind == KITH_CMD_EDIT || spec->kind == KITH_CMD_DELETE
        || spec->kind == KITH_CMD_REACT || spec->kind == KITH_CMD_UNREACT) {
        if (!parse_ref(spec, out))
            return;
    } else if (spec->kind == KITH_CMD_HELP && out->arg && out->arg[0] == '/') {
        out->arg++;
        out->arg_len--;
    }
}

size_t kith_client_help(const char *cmd, size_t cmd_len, char *out, size_t cap)
{
    outbuf o;
    ob_init(&o, out, cap);
    if (cmd && cmd_len && cmd[0] == '/') {
        cmd++;
        cmd_len--;
    }
    if (cmd && cmd_len) {
        const cmd_spec *s = find_command(cmd, cmd_len);
        if (!s) {
            ob_raw(&o, "! no such command /");
            ob_text(&o, cmd, KITH_MIN(cmd_len, (size_t)32));
            ob_raw(&o, ": try /help");
            return o.len;
        }
        ob_fmt(&o, "* %s: %s", s->usage, s->help);
        return o.len;
    }
    ob_raw(&o, "* commands:");
    for (size_t i = 0; i < KITH_ARRAY_LEN(commands); i++)
        ob_fmt(&o, "\n*   %-16s %s", commands[i].usage, commands[i].help);
    ob_raw(&o,
        "\n* a line not starting with / is sent to the current room;"
        " start it with // to send a leading /");
    return o.len;
}

/* ---- formatting ---- */

static void ob_time(outbuf *o, uint64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000u);
    struct tm tm;
    char hhmm[8];
    if (!localtime_r(&t, &tm) || strftime(hhmm, sizeof hhmm, "%H:%M", &tm) == 0)
        ob_raw(o, "[??:??]");
    else
        ob_fmt(o, "[%s]", hhmm);
}

static void ob_nick(outbuf *o, const kith_event *ev)
{
    if (ev->nick && ev->nick[0])
        ob_str(o, ev->nick);
    else
        ob_hexid(o, ev->author);
}

static void ob_room(outbuf *o, const kith_event *ev)
{
    if (ev->room_name && ev->room_name[0])
        ob_str(o, ev->room_name);
    else
        ob_hexid(o, ev->room_id);
}

/* The start of someone's text, quoted, cut after KITH_CLIENT_SNIPPET
 * characters with "…". */
static void ob_snippet(outbuf *o, const char *s, size_t n)
{
    size_t at = 0, cps = 0;
    while (at < n && cps < KITH_CLIENT_SNIPPET) {
        uint32_t cp;
        size_t k = kith_client_utf8_decode((const unsigned char *)s + at, n - at, &cp);
        at += k ? k : 1;
        cps++;
    }
    ob_raw(o, "\"");
    ob_text(o, s, at);
    ob_raw(o, at < n ? "\xe2\x80\xa6\"" : "\"");
}

/* " to alice: \"hello…\"" for a reaction or a deleted reaction. */
static void ob_context(outbuf *o, const kith_event *ev)
{
    if (!ev->ctx_nick)
        return;
    ob_raw(o, " to ");
    ob_str(o, ev->ctx_nick);
    if (ev->ctx && ev->ctx[0]) {
        ob_raw(o, ": ");
        ob_snippet(o, ev->ctx, strnlen(ev->ctx, KITH_CLIENT_LINE_MAX));
    }
}

size_t kith_client_format_message(const kith_event *ev, bool show_room, char *out, size_t cap)
{
    outbuf o;
    ob_init(&o, out, cap);
    if (ev->type != KITH_EV_MESSAGE || ev->msg_type < 1 || ev->msg_type > 6)
        return 0;
    ob_time(&o, ev->wall_ms);
    ob_raw(&o, " ");
    if (show_room) {
        ob_raw(&o, "#");
        ob_room(&o, ev);
        ob_raw(&o, " ");
    }
    size_t tl = ev->text ? ev->text_len : 0;
    switch (ev->msg_type) {
    case 1:
        ob_raw(&o, "<");
        ob_nick(&o, ev);
        ob_raw(&o, "> ");
        break;
    case 4: /* edit */
        ob_raw(&o, "* ");
        ob_nick(&o, ev);
        ob_raw(&o, " edited: ");
        break;
    case 5: /* delete: of a message, or taking back a reaction */
        ob_raw(&o, "* ");
        ob_nick(&o, ev);
        if (ev->target_type == 6) {
            ob_raw(&o, " took back ");
            ob_text(&o, ev->text, tl);
            ob_context(&o, ev);
        } else {
            ob_raw(&o, " deleted a message");
        }
        return o.len;
    case 6: /* reaction */
        ob_raw(&o, "* ");
        ob_nick(&o, ev);
        ob_raw(&o, " reacted ");
        ob_text(&o, ev->text, tl);
        ob_context(&o, ev);
        return o.len;
    default:
        ob_raw(&o, "* ");
        ob_nick(&o, ev);
        ob_raw(&o, ev->msg_type == 3 ? " is now known as " : " ");
        break;
    }
    if (ev->deleted) {
        ob_raw(&o, "[message deleted]");
        return o.len;
    }
    ob_text(&o, ev->text, tl);
    if (ev->edited)
        ob_raw(&o, " (edited)");
    return o.len;
}

/* NUL-terminated strings of events other than messages may still come with
 * text_len set; both are honoured. */
static size_t ev_text_len(const kith_event *ev)
{
    if (!ev->text)
        return 0;
    return ev->text_len ? ev->text_len : strnlen(ev->text, 4096);
}

size_t kith_client_format_event(const kith_event *ev, bool show_room, char *out, size_t cap)
{
    outbuf o;
    ob_init(&o, out, cap);
    switch (ev->type) {
    case KITH_EV_MESSAGE:
        return kith_client_format_message(ev, show_room, out, cap);
    case KITH_EV_JOIN:
        ob_raw(&o, "* ");
        ob_nick(&o, ev);
        ob_raw(&o, " joined ");
        ob_room(&o, ev);
        break;
    case KITH_EV_NICK: {
        size_t tl = ev_text_len(ev);
        bool has_old = ev->nick && ev->nick[0]
            && !(strlen(ev->nick) == tl && memcmp(ev->nick, ev->text, tl) == 0);
        if (has_old) {
            ob_raw(&o, "* ");
            ob_str(&o, ev->nick);
            ob_raw(&o, " is now known as ");
        } else {
            ob_raw(&o, "* ");
            ob_hexid(&o, ev->author);
            ob_raw(&o, " is now known as ");
        }
        ob_text(&o, ev->text, tl);
        break;
    }
    case KITH_EV_PEER_UP:
    case KITH_EV_PEER_DOWN:
        ob_raw(&o, "* ");
        ob_nick(&o, ev);
        ob_raw(&o, ev->type == KITH_EV_PEER_UP ? " is online" : " went offline");
        break;
    case KITH_EV_ERROR:
        ob_raw(&o, "! ");
        if (ev_text_len(ev))
            ob_text(&o, ev->text, ev_text_len(ev));
        else
            ob_raw(&o, kith_strerror(ev->err));
        break;
    case KITH_EV_INFO:
        ob_raw(&o, "* ");
        ob_text(&o, ev->text, ev_text_len(ev));
        break;
    default:
        return 0;
    }
    return o.len;
}

/* ---- nick and settings ---- */

bool kith_client_nick_valid(const char *nick, size_t len)
{
    if (!nick || len == 0 || len > KITH_CLIENT_NICK_MAX || !kith_client_utf8_valid(nick, len))
        return false;
    const unsigned char *p = (const unsigned char *)nick;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = kith_client_utf8_decode(p + i, len - i, &cp);
        if (cp_unsafe(cp) || cp == ' ' || cp == 0xa0 || cp == 0x200b || cp == 0xfeff)
            return false;
        i += n;
    }
    return true;
}

int kith_client_settings_nick(const uint8_t *data, size_t len, char *out, size_t cap)
{
    const char *s = (const char *)data;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(s + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - s) : len;
        if (end - i > 5 && memcmp(s + i, "nick=", 5) == 0) {
            size_t vlen = end - i - 5;
            if (!kith_client_nick_valid(s + i + 5, vlen) || vlen >= cap)
                return KITH_EPROTO;
            memcpy(out, s + i + 5, vlen);
            out[vlen] = '\0';
            return 0;
        }
        i = end + 1;
    }
    return KITH_ENOENT;
}

size_t kith_client_settings_format(const char *nick, char *out, size_t cap)
{
    int n = snprintf(out, cap, "nick=%s\n", nick);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/* ---- line splitting ---- */

void kith_client_lines_init(kith_client_lines *l)
{
    l->len = 0;
    l->overlong = false;
    l->stopped = false;
}

/* A buffered line of LINE_MAX+1 bytes is still fine when its last byte is
 * the '\r' of a CRLF ending; anything else that long is too long. */
static void check_full(kith_client_lines *l)
{
    if (!l->overlong && l->len == KITH_CLIENT_LINE_MAX + 1
        && l->buf[KITH_CLIENT_LINE_MAX] != '\r') {
        l->overlong = true;
        l->len = 0;
    }
}

static int emit_line(kith_client_lines *l, kith_client_line_cb cb, void *ud)
{
    check_full(l);
    size_t n = l->len;
    bool too_long = l->overlong;
    if (!too_long && n && l->buf[n - 1] == '\r')
        n--;
    l->len = 0;
    l->overlong = false;
    int rc = cb(ud, l->buf, too_long ? 0 : n, too_long);
    if (rc)
        l->stopped = true;
    return rc;
}

int kith_client_lines_feed(
    kith_client_lines *l, const char *data, size_t len, kith_client_line_cb cb, void *ud)
{
    size_t i = 0;
    while (i < len && !l->stopped) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t chunk = nl ? (size_t)(nl - (data + i)) : len - i;
        if (!l->overlong) {
            if (chunk > KITH_CLIENT_LINE_MAX + 1 - l->len) {
                l->overlong = true; /* drop the whole line; resync at '\n' */
                l->len = 0;
            } else {
                memcpy(l->buf + l->len, data + i, chunk);
                l->len += chunk;
            }
        }
        i += chunk;
        if (nl) {
            i++;
            int rc = emit_line(l, cb, ud);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int kith_client_lines_eof(kith_client_lines *l, kith_client_line_cb cb, void *ud)
{
    if (l->stopped || (l->len == 0 && !l->overlong))
        return 0;
    return emit_line(l, cb, ud);
}

/* ---- the running client ---- */

enum { IN_NONE, IN_STREAM, IN_TTY, IN_FILE, IN_TERM };

#define ONLINE_MAX 256
#define UNREAD_MAX 64 /* rooms with an unread count; more share nothing */
#define SEARCH_SHOWN 20 /* /search prints at most the last this many */

typedef struct unread_room {
    uint8_t id[KITH_ROOM_ID_LEN];
    size_t n;
} unread_room;
#define OUT_MAX (80 * 1024)

struct kith_client {
    const kith_env *env;
    kith_node *node;
    kith_uvnode *uv;
    kith_store *store;
    int in_kind;
    bool in_open;
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_pipe_t pipe;
        uv_tty_t tty;
        uv_poll_t poll; /* IN_TERM: libedit reads */
    } in;
    uv_signal_t cont; /* IN_TERM: SIGCONT after Ctrl-Z */
    bool cont_open;
    char history_file[4096]; /* IN_TERM's input history; "" for none */
    uv_fs_t fsreq;
    bool fs_busy;
    /* Input paused while a link is backed up (kith_uvnode_hold). */
    kith_uvnode_pause hold;
    char rbuf[16384];
    kith_client_lines lines;
    bool has_room;
    uint8_t room[KITH_ROOM_ID_LEN];
    bool has_created;
    uint8_t created[KITH_ROOM_ID_LEN];
    bool started;
    bool quitting;
    size_t startup_rooms;
    size_t history_shown;
    uint8_t online[ONLINE_MAX][KITH_MEMBER_ID_LEN];
    size_t n_online;
    unread_room unread[UNREAD_MAX]; /* messages in rooms not current */
    size_t n_unread;
    char arg[KITH_CLIENT_LINE_MAX + 1];
    char out[OUT_MAX];
    kith_client_sink_fn sink; /* NULL: stdout */
    void *sink_ud;
};

void kith_client_print(const char *line)
{
    kith_term_print(line); /* above the input line, coloured on a terminal */
}

/* Every line for the person goes through here: stdout, or the control
 * socket's attached sessions when the node runs without a terminal. */
static void say(kith_client *c, const char *line)
{
    if (c->sink)
        c->sink(c->sink_ud, line);
    else
        kith_client_print(line);
}

void kith_client_set_sink(kith_client *c, kith_client_sink_fn sink, void *ud)
{
    c->sink = sink;
    c->sink_ud = ud;
}

static void printf_line(kith_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_line(kith_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->out, sizeof c->out, fmt, ap);
    va_end(ap);
    say(c, c->out);
}

/* Unread counts: messages that arrived in a room other than the current
 * one since you last switched to it. */
static unread_room *unread_of(kith_client *c, const uint8_t id[KITH_ROOM_ID_LEN], bool add)
{
    for (size_t i = 0; i < c->n_unread; i++)
        if (memcmp(c->unread[i].id, id, KITH_ROOM_ID_LEN) == 0)
            return &c->unread[i];
    if (!add || c->n_unread == UNREAD_MAX)
        return NULL;
    unread_room *u = &c->unread[c->n_unread++];
    memcpy(u->id, id, KITH_ROOM_ID_LEN);
    u->n = 0;
    return u;
}

/* Every change of the current room goes through here. */
static void set_room(kith_client *c, const uint8_t id[KITH_ROOM_ID_LEN])
{
    memcpy(c->room, id, KITH_ROOM_ID_LEN);
    c->has_room = true;
    unread_room *u = unread_of(c, id, false);
    if (u)
        u->n = 0;
}

/* Copy a command argument into c->arg as a C string; false (and an error
 * line) when it holds a NUL byte. */
static bool arg_cstr(kith_client *c, const kith_cmd *cmd)
{
    if (cmd->arg_len > KITH_CLIENT_LINE_MAX || memchr(cmd->arg, '\0', cmd->arg_len)) {
        say(c, "! invalid argument");
        return false;
    }
    memcpy(c->arg, cmd->arg, cmd->arg_len);
    c->arg[cmd->arg_len] = '\0';
    return true;
}

/* Sanitized copy of a room's name (or hex id) into buf. */
static const char *room_label(
    kith_client *c, const uint8_t id[KITH_ROOM_ID_LEN], char *buf, size_t cap)
{
    kith_room_info ri;
    if (kith_node_room_info(c->node, id, &ri) == 0 && ri.name && ri.name[0]) {
        kith_client_sanitize(buf, cap, ri.name, strnlen(ri.name, 1024));
    } else {
        char hex[9];
        kith_hex(hex, id, 4);
        snprintf(buf, cap, "%s", hex);
    }
    return buf;
}

static bool current_room(kith_client *c)
{
    kith_room_info ri;
    if (!c->has_room || kith_node_room_info(c->node, c->room, &ri) != 0) {
        say(c, "! not in a room: /create or /join first");
        return false;
    }
    return true;
}

static void cmd_say(kith_client *c, uint32_t type, const char *text, size_t len)
{
    if (!current_room(c))
        return;
    if (!kith_client_utf8_valid(text, len)) {
        say(c, "! message is not valid UTF-8");
        return;
    }
    uint64_t seq;
    int rc = kith_node_send(c->node, c->room, type, text, len, &seq);
    kith_uvnode_kick(c->uv);
    if (rc < 0)
        printf_line(c, "! cannot send: %s", kith_strerror(rc));
}

static void cmd_create(kith_client *c, const kith_cmd *cmd)
{
    if (!arg_cstr(c, cmd))
        return;
    if (!kith_client_utf8_valid(c->arg, cmd->arg_len)) {
        say(c, "! room name is not valid UTF-8");
        return;
    }
    char name[256];
    kith_client_sanitize(name, sizeof name, c->arg, cmd->arg_len);
    uint8_t id[KITH_ROOM_ID_LEN];
    int rc = kith_node_create_room(c->node, c->arg, id);
    if (rc < 0) {
        kith_uvnode_kick(c->uv);
        printf_line(c, "! cannot create room %s: %s", name, kith_strerror(rc));
        return;
    }
    set_room(c, id);
    c->has_created = true;
    memcpy(c->created, id, sizeof id);
    printf_line(c, "* created room %s", name);
    kith_uvnode_kick(c->uv);
}

static bool find_room(kith_client *c, const kith_cmd *cmd, uint8_t id[KITH_ROOM_ID_LEN])
{
    if (!arg_cstr(c, cmd))
        return false;
    if (kith_node_room_find(c->node, c->arg, id) != 0) {
        char name[256];
        kith_client_sanitize(name, sizeof name, c->arg, cmd->arg_len);
        printf_line(c, "! no such room: %s", name);
        return false;
    }
    return true;
}

/* "30m", "2h", "7d", "90s" -> ms; 0 when not a duration. */
static uint64_t parse_duration(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || v == 0 || v > 3650ull * 86400)
        return 0;
    uint64_t unit = *end == 's' ? 1000
        : *end == 'm'           ? 60000
        : *end == 'h'           ? 3600000
        : *end == 'd'           ? 86400000
                                : 0;
    if (!unit || end[1])
        return 0;
    return (uint64_t)v * unit;
}

static void fmt_duration(char *out, size_t cap, uint64_t ms)
{
    if (ms % 86400000 == 0)
        snprintf(out, cap, "%llud", (unsigned long long)(ms / 86400000));
    else if (ms % 3600000 == 0)
        snprintf(out, cap, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(out, cap, "%llum", (unsigned long long)(ms / 60000));
    else
        snprintf(out, cap, "%llus", (unsigned long long)(ms / 1000));
}

/* /invite [ROOM] [--uses N] [--expires DURATION] [--for NICK|FINGERPRINT] */
static void cmd_invite(kith_client *c, const kith_cmd *cmd)
{
    uint8_t id[KITH_ROOM_ID_LEN];
    kith_invite_opts o = { .ttl_ms = 0, .uses = 1, .for_id = NULL };
    uint8_t for_id[KITH_MEMBER_ID_LEN];
    const char *room = NULL, *for_who = NULL;
    if (cmd->arg && !arg_cstr(c, cmd))
        return;
    char *save = NULL;
    for (char *t = cmd->arg ? strtok_r(c->arg, " \t", &save) : NULL; t;
         t = strtok_r(NULL, " \t", &save)) {
        if (strcmp(t, "--uses") == 0 || strcmp(t, "--expires") == 0 || strcmp(t, "--for") == 0) {
            char *v = strtok_r(NULL, " \t", &save);
            if (!v) {
                printf_line(c,
                    "! %s needs a value: /invite [ROOM] [--uses N] [--expires 2h] "
                    "[--for NICK]",
                    t);
                return;
            }
            if (t[2] == 'u') {
                char *end;
                unsigned long u = strtoul(v, &end, 10);
                if (*end || u == 0 || u > 1000) {
                    say(c, "! --uses takes a number from 1 to 1000");
                    return;
                }
                o.uses = (uint32_t)u;
            } else if (t[2] == 'e') {
                o.ttl_ms = parse_duration(v);
                if (!o.ttl_ms) {
                    say(c, "! --expires takes a duration like 30m, 2h or 7d");
                    return;
                }
            } else {
                for_who = v;
            }
        } else if (!room) {
            room = t;
        } else {
            say(c, "! usage: /invite [ROOM] [--uses N] [--expires 2h] [--for NICK]");
            return;
        }
    }
    if (room) {
        if (kith_node_room_find(c->node, room, id) != 0) {
            char name[256];
            kith_client_sanitize(name, sizeof name, room, strlen(room));
            printf_line(c, "! no such room: %s", name);
            return;
        }
    } else {
        if (!current_room(c))
            return;
        memcpy(id, c->room, sizeof id);
    }
    char name[256];
    room_label(c, id, name, sizeof name);
    if (for_who) {
        /* A fingerprint of someone not in the room yet, or a nick we know. */
        uint8_t raw[KITH_MEMBER_ID_LEN];
        char clean[256];
        kith_client_sanitize(clean, sizeof clean, for_who, strlen(for_who));
        int rc = kith_node_find_member(c->node, id, for_who, true, for_id);
        if (rc != 0 && kith_unhex(raw, sizeof raw, for_who, strlen(for_who)) != 0) {
            printf_line(c,
                "! --for %s: give a known nick or the invitee's member id (64 hex digits)", clean);
            return;
        }
        if (rc != 0)
            memcpy(for_id, raw, KITH_MEMBER_ID_LEN);
        o.for_id = for_id;
    }
    char code[1024];
    int rc = kith_node_invite_ex(c->node, id, &o, code, sizeof code);
    kith_uvnode_kick(c->uv);
    if (rc < 0) {
        printf_line(c, "! cannot invite to %s: %s", name, kith_strerror(rc));
        return;
    }
    code[sizeof code - 1] = '\0';
    char clean[1024], ttl[32];
    kith_client_sanitize(clean, sizeof clean, code, strlen(code));
    fmt_duration(ttl, sizeof ttl, o.ttl_ms ? o.ttl_ms : 24 * 3600000ull);
    if (o.uses == 1)
        printf_line(c, "* invite for %s (one use, expires in %s%s): %s", name, ttl,
            o.for_id ? ", for one person" : "", clean);
    else
        printf_line(c, "* invite for %s (%u uses, expires in %s%s): %s", name, (unsigned)o.uses,
            ttl, o.for_id ? ", for one person" : "", clean);
}

/* /revoke [CODE|ID]: one invite, or every usable one of the current room. */
static void cmd_revoke(kith_client *c, const kith_cmd *cmd)
{
    if (!current_room(c))
        return;
    if (cmd->arg && !arg_cstr(c, cmd))
        return;
    int rc = kith_node_invite_revoke(c->node, c->room, cmd->arg ? c->arg : NULL);
    if (rc < 0)
        printf_line(c, "! revoke: %s",
            rc == KITH_ENOENT       ? "no such invite for this room"
                : rc == KITH_EINVAL ? "not a valid invite code or id"
                : rc == KITH_EPERM  ? "not allowed: only its issuer, moderators and admins may"
                                    : kith_strerror(rc));
    else
        printf_line(c, "* revoked %d invite%s", rc, rc == 1 ? "" : "s");
}

static void cmd_join(kith_client *c, const kith_cmd *cmd)
{
    if (!arg_cstr(c, cmd))
        return;
    int rc = kith_node_join(c->node, c->arg);
    if (rc < 0) {
        kith_uvnode_kick(c->uv);
        printf_line(c, "! join failed: %s",
            rc == KITH_EINVAL         ? "not a valid invite code"
                : rc == KITH_EEXPIRED ? "the invite has expired: ask for a new one"
                : rc == KITH_EEXIST   ? "you are already in that room"
                                      : kith_strerror(rc));
        return;
    }
    /* The code names no room (only its id and the inviter's address). */
    kith_invite inv;
    if (kith_invite_decode(c->env, c->arg, &inv) == 0) {
        char hex[9], addr[KITH_ADDR_MAX + 1];
        kith_hex(hex, inv.room_id, 4);
        kith_client_sanitize(addr, sizeof addr, inv.addr, strnlen(inv.addr, sizeof inv.addr));
        printf_line(c, "* joining room %s via %s\xe2\x80\xa6", hex, addr[0] ? addr : "?");
        sodium_memzero(&inv, sizeof inv);
    } else {
        say(c, "* joining\xe2\x80\xa6");
    }
    kith_uvnode_kick(c->uv);
}

static void cmd_rooms(kith_client *c)
{
    size_t n = kith_node_room_count(c->node);
    if (n == 0) {
        say(c, "* no rooms yet: /create NAME to start one, or /join CODE");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        kith_room_info ri;
        if (kith_node_room_at(c->node, i, &ri) != 0)
            continue;
        char name[256];
        room_label(c, ri.id, name, sizeof name);
        bool cur = c->has_room && memcmp(ri.id, c->room, KITH_ROOM_ID_LEN) == 0;
        unread_room *u = unread_of(c, ri.id, false);
        char unread[48] = "";
        if (!cur && u && u->n)
            snprintf(unread, sizeof unread, ", %zu unread", u->n);
        printf_line(c, "* %s  %zu member%s, %zu online, %zu message%s%s%s", name, ri.members,
            PL(ri.members), ri.online, ri.messages, PL(ri.messages), unread,
            cur ? "  (current)" : "");
    }
}

static void cmd_switch(kith_client *c, const kith_cmd *cmd)
{
    uint8_t id[KITH_ROOM_ID_LEN];
    if (!find_room(c, cmd, id))
        return;
    set_room(c, id);
    char name[256];
    printf_line(c, "* now in %s", room_label(c, id, name, sizeof name));
}

static const char *role_name(int role)
{
    switch (role) {
    case 4:
        return "admin";
    case 3:
        return "moderator";
    case 2:
        return "member";
    case 1:
        return "observer";
    default:
        return "none";
    }
}

static void cmd_who(kith_client *c)
{
    if (!current_room(c))
        return;
    size_t n = kith_node_member_count(c->node, c->room);
    for (size_t i = 0; i < n; i++) {
        kith_member_info mi;
        if (kith_node_member_at(c->node, c->room, i, &mi) != 0)
            continue;
        char nick[256], fpr[32];
        if (mi.nick && mi.nick[0])
            kith_client_sanitize(nick, sizeof nick, mi.nick, strnlen(mi.nick, 1024));
        else {
            kith_hex(nick, mi.id, 4);
        }
        /* The node's name already carries a fingerprint suffix when it could
         * pass for another member's (proto 5.7). */
        kith_client_sanitize(fpr, sizeof fpr, mi.fingerprint, strnlen(mi.fingerprint, 24));
        printf_line(c, "* %s  %s  %s  %s", nick, role_name(mi.role), fpr,
            mi.self         ? "you"
                : mi.online ? "online"
                            : "offline");
    }
    kith_room_info ri;
    if (kith_node_room_info(c->node, c->room, &ri) == 0)
        printf_line(c, "* safety number %s (epoch %llu)%s", ri.safety, (unsigned long long)ri.epoch,
            ri.member ? "" : "  you are not a member");
}

/* Membership commands: resolve the nick, ask the node, report an error;
 * success shows as the node's system line. */
static void cmd_member(kith_client *c, int kind, const kith_cmd *cmd)
{
    if (!current_room(c))
        return;
    uint8_t who[KITH_MEMBER_ID_LEN];
    int role = 0, rc;
    const char *text = NULL;
    if (kind == KITH_CMD_TOPIC || kind == KITH_CMD_LEAVE || kind == KITH_CMD_REKEY) {
        if (kind == KITH_CMD_TOPIC && !cmd->arg) {
            kith_room_info ri;
            if (kith_node_room_info(c->node, c->room, &ri) == 0) {
                char topic[1024];
                kith_client_sanitize(topic, sizeof topic, ri.topic, strlen(ri.topic));
                printf_line(c, "* topic: %s", topic[0] ? topic : "(none)");
            }
            return;
        }
        if (kind == KITH_CMD_TOPIC) {
            if (!arg_cstr(c, cmd))
                return;
            text = c->arg;
        }
        int mop = kind == KITH_CMD_TOPIC ? KITH_MOP_SET_TOPIC
            : kind == KITH_CMD_LEAVE     ? KITH_MOP_LEAVE
                                         : KITH_MOP_REKEY;
        rc = kith_node_member_op(c->node, c->room, mop, NULL, 0, text);
    } else {
        if (!arg_cstr(c, cmd))
            return;
        rc = kith_node_find_member(
            c->node, c->room, c->arg, kind == KITH_CMD_UNBAN || kind == KITH_CMD_VERIFY, who);
        if (rc < 0) {
            char name[256];
            kith_client_sanitize(name, sizeof name, c->arg, strlen(c->arg));
            printf_line(c, "! %s: %s", name,
                rc == KITH_EEXIST ? "more than one matches: use NICK~FINGERPRINT"
                                  : "no such member");
            return;
        }
        if (kind == KITH_CMD_VERIFY) {
            char fpr[KITH_FPR_STRLEN], name[256];
            kith_fingerprint(who, fpr);
            kith_client_sanitize(name, sizeof name, c->arg, strlen(c->arg));
            printf_line(c, "* %s's fingerprint: %s  (compare it with theirs in person)", name, fpr);
            return;
        }
        int mop = KITH_MOP_SET_ROLE;
        switch (kind) {
        case KITH_CMD_KICK:
            mop = KITH_MOP_REMOVE;
            break;
        case KITH_CMD_BAN:
            mop = KITH_MOP_BAN;
            break;
        case KITH_CMD_UNBAN:
            mop = KITH_MOP_UNBAN;
            break;
        case KITH_CMD_OP:
            role = 4;
            break;
        default: /* deop, voice */
            role = 2;
            break;
        }
        rc = kith_node_member_op(c->node, c->room, mop, who, role, NULL);
    }
    kith_uvnode_kick(c->uv);
    if (rc < 0)
        printf_line(c, "! %s",
            rc == KITH_EPERM        ? "not allowed: your role in this room does not permit it"
                : rc == KITH_ENOENT ? "not possible: that member is not in the room (or not banned)"
                : rc == KITH_EINVAL ? "not possible: use /leave to leave, or check the text"
                                    : kith_strerror(rc));
}

static void cmd_nick(kith_client *c, const kith_cmd *cmd)
{
    if (!kith_client_nick_valid(cmd->arg, cmd->arg_len)) {
        printf_line(c, "! invalid nick: 1 to %d bytes of UTF-8, no spaces or control characters",
            KITH_CLIENT_NICK_MAX);
        return;
    }
    if (!arg_cstr(c, cmd))
        return;
    int rc = kith_node_set_nick(c->node, c->arg);
    kith_uvnode_kick(c->uv);
    if (rc < 0) {
        printf_line(c, "! cannot change nick: %s", kith_strerror(rc));
        return;
    }
    printf_line(c, "* you are now %s", c->arg);
    if (c->store) {
        char buf[KITH_CLIENT_NICK_MAX + 16];
        size_t n = kith_client_settings_format(c->arg, buf, sizeof buf);
        rc = n ? kith_store_blob_put(c->store, "settings", (const uint8_t *)buf, n) : KITH_ETOOBIG;
        if (rc < 0)
            printf_line(c, "! could not save the nick: %s", kith_strerror(rc));
    }
}

typedef struct history_ctx {
    kith_client *c;
    bool show_room;
    size_t shown;
    bool ids;
    outbuf react; /* the reaction line being built */
    char react_emoji[KITH_MSG_MAX_REACTION];
    size_t react_emoji_len;
} history_ctx;

/* Reactions come after their message, grouped by emoji: "  ↳ 👍 bob, carol". */
static void reactions_flush(history_ctx *h)
{
    if (h->react.len) {
        say(h->c, h->react.p);
        ob_init(&h->react, h->react.p, h->react.cap);
    }
    h->react_emoji_len = 0;
}

static void on_history(void *ud, const kith_event *ev)
{
    history_ctx *h = ud;
    if (ev->msg_type == 6) {
        size_t tl = KITH_MIN(ev->text_len, sizeof h->react_emoji);
        bool same
            = h->react.len && h->react_emoji_len == tl && memcmp(h->react_emoji, ev->text, tl) == 0;
        if (same) {
            ob_raw(&h->react, ", ");
        } else {
            reactions_flush(h);
            memcpy(h->react_emoji, ev->text, tl);
            h->react_emoji_len = tl;
            ob_raw(&h->react, h->ids ? "         \xe2\x86\xb3 " : "  \xe2\x86\xb3 ");
            ob_text(&h->react, ev->text, tl);
            ob_raw(&h->react, " ");
        }
        ob_nick(&h->react, ev);
        return;
    }
    reactions_flush(h);
    outbuf o;
    ob_init(&o, h->c->out, sizeof h->c->out);
    if (h->ids) {
        char hex[2 * KITH_ROOM_ID_LEN + 1];
        kith_hex(hex, ev->id, KITH_CLIENT_SHORT_ID / 2);
        ob_raw(&o, hex);
        ob_raw(&o, " ");
    }
    if (kith_client_format_message(ev, h->show_room, o.p + o.len, o.cap - o.len) > 0) {
        say(h->c, h->c->out);
        h->shown++;
    }
}

static void cmd_history(kith_client *c, const kith_cmd *cmd)
{
    if (!current_room(c))
        return;
    char react[1024];
    history_ctx h = { c, kith_node_room_count(c->node) > 1, 0, cmd->ids, { 0 }, { 0 }, 0 };
    ob_init(&h.react, react, sizeof react);
    int rc = kith_node_history(c->node, c->room, cmd->count, on_history, &h);
    reactions_flush(&h);
    if (rc < 0) {
        printf_line(c, "! cannot read history: %s", kith_strerror(rc));
    } else if (h.shown == 0) {
        char name[256];
        printf_line(c, "* no messages yet in %s", room_label(c, c->room, name, sizeof name));
    }
}

/* ASCII letters in any case; other bytes (UTF-8 included) exactly. */
static bool contains_fold(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return true;
    for (size_t i = 0; i + nlen <= hlen; i++) {
        size_t k = 0;
        while (k < nlen) {
            char a = hay[i + k], b = needle[k];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (char)(b - 'A' + 'a');
            if (a != b)
                break;
            k++;
        }
        if (k == nlen)
            return true;
    }
    return false;
}

typedef struct search_ctx {
    kith_client *c;
    const char *needle;
    size_t nlen;
    bool show_room;
    size_t matches; /* counted so far */
    size_t from; /* print the matches from this one on; SIZE_MAX: only count */
} search_ctx;

static void on_search(void *ud, const kith_event *ev)
{
    search_ctx *s = ud;
    if ((ev->msg_type != 1 && ev->msg_type != 2) || !ev->text || ev->deleted
        || !contains_fold(ev->text, ev->text_len, s->needle, s->nlen))
        return;
    if (s->matches++ >= s->from
        && kith_client_format_message(ev, s->show_room, s->c->out, sizeof s->c->out) > 0)
        say(s->c, s->c->out);
}

/* /search TEXT: the local store's copy of the current room, oldest first;
 * one pass counts, the second prints the last SEARCH_SHOWN matches. */
static void cmd_search(kith_client *c, const kith_cmd *cmd)
{
    if (!current_room(c))
        return;
    search_ctx s = { c, cmd->arg, cmd->arg_len, kith_node_room_count(c->node) > 1, 0, SIZE_MAX };
    int rc = kith_node_history(c->node, c->room, SIZE_MAX, on_search, &s);
    if (rc < 0) {
        printf_line(c, "! cannot read history: %s", kith_strerror(rc));
        return;
    }
    size_t total = s.matches;
    if (total) {
        s.matches = 0;
        s.from = total > SEARCH_SHOWN ? total - SEARCH_SHOWN : 0;
        rc = kith_node_history(c->node, c->room, SIZE_MAX, on_search, &s);
        if (rc < 0) {
            printf_line(c, "! cannot read history: %s", kith_strerror(rc));
            return;
        }
    }
    char name[256], text[128];
    room_label(c, c->room, name, sizeof name);
    kith_client_sanitize(text, sizeof text, cmd->arg, cmd->arg_len);
    if (total == 0)
        printf_line(c, "* no messages in %s contain \"%s\"", name, text);
    else if (total <= SEARCH_SHOWN)
        printf_line(c, "* %zu message%s in %s contain%s \"%s\"", total, total == 1 ? "" : "s", name,
            total == 1 ? "s" : "", text);
    else
        printf_line(c, "* %zu messages in %s contain \"%s\"; the last %d are shown", total, name,
            text, SEARCH_SHOWN);
}

/* ---- edits, deletes, reactions ---- */

/* The message a command refers to: by id prefix, or the Nth last (of ours
 * when mine). Says why not and returns false when there is none. */
static bool find_ref(kith_client *c, const kith_cmd *cmd, bool mine, uint8_t id[KITH_ROOM_ID_LEN])
{
    char ref[2 * KITH_ROOM_ID_LEN + 1] = "";
    if (cmd->ref) {
        memcpy(ref, cmd->ref, cmd->ref_len);
        ref[cmd->ref_len] = '\0';
    }
    int rc = kith_node_find_message(c->node, c->room, cmd->ref ? ref : NULL, cmd->count, mine, id);
    if (rc == 0)
        return true;
    if (rc == KITH_EEXIST)
        printf_line(c, "! more than one message has an id starting %s: give more of it", ref);
    else if (cmd->ref)
        printf_line(c, "! no message with id %s here (/history 20 ids lists ids)", ref);
    else if (mine && cmd->count == 1)
        say(c, "! you have no message here to change");
    else
        printf_line(c, "! there is no %s%zu%s message back", mine ? "own " : "", cmd->count,
            cmd->count == 1       ? "st"
                : cmd->count == 2 ? "nd"
                : cmd->count == 3 ? "rd"
                                  : "th");
    return false;
}

static void cmd_about(kith_client *c, int kind, const kith_cmd *cmd)
{
    if (!current_room(c))
        return;
    if (cmd->arg && !kith_client_utf8_valid(cmd->arg, cmd->arg_len)) {
        say(c, "! message is not valid UTF-8");
        return;
    }
    uint8_t id[KITH_ROOM_ID_LEN];
    /* N counts our own messages for /edit and /delete; an id may name
     * anyone's (and the node says whose it is). */
    if (!find_ref(c, cmd, kind != KITH_CMD_REACT && kind != KITH_CMD_UNREACT && !cmd->ref, id))
        return;
    int rc;
    uint64_t seq;
    if (kind == KITH_CMD_UNREACT) {
        rc = kith_node_unreact(c->node, c->room, id, cmd->arg, cmd->arg ? cmd->arg_len : 0);
        if (rc == KITH_ENOENT) {
            say(c, "! you have no reaction there to take back");
            return;
        }
    } else {
        uint32_t type = kind == KITH_CMD_EDIT ? 4 : kind == KITH_CMD_DELETE ? 5 : 6;
        rc = kith_node_send_about(
            c->node, c->room, type, id, cmd->arg, cmd->arg ? cmd->arg_len : 0, &seq);
    }
    kith_uvnode_kick(c->uv);
    if (rc == KITH_EEXIST)
        say(c, "! you already reacted with that");
    else if (rc == KITH_EPERM)
        say(c, "! you can only edit or delete your own messages");
    else if (rc == KITH_EINVAL)
        say(c,
            kind == KITH_CMD_REACT ? "! a reaction is one emoji or word, at most 32 bytes"
                                   : "! that message can't be changed (deleted?)");
    else if (rc < 0)
        printf_line(c, "! cannot send: %s", kith_strerror(rc));
}

/* /unreact without a reference: our latest reaction, whatever it was to. */
static void cmd_unreact(kith_client *c, const kith_cmd *cmd)
{
    if (cmd->ref || cmd->count) {
        cmd_about(c, KITH_CMD_UNREACT, cmd);
        return;
    }
    if (!current_room(c))
        return;
    int rc = kith_node_unreact(c->node, c->room, NULL, cmd->arg, cmd->arg ? cmd->arg_len : 0);
    kith_uvnode_kick(c->uv);
    if (rc == KITH_ENOENT)
        say(c, "! you have no reaction here to take back");
    else if (rc < 0)
        printf_line(c, "! cannot send: %s", kith_strerror(rc));
}

/* ---- LAN meetups ---- */

static void cmd_lan(kith_client *c, const kith_cmd *cmd)
{
    char name[256];
    if (cmd->arg && cmd->arg_len) { /* no argument: arg is NULL */
        if (!arg_cstr(c, cmd))
            return;
        int mode = strcmp(c->arg, "open") == 0 ? KITH_LAN_OPEN
            : strcmp(c->arg, "knock") == 0     ? KITH_LAN_KNOCK
            : strcmp(c->arg, "off") == 0       ? KITH_LAN_OFF
                                               : -1;
        if (mode < 0) {
            say(c, "! usage: /lan [open|knock|off]");
            return;
        }
        if (!current_room(c))
            return;
        bool same = kith_node_lan_mode(c->node, c->room) == mode;
        int rc = kith_node_lan_set(c->node, c->room, mode);
        kith_uvnode_kick(c->uv);
        room_label(c, c->room, name, sizeof name);
        /* A change is a room op: its event line says what happened. */
        if (rc == KITH_EPERM)
            printf_line(c, "! only an admin of %s can do that", name);
        else if (rc < 0)
            printf_line(c, "! /lan: %s", kith_strerror(rc));
        else if (same)
            printf_line(c, "* %s is already %s", name,
                mode == KITH_LAN_OFF        ? "not named on the LAN"
                    : mode == KITH_LAN_OPEN ? "named on the LAN: anyone here may join"
                                            : "named on the LAN: knocks wait for /admit");
        else if (mode != KITH_LAN_OFF && !kith_node_lan_enabled(c->node))
            say(c,
                "* LAN discovery is off on this node: its admins' and moderators' nodes "
                "name the room");
        return;
    }
    size_t n = kith_node_lan_count(c->node);
    if (n == 0) {
        say(c, "* no rooms open on the LAN nearby");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        kith_lan_room lr;
        if (kith_node_lan_at(c->node, i, &lr) != 0)
            break;
        char addr[128];
        kith_client_sanitize(name, sizeof name, lr.name, strnlen(lr.name, 256));
        kith_client_sanitize(addr, sizeof addr, lr.addr, strnlen(lr.addr, 128));
        printf_line(c, "* %s  %s  at %s, heard %llus ago", name,
            lr.mode == KITH_LAN_OPEN ? "open" : "knock", addr,
            (unsigned long long)(lr.age_ms / 1000));
    }
}

static void cmd_knock(kith_client *c, const kith_cmd *cmd)
{
    if (!arg_cstr(c, cmd))
        return;
    int rc = kith_node_knock(c->node, c->arg);
    kith_uvnode_kick(c->uv);
    char name[256];
    kith_client_sanitize(name, sizeof name, c->arg, strnlen(c->arg, 256));
    if (rc == KITH_ENOENT)
        printf_line(c, "! no room %s heard on the LAN (try /lan)", name);
    else if (rc == KITH_EEXIST)
        printf_line(c, "! you are already in a room named %s", name);
    else if (rc == KITH_ESTATE)
        say(c, "! LAN discovery is off on this node (--no-lan, or no multicast here)");
    else if (rc < 0)
        printf_line(c, "! knock failed: %s", kith_strerror(rc));
    else
        printf_line(c, "* knocking on %s\xe2\x80\xa6", name);
}

static void cmd_admit(kith_client *c, const kith_cmd *cmd)
{
    if (!arg_cstr(c, cmd))
        return;
    int rc = kith_node_admit(c->node, c->arg);
    kith_uvnode_kick(c->uv);
    char nick[128];
    kith_client_sanitize(nick, sizeof nick, c->arg, strnlen(c->arg, 128));
    if (rc == KITH_ENOENT)
        printf_line(c, "! nobody called %s is knocking", nick);
    else if (rc < 0)
        printf_line(c, "! cannot admit %s: %s", nick, kith_strerror(rc));
    else
        printf_line(c, "* admitted %s", nick);
}

static void cmd_peers(kith_client *c)
{
    size_t n = kith_node_peer_count(c->node);
    if (n == 0) {
        say(c, "* no peers connected");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        kith_peer_info pi;
        if (kith_node_peer_at(c->node, i, &pi) != 0)
            break;
        char nick[128];
        kith_client_sanitize(
            nick, sizeof nick, pi.nick ? pi.nick : "?", pi.nick ? strnlen(pi.nick, 128) : 1);
        printf_line(c, "* %s  %s  found by %s (%s)", nick, pi.fingerprint, pi.found,
            pi.outbound ? "we connected" : "they connected");
    }
}

static void quit(kith_client *c)
{
    if (c->quitting)
        return;
    c->quitting = true;
    kith_uvnode_stop(c->uv);
}

int kith_client_line(kith_client *c, const char *line, size_t len)
{
    if (c->quitting)
        return 1;
    kith_cmd cmd;
    kith_client_parse(line, len, &cmd);
    switch (cmd.kind) {
    case KITH_CMD_EMPTY:
        break;
    case KITH_CMD_INVALID:
        say(c, cmd.error);
        break;
    case KITH_CMD_SAY:
        cmd_say(c, 1, cmd.arg, cmd.arg_len);
        break;
    case KITH_CMD_ME:
        cmd_say(c, 2, cmd.arg, cmd.arg_len);
        break;
    case KITH_CMD_CREATE:
        cmd_create(c, &cmd);
        break;
    case KITH_CMD_INVITE:
        cmd_invite(c, &cmd);
        break;
    case KITH_CMD_JOIN:
        cmd_join(c, &cmd);
        break;
    case KITH_CMD_ROOMS:
        cmd_rooms(c);
        break;
    case KITH_CMD_SWITCH:
        cmd_switch(c, &cmd);
        break;
    case KITH_CMD_WHO:
        cmd_who(c);
        break;
    case KITH_CMD_NICK:
        cmd_nick(c, &cmd);
        break;
    case KITH_CMD_HISTORY:
        cmd_history(c, &cmd);
        break;
    case KITH_CMD_SEARCH:
        cmd_search(c, &cmd);
        break;
    case KITH_CMD_EDIT:
    case KITH_CMD_DELETE:
    case KITH_CMD_REACT:
        cmd_about(c, cmd.kind, &cmd);
        break;
    case KITH_CMD_UNREACT:
        cmd_unreact(c, &cmd);
        break;
    case KITH_CMD_KICK:
    case KITH_CMD_BAN:
    case KITH_CMD_UNBAN:
    case KITH_CMD_OP:
    case KITH_CMD_DEOP:
    case KITH_CMD_VOICE:
    case KITH_CMD_TOPIC:
    case KITH_CMD_LEAVE:
    case KITH_CMD_REKEY:
    case KITH_CMD_VERIFY:
        cmd_member(c, cmd.kind, &cmd);
        break;
    case KITH_CMD_REVOKE:
        cmd_revoke(c, &cmd);
        break;
    case KITH_CMD_LAN:
        cmd_lan(c, &cmd);
        break;
    case KITH_CMD_KNOCK:
        cmd_knock(c, &cmd);
        break;
    case KITH_CMD_ADMIT:
        cmd_admit(c, &cmd);
        break;
    case KITH_CMD_PEERS:
        cmd_peers(c);
        break;
    case KITH_CMD_STATS: {
        /* One line, key=value, so tools/bench can parse it. */
        kith_node_stats st;
        kith_node_stats_get(c->node, &st);
        printf_line(c,
            "* stats msgs_in=%llu dups_in=%llu delivered=%llu msgs_out=%llu bytes_in=%llu"
            " bytes_out=%llu held=%llu ihave_out=%llu want_out=%llu prune_out=%llu"
            " ihave_ids_out=%llu wire_msg_out=%llu wire_ihave_out=%llu wire_want_out=%llu"
            " wire_prune_out=%llu wire_sync_out=%llu wire_op_out=%llu wire_addr_out=%llu",
            (unsigned long long)st.msgs_in, (unsigned long long)st.dups_in,
            (unsigned long long)st.delivered, (unsigned long long)st.msgs_out,
            (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
            (unsigned long long)st.held, (unsigned long long)st.ihave_out,
            (unsigned long long)st.want_out, (unsigned long long)st.prune_out,
            (unsigned long long)st.ihave_ids_out, (unsigned long long)st.wire_msg_out,
            (unsigned long long)st.wire_ihave_out, (unsigned long long)st.wire_want_out,
            (unsigned long long)st.wire_prune_out, (unsigned long long)st.wire_sync_out,
            (unsigned long long)st.wire_op_out, (unsigned long long)st.wire_addr_out);
        break;
    }
    case KITH_CMD_HELP:
        kith_client_help(cmd.arg, cmd.arg_len, c->out, sizeof c->out);
        say(c, c->out);
        break;
    case KITH_CMD_QUIT:
        quit(c);
        return 1;
    }
    return 0;
}

static int on_line(void *ud, const char *line, size_t len, bool too_long)
{
    kith_client *c = ud;
    if (too_long) {
        say(c, "! line too long (max 16384 bytes)");
        return 0;
    }
    return kith_client_line(c, line, len);
}

/* ---- events from the node ---- */

static bool online_find(kith_client *c, const uint8_t id[KITH_MEMBER_ID_LEN], size_t *at)
{
    for (size_t i = 0; i < c->n_online; i++)
        if (memcmp(c->online[i], id, KITH_MEMBER_ID_LEN) == 0) {
            *at = i;
            return true;
        }
    return false;
}

/* Print a peer going up or down once per change of state: one peer can have
 * several sessions (both dialled at once, reconnects), and a flapping link
 * must not flood the screen. */
static bool peer_changed(kith_client *c, const kith_event *ev)
{
    size_t at;
    bool known = online_find(c, ev->author, &at);
    if (ev->type == KITH_EV_PEER_UP) {
        if (known)
            return false;
        if (c->n_online < ONLINE_MAX)
            memcpy(c->online[c->n_online++], ev->author, KITH_MEMBER_ID_LEN);
        return true;
    }
    if (!known)
        return false;
    memmove(c->online[at], c->online[at + 1], (c->n_online - at - 1) * KITH_MEMBER_ID_LEN);
    c->n_online--;
    return true;
}

static void on_room_event(kith_client *c, const kith_event *ev)
{
    char name[256];
    kith_room_info ri;
    if (!ev->has_room)
        return;
    if (kith_node_room_info(c->node, ev->room_id, &ri) != 0)
        memset(&ri, 0, sizeof ri);
    room_label(c, ev->room_id, name, sizeof name);
    if (ev->history && !c->started) {
        printf_line(c, "* room %s: %zu member%s, %zu message%s", name, ri.members, PL(ri.members),
            ri.messages, PL(ri.messages));
        c->startup_rooms++;
        if (!c->has_room) {
            memcpy(c->room, ev->room_id, KITH_ROOM_ID_LEN);
            c->has_room = true;
        }
        return;
    }
    if (c->has_created && memcmp(c->created, ev->room_id, KITH_ROOM_ID_LEN) == 0) {
        c->has_created = false; /* "* created room" was printed already */
        return;
    }
    printf_line(c, "* joined room %s (%zu member%s)", name, ri.members, PL(ri.members));
    set_room(c, ev->room_id);
}

static void on_event(void *ud, const kith_event *ev)
{
    kith_client *c = ud;
    bool show_room = kith_node_room_count(c->node) > 1;
    switch (ev->type) {
    case KITH_EV_SENT:
        return; /* our own message is shown by its KITH_EV_MESSAGE */
    case KITH_EV_ROOM:
        on_room_event(c, ev);
        return;
    case KITH_EV_MESSAGE:
        /* Start-up replay is not shown (/history shows it); nor is a bulk
         * catch-up, which the node reports as progress lines; a nick change
         * has its own KITH_EV_NICK. */
        if ((ev->history && !c->started) || ev->catchup || ev->msg_type == 3)
            return;
        if (!ev->self && ev->has_room
            && !(c->has_room && memcmp(ev->room_id, c->room, KITH_ROOM_ID_LEN) == 0)) {
            unread_room *u = unread_of(c, ev->room_id, true);
            if (u)
                u->n++;
        }
        break;
    case KITH_EV_JOIN:
    case KITH_EV_NICK:
        if (ev->self)
            return; /* the command already said so */
        break;
    case KITH_EV_PEER_UP:
    case KITH_EV_PEER_DOWN:
        if (!peer_changed(c, ev))
            return;
        break;
    default:
        break;
    }
    if (kith_client_format_event(ev, show_room, c->out, sizeof c->out) > 0)
        say(c, c->out);
}

static void on_ready(void *ud)
{
    kith_client *c = ud;
    c->started = true;
    size_t n = kith_node_room_count(c->node);
    if (n == 0) {
        say(c,
            "* no rooms yet: /create NAME to start one, or /join CODE with an "
            "invite. /help lists commands.");
        return;
    }
    if (c->startup_rooms == 0) {
        /* The node loaded rooms without announcing them: list them here. */
        for (size_t i = 0; i < n; i++) {
            kith_room_info ri;
            if (kith_node_room_at(c->node, i, &ri) != 0)
                continue;
            char name[256];
            printf_line(c, "* room %s: %zu member%s, %zu message%s",
                room_label(c, ri.id, name, sizeof name), ri.members, PL(ri.members), ri.messages,
                PL(ri.messages));
            if (!c->has_room) {
                memcpy(c->room, ri.id, KITH_ROOM_ID_LEN);
                c->has_room = true;
            }
        }
    }
    if (c->has_room) {
        char name[256];
        printf_line(c, "* now in %s", room_label(c, c->room, name, sizeof name));
    }
}

/* ---- stdin ---- */

static void on_in_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_input(kith_client *c)
{
    if (c->in_open && !uv_is_closing(&c->in.h)) {
        if (c->in_kind == IN_TERM)
            uv_poll_stop(&c->in.poll);
        else if (c->in_kind != IN_FILE)
            uv_read_stop(&c->in.s);
        uv_close(&c->in.h, on_in_closed);
    }
    if (c->cont_open) {
        uv_close((uv_handle_t *)&c->cont, on_in_closed);
        c->cont_open = false;
    }
    if (c->uv)
        kith_uvnode_release(c->uv, &c->hold);
    if (c->in_kind == IN_TERM)
        kith_term_stop(); /* the terminal as it was, history saved */
    c->in_open = false;
    if (c->fs_busy)
        uv_cancel((uv_req_t *)&c->fsreq);
}

static void input_eof(kith_client *c)
{
    if (kith_client_lines_eof(&c->lines, on_line, c) == 0)
        quit(c); /* EOF is /quit */
}

static void on_in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    kith_client *c = h->data;
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void fs_read_next(kith_client *c);
static void on_in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Flow control for lines read from stdin (docs/decisions.md "Backpressure on
 * local input"): after a read, input_hold pauses the input while a link is
 * backed up, and on_in_resume goes on. A fast sender then goes at the pace
 * its peers read, where it would otherwise fill a link to
 * KITH_UVNODE_MAX_UNSENT and see it closed. */
static void on_in_resume(kith_uvnode_pause *h)
{
    kith_client *c = (kith_client *)((char *)h - offsetof(kith_client, hold));
    if (c->quitting)
        return;
    if (c->in_kind == IN_FILE) {
        fs_read_next(c);
    } else if (c->in_open && uv_read_start(&c->in.s, on_in_alloc, on_in_read) != 0) {
        KITH_LOGW(c->env, "stdin: cannot resume reading");
        input_eof(c);
    }
}

static bool input_hold(kith_client *c)
{
    c->hold.resume = on_in_resume;
    return kith_uvnode_hold(c->uv, &c->hold);
}

static void on_in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kith_client *c = s->data;
    if (c->quitting || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            KITH_LOGW(c->env, "stdin: %s", uv_strerror((int)nread));
        input_eof(c);
        return;
    }
    kith_client_lines_feed(&c->lines, buf->base, (size_t)nread, on_line, c);
    if (!c->quitting && c->in_open && input_hold(c))
        uv_read_stop(&c->in.s);
}

static void on_fs_read(uv_fs_t *req)
{
    kith_client *c = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    c->fs_busy = false;
    if (c->quitting)
        return;
    if (r <= 0) {
        if (r < 0 && r != UV_ECANCELED)
            KITH_LOGW(c->env, "stdin: %s", uv_strerror((int)r));
        input_eof(c);
        return;
    }
    if (kith_client_lines_feed(&c->lines, c->rbuf, (size_t)r, on_line, c) == 0 && !c->quitting
        && !input_hold(c))
        fs_read_next(c);
}

static void fs_read_next(kith_client *c)
{
    uv_buf_t b = uv_buf_init(c->rbuf, (unsigned)sizeof c->rbuf);
    c->fsreq.data = c;
    if (uv_fs_read(kith_uvnode_loop(c->uv), &c->fsreq, 0, &b, 1, -1, on_fs_read) == 0)
        c->fs_busy = true;
    else
        input_eof(c);
}

/* ---- stdin on a terminal: libedit (term.c) ---- */

static void on_term_line(void *ud, const char *line, size_t len)
{
    kith_client *c = ud;
    if (c->quitting)
        return;
    if (!line)
        input_eof(c);
    else
        on_line(c, line, KITH_MIN(len, (size_t)KITH_CLIENT_LINE_MAX), len > KITH_CLIENT_LINE_MAX);
}

/* Tab completes the nicks of the current room's members but your own. */
static const char *term_nick(void *ud, size_t i)
{
    kith_client *c = ud;
    if (!c->has_room)
        return NULL;
    size_t n = kith_node_member_count(c->node, c->room), seen = 0;
    for (size_t k = 0; k < n; k++) {
        kith_member_info mi;
        if (kith_node_member_at(c->node, c->room, k, &mi) != 0 || mi.self || !mi.nick
            || !kith_client_nick_valid(mi.nick, strnlen(mi.nick, KITH_CLIENT_NICK_MAX + 1)))
            continue;
        if (seen++ == i)
            return mi.nick;
    }
    return NULL;
}

/* "room> ", or "> " before the first room. */
static void term_prompt(void *ud, char *out, size_t cap)
{
    kith_client *c = ud;
    kith_room_info ri;
    if (c->has_room && kith_node_room_info(c->node, c->room, &ri) == 0) {
        char name[64];
        room_label(c, c->room, name, sizeof name);
        snprintf(out, cap, "%s> ", name);
    } else {
        snprintf(out, cap, "> ");
    }
}

static void on_term_poll(uv_poll_t *p, int status, int events)
{
    kith_client *c = p->data;
    (void)events;
    if (c->quitting)
        return;
    if (status < 0) {
        KITH_LOGW(c->env, "stdin: %s", uv_strerror(status));
        input_eof(c);
        return;
    }
    kith_term_read();
}

static void on_cont(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    kith_term_continued();
}

/* 0 started, 1 not possible here (plain lines then), else an error. */
static int start_term(kith_client *c, uv_loop_t *loop)
{
    kith_term_hooks h = { c, on_term_line, term_nick, term_prompt };
    if (kith_term_start(&h, c->history_file[0] ? c->history_file : NULL) != 0)
        return 1;
    if (uv_poll_init(loop, &c->in.poll, 0) != 0) {
        kith_term_stop();
        return 1;
    }
    c->in.h.data = c;
    c->in_kind = IN_TERM;
    c->in_open = true;
    int rc = uv_poll_start(&c->in.poll, UV_READABLE, on_term_poll);
    if (rc != 0) {
        KITH_LOGE(c->env, "stdin: %s", uv_strerror(rc));
        close_input(c);
        return KITH_EIO;
    }
    if (uv_signal_init(loop, &c->cont) == 0) {
        c->cont_open = true;
        if (uv_signal_start(&c->cont, on_cont, SIGCONT) != 0)
            KITH_LOGW(c->env, "no SIGCONT handler: the terminal is not retaken after fg");
    }
    return 0;
}

void kith_client_set_history_file(kith_client *c, const char *path)
{
    c->history_file[0] = '\0';
    if (path && strlen(path) < sizeof c->history_file)
        snprintf(c->history_file, sizeof c->history_file, "%s", path);
}

int kith_client_start(kith_client *c)
{
    uv_loop_t *loop = kith_uvnode_loop(c->uv);
    uv_handle_type t = uv_guess_handle(0);
    int rc;
    /* A person at a terminal gets line editing; anything else (a pipe, a
     * file, a terminal with stdout redirected) plain lines. */
    if (t == UV_TTY && kith_term_usable()) {
        rc = start_term(c, loop);
        if (rc <= 0)
            return rc;
    }
    if (t == UV_TTY) {
        rc = uv_tty_init(loop, &c->in.tty, 0, 1);
        c->in_kind = IN_TTY;
    } else if (t == UV_NAMED_PIPE || t == UV_TCP) {
        rc = uv_pipe_init(loop, &c->in.pipe, 0);
        if (rc == 0) {
            rc = uv_pipe_open(&c->in.pipe, 0);
            if (rc != 0)
                uv_close(&c->in.h, on_in_closed);
        }
        c->in_kind = IN_STREAM;
    } else if (t == UV_FILE) {
        /* Regular files and devices can't be polled: read them through the
         * thread pool, one buffer at a time. */
        c->in_kind = IN_FILE;
        fs_read_next(c);
        return 0;
    } else {
        c->in_kind = IN_NONE; /* stdin closed: nothing will ever come */
        input_eof(c);
        return 0;
    }
    if (rc != 0) {
        KITH_LOGE(c->env, "stdin: %s", uv_strerror(rc));
        return KITH_EIO;
    }
    c->in.h.data = c;
    c->in_open = true;
    rc = uv_read_start(&c->in.s, on_in_alloc, on_in_read);
    if (rc != 0) {
        KITH_LOGE(c->env, "stdin: %s", uv_strerror(rc));
        close_input(c);
        return KITH_EIO;
    }
    return 0;
}

static void on_shutdown(void *ud)
{
    kith_client *c = ud;
    c->quitting = true;
    close_input(c);
}

int kith_client_new(
    const kith_env *env, kith_node *node, kith_uvnode *uv, kith_store *store, kith_client **out)
{
    *out = NULL;
    kith_client *c = kith_calloc(env, 1, sizeof *c);
    if (!c)
        return KITH_ENOMEM;
    c->env = env;
    c->node = node;
    c->uv = uv;
    c->store = store;
    kith_client_lines_init(&c->lines);
    kith_uvnode_hooks hooks = { c, on_event, on_ready, on_shutdown };
    kith_uvnode_set_hooks(uv, &hooks);
    *out = c;
    return 0;
}

void kith_client_free(kith_client *c)
{
    if (!c)
        return;
    /* Lines typed may hold anything the person wrote. */
    sodium_memzero(&c->lines, sizeof c->lines);
    sodium_memzero(c->rbuf, sizeof c->rbuf);
    kith_free(c->env, c);
}

void kith_client_banner(kith_client *c, const char *listen, const char *announce)
{
    char fpr[24], nick[256];
    kith_node_fingerprint(c->node, fpr);
    fpr[sizeof fpr - 1] = '\0';
    const char *n = kith_node_nick(c->node);
    kith_client_sanitize(nick, sizeof nick, n ? n : "anon", n ? strnlen(n, 1024) : 4);
    printf_line(c, "* kith %s \xe2\x80\x94 you are %s (fingerprint %s)", KITH_VERSION, nick, fpr);
    if (listen && listen[0])
        printf_line(c, "* listening on %s", listen);
    if (announce && announce[0] && (!listen || strcmp(listen, announce) != 0))
        printf_line(c, "* announcing %s in invites", announce);
}
