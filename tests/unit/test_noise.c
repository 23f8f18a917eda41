/* test_noise: runs every cacophony vector in
 * ../shared/vectors/noise_25519_chachapoly_blake2b.json through the Noise
 * engine as initiator and responder (every handshake and transport
 * ciphertext, and the handshake hash), then hostile cases: tampering, bad
 * points, malformed protocol names, nonce exhaustion, poisoning. The JSON is
 * read by a small strict parser below, so the test needs no new dependency. */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session/noise.h"
#include "util/util.h"

/* ---- a small strict JSON reader ---- */

enum { J_NULL = 1, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jnode {
    int type;
    char *str; /* J_STR: NUL-terminated, unescaped */
    size_t len;
    struct jnode *kids; /* J_ARR elements, J_OBJ values */
    char **keys; /* J_OBJ keys */
    size_t n;
    bool b;
} jnode;

typedef struct jparser {
    const char *p, *end;
    int depth;
} jparser;

static void jskip(jparser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int jhex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int jstring(jparser *j, char **out, size_t *outlen)
{
    if (j->p >= j->end || *j->p != '"')
        return -1;
    j->p++;
    size_t cap = 16, len = 0;
    char *s = malloc(cap);
    if (!s)
        return -1;
    for (;;) {
        if (j->p >= j->end)
            goto bad;
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            goto bad;
        if (len + 4 >= cap) {
            cap *= 2;
            char *t = realloc(s, cap);
            if (!t)
                goto bad;
            s = t;
        }
        if (c != '\\') {
            s[len++] = (char)c;
            continue;
        }
        if (j->p >= j->end)
            goto bad;
        char e = *j->p++;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            s[len++] = e;
            break;
        case 'b':
            s[len++] = '\b';
            break;
        case 'f':
            s[len++] = '\f';
            break;
        case 'n':
            s[len++] = '\n';
            break;
        case 'r':
            s[len++] = '\r';
            break;
        case 't':
            s[len++] = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (j->end - j->p < 4 || jhex4(j->p, &cp) != 0 || cp >= 0x80)
                goto bad; /* the vectors are ASCII: refuse anything else */
            j->p += 4;
            s[len++] = (char)cp;
            break;
        }
        default:
            goto bad;
        }
    }
    s[len] = '\0';
    *out = s;
    *outlen = len;
    return 0;
bad:
    free(s);
    return -1;
}

static void jfree(jnode *n);

static int jvalue(jparser *j, jnode *out)
{
    memset(out, 0, sizeof *out);
    if (++j->depth > 32)
        return -1;
    jskip(j);
    if (j->p >= j->end)
        return -1;
    int rc = -1;
    char c = *j->p;
    if (c == '"') {
        out->type = J_STR;
        rc = jstring(j, &out->str, &out->len);
    } else if (c == '{' || c == '[') {
        bool obj = c == '{';
        out->type = obj ? J_OBJ : J_ARR;
        j->p++;
        jskip(j);
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            rc = 0;
        } else {
            for (;;) {
                char *key = NULL;
                size_t klen;
                if (obj) {
                    jskip(j);
                    if (jstring(j, &key, &klen) != 0)
                        break;
                    jskip(j);
                    if (j->p >= j->end || *j->p != ':') {
                        free(key);
                        break;
                    }
                    j->p++;
                }
                jnode *k = realloc(out->kids, (out->n + 1) * sizeof *k);
                char **ks = obj ? realloc(out->keys, (out->n + 1) * sizeof *ks) : NULL;
                if (k)
                    out->kids = k;
                if (ks)
                    out->keys = ks;
                if (!k || (obj && !ks)) {
                    free(key);
                    break;
                }
                if (obj)
                    out->keys[out->n] = key;
                int vr = jvalue(j, &out->kids[out->n]);
                out->n++;
                if (vr != 0)
                    break;
                jskip(j);
                if (j->p >= j->end)
                    break;
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                if (*j->p == (obj ? '}' : ']')) {
                    j->p++;
                    rc = 0;
                }
                break;
            }
        }
    } else if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
        out->type = J_BOOL, out->b = true, j->p += 4, rc = 0;
    } else if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
        out->type = J_BOOL, j->p += 5, rc = 0;
    } else if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        out->type = J_NULL, j->p += 4, rc = 0;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        out->type = J_NUM;
        if (*j->p == '-')
            j->p++;
        const char *d = j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
        rc = j->p > d ? 0 : -1; /* integers only: the vectors need no more */
    }
    j->depth--;
    return rc;
}

