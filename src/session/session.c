/* session: one kith connection between two nodes (see session.h for the
 * contract). Runs Noise_XX over a byte stream: frames every Noise message
 * with a 2-byte big-endian length, carries each side's identity certificate
 * in handshake messages 2 and 3, and after the handshake splits application
 * messages into flagged fragments and reassembles them.
 *
 * Every length from the peer is checked before a byte is buffered: during
 * the handshake each frame must have the one size its message has; after it,
 * a frame must hold at least a flag byte and a tag. The only buffers are the
 * fixed 65535-byte frame buffer and the reassembly buffer, which grows only
 * with authenticated plaintext and is capped at KITH_SESSION_MAX_APP. Any
 * failure poisons the session (keys wiped, KITH_ESTATE afterwards). */
#include "session/session.h"

#include <sodium.h>
#include <string.h>

#include "session/noise.h"
#include "wire/wire.h"

#define PROTOCOL "Noise_XX_25519_ChaChaPoly_BLAKE2b"

/* Certificate payload: fixmap(2), 1 => bin8(32), 2 => bin8(64). */
#define CERT_LEN (1 + 1 + 2 + KITH_ID_LEN + 1 + 2 + KITH_SIG_LEN) /* 103 */
#define MSG1_LEN KITH_NOISE_DHLEN /* e, empty cleartext payload */
#define MSG2_LEN (KITH_NOISE_DHLEN + KITH_NOISE_DHLEN + KITH_NOISE_TAG + CERT_LEN + KITH_NOISE_TAG)
#define MSG3_LEN (KITH_NOISE_DHLEN + KITH_NOISE_TAG + CERT_LEN + KITH_NOISE_TAG)

/* Transport frame: flag byte + chunk + tag within one Noise message. */
#define FRAG_MAX (KITH_NOISE_MAX_MSG - KITH_NOISE_TAG - 1) /* 65518 */
#define FRAG_MORE 1
#define FRAG_LAST 0

/* Input kept when the message callback stops feeding: the caller's bytes,
 * not the peer's declared lengths, bound it. */
#define PENDING_MAX ((size_t)1 << 26)

enum sess_state { S_HANDSHAKE = 1, S_ESTABLISHED, S_FAILED };

struct kith_session {
    const kith_env *env;
    const kith_identity *self;
    bool initiator;
    bool started;
    int state;
    int step; /* handshake messages processed so far (0..3) */
    kith_noise *hs;
    kith_noise_cs send, recv;
    kith_session_peer_cb peer_check; /* initiator: before message 3 */
    void *peer_check_ud;

    uint8_t peer_id[KITH_ID_LEN];
    uint8_t peer_dh[KITH_DH_LEN];
    uint8_t binding[KITH_NOISE_HASHLEN];

    /* input framing */
    uint8_t hdr[2];
    size_t hdr_have;
    size_t frame_len;
    size_t frame_have;
    kith_buf reasm;
    kith_buf pending;
    uint8_t frame[KITH_NOISE_MAX_MSG];
};

static int fail(kith_session *s, int rc)
{
    if (s->state != S_FAILED)
        KITH_LOGD(s->env, "session: failed closed: %s", kith_strerror(rc));
    kith_noise_free(s->hs);
    s->hs = NULL;
    kith_noise_cs_wipe(&s->send);
    kith_noise_cs_wipe(&s->recv);
    kith_buf_free(&s->reasm);
    kith_buf_free(&s->pending);
    sodium_memzero(s->frame, sizeof s->frame);
    sodium_memzero(s->binding, sizeof s->binding);
    s->state = S_FAILED;
    return rc;
}

