/* fuzz_keyfile: kith_identity_load on arbitrary bytes, without a passphrase,
 * with the right one and with a wrong one; then again on a copy whose
 * trailing checksum has been recomputed, so the fuzzer gets past the
 * checksum into the header checks, the limit caps and the AEAD. Whatever
 * loads must be a consistent identity, and a plain file must re-save to
 * exactly its own bytes.
 *
 * Built with -DKITH_FUZZ_GEN_CORPUS it is instead the program that wrote the
 * seed corpus in tests/fuzz/corpus/keyfile/:
 *   cc -DKITH_FUZZ_GEN_CORPUS ... tests/fuzz/fuzz_keyfile.c -o gen && ./gen DIR */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "fuzzenv.h"

#define PASS "fuzz passphrase"
#define WRONG "fuzz passphrasf"

/* Largest Argon2id work the checksum-fixed copy may ask for, so that a
 * mutated header does not make each run take a tenth of a second. */
#define FUZZ_MAX_OPS 2u
#define FUZZ_MAX_MEM (64u * 1024u)

/* Deterministic randomness so runs (and the generated corpus) reproduce. */
static void f_random(void *ctx, void *buf, size_t len)
{
    uint64_t *ctr = ctx;
    static const uint8_t seed[randombytes_SEEDBYTES] = { 'k', 'i', 't', 'h' };
    uint8_t s[randombytes_SEEDBYTES];
    memcpy(s, seed, sizeof s);
    for (int i = 0; i < 8; i++)
        s[24 + i] = (uint8_t)(*ctr >> (8 * i));
    (*ctr)++;
    randombytes_buf_deterministic(buf, len, s);
}

static uint64_t f_clock(void *ctx)
{
    (void)ctx;
    return 0;
}

static void env_init(kith_env *env, uint64_t *ctr)
{
    memset(env, 0, sizeof *env);
    env->ctx = ctr;
    env->mono_ms = f_clock;
    env->wall_ms = f_clock;
    env->random = f_random;
    env->realloc = fuzz_realloc;
    env->free = fuzz_free;
    env->log = NULL;
}

static void fix_sum(uint8_t *f, size_t len)
{
    crypto_generichash(f + len - 16, 16, f, len - 16, NULL, 0);
}

static void check_loaded(
    const kith_env *env, const kith_identity *id, const uint8_t *data, size_t len)
{
    if (kith_cert_verify(NULL, id->id_pk, id->dh_pk, id->cert_sig) != 0)
        abort();
    kith_identity again;
    if (kith_identity_from_secrets(id->id_sk, id->dh_sk, &again) != 0
        || memcmp(&again, id, sizeof again) != 0)
        abort();
    kith_buf b;
    kith_buf_init(&b, env, 4096);
    if (kith_identity_save(env, id, NULL, &b) != 0 || b.len != KITH_KEYFILE_PLAIN_LEN)
        abort();
    if (!kith_identity_file_sealed(data, len) && (len != b.len || memcmp(b.data, data, len) != 0))
        abort();
    kith_buf_free(&b);
    kith_identity_wipe(&again);
}

static bool small_limits(const uint8_t *data, size_t len)
{
    if (!kith_identity_file_sealed(data, len) || len != KITH_KEYFILE_SEALED_LEN)
        return false;
    uint32_t ops = kith_get_be32(data + 10);
    uint64_t mem = kith_get_be64(data + 14);
    return ops <= FUZZ_MAX_OPS && mem <= FUZZ_MAX_MEM;
}

/* One input through every load; `kdf` says whether the passphrase paths may
 * run Argon2id. */
static void run(const kith_env *env, const uint8_t *data, size_t len, bool kdf)
{
    kith_identity id;
    bool sealed = kith_identity_file_sealed(data, len);
    int rc = kith_identity_load(env, data, len, NULL, &id);
    if (rc == 0) {
        if (sealed)
            abort(); /* a sealed file never opens without the passphrase */
        check_loaded(env, &id, data, len);
    } else if (rc != KITH_EPROTO && rc != KITH_EPASS && rc != KITH_ETOOBIG) {
        abort();
    }
    if (!kdf)
        return;
    rc = kith_identity_load(env, data, len, PASS, &id);
    if (rc == 0)
        check_loaded(env, &id, data, len);
    else if (rc != KITH_EPROTO && rc != KITH_EPASS && rc != KITH_ETOOBIG)
        abort();
    if (sealed) {
        int rc2 = kith_identity_load(env, data, len, WRONG, &id);
        if (rc2 == 0 && rc == 0)
            abort(); /* one file, two passphrases */
        if (rc2 == 0)
            check_loaded(env, &id, data, len);
    }
    kith_identity_wipe(&id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sodium_init() < 0)
        abort();
    uint64_t ctr = 0;
    kith_env env;
    env_init(&env, &ctr);
    /* The raw input: Argon2id runs only behind a valid checksum, which in
     * practice means an unmodified seed file, and within the load's caps. */
    run(&env, data, size, true);
    if (size < 9 + 16 || size > 4096)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_sum(copy, size);
    run(&env, copy, size, small_limits(copy, size));
    free(copy);
    return 0;
}

