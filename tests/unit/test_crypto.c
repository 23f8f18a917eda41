/* test_crypto: identities, certificates, signatures with domains,
 * fingerprints, hashes, sealing and key files (plain and sealed), including
 * truncated, bit-flipped and hostile key files. */
#include "testenv.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define PASS "correct horse battery staple"
#define FAST_OPS crypto_pwhash_OPSLIMIT_MIN
#define FAST_MEM crypto_pwhash_MEMLIMIT_MIN

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void gen(uint64_t seed, kith_identity *id)
{
    test_env t;
    test_env_init(&t, seed);
    assert_int_equal(kith_identity_generate(&t.env, id), 0);
}

/* Build a key file into a freshly malloc'd array. */
static uint8_t *save_file(
    const kith_identity *id, const char *pass, uint32_t ops, uint64_t mem, size_t *len)
{
    test_env t;
    test_env_init(&t, 99);
    kith_buf b;
    kith_buf_init(&b, &t.env, 4096);
    assert_int_equal(kith_identity_save_ex(&t.env, id, pass, ops, mem, &b), 0);
    uint8_t *f = malloc(b.len);
    assert_non_null(f);
    memcpy(f, b.data, b.len);
    *len = b.len;
    kith_buf_free(&b);
    assert_int_equal(t.allocs, 0);
    return f;
}

/* Recompute a key file's trailing BLAKE2b-128 checksum (proto/kith.md 3.3),
 * as a forger would, to reach the checks behind it. */
static void fix_sum(uint8_t *f, size_t len)
{
    crypto_generichash(f + len - 16, 16, f, len - 16, NULL, 0);
}

static void test_generate(void **state)
{
    (void)state;
    kith_identity a, a2, b;
    gen(1, &a);
    gen(1, &a2);
    gen(2, &b);
    assert_memory_equal(&a, &a2, sizeof a); /* same seed, same identity */
    assert_memory_not_equal(a.id_pk, b.id_pk, KITH_ID_LEN);
    assert_memory_not_equal(a.dh_pk, b.dh_pk, KITH_DH_LEN);
    assert_memory_not_equal(a.id_pk, a.dh_pk, KITH_ID_LEN);
    /* libsodium's secret key layout: seed || pk */
    assert_memory_equal(a.id_sk + 32, a.id_pk, KITH_ID_LEN);
    uint8_t pk[32];
    assert_int_equal(crypto_scalarmult_base(pk, a.dh_sk), 0);
    assert_memory_equal(pk, a.dh_pk, 32);
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, a.dh_pk, a.cert_sig), 0);

    /* the two secrets are independent draws from the env */
    uint8_t seed[32];
    crypto_sign_ed25519_sk_to_seed(seed, a.id_sk);
    assert_memory_not_equal(seed, a.dh_sk, 32);

    kith_identity_wipe(&a);
    uint8_t zero[sizeof a];
    memset(zero, 0, sizeof zero);
    assert_memory_equal(&a, zero, sizeof a);
    assert_int_equal(kith_identity_generate(NULL, &b), KITH_EINVAL);
}

static void test_from_secrets(void **state)
{
    (void)state;
    kith_identity a, b;
    gen(3, &a);
    uint8_t seed[32];
    crypto_sign_ed25519_sk_to_seed(seed, a.id_sk);
    assert_int_equal(kith_identity_from_secrets(seed, a.dh_sk, &b), 0);
    assert_memory_equal(&a, &b, sizeof a);
    /* the certificate is exactly Ed25519 over "kith/1 cert" || dh_pk */
    uint8_t m[11 + 32], sig[64];
    memcpy(m, "kith/1 cert", 11);
    memcpy(m + 11, a.dh_pk, 32);
    assert_int_equal(crypto_sign_detached(sig, NULL, m, sizeof m, a.id_sk), 0);
    assert_memory_equal(sig, a.cert_sig, 64);
}

