/* test_wire: the msgpack reader and writer. Hostile inputs first (declared
 * lengths that lie, depth, value count, trailing and truncated bytes), then
 * every non-canonical variant, then writer -> reader round trips with the
 * exact bytes pinned at every length and integer boundary. */
#include <stdio.h>
#include <stdlib.h>

#include "testenv.h"
#include "wire/wire.h"

/* Largest size the env's allocator was ever asked for, to prove a hostile
 * header never turns into a large allocation. */
typedef struct track {
    test_env t;
    void *(*inner)(void *ctx, void *ptr, size_t size);
    size_t max_size;
    size_t calls;
} track;

static void *track_realloc(void *ctx, void *ptr, size_t size)
{
    track *k = ctx;
    k->calls++;
    if (size > k->max_size)
        k->max_size = size;
    return k->inner(&k->t, ptr, size);
}

static void track_init(track *k)
{
    test_env_init(&k->t, 1);
    k->inner = k->t.env.realloc;
    k->t.env.realloc = track_realloc;
    k->t.env.ctx = k; /* == &k->t: testenv's own free still finds its counters */
    k->max_size = 0;
    k->calls = 0;
}

typedef struct fx {
    test_env t;
    kith_wire_doc *doc;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    test_env_init(&f->t, 7);
    f->doc = calloc(1, sizeof *f->doc); /* ~200 KiB: never on the stack */
    if (!f->doc) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(f->t.allocs, 0);
    free(f->doc);
    free(f);
    return 0;
}

static int parse(fx *f, const uint8_t *d, size_t n, unsigned flags)
{
    return kith_wire_parse(&f->t.env, d, n, KITH_WIRE_MAX_FRAME, flags, f->doc);
}

#define PARSE(f, flags, ...)                                                                       \
    parse((f), (const uint8_t[]) { __VA_ARGS__ }, sizeof((const uint8_t[]) { __VA_ARGS__ }),       \
        (flags))
#define C KITH_WIRE_CANONICAL

/* ---- hostile lengths ---- */

static void test_array32_huge_no_alloc(void **state)
{
    (void)state;
    track k;
    track_init(&k);
    kith_wire_doc *doc = calloc(1, sizeof *doc);
    assert_non_null(doc);
    static const uint8_t arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff }; /* 4 billion elements */
    static const uint8_t map[] = { 0xdf, 0xff, 0xff, 0xff, 0xff }; /* 4 billion pairs */
    static const uint8_t arr1m[] = { 0xdd, 0x00, 0x0f, 0x42, 0x40, 0xc0 }; /* 1e6, one present */
    for (unsigned fl = 0; fl <= C; fl++) {
        assert_int_equal(kith_wire_prescan(arr, sizeof arr, 1 << 20, fl), KITH_EPROTO);
        assert_int_equal(kith_wire_parse(&k.t.env, arr, sizeof arr, 1 << 20, fl, doc), KITH_EPROTO);
        assert_int_equal(kith_wire_prescan(map, sizeof map, 1 << 20, fl), KITH_EPROTO);
        assert_int_equal(kith_wire_parse(&k.t.env, map, sizeof map, 1 << 20, fl, doc), KITH_EPROTO);
        assert_int_equal(
            kith_wire_parse(&k.t.env, arr1m, sizeof arr1m, 1 << 20, fl, doc), KITH_EPROTO);
        assert_int_equal(doc->count, 0);
    }
    /* The reader never allocates through the env at all (msgpack's zone is
     * its only allocation, and it is never reached for these). */
    assert_int_equal(k.calls, 0);
    assert_true(k.max_size <= 64);
    free(doc);
}

static void test_parse_needs_no_env_alloc(void **state)
{
    fx *f = *state;
    f->t.fail_after = 0; /* every env allocation fails */
    assert_int_equal(PARSE(f, C, 0x82, 0x01, 0xa1, 'x', 0x02, 0x92, 0xc0, 0xc3), 0);
    assert_int_equal(f->doc->count, 7);
}

static void test_declared_lengths_beyond_input(void **state)
{
    fx *f = *state;
    for (unsigned fl = 0; fl <= C; fl++) {
        /* str32 / bin32 declaring 4 GiB, and slightly more than what remains. */
        assert_int_equal(PARSE(f, fl, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xc6, 0xff, 0xff, 0xff, 0xff, 'a'), KITH_EPROTO);
        /* (bin32 for 3 bytes is also not canonical; that is seen first) */
        assert_int_equal(
            PARSE(f, fl, 0xc6, 0x00, 0x00, 0x00, 0x03, 1, 2), fl ? KITH_ENONCANON : KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xc4, 0x03, 1, 2), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xa3, 'a', 'b'), KITH_EPROTO);
        /* a map of 3 pairs needs 6 bytes after its header, an array of 3 three. */
        assert_int_equal(PARSE(f, fl, 0x83, 1, 0xc0, 2, 0xc0, 3), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0x93, 1, 2), KITH_EPROTO);
        assert_int_equal(
            PARSE(f, fl, 0xde, 0x00, 0x03, 1, 2, 3, 4, 5), fl ? KITH_ENONCANON : KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xdc, 0x00, 0x03, 1, 2), fl ? KITH_ENONCANON : KITH_EPROTO);
        /* map32 huge, nested inside an array. */
        assert_int_equal(PARSE(f, fl, 0x91, 0xdf, 0x7f, 0xff, 0xff, 0xff, 1, 2), KITH_EPROTO);
        /* Lengths that fit alone but not together with their siblings. */
        assert_int_equal(PARSE(f, fl, 0x92, 0xa2, 'a', 'b'), KITH_EPROTO);
        /* Empty input, and the tag msgpack never uses. */
        assert_int_equal(parse(f, (const uint8_t *)"", 0, fl), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xc1), KITH_EPROTO);
        /* Truncated integer and length headers. */
        assert_int_equal(PARSE(f, fl, 0xcf, 0, 0, 0), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xda, 0), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xdd, 0, 0, 0), KITH_EPROTO);
    }
}