static void jfree(jnode *n)
{
    free(n->str);
    for (size_t i = 0; i < n->n; i++) {
        jfree(&n->kids[i]);
        if (n->keys)
            free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
}

static int jparse(const char *text, size_t len, jnode *out)
{
    jparser j = { text, text + len, 0 };
    int rc = jvalue(&j, out);
    jskip(&j);
    if (rc == 0 && j.p != j.end)
        rc = -1; /* trailing garbage */
    if (rc != 0)
        jfree(out);
    return rc;
}

static const jnode *jget(const jnode *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->kids[i];
    return NULL;
}

/* ---- helpers ---- */

/* Hex string field to fresh bytes; returns -1 when absent or malformed. */
static int hexfield(const jnode *v, uint8_t **out, size_t *len)
{
    if (!v || v->type != J_STR || v->len % 2)
        return -1;
    *len = v->len / 2;
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return -1;
    if (kith_unhex(*out, *len, v->str, v->len) != 0) {
        free(*out);
        return -1;
    }
    return 0;
}

static int key32(const jnode *vec, const char *name, uint8_t out[32], bool *have)
{
    const jnode *v = jget(vec, name);
    *have = false;
    if (!v)
        return 0;
    uint8_t *b;
    size_t n;
    if (hexfield(v, &b, &n) != 0)
        return -1;
    if (n != 32) {
        free(b);
        return -1;
    }
    memcpy(out, b, 32);
    free(b);
    *have = true;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *t = realloc(buf, cap);
        if (!t)
            free(buf);
        buf = t;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Sets up one side from the vector's init_ or resp_ fields. */
static int setup_side(
    const kith_env *env, const jnode *vec, const char *proto, bool initiator, kith_noise **out)
{
    const char *pfx = initiator ? "init_" : "resp_";
    char name[64];
    int rc = kith_noise_new(env, proto, initiator, out);
    if (rc)
        return rc;
    kith_noise *hs = *out;
    uint8_t *b;
    size_t n;
    snprintf(name, sizeof name, "%sprologue", pfx);
    if (jget(vec, name)) {
        if (hexfield(jget(vec, name), &b, &n) != 0)
            return -100;
        rc = kith_noise_set_prologue(hs, b, n);
        free(b);
        if (rc)
            return rc;
    }
    snprintf(name, sizeof name, "%spsks", pfx);
    const jnode *psks = jget(vec, name);
    if (psks) {
        if (psks->type != J_ARR)
            return -100;
        for (size_t i = 0; i < psks->n; i++) {
            if (hexfield(&psks->kids[i], &b, &n) != 0 || n != 32)
                return -100;
            rc = kith_noise_set_psk(hs, b);
            free(b);
            if (rc)
                return rc;
        }
    }
    uint8_t k[32];
    bool have;
    snprintf(name, sizeof name, "%sstatic", pfx);
    if (key32(vec, name, k, &have) != 0)
        return -100;
    if (have && (rc = kith_noise_set_s(hs, k)) != 0)
        return rc;
    snprintf(name, sizeof name, "%sephemeral", pfx);
    if (key32(vec, name, k, &have) != 0)
        return -100;
    if (have && (rc = kith_noise_set_e(hs, k)) != 0)
        return rc;
    snprintf(name, sizeof name, "%sremote_static", pfx);
    if (key32(vec, name, k, &have) != 0)
        return -100;
    if (have && (rc = kith_noise_set_rs(hs, k)) != 0)
        return rc;
    return 0;
}

static bool one_way(const char *proto)
{
    /* "Noise_N_", "Noise_K_", "Noise_X_" and their psk variants */
    const char *p = proto + 6;
    return (p[0] == 'N' || p[0] == 'K' || p[0] == 'X') && (p[1] == '_' || p[1] == 'p');
}

/* Runs one vector; returns 0 when every byte matched. why says what did not. */
static int run_vector(const kith_env *env, const jnode *vec, char *why, size_t whylen)
{
    const jnode *pn = jget(vec, "protocol_name");
    const jnode *msgs = jget(vec, "messages");
    if (!pn || pn->type != J_STR || !msgs || msgs->type != J_ARR || msgs->n == 0) {
        snprintf(why, whylen, "malformed vector");
        return -1;
    }
    uint8_t *hh = NULL;
    size_t hhlen = 0;
    if (hexfield(jget(vec, "handshake_hash"), &hh, &hhlen) != 0 || hhlen != 64) {
        snprintf(why, whylen, "missing handshake_hash");
        if (hh)
            free(hh);
        return -1;
    }
    kith_noise *ini = NULL, *res = NULL;
    kith_noise_cs c[2][2]; /* [side][0 send, 1 recv] */
    int result = -1, rc;
    bool split = false;
    uint8_t out[KITH_NOISE_MAX_MSG], pt[KITH_NOISE_MAX_MSG];
    if ((rc = setup_side(env, vec, pn->str, true, &ini)) != 0
        || (rc = setup_side(env, vec, pn->str, false, &res)) != 0) {
        snprintf(why, whylen, "setup failed: %d", rc);
        goto done;
    }
    bool oneway = one_way(pn->str);
    for (size_t i = 0; i < msgs->n; i++) {
        uint8_t *payload = NULL, *ct = NULL;
        size_t plen, ctlen, olen, rlen;
        if (hexfield(jget(&msgs->kids[i], "payload"), &payload, &plen) != 0
            || hexfield(jget(&msgs->kids[i], "ciphertext"), &ct, &ctlen) != 0) {
            free(payload);
            snprintf(why, whylen, "message %zu malformed", i);
            goto done;
        }
        bool from_init = oneway || i % 2 == 0;
        kith_noise *snd = from_init ? ini : res, *rcv = from_init ? res : ini;
        int ok = -1;
        if (!split) {
            if (kith_noise_action(snd) != KITH_NOISE_WRITE
                || kith_noise_action(rcv) != KITH_NOISE_READ) {
                snprintf(why, whylen, "message %zu: unexpected action", i);
            } else if ((rc = kith_noise_write_message(snd, payload, plen, out, sizeof out, &olen))
                != 0) {
                snprintf(why, whylen, "message %zu: write %d", i, rc);
            } else if (olen != ctlen || memcmp(out, ct, ctlen) != 0) {
                snprintf(why, whylen, "message %zu: handshake ciphertext differs", i);
            } else if ((rc = kith_noise_read_message(rcv, out, olen, pt, sizeof pt, &rlen)) != 0) {
                snprintf(why, whylen, "message %zu: read %d", i, rc);
            } else if (rlen != plen || memcmp(pt, payload, plen) != 0) {
                snprintf(why, whylen, "message %zu: handshake payload differs", i);
            } else {
                ok = 0;
            }
            if (ok == 0 && kith_noise_action(ini) == KITH_NOISE_SPLIT) {
                const uint8_t *h1 = kith_noise_handshake_hash(ini);
                const uint8_t *h2 = kith_noise_handshake_hash(res);
                if (kith_noise_action(res) != KITH_NOISE_SPLIT) {
                    snprintf(why, whylen, "responder not done");
                    ok = -1;
                } else if (!h1 || !h2 || memcmp(h1, hh, 64) != 0 || memcmp(h2, hh, 64) != 0) {
                    snprintf(why, whylen, "handshake hash differs");
                    ok = -1;
                } else if (kith_noise_split(ini, &c[0][0], &c[0][1]) != 0
                    || kith_noise_split(res, &c[1][0], &c[1][1]) != 0) {
                    snprintf(why, whylen, "split failed");
                    ok = -1;
                }
                split = true;
            }
        } else {
            kith_noise_cs *es = &c[from_init ? 0 : 1][0], *ds = &c[from_init ? 1 : 0][1];
            if ((rc = kith_noise_cs_encrypt(es, NULL, 0, payload, plen, out, sizeof out, &olen))
                != 0) {
                snprintf(why, whylen, "message %zu: encrypt %d", i, rc);
            } else if (olen != ctlen || memcmp(out, ct, ctlen) != 0) {
                snprintf(why, whylen, "message %zu: transport ciphertext differs", i);
            } else if ((rc = kith_noise_cs_decrypt(ds, NULL, 0, out, olen, pt, sizeof pt, &rlen))
                != 0) {
                snprintf(why, whylen, "message %zu: decrypt %d", i, rc);
            } else if (rlen != plen || memcmp(pt, payload, plen) != 0) {
                snprintf(why, whylen, "message %zu: transport payload differs", i);
            } else {
                ok = 0;
            }
        }
        free(payload);
        free(ct);
        if (ok != 0)
            goto done;
    }
    if (!split) {
        snprintf(why, whylen, "handshake never finished");
        goto done;
    }
    result = 0;
done:
    free(hh);
    kith_noise_free(ini);
    kith_noise_free(res);
    return result;
}

static void test_vectors(void **state)
{
    (void)state;
    char path[1024];
    snprintf(
        path, sizeof path, "%s/vectors/noise_25519_chachapoly_blake2b.json", test_shared_dir());
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text)
        fail_msg("cannot read %s", path);
    jnode root;
    assert_int_equal(jparse(text, len, &root), 0);
    free(text);
    const jnode *vecs = jget(&root, "vectors");
    assert_non_null(vecs);
    assert_int_equal(vecs->type, J_ARR);

    test_env t;
    test_env_init(&t, 1);
    size_t ran = 0, failed = 0;
    for (size_t i = 0; i < vecs->n; i++) {
        char why[200] = "";
        const jnode *pn = jget(&vecs->kids[i], "protocol_name");
        if (run_vector(&t.env, &vecs->kids[i], why, sizeof why) != 0) {
            failed++;
            fprintf(stderr, "FAIL %s: %s\n", pn && pn->str ? pn->str : "?", why);
        }
        ran++;
    }
    jfree(&root);
    printf("noise vectors: %zu run, %zu failed\n", ran, failed);
    assert_int_equal(failed, 0);
    assert_true(ran >= 59);
    assert_int_equal(t.allocs, 0);
}

/* ---- the JSON reader refuses what it should ---- */

static void test_json_strict(void **state)
{
    (void)state;
    static const char *bad[] = { "", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "[1] x", "\"abc",
        "\"\\q\"", "{\"a\":tru}", "[\"\x01\"]" };
    for (size_t i = 0; i < KITH_ARRAY_LEN(bad); i++) {
        jnode n;
        assert_int_not_equal(jparse(bad[i], strlen(bad[i]), &n), 0);
    }
    jnode n;
    const char *good = " {\"a\": [\"x\\n\", 12, true, null], \"b\": {}} ";
    assert_int_equal(jparse(good, strlen(good), &n), 0);
    assert_non_null(jget(&n, "a"));
    assert_int_equal(jget(&n, "a")->n, 4);
    assert_string_equal(jget(&n, "a")->kids[0].str, "x\n");
    jfree(&n);
}

/* ---- engine behaviour beyond the vectors ---- */

static void keys(uint8_t *sk, uint8_t v)
{
    memset(sk, v, 32);
}

/* A full XX handshake with env randomness for the ephemerals. */
static void xx_pair(const kith_env *env, kith_noise **pi, kith_noise **pr)
{
    uint8_t s1[32], s2[32];
    keys(s1, 1);
    keys(s2, 2);
    assert_int_equal(kith_noise_new(env, "Noise_XX_25519_ChaChaPoly_BLAKE2b", true, pi), 0);
    assert_int_equal(kith_noise_new(env, "Noise_XX_25519_ChaChaPoly_BLAKE2b", false, pr), 0);
    assert_int_equal(kith_noise_set_s(*pi, s1), 0);
    assert_int_equal(kith_noise_set_s(*pr, s2), 0);
}

static void test_random_xx(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 7);
    kith_noise *a, *b;
    xx_pair(&t.env, &a, &b);
    uint8_t m[512], p[512];
    size_t n, pl;
    assert_int_equal(kith_noise_write_message(a, (const uint8_t *)"hi", 2, m, sizeof m, &n), 0);
    assert_int_equal(n, 34); /* e + cleartext payload */
    assert_int_equal(kith_noise_read_message(b, m, n, p, sizeof p, &pl), 0);
    assert_int_equal(pl, 2);
    assert_int_equal(kith_noise_write_message(b, NULL, 0, m, sizeof m, &n), 0);
    assert_int_equal(n, 32 + 48 + 16);
    assert_int_equal(kith_noise_read_message(a, m, n, p, sizeof p, &pl), 0);
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), 0);
    assert_int_equal(n, 48 + 16);
    assert_int_equal(kith_noise_read_message(b, m, n, p, sizeof p, &pl), 0);
    assert_int_equal(kith_noise_action(a), KITH_NOISE_SPLIT);
    assert_int_equal(kith_noise_action(b), KITH_NOISE_SPLIT);
    assert_memory_equal(kith_noise_handshake_hash(a), kith_noise_handshake_hash(b), 64);
    uint8_t s2pk[32], s2[32];
    keys(s2, 2);
    crypto_scalarmult_base(s2pk, s2);
    assert_memory_equal(kith_noise_remote_static(a), s2pk, 32);

    kith_noise_cs as, ar, bs, br;
    assert_int_equal(kith_noise_split(a, &as, &ar), 0);
    assert_int_equal(kith_noise_split(b, &bs, &br), 0);
    assert_int_equal(kith_noise_split(a, &as, &ar), KITH_ESTATE);
    assert_memory_equal(as.k, br.k, 32);
    assert_memory_equal(ar.k, bs.k, 32);
    assert_memory_not_equal(as.k, ar.k, 32);
    /* writing after the end is refused */
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), KITH_ESTATE);
    kith_noise_free(a);
    kith_noise_free(b);
    assert_int_equal(t.allocs, 0);
}

