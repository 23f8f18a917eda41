/* remote: the control socket's client side (see remote.h). One connection
 * per command: greeting, one command line, then the answer ("ok ...",
 * "error N text") and, for attach and tail, a stream of lines that ends
 * with "bye" (the node stopped) or the end of the connection. */
#include "client/remote.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/client.h"
#include "client/control.h"
#include "client/term.h"

/* Longest line taken from the node: a JSON line of a maximal message. */
#define RLINE_MAX (KITH_CLIENT_LINE_MAX * 6 + 4096)

typedef struct rreader {
    int fd;
    char *buf;
    size_t len, start;
} rreader;

static void rfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rfail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("! ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static bool write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* Next line (NUL-terminated, no newline) in *line; 1 got one, 0 EOF, -1
 * error or a line over the cap. */
static int read_line(rreader *r, char **line)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->len - r->start);
        if (nl) {
            *nl = '\0';
            *line = r->buf + r->start;
            r->start = (size_t)(nl - r->buf) + 1;
            return 1;
        }
        if (r->start) {
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->start = 0;
        }
        if (r->len >= RLINE_MAX)
            return -1;
        ssize_t n = read(r->fd, r->buf + r->len, RLINE_MAX - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        r->len += (size_t)n;
    }
}

static bool reader_init(rreader *r, int fd)
{
    r->fd = fd;
    r->len = r->start = 0;
    r->buf = malloc(RLINE_MAX + 1);
    return r->buf != NULL;
}

