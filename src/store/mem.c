/* store/mem: the memory backend, for tests and the simulator. A log's
 * durable records live in a buffer next to its pending ones, so
 * kith_store_mem_crash() can drop exactly what a power cut would: the
 * records appended since the last successful sync. Blobs are durable as soon
 * as blob_put returns, as with the file backend. */
#include "store/store_impl.h"

typedef struct mem_blob {
    struct mem_blob *next;
    char name[KITH_STORE_MAX_NAME + 1];
    kith_buf data;
} mem_blob;

typedef struct mem_store {
    kith_store base; /* first, so a kith_store * is a mem_store * */
    mem_blob *blobs;
} mem_store;

static int mem_sync(kith_store *st)
{
    int err = 0;
    for (store_log *lg = st->logs; lg; lg = lg->next) {
        if (!lg->npending)
            continue;
        /* On failure the records stay pending, as the file backend does. */
        int rc = kith_buf_append(&lg->durable, lg->pending.data, lg->pending.len);
        if (rc) {
            err = err ? err : rc;
            continue;
        }
        store_log_synced(st, lg);
    }
    return err;
}

static int mem_read(kith_store *st, store_log *lg, kith_store_rec_cb cb, void *ud)
{
    (void)st;
    return store_walk_encoded(lg->durable.data, lg->durable.len, cb, ud);
}

static int mem_end(kith_store *st, store_log *lg, uint64_t *end)
{
    (void)st;
    *end = lg->durable.len;
    return 0;
}

static int mem_get(kith_store *st, store_log *lg, uint64_t pos, kith_buf *out)
{
    (void)st;
    const uint8_t *p = lg->durable.data;
    size_t size = lg->durable.len;
    if (pos >= size || size - pos < KITH_STORE_REC_HEADER)
        return KITH_ENOENT;
    size_t n = kith_get_be32(p + pos);
    if (n == 0 || n > size - pos - KITH_STORE_REC_HEADER)
        return KITH_ENOENT;
    uint8_t sum[8];
    store_rec_checksum(p + pos + KITH_STORE_REC_HEADER, n, sum);
    if (memcmp(sum, p + pos + 4, 8) != 0)
        return KITH_ENOENT; /* not the start of a record */
    return kith_buf_append(out, p + pos + KITH_STORE_REC_HEADER, n);
}

static int mem_list(kith_store *st, kith_store_name_cb cb, void *ud)
{
    for (store_log *lg = st->logs; lg; lg = lg->next) {
        if (!lg->exists)
            continue;
        int rc = cb(ud, lg->name);
        if (rc)
            return rc;
    }
    return 0;
}

static mem_blob *blob_find(mem_store *ms, const char *name)
{
    for (mem_blob *b = ms->blobs; b; b = b->next)
        if (strcmp(b->name, name) == 0)
            return b;
    return NULL;
}

static int mem_blob_put(kith_store *st, const char *name, const uint8_t *data, size_t len)
{
    mem_store *ms = (mem_store *)st;
    /* Build the new value completely before touching the old one, so a
     * failed put leaves the previous blob intact, like rename() does. */
    kith_buf nb;
    kith_buf_init(&nb, st->env, KITH_STORE_MAX_BLOB);
    int rc = kith_buf_append(&nb, data, len);
    if (rc) {
        kith_buf_free(&nb);
        return rc;
    }
    mem_blob *b = blob_find(ms, name);
    if (!b) {
        b = kith_calloc(st->env, 1, sizeof *b);
        if (!b) {
            kith_buf_free(&nb);
            return KITH_ENOMEM;
        }
        memcpy(b->name, name, strlen(name) + 1);
        b->next = ms->blobs;
        ms->blobs = b;
    } else {
        kith_buf_free(&b->data);
    }
    b->data = nb;
    return 0;
}

static int mem_blob_get(kith_store *st, const char *name, kith_buf *out)
{
    mem_blob *b = blob_find((mem_store *)st, name);
    if (!b)
        return KITH_ENOENT;
    return kith_buf_append(out, b->data.data, b->data.len);
}

static void mem_destroy(kith_store *st)
{
    mem_store *ms = (mem_store *)st;
    mem_blob *b = ms->blobs;
    while (b) {
        mem_blob *next = b->next;
        kith_buf_free(&b->data);
        kith_free(st->env, b);
        b = next;
    }
    ms->blobs = NULL;
}

static const store_ops mem_ops = {
    .sync = mem_sync,
    .read = mem_read,
    .end = mem_end,
    .get = mem_get,
    .list = mem_list,
    .blob_put = mem_blob_put,
    .blob_get = mem_blob_get,
    .can_crash = true,
    .destroy = mem_destroy,
};

int kith_store_open_mem(const kith_env *env, kith_store **out)
{
    if (!env || !out)
        return KITH_EINVAL;
    mem_store *ms = kith_calloc(env, 1, sizeof *ms);
    if (!ms)
        return KITH_ENOMEM;
    store_init(&ms->base, &mem_ops, env);
    *out = &ms->base;
    return 0;
}
