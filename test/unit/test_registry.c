/* test_registry: the worker's task registry, the task API a task function
 * sees, the built-in tasks run in-process, the prefork pool running them in
 * real child processes (including one that crashes), and the Redis result
 * backend the worker writes through (against a private redis-server on a
 * free loopback port; skipped with a note when redis-server is missing). */
#include "zt_test.h"

#include "pool.h"
#include "registry.h"
#include "task.h"
#include "tasks.h"
#include "worker.h"

#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_error.h"
#include "zt_taskmsg.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int dummy(worker_task_t *t) {
    return worker_task_succeed(t, json_string("dummy"));
}

static int other(worker_task_t *t) {
    return worker_task_fail(t, "ValueError", "bad value %d", 7);
}

static void test_registry_add_lookup(void) {
    worker_registry_t *r = worker_registry_new();
    CHECK_INT(worker_registry_add(r, "b.task", dummy, NULL), 0);
    worker_task_options_t o;
    worker_task_options_init(&o);
    o.time_limit = 5;
    o.max_retries = 2;
    CHECK_INT(worker_registry_add(r, "a.task", other, &o), 0);
    CHECK_INT(worker_registry_add(r, "c", dummy, NULL), 0);
    /* duplicates, bad names, bad options */
    CHECK_INT(worker_registry_add(r, "a.task", dummy, NULL), ZT_ERR_REJECTED);
    CHECK_INT(worker_registry_add(r, "", dummy, NULL), ZT_ERR_INVALID);
    CHECK_INT(worker_registry_add(r, "has space", dummy, NULL), ZT_ERR_INVALID);
    CHECK_INT(worker_registry_add(r, "x", NULL, NULL), ZT_ERR_INVALID);
    o.time_limit = -1;
    CHECK_INT(worker_registry_add(r, "neg", dummy, &o), ZT_ERR_INVALID);

    CHECK_INT(worker_registry_size(r), 3);
    CHECK_STR(worker_registry_name(r, 0), "a.task");
    CHECK_STR(worker_registry_name(r, 1), "b.task");
    CHECK_STR(worker_registry_name(r, 2), "c");
    CHECK(worker_registry_name(r, 3) == NULL);

    const worker_task_options_t *got = NULL;
    /* lookups take a length: names from the wire are not NUL-terminated */
    CHECK(worker_registry_lookup(r, "a.taskXYZ", 6, &got) == other);
    CHECK(got && got->time_limit == 5 && got->max_retries == 2 && got->retry_delay < 0);
    CHECK(worker_registry_lookup(r, "b.task", 6, NULL) == dummy);
    CHECK(worker_registry_lookup(r, "c", 1, NULL) == dummy);
    CHECK(worker_registry_lookup(r, "a.tas", 5, NULL) == NULL);
    CHECK(worker_registry_lookup(r, "d", 1, NULL) == NULL);
    CHECK(worker_registry_lookup(r, "", 0, NULL) == NULL);
    worker_registry_destroy(&r);
    CHECK(r == NULL);
    worker_registry_destroy(&r); /* harmless twice */
}

static void test_registry_many(void) {
    worker_registry_t *r = worker_registry_new();
    char name[32];
    for (int i = 99; i >= 0; i--) {
        snprintf(name, sizeof name, "t%03d", i);
        CHECK_INT(worker_registry_add(r, name, dummy, NULL), 0);
    }
    CHECK_INT(worker_registry_size(r), 100);
    for (size_t i = 1; i < worker_registry_size(r); i++)
        CHECK(strcmp(worker_registry_name(r, i - 1), worker_registry_name(r, i)) < 0);
    CHECK(worker_registry_lookup(r, "t042", 4, NULL) == dummy);
    worker_registry_destroy(&r);
}

