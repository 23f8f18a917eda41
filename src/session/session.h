/* session: one kith connection between two nodes, over any byte stream.
 *
 * Noise_XX_25519_ChaChaPoly_BLAKE2b with prologue "kith/1". Each side's
 * handshake payload (messages 2 and 3) carries its identity certificate, a
 * canonical msgpack map {1: ed25519 id (bin32), 2: cert signature (bin64)}
 * over the Noise static key, so each side learns the other's member id and
 * a passive observer sees neither static key.
 *
 * Framing: every Noise message on the stream is a 2-byte big-endian length
 * then that many bytes (at most 65535). Transport plaintexts start with one
 * flag byte (0 = last fragment, 1 = more follow) so an application message of
 * up to KITH_SESSION_MAX_APP bytes is split across frames and reassembled.
 *
 * Fail closed: a bad tag, an over-long or malformed frame or handshake, or a
 * reassembly past the cap poisons the session: its keys are wiped and every
 * later call returns KITH_ESTATE. The caller then closes the connection. */
#ifndef KITH_SESSION_H
#define KITH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "kith/env.h"
#include "kith/err.h"
#include "util/util.h"

#define KITH_SESSION_PROLOGUE "kith/1"
#define KITH_SESSION_MAX_APP (1u << 20) /* 1 MiB reassembled application message */

typedef struct kith_session kith_session;

/* Called for each complete application message; the bytes are valid only
 * during the call. A non-zero return stops feeding and is returned by
 * kith_session_feed (the session stays usable). */
typedef int (*kith_session_msg_cb)(void *ud, const uint8_t *msg, size_t len);

/* Initiator only: asked once message 2 has proved the responder's identity
 * (its certificate verified over the Noise static key it holds), before
 * message 3 is written. Message 3 carries our static key and certificate,
 * so this is the last moment to decide whether the responder may learn who
 * we are. Return 0 to go on; any other value fails the session with that
 * value, and message 3 is never written. */
typedef int (*kith_session_peer_cb)(
    void *ud, const uint8_t id[KITH_ID_LEN], const uint8_t dh[KITH_DH_LEN]);

/* The identity must outlive the session. */
KITH_WUR int kith_session_new(
    const kith_env *env, const kith_identity *self, bool initiator, kith_session **out);
void kith_session_free(kith_session *s); /* wipes keys */

/* Set the responder check (initiator; ignored by a responder) before the
 * handshake's second message is fed. ud must outlive the session. */
void kith_session_set_peer_check(kith_session *s, kith_session_peer_cb cb, void *ud);

/* Initiator: append the first handshake frame to out. Responder: no-op. */
KITH_WUR int kith_session_start(kith_session *s, kith_buf *out);

/* Feed bytes read from the stream (any split). Handshake replies are appended
 * to out; application messages go to cb. Errors poison the session. */
KITH_WUR int kith_session_feed(kith_session *s, const uint8_t *data, size_t len, kith_buf *out,
    kith_session_msg_cb cb, void *ud);

/* Encrypt and frame one application message (<= KITH_SESSION_MAX_APP) into out.
 * KITH_ESTATE before the handshake is done. */
KITH_WUR int kith_session_send(kith_session *s, const uint8_t *msg, size_t len, kith_buf *out);

bool kith_session_established(const kith_session *s);
bool kith_session_failed(const kith_session *s);
/* Peer's verified member id (Ed25519 public key), once established. */
const uint8_t *kith_session_peer_id(const kith_session *s);
/* Peer's X25519 static key, once established. */
const uint8_t *kith_session_peer_dh(const kith_session *s);
/* Noise handshake hash (64 bytes), once established: binds proofs to this session. */
const uint8_t *kith_session_binding(const kith_session *s);

#endif
