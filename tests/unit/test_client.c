/* Unit tests for the line client's pure parts: command parsing, help, UTF-8
 * checks and display sanitizing, line formatting, the stdin line splitter
 * and the settings blob. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "client/control.h"
#include "testenv.h"

/* 2026-01-01 00:00:00 UTC */
#define JAN1 1767225600000ull

static void parse(const char *line, kith_cmd *c)
{
    kith_client_parse(line, strlen(line), c);
}

static void assert_arg(const kith_cmd *c, const char *want)
{
    assert_non_null(c->arg);
    assert_int_equal(c->arg_len, strlen(want));
    assert_memory_equal(c->arg, want, c->arg_len);
}

static void test_parse_commands(void **state)
{
    (void)state;
    kith_cmd c;
    parse("/join  kith1:abc ", &c);
    assert_int_equal(c.kind, KITH_CMD_JOIN);
    assert_arg(&c, "kith1:abc");
    parse("/JOIN\tkith1:x", &c);
    assert_int_equal(c.kind, KITH_CMD_JOIN);
    assert_arg(&c, "kith1:x");
    parse("/create  book club  ", &c);
    assert_int_equal(c.kind, KITH_CMD_CREATE);
    assert_arg(&c, "book club");
    parse("/invite", &c);
    assert_int_equal(c.kind, KITH_CMD_INVITE);
    assert_null(c.arg);
    parse("/invite bookclub", &c);
    assert_int_equal(c.kind, KITH_CMD_INVITE);
    assert_arg(&c, "bookclub");
    parse("/rooms", &c);
    assert_int_equal(c.kind, KITH_CMD_ROOMS);
    parse("/who", &c);
    assert_int_equal(c.kind, KITH_CMD_WHO);
    parse("/switch b", &c);
    assert_int_equal(c.kind, KITH_CMD_SWITCH);
    assert_arg(&c, "b");
    parse("/nick  carol", &c);
    assert_int_equal(c.kind, KITH_CMD_NICK);
    assert_arg(&c, "carol");
    parse("/me waves  hello", &c);
    assert_int_equal(c.kind, KITH_CMD_ME);
    assert_arg(&c, "waves  hello");
    parse("/quit now", &c);
    assert_int_equal(c.kind, KITH_CMD_QUIT);
    parse("/help /join", &c);
    assert_int_equal(c.kind, KITH_CMD_HELP);
    assert_arg(&c, "join");
    parse("/help", &c);
    assert_int_equal(c.kind, KITH_CMD_HELP);
    assert_null(c.arg);
}

static void test_parse_history(void **state)
{
    (void)state;
    kith_cmd c;
    parse("/history", &c);
    assert_int_equal(c.kind, KITH_CMD_HISTORY);
    assert_int_equal(c.count, 20);
    parse("/history 5", &c);
    assert_int_equal(c.kind, KITH_CMD_HISTORY);
    assert_int_equal(c.count, 5);
    parse("/history 10000", &c);
    assert_int_equal(c.count, 10000);
    const char *bad[] = { "/history 0", "/history -1", "/history 5x", "/history 10001",
        "/history 99999999999999999999", "/history 1 2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse(bad[i], &c);
        assert_int_equal(c.kind, KITH_CMD_INVALID);
        assert_string_equal(c.error, "! usage: /history [N] [ids] with N from 1 to 10000");
    }
}

static void test_parse_plain(void **state)
{
    (void)state;
    kith_cmd c;
    parse("hello world", &c);
    assert_int_equal(c.kind, KITH_CMD_SAY);
    assert_arg(&c, "hello world");
    parse("  leading blanks kept", &c);
    assert_int_equal(c.kind, KITH_CMD_SAY);
    assert_arg(&c, "  leading blanks kept");
    parse("//etc/passwd is a path", &c);
    assert_int_equal(c.kind, KITH_CMD_SAY);
    assert_arg(&c, "/etc/passwd is a path");
    parse("//", &c);
    assert_int_equal(c.kind, KITH_CMD_SAY);
    assert_arg(&c, "/");
    parse("", &c);
    assert_int_equal(c.kind, KITH_CMD_EMPTY);
    parse(" \t ", &c);
    assert_int_equal(c.kind, KITH_CMD_EMPTY);
    /* Embedded NUL: the length rules, not the C string. */
    kith_client_parse("a\0b", 3, &c);
    assert_int_equal(c.kind, KITH_CMD_SAY);
    assert_int_equal(c.arg_len, 3);
}