static void test_tamper_poisons(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 8);
    for (size_t pos = 0; pos < 96; pos += 5) {
        kith_noise *a, *b;
        xx_pair(&t.env, &a, &b);
        uint8_t m[512], p[512];
        size_t n, pl;
        assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), 0);
        assert_int_equal(kith_noise_read_message(b, m, n, p, sizeof p, &pl), 0);
        assert_int_equal(kith_noise_write_message(b, NULL, 0, m, sizeof m, &n), 0);
        m[pos] ^= 0x01;
        int rc = kith_noise_read_message(a, m, n, p, sizeof p, &pl);
        /* flipping a bit of e changes every key after it; of s or the
         * payload, the tag */
        assert_int_equal(rc, KITH_ECRYPTO);
        assert_int_equal(kith_noise_action(a), KITH_NOISE_FAILED);
        assert_null(kith_noise_remote_static(a));
        assert_null(kith_noise_handshake_hash(a));
        m[pos] ^= 0x01;
        assert_int_equal(kith_noise_read_message(a, m, n, p, sizeof p, &pl), KITH_ESTATE);
        assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), KITH_ESTATE);
        kith_noise_free(a);
        kith_noise_free(b);
    }
    assert_int_equal(t.allocs, 0);
}

static void test_short_message_poisons(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 9);
    kith_noise *a, *b;
    xx_pair(&t.env, &a, &b);
    uint8_t m[512], p[512];
    size_t n, pl;
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), 0);
    assert_int_equal(kith_noise_read_message(b, m, 31, p, sizeof p, &pl), KITH_EPROTO);
    assert_int_equal(kith_noise_action(b), KITH_NOISE_FAILED);
    assert_int_equal(kith_noise_read_message(b, m, n, p, sizeof p, &pl), KITH_ESTATE);
    kith_noise_free(b);
    /* a message longer than the Noise maximum is refused */
    static uint8_t big[KITH_NOISE_MAX_MSG + 2];
    kith_noise *c;
    assert_int_equal(kith_noise_new(&t.env, "Noise_NN_25519_ChaChaPoly_BLAKE2b", false, &c), 0);
    assert_int_equal(
        kith_noise_read_message(c, big, sizeof big, big, sizeof big, &pl), KITH_EPROTO);
    kith_noise_free(c);
    kith_noise_free(a);
    /* a payload that cannot fit the Noise maximum is refused without harm */
    assert_int_equal(kith_noise_new(&t.env, "Noise_NN_25519_ChaChaPoly_BLAKE2b", true, &c), 0);
    assert_int_equal(
        kith_noise_write_message(c, big, KITH_NOISE_MAX_MSG - 31, m, sizeof m, &n), KITH_ETOOBIG);
    assert_int_equal(kith_noise_action(c), KITH_NOISE_WRITE);
    assert_int_equal(
        kith_noise_write_message(c, big, KITH_NOISE_MAX_MSG - 32, big, sizeof big, &n), 0);
    assert_int_equal(n, KITH_NOISE_MAX_MSG);
    kith_noise_free(c);
    assert_int_equal(t.allocs, 0);
}