static void test_frame_caps(void **state)
{
    fx *f = *state;
    static const uint8_t b[] = { 0xa3, 'a', 'b', 'c' };
    assert_int_equal(kith_wire_parse(&f->t.env, b, sizeof b, 3, 0, f->doc), KITH_ETOOBIG);
    assert_int_equal(kith_wire_parse(&f->t.env, b, sizeof b, 4, 0, f->doc), 0);
    /* A caller cap above the module's cap does not lift it. */
    size_t big = (size_t)KITH_WIRE_MAX_FRAME + 1;
    uint8_t *p = calloc(1, big);
    assert_non_null(p);
    p[0] = 0xc6; /* bin32 of big-5 bytes: well formed, one byte over the cap */
    kith_put_be32(p + 1, (uint32_t)(big - 5));
    assert_int_equal(kith_wire_parse(&f->t.env, p, big, SIZE_MAX, 0, f->doc), KITH_ETOOBIG);
    kith_put_be32(p + 1, (uint32_t)(big - 6));
    assert_int_equal(kith_wire_parse(&f->t.env, p, big - 1, SIZE_MAX, C, f->doc), 0);
    assert_int_equal(kith_wire_root(f->doc)->len, big - 6);
    free(p);
    assert_int_equal(kith_wire_prescan(b, sizeof b, 4, 0x80), KITH_EINVAL);
}

static void test_depth(void **state)
{
    fx *f = *state;
    uint8_t b[64];
    for (size_t depth = 1; depth <= 17; depth++) {
        /* depth nested one-element arrays around a 0; then the same with an
         * empty innermost array (depth counts containers, empty or not). */
        memset(b, 0x91, depth);
        b[depth] = 0x00;
        int want = depth <= KITH_WIRE_MAX_DEPTH ? 0 : KITH_ETOOBIG;
        assert_int_equal(parse(f, b, depth + 1, C), want);
        assert_int_equal(parse(f, b, depth + 1, 0), want);
        b[depth - 1] = 0x90;
        assert_int_equal(parse(f, b, depth, C), want);
        /* maps: {0: {0: ... 0}} */
        for (size_t i = 0; i < depth; i++) {
            b[2 * i] = 0x81;
            b[2 * i + 1] = 0x00;
        }
        b[2 * depth] = 0xc0;
        assert_int_equal(parse(f, b, 2 * depth + 1, C), want);
    }
    /* Depth 16 accepted: walk it down. */
    memset(b, 0x91, 16);
    b[16] = 0x05;
    assert_int_equal(parse(f, b, 17, C), 0);
    const kith_wire_node *n = kith_wire_root(f->doc);
    for (int i = 0; i < 16; i++)
        n = kith_wire_elem(f->doc, n, 0);
    assert_non_null(n);
    assert_int_equal(n->type, KITH_WIRE_UINT);
    assert_int_equal(n->u, 5);
    /* Depth is per path, not a running total: many siblings at depth 16. */
    memset(b, 0x91, 15);
    b[15] = 0x93;
    b[16] = 0x90;
    b[17] = 0x90;
    b[18] = 0x90;
    assert_int_equal(parse(f, b, 19, C), KITH_ETOOBIG); /* those empties are depth 17 */
    b[16] = b[17] = b[18] = 0x01;
    assert_int_equal(parse(f, b, 19, C), 0);
}

static void test_trailing_bytes(void **state)
{
    fx *f = *state;
    for (unsigned fl = 0; fl <= C; fl++) {
        assert_int_equal(PARSE(f, fl, 0x01, 0x02), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0x81, 0x01, 0x02, 0x00), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0xa1, 'a', 0xc0), KITH_EPROTO);
        assert_int_equal(PARSE(f, fl, 0x90, 0x90), KITH_EPROTO);
    }
}

/* A message with every type in it, written by the writer. */
static void build_sample(kith_wire_writer *w)
{
    static const uint8_t key[32] = { 1, 2, 3 };
    kith_wire_map(w, 9);
    kith_wire_uint(w, 0);
    kith_wire_uint(w, 1);
    kith_wire_uint(w, 1);
    kith_wire_bin(w, key, sizeof key);
    kith_wire_uint(w, 2);
    kith_wire_str(w, "h\xc3\xa9llo", 6);
    kith_wire_uint(w, 3);
    kith_wire_array(w, 3);
    kith_wire_uint(w, 300);
    kith_wire_int(w, -40000);
    kith_wire_map(w, 1);
    kith_wire_uint(w, 7);
    kith_wire_nil(w);
    kith_wire_uint(w, 4);
    kith_wire_bool(w, true);
    kith_wire_uint(w, 5);
    kith_wire_bool(w, false);
    kith_wire_uint(w, 200);
    kith_wire_uint(w, UINT64_MAX);
    kith_wire_uint(w, 1000);
    kith_wire_int(w, INT64_MIN);
    kith_wire_uint(w, 70000);
    kith_wire_str(w, "", 0);
}

