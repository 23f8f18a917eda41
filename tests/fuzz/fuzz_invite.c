/* fuzz_invite: arbitrary text to kith_invite_decode. A code that decodes
 * must re-encode to exactly the same text (trimmed): one invite, one code.
 *
 * Built with -DKITH_FUZZ_GEN it writes the seed corpus into the directory
 * named on its command line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "room/room.h"
#include "util/util.h"

#include "fuzzenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[2048];
    size_t n = KITH_MIN(size, sizeof text - 1);
    memcpy(text, data, n);
    text[n] = '\0';
    kith_invite inv;
    if (kith_invite_decode(&fuzz_env, text, &inv) != 0)
        return 0;
    if (strnlen(inv.addr, sizeof inv.addr) > KITH_ADDR_MAX)
        abort();
    char again[KITH_INVITE_CODE_MAX];
    if (kith_invite_encode(&fuzz_env, &inv, again, sizeof again) != 0)
        abort();
    /* Trim the input as decode did, then compare. */
    const char *s = text;
    size_t len = strlen(text);
    while (len && is_space(*s)) {
        s++;
        len--;
    }
    while (len && is_space(s[len - 1]))
        len--;
    if (strlen(again) != len || memcmp(again, s, len) != 0)
        abort();
    uint8_t id[KITH_HASH_LEN], proof[KITH_HASH_LEN], binding[64];
    memset(binding, 1, sizeof binding);
    kith_invite_id(inv.secret, id);
    kith_invite_proof(inv.secret, inv.room_id, inv.inviter, binding, proof);
    return 0;
}

#ifdef KITH_FUZZ_GEN
static void put(const char *dir, const char *name, const char *s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s, 1, strlen(s), f) != strlen(s))
        abort();
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0)
        return 2;
    const char *dir = argv[1];
    kith_invite inv;
    memset(&inv, 0, sizeof inv);
    memset(inv.room_id, 0x11, sizeof inv.room_id);
    memset(inv.inviter, 0x22, sizeof inv.inviter);
    memset(inv.secret, 0x33, sizeof inv.secret);
    snprintf(inv.addr, sizeof inv.addr, "203.0.113.9:7117");
    inv.expires_ms = 1767312000000ull;
    char code[KITH_INVITE_CODE_MAX], buf[KITH_INVITE_CODE_MAX + 16];
    if (kith_invite_encode(&fuzz_env, &inv, code, sizeof code) != 0)
        abort();
    put(dir, "valid", code);
    snprintf(buf, sizeof buf, "  %s\r\n", code);
    put(dir, "valid-whitespace", buf);
    inv.addr[0] = '\0';
    inv.expires_ms = 0;
    if (kith_invite_encode(&fuzz_env, &inv, code, sizeof code) != 0)
        abort();
    put(dir, "valid-no-addr", code);
    memset(inv.addr, 'h', KITH_ADDR_MAX);
    inv.addr[KITH_ADDR_MAX] = '\0';
    inv.expires_ms = UINT64_MAX;
    if (kith_invite_encode(&fuzz_env, &inv, code, sizeof code) != 0)
        abort();
    put(dir, "valid-longest", code);
    code[strlen(code) - 1] = '\0';
    put(dir, "bad-truncated", code);
    put(dir, "bad-prefix-only", "kith1:");
    put(dir, "bad-prefix", "kith2:gqA");
    put(dir, "bad-base64", "kith1:!!!!****");
    put(dir, "bad-empty", "");
    return 0;
}
#endif
