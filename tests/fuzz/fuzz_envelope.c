/* fuzz_envelope: kith_msg_parse_envelope on arbitrary bytes, then
 * kith_msg_open with a fixed room id and epoch key, so the seed corpus of
 * real envelopes (sealed under that key) leads mutations through the AEAD
 * and, for unmodified ciphertexts, the inner decoder and signature check.
 *
 * Built with -DKITH_FUZZ_GEN it is instead a program that writes the seed
 * corpus into the directory named on its command line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "msg/msg.h"
#include "util/util.h"
#include "wire/wire.h"

#include "fuzzenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed room and epoch key every seed is sealed for. */
static const uint8_t ROOM[KITH_HASH_LEN] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };
static const uint8_t KEY[KITH_KEY_LEN] = { 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    kith_envelope e;
    if (kith_msg_parse_envelope(&fuzz_env, data, size, &e) != 0)
        return 0;
    if (e.version != KITH_MSG_VERSION || e.ct < data || e.ct + e.ct_len > data + size)
        abort(); /* the parser must only hand out what it checked */
    uint8_t id[KITH_HASH_LEN];
    kith_msg_id(data, size, id);
    kith_buf plain;
    kith_buf_init(&plain, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
    kith_inner in;
    if (kith_msg_open(&fuzz_env, &e, ROOM, KEY, &plain, &in) == 0) {
        if (in.body_len > KITH_MSG_MAX_BODY || in.ndeps > KITH_MSG_MAX_DEPS || in.seq == 0
            || in.epoch != e.epoch)
            abort();
        if (in.body_len && (in.body < plain.data || in.body + in.body_len > plain.data + plain.len))
            abort();
    }
    kith_buf_free(&plain);
    return 0;
}

#ifdef KITH_FUZZ_GEN
static void put(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len)
        abort();
    fclose(f);
    /* Valid seeds must open, or the corpus leads nowhere. */
    kith_envelope e;
    kith_buf plain;
    kith_inner in;
    kith_buf_init(&plain, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
    bool ok = kith_msg_parse_envelope(&fuzz_env, p, len, &e) == 0
        && kith_msg_open(&fuzz_env, &e, ROOM, KEY, &plain, &in) == 0;
    kith_buf_free(&plain);
    if (ok != (strncmp(name, "valid", 5) == 0))
        abort();
}

static void seal(const kith_identity *id, uint64_t seq, uint64_t epoch, const char *body,
    size_t ndeps, kith_buf *out)
{
    kith_inner in;
    memset(&in, 0, sizeof in);
    in.type = seq == 3 ? KITH_MSG_ACTION : KITH_MSG_TEXT;
    memcpy(in.room_id, ROOM, sizeof ROOM);
    in.epoch = epoch;
    memcpy(in.author, id->id_pk, KITH_ID_LEN);
    in.seq = seq;
    if (seq > 1)
        memset(in.prev, 0x5e, KITH_HASH_LEN);
    in.ndeps = ndeps;
    for (size_t i = 0; i < ndeps; i++)
        memset(in.deps[i], (int)(0x60 + i), KITH_HASH_LEN);
    in.lamport = seq * 3;
    in.wall_ms = FUZZ_NOW_MS + seq;
    in.body = (const uint8_t *)body;
    in.body_len = strlen(body);
    kith_buf_reset(out);
    if (kith_msg_seal(&fuzz_env, id, &in, KEY, out) != 0)
        abort();
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0)
        return 2;
    const char *dir = argv[1];
    uint8_t seed[32], dh[32];
    memset(seed, 1, sizeof seed);
    memset(dh, 2, sizeof dh);
    kith_identity alice, bob;
    if (kith_identity_from_secrets(seed, dh, &alice) != 0)
        return 1;
    seed[0] = 9;
    if (kith_identity_from_secrets(seed, dh, &bob) != 0)
        return 1;
    kith_buf b;
    kith_buf_init(&b, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
    seal(&alice, 1, 0, "hello", 0, &b);
    put(dir, "valid-first", b.data, b.len);
    seal(&alice, 2, 0, "second, with deps \xe2\x9c\x93", 4, &b);
    put(dir, "valid-deps", b.data, b.len);
    seal(&bob, 3, 7, "/me waves", 1, &b);
    put(dir, "valid-epoch7-action", b.data, b.len);
    char big[3000];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    seal(&alice, 4, 0, big, 2, &b);
    put(dir, "valid-long", b.data, b.len);
    seal(&alice, 1, 0, "", 0, &b);
    put(dir, "valid-empty-body", b.data, b.len);

    /* Hostile: a flipped ciphertext byte, a truncation, a trailing byte. */
    seal(&alice, 1, 0, "tamper", 0, &b);
    b.data[b.len - 20] ^= 1;
    put(dir, "bad-ct-flip", b.data, b.len);
    b.data[b.len - 20] ^= 1;
    put(dir, "bad-truncated", b.data, b.len - 1);
    if (kith_buf_append_u8(&b, 0xc0) != 0)
        abort();
    put(dir, "bad-trailing", b.data, b.len);
    /* Inner signed by bob but naming alice. */
    {
        kith_inner in;
        memset(&in, 0, sizeof in);
        in.type = 1;
        memcpy(in.room_id, ROOM, sizeof ROOM);
        memcpy(in.author, alice.id_pk, KITH_ID_LEN);
        in.seq = 1;
        in.body = (const uint8_t *)"forged";
        in.body_len = 6;
        kith_buf inner;
        kith_buf_init(&inner, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
        uint8_t sig[KITH_SIG_LEN];
        if (kith_msg_encode_inner(&in, &inner) != 0
            || kith_sign(&fuzz_env, &bob, KITH_DOMAIN_MSG, inner.data, inner.len, sig) != 0
            || kith_buf_append(&inner, sig, sizeof sig) != 0)
            abort();
        kith_buf_reset(&b);
        if (kith_msg_seal_plain(&fuzz_env, 0, KEY, inner.data, inner.len, &b) != 0)
            abort();
        put(dir, "bad-forged-author", b.data, b.len);
        kith_buf_free(&inner);
    }
    static const uint8_t empty_map[] = { 0x80 };
    put(dir, "bad-empty-map", empty_map, sizeof empty_map);
    static const uint8_t huge[] = { 0x85, 0x00, 0x01, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xf0 };
    put(dir, "bad-huge-bin", huge, sizeof huge);
    static const uint8_t deep[] = { 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
        0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0 };
    put(dir, "bad-deep", deep, sizeof deep);
    kith_buf_free(&b);
    kith_identity_wipe(&alice);
    kith_identity_wipe(&bob);
    return 0;
}
#endif
