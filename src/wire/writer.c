/* wire (writer): emits canonical msgpack into a kith_buf through
 * msgpack-c's packer. msgpack-c 4.0 already picks the shortest form for
 * integers (uint64 included) and for str (str8 included), bin, array and map
 * headers; the unit tests pin every boundary so a library that did otherwise
 * would be caught. Errors are sticky: the first one stops all later writes. */
#include "wire/wire.h"

#include <msgpack.h>

static int pk_write(void *data, const char *buf, size_t len)
{
    kith_wire_writer *w = data;
    int rc = kith_buf_append(w->out, buf, len);
    if (rc) {
        w->err = rc;
        return -1;
    }
    return 0;
}

/* A packer bound to the writer; two pointer stores, so one per call. */
static bool start(kith_wire_writer *w, msgpack_packer *pk)
{
    if (w->err)
        return false;
    msgpack_packer_init(pk, w, pk_write);
    return true;
}

/* Header bytes msgpack uses for a str (is_str) or bin of len bytes. */
static size_t blob_hdr_len(size_t len, bool is_str)
{
    if (is_str && len < 32)
        return 1;
    return len < 256 ? 2 : len < 65536 ? 3 : 5;
}

/* Reserve header + body up front so that a value is written whole or not at
 * all (the buffer cap answers with KITH_ETOOBIG before any byte goes out). */
static bool reserve_blob(kith_wire_writer *w, size_t len, bool is_str)
{
    if (len > UINT32_MAX) {
        w->err = KITH_ETOOBIG;
        return false;
    }
    int rc = kith_buf_reserve(w->out, blob_hdr_len(len, is_str) + len);
    if (rc) {
        w->err = rc;
        return false;
    }
    return true;
}

void kith_wire_writer_init(kith_wire_writer *w, kith_buf *out)
{
    w->out = out;
    w->err = out ? 0 : KITH_EINVAL;
}

void kith_wire_map(kith_wire_writer *w, uint32_t pairs)
{
    msgpack_packer pk;
    if (start(w, &pk))
        (void)msgpack_pack_map(&pk, pairs);
}

void kith_wire_array(kith_wire_writer *w, uint32_t n)
{
    msgpack_packer pk;
    if (start(w, &pk))
        (void)msgpack_pack_array(&pk, n);
}

void kith_wire_uint(kith_wire_writer *w, uint64_t v)
{
    msgpack_packer pk;
    if (start(w, &pk))
        (void)msgpack_pack_uint64(&pk, v);
}

void kith_wire_int(kith_wire_writer *w, int64_t v)
{
    msgpack_packer pk;
    if (start(w, &pk))
        (void)msgpack_pack_int64(&pk, v);
}

void kith_wire_bool(kith_wire_writer *w, bool v)
{
    msgpack_packer pk;
    if (start(w, &pk))
        (void)(v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

void kith_wire_nil(kith_wire_writer *w)
{
    msgpack_packer pk;
    if (start(w, &pk))
        (void)msgpack_pack_nil(&pk);
}

void kith_wire_bin(kith_wire_writer *w, const void *p, size_t len)
{
    msgpack_packer pk;
    if (!start(w, &pk) || !reserve_blob(w, len, false))
        return;
    if (msgpack_pack_bin(&pk, len) == 0 && len)
        (void)msgpack_pack_bin_body(&pk, p, len);
}

void kith_wire_str(kith_wire_writer *w, const char *p, size_t len)
{
    msgpack_packer pk;
    if (!start(w, &pk))
        return;
    if (len && !kith_wire_utf8_valid((const uint8_t *)p, len)) {
        w->err = KITH_EINVAL;
        return;
    }
    if (!reserve_blob(w, len, true))
        return;
    if (msgpack_pack_str(&pk, len) == 0 && len)
        (void)msgpack_pack_str_body(&pk, p, len);
}

void kith_wire_raw(kith_wire_writer *w, const void *p, size_t len)
{
    if (w->err)
        return;
    if (len == 0) { /* not a value: the caller lost the bytes it meant to nest */
        w->err = KITH_EINVAL;
        return;
    }
    int rc = kith_buf_append(w->out, p, len);
    if (rc)
        w->err = rc;
}

int kith_wire_finish(kith_wire_writer *w)
{
    return w->err;
}
