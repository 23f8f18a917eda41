/* fuzz_storelog: arbitrary bytes as a log file on disk. The file store must
 * read it without crashing, return exactly the records an independent parser
 * (below) finds valid before the first bad one, cut the file at the end of
 * the last good record, and then append after it cleanly. Any difference is
 * an abort(). */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fuzzenv.h"
#include "store/store.h"

static char g_dir[64];
static char g_log[128];

static void cleanup(void)
{
    char p[160];
    unlink(g_log);
    snprintf(p, sizeof p, "%s/logs", g_dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/.lock", g_dir);
    unlink(p);
    rmdir(g_dir);
}

static void setup_once(void)
{
    if (g_dir[0])
        return;
    if (sodium_init() < 0)
        abort();
    snprintf(g_dir, sizeof g_dir, "/tmp/kith-fuzz-storelog-XXXXXX");
    if (!mkdtemp(g_dir))
        abort();
    char p[160];
    snprintf(p, sizeof p, "%s/logs", g_dir);
    if (mkdir(p, 0700) != 0)
        abort();
    snprintf(g_log, sizeof g_log, "%s/logs/f.log", g_dir);
    atexit(cleanup);
}

/* The oracle: the end of the last good record and how many there are, by
 * the rules of proto/kith.md section 7, written apart from src/store. */
static size_t oracle(const uint8_t *d, size_t n, size_t *count)
{
    size_t off = 0;
    *count = 0;
    while (n - off >= 12) {
        uint32_t len = (uint32_t)d[off] << 24 | (uint32_t)d[off + 1] << 16
            | (uint32_t)d[off + 2] << 8 | d[off + 3];
        if (len == 0 || len > KITH_STORE_MAX_RECORD || n - off - 12 < len)
            break;
        uint8_t h[16];
        crypto_generichash(h, sizeof h, d + off + 12, len, NULL, 0);
        if (memcmp(h, d + off + 4, 8) != 0)
            break;
        off += 12 + len;
        (*count)++;
    }
    return off;
}

typedef struct seen {
    const uint8_t *data;
    size_t off; /* where the next expected record starts in data */
    size_t count;
    size_t limit; /* records with an oracle position; beyond: appended ones */
    const uint8_t *extra;
    size_t extra_len;
} seen;

static int check_rec(void *ud, const uint8_t *rec, size_t len)
{
    seen *s = ud;
    if (s->count < s->limit) {
        size_t want = (size_t)s->data[s->off] << 24 | (size_t)s->data[s->off + 1] << 16
            | (size_t)s->data[s->off + 2] << 8 | s->data[s->off + 3];
        if (want != len || memcmp(rec, s->data + s->off + 12, len) != 0)
            abort();
        s->off += 12 + len;
    } else if (len != s->extra_len || memcmp(rec, s->extra, len) != 0) {
        abort();
    }
    s->count++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    int fd = open(g_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    close(fd);

    size_t want_count;
    size_t good = oracle(data, size, &want_count);
    static const uint8_t extra[] = "appended after the fuzz input";

    kith_store *st;
    if (kith_store_open_file(&fuzz_env, g_dir, &st) != 0)
        abort();
    seen s = { data, 0, 0, want_count, extra, sizeof extra };
    if (kith_store_read(st, "f", check_rec, &s) != 0 || s.count != want_count)
        abort();
    struct stat sb;
    if (stat(g_log, &sb) != 0 || (size_t)sb.st_size != good)
        abort();
    /* Cut cleanly: what follows lands right after the last good record. */
    if (kith_store_append(st, "f", extra, sizeof extra) != 0 || kith_store_sync(st) != 0)
        abort();
    if (stat(g_log, &sb) != 0 || (size_t)sb.st_size != good + 12 + sizeof extra)
        abort();
    kith_store_close(st);

    if (kith_store_open_file(&fuzz_env, g_dir, &st) != 0)
        abort();
    s = (seen) { data, 0, 0, want_count, extra, sizeof extra };
    if (kith_store_read(st, "f", check_rec, &s) != 0 || s.count != want_count + 1)
        abort();
    kith_store_close(st);
    unlink(g_log);
    return 0;
}
