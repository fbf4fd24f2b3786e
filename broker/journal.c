/* journal: files, LSNs, the sync thread and the snapshot child.
 *
 * Threads: the broker's loop owns everything here except what the sync
 * thread shares under `mu`: fd (read at sync start), written_lsn (what to
 * sync up to), synced_lsn and syncing. Rotation waits until the thread is
 * idle, so the thread never syncs a closed descriptor.
 *
 * Invariants: appended >= written >= durable; pending holds exactly the
 * bytes of LSNs (written, appended]. */
#include "journal.h"
#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH_MAX_LEN 4096
#define WRITE_WARN_US 5000000     /* usecs between repeated write-failure log lines */
#define COMPACT_RETRY_US 30000000 /* usecs to wait after a failed compaction */
#define SNAPSHOT_FLUSH 1048576    /* bytes buffered by the snapshot child per write */
/* the snapshot's last bytes: one END record (header + 16-byte payload) */
#define END_FRAME_SIZE (BROKER_JREC_HEADER_SIZE + 16)

struct broker_journal {
    char *dir;
    broker_fsync_t policy;
    int64_t batch_us;       /* usecs between fdatasyncs (batch) */
    uint64_t compact_bytes; /* threshold; 0 = never */
    char *fault_file;       /* tests: writes fail while it exists; NULL = never */
    int lock_fd;            /* flock'ed LOCK file: one broker per directory */
    int dir_fd;             /* for fsync after creating and renaming files */

    int fd;                 /* current journal file, or -1 before recovery */
    uint64_t generation;    /* of the current journal */
    uint64_t file_size;     /* bytes in the current journal file */
    uint64_t snap_gen;      /* generation of the snapshot recovery starts from; 0 = none */
    uint64_t journal_bytes; /* bytes of journal files from snap_gen on */
    uint64_t snapshot_bytes;
    bool damaged; /* recovery saw damage: compact soon to drop it */

    broker_jbuf_t pending; /* appended, not written */
    uint64_t appended;     /* LSNs: bytes ever appended */
    uint64_t written;
    uint64_t durable;
    int64_t last_write_warn; /* monotonic usecs */

    /* batch policy: the sync thread */
    pthread_t thread;
    bool thread_running;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* main -> thread: there is something to sync, or stop */
    pthread_cond_t idle; /* thread -> main: a sync finished */
    bool stop;
    bool syncing;
    uint64_t sync_target;      /* shared: written LSN the thread should make durable */
    uint64_t synced;           /* shared: LSN made durable by the thread */
    uint64_t sync_errors;      /* shared */
    uint64_t sync_count;       /* shared */
    uint64_t sync_errors_seen; /* main: sync_errors already reported */
    int efd;                   /* eventfd: the thread says "synced" */

    /* compaction */
    pid_t child;             /* snapshot child, or 0 */
    uint64_t child_gen;      /* generation of the snapshot it writes */
    int64_t child_start;     /* monotonic usecs */
    int64_t next_compaction; /* monotonic usecs: not before (after a failure) */
    int snap_fd;             /* in the child: the snapshot file */
    broker_jbuf_t snap_buf;  /* in the child */
    uint64_t snap_count;     /* in the child: ADD records written */
    uint64_t snap_ids;       /* in the child: REVOKED_ID records written */
    bool snap_failed;        /* in the child */

    broker_journal_stats_t stats;
};

/* ---- small helpers ----------------------------------------------------------- */

int broker_fsync_parse(const char *text, broker_fsync_t *out) {
    if (!text)
        return ZT_ERR_INVALID;
    if (strcmp(text, "always") == 0)
        *out = BROKER_FSYNC_ALWAYS;
    else if (strcmp(text, "batch") == 0)
        *out = BROKER_FSYNC_BATCH;
    else if (strcmp(text, "off") == 0)
        *out = BROKER_FSYNC_OFF;
    else
        return ZT_ERR_INVALID;
    return 0;
}

const char *broker_fsync_name(broker_fsync_t policy) {
    switch (policy) {
    case BROKER_FSYNC_ALWAYS:
        return "always";
    case BROKER_FSYNC_BATCH:
        return "batch";
    case BROKER_FSYNC_OFF:
        return "off";
    }
    return "?";
}