static void test_parse_errors(void **state)
{
    (void)state;
    kith_cmd c;
    parse("/frob", &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_string_equal(c.error, "! unknown command /frob: try /help");
    parse("/frob with args", &c);
    assert_string_equal(c.error, "! unknown command /frob: try /help");
    parse("/", &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_string_equal(c.error, "! unknown command /: try /help");
    parse("/search", &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_string_equal(c.error, "! usage: /search TEXT");
    parse("/search  Foo bar ", &c);
    assert_int_equal(c.kind, KITH_CMD_SEARCH);
    assert_arg(&c, "Foo bar");
    parse("/create", &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_string_equal(c.error, "! usage: /create NAME");
    parse("/create   \t", &c);
    assert_string_equal(c.error, "! usage: /create NAME");
    parse("/join", &c);
    assert_string_equal(c.error, "! usage: /join CODE");
    parse("/join kith1:a kith1:b", &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_string_equal(c.error, "! usage: /join CODE (one code, no spaces)");
    parse("/switch", &c);
    assert_string_equal(c.error, "! usage: /switch ROOM");
    parse("/nick", &c);
    assert_string_equal(c.error, "! usage: /nick NAME");
    parse("/me", &c);
    assert_string_equal(c.error, "! usage: /me TEXT");
    /* Hostile command names: escape sequences are not echoed, and a huge
     * name is cut short. */
    parse("/\x1b[2J\x1b]0;pwned\x07", &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_null(strchr(c.error, '\x1b'));
    assert_null(strchr(c.error, '\x07'));
    char big[5000];
    big[0] = '/';
    memset(big + 1, 'x', sizeof big - 2);
    big[sizeof big - 1] = '\0';
    parse(big, &c);
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    assert_true(strlen(c.error) < sizeof c.error);
    assert_non_null(strstr(c.error, "\xe2\x80\xa6: try /help"));
}

static void test_help(void **state)
{
    (void)state;
    const char *names[] = { "create", "invite", "join", "rooms", "switch", "who", "nick", "me",
        "history", "help", "quit" };
    char out[4096], want[64];
    size_t all = kith_client_help(NULL, 0, out, sizeof out);
    assert_true(all > 0 && all < sizeof out);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(want, sizeof want, "/%s", names[i]);
        assert_non_null(strstr(out, want));
    }
    /* Every line of the full help is a "* " line. */
    for (const char *p = out; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        assert_memory_equal(p, "* ", 2);
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char one[512];
        size_t n = kith_client_help(names[i], strlen(names[i]), one, sizeof one);
        snprintf(want, sizeof want, "* /%s", names[i]);
        assert_true(n > strlen(want) + 4);
        assert_memory_equal(one, want, strlen(want));
        assert_null(strchr(one, '\n'));
    }
    kith_client_help("/join", 5, out, sizeof out);
    assert_string_equal(out, "* /join CODE: join a room with an invite code");
    kith_client_help("frob", 4, out, sizeof out);
    assert_string_equal(out, "! no such command /frob: try /help");
    /* A tiny buffer is truncated, never overrun. */
    char tiny[8];
    size_t n = kith_client_help(NULL, 0, tiny, sizeof tiny);
    assert_int_equal(n, 7);
    assert_int_equal(tiny[7], '\0');
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(kith_client_utf8_valid("", 0));
    assert_true(kith_client_utf8_valid("plain", 5));
    assert_true(kith_client_utf8_valid("\xe2\x82\xac", 3)); /* € */
    assert_true(kith_client_utf8_valid("\xf0\x9f\x98\x80", 4)); /* 😀 */
    assert_true(kith_client_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    assert_false(kith_client_utf8_valid("\xff", 1));
    assert_false(kith_client_utf8_valid("\xc0\xaf", 2)); /* overlong '/' */
    assert_false(kith_client_utf8_valid("\xe0\x80\xaf", 3)); /* overlong */
    assert_false(kith_client_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(kith_client_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(kith_client_utf8_valid("\xe2\x82", 2)); /* truncated */
    assert_false(kith_client_utf8_valid("a\x80", 2)); /* lone continuation */
    assert_false(kith_client_utf8_valid("\xf8\x88\x80\x80\x80", 5)); /* 5-byte form */
}

static void test_sanitize(void **state)
{
    (void)state;
    char out[64];
    size_t n = kith_client_sanitize(out, sizeof out, "a\nb\rc\x1b[31md\te", 13);
    assert_int_equal(n, 13);
    assert_string_equal(out, "a?b?c?[31md e");
    /* C1 control (U+009B CSI), RLO (U+202E), invalid byte. */
    n = kith_client_sanitize(out, sizeof out, "x\xc2\x9by\xe2\x80\xaez\xff", 9);
    assert_string_equal(out, "x?y?z?");
    /* Valid multibyte text passes untouched. */
    kith_client_sanitize(out, sizeof out, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    assert_string_equal(out, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    /* Never splits a character: 4 bytes of room for a 4-byte char + NUL. */
    n = kith_client_sanitize(out, 5, "ab\xf0\x9f\x98\x80", 6);
    assert_int_equal(n, 2);
    assert_string_equal(out, "ab");
    assert_int_equal(kith_client_sanitize(out, 0, "abc", 3), 0);
}

static kith_event msg_event(uint32_t type, const char *nick, const char *text)
{
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_MESSAGE;
    ev.has_room = true;
    ev.room_name = "bookclub";
    ev.nick = nick;
    ev.msg_type = type;
    ev.text = text;
    ev.text_len = strlen(text);
    ev.wall_ms = JAN1 + (13 * 3600 + 5 * 60 + 59) * 1000ull;
    return ev;
}

static void test_format_message(void **state)
{
    (void)state;
    char out[256];
    kith_event ev = msg_event(1, "alice", "hello there");
    assert_int_equal(kith_client_format_message(&ev, false, out, sizeof out), 27);
    assert_string_equal(out, "[13:05] <alice> hello there");
    kith_client_format_message(&ev, true, out, sizeof out);
    assert_string_equal(out, "[13:05] #bookclub <alice> hello there");
    ev = msg_event(2, "alice", "waves");
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * alice waves");
    kith_client_format_message(&ev, true, out, sizeof out);
    assert_string_equal(out, "[13:05] #bookclub * alice waves");
    ev = msg_event(3, "alice", "ally");
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * alice is now known as ally");
    /* text is not NUL-terminated: text_len rules. */
    ev = msg_event(1, "bob", "hi there");
    ev.text_len = 2;
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] <bob> hi");
    /* A peer can't forge a second line or a fake nick. */
    ev = msg_event(1, "bo\x1b[1mb", "x\n[13:05] <alice> send me your key");
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '\x1b'));
    assert_string_equal(out, "[13:05] <bo?[1mb> x?[13:05] <alice> send me your key");
    /* No nick, no room name: short hex ids instead. */
    ev = msg_event(1, NULL, "x");
    memset(ev.author, 0xab, sizeof ev.author);
    ev.room_name = NULL;
    memset(ev.room_id, 0x01, sizeof ev.room_id);
    kith_client_format_message(&ev, true, out, sizeof out);
    assert_string_equal(out, "[13:05] #01010101 <abababab> x");
    /* Unknown message types and other events are not message lines. */
    ev = msg_event(9, "a", "x");
    assert_int_equal(kith_client_format_message(&ev, false, out, sizeof out), 0);
    ev = msg_event(1, "a", "x");
    ev.type = KITH_EV_SENT;
    assert_int_equal(kith_client_format_message(&ev, false, out, sizeof out), 0);
    /* Truncation keeps the buffer terminated. */
    ev = msg_event(1, "alice", "a long message that will not fit");
    size_t n = kith_client_format_message(&ev, false, out, 20);
    assert_int_equal(n, 19);
    assert_int_equal(strlen(out), 19);
}

static void test_format_edits(void **state)
{
    (void)state;
    char out[256];
    kith_event ev = msg_event(4, "alice", "new text");
    ev.has_target = true;
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * alice edited: new text");
    ev = msg_event(5, "alice", "");
    ev.target_type = 1;
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * alice deleted a message");
    ev = msg_event(6, "bob", "\xf0\x9f\x91\x8d");
    ev.target_type = 1;
    ev.ctx_nick = "alice";
    ev.ctx = "a rather long message that goes on and on past the snippet";
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out,
        "[13:05] * bob reacted \xf0\x9f\x91\x8d to alice: \"a rather long message that goes on "
        "and o\xe2\x80\xa6\"");
    ev.ctx = "hi";
    ev.msg_type = 5;
    ev.target_type = 6;
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * bob took back \xf0\x9f\x91\x8d to alice: \"hi\"");
    /* The target's text and author are someone's: sanitized. */
    ev = msg_event(6, "bob", "+1");
    ev.ctx_nick = "al\nice";
    ev.ctx = "x\x1b[2J";
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * bob reacted +1 to al?ice: \"x?[2J\"");
    ev.ctx = NULL, ev.ctx_nick = NULL; /* a target we don't hold */
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * bob reacted +1");
    /* History view: edited and deleted messages. */
    ev = msg_event(1, "alice", "fixed");
    ev.edited = true;
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] <alice> fixed (edited)");
    ev = msg_event(2, "alice", "");
    ev.deleted = true;
    kith_client_format_message(&ev, false, out, sizeof out);
    assert_string_equal(out, "[13:05] * alice [message deleted]");
}

static void test_json_edits(void **state)
{
    (void)state;
    char out[2048];
    kith_event ev = msg_event(6, "bob", "+1");
    memset(ev.id, 0xab, sizeof ev.id);
    ev.has_target = true;
    memset(ev.target, 0xcd, sizeof ev.target);
    assert_true(kith_control_json_event(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"type\":\"reaction\""));
    assert_non_null(strstr(out, "\"id\":\"abababab"));
    assert_non_null(strstr(out, "\"target\":\"cdcdcdcd"));
    assert_null(strstr(out, "\"edited\""));
    ev = msg_event(1, "alice", "fixed");
    ev.edited = true;
    assert_true(kith_control_json_event(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"type\":\"text\""));
    assert_non_null(strstr(out, "\"edited\":true"));
    assert_null(strstr(out, "\"target\""));
    ev = msg_event(4, "alice", "new");
    assert_true(kith_control_json_event(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"type\":\"edit\""));
    ev = msg_event(5, "alice", "");
    ev.deleted = true;
    assert_true(kith_control_json_event(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"type\":\"delete\""));
}

static void test_json_member(void **state)
{
    (void)state;
    char out[2048];
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_MEMBER;
    ev.op = KITH_MOP_SET_ROLE;
    ev.role = 4;
    ev.nick = "alice";
    memset(ev.author, 1, sizeof ev.author);
    memset(ev.subject, 2, sizeof ev.subject);
    ev.subject_nick = "bob\"~x";
    assert_true(kith_control_json_event(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"event\":\"member\""));
    assert_non_null(strstr(out, "\"op\":\"role\""));
    assert_non_null(strstr(out, "\"role\":\"admin\""));
    assert_non_null(strstr(out, "\"subject_nick\":\"bob\\\"~x\""));
    ev.op = KITH_MOP_BAN;
    assert_true(kith_control_json_event(&ev, out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"op\":\"ban\""));
    assert_null(strstr(out, "\"role\""));
    /* The line client prints the info line, not this twin. */
    assert_int_equal(kith_client_format_event(&ev, false, out, sizeof out), 0);
}

static void test_parse_refs(void **state)
{
    (void)state;
    kith_cmd c;
#define P(s) kith_client_parse(s, strlen(s), &c)
    P("/edit fixed text");
    assert_int_equal(c.kind, KITH_CMD_EDIT);
    assert_int_equal(c.count, 1);
    assert_null(c.ref);
    assert_int_equal(c.arg_len, 10);
    assert_memory_equal(c.arg, "fixed text", 10);
    P("/edit 3 third back");
    assert_int_equal(c.kind, KITH_CMD_EDIT);
    assert_int_equal(c.count, 3);
    assert_memory_equal(c.arg, "third back", 10);
    P("/edit 3f2a1b by id");
    assert_int_equal(c.count, 0);
    assert_int_equal(c.ref_len, 6);
    assert_memory_equal(c.ref, "3f2a1b", 6);
    assert_memory_equal(c.arg, "by id", 5);
    P("/edit 42"); /* one word: the new text */
    assert_int_equal(c.kind, KITH_CMD_EDIT);
    assert_int_equal(c.count, 1);
    assert_memory_equal(c.arg, "42", 2);
    P("/edit");
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    P("/delete");
    assert_int_equal(c.kind, KITH_CMD_DELETE);
    assert_int_equal(c.count, 1);
    P("/delete 2");
    assert_int_equal(c.count, 2);
    P("/delete abcdef12");
    assert_int_equal(c.ref_len, 8);
    P("/delete that one");
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    P("/react \xf0\x9f\x91\x8d");
    assert_int_equal(c.kind, KITH_CMD_REACT);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.arg_len, 4);
    P("/react 2 +1");
    assert_int_equal(c.count, 2);
    assert_memory_equal(c.arg, "+1", 2);
    P("/react 2 two words");
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    P("/react 0123456789abcdef0123456789abcdefX");
    assert_int_equal(c.kind, KITH_CMD_INVALID);
    P("/unreact");
    assert_int_equal(c.kind, KITH_CMD_UNREACT);
    assert_int_equal(c.count, 0);
    assert_null(c.ref);
    assert_null(c.arg);
    P("/unreact 3");
    assert_int_equal(c.count, 3);
    assert_null(c.arg);
    P("/unreact +1");
    assert_int_equal(c.count, 0);
    assert_memory_equal(c.arg, "+1", 2);
    P("/unreact 1 +1");
    assert_int_equal(c.count, 1);
    assert_memory_equal(c.arg, "+1", 2);
    P("/history 5 ids");
    assert_int_equal(c.kind, KITH_CMD_HISTORY);
    assert_int_equal(c.count, 5);
    assert_true(c.ids);
    P("/history ids");
    assert_int_equal(c.count, KITH_CLIENT_HISTORY_DEFAULT);
    assert_true(c.ids);
    P("/history ids 7");
    assert_int_equal(c.count, 7);
    P("/history 7");
    assert_false(c.ids);
#undef P
}

static void test_format_events(void **state)
{
    (void)state;
    char out[256];
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_JOIN;
    ev.nick = "carol";
    ev.room_name = "bookclub";
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "* carol joined bookclub");

    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_NICK;
    ev.nick = "bob";
    ev.text = "bobby"; /* deliberately longer than text_len says */
    ev.text_len = 5;
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "* bob is now known as bobby");
    ev.nick = "bobby"; /* no old name known */
    memset(ev.author, 0xcd, sizeof ev.author);
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "* cdcdcdcd is now known as bobby");

    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_PEER_UP;
    ev.nick = "dave";
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "* dave is online");
    ev.type = KITH_EV_PEER_DOWN;
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "* dave went offline");

    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_ERROR;
    ev.text = "join failed: could not reach the inviter";
    ev.text_len = strlen(ev.text);
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "! join failed: could not reach the inviter");
    ev.text = NULL;
    ev.text_len = 0;
    ev.err = KITH_EIO;
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "! input/output error");

    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_INFO;
    ev.text = "note\x1b[0m"; /* NUL-terminated, no text_len */
    kith_client_format_event(&ev, false, out, sizeof out);
    assert_string_equal(out, "* note?[0m");

    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_SENT;
    assert_int_equal(kith_client_format_event(&ev, false, out, sizeof out), 0);
    ev.type = KITH_EV_ROOM;
    assert_int_equal(kith_client_format_event(&ev, false, out, sizeof out), 0);
    ev.type = 999;
    assert_int_equal(kith_client_format_event(&ev, false, out, sizeof out), 0);

    ev = msg_event(1, "alice", "hi");
    kith_client_format_event(&ev, true, out, sizeof out);
    assert_string_equal(out, "[13:05] #bookclub <alice> hi");
}

