/* test_backend: the Redis result backend (zt_backend) - url parsing, Celery's
 * meta layout, superseded states, blocking and event-loop writes, waiting for
 * a final state, the PSUBSCRIBE stream zmqbench reads, and surviving a Redis
 * restart. Each Redis test runs its own redis-server (found on PATH, or named
 * by $ZT_REDIS_SERVER) on a free loopback port. Without one those tests are
 * skipped, and say so on stderr ("SKIP ..."); with ZT_REQUIRE_REDIS=1 in the
 * environment (CI) a missing binary is a failure instead. A redis-server that
 * exists but does not start, and any backend misbehaviour against it, fail
 * the test. */
#include "zt_test.h"

#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int skipped; /* tests skipped for want of redis-server */

/* ---- a private redis-server ---- */

typedef struct {
    const char *path;
    int port;
    pid_t pid; /* -1 when not running */
    char dir[64];
} redis_t;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* $ZT_REDIS_SERVER if set (a path; empty or not executable: none), else
 * redis-server on PATH or in the usual places, or NULL. */
static const char *find_redis_server(void) {
    static char found[512];
    const char *given = getenv("ZT_REDIS_SERVER");
    if (given)
        return *given && access(given, X_OK) == 0 ? given : NULL;
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof found - 16) {
            snprintf(found, sizeof found, "%.*s/redis-server", (int)n, path);
            if (access(found, X_OK) == 0)
                return found;
        }
        path += n + (path[n] == ':');
    }
    static const char *const usual[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server"};
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++)
        if (access(usual[i], X_OK) == 0)
            return usual[i];
    return NULL;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts r->path on r->port; returns 0 once it answers PING (bounded: 5 s). */
