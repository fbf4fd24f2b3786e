/* worker_task: the per-call context a task function works with. Holds the
 * decoded inputs, the outcome the function chose, and a one-slot buffer for
 * progress reports that arrive faster than the forwarding rate. */
#include "task.h"

#include "zt_clock.h"
#include "zt_error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROGRESS_MIN_MS 10 /* msecs between two reports handed to the sink */
#define MESSAGE_MAX 4096   /* bytes kept of an error message */

struct worker_task {
    char *id;
    char *name;
    int retries;
    int max_retries;           /* -1 = unknown */
    const zt_config_t *config; /* borrowed, may be NULL */
    json_t *args;
    json_t *kwargs;
    /* progress */
    worker_progress_fn_t *sink;
    void *sink_arg;
    int64_t progress_sent_ms; /* monotonic msecs of the last delivered report */
    bool progress_held;       /* a report waits for the rate limit */
    double held_current, held_total;
    char *held_message;
    const volatile sig_atomic_t *soft_flag;
    /* outcome */
    worker_outcome_t outcome;
    json_t *result;
    char *exc_type;
    char *message;
    char *traceback;
    double countdown;
    bool permanent; /* failure that no retry can fix */
};

static const char *const python_builtins[] = {"ArithmeticError",
                                              "AssertionError",
                                              "AttributeError",
                                              "BaseException",
                                              "BufferError",
                                              "ConnectionError",
                                              "EOFError",
                                              "Exception",
                                              "FileExistsError",
                                              "FileNotFoundError",
                                              "FloatingPointError",
                                              "IOError",
                                              "ImportError",
                                              "IndexError",
                                              "InterruptedError",
                                              "KeyError",
                                              "LookupError",
                                              "MemoryError",
                                              "NotImplementedError",
                                              "OSError",
                                              "OverflowError",
                                              "PermissionError",
                                              "RecursionError",
                                              "RuntimeError",
                                              "TimeoutError",
                                              "TypeError",
                                              "UnicodeError",
                                              "ValueError",
                                              "ZeroDivisionError"};

static const char *const celery_exceptions[] = {
    "InvalidTaskError",      "MaxRetriesExceededError", "NotRegistered",     "Retry",
    "SoftTimeLimitExceeded", "TaskRevokedError",        "TimeLimitExceeded", "WorkerLostError"};

const char *worker_exc_module(const char *exc_type) {
    if (!exc_type)
        return NULL;
    for (size_t i = 0; i < sizeof python_builtins / sizeof python_builtins[0]; i++)
        if (strcmp(exc_type, python_builtins[i]) == 0)
            return "builtins";
    for (size_t i = 0; i < sizeof celery_exceptions / sizeof celery_exceptions[0]; i++)
        if (strcmp(exc_type, celery_exceptions[i]) == 0)
            return "celery.exceptions";
    return NULL;
}

worker_task_t *worker_task_new(const char *id, const char *name, int retries, json_t *args,
                               json_t *kwargs) {
    worker_task_t *self = zt_calloc(1, sizeof *self);
    self->id = zt_strdup(id ? id : "");
    self->name = zt_strdup(name ? name : "");
    self->retries = retries;
    self->max_retries = -1;
    self->args = args && json_is_array(args) ? args : json_array();
    if (args && args != self->args)
        json_decref(args);
    self->kwargs = kwargs && json_is_object(kwargs) ? kwargs : json_object();
    if (kwargs && kwargs != self->kwargs)
        json_decref(kwargs);
    self->countdown = -1;
    return self;
}

void worker_task_destroy(worker_task_t **self_p) {
    if (!self_p || !*self_p)
        return;
    worker_task_t *self = *self_p;
    free(self->id);
    free(self->name);
    json_decref(self->args);
    json_decref(self->kwargs);
    free(self->held_message);
    json_decref(self->result);
    free(self->exc_type);
    free(self->message);
    free(self->traceback);
    free(self);
    *self_p = NULL;
}

void worker_task_set_progress_sink(worker_task_t *self, worker_progress_fn_t *fn, void *arg) {
    self->sink = fn;
    self->sink_arg = arg;
}

void worker_task_set_soft_limit_flag(worker_task_t *self, const volatile sig_atomic_t *flag) {
    self->soft_flag = flag;
}

void worker_task_set_config(worker_task_t *self, const zt_config_t *config) {
    self->config = config;
}

void worker_task_set_max_retries(worker_task_t *self, int max_retries) {
    self->max_retries = max_retries;
}

const zt_config_t *worker_task_config(const worker_task_t *self) {
    return self->config;
}

int worker_task_max_retries(const worker_task_t *self) {
    return self->max_retries;
}

const char *worker_task_id(const worker_task_t *self) {
    return self->id;
}

const char *worker_task_name(const worker_task_t *self) {
    return self->name;
}

int worker_task_retries(const worker_task_t *self) {
    return self->retries;
}

const json_t *worker_task_args(const worker_task_t *self) {
    return self->args;
}