/* A peer's ephemeral that is a low-order point gives an all-zero DH result:
 * refused, and the state is poisoned. */
static void test_low_order_point(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 10);
    kith_noise *b;
    assert_int_equal(kith_noise_new(&t.env, "Noise_NN_25519_ChaChaPoly_BLAKE2b", false, &b), 0);
    uint8_t m[64] = { 0 }, p[64], out[128];
    size_t pl, n;
    assert_int_equal(kith_noise_read_message(b, m, 32, p, sizeof p, &pl), 0);
    assert_int_equal(kith_noise_write_message(b, NULL, 0, out, sizeof out, &n), KITH_ECRYPTO);
    assert_int_equal(kith_noise_action(b), KITH_NOISE_FAILED);
    kith_noise_free(b);
    assert_int_equal(t.allocs, 0);
}

static void test_protocol_names(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 11);
    static const char *bad[] = {
        "Noise_XX_25519_AESGCM_SHA256",
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_QQ_25519_ChaChaPoly_BLAKE2b",
        "Noise__25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk4_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk0+psk0_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk0+_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk00_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXfallback_25519_ChaChaPoly_BLAKE2b",
        "Noise_Npsk2_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly_BLAKE2b_",
        "XX_25519_ChaChaPoly_BLAKE2b",
        "",
    };
    for (size_t i = 0; i < KITH_ARRAY_LEN(bad); i++) {
        kith_noise *hs = (kith_noise *)1;
        assert_int_equal(kith_noise_new(&t.env, bad[i], true, &hs), KITH_EINVAL);
        assert_null(hs);
    }
    static const char *good[] = {
        "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b",
        "Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2b",
        "Noise_X1K1_25519_ChaChaPoly_BLAKE2b",
        "Noise_I1X1psk0+psk1+psk2+psk3_25519_ChaChaPoly_BLAKE2b",
    };
    for (size_t i = 0; i < KITH_ARRAY_LEN(good); i++) {
        kith_noise *hs;
        assert_int_equal(kith_noise_new(&t.env, good[i], true, &hs), 0);
        kith_noise_free(hs);
    }
    assert_int_equal(t.allocs, 0);
}

