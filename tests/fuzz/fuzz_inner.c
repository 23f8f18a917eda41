/* fuzz_inner: arbitrary bytes as a decrypted plaintext (inner map ||
 * 64-byte signature) to kith_msg_parse_inner, the decoder kith_msg_open runs
 * after the AEAD. The fuzzer can't forge an AEAD tag, so this is the way in
 * for hostile inner maps from a member who holds the epoch key.
 *
 * Built with -DKITH_FUZZ_GEN it writes the seed corpus into the directory
 * named on its command line. */
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

static const uint8_t ROOM[KITH_HASH_LEN] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    kith_inner in;
    if (kith_msg_parse_inner(&fuzz_env, data, size, ROOM, 0, &in) == 0) {
        if (in.body_len > KITH_MSG_MAX_BODY || in.ndeps > KITH_MSG_MAX_DEPS || in.seq == 0
            || in.epoch != 0 || memcmp(in.room_id, ROOM, sizeof ROOM) != 0)
            abort();
        if (in.body_len && (in.body < data || in.body + in.body_len > data + size))
            abort();
        if (!kith_msg_utf8_valid(in.body, in.body_len))
            abort();
        /* The target (key 12) rules of edits, deletes and reactions. */
        if (kith_msg_type_targets(in.type) != in.has_target && in.type <= KITH_MSG_REACTION)
            abort();
        if (in.type == KITH_MSG_DELETE && in.body_len != 0)
            abort();
        if (in.type == KITH_MSG_EDIT && in.body_len == 0)
            abort();
        if (in.type == KITH_MSG_REACTION) {
            if (in.body_len == 0 || in.body_len > KITH_MSG_MAX_REACTION)
                abort();
            for (size_t i = 0; i < in.body_len; i++) {
                if (in.body[i] <= 0x20 || in.body[i] == 0x7f)
                    abort();
            }
        }
    }
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
}

