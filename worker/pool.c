/* worker_pool: fork, feed, read and reap the children of the prefork pool.
 *
 * Channel format, both directions: a 4-byte big-endian length, then one
 * MessagePack map of that many bytes.
 *   parent -> child  {t: "run", id: str, retries: uint, body: bin}
 *   child -> parent  {t: "progress", current: float, total: float, message: str}
 *                    {t: "done", outcome: uint, result: any, exc_type: str,
 *                     exc_module: str|nil, message: str, traceback: str|nil,
 *                     countdown: float, permanent: bool, maxrss: uint}
 * The parent's ends are non-blocking and read into a per-slot buffer; a
 * child's end is blocking (it has nothing else to do). A child that breaks
 * the format is killed: it is our own code misbehaving, not a peer to argue with. */
#define _GNU_SOURCE /* pipe2, sigabbrev_np */
#include "pool.h"

#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IPC_MAX (64u << 20)   /* bytes: refuse larger channel messages */
#define WRITE_TIMEOUT_MS 5000 /* msecs an idle child gets to take a task */
#define READ_CHUNK 65536      /* bytes read per read(2) */
#define SPAWN_RETRY_MS 1000   /* msecs between attempts to fill an empty slot */
#define CHILD_FD 3            /* where a child keeps its channel */

typedef struct {
    pid_t pid;     /* 0: no child */
    int fd;        /* parent's end of the channel, -1 when none */
    bool busy;     /* a task was handed over and its DONE has not come */
    bool reaped;   /* waitpid() returned it: its pid may belong to another process now */
    int64_t tasks; /* tasks given to this child */
    char *buf;     /* unread input */
    size_t len;    /* bytes in buf */
    size_t cap;
} slot_t;

struct worker_pool {
    worker_pool_config_t config;
    char *name;
    char *logfile;
    slot_t *slots;
    int size;
    pid_t parent_pid;
    int64_t replaced;
    int64_t next_spawn_ms; /* monotonic msecs: earliest retry for empty slots */
    bool no_respawn;       /* shutting down: leave slots empty */
    zt_decoder_t *decoder; /* reused for every message (in a child: its own copy) */
    msgpack_sbuffer out;   /* reused for every message written */
};

/* The child's one piece of mutable global state: its soft-limit flag. */
static volatile sig_atomic_t g_soft_limit;

