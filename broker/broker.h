/* broker: the zmqbroker core. One ROUTER socket for clients and workers, an
 * events XPUB, and one single-threaded poll(2) loop that drains many
 * messages per wakeup, releases due timers, dispatches by credit and
 * watches worker liveness (docs/PROTOCOL.md is the contract).
 *
 *   broker_options_t o; broker_options_defaults(&o); o.bind = "tcp://127.0.0.1:*";
 *   broker_t *b = broker_new(&o, NULL);
 *   broker_run(b);          // until *o.stop_flag or broker_stop()
 *   broker_destroy(&b);
 *
 * The second half of this header is for the broker's own modules (control.c)
 * and tests: views of the state and the operations CONTROL asks for. */
#ifndef BROKER_BROKER_H
#define BROKER_BROKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>
#include <msgpack.h>

#include "journal.h"
#include "queue.h"
#include "task.h"
#include "timer_heap.h"
#include "workers.h"

typedef struct broker broker_t;

/* Options: a public value struct. Strings are borrowed by broker_new(),
 * which copies what it keeps. */
typedef struct {
    const char *bind;          /* ROUTER endpoint, e.g. "tcp://127.0.0.1:5555" */
    const char *events_bind;   /* events XPUB endpoint, e.g. "tcp://127.0.0.1:5556" */
    const char *data_dir;      /* journal directory (created; journal is issue 4) */
    int64_t heartbeat_ms;      /* msecs between heartbeats */
    int64_t liveness;          /* heartbeats missed before a worker is dead */
    int64_t max_message_bytes; /* bytes, all frames; larger gets too-large */
    broker_fsync_t fsync;      /* journal durability policy (journal.h) */
    int64_t fsync_interval_ms; /* msecs between group commits under fsync batch */
    int64_t compact_bytes;     /* journal bytes that start a compaction; 0 = never */
    int64_t max_queue_length;  /* tasks waiting in one queue (ready + scheduled); 0 = no limit */
    int64_t max_queued_bytes;  /* bytes of all tasks held (message + record); 0 = no limit */
    const char *journal_fault_file; /* tests: journal writes fail while it exists; NULL = off */
    /* CURVE (docs/SECURITY.md): both set = the ROUTER and the events XPUB are
     * CURVE servers and roles apply; both NULL/"" = plain */
    const char *curve_server_cert; /* the broker's secret certificate file */
    const char *curve_allowed_dir; /* public certificates allowed, with their roles */
    bool insecure;                 /* plain mode may bind non-loopback TCP (else refused) */
    /* When not NULL, the loop rereads curve_allowed_dir soon after
     * *reload_flag becomes non-zero (main's SIGHUP flag) and clears it. */
    volatile sig_atomic_t *reload_flag;
    /* When not NULL, broker_run() returns soon after *stop_flag becomes
     * non-zero (main's signal flag). */
    const volatile sig_atomic_t *stop_flag;
} broker_options_t;

/* Default of max_queued_bytes: 1 GiB of tasks (messages and records). */
#define BROKER_MAX_QUEUED_BYTES_DEFAULT (1LL << 30)

/* Fills opts with the defaults of zmqbroker --help. */
void broker_options_defaults(broker_options_t *opts);

/* Creates the broker: opens the data directory and recovers the state the
 * journal holds (docs/DURABILITY.md), then binds the sockets. Without CURVE
 * it refuses endpoints other machines can reach (zt_endpoint_is_local())
 * unless opts->insecure. Returns the broker, or NULL with *err
 * (ZT_ERR_INVALID bad options or certificates, or a refused endpoint;
 * ZT_ERR_IO cannot bind, or cannot create or lock the data directory); err
 * may be NULL. */
broker_t *broker_new(const broker_options_t *opts, int *err);

/* Runs the loop until the stop flag is set or broker_stop() is called.
 * Returns 0, or ZT_ERR_IO if the sockets failed. */
int broker_run(broker_t *self);

/* Rereads the allowed certificates now (what SIGHUP does): keys removed or
 * whose role changed are cut off (their workers dropped, their tasks
 * requeued, events subscribers disconnected). Returns the number of keys
 * withdrawn, 0 in plain mode, or a negative code (old keys kept). */
int broker_reload_keys(broker_t *self);

/* Asks broker_run() to return. Async-signal-safe: it only sets a flag. */
void broker_stop(broker_t *self);

/* Destroys the broker, its sockets and every task it holds; *self_p = NULL. */
void broker_destroy(broker_t **self_p);

/* The endpoint really bound (a "*" port resolved), borrowed. */
const char *broker_endpoint(const broker_t *self);
const char *broker_events_endpoint(const broker_t *self);

/* ---- For the broker's modules (control.c) and tests ---------------------- */