void broker_journal_options_defaults(broker_journal_options_t *opts) {
    memset(opts, 0, sizeof *opts);
    opts->fsync = BROKER_FSYNC_BATCH;
    opts->batch_ms = BROKER_JOURNAL_BATCH_MS_DEFAULT;
    opts->compact_bytes = BROKER_JOURNAL_COMPACT_BYTES_DEFAULT;
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[PATH_MAX_LEN];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static void file_path(const broker_journal_t *self, char *buf, size_t size, const char *kind,
                      uint64_t gen, const char *suffix) {
    snprintf(buf, size, "%s/%s-%016" PRIx64 ".%s", self->dir, kind, gen, suffix);
}

/* Writes all of data[0..size) at the end of fd. Returns 0 or -1 (errno). */
static int write_all(int fd, const void *data, size_t size) {
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

static int64_t now_us(void) {
    return zt_clock_mono_us();
}

/* ---- sync thread (batch) ----------------------------------------------------- */

static void *sync_main(void *arg) {
    broker_journal_t *self = arg;
    int64_t last = 0;
    bool loaded = false; /* records arrived during the last fdatasync */
    pthread_mutex_lock(&self->mu);
    while (!self->stop) {
        if (self->synced >= self->sync_target) {
            pthread_cond_wait(&self->wake, &self->mu);
            continue;
        }
        /* Pacing under load only: when records arrived while the last
         * fdatasync ran, the next one waits until batch_us after the last
         * began, so each covers more records and the loop is woken less
         * (every fdatasync is a VM exit and a loop wake-up). A client that
         * sends one SUBMIT at a time never lands during a sync, so its
         * records are synced at once. */
        int64_t wait = self->batch_us > 0 && loaded ? last + self->batch_us - now_us() : 0;
        if (wait > 0) {
            pthread_mutex_unlock(&self->mu);
            struct timespec ts = {wait / 1000000, (wait % 1000000) * 1000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&self->mu);
            continue;
        }
        uint64_t target = self->sync_target;
        int fd = self->fd;
        self->syncing = true;
        pthread_mutex_unlock(&self->mu);
        last = now_us();
        int rc = fdatasync(fd);
        pthread_mutex_lock(&self->mu);
        self->syncing = false;
        loaded = self->sync_target > target;
        if (rc == 0) {
            if (target > self->synced)
                self->synced = target;
            self->sync_count++;
        } else {
            self->sync_errors++;
        }
        pthread_cond_broadcast(&self->idle);
        pthread_mutex_unlock(&self->mu);
        uint64_t one = 1;
        ssize_t w = write(self->efd, &one, sizeof one);
        (void)w; /* a full eventfd counter still wakes the loop */
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* Waits (bounded by one fdatasync) until the thread is not syncing; the
 * caller holds mu afterwards and must unlock it. */
static void lock_idle(broker_journal_t *self) {
    pthread_mutex_lock(&self->mu);
    while (self->syncing)
        pthread_cond_wait(&self->idle, &self->mu);
}

/* ---- construction ---------------------------------------------------------------- */

broker_journal_t *broker_journal_new(const broker_journal_options_t *opts, int *err) {
    if (!opts || !opts->dir || !*opts->dir || opts->batch_ms < 0 || opts->batch_ms > 10000 ||
        opts->compact_bytes < 0) {
        if (err)
            *err = ZT_ERR_INVALID;
        return NULL;
    }
    if (make_dirs(opts->dir) != 0) {
        zt_error("cannot create data directory %s: %s", opts->dir, strerror(errno));
        if (err)
            *err = ZT_ERR_IO;
        return NULL;
    }
    broker_journal_t *self = zt_calloc(1, sizeof *self);
    self->dir = zt_strdup(opts->dir);
    self->policy = opts->fsync;
    self->batch_us = opts->batch_ms * 1000;
    self->compact_bytes = (uint64_t)opts->compact_bytes;
    if (opts->fault_file && *opts->fault_file) {
        self->fault_file = zt_strdup(opts->fault_file);
        zt_warn("journal: failure injection on: writes fail while %s exists", self->fault_file);
    }
    self->fd = self->efd = self->snap_fd = -1;
    self->stats.fsync = broker_fsync_name(self->policy);
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->idle, NULL);
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/LOCK", self->dir);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    self->dir_fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->lock_fd < 0 || self->dir_fd < 0) {
        zt_error("cannot open data directory %s: %s", self->dir, strerror(errno));
        goto fail;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        zt_error("data directory %s is in use by another broker (%s)", self->dir, strerror(errno));
        goto fail;
    }
    if (self->policy == BROKER_FSYNC_BATCH) {
        self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (self->efd < 0) {
            zt_error("cannot create an eventfd: %s", strerror(errno));
            goto fail;
        }
    }
    return self;
fail:
    broker_journal_destroy(&self);
    if (err)
        *err = ZT_ERR_IO;
    return NULL;
}

static void reap_child(broker_journal_t *self, bool block);

void broker_journal_destroy(broker_journal_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_journal_t *self = *self_p;
    if (self->fd >= 0 && broker_journal_sync_now(self) != 0)
        zt_error("journal: could not sync the last records at shutdown");
    if (self->child > 0) {
        /* a big snapshot could outlast any stop timeout: abandon it; the
         * journals it would have replaced are all still there */
        kill(self->child, SIGKILL);
        waitpid(self->child, NULL, 0);
        char tmp[PATH_MAX_LEN];
        file_path(self, tmp, sizeof tmp, "snapshot", self->child_gen, "zts.tmp");
        unlink(tmp);
        zt_info("compaction: snapshot-%016" PRIx64 " abandoned at shutdown", self->child_gen);
        self->child = 0;
    }
    if (self->thread_running) {
        pthread_mutex_lock(&self->mu);
        self->stop = true;
        pthread_cond_broadcast(&self->wake);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
    }
    if (self->fd >= 0)
        close(self->fd);
    if (self->efd >= 0)
        close(self->efd);
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->idle);
    broker_jbuf_free(&self->pending);
    broker_jbuf_free(&self->snap_buf);
    free(self->fault_file);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

broker_fsync_t broker_journal_policy(const broker_journal_t *self) {
    return self->policy;
}

const char *broker_journal_dir(const broker_journal_t *self) {
    return self->dir;
}

/* ---- files ------------------------------------------------------------------------- */

/* Creates journal-gen with its header, synced, and makes it current.
 * The previous one must be closed already. Returns 0 or ZT_ERR_IO. */
static int open_segment(broker_journal_t *self, uint64_t gen, int *fd_out) {
    char path[PATH_MAX_LEN];
    file_path(self, path, sizeof path, "journal", gen, "ztj");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        zt_error("journal: cannot create %s: %s", path, strerror(errno));
        return ZT_ERR_IO;
    }
    broker_jbuf_t hdr = {0};
    broker_jfile_header(&hdr, BROKER_JFILE_JOURNAL, gen);
    int rc = write_all(fd, hdr.data, hdr.size);
    broker_jbuf_free(&hdr);
    if (rc != 0 || fdatasync(fd) != 0 || fsync(self->dir_fd) != 0) {
        zt_error("journal: cannot initialise %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return ZT_ERR_IO;
    }
    *fd_out = fd;
    return 0;
}

typedef struct {
    uint64_t gen;
    bool snapshot;
} file_entry_t;

static int by_gen(const void *a, const void *b) {
    const file_entry_t *x = a, *y = b;
    if (x->gen != y->gen)
        return x->gen < y->gen ? -1 : 1;
    return (int)y->snapshot - (int)x->snapshot; /* snapshot before journal */
}

/* Lists journal and snapshot files, sorted by generation; removes leftover
 * snapshot temporaries. Returns the array (caller frees) and its size. */
static file_entry_t *list_files(broker_journal_t *self, size_t *count) {
    size_t n = 0, cap = 16;
    file_entry_t *list = zt_calloc(cap, sizeof *list);
    DIR *d = opendir(self->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        uint64_t gen;
        char kind[16], ext[16];
        int used = 0;
        if (sscanf(e->d_name, "%15[a-z]-%16" SCNx64 ".%15[a-z.]%n", kind, &gen, ext, &used) != 3 ||
            e->d_name[used] != '\0')
            continue;
        if (strcmp(kind, "snapshot") == 0 && strcmp(ext, "zts.tmp") == 0) {
            char path[PATH_MAX_LEN];
            snprintf(path, sizeof path, "%s/%s", self->dir, e->d_name);
            unlink(path); /* an interrupted compaction */
            zt_info("journal: removed the unfinished snapshot %s", e->d_name);
            continue;
        }
        bool snap = strcmp(kind, "snapshot") == 0 && strcmp(ext, "zts") == 0;
        bool jour = strcmp(kind, "journal") == 0 && strcmp(ext, "ztj") == 0;
        if (!snap && !jour)
            continue;
        if (n == cap) {
            cap *= 2;
            list = zt_realloc(list, cap * sizeof *list);
        }
        list[n].gen = gen;
        list[n].snapshot = snap;
        n++;
    }
    if (d)
        closedir(d);
    qsort(list, n, sizeof *list, by_gen);
    *count = n;
    return list;
}

/* A file mapped for reading. */
typedef struct {
    int fd;
    void *data;
    size_t size;
} mapped_t;

static int map_file(const char *path, mapped_t *m) {
    memset(m, 0, sizeof *m);
    m->fd = open(path, O_RDWR | O_CLOEXEC);
    if (m->fd < 0)
        return -1;
    struct stat st;
    if (fstat(m->fd, &st) != 0) {
        close(m->fd);
        return -1;
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0)
        return 0;
    m->data = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, m->fd, 0);
    if (m->data == MAP_FAILED) {
        m->data = NULL;
        close(m->fd);
        return -1;
    }
    madvise(m->data, m->size, MADV_SEQUENTIAL);
    return 0;
}

static void unmap_file(mapped_t *m) {
    if (m->data)
        munmap(m->data, m->size);
    if (m->fd >= 0)
        close(m->fd);
    memset(m, 0, sizeof *m);
    m->fd = -1;
}

/* True if the snapshot ends with a good END record (it was completed). */
static bool snapshot_complete(const mapped_t *m) {
    if (m->size < BROKER_JFILE_HEADER_SIZE + END_FRAME_SIZE)
        return false;
    broker_jreader_t r;
    const char *why;
    if (broker_jreader_init(&r, m->data, m->size, &why) != 0 || r.kind != BROKER_JFILE_SNAPSHOT)
        return false;
    r.pos = m->size - END_FRAME_SIZE;
    broker_jrec_t rec;
    return broker_jreader_next(&r, &rec) == BROKER_JREAD_RECORD && rec.type == BROKER_JREC_END;
}

/* Sets a file aside whose header cannot be trusted. */
static void set_aside(broker_journal_t *self, const char *path, const char *why,
                      broker_journal_recovery_t *out) {
    char bad[PATH_MAX_LEN + 16];
    snprintf(bad, sizeof bad, "%s.damaged", path);
    zt_error("journal: %s: %s; renamed to %s, its records are lost", path, why, bad);
    if (rename(path, bad) != 0)
        zt_error("journal: cannot rename %s: %s", path, strerror(errno));
    out->bad_files++;
    self->damaged = true;
}

/* Replays one file. is_snapshot: the file must be a snapshot. */
static void replay_file(broker_journal_t *self, uint64_t gen, bool is_snapshot,
                        broker_journal_apply_fn *apply, void *arg, broker_journal_recovery_t *out) {
    char path[PATH_MAX_LEN];
    file_path(self, path, sizeof path, is_snapshot ? "snapshot" : "journal", gen,
              is_snapshot ? "zts" : "ztj");
    mapped_t m;
    if (map_file(path, &m) != 0) {
        zt_error("journal: cannot read %s: %s", path, strerror(errno));
        out->bad_files++;
        return;
    }
    if (m.size == 0) {
        /* created, then the broker died before its header was synced */
        zt_warn("journal: %s is empty; removed", path);
        unmap_file(&m);
        unlink(path);
        return;
    }
    broker_jreader_t r;
    const char *why;
    if (broker_jreader_init(&r, m.data, m.size, &why) != 0 || r.generation != gen ||
        r.kind != (is_snapshot ? BROKER_JFILE_SNAPSHOT : BROKER_JFILE_JOURNAL)) {
        unmap_file(&m);
        set_aside(self, path, "header damaged or not matching the file name", out);
        return;
    }
    out->files++;
    out->bytes += m.size;
    broker_jrec_t rec;
    int rc;
    while ((rc = broker_jreader_next(&r, &rec)) != BROKER_JREAD_END) {
        if (rc == BROKER_JREAD_CORRUPT) {
            zt_error("journal: %s: corrupt record at offset %zu (%zu bytes, %s) skipped; "
                     "the records after it are recovered",
                     path, r.bad_offset, r.bad_length, r.bad_reason);
            out->corrupt++;
            self->damaged = true;
            continue;
        }
        if (rec.type == BROKER_JREC_END)
            continue; /* checked by snapshot_complete() */
        apply(arg, &rec);
        out->records++;
    }
    size_t good_end = r.good_end;
    bool torn = r.torn;
    size_t bad_len = r.bad_length;
    const char *bad_reason = r.bad_reason;
    unmap_file(&m);
    if (torn) {
        /* a power cut mid-write: cut the file at the last good record */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)good_end) != 0 || fdatasync(fd) != 0)
            zt_error("journal: %s: cannot cut the torn tail: %s", path, strerror(errno));
        else
            zt_warn("journal: %s: torn tail of %zu bytes (%s) cut at offset %zu", path, bad_len,
                    bad_reason, good_end);
        if (fd >= 0)
            close(fd);
        out->torn++;
    }
    if (is_snapshot)
        self->snapshot_bytes = good_end;
    else
        self->journal_bytes += good_end;
}

