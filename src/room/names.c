/* room/names: display names of the people in a room, so that no one can pass
 * for another member (proto/kith.md 5.7).
 *
 * Members choose their own names, so two can pick the same one, and someone
 * can pick a name that only looks like another's ("Alice", "al1ce",
 * "alice" with a zero-width space or a Cyrillic 'а'), or one that looks like
 * a disambiguated name ("alice~3f2a"). The rule: every name is reduced to a
 * skeleton (a small confusables fold, below); people whose skeletons are
 * equal all get a suffix of their fingerprint, long enough to tell them
 * apart; and '~' (or anything that looks like it) ends the chosen name: what
 * follows a '~' in a display name is always the real fingerprint. Pure
 * functions; the node keeps the result per room. */
#include "room/room.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- UTF-8 ---- */

/* Decode one code point; 0 on invalid input (the caller skips one byte). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len = (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || n < len)
        return 0;
    uint32_t v = b & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- the skeleton ---- */

/* '~' and the characters that look like it: each ends the chosen name. */
static bool is_tilde(uint32_t cp)
{
    return cp == '~' || cp == 0x02dc || cp == 0x1fc0 || cp == 0x2053 || cp == 0x223c || cp == 0x301c
        || cp == 0xff5e;
}

/* Characters that show as nothing or as blank space. */
static bool is_blank(uint32_t cp)
{
    return cp <= 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0xa0) || cp == 0xad || cp == 0x034f
        || cp == 0x061c || cp == 0x115f || cp == 0x1160 || cp == 0x1680 || cp == 0x180e
        || (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f)
        || (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0x3164
        || (cp >= 0xfe00 && cp <= 0xfe0f) || cp == 0xfeff || cp == 0xffa0
        || (cp >= 0xe0000 && cp <= 0xe0fff) /* tags, variation selectors */
        || (cp >= 0x0300 && cp <= 0x036f); /* combining accents: "e" + U+0301 folds to "e" */
}

/* U+00C0..U+00FF and U+0100..U+017F to the Latin letter they are drawn
 * from; '*' keeps the character. */
static const char latin1[] = "aaaaaaaceeeeiiiidnooooo*ouuuuyps"
                             "aaaaaaaceeeeiiiidnooooo*ouuuuypy";
static const char latin_ext_a[]
    = "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiiijjkkk"
      "llllllllllnnnnnnnnnoooooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";
_Static_assert(sizeof latin1 == 64 + 1, "one letter per code point U+00C0..U+00FF");
_Static_assert(sizeof latin_ext_a == 128 + 1, "one letter per code point U+0100..U+017F");

/* Greek and Cyrillic letters drawn like Latin ones. */
static const struct {
    uint16_t cp;
    char ch;
} lookalike[] = {
    { 0x0391, 'a' },
    { 0x0392, 'b' },
    { 0x0395, 'e' },
    { 0x0396, 'z' },
    { 0x0397, 'h' },
    { 0x0399, 'i' },
    { 0x039a, 'k' },
    { 0x039c, 'm' },
    { 0x039d, 'n' },
    { 0x039f, 'o' },
    { 0x03a1, 'p' },
    { 0x03a4, 't' },
    { 0x03a5, 'y' },
    { 0x03a7, 'x' },
    { 0x03b1, 'a' },
    { 0x03b3, 'y' },
    { 0x03b9, 'i' },
    { 0x03ba, 'k' },
    { 0x03bd, 'v' },
    { 0x03bf, 'o' },
    { 0x03c1, 'p' },
    { 0x03c4, 't' },
    { 0x03c5, 'u' },
    { 0x03c7, 'x' },
    { 0x03c9, 'w' },
    { 0x0405, 's' },
    { 0x0406, 'i' },
    { 0x0408, 'j' },
    { 0x0410, 'a' },
    { 0x0412, 'b' },
    { 0x0415, 'e' },
    { 0x041a, 'k' },
    { 0x041c, 'm' },
    { 0x041d, 'h' },
    { 0x041e, 'o' },
    { 0x0420, 'p' },
    { 0x0421, 'c' },
    { 0x0422, 't' },
    { 0x0423, 'y' },
    { 0x0425, 'x' },
    { 0x0430, 'a' },
    { 0x0432, 'b' },
    { 0x0435, 'e' },
    { 0x043a, 'k' },
    { 0x043c, 'm' },
    { 0x043d, 'h' },
    { 0x043e, 'o' },
    { 0x0440, 'p' },
    { 0x0441, 'c' },
    { 0x0442, 't' },
    { 0x0443, 'y' },
    { 0x0445, 'x' },
    { 0x0455, 's' },
    { 0x0456, 'i' },
    { 0x0458, 'j' },
    { 0x044c, 'b' },
    { 0x04bb, 'h' },
    { 0x04c0, 'l' },
    { 0x04cf, 'l' },
    { 0x051a, 'q' },
    { 0x051b, 'q' },
    { 0x051c, 'w' },
    { 0x051d, 'w' },
};

/* A code point to the ASCII letter or digit it passes for; 0 to drop it
 * (ASCII punctuation: "al.ice" passes for "alice"); cp itself otherwise. */
