/* worker_pool: the prefork pool. N child processes forked from the worker
 * parent, each running one task at a time and talking to the parent over its
 * own socketpair with length-prefixed MessagePack messages. Children never
 * touch ZeroMQ or Redis: they close every inherited descriptor but their
 * channel and the log. A child dies with its parent (PR_SET_PDEATHSIG).
 *
 * The parent drives the pool from its poll loop: it polls the channels
 * (worker_pool_pollitems), lets the pool read them (worker_pool_process) and
 * reap dead children (worker_pool_reap); both report through one handler.
 * A slot whose child died or was retired gets a new child at once. */
#ifndef WORKER_POOL_H
#define WORKER_POOL_H

#include "registry.h"
#include "task.h"

#include "zt_config.h"
#include "zt_log.h"

#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

typedef struct worker_pool worker_pool_t;

typedef enum {
    WORKER_POOL_PROGRESS, /* the running task reported progress */
    WORKER_POOL_DONE,     /* the running task ended (outcome fields) */
    WORKER_POOL_LOST      /* the child died; busy says whether mid-task */
} worker_pool_event_type_t;

/* One report from the pool. Pointers are borrowed for the handler call. */
typedef struct {
    worker_pool_event_type_t type;
    int slot;
    pid_t pid;
    /* PROGRESS */
    double current, total;
    const char *message; /* PROGRESS: its message; DONE: the error message */
    /* DONE */
    worker_outcome_t outcome;
    const json_t *result; /* SUCCESS: the result (never NULL) */
    const char *exc_type; /* FAILURE/RETRY */
    const char *exc_module;
    const char *traceback;
    double countdown;   /* RETRY: seconds, < 0 = policy */
    bool permanent;     /* FAILURE: the task says no retry can help */
    int64_t maxrss_kib; /* the child's peak resident memory so far (0: not measured) */
    /* LOST */
    bool busy;          /* it was running a task */
    int wait_status;    /* as from waitpid */
    const char *reason; /* "killed by SIGSEGV", "exited with status 3" */
} worker_pool_event_t;

typedef void(worker_pool_handler_fn_t)(void *arg, const worker_pool_event_t *event);

typedef struct {
    int size;                          /* children */
    const worker_registry_t *registry; /* borrowed; must outlive the pool */
    const char *name;                  /* worker name, for the children's log lines */
    zt_log_level_t loglevel;
    const char *logfile; /* NULL or "" = stderr */
    bool measure_memory; /* children report their peak RSS after each task */
    /* The worker's settings: tasks read them (worker_task_config) and the
     * children resolve max_retries from them as the parent does. Borrowed,
     * must outlive the pool; NULL = none. */
    const zt_config_t *settings;
} worker_pool_config_t;

/* Forks config->size children. Returns the pool, or NULL with *err
 * (ZT_ERR_INVALID, ZT_ERR_IO when not one child could be started). */
worker_pool_t *worker_pool_new(const worker_pool_config_t *config, int *err);

/* Kills every child (SIGKILL) and reaps them. */
void worker_pool_destroy(worker_pool_t **self_p);

int worker_pool_size(const worker_pool_t *self);

/* True when the slot has a live child that is not running a task. */
bool worker_pool_idle(const worker_pool_t *self, int slot);

/* The slot's current child, or 0 while it has none. */
pid_t worker_pool_pid(const worker_pool_t *self, int slot);

/* Tasks the slot's current child has been given. */
int64_t worker_pool_tasks_run(const worker_pool_t *self, int slot);

/* Children replaced so far (died or retired). */
int64_t worker_pool_replaced(const worker_pool_t *self);

/* Hands a task to the idle child of slot: id, retry count and the task
 * message bytes as the broker sent them. Returns 0, ZT_ERR_INVALID if the
 * slot is not idle, or ZT_ERR_IO if the child cannot take it (it is then
 * reported LOST, not busy, and replaced). */
int worker_pool_run(worker_pool_t *self, int slot, const char *id, int retries, const void *body,
                    size_t size);

/* Sends sig to the slot's child. Returns 0 or ZT_ERR_NOT_FOUND. */
int worker_pool_signal(worker_pool_t *self, int slot, int sig);

/* Replaces the slot's child with a fresh one (max tasks per child, memory
 * limit). The slot must be idle; the old child exits on its own. */
void worker_pool_retire(worker_pool_t *self, int slot);

/* From now on, children that end are not replaced (shutdown). */
void worker_pool_stop_respawning(worker_pool_t *self);

/* Fills fds with one POLLIN entry per live channel; returns how many (<= max). */
int worker_pool_pollfds(const worker_pool_t *self, struct pollfd *fds, int max);

/* Reads every channel marked readable in fds[0..n) and reports what came. */
void worker_pool_process(worker_pool_t *self, const struct pollfd *fds, int n,
                         worker_pool_handler_fn_t *handler, void *arg);

/* Reaps children that ended, reports LOST for those still in a slot (after
 * delivering anything they wrote before dying) and forks replacements;
 * re-tries slots whose fork failed before. */
void worker_pool_reap(worker_pool_t *self, worker_pool_handler_fn_t *handler, void *arg);

#endif