/* Runs a registered task in-process, as a pool child would. */
static worker_task_t *run(worker_registry_t *r, const char *name, const char *args,
                          const char *kwargs, int retries) {
    json_t *a = args ? json_loads(args, 0, NULL) : NULL;
    json_t *k = kwargs ? json_loads(kwargs, 0, NULL) : NULL;
    worker_task_t *t = worker_task_new("id-1", name, retries, a, k);
    worker_task_fn_t *fn = worker_registry_lookup(r, name, strlen(name), NULL);
    CHECK(fn != NULL);
    int rc = fn ? fn(t) : -1;
    worker_task_finish(t, rc);
    return t;
}

static bool result_is(const worker_task_t *t, const char *json) {
    json_t *want = json_loads(json, JSON_DECODE_ANY, NULL);
    bool same = want && worker_task_outcome(t) == WORKER_OUTCOME_SUCCESS &&
                json_equal((json_t *)worker_task_result(t), want);
    if (!same) {
        char *got =
            worker_task_result(t) ? json_dumps(worker_task_result(t), JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "  result %s, wanted %s (outcome %d, %s: %s)\n", got ? got : "(none)", json,
                worker_task_outcome(t), worker_task_exc_type(t) ? worker_task_exc_type(t) : "-",
                worker_task_message(t));
        free(got);
    }
    json_decref(want);
    return same;
}

static void test_builtins(void) {
    worker_registry_t *r = worker_registry_new();
    CHECK_INT(tasks_register_all(r), 0);
    CHECK_INT(tasks_register_all(r), ZT_ERR_REJECTED); /* twice: names taken */
    const char *names[] = {"builtin.noop",  "builtin.add",      "builtin.sleep", "builtin.fail",
                           "builtin.flaky", "builtin.progress", "builtin.crash", "builtin.echo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK(worker_registry_lookup(r, names[i], strlen(names[i]), NULL) != NULL);

    worker_task_t *t = run(r, "builtin.noop", NULL, NULL, 0);
    CHECK(result_is(t, "null"));
    worker_task_destroy(&t);

    t = run(r, "builtin.add", "[2, 3]", NULL, 0);
    CHECK(result_is(t, "5"));
    CHECK(json_is_integer(worker_task_result(t)));
    worker_task_destroy(&t);
    t = run(r, "builtin.add", "[]", "{\"x\": 1.5, \"y\": 2}", 0);
    CHECK(result_is(t, "3.5"));
    worker_task_destroy(&t);
    t = run(r, "builtin.add", "[\"a\", 1]", NULL, 0);
    CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_FAILURE);
    CHECK_STR(worker_task_exc_type(t), "TypeError");
    CHECK_STR(worker_task_exc_module(t), "builtins");
    worker_task_destroy(&t);

    t = run(r, "builtin.fail", "[\"disk on fire\"]", NULL, 0);
    CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_FAILURE);
    CHECK_STR(worker_task_exc_type(t), "Exception");
    CHECK_STR(worker_task_message(t), "disk on fire");
    CHECK(worker_task_traceback(t) && strstr(worker_task_traceback(t), "disk on fire"));
    worker_task_destroy(&t);

    /* flaky(2): attempts 1 and 2 fail, attempt 3 returns 3 */
    for (int retries = 0; retries < 2; retries++) {
        t = run(r, "builtin.flaky", "[2]", NULL, retries);
        CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_FAILURE);
        worker_task_destroy(&t);
    }
    t = run(r, "builtin.flaky", "[2]", NULL, 2);
    CHECK(result_is(t, "3"));
    worker_task_destroy(&t);

    t = run(r, "builtin.echo", "[1, \"two\", [3]]", "{\"k\": {\"v\": null}}", 0);
    CHECK(result_is(t, "{\"args\": [1, \"two\", [3]], \"kwargs\": {\"k\": {\"v\": null}}}"));
    worker_task_destroy(&t);

    t = run(r, "builtin.sleep", "[0.01]", NULL, 0);
    CHECK(result_is(t, "0.01"));
    worker_task_destroy(&t);
    t = run(r, "builtin.sleep", "[-1]", NULL, 0);
    CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_FAILURE);
    worker_task_destroy(&t);

    t = run(r, "builtin.crash", "[\"sideways\"]", NULL, 0); /* refused, not crashed */
    CHECK_STR(worker_task_exc_type(t), "ValueError");
    worker_task_destroy(&t);
    worker_registry_destroy(&r);
}

