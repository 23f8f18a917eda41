/* session/noise: the Noise Protocol Framework, revision 34, for the one suite
 * kith speaks, 25519_ChaChaPoly_BLAKE2b, on libsodium primitives.
 *
 * The handshake is a table-driven interpreter: the protocol name is parsed
 * into a base pattern (looked up in the table of the spec's fundamental,
 * one-way and deferred patterns) plus psk modifiers, which become a small
 * array of tokens per message. write_message and read_message walk those
 * tokens, so every pattern shares one code path and one set of checks.
 *
 * Fail closed: once a step that touched the state fails (bad tag, wrong
 * length, bad DH output), the state is poisoned: every key and secret is
 * wiped and all later calls return KITH_ESTATE. Argument errors detected
 * before anything changed (a too-small output buffer) are returned without
 * poisoning, so a caller bug is not mistaken for an attack. */
#include "session/noise.h"

#include <sodium.h>
#include <string.h>

#include "util/util.h"

#define BLOCKLEN 128 /* BLAKE2b block size, for HMAC */
#define MAX_MSGS 6
#define MAX_TOKENS 10
#define MAX_PSKS 4
#define MAX_NAME 128

static const char SUITE[] = "_25519_ChaChaPoly_BLAKE2b";

enum token { T_E = 1, T_S, T_EE, T_ES, T_SE, T_SS, T_PSK };

enum hs_state {
    ST_RUN = 1, /* messages left to write or read */
    ST_SPLIT, /* all messages done, Split() not yet called */
    ST_DONE, /* split: only the hash and remote key remain */
    ST_FAILED,
};

/* Handshake patterns of the spec (sections 7.4, 7.5, 7.6): pre-messages for
 * the initiator's and responder's side ("s" or ""), then the messages
 * separated by '|', alternating initiator -> responder first. */
typedef struct pattern_def {
    const char *name;
    const char *pre_i;
    const char *pre_r;
    const char *msgs;
} pattern_def;

static const pattern_def PATTERNS[] = {
    /* one-way */
    { "N", "", "s", "e es" },
    { "K", "s", "s", "e es ss" },
    { "X", "", "s", "e es s ss" },
    /* fundamental interactive */
    { "NN", "", "", "e|e ee" },
    { "NK", "", "s", "e es|e ee" },
    { "NX", "", "", "e|e ee s es" },
    { "KN", "s", "", "e|e ee se" },
    { "KK", "s", "s", "e es ss|e ee se" },
    { "KX", "s", "", "e|e ee se s es" },
    { "XN", "", "", "e|e ee|s se" },
    { "XK", "", "s", "e es|e ee|s se" },
    { "XX", "", "", "e|e ee s es|s se" },
    { "IN", "", "", "e s|e ee se" },
    { "IK", "", "s", "e es s ss|e ee se" },
    { "IX", "", "", "e s|e ee se s es" },
    /* deferred */
    { "NK1", "", "s", "e|e ee es" },
    { "NX1", "", "", "e|e ee s|es" },
    { "X1N", "", "", "e|e ee|s|se" },
    { "X1K", "", "s", "e es|e ee|s|se" },
    { "XK1", "", "s", "e|e ee es|s se" },
    { "X1K1", "", "s", "e|e ee es|s|se" },
    { "X1X", "", "", "e|e ee s es|s|se" },
    { "XX1", "", "", "e|e ee s|es s se" },
    { "X1X1", "", "", "e|e ee s|es s|se" },
    { "K1N", "s", "", "e|e ee|se" },
    { "K1K", "s", "s", "e es|e ee|se" },
    { "KK1", "s", "s", "e|e ee se es" },
    { "K1K1", "s", "s", "e|e ee es|se" },
    { "K1X", "s", "", "e|e ee s es|se" },
    { "KX1", "s", "", "e|e ee se s|es" },
    { "K1X1", "s", "", "e|e ee s|se es" },
    { "I1N", "", "", "e s|e ee|se" },
    { "I1K", "", "s", "e es s|e ee|se" },
    { "IK1", "", "s", "e s|e ee se es" },
    { "I1K1", "", "s", "e s|e ee es|se" },
    { "I1X", "", "", "e s|e ee s es|se" },
    { "IX1", "", "", "e s|e ee se s|es" },
    { "I1X1", "", "", "e s|e ee s|se es" },
};

