/* demo: the bots of `kith demo` and the processes and directory that hold
 * them (see demo.h). A bot is a few hooks on its own driver: it joins with
 * the invite it was given, greets, and answers the room's admin after a
 * short delay, the way a person across the network would. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "client/demo.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "client/client.h"
#include "util/util.h"
#include "uvnode/uvnode.h"

extern char **environ;

static const char *const bot_nicks[KITH_DEMO_BOTS] = { "ada", "grace", "cy" };
/* When each bot joins (ms after its node is ready): the last comes late, to
 * show a newcomer catching up on what was said before it joined. */
static const uint64_t join_after_ms[KITH_DEMO_BOTS] = { 200, 700, 7000 };

const char *kith_demo_bot_nick(int which)
{
    return which >= 0 && which < KITH_DEMO_BOTS ? bot_nicks[which] : "bot";
}

/* ---- the bot ---- */

enum { DO_JOIN = 1, DO_SAY, DO_ACT, DO_REACT, DO_HELLO_LATE };
#define BOT_QUEUE 16
#define BOT_TEXT 600

typedef struct bot_todo {
    bool used;
    uint64_t due;
    int kind;
    uint8_t target[KITH_ROOM_ID_LEN];
    char text[BOT_TEXT];
} bot_todo;

struct kith_demo_bot {
    const kith_env *env;
    kith_node *node;
    kith_uvnode *uv;
    int which;
    char code[1024];
    bool has_room;
    uint8_t room[KITH_ROOM_ID_LEN];
    uint64_t joined_ms; /* wall clock: what was said before is not answered */
    uv_timer_t timer;
    bool timer_open;
    bot_todo todo[BOT_QUEUE];
    unsigned answered;
};

static uint64_t bot_now(kith_demo_bot *b)
{
    return uv_now(kith_uvnode_loop(b->uv));
}

static bot_todo *plan(kith_demo_bot *b, uint64_t delay_ms, int kind)
{
    for (size_t i = 0; i < BOT_QUEUE; i++) {
        if (!b->todo[i].used) {
            memset(&b->todo[i], 0, sizeof b->todo[i]);
            b->todo[i].used = true;
            b->todo[i].due = bot_now(b) + delay_ms;
            b->todo[i].kind = kind;
            return &b->todo[i];
        }
    }
    return NULL; /* busy: a bot may skip an answer */
}

static void do_todo(kith_demo_bot *b, bot_todo *t)
{
    uint64_t seq;
    int rc = 0;
    switch (t->kind) {
    case DO_JOIN:
        rc = kith_node_join(b->node, b->code);
        break;
    case DO_SAY:
    case DO_ACT:
        if (b->has_room)
            rc = kith_node_send(
                b->node, b->room, t->kind == DO_SAY ? 1 : 2, t->text, strlen(t->text), &seq);
        break;
    case DO_HELLO_LATE: {
        kith_room_info ri;
        size_t before = 0;
        if (b->has_room && kith_node_room_info(b->node, b->room, &ri) == 0)
            before = ri.messages;
        char nick[64];
        size_t nl = strnlen(t->text, sizeof nick - 1);
        memcpy(nick, t->text, nl);
        nick[nl] = '\0';
        snprintf(t->text, sizeof t->text,
            "hello %s, I'm cy. I joined late and caught up on the %zu message%s written before: "
            "every member ends up with the same history.",
            nick, before, before == 1 ? "" : "s");
        t->kind = DO_SAY;
        do_todo(b, t);
        return;
    }
    case DO_REACT:
        if (b->has_room)
            rc = kith_node_send_about(
                b->node, b->room, 6, t->target, t->text, strlen(t->text), &seq);
        break;
    default:
        break;
    }
    if (rc < 0)
        KITH_LOGW(b->env, "demo bot %s: %s", bot_nicks[b->which], kith_strerror(rc));
    kith_uvnode_kick(b->uv);
}

static void on_timer(uv_timer_t *h)
{
    kith_demo_bot *b = h->data;
    uint64_t now = bot_now(b);
    for (size_t i = 0; i < BOT_QUEUE; i++) {
        bot_todo *t = &b->todo[i];
        if (t->used && t->due <= now) {
            t->used = false;
            do_todo(b, t);
        }
    }
}