static void on_soft_limit(int sig) {
    (void)sig;
    g_soft_limit = 1;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Framing */

/* Starts a channel message in the reused buffer: 4 placeholder bytes for
 * the length. */
static void frame_begin(msgpack_sbuffer *sbuf, msgpack_packer *pk) {
    msgpack_sbuffer_clear(sbuf);
    msgpack_packer_init(pk, sbuf, msgpack_sbuffer_write);
    msgpack_sbuffer_write(sbuf, "\0\0\0\0", 4);
}

static void frame_end(msgpack_sbuffer *sbuf) {
    uint32_t n = (uint32_t)(sbuf->size - 4);
    unsigned char *p = (unsigned char *)sbuf->data;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

static uint32_t read_be32(const char *b) {
    const unsigned char *p = (const unsigned char *)b;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------------ */
/* The child */

/* Blocking write of everything; a vanished parent ends the child. */
static void child_write(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(0);
        }
        data += n;
        size -= (size_t)n;
    }
}

typedef struct {
    int fd;
    msgpack_sbuffer *out;
} child_ctx_t;

static void child_progress(void *arg, double current, double total, const char *message) {
    child_ctx_t *ctx = arg;
    msgpack_sbuffer *sbuf = ctx->out;
    msgpack_packer pk;
    frame_begin(sbuf, &pk);
    msgpack_pack_map(&pk, 4);
    zt_pack_kv_cstr(&pk, "t", "progress");
    zt_pack_kv_double(&pk, "current", current);
    zt_pack_kv_double(&pk, "total", total);
    zt_pack_kv_cstr(&pk, "message", message);
    frame_end(sbuf);
    child_write(ctx->fd, sbuf->data, sbuf->size);
}

static void child_send_done(child_ctx_t *ctx, worker_task_t *task, bool measure_memory) {
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (measure_memory)
        getrusage(RUSAGE_SELF, &ru);
    msgpack_sbuffer *sbuf = ctx->out;
    msgpack_packer pk;
    frame_begin(sbuf, &pk);
    worker_outcome_t outcome = worker_task_outcome(task);
    bool success = outcome == WORKER_OUTCOME_SUCCESS;
    msgpack_pack_map(&pk, success ? 4 : 10);
    zt_pack_kv_cstr(&pk, "t", "done");
    zt_pack_kv_uint(&pk, "outcome", (uint64_t)outcome);
    zt_pack_kv_uint(&pk, "maxrss", ru.ru_maxrss > 0 ? (uint64_t)ru.ru_maxrss : 0);
    zt_pack_cstr(&pk, "result");
    if (!success || zt_json_pack(&pk, worker_task_result(task)) != 0) {
        if (success) {
            /* Too deep to pack: report that instead of a truncated result. */
            worker_task_fail(task, "ValueError", "result nested deeper than %d levels",
                             ZT_CODEC_MAX_DEPTH);
            worker_task_finish(task, WORKER_TASK_FAILED);
            child_send_done(ctx, task, measure_memory);
            return;
        }
        msgpack_pack_nil(&pk);
    }
    if (!success) {
        zt_pack_kv_cstr(&pk, "exc_type", worker_task_exc_type(task));
        zt_pack_kv_cstr(&pk, "exc_module", worker_task_exc_module(task));
        zt_pack_kv_cstr(&pk, "message", worker_task_message(task));
        zt_pack_kv_cstr(&pk, "traceback", worker_task_traceback(task));
        zt_pack_kv_double(&pk, "countdown", worker_task_countdown(task));
        zt_pack_kv_bool(&pk, "permanent", worker_task_permanent(task));
    }
    frame_end(sbuf);
    child_write(ctx->fd, sbuf->data, sbuf->size);
}

/* Runs one "run" message. Anything malformed becomes a failed task rather
 * than a dead child, so the parent always gets a DONE. */
static void child_run(worker_pool_t *pool, int fd, const char *data, size_t size) {
    char id[ZT_ID_MAX + 1] = "";
    char name[ZT_NAME_MAX + 1] = "";
    uint64_t retries = 0;
    json_t *args = NULL, *kwargs = NULL;
    worker_task_fn_t *fn = NULL;
    const worker_task_options_t *opts = NULL;
    int max_retries = -1;
    const char *problem = NULL;
    char reason[256];
    const msgpack_object *root = zt_decoder_parse(pool->decoder, data, size);
    const msgpack_object *body = root ? zt_mp_get(root, "body") : NULL;
    const msgpack_object *task_map = NULL;
    if (!root || zt_mp_copy_str(zt_mp_get(root, "id"), id, sizeof id) != 0 ||
        zt_mp_get_uint(root, "retries", &retries) != 0 || !body ||
        body->type != MSGPACK_OBJECT_BIN) {
        problem = "malformed run message from the worker parent";
    } else if (!(task_map =
                     zt_decoder_parse(pool->decoder, body->via.bin.ptr, body->via.bin.size))) {
        /* root is gone now (decoder reused); body's bytes live in data */
        problem = "task message is not a MessagePack map";
    } else {
        zt_taskmsg_t tm;
        if (zt_taskmsg_parse(task_map, &tm, reason, sizeof reason) != 0) {
            problem = reason;
        } else {
            memcpy(name, tm.task, tm.task_len);
            name[tm.task_len] = '\0';
            fn = worker_registry_lookup(pool->config.registry, tm.task, tm.task_len, &opts);
            /* the parent's order: message, registry, configuration */
            max_retries = tm.max_retries >= 0              ? tm.max_retries
                          : opts && opts->max_retries >= 0 ? opts->max_retries
                          : pool->config.settings ? (int)pool->config.settings->task_max_retries
                                                  : -1;
            args = tm.args ? zt_mp_to_json(tm.args) : json_array();
            kwargs = tm.kwargs ? zt_mp_to_json(tm.kwargs) : json_object();
            if (!args || !kwargs)
                problem = "arguments cannot be represented as JSON";
        }
    }
    worker_task_t *task = worker_task_new(id, name, retries > 1000000 ? 1000000 : (int)retries,
                                          problem ? NULL : args, problem ? NULL : kwargs);
    if (problem) {
        json_decref(args);
        json_decref(kwargs);
    }
    child_ctx_t ctx = {fd, &pool->out};
    worker_task_set_progress_sink(task, child_progress, &ctx);
    worker_task_set_soft_limit_flag(task, &g_soft_limit);
    worker_task_set_config(task, pool->config.settings);
    worker_task_set_max_retries(task, max_retries);
    int rc;
    g_soft_limit = 0;
    if (problem)
        rc = worker_task_fail(task, "InvalidTaskError", "%s", problem);
    else if (!fn)
        rc = worker_task_fail(task, "NotRegistered", "%s", name);
    else
        rc = fn(task);
    worker_task_finish(task, rc);
    child_send_done(&ctx, task, pool->config.measure_memory);
    worker_task_destroy(&task);
}

/* Closes every descriptor from lowest up. close_range(2) where the kernel
 * has it, a loop otherwise. */
static void close_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowest; fd < max; fd++)
        close(fd);
}

