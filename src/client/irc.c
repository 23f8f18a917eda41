/* irc: the IRC gateway (see irc.h and docs/irc.md). Layout: pure helpers
 * (parser, name mappings, password), then connections on the driver's loop
 * (TCP on 127.0.0.1, a line splitter capped at KITH_IRC_LINE_MAX, a queue
 * capped at KITH_IRC_MAX_UNSENT), then the commands, then node events.
 *
 * Threats answered: only local users can connect (127.0.0.1) and each must
 * send the password before anything else works; a line over the cap gets
 * 417 and is dropped whole; every malformed line gets a numeric; peers'
 * text can't inject IRC lines (CR, LF and NUL become spaces) or overflow
 * the 512-byte limit (long messages are split on character boundaries). */
#include "client/irc.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "client/client.h"
#include "crypto/crypto.h"
#include "room/room.h"
#include "store/store.h"
#include "util/util.h"
#include "uvnode/uvnode.h"

#define SERVER "kith"
#define SERVICE "*kith"
#define MAX_JOINED 64
#define MINE_RING 64

/* ---- pure helpers ---- */

static char upper(char ch)
{
    return (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
}

int kith_irc_parse(const char *line, size_t len, kith_irc_msg *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
            return KITH_EPROTO;
    size_t i = 0;
    if (i < len && line[i] == '@') {
        size_t st = ++i;
        while (i < len && line[i] != ' ')
            i++;
        if (i - st + 2 > KITH_IRC_TAGS_MAX)
            return KITH_ETOOBIG;
        out->tags = line + st;
        out->tags_len = i - st;
        while (i < len && line[i] == ' ')
            i++;
    }
    if (len - i + 2 > KITH_IRC_BODY_MAX)
        return KITH_ETOOBIG;
    if (i < len && line[i] == ':') {
        size_t st = ++i;
        while (i < len && line[i] != ' ')
            i++;
        out->prefix = line + st;
        out->prefix_len = i - st;
        while (i < len && line[i] == ' ')
            i++;
    }
    size_t st = i;
    while (i < len && line[i] != ' ')
        i++;
    size_t clen = i - st;
    if (clen == 0 || clen > KITH_IRC_CMD_MAX)
        return KITH_EPROTO;
    for (size_t k = 0; k < clen; k++) {
        char ch = line[st + k];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!ok)
            return KITH_EPROTO;
        out->command[k] = upper(ch);
    }
    out->command[clen] = '\0';
    for (;;) {
        while (i < len && line[i] == ' ')
            i++;
        if (i >= len)
            break;
        if (line[i] == ':' || out->nparams == KITH_IRC_PARAMS_MAX - 1) {
            /* The trailing parameter (or the 15th, which takes the rest). */
            if (line[i] == ':')
                i++;
            out->params[out->nparams] = line + i;
            out->param_len[out->nparams] = len - i;
            out->nparams++;
            break;
        }
        st = i;
        while (i < len && line[i] != ' ')
            i++;
        out->params[out->nparams] = line + st;
        out->param_len[out->nparams] = i - st;
        out->nparams++;
    }
    return 0;
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte), so cuts
 * land on character boundaries. */
static size_t char_len(const unsigned char *s, size_t n)
{
    size_t l = 1;
    if (s[0] >= 0xf0)
        l = 4;
    else if (s[0] >= 0xe0)
        l = 3;
    else if (s[0] >= 0xc0)
        l = 2;
    if (l > n)
        return 1;
    for (size_t i = 1; i < l; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return l;
}

size_t kith_irc_channel(
    const char *room_name, const uint8_t room_id[KITH_ROOM_ID_LEN], char *out, size_t cap)
{
    if (cap < 12)
        return 0;
    size_t o = 0;
    out[o++] = '#';
    size_t max = KITH_MIN(cap - 1, (size_t)KITH_IRC_CHAN_MAX);
    const unsigned char *p = (const unsigned char *)(room_name ? room_name : "");
    size_t n = room_name ? strnlen(room_name, 1024) : 0;
    size_t i = 0;
    while (i < n) {
        size_t l = char_len(p + i, n - i);
        if (o + l > max)
            break;
        unsigned char ch = p[i];
        if (l == 1 && (ch <= 0x20 || ch == ',' || ch == ':' || ch == 0x7f || ch >= 0x80))
            out[o++] = '_';
        else {
            memcpy(out + o, p + i, l);
            o += l;
        }
        i += l;
    }
    if (o == 1) {
        kith_hex(out + 1, room_id, 4);
        o = 9;
    }
    out[o] = '\0';
    return o;
}

static bool nick_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
        || strchr("[]\\`_^{|}-", ch) != NULL;
}

/* The node's display names (proto 5.7) use '~' only before the member's
 * own fingerprint digits; on IRC that separator is '|' (a nick character),
 * and a '|' of the chosen name becomes '_', so '|' in a member's IRC nick
 * always means the real fingerprint follows. The suffix is never cut: a
 * long name loses its end instead. */
size_t kith_irc_nick(const char *nick, char *out, size_t cap)
{
    if (cap < 5)
        return 0;
    size_t n = nick ? strnlen(nick, 1024) : 0;
    size_t max = KITH_MIN(cap - 1, (size_t)KITH_IRC_NICK_MAX);
    const char *tilde = nick ? memchr(nick, '~', n) : NULL;
    size_t base_n = tilde ? (size_t)(tilde - nick) : n;
    size_t sfx = tilde ? KITH_MIN(n - base_n, max / 2) : 0;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(nick ? nick : "");
    size_t i = 0;
    while (i < base_n && o < max - sfx) {
        size_t l = char_len(p + i, base_n - i);
        char ch = (char)p[i];
        out[o++] = (l == 1 && ch != '\0' && ch != '|' && nick_char(ch)) ? ch : '_';
        i += l;
    }
    for (size_t k = 0; k < sfx; k++) {
        char ch = (char)p[base_n + k];
        out[o++] = k == 0 ? '|' : (nick_char(ch) && ch != '|') ? ch : '_';
    }
    if (o > 0 && ((out[0] >= '0' && out[0] <= '9') || out[0] == '-'))
        out[0] = '_';
    if (o == 0) {
        memcpy(out, "anon", 4);
        o = 4;
    }
    out[o] = '\0';
    return o;
}

bool kith_irc_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (upper(a[i]) != upper(b[i]))
            return false;
    return true;
}

void kith_irc_gen_password(const kith_env *env, char out[KITH_IRC_PASS_LEN + 1])
{
    static const char alpha[]
        = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"; /* 64 */
    uint8_t r[KITH_IRC_PASS_LEN];
    kith_random(env, r, sizeof r);
    for (size_t i = 0; i < KITH_IRC_PASS_LEN; i++)
        out[i] = alpha[r[i] & 63u];
    out[KITH_IRC_PASS_LEN] = '\0';
    sodium_memzero(r, sizeof r);
}

/* ---- connections ---- */

typedef struct mine {
    uint8_t room[KITH_ROOM_ID_LEN];
    uint64_t seq;
} mine;

typedef struct ircconn {
    kith_irc *irc;
    uv_tcp_t tcp;
    struct ircconn *next;
    bool closing;
    size_t unsent;
    char in[KITH_IRC_LINE_MAX + 2];
    size_t in_len;
    bool overlong;
    char rbuf[4096];
    bool cap_negotiating, cap_time, cap_tags;
    bool pass_ok, registered, has_nick, has_user;
    char nick[KITH_IRC_NICK_MAX + 1];
    uint8_t joined[MAX_JOINED][KITH_ROOM_ID_LEN];
    size_t njoined;
    mine mine[MINE_RING]; /* our sends: not echoed back (clients show them) */
    size_t mine_pos;
    kith_uvnode_pause hold; /* reading paused while a link is backed up */
    /* The last NICK line sent: a rename arrives once per shared room, but
     * an IRC NICK is for the whole connection, so it goes out once. */
    uint8_t nick_author[KITH_MEMBER_ID_LEN];
    char nick_sent[KITH_IRC_NICK_MAX + 16];
} ircconn;

struct kith_irc {
    const kith_env *env;
    kith_node *node;
    kith_uvnode *uv;
    uv_tcp_t server;
    bool server_open;
    ircconn *conns;
    size_t nconns;
    bool stopping;
    char pass[KITH_IRC_PASS_LEN + 1];
};

typedef struct wreq {
    uv_write_t req;
    ircconn *conn;
    size_t len;
    char data[];
} wreq;

