/* node/beacon: the LAN beacon, a small UDP multicast datagram a node sends so
 * that fellow members on the same network find it with no configuration
 * (proto/kith.md section 8). A beacon names nobody: it carries a version, a
 * fresh random nonce, the TCP port, and one tag per room, where a tag is a
 * keyed BLAKE2b of (the room's discovery key, the time window, the nonce).
 * Only members know a room's discovery key, so only they can tell which
 * tags match; to anyone else two beacons of one node look unrelated. A room
 * an admin made discoverable for a meetup adds a name-bearing entry (mode
 * and room name), which is public by the admin's choice.
 *
 * Pure functions, no allocation: the decoder fills a fixed struct and
 * rejects anything that is not exactly one well-formed beacon. */
#ifndef KITH_BEACON_H
#define KITH_BEACON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "room/room.h"
#include "util/util.h"

#define KITH_BEACON_VERSION 1
#define KITH_BEACON_NONCE_LEN 16
#define KITH_BEACON_TAG_LEN 16
#define KITH_BEACON_MAX_TAGS 16
#define KITH_BEACON_MAX_NAMES 4
#define KITH_BEACON_HEADER 22 /* version, ntags, nnames, reserved, port, nonce */
/* Largest valid beacon: header, 16 tags, 4 entries of 2 + 64 bytes (542). */
#define KITH_BEACON_MAX                                                                            \
    (KITH_BEACON_HEADER + KITH_BEACON_MAX_TAGS * KITH_BEACON_TAG_LEN                               \
        + KITH_BEACON_MAX_NAMES * (2 + KITH_ROOM_NAME_MAX))
#define KITH_BEACON_WINDOW_MS 60000u /* tags change every window; +-1 accepted */
#define KITH_BEACON_UDP_PORT 7416
#define KITH_BEACON_GROUP4 "239.255.74.16"
#define KITH_BEACON_GROUP6 "ff02::6b69:7468"

enum kith_beacon_mode {
    KITH_BEACON_OPEN = 1, /* anyone on the LAN may join */
    KITH_BEACON_KNOCK = 2, /* knock, and an admin admits */
};

typedef struct kith_beacon_name {
    uint8_t mode;
    char name[KITH_ROOM_NAME_MAX + 1];
} kith_beacon_name;

typedef struct kith_beacon {
    uint16_t port;
    uint8_t nonce[KITH_BEACON_NONCE_LEN];
    size_t ntags;
    uint8_t tags[KITH_BEACON_MAX_TAGS][KITH_BEACON_TAG_LEN];
    size_t nnames;
    kith_beacon_name names[KITH_BEACON_MAX_NAMES];
} kith_beacon;

/* A room's discovery key: keyed by the room's epoch key, so only members
 * (of that epoch) can compute it. */
void kith_beacon_room_key(const uint8_t epoch_key[KITH_KEY_LEN],
    const uint8_t room_id[KITH_HASH_LEN], uint8_t out[KITH_KEY_LEN]);
/* The tag of one room in one beacon. */
void kith_beacon_tag(const uint8_t disc_key[KITH_KEY_LEN], uint64_t window,
    const uint8_t nonce[KITH_BEACON_NONCE_LEN], uint8_t out[KITH_BEACON_TAG_LEN]);
/* Window number of a Unix time in milliseconds. */
uint64_t kith_beacon_window(uint64_t wall_ms);

/* Encode b into out (cap >= KITH_BEACON_MAX is always enough); *len gets the
 * size. KITH_EINVAL when a field is out of range (port 0, too many tags or
 * names, a name empty, too long, or with a NUL, a bad mode). */
KITH_WUR int kith_beacon_encode(const kith_beacon *b, uint8_t *out, size_t cap, size_t *len);
/* Decode exactly one beacon. KITH_EPROTO on anything else (wrong version,
 * counts over the caps, a short or long datagram, port 0, nonzero reserved
 * byte, a bad entry); out is then zeroed. */
KITH_WUR int kith_beacon_decode(const uint8_t *data, size_t len, kith_beacon *out);

#endif
