/* store: where a node keeps what must survive a restart.
 *
 * Logs: one append-only log per name (a room's opaque tag). A record on disk
 * is a 4-byte big-endian length, an 8-byte checksum (BLAKE2b of the bytes,
 * truncated) and the bytes. kith_store_append() buffers; kith_store_sync()
 * writes and fdatasyncs every log with pending records at once (group commit)
 * and only then are those records durable. Reading a log stops at the first
 * torn or corrupt record and cuts the file there, so a crash mid-write loses
 * at most the records that were never acknowledged.
 *
 * Blobs: small named files replaced atomically (write temp, fsync, rename,
 * fsync dir), mode 0600, in a 0700 directory: key files and settings.
 *
 * Two backends: files under a directory, and memory (for tests and the
 * simulator, where kith_store_mem_crash() drops what was not synced). */
#ifndef KITH_STORE_H
#define KITH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/env.h"
#include "kith/err.h"
#include "util/util.h"

#define KITH_STORE_MAX_RECORD (1u << 20)
#define KITH_STORE_MAX_NAME 64 /* names: [a-z0-9._-], 1..64 chars */
/* Added by the store module: */
#define KITH_STORE_REC_HEADER 12u /* 4-byte length + 8-byte checksum */
#define KITH_STORE_MAX_PENDING (16u << 20) /* appended, not synced: header + bytes */
#define KITH_STORE_MAX_BLOB (1u << 20)

typedef struct kith_store kith_store;

/* Record callback: bytes valid during the call; non-zero return stops the
 * read and is returned. */
typedef int (*kith_store_rec_cb)(void *ud, const uint8_t *rec, size_t len);
typedef int (*kith_store_name_cb)(void *ud, const char *name);

/* Creates dir (0700) if needed; refuses a dir that others can read or write. */
KITH_WUR int kith_store_open_file(const kith_env *env, const char *dir, kith_store **out);
KITH_WUR int kith_store_open_mem(const kith_env *env, kith_store **out);
/* Syncs what is pending, then frees. */
void kith_store_close(kith_store *st);

KITH_WUR int kith_store_append(kith_store *st, const char *log, const uint8_t *rec, size_t len);
/* The same, and *pos = the record's position in the log: the byte offset of
 * its header, fixed from now on (pending records land exactly there when
 * synced). kith_store_get reads it back. */
KITH_WUR int kith_store_append_at(
    kith_store *st, const char *log, const uint8_t *rec, size_t len, uint64_t *pos);
/* The record at `pos` (from append_at or read_at), durable or pending,
 * appended to out. KITH_ENOENT when no record starts there; KITH_EIO when
 * the bytes on disk no longer match their checksum. */
KITH_WUR int kith_store_get(kith_store *st, const char *log, uint64_t pos, kith_buf *out);
/* Number of appended records not yet durable. */
size_t kith_store_pending(const kith_store *st);
KITH_WUR int kith_store_sync(kith_store *st);
/* Replay a log's durable and pending records in order; cuts a torn tail. */
KITH_WUR int kith_store_read(kith_store *st, const char *log, kith_store_rec_cb cb, void *ud);
/* kith_store_read with each record's position. */
typedef int (*kith_store_pos_cb)(void *ud, uint64_t pos, const uint8_t *rec, size_t len);
KITH_WUR int kith_store_read_at(kith_store *st, const char *log, kith_store_pos_cb cb, void *ud);
KITH_WUR int kith_store_list(kith_store *st, kith_store_name_cb cb, void *ud);

KITH_WUR int kith_store_blob_put(kith_store *st, const char *name, const uint8_t *data, size_t len);
/* KITH_ENOENT when absent; data appended to out. */
KITH_WUR int kith_store_blob_get(kith_store *st, const char *name, kith_buf *out);

/* Memory backend only: forget everything not yet synced, as a crash would. */
void kith_store_mem_crash(kith_store *st);

/* Added by the store module: is `name` a valid log or blob name? (blobs may
 * not be called "logs", the file backend's log directory). */
bool kith_store_name_ok(const char *name);

#endif
