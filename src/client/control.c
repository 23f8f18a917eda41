/* control: the control socket's server side (see control.h and
 * docs/control.md). Each connection sends one command line first; it picks
 * the connection's mode:
 *
 *   attach          a line-client session: later lines run as if typed, the
 *                   line client's output comes back one line each
 *   send ROOM TEXT  send, answer "ok SEQ" once the message is durable
 *   me ROOM TEXT    the same as an action
 *   tail ROOM|* [json]   stream the room's new messages (text or JSON lines)
 *   events [json]   stream every event
 *   stop            stop the node
 *
 * Threats answered: the socket is 0600 in a 0700 home (only our user can
 * connect); input lines are capped at KITH_CLIENT_LINE_MAX by the same
 * splitter as stdin; a reader that stops reading is cut off past
 * KITH_CONTROL_MAX_UNSENT queued bytes; at most KITH_CONTROL_MAX_CONNS
 * connections. Text written to attached sessions is the line client's,
 * already sanitized; JSON escapes every control character. */
#include "client/control.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "client/client.h"
#include "crypto/crypto.h"
#include "util/util.h"
#include "uvnode/uvnode.h"

#define SUN_PATH_MAX 107 /* sizeof sockaddr_un.sun_path - 1 on Linux */
#define JSON_MAX (KITH_CLIENT_LINE_MAX * 6 + 2048)

enum { M_NEW, M_ATTACH, M_SEND, M_TAIL, M_EVENTS, M_DONE };

typedef struct ctlconn {
    kith_control *ctl;
    uv_pipe_t pipe;
    struct ctlconn *next;
    int mode;
    bool json;
    bool all_rooms;
    uint8_t room[KITH_ROOM_ID_LEN];
    uint64_t wait_seq;
    size_t unsent;
    bool closing;
    char rbuf[4096];
    kith_client_lines lines;
    kith_uvnode_pause hold; /* reading paused while a link is backed up */
} ctlconn;

struct kith_control {
    const kith_env *env;
    kith_node *node;
    kith_uvnode *uv;
    kith_client *client;
    uv_pipe_t server;
    bool server_open;
    ctlconn *conns;
    size_t nconns;
    bool stopping;
    char path[SUN_PATH_MAX + 1];
    char json[JSON_MAX];
};

/* ---- pure helpers ---- */

int kith_control_path(const char *home, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", home, KITH_CONTROL_SOCK);
    if (n > 0 && (size_t)n < cap && (size_t)n <= SUN_PATH_MAX)
        return 0;
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (!rt || rt[0] != '/')
        return KITH_ETOOBIG;
    uint8_t h[8];
    crypto_generichash(h, sizeof h, (const uint8_t *)home, strlen(home), NULL, 0);
    char hex[17];
    kith_hex(hex, h, sizeof h);
    n = snprintf(out, cap, "%s/kith-%s.sock", rt, hex);
    if (n <= 0 || (size_t)n >= cap || (size_t)n > SUN_PATH_MAX)
        return KITH_ETOOBIG;
    return 0;
}

typedef struct jbuf {
    char *p;
    size_t cap, len;
    bool full;
} jbuf;

static void jraw(jbuf *j, const char *s, size_t n)
{
    if (j->full || j->len + n + 1 > j->cap) {
        j->full = true;
        return;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
    j->p[j->len] = '\0';
}

static void jstr(jbuf *j, const char *s)
{
    jraw(j, s, strlen(s));
}

static void jfmt(jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jfmt(jbuf *j, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        j->full = true;
        return;
    }
    jraw(j, tmp, (size_t)n);
}

/* Length of a valid UTF-8 sequence at s, 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    return kith_client_utf8_decode(s, n, &cp);
}

/* A JSON string: quotes, backslashes and controls escaped, invalid UTF-8
 * replaced by U+FFFD so the line stays valid JSON whatever a peer sent. */
static void jquote(jbuf *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    jraw(j, "\"", 1);
    size_t i = 0;
    while (i < n && !j->full) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char)ch };
            jraw(j, e, 2);
            i++;
        } else if (ch == '\n') {
            jraw(j, "\\n", 2);
            i++;
        } else if (ch == '\t') {
            jraw(j, "\\t", 2);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            jfmt(j, "\\u%04x", (unsigned)ch);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                jraw(j, "\xef\xbf\xbd", 3);
                i++;
            } else {
                jraw(j, (const char *)p + i, l);
                i += l;
            }
        }
    }
    jraw(j, "\"", 1);
}