static void test_truncated_everywhere(void **state)
{
    fx *f = *state;
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 4096);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    build_sample(&w);
    assert_int_equal(kith_wire_finish(&w), 0);
    assert_int_equal(parse(f, b.data, b.len, C), 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        /* A copy of exactly cut bytes, so ASan sees any read past the end. */
        uint8_t *p = malloc(cut ? cut : 1);
        assert_non_null(p);
        memcpy(p, b.data, cut);
        assert_int_equal(parse(f, p, cut, C), KITH_EPROTO);
        assert_int_equal(parse(f, p, cut, 0), KITH_EPROTO);
        assert_int_equal(kith_wire_prescan(p, cut, cut, C), KITH_EPROTO);
        free(p);
    }
    kith_buf_free(&b);
}

static void test_node_cap(void **state)
{
    fx *f = *state;
    size_t n = KITH_WIRE_MAX_NODES; /* root + n-1 elements = the cap exactly */
    uint8_t *p = malloc(3 + n);
    assert_non_null(p);
    p[0] = 0xdc;
    kith_put_be16(p + 1, (uint16_t)(n - 1));
    memset(p + 3, 0xc0, n - 1);
    assert_int_equal(parse(f, p, 3 + n - 1, C), 0);
    assert_int_equal(f->doc->count, KITH_WIRE_MAX_NODES);
    assert_int_equal(kith_wire_elem(f->doc, kith_wire_root(f->doc), n - 2)->type, KITH_WIRE_NIL);
    assert_null(kith_wire_elem(f->doc, kith_wire_root(f->doc), n - 1));
    kith_put_be16(p + 1, (uint16_t)n);
    p[3 + n - 1] = 0xc0;
    assert_int_equal(parse(f, p, 3 + n, C), KITH_ETOOBIG);
    assert_int_equal(parse(f, p, 3 + n, 0), KITH_ETOOBIG);
    free(p);

    /* Spread over nested containers: 2 arrays of 2047 + root = 4097 values. */
    size_t m = 2047;
    p = malloc(1 + 2 * (3 + m));
    assert_non_null(p);
    p[0] = 0x92;
    for (int k = 0; k < 2; k++) {
        uint8_t *q = p + 1 + (size_t)k * (3 + m);
        q[0] = 0xdc;
        kith_put_be16(q + 1, (uint16_t)m);
        memset(q + 3, 0x01, m);
    }
    assert_int_equal(parse(f, p, 1 + 2 * (3 + m), C), KITH_ETOOBIG);
    kith_put_be16(p + 1 + 3 + m + 1, (uint16_t)(m - 1)); /* second array one shorter */
    assert_int_equal(parse(f, p, 1 + 2 * (3 + m) - 1, C), 0);
    assert_int_equal(f->doc->count, KITH_WIRE_MAX_NODES);
    free(p);
}

/* ---- canonical form ---- */

