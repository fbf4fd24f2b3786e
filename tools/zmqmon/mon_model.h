/* mon_model: what zmqmon knows about the cluster. Fed by a snapshot (the
 * broker's CONTROL replies, as JSON) and by the events stream (decoded into
 * mon_event_t), read by the views. It keeps:
 *   - a bounded task history (newest first), each task with its own bounded
 *     log of events in timestamp order;
 *   - the workers seen (online, and offline ones with why);
 *   - the queues of the last `queues` reply;
 *   - the broker's counters and per-second rates of the last minutes.
 * It does no I/O and reads no clock: callers pass the times, so tests drive
 * it deterministically. Records handed out are borrowed until the model next
 * changes; their fields are read-only for callers. */
#ifndef MON_MODEL_H
#define MON_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MON_HISTORY_DEFAULT 10000 /* tasks kept */
#define MON_TASK_LOG_MAX 32       /* events kept per task (the first and the latest) */
#define MON_RATE_SECONDS 600      /* seconds of rate history (the sparklines) */
#define MON_PRIORITIES 10

/* Task states, in the order the Tasks view cycles its state filter. */
typedef enum {
    MON_TASK_RECEIVED = 0, /* queued, waiting for a worker */
    MON_TASK_SCHEDULED,    /* countdown / ETA not reached */
    MON_TASK_RESERVED,     /* dispatched to a worker, not started */
    MON_TASK_STARTED,      /* running */
    MON_TASK_RETRY,        /* failed, a retry is scheduled */
    MON_TASK_SUCCESS,
    MON_TASK_FAILURE,
    MON_TASK_REVOKED,
    MON_TASK_STATES
} mon_task_state_t;

/* "RECEIVED", "SCHEDULED", ... */
const char *mon_task_state_name(mon_task_state_t state);
/* Parses a state name, case-insensitive ("queued" = RECEIVED, "running" =
 * STARTED, "failed" = FAILURE ...). Returns 0, or -1 if unknown. */
int mon_task_state_parse(const char *name, mon_task_state_t *out);
/* SUCCESS, FAILURE and REVOKED. */
bool mon_task_state_final(mon_task_state_t state);

typedef enum {
    MON_EV_TASK_RECEIVED = 0,
    MON_EV_TASK_STARTED,
    MON_EV_TASK_PROGRESS,
    MON_EV_TASK_SUCCEEDED,
    MON_EV_TASK_FAILED,
    MON_EV_TASK_RETRIED,
    MON_EV_TASK_REVOKED,
    MON_EV_WORKER_ONLINE,
    MON_EV_WORKER_HEARTBEAT,
    MON_EV_WORKER_OFFLINE,
    MON_EV_TYPES
} mon_event_type_t;

/* "task-received", ... (PROTOCOL.md §10 names). */
const char *mon_event_type_name(mon_event_type_t type);
/* The type of an event name of n bytes. Returns 0, or -1 if unknown. */
int mon_event_type_parse(const char *name, size_t n, mon_event_type_t *out);

#define MON_STR_ID 129     /* ZT_ID_MAX + 1 */
#define MON_STR_NAME 201   /* ZT_NAME_MAX + 1 */
#define MON_STR_WORKER 256 /* worker and host names */
#define MON_STR_TEXT 1024  /* error, progress message, reason */

/* One event of the stream, decoded. A plain value struct the caller fills:
 * absent strings are "", absent numbers 0 (retries: -1 when unknown). */
typedef struct {
    mon_event_type_t type;
    double timestamp; /* unix seconds, the broker's clock */
    char id[MON_STR_ID];
    char name[MON_STR_NAME];
    char queue[MON_STR_NAME];
    char worker[MON_STR_WORKER];
    char host[MON_STR_WORKER];
    char queues[MON_STR_TEXT]; /* worker-online: comma-separated */
    char text[MON_STR_TEXT];   /* error (failed, retried), message (progress), reason */
    int priority;
    int retries;
    double eta;     /* unix seconds, 0 = none */
    double expires; /* unix seconds, 0 = none */
    double runtime; /* seconds */
    double countdown;
    double current, total; /* progress */
    uint64_t pid, concurrency, active, processed, in_flight;
} mon_event_t;

/* An entry of a task's own log. */
typedef struct {
    double timestamp; /* unix seconds */
    mon_event_type_t type;
    unsigned count;     /* progress: reports merged into this entry */
    const char *worker; /* interned, "" when none */
    double a, b;        /* progress current/total; runtime; retried: countdown */
    int retries;        /* as the event said, -1 unknown */
    char *text;         /* error, message or reason; NULL when none */
} mon_log_entry_t;

typedef struct mon_task mon_task_t;
struct mon_task {
    char id[MON_STR_ID];
    const char *name;   /* interned, "?" until known */
    const char *queue;  /* interned, "" until known */
    const char *worker; /* interned, "" until known */
    mon_task_state_t state;
    int retries;
    int priority;
    double received;   /* unix seconds; 0 = unknown */
    double started;    /* unix seconds of the current attempt; 0 = not started */
    double finished;   /* unix seconds; 0 = not final */
    double runtime;    /* seconds, from the final event */
    double eta;        /* unix seconds; 0 = none */
    double expires;    /* unix seconds; 0 = none */
    bool has_progress; /* current/total hold the latest report */
    double current, total;
    char *progress_message; /* NULL when none */
    char *error;            /* failure, retry or revoke reason; NULL when none */
    uint64_t seq;           /* first-seen order: higher is newer */
    mon_log_entry_t *log;   /* in timestamp order */
    size_t log_size, log_cap;
    size_t log_dropped; /* entries dropped to keep the bound */
    /* the model's links: not for callers */
    mon_task_t *order_prev, *order_next; /* by first seen, newest at the head */
    mon_task_t *done_prev, *done_next;   /* final tasks by finish, newest at the head */
    bool in_done;
};