/* ---- line splitter ---- */

typedef struct lines_log {
    size_t n;
    size_t lens[16];
    bool too_long[16];
    char first[16][32];
    int stop_at; /* stop after this many lines; 0 never */
} lines_log;

static int log_line(void *ud, const char *line, size_t len, bool too_long)
{
    lines_log *l = ud;
    assert_true(l->n < 16);
    l->lens[l->n] = len;
    l->too_long[l->n] = too_long;
    size_t k = len < 31 ? len : 31;
    memcpy(l->first[l->n], line, k);
    l->first[l->n][k] = '\0';
    l->n++;
    return l->stop_at && (int)l->n == l->stop_at ? 1 : 0;
}

static void test_lines_basic(void **state)
{
    (void)state;
    kith_client_lines *lr = malloc(sizeof *lr);
    assert_non_null(lr);
    lines_log log;
    memset(&log, 0, sizeof log);
    kith_client_lines_init(lr);
    const char *in = "one\ntw";
    assert_int_equal(kith_client_lines_feed(lr, in, strlen(in), log_line, &log), 0);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.first[0], "one");
    in = "o\r\n\nthree";
    kith_client_lines_feed(lr, in, strlen(in), log_line, &log);
    assert_int_equal(log.n, 3);
    assert_string_equal(log.first[1], "two"); /* CRLF stripped */
    assert_int_equal(log.lens[2], 0); /* an empty line is still a line */
    /* EOF delivers the unterminated last line, once. */
    kith_client_lines_eof(lr, log_line, &log);
    assert_int_equal(log.n, 4);
    assert_string_equal(log.first[3], "three");
    kith_client_lines_eof(lr, log_line, &log);
    assert_int_equal(log.n, 4);
    /* A callback that stops (e.g. /quit) ends the feed. */
    memset(&log, 0, sizeof log);
    log.stop_at = 1;
    kith_client_lines_init(lr);
    in = "/quit\nafter\n";
    assert_int_equal(kith_client_lines_feed(lr, in, strlen(in), log_line, &log), 1);
    assert_int_equal(log.n, 1);
    kith_client_lines_feed(lr, "more\n", 5, log_line, &log);
    kith_client_lines_eof(lr, log_line, &log);
    assert_int_equal(log.n, 1);
    free(lr);
}