int broker_journal_recover(broker_journal_t *self, broker_journal_apply_fn *apply, void *arg,
                           broker_journal_recovery_t *out) {
    broker_journal_recovery_t local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof *out);
    ZT_ASSERT(self->fd < 0);
    int64_t m0 = now_us();
    size_t n;
    file_entry_t *files = list_files(self, &n);
    uint64_t max_gen = 0;
    for (size_t i = 0; i < n; i++)
        if (files[i].gen > max_gen)
            max_gen = files[i].gen;

    /* the newest complete snapshot; incomplete ones cannot exist (rename)
     * unless a disk lied, so say so */
    self->snap_gen = 0;
    for (size_t i = n; i-- > 0;) {
        if (!files[i].snapshot)
            continue;
        char path[PATH_MAX_LEN];
        file_path(self, path, sizeof path, "snapshot", files[i].gen, "zts");
        mapped_t m;
        bool ok = map_file(path, &m) == 0 && snapshot_complete(&m);
        unmap_file(&m);
        if (ok) {
            self->snap_gen = files[i].gen;
            break;
        }
        set_aside(self, path, "snapshot incomplete or damaged", out);
    }
    if (self->snap_gen)
        replay_file(self, self->snap_gen, true, apply, arg, out);
    for (size_t i = 0; i < n; i++)
        if (!files[i].snapshot && files[i].gen >= self->snap_gen)
            replay_file(self, files[i].gen, false, apply, arg, out);
    free(files);

    self->generation = max_gen + 1;
    int rc = open_segment(self, self->generation, &self->fd);
    if (rc != 0)
        return rc;
    self->file_size = BROKER_JFILE_HEADER_SIZE;
    self->journal_bytes += BROKER_JFILE_HEADER_SIZE;
    if (self->policy == BROKER_FSYNC_BATCH) {
        if (pthread_create(&self->thread, NULL, sync_main, self) != 0) {
            zt_error("journal: cannot start the sync thread");
            return ZT_ERR_IO;
        }
        self->thread_running = true;
    }
    out->seconds = (double)(now_us() - m0) / 1e6;
    out->generation = self->generation;
    return 0;
}

