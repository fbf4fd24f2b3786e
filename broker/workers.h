/* workers: the registry of workers, keyed by ROUTER identity, and what the
 * broker knows of each: its HELLO (name, host, pid, queues, task names,
 * concurrency), its remaining credit, the tasks it holds in flight (an
 * intrusive list, acks-late), counters and liveness times.
 *
 * Dispatch policy lives here: a worker takes, among its queues, the ready
 * head that goes first (tombstones, then the highest priority, then the
 * longest waiting), and the registry hands out workers round-robin so each
 * queue's work is spread over its consumers. Sending is the broker's job. */
#ifndef BROKER_WORKERS_H
#define BROKER_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"
#include "task.h"

typedef struct broker_workers broker_workers_t;

/* Identities longer than this are refused (ZeroMQ allows up to 255). */
#define BROKER_IDENTITY_MAX 255

/* Credit a worker may hold at most, whatever it announces. */
#define BROKER_CREDIT_MAX 1000000

/* Creates an empty registry. Never NULL. */
broker_workers_t *broker_workers_new(void);

/* Destroys the registry and every worker record in it. Tasks still in a
 * worker's in-flight list are unlinked, not freed (the broker owns them). */
void broker_workers_destroy(broker_workers_t **self_p);

/* The worker with this ROUTER identity, or NULL. */
broker_worker_t *broker_workers_lookup(broker_workers_t *self, const void *identity, size_t size);

/* Adds a record for an identity not yet known (size 1..BROKER_IDENTITY_MAX),
 * with no name, queues or credit until broker_worker_register(). now is
 * monotonic usecs. Returns the record (borrowed: the registry owns it), or
 * NULL for a bad identity size. */
broker_worker_t *broker_workers_add(broker_workers_t *self, const void *identity, size_t size,
                                    int64_t now);

/* Removes a worker and frees its record; *worker_p is set to NULL. Its
 * in-flight list must be empty (the broker requeues first), and its queues
 * lose a consumer. */
void broker_workers_remove(broker_workers_t *self, broker_worker_t **worker_p);

/* Number of workers, and the i-th (0 <= i < size) for iteration. */
size_t broker_workers_size(const broker_workers_t *self);
broker_worker_t *broker_workers_at(const broker_workers_t *self, size_t i);

/* Round-robin: the worker after the one returned last time (wrapping), or
 * NULL when there are none. Each call advances the cursor. */
broker_worker_t *broker_workers_next(broker_workers_t *self);

/* Replaces a worker's registration from its HELLO. Strings are copied;
 * queues is an array of nqueues queue pointers (borrowed for the worker's
 * life; the broker keeps queues forever); tasks an array of ntasks task
 * names, or NULL when the HELLO announced no list. Each queue gains a
 * consumer (the old registration's queues lose theirs) and, when a list was
 * announced, learns its names (the unknown-task rule). credit replaces the
 * remaining credit. Its in-flight tasks are untouched. */
void broker_worker_register(broker_worker_t *self, const char *name, const char *host, uint64_t pid,
                            broker_queue_t **queues, size_t nqueues, const char *const *tasks,
                            size_t ntasks, uint32_t concurrency, uint64_t credit);

/* True once broker_worker_register() was called. */
bool broker_worker_registered(const broker_worker_t *self);

/* Borrowed views. */
const void *broker_worker_identity(const broker_worker_t *self, size_t *size);
const char *broker_worker_name(const broker_worker_t *self);
const char *broker_worker_host(const broker_worker_t *self);
uint64_t broker_worker_pid(const broker_worker_t *self);
uint32_t broker_worker_concurrency(const broker_worker_t *self);
size_t broker_worker_queue_count(const broker_worker_t *self);
broker_queue_t *broker_worker_queue(const broker_worker_t *self, size_t i);
size_t broker_worker_task_count(const broker_worker_t *self);
const char *broker_worker_task(const broker_worker_t *self, size_t i);

/* CURVE: the public key (Z85) the worker registered with, so messages from
 * its identity under another key are refused and a revoked key can be found.
 * "" in plain mode. The string is copied. */
void broker_worker_set_curve_key(broker_worker_t *self, const char *key);
const char *broker_worker_curve_key(const broker_worker_t *self);

/* Credit: remaining dispatches allowed. add clamps at BROKER_CREDIT_MAX. */
uint64_t broker_worker_credit(const broker_worker_t *self);
void broker_worker_add_credit(broker_worker_t *self, uint64_t credit);

/* Tasks the worker holds (dispatched, not finished), in dispatch order. */
broker_task_list_t *broker_worker_in_flight(broker_worker_t *self);

/* Picks the task this worker should get next from its queues and removes it
 * from its queue, or returns NULL when none of its queues has one. Does not
 * look at credit. */
broker_task_t *broker_worker_pick(broker_worker_t *self);

/* Records a dispatch: the task joins the in-flight list (state RESERVED,
 * worker set), credit drops by one, its queue counts one more in flight. */
void broker_worker_assign(broker_worker_t *self, broker_task_t *task, int64_t now);

/* Takes a task out of the in-flight list (finished, released or requeued):
 * worker cleared, its queue counts one fewer in flight. The caller decides
 * where it goes next. */
void broker_worker_unassign(broker_worker_t *self, broker_task_t *task);

/* Counters (since the worker joined). */
typedef struct {
    uint64_t dispatched;   /* DISPATCH sent, tombstones included */
    uint64_t succeeded;    /* DONE success */
    uint64_t failed;       /* DONE failure */
    uint64_t retried;      /* DONE retry */
    uint64_t revoked;      /* DONE revoked */
    uint64_t started;      /* STARTED received */
    uint64_t hb_active;    /* last HEARTBEAT's `active`, if it said */
    uint64_t hb_processed; /* last HEARTBEAT's `processed`, if it said */
} broker_worker_counters_t;

broker_worker_counters_t *broker_worker_counters(broker_worker_t *self);

/* Tasks in flight that reported STARTED. O(in flight). */
size_t broker_worker_active(const broker_worker_t *self);

/* Liveness: monotonic usecs of the last message received from / sent to it. */
void broker_worker_seen(broker_worker_t *self, int64_t now);
int64_t broker_worker_last_seen(const broker_worker_t *self);
void broker_worker_sent(broker_worker_t *self, int64_t now);
int64_t broker_worker_last_sent(const broker_worker_t *self);

/* Formats the identity as hex for logs into buf (at least 2*size+1 bytes,
 * truncated otherwise). Returns buf. */
char *broker_identity_hex(const void *identity, size_t size, char *buf, size_t buf_size);

#endif