#ifdef KITH_FUZZ_GEN_CORPUS
static void put(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void save(const kith_env *env, const kith_identity *id, const char *pass, uint32_t ops,
    uint64_t mem, uint8_t *out, size_t *len)
{
    kith_buf b;
    kith_buf_init(&b, env, 4096);
    if (kith_identity_save_ex(env, id, pass, ops, mem, &b) != 0)
        exit(1);
    memcpy(out, b.data, b.len);
    *len = b.len;
    kith_buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0)
        return 2;
    const char *dir = argv[1];
    uint64_t ctr = 1000;
    kith_env env;
    env_init(&env, &ctr);
    kith_identity a, b;
    if (kith_identity_generate(&env, &a) != 0 || kith_identity_generate(&env, &b) != 0)
        return 1;
    uint8_t f[KITH_KEYFILE_SEALED_LEN], h[KITH_KEYFILE_SEALED_LEN + 1];
    size_t n, sn;

    save(&env, &a, NULL, 0, 0, f, &n);
    put(dir, "plain-a", f, n);
    put(dir, "trunc-plain-9", f, 9);
    put(dir, "trunc-plain-100", f, 100);
    put(dir, "trunc-plain-152", f, n - 1);
    memcpy(h, f, n);
    h[n] = 0;
    put(dir, "long-plain", h, n + 1);
    memcpy(h, f, n);
    h[80] ^= 4; /* secret seed changed, checksum fixed: keys mismatch */
    fix_sum(h, n);
    put(dir, "hostile-plain-seed", h, n);
    memcpy(h, f, n);
    h[8] = 9;
    fix_sum(h, n);
    put(dir, "hostile-kind", h, n);
    memcpy(h, f, n);
    h[n - 1] ^= 1;
    put(dir, "bad-sum-plain", h, n);
    save(&env, &b, NULL, 0, 0, f, &n);
    put(dir, "plain-b", f, n);

    save(&env, &a, PASS, 1, 8192, f, &sn);
    put(dir, "sealed-min", f, sn);
    put(dir, "trunc-sealed-61", f, 61);
    put(dir, "trunc-sealed-157", f, sn - 1);
    memcpy(h, f, sn);
    kith_put_be32(h + 10, 0xFFFFFFFFu);
    fix_sum(h, sn);
    put(dir, "hostile-ops", h, sn);
    memcpy(h, f, sn);
    kith_put_be64(h + 14, (uint64_t)1 << 40);
    fix_sum(h, sn);
    put(dir, "hostile-mem", h, sn);
    memcpy(h, f, sn);
    h[9] = 1;
    fix_sum(h, sn);
    put(dir, "hostile-alg", h, sn);
    memcpy(h, f, sn);
    h[100] ^= 0x20; /* ciphertext changed, checksum fixed: AEAD fails */
    fix_sum(h, sn);
    put(dir, "hostile-ct", h, sn);
    memcpy(h, f, sn);
    h[8] = 0; /* sealed bytes relabelled plain */
    fix_sum(h, sn);
    put(dir, "hostile-downgrade", h, sn);
    save(&env, &b, PASS, 2, 65536, f, &sn);
    put(dir, "sealed-b", f, sn);
    save(&env, &b, WRONG, 1, 8192, f, &sn);
    put(dir, "sealed-other-pass", f, sn);
    save(&env, &a, PASS, crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE, f,
        &sn);
    put(dir, "sealed-interactive", f, sn);
    put(dir, "magic-only", (const uint8_t *)"KITHKEY1", 8);
    put(dir, "empty", (const uint8_t *)"", 0);
    kith_identity_wipe(&a);
    kith_identity_wipe(&b);
    return 0;
}
#endif