static int redis_start(redis_t *r) {
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", r->port);
    r->pid = fork();
    if (r->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl(r->path, r->path, "--port", portstr, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", r->dir, (char *)NULL);
        _exit(127);
    }
    if (r->pid < 0)
        return -1;
    for (int i = 0; i < 250; i++) {
        redisContext *c = redisConnect("127.0.0.1", r->port);
        bool up = false;
        if (c && !c->err) {
            redisReply *reply = redisCommand(c, "PING");
            up = reply && reply->type == REDIS_REPLY_STATUS;
            if (reply)
                freeReplyObject(reply);
        }
        if (c)
            redisFree(c);
        if (up)
            return 0;
        sleep_ms(20);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
    return -1;
}

static void redis_stop(redis_t *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = -1;
}

/* Sets up and starts a server for one test. Returns true when the test can
 * go on; false when it must stop: skipped (no binary, reported) or failed
 * (the binary would not start: counted as a failure). */
static bool redis_up(redis_t *r, const char *test) {
    memset(r, 0, sizeof *r);
    r->pid = -1;
    r->path = find_redis_server();
    if (!r->path) {
        const char *require = getenv("ZT_REQUIRE_REDIS");
        if (require && *require && strcmp(require, "0") != 0) {
            fprintf(stderr, "%s: redis-server not found and ZT_REQUIRE_REDIS is set\n", test);
            CHECK(r->path != NULL);
        } else {
            fprintf(stderr,
                    "SKIP %s: redis-server not found (ZT_REQUIRE_REDIS=1 makes this a "
                    "failure)\n",
                    test);
            skipped++;
        }
        return false;
    }
    snprintf(r->dir, sizeof r->dir, "/tmp/zt-test-backend.XXXXXX");
    CHECK(mkdtemp(r->dir) != NULL);
    r->port = free_port();
    CHECK(r->port > 0);
    int rc = redis_start(r);
    if (rc != 0)
        fprintf(stderr, "%s: %s did not start on port %d\n", test, r->path, r->port);
    CHECK_INT(rc, 0);
    if (rc != 0)
        rmdir(r->dir);
    return rc == 0;
}

static void redis_down(redis_t *r) {
    redis_stop(r);
    rmdir(r->dir); /* empty: no persistence */
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

/* PUBLISHes payload on channel from a plain hiredis connection. */
static void redis_publish(int port, const char *channel, const char *payload) {
    redisContext *c = redisConnect("127.0.0.1", port);
    CHECK(c && !c->err);
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PUBLISH %s %s", channel, payload);
        CHECK(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    if (c)
        redisFree(c);
}

/* ---- without Redis ---- */

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
    CHECK(b == NULL);
    zt_backend_destroy(&b); /* harmless twice */
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

/* The subscriber calls before, and when Redis is not there. */
static void test_subscribe_unreachable(void) {
    int port = free_port(); /* nothing listens there */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", port);
    zt_backend_t *b = zt_backend_new_lazy(url, NULL);
    CHECK(b != NULL);
    if (!b)
        return;
    CHECK_INT(zt_backend_subscriber_fd(b), -1);
    int64_t before = zt_clock_mono_ms();
    CHECK_INT(zt_backend_subscribe_meta(b, 500), ZT_ERR_BACKEND);
    CHECK(zt_clock_mono_ms() - before < 2000);
    CHECK_INT(zt_backend_subscriber_fd(b), -1);
    zt_backend_destroy(&b);
}

/* The bound on held states (zt_backend_set_limit), with Redis away: the
 * oldest STARTED/PROGRESS/RETRY goes first, then the oldest result; the
 * caller hears of each dropped RETRY or result, never of the newest state. */
typedef struct {
    char ids[16][16];
    char statuses[16][12];
    int n;
} lost_log_t;

static void on_lost(const char *id, const char *status, void *arg) {
    lost_log_t *log = arg;
    if (log->n < 16) {
        snprintf(log->ids[log->n], sizeof log->ids[0], "%s", id);
        snprintf(log->statuses[log->n], sizeof log->statuses[0], "%s", status);
    }
    log->n++;
}

static void test_limit_without_redis(void) {
    int port = free_port(); /* nothing listens there */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", port);
    zt_backend_t *b = zt_backend_new_lazy(url, NULL);
    CHECK(b != NULL);
    if (!b)
        return;
    lost_log_t log = {0};
    zt_backend_set_limit(b, 3, on_lost, &log);
    CHECK_INT(zt_backend_queue_state(b, "a", "SUCCESS", NULL, NULL, 60), 0);
    CHECK_INT(zt_backend_queue_state(b, "b", "STARTED", NULL, NULL, 60), 0);
    CHECK_INT(zt_backend_queue_state(b, "c", "RETRY", NULL, NULL, 60), 0);
    CHECK_INT(zt_backend_pending(b), 3);
    /* full: the oldest spare state (b's STARTED) goes, silently */
    CHECK_INT(zt_backend_queue_state(b, "d", "SUCCESS", NULL, NULL, 60), 0);
    CHECK_INT(zt_backend_pending(b), 3);
    CHECK_INT(log.n, 0);
    /* then c's RETRY (the caller hears: a DONE waits for it), not a lost result */
    CHECK_INT(zt_backend_queue_state(b, "e", "FAILURE", NULL, NULL, 60), 0);
    CHECK_INT(log.n, 1);
    CHECK_STR(log.ids[0], "c");
    CHECK_STR(log.statuses[0], "RETRY");
    CHECK_INT(zt_backend_lost(b), 0);
    /* only results left: the oldest result goes, and counts as lost */
    CHECK_INT(zt_backend_queue_state(b, "f", "STARTED", NULL, NULL, 60), 0);
    CHECK_INT(log.n, 2);
    CHECK_STR(log.ids[1], "a");
    CHECK_STR(log.statuses[1], "SUCCESS");
    CHECK_INT(zt_backend_lost(b), 1);
    /* a newer state of f supersedes its STARTED (no drop needed) */
    CHECK_INT(zt_backend_queue_state(b, "f", "SUCCESS", NULL, NULL, 60), 0);
    CHECK_INT(zt_backend_pending(b), 3);
    CHECK_INT(log.n, 2);
    /* many more: pending stays at the bound, each result past it is lost */
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "x%d", i);
        CHECK_INT(zt_backend_queue_state(b, id, "SUCCESS", NULL, NULL, 60), 0);
    }
    CHECK_INT(zt_backend_pending(b), 3);
    CHECK_INT(zt_backend_lost(b), 101);
    CHECK_INT(log.n, 102);
    CHECK_STR(log.ids[2], "d");
    CHECK_STR(log.ids[3], "e");
    CHECK_STR(log.ids[4], "f");
    CHECK_STR(log.ids[5], "x0");
    /* sending fails (nobody listens) and keeps what is held */
    CHECK_INT(zt_backend_send(b), ZT_ERR_BACKEND);
    CHECK(!zt_backend_connected(b));
    CHECK_INT(zt_backend_pending(b), 3);
    /* a smaller bound applies at once */
    zt_backend_set_limit(b, 1, on_lost, &log);
    CHECK_INT(zt_backend_pending(b), 1);
    CHECK_INT(zt_backend_lost(b), 103);
    zt_backend_destroy(&b);
}

/* ---- against a private redis-server ---- */

static void test_backend_roundtrip(void) {
    redis_t redis;
    if (!redis_up(&redis, "test_backend_roundtrip"))
        return;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", redis.port);
    int err = -1;
    zt_backend_t *b = zt_backend_new(url, &err);
    CHECK(b != NULL);
    CHECK_INT(err, 0);
    if (!b) {
        redis_down(&redis);
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
    long long ttl = redis_ttl(redis.port, 3, "celery-task-meta-t1");
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
        sleep_ms(150);
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
    redis_stop(&redis);
    CHECK_INT(zt_backend_queue_state(b, "t6", "SUCCESS", answer, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), ZT_ERR_BACKEND);
    CHECK_INT(zt_backend_pending(b), 1);
    CHECK_INT(redis_start(&redis), 0);
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
    redis_down(&redis);
}

/* What the stream delivered, in order. */
#define SEEN_MAX 4096
typedef struct {
    int count;
    char ids[SEEN_MAX][32];
    bool success[SEEN_MAX]; /* payload opened with {"status":"SUCCESS" */
    size_t payload_len[SEEN_MAX];
} seen_t;

static void on_meta(const char *id, size_t id_len, const char *payload, size_t payload_len,
                    void *arg) {
    seen_t *seen = arg;
    static const char success[] = "{\"status\":\"SUCCESS\"";
    if (seen->count >= SEEN_MAX)
        return;
    snprintf(seen->ids[seen->count], sizeof seen->ids[0], "%.*s", (int)id_len, id);
    seen->success[seen->count] =
        payload_len >= sizeof success - 1 && memcmp(payload, success, sizeof success - 1) == 0;
    seen->payload_len[seen->count] = payload_len;
    seen->count++;
}

/* Polls the subscriber and drains it until want notices arrived (bounded:
 * 5 s). Returns 0, or the error of a drain that failed. */
static int pump_meta(zt_backend_t *b, seen_t *seen, int want) {
    int64_t deadline = zt_clock_mono_ms() + 5000;
    while (seen->count < want && zt_clock_mono_ms() < deadline) {
        struct pollfd pfd = {zt_backend_subscriber_fd(b), POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int n = zt_backend_drain_meta(b, on_meta, seen);
        if (n < 0)
            return n;
    }
    return 0;
}

static void test_subscribe_meta(void) {
    redis_t redis;
    if (!redis_up(&redis, "test_subscribe_meta"))
        return;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", redis.port);
    zt_backend_t *b = zt_backend_new(url, NULL);
    CHECK(b != NULL);
    if (!b) {
        redis_down(&redis);
        return;
    }
    seen_t *seen = zt_calloc(1, sizeof *seen);
    CHECK_INT(zt_backend_subscriber_fd(b), -1);
    CHECK_INT(zt_backend_drain_meta(b, on_meta, seen), ZT_ERR_INVALID);
    CHECK_INT(zt_backend_subscribe_meta(b, 1000), 0);
    int fd = zt_backend_subscriber_fd(b);
    CHECK(fd >= 0);
    CHECK_INT(zt_backend_subscribe_meta(b, 1000), 0); /* already: same connection */
    CHECK_INT(zt_backend_subscriber_fd(b), fd);
    CHECK_INT(zt_backend_drain_meta(b, on_meta, seen), 0); /* nothing yet, no blocking */

    /* Every state published after the confirmation arrives, in order, with
     * the id cut out of the channel and the meta as written (status first:
     * zmqbench's fast path relies on that). STARTED superseded before the
     * flush is never published. */
    json_t *answer = json_integer(7);
    json_t *started = json_pack("{s:i, s:s}", "pid", 1, "hostname", "w@h");
    CHECK_INT(zt_backend_queue_state(b, "s1", "STARTED", started, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "s1", "SUCCESS", answer, NULL, 100), 0);
    json_t *exc = zt_backend_exception("Exception", "no", "builtins");
    CHECK_INT(zt_backend_queue_state(b, "s2", "FAILURE", exc, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "s3", "STARTED", started, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    /* Not ours: a channel outside the pattern, and the bare prefix (no id). */
    redis_publish(redis.port, "other-channel", "x");
    redis_publish(redis.port, "celery-task-meta-", "{}");
    redis_publish(redis.port, "celery-task-meta-s4", "{\"status\": \"SUCCESS\"}");
    CHECK_INT(pump_meta(b, seen, 4), 0);
    CHECK_INT(seen->count, 4);
    CHECK_STR(seen->ids[0], "s1");
    CHECK(seen->success[0]);
    CHECK_STR(seen->ids[1], "s2");
    CHECK(!seen->success[1]);
    CHECK_STR(seen->ids[2], "s3");
    CHECK(!seen->success[2]);
    CHECK_STR(seen->ids[3], "s4");
    CHECK_INT(seen->payload_len[3], strlen("{\"status\": \"SUCCESS\"}"));

    /* A burst bigger than one drain reads (16 x 16 KiB): across the calls
     * nothing is lost, repeated or reordered. */
    seen->count = 0;
    char filler[1200];
    memset(filler, 'x', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    json_t *big = json_string(filler);
    int burst = 1000; /* about 1.3 MB published */
    char id[32];
    for (int i = 0; i < burst; i++) {
        snprintf(id, sizeof id, "b%d", i);
        CHECK_INT(zt_backend_queue_state(b, id, "SUCCESS", big, NULL, 100), 0);
    }
    CHECK_INT(zt_backend_flush(b), 0);
    int64_t before = zt_clock_mono_ms();
    CHECK_INT(pump_meta(b, seen, burst), 0);
    CHECK(zt_clock_mono_ms() - before < 5000);
    CHECK_INT(seen->count, burst);
    int in_order = 0;
    for (int i = 0; i < seen->count; i++) {
        snprintf(id, sizeof id, "b%d", i);
        in_order += strcmp(seen->ids[i], id) == 0 && seen->success[i];
    }
    CHECK_INT(in_order, burst);
    CHECK_INT(zt_backend_drain_meta(b, on_meta, seen), 0);

    /* Redis gone: the drain reports it and the subscription closes; once
     * Redis is back, subscribing again works. */
    redis_stop(&redis);
    struct pollfd pfd = {fd, POLLIN, 0};
    CHECK_INT(poll(&pfd, 1, 2000), 1); /* EOF is readable */
    CHECK_INT(zt_backend_drain_meta(b, on_meta, seen), ZT_ERR_BACKEND);
    CHECK_INT(zt_backend_subscriber_fd(b), -1);
    CHECK_INT(zt_backend_drain_meta(b, on_meta, seen), ZT_ERR_INVALID);
    CHECK_INT(redis_start(&redis), 0);
    CHECK_INT(zt_backend_subscribe_meta(b, 1000), 0);
    CHECK(zt_backend_subscriber_fd(b) >= 0);
    seen->count = 0;
    CHECK_INT(zt_backend_queue_state(b, "after", "SUCCESS", answer, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_INT(pump_meta(b, seen, 1), 0);
    CHECK_INT(seen->count, 1);
    CHECK_STR(seen->ids[0], "after");

    json_decref(big);
    json_decref(exc);
    json_decref(started);
    json_decref(answer);
    free(seen);
    zt_backend_destroy(&b);
    redis_down(&redis);
}

/* The subscription is server-wide: a stream opened through a url naming one
 * db sees states written through another, and a password is sent. */
static void test_subscribe_other_db(void) {
    redis_t redis;
    if (!redis_up(&redis, "test_subscribe_other_db"))
        return;
    char url_w[64], url_r[64], url_bad[80];
    snprintf(url_w, sizeof url_w, "redis://127.0.0.1:%d/1", redis.port);
    snprintf(url_r, sizeof url_r, "redis://127.0.0.1:%d/9", redis.port);
    snprintf(url_bad, sizeof url_bad, "redis://:wrong@127.0.0.1:%d/1", redis.port);
    zt_backend_t *w = zt_backend_new(url_w, NULL);
    zt_backend_t *r = zt_backend_new_lazy(url_r, NULL);
    zt_backend_t *bad = zt_backend_new_lazy(url_bad, NULL);
    CHECK(w && r && bad);
    if (w && r && bad) {
        /* No password is set: Redis refuses AUTH, and the subscribe says so. */
        CHECK_INT(zt_backend_subscribe_meta(bad, 1000), ZT_ERR_BACKEND);
        CHECK_INT(zt_backend_subscriber_fd(bad), -1);
        CHECK_INT(zt_backend_subscribe_meta(r, 1000), 0);
        json_t *v = json_true();
        CHECK_INT(zt_backend_queue_state(w, "x1", "SUCCESS", v, NULL, 100), 0);
        CHECK_INT(zt_backend_flush(w), 0);
        json_decref(v);
        seen_t *seen = zt_calloc(1, sizeof *seen);
        CHECK_INT(pump_meta(r, seen, 1), 0);
        CHECK_INT(seen->count, 1);
        CHECK_STR(seen->ids[0], "x1");
        free(seen);
    }
    zt_backend_destroy(&bad);
    zt_backend_destroy(&r);
    zt_backend_destroy(&w);
    redis_down(&redis);
}

static const char *status_of(zt_backend_t *b, const char *id, char *buf, size_t size) {
    json_t *meta = NULL;
    snprintf(buf, size, "(none)");
    if (zt_backend_get(b, id, &meta) == 0)
        snprintf(buf, size, "%s", json_string_value(json_object_get(meta, "status")));
    json_decref(meta);
    return buf;
}

/* A result is never overwritten by STARTED, PROGRESS or RETRY (a second run
 * of the task that dies half way must not hide the first run's result), also
 * when Celery wrote it with its own spacing; a result replaces anything. */
static void test_result_not_overwritten(void) {
    redis_t redis;
    if (!redis_up(&redis, "test_result_not_overwritten"))
        return;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", redis.port);
    zt_backend_t *b = zt_backend_new(url, NULL);
    CHECK(b != NULL);
    if (!b) {
        redis_down(&redis);
        return;
    }
    char buf[32];
    json_t *seven = json_integer(7);
    /* nothing there yet: STARTED is written, with its TTL */
    CHECK_INT(zt_backend_queue_state(b, "g1", "STARTED", NULL, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_STR(status_of(b, "g1", buf, sizeof buf), "STARTED");
    long long ttl = redis_ttl(redis.port, 2, "celery-task-meta-g1");
    CHECK(ttl > 90 && ttl <= 100);
    CHECK_INT(zt_backend_queue_state(b, "g1", "SUCCESS", seven, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    const char *later[] = {"STARTED", "PROGRESS", "RETRY"};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        CHECK_INT(zt_backend_queue_state(b, "g1", later[i], NULL, NULL, 100), 0);
        CHECK_INT(zt_backend_flush(b), 0);
        CHECK_STR(status_of(b, "g1", buf, sizeof buf), "SUCCESS");
    }
    /* several in one pipeline, around a result of another task */
    CHECK_INT(zt_backend_queue_state(b, "g1", "RETRY", NULL, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "g2", "SUCCESS", seven, NULL, 100), 0);
    CHECK_INT(zt_backend_queue_state(b, "g2", "PROGRESS", NULL, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_STR(status_of(b, "g1", buf, sizeof buf), "SUCCESS");
    CHECK_STR(status_of(b, "g2", buf, sizeof buf), "SUCCESS");
    /* a result replaces a result (the last run to finish wins) */
    CHECK_INT(zt_backend_queue_state(b, "g1", "FAILURE", NULL, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_STR(status_of(b, "g1", buf, sizeof buf), "FAILURE");
    CHECK_INT(zt_backend_queue_state(b, "g1", "STARTED", NULL, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_STR(status_of(b, "g1", buf, sizeof buf), "FAILURE");
    /* written by Celery (json.dumps spacing) */
    redisContext *c = redisConnect("127.0.0.1", redis.port);
    CHECK(c && !c->err);
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "SELECT 2");
        freeReplyObject(r);
        r = redisCommand(c, "SET celery-task-meta-g3 %s",
                         "{\"status\": \"REVOKED\", \"result\": null, \"task_id\": \"g3\"}");
        CHECK(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    CHECK_INT(zt_backend_queue_state(b, "g3", "PROGRESS", NULL, NULL, 100), 0);
    CHECK_INT(zt_backend_flush(b), 0);
    CHECK_STR(status_of(b, "g3", buf, sizeof buf), "REVOKED");
    json_decref(seven);
    zt_backend_destroy(&b);
    redis_down(&redis);
}

/* RUN, but a test that skipped for want of redis-server says "skip". */
static const char *outcome(int failures_before, int skipped_before) {
    if (zt_test_failures != failures_before)
        return "FAIL";
    return skipped != skipped_before ? "skip" : "ok  ";
}

#define RUN_REDIS(test_fn)                                                                         \
    do {                                                                                           \
        int failures_ = zt_test_failures, skipped_ = skipped;                                      \
        test_fn();                                                                                 \
        fprintf(stderr, "%s %s\n", outcome(failures_, skipped_), #test_fn);                        \
    } while (0)

int main(void) {
    zt_log_setup("test_backend", ZT_LOG_WARNING, NULL);
    RUN(test_backend_urls);
    RUN(test_subscribe_unreachable);
    RUN(test_limit_without_redis);
    RUN_REDIS(test_backend_roundtrip);
    RUN_REDIS(test_subscribe_meta);
    RUN_REDIS(test_subscribe_other_db);
    RUN_REDIS(test_result_not_overwritten);
    if (skipped)
        fprintf(stderr, "SKIPPED %d Redis test(s): redis-server not found\n", skipped);
    return zt_test_summary();
}
