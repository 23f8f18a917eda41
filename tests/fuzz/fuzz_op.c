/* fuzz_op: arbitrary bytes applied as a membership op to a fixed room. The
 * room (founder alice, who added bob) is rebuilt deterministically from a
 * seeded RNG, so the seed corpus of real ops (bob adding carol, built by
 * the generator below against the same room) applies, and its mutations
 * reach the parent, role and signature checks. A rejected op must leave the
 * room unchanged; an accepted one (only seeds) makes the room be rebuilt.
 *
 * Built with -DKITH_FUZZ_GEN it writes the seed corpus into the directory
 * named on its command line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "room/room.h"
#include "util/util.h"

#include "fuzzenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kith_identity alice, bob, carol;
static kith_room *room;

static void make_identity(uint8_t tag, kith_identity *id)
{
    uint8_t seed[32], dh[32];
    memset(seed, tag, sizeof seed);
    memset(dh, tag + 1, sizeof dh);
    if (kith_identity_from_secrets(seed, dh, id) != 0)
        abort();
}

/* The fixed room: alice's genesis and her add op for bob. */
static void build_room(void)
{
    fuzz_rng_state = 1;
    kith_buf g, op;
    kith_buf_init(&g, &fuzz_env, KITH_OP_MAX);
    kith_buf_init(&op, &fuzz_env, KITH_OP_MAX);
    if (kith_room_create(&fuzz_env, &alice, "fuzz", "alice", "127.0.0.1:7000", &g, &room) != 0
        || kith_room_add(room, bob.id_pk, bob.dh_pk, bob.cert_sig, "bob", "", NULL, &op) != 0)
        abort();
    kith_buf_free(&g);
    kith_buf_free(&op);
}

static void setup(void)
{
    if (sodium_init() < 0)
        abort();
    make_identity(1, &alice);
    make_identity(3, &bob);
    make_identity(5, &carol);
    build_room();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!room)
        setup();
    size_t ops = kith_room_op_count(room), members = kith_room_member_count(room);
    int rc = kith_room_apply(room, data, size);
    if (rc == 0) {
        if (kith_room_op_count(room) != ops + 1)
            abort();
        kith_room_free(room);
        build_room();
        return 0;
    }
    if (kith_room_op_count(room) != ops || kith_room_member_count(room) != members)
        abort();
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

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *dir = argv[1];
    setup();
    /* Bob's node: the same room, seen from bob, adds carol. */
    kith_room *rb = NULL;
    size_t len;
    const uint8_t *genesis = kith_room_op_at(room, 0, &len);
    if (kith_room_open(&fuzz_env, &bob, genesis, len, &rb) != 0)
        abort();
    put(dir, "genesis", genesis, len);
    const uint8_t *add_bob = kith_room_op_at(room, 1, &len);
    put(dir, "add-bob", add_bob, len);
    if (kith_room_apply(rb, add_bob, len) != 0)
        abort();
    kith_buf op;
    kith_buf_init(&op, &fuzz_env, KITH_OP_MAX);
    uint8_t invite[KITH_HASH_LEN];
    memset(invite, 0x17, sizeof invite);
    if (kith_room_add(
            rb, carol.id_pk, carol.dh_pk, carol.cert_sig, "carol", "10.1.2.3:9", invite, &op)
        != 0)
        abort();
    put(dir, "add-carol-by-bob", op.data, op.len);
    /* It must apply to the fuzz target's room as built. */
    if (kith_room_apply(room, op.data, op.len) != 0)
        abort();
    /* Hostile variants. */
    op.data[op.len - 3] ^= 1;
    put(dir, "bad-sig", op.data, op.len);
    op.data[op.len - 3] ^= 1;
    op.data[40] ^= 1;
    put(dir, "bad-body-byte", op.data, op.len);
    op.data[40] ^= 1;
    put(dir, "bad-truncated", op.data, op.len - 1);
    static const uint8_t empty[] = { 0x82, 0x00, 0xc4, 0x00, 0x01, 0xc4, 0x00 };
    put(dir, "bad-empty-body", empty, sizeof empty);
    /* Every other kind, by alice against a copy of the fixed room. */
    static const char *names[] = { "remove-bob", "ban-bob", "mod-bob", "topic", "rename", "rekey",
        "leave", "invite-issued", "invite-revoked", "set-lan" };
    for (int k = 0; k < 10; k++) {
        kith_room *ra = NULL;
        genesis = kith_room_op_at(room, 0, &len);
        if (kith_room_open(&fuzz_env, &alice, genesis, len, &ra) != 0)
            abort();
        add_bob = kith_room_op_at(room, 1, &len);
        if (kith_room_apply(ra, add_bob, len) != 0)
            abort();
        kith_buf_reset(&op);
        int rc = k == 0 ? kith_room_remove(ra, bob.id_pk, &op)
            : k == 1    ? kith_room_ban(ra, bob.id_pk, &op)
            : k == 2    ? kith_room_set_role(ra, bob.id_pk, KITH_ROLE_MODERATOR, &op)
            : k == 3    ? kith_room_set_topic(ra, "chapter 3", &op)
            : k == 4    ? kith_room_set_name(ra, "renamed", &op)
            : k == 5    ? kith_room_rekey(ra, &op)
            : k == 6    ? kith_room_leave(ra, &op)
            : k == 7    ? kith_room_invite_issued(ra, invite, 1767312000000ull, 3, &op)
            : k == 8    ? kith_room_invite_revoke(ra, invite, &op)
                        : kith_room_set_lan(ra, KITH_ROOM_LAN_KNOCK, &op);
        if (rc != 0)
            abort();
        put(dir, names[k], op.data, op.len);
        kith_room_free(ra);
    }
    kith_buf_free(&op);
    kith_room_free(rb);
    kith_room_free(room);
    return 0;
}
#endif
