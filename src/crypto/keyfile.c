/* crypto/keyfile: the identity key file, plain or sealed under a passphrase
 * (Argon2id + XChaCha20-Poly1305). Bytes in, bytes out: the caller reads and
 * writes the file (mode 0600). The byte layout is proto/kith.md section 3.
 *
 * Both kinds end in a BLAKE2b-128 checksum of everything before it, so a
 * damaged file is told apart from a wrong passphrase (KITH_EPROTO vs
 * KITH_EPASS) and is rejected before any Argon2id work. The checksum is not a
 * defence against a forger: in a sealed file the AEAD (with the whole header
 * as associated data) is, and in a plain file nothing can be. */
#include "crypto/crypto.h"

#include <sodium.h>
#include <string.h>

#define MAGIC "KITHKEY1"
#define MAGIC_LEN 8
#define KIND_PLAIN 0x00
#define KIND_SEALED 0x01
#define ALG_ARGON2ID13 0x02 /* crypto_pwhash_ALG_ARGON2ID13 in libsodium */
#define SUM_LEN 16
#define SEED_LEN 32
#define SECRETS_LEN (SEED_LEN + KITH_DH_LEN) /* ed seed || dh_sk */

/* Plain: magic, kind, id_pk, dh_pk, ed seed, dh_sk, checksum. */
#define P_ID 9
#define P_DH 41
#define P_SEED 73
#define P_DHSK 105
#define P_SUM 137

/* Sealed: magic, kind, alg, opslimit, memlimit, salt, nonce, ciphertext,
 * checksum. The header [0, S_CT) is the AEAD's associated data. */
#define S_ALG 9
#define S_OPS 10
#define S_MEM 14
#define S_SALT 22
#define S_NONCE 38
#define S_CT 62
#define S_SUM 142
#define SALT_LEN 16
#define NONCE_LEN 24
#define TAG_LEN 16