static void test_noncanonical_variants(void **state)
{
    fx *f = *state;
    struct {
        const char *what;
        uint8_t b[16];
        size_t n;
        int plain; /* result without KITH_WIRE_CANONICAL */
    } cases[] = {
        { "uint8 for 5", { 0xcc, 0x05 }, 2, 0 },
        { "uint16 for 255", { 0xcd, 0x00, 0xff }, 3, 0 },
        { "uint32 for 65535", { 0xce, 0x00, 0x00, 0xff, 0xff }, 5, 0 },
        { "uint64 for 2^32-1", { 0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff }, 9, 0 },
        { "int8 for 5", { 0xd0, 0x05 }, 2, 0 },
        { "int8 for -1", { 0xd0, 0xff }, 2, 0 },
        { "int16 for -128", { 0xd1, 0xff, 0x80 }, 3, 0 },
        { "int32 for -32768", { 0xd2, 0xff, 0xff, 0x80, 0x00 }, 5, 0 },
        { "int64 for 0", { 0xd3, 0, 0, 0, 0, 0, 0, 0, 0 }, 9, 0 },
        { "unsorted keys", { 0x82, 0x02, 0xc0, 0x01, 0xc0 }, 5, 0 },
        { "duplicate keys", { 0x82, 0x01, 0xc0, 0x01, 0xc0 }, 5, 0 },
        { "str key", { 0x81, 0xa1, 'k', 0xc0 }, 4, 0 },
        { "negative key", { 0x81, 0xff, 0xc0 }, 3, 0 },
        { "nil key", { 0x81, 0xc0, 0xc0 }, 3, 0 },
        { "str16 for 3 bytes", { 0xda, 0x00, 0x03, 'a', 'b', 'c' }, 6, 0 },
        { "str8 for 3 bytes", { 0xd9, 0x03, 'a', 'b', 'c' }, 5, 0 },
        { "bin16 for 1 byte", { 0xc5, 0x00, 0x01, 0x00 }, 4, 0 },
        { "array16 for 1", { 0xdc, 0x00, 0x01, 0xc0 }, 4, 0 },
        { "array32 for 0", { 0xdd, 0, 0, 0, 0 }, 5, 0 },
        { "map16 for 1", { 0xde, 0x00, 0x01, 0x01, 0xc0 }, 5, 0 },
        { "map32 for 0", { 0xdf, 0, 0, 0, 0 }, 5, 0 },
        { "float32", { 0xca, 0x3f, 0x80, 0, 0 }, 5, KITH_EPROTO },
        { "float64", { 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0 }, 9, KITH_EPROTO },
        { "fixext1", { 0xd4, 0x01, 0x00 }, 3, KITH_EPROTO },
        { "ext8", { 0xc7, 0x01, 0x05, 0x00 }, 4, KITH_EPROTO },
        { "timestamp ext", { 0xd6, 0xff, 0, 0, 0, 0 }, 6, KITH_EPROTO },
        { "utf8 overlong", { 0xa2, 0xc0, 0x80 }, 3, 0 },
        { "utf8 surrogate", { 0xa3, 0xed, 0xa0, 0x80 }, 4, 0 },
        { "utf8 > U+10FFFF", { 0xa4, 0xf4, 0x90, 0x80, 0x80 }, 5, 0 },
        { "utf8 cut", { 0xa2, 0xe2, 0x82 }, 3, 0 },
        { "utf8 lone cont", { 0xa1, 0x80 }, 2, 0 },
        { "utf8 0xff", { 0xa1, 0xff }, 2, 0 },
        { "nested unsorted", { 0x91, 0x82, 0x05, 0xc0, 0x04, 0xc0 }, 6, 0 },
    };
    for (size_t i = 0; i < KITH_ARRAY_LEN(cases); i++) {
        int rc = parse(f, cases[i].b, cases[i].n, C);
        if (rc != KITH_ENONCANON)
            fprintf(stderr, "case '%s': canonical rc %d\n", cases[i].what, rc);
        assert_int_equal(rc, KITH_ENONCANON);
        assert_int_equal(kith_wire_prescan(cases[i].b, cases[i].n, 64, C), KITH_ENONCANON);
        rc = parse(f, cases[i].b, cases[i].n, 0);
        if (rc != cases[i].plain)
            fprintf(stderr, "case '%s': plain rc %d\n", cases[i].what, rc);
        assert_int_equal(rc, cases[i].plain);
    }
    /* Without the flag, the values are read for what they say. */
    assert_int_equal(PARSE(f, 0, 0xd0, 0x05), 0);
    assert_int_equal(kith_wire_root(f->doc)->type, KITH_WIRE_UINT);
    assert_int_equal(kith_wire_root(f->doc)->u, 5);
    assert_int_equal(PARSE(f, 0, 0xd1, 0xff, 0x80), 0);
    assert_int_equal(kith_wire_root(f->doc)->type, KITH_WIRE_INT);
    assert_int_equal(kith_wire_root(f->doc)->i, -128);
}

static void test_canonical_accepts(void **state)
{
    fx *f = *state;
    /* Boundary values in their shortest forms, and valid UTF-8 of each width. */
    assert_int_equal(PARSE(f, C, 0x7f), 0);
    assert_int_equal(PARSE(f, C, 0xcc, 0x80), 0);
    assert_int_equal(PARSE(f, C, 0xcd, 0x01, 0x00), 0);
    assert_int_equal(PARSE(f, C, 0xce, 0x00, 0x01, 0x00, 0x00), 0);
    assert_int_equal(PARSE(f, C, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0), 0);
    assert_int_equal(PARSE(f, C, 0xe0), 0);
    assert_int_equal(PARSE(f, C, 0xd0, 0xdf), 0);
    assert_int_equal(kith_wire_root(f->doc)->i, -33);
    assert_int_equal(PARSE(f, C, 0xd1, 0xff, 0x7f), 0);
    assert_int_equal(PARSE(f, C, 0xd2, 0xff, 0xff, 0x7f, 0xff), 0);
    assert_int_equal(PARSE(f, C, 0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff), 0);
    assert_int_equal(
        PARSE(f, C, 0xaa, 'a', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80), 0);
    assert_int_equal(PARSE(f, C, 0xa4, 0xf4, 0x8f, 0xbf, 0xbf), 0); /* U+10FFFF */
    assert_int_equal(PARSE(f, C, 0xa3, 0xef, 0xbf, 0xbf), 0); /* U+FFFF */
    assert_int_equal(PARSE(f, C, 0x83, 0x00, 0xc0, 0x7f, 0xc0, 0xcc, 0x80, 0xc0), 0);
    assert_int_equal(PARSE(f, C, 0x80), 0);
    assert_int_equal(PARSE(f, C, 0x90), 0);
    assert_int_equal(PARSE(f, C, 0xc4, 0x00), 0); /* bin8 is the shortest empty bin */
    assert_int_equal(PARSE(f, C, 0xa0), 0);
    /* The same key may repeat in different maps. */
    assert_int_equal(PARSE(f, C, 0x82, 0x01, 0x81, 0x01, 0xc0, 0x02, 0x81, 0x01, 0xc0), 0);

    assert_true(kith_wire_utf8_valid((const uint8_t *)"", 0));
    assert_false(kith_wire_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3)); /* overlong '/' */
    assert_false(kith_wire_utf8_valid((const uint8_t *)"\xf0\x8f\xbf\xbf", 4));
    assert_false(kith_wire_utf8_valid((const uint8_t *)"\xf5\x80\x80\x80", 4));
    assert_false(kith_wire_utf8_valid((const uint8_t *)"\xe2\x28\xa1", 3));
}

