/* crypto: identities, certificates, domain-separated signatures, hashes,
 * fingerprints and sealing, all on libsodium. Key files live in keyfile.c.
 * Nothing here does I/O or reads the clock; randomness comes from kith_env
 * (except kith_seal_to, which uses libsodium's own RNG through
 * crypto_box_seal; kith_seal_to_env is the reproducible twin). */
#include "crypto/crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Messages up to this size are signed from a stack buffer; larger ones from
 * the heap. Either way the buffer is wiped: the signed bytes are often the
 * plaintext of a private message. */
#define SIGN_STACK_MAX 1024

/* Domain-separation prefix of the fingerprint digest. */
#define FPR_DOMAIN "kith/1 fpr"

/* Length of a valid domain, or 0 when it is missing, empty or too long. */
static size_t domain_len(const char *domain)
{
    if (!domain)
        return 0;
    size_t n = strnlen(domain, KITH_DOMAIN_MAX + 1);
    return n > KITH_DOMAIN_MAX ? 0 : n;
}

int kith_identity_from_secrets(
    const uint8_t ed_seed[32], const uint8_t dh_sk[KITH_DH_LEN], kith_identity *out)
{
    if (!ed_seed || !dh_sk || !out)
        return KITH_EINVAL;
    sodium_memzero(out, sizeof *out);
    if (crypto_sign_seed_keypair(out->id_pk, out->id_sk, ed_seed) != 0)
        goto fail;
    memcpy(out->dh_sk, dh_sk, KITH_DH_LEN);
    /* Fails only for a scalar that yields the identity point, which clamping
     * rules out; checked anyway so a broken key can never be certified. */
    if (crypto_scalarmult_base(out->dh_pk, out->dh_sk) != 0)
        goto fail;
    /* The certificate: Ed25519 by the identity over KITH_DOMAIN_CERT ||
     * dh_pk, the same construction as kith_sign. */
    {
        uint8_t m[sizeof KITH_DOMAIN_CERT - 1 + KITH_DH_LEN];
        memcpy(m, KITH_DOMAIN_CERT, sizeof KITH_DOMAIN_CERT - 1);
        memcpy(m + sizeof KITH_DOMAIN_CERT - 1, out->dh_pk, KITH_DH_LEN);
        int rc = crypto_sign_detached(out->cert_sig, NULL, m, sizeof m, out->id_sk);
        if (rc != 0)
            goto fail;
    }
    if (kith_cert_verify(NULL, out->id_pk, out->dh_pk, out->cert_sig) != 0)
        goto fail;
    return 0;
fail:
    sodium_memzero(out, sizeof *out);
    return KITH_ECRYPTO;
}

int kith_identity_generate(const kith_env *env, kith_identity *out)
{
    if (!env || !out)
        return KITH_EINVAL;
    uint8_t seed[32], dh_sk[KITH_DH_LEN];
    kith_random(env, seed, sizeof seed);
    kith_random(env, dh_sk, sizeof dh_sk);
    int rc = kith_identity_from_secrets(seed, dh_sk, out);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(dh_sk, sizeof dh_sk);
    return rc;
}

void kith_identity_wipe(kith_identity *id)
{
    if (id)
        sodium_memzero(id, sizeof *id);
}

int kith_cert_verify(const kith_env *env, const uint8_t id_pk[KITH_ID_LEN],
    const uint8_t dh_pk[KITH_DH_LEN], const uint8_t sig[KITH_SIG_LEN])
{
    if (!id_pk || !dh_pk || !sig)
        return KITH_ECRYPTO;
    /* The signed bytes are KITH_DOMAIN_CERT || dh_pk, as kith_verify makes them. */
    return kith_verify(env, id_pk, KITH_DOMAIN_CERT, dh_pk, KITH_DH_LEN, sig) ? KITH_ECRYPTO : 0;
}

void kith_fingerprint(const uint8_t id_pk[KITH_ID_LEN], char out[KITH_FPR_STRLEN])
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t h[KITH_HASH_LEN];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)FPR_DOMAIN, sizeof FPR_DOMAIN - 1);
    crypto_generichash_update(&st, id_pk, KITH_ID_LEN);
    crypto_generichash_final(&st, h, sizeof h);
    /* 20 base32 digits = the first 100 bits of h, most significant bit first,
     * as RFC 4648 reads bytes; a '-' after every 5 digits but the last. */
    size_t o = 0;
    for (unsigned i = 0; i < 20; i++) {
        unsigned bit = 5 * i, byte = bit / 8, shift = bit % 8;
        unsigned two = (unsigned)h[byte] << 8 | (byte + 1 < sizeof h ? h[byte + 1] : 0u);
        unsigned v = (two >> (11 - shift)) & 31u;
        if (i && i % 5 == 0)
            out[o++] = '-';
        out[o++] = b32[v];
    }
    out[o] = '\0';
}