int kith_session_new(
    const kith_env *env, const kith_identity *self, bool initiator, kith_session **out)
{
    *out = NULL;
    if (!env || !self)
        return KITH_EINVAL;
    kith_session *s = kith_calloc(env, 1, sizeof *s);
    if (!s)
        return KITH_ENOMEM;
    s->env = env;
    s->self = self;
    s->initiator = initiator;
    s->state = S_HANDSHAKE;
    kith_buf_init(&s->reasm, env, KITH_SESSION_MAX_APP);
    kith_buf_init(&s->pending, env, PENDING_MAX);
    int rc = kith_noise_new(env, PROTOCOL, initiator, &s->hs);
    if (rc == 0)
        rc = kith_noise_set_prologue(
            s->hs, (const uint8_t *)KITH_SESSION_PROLOGUE, sizeof KITH_SESSION_PROLOGUE - 1);
    if (rc == 0)
        rc = kith_noise_set_s(s->hs, self->dh_sk);
    if (rc) {
        kith_session_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void kith_session_free(kith_session *s)
{
    if (!s)
        return;
    const kith_env *env = s->env;
    kith_noise_free(s->hs);
    kith_buf_free(&s->reasm);
    kith_buf_free(&s->pending);
    sodium_memzero(s, sizeof *s);
    kith_free(env, s);
}

/* ---- certificate payload ---- */

static int cert_encode(const kith_session *s, kith_buf *b)
{
    kith_wire_writer w;
    kith_wire_writer_init(&w, b);
    kith_wire_map(&w, 2);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, s->self->id_pk, KITH_ID_LEN);
    kith_wire_uint(&w, 2);
    kith_wire_bin(&w, s->self->cert_sig, KITH_SIG_LEN);
    int rc = kith_wire_finish(&w);
    if (rc == 0 && b->len != CERT_LEN)
        rc = KITH_EPROTO;
    return rc;
}

/* Parse the peer's certificate and check that its id signed the Noise
 * static key this handshake authenticated: otherwise anyone could claim
 * any member id over their own static key. */
static int cert_check(kith_session *s, const uint8_t *p, size_t len)
{
    const uint8_t *rs = kith_noise_remote_static(s->hs);
    if (!rs || len != CERT_LEN)
        return KITH_EPROTO;
    kith_wire_doc *doc = kith_malloc(s->env, sizeof *doc);
    if (!doc)
        return KITH_ENOMEM;
    uint8_t id[KITH_ID_LEN], sig[KITH_SIG_LEN];
    int rc = kith_wire_parse(s->env, p, len, CERT_LEN, KITH_WIRE_CANONICAL, doc);
    if (rc == 0) {
        const kith_wire_node *root = kith_wire_root(doc);
        if (root->type != KITH_WIRE_MAP || root->n != 2)
            rc = KITH_EPROTO;
    }
    if (rc == 0)
        rc = kith_wire_get_fixed(doc, kith_wire_root(doc), 1, id, sizeof id);
    if (rc == 0)
        rc = kith_wire_get_fixed(doc, kith_wire_root(doc), 2, sig, sizeof sig);
    kith_free(s->env, doc);
    if (rc)
        return rc == KITH_ENOMEM ? rc : KITH_EPROTO;
    rc = kith_cert_verify(s->env, id, rs, sig);
    if (rc)
        return KITH_ECRYPTO;
    memcpy(s->peer_id, id, sizeof id);
    memcpy(s->peer_dh, rs, KITH_DH_LEN);
    return 0;
}

/* ---- handshake ---- */

/* Append one framed handshake message, or nothing. */
static int write_hs(kith_session *s, const uint8_t *payload, size_t plen, kith_buf *out)
{
    uint8_t msg[MSG2_LEN];
    size_t n;
    int rc = kith_buf_reserve(out, 2 + sizeof msg);
    if (rc)
        return rc;
    rc = kith_noise_write_message(s->hs, payload, plen, msg, sizeof msg, &n);
    if (rc)
        return rc;
    uint8_t hdr[2];
    kith_put_be16(hdr, (uint16_t)n);
    rc = kith_buf_append(out, hdr, 2);
    if (rc == 0)
        rc = kith_buf_append(out, msg, n); /* reserved above: cannot fail */
    return rc;
}

static int establish(kith_session *s)
{
    const uint8_t *h = kith_noise_handshake_hash(s->hs);
    if (!h)
        return KITH_ESTATE;
    memcpy(s->binding, h, sizeof s->binding);
    int rc = kith_noise_split(s->hs, &s->send, &s->recv);
    if (rc)
        return rc;
    kith_noise_free(s->hs);
    s->hs = NULL;
    s->state = S_ESTABLISHED;
    return 0;
}

/* Size of the next handshake message we expect, 0 when none. */
static size_t expected_hs_len(const kith_session *s)
{
    if (s->initiator)
        return s->started && s->step == 1 ? MSG2_LEN : 0;
    return s->step == 0 ? MSG1_LEN : s->step == 2 ? MSG3_LEN : 0;
}

/* Our handshake payload: the certificate, encoded with the wire module. */
static int write_cert(kith_session *s, kith_buf *out)
{
    kith_buf cert;
    kith_buf_init(&cert, s->env, CERT_LEN + 8);
    int rc = cert_encode(s, &cert);
    if (rc == 0)
        rc = write_hs(s, cert.data, cert.len, out);
    kith_buf_free(&cert);
    if (rc == 0)
        s->step++;
    return rc;
}

static int handle_hs(kith_session *s, const uint8_t *msg, size_t len, kith_buf *out)
{
    uint8_t payload[CERT_LEN];
    size_t plen;
    int rc = kith_noise_read_message(s->hs, msg, len, payload, sizeof payload, &plen);
    if (rc)
        return rc;
    s->step++;
    if (!s->initiator && s->step == 1) {
        if (plen != 0)
            return KITH_EPROTO; /* message 1 carries nothing */
        return write_cert(s, out);
    }
    rc = cert_check(s, payload, plen);
    /* The responder is who its certificate says; we have not said who we
     * are yet. The caller decides whether this responder may know. */
    if (rc == 0 && s->initiator && s->peer_check)
        rc = s->peer_check(s->peer_check_ud, s->peer_id, s->peer_dh);
    if (rc == 0 && s->initiator)
        rc = write_cert(s, out);
    if (rc == 0)
        rc = establish(s);
    return rc;
}

void kith_session_set_peer_check(kith_session *s, kith_session_peer_cb cb, void *ud)
{
    if (!s || !s->initiator)
        return;
    s->peer_check = cb;
    s->peer_check_ud = ud;
}

int kith_session_start(kith_session *s, kith_buf *out)
{
    if (!s || !out)
        return KITH_EINVAL;
    if (s->state == S_FAILED || s->started)
        return KITH_ESTATE;
    if (!s->initiator)
        return 0;
    int rc = write_hs(s, NULL, 0, out);
    if (rc == KITH_ETOOBIG || rc == KITH_ENOMEM)
        return rc; /* out was full: nothing was written or changed */
    if (rc)
        return fail(s, rc);
    s->started = true;
    s->step = 1;
    return 0;
}

/* ---- transport ---- */

/* One authenticated frame: returns <0 internal error (poisons), or the
 * callback's return through *cbrc. */
static int handle_transport(kith_session *s, kith_session_msg_cb cb, void *ud, int *cbrc)
{
    size_t plen;
    int rc = kith_noise_cs_decrypt(
        &s->recv, NULL, 0, s->frame, s->frame_len, s->frame, sizeof s->frame, &plen);
    if (rc)
        return rc;
    if (plen < 1)
        return KITH_EPROTO;
    uint8_t flag = s->frame[0];
    const uint8_t *chunk = s->frame + 1;
    size_t clen = plen - 1;
    if (flag != FRAG_LAST && flag != FRAG_MORE)
        return KITH_EPROTO;
    if (flag == FRAG_MORE || s->reasm.len) {
        /* over the cap means the peer lies about sizes: fail closed */
        if (clen > KITH_SESSION_MAX_APP - s->reasm.len)
            return KITH_ETOOBIG;
        rc = kith_buf_append(&s->reasm, chunk, clen);
        if (rc)
            return rc;
    }
    if (flag == FRAG_MORE) {
        sodium_memzero(s->frame, plen);
        return 0;
    }
    if (s->reasm.len) {
        *cbrc = cb ? cb(ud, s->reasm.data, s->reasm.len) : 0;
        if (s->state != S_FAILED) {
            sodium_memzero(s->reasm.data, s->reasm.len);
            kith_buf_reset(&s->reasm);
        }
    } else {
        *cbrc = cb ? cb(ud, chunk, clen) : 0;
    }
    if (s->state != S_FAILED)
        sodium_memzero(s->frame, plen);
    return 0;
}

/* Checks a frame's declared length the moment its header is complete, so
 * nothing of a bad frame is ever buffered. */
static int check_len(const kith_session *s, size_t len)
{
    if (len == 0)
        return KITH_EPROTO;
    if (s->state == S_HANDSHAKE)
        return len == expected_hs_len(s) ? 0 : KITH_EPROTO;
    return len >= 1 + KITH_NOISE_TAG ? 0 : KITH_EPROTO;
}

/* Consume bytes until they run out or the callback says stop. */
static int process(kith_session *s, const uint8_t *data, size_t len, kith_buf *out,
    kith_session_msg_cb cb, void *ud, size_t *used)
{
    size_t i = 0;
    int cbrc = 0;
    while (i < len && cbrc == 0) {
        if (s->hdr_have < 2) {
            s->hdr[s->hdr_have++] = data[i++];
            if (s->hdr_have < 2)
                continue;
            s->frame_len = kith_get_be16(s->hdr);
            s->frame_have = 0;
            int rc = check_len(s, s->frame_len);
            if (rc) {
                *used = i;
                return fail(s, rc);
            }
            continue;
        }
        size_t take = KITH_MIN(len - i, s->frame_len - s->frame_have);
        memcpy(s->frame + s->frame_have, data + i, take);
        s->frame_have += take;
        i += take;
        if (s->frame_have < s->frame_len)
            continue;
        s->hdr_have = 0;
        int rc;
        if (s->state == S_HANDSHAKE)
            rc = handle_hs(s, s->frame, s->frame_len, out);
        else
            rc = handle_transport(s, cb, ud, &cbrc);
        if (rc) {
            *used = i;
            return fail(s, rc);
        }
        if (s->state == S_FAILED) {
            *used = i;
            return KITH_ESTATE; /* the callback freed nothing but failed us */
        }
    }
    *used = i;
    return cbrc;
}

int kith_session_feed(kith_session *s, const uint8_t *data, size_t len, kith_buf *out,
    kith_session_msg_cb cb, void *ud)
{
    if (!s || (len && !data) || !out)
        return KITH_EINVAL;
    if (s->state == S_FAILED)
        return KITH_ESTATE;
    if (s->initiator && !s->started && len)
        return fail(s, KITH_ESTATE); /* the peer spoke before we did */

    /* Input left over from a callback that stopped feeding goes first. */
    kith_buf work;
    const uint8_t *p = data;
    size_t n = len;
    kith_buf_init(&work, s->env, PENDING_MAX);
    if (s->pending.len) {
        work = s->pending;
        kith_buf_init(&s->pending, s->env, PENDING_MAX);
        int rc = kith_buf_append(&work, data, len);
        if (rc) {
            kith_buf_free(&work);
            return fail(s, rc);
        }
        p = work.data;
        n = work.len;
    }
    size_t used = 0;
    int rc = process(s, p, n, out, cb, ud, &used);
    if (rc != 0 && s->state != S_FAILED && used < n) {
        int prc = kith_buf_append(&s->pending, p + used, n - used);
        if (prc) {
            kith_buf_free(&work);
            return fail(s, prc);
        }
    }
    kith_buf_free(&work);
    return rc;
}

int kith_session_send(kith_session *s, const uint8_t *msg, size_t len, kith_buf *out)
{
    if (!s || (len && !msg) || !out)
        return KITH_EINVAL;
    if (s->state != S_ESTABLISHED)
        return KITH_ESTATE;
    if (len > KITH_SESSION_MAX_APP)
        return KITH_ETOOBIG;
    size_t frames = len == 0 ? 1 : (len + FRAG_MAX - 1) / FRAG_MAX;
    int rc = kith_buf_reserve(out, frames * (2 + 1 + KITH_NOISE_TAG) + len);
    if (rc)
        return rc; /* nothing written, nonce untouched: still usable */
    size_t start = out->len, off = 0;
    do {
        size_t clen = KITH_MIN(len - off, (size_t)FRAG_MAX);
        uint8_t *f = out->data + out->len;
        f[2] = off + clen < len ? FRAG_MORE : FRAG_LAST;
        if (clen)
            memcpy(f + 3, msg + off, clen);
        size_t ctlen;
        rc = kith_noise_cs_encrypt(
            &s->send, NULL, 0, f + 2, 1 + clen, f + 2, out->cap - out->len - 2, &ctlen);
        if (rc) {
            sodium_memzero(out->data + start, out->len + 3 + clen - start);
            out->len = start;
            return fail(s, rc);
        }
        kith_put_be16(f, (uint16_t)ctlen);
        out->len += 2 + ctlen;
        off += clen;
    } while (off < len);
    return 0;
}

bool kith_session_established(const kith_session *s)
{
    return s && s->state == S_ESTABLISHED;
}

bool kith_session_failed(const kith_session *s)
{
    return !s || s->state == S_FAILED;
}

const uint8_t *kith_session_peer_id(const kith_session *s)
{
    return kith_session_established(s) ? s->peer_id : NULL;
}

const uint8_t *kith_session_peer_dh(const kith_session *s)
{
    return kith_session_established(s) ? s->peer_dh : NULL;
}

const uint8_t *kith_session_binding(const kith_session *s)
{
    return kith_session_established(s) ? s->binding : NULL;
}
