/* Unit tests for the terminal client's pure parts (src/client/term.c): when
 * to colour, what colouring does to each line format, Tab completion of
 * commands and nicks, and which typed lines the history file keeps. The
 * terminal itself is driven through a pty by tests/net/test_pty.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/term.h"
#include "testenv.h"

static void test_color_wanted(void **state)
{
    (void)state;
    assert_true(kith_term_color_wanted(true, NULL, "xterm"));
    assert_true(kith_term_color_wanted(true, "", "xterm")); /* empty: as unset */
    assert_true(kith_term_color_wanted(true, NULL, NULL));
    assert_false(kith_term_color_wanted(true, "1", "xterm"));
    assert_false(kith_term_color_wanted(true, "no", "xterm"));
    assert_false(kith_term_color_wanted(false, NULL, "xterm")); /* a pipe */
    assert_false(kith_term_color_wanted(true, NULL, "dumb"));
}

/* The line with every escape sequence taken out. */
static void strip(const char *in, char *out)
{
    while (*in) {
        if (*in == '\033') {
            in++;
            if (*in == '[')
                in++;
            while (*in && !(*in >= '@' && *in <= '~'))
                in++;
            if (*in)
                in++;
            continue;
        }
        *out++ = *in++;
    }
    *out = '\0';
}

static void colorize(const char *line, char *out, size_t cap)
{
    kith_term_colorize(line, strlen(line), out, cap);
}

static void test_colorize(void **state)
{
    (void)state;
    char out[512], plain[512], out2[512];
    const char *lines[] = { "[12:03] <alice> hello", "[12:03] #lab <bob> hi <there> x",
        "[12:03] * alice waves", "* created room lab", "! unknown command /frob: try /help",
        "plain", "[12:0", "[12:03] <unclosed", "" };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        colorize(lines[i], out, sizeof out);
        strip(out, plain);
        assert_string_equal(plain, lines[i]); /* colour adds, never changes */
    }
    colorize("! no such room: x", out, sizeof out);
    assert_string_equal(out, "\033[1;31m! no such room: x\033[0m");
    colorize("* now in lab", out, sizeof out);
    assert_string_equal(out, "\033[2m* now in lab\033[0m");
    colorize("plain", out, sizeof out);
    assert_string_equal(out, "plain");
    /* The nick gets a colour of its own, the same every time. */
    colorize("[12:03] <alice> hello", out, sizeof out);
    assert_non_null(strstr(out, "\033[2m[12:03]\033[0m <\033["));
    assert_non_null(strstr(out, "alice\033[0m> hello"));
    colorize("[23:59] #x <alice> other", out2, sizeof out2);
    const char *a = strstr(out, "<\033[") + 1, *b = strstr(out2, "<\033[") + 1;
    size_t alen = (size_t)(strchr(a, 'm') - a);
    assert_int_equal(alen, (size_t)(strchr(b, 'm') - b));
    assert_memory_equal(a, b, alen);
    colorize("[12:03] * alice waves", out2, sizeof out2);
    assert_non_null(strstr(out2, "* \033["));
    b = strstr(out2, "* \033[") + 2;
    assert_memory_equal(a, b, alen);
    /* Some two nicks differ (ten colours; these are known to hash apart). */
    int differ = 0;
    const char *nicks[] = { "alice", "bob", "carol", "dave", "erin" };
    for (size_t i = 1; i < 5; i++) {
        char l1[64], l2[64];
        snprintf(l1, sizeof l1, "[00:00] <%s> x", nicks[0]);
        snprintf(l2, sizeof l2, "[00:00] <%s> x", nicks[i]);
        colorize(l1, out, sizeof out);
        colorize(l2, out2, sizeof out2);
        differ += memcmp(strstr(out, "<\033["), strstr(out2, "<\033["), 7) != 0;
    }
    assert_true(differ > 0);
    /* Truncation stays inside the buffer and terminated. */
    assert_true(kith_term_colorize("[12:03] <alice> hello", 21, out, 10) < 10);
    assert_int_equal(out[9], '\0');
}

