/* node/beacon: encode and decode LAN beacons and compute their tags
 * (proto/kith.md section 8). The layout is fixed binary rather than msgpack:
 * a datagram from anyone on the network is parsed with a handful of bounds
 * checks and no allocation. */
#include "node/beacon.h"

#include <sodium.h>

void kith_beacon_room_key(const uint8_t epoch_key[KITH_KEY_LEN],
    const uint8_t room_id[KITH_HASH_LEN], uint8_t out[KITH_KEY_LEN])
{
    kith_keyed_hash(out, KITH_KEY_LEN, epoch_key, "kith/1 lan discovery", room_id, KITH_HASH_LEN);
}

void kith_beacon_tag(const uint8_t disc_key[KITH_KEY_LEN], uint64_t window,
    const uint8_t nonce[KITH_BEACON_NONCE_LEN], uint8_t out[KITH_BEACON_TAG_LEN])
{
    uint8_t in[8 + KITH_BEACON_NONCE_LEN];
    kith_put_be64(in, window);
    memcpy(in + 8, nonce, KITH_BEACON_NONCE_LEN);
    kith_keyed_hash(out, KITH_BEACON_TAG_LEN, disc_key, "kith/1 lan tag", in, sizeof in);
}

uint64_t kith_beacon_window(uint64_t wall_ms)
{
    return wall_ms / KITH_BEACON_WINDOW_MS;
}

/* A room name in an entry: 1..64 bytes, no control characters (the client
 * sanitizes what it shows anyway; this keeps junk out of the table). */
static bool name_ok(const char *p, size_t len)
{
    if (len == 0 || len > KITH_ROOM_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

int kith_beacon_encode(const kith_beacon *b, uint8_t *out, size_t cap, size_t *len)
{
    *len = 0;
    if (b->port == 0 || b->ntags > KITH_BEACON_MAX_TAGS || b->nnames > KITH_BEACON_MAX_NAMES)
        return KITH_EINVAL;
    size_t need = KITH_BEACON_HEADER + b->ntags * KITH_BEACON_TAG_LEN;
    for (size_t i = 0; i < b->nnames; i++) {
        const kith_beacon_name *e = &b->names[i];
        size_t nl = strnlen(e->name, sizeof e->name);
        if ((e->mode != KITH_BEACON_OPEN && e->mode != KITH_BEACON_KNOCK) || !name_ok(e->name, nl))
            return KITH_EINVAL;
        need += 2 + nl;
    }
    if (need > cap)
        return KITH_ETOOBIG;
    uint8_t *p = out;
    *p++ = KITH_BEACON_VERSION;
    *p++ = (uint8_t)b->ntags;
    *p++ = (uint8_t)b->nnames;
    *p++ = 0;
    *p++ = (uint8_t)(b->port >> 8);
    *p++ = (uint8_t)b->port;
    memcpy(p, b->nonce, KITH_BEACON_NONCE_LEN);
    p += KITH_BEACON_NONCE_LEN;
    for (size_t i = 0; i < b->ntags; i++) {
        memcpy(p, b->tags[i], KITH_BEACON_TAG_LEN);
        p += KITH_BEACON_TAG_LEN;
    }
    for (size_t i = 0; i < b->nnames; i++) {
        size_t nl = strnlen(b->names[i].name, sizeof b->names[i].name);
        *p++ = b->names[i].mode;
        *p++ = (uint8_t)nl;
        memcpy(p, b->names[i].name, nl);
        p += nl;
    }
    *len = (size_t)(p - out);
    return 0;
}

static int bad(kith_beacon *out)
{
    memset(out, 0, sizeof *out);
    return KITH_EPROTO;
}

int kith_beacon_decode(const uint8_t *data, size_t len, kith_beacon *out)
{
    memset(out, 0, sizeof *out);
    if (len < KITH_BEACON_HEADER || len > KITH_BEACON_MAX || data[0] != KITH_BEACON_VERSION)
        return bad(out);
    size_t ntags = data[1], nnames = data[2];
    if (ntags > KITH_BEACON_MAX_TAGS || nnames > KITH_BEACON_MAX_NAMES || data[3] != 0)
        return bad(out);
    out->port = (uint16_t)((data[4] << 8) | data[5]);
    if (out->port == 0)
        return bad(out);
    memcpy(out->nonce, data + 6, KITH_BEACON_NONCE_LEN);
    size_t off = KITH_BEACON_HEADER;
    if (len - off < ntags * KITH_BEACON_TAG_LEN)
        return bad(out);
    for (size_t i = 0; i < ntags; i++) {
        memcpy(out->tags[i], data + off, KITH_BEACON_TAG_LEN);
        off += KITH_BEACON_TAG_LEN;
    }
    out->ntags = ntags;
    for (size_t i = 0; i < nnames; i++) {
        if (len - off < 2)
            return bad(out);
        uint8_t mode = data[off];
        size_t nl = data[off + 1];
        off += 2;
        if ((mode != KITH_BEACON_OPEN && mode != KITH_BEACON_KNOCK) || len - off < nl
            || !name_ok((const char *)data + off, nl))
            return bad(out);
        out->names[i].mode = mode;
        memcpy(out->names[i].name, data + off, nl);
        out->names[i].name[nl] = '\0';
        off += nl;
    }
    out->nnames = nnames;
    if (off != len)
        return bad(out); /* trailing bytes: not one beacon */
    return 0;
}