const json_t *worker_task_kwargs(const worker_task_t *self) {
    return self->kwargs;
}

const json_t *worker_task_arg(const worker_task_t *self, size_t index, const char *key) {
    if (index < json_array_size(self->args))
        return json_array_get(self->args, index);
    return key ? json_object_get(self->kwargs, key) : NULL;
}

static void deliver_held(worker_task_t *self) {
    if (!self->progress_held)
        return;
    self->progress_held = false;
    self->progress_sent_ms = zt_clock_mono_ms();
    if (self->sink)
        self->sink(self->sink_arg, self->held_current, self->held_total,
                   self->held_message ? self->held_message : "");
}

void worker_task_progress(worker_task_t *self, double current, double total, const char *message) {
    if (!isfinite(current))
        current = 0;
    if (!isfinite(total))
        total = 0;
    self->held_current = current;
    self->held_total = total;
    free(self->held_message);
    self->held_message = zt_strndup(message ? message : "", message ? strnlen(message, 1024) : 0);
    self->progress_held = true;
    if (zt_clock_mono_ms() - self->progress_sent_ms >= PROGRESS_MIN_MS)
        deliver_held(self);
}

bool worker_task_soft_limit_exceeded(const worker_task_t *self) {
    return self->soft_flag && *self->soft_flag;
}

int worker_task_sleep(worker_task_t *self, double seconds) {
    if (!(seconds > 0))
        return worker_task_soft_limit_exceeded(self) ? ZT_ERR_INTERRUPTED : 0;
    if (seconds > 1e7)
        seconds = 1e7;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    for (;;) {
        if (worker_task_soft_limit_exceeded(self))
            return ZT_ERR_INTERRUPTED;
        struct timespec rem;
        if (nanosleep(&ts, &rem) == 0)
            return 0;
        if (errno != EINTR)
            return 0;
        ts = rem; /* a signal: the soft limit, or something harmless */
    }
}

static void set_outcome(worker_task_t *self, worker_outcome_t outcome, const char *exc_type,
                        const char *fmt, va_list ap) {
    self->outcome = outcome;
    self->permanent = false;
    free(self->exc_type);
    free(self->message);
    self->exc_type = zt_strdup(exc_type && *exc_type ? exc_type : "Exception");
    char buf[MESSAGE_MAX];
    vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
    self->message = zt_strdup(buf);
}

int worker_task_succeed(worker_task_t *self, json_t *result) {
    json_decref(self->result);
    self->result = result ? result : json_null();
    self->outcome = WORKER_OUTCOME_SUCCESS;
    return 0;
}

int worker_task_fail(worker_task_t *self, const char *exc_type, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(self, WORKER_OUTCOME_FAILURE, exc_type, fmt, ap);
    va_end(ap);
    return WORKER_TASK_FAILED;
}

int worker_task_fail_permanently(worker_task_t *self, const char *exc_type, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(self, WORKER_OUTCOME_FAILURE, exc_type, fmt, ap);
    va_end(ap);
    self->permanent = true;
    return WORKER_TASK_FAILED;
}

int worker_task_retry(worker_task_t *self, double countdown, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(self, WORKER_OUTCOME_RETRY, "Retry", fmt, ap);
    va_end(ap);
    self->countdown = isfinite(countdown) && countdown >= 0 ? countdown : -1;
    return WORKER_TASK_RETRY;
}

void worker_task_finish(worker_task_t *self, int rc) {
    deliver_held(self);
    if (self->outcome == WORKER_OUTCOME_NONE) {
        if (rc == 0) {
            worker_task_succeed(self, NULL);
        } else {
            self->outcome = WORKER_OUTCOME_FAILURE;
            self->exc_type = zt_strdup("Exception");
            char buf[128];
            snprintf(buf, sizeof buf, "task returned error %d without a message", rc);
            self->message = zt_strdup(buf);
        }
    }
    if (self->outcome != WORKER_OUTCOME_SUCCESS && !self->traceback) {
        /* C has no Python traceback; say where the error came from instead. */
        char buf[MESSAGE_MAX + 512];
        snprintf(buf, sizeof buf, "%s: %s\n  raised by C task %s[%s], attempt %d\n", self->exc_type,
                 self->message, self->name, self->id, self->retries + 1);
        self->traceback = zt_strdup(buf);
    }
}

worker_outcome_t worker_task_outcome(const worker_task_t *self) {
    return self->outcome;
}

const json_t *worker_task_result(const worker_task_t *self) {
    return self->result;
}

const char *worker_task_exc_type(const worker_task_t *self) {
    return self->exc_type;
}

const char *worker_task_exc_module(const worker_task_t *self) {
    return worker_exc_module(self->exc_type);
}

const char *worker_task_message(const worker_task_t *self) {
    return self->message ? self->message : "";
}

const char *worker_task_traceback(const worker_task_t *self) {
    return self->traceback;
}

double worker_task_countdown(const worker_task_t *self) {
    return self->countdown;
}

bool worker_task_permanent(const worker_task_t *self) {
    return self->permanent;
}