struct kith_noise {
    const kith_env *env;
    bool initiator;
    int state;
    bool started; /* prologue and pre-messages mixed */
    bool prologue_set;

    /* the pattern, expanded */
    uint8_t tok[MAX_MSGS][MAX_TOKENS];
    uint8_t ntok[MAX_MSGS];
    size_t nmsgs;
    bool pre_i_s, pre_r_s;
    bool psk_mode;
    size_t psk_tokens;
    size_t msg; /* index of the next message */

    /* SymmetricState */
    uint8_t ck[KITH_NOISE_HASHLEN];
    uint8_t h[KITH_NOISE_HASHLEN];
    kith_noise_cs cs;

    /* keys */
    uint8_t s_sk[32], s_pk[32], e_sk[32], e_pk[32], rs[32], re[32];
    bool has_s, has_e, has_rs, has_re;
    uint8_t psk[MAX_PSKS][32];
    size_t npsk, psk_used;
};

/* ---- primitives ---- */

static void hash2(
    uint8_t out[KITH_NOISE_HASHLEN], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, KITH_NOISE_HASHLEN);
    crypto_generichash_update(&st, a, alen);
    if (blen)
        crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, KITH_NOISE_HASHLEN);
    sodium_memzero(&st, sizeof st);
}

/* HMAC-BLAKE2b (RFC 2104 with a 128-byte block), over d1 || d2. */
static void hmac(const uint8_t *key, size_t keylen, const uint8_t *d1, size_t l1, const uint8_t *d2,
    size_t l2, uint8_t out[KITH_NOISE_HASHLEN])
{
    uint8_t k[BLOCKLEN], pad[BLOCKLEN], inner[KITH_NOISE_HASHLEN];
    memset(k, 0, sizeof k);
    if (keylen > BLOCKLEN)
        hash2(k, key, keylen, NULL, 0);
    else if (keylen)
        memcpy(k, key, keylen);

    crypto_generichash_state st;
    for (size_t i = 0; i < BLOCKLEN; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    crypto_generichash_init(&st, NULL, 0, KITH_NOISE_HASHLEN);
    crypto_generichash_update(&st, pad, BLOCKLEN);
    if (l1)
        crypto_generichash_update(&st, d1, l1);
    if (l2)
        crypto_generichash_update(&st, d2, l2);
    crypto_generichash_final(&st, inner, sizeof inner);

    for (size_t i = 0; i < BLOCKLEN; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    crypto_generichash_init(&st, NULL, 0, KITH_NOISE_HASHLEN);
    crypto_generichash_update(&st, pad, BLOCKLEN);
    crypto_generichash_update(&st, inner, sizeof inner);
    crypto_generichash_final(&st, out, KITH_NOISE_HASHLEN);

    sodium_memzero(k, sizeof k);
    sodium_memzero(pad, sizeof pad);
    sodium_memzero(inner, sizeof inner);
    sodium_memzero(&st, sizeof st);
}

/* HKDF as the spec defines it: 2 or 3 outputs of HASHLEN bytes (o3 may be NULL). */
static void hkdf(const uint8_t ck[KITH_NOISE_HASHLEN], const uint8_t *ikm, size_t ikmlen,
    uint8_t o1[KITH_NOISE_HASHLEN], uint8_t o2[KITH_NOISE_HASHLEN], uint8_t *o3)
{
    uint8_t temp[KITH_NOISE_HASHLEN];
    const uint8_t one = 1, two = 2, three = 3;
    hmac(ck, KITH_NOISE_HASHLEN, ikm, ikmlen, NULL, 0, temp);
    hmac(temp, sizeof temp, &one, 1, NULL, 0, o1);
    hmac(temp, sizeof temp, o1, KITH_NOISE_HASHLEN, &two, 1, o2);
    if (o3)
        hmac(temp, sizeof temp, o2, KITH_NOISE_HASHLEN, &three, 1, o3);
    sodium_memzero(temp, sizeof temp);
}

static void make_nonce(uint8_t nonce[12], uint64_t n)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

/* ---- CipherState ---- */

static void cs_init_key(kith_noise_cs *cs, const uint8_t k[32])
{
    memcpy(cs->k, k, 32);
    cs->n = 0;
    cs->has_key = true;
}

int kith_noise_cs_encrypt(kith_noise_cs *cs, const uint8_t *ad, size_t adlen, const uint8_t *in,
    size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (!cs->has_key) {
        /* the spec's EncryptWithAd without a key: plaintext passes through */
        if (len > outcap)
            return KITH_ETOOBIG;
        if (len && out != in)
            memmove(out, in, len);
        *outlen = len;
        return 0;
    }
    /* nonce 2^64-1 is reserved: a state that reaches it (or was wiped, see
     * kith_noise_cs_wipe) can never encrypt again */
    if (cs->n == UINT64_MAX)
        return KITH_ESTATE;
    if (len > SIZE_MAX - KITH_NOISE_TAG || len + KITH_NOISE_TAG > outcap)
        return KITH_ETOOBIG;
    uint8_t nonce[12];
    make_nonce(nonce, cs->n);
    unsigned long long clen = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, in, len, ad, adlen, NULL, nonce, cs->k);
    cs->n++;
    *outlen = (size_t)clen;
    return 0;
}

int kith_noise_cs_decrypt(kith_noise_cs *cs, const uint8_t *ad, size_t adlen, const uint8_t *in,
    size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (!cs->has_key) {
        if (len > outcap)
            return KITH_ETOOBIG;
        if (len && out != in)
            memmove(out, in, len);
        *outlen = len;
        return 0;
    }
    if (cs->n == UINT64_MAX)
        return KITH_ESTATE;
    if (len < KITH_NOISE_TAG)
        return KITH_EPROTO;
    if (len - KITH_NOISE_TAG > outcap)
        return KITH_ETOOBIG;
    uint8_t nonce[12];
    make_nonce(nonce, cs->n);
    unsigned long long mlen = 0;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(
            out, &mlen, NULL, in, len, ad, adlen, nonce, cs->k)
        != 0)
        return KITH_ECRYPTO;
    cs->n++;
    *outlen = (size_t)mlen;
    return 0;
}