/* ---- appending ---------------------------------------------------------------------- */

void broker_journal_append(broker_journal_t *self, const broker_jrec_t *rec) {
    self->appended += broker_jrec_encode(&self->pending, rec);
    self->stats.records++;
}

uint64_t broker_journal_appended(const broker_journal_t *self) {
    return self->appended;
}

uint64_t broker_journal_durable(const broker_journal_t *self) {
    return self->durable;
}

size_t broker_journal_pending(const broker_journal_t *self) {
    return self->pending.size;
}

int broker_journal_sync_fd(const broker_journal_t *self) {
    return self->efd;
}

static void write_failed(broker_journal_t *self, const char *what) {
    self->stats.write_errors++;
    int64_t now = now_us();
    if (self->last_write_warn == 0 || now - self->last_write_warn >= WRITE_WARN_US) {
        zt_error("JOURNAL %s FAILED on %s/journal-%016" PRIx64 ".ztj: %s; %zu bytes held, "
                 "replies to clients wait; the broker keeps serving and retries",
                 what, self->dir, self->generation, strerror(errno), self->pending.size);
        self->last_write_warn = now;
    }
}

/* Writes pending to the current file. Returns 0 or ZT_ERR_IO (pending
 * kept, any partial write cut off again). */
static int write_pending(broker_journal_t *self) {
    if (self->pending.size == 0)
        return 0;
    if (self->fault_file && access(self->fault_file, F_OK) == 0) {
        errno = ENOSPC; /* injected: as if the disk were full */
        write_failed(self, "WRITE");
        return ZT_ERR_IO;
    }
    if (write_all(self->fd, self->pending.data, self->pending.size) != 0) {
        int saved = errno;
        /* a partial record would sit in the middle once the retry works */
        if (ftruncate(self->fd, (off_t)self->file_size) != 0)
            zt_error("journal: cannot cut a partial write: %s", strerror(errno));
        errno = saved;
        write_failed(self, "WRITE");
        return ZT_ERR_IO;
    }
    if (self->last_write_warn) {
        zt_warn("journal writes work again");
        self->last_write_warn = 0;
    }
    self->file_size += self->pending.size;
    self->journal_bytes += self->pending.size;
    self->pending.size = 0;
    self->written = self->appended;
    self->stats.writes++;
    return 0;
}