/* ---- writer ---- */

typedef struct wcase {
    uint64_t v;
    uint8_t b[9];
    size_t n;
} wcase;

static void expect_bytes(kith_buf *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_writer_ints(void **state)
{
    fx *f = *state;
    static const wcase u[] = {
        { 0, { 0x00 }, 1 },
        { 127, { 0x7f }, 1 },
        { 128, { 0xcc, 0x80 }, 2 },
        { 255, { 0xcc, 0xff }, 2 },
        { 256, { 0xcd, 0x01, 0x00 }, 3 },
        { 65535, { 0xcd, 0xff, 0xff }, 3 },
        { 65536, { 0xce, 0x00, 0x01, 0x00, 0x00 }, 5 },
        { 0xffffffffu, { 0xce, 0xff, 0xff, 0xff, 0xff }, 5 },
        { 0x100000000ull, { 0xcf, 0, 0, 0, 1, 0, 0, 0, 0 }, 9 },
        { UINT64_MAX, { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9 },
    };
    static const wcase s[] = {
        { (uint64_t)-1, { 0xff }, 1 },
        { (uint64_t)-32, { 0xe0 }, 1 },
        { (uint64_t)-33, { 0xd0, 0xdf }, 2 },
        { (uint64_t)-128, { 0xd0, 0x80 }, 2 },
        { (uint64_t)-129, { 0xd1, 0xff, 0x7f }, 3 },
        { (uint64_t)-32768, { 0xd1, 0x80, 0x00 }, 3 },
        { (uint64_t)-32769, { 0xd2, 0xff, 0xff, 0x7f, 0xff }, 5 },
        { (uint64_t)INT32_MIN, { 0xd2, 0x80, 0, 0, 0 }, 5 },
        { (uint64_t)INT32_MIN - 1, { 0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff }, 9 },
        { (uint64_t)INT64_MIN, { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 9 },
        { 5, { 0x05 }, 1 }, /* kith_wire_int of a non-negative value: the uint form */
        { 200, { 0xcc, 200 }, 2 },
    };
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 64);
    kith_wire_writer w;
    for (size_t i = 0; i < KITH_ARRAY_LEN(u) + KITH_ARRAY_LEN(s); i++) {
        bool is_u = i < KITH_ARRAY_LEN(u);
        const wcase *c = is_u ? &u[i] : &s[i - KITH_ARRAY_LEN(u)];
        kith_buf_reset(&b);
        kith_wire_writer_init(&w, &b);
        if (is_u)
            kith_wire_uint(&w, c->v);
        else
            kith_wire_int(&w, (int64_t)c->v);
        assert_int_equal(kith_wire_finish(&w), 0);
        expect_bytes(&b, c->b, c->n);
        assert_int_equal(parse(f, b.data, b.len, C), 0);
        const kith_wire_node *r = kith_wire_root(f->doc);
        if (r->type == KITH_WIRE_UINT)
            assert_int_equal(r->u, c->v);
        else
            assert_int_equal(r->i, (int64_t)c->v);
        assert_int_equal(r->type, (int64_t)c->v < 0 && !is_u ? KITH_WIRE_INT : KITH_WIRE_UINT);
    }
    kith_buf_free(&b);
}

static void check_blob_header(fx *f, int kind, size_t len, const uint8_t *hdr, size_t hlen)
{
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 1 << 20);
    uint8_t *body = malloc(len ? len : 1);
    assert_non_null(body);
    memset(body, 'z', len);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    switch (kind) {
    case 's':
        kith_wire_str(&w, (const char *)body, len);
        break;
    case 'b':
        kith_wire_bin(&w, body, len);
        break;
    case 'a':
        kith_wire_array(&w, (uint32_t)len);
        for (size_t i = 0; i < len; i++)
            kith_wire_nil(&w);
        break;
    default:
        kith_wire_map(&w, (uint32_t)len);
        for (size_t i = 0; i < len; i++) {
            kith_wire_uint(&w, i);
            kith_wire_nil(&w);
        }
        break;
    }
    assert_int_equal(kith_wire_finish(&w), 0);
    assert_true(b.len >= hlen);
    assert_memory_equal(b.data, hdr, hlen);
    size_t elems = kind == 'a' ? len : kind == 'm' ? 2 * len : 0;
    int rc = parse(f, b.data, b.len, C);
    assert_int_equal(rc, elems + 1 > KITH_WIRE_MAX_NODES ? KITH_ETOOBIG : 0);
    if (!rc) {
        const kith_wire_node *r = kith_wire_root(f->doc);
        if (kind == 's' || kind == 'b') {
            assert_int_equal(r->len, len);
            assert_ptr_equal(r->p, b.data + hlen); /* points into the input */
        } else {
            assert_int_equal(r->n, len);
            assert_ptr_equal(r->p, b.data);
            assert_int_equal(r->len, b.len);
        }
    }
    /* Structurally fine even where the node cap refuses it. */
    assert_int_equal(kith_wire_prescan(b.data, b.len, b.len, C), rc);
    free(body);
    kith_buf_free(&b);
}

static void test_writer_lengths(void **state)
{
    fx *f = *state;
    check_blob_header(f, 's', 0, (const uint8_t[]) { 0xa0 }, 1);
    check_blob_header(f, 's', 31, (const uint8_t[]) { 0xbf }, 1);
    check_blob_header(f, 's', 32, (const uint8_t[]) { 0xd9, 32 }, 2);
    check_blob_header(f, 's', 255, (const uint8_t[]) { 0xd9, 255 }, 2);
    check_blob_header(f, 's', 256, (const uint8_t[]) { 0xda, 1, 0 }, 3);
    check_blob_header(f, 's', 65535, (const uint8_t[]) { 0xda, 0xff, 0xff }, 3);
    check_blob_header(f, 's', 65536, (const uint8_t[]) { 0xdb, 0, 1, 0, 0 }, 5);
    check_blob_header(f, 'b', 0, (const uint8_t[]) { 0xc4, 0 }, 2);
    check_blob_header(f, 'b', 255, (const uint8_t[]) { 0xc4, 255 }, 2);
    check_blob_header(f, 'b', 256, (const uint8_t[]) { 0xc5, 1, 0 }, 3);
    check_blob_header(f, 'b', 65535, (const uint8_t[]) { 0xc5, 0xff, 0xff }, 3);
    check_blob_header(f, 'b', 65536, (const uint8_t[]) { 0xc6, 0, 1, 0, 0 }, 5);
    check_blob_header(f, 'a', 0, (const uint8_t[]) { 0x90 }, 1);
    check_blob_header(f, 'a', 15, (const uint8_t[]) { 0x9f }, 1);
    check_blob_header(f, 'a', 16, (const uint8_t[]) { 0xdc, 0, 16 }, 3);
    check_blob_header(f, 'a', 4095, (const uint8_t[]) { 0xdc, 0x0f, 0xff }, 3);
    check_blob_header(f, 'a', 65535, (const uint8_t[]) { 0xdc, 0xff, 0xff }, 3);
    check_blob_header(f, 'a', 65536, (const uint8_t[]) { 0xdd, 0, 1, 0, 0 }, 5);
    check_blob_header(f, 'm', 0, (const uint8_t[]) { 0x80 }, 1);
    check_blob_header(f, 'm', 15, (const uint8_t[]) { 0x8f }, 1);
    check_blob_header(f, 'm', 16, (const uint8_t[]) { 0xde, 0, 16 }, 3);
    check_blob_header(f, 'm', 2047, (const uint8_t[]) { 0xde, 0x07, 0xff }, 3);
    check_blob_header(f, 'm', 65536, (const uint8_t[]) { 0xdf, 0, 1, 0, 0 }, 5);
}

static void test_round_trip(void **state)
{
    fx *f = *state;
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 4096);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    build_sample(&w);
    assert_int_equal(kith_wire_finish(&w), 0);
    for (unsigned fl = 0; fl <= C; fl++) {
        assert_int_equal(parse(f, b.data, b.len, fl), 0);
        const kith_wire_doc *d = f->doc;
        const kith_wire_node *m = kith_wire_root(d);
        assert_int_equal(m->type, KITH_WIRE_MAP);
        assert_int_equal(m->n, 9);
        assert_ptr_equal(m->p, b.data);
        assert_int_equal(m->len, b.len);

        uint64_t u = 99;
        assert_int_equal(kith_wire_get_uint(d, m, 0, &u), 0);
        assert_int_equal(u, 1);
        uint8_t key[32];
        assert_int_equal(kith_wire_get_fixed(d, m, 1, key, 32), 0);
        assert_int_equal(key[0], 1);
        assert_int_equal(key[2], 3);
        assert_int_equal(key[31], 0);
        const uint8_t *bp;
        size_t bl;
        assert_int_equal(kith_wire_get_bin(d, m, 1, &bp, &bl), 0);
        assert_int_equal(bl, 32);
        assert_true(bp > b.data && bp + bl <= b.data + b.len);
        const char *s;
        size_t sl;
        assert_int_equal(kith_wire_get_str(d, m, 2, &s, &sl), 0);
        assert_int_equal(sl, 6);
        assert_memory_equal(s, "h\xc3\xa9llo", 6);
        const kith_wire_node *a;
        assert_int_equal(kith_wire_get_array(d, m, 3, &a), 0);
        assert_int_equal(a->n, 3);
        assert_int_equal(kith_wire_elem(d, a, 0)->u, 300);
        assert_int_equal(kith_wire_elem(d, a, 1)->type, KITH_WIRE_INT);
        assert_int_equal(kith_wire_elem(d, a, 1)->i, -40000);
        const kith_wire_node *inner = kith_wire_elem(d, a, 2);
        assert_int_equal(inner->type, KITH_WIRE_MAP);
        assert_int_equal(kith_wire_get(d, inner, 7)->type, KITH_WIRE_NIL);
        assert_int_equal(inner->len, 3); /* 0x81 0x07 0xc0 */
        assert_memory_equal(inner->p, "\x81\x07\xc0", 3);
        assert_null(kith_wire_elem(d, a, 3));
        bool bv = false;
        assert_int_equal(kith_wire_get_bool(d, m, 4, &bv), 0);
        assert_true(bv);
        assert_int_equal(kith_wire_get_bool(d, m, 5, &bv), 0);
        assert_false(bv);
        assert_int_equal(kith_wire_get_uint(d, m, 200, &u), 0);
        assert_true(u == UINT64_MAX);
        assert_int_equal(kith_wire_get(d, m, 1000)->i, INT64_MIN);
        assert_int_equal(kith_wire_get_str(d, m, 70000, &s, &sl), 0);
        assert_int_equal(sl, 0);
        assert_int_equal(kith_wire_get_map(d, a, 0, &inner), KITH_EPROTO);
    }
    kith_buf_free(&b);
}