_Static_assert(P_SUM + SUM_LEN == KITH_KEYFILE_PLAIN_LEN, "plain layout");
_Static_assert(S_SUM + SUM_LEN == KITH_KEYFILE_SEALED_LEN, "sealed layout");
_Static_assert(S_CT + SECRETS_LEN + TAG_LEN == S_SUM, "sealed ciphertext");
_Static_assert(SALT_LEN == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(ALG_ARGON2ID13 == crypto_pwhash_ALG_ARGON2ID13, "alg id");

static void checksum(uint8_t sum[SUM_LEN], const uint8_t *data, size_t len)
{
    crypto_generichash(sum, SUM_LEN, data, len, NULL, 0);
}

static bool checksum_ok(const uint8_t *data, size_t len)
{
    uint8_t sum[SUM_LEN];
    checksum(sum, data, len - SUM_LEN);
    return sodium_memcmp(sum, data + len - SUM_LEN, SUM_LEN) == 0;
}

/* Length of a usable passphrase: 0 for none, -1 (as SIZE_MAX) when too long. */
static size_t pass_len(const char *pass)
{
    if (!pass)
        return 0;
    size_t n = strnlen(pass, KITH_PASS_MAX + 1);
    return n > KITH_PASS_MAX ? SIZE_MAX : n;
}

/* The passphrase key. Returns 0, or KITH_ENOMEM when Argon2id could not get
 * its memory (the limits were checked before). */
static int derive_key(uint8_t key[KITH_KEY_LEN], const char *pass, size_t passlen,
    const uint8_t salt[SALT_LEN], uint32_t ops, uint64_t mem)
{
    if (crypto_pwhash(
            key, KITH_KEY_LEN, pass, passlen, salt, ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13)
        != 0) {
        sodium_memzero(key, KITH_KEY_LEN);
        return KITH_ENOMEM;
    }
    return 0;
}

int kith_identity_save(
    const kith_env *env, const kith_identity *id, const char *pass, kith_buf *out)
{
    return kith_identity_save_ex(
        env, id, pass, crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE, out);
}

int kith_identity_save_ex(const kith_env *env, const kith_identity *id, const char *pass,
    uint32_t opslimit, uint64_t memlimit, kith_buf *out)
{
    if (!env || !id || !out)
        return KITH_EINVAL;
    size_t passlen = pass_len(pass);
    if (passlen == SIZE_MAX)
        return KITH_EINVAL;
    if (passlen
        && (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > KITH_KEYFILE_MAX_OPSLIMIT
            || memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > KITH_KEYFILE_MAX_MEMLIMIT))
        return KITH_EINVAL;

    uint8_t secrets[SECRETS_LEN], key[KITH_KEY_LEN], f[KITH_KEYFILE_SEALED_LEN];
    kith_identity check;
    size_t flen = passlen ? KITH_KEYFILE_SEALED_LEN : KITH_KEYFILE_PLAIN_LEN;
    int rc;

    /* Refuse to write a file that would not load: the secrets must give back
     * exactly this identity. */
    crypto_sign_ed25519_sk_to_seed(secrets, id->id_sk);
    memcpy(secrets + SEED_LEN, id->dh_sk, KITH_DH_LEN);
    rc = kith_identity_from_secrets(secrets, secrets + SEED_LEN, &check);
    if (rc == 0
        && (sodium_memcmp(check.id_pk, id->id_pk, KITH_ID_LEN) != 0
            || sodium_memcmp(check.dh_pk, id->dh_pk, KITH_DH_LEN) != 0))
        rc = KITH_EINVAL;
    if (rc)
        goto done;
    rc = kith_buf_reserve(out, flen);
    if (rc)
        goto done;

    memcpy(f, MAGIC, MAGIC_LEN);
    if (!passlen) {
        f[8] = KIND_PLAIN;
        memcpy(f + P_ID, id->id_pk, KITH_ID_LEN);
        memcpy(f + P_DH, id->dh_pk, KITH_DH_LEN);
        memcpy(f + P_SEED, secrets, SECRETS_LEN);
        checksum(f + P_SUM, f, P_SUM);
    } else {
        f[8] = KIND_SEALED;
        f[S_ALG] = ALG_ARGON2ID13;
        kith_put_be32(f + S_OPS, opslimit);
        kith_put_be64(f + S_MEM, memlimit);
        kith_random(env, f + S_SALT, SALT_LEN);
        kith_random(env, f + S_NONCE, NONCE_LEN);
        rc = derive_key(key, pass, passlen, f + S_SALT, opslimit, memlimit);
        if (rc)
            goto done;
        unsigned long long clen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(
            f + S_CT, &clen, secrets, SECRETS_LEN, f, S_CT, NULL, f + S_NONCE, key);
        checksum(f + S_SUM, f, S_SUM);
    }
    rc = kith_buf_append(out, f, flen); /* cannot fail: reserved above */
done:
    sodium_memzero(secrets, sizeof secrets);
    sodium_memzero(key, sizeof key);
    sodium_memzero(f, sizeof f);
    sodium_memzero(&check, sizeof check);
    return rc;
}

bool kith_identity_file_sealed(const uint8_t *data, size_t len)
{
    return data && len > MAGIC_LEN && memcmp(data, MAGIC, MAGIC_LEN) == 0 && data[8] == KIND_SEALED;
}

static int load_plain(const uint8_t *f, kith_identity *out)
{
    int rc = kith_identity_from_secrets(f + P_SEED, f + P_DHSK, out);
    if (rc)
        return KITH_EPROTO;
    /* The stored public keys must be the ones the secrets give: a file whose
     * secrets were changed must not load as some other identity. */
    if (sodium_memcmp(out->id_pk, f + P_ID, KITH_ID_LEN) != 0
        || sodium_memcmp(out->dh_pk, f + P_DH, KITH_DH_LEN) != 0)
        return KITH_EPROTO;
    return 0;
}

static int load_sealed(const uint8_t *f, const char *pass, kith_identity *out)
{
    if (f[S_ALG] != ALG_ARGON2ID13)
        return KITH_EPROTO;
    uint32_t ops = kith_get_be32(f + S_OPS);
    uint64_t mem = kith_get_be64(f + S_MEM);
    if (ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN)
        return KITH_EPROTO;
    /* The threat: a key file handed to us (or swapped on disk) that asks
     * Argon2id for terabytes or years. We never wrote limits above these. */
    if (ops > KITH_KEYFILE_MAX_OPSLIMIT || mem > KITH_KEYFILE_MAX_MEMLIMIT)
        return KITH_ETOOBIG;
    size_t passlen = pass_len(pass);
    if (passlen == SIZE_MAX)
        return KITH_EINVAL;
    if (passlen == 0)
        return KITH_EPASS;

    uint8_t key[KITH_KEY_LEN], secrets[SECRETS_LEN];
    int rc = derive_key(key, pass, passlen, f + S_SALT, ops, mem);
    if (rc)
        goto done;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            secrets, NULL, NULL, f + S_CT, SECRETS_LEN + TAG_LEN, f, S_CT, f + S_NONCE, key)
        != 0) {
        rc = KITH_EPASS;
        goto done;
    }
    if (kith_identity_from_secrets(secrets, secrets + SEED_LEN, out) != 0)
        rc = KITH_EPROTO;
done:
    sodium_memzero(key, sizeof key);
    sodium_memzero(secrets, sizeof secrets);
    return rc;
}

int kith_identity_load(
    const kith_env *env, const uint8_t *data, size_t len, const char *pass, kith_identity *out)
{
    (void)env; /* Argon2id allocates through libsodium, not the env */
    if (!out)
        return KITH_EINVAL;
    sodium_memzero(out, sizeof *out);
    if (!data || len <= MAGIC_LEN || memcmp(data, MAGIC, MAGIC_LEN) != 0)
        return KITH_EPROTO;
    int rc;
    if (data[8] == KIND_PLAIN && len == KITH_KEYFILE_PLAIN_LEN) {
        rc = checksum_ok(data, len) ? load_plain(data, out) : KITH_EPROTO;
    } else if (data[8] == KIND_SEALED && len == KITH_KEYFILE_SEALED_LEN) {
        rc = checksum_ok(data, len) ? load_sealed(data, pass, out) : KITH_EPROTO;
    } else {
        rc = KITH_EPROTO;
    }
    if (rc)
        sodium_memzero(out, sizeof *out);
    return rc;
}