/* Two psk modifiers: both sides agree only with the same keys in order. */
static void test_multi_psk(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 12);
    const char *proto = "Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2b";
    for (int mismatch = 0; mismatch < 2; mismatch++) {
        kith_noise *a, *b;
        uint8_t k1[32], k2[32], m[256], p[256];
        size_t n, pl;
        keys(k1, 0x11);
        keys(k2, 0x22);
        assert_int_equal(kith_noise_new(&t.env, proto, true, &a), 0);
        assert_int_equal(kith_noise_new(&t.env, proto, false, &b), 0);
        /* a psk is required before the first message */
        assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), KITH_EINVAL);
        assert_int_equal(kith_noise_set_psk(a, k1), 0);
        assert_int_equal(kith_noise_set_psk(a, k2), 0);
        assert_int_equal(kith_noise_set_psk(b, k1), 0);
        assert_int_equal(kith_noise_set_psk(b, mismatch ? k1 : k2), 0);
        assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), 0);
        assert_int_equal(kith_noise_read_message(b, m, n, p, sizeof p, &pl), 0);
        assert_int_equal(kith_noise_write_message(b, NULL, 0, m, sizeof m, &n), 0);
        int rc = kith_noise_read_message(a, m, n, p, sizeof p, &pl);
        if (mismatch) {
            assert_int_equal(rc, KITH_ECRYPTO);
        } else {
            assert_int_equal(rc, 0);
            assert_memory_equal(kith_noise_handshake_hash(a), kith_noise_handshake_hash(b), 64);
        }
        kith_noise_free(a);
        kith_noise_free(b);
    }
    assert_int_equal(t.allocs, 0);
}