static void test_cert(void **state)
{
    (void)state;
    kith_identity a, b;
    gen(4, &a);
    gen(5, &b);
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, a.dh_pk, a.cert_sig), 0);
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, b.dh_pk, a.cert_sig), KITH_ECRYPTO);
    assert_int_equal(kith_cert_verify(NULL, b.id_pk, a.dh_pk, a.cert_sig), KITH_ECRYPTO);
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, a.dh_pk, b.cert_sig), KITH_ECRYPTO);
    uint8_t sig[64];
    memcpy(sig, a.cert_sig, 64);
    sig[10] ^= 1;
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, a.dh_pk, sig), KITH_ECRYPTO);
    uint8_t dh[32];
    memcpy(dh, a.dh_pk, 32);
    dh[31] ^= 0x40;
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, dh, a.cert_sig), KITH_ECRYPTO);
    /* a message signature over the same bytes is not a certificate */
    uint8_t msig[64];
    assert_int_equal(kith_sign(NULL, &a, KITH_DOMAIN_MSG, a.dh_pk, 32, msig), 0);
    assert_int_equal(kith_cert_verify(NULL, a.id_pk, a.dh_pk, msig), KITH_ECRYPTO);
}

static void test_sign_verify(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 6);
    kith_identity a, b;
    gen(6, &a);
    gen(7, &b);
    const uint8_t msg[] = "hello, circle";
    uint8_t sig[64];
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, msg, sizeof msg, sig), 0);
    assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, msg, sizeof msg, sig), 0);
    /* wrong domain, key, message or signature */
    assert_int_equal(
        kith_verify(&t.env, a.id_pk, KITH_DOMAIN_OP, msg, sizeof msg, sig), KITH_ECRYPTO);
    assert_int_equal(
        kith_verify(&t.env, a.id_pk, KITH_DOMAIN_CERT, msg, sizeof msg, sig), KITH_ECRYPTO);
    assert_int_equal(
        kith_verify(&t.env, b.id_pk, KITH_DOMAIN_MSG, msg, sizeof msg, sig), KITH_ECRYPTO);
    assert_int_equal(
        kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, msg, sizeof msg - 1, sig), KITH_ECRYPTO);
    for (size_t i = 0; i < 64; i += 7) {
        uint8_t bad[64];
        memcpy(bad, sig, 64);
        bad[i] ^= 0x20;
        assert_int_equal(
            kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, msg, sizeof msg, bad), KITH_ECRYPTO);
    }
    /* the construction is plain Ed25519 over domain || msg */
    uint8_t cat[10 + sizeof msg];
    memcpy(cat, KITH_DOMAIN_MSG, 10);
    memcpy(cat + 10, msg, sizeof msg);
    assert_int_equal(crypto_sign_verify_detached(sig, cat, sizeof cat, a.id_pk), 0);

    /* empty message */
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_OP, NULL, 0, sig), 0);
    assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_OP, NULL, 0, sig), 0);

    /* bad arguments */
    assert_int_equal(kith_sign(&t.env, &a, NULL, msg, 1, sig), KITH_EINVAL);
    assert_int_equal(kith_sign(&t.env, &a, "", msg, 1, sig), KITH_EINVAL);
    char longdom[KITH_DOMAIN_MAX + 2];
    memset(longdom, 'd', sizeof longdom - 1);
    longdom[sizeof longdom - 1] = '\0';
    assert_int_equal(kith_sign(&t.env, &a, longdom, msg, 1, sig), KITH_EINVAL);
    longdom[KITH_DOMAIN_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(kith_sign(&t.env, &a, longdom, msg, 1, sig), 0);
    assert_int_equal(kith_verify(&t.env, a.id_pk, longdom, msg, 1, sig), 0);
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, NULL, 5, sig), KITH_EINVAL);
    assert_int_equal(t.allocs, 0);
}

