/* test_store: the store's promises, on both backends where they apply:
 * records come back in order, pending ones too; only synced records survive
 * a crash; a torn or corrupt tail is cut at the last whole record, whatever
 * byte the cut falls on; blobs are replaced whole; files are private; bad
 * names and oversized records are refused; a failed write loses nothing. */
#define _DEFAULT_SOURCE
#include "testenv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "store/store.h"

enum { BE_FILE, BE_MEM };

/* ---- helpers ---- */

static int g_warns, g_errors;
static char g_last_line[512];

static void cap_log(void *ctx, int level, const char *line)
{
    (void)ctx;
    if (level == KITH_LOG_WARN)
        g_warns++;
    if (level == KITH_LOG_ERROR)
        g_errors++;
    snprintf(g_last_line, sizeof g_last_line, "%s", line);
}

static void env_init(test_env *t)
{
    test_env_init(t, 42);
    t->env.log = cap_log;
    t->env.log_level = KITH_LOG_DEBUG;
    g_warns = g_errors = 0;
    g_last_line[0] = '\0';
}

#define MAX_RECS 64
typedef struct recs {
    size_t n;
    size_t len[MAX_RECS];
    uint8_t hash[MAX_RECS][16];
    uint8_t head[MAX_RECS][32];
} recs;

static int collect(void *ud, const uint8_t *rec, size_t len)
{
    recs *r = ud;
    if (r->n >= MAX_RECS)
        return -100;
    r->len[r->n] = len;
    crypto_generichash(r->hash[r->n], 16, rec, len, NULL, 0);
    memset(r->head[r->n], 0, 32);
    memcpy(r->head[r->n], rec, len < 32 ? len : 32);
    r->n++;
    return 0;
}

/* Record i of a test log: length 5 + 3*i, bytes derived from i. */
static size_t mkrec(uint8_t *out, size_t i)
{
    size_t len = 5 + 3 * i;
    for (size_t k = 0; k < len; k++)
        out[k] = (uint8_t)(i * 31 + k * 7 + 1);
    return len;
}

static void assert_rec(const recs *r, size_t idx, const uint8_t *rec, size_t len)
{
    assert_true(idx < r->n);
    assert_int_equal(r->len[idx], len);
    uint8_t h[16];
    crypto_generichash(h, 16, rec, len, NULL, 0);
    assert_memory_equal(r->hash[idx], h, 16);
}

static int read_all(kith_store *st, const char *log, recs *r)
{
    memset(r, 0, sizeof *r);
    return kith_store_read(st, log, collect, r);
}

/* Most tests run on tmpfs when there is one: they fsync hundreds of times,
 * and on a shared, busy disk that alone can take seconds. The file system
 * calls and their semantics are the same; test_round_trip and
 * test_disk_format still use the disk under /tmp. */
static char *fast_tmpdir(void)
{
    struct stat sb;
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0) {
        char tmpl[] = "/dev/shm/kith-test-XXXXXX";
        if (mkdtemp(tmpl))
            return strdup(tmpl);
    }
    return test_tmpdir();
}

static void fast_rmrf(const char *dir)
{
    if (dir && strncmp(dir, "/dev/shm/kith-test-", 19) == 0 && !strchr(dir, '\'')) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "rm -rf %s failed\n", dir);
        return;
    }
    test_rmrf(dir);
}

static void open_be(int be, test_env *t, const char *dir, kith_store **st)
{
    if (be == BE_FILE)
        assert_int_equal(kith_store_open_file(&t->env, dir, st), 0);
    else
        assert_int_equal(kith_store_open_mem(&t->env, st), 0);
}

static void store_path(char *out, size_t n, const char *tmp)
{
    snprintf(out, n, "%s/home/store", tmp);
}