typedef struct {
    int calls;
    double current, total;
    char message[64];
} progress_log_t;

static void record_progress(void *arg, double current, double total, const char *message) {
    progress_log_t *log = arg;
    log->calls++;
    log->current = current;
    log->total = total;
    snprintf(log->message, sizeof log->message, "%s", message);
}

static void test_task_api(void) {
    json_t *args = json_loads("[10, \"s\"]", 0, NULL);
    json_t *kwargs = json_loads("{\"k\": true, \"x\": 99}", 0, NULL);
    worker_task_t *t = worker_task_new("abc", "my.task", 4, args, kwargs);
    CHECK_STR(worker_task_id(t), "abc");
    CHECK_STR(worker_task_name(t), "my.task");
    CHECK_INT(worker_task_retries(t), 4);
    CHECK_INT(json_array_size(worker_task_args(t)), 2);
    /* position first, then keyword */
    CHECK_INT(json_integer_value(worker_task_arg(t, 0, "x")), 10);
    CHECK(json_is_true(worker_task_arg(t, 5, "k")));
    CHECK(worker_task_arg(t, 5, "missing") == NULL);
    CHECK(worker_task_arg(t, 5, NULL) == NULL);

    /* progress: a burst is merged, the last one always delivered */
    progress_log_t log = {0};
    worker_task_set_progress_sink(t, record_progress, &log);
    for (int i = 1; i <= 100; i++)
        worker_task_progress(t, i, 100, "working");
    CHECK(log.calls >= 1 && log.calls < 10);
    CHECK(worker_task_outcome(t) == WORKER_OUTCOME_NONE);
    CHECK_INT(worker_task_retry(t, 2.5, "try again %s", "later"), WORKER_TASK_RETRY);
    worker_task_finish(t, WORKER_TASK_RETRY);
    CHECK_INT(log.current, 100);
    CHECK_INT(log.total, 100);
    CHECK_STR(log.message, "working");
    CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_RETRY);
    CHECK_STR(worker_task_exc_type(t), "Retry");
    CHECK_STR(worker_task_exc_module(t), "celery.exceptions");
    CHECK_STR(worker_task_message(t), "try again later");
    CHECK(worker_task_countdown(t) == 2.5);
    worker_task_destroy(&t);

    /* a negative return without a call: failure; 0 without a call: success null */
    t = worker_task_new("x", "y", 0, NULL, NULL);
    CHECK(json_is_array(worker_task_args(t)) && json_is_object(worker_task_kwargs(t)));
    worker_task_finish(t, -5);
    CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_FAILURE);
    CHECK_STR(worker_task_exc_type(t), "Exception");
    worker_task_destroy(&t);
    t = worker_task_new("x", "y", 0, json_string("not an array"), json_integer(3));
    CHECK(json_is_array(worker_task_args(t)) && json_is_object(worker_task_kwargs(t)));
    worker_task_finish(t, 0);
    CHECK_INT(worker_task_outcome(t), WORKER_OUTCOME_SUCCESS);
    CHECK(json_is_null(worker_task_result(t)));
    worker_task_destroy(&t);

    /* soft limit: the flag is visible and cuts a sleep short */
    volatile sig_atomic_t flag = 0;
    t = worker_task_new("x", "y", 0, NULL, NULL);
    worker_task_set_soft_limit_flag(t, &flag);
    CHECK(!worker_task_soft_limit_exceeded(t));
    CHECK_INT(worker_task_sleep(t, 0.001), 0);
    flag = 1;
    CHECK(worker_task_soft_limit_exceeded(t));
    int64_t before = zt_clock_mono_ms();
    CHECK_INT(worker_task_sleep(t, 10), ZT_ERR_INTERRUPTED);
    CHECK(zt_clock_mono_ms() - before < 1000);
    worker_task_destroy(&t);

    CHECK_STR(worker_exc_module("ValueError"), "builtins");
    CHECK_STR(worker_exc_module("TimeLimitExceeded"), "celery.exceptions");
    CHECK_STR(worker_exc_module("WorkerLostError"), "celery.exceptions");
    CHECK(worker_exc_module("ThumbnailError") == NULL);
}