static void test_lines_too_long(void **state)
{
    (void)state;
    kith_client_lines *lr = malloc(sizeof *lr);
    size_t big = 3 * KITH_CLIENT_LINE_MAX;
    char *buf = malloc(big);
    assert_non_null(lr);
    assert_non_null(buf);
    memset(buf, 'x', big);
    lines_log log;
    memset(&log, 0, sizeof log);
    kith_client_lines_init(lr);

    /* Exactly the limit: accepted, with or without CR. */
    kith_client_lines_feed(lr, buf, KITH_CLIENT_LINE_MAX, log_line, &log);
    kith_client_lines_feed(lr, "\n", 1, log_line, &log);
    kith_client_lines_feed(lr, buf, KITH_CLIENT_LINE_MAX, log_line, &log);
    kith_client_lines_feed(lr, "\r\n", 2, log_line, &log);
    assert_int_equal(log.n, 2);
    assert_false(log.too_long[0]);
    assert_int_equal(log.lens[0], KITH_CLIENT_LINE_MAX);
    assert_false(log.too_long[1]);
    assert_int_equal(log.lens[1], KITH_CLIENT_LINE_MAX);

    /* One over: rejected whole, and the next line is read normally. */
    kith_client_lines_feed(lr, buf, KITH_CLIENT_LINE_MAX + 1, log_line, &log);
    kith_client_lines_feed(lr, "\nok\n", 4, log_line, &log);
    assert_int_equal(log.n, 4);
    assert_true(log.too_long[2]);
    assert_int_equal(log.lens[2], 0);
    assert_false(log.too_long[3]);
    assert_string_equal(log.first[3], "ok");

    /* A huge line in many small pieces, then a CR at the very limit that
     * is not followed by LF. */
    for (size_t i = 0; i < big; i += 1000)
        kith_client_lines_feed(lr, buf + i, big - i < 1000 ? big - i : 1000, log_line, &log);
    kith_client_lines_feed(lr, "\nnext\n", 6, log_line, &log);
    assert_int_equal(log.n, 6);
    assert_true(log.too_long[4]);
    assert_string_equal(log.first[5], "next");
    buf[KITH_CLIENT_LINE_MAX] = '\r';
    kith_client_lines_feed(lr, buf, KITH_CLIENT_LINE_MAX + 2, log_line, &log);
    kith_client_lines_feed(lr, "\n", 1, log_line, &log);
    assert_int_equal(log.n, 7);
    assert_true(log.too_long[6]);

    /* EOF in the middle of an over-long line still reports it. */
    kith_client_lines_feed(lr, buf, KITH_CLIENT_LINE_MAX + 5, log_line, &log);
    kith_client_lines_eof(lr, log_line, &log);
    assert_int_equal(log.n, 8);
    assert_true(log.too_long[7]);
    free(buf);
    free(lr);
}