/* Build domain || msg in buf (stack) or a heap buffer; *heap is set when the
 * caller must wipe and free it. */
static int sign_input(const kith_env *env, const char *domain, const uint8_t *msg, size_t len,
    uint8_t *stack, size_t stackcap, uint8_t **heap, uint8_t **m, size_t *mlen)
{
    size_t dl = domain_len(domain);
    *heap = NULL;
    if (dl == 0 || (len && !msg))
        return KITH_EINVAL;
    if (len > KITH_SIGN_MAX)
        return KITH_ETOOBIG;
    uint8_t *p = stack;
    if (dl + len > stackcap) {
        if (!env)
            return KITH_EINVAL;
        p = kith_malloc(env, dl + len);
        if (!p)
            return KITH_ENOMEM;
        *heap = p;
    }
    memcpy(p, domain, dl);
    if (len)
        memcpy(p + dl, msg, len);
    *m = p;
    *mlen = dl + len;
    return 0;
}

static void sign_input_done(const kith_env *env, uint8_t *m, size_t mlen, uint8_t *heap)
{
    sodium_memzero(m, mlen);
    if (heap)
        kith_free(env, heap);
}

int kith_sign(const kith_env *env, const kith_identity *id, const char *domain, const uint8_t *msg,
    size_t len, uint8_t sig[KITH_SIG_LEN])
{
    if (!id || !sig)
        return KITH_EINVAL;
    uint8_t stack[KITH_DOMAIN_MAX + SIGN_STACK_MAX];
    uint8_t *heap, *m;
    size_t mlen;
    int rc = sign_input(env, domain, msg, len, stack, sizeof stack, &heap, &m, &mlen);
    if (rc)
        return rc;
    if (crypto_sign_detached(sig, NULL, m, mlen, id->id_sk) != 0)
        rc = KITH_ECRYPTO;
    sign_input_done(env, m, mlen, heap);
    return rc;
}

int kith_verify(const kith_env *env, const uint8_t pk[KITH_ID_LEN], const char *domain,
    const uint8_t *msg, size_t len, const uint8_t sig[KITH_SIG_LEN])
{
    if (!pk || !sig)
        return KITH_EINVAL;
    uint8_t stack[KITH_DOMAIN_MAX + SIGN_STACK_MAX];
    uint8_t *heap, *m;
    size_t mlen;
    int rc = sign_input(env, domain, msg, len, stack, sizeof stack, &heap, &m, &mlen);
    if (rc)
        return rc;
    uint8_t memo[KITH_HASH_LEN];
    bool use_memo = env && env->sig_known && env->sig_good;
    if (use_memo) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, sizeof memo);
        crypto_generichash_update(&st, pk, KITH_ID_LEN);
        crypto_generichash_update(&st, m, mlen);
        crypto_generichash_update(&st, sig, KITH_SIG_LEN);
        crypto_generichash_final(&st, memo, sizeof memo);
    }
    if (use_memo && env->sig_known(env->ctx, memo)) {
        rc = 0;
    } else if (crypto_sign_verify_detached(sig, m, mlen, pk) != 0) {
        rc = KITH_ECRYPTO;
    } else if (use_memo) {
        env->sig_good(env->ctx, memo);
    }
    sign_input_done(env, m, mlen, heap);
    return rc;
}

void kith_sig_check(kith_sig_job *job)
{
    job->ok = job->pk && job->sig && (job->msg || !job->len)
        && crypto_sign_verify_detached(job->sig, job->msg, job->len, job->pk) == 0;
}

void kith_hash(uint8_t out[KITH_HASH_LEN], const uint8_t *data, size_t len)
{
    crypto_generichash(out, KITH_HASH_LEN, data, len, NULL, 0);
}

void kith_keyed_hash(uint8_t *out, size_t outlen, const uint8_t key[KITH_KEY_LEN],
    const char *label, const uint8_t *data, size_t len)
{
    /* A wrong length is a programming error with no error path to report it
     * on; carrying on would hand the caller a key or tag that is not one.
     * Abort, as libsodium does on misuse. */
    if (outlen < 16 || outlen > 64 || !out || !key)
        abort();
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, KITH_KEY_LEN, outlen);
    if (label)
        crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    if (len)
        crypto_generichash_update(&st, data, len);
    crypto_generichash_final(&st, out, outlen);
    sodium_memzero(&st, sizeof st);
}

