/* term: the line client on a terminal (see term.h). libedit's native API
 * in unbuffered mode: every time stdin is readable, el_gets handles one key
 * (or key sequence) and returns the line so far; a line is finished when it
 * ends in '\n'. Printing above the input erases the input rows (the cursor's
 * row is known from the prompt and the text before the cursor), prints, and
 * has libedit redraw from scratch (EL_REFRESH). */
#include "client/term.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <histedit.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include "client/client.h"

/* wcwidth is X/Open; the build asks for POSIX only. */
int wcwidth(wchar_t c);

/* ---- colour (pure) ---- */

bool kith_term_color_wanted(bool stdout_tty, const char *no_color, const char *term)
{
    if (!stdout_tty)
        return false;
    if (no_color && no_color[0])
        return false;
    if (term && strcmp(term, "dumb") == 0)
        return false;
    return true;
}

#define SGR_RESET "\033[0m"
#define SGR_DIM "\033[2m"
#define SGR_ERROR "\033[1;31m"

typedef struct cbuf {
    char *p;
    size_t cap, len;
} cbuf;

static void cb_put(cbuf *b, const char *s, size_t n)
{
    if (b->cap == 0)
        return;
    size_t room = b->cap - 1 - b->len;
    if (n > room)
        n = room;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void cb_str(cbuf *b, const char *s)
{
    cb_put(b, s, strlen(s));
}

/* Ten colours that read on dark and light backgrounds; red is kept for
 * errors. */
static const char *const nick_colors[] = { "\033[32m", "\033[33m", "\033[34m", "\033[35m",
    "\033[36m", "\033[92m", "\033[93m", "\033[94m", "\033[95m", "\033[96m" };

static const char *nick_color(const char *nick, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)nick[i];
        h *= 16777619u;
    }
    return nick_colors[h % (sizeof nick_colors / sizeof nick_colors[0])];
}

static void cb_nick(cbuf *b, const char *nick, size_t n)
{
    cb_str(b, nick_color(nick, n));
    cb_put(b, nick, n);
    cb_str(b, SGR_RESET);
}

/* "[HH:MM] [#room ]<nick> text" or "[HH:MM] [#room ]* nick text": where
 * the nick is (*at, *nlen; 0 when the line names none). False when the
 * line is not a message line at all. */
static bool message_nick(const char *line, size_t len, size_t *at, size_t *nlen)
{
    *at = *nlen = 0;
    if (len < 8 || line[0] != '[' || line[3] != ':' || line[6] != ']' || line[7] != ' ')
        return false;
    size_t i = 8;
    if (i < len && line[i] == '#') {
        const char *sp = memchr(line + i, ' ', len - i);
        i = sp ? (size_t)(sp - line) + 1 : len;
    }
    if (i < len && line[i] == '<') {
        for (size_t k = i + 1; k + 1 < len; k++)
            if (line[k] == '>' && line[k + 1] == ' ') {
                *at = i + 1;
                *nlen = k - (i + 1);
                break;
            }
    } else if (i + 2 < len && line[i] == '*' && line[i + 1] == ' ') {
        const char *sp = memchr(line + i + 2, ' ', len - i - 2);
        *at = i + 2;
        *nlen = sp ? (size_t)(sp - (line + i + 2)) : len - i - 2;
    }
    return true;
}

size_t kith_term_line_nick(const char *line, size_t len, char *out, size_t cap)
{
    size_t at, n;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (!message_nick(line, len, &at, &n) || n == 0 || n >= cap)
        return 0;
    memcpy(out, line + at, n);
    out[n] = '\0';
    return n;
}

size_t kith_term_colorize(const char *line, size_t len, char *out, size_t cap)
{
    cbuf b = { out, cap, 0 };
    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (len == 0)
        return 0;
    if (line[0] == '!' || line[0] == '*') {
        cb_str(&b, line[0] == '!' ? SGR_ERROR : SGR_DIM);
        cb_put(&b, line, len);
        cb_str(&b, SGR_RESET);
        return b.len;
    }
    size_t at, nlen;
    if (!message_nick(line, len, &at, &nlen)) {
        cb_put(&b, line, len);
        return b.len;
    }
    cb_str(&b, SGR_DIM);
    cb_put(&b, line, 7); /* the time */
    cb_str(&b, SGR_RESET);
    if (nlen == 0) {
        cb_put(&b, line + 7, len - 7);
        return b.len;
    }
    cb_put(&b, line + 7, at - 7);
    cb_nick(&b, line + at, nlen);
    cb_put(&b, line + at + nlen, len - at - nlen);
    return b.len;
}