/* The person running the demo: the room's admin (it created the room). */
static bool admin_of(kith_demo_bot *b, const uint8_t room[KITH_ROOM_ID_LEN], const uint8_t *who,
    char *nick, size_t cap)
{
    size_t n = kith_node_member_count(b->node, room);
    for (size_t i = 0; i < n; i++) {
        kith_member_info m;
        if (kith_node_member_at(b->node, room, i, &m) != 0 || m.self || m.role != 4)
            continue;
        if (who && memcmp(m.id, who, KITH_MEMBER_ID_LEN) != 0)
            continue;
        if (nick)
            kith_client_sanitize(nick, cap, m.nick ? m.nick : "", m.nick ? strlen(m.nick) : 0);
        return true;
    }
    return false;
}

static void greet(kith_demo_bot *b)
{
    char nick[64] = "there";
    admin_of(b, b->room, NULL, nick, sizeof nick);
    bot_todo *t;
    switch (b->which) {
    case 0:
        if ((t = plan(b, 800, DO_SAY)))
            snprintf(t->text, sizeof t->text,
                "hi %s! I'm ada, a bot running as a node of my own (another process, another "
                "home). Say something and we'll answer.",
                nick);
        break;
    case 1:
        if ((t = plan(b, 1500, DO_ACT)))
            snprintf(t->text, sizeof t->text,
                "waves from a third node. I react to what you say; try /history afterwards.");
        break;
    default:
        /* Written when it is said, after the catch-up had time to run. */
        if ((t = plan(b, 2500, DO_HELLO_LATE)))
            snprintf(t->text, sizeof t->text, "%s", nick);
        break;
    }
}

/* Answer the admin: ada echoes, grace reacts, cy takes questions. */
static void answer(kith_demo_bot *b, const kith_event *ev)
{
    char nick[64];
    if (!admin_of(b, ev->room_id, ev->author, nick, sizeof nick))
        return;
    char quote[160];
    size_t ql = kith_client_sanitize(quote, sizeof quote - 4, ev->text, ev->text_len);
    if (ql < ev->text_len)
        snprintf(quote + ql, sizeof quote - ql, "\xe2\x80\xa6");
    bot_todo *t;
    b->answered++;
    switch (b->which) {
    case 0:
        if ((t = plan(b, 1000, DO_SAY)))
            snprintf(t->text, sizeof t->text,
                "I got \"%s\" from your node, signed by you and encrypted for this room.", quote);
        break;
    case 1:
        if ((t = plan(b, 600, DO_REACT))) {
            memcpy(t->target, ev->id, KITH_ROOM_ID_LEN);
            snprintf(t->text, sizeof t->text, "%s",
                b->answered % 3 == 0 ? "\xf0\x9f\x8e\x89" : "\xf0\x9f\x91\x8d");
        }
        break;
    default:
        if (ev->text_len && ev->text[ev->text_len - 1] == '?' && (t = plan(b, 1400, DO_SAY)))
            snprintf(t->text, sizeof t->text,
                "good question, %s! I'm only a demo bot, but docs/guide.md knows more.", nick);
        break;
    }
}

static void bot_event(void *ud, const kith_event *ev)
{
    kith_demo_bot *b = ud;
    if (ev->type == KITH_EV_ROOM && !ev->history && !b->has_room) {
        memcpy(b->room, ev->room_id, KITH_ROOM_ID_LEN);
        b->has_room = true;
        b->joined_ms = kith_wall_ms(b->env);
        greet(b);
    } else if (ev->type == KITH_EV_MESSAGE && !ev->self && !ev->history && b->has_room
        && memcmp(ev->room_id, b->room, KITH_ROOM_ID_LEN) == 0
        && (ev->msg_type == 1 || ev->msg_type == 2) && ev->wall_ms >= b->joined_ms) {
        answer(b, ev);
    }
}

static void bot_ready(void *ud)
{
    kith_demo_bot *b = ud;
    plan(b, join_after_ms[b->which], DO_JOIN);
}

static void bot_shutdown(void *ud)
{
    kith_demo_bot *b = ud;
    if (b->timer_open && !uv_is_closing((uv_handle_t *)&b->timer))
        uv_close((uv_handle_t *)&b->timer, NULL);
}

