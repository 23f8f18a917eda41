/* session/noise: the Noise Protocol Framework (revision 34) for the suite
 * 25519_ChaChaPoly_BLAKE2b, on libsodium primitives only. The handshake engine
 * is driven by a table of message patterns (tokens e, s, ee, es, se, ss, psk),
 * parsed from the protocol name, so every pattern in the spec, including the
 * deferred (X1K1, ...) and PSK ones, runs through one code path. No I/O.
 * A failed step poisons the state and wipes its keys. */
#ifndef KITH_NOISE_H
#define KITH_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"

#define KITH_NOISE_MAX_MSG 65535
#define KITH_NOISE_TAG 16
#define KITH_NOISE_HASHLEN 64 /* BLAKE2b */
#define KITH_NOISE_DHLEN 32

typedef struct kith_noise_cs {
    uint8_t k[32];
    uint64_t n;
    bool has_key;
} kith_noise_cs;

/* AEAD with the cipher state's key and nonce (ChaCha20-Poly1305 IETF, nonce =
 * 4 zero bytes || 64-bit little-endian n). out may alias in. */
KITH_WUR int kith_noise_cs_encrypt(kith_noise_cs *cs, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen);
KITH_WUR int kith_noise_cs_decrypt(kith_noise_cs *cs, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen);
void kith_noise_cs_wipe(kith_noise_cs *cs);

typedef struct kith_noise kith_noise; /* handshake state */

enum kith_noise_action {
    KITH_NOISE_WRITE = 1, /* call kith_noise_write_message next */
    KITH_NOISE_READ, /* call kith_noise_read_message next */
    KITH_NOISE_SPLIT, /* handshake done: call kith_noise_split */
    KITH_NOISE_FAILED, /* poisoned */
};

/* protocol: full name, e.g. "Noise_XX_25519_ChaChaPoly_BLAKE2b". KITH_EINVAL
 * for an unknown pattern or another suite. */
KITH_WUR int kith_noise_new(
    const kith_env *env, const char *protocol, bool initiator, kith_noise **out);
void kith_noise_free(kith_noise *hs);
/* Set before the first message. Keys are copied. */
KITH_WUR int kith_noise_set_prologue(kith_noise *hs, const uint8_t *p, size_t len);
KITH_WUR int kith_noise_set_s(kith_noise *hs, const uint8_t sk[32]);
KITH_WUR int kith_noise_set_e(kith_noise *hs, const uint8_t sk[32]); /* fixed ephemeral: tests */
KITH_WUR int kith_noise_set_rs(kith_noise *hs, const uint8_t pk[32]);
KITH_WUR int kith_noise_set_psk(kith_noise *hs, const uint8_t psk[32]);

int kith_noise_action(const kith_noise *hs);
KITH_WUR int kith_noise_write_message(kith_noise *hs, const uint8_t *payload, size_t len,
    uint8_t *out, size_t outcap, size_t *outlen);
KITH_WUR int kith_noise_read_message(
    kith_noise *hs, const uint8_t *msg, size_t len, uint8_t *payload, size_t cap, size_t *plen);
/* After the last message: the two transport cipher states (for the initiator
 * `send` is the first of Split()'s pair). */
KITH_WUR int kith_noise_split(kith_noise *hs, kith_noise_cs *send, kith_noise_cs *recv);
/* Handshake hash h (64 bytes), valid once the handshake is done. */
const uint8_t *kith_noise_handshake_hash(const kith_noise *hs);
/* Remote static public key, or NULL when not (yet) known. */
const uint8_t *kith_noise_remote_static(const kith_noise *hs);

#endif