/* Children run tasks: throughput work, not interactive. Under SCHED_BATCH a
 * child woken with a task does not preempt the parent on its CPU (same CPU
 * share, nice unchanged); the parent finishes handing out and reporting
 * before it yields, instead of being switched out once per task. That cut the
 * worker's context switches by a tenth under load (docs/decisions/0009).
 * Only from the default policy: a worker deliberately run with a real-time
 * or idle policy keeps it. */
static void run_as_batch_work(void) {
    if (sched_getscheduler(0) != SCHED_OTHER)
        return;
    struct sched_param param = {0};
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0)
        zt_debug("child pid %d stays SCHED_OTHER: %s", (int)getpid(), strerror(errno));
}

static void child_main(worker_pool_t *pool, int slot, int fd) __attribute__((noreturn));
static void child_main(worker_pool_t *pool, int slot, int fd) {
    /* Die with the parent, even if it is SIGKILLed. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != pool->parent_pid)
        _exit(1);

    /* The parent's handlers write to its self-pipe; none of that here.
     * Ctrl-C and Ctrl-\ reach the whole process group: the parent decides. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    int to_default[] = {SIGTERM, SIGCHLD, SIGHUP, SIGUSR2, SIGALRM};
    for (size_t i = 0; i < sizeof to_default / sizeof to_default[0]; i++)
        sigaction(to_default[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    /* No SA_RESTART: the soft limit interrupts blocking calls. */
    sa.sa_handler = on_soft_limit;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Keep only stdio, the channel and the log: the parent's ZeroMQ and Redis
     * sockets must not live on (or be written to) in here. */
    char logname[160];
    snprintf(logname, sizeof logname, "%s/child-%d", pool->name, slot);
    zt_log_setup(logname, pool->config.loglevel, NULL); /* drops the parent's log fd */
    if (fd != CHILD_FD) {
        if (dup2(fd, CHILD_FD) < 0)
            _exit(1);
        close(fd);
        fd = CHILD_FD;
    }
    close_from(CHILD_FD + 1);
    if (pool->logfile)
        zt_log_setup(logname, pool->config.loglevel, pool->logfile);
    run_as_batch_work();
    zt_debug("child pid %d ready", (int)getpid());

    /* Buffered: one read(2) usually brings a whole "run" message. */
    size_t cap = READ_CHUNK, len = 0;
    char *buf = zt_malloc(cap);
    for (;;) {
        while (len < 4 || len < 4 + (size_t)read_be32(buf)) {
            if (len >= 4) {
                uint32_t want = read_be32(buf);
                if (want == 0 || want > IPC_MAX)
                    _exit(2);
                if (cap < 4 + (size_t)want) {
                    cap = 4 + (size_t)want;
                    buf = zt_realloc(buf, cap);
                }
            }
            ssize_t n = read(fd, buf + len, cap - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(0); /* the parent closed the channel: retire */
            len += (size_t)n;
        }
        uint32_t n = read_be32(buf);
        child_run(pool, fd, buf + 4, n);
        /* The parent sends one task at a time, so nothing follows; keep it general. */
        memmove(buf, buf + 4 + n, len - 4 - n);
        len -= 4 + (size_t)n;
    }
}

/* ------------------------------------------------------------------------ */
/* The parent */

static int spawn(worker_pool_t *self, int slot) {
    slot_t *s = &self->slots[slot];
    if (self->no_respawn)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        zt_error("pool: cannot create a channel for slot %d: %s", slot, strerror(errno));
        return ZT_ERR_IO;
    }
    pid_t pid = fork();
    if (pid < 0) {
        zt_error("pool: cannot fork a child for slot %d: %s", slot, strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return ZT_ERR_IO;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(self, slot, sv[1]);
    }
    close(sv[1]);
    int flags = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, flags | O_NONBLOCK);
    s->pid = pid;
    s->fd = sv[0];
    s->busy = false;
    s->reaped = false;
    s->tasks = 0;
    s->len = 0;
    zt_debug("pool: slot %d is child pid %d", slot, (int)pid);
    return 0;
}

