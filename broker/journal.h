/* journal: the durability policy (docs/DURABILITY.md). Owns the data
 * directory and its files, decides when appended records reach the disk
 * and when they are durable, and rewrites the journal as a snapshot when it
 * grows. Record framing and decoding live in jfile.h; what records mean is
 * broker.c's business (it appends them and applies them on recovery).
 *
 * Files, by generation G (16 hex digits):
 *   journal-G.ztj   records appended since snapshot-G's state (or since an
 *                   empty broker when there is no snapshot)
 *   snapshot-G.zts  the whole state when journal-G began (written by a
 *                   forked child, then renamed into place: all or nothing)
 * Recovery replays the newest complete snapshot, then every journal of that
 * generation or later, in order.
 *
 * Durability is tracked by LSN: the count of bytes ever appended. A reply
 * that must wait for a record remembers broker_journal_appended() and goes
 * out once broker_journal_durable() has passed it:
 *   off     durable once write(2) returned (survives the broker's death,
 *           not the machine's)
 *   always  write(2) then fdatasync(2) at every commit, in the loop
 *   batch   write(2) at every commit; a sync thread runs fdatasync and
 *           wakes the loop through an eventfd (group commit: one fsync in
 *           flight at a time, covering every record written before it
 *           started; the next starts as soon as it ends, or batch_ms after
 *           the last one started when batch_ms > 0). The loop never waits
 *           for the disk. */
#ifndef BROKER_JOURNAL_H
#define BROKER_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jfile.h"

typedef struct broker_journal broker_journal_t;

typedef enum { BROKER_FSYNC_ALWAYS = 0, BROKER_FSYNC_BATCH, BROKER_FSYNC_OFF } broker_fsync_t;

/* Parses "always", "batch" or "off". Returns 0, or ZT_ERR_INVALID. */
int broker_fsync_parse(const char *text, broker_fsync_t *out);
/* The name of a policy ("always", "batch", "off"). */
const char *broker_fsync_name(broker_fsync_t policy);

/* Options: a public value struct; strings are copied by broker_journal_new(). */
typedef struct {
    const char *dir;       /* data directory, created with its parents if missing */
    broker_fsync_t fsync;  /* durability policy */
    int64_t batch_ms;      /* msecs: least time between two fdatasyncs (batch); 0 = none */
    int64_t compact_bytes; /* journal bytes since the last snapshot that start a compaction
                              (also at least the last snapshot's size); 0 = never compact */
    /* Failure injection for tests (beanstalkd's full-disk hook): while a
     * file exists at this path, journal writes fail with ENOSPC. NULL: off. */
    const char *fault_file;
} broker_journal_options_t;

#define BROKER_JOURNAL_BATCH_MS_DEFAULT 1
#define BROKER_JOURNAL_COMPACT_BYTES_DEFAULT (64LL * 1024 * 1024)

/* Fills opts with the defaults (dir NULL: the caller must set it). */
void broker_journal_options_defaults(broker_journal_options_t *opts);

/* Creates the data directory and takes a lock on it (a second broker on
 * the same directory is refused). Nothing is read or written yet. Returns
 * the journal, or NULL with *err: ZT_ERR_IO (cannot create or lock the
 * directory), ZT_ERR_INVALID (bad options). err may be NULL. */
broker_journal_t *broker_journal_new(const broker_journal_options_t *opts, int *err);

/* Writes and syncs what is pending (any policy), waits for a compaction
 * child, stops the sync thread, closes the files; *self_p = NULL. */
void broker_journal_destroy(broker_journal_t **self_p);

/* ---- recovery ---------------------------------------------------------- */

/* What recovery found; a public value struct. */
typedef struct {
    size_t files;        /* files read */
    size_t records;      /* good records applied */
    size_t corrupt;      /* damaged regions skipped in the middle of files */
    size_t torn;         /* files whose damaged tail was cut */
    size_t bad_files;    /* files set aside (header damaged: renamed *.damaged) */
    uint64_t bytes;      /* bytes read */
    double seconds;      /* wall time of the whole recovery */
    uint64_t generation; /* the journal generation appended to from now on */
} broker_journal_recovery_t;

/* Called for each good record, in order. The record's strings point into
 * the file's bytes: copy what you keep before returning. */
typedef void(broker_journal_apply_fn)(void *arg, const broker_jrec_t *rec);