int kith_seal_to(const uint8_t dh_pk[KITH_DH_LEN], const uint8_t *msg, size_t len, uint8_t *out,
    size_t outcap, size_t *outlen)
{
    if (!dh_pk || !out || !outlen || (len && !msg))
        return KITH_EINVAL;
    if (len > crypto_box_MESSAGEBYTES_MAX - KITH_SEAL_OVERHEAD || outcap < len + KITH_SEAL_OVERHEAD)
        return KITH_ETOOBIG;
    if (crypto_box_seal(out, msg, len, dh_pk) != 0)
        return KITH_ECRYPTO;
    *outlen = len + KITH_SEAL_OVERHEAD;
    return 0;
}

int kith_seal_to_env(const kith_env *env, const uint8_t dh_pk[KITH_DH_LEN], const uint8_t *msg,
    size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (!env || !dh_pk || !out || !outlen || (len && !msg))
        return KITH_EINVAL;
    if (len > crypto_box_MESSAGEBYTES_MAX - KITH_SEAL_OVERHEAD || outcap < len + KITH_SEAL_OVERHEAD)
        return KITH_ETOOBIG;
    /* The crypto_box_seal construction: epk || crypto_box(msg, nonce, pk,
     * esk) with nonce = BLAKE2b-192(epk || pk). */
    uint8_t esk[crypto_box_SECRETKEYBYTES], nonce[crypto_box_NONCEBYTES];
    int rc = 0;
    kith_random(env, esk, sizeof esk);
    if (crypto_scalarmult_base(out, esk) != 0) {
        rc = KITH_ECRYPTO;
        goto done;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof nonce);
    crypto_generichash_update(&st, out, crypto_box_PUBLICKEYBYTES);
    crypto_generichash_update(&st, dh_pk, KITH_DH_LEN);
    crypto_generichash_final(&st, nonce, sizeof nonce);
    if (crypto_box_easy(out + crypto_box_PUBLICKEYBYTES, msg, len, nonce, dh_pk, esk) != 0) {
        rc = KITH_ECRYPTO;
        goto done;
    }
    *outlen = len + KITH_SEAL_OVERHEAD;
done:
    if (rc)
        sodium_memzero(out, KITH_SEAL_OVERHEAD + len);
    sodium_memzero(esk, sizeof esk);
    return rc;
}

int kith_seal_open(const kith_identity *id, const uint8_t *in, size_t len, uint8_t *out,
    size_t outcap, size_t *outlen)
{
    if (!id || !in || !outlen || (!out && len > KITH_SEAL_OVERHEAD))
        return KITH_EINVAL;
    if (len < KITH_SEAL_OVERHEAD)
        return KITH_EPROTO;
    if (outcap < len - KITH_SEAL_OVERHEAD)
        return KITH_ETOOBIG;
    uint8_t dummy;
    if (crypto_box_seal_open(out ? out : &dummy, in, len, id->dh_pk, id->dh_sk) != 0)
        return KITH_ECRYPTO;
    *outlen = len - KITH_SEAL_OVERHEAD;
    return 0;
}

int kith_local_seal(const kith_env *env, const uint8_t key[KITH_KEY_LEN], const uint8_t *in,
    size_t len, kith_buf *out)
{
    if (!env || !key || !out || (len && !in))
        return KITH_EINVAL;
    if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX
        || len > SIZE_MAX - KITH_LOCAL_SEAL_OVERHEAD)
        return KITH_ETOOBIG;
    int rc = kith_buf_reserve(out, len + KITH_LOCAL_SEAL_OVERHEAD);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    kith_random(env, p, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        p + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, in, len, NULL, 0, NULL, p, key);
    out->len += crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + (size_t)clen;
    return 0;
}

int kith_local_open(const uint8_t key[KITH_KEY_LEN], const uint8_t *in, size_t len, uint8_t *out,
    size_t outcap, size_t *outlen)
{
    if (!key || !in || !outlen || (!out && len > KITH_LOCAL_SEAL_OVERHEAD))
        return KITH_EINVAL;
    if (len < KITH_LOCAL_SEAL_OVERHEAD)
        return KITH_EPROTO;
    if (outcap < len - KITH_LOCAL_SEAL_OVERHEAD)
        return KITH_ETOOBIG;
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    uint8_t dummy;
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out ? out : &dummy, &mlen, NULL, in + nb, len - nb, NULL, 0, in, key)
        != 0)
        return KITH_ECRYPTO;
    *outlen = (size_t)mlen;
    return 0;
}