static void test_missing_keys_and_setters(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 13);
    kith_noise *a;
    uint8_t m[256], k[32];
    size_t n;
    keys(k, 3);
    /* IK needs the responder's static key as a pre-message */
    assert_int_equal(kith_noise_new(&t.env, "Noise_IK_25519_ChaChaPoly_BLAKE2b", true, &a), 0);
    assert_int_equal(kith_noise_set_s(a, k), 0);
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), KITH_EINVAL);
    assert_int_equal(kith_noise_set_rs(a, k), 0);
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, 10, &n), KITH_ETOOBIG);
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), 0);
    assert_int_equal(n, 32 + 48 + 16);
    /* setters after the first message are refused */
    assert_int_equal(kith_noise_set_prologue(a, k, 3), KITH_ESTATE);
    assert_int_equal(kith_noise_set_e(a, k), KITH_ESTATE);
    /* not our turn */
    assert_int_equal(kith_noise_write_message(a, NULL, 0, m, sizeof m, &n), KITH_ESTATE);
    kith_noise_free(a);
    /* XX responder without s */
    assert_int_equal(kith_noise_new(&t.env, "Noise_XX_25519_ChaChaPoly_BLAKE2b", false, &a), 0);
    assert_int_equal(kith_noise_read_message(a, m, 32, m, sizeof m, &n), KITH_EINVAL);
    kith_noise_free(a);
    assert_int_equal(t.allocs, 0);
}