static void on_conn_closed(uv_handle_t *h)
{
    ircconn *cc = h->data;
    const kith_env *env = cc->irc->env;
    sodium_memzero(cc, sizeof *cc); /* may hold the password, typed text */
    kith_free(env, cc);
}

static void conn_close(ircconn *cc)
{
    if (cc->closing)
        return;
    cc->closing = true;
    kith_irc *irc = cc->irc;
    kith_uvnode_release(irc->uv, &cc->hold);
    for (ircconn **pp = &irc->conns; *pp; pp = &(*pp)->next)
        if (*pp == cc) {
            *pp = cc->next;
            irc->nconns--;
            break;
        }
    uv_close((uv_handle_t *)&cc->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    ircconn *cc = w->conn;
    cc->unsent -= w->len;
    kith_free(cc->irc->env, w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(cc);
}

/* Queue one line; CRLF is added. The caller kept it under the caps. */
static void conn_raw(ircconn *cc, const char *s, size_t n)
{
    if (cc->closing)
        return;
    if (cc->unsent + n + 2 > KITH_IRC_MAX_UNSENT) {
        conn_close(cc); /* a client that stopped reading */
        return;
    }
    wreq *w = kith_calloc(cc->irc->env, 1, sizeof *w + n + 2);
    if (!w) {
        conn_close(cc);
        return;
    }
    memcpy(w->data, s, n);
    memcpy(w->data + n, "\r\n", 2);
    w->len = n + 2;
    w->conn = cc;
    cc->unsent += w->len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&cc->tcp, &b, 1, on_written) != 0) {
        cc->unsent -= w->len;
        kith_free(cc->irc->env, w);
        conn_close(cc);
    }
}

