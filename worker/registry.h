/* worker_registry: task name -> C function plus per-task options (time limits,
 * retry policy). Filled once at start-up by the task modules (worker/tasks/),
 * then only read: the pool's children inherit it across fork(). */
#ifndef WORKER_REGISTRY_H
#define WORKER_REGISTRY_H

#include "task.h"

#include <stddef.h>

/* A task function. It reads its inputs through the task API (task.h) and
 * returns worker_task_succeed(), worker_task_fail() or worker_task_retry()'s
 * value; returning 0 without calling any of them means success with a null
 * result. It runs in a pool child, one call at a time. */
typedef int(worker_task_fn_t)(worker_task_t *task);

/* Per-task defaults; a field left at its "unset" value falls back to the task
 * message, then to the worker's configuration. */
typedef struct {
    double time_limit;      /* seconds, hard limit; 0 = unset */
    double soft_time_limit; /* seconds; 0 = unset */
    int max_retries;        /* -1 = unset */
    double retry_delay;     /* seconds, base of the backoff; < 0 = unset */
} worker_task_options_t;

typedef struct worker_registry worker_registry_t;

/* Fills opts with "unset" everywhere. */
void worker_task_options_init(worker_task_options_t *opts);

worker_registry_t *worker_registry_new(void);
void worker_registry_destroy(worker_registry_t **self_p);

/* Registers fn under name (copied). opts may be NULL (all unset). Returns 0,
 * ZT_ERR_INVALID for a name that is not a valid task name (PROTOCOL.md §7) or
 * a negative limit, or ZT_ERR_REJECTED if the name is already taken. */
int worker_registry_add(worker_registry_t *self, const char *name, worker_task_fn_t *fn,
                        const worker_task_options_t *opts);

/* Finds name[0..len) (not NUL-terminated). Returns the function, or NULL if
 * none is registered; *opts (may be NULL) gets the entry's options, borrowed
 * for the registry's lifetime. */
worker_task_fn_t *worker_registry_lookup(const worker_registry_t *self, const char *name,
                                         size_t len, const worker_task_options_t **opts);

/* Number of tasks, and the i-th name in sorted order (borrowed), for HELLO. */
size_t worker_registry_size(const worker_registry_t *self);
const char *worker_registry_name(const worker_registry_t *self, size_t i);

#endif