static void test_sign_large(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 8);
    kith_identity a;
    gen(8, &a);
    size_t n = KITH_SIGN_MAX;
    uint8_t *big = calloc(1, n + 1);
    assert_non_null(big);
    big[n - 1] = 7;
    uint8_t sig[64];
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, big, n, sig), 0);
    assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, big, n, sig), 0);
    big[n - 1] = 8;
    assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, big, n, sig), KITH_ECRYPTO);
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, big, n + 1, sig), KITH_ETOOBIG);
    assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, big, n + 1, sig), KITH_ETOOBIG);
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, big, SIZE_MAX, sig), KITH_ETOOBIG);
    /* around the stack/heap boundary, and allocation failure on the heap path */
    for (size_t len = 1000; len < 1100; len += 3) {
        assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, big, len, sig), 0);
        assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, big, len, sig), 0);
    }
    t.fail_after = 0;
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, big, 5000, sig), KITH_ENOMEM);
    assert_int_equal(kith_verify(&t.env, a.id_pk, KITH_DOMAIN_MSG, big, 5000, sig), KITH_ENOMEM);
    assert_int_equal(kith_sign(&t.env, &a, KITH_DOMAIN_MSG, big, 100, sig), 0); /* stack */
    t.fail_after = -1;
    assert_int_equal(t.allocs, 0);
    free(big);
}

/* Reference fingerprint, computed the long way from the spec. */
static void ref_fpr(const uint8_t id[32], char out[24])
{
    uint8_t in[10 + 32], h[32];
    memcpy(in, "kith/1 fpr", 10);
    memcpy(in + 10, id, 32);
    crypto_generichash(h, 32, in, sizeof in, NULL, 0);
    const char *alpha = "abcdefghijklmnopqrstuvwxyz234567";
    char digits[20];
    uint32_t acc = 0;
    int bits = 0;
    size_t nd = 0, hi = 0;
    while (nd < 20) {
        if (bits < 5) {
            acc = (acc << 8) | h[hi++];
            bits += 8;
        }
        digits[nd++] = alpha[(acc >> (bits - 5)) & 31];
        bits -= 5;
    }
    snprintf(out, 24, "%.5s-%.5s-%.5s-%.5s", digits, digits + 5, digits + 10, digits + 15);
}

static void test_fingerprint(void **state)
{
    (void)state;
    uint8_t id[32];
    for (int i = 0; i < 32; i++)
        id[i] = (uint8_t)i;
    char f1[KITH_FPR_STRLEN], f2[KITH_FPR_STRLEN], r[24];
    memset(f1, 'x', sizeof f1);
    kith_fingerprint(id, f1);
    /* the example in proto/kith.md section 3.2 */
    assert_string_equal(f1, "djxml-7fbml-jdmni-jfwyc");
    assert_int_equal(strlen(f1), 23);
    ref_fpr(id, r);
    assert_string_equal(f1, r);
    kith_fingerprint(id, f2);
    assert_string_equal(f1, f2);

    for (uint64_t s = 10; s < 30; s++) {
        kith_identity a, b;
        gen(s, &a);
        gen(s + 100, &b);
        kith_fingerprint(a.id_pk, f1);
        kith_fingerprint(b.id_pk, f2);
        ref_fpr(a.id_pk, r);
        assert_string_equal(f1, r);
        assert_string_not_equal(f1, f2);
        assert_int_equal(strlen(f1), KITH_FPR_STRLEN - 1);
        for (int i = 0; i < 23; i++) {
            if (i == 5 || i == 11 || i == 17)
                assert_int_equal(f1[i], '-');
            else
                assert_true((f1[i] >= 'a' && f1[i] <= 'z') || (f1[i] >= '2' && f1[i] <= '7'));
        }
    }
    /* one changed bit of the id changes the fingerprint */
    id[31] ^= 1;
    kith_fingerprint(id, f2);
    assert_string_not_equal(f2, "djxml-7fbml-jdmni-jfwyc");
}