int broker_journal_commit(broker_journal_t *self) {
    if (self->fd < 0)
        return 0;
    if (write_pending(self) != 0)
        return ZT_ERR_IO;
    switch (self->policy) {
    case BROKER_FSYNC_OFF:
        self->durable = self->written;
        break;
    case BROKER_FSYNC_ALWAYS:
        if (self->durable < self->written) {
            if (fdatasync(self->fd) != 0) {
                write_failed(self, "FSYNC");
                return ZT_ERR_IO;
            }
            self->stats.syncs++;
            self->durable = self->written;
        }
        break;
    case BROKER_FSYNC_BATCH:
        if (self->durable < self->written) {
            pthread_mutex_lock(&self->mu);
            if (self->sync_target < self->written) {
                self->sync_target = self->written;
                pthread_cond_signal(&self->wake);
            }
            pthread_mutex_unlock(&self->mu);
        }
        break;
    }
    return 0;
}

void broker_journal_on_synced(broker_journal_t *self) {
    uint64_t count;
    while (read(self->efd, &count, sizeof count) > 0)
        ;
    pthread_mutex_lock(&self->mu);
    uint64_t synced = self->synced;
    uint64_t errors = self->sync_errors;
    self->stats.syncs = self->sync_count;
    pthread_mutex_unlock(&self->mu);
    if (synced > self->durable)
        self->durable = synced;
    if (errors > self->sync_errors_seen) {
        self->sync_errors_seen = errors;
        errno = EIO; /* the thread's errno is gone; EIO is what fdatasync reports */
        write_failed(self, "FSYNC");
    }
}