static void test_line_nick(void **state)
{
    (void)state;
    char nick[16];
    assert_int_equal(kith_term_line_nick("[12:03] <alice> hi", 18, nick, sizeof nick), 5);
    assert_string_equal(nick, "alice");
    const char *l = "[12:03] #lab * bob waves";
    assert_int_equal(kith_term_line_nick(l, strlen(l), nick, sizeof nick), 3);
    assert_string_equal(nick, "bob");
    l = "[12:03] #lab <carol> a> b";
    assert_int_equal(kith_term_line_nick(l, strlen(l), nick, sizeof nick), 5);
    assert_string_equal(nick, "carol");
    const char *none[]
        = { "* bob joined lab", "! no", "[12:03] <unclosed", "[12:03] plain", "hello <x> y", "" };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        assert_int_equal(kith_term_line_nick(none[i], strlen(none[i]), nick, sizeof nick), 0);
        assert_string_equal(nick, "");
    }
    l = "[12:03] <a-nick-much-longer-than-the-buffer> x";
    assert_int_equal(kith_term_line_nick(l, strlen(l), nick, sizeof nick), 0);
}

static const char *const names[] = { "join", "help", "history", "who", "quit", NULL };

static const char *nicks_fn(void *ud, size_t i)
{
    const char *const *n = ud;
    return n[i];
}

static size_t complete(const char *before, const char *const *nicks, char *ins, char *list)
{
    return kith_term_complete(
        before, strlen(before), names, nicks_fn, (void *)nicks, ins, 64, list, 256);
}

static void test_complete(void **state)
{
    (void)state;
    const char *const nicks[] = { "alice", "alan", "bob", "bob", NULL };
    char ins[64], list[256];
    assert_int_equal(complete("/jo", nicks, ins, list), 1);
    assert_string_equal(ins, "in ");
    assert_int_equal(complete("/h", nicks, ins, list), 2); /* help, history */
    assert_string_equal(ins, "");
    assert_string_equal(list, "/help  /history");
    assert_int_equal(complete("/hi", nicks, ins, list), 1);
    assert_string_equal(ins, "story ");
    assert_int_equal(complete("/x", nicks, ins, list), 0);
    assert_int_equal(complete("/who", nicks, ins, list), 1);
    assert_string_equal(ins, " ");
    /* A nick at the start of the line is addressed: "bob: ". */
    assert_int_equal(complete("b", nicks, ins, list), 1); /* bob twice is one */
    assert_string_equal(ins, "ob: ");
    assert_int_equal(complete("al", nicks, ins, list), 2);
    assert_string_equal(ins, "");
    assert_string_equal(list, "alice  alan");
    assert_int_equal(complete("ali", nicks, ins, list), 1);
    assert_string_equal(ins, "ce: ");
    /* Later in the line: just a space; a command argument is a nick too. */
    assert_int_equal(complete("thanks ali", nicks, ins, list), 1);
    assert_string_equal(ins, "ce ");
    assert_int_equal(complete("/kick bo", nicks, ins, list), 1);
    assert_string_equal(ins, "b ");
    /* Nothing typed, or no such nick: nothing. */
    assert_int_equal(complete("", nicks, ins, list), 0);
    assert_int_equal(complete("hello ", nicks, ins, list), 0);
    assert_int_equal(complete("zed", nicks, ins, list), 0);
    assert_string_equal(ins, "");
    /* No nick source at all. */
    assert_int_equal(kith_term_complete("al", 2, names, NULL, NULL, ins, 64, NULL, 0), 0);
    /* The real command table completes too. */
    const char *real[64];
    size_t n = 0;
    for (const char *s; n + 1 < 64 && (s = kith_client_command_name(n)) != NULL;)
        real[n++] = s;
    real[n] = NULL;
    assert_true(n > 10);
    assert_int_equal(kith_term_complete("/sea", 4, real, NULL, NULL, ins, 64, NULL, 0), 1);
    assert_string_equal(ins, "rch ");
}

static void test_history_keeps(void **state)
{
    (void)state;
    const char *kept[] = { "/who", "/switch lab", "/history 50", "/rooms", "/search foo" };
    const char *not_kept[] = { "hello", "//slash", "/me waves", "/ME waves", "/topic secret",
        "/edit new text", "/react 2 x", "/join kith1:abc", "/invite --for bob", "", "/" };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        assert_true(kith_term_history_keeps(kept[i], strlen(kept[i])));
    for (size_t i = 0; i < sizeof not_kept / sizeof not_kept[0]; i++)
        assert_false(kith_term_history_keeps(not_kept[i], strlen(not_kept[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_color_wanted),
        cmocka_unit_test(test_colorize),
        cmocka_unit_test(test_line_nick),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_history_keeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