/* A wiped cipher state keeps has_key set with the reserved nonce, so it fails
 * every later encrypt/decrypt instead of falling back to plaintext. */
void kith_noise_cs_wipe(kith_noise_cs *cs)
{
    sodium_memzero(cs->k, sizeof cs->k);
    cs->has_key = true;
    cs->n = UINT64_MAX;
}

/* ---- SymmetricState ---- */

static void mix_hash(kith_noise *hs, const uint8_t *data, size_t len)
{
    hash2(hs->h, hs->h, KITH_NOISE_HASHLEN, data, len);
}

static void mix_key(kith_noise *hs, const uint8_t *ikm, size_t len)
{
    uint8_t ck[KITH_NOISE_HASHLEN], k[KITH_NOISE_HASHLEN];
    hkdf(hs->ck, ikm, len, ck, k, NULL);
    memcpy(hs->ck, ck, sizeof ck);
    cs_init_key(&hs->cs, k); /* truncated to 32 bytes */
    sodium_memzero(ck, sizeof ck);
    sodium_memzero(k, sizeof k);
}

static void mix_key_and_hash(kith_noise *hs, const uint8_t *ikm, size_t len)
{
    uint8_t ck[KITH_NOISE_HASHLEN], th[KITH_NOISE_HASHLEN], k[KITH_NOISE_HASHLEN];
    hkdf(hs->ck, ikm, len, ck, th, k);
    memcpy(hs->ck, ck, sizeof ck);
    mix_hash(hs, th, sizeof th);
    cs_init_key(&hs->cs, k);
    sodium_memzero(ck, sizeof ck);
    sodium_memzero(th, sizeof th);
    sodium_memzero(k, sizeof k);
}