static void test_expand_name(void) {
    char host[256], out[300], want[600];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    CHECK_INT(worker_expand_name("worker@%h", out, sizeof out), 0);
    snprintf(want, sizeof want, "worker@%s", host);
    CHECK_STR(out, want);
    CHECK_INT(worker_expand_name("a%%b", out, sizeof out), 0);
    CHECK_STR(out, "a%b");
    CHECK_INT(worker_expand_name("plain", out, sizeof out), 0);
    CHECK_STR(out, "plain");
    char small[4];
    CHECK_INT(worker_expand_name("toolong", small, sizeof small), ZT_ERR_TOO_LARGE);
}

/* ---- the pool, with real children ---- */

typedef struct {
    int done, lost, progress;
    worker_outcome_t outcome;
    char exc_type[64];
    char reason[96];
    json_t *result;
    bool lost_busy;
} pool_log_t;

static void on_pool(void *arg, const worker_pool_event_t *ev) {
    pool_log_t *log = arg;
    if (ev->type == WORKER_POOL_DONE) {
        log->done++;
        log->outcome = ev->outcome;
        json_decref(log->result);
        log->result = ev->result ? json_deep_copy(ev->result) : NULL;
        snprintf(log->exc_type, sizeof log->exc_type, "%s", ev->exc_type ? ev->exc_type : "");
    } else if (ev->type == WORKER_POOL_LOST) {
        log->lost++;
        log->lost_busy = ev->busy;
        snprintf(log->reason, sizeof log->reason, "%s", ev->reason);
    } else {
        log->progress++;
    }
}

/* Polls the pool until pred holds or 5 s pass. */
static bool pump(worker_pool_t *pool, pool_log_t *log, int want_done, int want_lost) {
    int64_t deadline = zt_clock_mono_ms() + 5000;
    struct pollfd fds[8];
    while (zt_clock_mono_ms() < deadline) {
        if (log->done >= want_done && log->lost >= want_lost)
            return true;
        int n = worker_pool_pollfds(pool, fds, 8);
        poll(fds, (nfds_t)n, 20);
        worker_pool_process(pool, fds, n, on_pool, log);
        worker_pool_reap(pool, on_pool, log);
    }
    return log->done >= want_done && log->lost >= want_lost;
}

static int pack_task(msgpack_sbuffer *sbuf, const char *task, const char *args) {
    zt_task_options_t o;
    zt_task_options_init(&o);
    o.task = task;
    json_t *a = json_loads(args, 0, NULL);
    o.args = a;
    msgpack_packer pk;
    msgpack_sbuffer_init(sbuf);
    msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
    int rc = zt_taskmsg_pack(&pk, &o, "task-1", NULL, 0);
    json_decref(a);
    return rc;
}