/* Broker counters (PROTOCOL.md §5.2 stats). A public value struct. */
typedef struct {
    uint64_t submitted;        /* SUBMIT messages with a readable envelope */
    uint64_t accepted;         /* ACCEPTED sent */
    uint64_t rejected;         /* REJECTED sent */
    uint64_t dispatched;       /* DISPATCH sent, tombstones included */
    uint64_t succeeded;        /* DONE success */
    uint64_t failed;           /* DONE failure */
    uint64_t retried;          /* DONE retry (rescheduled) */
    uint64_t revoked;          /* tasks revoked (CONTROL revoke, purge) */
    uint64_t expired;          /* tasks found past their `expires` */
    uint64_t redelivered;      /* tasks requeued from a dead or leaving worker */
    uint64_t protocol_errors;  /* malformed messages answered with ERROR/REJECTED */
    uint64_t messages_in;      /* messages received on the ROUTER */
    uint64_t messages_out;     /* messages sent on the ROUTER */
    uint64_t events_published; /* events sent on the events socket */
    uint64_t events_dropped;   /* events lost to a full events socket */
} broker_stats_t;

/* The counters, refreshed at each call (borrowed until the next). */
const broker_stats_t *broker_stats(broker_t *self);

/* Name the broker gives itself ("zmqbroker@host"), seconds since start. */
const char *broker_name(const broker_t *self);
double broker_uptime(const broker_t *self);

/* Tasks held: queued (tombstones included), scheduled and in flight. */
size_t broker_task_count(const broker_t *self);

/* Bytes of the tasks held (message + record overhead), the figure the
 * max_queued_bytes limit applies to. */
uint64_t broker_queued_bytes(const broker_t *self);

/* The journal's counters, and what recovery at start found. */
void broker_journal_view(const broker_t *self, broker_journal_stats_t *stats,
                         broker_journal_recovery_t *recovery);

/* The queue named name, or NULL if it was never used. */
broker_queue_t *broker_queue_lookup(broker_t *self, const char *name);

/* Every queue, sorted by name, in a new array of *count borrowed pointers
 * (caller frees the array). */
broker_queue_t **broker_queue_list(broker_t *self, size_t *count);

broker_workers_t *broker_workers(broker_t *self);
broker_timer_heap_t *broker_timers(broker_t *self);

/* zmqbeat's lease and entries (beat.h), and recording that an entry fired:
 * updates its last fire time if later and journals it; false if not later
 * (or too many entries). */
typedef struct broker_beat broker_beat_t;
broker_beat_t *broker_beat(broker_t *self);
bool broker_beat_record_fire(broker_t *self, const char *entry, double fire);

/* Converts a timer heap due time (monotonic usecs) to unix seconds. */
double broker_due_to_wall(const broker_t *self, int64_t due);

/* Purges the ready tasks of the queue named queue, or of every queue when
 * queue is NULL: they become tombstones (reason purged). Returns how many. */
size_t broker_purge(broker_t *self, const char *queue);

/* A client's `broadcast` (PROTOCOL.md §5.2, §6.5), validated by control.c.
 * Strings and objects are borrowed from the request for the call only. */
#define BROKER_BROADCAST_TIMEOUT_MAX 30 /* seconds */
typedef struct {
    const char *command; /* the op the workers run; not NUL-terminated */
    size_t command_len;
    const msgpack_object *destination; /* array of worker names, or NULL for all */
    double timeout;                    /* seconds, 0..BROKER_BROADCAST_TIMEOUT_MAX */
    const msgpack_object *arguments;   /* map merged into each CONTROL, or NULL */
} broker_broadcast_request_t;

/* Sends CONTROL {req, op: command, ...arguments} to every live worker (or
 * those named in destination), each with a req number of the broker's own,
 * and arranges for the client (ROUTER identity client[0..client_size)) to
 * get one CONTROL-REPLY {req, ok: true, result: {worker name: reply}} when
 * all of them answered or the timeout passed, whichever comes first; the
 * loop never waits for it. Returns 0, or ZT_ERR_TOO_LARGE when too many
 * broadcasts are pending already (nothing was sent). */
int broker_broadcast(broker_t *self, const void *client, size_t client_size, uint64_t req,
                     const broker_broadcast_request_t *request);

/* Revokes a task by id (PROTOCOL.md §5.2 revoke). Returns the state it was
 * found in: "queued", "scheduled", "running" or "unknown" (then the id is
 * remembered, so a later SUBMIT of it is revoked on arrival). */
const char *broker_revoke(broker_t *self, const char *id, bool terminate, const char *signal);

/* The task the broker holds under id (queued, scheduled or in flight), or
 * NULL when it holds none (never seen, or finished). Borrowed until the
 * loop next changes it. */
broker_task_t *broker_task_find(broker_t *self, const char *id);

#endif