static void test_getters_wrong_types(void **state)
{
    fx *f = *state;
    /* {1: "ab", 2: b"\x01\x02\x03", 3: [], 4: 5, 5: -1, 6: nil} */
    assert_int_equal(PARSE(f, C, 0x86, 0x01, 0xa2, 'a', 'b', 0x02, 0xc4, 0x03, 1, 2, 3, 0x03, 0x90,
                         0x04, 0x05, 0x05, 0xff, 0x06, 0xc0),
        0);
    const kith_wire_doc *d = f->doc;
    const kith_wire_node *m = kith_wire_root(d);
    uint64_t u;
    const uint8_t *bp;
    const char *s;
    size_t l;
    const kith_wire_node *a;
    uint8_t fixed[4];
    bool bv;
    assert_int_equal(kith_wire_get_uint(d, m, 1, &u), KITH_EPROTO);
    assert_int_equal(kith_wire_get_uint(d, m, 5, &u), KITH_EPROTO); /* negative is not uint */
    assert_int_equal(kith_wire_get_uint(d, m, 6, &u), KITH_EPROTO);
    assert_int_equal(kith_wire_get_uint(d, m, 9, &u), KITH_ENOENT);
    assert_int_equal(kith_wire_get_bin(d, m, 1, &bp, &l), KITH_EPROTO); /* str is not bin */
    assert_int_equal(kith_wire_get_str(d, m, 2, &s, &l), KITH_EPROTO); /* bin is not str */
    assert_int_equal(kith_wire_get_fixed(d, m, 2, fixed, 4), KITH_EPROTO); /* wrong size */
    assert_int_equal(kith_wire_get_fixed(d, m, 2, fixed, 2), KITH_EPROTO);
    assert_int_equal(kith_wire_get_fixed(d, m, 2, fixed, 3), 0);
    assert_int_equal(kith_wire_get_fixed(d, m, 1, fixed, 2), KITH_EPROTO);
    assert_int_equal(kith_wire_get_array(d, m, 4, &a), KITH_EPROTO);
    assert_null(a);
    assert_int_equal(kith_wire_get_map(d, m, 3, &a), KITH_EPROTO);
    assert_int_equal(kith_wire_get_bool(d, m, 6, &bv), KITH_EPROTO);
    assert_int_equal(kith_wire_get_array(d, m, 3, &a), 0);
    assert_int_equal(a->n, 0);
    assert_null(kith_wire_elem(d, a, 0));
    /* Lookups on a non-map (or NULL) find nothing; typed ones say EPROTO. */
    assert_null(kith_wire_get(d, a, 0));
    assert_null(kith_wire_get(d, NULL, 0));
    assert_null(kith_wire_get(d, kith_wire_get(d, m, 4), 0));
    assert_int_equal(kith_wire_get_uint(d, a, 0, &u), KITH_EPROTO);
    assert_int_equal(kith_wire_get_uint(d, NULL, 0, &u), KITH_EPROTO);
    assert_null(kith_wire_elem(d, m, 0)); /* a map is not an array */
    assert_null(kith_wire_elem(d, NULL, 0));

    /* Non-canonical maps: any keys; getters see only the uint ones, first wins. */
    assert_int_equal(
        PARSE(f, 0, 0x84, 0xa1, 'k', 0x01, 0x07, 0x02, 0xcc, 0x07, 0x03, 0xff, 0x04), 0);
    m = kith_wire_root(d);
    assert_int_equal(kith_wire_get_uint(d, m, 7, &u), 0);
    assert_int_equal(u, 2);
    assert_null(kith_wire_get(d, m, (uint64_t)-1));
}