int broker_journal_sync_now(broker_journal_t *self) {
    if (self->fd < 0)
        return 0;
    if (write_pending(self) != 0)
        return ZT_ERR_IO;
    if (self->durable >= self->written)
        return 0;
    if (self->thread_running) {
        lock_idle(self);
        int rc = fdatasync(self->fd);
        if (rc == 0 && self->synced < self->written)
            self->synced = self->written;
        pthread_mutex_unlock(&self->mu);
        if (rc != 0) {
            write_failed(self, "FSYNC");
            return ZT_ERR_IO;
        }
    } else if (fdatasync(self->fd) != 0) {
        write_failed(self, "FSYNC");
        return ZT_ERR_IO;
    }
    self->durable = self->written;
    return 0;
}

/* ---- compaction ------------------------------------------------------------------------ */

bool broker_journal_compaction_due(const broker_journal_t *self) {
    if (self->child > 0 || self->fd < 0 || self->compact_bytes == 0)
        return false;
    if (self->next_compaction && now_us() < self->next_compaction)
        return false;
    if (self->damaged)
        return true;
    return self->journal_bytes >= self->compact_bytes &&
           self->journal_bytes >= self->snapshot_bytes;
}

static void snap_flush(broker_journal_t *self) {
    if (self->snap_failed || self->snap_buf.size == 0)
        return;
    if (write_all(self->snap_fd, self->snap_buf.data, self->snap_buf.size) != 0)
        self->snap_failed = true;
    self->snap_buf.size = 0;
}