/* ---- completion (pure) ---- */

#define MATCH_MAX 64
#define MATCH_LEN 64

size_t kith_term_complete(const char *before, size_t before_len, const char *const *names,
    kith_term_nick_fn nicks, void *ud, char *insert, size_t insert_cap, char *list, size_t list_cap)
{
    if (insert_cap)
        insert[0] = '\0';
    if (list && list_cap)
        list[0] = '\0';
    size_t ws = before_len;
    while (ws > 0 && before[ws - 1] != ' ' && before[ws - 1] != '\t')
        ws--;
    const char *word = before + ws;
    size_t wlen = before_len - ws;
    bool command = ws == 0 && wlen > 0 && word[0] == '/';
    if (!command && wlen == 0)
        return 0; /* nothing typed: no guess */
    char match[MATCH_MAX][MATCH_LEN];
    size_t n = 0;
    for (size_t i = 0;; i++) {
        const char *cand;
        char buf[MATCH_LEN];
        if (command) {
            cand = names ? names[i] : NULL;
            if (cand) {
                int w = snprintf(buf, sizeof buf, "/%s", cand);
                if (w < 0 || (size_t)w >= sizeof buf)
                    continue;
                cand = buf;
            }
        } else {
            cand = nicks ? nicks(ud, i) : NULL;
        }
        if (!cand)
            break;
        size_t clen = strlen(cand);
        if (clen < wlen || clen >= MATCH_LEN || memcmp(cand, word, wlen) != 0)
            continue;
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(match[k], cand) == 0;
        if (dup || n == MATCH_MAX)
            continue;
        memcpy(match[n++], cand, clen + 1);
    }
    if (n == 0)
        return 0;
    /* The longest prefix all matches share. */
    size_t common = strlen(match[0]);
    for (size_t k = 1; k < n; k++) {
        size_t j = 0;
        while (j < common && match[k][j] == match[0][j])
            j++;
        common = j;
    }
    cbuf ib = { insert, insert_cap, 0 };
    if (common > wlen)
        cb_put(&ib, match[0] + wlen, common - wlen);
    if (n == 1)
        cb_str(&ib, command || ws != 0 ? " " : ": ");
    if (n > 1 && list) {
        cbuf lb = { list, list_cap, 0 };
        for (size_t k = 0; k < n; k++) {
            if (k)
                cb_str(&lb, "  ");
            cb_str(&lb, match[k]);
        }
    }
    return n;
}

/* ---- the process's terminal ---- */

static struct {
    EditLine *el;
    History *hist; /* this session's lines, Up and Down walk it */
    History *kept; /* the lines that go to the history file */
    kith_term_hooks hooks;
    char prompt[128];
    size_t prompt_cols;
    char hist_path[4096];
    int color; /* -1: not decided yet */
    bool in_line; /* a finished line is being handled: no prompt shown */
    char *line; /* copy of the finished line */
    size_t line_cap;
    int cols, rows;
} T = { .color = -1 };

bool kith_term_usable(void)
{
    const char *term = getenv("TERM");
    return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && !(term && strcmp(term, "dumb") == 0);
}

bool kith_term_active(void)
{
    return T.el != NULL;
}

static bool color_on(void)
{
    if (T.color < 0)
        T.color = kith_term_color_wanted(isatty(STDOUT_FILENO), getenv("NO_COLOR"), getenv("TERM"));
    return T.color > 0;
}

/* Display columns of UTF-8 text (an invalid byte or a control counts one). */
static size_t text_cols(const char *s, size_t n)
{
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t cols = 0, i = 0;
    while (i < n) {
        wchar_t wc;
        size_t r = mbrtowc(&wc, s + i, n - i, &st);
        if (r == (size_t)-1 || r == (size_t)-2 || r == 0) {
            memset(&st, 0, sizeof st);
            cols++;
            i++;
            continue;
        }
        int w = wcwidth(wc);
        cols += w < 0 ? 2 : (size_t)w; /* libedit shows a control as ^X */
        i += r;
    }
    return cols;
}