/* inner || signature by `signer`, written as one seed. */
static void seed(const char *dir, const char *name, const kith_identity *signer,
    const uint8_t *inner, size_t len)
{
    kith_buf b;
    kith_buf_init(&b, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
    uint8_t sig[KITH_SIG_LEN];
    if (kith_buf_append(&b, inner, len) != 0
        || kith_sign(&fuzz_env, signer, KITH_DOMAIN_MSG, inner, len, sig) != 0
        || kith_buf_append(&b, sig, sizeof sig) != 0)
        abort();
    put(dir, name, b.data, b.len);
    /* Valid seeds must pass, or the corpus leads nowhere. */
    kith_inner in;
    bool ok = kith_msg_parse_inner(&fuzz_env, b.data, b.len, ROOM, 0, &in) == 0;
    if (ok != (strncmp(name, "valid", 5) == 0))
        abort();
    kith_buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0)
        return 2;
    const char *dir = argv[1];
    uint8_t s[32], dh[32];
    memset(s, 1, sizeof s);
    memset(dh, 2, sizeof dh);
    kith_identity alice, bob;
    if (kith_identity_from_secrets(s, dh, &alice) != 0)
        return 1;
    s[0] = 9;
    if (kith_identity_from_secrets(s, dh, &bob) != 0)
        return 1;

    kith_inner in;
    memset(&in, 0, sizeof in);
    in.type = KITH_MSG_TEXT;
    memcpy(in.room_id, ROOM, sizeof ROOM);
    memcpy(in.author, alice.id_pk, KITH_ID_LEN);
    in.seq = 1;
    in.lamport = 1;
    in.wall_ms = FUZZ_NOW_MS;
    in.body = (const uint8_t *)"hi";
    in.body_len = 2;
    kith_buf inner;
    kith_buf_init(&inner, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "valid-first", &alice, inner.data, inner.len);
    seed(dir, "bad-signer", &bob, inner.data, inner.len);
    /* Same map with the version as 0xcc 0x01: not canonical. */
    {
        kith_buf nc;
        kith_buf_init(&nc, &fuzz_env, KITH_MSG_MAX_ENVELOPE);
        static const uint8_t head[] = { 0x8c, 0x00, 0xcc, 0x01 };
        if (kith_buf_append(&nc, head, sizeof head) != 0
            || kith_buf_append(&nc, inner.data + 3, inner.len - 3) != 0)
            abort();
        seed(dir, "bad-noncanonical", &alice, nc.data, nc.len);
        kith_buf_free(&nc);
    }
    in.seq = 5;
    memset(in.prev, 0x33, sizeof in.prev);
    in.ndeps = KITH_MSG_MAX_DEPS;
    for (size_t i = 0; i < in.ndeps; i++)
        memset(in.deps[i], (int)(0x40 + i), KITH_HASH_LEN);
    in.type = KITH_MSG_NICK;
    in.body = (const uint8_t *)"Al\xc3\xaf"
                               "ce";
    in.body_len = 6;
    kith_buf_reset(&inner);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "valid-deps-nick", &alice, inner.data, inner.len);
    /* Wrong room (the decoder is asked about ROOM). */
    in.room_id[0] ^= 1;
    kith_buf_reset(&inner);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "bad-room", &alice, inner.data, inner.len);
    in.room_id[0] ^= 1;
    /* Epoch 1 (the decoder expects 0). */
    in.epoch = 1;
    kith_buf_reset(&inner);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "bad-epoch", &alice, inner.data, inner.len);

    /* Edits, deletes and reactions: key 12 (the target) after the padding. */
    in.epoch = 0;
    in.ndeps = 1;
    in.has_target = true;
    memset(in.target, 0x44, sizeof in.target);
    in.type = KITH_MSG_EDIT;
    in.body = (const uint8_t *)"hi, edited";
    in.body_len = 10;
    kith_buf_reset(&inner);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "valid-edit", &alice, inner.data, inner.len);
    /* The same bytes with type 1: a text must not carry a target. Type is
     * the byte after "8d 00 01 01". */
    if (inner.data[0] != 0x8d || inner.data[3] != 0x01 || inner.data[4] != KITH_MSG_EDIT)
        abort();
    inner.data[4] = KITH_MSG_TEXT;
    seed(dir, "bad-text-target", &alice, inner.data, inner.len);
    inner.data[4] = KITH_MSG_DELETE; /* a delete with a body */
    seed(dir, "bad-delete-body", &alice, inner.data, inner.len);
    inner.data[4] = KITH_MSG_REACTION; /* a reaction "hi, edited": has a blank */
    seed(dir, "bad-reaction-blank", &alice, inner.data, inner.len);
    inner.data[4] = 77; /* a type from a later version may carry one */
    seed(dir, "valid-unknown-target", &alice, inner.data, inner.len);
    /* The target as bin 31: the last byte of the map is cut and the bin
     * header says 31. */
    {
        kith_buf t;
        kith_buf_init(&t, &ENV, KITH_MSG_MAX_ENVELOPE);
        inner.data[4] = KITH_MSG_EDIT;
        if (inner.data[inner.len - 33] != 0x20
            || kith_buf_append(&t, inner.data, inner.len - 1) != 0)
            abort();
        t.data[t.len - 33] = 31;
        seed(dir, "bad-target-short", &alice, t.data, t.len);
        kith_buf_free(&t);
    }
    in.type = KITH_MSG_DELETE;
    in.body = NULL;
    in.body_len = 0;
    kith_buf_reset(&inner);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "valid-delete", &alice, inner.data, inner.len);
    inner.data[4] = KITH_MSG_EDIT; /* an edit to nothing */
    seed(dir, "bad-edit-empty", &alice, inner.data, inner.len);
    in.type = KITH_MSG_REACTION;
    in.body = (const uint8_t *)"\xf0\x9f\x91\x8d";
    in.body_len = 4;
    kith_buf_reset(&inner);
    if (kith_msg_encode_inner(&in, &inner) != 0)
        abort();
    seed(dir, "valid-reaction", &alice, inner.data, inner.len);
    /* Without its target: map of 12, the last 35 bytes cut. */
    inner.data[0] = 0x8c;
    seed(dir, "bad-reaction-no-target", &alice, inner.data, inner.len - 35);

    static const uint8_t tiny[65] = { 0x80 };
    put(dir, "bad-empty-map", tiny, sizeof tiny);
    put(dir, "bad-short", tiny, 10);
    kith_buf_free(&inner);
    kith_identity_wipe(&alice);
    kith_identity_wipe(&bob);
    return 0;
}
#endif
