/* worker_task: the API a task function sees. A task reads its id, name,
 * retry count, args (JSON array) and kwargs (JSON object), reports progress,
 * checks or sleeps through its soft time limit, and ends with a result, an
 * error (exception type + message, Celery style) or a retry request.
 *
 *   static int add(worker_task_t *t) {
 *       const json_t *x = worker_task_arg(t, 0, "x"), *y = worker_task_arg(t, 1, "y");
 *       if (!json_is_number(x) || !json_is_number(y))
 *           return worker_task_fail(t, "TypeError", "add(x, y) takes two numbers");
 *       return worker_task_succeed(t, json_real(json_number_value(x) + json_number_value(y)));
 *   }
 *
 * A worker_task_t belongs to the pool child running it; task functions only
 * borrow it for the call. */
#ifndef WORKER_TASK_H
#define WORKER_TASK_H

#include "zt_config.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>

/* What a task function returns (besides 0 for success). */
#define WORKER_TASK_FAILED (-100)
#define WORKER_TASK_RETRY (-101)

typedef struct worker_task worker_task_t;

typedef enum {
    WORKER_OUTCOME_NONE = 0, /* the function has not said yet */
    WORKER_OUTCOME_SUCCESS,
    WORKER_OUTCOME_FAILURE,
    WORKER_OUTCOME_RETRY
} worker_outcome_t;

/* Receives progress reports (already rate-limited to one per ~10 ms; the
 * parent coalesces further to ~10/s). message is borrowed for the call. */
typedef void(worker_progress_fn_t)(void *arg, double current, double total, const char *message);

/* --- For the runner (the pool child, or a unit test) ---------------------- */

/* Creates the context of one call. id and name are copied; args and kwargs
 * are taken over (NULL: [] and {}). Returns the task (never NULL). */
worker_task_t *worker_task_new(const char *id, const char *name, int retries, json_t *args,
                               json_t *kwargs);
void worker_task_destroy(worker_task_t **self_p);

/* Where progress goes (default: nowhere). */
void worker_task_set_progress_sink(worker_task_t *self, worker_progress_fn_t *fn, void *arg);

/* The flag a SIGUSR1 handler sets when the soft time limit passes. */
void worker_task_set_soft_limit_flag(worker_task_t *self, const volatile sig_atomic_t *flag);

/* The worker's settings, for tasks that talk to services (borrowed; must
 * outlive the task; NULL when the runner has none, e.g. in a unit test). */
void worker_task_set_config(worker_task_t *self, const zt_config_t *config);

/* The retries this call may use, as the worker resolved them (task message,
 * then registry options, then task_max_retries); -1 = unknown. */
void worker_task_set_max_retries(worker_task_t *self, int max_retries);

/* After the function returned rc: fixes the outcome (0 without a call to
 * succeed/fail/retry = success with null; a negative rc without one = failure)
 * and delivers a progress report still held back by the rate limit. */
void worker_task_finish(worker_task_t *self, int rc);

/* The outcome and its parts (borrowed until destroy). */
worker_outcome_t worker_task_outcome(const worker_task_t *self);
const json_t *worker_task_result(const worker_task_t *self);
const char *worker_task_exc_type(const worker_task_t *self);
const char *worker_task_exc_module(const worker_task_t *self); /* may be NULL */
const char *worker_task_message(const worker_task_t *self);
const char *worker_task_traceback(const worker_task_t *self);
double worker_task_countdown(const worker_task_t *self); /* retry: seconds, < 0 = policy */
bool worker_task_permanent(const worker_task_t *self);   /* failure: never retry it */

/* --- For task functions --------------------------------------------------- */

const char *worker_task_id(const worker_task_t *self);
const char *worker_task_name(const worker_task_t *self);
/* Retries so far: 0 on the first attempt. */
int worker_task_retries(const worker_task_t *self);
const json_t *worker_task_args(const worker_task_t *self);   /* array, borrowed */
const json_t *worker_task_kwargs(const worker_task_t *self); /* object, borrowed */

/* The worker's settings (zt_config.h), or NULL when the runner gave none:
 * how a task finds the broker, the result backend and service settings. */
const zt_config_t *worker_task_config(const worker_task_t *self);

/* max_retries for this call (-1 = unknown): with worker_task_retries() it
 * tells a task whether a failure now is final, so it can record it. */
int worker_task_max_retries(const worker_task_t *self);

/* Argument by position, else by keyword; NULL if neither is given. */
const json_t *worker_task_arg(const worker_task_t *self, size_t index, const char *key);

/* Reports progress. Calls closer than ~10 ms apart are merged (the latest
 * wins and is delivered later); the last report is always delivered. */
void worker_task_progress(worker_task_t *self, double current, double total, const char *message);

/* True once the soft time limit has passed: clean up and return. */
bool worker_task_soft_limit_exceeded(const worker_task_t *self);

/* Sleeps; returns 0, or ZT_ERR_INTERRUPTED as soon as the soft time limit passes. */
int worker_task_sleep(worker_task_t *self, double seconds);

/* Ends the call with a result (taken over; NULL = JSON null). Returns 0. */
int worker_task_succeed(worker_task_t *self, json_t *result);

/* Ends the call with an error: exc_type is an exception class name as Python
 * would show it ("ValueError"); the module is chosen by worker_exc_module().
 * Returns WORKER_TASK_FAILED. */
int worker_task_fail(worker_task_t *self, const char *exc_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like worker_task_fail, but the worker does not retry it whatever the
 * retry policy: for errors another attempt cannot fix (a corrupt input).
 * Returns WORKER_TASK_FAILED. */
int worker_task_fail_permanently(worker_task_t *self, const char *exc_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Asks to run again after countdown seconds (< 0: the retry policy's backoff),
 * within the task's max_retries; past them the task fails. Returns
 * WORKER_TASK_RETRY. */
int worker_task_retry(worker_task_t *self, double countdown, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The Python module Celery should look an exception type up in: "builtins"
 * for Python's own (ValueError, ...), "celery.exceptions" for Celery's
 * (TimeLimitExceeded, WorkerLostError, ...), NULL for others (Celery then makes
 * a class of that name). */
const char *worker_exc_module(const char *exc_type);

#endif