static int screen_cols(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

static char *prompt_fn(EditLine *el)
{
    (void)el;
    return T.prompt;
}

static void update_prompt(void)
{
    char p[sizeof T.prompt];
    if (T.hooks.prompt)
        T.hooks.prompt(T.hooks.ud, p, sizeof p);
    else
        snprintf(p, sizeof p, "> ");
    p[sizeof p - 1] = '\0';
    if (strcmp(p, T.prompt) != 0) {
        memcpy(T.prompt, p, sizeof p);
        T.prompt_cols = text_cols(T.prompt, strlen(T.prompt));
    }
}

/* A resize seen since the last look: tell libedit (it redraws later). */
static void check_size(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0)
        return;
    if (ws.ws_col != T.cols || ws.ws_row != T.rows) {
        T.cols = ws.ws_col;
        T.rows = ws.ws_row;
        el_resize(T.el);
    }
}

/* Take the prompt and the input off the screen: the cursor goes to the
 * first column of the prompt's row and everything below is cleared. */
static void erase_input(void)
{
    const LineInfo *li = el_line(T.el);
    size_t at = T.prompt_cols + text_cols(li->buffer, (size_t)(li->cursor - li->buffer));
    size_t up = at / (size_t)screen_cols();
    fputs("\r", stdout);
    if (up)
        fprintf(stdout, "\033[%zuA", up);
    fputs("\033[J", stdout);
}

static void redraw(void)
{
    update_prompt();
    el_set(T.el, EL_REFRESH);
    fflush(stdout);
}

static void put_lines(const char *text)
{
    const char *p = text;
    bool color = color_on();
    static char out[KITH_CLIENT_LINE_MAX * 6];
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (color) {
            size_t w = kith_term_colorize(p, n, out, sizeof out);
            fwrite(out, 1, w, stdout);
        } else {
            fwrite(p, 1, n, stdout);
        }
        /* Raw mode may leave out the carriage return. */
        fputs(T.el ? "\r\n" : "\n", stdout);
        if (!nl)
            break;
        p = nl + 1;
    }
}

void kith_term_print(const char *text)
{
    bool above = T.el && !T.in_line;
    if (above) {
        check_size(); /* a resize since the last key: redraw at the new width */
        erase_input();
    }
    put_lines(text);
    if (above)
        redraw();
    else
        fflush(stdout);
}

/* Tab. */
static unsigned char complete_fn(EditLine *el, int ch)
{
    (void)ch;
    const char *names[64];
    size_t nn = 0;
    for (const char *s; nn + 1 < 64 && (s = kith_client_command_name(nn)) != NULL;)
        names[nn++] = s;
    names[nn] = NULL;
    const LineInfo *li = el_line(el);
    char ins[MATCH_LEN + 4], list[MATCH_MAX * (MATCH_LEN + 2)];
    size_t n = kith_term_complete(li->buffer, (size_t)(li->cursor - li->buffer), names,
        T.hooks.nick, T.hooks.ud, ins, sizeof ins, list, sizeof list);
    if (n == 0)
        return CC_REFRESH_BEEP;
    if (ins[0]) {
        if (el_insertstr(el, ins) != 0)
            return CC_REFRESH_BEEP;
        return CC_REFRESH;
    }
    if (n > 1) {
        erase_input();
        put_lines(list);
        redraw();
    }
    return CC_NORM;
}

/* What goes to the file: commands, but not what people wrote (messages,
 * actions, topics) nor invite codes. The home holds no readable chat. */
bool kith_term_history_keeps(const char *line, size_t len)
{
    static const char *const secret[]
        = { "/me ", "/edit ", "/react ", "/topic ", "/join ", "/invite " };
    if (len < 2 || line[0] != '/' || line[1] == '/')
        return false;
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
        size_t n = strlen(secret[i]);
        if (len >= n && strncasecmp(line, secret[i], n) == 0)
            return false;
    }
    return true;
}