static void log_path(char *out, size_t n, const char *sdir, const char *log)
{
    snprintf(out, n, "%s/logs/%s.log", sdir, log);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void spit(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

typedef struct names {
    int n;
    char name[8][KITH_STORE_MAX_NAME + 1];
} names;

static int collect_name(void *ud, const char *name)
{
    names *nm = ud;
    if (nm->n >= 8)
        return -100;
    snprintf(nm->name[nm->n++], KITH_STORE_MAX_NAME + 1, "%s", name);
    return 0;
}

static int count_name(const names *nm, const char *name)
{
    int c = 0;
    for (int i = 0; i < nm->n; i++)
        c += strcmp(nm->name[i], name) == 0;
    return c;
}

/* ---- tests ---- */

static void test_round_trip(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = test_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        uint8_t rec[64];
        for (size_t i = 0; i < 5; i++) {
            size_t len = mkrec(rec, i);
            assert_int_equal(kith_store_append(st, "room-a", rec, len), 0);
        }
        assert_int_equal(kith_store_pending(st), 5);
        assert_int_equal(kith_store_sync(st), 0);
        assert_int_equal(kith_store_pending(st), 0);
        /* Read includes pending records after the durable ones. */
        assert_int_equal(kith_store_append(st, "room-a", (const uint8_t *)"late", 4), 0);
        assert_int_equal(kith_store_pending(st), 1);
        recs r;
        assert_int_equal(read_all(st, "room-a", &r), 0);
        assert_int_equal(r.n, 6);
        for (size_t i = 0; i < 5; i++) {
            size_t len = mkrec(rec, i);
            assert_rec(&r, i, rec, len);
        }
        assert_rec(&r, 5, (const uint8_t *)"late", 4);
        /* A log never written reads as empty; other logs are separate. */
        assert_int_equal(read_all(st, "room-b", &r), 0);
        assert_int_equal(r.n, 0);
        assert_int_equal(kith_store_sync(st), 0);
        assert_int_equal(read_all(st, "room-a", &r), 0);
        assert_int_equal(r.n, 6);
        kith_store_close(st);
        if (be == BE_FILE) {
            /* close synced; reopen sees all six */
            open_be(be, &t, dir, &st);
            assert_int_equal(read_all(st, "room-a", &r), 0);
            assert_int_equal(r.n, 6);
            assert_rec(&r, 5, (const uint8_t *)"late", 4);
            kith_store_close(st);
            assert_int_equal(g_warns, 0);
        }
        assert_int_equal(t.allocs, 0);
        test_rmrf(tmp);
        free(tmp);
    }
}

typedef struct posrec {
    size_t n;
    uint64_t pos[MAX_RECS];
} posrec;

static int collect_pos(void *ud, uint64_t pos, const uint8_t *rec, size_t len)
{
    (void)rec;
    (void)len;
    posrec *p = ud;
    if (p->n >= MAX_RECS)
        return -100;
    p->pos[p->n++] = pos;
    return 0;
}

static void assert_get(test_env *t, kith_store *st, const char *log, uint64_t pos, size_t i)
{
    uint8_t rec[64];
    size_t len = mkrec(rec, i);
    kith_buf b;
    kith_buf_init(&b, &t->env, 1024);
    assert_int_equal(kith_store_get(st, log, pos, &b), 0);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, rec, len);
    kith_buf_free(&b);
}

/* Positions: append_at gives each record a position that get reads back,
 * pending or durable, after a reopen too, and read_at reports the same
 * ones. A position that is no record's start is refused. */
static void test_positions(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        uint8_t rec[64];
        uint64_t pos[8];
        for (size_t i = 0; i < 8; i++) {
            size_t len = mkrec(rec, i);
            assert_int_equal(kith_store_append_at(st, "room-a", rec, len, &pos[i]), 0);
            if (i == 4)
                assert_int_equal(kith_store_sync(st), 0);
        }
        /* 0-4 durable, 5-7 pending */
        for (size_t i = 0; i < 8; i++)
            assert_get(&t, st, "room-a", pos[i], i);
        assert_int_equal(pos[0], 0);
        assert_int_equal(pos[1], KITH_STORE_REC_HEADER + mkrec(rec, 0));
        posrec pr = { 0 };
        assert_int_equal(kith_store_read_at(st, "room-a", collect_pos, &pr), 0);
        assert_int_equal(pr.n, 8);
        assert_memory_equal(pr.pos, pos, sizeof pos);
        kith_buf b;
        kith_buf_init(&b, &t.env, 1024);
        assert_int_equal(kith_store_get(st, "room-a", pos[1] + 1, &b), KITH_ENOENT);
        assert_int_equal(kith_store_get(st, "room-a", pos[6] + 1, &b), KITH_ENOENT);
        assert_int_equal(kith_store_get(st, "room-a", pos[7] + 1000, &b), KITH_ENOENT);
        assert_int_equal(b.len, 0);
        kith_buf_free(&b);
        assert_int_equal(kith_store_sync(st), 0);
        for (size_t i = 0; i < 8; i++)
            assert_get(&t, st, "room-a", pos[i], i);
        kith_store_close(st);
        if (be == BE_FILE) {
            /* After a reopen: positions still hold, appends continue after them. */
            open_be(be, &t, dir, &st);
            for (size_t i = 0; i < 8; i++)
                assert_get(&t, st, "room-a", pos[i], i);
            uint64_t p8;
            size_t len = mkrec(rec, 8);
            assert_int_equal(kith_store_append_at(st, "room-a", rec, len, &p8), 0);
            assert_int_equal(p8, pos[7] + KITH_STORE_REC_HEADER + mkrec(rec, 7));
            assert_get(&t, st, "room-a", p8, 8);
            kith_store_close(st);
            assert_int_equal(g_warns, 0);
        }
        assert_int_equal(t.allocs, 0);
        fast_rmrf(tmp);
        free(tmp);
    }
}

/* The bytes of a record on disk, exactly as proto/kith.md section 7 shows. */
static void test_disk_format(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = test_tmpdir();
    char dir[256], lp[300];
    store_path(dir, sizeof dir, tmp);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(kith_store_append(st, "r", (const uint8_t *)"hello", 5), 0);
    assert_int_equal(kith_store_sync(st), 0);
    kith_store_close(st);
    static const uint8_t want[] = { 0x00, 0x00, 0x00, 0x05, 0x46, 0xfb, 0x74, 0x08, 0xd4, 0xf2,
        0x85, 0x22, 'h', 'e', 'l', 'l', 'o' };
    log_path(lp, sizeof lp, dir, "r");
    size_t n;
    uint8_t *got = slurp(lp, &n);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(got, want, sizeof want);
    free(got);
    test_rmrf(tmp);
    free(tmp);
}

