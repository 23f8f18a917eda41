/* Fuzz target: the LAN beacon decoder (src/node/beacon.c) on arbitrary
 * datagrams. A beacon that decodes must re-encode to the same bytes (the
 * layout has one encoding), with every field inside its cap. */
#include <stdlib.h>

#include "node/beacon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kith_beacon b;
    if (kith_beacon_decode(data, size, &b) != 0) {
        if (b.ntags || b.nnames || b.port)
            abort(); /* a failed decode leaves nothing behind */
        return 0;
    }
    if (b.ntags > KITH_BEACON_MAX_TAGS || b.nnames > KITH_BEACON_MAX_NAMES || b.port == 0)
        abort();
    for (size_t i = 0; i < b.nnames; i++) {
        size_t nl = strnlen(b.names[i].name, sizeof b.names[i].name);
        if (nl == 0 || nl > KITH_ROOM_NAME_MAX)
            abort();
    }
    uint8_t out[KITH_BEACON_MAX];
    size_t len;
    if (kith_beacon_encode(&b, out, sizeof out, &len) != 0 || len != size
        || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