/* Ctrl-C: libedit's raw mode reads it as a key, so it becomes SIGINT here
 * and the program's own handler shuts down cleanly, as without a terminal. */
static unsigned char interrupt_fn(EditLine *el, int ch)
{
    (void)el;
    (void)ch;
    raise(SIGINT);
    return CC_NORM;
}

static void hist_load(void)
{
    HistEvent ev;
    if (!T.hist_path[0])
        return;
    history(T.kept, &ev, H_LOAD, T.hist_path); /* none yet is fine */
    /* The session starts with them; H_LAST is the oldest. */
    for (int rc = history(T.kept, &ev, H_LAST); rc == 0; rc = history(T.kept, &ev, H_PREV))
        history(T.hist, &ev, H_ENTER, ev.str);
}

/* Written to a fresh file with mode 0600 that replaces the old one: what
 * someone typed is nobody else's business, and a crash mid-write must not
 * lose the old history. */
static void hist_save(void)
{
    if (!T.hist_path[0])
        return;
    char tmp[sizeof T.hist_path + 8];
    int w = snprintf(tmp, sizeof tmp, "%s.tmp", T.hist_path);
    if (w < 0 || (size_t)w >= sizeof tmp)
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    HistEvent ev;
    int rc = history(T.kept, &ev, H_SAVE_FP, f);
    if (fclose(f) != 0 || rc < 0 || rename(tmp, T.hist_path) != 0)
        unlink(tmp);
}

static void hist_free(void)
{
    if (T.hist)
        history_end(T.hist);
    if (T.kept)
        history_end(T.kept);
    T.hist = T.kept = NULL;
}

/* libedit needs the locale to edit UTF-8; kith's text is UTF-8 always. */
static void utf8_locale(void)
{
    if (setlocale(LC_CTYPE, "")) {
        const char *cs = nl_langinfo(CODESET);
        if (cs && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "utf8") == 0))
            return;
    }
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        setlocale(LC_CTYPE, "C");
}

int kith_term_start(const kith_term_hooks *hooks, const char *history_path)
{
    if (T.el)
        return 0;
    utf8_locale();
    T.hooks = *hooks;
    T.hist_path[0] = '\0';
    if (history_path && strlen(history_path) < sizeof T.hist_path)
        memcpy(T.hist_path, history_path, strlen(history_path) + 1);
    T.hist = history_init();
    T.kept = history_init();
    if (!T.hist || !T.kept) {
        hist_free();
        return -1;
    }
    HistEvent ev;
    history(T.hist, &ev, H_SETSIZE, KITH_TERM_HISTORY_MAX);
    history(T.hist, &ev, H_SETUNIQUE, 1);
    history(T.kept, &ev, H_SETSIZE, KITH_TERM_HISTORY_MAX);
    history(T.kept, &ev, H_SETUNIQUE, 1);
    hist_load();
    T.el = el_init("kith", stdin, stdout, stderr);
    if (!T.el) {
        hist_free();
        return -1;
    }
    T.prompt[0] = '\0';
    update_prompt();
    el_set(T.el, EL_EDITOR, "emacs");
    el_set(T.el, EL_PROMPT, prompt_fn);
    el_set(T.el, EL_HIST, history, T.hist);
    /* el_wset: the narrow el_set copies these names and never frees them. */
    el_wset(T.el, EL_ADDFN, L"kith-complete", L"complete a command or a nick", complete_fn);
    el_set(T.el, EL_BIND, "^I", "kith-complete", NULL);
    el_wset(T.el, EL_ADDFN, L"kith-interrupt", L"interrupt: quit", interrupt_fn);
    el_set(T.el, EL_BIND, "^C", "kith-interrupt", NULL);
    /* ~/.editrc (or $EDITRC) lets people rebind keys, as in other libedit
     * programs. */
    el_source(T.el, NULL);
    check_size();
    el_set(T.el, EL_UNBUFFERED, 1); /* raw mode, prompt shown */
    fflush(stdout);
    return 0;
}

