/* test_registry: the worker's task registry, the task API a task function
 * sees, the built-in tasks run in-process, the prefork pool running them in
 * real child processes (including one that crashes), and zt_decoder, which
 * the parent and the pool decode every message with. The Redis result
 * backend the worker writes through is tested in test_backend.c. */
#include "zt_test.h"

#include "pool.h"
#include "registry.h"
#include "task.h"
#include "tasks.h"
#include "worker.h"

#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_taskmsg.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
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
    worker_pool_config_t cfg = {1, r, "test", ZT_LOG_WARNING, NULL, true, NULL};
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

/* ---- zt_decoder: how the worker parent and its pool decode every message ---- */

static void test_decoder(void) {
    zt_decoder_t *dec = zt_decoder_new(0);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    zt_pack_kv_cstr(&pk, "id", "abc");
    zt_pack_kv_uint(&pk, "retries", 3);
    const msgpack_object *root = zt_decoder_parse(dec, sbuf.data, sbuf.size);
    CHECK(root && root->type == MSGPACK_OBJECT_MAP);
    const char *id = NULL;
    size_t len = 0;
    CHECK_INT(zt_mp_get_str(root, "id", &id, &len), 0);
    CHECK(len == 3 && memcmp(id, "abc", 3) == 0);
    /* in place: the string points into the caller's bytes, not a copy */
    CHECK(id >= sbuf.data && id + len <= sbuf.data + sbuf.size);
    uint64_t retries = 0;
    CHECK_INT(zt_mp_get_uint(root, "retries", &retries), 0);
    CHECK_INT(retries, 3);

    /* refused like zt_body_parse: not a map, trailing bytes, truncated,
     * a count the bytes cannot hold, nothing */
    const unsigned char array[] = {0x91, 0x01};
    CHECK(zt_decoder_parse(dec, array, sizeof array) == NULL);
    msgpack_sbuffer_write(&sbuf, "\x00", 1);
    CHECK(zt_decoder_parse(dec, sbuf.data, sbuf.size) == NULL);
    CHECK(zt_decoder_parse(dec, sbuf.data, sbuf.size - 3) == NULL);
    const unsigned char huge[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    CHECK(zt_decoder_parse(dec, huge, sizeof huge) == NULL);
    CHECK(zt_decoder_parse(dec, NULL, 0) == NULL);

    /* a body bigger than the zone's first chunk, then a small one again */
    msgpack_sbuffer_clear(&sbuf);
    msgpack_pack_map(&pk, 2000);
    char key[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        zt_pack_kv_int(&pk, key, i);
    }
    root = zt_decoder_parse(dec, sbuf.data, sbuf.size);
    CHECK(root && root->via.map.size == 2000);
    int64_t v = -1;
    CHECK_INT(zt_mp_get_int(root, "k1999", &v), 0);
    CHECK_INT(v, 1999);
    msgpack_sbuffer_clear(&sbuf);
    msgpack_pack_map(&pk, 1);
    zt_pack_kv_cstr(&pk, "op", "ping");
    root = zt_decoder_parse(dec, sbuf.data, sbuf.size);
    CHECK(root && zt_mp_str_eq(zt_mp_get(root, "op"), "ping"));

    msgpack_sbuffer_destroy(&sbuf);
    zt_decoder_destroy(&dec);
    CHECK(dec == NULL);
    zt_decoder_destroy(&dec); /* harmless twice */
}

int main(void) {
    zt_log_setup("test_registry", ZT_LOG_WARNING, NULL);
    RUN(test_registry_add_lookup);
    RUN(test_registry_many);
    RUN(test_builtins);
    RUN(test_task_api);
    RUN(test_expand_name);
    RUN(test_pool);
    RUN(test_decoder);
    return zt_test_summary();
}
