/* main: the kith command line. Parses options, hardens the process (no core
 * dumps, SIGPIPE ignored), opens the home directory's store, loads or
 * creates the identity, then runs the node under the libuv driver with the
 * line client on stdin/stdout. Exit codes: 0 ok, 1 runtime failure, 2 usage.
 * The contract for options and output is docs/internals/client.md. */
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include "client/client.h"
#include "client/control.h"
#include "client/demo.h"
#include "client/irc.h"
#include "client/remote.h"
#include "crypto/crypto.h"
#include "kith/node.h"
#include "room/room.h"
#include "store/store.h"
#include "util/util.h"
#include "uvnode/uvnode.h"

#define DEFAULT_LISTEN "127.0.0.1:7415"
#define HOME_MAX 3800
#define IDENTITY_BLOB "identity.key"
#define SETTINGS_BLOB "settings"
#define KEYFILE_MAX (64u * 1024)

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Subcommands (docs/control.md): none runs or attaches to a node. */
enum { SUB_NONE, SUB_NODE, SUB_SEND, SUB_ME, SUB_TAIL, SUB_STOP, SUB_DEMO, SUB_DEMO_BOT };
#define POS_MAX 64

#define PEERS_MAX 16

typedef struct options {
    int sub;
    const char *pos[POS_MAX]; /* positional arguments after the subcommand */
    int npos;
    bool json;
    uint16_t irc_port; /* 0: no IRC gateway */
    const char *home;
    const char *listen;
    bool listen_set;
    const char *announce;
    const char *nick;
    int log_level;
    bool no_lan;
    bool no_dial;
    size_t degree;
    uint64_t rekey_every_ms; /* 0: the node's default */
    const char *peers[PEERS_MAX];
    size_t npeers;
} options;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("! ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Default home: $KITH_HOME, else ~/.kith. */
static int default_home(char *out, size_t cap)
{
    const char *kh = getenv("KITH_HOME");
    if (kh && kh[0]) {
        int n = snprintf(out, cap, "%s", kh);
        return n > 0 && (size_t)n < cap ? 0 : KITH_ETOOBIG;
    }
    const char *home = getenv("HOME");
    if (!home || !home[0]) {
        const struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !home[0])
        return KITH_ENOENT;
    int n = snprintf(out, cap, "%s/.kith", home);
    return n > 0 && (size_t)n < cap ? 0 : KITH_ETOOBIG;
}

static void usage(FILE *f)
{
    char home[HOME_MAX + 16];
    if (default_home(home, sizeof home) != 0)
        snprintf(home, sizeof home, "(none: set --home or KITH_HOME)");
    fprintf(f,
        "usage: kith [--home DIR] [--listen HOST:PORT] [--announce HOST:PORT]\n"
        "            [--nick NAME] [--log-level LEVEL] [--help] [--version]\n"
        "       kith node [OPTIONS]         run the node without a terminal\n"
        "       kith send ROOM TEXT...      send a message through the running node\n"
        "       kith me ROOM TEXT...        send an action (/me) the same way\n"
        "       kith tail ROOM [--json]     print new messages of ROOM (* for all)\n"
        "       kith stop                   stop the running node\n"
        "       kith demo                   try kith alone: a room with three bots, all in a\n"
        "                                   temporary directory removed when you /quit\n"
        "\n"
        "kith is chat for small groups with no server: it runs your node and a\n"
        "line client that reads commands and messages on stdin. When a node is\n"
        "already running with the home (kith node), kith attaches to it through\n"
        "its control socket (HOME/" KITH_CONTROL_SOCK ") instead; /quit detaches.\n"
        "At a terminal the line is edited (Up recalls, Tab completes commands and\n"
        "nicks; commands kept in HOME/history) and output is coloured.\n"
        "\n"
        "exit codes: 0 ok, 1 runtime error, 2 usage, 3 no node running (send, tail,\n"
        "stop), 4 no such room\n"
        "\n"
        "options:\n"
        "  --home DIR            node home: identity key, settings, room logs\n"
        "                        (default $KITH_HOME or ~/.kith; here: %s)\n"
        "  --listen HOST:PORT    TCP address to listen on, IPv4 or [IPv6]\n"
        "                        (default " DEFAULT_LISTEN "; port 0 is not allowed)\n"
        "  --announce HOST:PORT  address others reach you at, put in invites\n"
        "                        (default: the listen address)\n"
        "  --nick NAME           display name, remembered in the home\n"
        "                        (default: the saved one, else your login name)\n"
        "  --no-lan              no LAN discovery: send no beacons, ignore others'\n"
        "                        (default: on, UDP multicast port 7416)\n"
        "  --peer HOST:PORT      always keep a link to this node (repeatable)\n"
        "  --no-dial             don't dial members' addresses: only --peer links and\n"
        "                        whoever connects to us (messages still relay across)\n"
        "  --degree N            links to keep per room (default 8)\n"
        "  --rekey-days N        as an admin, give each room a fresh key when the\n"
        "                        current one is N days old (default 7; 0: never)\n"
        "  --log-level LEVEL     error, warn, info or debug (default warn); logs go to stderr\n"
        "  --json                kith tail: one JSON object per line\n"
        "  --irc PORT            also run an IRC gateway on 127.0.0.1:PORT (docs/irc.md)\n"
        "  --help                show this text\n"
        "  --version             show the version\n"
        "\n"
        "environment:\n"
        "  KITH_HOME             default home directory\n"
        "  KITH_PASSPHRASE       passphrase sealing the identity key (Argon2id)\n"
        "  NO_COLOR              any non-empty value: no colour on a terminal\n"
        "\n",
        home);
    char help[4096];
    kith_client_help(NULL, 0, help, sizeof help);
    fprintf(f, "%s\n", help);
}

static int parse_level(const char *s)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Returns -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        { "home", required_argument, NULL, 'H' },
        { "listen", required_argument, NULL, 'l' },
        { "announce", required_argument, NULL, 'a' },
        { "nick", required_argument, NULL, 'n' },
        { "log-level", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "json", no_argument, NULL, 'j' },
        { "irc", required_argument, NULL, 'I' },
        { "no-lan", no_argument, NULL, 'N' },
        { "peer", required_argument, NULL, 'P' },
        { "no-dial", no_argument, NULL, 'D' },
        { "degree", required_argument, NULL, 'G' },
        { "rekey-days", required_argument, NULL, 'R' },
        { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof *o);
    o->listen = DEFAULT_LISTEN;
    o->log_level = KITH_LOG_WARN;
    opterr = 0;
    int ch;
    for (;;) {
        ch = getopt_long(argc, argv, "+:h", longopts, NULL);
        if (ch == -1) {
            /* Options may come before and after the subcommand and its
             * arguments: collect positionals and go on parsing. */
            if (optind >= argc)
                break;
            if (strcmp(argv[optind - 1], "--") == 0) {
                while (optind < argc && o->npos < POS_MAX)
                    o->pos[o->npos++] = argv[optind++];
                break;
            }
            static const char *subs[]
                = { "node", "send", "me", "tail", "stop", "demo", "demo-bot" };
            const char *a = argv[optind++];
            bool is_sub = false;
            for (int k = 0; o->sub == SUB_NONE && o->npos == 0 && k < 7; k++)
                if (strcmp(a, subs[k]) == 0) {
                    o->sub = k + 1;
                    is_sub = true;
                }
            if (!is_sub) {
                if (o->sub == SUB_NONE || o->npos >= POS_MAX) {
                    fail("unexpected argument %s (try kith --help)", a);
                    return EXIT_USAGE;
                }
                o->pos[o->npos++] = a;
            }
            continue;
        }
        switch (ch) {
        case 'j':
            o->json = true;
            break;
        case 'I': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (end == optarg || *end || p < 1 || p > 65535) {
                fail("--irc wants a port from 1 to 65535, not %s", optarg);
                return EXIT_USAGE;
            }
            o->irc_port = (uint16_t)p;
            break;
        }
        case 'N':
            o->no_lan = true;
            break;
        case 'P':
            if (o->npeers >= PEERS_MAX || !optarg[0] || strlen(optarg) > 96) {
                fail("--peer: at most %d peers of up to 96 characters each", PEERS_MAX);
                return EXIT_USAGE;
            }
            o->peers[o->npeers++] = optarg;
            break;
        case 'D':
            o->no_dial = true;
            break;
        case 'G': {
            char *end;
            long d = strtol(optarg, &end, 10);
            if (end == optarg || *end || d < 1 || d > 64) {
                fail("--degree wants a number from 1 to 64, not %s", optarg);
                return EXIT_USAGE;
            }
            o->degree = (size_t)d;
            break;
        }
        case 'R': {
            char *end;
            long d = strtol(optarg, &end, 10);
            if (end == optarg || *end || d < 0 || d > 3650) {
                fail("--rekey-days wants a number of days from 0 (never) to 3650, not %s", optarg);
                return EXIT_USAGE;
            }
            o->rekey_every_ms = d ? (uint64_t)d * 24 * 3600 * 1000 : KITH_REKEY_NEVER;
            break;
        }
        case 'H':
            o->home = optarg;
            break;
        case 'l':
            o->listen = optarg;
            o->listen_set = true;
            break;
        case 'a':
            o->announce = optarg;
            break;
        case 'n':
            o->nick = optarg;
            break;
        case 'L':
            o->log_level = parse_level(optarg);
            if (o->log_level < 0) {
                fail("--log-level must be error, warn, info or debug");
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("kith %s\n", KITH_VERSION);
            return EXIT_OK;
        case ':':
            fail("option %s needs a value (try kith --help)", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            if (optopt)
                fail("unknown option -%c (try kith --help)", optopt);
            else
                fail("unknown option %s (try kith --help)", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fail("unexpected argument %s (try kith --help)", argv[optind]);
        return EXIT_USAGE;
    }
    if (o->json && o->sub != SUB_TAIL) {
        fail("--json goes with kith tail (try kith --help)");
        return EXIT_USAGE;
    }
    int want_min = 0, want_max = 0;
    const char *sub_usage = "";
    if (o->sub == SUB_SEND || o->sub == SUB_ME) {
        want_min = 2;
        want_max = POS_MAX;
        sub_usage = o->sub == SUB_SEND ? "kith send ROOM TEXT" : "kith me ROOM TEXT";
    } else if (o->sub == SUB_TAIL) {
        want_min = want_max = 1;
        sub_usage = "kith tail ROOM [--json]";
    } else if (o->sub == SUB_STOP || o->sub == SUB_NODE) {
        sub_usage = o->sub == SUB_STOP ? "kith stop" : "kith node [OPTIONS]";
    } else if (o->sub == SUB_DEMO) {
        sub_usage = "kith demo [--nick NAME]";
        if (o->home) {
            fail("kith demo runs in a temporary home of its own: --home is not used");
            return EXIT_USAGE;
        }
        /* A free port: the demo must not collide with a node of yours. */
        if (!o->listen_set)
            o->listen = "127.0.0.1:0";
    } else if (o->sub == SUB_DEMO_BOT) {
        /* Internal: started by kith demo as `demo-bot CODE N`. */
        want_min = want_max = 2;
        sub_usage = "kith demo-bot CODE N (started by kith demo)";
    }
    if (o->npos < want_min || o->npos > want_max) {
        fail("usage: %s (try kith --help)", sub_usage);
        return EXIT_USAGE;
    }
    char host[KITH_UVNODE_ADDR_MAX];
    uint16_t port;
    if (kith_uvnode_split_addr(o->listen, host, sizeof host, &port, true) != 0) {
        fail("--listen wants HOST:PORT, e.g. 127.0.0.1:7415 or [::1]:7415, not %s", o->listen);
        return EXIT_USAGE;
    }
    if (port == 0 && o->sub != SUB_DEMO && o->sub != SUB_DEMO_BOT) {
        fail("--listen: port 0 is not allowed (an invite must carry a real port)");
        return EXIT_USAGE;
    }
    if (o->announce
        && (strlen(o->announce) > KITH_ADDR_MAX
            || kith_uvnode_split_addr(o->announce, host, sizeof host, &port, false) != 0)) {
        fail("--announce wants HOST:PORT with a port from 1 to 65535, not %s", o->announce);
        return EXIT_USAGE;
    }
    if (o->nick && !kith_client_nick_valid(o->nick, strlen(o->nick))) {
        fail("--nick: 1 to %d bytes of UTF-8, no spaces or control characters",
            KITH_CLIENT_NICK_MAX);
        return EXIT_USAGE;
    }
    if (o->home && (!o->home[0] || strlen(o->home) > HOME_MAX)) {
        fail("--home: empty or too long a path");
        return EXIT_USAGE;
    }
    return -1;
}

/* Keep key material out of core files and away from ptrace by other
 * processes of the same user (PR_SET_DUMPABLE 0 does both). */
static void harden(void)
{
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

/* Ask for the passphrase on the terminal with echo off. The buffer is
 * sodium_malloc'd (kept out of swap, guarded) and wiped by the caller with
 * sodium_free. NULL when stdin is not a terminal or nothing was typed. */
static char *prompt_passphrase(void)
{
    if (!isatty(STDIN_FILENO))
        return NULL;
    enum { PASS_MAX = 1024 };
    char *buf = sodium_malloc(PASS_MAX);
    if (!buf)
        return NULL;
    struct termios old, quiet;
    bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        quiet.c_lflag |= ICANON;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    fputs("passphrase for the identity key: ", stderr);
    fflush(stderr);
    size_t len = 0;
    for (;;) {
        char ch;
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r <= 0 || ch == '\n')
            break;
        if (len + 1 < PASS_MAX)
            buf[len++] = ch;
    }
    buf[len] = '\0';
    if (restore)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    if (len == 0) {
        sodium_free(buf);
        return NULL;
    }
    return buf;
}

static int load_identity(const kith_env *env, kith_store *st, const char *home, kith_identity *id)
{
    const char *pass = getenv("KITH_PASSPHRASE");
    if (pass && !pass[0])
        pass = NULL;
    kith_buf file;
    kith_buf_init(&file, env, KEYFILE_MAX);
    int rc = kith_store_blob_get(st, IDENTITY_BLOB, &file);
    if (rc == 0) {
        char *typed = NULL;
        if (kith_identity_file_sealed(file.data, file.len) && !pass) {
            typed = prompt_passphrase();
            if (!typed) {
                kith_buf_free(&file);
                fail("identity is passphrase-protected: set KITH_PASSPHRASE");
                return EXIT_RUNTIME;
            }
            pass = typed;
        }
        rc = kith_identity_load(env, file.data, file.len, pass, id);
        kith_buf_free(&file);
        if (typed)
            sodium_free(typed); /* wipes */
        if (rc == KITH_EPASS) {
            fail("wrong passphrase for %s/%s", home, IDENTITY_BLOB);
            return EXIT_RUNTIME;
        }
        if (rc < 0) {
            fail("cannot read identity %s/%s: %s", home, IDENTITY_BLOB, kith_strerror(rc));
            return EXIT_RUNTIME;
        }
        return EXIT_OK;
    }
    if (rc != KITH_ENOENT) {
        kith_buf_free(&file);
        fail("cannot read identity %s/%s: %s", home, IDENTITY_BLOB, kith_strerror(rc));
        return EXIT_RUNTIME;
    }
    rc = kith_identity_generate(env, id);
    if (rc == 0)
        rc = kith_identity_save(env, id, pass, &file);
    if (rc == 0)
        rc = kith_store_blob_put(st, IDENTITY_BLOB, file.data, file.len);
    kith_buf_free(&file);
    if (rc < 0) {
        kith_identity_wipe(id);
        fail("cannot create identity in %s: %s", home, kith_strerror(rc));
        return EXIT_RUNTIME;
    }
    char fpr[KITH_FPR_STRLEN];
    kith_fingerprint(id->id_pk, fpr);
    if (pass)
        printf("* created a new identity (fingerprint %s); key sealed with your passphrase "
               "in %s/%s\n",
            fpr, home, IDENTITY_BLOB);
    else
        printf("* created a new identity (fingerprint %s); key stored unencrypted in %s/%s "
               "(mode 0600); set KITH_PASSPHRASE to protect it\n",
            fpr, home, IDENTITY_BLOB);
    return EXIT_OK;
}

/* The nick to start with: --nick (saved for next time), else the saved one,
 * else the login name when it is a valid nick, else "anon". */
static int choose_nick(const kith_env *env, kith_store *st, const options *o, char *out, size_t cap)
{
    if (o->nick) {
        snprintf(out, cap, "%s", o->nick);
        char buf[KITH_CLIENT_NICK_MAX + 16];
        size_t n = kith_client_settings_format(out, buf, sizeof buf);
        int rc = n ? kith_store_blob_put(st, SETTINGS_BLOB, (const uint8_t *)buf, n) : KITH_ETOOBIG;
        if (rc < 0) {
            fail("cannot save settings in the home: %s", kith_strerror(rc));
            return EXIT_RUNTIME;
        }
        return EXIT_OK;
    }
    kith_buf b;
    kith_buf_init(&b, env, 4096);
    int rc = kith_store_blob_get(st, SETTINGS_BLOB, &b);
    if (rc == 0 && kith_client_settings_nick(b.data, b.len, out, cap) == 0) {
        kith_buf_free(&b);
        return EXIT_OK;
    }
    kith_buf_free(&b);
    const char *login = getenv("USER");
    if (!login || !login[0]) {
        const struct passwd *pw = getpwuid(getuid());
        login = pw ? pw->pw_name : NULL;
    }
    if (login && kith_client_nick_valid(login, strlen(login)))
        snprintf(out, cap, "%s", login);
    else
        snprintf(out, cap, "anon");
    return EXIT_OK;
}

/* The address put in invites: --announce, else the listen address, with
 * the unspecified addresses replaced by loopback (and a warning). */
static void choose_announce(const options *o, const char *listen, char *out, size_t cap)
{
    if (o->announce) {
        snprintf(out, cap, "%s", o->announce);
        return;
    }
    char host[KITH_UVNODE_ADDR_MAX];
    uint16_t port = 0;
    if (kith_uvnode_split_addr(listen, host, sizeof host, &port, true) == 0
        && (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)) {
        bool v6 = host[0] == ':';
        snprintf(out, cap, v6 ? "[::1]:%u" : "127.0.0.1:%u", (unsigned)port);
        fprintf(stderr,
            "kith: warn: listening on all addresses; invites will say %s, which only this "
            "machine can reach: pass --announce HOST:PORT\n",
            out);
        return;
    }
    snprintf(out, cap, "%s", listen);
}

/* The one-shot commands talk to the running node; this process opens
 * nothing in the home. */
static int run_remote(const options *o, const char *sock)
{
    if (o->sub == SUB_STOP)
        return kith_remote_stop(sock);
    if (o->sub == SUB_TAIL)
        return kith_remote_tail(sock, o->pos[0], o->json);
    /* send / me: the words after ROOM are the text, joined by spaces. */
    size_t n = 1;
    for (int i = 1; i < o->npos; i++)
        n += strlen(o->pos[i]) + 1;
    char *text = malloc(n);
    if (!text) {
        fail("out of memory");
        return EXIT_RUNTIME;
    }
    text[0] = '\0';
    size_t len = 0;
    for (int i = 1; i < o->npos; i++) {
        size_t l = strlen(o->pos[i]);
        if (i > 1)
            text[len++] = ' ';
        memcpy(text + len, o->pos[i], l);
        len += l;
        text[len] = '\0';
    }
    int code = kith_remote_send(sock, o->pos[0], text, o->sub == SUB_ME);
    free(text);
    return code;
}

/* kith demo, once the user's node and client exist: the room, an invite
 * for the bots, and the bots. */
static int start_demo(kith_demo *d, kith_node *node, kith_client *cl, int log_level)
{
    static const char create[] = "/create " KITH_DEMO_ROOM;
    kith_client_line(cl, create, sizeof create - 1);
    uint8_t room[KITH_ROOM_ID_LEN];
    char code[KITH_INVITE_CODE_MAX];
    kith_invite_opts io = { .ttl_ms = 3600 * 1000, .uses = KITH_DEMO_BOTS, .for_id = NULL };
    if (kith_node_room_find(node, KITH_DEMO_ROOM, room) != 0
        || kith_node_invite_ex(node, room, &io, code, sizeof code) != 0) {
        fail("kith demo: cannot create the demo room");
        return -1;
    }
    if (kith_demo_spawn(d, code, log_level) != 0) {
        fail("kith demo: cannot start the bots");
        return -1;
    }
    kith_client_print("* demo: ada, grace and cy are starting as nodes of their own (separate "
                      "processes, homes and ports); they join in a moment, cy a bit later.");
    kith_client_print("* demo: say something, try /who, /react, /history; everything lives in a "
                      "temporary directory that goes away when you /quit.");
    return 0;
}

static int run(const options *o)
{
    kith_env env;
    kith_env_init_real(&env);
    env.log_level = o->log_level;

    char home[HOME_MAX + 16];
    kith_demo demo;
    memset(&demo, 0, sizeof demo);
    if (o->sub == SUB_DEMO) {
        if (kith_demo_prepare(&demo, home, sizeof home) != 0) {
            fail("kith demo: cannot make a temporary directory (set TMPDIR)");
            return EXIT_RUNTIME;
        }
    } else if (o->home) {
        snprintf(home, sizeof home, "%s", o->home);
    } else if (default_home(home, sizeof home) != 0) {
        fail("cannot tell where the home is: pass --home DIR or set KITH_HOME");
        return EXIT_RUNTIME;
    }

    if (o->sub == SUB_DEMO_BOT) {
        /* A bot lives as long as the demo that started it, even one killed
         * with SIGKILL: the kernel sends us SIGTERM when it goes. */
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        const char *p = getenv("KITH_DEMO_PARENT");
        if (!p || strtol(p, NULL, 10) != (long)getppid())
            return EXIT_RUNTIME; /* the demo is gone already */
    }
    char sock[HOME_MAX + 64];
    /* The demo's nodes have no control socket: nothing attaches to them. */
    bool have_sock = o->sub != SUB_DEMO && o->sub != SUB_DEMO_BOT
        && kith_control_path(home, sock, sizeof sock) == 0;
    if (o->sub != SUB_NONE && o->sub != SUB_NODE && o->sub != SUB_DEMO && o->sub != SUB_DEMO_BOT) {
        if (!have_sock) {
            fail("no control socket for home %s (path too long; set XDG_RUNTIME_DIR)", home);
            return KITH_EXIT_NO_NODE;
        }
        return run_remote(o, sock);
    }
    if (o->sub == SUB_NONE && have_sock) {
        int fd = kith_remote_connect(sock);
        if (fd >= 0) {
            char hist[sizeof home + 16];
            snprintf(hist, sizeof hist, "%s/history", home);
            return kith_remote_attach(fd, hist);
        }
    }

    kith_store *st = NULL;
    int rc = kith_store_open_file(&env, home, &st);
    if (rc < 0) {
        if (rc == KITH_ESTATE)
            fail("cannot open home %s: another kith is running with it", home);
        else if (rc == KITH_EPERM)
            fail("cannot open home %s: it must be a directory only you can read (chmod 700)", home);
        else
            fail("cannot open home %s: %s", home, kith_strerror(rc));
        kith_demo_finish(&demo);
        return EXIT_RUNTIME;
    }

    int code = EXIT_RUNTIME;
    kith_identity *id = NULL;
    kith_node *node = NULL;
    kith_uvnode *uv = NULL;
    kith_verifier *ver = NULL;
    kith_client *cl = NULL;
    kith_control *ctl = NULL;
    kith_irc *irc = NULL;
    kith_demo_bot *bot = NULL;
    char nick[KITH_CLIENT_NICK_MAX + 1];
    char announce[KITH_UVNODE_ADDR_MAX];
    char err[512];
    /* Listen before touching the identity: a taken port must not leave a
     * freshly created key behind on a failed first start. */
    rc = kith_uvnode_new(&env, NULL, &uv);
    if (rc < 0) {
        fail("cannot start the event loop: %s", kith_strerror(rc));
        goto out_node;
    }
    if (kith_uvnode_listen(uv, o->listen, err, sizeof err) < 0) {
        fail("%s", err);
        goto out_node;
    }
    bool lan = !o->no_lan;
    if (lan && kith_uvnode_lan_start(uv, err, sizeof err) < 0) {
        /* No multicast here (no interface, a sandbox): chat works without. */
        fprintf(stderr, "kith: warn: %s\n", err);
        lan = false;
    }
    id = sodium_malloc(sizeof *id); /* guarded, locked pages */
    if (!id) {
        fail("out of memory");
        goto out_node;
    }
    code = load_identity(&env, st, home, id);
    if (code != EXIT_OK)
        goto out_node;
    code = choose_nick(&env, st, o, nick, sizeof nick);
    if (code != EXIT_OK)
        goto out_node;
    code = EXIT_RUNTIME;
    /* Port 0 (the demo's nodes): invites must carry the port we got. */
    char lhost[KITH_UVNODE_ADDR_MAX];
    uint16_t lport = 0;
    bool any_port
        = kith_uvnode_split_addr(o->listen, lhost, sizeof lhost, &lport, true) == 0 && lport == 0;
    choose_announce(
        o, any_port ? kith_uvnode_listen_addr(uv) : o->listen, announce, sizeof announce);

    kith_node_config cfg = { .addr = announce,
        .nick = nick,
        .lan = lan,
        .degree = o->degree,
        .rekey_every_ms = o->rekey_every_ms,
        .no_dial = o->no_dial,
        .peers = o->peers,
        .npeers = o->npeers };
    /* Signatures of incoming messages checked on every core (without it,
     * one by one on this thread). */
    if (kith_verifier_new(0, &ver) == 0)
        kith_verifier_install(ver, &env);
    rc = kith_node_new(&env, st, id, &cfg, &node);
    if (rc < 0) {
        fail("cannot start the node: %s", kith_strerror(rc));
        goto out_node;
    }
    kith_uvnode_set_node(uv, node);
    if (o->sub == SUB_DEMO_BOT) {
        rc = kith_demo_bot_new(&env, node, uv, o->pos[0], (int)strtol(o->pos[1], NULL, 10), &bot);
        if (rc < 0) {
            fail("cannot start the demo bot: %s", kith_strerror(rc));
            goto out_node;
        }
        code = kith_uvnode_run(uv) == 0 ? EXIT_OK : EXIT_RUNTIME;
        goto out_node;
    }
    rc = kith_client_new(&env, node, uv, st, &cl);
    if (rc < 0) {
        fail("cannot start the client: %s", kith_strerror(rc));
        goto out_node;
    }
    kith_client_banner(cl, kith_uvnode_listen_addr(uv), announce);
    char histfile[sizeof home + 16];
    snprintf(histfile, sizeof histfile, "%s/history", home);
    kith_client_set_history_file(cl, histfile);
    /* The control socket: `kith node` needs it (it is the only way in);
     * the interactive kith offers it too, so scripts can use that node. */
    if (!have_sock) {
        if (o->sub == SUB_NODE) {
            fail("no control socket for home %s (path too long; set XDG_RUNTIME_DIR)", home);
            goto out_node;
        }
    } else if (kith_control_new(&env, node, uv, cl, sock, err, sizeof err, &ctl) < 0) {
        if (o->sub == SUB_NODE) {
            fail("%s", err);
            goto out_node;
        }
        fprintf(stderr, "kith: warn: %s\n", err);
    } else if (o->sub == SUB_NODE) {
        printf("* control socket %s\n", sock);
    }
    if (o->irc_port) {
        char pass[KITH_IRC_PASS_LEN + 1];
        if (kith_irc_new(&env, node, uv, st, o->irc_port, pass, err, sizeof err, &irc) < 0) {
            fail("%s", err);
            goto out_node;
        }
        printf("* IRC gateway on 127.0.0.1:%u, password %s (kept in %s/" KITH_IRC_PASS_BLOB ")\n",
            (unsigned)o->irc_port, pass, home);
        sodium_memzero(pass, sizeof pass);
    }
    if (o->sub == SUB_DEMO && start_demo(&demo, node, cl, o->log_level) != 0)
        goto out_node;
    if (o->sub != SUB_NODE && kith_client_start(cl) < 0) {
        fail("cannot read stdin");
        goto out_node;
    }
    code = kith_uvnode_run(uv) == 0 ? EXIT_OK : EXIT_RUNTIME;

out_node:
    /* The driver first (it closes the client's stdin handle), then the
     * client, then the node, which must be flushed already. */
    kith_uvnode_free(uv);
    kith_control_free(ctl);
    kith_irc_free(irc);
    kith_client_free(cl);
    kith_demo_bot_free(bot);
    if (node && code != EXIT_OK && kith_node_flush(node) < 0)
        KITH_LOGW(&env, "final flush failed");
    kith_node_free(node);
    kith_verifier_free(ver); /* after the node: it may check until then */
    if (id) {
        kith_identity_wipe(id);
        sodium_free(id);
    }
    kith_store_close(st);
    kith_demo_finish(&demo); /* the bots, then every file of the demo */
    return code;
}

/* Started with stdin, stdout or stderr closed, the next socket would take
 * that number and be read or written as if it were the terminal: give the
 * closed ones /dev/null first. */
static void standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
            _exit(EXIT_RUNTIME);
    }
}

int main(int argc, char **argv)
{
    standard_fds();
    harden();
    /* One line per event even when stdout is a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    options o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0)
        return code;
    if (sodium_init() < 0) {
        fail("libsodium failed to initialise");
        return EXIT_RUNTIME;
    }
    return run(&o);
}
