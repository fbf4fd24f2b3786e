/* queue: one named queue of ready tasks. Ten FIFO lists, one per priority
 * (9 is served first), plus a tombstone list served before all of them
 * (revoked, expired and purged tasks on their way to a worker that records
 * their final state). The lists are intrusive (task.h), so removing a task
 * from the middle (revoke, purge) is O(1) and finding the next task is O(1)
 * through a bitmap of non-empty lists.
 *
 * The queue also keeps the numbers the `queues` listing reports (scheduled,
 * in flight, consumers) and which task names its workers registered, for the
 * unknown-task rule. It does not own its tasks. */
#ifndef BROKER_QUEUE_H
#define BROKER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

#define BROKER_PRIORITY_LEVELS 10

/* Creates an empty queue named name (copied). Never NULL. */
broker_queue_t *broker_queue_new(const char *name);

/* Destroys the queue and sets *self_p to NULL. Tasks still listed are
 * unlinked, not freed: the broker owns them. */
void broker_queue_destroy(broker_queue_t **self_p);

/* The queue's name (borrowed). */
const char *broker_queue_name(const broker_queue_t *self);

/* Appends a task that is in no list: to the tail of its priority level, or
 * of the tombstone list when it is revoked. now (monotonic usecs) is kept as
 * the time it started waiting. Sets the task's queue and state QUEUED. */
void broker_queue_push(broker_queue_t *self, broker_task_t *task, int64_t now);

/* Same, at the head of the list (redelivery after a worker died, RELEASE). */
void broker_queue_push_head(broker_queue_t *self, broker_task_t *task, int64_t now);

/* Removes a task listed in this queue, in O(1). Returns 0, or
 * ZT_ERR_NOT_FOUND if the task is not listed here. */
int broker_queue_remove(broker_queue_t *self, broker_task_t *task);

/* The task that would go out next (tombstones first, then priority 9..0,
 * FIFO within a list), or NULL when empty. Borrowed. */
broker_task_t *broker_queue_peek(const broker_queue_t *self);

/* Removes and returns the task broker_queue_peek() names, or NULL. */
broker_task_t *broker_queue_pop(broker_queue_t *self);

/* Tasks listed: all, ready (tombstones excluded), at one priority, tombstones. */
size_t broker_queue_size(const broker_queue_t *self);
size_t broker_queue_ready(const broker_queue_t *self);
size_t broker_queue_count(const broker_queue_t *self, int priority);
size_t broker_queue_tombstones(const broker_queue_t *self);

/* Monotonic usecs since which the longest-waiting listed task has waited, or
 * 0 when empty. Exact for tasks appended at the tail; a task pushed back at
 * the head counts from its push. O(levels). */
int64_t broker_queue_oldest(const broker_queue_t *self);

/* Moves every ready (non-tombstone) task to the tombstone list with reason
 * purged, calling on_purged (may be NULL) for each. Returns how many. */
size_t broker_queue_purge(broker_queue_t *self, void (*on_purged)(broker_task_t *, void *),
                          void *arg);

/* First listed task for iteration (tombstones, then 9..0), and the one after
 * task in that order; NULL at the end. The queue must not change meanwhile. */
broker_task_t *broker_queue_first(const broker_queue_t *self);
broker_task_t *broker_queue_next(const broker_queue_t *self, const broker_task_t *task);

/* Bookkeeping for listings: counts of this queue's tasks elsewhere, and of
 * the workers consuming it. delta may be negative; counts never go below 0. */
void broker_queue_add_scheduled(broker_queue_t *self, int delta);
void broker_queue_add_in_flight(broker_queue_t *self, int delta);
void broker_queue_add_consumers(broker_queue_t *self, int delta);
size_t broker_queue_scheduled(const broker_queue_t *self);
size_t broker_queue_in_flight(const broker_queue_t *self);
size_t broker_queue_consumers(const broker_queue_t *self);

/* The unknown-task rule: a worker serving this queue registered these names
 * (copied; at most BROKER_QUEUE_MAX_KNOWN_TASKS are remembered, beyond that
 * every name is accepted). */
#define BROKER_QUEUE_MAX_KNOWN_TASKS 10000
void broker_queue_learn_task(broker_queue_t *self, const char *name);
/* Marks that a worker has served the queue (even one registering nothing). */
void broker_queue_learn_worker(broker_queue_t *self);
/* False only when the queue has had workers, none of which registered
 * name[0..len). */
bool broker_queue_accepts(const broker_queue_t *self, const char *name, size_t len);

#endif