static int encrypt_and_hash(
    kith_noise *hs, const uint8_t *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    int rc
        = kith_noise_cs_encrypt(&hs->cs, hs->h, KITH_NOISE_HASHLEN, in, len, out, outcap, outlen);
    if (rc)
        return rc;
    mix_hash(hs, out, *outlen);
    return 0;
}

/* The hash is mixed over the ciphertext, which out may overwrite: hash first
 * into a temporary, commit only when the tag checked. */
static int decrypt_and_hash(
    kith_noise *hs, const uint8_t *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    uint8_t nh[KITH_NOISE_HASHLEN];
    hash2(nh, hs->h, KITH_NOISE_HASHLEN, in, len);
    int rc
        = kith_noise_cs_decrypt(&hs->cs, hs->h, KITH_NOISE_HASHLEN, in, len, out, outcap, outlen);
    if (rc == 0)
        memcpy(hs->h, nh, sizeof nh);
    return rc;
}

/* ---- pattern parsing ---- */

static int parse_tokens(const char *s, size_t len, uint8_t *tok, uint8_t *ntok)
{
    size_t i = 0;
    *ntok = 0;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        size_t j = i;
        while (j < len && s[j] != ' ')
            j++;
        if (j == i)
            break;
        uint8_t t;
        size_t n = j - i;
        if (n == 1 && s[i] == 'e')
            t = T_E;
        else if (n == 1 && s[i] == 's')
            t = T_S;
        else if (n == 2 && s[i] == 'e' && s[i + 1] == 'e')
            t = T_EE;
        else if (n == 2 && s[i] == 'e' && s[i + 1] == 's')
            t = T_ES;
        else if (n == 2 && s[i] == 's' && s[i + 1] == 'e')
            t = T_SE;
        else if (n == 2 && s[i] == 's' && s[i + 1] == 's')
            t = T_SS;
        else
            return KITH_EINVAL;
        if (*ntok >= MAX_TOKENS - MAX_PSKS)
            return KITH_EINVAL;
        tok[(*ntok)++] = t;
        i = j;
    }
    return 0;
}

static int expand_pattern(kith_noise *hs, const pattern_def *p)
{
    hs->pre_i_s = p->pre_i[0] == 's';
    hs->pre_r_s = p->pre_r[0] == 's';
    const char *m = p->msgs;
    hs->nmsgs = 0;
    for (;;) {
        const char *bar = strchr(m, '|');
        size_t len = bar ? (size_t)(bar - m) : strlen(m);
        if (hs->nmsgs >= MAX_MSGS)
            return KITH_EINVAL;
        int rc = parse_tokens(m, len, hs->tok[hs->nmsgs], &hs->ntok[hs->nmsgs]);
        if (rc)
            return rc;
        hs->nmsgs++;
        if (!bar)
            break;
        m = bar + 1;
    }
    return 0;
}

/* psk0 puts a psk token first in message 1; pskN (N >= 1) appends one to
 * message N. */
static int add_psk(kith_noise *hs, unsigned n)
{
    if (n > hs->nmsgs || hs->psk_tokens >= MAX_PSKS)
        return KITH_EINVAL;
    size_t mi = n == 0 ? 0 : n - 1;
    uint8_t *tok = hs->tok[mi];
    if (hs->ntok[mi] >= MAX_TOKENS)
        return KITH_EINVAL;
    if (n == 0) {
        memmove(tok + 1, tok, hs->ntok[mi]);
        tok[0] = T_PSK;
    } else {
        tok[hs->ntok[mi]] = T_PSK;
    }
    hs->ntok[mi]++;
    hs->psk_tokens++;
    hs->psk_mode = true;
    return 0;
}

/* "Noise_" base modifiers "_25519_ChaChaPoly_BLAKE2b"; modifiers are
 * "pskN" joined by '+'. */