static void jkey(jbuf *j, const char *key)
{
    jraw(j, ",\"", 2);
    jstr(j, key);
    jraw(j, "\":", 2);
}

static const char *event_name(int type)
{
    switch (type) {
    case KITH_EV_MESSAGE:
        return "message";
    case KITH_EV_SENT:
        return "sent";
    case KITH_EV_ROOM:
        return "room";
    case KITH_EV_JOIN:
        return "join";
    case KITH_EV_NICK:
        return "nick";
    case KITH_EV_PEER_UP:
        return "peer_up";
    case KITH_EV_PEER_DOWN:
        return "peer_down";
    case KITH_EV_ERROR:
        return "error";
    case KITH_EV_INFO:
        return "info";
    case KITH_EV_MEMBER:
        return "member";
    default:
        return "unknown";
    }
}

static bool id_zero(const uint8_t *id, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= id[i];
    return acc == 0;
}

size_t kith_control_json_event(const kith_event *ev, char *out, size_t cap)
{
    jbuf j = { out, cap, 0, false };
    if (cap)
        out[0] = '\0';
    jstr(&j, "{\"event\":\"");
    jstr(&j, event_name(ev->type));
    jstr(&j, "\"");
    if (ev->wall_ms) {
        time_t t = (time_t)(ev->wall_ms / 1000u);
        struct tm tm;
        char iso[40];
        if (gmtime_r(&t, &tm) && strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
            jkey(&j, "time");
            jfmt(&j, "\"%s.%03uZ\"", iso, (unsigned)(ev->wall_ms % 1000u));
        }
        jkey(&j, "ts");
        jfmt(&j, "%llu", (unsigned long long)ev->wall_ms);
    }
    if (ev->has_room) {
        char hex[KITH_ROOM_ID_LEN * 2 + 1];
        kith_hex(hex, ev->room_id, KITH_ROOM_ID_LEN);
        jkey(&j, "room");
        if (ev->room_name && ev->room_name[0])
            jquote(&j, ev->room_name, strnlen(ev->room_name, 4096));
        else
            jquote(&j, hex, 8);
        jkey(&j, "room_id");
        jquote(&j, hex, strlen(hex));
    }
    if (ev->nick) {
        jkey(&j, "nick");
        jquote(&j, ev->nick, strnlen(ev->nick, 4096));
    }
    if (!id_zero(ev->author, KITH_MEMBER_ID_LEN)) {
        char fpr[KITH_FPR_STRLEN];
        kith_fingerprint(ev->author, fpr);
        jkey(&j, "author");
        jquote(&j, fpr, strnlen(fpr, sizeof fpr));
    }
    if (ev->type == KITH_EV_MEMBER) {
        static const char *ops[] = { "unknown", "unknown", "remove", "ban", "unban", "role",
            "topic", "name", "unknown", "unknown", "unknown", "leave" };
        static const char *roles[] = { "none", "observer", "member", "moderator", "admin" };
        char fpr[KITH_FPR_STRLEN];
        kith_fingerprint(ev->subject, fpr);
        jkey(&j, "op");
        jfmt(&j, "\"%s\"", ops[ev->op >= 0 && ev->op <= 11 ? ev->op : 0]);
        jkey(&j, "subject");
        jquote(&j, fpr, strnlen(fpr, sizeof fpr));
        if (ev->subject_nick) {
            jkey(&j, "subject_nick");
            jquote(&j, ev->subject_nick, strnlen(ev->subject_nick, 4096));
        }
        if (ev->op == KITH_MOP_SET_ROLE) {
            jkey(&j, "role");
            jfmt(&j, "\"%s\"", roles[ev->role >= 0 && ev->role <= 4 ? ev->role : 0]);
        }
    }
    if (ev->type == KITH_EV_MESSAGE) {
        static const char *types[]
            = { "unknown", "text", "action", "nick", "edit", "delete", "reaction" };
        jkey(&j, "type");
        jfmt(&j, "\"%s\"", types[ev->msg_type <= 6 ? ev->msg_type : 0]);
        char mid[2 * KITH_ROOM_ID_LEN + 1];
        if (!id_zero(ev->id, KITH_ROOM_ID_LEN)) {
            kith_hex(mid, ev->id, KITH_ROOM_ID_LEN);
            jkey(&j, "id");
            jquote(&j, mid, strlen(mid));
        }
        if (ev->has_target) {
            kith_hex(mid, ev->target, KITH_ROOM_ID_LEN);
            jkey(&j, "target");
            jquote(&j, mid, strlen(mid));
        }
        if (ev->edited) {
            jkey(&j, "edited");
            jstr(&j, "true");
        }
        if (ev->deleted) {
            jkey(&j, "deleted");
            jstr(&j, "true");
        }
    }
    if (ev->text) {
        size_t tl = ev->text_len;
        if (!tl && ev->type != KITH_EV_MESSAGE)
            tl = strnlen(ev->text, 1u << 20);
        jkey(&j, "text");
        jquote(&j, ev->text, tl);
    }
    if (ev->type == KITH_EV_MESSAGE || ev->type == KITH_EV_SENT) {
        jkey(&j, "seq");
        jfmt(&j, "%llu", (unsigned long long)ev->seq);
    }
    if (ev->type == KITH_EV_ERROR) {
        jkey(&j, "error");
        jquote(&j, kith_strerror(ev->err), strlen(kith_strerror(ev->err)));
    }
    jkey(&j, "self");
    jstr(&j, ev->self ? "true" : "false");
    jkey(&j, "history");
    jstr(&j, ev->history ? "true" : "false");
    if (ev->catchup) {
        jkey(&j, "catchup");
        jstr(&j, "true");
    }
    jstr(&j, "}");
    if (j.full) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    return j.len;
}