worker_pool_t *worker_pool_new(const worker_pool_config_t *config, int *err) {
    if (err)
        *err = ZT_ERR_INVALID;
    if (!config || config->size < 1 || config->size > 4096 || !config->registry)
        return NULL;
    worker_pool_t *self = zt_calloc(1, sizeof *self);
    self->config = *config;
    self->name = zt_strdup(config->name ? config->name : "worker");
    self->logfile = config->logfile && *config->logfile && strcmp(config->logfile, "-") != 0
                        ? zt_strdup(config->logfile)
                        : NULL;
    self->size = config->size;
    self->slots = zt_calloc((size_t)self->size, sizeof(slot_t));
    self->parent_pid = getpid();
    self->decoder = zt_decoder_new(0);
    msgpack_sbuffer_init(&self->out);
    for (int i = 0; i < self->size; i++)
        self->slots[i].fd = -1;
    int started = 0;
    for (int i = 0; i < self->size; i++)
        if (spawn(self, i) == 0)
            started++;
    if (started == 0) {
        if (err)
            *err = ZT_ERR_IO;
        worker_pool_destroy(&self);
        return NULL;
    }
    if (err)
        *err = 0;
    return self;
}

void worker_pool_destroy(worker_pool_t **self_p) {
    if (!self_p || !*self_p)
        return;
    worker_pool_t *self = *self_p;
    for (int i = 0; i < self->size; i++) {
        slot_t *s = &self->slots[i];
        if (s->fd >= 0)
            close(s->fd);
        if (s->pid > 0)
            kill(s->pid, SIGKILL);
        free(s->buf);
    }
    /* Reap them all, and retired children still on their way out; bounded,
     * since a retired child ends by itself once it sees its channel close. */
    int64_t deadline = now_ms() + 2000;
    for (;;) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid < 0)
            break; /* ECHILD: none left */
        if (pid == 0) {
            if (now_ms() > deadline)
                break;
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    free(self->slots);
    free(self->name);
    free(self->logfile);
    zt_decoder_destroy(&self->decoder);
    msgpack_sbuffer_destroy(&self->out);
    free(self);
    *self_p = NULL;
}

int worker_pool_size(const worker_pool_t *self) {
    return self->size;
}