int kith_remote_connect(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    /* The greeting: "kith-control 1". Read byte by byte so nothing after it
     * is consumed here. */
    char g[64];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || n + 1 >= sizeof g) {
            close(fd);
            return -1;
        }
        if (ch == '\n')
            break;
        g[n++] = ch;
    }
    g[n] = '\0';
    if (strncmp(g, "kith-control ", 13) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool kith_remote_running(const char *path)
{
    int fd = kith_remote_connect(path);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* "error N text" -> print text, return N (1..4); anything else 1. */
static int answer_error(const char *line)
{
    if (strncmp(line, "error ", 6) == 0) {
        char *end;
        long code = strtol(line + 6, &end, 10);
        if (end != line + 6 && *end == ' ' && code >= 1 && code <= 4) {
            rfail("%s", end + 1);
            return (int)code;
        }
    }
    rfail("unexpected answer from the node: %.200s", line);
    return KITH_EXIT_RUNTIME;
}

/* Connect, send one command, read the first answer line. Returns -1 and
 * the answer in *line on "ok", else an exit code (already reported). */
static int command(const char *path, const char *cmd, rreader *r, char **line)
{
    int fd = kith_remote_connect(path);
    if (fd < 0) {
        rfail("no kith node is running with this home (start one with `kith node`)");
        return KITH_EXIT_NO_NODE;
    }
    if (!reader_init(r, fd)) {
        close(fd);
        rfail("out of memory");
        return KITH_EXIT_RUNTIME;
    }
    if (!write_all(fd, cmd, strlen(cmd)) || !write_all(fd, "\n", 1)) {
        rfail("the node closed the control connection");
        return KITH_EXIT_RUNTIME;
    }
    int rc = read_line(r, line);
    if (rc <= 0) {
        rfail("the node closed the control connection without an answer");
        return KITH_EXIT_RUNTIME;
    }
    if (strcmp(*line, "ok") == 0 || strncmp(*line, "ok ", 3) == 0)
        return -1;
    return answer_error(*line);
}

static void reader_done(rreader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->buf = NULL;
    r->fd = -1;
}

/* A command line "verb ROOM TEXT" from pieces that must not hold newlines. */
static char *build(const char *verb, const char *room, const char *rest)
{
    size_t n = strlen(verb) + 1 + strlen(room) + 1 + (rest ? strlen(rest) : 0) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    snprintf(s, n, "%s %s%s%s", verb, room, rest ? " " : "", rest ? rest : "");
    return s;
}

static bool has_newline(const char *s)
{
    return strchr(s, '\n') || strchr(s, '\r');
}

int kith_remote_send(const char *path, const char *room, const char *text, bool action)
{
    if (!room[0] || strchr(room, ' ') || strchr(room, '\t') || has_newline(room)) {
        rfail("usage: kith send ROOM TEXT (ROOM is one word: a name or an id prefix)");
        return KITH_EXIT_USAGE;
    }
    if (!text[0] || has_newline(text)) {
        rfail("usage: kith send ROOM TEXT (one line of text, not empty)");
        return KITH_EXIT_USAGE;
    }
    if (strlen(text) > KITH_CLIENT_LINE_MAX - 512) {
        rfail("message too long");
        return KITH_EXIT_USAGE;
    }
    if (!kith_client_utf8_valid(text, strlen(text))) {
        rfail("message is not valid UTF-8");
        return KITH_EXIT_USAGE;
    }
    char *cmd = build(action ? "me" : "send", room, text);
    if (!cmd) {
        rfail("out of memory");
        return KITH_EXIT_RUNTIME;
    }
    rreader r = { -1, NULL, 0, 0 };
    char *line;
    int rc = command(path, cmd, &r, &line);
    free(cmd);
    reader_done(&r);
    return rc < 0 ? KITH_EXIT_OK : rc;
}

int kith_remote_tail(const char *path, const char *room, bool json)
{
    if (!room[0] || strchr(room, ' ') || strchr(room, '\t') || has_newline(room)) {
        rfail("usage: kith tail ROOM [--json] (ROOM is one word; * for every room)");
        return KITH_EXIT_USAGE;
    }
    char *cmd = build("tail", room, json ? "json" : NULL);
    if (!cmd) {
        rfail("out of memory");
        return KITH_EXIT_RUNTIME;
    }
    rreader r = { -1, NULL, 0, 0 };
    char *line;
    int rc = command(path, cmd, &r, &line);
    free(cmd);
    if (rc >= 0) {
        reader_done(&r);
        return rc;
    }
    for (;;) {
        int got = read_line(&r, &line);
        if (got <= 0) {
            rfail("the node went away");
            rc = KITH_EXIT_RUNTIME;
            break;
        }
        if (strcmp(line, "bye") == 0) {
            rc = KITH_EXIT_OK; /* the node stopped cleanly */
            break;
        }
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    reader_done(&r);
    return rc;
}

int kith_remote_stop(const char *path)
{
    rreader r = { -1, NULL, 0, 0 };
    char *line;
    int rc = command(path, "stop", &r, &line);
    if (rc < 0) {
        /* Wait until the node closed the connection: it has stopped. */
        while (read_line(&r, &line) > 0) { }
        rc = KITH_EXIT_OK;
    }
    reader_done(&r);
    return rc;
}

/* Attached at a terminal, SIGINT, SIGTERM and SIGHUP end the session
 * through the loop, so the terminal is given back as it was. */
static volatile sig_atomic_t attach_signal, attach_cont;

static void on_attach_signal(int sig)
{
    if (sig == SIGCONT)
        attach_cont = 1; /* back from Ctrl-Z: take the terminal again */
    else
        attach_signal = sig;
}

/* Attached at a terminal: libedit's finished lines go to the node. Tab
 * completes the nicks of the last people seen writing (this process has no
 * node to ask for members). */
#define SEEN_MAX 64

typedef struct attach_term {
    int fd;
    bool in_open;
    bool failed;
    char seen[SEEN_MAX][KITH_CLIENT_NICK_MAX + 1];
    size_t n_seen, next_seen;
} attach_term;

static const char *seen_nick(void *ud, size_t i)
{
    attach_term *a = ud;
    return i < a->n_seen ? a->seen[i] : NULL;
}

static void see_line(attach_term *a, const char *line)
{
    char nick[KITH_CLIENT_NICK_MAX + 1];
    size_t n = kith_term_line_nick(line, strlen(line), nick, sizeof nick);
    if (n == 0 || !kith_client_nick_valid(nick, n))
        return;
    for (size_t i = 0; i < a->n_seen; i++)
        if (strcmp(a->seen[i], nick) == 0)
            return;
    memcpy(a->seen[a->next_seen], nick, n + 1); /* the oldest goes when full */
    a->next_seen = (a->next_seen + 1) % SEEN_MAX;
    if (a->n_seen < SEEN_MAX)
        a->n_seen++;
}

static void on_attach_line(void *ud, const char *line, size_t len)
{
    attach_term *a = ud;
    if (!a->in_open || a->failed)
        return;
    if (!line) {
        a->in_open = false; /* Ctrl-D is /quit, as in the in-process client */
        a->failed = !write_all(a->fd, "/quit\n", 6);
        return;
    }
    a->failed = !write_all(a->fd, line, len) || !write_all(a->fd, "\n", 1);
}

int kith_remote_attach(int fd, const char *history_path)
{
    rreader r;
    if (!reader_init(&r, fd)) {
        close(fd);
        rfail("out of memory");
        return KITH_EXIT_RUNTIME;
    }
    char *line;
    if (!write_all(fd, "attach\n", 7) || read_line(&r, &line) <= 0) {
        reader_done(&r);
        rfail("the node closed the control connection");
        return KITH_EXIT_RUNTIME;
    }
    if (strcmp(line, "ok") != 0) {
        int code = answer_error(line);
        reader_done(&r);
        return code;
    }
    /* A terminal gets line editing (term.h), as the in-process client. */
    attach_term *at = calloc(1, sizeof *at);
    if (!at) {
        reader_done(&r);
        rfail("out of memory");
        return KITH_EXIT_RUNTIME;
    }
    at->fd = fd;
    at->in_open = true;
    kith_term_hooks hooks = { at, on_attach_line, seen_nick, NULL };
    bool term = kith_term_usable() && kith_term_start(&hooks, history_path) == 0;
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGCONT };
    struct sigaction old[4];
    if (term) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_attach_signal; /* no SA_RESTART: poll returns */
        sigemptyset(&sa.sa_mask);
        attach_signal = attach_cont = 0;
        for (int i = 0; i < 4; i++)
            sigaction(sigs[i], &sa, &old[i]);
    }
    /* Lines may also be waiting in the reader's buffer: print them first. */
    bool in_open = true, detached = false, bye = false;
    char last = '\n';
    char ibuf[4096];
    int rc = KITH_EXIT_OK;
    for (;;) {
        /* Drain complete lines already buffered. */
        for (;;) {
            char *nl = memchr(r.buf + r.start, '\n', r.len - r.start);
            if (!nl)
                break;
            *nl = '\0';
            line = r.buf + r.start;
            r.start = (size_t)(nl - r.buf) + 1;
            if (strcmp(line, "bye") == 0) {
                bye = true;
                kith_client_print("* the node stopped");
            } else {
                if (strcmp(line, "* detached") == 0)
                    detached = true;
                if (term)
                    see_line(at, line);
                kith_client_print(line); /* above the input, coloured on a terminal */
            }
        }
        if (r.start) {
            memmove(r.buf, r.buf + r.start, r.len - r.start);
            r.len -= r.start;
            r.start = 0;
        }
        if (attach_signal)
            break; /* caught while libedit had the key (Ctrl-C): detach */
        if (attach_cont) {
            attach_cont = 0;
            kith_term_continued();
        }
        struct pollfd p[2] = { { fd, POLLIN, 0 }, { 0, POLLIN, 0 } };
        int np = in_open ? 2 : 1;
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR && !attach_signal)
                continue; /* SIGCONT is handled at the top */
            if (errno == EINTR)
                break; /* detached: the node runs on */
            rc = KITH_EXIT_RUNTIME;
            break;
        }
        if (p[0].revents) {
            if (r.len >= RLINE_MAX) {
                rfail("line from the node too long");
                rc = KITH_EXIT_RUNTIME;
                break;
            }
            ssize_t n = read(fd, r.buf + r.len, RLINE_MAX - r.len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (!detached && !bye) {
                    rfail("the node went away");
                    rc = KITH_EXIT_RUNTIME;
                }
                break;
            }
            r.len += (size_t)n;
            continue;
        }
        if (in_open && p[1].revents && term) {
            kith_term_read();
            if (at->failed) {
                rfail("the node went away");
                rc = KITH_EXIT_RUNTIME;
                break;
            }
            in_open = at->in_open;
            continue;
        }
        if (in_open && p[1].revents) {
            ssize_t n = read(0, ibuf, sizeof ibuf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                /* End of input is /quit, as in the in-process client: an
                 * unterminated last line still runs first. */
                in_open = false;
                if (last != '\n')
                    write_all(fd, "\n", 1);
                if (!write_all(fd, "/quit\n", 6))
                    break;
                continue;
            }
            last = ibuf[n - 1];
            if (!write_all(fd, ibuf, (size_t)n)) {
                rfail("the node went away");
                rc = KITH_EXIT_RUNTIME;
                break;
            }
        }
    }
    if (term) {
        kith_term_stop();
        for (int i = 0; i < 4; i++)
            sigaction(sigs[i], &old[i], NULL);
    }
    free(at);
    sodium_memzero(ibuf, sizeof ibuf);
    reader_done(&r);
    return rc;
}