/* A process that dies after sync keeps exactly what was synced. */
static void test_reopen_sees_only_synced(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256];
    store_path(dir, sizeof dir, tmp);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kith_store *st;
        if (kith_store_open_file(&t.env, dir, &st))
            _exit(2);
        if (kith_store_append(st, "a", (const uint8_t *)"one", 3)
            || kith_store_append(st, "b", (const uint8_t *)"two", 3) || kith_store_sync(st)
            || kith_store_append(st, "a", (const uint8_t *)"lost", 4))
            _exit(3);
        _exit(0); /* a crash: no close, no sync */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    recs r;
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 1);
    assert_rec(&r, 0, (const uint8_t *)"one", 3);
    assert_int_equal(read_all(st, "b", &r), 0);
    assert_int_equal(r.n, 1);
    kith_store_close(st);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

#define TORN_N 8

/* Write TORN_N records; return their boundaries (b[i] = start of record i,
 * b[TORN_N] = end) and the log file's bytes. */
static uint8_t *torn_setup(test_env *t, const char *dir, uint64_t b[TORN_N + 1], size_t *flen)
{
    kith_store *st;
    open_be(BE_FILE, t, dir, &st);
    uint8_t rec[64];
    b[0] = 0;
    for (size_t i = 0; i < TORN_N; i++) {
        size_t len = mkrec(rec, i);
        assert_int_equal(kith_store_append(st, "torn", rec, len), 0);
        b[i + 1] = b[i] + 12 + len;
    }
    assert_int_equal(kith_store_sync(st), 0);
    kith_store_close(st);
    char lp[300];
    log_path(lp, sizeof lp, dir, "torn");
    uint8_t *orig = slurp(lp, flen);
    assert_int_equal(*flen, b[TORN_N]);
    return orig;
}

/* Open, read and check that exactly `whole` records come back, the file was
 * cut to their end, then append one record and check it lands after them. */
static void torn_check(
    test_env *t, const char *dir, const uint64_t b[TORN_N + 1], size_t whole, bool expect_warn)
{
    char lp[300];
    log_path(lp, sizeof lp, dir, "torn");
    g_warns = 0;
    kith_store *st;
    open_be(BE_FILE, t, dir, &st);
    recs r;
    assert_int_equal(read_all(st, "torn", &r), 0);
    assert_int_equal(r.n, whole);
    uint8_t rec[64];
    for (size_t i = 0; i < whole; i++) {
        size_t len = mkrec(rec, i);
        assert_rec(&r, i, rec, len);
    }
    assert_int_equal(file_size(lp), (off_t)b[whole]);
    assert_int_equal(g_warns, expect_warn ? 1 : 0);
    if (expect_warn)
        assert_non_null(strstr(g_last_line, "cut"));
    assert_int_equal(kith_store_append(st, "torn", (const uint8_t *)"after", 5), 0);
    assert_int_equal(kith_store_sync(st), 0);
    kith_store_close(st);
    open_be(BE_FILE, t, dir, &st);
    assert_int_equal(read_all(st, "torn", &r), 0);
    assert_int_equal(r.n, whole + 1);
    for (size_t i = 0; i < whole; i++) {
        size_t len = mkrec(rec, i);
        assert_rec(&r, i, rec, len);
    }
    assert_rec(&r, whole, (const uint8_t *)"after", 5);
    kith_store_close(st);
    assert_int_equal(g_warns, expect_warn ? 1 : 0);
}

/* The test: cut the file at every byte offset within the last three
 * records; whatever the offset, the whole records before it come back. */
static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], lp[300];
    store_path(dir, sizeof dir, tmp);
    uint64_t b[TORN_N + 1];
    size_t flen;
    uint8_t *orig = torn_setup(&t, dir, b, &flen);
    log_path(lp, sizeof lp, dir, "torn");
    size_t tried = 0;
    for (uint64_t off = b[TORN_N - 3]; off <= flen; off++) {
        spit(lp, orig, (size_t)off);
        size_t whole = 0;
        while (whole < TORN_N && b[whole + 1] <= off)
            whole++;
        torn_check(&t, dir, b, whole, off != b[whole]);
        tried++;
    }
    assert_true(tried > 3 * 12);
    assert_int_equal(t.allocs, 0);
    free(orig);
    fast_rmrf(tmp);
    free(tmp);
}

/* A flipped byte anywhere in a record (length, checksum, or bytes) drops it
 * and everything after it, and nothing before it. */
