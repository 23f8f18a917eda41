/* store_impl: what the store's front end (store.c) and its two backends
 * (file.c, mem.c) share. The front end owns the part both backends have in
 * common: name checks, the record encoding, and the pending records that
 * append() buffers until sync(). A backend supplies the durable half through
 * a table of function pointers. Not for use outside src/store/. */
#ifndef KITH_STORE_IMPL_H
#define KITH_STORE_IMPL_H

#include "store/store.h"

/* One log known to this store handle (created on first append or read). */
typedef struct store_log {
    struct store_log *next;
    char name[KITH_STORE_MAX_NAME + 1];
    kith_buf pending; /* encoded records (header + bytes) not yet durable */
    size_t npending; /* records in `pending` */
    bool exists; /* the backend has a durable copy (file on disk, or synced in memory) */
    bool listed, list_pending; /* scratch for kith_store_list */
    /* memory backend */
    kith_buf durable; /* encoded records made durable by sync */
    /* file backend */
    int fd; /* cached descriptor or -1 */
    bool verified; /* tail checked this session, so `end` is the good end */
    uint64_t end; /* offset just past the last good record */
    uint64_t lru; /* last use, for closing descriptors beyond the cache bound */
} store_log;

typedef struct store_ops {
    /* Make every log's pending records durable; on success for a log call
     * store_log_synced(). Keep going after a failing log; return its error. */
    int (*sync)(kith_store *st);
    /* Replay the durable records of `lg` (pending ones are the front end's). */
    int (*read)(kith_store *st, store_log *lg, kith_store_rec_cb cb, void *ud);
    /* The length of the durable records of `lg` (a file's tail is checked
     * first if it was not yet this session): where pending records land. */
    int (*end)(kith_store *st, store_log *lg, uint64_t *end);
    /* Append the durable record at pos (< end) to out; KITH_ENOENT when no
     * record starts there, KITH_EIO when its checksum fails. */
    int (*get)(kith_store *st, store_log *lg, uint64_t pos, kith_buf *out);
    /* Report the logs that have a durable copy. */
    int (*list)(kith_store *st, kith_store_name_cb cb, void *ud);
    int (*blob_put)(kith_store *st, const char *name, const uint8_t *data, size_t len);
    int (*blob_get)(kith_store *st, const char *name, kith_buf *out);
    /* kith_store_mem_crash drops pending records only where this is true. */
    bool can_crash;
    /* Free backend resources, including per-log ones (fds); the front end
     * frees the logs and the handle itself afterwards. */
    void (*destroy)(kith_store *st);
} store_ops;

struct kith_store {
    const store_ops *ops;
    const kith_env *env;
    store_log *logs;
    size_t npending; /* records, all logs */
    size_t pending_bytes; /* encoded bytes, all logs */
    int busy; /* > 0 while a read callback runs: the store refuses every call */
    bool listing; /* a list callback runs: everything but a nested list allowed */
};

/* Front end helpers for the backends. */
void store_init(kith_store *st, const store_ops *ops, const kith_env *env);
/* The pending records of `lg` are now durable: forget them. */
void store_log_synced(kith_store *st, store_log *lg);
/* Checksum of a record: the first 8 bytes of BLAKE2b with a 16-byte output. */
void store_rec_checksum(const uint8_t *rec, size_t len, uint8_t out[8]);
/* Walk a buffer of records encoded by the front end (trusted: our own bytes). */
int store_walk_encoded(const uint8_t *p, size_t len, kith_store_rec_cb cb, void *ud);
/* Is `name` a valid log name (also used for blobs)? */
bool store_name_ok(const char *name);

#endif