/* Lines the client shows again as a message: chat text, //text and /me. */
static bool echoed(const char *line, size_t len)
{
    if (len == 0 || !line)
        return false;
    if (line[0] != '/' || (len > 1 && line[1] == '/'))
        return true;
    return len > 4 && strncasecmp(line, "/me ", 4) == 0;
}

static void finished_line(const char *buf, size_t len)
{
    if (len + 1 > T.line_cap) {
        char *p = realloc(T.line, len + 1);
        if (!p)
            return; /* dropped: out of memory */
        T.line = p;
        T.line_cap = len + 1;
    }
    memcpy(T.line, buf, len);
    T.line[len] = '\0';
    bool blank = true;
    for (size_t i = 0; i < len && blank; i++)
        blank = T.line[i] == ' ' || T.line[i] == '\t';
    if (!blank) {
        HistEvent ev;
        history(T.hist, &ev, H_ENTER, T.line);
        if (kith_term_history_keeps(T.line, len))
            history(T.kept, &ev, H_ENTER, T.line);
    }
}

void kith_term_read(void)
{
    if (!T.el || T.in_line)
        return;
    check_size();
    /* A hang-up first: el_gets can't tell it from an emptied line. */
    struct pollfd pf = { STDIN_FILENO, POLLIN, 0 };
    bool eof = poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
        && !(pf.revents & POLLIN);
    bool done = false;
    size_t len = 0;
    int count = 0;
    const char *buf = eof ? NULL : el_gets(T.el, &count);
    if (eof || !buf || count <= 0) {
        /* nothing finished (NULL also means the line is empty again) */
    } else if (count == 1 && buf[0] == 4) {
        eof = true; /* Ctrl-D on an empty line */
    } else if (count > 0 && buf[count - 1] == '\n') {
        done = true;
        len = (size_t)count - 1;
        finished_line(buf, len);
    }
    if (!eof && !done) {
        fflush(stdout);
        return;
    }
    /* Cooked mode while the line is handled; libedit starts a fresh line
     * (and redraws the prompt) when unbuffered mode comes back. */
    el_set(T.el, EL_UNBUFFERED, 0);
    if (done && echoed(T.line, len)) {
        /* The message comes back as "[12:03] <you> text" at once: the typed
         * copy would only double it. libedit left the cursor below it. */
        size_t rows = (T.prompt_cols + text_cols(T.line, len)) / (size_t)screen_cols() + 1;
        fprintf(stdout, "\033[%zuA\r\033[J", rows);
    }
    T.in_line = true;
    if (eof) {
        fputs("\r\n", stdout);
        fflush(stdout);
        T.hooks.line(T.hooks.ud, NULL, 0);
    } else if (T.line) {
        T.hooks.line(T.hooks.ud, T.line, len);
    }
    T.in_line = false;
    if (T.el) { /* not stopped by the line */
        update_prompt();
        el_set(T.el, EL_UNBUFFERED, 1);
        fflush(stdout);
    }
}

void kith_term_continued(void)
{
    if (!T.el || T.in_line)
        return;
    const LineInfo *li = el_line(T.el);
    size_t n = (size_t)(li->lastchar - li->buffer);
    char *save = malloc(n + 1);
    if (save) {
        memcpy(save, li->buffer, n);
        save[n] = '\0';
    }
    /* Off and on again: libedit takes the modes afresh and starts a new
     * line (which empties the buffer: the input goes back in after). */
    el_set(T.el, EL_UNBUFFERED, 0);
    update_prompt();
    el_set(T.el, EL_UNBUFFERED, 1);
    if (save && n)
        el_insertstr(T.el, save);
    fputs("\r\033[J", stdout);
    redraw();
    if (save) {
        sodium_memzero(save, n + 1);
        free(save);
    }
}

void kith_term_stop(void)
{
    if (!T.el)
        return;
    if (!T.in_line) {
        erase_input();
        fflush(stdout);
    }
    el_set(T.el, EL_UNBUFFERED, 0);
    el_end(T.el); /* gives the terminal back as it was */
    T.el = NULL;
    hist_save();
    hist_free();
    if (T.line) {
        sodium_memzero(T.line, T.line_cap);
        free(T.line);
    }
    T.line = NULL;
    T.line_cap = 0;
    T.in_line = false;
}