static int parse_protocol(kith_noise *hs, const char *protocol, size_t len)
{
    const size_t suffix = sizeof SUITE - 1;
    if (len < 6 + suffix || memcmp(protocol, "Noise_", 6) != 0
        || memcmp(protocol + len - suffix, SUITE, suffix) != 0)
        return KITH_EINVAL;
    const char *p = protocol + 6;
    const char *end = protocol + len - suffix;
    const char *mods = p;
    while (mods < end && ((*mods >= 'A' && *mods <= 'Z') || (*mods >= '0' && *mods <= '9')))
        mods++;
    size_t blen = (size_t)(mods - p);
    const pattern_def *def = NULL;
    for (size_t i = 0; i < KITH_ARRAY_LEN(PATTERNS); i++) {
        if (strlen(PATTERNS[i].name) == blen && memcmp(PATTERNS[i].name, p, blen) == 0) {
            def = &PATTERNS[i];
            break;
        }
    }
    if (!def)
        return KITH_EINVAL;
    int rc = expand_pattern(hs, def);
    if (rc)
        return rc;

    bool seen[MAX_MSGS + 1] = { false };
    const char *q = mods;
    while (q < end) {
        if (end - q < 4 || memcmp(q, "psk", 3) != 0)
            return KITH_EINVAL;
        q += 3;
        unsigned n = 0;
        size_t digits = 0;
        while (q < end && *q >= '0' && *q <= '9' && digits < 2) {
            n = n * 10 + (unsigned)(*q - '0');
            q++;
            digits++;
        }
        if (digits == 0 || (digits == 2 && n < 10) || n > hs->nmsgs || seen[n])
            return KITH_EINVAL;
        seen[n] = true;
        rc = add_psk(hs, n);
        if (rc)
            return rc;
        if (q < end) {
            if (*q != '+' || q + 1 == end)
                return KITH_EINVAL;
            q++;
        }
    }
    return 0;
}

/* ---- HandshakeState ---- */

static void wipe_secrets(kith_noise *hs)
{
    sodium_memzero(hs->ck, sizeof hs->ck);
    kith_noise_cs_wipe(&hs->cs);
    sodium_memzero(hs->s_sk, sizeof hs->s_sk);
    sodium_memzero(hs->e_sk, sizeof hs->e_sk);
    sodium_memzero(hs->psk, sizeof hs->psk);
    hs->has_e = false;
    hs->has_s = false;
    hs->npsk = 0;
}

static int poison(kith_noise *hs, int rc)
{
    wipe_secrets(hs);
    sodium_memzero(hs->h, sizeof hs->h);
    sodium_memzero(hs->rs, sizeof hs->rs);
    sodium_memzero(hs->re, sizeof hs->re);
    hs->has_rs = hs->has_re = false;
    hs->state = ST_FAILED;
    return rc;
}

int kith_noise_new(const kith_env *env, const char *protocol, bool initiator, kith_noise **out)
{
    *out = NULL;
    if (!env || !protocol)
        return KITH_EINVAL;
    size_t len = strnlen(protocol, MAX_NAME + 1);
    if (len > MAX_NAME)
        return KITH_EINVAL;
    kith_noise *hs = kith_calloc(env, 1, sizeof *hs);
    if (!hs)
        return KITH_ENOMEM;
    hs->env = env;
    hs->initiator = initiator;
    int rc = parse_protocol(hs, protocol, len);
    if (rc) {
        kith_free(env, hs);
        return rc;
    }
    /* InitializeSymmetric: a name of at most HASHLEN bytes is zero-padded,
     * a longer one hashed. */
    if (len <= KITH_NOISE_HASHLEN)
        memcpy(hs->h, protocol, len);
    else
        hash2(hs->h, (const uint8_t *)protocol, len, NULL, 0);
    memcpy(hs->ck, hs->h, sizeof hs->ck);
    hs->state = ST_RUN;
    *out = hs;
    return 0;
}

void kith_noise_free(kith_noise *hs)
{
    if (!hs)
        return;
    const kith_env *env = hs->env;
    sodium_memzero(hs, sizeof *hs);
    kith_free(env, hs);
}

static int check_setter(const kith_noise *hs)
{
    if (!hs)
        return KITH_EINVAL;
    if (hs->state != ST_RUN || hs->started)
        return KITH_ESTATE;
    return 0;
}

int kith_noise_set_prologue(kith_noise *hs, const uint8_t *p, size_t len)
{
    int rc = check_setter(hs);
    if (rc)
        return rc;
    if (hs->prologue_set || (len && !p))
        return KITH_EINVAL;
    mix_hash(hs, p, len);
    hs->prologue_set = true;
    return 0;
}