static void test_hash(void **state)
{
    (void)state;
    uint8_t h[32], e[32];
    kith_hash(h, NULL, 0);
    /* BLAKE2b-256 of the empty string */
    assert_int_equal(
        kith_unhex(e, 32, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", 64),
        0);
    assert_memory_equal(h, e, 32);
    kith_hash(h, (const uint8_t *)"abc", 3);
    assert_memory_not_equal(h, e, 32);
}

static void test_keyed_hash(void **state)
{
    (void)state;
    uint8_t key[32], key2[32];
    for (int i = 0; i < 32; i++) {
        key[i] = (uint8_t)(i * 7);
        key2[i] = (uint8_t)(i * 7 + 1);
    }
    const uint8_t data[] = "some data";
    uint8_t a[32], b[32], c[32], d[64], e[16];
    kith_keyed_hash(a, 32, key, "kith/1 tag", data, sizeof data);
    kith_keyed_hash(b, 32, key, "kith/1 beacon", data, sizeof data);
    kith_keyed_hash(c, 32, key2, "kith/1 tag", data, sizeof data);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    kith_keyed_hash(b, 32, key, "kith/1 tag", data, sizeof data);
    assert_memory_equal(a, b, 32);
    /* the definition: keyed BLAKE2b over label || data */
    uint8_t cat[10 + sizeof data];
    memcpy(cat, "kith/1 tag", 10);
    memcpy(cat + 10, data, sizeof data);
    crypto_generichash(c, 32, cat, sizeof cat, key, 32);
    assert_memory_equal(a, c, 32);
    /* output length is part of BLAKE2b's parameters: not a prefix */
    kith_keyed_hash(d, 64, key, "kith/1 tag", data, sizeof data);
    kith_keyed_hash(e, 16, key, "kith/1 tag", data, sizeof data);
    assert_memory_not_equal(d, a, 32);
    assert_memory_not_equal(e, a, 16);
    /* NULL label = empty label; empty data */
    kith_keyed_hash(a, 32, key, NULL, data, sizeof data);
    kith_keyed_hash(b, 32, key, "", data, sizeof data);
    assert_memory_equal(a, b, 32);
    kith_keyed_hash(c, 32, key, "x", NULL, 0);
    assert_memory_not_equal(a, c, 32);
}

static void test_seal(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 40);
    kith_identity a, b;
    gen(40, &a);
    gen(41, &b);
    const uint8_t msg[32] = { 1, 2, 3, 4, 5 };
    uint8_t box[32 + 48], out[64];
    size_t blen = 0, olen = 0;
    assert_int_equal(kith_seal_to(a.dh_pk, msg, sizeof msg, box, sizeof box, &blen), 0);
    assert_int_equal(blen, sizeof msg + KITH_SEAL_OVERHEAD);
    assert_int_equal(kith_seal_open(&a, box, blen, out, sizeof out, &olen), 0);
    assert_int_equal(olen, sizeof msg);
    assert_memory_equal(out, msg, sizeof msg);
    /* someone else can't open it; tampering is caught */
    assert_int_equal(kith_seal_open(&b, box, blen, out, sizeof out, &olen), KITH_ECRYPTO);
    for (size_t i = 0; i < blen; i++) {
        box[i] ^= 0x01;
        assert_int_equal(kith_seal_open(&a, box, blen, out, sizeof out, &olen), KITH_ECRYPTO);
        box[i] ^= 0x01;
    }
    assert_int_equal(kith_seal_open(&a, box, blen - 1, out, sizeof out, &olen), KITH_ECRYPTO);
    assert_int_equal(kith_seal_open(&a, box, 47, out, sizeof out, &olen), KITH_EPROTO);
    assert_int_equal(kith_seal_open(&a, box, blen, out, 31, &olen), KITH_ETOOBIG);
    assert_int_equal(
        kith_seal_to(a.dh_pk, msg, sizeof msg, box, sizeof box - 1, &blen), KITH_ETOOBIG);
    assert_int_equal(
        kith_seal_to(a.dh_pk, msg, SIZE_MAX - 10, box, sizeof box, &blen), KITH_ETOOBIG);
    /* a low-order (all-zero) public key is refused */
    uint8_t zero[32] = { 0 };
    assert_int_equal(kith_seal_to(zero, msg, sizeof msg, box, sizeof box, &blen), KITH_ECRYPTO);
    assert_int_equal(
        kith_seal_to_env(&t.env, zero, msg, sizeof msg, box, sizeof box, &blen), KITH_ECRYPTO);

    /* env variant: reproducible, and the crypto_box_seal format */
    test_env t1, t2; /* two envs in the same state */
    test_env_init(&t1, 42);
    test_env_init(&t2, 42);
    uint8_t box2[32 + 48];
    size_t blen2 = 0;
    assert_int_equal(
        kith_seal_to_env(&t1.env, a.dh_pk, msg, sizeof msg, box, sizeof box, &blen), 0);
    assert_int_equal(
        kith_seal_to_env(&t2.env, a.dh_pk, msg, sizeof msg, box2, sizeof box2, &blen2), 0);
    assert_int_equal(blen, blen2);
    assert_memory_equal(box, box2, blen);
    assert_int_equal(crypto_box_seal_open(out, box, blen, a.dh_pk, a.dh_sk), 0);
    assert_memory_equal(out, msg, sizeof msg);
    assert_int_equal(kith_seal_open(&a, box, blen, out, sizeof out, &olen), 0);
    assert_int_equal(kith_seal_open(&b, box, blen, out, sizeof out, &olen), KITH_ECRYPTO);
    /* a second seal has a fresh ephemeral key */
    assert_int_equal(
        kith_seal_to_env(&t1.env, a.dh_pk, msg, sizeof msg, box2, sizeof box2, &blen2), 0);
    assert_memory_not_equal(box, box2, 32);

    /* empty message */
    assert_int_equal(kith_seal_to(a.dh_pk, NULL, 0, box, sizeof box, &blen), 0);
    assert_int_equal(blen, 48);
    assert_int_equal(kith_seal_open(&a, box, blen, NULL, 0, &olen), 0);
    assert_int_equal(olen, 0);
}