static void conn_send(ircconn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_send(ircconn *cc, const char *fmt, ...)
{
    char line[KITH_IRC_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, KITH_IRC_BODY_MAX - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    conn_raw(cc, line, KITH_MIN((size_t)n, (size_t)KITH_IRC_BODY_MAX - 2));
}

static const char *me(const ircconn *cc)
{
    return cc->has_nick ? cc->nick : "*";
}

/* A numeric reply ":kith NNN nick ...". */
static void numeric(ircconn *cc, int num, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void numeric(ircconn *cc, int num, const char *fmt, ...)
{
    char rest[KITH_IRC_BODY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    conn_send(cc, ":" SERVER " %03d %s %s", num, me(cc), rest);
}

/* A parameter as a C string, NUL-terminated, cut to cap. */
static void param(const kith_irc_msg *m, size_t i, char *out, size_t cap)
{
    size_t n = i < m->nparams ? KITH_MIN(m->param_len[i], cap - 1) : 0;
    if (n)
        memcpy(out, m->params[i], n);
    out[n] = '\0';
}

static bool is_joined(const ircconn *cc, const uint8_t id[KITH_ROOM_ID_LEN], size_t *at)
{
    for (size_t i = 0; i < cc->njoined; i++)
        if (memcmp(cc->joined[i], id, KITH_ROOM_ID_LEN) == 0) {
            if (at)
                *at = i;
            return true;
        }
    return false;
}

static void room_channel(kith_irc *irc, const uint8_t id[KITH_ROOM_ID_LEN], char *out, size_t cap)
{
    kith_room_info ri;
    const char *name = kith_node_room_info(irc->node, id, &ri) == 0 ? ri.name : NULL;
    kith_irc_channel(name, id, out, cap);
}

/* The room whose channel name is chan (case-insensitive). */
static bool find_channel(kith_irc *irc, const char *chan, size_t len, uint8_t id[KITH_ROOM_ID_LEN])
{
    size_t n = kith_node_room_count(irc->node);
    for (size_t i = 0; i < n; i++) {
        kith_room_info ri;
        char c[KITH_IRC_CHAN_MAX + 16];
        if (kith_node_room_at(irc->node, i, &ri) != 0)
            continue;
        size_t cl = kith_irc_channel(ri.name, ri.id, c, sizeof c);
        if (kith_irc_name_eq(c, cl, chan, len)) {
            memcpy(id, ri.id, KITH_ROOM_ID_LEN);
            return true;
        }
    }
    return false;
}

/* "@time=... " when server-time was negotiated. */
static void time_tag(const ircconn *cc, uint64_t wall_ms, char *out, size_t cap)
{
    out[0] = '\0';
    if (!cc->cap_time || !wall_ms)
        return;
    time_t t = (time_t)(wall_ms / 1000u);
    struct tm tm;
    char iso[32];
    if (gmtime_r(&t, &tm) && strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm) > 0)
        snprintf(out, cap, "@time=%s.%03uZ ", iso, (unsigned)(wall_ms % 1000u));
}

/* Deliver text as PRIVMSG lines from `from` to target: split on newlines
 * and to fit 512 bytes, CR and NUL made spaces, cut on character
 * boundaries. action wraps each piece in CTCP ACTION. prefix_text goes in
 * front of the first piece (the replay time without server-time). */
static void deliver_text(ircconn *cc, const char *tag, const char *from, const char *target,
    bool action, const char *text, size_t len)
{
    char head[256];
    int hn = snprintf(head, sizeof head, ":%s!%s@" SERVER " PRIVMSG %s :%s", from, from, target,
        action ? "\x01"
                 "ACTION "
               : "");
    if (hn < 0 || (size_t)hn >= sizeof head)
        return;
    size_t room = KITH_IRC_BODY_MAX - 2 - (size_t)hn - (action ? 1 : 0);
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    do {
        char line[KITH_IRC_LINE_MAX];
        size_t tl = strlen(tag);
        memcpy(line, tag, tl);
        memcpy(line + tl, head, (size_t)hn);
        size_t o = tl + (size_t)hn, used = 0;
        while (i < len && p[i] != '\n') {
            size_t l = char_len(p + i, len - i);
            if (used + l > room)
                break;
            if (p[i] == '\r' || p[i] == '\0' || (action && p[i] == 0x01)) {
                line[o++] = ' ';
            } else {
                memcpy(line + o, p + i, l);
                o += l;
            }
            used += l;
            i += l;
        }
        if (i < len && p[i] == '\n')
            i++;
        if (action)
            line[o++] = 0x01;
        if (used > 0 || len == 0 || action)
            conn_raw(cc, line, o);
    } while (i < len);
}

static bool is_self_id(const kith_irc *irc, const uint8_t id[KITH_MEMBER_ID_LEN])
{
    char a[KITH_FPR_STRLEN], b[24];
    kith_fingerprint(id, a);
    kith_node_fingerprint(irc->node, b);
    return strncmp(a, b, sizeof b) == 0;
}

/* The IRC nick of a member of a room, from its display name (ours is the
 * IRC client's own). IRC shows fewer characters than kith (non-ASCII
 * becomes '_'), so two members the node tells apart can map to one IRC
 * nick, or a member to the IRC user's own: then the fingerprint's first
 * digits follow a '|', as the node's suffixes do. */
static void room_nick(const ircconn *cc, const uint8_t *room, const uint8_t id[KITH_MEMBER_ID_LEN],
    const char *display, char *out, size_t cap)
{
    if (is_self_id(cc->irc, id)) {
        snprintf(out, cap, "%s", cc->nick);
        return;
    }
    size_t len = kith_irc_nick(display, out, cap);
    if (len == 0 || memchr(out, '|', len))
        return; /* already carries its own fingerprint */
    kith_node *node = cc->irc->node;
    bool clash = kith_irc_name_eq(out, len, cc->nick, strlen(cc->nick));
    size_t n = room ? kith_node_member_count(node, room) : 0;
    for (size_t i = 0; i < n && !clash; i++) {
        kith_member_info mi;
        char o[KITH_IRC_NICK_MAX + 16];
        if (kith_node_member_at(node, room, i, &mi) != 0 || mi.self
            || memcmp(mi.id, id, KITH_MEMBER_ID_LEN) == 0)
            continue;
        size_t ol = kith_irc_nick(mi.nick, o, sizeof o);
        clash = kith_irc_name_eq(o, ol, out, len);
    }
    if (!clash)
        return;
    char fpr[KITH_FPR_STRLEN];
    kith_fingerprint(id, fpr);
    size_t keep = KITH_MIN(len, KITH_MIN((size_t)KITH_IRC_NICK_MAX, cap - 1) - 5);
    snprintf(out + keep, cap - keep, "|%.4s", fpr);
}

static void ev_from(ircconn *cc, const kith_event *ev, char *out, size_t cap)
{
    if (ev->self)
        snprintf(out, cap, "%s", cc->nick);
    else if (ev->nick && ev->nick[0])
        room_nick(cc, ev->has_room ? ev->room_id : NULL, ev->author, ev->nick, out, cap);
    else {
        char hex[9];
        kith_hex(hex, ev->author, 4);
        snprintf(out, cap, "_%s", hex);
    }
}

/* At most n bytes of s, cut on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t n)
{
    if (len <= n)
        return len;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Edits, deletes and reactions have no IRC form: they come as actions in
 * words ("* bob reacted 👍 to alice: "hi""), like the line client's; in
 * history a message reads as it does now. Returns the text length, 0 to
 * send nothing. */
static size_t change_text(const kith_event *ev, bool *action, char *out, size_t cap)
{
    const char *t = ev->text ? ev->text : "";
    int tl = (int)KITH_MIN(ev->text ? ev->text_len : 0, (size_t)KITH_CLIENT_LINE_MAX);
    char ctx[160] = "";
    if (ev->ctx_nick) {
        size_t cl = ev->ctx ? strlen(ev->ctx) : 0, cut = utf8_cut(ev->ctx ? ev->ctx : "", cl, 40);
        if (cl)
            snprintf(ctx, sizeof ctx, " to %s: \"%.*s%s\"", ev->ctx_nick, (int)cut, ev->ctx,
                cut < cl ? "\xe2\x80\xa6" : "");
        else
            snprintf(ctx, sizeof ctx, " to %s", ev->ctx_nick);
    }
    int n = 0;
    *action = true;
    switch (ev->msg_type) {
    case 1:
    case 2:
        *action = ev->msg_type == 2;
        if (ev->deleted)
            n = snprintf(out, cap, "[message deleted]");
        else
            n = snprintf(out, cap, "%.*s%s", tl, t, ev->edited ? " (edited)" : "");
        break;
    case 4:
        n = snprintf(out, cap, "edited: %.*s", tl, t);
        break;
    case 5:
        if (ev->target_type == 6)
            n = snprintf(out, cap, "took back %.*s%s", tl, t, ctx);
        else
            n = snprintf(out, cap, "deleted a message");
        break;
    case 6:
        n = snprintf(out, cap, "reacted %.*s%s", tl, t, ctx);
        break;
    default:
        return 0;
    }
    return n < 0 ? 0 : KITH_MIN((size_t)n, cap - 1);
}

static void send_message(ircconn *cc, const kith_event *ev, bool replay)
{
    char chan[KITH_IRC_CHAN_MAX + 16], from[KITH_IRC_NICK_MAX + 16], tag[64];
    if (ev->msg_type < 1 || ev->msg_type > 6 || ev->msg_type == 3)
        return;
    if (replay && ev->msg_type == 6)
        return; /* reactions in the replay would bury the conversation */
    static char changed[KITH_CLIENT_LINE_MAX + 256];
    bool action = false;
    size_t cl = change_text(ev, &action, changed, sizeof changed);
    if (!cl && ev->msg_type != 2)
        return;
    room_channel(cc->irc, ev->room_id, chan, sizeof chan);
    ev_from(cc, ev, from, sizeof from);
    time_tag(cc, ev->wall_ms, tag, sizeof tag);
    const char *text = changed;
    size_t tl = cl;
    if (replay && !cc->cap_time) {
        /* No server-time: say when, in the text. */
        char when[64], buf[KITH_CLIENT_LINE_MAX + 64];
        time_t t = (time_t)(ev->wall_ms / 1000u);
        struct tm tm;
        if (!localtime_r(&t, &tm) || strftime(when, sizeof when, "[%Y-%m-%d %H:%M] ", &tm) == 0)
            snprintf(when, sizeof when, "[history] ");
        size_t wl = strlen(when);
        size_t n = KITH_MIN(tl, sizeof buf - wl);
        memcpy(buf, when, wl);
        memcpy(buf + wl, text, n);
        deliver_text(cc, tag, from, chan, action, buf, wl + n);
        return;
    }
    deliver_text(cc, tag, from, chan, action, text, tl);
}

/* ---- commands ---- */

static void svc(ircconn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void svc(ircconn *cc, const char *fmt, ...)
{
    char text[KITH_IRC_BODY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    deliver_text(cc, "", SERVICE, cc->nick, false, text, strlen(text));
}

/* Roles as channel modes: admins and moderators are operators (+o),
 * members may speak (+v), observers have neither. */
static const char *role_prefix(int role)
{
    return role >= KITH_ROLE_MODERATOR ? "@" : role == KITH_ROLE_MEMBER ? "+" : "";
}

static void send_topic(ircconn *cc, const uint8_t id[KITH_ROOM_ID_LEN], const char *chan)
{
    kith_room_info ri;
    char topic[KITH_IRC_BODY_MAX];
    if (kith_node_room_info(cc->irc->node, id, &ri) == 0 && ri.topic && ri.topic[0]) {
        kith_client_sanitize(topic, 400, ri.topic, strnlen(ri.topic, 1024));
        numeric(cc, 332, "%s :%s", chan, topic);
    } else {
        numeric(cc, 331, "%s :No topic is set", chan);
    }
}

static void send_names(ircconn *cc, const uint8_t id[KITH_ROOM_ID_LEN], const char *chan)
{
    kith_irc *irc = cc->irc;
    char line[KITH_IRC_BODY_MAX];
    size_t o = 0;
    size_t n = kith_node_member_count(irc->node, id);
    for (size_t i = 0; i < n; i++) {
        kith_member_info mi;
        if (kith_node_member_at(irc->node, id, i, &mi) != 0)
            continue;
        char nk[KITH_IRC_NICK_MAX + 16];
        room_nick(cc, id, mi.id, mi.nick, nk, sizeof nk);
        const char *pre = role_prefix(mi.role);
        if (o + strlen(nk) + 3 > 400) {
            numeric(cc, 353, "= %s :%s", chan, line);
            o = 0;
        }
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s%s", o ? " " : "", pre, nk);
    }
    if (o)
        numeric(cc, 353, "= %s :%s", chan, line);
    numeric(cc, 366, "%s :End of /NAMES list.", chan);
}

typedef struct replay_ctx {
    ircconn *cc;
} replay_ctx;

static void on_replay(void *ud, const kith_event *ev)
{
    replay_ctx *r = ud;
    send_message(r->cc, ev, true);
}

static void do_join(ircconn *cc, const uint8_t id[KITH_ROOM_ID_LEN])
{
    if (is_joined(cc, id, NULL))
        return;
    if (cc->njoined >= MAX_JOINED) {
        numeric(cc, 405, "#? :You have joined too many channels");
        return;
    }
    memcpy(cc->joined[cc->njoined++], id, KITH_ROOM_ID_LEN);
    char chan[KITH_IRC_CHAN_MAX + 16];
    room_channel(cc->irc, id, chan, sizeof chan);
    conn_send(cc, ":%s!%s@" SERVER " JOIN %s", cc->nick, cc->nick, chan);
    send_topic(cc, id, chan);
    send_names(cc, id, chan);
    replay_ctx r = { cc };
    if (kith_node_history(cc->irc->node, id, KITH_IRC_REPLAY, on_replay, &r) < 0)
        numeric(cc, 403, "%s :cannot read the history", chan);
}

static bool need_params(ircconn *cc, const kith_irc_msg *m, size_t n)
{
    if (m->nparams >= n && (n == 0 || m->param_len[n - 1] > 0))
        return true;
    numeric(cc, 461, "%s :Not enough parameters", m->command);
    return false;
}

static void cmd_join(ircconn *cc, const kith_irc_msg *m)
{
    if (!need_params(cc, m, 1))
        return;
    kith_irc *irc = cc->irc;
    const char *s = m->params[0];
    size_t n = m->param_len[0];
    if (n == 1 && s[0] == '0') { /* JOIN 0: leave every channel */
        while (cc->njoined) {
            char chan[KITH_IRC_CHAN_MAX + 16];
            room_channel(irc, cc->joined[cc->njoined - 1], chan, sizeof chan);
            conn_send(cc, ":%s!%s@" SERVER " PART %s", cc->nick, cc->nick, chan);
            cc->njoined--;
        }
        return;
    }
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        while (i < n && s[i] != ',')
            i++;
        const char *c = s + st;
        size_t cl = i - st;
        i++;
        if (cl == 0)
            continue;
        char shown[KITH_IRC_CHAN_MAX + 1];
        kith_client_sanitize(shown, sizeof shown, c, KITH_MIN(cl, (size_t)KITH_IRC_CHAN_MAX));
        for (char *q = shown; *q; q++)
            if (*q == ' ')
                *q = '_';
        if (c[0] != '#' || cl < 2 || cl > KITH_IRC_CHAN_MAX) {
            numeric(cc, 403, "%s :No such channel (kith rooms are #channels)", shown);
            continue;
        }
        uint8_t id[KITH_ROOM_ID_LEN];
        if (!find_channel(irc, c, cl, id)) {
            /* IRC's JOIN creates a channel; here it creates a room. */
            char name[KITH_IRC_CHAN_MAX + 1];
            memcpy(name, c + 1, cl - 1);
            name[cl - 1] = '\0';
            if (!kith_client_utf8_valid(name, cl - 1)) {
                numeric(cc, 479, "%s :Illegal channel name", shown);
                continue;
            }
            int rc = kith_node_create_room(irc->node, name, id);
            kith_uvnode_kick(irc->uv);
            if (rc < 0) {
                numeric(cc, 403, "%s :cannot create the room: %s", shown, kith_strerror(rc));
                continue;
            }
        }
        do_join(cc, id);
    }
}

static void cmd_part(ircconn *cc, const kith_irc_msg *m)
{
    if (!need_params(cc, m, 1))
        return;
    const char *s = m->params[0];
    size_t n = m->param_len[0], i = 0;
    while (i < n) {
        size_t st = i;
        while (i < n && s[i] != ',')
            i++;
        uint8_t id[KITH_ROOM_ID_LEN];
        size_t at;
        char chan[KITH_IRC_CHAN_MAX + 16];
        if (find_channel(cc->irc, s + st, i - st, id) && is_joined(cc, id, &at)) {
            room_channel(cc->irc, id, chan, sizeof chan);
            conn_send(cc, ":%s!%s@" SERVER " PART %s", cc->nick, cc->nick, chan);
            memmove(cc->joined[at], cc->joined[at + 1], (cc->njoined - at - 1) * KITH_ROOM_ID_LEN);
            cc->njoined--;
        } else {
            kith_client_sanitize(chan, sizeof chan, s + st, KITH_MIN(i - st, (size_t)64));
            numeric(cc, 442, "%s :You're not on that channel", chan[0] ? chan : "*");
        }
        i++;
    }
}

static void remember_mine(ircconn *cc, const uint8_t id[KITH_ROOM_ID_LEN], uint64_t seq)
{
    mine *mm = &cc->mine[cc->mine_pos++ % MINE_RING];
    memcpy(mm->room, id, KITH_ROOM_ID_LEN);
    mm->seq = seq;
}

static bool is_mine(const ircconn *cc, const kith_event *ev)
{
    for (size_t i = 0; i < MINE_RING; i++)
        if (cc->mine[i].seq == ev->seq && ev->seq
            && memcmp(cc->mine[i].room, ev->room_id, KITH_ROOM_ID_LEN) == 0)
            return true;
    return false;
}

static void service_command(ircconn *cc, const char *text, size_t len);

static void cmd_privmsg(ircconn *cc, const kith_irc_msg *m, bool notice)
{
    if (m->nparams < 1 || m->param_len[0] == 0) {
        if (!notice)
            numeric(cc, 411, ":No recipient given (%s)", m->command);
        return;
    }
    if (m->nparams < 2 || m->param_len[1] == 0) {
        if (!notice)
            numeric(cc, 412, ":No text to send");
        return;
    }
    const char *target = m->params[0];
    size_t tlen = m->param_len[0];
    const char *text = m->params[1];
    size_t len = m->param_len[1];
    char shown[KITH_IRC_CHAN_MAX + 1];
    kith_client_sanitize(shown, sizeof shown, target, KITH_MIN(tlen, (size_t)KITH_IRC_CHAN_MAX));
    if (kith_irc_name_eq(target, tlen, SERVICE, strlen(SERVICE))) {
        if (!notice)
            service_command(cc, text, len);
        return;
    }
    if (target[0] != '#') {
        if (!notice)
            numeric(cc, 401, "%s :No such nick (kith has rooms, not private messages)", shown);
        return;
    }
    uint8_t id[KITH_ROOM_ID_LEN];
    if (!find_channel(cc->irc, target, tlen, id)) {
        if (!notice)
            numeric(cc, 403, "%s :No such channel", shown);
        return;
    }
    uint32_t type = 1;
    if (len >= 1 && text[0] == 0x01) {
        /* CTCP: ACTION is /me; others have no meaning here. */
        if (len >= 8
            && memcmp(text,
                   "\x01"
                   "ACTION ",
                   8)
                == 0) {
            type = 2;
            text += 8;
            len -= 8;
            if (len && text[len - 1] == 0x01)
                len--;
        } else {
            return;
        }
    }
    if (len == 0)
        return;
    if (!kith_client_utf8_valid(text, len)) {
        if (!notice)
            numeric(cc, 404, "%s :Cannot send: the message is not valid UTF-8", shown);
        return;
    }
    uint64_t seq;
    int rc = kith_node_send(cc->irc->node, id, type, text, len, &seq);
    kith_uvnode_kick(cc->irc->uv);
    if (rc < 0) {
        if (!notice)
            numeric(cc, 404, "%s :Cannot send: %s", shown, kith_strerror(rc));
        return;
    }
    remember_mine(cc, id, seq);
}

static void cmd_who(ircconn *cc, const kith_irc_msg *m)
{
    char mask[KITH_IRC_CHAN_MAX + 1];
    param(m, 0, mask, sizeof mask);
    uint8_t id[KITH_ROOM_ID_LEN];
    char clean[KITH_IRC_CHAN_MAX + 1];
    kith_client_sanitize(clean, sizeof clean, mask, strlen(mask));
    if (mask[0] == '#' && find_channel(cc->irc, mask, strlen(mask), id)) {
        char chan[KITH_IRC_CHAN_MAX + 16];
        room_channel(cc->irc, id, chan, sizeof chan);
        size_t n = kith_node_member_count(cc->irc->node, id);
        for (size_t i = 0; i < n; i++) {
            kith_member_info mi;
            if (kith_node_member_at(cc->irc->node, id, i, &mi) != 0)
                continue;
            char nk[KITH_IRC_NICK_MAX + 16];
            room_nick(cc, id, mi.id, mi.nick, nk, sizeof nk);
            char fpr[32];
            kith_client_sanitize(fpr, sizeof fpr, mi.fingerprint, strnlen(mi.fingerprint, 24));
            numeric(cc, 352, "%s %s " SERVER " " SERVER " %s %s%s :0 %s", chan, nk, nk,
                (mi.self || mi.online) ? "H" : "G", role_prefix(mi.role), fpr);
        }
    }
    numeric(cc, 315, "%s :End of /WHO list.", clean[0] ? clean : "*");
}

/* ---- membership: KICK, MODE o/v/b and TOPIC, both ways ---- */

/* A member by the nick an IRC client shows (or a mask "nick!*@*"); with
 * `former`, also someone no longer in the room (to unban). *role is the
 * member's role (0 for a former member). */
static int find_irc_member(ircconn *cc, const uint8_t room[KITH_ROOM_ID_LEN], const char *nick,
    bool former, uint8_t out[KITH_MEMBER_ID_LEN], int *role)
{
    kith_node *node = cc->irc->node;
    size_t nl = strcspn(nick, "!");
    int found = 0;
    *role = 0;
    size_t n = kith_node_member_count(node, room);
    for (size_t i = 0; i < n; i++) {
        kith_member_info mi;
        char nk[KITH_IRC_NICK_MAX + 16];
        if (kith_node_member_at(node, room, i, &mi) != 0)
            continue;
        room_nick(cc, room, mi.id, mi.nick, nk, sizeof nk);
        if (kith_irc_name_eq(nk, strlen(nk), nick, nl)) {
            memcpy(out, mi.id, KITH_MEMBER_ID_LEN);
            *role = mi.role;
            found++;
        }
    }
    if (found)
        return found == 1 ? 0 : KITH_EEXIST;
    /* Typed the kith way ("alice~3f2a") or a former member: the node
     * matches display names, chosen names and fingerprint prefixes. */
    char conv[KITH_IRC_NICK_MAX * 2 + 1];
    snprintf(conv, sizeof conv, "%.*s", (int)KITH_MIN(nl, sizeof conv - 1), nick);
    for (char *q = conv; *q; q++)
        if (*q == '|')
            *q = '~';
    int rc = kith_node_find_member(node, room, conv, former, out);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        kith_member_info mi;
        if (kith_node_member_at(node, room, i, &mi) == 0
            && memcmp(mi.id, out, KITH_MEMBER_ID_LEN) == 0)
            *role = mi.role;
    }
    return rc;
}

static void member_err(ircconn *cc, const char *chan, const char *nick, int rc)
{
    char clean[KITH_IRC_NICK_MAX + 1];
    kith_client_sanitize(clean, sizeof clean, nick, strnlen(nick, KITH_IRC_NICK_MAX));
    for (char *q = clean; *q; q++)
        if (*q == ' ')
            *q = '_';
    if (rc == KITH_EPERM)
        numeric(cc, 482,
            "%s :You're not channel operator (your role in this room does not permit it)", chan);
    else if (rc == KITH_ENOENT)
        numeric(cc, 441, "%s %s :They aren't on that channel", clean[0] ? clean : "*", chan);
    else if (rc == KITH_EEXIST)
        numeric(cc, 441, "%s %s :More than one member matches: use the nick with its |suffix",
            clean[0] ? clean : "*", chan);
    else if (rc == KITH_EINVAL)
        numeric(cc, 482,
            "%s :Not possible (PART leaves the channel; you can't do that to yourself)", chan);
    else
        numeric(cc, 482, "%s :Cannot do that: %s", chan, kith_strerror(rc));
}

static void cmd_kick(ircconn *cc, const kith_irc_msg *m)
{
    if (!need_params(cc, m, 2))
        return;
    char target[KITH_IRC_CHAN_MAX + 1], nick[KITH_IRC_NICK_MAX * 2 + 1];
    param(m, 0, target, sizeof target);
    param(m, 1, nick, sizeof nick);
    nick[strcspn(nick, ",")] = '\0'; /* one at a time */
    uint8_t id[KITH_ROOM_ID_LEN], who[KITH_MEMBER_ID_LEN];
    char chan[KITH_IRC_CHAN_MAX + 16];
    if (!find_channel(cc->irc, target, strlen(target), id)) {
        kith_client_sanitize(chan, sizeof chan, target, strlen(target));
        numeric(cc, 403, "%s :No such channel", chan[0] ? chan : "*");
        return;
    }
    room_channel(cc->irc, id, chan, sizeof chan);
    int role;
    int rc = find_irc_member(cc, id, nick, false, who, &role);
    if (!rc)
        rc = kith_node_member_op(cc->irc->node, id, KITH_MOP_REMOVE, who, 0, NULL);
    kith_uvnode_kick(cc->irc->uv);
    if (rc < 0)
        member_err(cc, chan, nick, rc); /* success shows as the KICK the node reports */
}

/* MODE #chan with o, v and b: a role change, a ban or unban. +o makes an
 * admin (as /op), -o a member, +v an observer a member, -v a member an
 * observer; a change that would not change the role does nothing. */
static void channel_modes(ircconn *cc, const kith_irc_msg *m, const uint8_t id[KITH_ROOM_ID_LEN],
    const char *chan, const char *modes)
{
    bool add = true;
    size_t arg = 2;
    for (const char *q = modes; *q; q++) {
        char ch = *q;
        if (ch == '+' || ch == '-') {
            add = ch == '+';
            continue;
        }
        if (ch == 'b' && arg >= m->nparams) {
            numeric(cc, 368, "%s :End of channel ban list", chan);
            continue;
        }
        if (ch != 'o' && ch != 'v' && ch != 'b') {
            numeric(cc, 472, "%c :is unknown mode char to me", (ch > 0x20 && ch < 0x7f) ? ch : '?');
            continue;
        }
        if (arg >= m->nparams) {
            numeric(cc, 461, "MODE :Not enough parameters");
            return;
        }
        char nick[KITH_IRC_NICK_MAX * 2 + 1];
        param(m, arg++, nick, sizeof nick);
        uint8_t who[KITH_MEMBER_ID_LEN];
        int role;
        int rc = find_irc_member(cc, id, nick, ch == 'b' && !add, who, &role);
        int kind = KITH_MOP_SET_ROLE, to = 0;
        if (!rc && ch == 'o')
            to = add ? (role < KITH_ROLE_ADMIN ? KITH_ROLE_ADMIN : 0)
                     : (role >= KITH_ROLE_MODERATOR ? KITH_ROLE_MEMBER : 0);
        else if (!rc && ch == 'v')
            to = add ? (role == KITH_ROLE_OBSERVER ? KITH_ROLE_MEMBER : 0)
                     : (role == KITH_ROLE_MEMBER ? KITH_ROLE_OBSERVER : 0);
        else if (!rc)
            kind = add ? KITH_MOP_BAN : KITH_MOP_UNBAN;
        if (!rc && (kind != KITH_MOP_SET_ROLE || to))
            rc = kith_node_member_op(cc->irc->node, id, kind, who, to, NULL);
        kith_uvnode_kick(cc->irc->uv);
        if (rc < 0)
            member_err(cc, chan, nick, rc);
    }
}

static void cmd_topic(ircconn *cc, const kith_irc_msg *m)
{
    char target[KITH_IRC_CHAN_MAX + 1], chan[KITH_IRC_CHAN_MAX + 16];
    uint8_t id[KITH_ROOM_ID_LEN];
    if (!need_params(cc, m, 1))
        return;
    param(m, 0, target, sizeof target);
    if (!find_channel(cc->irc, target, strlen(target), id)) {
        kith_client_sanitize(chan, sizeof chan, target, strlen(target));
        numeric(cc, 403, "%s :No such channel", chan[0] ? chan : "*");
        return;
    }
    room_channel(cc->irc, id, chan, sizeof chan);
    if (m->nparams < 2) {
        send_topic(cc, id, chan);
        return;
    }
    char text[KITH_IRC_BODY_MAX];
    size_t len = KITH_MIN(m->param_len[1], sizeof text - 1);
    memcpy(text, m->params[1], len);
    text[len] = '\0';
    int rc = kith_node_member_op(cc->irc->node, id, KITH_MOP_SET_TOPIC, NULL, 0, text);
    kith_uvnode_kick(cc->irc->uv);
    if (rc == KITH_EINVAL)
        numeric(cc, 482,
            "%s :Cannot set that topic: at most %d bytes of UTF-8, no control characters", chan,
            KITH_TOPIC_MAX);
    else if (rc < 0)
        member_err(cc, chan, "*", rc);
}

static void unjoin(ircconn *cc, const uint8_t id[KITH_ROOM_ID_LEN])
{
    size_t at;
    if (!is_joined(cc, id, &at))
        return;
    memmove(cc->joined[at], cc->joined[at + 1], (cc->njoined - at - 1) * KITH_ROOM_ID_LEN);
    cc->njoined--;
}

/* A membership change the node reports, in IRC terms. */
static void member_change(ircconn *cc, const kith_event *ev)
{
    char chan[KITH_IRC_CHAN_MAX + 16], by[KITH_IRC_NICK_MAX + 16], who[KITH_IRC_NICK_MAX + 16];
    room_channel(cc->irc, ev->room_id, chan, sizeof chan);
    room_nick(cc, ev->room_id, ev->author, ev->nick, by, sizeof by);
    room_nick(cc, ev->room_id, ev->subject, ev->subject_nick, who, sizeof who);
    bool me = is_self_id(cc->irc, ev->subject);
    switch (ev->op) {
    case KITH_MOP_BAN:
        conn_send(cc, ":%s!%s@" SERVER " MODE %s +b %s!*@*", by, by, chan, who);
        conn_send(cc, ":%s!%s@" SERVER " KICK %s %s :banned by %s", by, by, chan, who, by);
        if (me)
            unjoin(cc, ev->room_id);
        break;
    case KITH_MOP_REMOVE:
        conn_send(cc, ":%s!%s@" SERVER " KICK %s %s :removed by %s", by, by, chan, who, by);
        if (me)
            unjoin(cc, ev->room_id);
        break;
    case KITH_MOP_UNBAN:
        conn_send(cc, ":%s!%s@" SERVER " MODE %s -b %s!*@*", by, by, chan, who);
        break;
    case KITH_MOP_SET_ROLE:
        if (ev->role >= KITH_ROLE_MODERATOR)
            conn_send(cc, ":%s!%s@" SERVER " MODE %s +o %s", by, by, chan, who);
        else if (ev->role == KITH_ROLE_MEMBER)
            conn_send(cc, ":%s!%s@" SERVER " MODE %s -o+v %s %s", by, by, chan, who, who);
        else
            conn_send(cc, ":%s!%s@" SERVER " MODE %s -ov %s %s", by, by, chan, who, who);
        break;
    case KITH_MOP_SET_TOPIC: {
        char topic[KITH_IRC_BODY_MAX];
        kith_client_sanitize(topic, 400, ev->text ? ev->text : "", ev->text ? ev->text_len : 0);
        conn_send(cc, ":%s!%s@" SERVER " TOPIC %s :%s", by, by, chan, topic);
        break;
    }
    case KITH_MOP_LEAVE:
        conn_send(cc, ":%s!%s@" SERVER " PART %s :left the room", who, who, chan);
        if (me)
            unjoin(cc, ev->room_id);
        break;
    default:
        break;
    }
}

static void cmd_mode(ircconn *cc, const kith_irc_msg *m)
{
    if (!need_params(cc, m, 1))
        return;
    char target[KITH_IRC_CHAN_MAX + 1], modes[64];
    param(m, 0, target, sizeof target);
    param(m, 1, modes, sizeof modes);
    char clean[KITH_IRC_CHAN_MAX + 1];
    kith_client_sanitize(clean, sizeof clean, target, strlen(target));
    if (target[0] != '#') {
        if (kith_irc_name_eq(target, strlen(target), cc->nick, strlen(cc->nick)))
            numeric(cc, 221, "+i");
        else
            numeric(cc, 502, ":Can't change mode for other users");
        return;
    }
    uint8_t id[KITH_ROOM_ID_LEN];
    if (!find_channel(cc->irc, target, strlen(target), id)) {
        numeric(cc, 403, "%s :No such channel", clean);
        return;
    }
    char chan[KITH_IRC_CHAN_MAX + 16];
    room_channel(cc->irc, id, chan, sizeof chan);
    if (!modes[0]) {
        numeric(cc, 324, "%s +nt", chan);
        return;
    }
    channel_modes(cc, m, id, chan, modes);
}

static void welcome(ircconn *cc)
{
    kith_irc *irc = cc->irc;
    cc->registered = true;
    numeric(cc, 1, ":Welcome to kith, %s", cc->nick);
    numeric(cc, 2, ":Your host is " SERVER ", running kith %s", KITH_VERSION);
    numeric(cc, 3, ":This gateway was started for your node");
    numeric(cc, 4, SERVER " %s i nt", KITH_VERSION);
    numeric(cc, 5,
        "CHANTYPES=# PREFIX=(ov)@+ CHANMODES=b,,,nt NETWORK=kith CASEMAPPING=ascii NICKLEN=%d "
        "CHANNELLEN=%d :are supported by this server",
        KITH_IRC_NICK_MAX, KITH_IRC_CHAN_MAX);
    numeric(cc, 422, ":No MOTD; /msg " SERVICE " help");
    /* Every room is a channel we are in: join them all. */
    size_t n = kith_node_room_count(irc->node);
    for (size_t i = 0; i < n && !cc->closing; i++) {
        kith_room_info ri;
        if (kith_node_room_at(irc->node, i, &ri) == 0)
            do_join(cc, ri.id);
    }
}

static void try_register(ircconn *cc)
{
    if (cc->registered || !cc->has_nick || !cc->has_user || cc->cap_negotiating)
        return;
    if (!cc->pass_ok) {
        numeric(
            cc, 464, ":Password incorrect (see the kith banner or HOME/" KITH_IRC_PASS_BLOB ")");
        conn_send(cc, "ERROR :Closing Link: password incorrect");
        conn_close(cc);
        return;
    }
    welcome(cc);
}

static bool valid_irc_nick(const char *s, size_t n)
{
    char t[KITH_IRC_NICK_MAX + 8];
    if (n == 0 || n > KITH_IRC_NICK_MAX)
        return false;
    char in[KITH_IRC_NICK_MAX + 1];
    memcpy(in, s, n);
    in[n] = '\0';
    return kith_irc_nick(in, t, sizeof t) == n && memcmp(t, s, n) == 0;
}

static void cmd_nick(ircconn *cc, const kith_irc_msg *m)
{
    if (m->nparams < 1 || m->param_len[0] == 0) {
        numeric(cc, 431, ":No nickname given");
        return;
    }
    const char *s = m->params[0];
    size_t n = m->param_len[0];
    if (!valid_irc_nick(s, n) || kith_irc_name_eq(s, n, SERVICE, strlen(SERVICE))) {
        char clean[KITH_IRC_NICK_MAX + 1];
        kith_client_sanitize(clean, sizeof clean, s, KITH_MIN(n, (size_t)KITH_IRC_NICK_MAX));
        numeric(cc, 432, "%s :Erroneous nickname", clean[0] ? clean : "*");
        return;
    }
    char old[KITH_IRC_NICK_MAX + 1];
    snprintf(old, sizeof old, "%s", cc->nick);
    memcpy(cc->nick, s, n);
    cc->nick[n] = '\0';
    cc->has_nick = true;
    if (cc->registered) {
        int rc = kith_node_set_nick(cc->irc->node, cc->nick);
        kith_uvnode_kick(cc->irc->uv);
        if (rc < 0) {
            snprintf(cc->nick, sizeof cc->nick, "%s", old);
            numeric(cc, 432, "%s :cannot change nick: %s", old, kith_strerror(rc));
            return;
        }
        conn_send(cc, ":%s!%s@" SERVER " NICK :%s", old, old, cc->nick);
    } else {
        try_register(cc);
    }
}

static void cmd_cap(ircconn *cc, const kith_irc_msg *m)
{
    char sub[16];
    param(m, 0, sub, sizeof sub);
    for (char *q = sub; *q; q++)
        *q = upper(*q);
    if (strcmp(sub, "LS") == 0) {
        if (!cc->registered)
            cc->cap_negotiating = true;
        conn_send(cc, ":" SERVER " CAP %s LS :server-time message-tags", me(cc));
    } else if (strcmp(sub, "LIST") == 0) {
        conn_send(cc, ":" SERVER " CAP %s LIST :%s%s", me(cc), cc->cap_time ? "server-time " : "",
            cc->cap_tags ? "message-tags" : "");
    } else if (strcmp(sub, "REQ") == 0) {
        if (!cc->registered)
            cc->cap_negotiating = true;
        char want[256];
        param(m, 1, want, sizeof want);
        bool time_on = cc->cap_time, tags_on = cc->cap_tags, ok = true;
        char *save = NULL;
        for (char *w = strtok_r(want, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            bool off = w[0] == '-';
            const char *name = off ? w + 1 : w;
            if (strcmp(name, "server-time") == 0)
                time_on = !off;
            else if (strcmp(name, "message-tags") == 0)
                tags_on = !off;
            else
                ok = false;
        }
        param(m, 1, want, sizeof want);
        if (ok) {
            cc->cap_time = time_on;
            cc->cap_tags = tags_on;
        }
        conn_send(cc, ":" SERVER " CAP %s %s :%s", me(cc), ok ? "ACK" : "NAK", want);
    } else if (strcmp(sub, "END") == 0) {
        cc->cap_negotiating = false;
        try_register(cc);
    } else {
        char clean[16];
        kith_client_sanitize(clean, sizeof clean, sub, strlen(sub));
        numeric(cc, 410, "%s :Invalid CAP command", clean[0] ? clean : "*");
    }
}

static void cmd_list(ircconn *cc)
{
    kith_irc *irc = cc->irc;
    numeric(cc, 321, "Channel :Users  Name");
    size_t n = kith_node_room_count(irc->node);
    for (size_t i = 0; i < n; i++) {
        kith_room_info ri;
        char chan[KITH_IRC_CHAN_MAX + 16];
        if (kith_node_room_at(irc->node, i, &ri) != 0)
            continue;
        kith_irc_channel(ri.name, ri.id, chan, sizeof chan);
        numeric(
            cc, 322, "%s %zu :%zu online, %zu messages", chan, ri.members, ri.online, ri.messages);
    }
    numeric(cc, 323, ":End of /LIST");
}

static void service_command(ircconn *cc, const char *text, size_t len)
{
    kith_irc *irc = cc->irc;
    char buf[1024];
    size_t n = KITH_MIN(len, sizeof buf - 1);
    memcpy(buf, text, n);
    buf[n] = '\0';
    char *save = NULL;
    char *verb = strtok_r(buf, " ", &save);
    char *arg = strtok_r(NULL, " ", &save);
    if (!verb || strcmp(verb, "help") == 0) {
        svc(cc, "commands: invite [#channel] | join CODE | verify [#channel] | rooms | help");
        svc(cc, "JOIN #name creates a room; rooms you join elsewhere appear as channels");
        return;
    }
    uint8_t id[KITH_ROOM_ID_LEN];
    bool have_room = false;
    if (arg && arg[0] == '#')
        have_room = find_channel(irc, arg, strlen(arg), id);
    else if (cc->njoined) {
        memcpy(id, cc->joined[cc->njoined - 1], KITH_ROOM_ID_LEN);
        have_room = true;
    }
    if (strcmp(verb, "invite") == 0) {
        if (!have_room) {
            svc(cc, "no such room: invite #channel");
            return;
        }
        char code[1024], chan[KITH_IRC_CHAN_MAX + 16];
        int rc = kith_node_invite(irc->node, id, 0, code, sizeof code);
        kith_uvnode_kick(irc->uv);
        room_channel(irc, id, chan, sizeof chan);
        if (rc < 0)
            svc(cc, "cannot invite to %s: %s", chan, kith_strerror(rc));
        else
            svc(cc, "invite for %s (one use, expires in 24h): %s", chan, code);
    } else if (strcmp(verb, "join") == 0) {
        if (!arg) {
            svc(cc, "usage: join CODE");
            return;
        }
        int rc = kith_node_join(irc->node, arg);
        kith_uvnode_kick(irc->uv);
        if (rc < 0)
            svc(cc, "join failed: %s",
                rc == KITH_EINVAL         ? "not a valid invite code"
                    : rc == KITH_EEXPIRED ? "the invite has expired: ask for a new one"
                    : rc == KITH_EEXIST   ? "you are already in that room"
                                          : kith_strerror(rc));
        else
            svc(cc, "joining; the room's channel opens when it is done");
    } else if (strcmp(verb, "verify") == 0 || strcmp(verb, "who") == 0) {
        if (!have_room) {
            svc(cc, "no such room: verify #channel");
            return;
        }
        size_t cnt = kith_node_member_count(irc->node, id);
        svc(cc, "compare these fingerprints with each person out of band:");
        for (size_t i = 0; i < cnt; i++) {
            kith_member_info mi;
            if (kith_node_member_at(irc->node, id, i, &mi) != 0)
                continue;
            char nk[KITH_IRC_NICK_MAX + 16], fpr[32];
            room_nick(cc, id, mi.id, mi.nick, nk, sizeof nk);
            kith_client_sanitize(fpr, sizeof fpr, mi.fingerprint, strnlen(mi.fingerprint, 24));
            svc(cc, "%s  %s%s", nk, fpr, mi.self ? "  (you)" : "");
        }
    } else if (strcmp(verb, "rooms") == 0) {
        size_t cnt = kith_node_room_count(irc->node);
        for (size_t i = 0; i < cnt; i++) {
            kith_room_info ri;
            char chan[KITH_IRC_CHAN_MAX + 16];
            if (kith_node_room_at(irc->node, i, &ri) != 0)
                continue;
            kith_irc_channel(ri.name, ri.id, chan, sizeof chan);
            svc(cc, "%s  %zu members, %zu online, %zu messages", chan, ri.members, ri.online,
                ri.messages);
        }
        if (cnt == 0)
            svc(cc, "no rooms yet: JOIN #name creates one, join CODE joins one");
    } else {
        char clean[64];
        kith_client_sanitize(clean, sizeof clean, verb, strnlen(verb, 32));
        svc(cc, "unknown command %s: try help", clean);
    }
}

static void handle(ircconn *cc, const kith_irc_msg *m)
{
    const char *c = m->command;
    if (strcmp(c, "CAP") == 0) {
        cmd_cap(cc, m);
    } else if (strcmp(c, "PASS") == 0) {
        if (cc->registered) {
            numeric(cc, 462, ":You may not reregister");
            return;
        }
        if (!need_params(cc, m, 1))
            return;
        size_t pl = strlen(cc->irc->pass);
        cc->pass_ok = m->param_len[0] == pl && sodium_memcmp(m->params[0], cc->irc->pass, pl) == 0;
    } else if (strcmp(c, "NICK") == 0) {
        cmd_nick(cc, m);
    } else if (strcmp(c, "USER") == 0) {
        if (cc->registered) {
            numeric(cc, 462, ":You may not reregister");
            return;
        }
        if (!need_params(cc, m, 4))
            return;
        cc->has_user = true;
        try_register(cc);
    } else if (strcmp(c, "PING") == 0) {
        char tok[KITH_IRC_BODY_MAX];
        if (!need_params(cc, m, 1))
            return;
        param(m, 0, tok, 400);
        conn_send(cc, ":" SERVER " PONG " SERVER " :%s", tok);
    } else if (strcmp(c, "PONG") == 0) {
        /* nothing: we never PING (the client's TCP is on loopback) */
    } else if (strcmp(c, "QUIT") == 0) {
        conn_send(cc, "ERROR :Closing Link: quit");
        conn_close(cc);
    } else if (!cc->registered) {
        /* Also irssi's early "JOIN :": this answer lets it go on. */
        numeric(cc, 451, ":You have not registered");
    } else if (strcmp(c, "JOIN") == 0) {
        cmd_join(cc, m);
    } else if (strcmp(c, "PART") == 0) {
        cmd_part(cc, m);
    } else if (strcmp(c, "PRIVMSG") == 0 || strcmp(c, "NOTICE") == 0) {
        cmd_privmsg(cc, m, c[0] == 'N');
    } else if (strcmp(c, "NAMES") == 0) {
        char chan[KITH_IRC_CHAN_MAX + 1];
        uint8_t id[KITH_ROOM_ID_LEN];
        param(m, 0, chan, sizeof chan);
        if (chan[0] && find_channel(cc->irc, chan, strlen(chan), id)) {
            char cn[KITH_IRC_CHAN_MAX + 16];
            room_channel(cc->irc, id, cn, sizeof cn);
            send_names(cc, id, cn);
        } else {
            numeric(cc, 366, "* :End of /NAMES list.");
        }
    } else if (strcmp(c, "TOPIC") == 0) {
        cmd_topic(cc, m);
    } else if (strcmp(c, "KICK") == 0) {
        cmd_kick(cc, m);
    } else if (strcmp(c, "WHO") == 0) {
        cmd_who(cc, m);
    } else if (strcmp(c, "MODE") == 0) {
        cmd_mode(cc, m);
    } else if (strcmp(c, "LIST") == 0) {
        cmd_list(cc);
    } else if (strcmp(c, "WHOIS") == 0) {
        char nk[KITH_IRC_NICK_MAX + 1], clean[KITH_IRC_NICK_MAX + 1];
        param(m, m->nparams > 1 ? 1 : 0, nk, sizeof nk);
        kith_client_sanitize(clean, sizeof clean, nk, strlen(nk));
        if (kith_irc_name_eq(nk, strlen(nk), cc->nick, strlen(cc->nick)))
            numeric(cc, 311, "%s %s " SERVER " * :kith user", cc->nick, cc->nick);
        else
            numeric(cc, 401, "%s :No such nick", clean[0] ? clean : "*");
        numeric(cc, 318, "%s :End of /WHOIS list.", clean[0] ? clean : "*");
    } else if (strcmp(c, "AWAY") == 0) {
        if (m->nparams >= 1 && m->param_len[0])
            numeric(cc, 306, ":You have been marked as being away");
        else
            numeric(cc, 305, ":You are no longer marked as being away");
    } else if (strcmp(c, "USERHOST") == 0) {
        numeric(cc, 302, ":");
    } else if (strcmp(c, "ISON") == 0) {
        numeric(cc, 303, ":");
    } else {
        numeric(cc, 421, "%s :Unknown command", c);
    }
}

static void on_line(ircconn *cc, const char *line, size_t len)
{
    if (len == 0)
        return;
    kith_irc_msg m;
    int rc = kith_irc_parse(line, len, &m);
    if (rc == KITH_ETOOBIG) {
        numeric(cc, 417, ":Input line was too long");
        return;
    }
    if (rc < 0) {
        numeric(cc, 421, "* :Unknown command");
        return;
    }
    handle(cc, &m);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    ircconn *cc = h->data;
    buf->base = cc->rbuf;
    buf->len = sizeof cc->rbuf;
}

/* Lines end in LF (CR before it is dropped); a line over the cap gets 417
 * and is skipped up to its end, so memory stays at one buffer. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ircconn *cc = s->data;
    if (nread == 0 || cc->closing)
        return;
    if (nread < 0) {
        conn_close(cc);
        return;
    }
    const char *p = buf->base;
    size_t n = (size_t)nread, i = 0;
    while (i < n && !cc->closing) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t chunk = nl ? (size_t)(nl - (p + i)) : n - i;
        if (!cc->overlong) {
            if (cc->in_len + chunk > KITH_IRC_LINE_MAX) {
                cc->overlong = true;
                cc->in_len = 0;
            } else {
                memcpy(cc->in + cc->in_len, p + i, chunk);
                cc->in_len += chunk;
            }
        }
        i += chunk;
        if (!nl)
            break;
        i++;
        if (cc->overlong) {
            cc->overlong = false;
            numeric(cc, 417, ":Input line was too long");
            continue;
        }
        size_t l = cc->in_len;
        if (l && cc->in[l - 1] == '\r')
            l--;
        cc->in_len = 0;
        on_line(cc, cc->in, l);
    }
    /* docs/decisions.md "Backpressure on local input": what this client
     * sends waits while a link is backed up. */
    if (!cc->closing && kith_uvnode_hold(cc->irc->uv, &cc->hold))
        uv_read_stop(s);
}

static void on_resume(kith_uvnode_pause *h)
{
    ircconn *cc = (ircconn *)((char *)h - offsetof(ircconn, hold));
    if (!cc->closing && uv_read_start((uv_stream_t *)&cc->tcp, on_alloc, on_read) != 0)
        conn_close(cc);
}

static void on_accept(uv_stream_t *server, int status)
{
    kith_irc *irc = server->data;
    if (status < 0 || irc->stopping)
        return;
    ircconn *cc = kith_calloc(irc->env, 1, sizeof *cc);
    if (!cc)
        return;
    cc->irc = irc;
    if (uv_tcp_init(server->loop, &cc->tcp) != 0) {
        kith_free(irc->env, cc);
        return;
    }
    cc->tcp.data = cc;
    cc->hold.resume = on_resume;
    cc->next = irc->conns;
    irc->conns = cc;
    irc->nconns++;
    if (uv_accept(server, (uv_stream_t *)&cc->tcp) != 0 || irc->nconns > KITH_IRC_MAX_CONNS) {
        conn_close(cc);
        return;
    }
    uv_tcp_nodelay(&cc->tcp, 1);
    if (uv_read_start((uv_stream_t *)&cc->tcp, on_alloc, on_read) != 0)
        conn_close(cc);
}

/* ---- events from the node ---- */

static void on_event(void *ud, const kith_event *ev)
{
    kith_irc *irc = ud;
    for (ircconn *cc = irc->conns, *next; cc; cc = next) {
        next = cc->next;
        if (!cc->registered || cc->closing)
            continue;
        switch (ev->type) {
        case KITH_EV_MESSAGE:
            if (ev->has_room && is_joined(cc, ev->room_id, NULL) && !(ev->self && is_mine(cc, ev)))
                send_message(cc, ev, false);
            break;
        case KITH_EV_JOIN:
            if (!ev->self && ev->has_room && is_joined(cc, ev->room_id, NULL)) {
                char chan[KITH_IRC_CHAN_MAX + 16], nk[KITH_IRC_NICK_MAX + 16];
                room_channel(irc, ev->room_id, chan, sizeof chan);
                room_nick(cc, ev->room_id, ev->author, ev->nick, nk, sizeof nk);
                conn_send(cc, ":%s!%s@" SERVER " JOIN %s", nk, nk, chan);
            }
            break;
        case KITH_EV_NICK:
            if (!ev->self && cc->njoined) {
                char old[KITH_IRC_NICK_MAX + 16], nw[KITH_IRC_NICK_MAX + 16], t[256];
                const uint8_t *room = ev->has_room ? ev->room_id : NULL;
                room_nick(cc, room, ev->author, ev->nick, old, sizeof old);
                size_t tl = KITH_MIN(ev->text_len, sizeof t - 1);
                memcpy(t, ev->text ? ev->text : "", ev->text ? tl : 0);
                t[ev->text ? tl : 0] = '\0';
                room_nick(cc, room, ev->author, t, nw, sizeof nw);
                if (strcmp(old, nw) == 0
                    || (cc->nick_sent[0] && strcmp(cc->nick_sent, nw) == 0
                        && memcmp(cc->nick_author, ev->author, sizeof cc->nick_author) == 0))
                    break;
                conn_send(cc, ":%s!%s@" SERVER " NICK :%s", old, old, nw);
                memcpy(cc->nick_author, ev->author, sizeof cc->nick_author);
                snprintf(cc->nick_sent, sizeof cc->nick_sent, "%s", nw);
            }
            break;
        case KITH_EV_ROOM:
            if (ev->has_room && !ev->history)
                do_join(cc, ev->room_id);
            break;
        case KITH_EV_MEMBER:
            if (ev->has_room && is_joined(cc, ev->room_id, NULL))
                member_change(cc, ev);
            break;
        case KITH_EV_ERROR:
        case KITH_EV_INFO: {
            char line[KITH_IRC_BODY_MAX];
            if (kith_client_format_event(ev, false, line, 400) > 0)
                svc(cc, "%s", line);
            break;
        }
        default:
            break;
        }
    }
}

static void on_shutdown(void *ud)
{
    kith_irc *irc = ud;
    irc->stopping = true;
    while (irc->conns) {
        conn_send(irc->conns, "ERROR :Closing Link: the kith node is stopping");
        conn_close(irc->conns);
    }
    if (irc->server_open && !uv_is_closing((uv_handle_t *)&irc->server))
        uv_close((uv_handle_t *)&irc->server, NULL);
}

/* The password: the blob when it holds a valid one, else a new one saved. */
static int load_password(kith_irc *irc, kith_store *st)
{
    kith_buf b;
    kith_buf_init(&b, irc->env, 256);
    int rc = kith_store_blob_get(st, KITH_IRC_PASS_BLOB, &b);
    size_t n = b.len;
    while (rc == 0 && n && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r'))
        n--;
    bool ok = rc == 0 && n >= 8 && n <= KITH_IRC_PASS_LEN;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = (char)b.data[i];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
            || ch == '_' || ch == '-';
    }
    if (ok) {
        memcpy(irc->pass, b.data, n);
        irc->pass[n] = '\0';
        kith_buf_free(&b);
        return 0;
    }
    kith_buf_free(&b);
    kith_irc_gen_password(irc->env, irc->pass);
    char line[KITH_IRC_PASS_LEN + 2];
    memcpy(line, irc->pass, KITH_IRC_PASS_LEN);
    line[KITH_IRC_PASS_LEN] = '\n';
    rc = kith_store_blob_put(st, KITH_IRC_PASS_BLOB, (const uint8_t *)line, KITH_IRC_PASS_LEN + 1);
    sodium_memzero(line, sizeof line);
    return rc;
}

int kith_irc_new(const kith_env *env, kith_node *node, kith_uvnode *uv, kith_store *store,
    uint16_t port, char pass_out[KITH_IRC_PASS_LEN + 1], char *err, size_t errcap, kith_irc **out)
{
    *out = NULL;
    kith_irc *irc = kith_calloc(env, 1, sizeof *irc);
    if (!irc) {
        snprintf(err, errcap, "out of memory");
        return KITH_ENOMEM;
    }
    irc->env = env;
    irc->node = node;
    irc->uv = uv;
    int rc = load_password(irc, store);
    if (rc < 0) {
        snprintf(err, errcap, "cannot keep the IRC password in the home: %s", kith_strerror(rc));
        kith_free(env, irc);
        return rc;
    }
    *out = irc;
    rc = uv_tcp_init(kith_uvnode_loop(uv), &irc->server);
    if (rc != 0) {
        snprintf(err, errcap, "IRC gateway: %s", uv_strerror(rc));
        return KITH_EIO;
    }
    irc->server_open = true;
    irc->server.data = irc;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    rc = uv_tcp_bind(&irc->server, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&irc->server, 16, on_accept);
    if (rc != 0) {
        snprintf(err, errcap, "cannot listen for IRC on 127.0.0.1:%u: %s", (unsigned)port,
            uv_strerror(rc));
        uv_close((uv_handle_t *)&irc->server, NULL);
        irc->server_open = false;
        return KITH_EIO;
    }
    kith_uvnode_hooks hooks = { irc, on_event, NULL, on_shutdown };
    rc = kith_uvnode_add_hooks(uv, &hooks);
    if (rc < 0) {
        snprintf(err, errcap, "IRC gateway: too many hook sets");
        uv_close((uv_handle_t *)&irc->server, NULL);
        irc->server_open = false;
        return rc;
    }
    memcpy(pass_out, irc->pass, sizeof irc->pass);
    return 0;
}

void kith_irc_free(kith_irc *irc)
{
    if (!irc)
        return;
    const kith_env *env = irc->env;
    sodium_memzero(irc->pass, sizeof irc->pass);
    kith_free(env, irc);
}