static void test_writer_errors(void **state)
{
    fx *f = *state;
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 8);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    kith_wire_array(&w, 2);
    kith_wire_bin(&w, "123456", 6); /* 1 + 2 + 6 = 9 > 8: refused whole */
    assert_int_equal(kith_wire_writer_error(&w), KITH_ETOOBIG);
    assert_int_equal(b.len, 1);
    kith_wire_nil(&w); /* sticky: nothing more is written */
    kith_wire_uint(&w, 1);
    assert_int_equal(b.len, 1);
    assert_int_equal(kith_wire_finish(&w), KITH_ETOOBIG);

    /* Exactly at the cap is fine. */
    kith_buf_reset(&b);
    kith_wire_writer_init(&w, &b);
    kith_wire_str(&w, "1234567", 7);
    assert_int_equal(kith_wire_finish(&w), 0);
    assert_int_equal(b.len, 8);
    kith_wire_nil(&w);
    assert_int_equal(kith_wire_finish(&w), KITH_ETOOBIG);
    assert_int_equal(b.len, 8);

    /* Invalid UTF-8 is refused before anything is written. */
    kith_buf_reset(&b);
    kith_wire_writer_init(&w, &b);
    kith_wire_str(&w, "a\xff", 2);
    assert_int_equal(kith_wire_finish(&w), KITH_EINVAL);
    assert_int_equal(b.len, 0);

    /* Allocation failure is sticky too. */
    kith_buf_free(&b);
    kith_buf_init(&b, &f->t.env, 1024);
    f->t.fail_after = 0;
    kith_wire_writer_init(&w, &b);
    kith_wire_uint(&w, 1);
    f->t.fail_after = -1;
    kith_wire_uint(&w, 2);
    assert_int_equal(kith_wire_finish(&w), KITH_ENOMEM);
    assert_int_equal(b.len, 0);

    /* raw: appended as is; empty raw is a caller bug. */
    kith_buf_reset(&b);
    kith_wire_writer_init(&w, &b);
    kith_wire_array(&w, 2);
    kith_wire_raw(&w, "\x81\x01\xc3", 3);
    kith_wire_uint(&w, 9);
    assert_int_equal(kith_wire_finish(&w), 0);
    expect_bytes(&b, (const uint8_t *)"\x92\x81\x01\xc3\x09", 5);
    assert_int_equal(parse(f, b.data, b.len, C), 0);
    kith_wire_raw(&w, "", 0);
    assert_int_equal(kith_wire_finish(&w), KITH_EINVAL);

    kith_wire_writer_init(&w, NULL);
    kith_wire_nil(&w);
    assert_int_equal(kith_wire_finish(&w), KITH_EINVAL);
    kith_buf_free(&b);
}