static void test_corrupt_record(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], lp[300];
    store_path(dir, sizeof dir, tmp);
    uint64_t b[TORN_N + 1];
    size_t flen;
    uint8_t *orig = torn_setup(&t, dir, b, &flen);
    log_path(lp, sizeof lp, dir, "torn");
    uint8_t *bad = malloc(flen);
    assert_non_null(bad);

    /* middle of the last record's bytes */
    memcpy(bad, orig, flen);
    bad[(b[TORN_N - 1] + 12 + b[TORN_N]) / 2] ^= 0x01;
    spit(lp, bad, flen);
    torn_check(&t, dir, b, TORN_N - 1, true);

    /* its checksum */
    memcpy(bad, orig, flen);
    bad[b[TORN_N - 1] + 6] ^= 0x80;
    spit(lp, bad, flen);
    torn_check(&t, dir, b, TORN_N - 1, true);

    /* a length of 0, then one over the cap, in a middle record */
    memcpy(bad, orig, flen);
    memset(bad + b[3], 0, 4);
    spit(lp, bad, flen);
    torn_check(&t, dir, b, 3, true);
    memcpy(bad, orig, flen);
    bad[b[3]] = 0x00;
    bad[b[3] + 1] = 0x10;
    bad[b[3] + 2] = 0x00;
    bad[b[3] + 3] = 0x01;
    spit(lp, bad, flen);
    torn_check(&t, dir, b, 3, true);

    /* a length that points past the end of the file */
    memcpy(bad, orig, flen);
    bad[b[0] + 2] = 0x7f;
    spit(lp, bad, flen);
    torn_check(&t, dir, b, 0, true);

    /* garbage after whole records */
    uint8_t *more = malloc(flen + 40);
    assert_non_null(more);
    memcpy(more, orig, flen);
    memset(more + flen, 0xff, 40);
    spit(lp, more, flen + 40);
    torn_check(&t, dir, b, TORN_N, true);

    free(more);
    free(bad);
    free(orig);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

/* A torn tail must be cut before a sync writes after it, even when the log
 * was never read in this session; otherwise new records would be stranded
 * behind garbage. */
static void test_sync_cuts_unread_tail(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], lp[300];
    store_path(dir, sizeof dir, tmp);
    uint64_t b[TORN_N + 1];
    size_t flen;
    uint8_t *orig = torn_setup(&t, dir, b, &flen);
    log_path(lp, sizeof lp, dir, "torn");
    spit(lp, orig, flen - 3);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(kith_store_append(st, "torn", (const uint8_t *)"after", 5), 0);
    assert_int_equal(kith_store_sync(st), 0);
    assert_int_equal(g_warns, 1);
    kith_store_close(st);
    open_be(BE_FILE, &t, dir, &st);
    recs r;
    assert_int_equal(read_all(st, "torn", &r), 0);
    assert_int_equal(r.n, TORN_N);
    assert_rec(&r, TORN_N - 1, (const uint8_t *)"after", 5);
    kith_store_close(st);
    assert_int_equal(g_warns, 1);
    free(orig);
    fast_rmrf(tmp);
    free(tmp);
}

static void test_blobs(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        kith_buf out;
        kith_buf_init(&out, &t.env, KITH_STORE_MAX_BLOB + 16);
        assert_int_equal(kith_store_blob_get(st, "identity.key", &out), KITH_ENOENT);
        assert_int_equal(out.len, 0);
        assert_int_equal(kith_store_blob_put(st, "identity.key", (const uint8_t *)"first", 5), 0);
        assert_int_equal(kith_store_blob_put(st, "identity.key", (const uint8_t *)"second!", 7), 0);
        /* get appends to what out already holds */
        assert_int_equal(kith_buf_append(&out, "X", 1), 0);
        assert_int_equal(kith_store_blob_get(st, "identity.key", &out), 0);
        assert_int_equal(out.len, 8);
        assert_memory_equal(out.data, "Xsecond!", 8);
        /* empty blob */
        kith_buf_reset(&out);
        assert_int_equal(kith_store_blob_put(st, "empty", NULL, 0), 0);
        assert_int_equal(kith_store_blob_get(st, "empty", &out), 0);
        assert_int_equal(out.len, 0);
        /* an out buffer too small is KITH_ETOOBIG and left as it was */
        kith_buf small;
        kith_buf_init(&small, &t.env, 4);
        assert_int_equal(kith_store_blob_get(st, "identity.key", &small), KITH_ETOOBIG);
        assert_int_equal(small.len, 0);
        kith_buf_free(&small);
        /* the cap */
        uint8_t *big = calloc(1, KITH_STORE_MAX_BLOB + 1);
        assert_non_null(big);
        assert_int_equal(
            kith_store_blob_put(st, "big", big, KITH_STORE_MAX_BLOB + 1), KITH_ETOOBIG);
        assert_int_equal(kith_store_blob_put(st, "big", big, KITH_STORE_MAX_BLOB), 0);
        kith_buf_reset(&out);
        assert_int_equal(kith_store_blob_get(st, "big", &out), 0);
        assert_int_equal(out.len, KITH_STORE_MAX_BLOB);
        kith_store_close(st);
        if (be == BE_FILE) {
            /* durable across reopen; a file grown past the cap is refused */
            open_be(be, &t, dir, &st);
            kith_buf_reset(&out);
            assert_int_equal(kith_store_blob_get(st, "identity.key", &out), 0);
            assert_int_equal(out.len, 7);
            char bp[300];
            snprintf(bp, sizeof bp, "%s/big", dir);
            spit(bp, big, KITH_STORE_MAX_BLOB);
            int fd = open(bp, O_WRONLY | O_APPEND);
            assert_int_equal(write(fd, "z", 1), 1);
            close(fd);
            kith_buf_reset(&out);
            assert_int_equal(kith_store_blob_get(st, "big", &out), KITH_ETOOBIG);
            assert_int_equal(out.len, 0);
            kith_store_close(st);
        }
        free(big);
        kith_buf_free(&out);
        assert_int_equal(t.allocs, 0);
        fast_rmrf(tmp);
        free(tmp);
    }
}

