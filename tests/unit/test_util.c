/* Unit tests for util: buffers, hex, map. */
#include "testenv.h"
#include "util/map.h"
#include "util/util.h"

static void test_buf_cap(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 1);
    kith_buf b;
    kith_buf_init(&b, &t.env, 10);
    assert_int_equal(kith_buf_append(&b, "12345", 5), 0);
    assert_int_equal(kith_buf_append(&b, "123456", 6), KITH_ETOOBIG);
    assert_int_equal(b.len, 5);
    assert_int_equal(kith_buf_append(&b, "12345", 5), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(kith_buf_append_u8(&b, 1), KITH_ETOOBIG);
    kith_buf_consume(&b, 3);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "45123", 5);
    /* A huge append can't overflow the size arithmetic. */
    assert_int_equal(kith_buf_append(&b, "x", SIZE_MAX), KITH_ETOOBIG);
    kith_buf_free(&b);
    assert_int_equal(t.allocs, 0);
}

static void test_buf_nomem(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 1);
    kith_buf b;
    kith_buf_init(&b, &t.env, 1000);
    t.fail_after = 0;
    assert_int_equal(kith_buf_append(&b, "abc", 3), KITH_ENOMEM);
    assert_int_equal(b.len, 0);
    t.fail_after = -1;
    kith_buf_free(&b);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t in[3] = { 0x00, 0xab, 0xff }, out[3];
    char s[7];
    kith_hex(s, in, 3);
    assert_string_equal(s, "00abff");
    assert_int_equal(kith_unhex(out, 3, "00ABff", 6), 0);
    assert_memory_equal(in, out, 3);
    assert_int_equal(kith_unhex(out, 3, "00abf", 5), KITH_EINVAL);
    assert_int_equal(kith_unhex(out, 3, "00abfg", 6), KITH_EINVAL);
}

static void test_map(void **state)
{
    (void)state;
    test_env t;
    test_env_init(&t, 7);
    kith_map m;
    kith_map_init(&m, &t.env, 1000);
    uint8_t key[32];
    for (uint64_t i = 0; i < 1000; i++) {
        kith_random(&t.env, key, 32);
        key[0] = (uint8_t)i; /* keep keys distinct */
        key[1] = (uint8_t)(i >> 8);
        assert_int_equal(kith_map_put(&m, key, i), 0);
    }
    assert_int_equal(m.count, 1000);
    /* Over the cap: refused, nothing changes. */
    kith_random(&t.env, key, 32);
    key[0] = 0xff;
    key[1] = 0xff;
    assert_int_equal(kith_map_put(&m, key, 1), KITH_ETOOBIG);
    assert_false(kith_map_get(&m, key, NULL));
    /* Replay the RNG and find every key with its value. */
    test_env_init(&t, 7);
    t.allocs = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t v = 0;
        kith_random(&t.env, key, 32);
        key[0] = (uint8_t)i;
        key[1] = (uint8_t)(i >> 8);
        assert_true(kith_map_get(&m, key, &v));
        assert_int_equal(v, i);
    }
    assert_int_equal(kith_map_put(&m, key, 5), 0); /* overwrite */
    uint64_t v;
    assert_true(kith_map_get(&m, key, &v));
    assert_int_equal(v, 5);
    assert_int_equal(m.count, 1000);
    kith_map_free(&m);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(kith_strerror(KITH_ENOMEM), "out of memory");
    assert_string_equal(kith_strerror(12345), "unknown error");
    for (int e = 0; e >= KITH_EPASS; e--)
        assert_string_not_equal(kith_strerror(e), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_nomem),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