static void test_local_seal(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 50);
    uint8_t key[32], key2[32];
    kith_random(&t.env, key, 32);
    kith_random(&t.env, key2, 32);
    const uint8_t msg[] = "epoch key material, at rest";
    kith_buf b;
    kith_buf_init(&b, &t.env, 1024);
    assert_int_equal(kith_buf_append(&b, "HDR", 3), 0);
    assert_int_equal(kith_local_seal(&t.env, key, msg, sizeof msg, &b), 0);
    assert_int_equal(b.len, 3 + sizeof msg + KITH_LOCAL_SEAL_OVERHEAD);
    assert_memory_equal(b.data, "HDR", 3);
    const uint8_t *c = b.data + 3;
    size_t clen = b.len - 3;
    uint8_t out[128];
    size_t olen = 0;
    assert_int_equal(kith_local_open(key, c, clen, out, sizeof out, &olen), 0);
    assert_int_equal(olen, sizeof msg);
    assert_memory_equal(out, msg, sizeof msg);
    /* format: nonce || XChaCha20-Poly1305-IETF(msg) with no AD */
    unsigned long long ml = 0;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         out, &ml, NULL, c + 24, clen - 24, NULL, 0, c, key),
        0);
    assert_int_equal(kith_local_open(key2, c, clen, out, sizeof out, &olen), KITH_ECRYPTO);
    for (size_t i = 0; i < clen; i++) {
        b.data[3 + i] ^= 0x80;
        assert_int_equal(kith_local_open(key, c, clen, out, sizeof out, &olen), KITH_ECRYPTO);
        b.data[3 + i] ^= 0x80;
    }
    for (size_t l = 0; l < clen; l++) {
        int rc = kith_local_open(key, c, l, out, sizeof out, &olen);
        assert_int_equal(rc, l < 40 ? KITH_EPROTO : KITH_ECRYPTO);
    }
    assert_int_equal(kith_local_open(key, c, clen, out, sizeof msg - 1, &olen), KITH_ETOOBIG);
    /* two seals of the same plaintext differ (random nonce) */
    size_t first = b.len;
    assert_int_equal(kith_local_seal(&t.env, key, msg, sizeof msg, &b), 0);
    assert_memory_not_equal(b.data + 3, b.data + first, clen);
    /* empty plaintext; buffer cap honoured and buffer left as it was */
    kith_buf_reset(&b);
    assert_int_equal(kith_local_seal(&t.env, key, NULL, 0, &b), 0);
    assert_int_equal(b.len, 40);
    assert_int_equal(kith_local_open(key, b.data, b.len, NULL, 0, &olen), 0);
    assert_int_equal(olen, 0);
    kith_buf small;
    kith_buf_init(&small, &t.env, 50);
    assert_int_equal(kith_local_seal(&t.env, key, msg, sizeof msg, &small), KITH_ETOOBIG);
    assert_int_equal(small.len, 0);
    kith_buf_free(&small);
    kith_buf_free(&b);
    assert_int_equal(t.allocs, 0);
}