/* A failed parse leaves nothing behind that looks like a document. */
static void test_failed_parse_clears_doc(void **state)
{
    fx *f = *state;
    assert_int_equal(PARSE(f, C, 0x91, 0x01), 0);
    assert_int_equal(f->doc->count, 2);
    assert_int_equal(PARSE(f, C, 0x91, 0xcc, 0x01), KITH_ENONCANON);
    assert_int_equal(f->doc->count, 0);
}

/* The example of proto/kith.md section 1, byte for byte. */
static void test_proto_example(void **state)
{
    fx *f = *state;
    static const uint8_t want[] = { 0x84, 0x00, 0x01, 0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x02, 0xa3,
        0x68, 0xc3, 0xa9, 0x03, 0x93, 0xff, 0xcd, 0x01, 0x2c, 0xd1, 0xff, 0x38 };
    kith_buf b;
    kith_buf_init(&b, &f->t.env, 64);
    kith_wire_writer w;
    kith_wire_writer_init(&w, &b);
    kith_wire_map(&w, 4);
    kith_wire_uint(&w, 0);
    kith_wire_uint(&w, 1);
    kith_wire_uint(&w, 1);
    kith_wire_bin(&w, "\xaa\xbb", 2);
    kith_wire_uint(&w, 2);
    kith_wire_str(&w, "h\xc3\xa9", 3);
    kith_wire_uint(&w, 3);
    kith_wire_array(&w, 3);
    kith_wire_int(&w, -1);
    kith_wire_int(&w, 300);
    kith_wire_int(&w, -200);
    assert_int_equal(kith_wire_finish(&w), 0);
    expect_bytes(&b, want, sizeof want);
    assert_int_equal(parse(f, want, sizeof want, C), 0);
    kith_buf_free(&b);
    /* The variants the text lists as refused. */
    assert_int_equal(PARSE(f, C, 0x84, 0xcc, 0x00, 0x01, 0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x02, 0xa3,
                         0x68, 0xc3, 0xa9, 0x03, 0x93, 0xff, 0xcd, 0x01, 0x2c, 0xd1, 0xff, 0x38),
        KITH_ENONCANON);
    assert_int_equal(PARSE(f, C, 0x84, 0x00, 0x01, 0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x02, 0xd9, 0x03,
                         0x68, 0xc3, 0xa9, 0x03, 0x93, 0xff, 0xcd, 0x01, 0x2c, 0xd1, 0xff, 0x38),
        KITH_ENONCANON);
    assert_int_equal(
        PARSE(f, C, 0x84, 0x00, 0x01, 0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x02, 0xa3, 0x68, 0xc3, 0xa9,
            0x03, 0xdc, 0x00, 0x03, 0xff, 0xcd, 0x01, 0x2c, 0xd1, 0xff, 0x38),
        KITH_ENONCANON);
    assert_int_equal(PARSE(f, C, 0x84, 0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x00, 0x01, 0x02, 0xa3, 0x68,
                         0xc3, 0xa9, 0x03, 0x93, 0xff, 0xcd, 0x01, 0x2c, 0xd1, 0xff, 0x38),
        KITH_ENONCANON);
    assert_int_equal(
        PARSE(f, C, 0x84, 0x00, 0x01, 0x01, 0xc4, 0x02, 0xaa, 0xbb, 0x02, 0xa3, 0x68, 0xc3, 0xa9,
            0x03, 0x93, 0xff, 0xcd, 0x01, 0x2c, 0xd2, 0xff, 0xff, 0xff, 0x38),
        KITH_ENONCANON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array32_huge_no_alloc),
        cmocka_unit_test_setup_teardown(test_parse_needs_no_env_alloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_lengths_beyond_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noncanonical_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canonical_accepts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_ints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getters_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_parse_clears_doc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proto_example, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