static void test_pool(void) {
    worker_registry_t *r = worker_registry_new();
    tasks_register_all(r);
    worker_pool_config_t cfg = {1, r, "test", ZT_LOG_WARNING, NULL, true};
    int err = -1;
    worker_pool_t *pool = worker_pool_new(&cfg, &err);
    CHECK(pool != NULL);
    CHECK_INT(err, 0);
    if (!pool) {
        worker_registry_destroy(&r);
        return;
    }
    pool_log_t log = {0};
    pid_t first = worker_pool_pid(pool, 0);
    CHECK(first > 0 && worker_pool_idle(pool, 0));

    msgpack_sbuffer sbuf;
    CHECK_INT(pack_task(&sbuf, "builtin.add", "[40, 2]"), 0);
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), 0);
    CHECK(!worker_pool_idle(pool, 0));
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), ZT_ERR_INVALID);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(pump(pool, &log, 1, 0));
    CHECK_INT(log.outcome, WORKER_OUTCOME_SUCCESS);
    CHECK(log.result && json_integer_value(log.result) == 42);
    CHECK(worker_pool_idle(pool, 0));

    /* progress travels; the outcome still arrives */
    CHECK_INT(pack_task(&sbuf, "builtin.progress", "[3, 0.02]"), 0);
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), 0);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(pump(pool, &log, 2, 0));
    CHECK(log.progress >= 1);
    CHECK(log.result && json_integer_value(log.result) == 3);

    /* an unknown name fails in the child without killing it */
    CHECK_INT(pack_task(&sbuf, "no.such", "[]"), 0);
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), 0);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(pump(pool, &log, 3, 0));
    CHECK_INT(log.outcome, WORKER_OUTCOME_FAILURE);
    CHECK_STR(log.exc_type, "NotRegistered");
    CHECK_INT(worker_pool_pid(pool, 0), first);

    /* a crash mid-task: LOST, busy, signal named; the slot gets a new child */
    CHECK_INT(pack_task(&sbuf, "builtin.crash", "[\"segv\"]"), 0);
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), 0);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(pump(pool, &log, 3, 1));
    CHECK(log.lost_busy);
    CHECK_STR(log.reason, "killed by SIGSEGV");
    CHECK(worker_pool_pid(pool, 0) > 0 && worker_pool_pid(pool, 0) != first);
    CHECK_INT(worker_pool_replaced(pool), 1);

    /* and the new child works */
    CHECK_INT(pack_task(&sbuf, "builtin.add", "[1, 1]"), 0);
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), 0);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(pump(pool, &log, 4, 1));
    CHECK(log.result && json_integer_value(log.result) == 2);

    /* retiring replaces the child without a LOST report */
    pid_t before = worker_pool_pid(pool, 0);
    worker_pool_retire(pool, 0);
    CHECK(worker_pool_pid(pool, 0) > 0 && worker_pool_pid(pool, 0) != before);
    CHECK_INT(worker_pool_tasks_run(pool, 0), 0);
    CHECK_INT(pack_task(&sbuf, "builtin.noop", "[]"), 0);
    CHECK_INT(worker_pool_run(pool, 0, "task-1", 0, sbuf.data, sbuf.size), 0);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(pump(pool, &log, 5, 1));
    CHECK_INT(log.lost, 1);

    json_decref(log.result);
    worker_pool_destroy(&pool);
    CHECK(pool == NULL);
    CHECK(waitpid(-1, NULL, WNOHANG) < 0); /* every child reaped */
    worker_registry_destroy(&r);
}