static void test_settings_and_nick(void **state)
{
    (void)state;
    char nick[KITH_CLIENT_NICK_MAX + 1], buf[128];
    const char *s = "nick=alice\n";
    assert_int_equal(
        kith_client_settings_nick((const uint8_t *)s, strlen(s), nick, sizeof nick), 0);
    assert_string_equal(nick, "alice");
    s = "color=blue\nnick=bob";
    assert_int_equal(
        kith_client_settings_nick((const uint8_t *)s, strlen(s), nick, sizeof nick), 0);
    assert_string_equal(nick, "bob");
    s = "color=blue\n";
    assert_int_equal(
        kith_client_settings_nick((const uint8_t *)s, strlen(s), nick, sizeof nick), KITH_ENOENT);
    s = "nick=bad name\n";
    assert_int_equal(
        kith_client_settings_nick((const uint8_t *)s, strlen(s), nick, sizeof nick), KITH_EPROTO);
    s = "nick=\x1b[31m\n";
    assert_int_equal(
        kith_client_settings_nick((const uint8_t *)s, strlen(s), nick, sizeof nick), KITH_EPROTO);
    assert_int_equal(
        kith_client_settings_nick((const uint8_t *)"", 0, nick, sizeof nick), KITH_ENOENT);
    size_t n = kith_client_settings_format("alice", buf, sizeof buf);
    assert_int_equal(n, 11);
    assert_string_equal(buf, "nick=alice\n");
    assert_int_equal(kith_client_settings_format("alice", buf, 11), 0);

    assert_true(kith_client_nick_valid("alice", 5));
    assert_true(kith_client_nick_valid("\xc3\xa9lodie", 7));
    assert_false(kith_client_nick_valid("", 0));
    assert_false(kith_client_nick_valid("a b", 3));
    assert_false(kith_client_nick_valid("a\tb", 3));
    assert_false(kith_client_nick_valid("a\x7f", 2));
    assert_false(kith_client_nick_valid("a\xe2\x80\xae", 4)); /* RLO */
    assert_false(kith_client_nick_valid("\xff", 1));
    memset(buf, 'a', sizeof buf);
    assert_true(kith_client_nick_valid(buf, KITH_CLIENT_NICK_MAX));
    assert_false(kith_client_nick_valid(buf, KITH_CLIENT_NICK_MAX + 1));
}

int main(void)
{
    /* HH:MM is local time: pin it. */
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_commands),
        cmocka_unit_test(test_parse_history),
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_format_message),
        cmocka_unit_test(test_format_events),
        cmocka_unit_test(test_format_edits),
        cmocka_unit_test(test_parse_refs),
        cmocka_unit_test(test_json_edits),
        cmocka_unit_test(test_json_member),
        cmocka_unit_test(test_lines_basic),
        cmocka_unit_test(test_lines_too_long),
        cmocka_unit_test(test_settings_and_nick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
