/* crypto: identities, signatures, hashes and key derivation for kith, all on
 * libsodium. An identity is an Ed25519 key pair (the member id is the public
 * key) plus an X25519 key pair for Noise and sealed key delivery, certified by
 * a signature of the Ed25519 key so the two are never one secret used twice.
 * No I/O: key files are bytes here; the caller stores them. */
#ifndef KITH_CRYPTO_H
#define KITH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"
#include "util/util.h"

#define KITH_ID_LEN 32 /* Ed25519 public key = member id */
#define KITH_SIG_LEN 64
#define KITH_HASH_LEN 32 /* BLAKE2b-256 */
#define KITH_DH_LEN 32 /* X25519 key */
#define KITH_KEY_LEN 32 /* symmetric key */
/* "abcde-fghij-klmno-pqrst": 4 groups of 5 base32 characters (100 bits). */
#define KITH_FPR_STRLEN 24

/* Signature domains: one per kind of signed thing, so a signature over one
 * can never be replayed as another. */
#define KITH_DOMAIN_CERT "kith/1 cert"
#define KITH_DOMAIN_MSG "kith/1 msg"
#define KITH_DOMAIN_OP "kith/1 op"

typedef struct kith_identity {
    uint8_t id_pk[KITH_ID_LEN];
    uint8_t id_sk[64];
    uint8_t dh_pk[KITH_DH_LEN];
    uint8_t dh_sk[KITH_DH_LEN];
    uint8_t cert_sig[KITH_SIG_LEN]; /* id_sk over KITH_DOMAIN_CERT || dh_pk */
} kith_identity;

/* Fresh identity from env randomness. */
KITH_WUR int kith_identity_generate(const kith_env *env, kith_identity *out);
void kith_identity_wipe(kith_identity *id);

/* Serialize for a key file. With a non-NULL, non-empty passphrase the secrets
 * are sealed with XChaCha20-Poly1305 under a key from Argon2id
 * (crypto_pwhash, salt stored in the file). out is appended to. */
KITH_WUR int kith_identity_save(
    const kith_env *env, const kith_identity *id, const char *pass, kith_buf *out);
/* Parse a key file; KITH_EPASS when the passphrase is wrong or missing,
 * KITH_EPROTO when the file is damaged. Checks the certificate. */
KITH_WUR int kith_identity_load(
    const kith_env *env, const uint8_t *data, size_t len, const char *pass, kith_identity *out);
/* True when the key file bytes are passphrase-sealed. */
bool kith_identity_file_sealed(const uint8_t *data, size_t len);

/* Verify that id_pk certified dh_pk. 0 or KITH_ECRYPTO. env may be NULL
 * (it only lends kith_verify its signature memo). */
KITH_WUR int kith_cert_verify(const kith_env *env, const uint8_t id_pk[KITH_ID_LEN],
    const uint8_t dh_pk[KITH_DH_LEN], const uint8_t sig[KITH_SIG_LEN]);

/* Readable fingerprint of a member id, NUL-terminated, KITH_FPR_STRLEN bytes. */
void kith_fingerprint(const uint8_t id_pk[KITH_ID_LEN], char out[KITH_FPR_STRLEN]);

/* Ed25519 over domain || msg. */
KITH_WUR int kith_sign(const kith_env *env, const kith_identity *id, const char *domain,
    const uint8_t *msg, size_t len, uint8_t sig[KITH_SIG_LEN]);
KITH_WUR int kith_verify(const kith_env *env, const uint8_t pk[KITH_ID_LEN], const char *domain,
    const uint8_t *msg, size_t len, const uint8_t sig[KITH_SIG_LEN]);

/* One job of kith_env.verify_many: sets job->ok (1 good, 0 bad). Pure and
 * thread-safe (no env, no memo): any thread may run it. */
void kith_sig_check(kith_sig_job *job);

/* BLAKE2b-256 of data. */
void kith_hash(uint8_t out[KITH_HASH_LEN], const uint8_t *data, size_t len);
/* Keyed BLAKE2b of (label || data), outlen in [16, 64]: derives subkeys and tags. */
void kith_keyed_hash(uint8_t *out, size_t outlen, const uint8_t key[KITH_KEY_LEN],
    const char *label, const uint8_t *data, size_t len);

/* crypto_box_seal of msg to an X25519 public key; out gets len + 48 bytes. */
KITH_WUR int kith_seal_to(const uint8_t dh_pk[KITH_DH_LEN], const uint8_t *msg, size_t len,
    uint8_t *out, size_t outcap, size_t *outlen);
KITH_WUR int kith_seal_open(const kith_identity *id, const uint8_t *in, size_t len, uint8_t *out,
    size_t outcap, size_t *outlen);

/* Secret-key sealing for data at rest (XChaCha20-Poly1305, random nonce
 * prefixed): out gets len + 40 bytes. */
#define KITH_LOCAL_SEAL_OVERHEAD 40
KITH_WUR int kith_local_seal(const kith_env *env, const uint8_t key[KITH_KEY_LEN],
    const uint8_t *in, size_t len, kith_buf *out);
KITH_WUR int kith_local_open(const uint8_t key[KITH_KEY_LEN], const uint8_t *in, size_t len,
    uint8_t *out, size_t outcap, size_t *outlen);

/* ---- Additions by the crypto module (see docs/internals/crypto.md). ---- */

/* Longest message kith_sign/kith_verify accept (KITH_ETOOBIG above it), and
 * the longest signature domain (KITH_EINVAL above it). Domains are
 * concatenated with the message without a separator, so no kith domain may
 * be a prefix of another. */
#define KITH_SIGN_MAX (2u * 1024u * 1024u)
#define KITH_DOMAIN_MAX 64
/* kith_seal_to's overhead: ephemeral X25519 key + Poly1305 tag. */
#define KITH_SEAL_OVERHEAD 48
/* Longest passphrase in bytes (KITH_EINVAL above it). */
#define KITH_PASS_MAX 1024
/* Exact key file sizes (proto/kith.md section 3). */
#define KITH_KEYFILE_PLAIN_LEN 153
#define KITH_KEYFILE_SEALED_LEN 158
/* Argon2id limits kith_identity_load accepts from a file (KITH_ETOOBIG above
 * them), so a hostile file can't ask for gigabytes of memory or hours of CPU. */
#define KITH_KEYFILE_MAX_OPSLIMIT 8u
#define KITH_KEYFILE_MAX_MEMLIMIT (256u * 1024u * 1024u)

/* Identity from its two secrets (Ed25519 seed, X25519 secret key): derives
 * the public keys and signs the certificate. Deterministic. */
KITH_WUR int kith_identity_from_secrets(
    const uint8_t ed_seed[32], const uint8_t dh_sk[KITH_DH_LEN], kith_identity *out);
/* kith_identity_save with explicit Argon2id limits (opslimit in [1, MAX],
 * memlimit in bytes in [8192, MAX]); kith_identity_save uses
 * crypto_pwhash_OPSLIMIT_INTERACTIVE / MEMLIMIT_INTERACTIVE. Tests use the
 * minimum to stay fast. */
KITH_WUR int kith_identity_save_ex(const kith_env *env, const kith_identity *id, const char *pass,
    uint32_t opslimit, uint64_t memlimit, kith_buf *out);
/* kith_seal_to with the ephemeral key drawn from env randomness, so the
 * simulator stays reproducible. Same format: crypto_box_seal_open opens it. */
KITH_WUR int kith_seal_to_env(const kith_env *env, const uint8_t dh_pk[KITH_DH_LEN],
    const uint8_t *msg, size_t len, uint8_t *out, size_t outcap, size_t *outlen);

#endif