void broker_journal_snapshot_put(broker_journal_t *self, const broker_jrec_t *rec) {
    broker_jrec_encode(&self->snap_buf, rec);
    if (rec->type == BROKER_JREC_ADD)
        self->snap_count++;
    else if (rec->type == BROKER_JREC_REVOKED_ID)
        self->snap_ids++;
    if (self->snap_buf.size >= SNAPSHOT_FLUSH)
        snap_flush(self);
}

static size_t remove_older(broker_journal_t *self, uint64_t gen);

/* The snapshot child: never returns. Touches no socket and no lock of the
 * parent; only memory it inherited, its own file, and _exit(). */
static void snapshot_child(broker_journal_t *self, uint64_t gen, broker_journal_snapshot_fn *fn,
                           void *arg) {
    /* die with the broker: a snapshot of a dead broker is useless work */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(3);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    char tmp[PATH_MAX_LEN], path[PATH_MAX_LEN];
    file_path(self, tmp, sizeof tmp, "snapshot", gen, "zts.tmp");
    file_path(self, path, sizeof path, "snapshot", gen, "zts");
    self->snap_fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (self->snap_fd < 0)
        _exit(2);
    memset(&self->snap_buf, 0, sizeof self->snap_buf);
    self->snap_count = self->snap_ids = 0;
    self->snap_failed = false;
    broker_jfile_header(&self->snap_buf, BROKER_JFILE_SNAPSHOT, gen);
    if (fn(arg, self) != 0)
        _exit(4);
    broker_jrec_t end = {
        .type = BROKER_JREC_END, .count = self->snap_count, .count2 = self->snap_ids};
    broker_jrec_encode(&self->snap_buf, &end);
    snap_flush(self);
    if (self->snap_failed || fsync(self->snap_fd) != 0 || close(self->snap_fd) != 0 ||
        rename(tmp, path) != 0 || fsync(self->dir_fd) != 0)
        _exit(5);
    /* The snapshot is in place: older files are dead weight. Removing them
     * here keeps the cost of unlinking a big file (tens of ms on ext4) out
     * of the broker's loop. */
    remove_older(self, gen);
    _exit(0);
}