int kith_demo_bot_new(const kith_env *env, kith_node *node, kith_uvnode *uv, const char *code,
    int which, kith_demo_bot **out)
{
    if (which < 0 || which >= KITH_DEMO_BOTS || strlen(code) >= sizeof((kith_demo_bot *)0)->code)
        return KITH_EINVAL;
    kith_demo_bot *b = kith_malloc(env, sizeof *b);
    if (!b)
        return KITH_ENOMEM;
    memset(b, 0, sizeof *b);
    b->env = env;
    b->node = node;
    b->uv = uv;
    b->which = which;
    snprintf(b->code, sizeof b->code, "%s", code);
    kith_uvnode_hooks h = { b, bot_event, bot_ready, bot_shutdown };
    int rc = kith_uvnode_add_hooks(uv, &h);
    if (rc) {
        kith_free(env, b);
        return rc;
    }
    uv_timer_init(kith_uvnode_loop(uv), &b->timer);
    b->timer.data = b;
    b->timer_open = true;
    uv_timer_start(&b->timer, on_timer, 100, 100);
    *out = b;
    return 0;
}

/* After kith_uvnode_free (which closed the timer). */
void kith_demo_bot_free(kith_demo_bot *b)
{
    if (b)
        kith_free(b->env, b);
}

/* ---- the host ---- */

int kith_demo_prepare(kith_demo *d, char *home, size_t cap)
{
    memset(d, 0, sizeof *d);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0])
        tmp = "/tmp";
    int n = snprintf(d->dir, sizeof d->dir, "%s/kith-demo-XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof d->dir - 64) {
        d->dir[0] = '\0';
        return KITH_ETOOBIG;
    }
    if (!mkdtemp(d->dir)) { /* mode 0700 */
        d->dir[0] = '\0';
        return KITH_EIO;
    }
    n = snprintf(home, cap, "%s/you", d->dir);
    return n > 0 && (size_t)n < cap ? 0 : KITH_ETOOBIG;
}

int kith_demo_spawn(kith_demo *d, const char *code, int log_level)
{
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0)
        return KITH_EIO;
    exe[el] = '\0';
    char parent[32];
    snprintf(parent, sizeof parent, "%ld", (long)getpid());
    /* The bots' environment: ours, plus who their parent is (they stop
     * when it goes, see main.c). */
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 2, sizeof *envp);
    if (!envp)
        return KITH_ENOMEM;
    char penv[64];
    snprintf(penv, sizeof penv, "KITH_DEMO_PARENT=%s", parent);
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "KITH_DEMO_PARENT=", 17) != 0
            && strncmp(environ[i], "KITH_PASSPHRASE=", 16) != 0)
            envp[k++] = environ[i];
    envp[k++] = penv;
    envp[k] = NULL;
    static const char *levels[] = { "error", "warn", "info", "debug" };
    int rc = 0;
    for (int i = 0; i < KITH_DEMO_BOTS; i++) {
        char home[4200], which[16];
        snprintf(home, sizeof home, "%s/%s", d->dir, bot_nicks[i]);
        snprintf(which, sizeof which, "%d", i);
        /* Bots are quiet unless asked: warnings of three nodes would bury the
         * conversation. */
        const char *lv = log_level > 1 && log_level < 4 ? levels[log_level] : "error";
        char *argv[]
            = { exe, "demo-bot", "--home", home, "--nick", (char *)bot_nicks[i], "--listen",
                  "127.0.0.1:0", "--no-lan", "--log-level", (char *)lv, (char *)code, which, NULL };
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        pid_t pid;
        int e = posix_spawn(&pid, exe, &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        if (e != 0) {
            rc = KITH_EIO;
            break;
        }
        d->pid[d->nbots++] = pid;
    }
    free(envp);
    return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

void kith_demo_finish(kith_demo *d)
{
    for (int i = 0; i < d->nbots; i++)
        if (d->pid[i] > 0)
            kill(d->pid[i], SIGTERM);
    /* A bot flushes and exits at once on SIGTERM; one that doesn't within
     * 5 s is killed. Every child is waited for: no zombies, no orphans. */
    struct timespec step = { 0, 20 * 1000 * 1000 };
    for (int tries = 0; tries < 250; tries++) {
        bool left = false;
        for (int i = 0; i < d->nbots; i++) {
            if (d->pid[i] <= 0)
                continue;
            pid_t r = waitpid(d->pid[i], NULL, WNOHANG);
            if (r == d->pid[i] || (r < 0 && errno == ECHILD))
                d->pid[i] = 0;
            else
                left = true;
        }
        if (!left)
            break;
        nanosleep(&step, NULL);
    }
    for (int i = 0; i < d->nbots; i++) {
        if (d->pid[i] > 0) {
            kill(d->pid[i], SIGKILL);
            waitpid(d->pid[i], NULL, 0);
            d->pid[i] = 0;
        }
    }
    d->nbots = 0;
    if (d->dir[0]) {
        if (nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "kith: warn: could not remove all of %s\n", d->dir);
        d->dir[0] = '\0';
    }
}
