/* task: the broker's record of one task it owns, from SUBMIT until the worker
 * reports its outcome. A record is one allocation: the fixed fields, then the
 * task message bytes exactly as the client submitted them (forwarded unchanged
 * in DISPATCH), then the id and the task name as C strings.
 *
 * A task sits in at most one intrusive list at a time (a queue's priority
 * level, a queue's tombstone list, or a worker's in-flight list), so the list
 * links live in the record and removal is O(1). Scheduled tasks are on the
 * timer heap instead, which stores its position in the record. */
#ifndef BROKER_TASK_H
#define BROKER_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zt_taskmsg.h"

typedef struct broker_task broker_task_t;
typedef struct broker_queue broker_queue_t;
typedef struct broker_worker broker_worker_t;

typedef enum {
    BROKER_TASK_QUEUED = 0, /* ready in its queue (or a tombstone waiting to go out) */
    BROKER_TASK_SCHEDULED,  /* on the timer heap (countdown, ETA, retry) */
    BROKER_TASK_RESERVED,   /* dispatched to a worker, not started yet */
    BROKER_TASK_STARTED     /* the worker reported STARTED */
} broker_task_state_t;

/* Why a task must not run. A revoked task is sent to a worker as a tombstone
 * (DISPATCH with delivery.revoked) so its REVOKED state reaches the backend. */
typedef enum {
    BROKER_REVOKED_NONE = 0,
    BROKER_REVOKED_REVOKED, /* CONTROL revoke */
    BROKER_REVOKED_EXPIRED, /* past its `expires` */
    BROKER_REVOKED_PURGED   /* CONTROL purge */
} broker_revoked_t;

/* Returns the wire name of a revoke reason ("revoked", "expired", "purged"),
 * or NULL for BROKER_REVOKED_NONE. */
const char *broker_revoked_name(broker_revoked_t reason);

/* Returns "queued", "scheduled", "reserved" or "started". */
const char *broker_task_state_name(broker_task_state_t state);

/* Creates a record holding a copy of body[0..body_size) and of msg's id and
 * task name; msg must be the parse of that body. priority, retries and
 * expires are taken from msg. The queue is set by the caller. Never NULL
 * (out-of-memory aborts). The caller owns the record. */
broker_task_t *broker_task_new(const void *body, size_t body_size, const zt_taskmsg_t *msg);

/* Frees the record and sets *self_p to NULL. The task must be in no list and
 * not on the timer heap. */
void broker_task_destroy(broker_task_t **self_p);

/* Borrowed views, valid while the record lives. */
const char *broker_task_id(const broker_task_t *self);
size_t broker_task_id_len(const broker_task_t *self);
const char *broker_task_name(const broker_task_t *self);
const void *broker_task_body(const broker_task_t *self, size_t *size);

/* Bytes the record takes beyond the task message itself (for stats). */
size_t broker_task_overhead(const broker_task_t *self);

/* Bytes the record takes in all: the message plus the overhead (what the
 * broker's max_queued_bytes limit counts). */
size_t broker_task_size(const broker_task_t *self);

/* Plain fields: the broker sets them as the task moves along. */
int broker_task_priority(const broker_task_t *self);
broker_queue_t *broker_task_queue(const broker_task_t *self);
void broker_task_set_queue(broker_task_t *self, broker_queue_t *queue);
broker_worker_t *broker_task_worker(const broker_task_t *self);
void broker_task_set_worker(broker_task_t *self, broker_worker_t *worker);
broker_task_state_t broker_task_state(const broker_task_t *self);
void broker_task_set_state(broker_task_t *self, broker_task_state_t state);
uint32_t broker_task_retries(const broker_task_t *self);
void broker_task_set_retries(broker_task_t *self, uint32_t retries);
bool broker_task_redelivered(const broker_task_t *self);
void broker_task_set_redelivered(broker_task_t *self, bool redelivered);
broker_revoked_t broker_task_revoked(const broker_task_t *self);
void broker_task_set_revoked(broker_task_t *self, broker_revoked_t reason);
/* unix seconds; 0 = never expires */
double broker_task_expires(const broker_task_t *self);
/* unix seconds of the STARTED report; 0 = not started */
double broker_task_started(const broker_task_t *self);
void broker_task_set_started(broker_task_t *self, double unix_seconds);
/* Due time on the timer heap, in the heap's unit (broker: monotonic usecs). */
int64_t broker_task_due(const broker_task_t *self);
void broker_task_set_due(broker_task_t *self, int64_t due);
/* Position on the timer heap; BROKER_TASK_NO_HEAP when not on it. The heap
 * maintains it through broker_task_heap_setpos(). */
#define BROKER_TASK_NO_HEAP SIZE_MAX
size_t broker_task_heap_index(const broker_task_t *self);
void broker_task_heap_setpos(void *task, size_t pos);
/* Monotonic usecs when the task entered the list it is in (queue age). */
int64_t broker_task_listed_at(const broker_task_t *self);

/* An intrusive FIFO of task records. Plain value struct: zero-initialise it
 * (BROKER_TASK_LIST_INIT); fields are read-only for callers. The list does not
 * own its tasks. */
typedef struct {
    broker_task_t *head;
    broker_task_t *tail;
    size_t count;
} broker_task_list_t;

#define BROKER_TASK_LIST_INIT                                                                      \
    { NULL, NULL, 0 }

/* Appends / prepends a task that is in no list; now is stored as its
 * listed-at time. */
void broker_task_list_push_tail(broker_task_list_t *list, broker_task_t *task, int64_t now);
void broker_task_list_push_head(broker_task_list_t *list, broker_task_t *task, int64_t now);
/* Unlinks the task from whichever list holds it, in O(1). No-op if in none. */
void broker_task_list_remove(broker_task_t *task);
/* Unlinks and returns the head, or NULL when empty. */
broker_task_t *broker_task_list_pop(broker_task_list_t *list);
/* The list holding the task, or NULL. */
broker_task_list_t *broker_task_list_of(const broker_task_t *task);
/* Iteration: the task after this one in its list, or NULL. */
broker_task_t *broker_task_next(const broker_task_t *task);
broker_task_t *broker_task_prev(const broker_task_t *task);

#endif