typedef struct {
    char name[MON_STR_WORKER];
    char host[MON_STR_WORKER];
    char queues[MON_STR_TEXT]; /* comma-separated */
    uint64_t pid, concurrency, credit, in_flight, active, processed, succeeded, failed;
    bool online;
    char offline_reason[32]; /* "bye", "heartbeat-lost", "gone" (left the listing) */
    double offline_at;       /* unix seconds; 0 while online */
    double last_seen;        /* caller's monotonic seconds of the last sign of life */
} mon_worker_t;

typedef struct {
    char name[MON_STR_NAME];
    uint64_t ready, scheduled, in_flight, consumers, tombstones;
    double oldest_age; /* seconds the oldest ready task has waited at the snapshot */
    uint64_t by_priority[MON_PRIORITIES];
} mon_queue_t;

/* Broker-wide figures from the `stats` reply, plus rates. */
typedef struct {
    char broker[MON_STR_WORKER];
    double uptime;   /* seconds, at stats_at */
    double stats_at; /* caller's monotonic seconds of the last stats */
    bool have_stats;
    uint64_t submitted, succeeded, failed, retried, revoked, expired, redelivered, rejected;
    uint64_t queued, scheduled, in_flight, events_dropped;
    double rate_succeeded, rate_failed, rate_retried; /* per second, over the last ~5 s */
} mon_broker_t;

typedef enum {
    MON_SERIES_SUCCEEDED = 0,
    MON_SERIES_FAILED,
    MON_SERIES_RETRIED,
    MON_SERIES_N
} mon_series_t;

/* Which tasks a listing shows. A plain value struct; zero = everything. */
typedef struct {
    bool by_state;
    mon_task_state_t state;
    char name[MON_STR_NAME];  /* substring of the task name; "" = any */
    char queue[MON_STR_NAME]; /* exact queue; "" = any */
    char id[MON_STR_ID];      /* prefix of the id; "" = any */
} mon_filter_t;

typedef struct mon_model mon_model_t;

/* Creates an empty model keeping at most history_max tasks (0: default). */
mon_model_t *mon_model_new(size_t history_max);
void mon_model_destroy(mon_model_t **self_p);

/* Applies one event. now_mono: the caller's monotonic seconds (worker sign
 * of life). Tasks unknown so far are created; the oldest finished tasks are
 * evicted past the bound (the oldest unfinished ones when none has finished).
 * A state never goes back: a final state sticks, and an older attempt's
 * event (fewer retries) does not override a newer one's; the event is still
 * logged. */
void mon_model_apply_event(mon_model_t *self, const mon_event_t *ev, double now_mono);

/* Snapshot parts: the `result` of a CONTROL reply (PROTOCOL.md §5.2).
 * Malformed entries are skipped. `workers` also marks as offline ("gone")
 * the workers that were online and are no longer listed. `active`,
 * `reserved` and `scheduled` listings add or advance their tasks. */
void mon_model_apply_workers(mon_model_t *self, const json_t *result, double now_mono,
                             double now_wall);
void mon_model_apply_queues(mon_model_t *self, const json_t *result);
void mon_model_apply_listing(mon_model_t *self, const json_t *result, mon_task_state_t state);
void mon_model_apply_stats(mon_model_t *self, const json_t *result, double now_mono);

/* Marks every worker offline (reason "broker lost"): the broker went away,
 * and with it what we know of who is connected. */
void mon_model_broker_lost(mon_model_t *self, double now_wall);

/* Tasks kept, and the bound. */
size_t mon_model_task_count(const mon_model_t *self);
size_t mon_model_history_max(const mon_model_t *self);

/* The task with this id, or NULL. */
const mon_task_t *mon_model_task(const mon_model_t *self, const char *id);

/* True if the task passes the filter (NULL passes everything). */
bool mon_filter_match(const mon_filter_t *filter, const mon_task_t *task);

/* Fills out[0..max) with the matching tasks newest first, skipping the
 * first `skip` matches. Returns how many were written; *total (may be NULL)
 * gets the number of matches in all. */
size_t mon_model_tasks(const mon_model_t *self, const mon_filter_t *filter, size_t skip,
                       const mon_task_t **out, size_t max, size_t *total);

/* Position of task id among the tasks matching filter, newest first, or -1
 * when it does not match (or is not kept). O(tasks). */
long mon_model_task_index(const mon_model_t *self, const mon_filter_t *filter, const char *id);

/* Number of tasks per state (counts[MON_TASK_STATES]). */
void mon_model_state_counts(const mon_model_t *self, size_t *counts);

/* Workers sorted by name (online first), and queues sorted by name. */
size_t mon_model_worker_count(const mon_model_t *self);
const mon_worker_t *mon_model_worker_at(const mon_model_t *self, size_t index);
size_t mon_model_queue_count(const mon_model_t *self);
const mon_queue_t *mon_model_queue_at(const mon_model_t *self, size_t index);

const mon_broker_t *mon_model_broker(const mon_model_t *self);

/* Per-second counts of a series for the n seconds before now_mono, oldest
 * first, into out[0..n) (n <= MON_RATE_SECONDS; unknown seconds are 0). */
void mon_model_series(const mon_model_t *self, mon_series_t series, double now_mono, double *out,
                      size_t n);

/* Events applied, and events ignored as malformed (no id, unknown worker). */
uint64_t mon_model_events_applied(const mon_model_t *self);

#endif
