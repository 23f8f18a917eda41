/* room/invite: invite codes a person can paste, and the keyed digests that
 * name an invite (its public id) and prove knowledge of its secret (the
 * joiner's proof, bound to one Noise session). Byte formats in
 * proto/kith.md section 5.5.
 *
 * The secret is 16 bytes; kith_keyed_hash takes a 32-byte key, so the key is
 * BLAKE2b-256(secret). The secret never is, and never derives, a room key:
 * holding a code lets someone ask to join, nothing more. */
#include "room/room.h"

#include <sodium.h>

#include "wire/wire.h"

#define INVITE_PREFIX "kith1:"
#define INVITE_PREFIX_LEN 6
#define LABEL_INVITE_ID "kith/1 invite id"
#define LABEL_INVITE_PROOF "kith/1 invite proof"
/* Largest decoded map: 1 + (1+2+32) * 2 + (1+2+16) + (1+2+96) + (1+9) = 199 bytes,
 * 272 characters as a code. */
#define INVITE_BIN_MAX 256

enum { IV_ROOM = 0, IV_INVITER = 1, IV_SECRET = 2, IV_ADDR = 3, IV_EXPIRES = 4, IV_COUNT = 5 };

static bool addr_ok(const char *p, size_t len)
{
    if (len > KITH_ADDR_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)p[i] <= 0x20 || (uint8_t)p[i] >= 0x7f)
            return false;
    return true;
}

int kith_invite_encode(const kith_env *env, const kith_invite *inv, char *out, size_t cap)
{
    if (!env || !inv || !out)
        return KITH_EINVAL;
    size_t addr_len = strnlen(inv->addr, sizeof inv->addr);
    if (addr_len == sizeof inv->addr || !addr_ok(inv->addr, addr_len))
        return KITH_EINVAL;
    kith_buf b;
    kith_buf_init(&b, env, INVITE_BIN_MAX);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    kith_wire_map(&w, IV_COUNT);
    kith_wire_uint(&w, IV_ROOM);
    kith_wire_bin(&w, inv->room_id, KITH_HASH_LEN);
    kith_wire_uint(&w, IV_INVITER);
    kith_wire_bin(&w, inv->inviter, KITH_ID_LEN);
    kith_wire_uint(&w, IV_SECRET);
    kith_wire_bin(&w, inv->secret, KITH_INVITE_SECRET_LEN);
    kith_wire_uint(&w, IV_ADDR);
    kith_wire_str(&w, inv->addr, addr_len);
    kith_wire_uint(&w, IV_EXPIRES);
    kith_wire_uint(&w, inv->expires_ms);
    int rc = kith_wire_finish(&w);
    if (rc)
        goto done;
    size_t need = INVITE_PREFIX_LEN
        + sodium_base64_ENCODED_LEN(b.len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (need > cap || need > KITH_INVITE_CODE_MAX) {
        rc = KITH_ETOOBIG;
        goto done;
    }
    memcpy(out, INVITE_PREFIX, INVITE_PREFIX_LEN);
    sodium_bin2base64(out + INVITE_PREFIX_LEN, cap - INVITE_PREFIX_LEN, b.data, b.len,
        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
done:
    kith_buf_free(&b); /* wipes the secret */
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int kith_invite_decode(const kith_env *env, const char *code, kith_invite *out)
{
    if (!env || !code || !out)
        return KITH_EINVAL;
    /* Bounded look at the input: a pasted code with surrounding whitespace
     * is short; anything much longer is not a code. */
    size_t len = strnlen(code, 4 * KITH_INVITE_CODE_MAX);
    const char *s = code;
    while (len && is_space(*s)) {
        s++;
        len--;
    }
    while (len && is_space(s[len - 1]))
        len--;
    if (len > KITH_INVITE_CODE_MAX || len <= INVITE_PREFIX_LEN
        || memcmp(s, INVITE_PREFIX, INVITE_PREFIX_LEN) != 0)
        return KITH_EINVAL;
    s += INVITE_PREFIX_LEN;
    len -= INVITE_PREFIX_LEN;

    /* Check the alphabet ourselves: libsodium's decoder (1.0.18) takes some
     * bytes >= 0x80 for base64 digits, so two different texts could decode
     * to one invite (found by fuzz_invite). */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
                || c == '_'))
            return KITH_EINVAL;
    }
    uint8_t bin[INVITE_BIN_MAX];
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(
            bin, sizeof bin, s, len, NULL, &bin_len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
            != 0
        || end != s + len) {
        sodium_memzero(bin, sizeof bin);
        return KITH_EINVAL;
    }
    kith_wire_doc *doc = kith_malloc(env, sizeof *doc);
    if (!doc) {
        sodium_memzero(bin, sizeof bin);
        return KITH_ENOMEM;
    }
    kith_invite inv;
    memset(&inv, 0, sizeof inv);
    const char *addr = NULL;
    size_t addr_len = 0;
    int rc = KITH_EINVAL;
    if (kith_wire_parse(env, bin, bin_len, INVITE_BIN_MAX, KITH_WIRE_CANONICAL, doc) != 0)
        goto done;
    const kith_wire_node *root = kith_wire_root(doc);
    if (root->type != KITH_WIRE_MAP || root->n != IV_COUNT
        || kith_wire_get_fixed(doc, root, IV_ROOM, inv.room_id, KITH_HASH_LEN) != 0
        || kith_wire_get_fixed(doc, root, IV_INVITER, inv.inviter, KITH_ID_LEN) != 0
        || kith_wire_get_fixed(doc, root, IV_SECRET, inv.secret, KITH_INVITE_SECRET_LEN) != 0
        || kith_wire_get_str(doc, root, IV_ADDR, &addr, &addr_len) != 0
        || kith_wire_get_uint(doc, root, IV_EXPIRES, &inv.expires_ms) != 0
        || !addr_ok(addr, addr_len))
        goto done;
    if (addr_len)
        memcpy(inv.addr, addr, addr_len);
    inv.addr[addr_len] = '\0';
    *out = inv;
    rc = 0;
done:
    sodium_memzero(&inv, sizeof inv);
    sodium_memzero(bin, sizeof bin);
    kith_free(env, doc);
    return rc;
}