static void test_modes(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], p[300];
    store_path(dir, sizeof dir, tmp);
    /* A umask that would strip bits we need: the store must still end up
     * with exactly 0700 and 0600. */
    mode_t old = umask(0277);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(kith_store_append(st, "r", (const uint8_t *)"x", 1), 0);
    assert_int_equal(kith_store_sync(st), 0);
    assert_int_equal(kith_store_blob_put(st, "b", (const uint8_t *)"y", 1), 0);
    kith_store_close(st);
    umask(old);
    struct stat sb;
    snprintf(p, sizeof p, "%s/home", tmp); /* a parent we created */
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(p, sizeof p, "%s/logs", dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    log_path(p, sizeof p, dir, "r");
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s/b", dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s/.b.tmp", dir);
    assert_int_equal(stat(p, &sb), -1); /* no temporary left behind */
    fast_rmrf(tmp);
    free(tmp);
}

static void test_refuse_open_dir(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], p[300];
    snprintf(dir, sizeof dir, "%s/s", tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    static const mode_t bad[] = { 0777, 0750, 0701, 0710, 0702 };
    kith_store *st = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(dir, bad[i]), 0);
        g_errors = 0;
        assert_int_equal(kith_store_open_file(&t.env, dir, &st), KITH_EPERM);
        assert_int_equal(g_errors, 1);
        assert_non_null(strstr(g_last_line, "chmod 700"));
    }
    /* the logs directory too */
    assert_int_equal(chmod(dir, 0700), 0);
    snprintf(p, sizeof p, "%s/logs", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, 0755), 0);
    assert_int_equal(kith_store_open_file(&t.env, dir, &st), KITH_EPERM);
    assert_int_equal(chmod(p, 0700), 0);
    assert_int_equal(kith_store_open_file(&t.env, dir, &st), 0);
    /* a second node on the same directory is refused while the first runs */
    kith_store *st2 = NULL;
    assert_int_equal(kith_store_open_file(&t.env, dir, &st2), KITH_ESTATE);
    kith_store_close(st);
    assert_int_equal(kith_store_open_file(&t.env, dir, &st2), 0);
    kith_store_close(st2);
    /* not a directory; empty path */
    snprintf(p, sizeof p, "%s/file", tmp);
    spit(p, (const uint8_t *)"x", 1);
    assert_int_not_equal(kith_store_open_file(&t.env, p, &st), 0);
    assert_int_equal(kith_store_open_file(&t.env, "", &st), KITH_EINVAL);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

static int nop_cb(void *ud, const uint8_t *rec, size_t len)
{
    (void)ud;
    (void)rec;
    (void)len;
    return 0;
}

static int nop_name_cb(void *ud, const char *name)
{
    (void)ud;
    (void)name;
    return 0;
}

static void test_names(void **state)
{
    (void)state;
    static const char *bad[]
        = { "", ".", "..", ".hidden", "A", "a/b", "a b", "../x", "a\\b", "caf\xc3\xa9", "x\n",
              "a:b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 65 */ };
    static const char *good[] = { "a", "0", "a.b-c_9", "room.5f3a",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 64 */ };
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        kith_buf out;
        kith_buf_init(&out, &t.env, 1024);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            assert_false(kith_store_name_ok(bad[i]));
            assert_int_equal(kith_store_append(st, bad[i], (const uint8_t *)"x", 1), KITH_EINVAL);
            assert_int_equal(kith_store_read(st, bad[i], nop_cb, NULL), KITH_EINVAL);
            assert_int_equal(kith_store_blob_put(st, bad[i], (const uint8_t *)"x", 1), KITH_EINVAL);
            assert_int_equal(kith_store_blob_get(st, bad[i], &out), KITH_EINVAL);
        }
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            assert_true(kith_store_name_ok(good[i]));
            assert_int_equal(kith_store_append(st, good[i], (const uint8_t *)"x", 1), 0);
            assert_int_equal(kith_store_blob_put(st, good[i], (const uint8_t *)"x", 1), 0);
        }
        assert_int_equal(kith_store_sync(st), 0);
        /* "logs" is a fine log name but not a blob name */
        assert_int_equal(kith_store_append(st, "logs", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_blob_put(st, "logs", (const uint8_t *)"x", 1), KITH_EINVAL);
        assert_int_equal(kith_store_append(st, NULL, (const uint8_t *)"x", 1), KITH_EINVAL);
        kith_buf_free(&out);
        kith_store_close(st);
        assert_int_equal(t.allocs, 0);
        fast_rmrf(tmp);
        free(tmp);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        uint8_t *big = calloc(1, KITH_STORE_MAX_RECORD + 1);
        assert_non_null(big);
        assert_int_equal(kith_store_append(st, "r", big, KITH_STORE_MAX_RECORD + 1), KITH_ETOOBIG);
        assert_int_equal(kith_store_append(st, "r", big, 0), KITH_EINVAL);
        assert_int_equal(kith_store_pending(st), 0);
        /* The pending cap: 15 full-size records fit, the 16th would not
         * (each carries a 12-byte header). A sync makes room again. */
        size_t fit = KITH_STORE_MAX_PENDING / (KITH_STORE_MAX_RECORD + KITH_STORE_REC_HEADER);
        for (size_t i = 0; i < fit; i++) {
            big[0] = (uint8_t)i;
            assert_int_equal(
                kith_store_append(st, i % 2 ? "r" : "s", big, KITH_STORE_MAX_RECORD), 0);
        }
        assert_int_equal(kith_store_append(st, "r", big, KITH_STORE_MAX_RECORD), KITH_ETOOBIG);
        assert_int_equal(kith_store_pending(st), fit);
        assert_int_equal(kith_store_sync(st), 0);
        assert_int_equal(kith_store_append(st, "r", big, KITH_STORE_MAX_RECORD), 0);
        assert_int_equal(kith_store_sync(st), 0);
        recs r;
        assert_int_equal(read_all(st, "r", &r), 0);
        assert_int_equal(r.n, fit / 2 + 1);
        assert_int_equal(r.len[0], KITH_STORE_MAX_RECORD);
        assert_int_equal(r.head[0][0], 1);
        kith_store_close(st);
        free(big);
        assert_int_equal(t.allocs, 0);
        fast_rmrf(tmp);
        free(tmp);
    }
}