int broker_journal_compact(broker_journal_t *self, broker_journal_snapshot_fn *fn, void *arg) {
    if (self->child > 0 || self->fd < 0)
        return ZT_ERR_IO;
    int64_t t0 = now_us();
    /* everything so far goes to the old journal, durably: the snapshot
     * replaces it only once complete, and until then both are replayed */
    if (broker_journal_sync_now(self) != 0)
        return ZT_ERR_IO;
    uint64_t gen = self->generation + 1;
    int fd;
    if (open_segment(self, gen, &fd) != 0) {
        self->next_compaction = now_us() + COMPACT_RETRY_US;
        return ZT_ERR_IO;
    }
    int64_t t1 = now_us();
    pid_t pid = fork();
    if (pid == 0)
        snapshot_child(self, gen, fn, arg);
    if (pid < 0) {
        zt_error("journal: cannot fork the snapshot writer: %s; journal-%016" PRIx64
                 " stays as it is",
                 strerror(errno), gen);
        close(fd);
        char path[PATH_MAX_LEN];
        file_path(self, path, sizeof path, "journal", gen, "ztj");
        unlink(path);
        self->next_compaction = now_us() + COMPACT_RETRY_US;
        return ZT_ERR_IO;
    }
    int64_t t2 = now_us();
    /* switch to the new generation while no sync runs on the old fd */
    if (self->thread_running) {
        lock_idle(self);
        int old = self->fd;
        self->fd = fd;
        pthread_mutex_unlock(&self->mu);
        close(old);
    } else {
        close(self->fd);
        self->fd = fd;
    }
    self->generation = gen;
    self->file_size = BROKER_JFILE_HEADER_SIZE;
    self->child = pid;
    self->child_gen = gen;
    self->child_start = t2;
    self->stats.last_fork_ms = (double)(t2 - t0) / 1000.0;
    zt_info("compaction: writing snapshot-%016" PRIx64 " in child %d (loop paused %.2f ms: "
            "sync and new file %.2f ms, fork %.2f ms; journal was %" PRIu64 " bytes)",
            gen, (int)pid, self->stats.last_fork_ms, (double)(t1 - t0) / 1000.0,
            (double)(t2 - t1) / 1000.0, self->journal_bytes);
    return 0;
}

/* Removes every file older than generation gen. */
static size_t remove_older(broker_journal_t *self, uint64_t gen) {
    size_t n, removed = 0;
    file_entry_t *files = list_files(self, &n);
    for (size_t i = 0; i < n; i++) {
        if (files[i].gen >= gen)
            continue;
        char path[PATH_MAX_LEN];
        file_path(self, path, sizeof path, files[i].snapshot ? "snapshot" : "journal", files[i].gen,
                  files[i].snapshot ? "zts" : "ztj");
        if (unlink(path) == 0)
            removed++;
        else
            zt_warn("journal: cannot remove %s: %s", path, strerror(errno));
    }
    free(files);
    fsync(self->dir_fd);
    return removed;
}

static void reap_child(broker_journal_t *self, bool block) {
    int status;
    pid_t r = waitpid(self->child, &status, block ? 0 : WNOHANG);
    if (r == 0)
        return;
    double secs = (double)(now_us() - self->child_start) / 1e6;
    self->child = 0;
    if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        zt_error("compaction: snapshot-%016" PRIx64 " failed (%s %d) after %.2f s; the "
                 "journals stay and it is tried again later",
                 self->child_gen,
                 r < 0               ? "waitpid"
                 : WIFEXITED(status) ? "exit"
                                     : "signal",
                 r < 0               ? errno
                 : WIFEXITED(status) ? WEXITSTATUS(status)
                                     : WTERMSIG(status),
                 secs);
        char tmp[PATH_MAX_LEN];
        file_path(self, tmp, sizeof tmp, "snapshot", self->child_gen, "zts.tmp");
        unlink(tmp);
        self->next_compaction = now_us() + COMPACT_RETRY_US;
        return;
    }
    char path[PATH_MAX_LEN];
    file_path(self, path, sizeof path, "snapshot", self->child_gen, "zts");
    struct stat st;
    self->snapshot_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    size_t removed = remove_older(self, self->child_gen); /* normally the child did */
    self->snap_gen = self->child_gen;
    self->journal_bytes = self->file_size;
    self->damaged = false;
    self->next_compaction = 0;
    self->stats.compactions++;
    self->stats.last_compaction_s = secs;
    zt_info("compaction: snapshot-%016" PRIx64 " done in %.2f s (%" PRIu64 " bytes), older files "
            "removed%s",
            self->child_gen, secs, self->snapshot_bytes, removed ? " (some by the broker)" : "");
}

void broker_journal_poll(broker_journal_t *self) {
    if (self->child > 0)
        reap_child(self, false);
}

void broker_journal_stats(const broker_journal_t *self, broker_journal_stats_t *out) {
    *out = self->stats;
    out->generation = self->generation;
    out->journal_bytes = self->journal_bytes;
    out->snapshot_bytes = self->snapshot_bytes;
    out->compacting = self->child > 0;
}