/* Replays the newest complete snapshot and the journals after it through
 * apply, cuts a torn tail (one WARN line), reports corrupt records with
 * their offsets (one ERROR line each) and recovers the rest, then opens a
 * new journal generation for appending. Call once, before any append.
 * Returns 0 (damage is not an error: the broker always starts), or
 * ZT_ERR_IO when the new journal file cannot be created. out may be NULL. */
int broker_journal_recover(broker_journal_t *self, broker_journal_apply_fn *apply, void *arg,
                           broker_journal_recovery_t *out);

/* ---- appending and commit -------------------------------------------- */

/* Appends a record to the pending batch (memory only). */
void broker_journal_append(broker_journal_t *self, const broker_jrec_t *rec);

/* LSN after everything appended so far, and the LSN known durable under the
 * policy. A reply waiting for LSN n may go once durable >= n. */
uint64_t broker_journal_appended(const broker_journal_t *self);
uint64_t broker_journal_durable(const broker_journal_t *self);

/* Ends a batch: writes the pending records (and, under `always`, syncs
 * them; under `batch`, wakes the sync thread). Returns 0, or ZT_ERR_IO when
 * the write or sync failed: the records stay pending, are retried at the
 * next commit, and the failure is logged (loudly, at most every few
 * seconds). The broker keeps serving meanwhile. */
int broker_journal_commit(broker_journal_t *self);

/* Bytes appended but not yet written (grows while the disk fails). */
size_t broker_journal_pending(const broker_journal_t *self);

/* The eventfd the sync thread signals after each fdatasync (batch), to
 * poll for reading; -1 under the other policies. */
int broker_journal_sync_fd(const broker_journal_t *self);

/* After the sync fd polled readable: reads it and advances durable. */
void broker_journal_on_synced(broker_journal_t *self);

/* Writes and fdatasyncs everything pending now, whatever the policy (used
 * at shutdown). Returns 0 or ZT_ERR_IO. */
int broker_journal_sync_now(broker_journal_t *self);

/* ---- compaction -------------------------------------------------------- */

/* Called in the forked child with the journal to write the state through
 * broker_journal_snapshot_put(); returns 0, or non-zero to abandon. */
typedef int(broker_journal_snapshot_fn)(void *arg, broker_journal_t *self);

/* True when the journal grew past the threshold (or recovery found damage)
 * and no compaction is running. */
bool broker_journal_compaction_due(const broker_journal_t *self);

/* Starts a compaction: commits, syncs and closes the current journal, opens
 * the next generation, and forks a child that writes the snapshot of that
 * generation by calling fn(arg, self) and then exits. The state must not
 * change between this call's start and the fork, which happens inside it:
 * the caller's loop simply continues after it returns. Returns 0, or
 * ZT_ERR_IO (nothing changed but what was committed). */
int broker_journal_compact(broker_journal_t *self, broker_journal_snapshot_fn *fn, void *arg);

/* In the snapshot child only: appends one record to the snapshot. */
void broker_journal_snapshot_put(broker_journal_t *self, const broker_jrec_t *rec);

/* Reaps a finished compaction child (never blocks); on success removes the
 * files the new snapshot replaces. Call now and then (each loop turn). */
void broker_journal_poll(broker_journal_t *self);

/* Counters for `stats`; a public value struct. */
typedef struct {
    const char *fsync;        /* policy name */
    uint64_t generation;      /* journal generation being appended to */
    uint64_t journal_bytes;   /* bytes in journal files since the last snapshot */
    uint64_t snapshot_bytes;  /* size of the last snapshot */
    uint64_t records;         /* records appended since start */
    uint64_t writes;          /* write batches */
    uint64_t syncs;           /* fdatasync calls that succeeded */
    uint64_t write_errors;    /* failed writes or syncs */
    uint64_t compactions;     /* snapshots completed */
    bool compacting;          /* a snapshot child is running */
    double last_fork_ms;      /* the loop's pause for the last compaction start */
    double last_compaction_s; /* the child's run time for the last snapshot */
} broker_journal_stats_t;

void broker_journal_stats(const broker_journal_t *self, broker_journal_stats_t *out);

/* The policy in force. */
broker_fsync_t broker_journal_policy(const broker_journal_t *self);

/* The directory (borrowed). */
const char *broker_journal_dir(const broker_journal_t *self);

#endif