static void test_cs_nonce_and_tag(void **state)
{
    (void)state;
    kith_noise_cs a, b;
    memset(&a, 0, sizeof a);
    memset(a.k, 0x42, 32);
    a.has_key = true;
    b = a;
    uint8_t buf[64], out[64];
    size_t n, pl;
    memset(buf, 7, sizeof buf);
    /* in-place encryption and decryption */
    assert_int_equal(kith_noise_cs_encrypt(&a, NULL, 0, buf, 10, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 26);
    assert_int_equal(kith_noise_cs_decrypt(&b, NULL, 0, buf, n, buf, sizeof buf, &pl), 0);
    assert_int_equal(pl, 10);
    assert_int_equal(buf[9], 7);
    /* bad tag: refused, nonce not advanced */
    assert_int_equal(kith_noise_cs_encrypt(&a, NULL, 0, buf, 10, out, sizeof out, &n), 0);
    out[3] ^= 1;
    assert_int_equal(
        kith_noise_cs_decrypt(&b, NULL, 0, out, n, buf, sizeof buf, &pl), KITH_ECRYPTO);
    assert_int_equal(b.n, 1);
    assert_int_equal(
        kith_noise_cs_decrypt(&b, NULL, 0, out, 15, buf, sizeof buf, &pl), KITH_EPROTO);
    /* nonce 2^64-2 is the last usable one */
    a.n = UINT64_MAX - 1;
    assert_int_equal(kith_noise_cs_encrypt(&a, NULL, 0, buf, 1, out, sizeof out, &n), 0);
    assert_int_equal(kith_noise_cs_encrypt(&a, NULL, 0, buf, 1, out, sizeof out, &n), KITH_ESTATE);
    /* output too small */
    b.n = 0;
    assert_int_equal(kith_noise_cs_encrypt(&b, NULL, 0, buf, 10, out, 25, &n), KITH_ETOOBIG);
    /* a wiped state never falls back to plaintext */
    kith_noise_cs_wipe(&b);
    assert_int_equal(kith_noise_cs_encrypt(&b, NULL, 0, buf, 1, out, sizeof out, &n), KITH_ESTATE);
    assert_int_equal(kith_noise_cs_decrypt(&b, NULL, 0, out, 17, buf, sizeof buf, &n), KITH_ESTATE);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strict),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_random_xx),
        cmocka_unit_test(test_tamper_poisons),
        cmocka_unit_test(test_short_message_poisons),
        cmocka_unit_test(test_low_order_point),
        cmocka_unit_test(test_protocol_names),
        cmocka_unit_test(test_multi_psk),
        cmocka_unit_test(test_missing_keys_and_setters),
        cmocka_unit_test(test_cs_nonce_and_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