int kith_noise_set_s(kith_noise *hs, const uint8_t sk[32])
{
    int rc = check_setter(hs);
    if (rc)
        return rc;
    memcpy(hs->s_sk, sk, 32);
    crypto_scalarmult_base(hs->s_pk, hs->s_sk);
    hs->has_s = true;
    return 0;
}

int kith_noise_set_e(kith_noise *hs, const uint8_t sk[32])
{
    int rc = check_setter(hs);
    if (rc)
        return rc;
    memcpy(hs->e_sk, sk, 32);
    crypto_scalarmult_base(hs->e_pk, hs->e_sk);
    hs->has_e = true;
    return 0;
}

int kith_noise_set_rs(kith_noise *hs, const uint8_t pk[32])
{
    int rc = check_setter(hs);
    if (rc)
        return rc;
    memcpy(hs->rs, pk, 32);
    hs->has_rs = true;
    return 0;
}

/* Each call adds the next PSK; psk tokens consume them in order (a pattern
 * with "psk0+psk2" may take the same key twice or two keys). */
int kith_noise_set_psk(kith_noise *hs, const uint8_t psk[32])
{
    int rc = check_setter(hs);
    if (rc)
        return rc;
    if (hs->npsk >= MAX_PSKS)
        return KITH_EINVAL;
    memcpy(hs->psk[hs->npsk++], psk, 32);
    return 0;
}

/* Does this side's part of the pattern need key k ('s' local static)? */
static bool needs_local_s(const kith_noise *hs)
{
    if (hs->initiator ? hs->pre_i_s : hs->pre_r_s)
        return true;
    for (size_t m = 0; m < hs->nmsgs; m++) {
        bool mine = (m % 2 == 0) == hs->initiator;
        for (size_t i = 0; i < hs->ntok[m]; i++) {
            uint8_t t = hs->tok[m][i];
            if (t == T_S && mine)
                return true;
            if (t == T_SS)
                return true;
            /* es: initiator's e with responder's s; se: the reverse */
            if (t == T_ES && !hs->initiator)
                return true;
            if (t == T_SE && hs->initiator)
                return true;
        }
    }
    return false;
}

/* First message: MixHash(prologue), then the pre-message keys, initiator's
 * first. Checks this side has every key the pattern will use. */
static int start(kith_noise *hs)
{
    if (hs->started)
        return 0;
    if (needs_local_s(hs) && !hs->has_s)
        return KITH_EINVAL;
    bool remote_pre = hs->initiator ? hs->pre_r_s : hs->pre_i_s;
    if (remote_pre && !hs->has_rs)
        return KITH_EINVAL;
    if (hs->npsk < hs->psk_tokens)
        return KITH_EINVAL;
    if (!hs->prologue_set) {
        mix_hash(hs, NULL, 0);
        hs->prologue_set = true;
    }
    if (hs->pre_i_s)
        mix_hash(hs, hs->initiator ? hs->s_pk : hs->rs, 32);
    if (hs->pre_r_s)
        mix_hash(hs, hs->initiator ? hs->rs : hs->s_pk, 32);
    hs->started = true;
    return 0;
}

int kith_noise_action(const kith_noise *hs)
{
    switch (hs->state) {
    case ST_RUN:
        return ((hs->msg % 2 == 0) == hs->initiator) ? KITH_NOISE_WRITE : KITH_NOISE_READ;
    case ST_SPLIT:
        return KITH_NOISE_SPLIT;
    case ST_DONE:
        return KITH_NOISE_SPLIT; /* nothing left; split already taken */
    default:
        return KITH_NOISE_FAILED;
    }
}

/* Bytes the tokens of the next message add before the payload, and whether
 * the payload will be encrypted (a key is set by then). */