static void test_keyfile_plain(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 60);
    kith_identity a, l;
    gen(60, &a);
    size_t len;
    uint8_t *f = save_file(&a, NULL, 0, 0, &len);
    assert_int_equal(len, KITH_KEYFILE_PLAIN_LEN);
    assert_memory_equal(f, "KITHKEY1\0", 9);
    assert_false(kith_identity_file_sealed(f, len));
    assert_int_equal(kith_identity_load(&t.env, f, len, NULL, &l), 0);
    assert_memory_equal(&a, &l, sizeof a);
    /* a passphrase given for a plain file is ignored; "" means none on save */
    assert_int_equal(kith_identity_load(&t.env, f, len, "whatever", &l), 0);
    assert_memory_equal(&a, &l, sizeof a);
    size_t len2;
    uint8_t *f2 = save_file(&a, "", 0, 0, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(f, f2, len);
    free(f2);

    uint8_t zero[sizeof l];
    memset(zero, 0, sizeof zero);
    /* truncated at every length, and one byte too long */
    for (size_t n = 0; n < len; n++) {
        memset(&l, 0xAA, sizeof l);
        assert_int_equal(kith_identity_load(&t.env, f, n, NULL, &l), KITH_EPROTO);
        assert_memory_equal(&l, zero, sizeof l); /* nothing left behind */
    }
    uint8_t *longer = calloc(1, len + 1);
    memcpy(longer, f, len);
    assert_int_equal(kith_identity_load(&t.env, longer, len + 1, NULL, &l), KITH_EPROTO);
    free(longer);
    /* every bit flipped */
    for (size_t i = 0; i < len * 8; i++) {
        f[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(kith_identity_load(&t.env, f, len, NULL, &l), KITH_EPROTO);
        f[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* a forger who fixes the checksum still can't change the secrets or the
     * stored keys without the load noticing */
    size_t fields[] = { 9, 41, 73, 105 };
    for (size_t i = 0; i < KITH_ARRAY_LEN(fields); i++) {
        f[fields[i] + 3] ^= 0x10;
        fix_sum(f, len);
        assert_int_equal(kith_identity_load(&t.env, f, len, NULL, &l), KITH_EPROTO);
        f[fields[i] + 3] ^= 0x10;
    }
    /* unknown kind with a good checksum */
    f[8] = 7;
    fix_sum(f, len);
    assert_int_equal(kith_identity_load(&t.env, f, len, NULL, &l), KITH_EPROTO);
    f[8] = 0;
    fix_sum(f, len);
    assert_int_equal(kith_identity_load(&t.env, f, len, NULL, &l), 0);
    assert_int_equal(kith_identity_load(&t.env, NULL, len, NULL, &l), KITH_EPROTO);
    assert_int_equal(kith_identity_load(&t.env, f, len, NULL, NULL), KITH_EINVAL);
    free(f);
}

static void test_keyfile_sealed_interactive(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 71); /* not the identity's seed: salt must not equal the seed */
    kith_identity a, l;
    gen(70, &a);
    kith_buf b;
    kith_buf_init(&b, &t.env, 4096);
    assert_int_equal(kith_buf_append(&b, "x", 1), 0);
    /* the default limits: Argon2id INTERACTIVE (two KDF runs in this test) */
    assert_int_equal(kith_identity_save(&t.env, &a, PASS, &b), 0);
    assert_int_equal(b.len, 1 + KITH_KEYFILE_SEALED_LEN);
    const uint8_t *f = b.data + 1;
    size_t len = KITH_KEYFILE_SEALED_LEN;
    assert_true(kith_identity_file_sealed(f, len));
    assert_int_equal(kith_get_be32(f + 10), crypto_pwhash_OPSLIMIT_INTERACTIVE);
    assert_int_equal(kith_get_be64(f + 14), crypto_pwhash_MEMLIMIT_INTERACTIVE);
    /* no secret or public key in the clear */
    uint8_t seed[32];
    crypto_sign_ed25519_sk_to_seed(seed, a.id_sk);
    for (size_t i = 0; i + 8 <= len; i++) {
        assert_memory_not_equal(f + i, seed, 8);
        assert_memory_not_equal(f + i, a.dh_sk, 8);
        assert_memory_not_equal(f + i, a.id_pk, 8);
    }
    assert_int_equal(kith_identity_load(&t.env, f, len, PASS, &l), 0);
    assert_memory_equal(&a, &l, sizeof a);
    assert_int_equal(
        kith_identity_load(&t.env, f, len, "Correct horse battery staple", &l), KITH_EPASS);
    uint8_t zero[sizeof l];
    memset(zero, 0, sizeof zero);
    assert_memory_equal(&l, zero, sizeof l);
    /* missing passphrase: no KDF needed to say so */
    assert_int_equal(kith_identity_load(&t.env, f, len, NULL, &l), KITH_EPASS);
    assert_int_equal(kith_identity_load(&t.env, f, len, "", &l), KITH_EPASS);
    kith_buf_free(&b);
    assert_int_equal(t.allocs, 0);
}

static void test_keyfile_sealed_hostile(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 81);
    kith_identity a, l;
    gen(80, &a);
    size_t len;
    uint8_t *f = save_file(&a, PASS, FAST_OPS, FAST_MEM, &len);
    assert_int_equal(len, KITH_KEYFILE_SEALED_LEN);
    assert_int_equal(kith_identity_load(&t.env, f, len, PASS, &l), 0);
    assert_memory_equal(&a, &l, sizeof a);
    assert_int_equal(kith_identity_load(&t.env, f, len, "wrong", &l), KITH_EPASS);
    /* salt and nonce come from the env: a second save draws fresh ones */
    kith_buf b2;
    kith_buf_init(&b2, &t.env, 4096);
    assert_int_equal(kith_identity_save_ex(&t.env, &a, PASS, FAST_OPS, FAST_MEM, &b2), 0);
    assert_int_equal(kith_identity_save_ex(&t.env, &a, PASS, FAST_OPS, FAST_MEM, &b2), 0);
    assert_memory_not_equal(b2.data + 22, b2.data + len + 22, 40);
    assert_int_equal(kith_identity_load(&t.env, b2.data + len, len, PASS, &l), 0);
    kith_buf_free(&b2);

    for (size_t n = 0; n < len; n++)
        assert_int_equal(kith_identity_load(&t.env, f, n, PASS, &l), KITH_EPROTO);
    for (size_t i = 0; i < len * 8; i++) {
        f[i / 8] ^= (uint8_t)(1u << (i % 8));
        int rc = kith_identity_load(&t.env, f, len, PASS, &l);
        assert_int_equal(rc, KITH_EPROTO);
        f[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* With the checksum fixed by a forger, every bit of the header and the
     * ciphertext is still authenticated: the AEAD fails (EPASS), or the
     * limits are refused before any work. */
    for (size_t i = 10 * 8; i < 142 * 8; i += 13) {
        f[i / 8] ^= (uint8_t)(1u << (i % 8));
        fix_sum(f, len);
        int rc = kith_identity_load(&t.env, f, len, PASS, &l);
        if (i / 8 >= 10 && i / 8 < 22)
            assert_true(rc == KITH_EPASS || rc == KITH_ETOOBIG || rc == KITH_EPROTO);
        else
            assert_int_equal(rc, KITH_EPASS);
        f[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    fix_sum(f, len);
    assert_int_equal(kith_identity_load(&t.env, f, len, PASS, &l), 0);

    /* hostile Argon2id limits: refused before any work */
    uint8_t h[KITH_KEYFILE_SEALED_LEN];
    memcpy(h, f, len);
    kith_put_be64(h + 14, (uint64_t)1 << 40); /* a terabyte */
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_ETOOBIG);
    kith_put_be64(h + 14, (uint64_t)KITH_KEYFILE_MAX_MEMLIMIT + 1);
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_ETOOBIG);
    memcpy(h, f, len);
    kith_put_be32(h + 10, 0xFFFFFFFFu);
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_ETOOBIG);
    kith_put_be32(h + 10, 0);
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_EPROTO);
    memcpy(h, f, len);
    kith_put_be64(h + 14, 8191);
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_EPROTO);
    memcpy(h, f, len);
    h[9] = 1; /* Argon2i: not ours */
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_EPROTO);
    /* downgrade to "plain" with the same bytes */
    memcpy(h, f, len);
    h[8] = 0;
    fix_sum(h, len);
    assert_int_equal(kith_identity_load(&t.env, h, len, PASS, &l), KITH_EPROTO);
    /* a sealed file whose secrets are garbage under the right key can't
     * happen without the key; check the limit arguments of save instead */
    kith_buf b;
    kith_buf_init(&b, &t.env, 4096);
    assert_int_equal(kith_identity_save_ex(&t.env, &a, PASS, 0, FAST_MEM, &b), KITH_EINVAL);
    assert_int_equal(
        kith_identity_save_ex(&t.env, &a, PASS, KITH_KEYFILE_MAX_OPSLIMIT + 1, FAST_MEM, &b),
        KITH_EINVAL);
    assert_int_equal(kith_identity_save_ex(&t.env, &a, PASS, 1, FAST_MEM - 1, &b), KITH_EINVAL);
    assert_int_equal(
        kith_identity_save_ex(&t.env, &a, PASS, 1, (uint64_t)KITH_KEYFILE_MAX_MEMLIMIT + 1, &b),
        KITH_EINVAL);
    assert_int_equal(b.len, 0);
    kith_buf_free(&b);
    assert_false(kith_identity_file_sealed(f, 8));
    assert_false(kith_identity_file_sealed(NULL, 0));
    free(f);
    assert_int_equal(t.allocs, 0);
}