static void test_mem_crash(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    kith_store *st;
    open_be(BE_MEM, &t, NULL, &st);
    assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"kept", 4), 0);
    assert_int_equal(kith_store_sync(st), 0);
    assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"gone", 4), 0);
    assert_int_equal(kith_store_append(st, "only-pending", (const uint8_t *)"gone", 4), 0);
    assert_int_equal(kith_store_blob_put(st, "k", (const uint8_t *)"blob", 4), 0);
    names nm = { 0 };
    assert_int_equal(kith_store_list(st, collect_name, &nm), 0);
    assert_int_equal(nm.n, 2);
    kith_store_mem_crash(st);
    assert_int_equal(kith_store_pending(st), 0);
    recs r;
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 1);
    assert_rec(&r, 0, (const uint8_t *)"kept", 4);
    assert_int_equal(read_all(st, "only-pending", &r), 0);
    assert_int_equal(r.n, 0);
    memset(&nm, 0, sizeof nm);
    assert_int_equal(kith_store_list(st, collect_name, &nm), 0);
    assert_int_equal(nm.n, 1);
    assert_int_equal(count_name(&nm, "a"), 1);
    kith_buf out;
    kith_buf_init(&out, &t.env, 64);
    assert_int_equal(kith_store_blob_get(st, "k", &out), 0);
    assert_int_equal(out.len, 4);
    kith_buf_free(&out);
    /* still usable after the crash */
    assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"again", 5), 0);
    assert_int_equal(kith_store_sync(st), 0);
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 2);
    assert_rec(&r, 1, (const uint8_t *)"again", 5);
    kith_store_close(st);

    /* On a file store it does nothing. */
    char *tmp = fast_tmpdir();
    char dir[256];
    store_path(dir, sizeof dir, tmp);
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"x", 1), 0);
    kith_store_mem_crash(st);
    assert_int_equal(kith_store_pending(st), 1);
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 1);
    kith_store_close(st);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