bool worker_pool_idle(const worker_pool_t *self, int slot) {
    const slot_t *s = &self->slots[slot];
    return s->pid > 0 && s->fd >= 0 && !s->busy;
}

pid_t worker_pool_pid(const worker_pool_t *self, int slot) {
    return self->slots[slot].pid;
}

int64_t worker_pool_tasks_run(const worker_pool_t *self, int slot) {
    return self->slots[slot].tasks;
}

int64_t worker_pool_replaced(const worker_pool_t *self) {
    return self->replaced;
}

/* Writes all of data to a non-blocking channel, waiting for room as needed. */
static int parent_write(int fd, const char *data, size_t size) {
    int64_t deadline = now_ms() + WRITE_TIMEOUT_MS;
    while (size > 0) {
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            size -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return ZT_ERR_TIMEOUT;
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll(&pfd, 1, (int)left);
            continue;
        }
        return ZT_ERR_IO;
    }
    return 0;
}

int worker_pool_run(worker_pool_t *self, int slot, const char *id, int retries, const void *body,
                    size_t size) {
    if (slot < 0 || slot >= self->size || !worker_pool_idle(self, slot))
        return ZT_ERR_INVALID;
    slot_t *s = &self->slots[slot];
    msgpack_sbuffer *sbuf = &self->out;
    msgpack_packer pk;
    frame_begin(sbuf, &pk);
    msgpack_pack_map(&pk, 4);
    zt_pack_kv_cstr(&pk, "t", "run");
    zt_pack_kv_cstr(&pk, "id", id);
    zt_pack_kv_uint(&pk, "retries", retries < 0 ? 0 : (uint64_t)retries);
    zt_pack_cstr(&pk, "body");
    msgpack_pack_bin_with_body(&pk, body, size);
    frame_end(sbuf);
    int rc =
        sbuf->size - 4 > IPC_MAX ? ZT_ERR_TOO_LARGE : parent_write(s->fd, sbuf->data, sbuf->size);
    if (sbuf->alloc > 4 * READ_CHUNK) {
        /* one huge task message should not pin its buffer for good */
        msgpack_sbuffer_destroy(sbuf);
        msgpack_sbuffer_init(sbuf);
    }
    if (rc != 0) {
        zt_warn("pool: child pid %d (slot %d) cannot take a task (%s); replacing it", (int)s->pid,
                slot, zt_strerror(rc));
        /* Whatever state it is in, it is of no use now; the reaper reports it. */
        kill(s->pid, SIGKILL);
        close(s->fd);
        s->fd = -1;
        return ZT_ERR_IO;
    }
    s->busy = true;
    s->tasks++;
    return 0;
}

int worker_pool_signal(worker_pool_t *self, int slot, int sig) {
    if (slot < 0 || slot >= self->size || self->slots[slot].pid <= 0)
        return ZT_ERR_NOT_FOUND;
    return kill(self->slots[slot].pid, sig) == 0 ? 0 : ZT_ERR_NOT_FOUND;
}

void worker_pool_retire(worker_pool_t *self, int slot) {
    slot_t *s = &self->slots[slot];
    ZT_ASSERT(!s->busy);
    if (s->fd >= 0)
        close(s->fd); /* the child reads EOF and exits; reaped as a stranger */
    zt_debug("pool: retiring child pid %d (slot %d) after %lld tasks", (int)s->pid, slot,
             (long long)s->tasks);
    s->fd = -1;
    s->pid = 0;
    s->len = 0;
    self->replaced++;
    if (spawn(self, slot) != 0)
        self->next_spawn_ms = now_ms() + SPAWN_RETRY_MS;
}

void worker_pool_stop_respawning(worker_pool_t *self) {
    self->no_respawn = true;
}

int worker_pool_pollfds(const worker_pool_t *self, struct pollfd *fds, int max) {
    int n = 0;
    for (int i = 0; i < self->size && n < max; i++) {
        if (self->slots[i].fd < 0)
            continue;
        fds[n].fd = self->slots[i].fd;
        fds[n].events = POLLIN;
        fds[n].revents = 0;
        n++;
    }
    return n;
}

