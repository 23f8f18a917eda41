/* store: the front end of the store interface. It checks names, encodes
 * records (length, checksum, bytes), holds the records that append() buffers
 * until sync(), and hands the durable half of every operation to a backend
 * (file.c or mem.c) through its table of function pointers. Keeping pending
 * records here means both backends replay, count, cap and lose them (on a
 * crash) in exactly the same way. */
#include "store/store_impl.h"

#include <sodium.h>

/* A sync that succeeds frees a pending buffer that grew past this instead of
 * keeping its capacity around for the next burst. */
#define STORE_KEEP_PENDING_CAP (256u << 10)

bool store_name_ok(const char *name)
{
    if (!name)
        return false;
    size_t n = strnlen(name, KITH_STORE_MAX_NAME + 1);
    /* A leading '.' is refused so a name is never "." or "..", never hidden,
     * and never collides with the backend's own temporary or lock files. */
    if (n == 0 || n > KITH_STORE_MAX_NAME || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok
            = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool kith_store_name_ok(const char *name)
{
    return store_name_ok(name) && strcmp(name, "logs") != 0;
}

void store_rec_checksum(const uint8_t *rec, size_t len, uint8_t out[8])
{
    /* BLAKE2b with a 16-byte output (its parameter block says 16), truncated
     * to 8. This catches torn writes and bit rot; it is not a MAC: what a log
     * holds is already signed and sealed by the layers above. */
    uint8_t h[16];
    crypto_generichash(h, sizeof h, rec, len, NULL, 0);
    memcpy(out, h, 8);
}

int store_walk_encoded(const uint8_t *p, size_t len, kith_store_rec_cb cb, void *ud)
{
    size_t off = 0;
    while (len - off >= KITH_STORE_REC_HEADER) {
        size_t n = kith_get_be32(p + off);
        off += KITH_STORE_REC_HEADER;
        if (n > len - off)
            return KITH_EPROTO; /* cannot happen: we encoded these bytes */
        int rc = cb ? cb(ud, p + off, n) : 0;
        if (rc)
            return rc;
        off += n;
    }
    return 0;
}

void store_init(kith_store *st, const store_ops *ops, const kith_env *env)
{
    memset(st, 0, sizeof *st);
    st->ops = ops;
    st->env = env;
}

static store_log *log_find(kith_store *st, const char *name)
{
    for (store_log *lg = st->logs; lg; lg = lg->next)
        if (strcmp(lg->name, name) == 0)
            return lg;
    return NULL;
}

static int log_get(kith_store *st, const char *name, store_log **out)
{
    store_log *lg = log_find(st, name);
    if (!lg) {
        lg = kith_calloc(st->env, 1, sizeof *lg);
        if (!lg)
            return KITH_ENOMEM;
        memcpy(lg->name, name, strlen(name) + 1);
        kith_buf_init(&lg->pending, st->env, KITH_STORE_MAX_PENDING);
        kith_buf_init(&lg->durable, st->env, SIZE_MAX);
        lg->fd = -1;
        lg->next = st->logs;
        st->logs = lg;
    }
    *out = lg;
    return 0;
}

static void log_drop_pending(kith_store *st, store_log *lg)
{
    st->npending -= lg->npending;
    st->pending_bytes -= lg->pending.len;
    lg->npending = 0;
    if (lg->pending.cap > STORE_KEEP_PENDING_CAP)
        kith_buf_free(&lg->pending);
    else
        kith_buf_reset(&lg->pending);
}

void store_log_synced(kith_store *st, store_log *lg)
{
    log_drop_pending(st, lg);
    lg->exists = true;
}

int kith_store_append(kith_store *st, const char *log, const uint8_t *rec, size_t len)
{
    return kith_store_append_at(st, log, rec, len, NULL);
}

int kith_store_append_at(
    kith_store *st, const char *log, const uint8_t *rec, size_t len, uint64_t *pos)
{
    if (!st || !rec || !store_name_ok(log))
        return KITH_EINVAL;
    if (st->busy)
        return KITH_ESTATE;
    if (len == 0)
        return KITH_EINVAL; /* length 0 marks a corrupt record on disk */
    if (len > KITH_STORE_MAX_RECORD)
        return KITH_ETOOBIG;
    size_t enc = KITH_STORE_REC_HEADER + len;
    /* Bounded so a peer flooding us cannot grow memory without a sync; the
     * caller answers KITH_ETOOBIG by syncing and trying again. */
    if (st->pending_bytes + enc > KITH_STORE_MAX_PENDING)
        return KITH_ETOOBIG;
    store_log *lg;
    int rc = log_get(st, log, &lg);
    if (rc)
        return rc;
    if (pos) {
        uint64_t end;
        rc = st->ops->end(st, lg, &end);
        if (rc)
            return rc;
        *pos = end + lg->pending.len;
    }
    rc = kith_buf_reserve(&lg->pending, enc);
    if (rc)
        return rc;
    uint8_t hdr[KITH_STORE_REC_HEADER];
    kith_put_be32(hdr, (uint32_t)len);
    store_rec_checksum(rec, len, hdr + 4);
    /* Both appends fit in the space reserved above, so neither can fail. */
    if (kith_buf_append(&lg->pending, hdr, sizeof hdr) || kith_buf_append(&lg->pending, rec, len))
        return KITH_ENOMEM;
    lg->npending++;
    st->npending++;
    st->pending_bytes += enc;
    return 0;
}

size_t kith_store_pending(const kith_store *st)
{
    return st ? st->npending : 0;
}

int kith_store_sync(kith_store *st)
{
    if (!st)
        return KITH_EINVAL;
    if (st->busy)
        return KITH_ESTATE;
    if (st->npending == 0)
        return 0;
    return st->ops->sync(st);
}

int kith_store_read(kith_store *st, const char *log, kith_store_rec_cb cb, void *ud)
{
    if (!st || !cb || !store_name_ok(log))
        return KITH_EINVAL;
    /* A callback that appended could move the pending buffer we are walking,
     * or evict the descriptor we are reading: refuse re-entry outright. */
    if (st->busy)
        return KITH_ESTATE;
    store_log *lg;
    int rc = log_get(st, log, &lg);
    if (rc)
        return rc;
    st->busy++;
    rc = st->ops->read(st, lg, cb, ud);
    if (!rc)
        rc = store_walk_encoded(lg->pending.data, lg->pending.len, cb, ud);
    st->busy--;
    return rc;
}

typedef struct pos_ctx {
    kith_store_pos_cb cb;
    void *ud;
    uint64_t pos;
} pos_ctx;

/* Records are contiguous from offset 0 (durable ones up to the good end,
 * then the pending ones), so a running sum is each record's position. */
static int pos_step(void *ud, const uint8_t *rec, size_t len)
{
    pos_ctx *c = ud;
    int rc = c->cb(c->ud, c->pos, rec, len);
    c->pos += KITH_STORE_REC_HEADER + len;
    return rc;
}

int kith_store_read_at(kith_store *st, const char *log, kith_store_pos_cb cb, void *ud)
{
    if (!cb)
        return KITH_EINVAL;
    pos_ctx c = { cb, ud, 0 };
    return kith_store_read(st, log, pos_step, &c);
}

int kith_store_get(kith_store *st, const char *log, uint64_t pos, kith_buf *out)
{
    if (!st || !out || !store_name_ok(log))
        return KITH_EINVAL;
    if (st->busy)
        return KITH_ESTATE;
    store_log *lg;
    int rc = log_get(st, log, &lg);
    uint64_t end = 0;
    if (!rc)
        rc = st->ops->end(st, lg, &end);
    if (rc)
        return rc;
    if (pos < end)
        return st->ops->get(st, lg, pos, out);
    /* A pending record: walk the pending buffer to be sure one starts at pos. */
    uint64_t want = pos - end;
    size_t off = 0;
    while (lg->pending.len - off >= KITH_STORE_REC_HEADER) {
        size_t n = kith_get_be32(lg->pending.data + off);
        if (off == want)
            return kith_buf_append(out, lg->pending.data + off + KITH_STORE_REC_HEADER, n);
        if (off > want)
            break;
        off += KITH_STORE_REC_HEADER + n;
    }
    return KITH_ENOENT;
}

typedef struct list_ctx {
    kith_store *st;
    kith_store_name_cb cb;
    void *ud;
} list_ctx;

static int list_mark(void *ud, const char *name)
{
    list_ctx *c = ud;
    store_log *lg = log_find(c->st, name);
    if (lg)
        lg->listed = true;
    return c->cb(c->ud, name);
}

int kith_store_list(kith_store *st, kith_store_name_cb cb, void *ud)
{
    if (!st || !cb)
        return KITH_EINVAL;
    /* A list callback may read, append, sync: logs are only ever added at
     * the head of st->logs and freed at close, so the walks below stay
     * valid. Only a nested list is refused (it would reset `listed`). */
    if (st->busy || st->listing)
        return KITH_ESTATE;
    /* Which logs had pending records is noted first: a callback that syncs
     * could otherwise make one durable behind the backend's back, and it
     * would be reported by neither pass. */
    for (store_log *lg = st->logs; lg; lg = lg->next) {
        lg->listed = false;
        lg->list_pending = lg->npending > 0;
    }
    list_ctx c = { st, cb, ud };
    st->listing = true;
    int rc = st->ops->list(st, list_mark, &c);
    /* Then the logs that so far exist only as pending records. */
    for (store_log *lg = st->logs; lg && !rc; lg = lg->next)
        if (lg->list_pending && !lg->listed)
            rc = cb(ud, lg->name);
    st->listing = false;
    return rc;
}

int kith_store_blob_put(kith_store *st, const char *name, const uint8_t *data, size_t len)
{
    if (!st || (!data && len) || !kith_store_name_ok(name))
        return KITH_EINVAL;
    if (st->busy)
        return KITH_ESTATE;
    if (len > KITH_STORE_MAX_BLOB)
        return KITH_ETOOBIG;
    static const uint8_t none[1] = { 0 };
    return st->ops->blob_put(st, name, data ? data : none, len);
}

int kith_store_blob_get(kith_store *st, const char *name, kith_buf *out)
{
    if (!st || !out || !kith_store_name_ok(name))
        return KITH_EINVAL;
    if (st->busy)
        return KITH_ESTATE;
    return st->ops->blob_get(st, name, out);
}

void kith_store_mem_crash(kith_store *st)
{
    if (!st || !st->ops->can_crash || st->busy)
        return;
    for (store_log *lg = st->logs; lg; lg = lg->next)
        log_drop_pending(st, lg);
}

void kith_store_close(kith_store *st)
{
    if (!st)
        return;
    size_t lost = st->npending;
    int rc = kith_store_sync(st);
    if (rc)
        KITH_LOGE(
            st->env, "store: closing with %zu unsynced records lost: %s", lost, kith_strerror(rc));
    const kith_env *env = st->env;
    st->ops->destroy(st);
    store_log *lg = st->logs;
    while (lg) {
        store_log *next = lg->next;
        kith_buf_free(&lg->pending);
        kith_buf_free(&lg->durable);
        kith_free(env, lg);
        lg = next;
    }
    kith_free(env, st);
}