static void test_list(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        names nm = { 0 };
        assert_int_equal(kith_store_list(st, collect_name, &nm), 0);
        assert_int_equal(nm.n, 0);
        assert_int_equal(kith_store_append(st, "one", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_append(st, "two", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_sync(st), 0);
        assert_int_equal(kith_store_append(st, "two", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_append(st, "three", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_blob_put(st, "notalog", (const uint8_t *)"x", 1), 0);
        recs r;
        assert_int_equal(read_all(st, "never", &r), 0); /* reading does not create */
        assert_int_equal(kith_store_list(st, collect_name, &nm), 0);
        assert_int_equal(nm.n, 3);
        assert_int_equal(count_name(&nm, "one"), 1);
        assert_int_equal(count_name(&nm, "two"), 1);
        assert_int_equal(count_name(&nm, "three"), 1);
        /* a callback's non-zero return stops the walk and is returned */
        memset(&nm, 0, sizeof nm);
        nm.n = 8;
        assert_int_equal(kith_store_list(st, collect_name, &nm), -100);
        kith_store_close(st);
        if (be == BE_FILE) {
            /* a fresh handle sees the files; stray files are ignored */
            char p[300];
            snprintf(p, sizeof p, "%s/logs/Bad.log", dir);
            spit(p, (const uint8_t *)"", 0);
            snprintf(p, sizeof p, "%s/logs/x.txt", dir);
            spit(p, (const uint8_t *)"", 0);
            open_be(be, &t, dir, &st);
            memset(&nm, 0, sizeof nm);
            assert_int_equal(kith_store_list(st, collect_name, &nm), 0);
            assert_int_equal(nm.n, 3);
            assert_int_equal(count_name(&nm, "three"), 1);
            kith_store_close(st);
        }
        assert_int_equal(t.allocs, 0);
        fast_rmrf(tmp);
        free(tmp);
    }
}

typedef struct reent {
    kith_store *st;
    int rc_append, rc_sync, rc_read, calls;
} reent;

static int reent_cb(void *ud, const uint8_t *rec, size_t len)
{
    (void)rec;
    (void)len;
    reent *c = ud;
    c->calls++;
    c->rc_append = kith_store_append(c->st, "a", (const uint8_t *)"y", 1);
    c->rc_sync = kith_store_sync(c->st);
    c->rc_read = kith_store_read(c->st, "a", nop_cb, NULL);
    return c->calls == 2 ? 7 : 0;
}

typedef struct load_ctx {
    kith_store *st;
    int logs;
    size_t recs;
    int rc_nested;
} load_ctx;

/* What the node does at start-up: list the logs, read each from the list
 * callback, and it may write while it is at it. */
static int load_cb(void *ud, const char *name)
{
    load_ctx *c = ud;
    recs r;
    int rc = read_all(c->st, name, &r);
    if (rc)
        return rc;
    c->logs++;
    c->recs += r.n;
    c->rc_nested = kith_store_list(c->st, nop_name_cb, NULL);
    rc = kith_store_append(c->st, name, (const uint8_t *)"seen", 4);
    return rc ? rc : kith_store_sync(c->st);
}

/* Read callbacks may not call back into the store; a non-zero return stops. */
static void test_callbacks(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        test_env t;
        env_init(&t);
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        kith_store *st;
        open_be(be, &t, dir, &st);
        for (int i = 0; i < 3; i++)
            assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_sync(st), 0);
        assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"x", 1), 0);
        reent c = { .st = st };
        assert_int_equal(kith_store_read(st, "a", reent_cb, &c), 7);
        assert_int_equal(c.calls, 2);
        assert_int_equal(c.rc_append, KITH_ESTATE);
        assert_int_equal(c.rc_sync, KITH_ESTATE);
        assert_int_equal(c.rc_read, KITH_ESTATE);
        assert_int_equal(kith_store_pending(st), 1);
        recs r;
        assert_int_equal(read_all(st, "a", &r), 0);
        assert_int_equal(r.n, 4);
        /* list callbacks may read, append and sync, but not list again */
        assert_int_equal(kith_store_append(st, "b", (const uint8_t *)"x", 1), 0);
        assert_int_equal(kith_store_sync(st), 0);
        assert_int_equal(kith_store_append(st, "c", (const uint8_t *)"x", 1), 0);
        load_ctx lc = { .st = st };
        assert_int_equal(kith_store_list(st, load_cb, &lc), 0);
        assert_int_equal(lc.logs, 3);
        assert_int_equal(lc.recs, 4 + 1 + 1);
        assert_int_equal(lc.rc_nested, KITH_ESTATE);
        assert_int_equal(read_all(st, "c", &r), 0);
        assert_int_equal(r.n, 2);
        kith_store_close(st);
        assert_int_equal(t.allocs, 0);
        fast_rmrf(tmp);
        free(tmp);
    }
}

/* A write that fails (here: the file size limit, part-way through a write)
 * is KITH_EIO, keeps every record pending and readable, and a later sync
 * writes them once, with no duplicates and no garbage. */
static void test_write_error_keeps_pending(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], lp[300];
    store_path(dir, sizeof dir, tmp);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    uint8_t rec[64];
    for (size_t i = 0; i < 3; i++) {
        size_t len = mkrec(rec, i);
        assert_int_equal(kith_store_append(st, "a", rec, len), 0);
    }
    assert_int_equal(kith_store_sync(st), 0);
    log_path(lp, sizeof lp, dir, "a");
    off_t durable = file_size(lp);
    for (size_t i = 3; i < 8; i++) {
        size_t len = mkrec(rec, i);
        assert_int_equal(kith_store_append(st, "a", rec, len), 0);
    }
    assert_int_equal(kith_store_append(st, "b", (const uint8_t *)"other", 5), 0);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)durable + 30; /* room for a part of the next write */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    g_errors = 0;
    assert_int_equal(kith_store_sync(st), KITH_EIO);
    assert_true(g_errors >= 1);
    /* log b was small enough to make it; a's five records are still pending */
    assert_int_equal(kith_store_pending(st), 5);
    recs r;
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 8);
    assert_int_equal(read_all(st, "b", &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(kith_store_sync(st), KITH_EIO); /* still failing */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);

    assert_int_equal(kith_store_sync(st), 0);
    assert_int_equal(kith_store_pending(st), 0);
    kith_store_close(st);
    g_warns = 0;
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 8);
    for (size_t i = 0; i < 8; i++) {
        size_t len = mkrec(rec, i);
        assert_rec(&r, i, rec, len);
    }
    assert_int_equal(g_warns, 0);
    kith_store_close(st);

    /* A log path that cannot be opened: EIO, records kept pending. */
    char p[300];
    log_path(p, sizeof p, dir, "dir");
    assert_int_equal(mkdir(p, 0700), 0);
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(kith_store_append(st, "dir", (const uint8_t *)"x", 1), 0);
    assert_int_equal(kith_store_sync(st), KITH_EIO);
    assert_int_equal(kith_store_pending(st), 1);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(kith_store_sync(st), 0);
    kith_store_close(st);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

