/* store/file: the file backend. Logs are dir/logs/<name>.log, blobs are
 * dir/<name>, everything private to the user (dir 0700, files 0600).
 *
 * This is the one place below the libuv driver that makes file system calls,
 * and it makes them synchronously on the calling thread. That is a choice:
 * a node holds few rooms, a sync is one write and one fdatasync per touched
 * log, and blocking the loop for that long is simpler and easier to reason
 * about than handing buffers to a thread pool and acknowledging sends from a
 * completion callback. The sans-I/O core stays testable because it only sees
 * the kith_store interface; the simulator uses the memory backend.
 *
 * All paths are resolved relative to descriptors of the store directory and
 * of dir/logs (openat and friends), and the final component of every file
 * is opened with O_NOFOLLOW. An exclusive flock on dir/.lock keeps two nodes
 * from writing the same logs. */
#define _DEFAULT_SOURCE /* flock */
#include "store/store_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX_OPEN 64 /* cached log descriptors; least recently used closed beyond */
#define FILE_MAX_PATH 4096
#define FILE_READ_CHUNK (64u << 10)
#define LOG_SUFFIX ".log"
#define LOG_FNAME_MAX (KITH_STORE_MAX_NAME + sizeof LOG_SUFFIX)

typedef struct file_store {
    kith_store base; /* first, so a kith_store * is a file_store * */
    char *path; /* for log lines */
    int dirfd;
    int logsfd;
    int lockfd;
    size_t nopen;
    uint64_t tick;
} file_store;

static void log_fname(char out[LOG_FNAME_MAX], const char *name)
{
    snprintf(out, LOG_FNAME_MAX, "%s" LOG_SUFFIX, name);
}

static void fd_close(file_store *fs, store_log *lg)
{
    if (lg->fd >= 0) {
        close(lg->fd);
        lg->fd = -1;
        fs->nopen--;
    }
}

/* Keep at most FILE_MAX_OPEN log descriptors: a node has few rooms, but a
 * store directory copied from elsewhere could hold thousands of logs. */