static void layout(const kith_noise *hs, size_t *fixed, bool *tagged)
{
    bool key = hs->cs.has_key;
    size_t n = 0;
    for (size_t i = 0; i < hs->ntok[hs->msg]; i++) {
        switch (hs->tok[hs->msg][i]) {
        case T_E:
            n += KITH_NOISE_DHLEN;
            if (hs->psk_mode)
                key = true;
            break;
        case T_S:
            n += KITH_NOISE_DHLEN + (key ? KITH_NOISE_TAG : 0);
            break;
        default:
            key = true;
            break;
        }
    }
    *fixed = n;
    *tagged = key;
}

/* DH for ee/es/se/ss, from this side's point of view; then MixKey. */
static int dh_token(kith_noise *hs, uint8_t t)
{
    const uint8_t *sk, *pk;
    bool have;
    switch (t) {
    case T_EE:
        sk = hs->e_sk, pk = hs->re, have = hs->has_e && hs->has_re;
        break;
    case T_ES:
        if (hs->initiator)
            sk = hs->e_sk, pk = hs->rs, have = hs->has_e && hs->has_rs;
        else
            sk = hs->s_sk, pk = hs->re, have = hs->has_s && hs->has_re;
        break;
    case T_SE:
        if (hs->initiator)
            sk = hs->s_sk, pk = hs->re, have = hs->has_s && hs->has_re;
        else
            sk = hs->e_sk, pk = hs->rs, have = hs->has_e && hs->has_rs;
        break;
    default: /* T_SS */
        sk = hs->s_sk, pk = hs->rs, have = hs->has_s && hs->has_rs;
        break;
    }
    if (!have)
        return KITH_ESTATE;
    uint8_t shared[KITH_NOISE_DHLEN];
    /* crypto_scalarmult fails on an all-zero result (a low-order point from
     * the peer): refuse it rather than mix a key an attacker can predict. */
    if (crypto_scalarmult(shared, sk, pk) != 0) {
        sodium_memzero(shared, sizeof shared);
        return KITH_ECRYPTO;
    }
    mix_key(hs, shared, sizeof shared);
    sodium_memzero(shared, sizeof shared);
    return 0;
}

static int psk_token(kith_noise *hs)
{
    if (hs->psk_used >= hs->npsk)
        return KITH_ESTATE;
    mix_key_and_hash(hs, hs->psk[hs->psk_used], 32);
    sodium_memzero(hs->psk[hs->psk_used], 32);
    hs->psk_used++;
    return 0;
}

static void message_done(kith_noise *hs)
{
    hs->msg++;
    if (hs->msg == hs->nmsgs)
        hs->state = ST_SPLIT;
}

int kith_noise_write_message(
    kith_noise *hs, const uint8_t *payload, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (!hs || (len && !payload) || !out || !outlen)
        return KITH_EINVAL;
    if (hs->state != ST_RUN || kith_noise_action(hs) != KITH_NOISE_WRITE)
        return KITH_ESTATE;
    int rc = start(hs);
    if (rc)
        return rc;
    size_t fixed;
    bool tagged;
    layout(hs, &fixed, &tagged);
    size_t tag = tagged ? KITH_NOISE_TAG : 0;
    if (len > KITH_NOISE_MAX_MSG || fixed + tag + len > KITH_NOISE_MAX_MSG)
        return KITH_ETOOBIG;
    if (fixed + tag + len > outcap)
        return KITH_ETOOBIG;

    size_t off = 0, n;
    for (size_t i = 0; i < hs->ntok[hs->msg]; i++) {
        uint8_t t = hs->tok[hs->msg][i];
        switch (t) {
        case T_E:
            if (!hs->has_e) {
                kith_random(hs->env, hs->e_sk, sizeof hs->e_sk);
                crypto_scalarmult_base(hs->e_pk, hs->e_sk);
                hs->has_e = true;
            }
            memcpy(out + off, hs->e_pk, 32);
            off += 32;
            mix_hash(hs, hs->e_pk, 32);
            if (hs->psk_mode)
                mix_key(hs, hs->e_pk, 32);
            break;
        case T_S:
            rc = encrypt_and_hash(hs, hs->s_pk, 32, out + off, outcap - off, &n);
            if (rc)
                return poison(hs, rc);
            off += n;
            break;
        case T_PSK:
            rc = psk_token(hs);
            if (rc)
                return poison(hs, rc);
            break;
        default:
            rc = dh_token(hs, t);
            if (rc)
                return poison(hs, rc);
            break;
        }
    }
    if (len)
        memmove(out + off, payload, len);
    rc = encrypt_and_hash(hs, out + off, len, out + off, outcap - off, &n);
    if (rc)
        return poison(hs, rc);
    *outlen = off + n;
    message_done(hs);
    return 0;
}