/* Decodes one message from slot's child and reports it. Returns false if the
 * message is malformed (the caller kills the child). */
static bool deliver(worker_pool_t *self, int slot, const char *data, size_t size,
                    worker_pool_handler_fn_t *handler, void *arg) {
    slot_t *s = &self->slots[slot];
    const msgpack_object *root = zt_decoder_parse(self->decoder, data, size);
    if (!root)
        return false;
    const msgpack_object *t = zt_mp_get(root, "t");
    worker_pool_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.slot = slot;
    ev.pid = s->pid;
    bool ok = true;
    char message[4096] = "";
    if (zt_mp_str_eq(t, "progress")) {
        ev.type = WORKER_POOL_PROGRESS;
        const msgpack_object *m = zt_mp_get(root, "message");
        if (zt_mp_get_double(root, "current", &ev.current) != 0 ||
            zt_mp_get_double(root, "total", &ev.total) != 0 ||
            (m && m->type == MSGPACK_OBJECT_STR &&
             zt_mp_copy_str(m, message, sizeof message) != 0)) {
            ok = false;
        } else if (s->busy) {
            ev.message = message;
            handler(arg, &ev);
        }
    } else if (zt_mp_str_eq(t, "done") && s->busy) {
        ev.type = WORKER_POOL_DONE;
        uint64_t outcome = 0, rss = 0;
        char exc_type[256] = "Exception", exc_module[256] = "";
        char *traceback = NULL;
        json_t *result = NULL;
        zt_mp_get_uint(root, "outcome", &outcome);
        zt_mp_get_uint(root, "maxrss", &rss);
        ev.maxrss_kib = (int64_t)(rss > INT64_MAX ? INT64_MAX : rss);
        ev.countdown = -1;
        if (outcome == WORKER_OUTCOME_SUCCESS) {
            const msgpack_object *r = zt_mp_get(root, "result");
            result = r ? zt_mp_to_json(r) : json_null();
            if (!result)
                ok = false;
        } else if (outcome == WORKER_OUTCOME_FAILURE || outcome == WORKER_OUTCOME_RETRY) {
            const msgpack_object *v;
            if ((v = zt_mp_get(root, "exc_type")))
                zt_mp_copy_str(v, exc_type, sizeof exc_type);
            if ((v = zt_mp_get(root, "exc_module")))
                zt_mp_copy_str(v, exc_module, sizeof exc_module);
            if ((v = zt_mp_get(root, "message")))
                zt_mp_copy_str(v, message, sizeof message);
            if ((v = zt_mp_get(root, "traceback")) && v->type == MSGPACK_OBJECT_STR)
                traceback = zt_strndup(v->via.str.ptr, v->via.str.size);
            zt_mp_get_double(root, "countdown", &ev.countdown);
            zt_mp_get_bool(root, "permanent", &ev.permanent);
        } else {
            ok = false;
        }
        if (ok) {
            s->busy = false; /* before the handler: it may hand over the next task */
            ev.outcome = (worker_outcome_t)outcome;
            ev.result = result;
            ev.exc_type = exc_type;
            ev.exc_module = exc_module[0] ? exc_module : NULL;
            ev.message = message;
            ev.traceback = traceback;
            handler(arg, &ev);
        }
        json_decref(result);
        free(traceback);
    } else {
        ok = false;
    }
    return ok;
}

/* Reads what the slot's channel has and delivers complete messages. Returns
 * false at end of file or on a broken channel (fd closed, child killed). */