static uint32_t fold(uint32_t cp)
{
    if (cp >= 0xff01 && cp <= 0xff5e)
        cp -= 0xfee0; /* fullwidth forms */
    if (cp >= 'A' && cp <= 'Z')
        cp += 'a' - 'A';
    if (cp >= 0xc0 && cp <= 0xff && latin1[cp - 0xc0] != '*')
        cp = (uint32_t)latin1[cp - 0xc0];
    else if (cp >= 0x100 && cp <= 0x17f)
        cp = (uint32_t)latin_ext_a[cp - 0x100];
    for (size_t i = 0; cp >= 0x370 && i < sizeof lookalike / sizeof lookalike[0]; i++)
        if (lookalike[i].cp == cp)
            cp = (uint32_t)lookalike[i].ch;
    if (cp == '0')
        return 'o';
    if (cp == '1' || cp == 'i' || cp == '|' || cp == '!')
        return 'l';
    if (cp < 0x80 && !((cp >= 'a' && cp <= 'z') || (cp >= '2' && cp <= '9')))
        return 0;
    return cp;
}

size_t kith_nick_skeleton(const char *nick, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)(nick ? nick : "");
    size_t n = strlen((const char *)p), i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = utf8_next(p + i, n - i, &cp);
        if (l == 0) {
            cp = 0xfffd;
            l = 1;
        }
        i += l;
        if (is_tilde(cp))
            break;
        if (is_blank(cp) || (cp = fold(cp)) == 0)
            continue;
        char enc[4];
        size_t el = utf8_put(cp, enc);
        if (o + el >= cap)
            break;
        /* Letter pairs drawn like one letter. */
        if (o > 0 && el == 1
            && ((out[o - 1] == 'r' && enc[0] == 'n') || (out[o - 1] == 'v' && enc[0] == 'v'))) {
            out[o - 1] = out[o - 1] == 'r' ? 'm' : 'w';
            continue;
        }
        memcpy(out + o, enc, el);
        o += el;
    }
    out[o] = '\0';
    return o;
}

/* ---- display names ---- */

typedef struct entry {
    size_t idx;
    char skel[KITH_NICK_MAX * 4 + 1];
    char fpr[KITH_FPR_DIGITS + 1]; /* the fingerprint without its dashes */
    bool forced; /* the name had a '~', or nothing visible */
} entry;

static int by_skel(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->skel, ((const entry *)b)->skel);
}

static size_t common_prefix(const char *a, const char *b)
{
    size_t k = 0;
    while (a[k] && a[k] == b[k])
        k++;
    return k;
}

/* The chosen name up to its first '~' (or look-alike), into out. */
static size_t name_base(const char *nick, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)(nick ? nick : "");
    size_t n = strnlen((const char *)p, KITH_NICK_MAX), i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = utf8_next(p + i, n - i, &cp);
        if (l == 0)
            l = 1;
        else if (is_tilde(cp))
            break;
        i += l;
    }
    if (i >= cap)
        i = cap - 1;
    memcpy(out, p, i);
    out[i] = '\0';
    return i;
}

uint64_t kith_display_group(const char *nick)
{
    char skel[KITH_NICK_MAX * 4 + 1];
    if (kith_nick_skeleton(nick ? nick : "", skel, sizeof skel) == 0)
        kith_nick_skeleton("anon", skel, sizeof skel); /* as kith_display_names judges it */
    uint8_t h[KITH_HASH_LEN];
    kith_hash(h, (const uint8_t *)skel, strlen(skel));
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

int kith_display_names(const kith_env *env, size_t count, const uint8_t (*ids)[KITH_ID_LEN],
    const char *const *nicks, char (*out)[KITH_DISPLAY_MAX + 1])
{
    if (count == 0)
        return 0;
    if (count > KITH_ROOM_MAX_MEMBERS + 1)
        return KITH_ETOOBIG;
    entry *e = kith_calloc(env, count, sizeof *e);
    if (!e)
        return KITH_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        e[i].idx = i;
        const char *nick = nicks[i] ? nicks[i] : "";
        size_t sl = kith_nick_skeleton(nick, e[i].skel, sizeof e[i].skel);
        char base[KITH_NICK_MAX + 1];
        size_t bl = name_base(nick, base, sizeof base);
        e[i].forced = sl == 0 || bl != strnlen(nick, KITH_NICK_MAX + 1);
        if (sl == 0) /* shown as "anon~..." or as nothing visible: judged as "anon" */
            kith_nick_skeleton("anon", e[i].skel, sizeof e[i].skel);
        char fpr[KITH_FPR_STRLEN];
        kith_fingerprint(ids[i], fpr);
        size_t o = 0;
        for (size_t k = 0; fpr[k] && o < KITH_FPR_DIGITS; k++)
            if (fpr[k] != '-')
                e[i].fpr[o++] = fpr[k];
        e[i].fpr[o] = '\0';
    }
    qsort(e, count, sizeof *e, by_skel);
    for (size_t g = 0; g < count;) {
        size_t end = g + 1;
        while (end < count && strcmp(e[end].skel, e[g].skel) == 0)
            end++;
        for (size_t i = g; i < end; i++) {
            /* Long enough to differ from everyone it could be taken for. */
            size_t k = 0;
            for (size_t j = g; j < end; j++)
                if (j != i)
                    k = KITH_MAX(k, common_prefix(e[i].fpr, e[j].fpr) + 1);
            char *d = out[e[i].idx];
            const char *nick = nicks[e[i].idx] ? nicks[e[i].idx] : "";
            size_t bl = name_base(nick, d, KITH_NICK_MAX + 1);
            if (bl == 0)
                bl = (size_t)snprintf(d, KITH_NICK_MAX + 1, "anon");
            if (k == 0 && !e[i].forced)
                continue;
            k = KITH_MIN(KITH_MAX(k, (size_t)KITH_FPR_SUFFIX_MIN), (size_t)KITH_FPR_DIGITS);
            snprintf(d + bl, KITH_DISPLAY_MAX + 1 - bl, "~%.*s", (int)k, e[i].fpr);
        }
        g = end;
    }
    kith_free(env, e);
    return 0;
}