static void test_keyfile_args(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 90);
    kith_identity a, l;
    gen(90, &a);
    kith_buf b;
    kith_buf_init(&b, &t.env, 100); /* too small for either kind */
    assert_int_equal(kith_identity_save(&t.env, &a, NULL, &b), KITH_ETOOBIG);
    assert_int_equal(b.len, 0);
    kith_buf_free(&b);
    kith_buf_init(&b, &t.env, 4096);
    t.fail_after = 0;
    assert_int_equal(kith_identity_save(&t.env, &a, NULL, &b), KITH_ENOMEM);
    t.fail_after = -1;
    assert_int_equal(b.len, 0);
    /* an inconsistent identity is not written */
    kith_identity bad = a;
    bad.dh_pk[0] ^= 1;
    assert_int_equal(kith_identity_save(&t.env, &bad, NULL, &b), KITH_EINVAL);
    bad = a;
    bad.id_pk[0] ^= 1;
    assert_int_equal(kith_identity_save(&t.env, &bad, NULL, &b), KITH_EINVAL);
    assert_int_equal(b.len, 0);
    /* passphrase length cap */
    char *longpass = malloc(KITH_PASS_MAX + 2);
    memset(longpass, 'p', KITH_PASS_MAX + 1);
    longpass[KITH_PASS_MAX + 1] = '\0';
    assert_int_equal(
        kith_identity_save_ex(&t.env, &a, longpass, FAST_OPS, FAST_MEM, &b), KITH_EINVAL);
    longpass[KITH_PASS_MAX] = '\0';
    assert_int_equal(kith_identity_save_ex(&t.env, &a, longpass, FAST_OPS, FAST_MEM, &b), 0);
    assert_int_equal(kith_identity_load(&t.env, b.data, b.len, longpass, &l), 0);
    assert_memory_equal(&a, &l, sizeof a);
    free(longpass);
    kith_buf_free(&b);
    assert_int_equal(t.allocs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_from_secrets),
        cmocka_unit_test(test_cert),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_sign_large),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_keyed_hash),
        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_local_seal),
        cmocka_unit_test(test_keyfile_plain),
        cmocka_unit_test(test_keyfile_sealed_interactive),
        cmocka_unit_test(test_keyfile_sealed_hostile),
        cmocka_unit_test(test_keyfile_args),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