/* ---- connections ---- */

typedef struct wreq {
    uv_write_t req;
    ctlconn *conn;
    size_t len;
    char data[];
} wreq;

static void on_conn_closed(uv_handle_t *h)
{
    ctlconn *cc = h->data;
    kith_control *ctl = cc->ctl;
    sodium_memzero(&cc->lines, sizeof cc->lines);
    sodium_memzero(cc->rbuf, sizeof cc->rbuf);
    kith_free(ctl->env, cc);
}

static void conn_close(ctlconn *cc)
{
    if (cc->closing)
        return;
    cc->closing = true;
    kith_control *ctl = cc->ctl;
    kith_uvnode_release(ctl->uv, &cc->hold);
    for (ctlconn **pp = &ctl->conns; *pp; pp = &(*pp)->next)
        if (*pp == cc) {
            *pp = cc->next;
            ctl->nconns--;
            break;
        }
    uv_close((uv_handle_t *)&cc->pipe, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    ctlconn *cc = w->conn;
    kith_control *ctl = cc->ctl;
    cc->unsent -= w->len;
    const kith_env *env = ctl->env;
    kith_free(env, w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(cc);
}

/* Queue one line (a newline is added). */
static void conn_write(ctlconn *cc, const char *s, size_t n)
{
    if (cc->closing)
        return;
    if (cc->unsent + n + 1 > KITH_CONTROL_MAX_UNSENT) {
        conn_close(cc); /* it stopped reading: cut it rather than buffer forever */
        return;
    }
    wreq *w = kith_calloc(cc->ctl->env, 1, sizeof *w + n + 1);
    if (!w) {
        conn_close(cc);
        return;
    }
    memcpy(w->data, s, n);
    w->data[n] = '\n';
    w->len = n + 1;
    w->conn = cc;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    cc->unsent += w->len;
    if (uv_write(&w->req, (uv_stream_t *)&cc->pipe, &b, 1, on_written) != 0) {
        cc->unsent -= w->len;
        kith_free(cc->ctl->env, w);
        conn_close(cc);
    }
}

static void conn_printf(ctlconn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_printf(ctlconn *cc, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    conn_write(cc, line, KITH_MIN((size_t)n, sizeof line - 1));
}

/* A one-shot command failed: "error N text", then close. */
static void conn_fail(ctlconn *cc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(ctlconn *cc, int code, const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    conn_printf(cc, "error %d %s", code, text);
    cc->mode = M_DONE;
    conn_close(cc);
}

/* The line client's output: stdout as before, and every attached session. */
static void client_sink(void *ud, const char *line)
{
    kith_control *ctl = ud;
    kith_client_print(line);
    size_t n = strlen(line);
    for (ctlconn *cc = ctl->conns, *next; cc; cc = next) {
        next = cc->next;
        if (cc->mode == M_ATTACH)
            conn_write(cc, line, n);
    }
}

/* Next whitespace-delimited token of s[*i..n). */
static bool next_token(const char *s, size_t n, size_t *i, const char **tok, size_t *tlen)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t'))
        (*i)++;
    if (*i >= n)
        return false;
    size_t st = *i;
    while (*i < n && s[*i] != ' ' && s[*i] != '\t')
        (*i)++;
    *tok = s + st;
    *tlen = *i - st;
    return true;
}

static bool tok_is(const char *tok, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(tok, word, len) == 0;
}

/* Resolve a room token; on failure the connection got "error 4". */
static bool conn_room(ctlconn *cc, const char *tok, size_t len, uint8_t id[KITH_ROOM_ID_LEN])
{
    char name[512];
    char clean[256];
    if (len >= sizeof name || memchr(tok, '\0', len)) {
        conn_fail(cc, KITH_EXIT_USAGE, "room name too long");
        return false;
    }
    memcpy(name, tok, len);
    name[len] = '\0';
    if (kith_node_room_find(cc->ctl->node, name, id) != 0) {
        kith_client_sanitize(clean, sizeof clean, tok, len);
        conn_fail(cc, KITH_EXIT_NO_ROOM, "no such room: %s", clean);
        return false;
    }
    return true;
}

static void cmd_send(ctlconn *cc, uint32_t type, const char *s, size_t n, size_t i)
{
    kith_control *ctl = cc->ctl;
    const char *room;
    size_t rlen;
    if (!next_token(s, n, &i, &room, &rlen)) {
        conn_fail(cc, KITH_EXIT_USAGE, "usage: send ROOM TEXT");
        return;
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i >= n) {
        conn_fail(cc, KITH_EXIT_USAGE, "usage: send ROOM TEXT (the text is empty)");
        return;
    }
    if (!kith_client_utf8_valid(s + i, n - i)) {
        conn_fail(cc, KITH_EXIT_USAGE, "message is not valid UTF-8");
        return;
    }
    if (!conn_room(cc, room, rlen, cc->room))
        return;
    uint64_t seq;
    int rc = kith_node_send(ctl->node, cc->room, type, s + i, n - i, &seq);
    kith_uvnode_kick(ctl->uv);
    if (rc < 0) {
        conn_fail(cc, KITH_EXIT_RUNTIME, "cannot send: %s", kith_strerror(rc));
        return;
    }
    cc->mode = M_SEND;
    cc->wait_seq = seq;
}

static void cmd_tail(ctlconn *cc, const char *s, size_t n, size_t i, bool events)
{
    const char *tok;
    size_t tlen;
    if (!events) {
        if (!next_token(s, n, &i, &tok, &tlen)) {
            conn_fail(cc, KITH_EXIT_USAGE, "usage: tail ROOM|* [json]");
            return;
        }
        if (tok_is(tok, tlen, "*"))
            cc->all_rooms = true;
        else if (!conn_room(cc, tok, tlen, cc->room))
            return;
    }
    while (next_token(s, n, &i, &tok, &tlen)) {
        if (!tok_is(tok, tlen, "json")) {
            conn_fail(cc, KITH_EXIT_USAGE, "usage: %s [json]", events ? "events" : "tail ROOM|*");
            return;
        }
        cc->json = true;
    }
    cc->mode = events ? M_EVENTS : M_TAIL;
    conn_printf(cc, "ok");
}

static void cmd_attach(ctlconn *cc)
{
    kith_control *ctl = cc->ctl;
    if (!ctl->client) {
        conn_fail(cc, KITH_EXIT_RUNTIME, "this node has no line client");
        return;
    }
    cc->mode = M_ATTACH;
    char fpr[24], nick[256];
    kith_node_fingerprint(ctl->node, fpr);
    fpr[sizeof fpr - 1] = '\0';
    const char *nk = kith_node_nick(ctl->node);
    kith_client_sanitize(nick, sizeof nick, nk ? nk : "anon", nk ? strnlen(nk, 1024) : 4);
    conn_printf(cc, "ok");
    conn_printf(cc,
        "* attached to the kith %s node of %s (fingerprint %s), %zu rooms; /quit detaches, "
        "`kith stop` stops the node",
        KITH_VERSION, nick, fpr, kith_node_room_count(ctl->node));
}

/* The first line of a connection: its command. */
static void conn_command(ctlconn *cc, const char *s, size_t n)
{
    size_t i = 0;
    const char *verb;
    size_t vlen;
    if (!next_token(s, n, &i, &verb, &vlen)) {
        conn_fail(cc, KITH_EXIT_USAGE, "empty command");
        return;
    }
    if (tok_is(verb, vlen, "attach"))
        cmd_attach(cc);
    else if (tok_is(verb, vlen, "send"))
        cmd_send(cc, 1, s, n, i);
    else if (tok_is(verb, vlen, "me"))
        cmd_send(cc, 2, s, n, i);
    else if (tok_is(verb, vlen, "tail"))
        cmd_tail(cc, s, n, i, false);
    else if (tok_is(verb, vlen, "events"))
        cmd_tail(cc, s, n, i, true);
    else if (tok_is(verb, vlen, "stop")) {
        conn_printf(cc, "ok");
        cc->mode = M_DONE;
        kith_uvnode_stop(cc->ctl->uv);
    } else {
        char clean[64];
        kith_client_sanitize(clean, sizeof clean, verb, KITH_MIN(vlen, (size_t)32));
        conn_fail(cc, KITH_EXIT_USAGE, "unknown command %s", clean);
    }
}

static int on_conn_line(void *ud, const char *line, size_t len, bool too_long)
{
    ctlconn *cc = ud;
    kith_control *ctl = cc->ctl;
    if (cc->closing)
        return 1;
    if (cc->mode == M_NEW) {
        if (too_long)
            conn_fail(cc, KITH_EXIT_USAGE, "line too long (max 16384 bytes)");
        else
            conn_command(cc, line, len);
        return cc->closing ? 1 : 0;
    }
    if (cc->mode != M_ATTACH || ctl->stopping)
        return 0; /* other modes take no more input */
    if (too_long) {
        conn_printf(cc, "! line too long (max 16384 bytes)");
        return 0;
    }
    kith_cmd cmd;
    kith_client_parse(line, len, &cmd);
    if (cmd.kind == KITH_CMD_QUIT) {
        /* /quit ends this session, not the node others may be using. */
        conn_printf(cc, "* detached");
        conn_close(cc);
        return 1;
    }
    kith_client_line(ctl->client, line, len);
    return 0;
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    ctlconn *cc = h->data;
    buf->base = cc->rbuf;
    buf->len = sizeof cc->rbuf;
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ctlconn *cc = s->data;
    if (nread == 0 || cc->closing)
        return;
    if (nread < 0) {
        /* A command without a newline before EOF still counts. */
        if (cc->mode == M_NEW || cc->mode == M_ATTACH)
            kith_client_lines_eof(&cc->lines, on_conn_line, cc);
        if (cc->mode != M_SEND)
            conn_close(cc); /* a send still completes; nobody hears it */
        else
            uv_read_stop(s);
        return;
    }
    kith_client_lines_feed(&cc->lines, buf->base, (size_t)nread, on_conn_line, cc);
    /* docs/decisions.md "Backpressure on local input": an attached session
     * or the next command waits while a link is backed up. */
    if (!cc->closing && kith_uvnode_hold(cc->ctl->uv, &cc->hold))
        uv_read_stop(s);
}

static void on_conn_resume(kith_uvnode_pause *h)
{
    ctlconn *cc = (ctlconn *)((char *)h - offsetof(ctlconn, hold));
    if (!cc->closing && uv_read_start((uv_stream_t *)&cc->pipe, on_conn_alloc, on_conn_read) != 0)
        conn_close(cc);
}

static void on_accept(uv_stream_t *server, int status)
{
    kith_control *ctl = server->data;
    if (status < 0 || ctl->stopping)
        return;
    ctlconn *cc = kith_calloc(ctl->env, 1, sizeof *cc);
    if (!cc)
        return;
    cc->ctl = ctl;
    if (uv_pipe_init(server->loop, &cc->pipe, 0) != 0) {
        kith_free(ctl->env, cc);
        return;
    }
    cc->pipe.data = cc;
    cc->hold.resume = on_conn_resume;
    cc->next = ctl->conns;
    ctl->conns = cc;
    ctl->nconns++;
    kith_client_lines_init(&cc->lines);
    if (uv_accept(server, (uv_stream_t *)&cc->pipe) != 0) {
        conn_close(cc);
        return;
    }
    if (ctl->nconns > KITH_CONTROL_MAX_CONNS) {
        conn_close(cc);
        return;
    }
    conn_printf(cc, "kith-control %d", KITH_CONTROL_VERSION);
    /* A new command (`kith send` in a loop) waits too while a link is
     * backed up; on_conn_resume starts reading then. */
    if (cc->closing || kith_uvnode_hold(ctl->uv, &cc->hold))
        return;
    if (uv_read_start((uv_stream_t *)&cc->pipe, on_conn_alloc, on_conn_read) != 0)
        conn_close(cc);
}

/* ---- events from the node ---- */

static bool same_room(const ctlconn *cc, const kith_event *ev)
{
    return cc->all_rooms || (ev->has_room && memcmp(ev->room_id, cc->room, KITH_ROOM_ID_LEN) == 0);
}

static void on_event(void *ud, const kith_event *ev)
{
    kith_control *ctl = ud;
    for (ctlconn *cc = ctl->conns, *next; cc; cc = next) {
        next = cc->next;
        if (cc->mode == M_SEND) {
            if (ev->type == KITH_EV_SENT && ev->seq == cc->wait_seq && same_room(cc, ev)) {
                conn_printf(cc, "ok %llu", (unsigned long long)ev->seq);
                cc->mode = M_DONE;
                conn_close(cc);
            }
        } else if (cc->mode == M_TAIL) {
            /* New messages only: start-up replay is over once anyone can
             * connect; a nick change is a message of type 3 too. */
            if (ev->type != KITH_EV_MESSAGE || !same_room(cc, ev))
                continue;
            size_t len = cc->json
                ? kith_control_json_event(ev, ctl->json, sizeof ctl->json)
                : kith_client_format_message(ev, true, ctl->json, sizeof ctl->json);
            if (len)
                conn_write(cc, ctl->json, len);
        } else if (cc->mode == M_EVENTS) {
            size_t len = cc->json ? kith_control_json_event(ev, ctl->json, sizeof ctl->json)
                                  : kith_client_format_event(ev, true, ctl->json, sizeof ctl->json);
            if (len)
                conn_write(cc, ctl->json, len);
        }
    }
}

static void on_shutdown(void *ud)
{
    kith_control *ctl = ud;
    ctl->stopping = true;
    while (ctl->conns) {
        ctlconn *cc = ctl->conns;
        if (cc->mode == M_SEND)
            conn_printf(
                cc, "error %d the node stopped before the message was sent", KITH_EXIT_RUNTIME);
        else if (cc->mode != M_DONE)
            conn_printf(cc, "bye");
        conn_close(cc);
    }
    if (ctl->server_open && !uv_is_closing((uv_handle_t *)&ctl->server))
        uv_close((uv_handle_t *)&ctl->server, NULL);
    if (ctl->client)
        kith_client_set_sink(ctl->client, NULL, NULL);
}

int kith_control_new(const kith_env *env, kith_node *node, kith_uvnode *uv, kith_client *client,
    const char *path, char *err, size_t errcap, kith_control **out)
{
    *out = NULL;
    if (strlen(path) > SUN_PATH_MAX) {
        snprintf(err, errcap, "control socket path too long: %s", path);
        return KITH_ETOOBIG;
    }
    kith_control *ctl = kith_calloc(env, 1, sizeof *ctl);
    if (!ctl) {
        snprintf(err, errcap, "out of memory");
        return KITH_ENOMEM;
    }
    ctl->env = env;
    ctl->node = node;
    ctl->uv = uv;
    ctl->client = client;
    snprintf(ctl->path, sizeof ctl->path, "%s", path);
    uv_loop_t *loop = kith_uvnode_loop(uv);
    int rc = uv_pipe_init(loop, &ctl->server, 0);
    if (rc != 0) {
        snprintf(err, errcap, "control socket: %s", uv_strerror(rc));
        kith_free(env, ctl);
        return KITH_EIO;
    }
    ctl->server_open = true;
    ctl->server.data = ctl;
    /* The caller holds the home's lock: a socket file left there is stale
     * (a node that crashed). */
    struct stat stt;
    if (lstat(path, &stt) == 0 && S_ISSOCK(stt.st_mode))
        unlink(path);
    /* Created 0600 from the start (umask), not chmod'ed after: there is no
     * moment when another user could connect. */
    mode_t old = umask(0177);
    rc = uv_pipe_bind(&ctl->server, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->server, 16, on_accept);
    if (rc != 0) {
        snprintf(err, errcap, "cannot open the control socket %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&ctl->server, NULL);
        ctl->server_open = false;
        ctl->path[0] = '\0'; /* not ours: don't unlink it */
        *out = ctl; /* freed by kith_control_free after the loop closed the handle */
        return KITH_EIO;
    }
    kith_uvnode_hooks hooks = { ctl, on_event, NULL, on_shutdown };
    rc = kith_uvnode_add_hooks(uv, &hooks);
    if (rc < 0) {
        snprintf(err, errcap, "control socket: too many hook sets");
        uv_close((uv_handle_t *)&ctl->server, NULL);
        ctl->server_open = false;
        *out = ctl;
        return rc;
    }
    if (client)
        kith_client_set_sink(client, client_sink, ctl);
    *out = ctl;
    return 0;
}

void kith_control_free(kith_control *ctl)
{
    if (!ctl)
        return;
    if (ctl->path[0])
        unlink(ctl->path);
    kith_free(ctl->env, ctl);
}
