/* builtin.*: small tasks with predictable behaviour, for tests, benchmarks
 * and smoke checks of a deployment. None touches anything outside its own
 * process. */
#include "tasks.h"

#include "zt_error.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* builtin.noop() -> null */
static int noop(worker_task_t *t) {
    return worker_task_succeed(t, NULL);
}

/* builtin.add(x, y) -> x + y (an integer when both are integers) */
static int add(worker_task_t *t) {
    const json_t *x = worker_task_arg(t, 0, "x");
    const json_t *y = worker_task_arg(t, 1, "y");
    if (!json_is_number(x) || !json_is_number(y))
        return worker_task_fail(t, "TypeError", "add(x, y) takes two numbers");
    if (json_is_integer(x) && json_is_integer(y)) {
        json_int_t a = json_integer_value(x), b = json_integer_value(y);
        json_int_t sum;
        if (!__builtin_add_overflow(a, b, &sum))
            return worker_task_succeed(t, json_integer(sum));
    }
    return worker_task_succeed(t, json_real(json_number_value(x) + json_number_value(y)));
}

/* builtin.sleep(seconds) -> seconds; SoftTimeLimitExceeded if cut short */
static int sleep_task(worker_task_t *t) {
    const json_t *s = worker_task_arg(t, 0, "seconds");
    if (!json_is_number(s) || json_number_value(s) < 0 || !isfinite(json_number_value(s)))
        return worker_task_fail(t, "TypeError", "sleep(seconds) takes a number >= 0");
    if (worker_task_sleep(t, json_number_value(s)) != 0)
        return worker_task_fail(t, "SoftTimeLimitExceeded", "soft time limit exceeded");
    return worker_task_succeed(t, json_deep_copy(s));
}

/* builtin.fail(message) -> FAILURE Exception(message) */
static int fail(worker_task_t *t) {
    const json_t *m = worker_task_arg(t, 0, "message");
    const char *text = json_is_string(m) ? json_string_value(m) : "builtin.fail was asked to fail";
    return worker_task_fail(t, "Exception", "%s", text);
}

/* builtin.flaky(n): attempts 1..n fail, attempt n+1 returns its number */
static int flaky(worker_task_t *t) {
    const json_t *n = worker_task_arg(t, 0, "n");
    if (!json_is_integer(n) || json_integer_value(n) < 0)
        return worker_task_fail(t, "TypeError", "flaky(n) takes an integer >= 0");
    int attempt = worker_task_retries(t) + 1;
    if (attempt <= json_integer_value(n))
        return worker_task_fail(t, "RuntimeError", "flaky: attempt %d of the first %lld fails",
                                attempt, (long long)json_integer_value(n));
    return worker_task_succeed(t, json_integer(attempt));
}

/* builtin.progress(steps[, delay=0.1]) -> steps, reporting each step */
static int progress(worker_task_t *t) {
    const json_t *steps = worker_task_arg(t, 0, "steps");
    const json_t *delay = worker_task_arg(t, 1, "delay");
    if (!json_is_integer(steps) || json_integer_value(steps) < 0 ||
        json_integer_value(steps) > 1000000)
        return worker_task_fail(t, "TypeError", "progress(steps) takes an integer 0..1000000");
    double d = 0.1;
    if (delay) {
        if (!json_is_number(delay) || json_number_value(delay) < 0)
            return worker_task_fail(t, "TypeError", "progress delay must be a number >= 0");
        d = json_number_value(delay);
    }
    json_int_t n = json_integer_value(steps);
    for (json_int_t i = 1; i <= n; i++) {
        if (worker_task_sleep(t, d) != 0)
            return worker_task_fail(t, "SoftTimeLimitExceeded",
                                    "soft time limit exceeded at step %lld of %lld", (long long)i,
                                    (long long)n);
        char msg[64];
        snprintf(msg, sizeof msg, "step %lld of %lld", (long long)i, (long long)n);
        worker_task_progress(t, (double)i, (double)n, msg);
    }
    return worker_task_succeed(t, json_integer(n));
}

/* builtin.crash(how="segv"|"abort"|"exit"): ends its own process, to prove
 * the pool survives it. The default disposition is restored first so that a
 * sanitizer's handler does not turn the signal into a report and an exit. */
static int crash(worker_task_t *t) {
    const json_t *how = worker_task_arg(t, 0, "how");
    const char *h = json_is_string(how) ? json_string_value(how) : "segv";
    if (strcmp(h, "exit") == 0)
        _exit(3);
    int sig;
    if (strcmp(h, "segv") == 0)
        sig = SIGSEGV;
    else if (strcmp(h, "abort") == 0)
        sig = SIGABRT;
    else
        return worker_task_fail(t, "ValueError",
                                "crash(how) takes \"segv\", \"abort\" or \"exit\"");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(4); /* not reached: the signal's default action ends the process */
}

/* builtin.echo(...) -> {"args": args, "kwargs": kwargs} */
static int echo(worker_task_t *t) {
    json_t *o = json_object();
    json_object_set_new(o, "args", json_deep_copy(worker_task_args(t)));
    json_object_set_new(o, "kwargs", json_deep_copy(worker_task_kwargs(t)));
    return worker_task_succeed(t, o);
}

int tasks_builtin_register(worker_registry_t *registry) {
    static const struct {
        const char *name;
        worker_task_fn_t *fn;
    } tasks[] = {
        {"builtin.noop", noop},   {"builtin.add", add},     {"builtin.sleep", sleep_task},
        {"builtin.fail", fail},   {"builtin.flaky", flaky}, {"builtin.progress", progress},
        {"builtin.crash", crash}, {"builtin.echo", echo},
    };
    for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
        int rc = worker_registry_add(registry, tasks[i].name, tasks[i].fn, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}