/* Bytes past a log's known good end in a running session can only be the
 * leftovers of a failed sync (whose records are still pending). Even when
 * they look like whole records, they are neither replayed nor kept. */
static void test_ignores_bytes_past_good_end(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256], lp[300];
    store_path(dir, sizeof dir, tmp);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"first", 5), 0);
    assert_int_equal(kith_store_sync(st), 0);
    log_path(lp, sizeof lp, dir, "a");
    off_t good = file_size(lp);
    uint8_t ghost[12 + 5];
    ghost[0] = ghost[1] = ghost[2] = 0;
    ghost[3] = 5;
    uint8_t h[16];
    crypto_generichash(h, 16, (const uint8_t *)"ghost", 5, NULL, 0);
    memcpy(ghost + 4, h, 8);
    memcpy(ghost + 12, "ghost", 5);
    int fd = open(lp, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, ghost, sizeof ghost), (ssize_t)sizeof ghost);
    close(fd);
    recs r;
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(file_size(lp), good);
    assert_int_equal(kith_store_append(st, "a", (const uint8_t *)"second", 6), 0);
    assert_int_equal(kith_store_sync(st), 0);
    kith_store_close(st);
    open_be(BE_FILE, &t, dir, &st);
    assert_int_equal(read_all(st, "a", &r), 0);
    assert_int_equal(r.n, 2);
    assert_rec(&r, 0, (const uint8_t *)"first", 5);
    assert_rec(&r, 1, (const uint8_t *)"second", 6);
    kith_store_close(st);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

/* Every allocation failing in turn: no crash, no leak, an error or success. */
static void test_alloc_failures(void **state)
{
    (void)state;
    for (int be = BE_FILE; be <= BE_MEM; be++) {
        char *tmp = fast_tmpdir();
        char dir[256];
        store_path(dir, sizeof dir, tmp);
        bool finished = false;
        for (long fail = 0; fail < 200 && !finished; fail++) {
            test_env t;
            env_init(&t);
            t.env.log_level = -1; /* quiet */
            t.fail_after = fail;
            kith_store *st;
            int rc = be == BE_FILE ? kith_store_open_file(&t.env, dir, &st)
                                   : kith_store_open_mem(&t.env, &st);
            if (rc) {
                assert_int_equal(rc, KITH_ENOMEM);
                assert_int_equal(t.allocs, 0);
                continue;
            }
            int ok = 0;
            ok |= kith_store_append(st, "a", (const uint8_t *)"one", 3);
            ok |= kith_store_append(st, "b", (const uint8_t *)"two", 3);
            ok |= kith_store_sync(st);
            ok |= kith_store_append(st, "a", (const uint8_t *)"three", 5);
            recs r;
            ok |= read_all(st, "a", &r);
            ok |= kith_store_blob_put(st, "k", (const uint8_t *)"v", 1);
            kith_buf out;
            kith_buf_init(&out, &t.env, 16);
            ok |= kith_store_blob_get(st, "k", &out);
            kith_buf_free(&out);
            names nm = { 0 };
            ok |= kith_store_list(st, collect_name, &nm);
            kith_store_close(st);
            assert_int_equal(t.allocs, 0);
            finished = ok == 0;
        }
        assert_true(finished);
        fast_rmrf(tmp);
        free(tmp);
    }
}

/* Many logs: more than the descriptor cache holds, all still correct. */
static void test_many_logs(void **state)
{
    (void)state;
    test_env t;
    env_init(&t);
    char *tmp = fast_tmpdir();
    char dir[256];
    store_path(dir, sizeof dir, tmp);
    kith_store *st;
    open_be(BE_FILE, &t, dir, &st);
    char name[16];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof name, "room%d", i);
            uint8_t v[2] = { (uint8_t)i, (uint8_t)round };
            assert_int_equal(kith_store_append(st, name, v, 2), 0);
        }
        assert_int_equal(kith_store_sync(st), 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "room%d", i);
        recs r;
        assert_int_equal(read_all(st, name, &r), 0);
        assert_int_equal(r.n, 2);
        uint8_t v[2] = { (uint8_t)i, 1 };
        assert_rec(&r, 1, v, 2);
    }
    kith_store_close(st);
    assert_int_equal(t.allocs, 0);
    fast_rmrf(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_disk_format),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_reopen_sees_only_synced),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_corrupt_record),
        cmocka_unit_test(test_sync_cuts_unread_tail),
        cmocka_unit_test(test_blobs),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_refuse_open_dir),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_mem_crash),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_write_error_keeps_pending),
        cmocka_unit_test(test_ignores_bytes_past_good_end),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_many_logs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
