/* test_irc: the IRC gateway's pure parts: the line parser (tags, prefix,
 * command, middle and trailing params, the caps and the hostile cases),
 * room names as channels, kith nicks as IRC nicks, and the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/irc.h"
#include "testenv.h"

static int parse(const char *s, kith_irc_msg *m)
{
    return kith_irc_parse(s, strlen(s), m);
}

static void assert_param(const kith_irc_msg *m, size_t i, const char *want)
{
    assert_true(i < m->nparams);
    assert_int_equal(m->param_len[i], strlen(want));
    assert_memory_equal(m->params[i], want, strlen(want));
}

static void test_parse_basic(void **state)
{
    (void)state;
    kith_irc_msg m;
    assert_int_equal(parse("privmsg #lab :hello there", &m), 0);
    assert_string_equal(m.command, "PRIVMSG");
    assert_int_equal(m.nparams, 2);
    assert_param(&m, 0, "#lab");
    assert_param(&m, 1, "hello there");
    assert_null(m.tags);
    assert_null(m.prefix);

    assert_int_equal(parse("@time=2024-01-01T00:00:00.000Z;x=y :nick!u@h JOIN :", &m), 0);
    assert_int_equal(m.tags_len, strlen("time=2024-01-01T00:00:00.000Z;x=y"));
    assert_int_equal(m.prefix_len, strlen("nick!u@h"));
    assert_string_equal(m.command, "JOIN");
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.param_len[0], 0); /* "JOIN :" has one empty param */

    assert_int_equal(parse("USER   alice  0 *   :Alice  A", &m), 0);
    assert_int_equal(m.nparams, 4);
    assert_param(&m, 3, "Alice  A");
    assert_int_equal(parse("CAP LS 302", &m), 0);
    assert_int_equal(m.nparams, 2);
    assert_param(&m, 1, "302");
    assert_int_equal(parse("PING", &m), 0);
    assert_int_equal(m.nparams, 0);
}

static void test_parse_limits(void **state)
{
    (void)state;
    kith_irc_msg m;
    /* 15 params at most: the 15th takes the rest. */
    assert_int_equal(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", &m), 0);
    assert_int_equal(m.nparams, KITH_IRC_PARAMS_MAX);
    assert_param(&m, 14, "15 16 17");
    /* Body cap: 510 bytes without CRLF is fine, 511 is not. */
    char line[KITH_IRC_LINE_MAX + 64];
    memset(line, 'a', sizeof line);
    memcpy(line, "PRIVMSG #x :", 12);
    assert_int_equal(kith_irc_parse(line, 510, &m), 0);
    assert_int_equal(kith_irc_parse(line, 511, &m), KITH_ETOOBIG);
    /* Tags have their own cap, on top of the body. */
    line[0] = '@';
    memset(line + 1, 't', 8189);
    line[8190] = ' ';
    memcpy(line + 8191, "PING x", 6);
    assert_int_equal(kith_irc_parse(line, 8197, &m), 0);
    memset(line + 1, 't', 8190);
    line[8191] = ' ';
    memcpy(line + 8192, "PING x", 6);
    assert_int_equal(kith_irc_parse(line, 8198, &m), KITH_ETOOBIG);
}

static void test_parse_hostile(void **state)
{
    (void)state;
    kith_irc_msg m;
    assert_int_equal(parse("", &m), KITH_EPROTO);
    assert_int_equal(parse("   ", &m), KITH_EPROTO);
    assert_int_equal(parse(":prefix-only", &m), KITH_EPROTO);
    assert_int_equal(parse("@tags-only", &m), KITH_EPROTO);
    assert_int_equal(parse("PRIV-MSG x", &m), KITH_EPROTO);
    assert_int_equal(parse("\xff\xfe x", &m), KITH_EPROTO);
    assert_int_equal(kith_irc_parse("PING a\0b", 8, &m), KITH_EPROTO);
    assert_int_equal(parse("PING a\rb", &m), KITH_EPROTO);
    assert_int_equal(parse("PING a\nPRIVMSG #x :y", &m), KITH_EPROTO);
    char cmd[64];
    memset(cmd, 'A', sizeof cmd);
    assert_int_equal(kith_irc_parse(cmd, 33, &m), KITH_EPROTO);
    assert_int_equal(kith_irc_parse(cmd, 32, &m), 0);
}

static void test_channel_and_nick(void **state)
{
    (void)state;
    uint8_t id[KITH_ROOM_ID_LEN];
    memset(id, 0xab, sizeof id);
    char out[128];
    assert_int_equal(kith_irc_channel("lab", id, out, sizeof out), 4);
    assert_string_equal(out, "#lab");
    kith_irc_channel("book club, fri:day\x07", id, out, sizeof out);
    assert_string_equal(out, "#book_club__fri_day_");
    kith_irc_channel("caf\xc3\xa9", id, out, sizeof out);
    assert_string_equal(out, "#caf\xc3\xa9"); /* UTF-8 is kept */
    kith_irc_channel("", id, out, sizeof out);
    assert_string_equal(out, "#abababab");
    kith_irc_channel(NULL, id, out, sizeof out);
    assert_string_equal(out, "#abababab");
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(kith_irc_channel(longname, id, out, sizeof out), KITH_IRC_CHAN_MAX);

    kith_irc_nick("alice", out, sizeof out);
    assert_string_equal(out, "alice");
    kith_irc_nick("j\xc3\xb6rg!@x", out, sizeof out);
    assert_string_equal(out, "j_rg__x");
    kith_irc_nick("1abc", out, sizeof out);
    assert_string_equal(out, "_abc");
    kith_irc_nick("", out, sizeof out);
    assert_string_equal(out, "anon");
    kith_irc_nick(NULL, out, sizeof out);
    assert_string_equal(out, "anon");
    kith_irc_nick("a[b]c{d}|e^_-`\\", out, sizeof out);
    assert_string_equal(out, "a[b]c{d}_e^_-`\\"); /* '|' is the suffix separator */
    /* A display name's fingerprint suffix (proto 5.7) becomes "|digits" and
     * survives a cut: a long name loses its end, never the suffix. */
    kith_irc_nick("alice~3f2a", out, sizeof out);
    assert_string_equal(out, "alice|3f2a");
    kith_irc_nick("alice|3f2a", out, sizeof out);
    assert_string_equal(out, "alice_3f2a"); /* a chosen '|' can't fake one */
    kith_irc_nick("abcdefghijklmnopqrstuvwxyzabcdef~q7cmx", out, sizeof out);
    assert_int_equal(strlen(out), KITH_IRC_NICK_MAX);
    assert_string_equal(out + KITH_IRC_NICK_MAX - 6, "|q7cmx");

    assert_true(kith_irc_name_eq("#Lab", 4, "#lAB", 4));
    assert_false(kith_irc_name_eq("#lab", 4, "#labs", 5));
}

static void test_password(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 7);
    kith_env env = t.env;
    char a[KITH_IRC_PASS_LEN + 1], b[KITH_IRC_PASS_LEN + 1];
    kith_irc_gen_password(&env, a);
    kith_irc_gen_password(&env, b);
    assert_int_equal(strlen(a), KITH_IRC_PASS_LEN);
    assert_string_not_equal(a, b);
    for (size_t i = 0; i < KITH_IRC_PASS_LEN; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", a[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_channel_and_nick),
        cmocka_unit_test(test_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
