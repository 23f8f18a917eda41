/* wire: the only user of msgpack-c. Everything above sees kith's own types.
 *
 * Reading: kith_wire_parse() first runs a non-allocating pre-scan over the
 * bytes (frame within its cap, every declared array/map/str/bin length fits in
 * the bytes that remain, nesting depth at most KITH_WIRE_MAX_DEPTH, at most
 * KITH_WIRE_MAX_NODES values in all), then unpacks with msgpack-c and copies
 * the tree into a flat, bounded kith_wire_doc whose str/bin values point into
 * the caller's input bytes. With KITH_WIRE_CANONICAL it also rejects any
 * encoding that is not the one canonical form (see proto/kith.md): shortest
 * integer and length encodings, maps keyed by unsigned integers in strictly
 * ascending order, no floats, no extension types.
 *
 * Writing: kith_wire_writer emits the canonical encoding into a kith_buf. */
#ifndef KITH_WIRE_H
#define KITH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/err.h"
#include "util/util.h"

#define KITH_WIRE_MAX_DEPTH 16
#define KITH_WIRE_MAX_NODES 4096
#define KITH_WIRE_MAX_FRAME (1u << 20) /* 1 MiB: largest message kith decodes */

enum kith_wire_type {
    KITH_WIRE_NIL = 1,
    KITH_WIRE_BOOL,
    KITH_WIRE_UINT, /* non-negative integer */
    KITH_WIRE_INT, /* negative integer */
    KITH_WIRE_STR,
    KITH_WIRE_BIN,
    KITH_WIRE_ARRAY,
    KITH_WIRE_MAP,
};

typedef struct kith_wire_node {
    uint8_t type;
    uint32_t n; /* ARRAY: elements; MAP: pairs */
    uint32_t first; /* index of first child; MAP children alternate key, value */
    uint64_t u; /* UINT, BOOL */
    int64_t i; /* INT */
    const uint8_t *p; /* STR, BIN: points into the parsed input */
    size_t len;
    /* ARRAY, MAP: p/len are the container's exact encoded bytes (header
     * included), also inside the parsed input: hash or verify a nested signed
     * structure over these, never over a re-encoding. */
} kith_wire_node;

typedef struct kith_wire_doc {
    size_t count;
    kith_wire_node nodes[KITH_WIRE_MAX_NODES];
} kith_wire_doc; /* ~160 KiB: allocate it, don't put it on the stack */

#define KITH_WIRE_CANONICAL 1u

/* Parse exactly one msgpack value occupying all of data[0..len). len must be
 * <= max_len (the caller's cap for this kind of frame, <= KITH_WIRE_MAX_FRAME).
 * Errors: KITH_ETOOBIG, KITH_EPROTO, KITH_ENONCANON, KITH_ENOMEM. */
KITH_WUR int kith_wire_parse(const kith_env *env, const uint8_t *data, size_t len, size_t max_len,
    unsigned flags, kith_wire_doc *doc);
/* The pre-scan alone (exposed for tests and fuzzing). */
KITH_WUR int kith_wire_prescan(const uint8_t *data, size_t len, size_t max_len, unsigned flags);

static inline const kith_wire_node *kith_wire_root(const kith_wire_doc *doc)
{
    return &doc->nodes[0];
}
/* i-th element of an ARRAY, or NULL. */
const kith_wire_node *kith_wire_elem(const kith_wire_doc *doc, const kith_wire_node *arr, size_t i);
/* Value for an unsigned-integer key in a MAP, or NULL if absent. */
const kith_wire_node *kith_wire_get(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key);

/* Typed getters: KITH_ENOENT when absent, KITH_EPROTO on a wrong type or size. */
KITH_WUR int kith_wire_get_uint(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, uint64_t *out);
KITH_WUR int kith_wire_get_bin(const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key,
    const uint8_t **p, size_t *len);
/* BIN of exactly `len` bytes, copied out. */
KITH_WUR int kith_wire_get_fixed(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, uint8_t *out, size_t len);
KITH_WUR int kith_wire_get_str(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, const char **p, size_t *len);
KITH_WUR int kith_wire_get_array(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, const kith_wire_node **arr);
KITH_WUR int kith_wire_get_map(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, const kith_wire_node **out);
KITH_WUR int kith_wire_get_bool(
    const kith_wire_doc *doc, const kith_wire_node *map, uint64_t key, bool *out);

/* Writer. Errors are sticky: check kith_wire_writer_error() (or the return of
 * kith_wire_finish) once at the end. Ints and lengths always take their
 * shortest form; the caller writes map keys in ascending order. */
typedef struct kith_wire_writer {
    kith_buf *out;
    int err;
} kith_wire_writer;

void kith_wire_writer_init(kith_wire_writer *w, kith_buf *out);
void kith_wire_map(kith_wire_writer *w, uint32_t pairs);
void kith_wire_array(kith_wire_writer *w, uint32_t n);
void kith_wire_uint(kith_wire_writer *w, uint64_t v);
/* Any int64: negative values take the shortest negative form, the others are
 * written as kith_wire_uint would. */
void kith_wire_int(kith_wire_writer *w, int64_t v);
void kith_wire_bool(kith_wire_writer *w, bool v);
void kith_wire_nil(kith_wire_writer *w);
void kith_wire_bin(kith_wire_writer *w, const void *p, size_t len);
/* KITH_EINVAL (sticky) unless p[0..len) is valid UTF-8: canonical readers
 * refuse anything else. */
void kith_wire_str(kith_wire_writer *w, const char *p, size_t len);
/* Raw pre-encoded msgpack value (already canonical), e.g. a nested signed op. */
void kith_wire_raw(kith_wire_writer *w, const void *p, size_t len);
KITH_WUR int kith_wire_finish(kith_wire_writer *w);
static inline int kith_wire_writer_error(const kith_wire_writer *w)
{
    return w->err;
}
/* Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF), the one the
 * canonical reader and kith_wire_str apply. */
bool kith_wire_utf8_valid(const uint8_t *s, size_t len);

#endif