static bool drain_slot(worker_pool_t *self, int slot, worker_pool_handler_fn_t *handler,
                       void *arg) {
    slot_t *s = &self->slots[slot];
    bool open = true;
    const char *broken = NULL;
    while (s->fd >= 0) {
        if (s->cap - s->len < READ_CHUNK) {
            s->cap = s->len + READ_CHUNK * 2;
            s->buf = zt_realloc(s->buf, s->cap);
        }
        size_t room = s->cap - s->len;
        ssize_t n = read(s->fd, s->buf + s->len, room);
        if (n > 0) {
            s->len += (size_t)n;
            if ((size_t)n < room)
                break; /* drained for now: spare the read that would say EAGAIN */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        open = false; /* EOF or ECONNRESET: the child is gone or going */
        break;
    }
    size_t off = 0;
    int fd = s->fd;
    while (s->len - off >= 4) {
        uint32_t n = read_be32(s->buf + off);
        if (n == 0 || n > IPC_MAX) {
            broken = "impossible message length";
            break;
        }
        if (s->len - off - 4 < n)
            break;
        if (!deliver(self, slot, s->buf + off + 4, n, handler, arg)) {
            broken = "malformed message";
            break;
        }
        off += 4 + n;
        if (s->fd != fd)
            return true; /* the handler replaced this child: its bytes are moot */
    }
    if (off > 0) {
        memmove(s->buf, s->buf + off, s->len - off);
        s->len -= off;
    }
    if (broken) {
        zt_error("pool: child pid %d (slot %d) sent a %s; killing it", (int)s->pid, slot, broken);
        s->len = 0;
        open = false;
    }
    if (!open && s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        /* Without its channel it is useless; make sure it ends so it is reaped. */
        if (s->pid > 0 && !s->reaped)
            kill(s->pid, SIGKILL);
    }
    return open;
}

void worker_pool_process(worker_pool_t *self, const struct pollfd *fds, int n,
                         worker_pool_handler_fn_t *handler, void *arg) {
    for (int i = 0; i < n; i++) {
        if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        for (int slot = 0; slot < self->size; slot++) {
            if (self->slots[slot].fd == fds[i].fd) {
                drain_slot(self, slot, handler, arg);
                break;
            }
        }
    }
}

static void describe_status(int status, char *buf, size_t size) {
    if (WIFSIGNALED(status)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        if (abbrev)
            snprintf(buf, size, "killed by SIG%s%s", abbrev,
                     WCOREDUMP(status) ? " (core dumped)" : "");
        else
            snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
    } else if (WIFEXITED(status)) {
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, size, "ended with wait status %#x", (unsigned)status);
    }
}

void worker_pool_reap(worker_pool_t *self, worker_pool_handler_fn_t *handler, void *arg) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        int slot = -1;
        for (int i = 0; i < self->size; i++)
            if (self->slots[i].pid == pid)
                slot = i;
        char reason[96];
        describe_status(status, reason, sizeof reason);
        if (slot < 0) {
            zt_debug("pool: retired child pid %d %s", (int)pid, reason);
            continue;
        }
        slot_t *s = &self->slots[slot];
        s->reaped = true;
        if (s->fd >= 0)
            drain_slot(self, slot, handler, arg); /* a DONE it wrote before dying counts */
        if (s->pid != pid)
            continue; /* the handler already replaced it */
        if (s->fd >= 0) {
            close(s->fd);
            s->fd = -1;
        }
        worker_pool_event_t ev;
        memset(&ev, 0, sizeof ev);
        ev.type = WORKER_POOL_LOST;
        ev.slot = slot;
        ev.pid = pid;
        ev.busy = s->busy;
        ev.wait_status = status;
        ev.reason = reason;
        s->pid = 0;
        s->busy = false;
        s->len = 0;
        self->replaced++;
        handler(arg, &ev);
        if (self->slots[slot].pid == 0 && spawn(self, slot) != 0)
            self->next_spawn_ms = now_ms() + SPAWN_RETRY_MS;
    }
    /* Slots a failed fork left empty. */
    if (self->next_spawn_ms && now_ms() >= self->next_spawn_ms) {
        self->next_spawn_ms = 0;
        for (int i = 0; i < self->size; i++)
            if (self->slots[i].pid == 0 && spawn(self, i) != 0)
                self->next_spawn_ms = now_ms() + SPAWN_RETRY_MS;
    }
}