static void fd_make_room(file_store *fs)
{
    while (fs->nopen >= FILE_MAX_OPEN) {
        store_log *old = NULL;
        for (store_log *lg = fs->base.logs; lg; lg = lg->next)
            if (lg->fd >= 0 && (!old || lg->lru < old->lru))
                old = lg;
        if (!old)
            return;
        fd_close(fs, old);
    }
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Sequential reader over a log file with a read-ahead window, so a log of
 * small records costs one pread per 64 KiB rather than two per record. */
typedef struct reader {
    int fd;
    uint64_t size;
    uint64_t boff; /* file offset of buf.data[0] */
    kith_buf buf;
} reader;

static int reader_get(reader *r, uint64_t off, size_t n, const uint8_t **out)
{
    if (off >= r->boff && off - r->boff <= r->buf.len && r->buf.len - (off - r->boff) >= n) {
        *out = r->buf.data + (off - r->boff);
        return 0;
    }
    /* The caller checked off + n <= size, so want >= n. */
    uint64_t left = r->size - off;
    size_t want = KITH_MAX(n, (size_t)FILE_READ_CHUNK);
    if (want > left)
        want = (size_t)left;
    kith_buf_reset(&r->buf);
    r->boff = off;
    int rc = kith_buf_reserve(&r->buf, want);
    if (rc)
        return rc;
    while (r->buf.len < want) {
        ssize_t got
            = pread(r->fd, r->buf.data + r->buf.len, want - r->buf.len, (off_t)(off + r->buf.len));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        r->buf.len += (size_t)got;
    }
    if (r->buf.len < n)
        return KITH_EIO; /* shrank under us, or a read error */
    *out = r->buf.data;
    return 0;
}

/* Walk the log from the start, calling cb (if any) for each whole record
 * whose length and checksum are good. At the first one that is not, cut the
 * file there: everything after a torn or corrupt record is unreachable
 * anyway, since record boundaries are only known by walking. */
static int scan(file_store *fs, store_log *lg, kith_store_rec_cb cb, void *ud)
{
    const kith_env *env = fs->base.env;
    struct stat sb;
    if (fstat(lg->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        KITH_LOGE(
            env, "store: %s/logs/%s" LOG_SUFFIX " is not a readable file", fs->path, lg->name);
        return KITH_EIO;
    }
    reader r = { .fd = lg->fd, .size = (uint64_t)sb.st_size };
    if (lg->verified && r.size > lg->end) {
        /* Only a failed sync whose truncate also failed leaves bytes past the
         * good end. Its records are still pending: reading them from the
         * file too would replay them twice, and moving `end` past them would
         * write them twice. Cut them again, and ignore them if that fails. */
        if (ftruncate(lg->fd, (off_t)lg->end) != 0)
            KITH_LOGE(
                env, "store: log %s: cannot cut a failed write: %s", lg->name, strerror(errno));
        r.size = lg->end;
    }
    kith_buf_init(&r.buf, env, KITH_STORE_REC_HEADER + KITH_STORE_MAX_RECORD + FILE_READ_CHUNK);
    uint64_t off = 0;
    const char *why = NULL;
    int rc = 0;
    while (off < r.size) {
        uint64_t left = r.size - off;
        const uint8_t *p;
        if (left < KITH_STORE_REC_HEADER) {
            why = "torn header";
            break;
        }
        rc = reader_get(&r, off, KITH_STORE_REC_HEADER, &p);
        if (rc)
            break;
        uint32_t len = kith_get_be32(p);
        uint8_t want[8];
        memcpy(want, p + 4, 8);
        if (len == 0 || len > KITH_STORE_MAX_RECORD) {
            why = "bad length";
            break;
        }
        if (left - KITH_STORE_REC_HEADER < len) {
            why = "torn record";
            break;
        }
        rc = reader_get(&r, off + KITH_STORE_REC_HEADER, len, &p);
        if (rc)
            break;
        uint8_t sum[8];
        store_rec_checksum(p, len, sum);
        if (memcmp(sum, want, 8) != 0) {
            why = "bad checksum";
            break;
        }
        if (cb) {
            rc = cb(ud, p, len);
            if (rc)
                break;
        }
        off += KITH_STORE_REC_HEADER + len;
    }
    kith_buf_free(&r.buf);
    if (rc)
        return rc; /* stopped by the callback or an error: tail not checked */
    if (why) {
        if (ftruncate(lg->fd, (off_t)off) != 0 || fdatasync(lg->fd) != 0) {
            KITH_LOGE(env, "store: log %s: cannot cut its tail at %llu: %s", lg->name,
                (unsigned long long)off, strerror(errno));
            return KITH_EIO;
        }
        KITH_LOGW(env, "store: log %s: cut %llu bytes at offset %llu (%s)", lg->name,
            (unsigned long long)(r.size - off), (unsigned long long)off, why);
    }
    lg->end = off;
    lg->verified = true;
    return 0;
}

static int log_open_fd(file_store *fs, store_log *lg, bool create);

/* Make lg->fd a descriptor of the log file. Without `create`, a missing file
 * is KITH_ENOENT. With `check`, a file not yet checked this session has its
 * tail checked (and cut) before anything is written after it. */
static int log_open(file_store *fs, store_log *lg, bool create, bool check)
{
    lg->lru = ++fs->tick;
    if (lg->fd < 0) {
        int rc = log_open_fd(fs, lg, create);
        if (rc)
            return rc;
    }
    if (check && !lg->verified)
        return scan(fs, lg, NULL, NULL);
    return 0;
}

static int log_open_fd(file_store *fs, store_log *lg, bool create)
{
    char fname[LOG_FNAME_MAX];
    log_fname(fname, lg->name);
    fd_make_room(fs);
    bool created = false;
    int fd = openat(fs->logsfd, fname, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        fd = openat(fs->logsfd, fname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        /* Exactly 0600, whatever the umask took off. */
        created = fd >= 0;
        if (created && fchmod(fd, 0600) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        if (errno == ENOENT)
            return KITH_ENOENT;
        KITH_LOGE(fs->base.env, "store: cannot open log %s: %s", lg->name, strerror(errno));
        return KITH_EIO;
    }
    lg->fd = fd;
    fs->nopen++;
    if (created) {
        lg->end = 0;
        lg->verified = true;
        /* The new name must survive a crash as well as the data written to
         * it: fsync the directory that holds it. */
        if (fsync(fs->logsfd) != 0) {
            KITH_LOGE(fs->base.env, "store: cannot sync %s/logs: %s", fs->path, strerror(errno));
            fd_close(fs, lg);
            return KITH_EIO;
        }
    }
    return 0;
}

static int file_sync_log(file_store *fs, store_log *lg)
{
    int rc = log_open(fs, lg, true, true);
    if (rc)
        return rc;
    /* Write at the known good end rather than O_APPEND: after a failed
     * attempt the retry overwrites whatever part of it reached the file. */
    if (write_all(lg->fd, lg->pending.data, lg->pending.len, lg->end) != 0
        || fdatasync(lg->fd) != 0) {
        KITH_LOGE(fs->base.env, "store: cannot write log %s: %s", lg->name, strerror(errno));
        /* Best effort back to the last good end. The records stay pending and
         * are written again in full by the next sync: after a failed fsync
         * the page cache can no longer be trusted to hold them. */
        if (ftruncate(lg->fd, (off_t)lg->end) != 0) {
            /* The next write at lg->end overwrites the leftovers anyway. */
        }
        fd_close(fs, lg);
        return KITH_EIO;
    }
    lg->end += lg->pending.len;
    lg->exists = true;
    store_log_synced(&fs->base, lg);
    return 0;
}

/* Group commit: one write and one fdatasync per log that has pending
 * records. A failing log does not stop the others from becoming durable. */
static int file_sync(kith_store *st)
{
    file_store *fs = (file_store *)st;
    int err = 0;
    for (store_log *lg = st->logs; lg; lg = lg->next) {
        if (!lg->npending)
            continue;
        int rc = file_sync_log(fs, lg);
        if (rc)
            err = err ? err : (rc == KITH_ENOMEM ? rc : KITH_EIO);
    }
    return err;
}

static int file_read(kith_store *st, store_log *lg, kith_store_rec_cb cb, void *ud)
{
    file_store *fs = (file_store *)st;
    /* Open without the tail check: the scan below both checks and replays. */
    int rc = log_open(fs, lg, false, false);
    if (rc == KITH_ENOENT) {
        lg->end = 0;
        lg->verified = true;
        return 0;
    }
    if (rc)
        return rc;
    lg->exists = true;
    return scan(fs, lg, cb, ud);
}

static int file_end(kith_store *st, store_log *lg, uint64_t *end)
{
    file_store *fs = (file_store *)st;
    if (!lg->verified) {
        int rc = log_open(fs, lg, false, true);
        if (rc == KITH_ENOENT) {
            lg->end = 0; /* no file yet: the first sync creates it */
            lg->verified = true;
        } else if (rc) {
            return rc;
        }
    }
    *end = lg->end;
    return 0;
}

static int pread_all(int fd, uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t got = pread(fd, p, len, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return KITH_EIO;
        p += got;
        len -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/* One record by position: a header and a body read, the checksum checked
 * (a position that is not a record's start fails it too). */
static int file_get(kith_store *st, store_log *lg, uint64_t pos, kith_buf *out)
{
    file_store *fs = (file_store *)st;
    int rc = log_open(fs, lg, false, true);
    if (rc)
        return rc;
    if (pos >= lg->end || lg->end - pos < KITH_STORE_REC_HEADER)
        return KITH_ENOENT;
    uint8_t hdr[KITH_STORE_REC_HEADER];
    if (pread_all(lg->fd, hdr, sizeof hdr, pos) != 0)
        return KITH_EIO;
    size_t n = kith_get_be32(hdr);
    if (n == 0 || n > KITH_STORE_MAX_RECORD || n > lg->end - pos - KITH_STORE_REC_HEADER)
        return KITH_ENOENT;
    size_t at = out->len;
    rc = kith_buf_reserve(out, n);
    if (rc)
        return rc;
    if (pread_all(lg->fd, out->data + at, n, pos + KITH_STORE_REC_HEADER) != 0)
        return KITH_EIO;
    uint8_t sum[8];
    store_rec_checksum(out->data + at, n, sum);
    if (memcmp(sum, hdr + 4, 8) != 0) {
        KITH_LOGW(fs->base.env, "store: log %s: record at %llu fails its checksum", lg->name,
            (unsigned long long)pos);
        return KITH_EIO;
    }
    out->len = at + n;
    return 0;
}

static int file_list(kith_store *st, kith_store_name_cb cb, void *ud)
{
    file_store *fs = (file_store *)st;
    int dfd = openat(fs->logsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        KITH_LOGE(st->env, "store: cannot list %s/logs: %s", fs->path, strerror(errno));
        return KITH_EIO;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        size_t n = strnlen(de->d_name, LOG_FNAME_MAX);
        size_t sl = sizeof LOG_SUFFIX - 1;
        if (n <= sl || n >= LOG_FNAME_MAX || strcmp(de->d_name + n - sl, LOG_SUFFIX) != 0)
            continue;
        char name[KITH_STORE_MAX_NAME + 1];
        memcpy(name, de->d_name, n - sl);
        name[n - sl] = '\0';
        if (store_name_ok(name))
            rc = cb(ud, name);
    }
    closedir(d);
    return rc;
}

static int file_blob_put(kith_store *st, const char *name, const uint8_t *data, size_t len)
{
    file_store *fs = (file_store *)st;
    /* The temporary name starts with '.', which no valid name does, so it
     * never collides with a blob; a stale one from a crash is overwritten. */
    char tmp[KITH_STORE_MAX_NAME + 8];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    int fd = openat(fs->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto fail;
    /* O_CREAT's mode does not apply to a stale file that already existed. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, data, len, 0) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        goto fail_unlink;
    }
    if (close(fd) != 0)
        goto fail_unlink;
    if (renameat(fs->dirfd, tmp, fs->dirfd, name) != 0)
        goto fail_unlink;
    if (fsync(fs->dirfd) != 0)
        goto fail;
    return 0;
fail_unlink : {
    int e = errno;
    unlinkat(fs->dirfd, tmp, 0);
    errno = e;
}
fail:
    KITH_LOGE(st->env, "store: cannot write %s/%s: %s", fs->path, name, strerror(errno));
    return KITH_EIO;
}

static int file_blob_get(kith_store *st, const char *name, kith_buf *out)
{
    file_store *fs = (file_store *)st;
    int fd = openat(fs->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return KITH_ENOENT;
        KITH_LOGE(st->env, "store: cannot open %s/%s: %s", fs->path, name, strerror(errno));
        return KITH_EIO;
    }
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = KITH_EIO;
        goto out;
    }
    if ((uint64_t)sb.st_size > KITH_STORE_MAX_BLOB) {
        rc = KITH_ETOOBIG;
        goto out;
    }
    /* The size is known: blobs are replaced by rename, never rewritten in
     * place, so the file we opened does not change under us. */
    size_t size = (size_t)sb.st_size, got = 0;
    rc = kith_buf_reserve(out, size);
    while (!rc && got < size) {
        ssize_t n = read(fd, out->data + out->len + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = KITH_EIO;
        else
            got += (size_t)n;
    }
    if (!rc)
        out->len += size;
out:
    close(fd);
    if (rc == KITH_EIO)
        KITH_LOGE(st->env, "store: cannot read %s/%s", fs->path, name);
    return rc;
}

static void file_destroy(kith_store *st)
{
    file_store *fs = (file_store *)st;
    for (store_log *lg = st->logs; lg; lg = lg->next)
        fd_close(fs, lg);
    if (fs->logsfd >= 0)
        close(fs->logsfd);
    if (fs->dirfd >= 0)
        close(fs->dirfd);
    if (fs->lockfd >= 0)
        close(fs->lockfd); /* releases the flock */
    kith_free(st->env, fs->path);
}

static const store_ops file_ops = {
    .sync = file_sync,
    .read = file_read,
    .end = file_end,
    .get = file_get,
    .list = file_list,
    .blob_put = file_blob_put,
    .blob_get = file_blob_get,
    .can_crash = false,
    .destroy = file_destroy,
};

/* mkdir -p with mode 0700 for every directory we create. Existing parents
 * are left as they are (they may well be a shared /home or /tmp). */
static int make_dirs(const kith_env *env, const char *path)
{
    size_t n = strnlen(path, FILE_MAX_PATH);
    if (n == 0 || n >= FILE_MAX_PATH)
        return KITH_EINVAL;
    char *p = kith_strndup(env, path, n);
    if (!p)
        return KITH_ENOMEM;
    int rc = 0;
    for (size_t i = 1; i <= n && !rc; i++) {
        if (i < n && p[i] != '/')
            continue;
        if (p[i - 1] == '/')
            continue; /* repeated or trailing slash */
        char save = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) == 0) {
            /* Our umask might have taken bits off; put back exactly 0700. */
            if (chmod(p, 0700) != 0)
                rc = KITH_EIO;
        } else if (errno != EEXIST) {
            KITH_LOGE(env, "store: cannot create %s: %s", p, strerror(errno));
            rc = errno == EACCES ? KITH_EPERM : KITH_EIO;
        }
        p[i] = save;
    }
    kith_free(env, p);
    return rc;
}

/* A store directory must be ours and closed to everyone else: the logs are
 * encrypted, but blobs hold keys, and even the log names and sizes say which
 * rooms we are in and how busy they are. */
static int check_private(const kith_env *env, int fd, const char *what)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        KITH_LOGE(env, "store: %s is not a directory", what);
        return KITH_EIO;
    }
    if (sb.st_uid != geteuid()) {
        KITH_LOGE(env, "store: refusing %s: owned by uid %u, not by us", what, (unsigned)sb.st_uid);
        return KITH_EPERM;
    }
    if (sb.st_mode & 077) {
        KITH_LOGE(env, "store: refusing %s: mode %03o lets other users in; run chmod 700 on it",
            what, (unsigned)(sb.st_mode & 0777));
        return KITH_EPERM;
    }
    return 0;
}

int kith_store_open_file(const kith_env *env, const char *dir, kith_store **out)
{
    if (!env || !dir || !out)
        return KITH_EINVAL;
    int rc = make_dirs(env, dir);
    if (rc)
        return rc;
    file_store *fs = kith_calloc(env, 1, sizeof *fs);
    if (!fs)
        return KITH_ENOMEM;
    store_init(&fs->base, &file_ops, env);
    fs->dirfd = fs->logsfd = fs->lockfd = -1;
    fs->path = kith_strndup(env, dir, FILE_MAX_PATH);
    if (!fs->path) {
        rc = KITH_ENOMEM;
        goto fail;
    }
    fs->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->dirfd < 0) {
        KITH_LOGE(env, "store: cannot open %s: %s", dir, strerror(errno));
        rc = errno == EACCES ? KITH_EPERM : KITH_EIO;
        goto fail;
    }
    rc = check_private(env, fs->dirfd, dir);
    if (rc)
        goto fail;
    fs->lockfd = openat(fs->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fs->lockfd < 0) {
        KITH_LOGE(env, "store: cannot open %s/.lock: %s", dir, strerror(errno));
        rc = KITH_EIO;
        goto fail;
    }
    if (flock(fs->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            KITH_LOGE(env, "store: %s is in use by another kith node", dir);
            rc = KITH_ESTATE;
        } else {
            KITH_LOGE(env, "store: cannot lock %s/.lock: %s", dir, strerror(errno));
            rc = KITH_EIO;
        }
        goto fail;
    }
    if (mkdirat(fs->dirfd, "logs", 0700) == 0) {
        if (fchmodat(fs->dirfd, "logs", 0700, 0) != 0 || fsync(fs->dirfd) != 0) {
            rc = KITH_EIO;
            goto fail;
        }
    } else if (errno != EEXIST) {
        KITH_LOGE(env, "store: cannot create %s/logs: %s", dir, strerror(errno));
        rc = KITH_EIO;
        goto fail;
    }
    fs->logsfd = openat(fs->dirfd, "logs", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fs->logsfd < 0) {
        KITH_LOGE(env, "store: cannot open %s/logs: %s", dir, strerror(errno));
        rc = KITH_EIO;
        goto fail;
    }
    rc = check_private(env, fs->logsfd, "its logs directory");
    if (rc)
        goto fail;
    *out = &fs->base;
    return 0;
fail:
    file_destroy(&fs->base);
    kith_free(env, fs);
    return rc;
}