int kith_noise_read_message(
    kith_noise *hs, const uint8_t *msg, size_t len, uint8_t *payload, size_t cap, size_t *plen)
{
    if (!hs || (len && !msg) || (cap && !payload) || !plen)
        return KITH_EINVAL;
    if (hs->state != ST_RUN || kith_noise_action(hs) != KITH_NOISE_READ)
        return KITH_ESTATE;
    int rc = start(hs);
    if (rc)
        return rc;
    size_t fixed;
    bool tagged;
    layout(hs, &fixed, &tagged);
    size_t tag = tagged ? KITH_NOISE_TAG : 0;
    /* a message of the wrong size is the peer's fault: fail closed */
    if (len > KITH_NOISE_MAX_MSG || len < fixed + tag)
        return poison(hs, KITH_EPROTO);
    if (len - fixed - tag > cap)
        return KITH_ETOOBIG;

    size_t off = 0, n;
    uint8_t spk[32];
    for (size_t i = 0; i < hs->ntok[hs->msg]; i++) {
        uint8_t t = hs->tok[hs->msg][i];
        switch (t) {
        case T_E:
            if (hs->has_re)
                return poison(hs, KITH_ESTATE);
            memcpy(hs->re, msg + off, 32);
            hs->has_re = true;
            off += 32;
            mix_hash(hs, hs->re, 32);
            if (hs->psk_mode)
                mix_key(hs, hs->re, 32);
            break;
        case T_S: {
            size_t slen = 32 + (hs->cs.has_key ? KITH_NOISE_TAG : 0);
            if (hs->has_rs)
                return poison(hs, KITH_ESTATE);
            rc = decrypt_and_hash(hs, msg + off, slen, spk, sizeof spk, &n);
            if (rc || n != 32)
                return poison(hs, rc ? rc : KITH_EPROTO);
            memcpy(hs->rs, spk, 32);
            hs->has_rs = true;
            off += slen;
            break;
        }
        case T_PSK:
            rc = psk_token(hs);
            if (rc)
                return poison(hs, rc);
            break;
        default:
            rc = dh_token(hs, t);
            if (rc)
                return poison(hs, rc);
            break;
        }
    }
    rc = decrypt_and_hash(hs, msg + off, len - off, payload, cap, plen);
    if (rc) {
        if (cap)
            sodium_memzero(payload, KITH_MIN(cap, len - off));
        return poison(hs, rc);
    }
    message_done(hs);
    return 0;
}

int kith_noise_split(kith_noise *hs, kith_noise_cs *send, kith_noise_cs *recv)
{
    if (!hs || !send || !recv)
        return KITH_EINVAL;
    if (hs->state != ST_SPLIT)
        return KITH_ESTATE;
    uint8_t k1[KITH_NOISE_HASHLEN], k2[KITH_NOISE_HASHLEN];
    hkdf(hs->ck, NULL, 0, k1, k2, NULL);
    cs_init_key(hs->initiator ? send : recv, k1);
    cs_init_key(hs->initiator ? recv : send, k2);
    sodium_memzero(k1, sizeof k1);
    sodium_memzero(k2, sizeof k2);
    /* the handshake's secrets are no longer needed; keep h and rs */
    wipe_secrets(hs);
    hs->state = ST_DONE;
    return 0;
}

const uint8_t *kith_noise_handshake_hash(const kith_noise *hs)
{
    if (!hs || (hs->state != ST_SPLIT && hs->state != ST_DONE))
        return NULL;
    return hs->h;
}

const uint8_t *kith_noise_remote_static(const kith_noise *hs)
{
    if (!hs || hs->state == ST_FAILED || !hs->has_rs)
        return NULL;
    return hs->rs;
}