/* ---- the result backend, against a private redis-server ---- */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static const char *find_redis_server(void) {
    static const char *const paths[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* Starts redis-server on port; returns its pid once it answers, or -1. */
static pid_t start_redis(const char *path, int port) {
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl(path, path, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly",
              "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250; i++) { /* bounded: 5 s */
        redisContext *c = redisConnect("127.0.0.1", port);
        bool up = c && !c->err;
        if (c)
            redisFree(c);
        if (up)
            return pid;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_redis(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static long long redis_ttl(int port, int db, const char *key) {
    redisContext *c = redisConnect("127.0.0.1", port);
    long long ttl = -100;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "SELECT %d", db);
        freeReplyObject(r);
        r = redisCommand(c, "TTL %s", key);
        if (r && r->type == REDIS_REPLY_INTEGER)
            ttl = r->integer;
        freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ttl;
}

static void test_backend_urls(void) {
    const char *bad[] = {"http://127.0.0.1:6379", "redis://127.0.0.1:99999", "redis://h:1/abc",
                         "redis://user@h",        "unix://relative",         "redis://h:1/2/3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int err = 0;
        zt_backend_t *b = zt_backend_new_lazy(bad[i], &err);
        CHECK(b == NULL);
        CHECK_INT(err, ZT_ERR_INVALID);
    }
    int err = -1;
    zt_backend_t *b = zt_backend_new_lazy("redis://:secret@localhost:1/2", &err);
    CHECK(b != NULL);
    CHECK_INT(err, 0);
    zt_backend_destroy(&b);
    json_t *e = zt_backend_exception("ValueError", "bad", "builtins");
    char *text = json_dumps(e, JSON_COMPACT);
    CHECK_STR(
        text,
        "{\"exc_type\":\"ValueError\",\"exc_message\":[\"bad\"],\"exc_module\":\"builtins\"}");
    free(text);
    json_decref(e);
    e = zt_backend_exception("WorkerLostError", "gone", NULL);
    CHECK(json_is_null(json_object_get(e, "exc_module")));
    json_decref(e);
}

static void test_backend_redis(void) {
    const char *server = find_redis_server();
    if (!server) {
        fprintf(stderr, "  (redis-server not installed: backend round trip skipped)\n");
        return;
    }
    int port = free_port();
    pid_t redis = start_redis(server, port);
    CHECK(redis > 0);
    if (redis <= 0)
        return;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    int err = -1;
    zt_backend_t *b = zt_backend_new(url, &err);
    CHECK(b != NULL);
    CHECK_INT(err, 0);
    if (!b) {
        stop_redis(redis);
        return;
    }
    /* A later state of the same task supersedes a queued STARTED/PROGRESS. */
    json_t *started = json_pack("{s:i, s:s}", "pid", 1, "hostname", "w@h");
    json_t *p1 = json_pack("{s:f, s:f, s:s}", "current", 1.0, "total", 4.0, "message", "a");
    json_t *p2 = json_pack("{s:f, s:f, s:s}", "current", 2.0, "total", 4.0, "message", "b");
    json_t *answer = json_integer(42);
    CHECK_INT(zt_backend_queue_state(b, "t1", "STARTED", started, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "t1", "SUCCESS", answer, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "t2", "PROGRESS", p1, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "t2", "PROGRESS", p2, NULL, 100), 0);
    CHECK_INT(zt_backend_pending(b), 2);
    CHECK_INT(zt_backend_queue_state(b, "t1", "BOGUS", NULL, NULL, 100), ZT_ERR_INVALID);
    CHECK_INT(zt_backend_queue_state(b, "t1", "SUCCESS", NULL, NULL, 0), ZT_ERR_INVALID);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_INT(zt_backend_pending(b), 0);

    json_t *meta = NULL;
    CHECK_INT(zt_backend_get(b, "t1", &meta), 0);
    CHECK_STR(json_string_value(json_object_get(meta, "status")), "SUCCESS");
    CHECK_INT(json_integer_value(json_object_get(meta, "result")), 42);
    CHECK(json_is_null(json_object_get(meta, "traceback")));
    CHECK(json_is_array(json_object_get(meta, "children")));
    CHECK_STR(json_string_value(json_object_get(meta, "task_id")), "t1");
    const char *date = json_string_value(json_object_get(meta, "date_done"));
    double when = 0;
    CHECK(date && strlen(date) == 26 && zt_clock_parse_iso8601(date, &when) == 0);
    CHECK(when > zt_clock_wall() - 60 && when < zt_clock_wall() + 1);
    json_decref(meta);
    CHECK_INT(zt_backend_get(b, "t2", &meta), 0);
    CHECK_STR(json_string_value(json_object_get(meta, "status")), "PROGRESS");
    CHECK_STR(json_string_value(json_object_get(json_object_get(meta, "result"), "message")), "b");
    CHECK(json_is_null(json_object_get(meta, "date_done")));
    json_decref(meta);
    long long ttl = redis_ttl(port, 3, "celery-task-meta-t1");
    CHECK(ttl > 90 && ttl <= 100);
    CHECK_INT(zt_backend_get(b, "nope", &meta), ZT_ERR_NOT_FOUND);
    CHECK(meta == NULL);

    /* Failure with a traceback, and a non-final state is not a final wait. */
    json_t *exc = zt_backend_exception("Exception", "disk on fire", "builtins");
    CHECK_INT(zt_backend_queue_state(b, "t3", "FAILURE", exc, "Exception: disk on fire\n", 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_INT(zt_backend_wait(b, "t3", 1000, &meta), 0);
    CHECK_STR(json_string_value(json_object_get(meta, "traceback")), "Exception: disk on fire\n");
    json_decref(meta);
    int64_t before = zt_clock_mono_ms();
    CHECK_INT(zt_backend_wait(b, "t2", 200, &meta), ZT_ERR_TIMEOUT);
    CHECK(zt_clock_mono_ms() - before < 1500);
    CHECK(meta && strcmp(json_string_value(json_object_get(meta, "status")), "PROGRESS") == 0);
    json_decref(meta);

    /* Waiting wakes on the PUBLISH of a state written later, by another process. */
    pid_t writer = fork();
    if (writer == 0) {
        struct timespec ts = {0, 150 * 1000 * 1000};
        nanosleep(&ts, NULL);
        zt_backend_t *w = zt_backend_new(url, NULL);
        json_t *r = json_string("late");
        int rc = w ? zt_backend_queue_state(w, "t4", "SUCCESS", r, NULL, 100) : -1;
        rc = rc == 0 ? zt_backend_flush(w) : rc;
        _exit(rc == 0 ? 0 : 1); /* no destructors in a forked test child */
    }
    before = zt_clock_mono_ms();
    CHECK_INT(zt_backend_wait(b, "t4", 5000, &meta), 0);
    CHECK(zt_clock_mono_ms() - before < 3000);
    CHECK_STR(json_string_value(json_object_get(meta, "result")), "late");
    json_decref(meta);
    int status = -1;
    waitpid(writer, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the subscriber connection is reusable */
    CHECK_INT(zt_backend_wait(b, "t1", 1000, &meta), 0);
    json_decref(meta);

    /* Event-loop use: send without waiting, then read replies as they come. */
    uint64_t batch = zt_backend_next_batch(b);
    CHECK_INT(zt_backend_queue_state(b, "t5", "SUCCESS", answer, NULL, 100), 0);
    CHECK(zt_backend_acked(b) < batch);
    CHECK_INT(zt_backend_send(b), 0);
    CHECK(zt_backend_waiting(b));
    int64_t deadline = zt_clock_mono_ms() + 3000;
    while (zt_backend_acked(b) < batch && zt_clock_mono_ms() < deadline) {
        struct pollfd pfd = {zt_backend_fd(b), POLLIN, 0};
        poll(&pfd, 1, 100);
        CHECK_INT(zt_backend_recv(b), 0);
    }
    CHECK(zt_backend_acked(b) >= batch);
    CHECK(!zt_backend_waiting(b));
    CHECK_INT(zt_backend_fd(b), -1);

    /* Redis gone: states stay queued and go out once it is back. */
    stop_redis(redis);
    CHECK_INT(zt_backend_queue_state(b, "t6", "SUCCESS", answer, NULL, 100), 0);
    batch = zt_backend_next_batch(b);
    CHECK_INT(zt_backend_flush(b), ZT_ERR_BACKEND);
    CHECK_INT(zt_backend_pending(b), 1);
    redis = start_redis(server, port);
    CHECK(redis > 0);
    deadline = zt_clock_mono_ms() + 5000;
    while (zt_backend_pending(b) > 0 && zt_clock_mono_ms() < deadline) {
        zt_backend_send(b);
        struct pollfd pfd = {zt_backend_fd(b), POLLIN, 0};
        poll(&pfd, zt_backend_fd(b) >= 0 ? 1 : 0, 50);
        zt_backend_recv(b);
    }
    CHECK_INT(zt_backend_pending(b), 0);
    CHECK_INT(zt_backend_get(b, "t6", &meta), 0);
    json_decref(meta);

    json_decref(started);
    json_decref(p1);
    json_decref(p2);
    json_decref(answer);
    json_decref(exc);
    zt_backend_destroy(&b);
    if (redis > 0)
        stop_redis(redis);
}

int main(void) {
    zt_log_setup("test_registry", ZT_LOG_WARNING, NULL);
    RUN(test_registry_add_lookup);
    RUN(test_registry_many);
    RUN(test_builtins);
    RUN(test_task_api);
    RUN(test_expand_name);
    RUN(test_pool);
    RUN(test_backend_urls);
    RUN(test_backend_redis);
    return zt_test_summary();
}