/* The secret is 16 bytes; the keyed hash wants 32: key = BLAKE2b-256(secret). */
static void secret_key(const uint8_t secret[KITH_INVITE_SECRET_LEN], uint8_t key[KITH_KEY_LEN])
{
    kith_hash(key, secret, KITH_INVITE_SECRET_LEN);
}

void kith_invite_id(const uint8_t secret[KITH_INVITE_SECRET_LEN], uint8_t id[KITH_HASH_LEN])
{
    uint8_t key[KITH_KEY_LEN];
    secret_key(secret, key);
    kith_keyed_hash(id, KITH_HASH_LEN, key, LABEL_INVITE_ID, NULL, 0);
    sodium_memzero(key, sizeof key);
}

void kith_invite_proof(const uint8_t secret[KITH_INVITE_SECRET_LEN],
    const uint8_t room_id[KITH_HASH_LEN], const uint8_t joiner[KITH_ID_LEN],
    const uint8_t binding[64], uint8_t proof[KITH_HASH_LEN])
{
    uint8_t key[KITH_KEY_LEN], data[KITH_HASH_LEN + KITH_ID_LEN + 64];
    secret_key(secret, key);
    memcpy(data, room_id, KITH_HASH_LEN);
    memcpy(data + KITH_HASH_LEN, joiner, KITH_ID_LEN);
    memcpy(data + KITH_HASH_LEN + KITH_ID_LEN, binding, 64);
    kith_keyed_hash(proof, KITH_HASH_LEN, key, LABEL_INVITE_PROOF, data, sizeof data);
    sodium_memzero(key, sizeof key);
}
