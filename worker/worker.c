/* worker: the zmqworker parent loop.
 *
 * One iteration: poll (broker socket, children, Redis replies, signal pipe,
 * bounded by the next timer) -> drain every ready broker message -> read every
 * child -> reap dead children -> read Redis replies -> timers (heartbeat,
 * liveness, time limits, progress, deferred STARTED) -> hand reserved tasks
 * to idle children -> write the queued states to Redis as one pipeline ->
 * send the DONEs whose states Redis has confirmed.
 *
 * Invariants:
 * - A job is RESERVED (in a reserved list) or RUNNING (in running[slot]).
 * - A job whose generation differs from self->generation came through an
 *   earlier connection ("stale"). Its end is still reported with DONE, on
 *   whatever connection is up by then: a broker that still holds the task
 *   (in flight at our old identity) accepts it and does not run the task
 *   again; one that does not know it (it restarted) ignores it
 *   (PROTOCOL.md §6.3). DONEs wait for a connection rather than being
 *   dropped while there is none.
 * - Every HELLO resets the broker's count of our credit to the free slots at
 *   that moment, so a DONE returns its slot (credit 1) only when no HELLO was
 *   sent since its task stopped being held (done_msg.hello_seq); otherwise
 *   that HELLO already counted the slot free.
 * - The credit the broker holds for us plus what we hold equals
 *   capacity = concurrency x prefetch, except during shutdown (credit only
 *   ever shrinks then). */
#define _GNU_SOURCE /* pipe2, sigabbrev_np */
#include "worker.h"

#include "pool.h"
#include "task.h"

#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_curve.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"
#include "zt_taskmsg.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define WORKER_VERSION "zmqworker 0.1.0"
#define STARTED_DELAY_MS 50 /* msecs: a task that ends sooner never gets STARTED in Redis */
/* A task that ends this soon is announced to the broker by its DONE alone
 * (PROTOCOL.md §6.3): one message fewer per short task, the broker's
 * costliest part being per message, not per byte. */
#define STARTED_NOTICE_MS 10
#define PROGRESS_INTERVAL_MS 100 /* msecs between PROGRESS updates of one task */
#define RECONNECT_MIN_MS 1000
#define RECONNECT_MAX_MS 32000
#define SHUTDOWN_BACKEND_MS 5000 /* msecs a warm shutdown waits for Redis at the end */
#define RELEASE_CHUNK 1000       /* ids per RELEASE message */
#define RETRY_DELAY_MAX 3600.0   /* seconds: cap of the exponential backoff */
#define N_PRIORITIES (ZT_PRIORITY_MAX + 1)
/* A DONE held for Redis this long (or while Redis is away) gives its slot
 * back with CREDIT at once, so intake goes on while results wait. */
#define EARLY_CREDIT_MS 200
/* Final DONEs sent are remembered this long (and at most this many), so that
 * a rejoin can send them again and a redelivery of one is answered without
 * running the task again (a restarted broker may not have seen them). */
#define SENT_KEEP_MS 30000
#define SENT_KEEP_MAX 8192

/* ------------------------------------------------------------------------ */
/* Signals: the handlers only set flags and poke the self-pipe. */

static volatile sig_atomic_t g_stop_requests; /* SIGTERM/SIGINT count */
static volatile sig_atomic_t g_cold;          /* SIGQUIT */
static volatile sig_atomic_t g_sigchld;
static volatile sig_atomic_t g_wake_fd = -1; /* write end of the self-pipe */

static void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGCHLD)
        g_sigchld = 1;
    else if (sig == SIGQUIT)
        g_cold = 1;
    else
        g_stop_requests++;
    if (g_wake_fd >= 0) {
        ssize_t n = write(g_wake_fd, "x", 1);
        (void)n; /* a full pipe already guarantees a wake-up */
    }
    errno = saved;
}

/* ------------------------------------------------------------------------ */

typedef enum { JOB_RESERVED, JOB_RUNNING } job_state_t;

typedef struct job {
    struct job *prev, *next; /* reserved list links */
    char id[ZT_ID_MAX + 1];
    char name[ZT_NAME_MAX + 1];
    char *body; /* task message bytes, until handed to a child */
    size_t body_size;
    int retries;
    int priority;
    bool redelivered;
    bool ignore_result;
    int max_retries;        /* resolved: message, registry, config */
    double retry_delay;     /* seconds, resolved */
    double time_limit;      /* seconds, 0 = none */
    double soft_time_limit; /* seconds, 0 = none */
    double expires;         /* unix seconds, 0 = never */
    job_state_t state;
    uint64_t generation;
    bool in_hash;
    int slot;
    pid_t pid;
    int64_t received_ms;
    int64_t started_ms;
    double started_wall;  /* unix seconds, for `active` */
    bool has_progress;    /* a report arrived: progress_* hold the latest */
    bool started_written; /* STARTED or PROGRESS queued for Redis */
    bool started_sent;    /* STARTED sent to the broker for this attempt */
    bool revoked;
    bool terminated;
    const char *revoke_reason; /* static string */
    bool soft_signalled;
    bool hard_killed;
    /* progress coalescing */
    int64_t progress_sent_ms;
    bool progress_pending;
    double progress_current, progress_total;
    char *progress_message;
    json_t *extended; /* result_extended fields for its results, or NULL */
} job_t;

typedef enum { DONE_SUCCESS, DONE_FAILURE, DONE_RETRY, DONE_REVOKED } done_status_t;

/* A DONE waiting for Redis to confirm its state (acks-late), then, once
 * sent, remembered for a while (the sent list). */
typedef struct done_msg {
    struct done_msg *next;
    uint64_t batch;       /* zt_backend batch holding its state; 0 = none */
    uint64_t hello_seq;   /* worker.hello_seq when its task stopped being held */
    int64_t queued_ms;    /* monotonic msecs it was queued */
    int64_t sent_ms;      /* monotonic msecs it was sent (sent list) */
    bool credit_returned; /* its slot already went back with CREDIT */
    done_status_t status;
    int retries; /* of the attempt it reports */
    double runtime;
    double countdown;
    pid_t pid; /* > 0: the task ran and no STARTED was sent: DONE says so */
    char *error;
    char *name; /* task name, for the log */
    char id[ZT_ID_MAX + 1];
} done_msg_t;

typedef enum { CONN_DOWN, CONN_HELLO_SENT, CONN_READY } conn_state_t;

struct worker {
    zt_config_t config;
    char name[256];
    char host[256];
    char **queues;
    int n_queues;
    const worker_registry_t *registry;
    int concurrency;
    int capacity; /* concurrency x prefetch */
    /* broker connection */
    zsock_t *dealer;
    void *sock;        /* raw libzmq handle of dealer */
    zt_curve_t *curve; /* CURVE keys for the broker connection; NULL = plain */
    int sock_fd;       /* its ZMQ_FD, to poll with everything else */
    conn_state_t conn;
    uint64_t generation;
    int64_t last_recv_ms;
    int64_t last_send_ms;
    int64_t reconnect_at_ms;
    int64_t reconnect_ivl_ms;
    int64_t heartbeat_ms;
    int64_t liveness;
    bool ever_welcomed;
    uint64_t hello_seq;   /* HELLOs sent so far (each resets our credit) */
    int credit_to_return; /* slots of dropped stale jobs, given back with one CREDIT */
    /* jobs */
    zhashx_t *jobs; /* id -> job_t* held, of any generation, one per id (borrowed) */
    job_t *reserved_head[N_PRIORITIES];
    job_t *reserved_tail[N_PRIORITIES];
    int n_reserved;
    job_t **running; /* [slot] */
    int n_running;
    bool *retire; /* [slot]: replace the child once it is idle */
    /* DONEs: waiting for Redis (batch order), ready to send, and sent */
    done_msg_t *done_head, *done_tail;   /* waiting, batch non-decreasing */
    done_msg_t *credit_next;             /* first waiting one whose slot is not back yet */
    done_msg_t *ready_head, *ready_tail; /* state confirmed, dropped, or none written */
    done_msg_t *sent_head, *sent_tail;   /* final DONEs sent lately, oldest first */
    zhashx_t *sent;                      /* id -> newest done_msg_t* of the sent list */
    int n_sent;
    int64_t results_lost; /* results dropped by the result buffer's bound */
    /* pool and backend */
    worker_pool_t *pool;
    zt_backend_t *backend;
    int wake_pipe[2];
    /* shutdown */
    bool warm;
    int64_t warm_since_ms;
    bool cold;
    /* counters */
    int64_t processed;
    int64_t failed;
    int64_t retried;
    int64_t iterations;  /* of the main loop: tasks per iteration is the batching factor */
    zhashx_t *per_task;  /* task name -> uint64_t* executions finished, for `stats` */
    double started_wall; /* unix seconds the worker started */
    int64_t connects;    /* HELLOs that (re)joined a broker */
    /* scratch: reused for every message, so the hot path does not allocate */
    zt_decoder_t *decoder;
    msgpack_sbuffer out;
    msgpack_packer pk;
    /* scratch for polling */
    struct pollfd *fds;
    int n_fds_max;
};

/* ------------------------------------------------------------------------ */
/* Helpers */

int worker_expand_name(const char *pattern, char *out, size_t size) {
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    const char *dot = strchr(host, '.');
    size_t n = 0;
    for (const char *p = pattern; *p; p++) {
        const char *add = NULL;
        size_t len = 1;
        char one[2] = {*p, 0};
        if (*p == '%' && p[1]) {
            p++;
            if (*p == 'h') {
                add = host;
                len = strlen(host);
            } else if (*p == 'n') {
                add = host;
                len = dot ? (size_t)(dot - host) : strlen(host);
            } else if (*p == 'd') {
                add = dot ? dot + 1 : "";
                len = strlen(add);
            } else {
                one[0] = *p; /* %% and unknown: the character itself */
                add = one;
            }
        } else {
            add = one;
        }
        if (n + len >= size)
            return ZT_ERR_TOO_LARGE;
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

static void copy_strn(char *dst, size_t size, const char *src, size_t len) {
    if (len >= size)
        len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* backoff(n) = d/2 + uniform(0, d/2), d = min(delay x 2^n, 3600): PROTOCOL.md §7. */
static double backoff(int retries, double delay) {
    double d = delay * pow(2.0, retries > 60 ? 60 : retries);
    if (d > RETRY_DELAY_MAX)
        d = RETRY_DELAY_MAX;
    return d / 2 + drand48() * (d / 2);
}

static void free_counter(void **item) {
    free(*item);
    *item = NULL;
}

static bool stale(const worker_t *self, const job_t *job) {
    return job->generation != self->generation;
}

/* ------------------------------------------------------------------------ */
/* Sending to the broker */

/* Every message to the broker is packed into one reused buffer. */
static msgpack_packer *msg_begin(worker_t *self) {
    msgpack_sbuffer_clear(&self->out);
    return &self->pk;
}

static void msg_send(worker_t *self, int cmd) {
    if (!self->sock)
        return;
    if (zt_proto_send(self->sock, NULL, 0, cmd, self->out.data, self->out.size, NULL, 0) != 0)
        zt_warn("cannot send %s to the broker: %s", zt_cmd_name(cmd), zmq_strerror(errno));
    self->last_send_ms = zt_clock_mono_ms();
}

static int held(const worker_t *self) {
    return self->n_reserved + self->n_running;
}

/* HELLO announces us with the credit we can take now. rejoin: it starts a
 * (re)registration and a WELCOME is awaited; otherwise it only replaces the
 * registration's credit (PROTOCOL.md §6.1), as a warm shutdown does with 0. */
static void send_hello(worker_t *self, bool rejoin) {
    int credit = self->warm || self->cold ? 0 : self->capacity - held(self);
    if (credit < 0)
        credit = 0;
    msgpack_packer *pk = msg_begin(self);
    msgpack_pack_map(pk, 8);
    zt_pack_kv_cstr(pk, "name", self->name);
    zt_pack_kv_cstr(pk, "host", self->host);
    zt_pack_kv_uint(pk, "pid", (uint64_t)getpid());
    zt_pack_cstr(pk, "queues");
    msgpack_pack_array(pk, (size_t)self->n_queues);
    for (int i = 0; i < self->n_queues; i++)
        zt_pack_cstr(pk, self->queues[i]);
    zt_pack_kv_uint(pk, "concurrency", (uint64_t)self->concurrency);
    zt_pack_kv_uint(pk, "credit", (uint64_t)credit);
    zt_pack_cstr(pk, "tasks");
    size_t n = worker_registry_size(self->registry);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        zt_pack_cstr(pk, worker_registry_name(self->registry, i));
    zt_pack_kv_cstr(pk, "version", WORKER_VERSION);
    msg_send(self, ZT_CMD_HELLO);
    self->hello_seq++;
    if (rejoin) {
        self->conn = CONN_HELLO_SENT;
        self->connects++;
    }
    self->credit_to_return = 0; /* the HELLO's credit already counts every free slot */
    zt_debug("HELLO sent with credit %d", credit);
}

static void send_started(worker_t *self, const char *id, pid_t pid) {
    msgpack_packer *pk = msg_begin(self);
    msgpack_pack_map(pk, 2);
    zt_pack_kv_cstr(pk, "id", id);
    zt_pack_kv_uint(pk, "pid", (uint64_t)pid);
    msg_send(self, ZT_CMD_STARTED);
}

/* Tells the broker a running task started, once per attempt. Held back for
 * STARTED_NOTICE_MS (see check_jobs), so most short tasks never need it. */
static void announce_started(worker_t *self, job_t *job) {
    if (job->started_sent || job->state != JOB_RUNNING || stale(self, job))
        return;
    send_started(self, job->id, job->pid);
    job->started_sent = true;
}

static void send_progress(worker_t *self, const job_t *job) {
    msgpack_packer *pk = msg_begin(self);
    msgpack_pack_map(pk, 4);
    zt_pack_kv_cstr(pk, "id", job->id);
    zt_pack_kv_double(pk, "current", job->progress_current);
    zt_pack_kv_double(pk, "total", job->progress_total);
    zt_pack_kv_cstr(pk, "message", job->progress_message ? job->progress_message : "");
    msg_send(self, ZT_CMD_PROGRESS);
}

static void send_release(worker_t *self, const char **ids, int n) {
    if (n == 0 || self->conn == CONN_DOWN)
        return;
    msgpack_packer *pk = msg_begin(self);
    msgpack_pack_map(pk, 1);
    zt_pack_cstr(pk, "ids");
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        zt_pack_cstr(pk, ids[i]);
    msg_send(self, ZT_CMD_RELEASE);
}

static void send_simple(worker_t *self, int cmd) {
    msgpack_packer *pk = msg_begin(self);
    if (cmd == ZT_CMD_HEARTBEAT) {
        msgpack_pack_map(pk, 2);
        zt_pack_kv_uint(pk, "active", (uint64_t)self->n_running);
        zt_pack_kv_uint(pk, "processed", (uint64_t)self->processed);
    } else {
        msgpack_pack_map(pk, 0);
    }
    msg_send(self, cmd);
}

static void send_credit(worker_t *self) {
    if (self->credit_to_return <= 0 || self->conn == CONN_DOWN)
        return;
    msgpack_packer *pk = msg_begin(self);
    msgpack_pack_map(pk, 1);
    zt_pack_kv_uint(pk, "credit", (uint64_t)self->credit_to_return);
    msg_send(self, ZT_CMD_CREDIT);
    self->credit_to_return = 0;
}

static const char *done_status_name(done_status_t s) {
    switch (s) {
    case DONE_SUCCESS:
        return "success";
    case DONE_FAILURE:
        return "failure";
    case DONE_RETRY:
        return "retry";
    case DONE_REVOKED:
        return "revoked";
    }
    return "failure";
}

static void send_done(worker_t *self, const done_msg_t *d) {
    /* A HELLO sent since the task stopped being held counted its slot free. */
    bool give_credit =
        !self->warm && !self->cold && d->hello_seq == self->hello_seq && !d->credit_returned;
    msgpack_packer *pk = msg_begin(self);
    int fields = 3 + (d->error != NULL) + (d->status == DONE_RETRY) + give_credit + (d->pid > 0);
    msgpack_pack_map(pk, (size_t)fields);
    zt_pack_kv_cstr(pk, "id", d->id);
    zt_pack_kv_cstr(pk, "status", done_status_name(d->status));
    zt_pack_kv_double(pk, "runtime", d->runtime);
    if (d->error)
        zt_pack_kv_cstr(pk, "error", d->error);
    if (d->status == DONE_RETRY)
        zt_pack_kv_double(pk, "countdown", d->countdown);
    if (give_credit)
        zt_pack_kv_uint(pk, "credit", 1);
    if (d->pid > 0)
        zt_pack_kv_uint(pk, "pid", (uint64_t)d->pid);
    msg_send(self, ZT_CMD_DONE);
}

static void done_free(done_msg_t *d) {
    free(d->error);
    free(d->name);
    free(d);
}

static void done_append(done_msg_t **head, done_msg_t **tail, done_msg_t *d) {
    d->next = NULL;
    if (*tail)
        (*tail)->next = d;
    else
        *head = d;
    *tail = d;
}

static void free_done_list(done_msg_t *d) {
    while (d) {
        done_msg_t *next = d->next;
        done_free(d);
        d = next;
    }
}

/* Forgets sent DONEs older than SENT_KEEP_MS, or beyond SENT_KEEP_MAX. */
static void trim_sent(worker_t *self, int64_t now) {
    while (self->sent_head &&
           (self->n_sent > SENT_KEEP_MAX || now - self->sent_head->sent_ms > SENT_KEEP_MS)) {
        done_msg_t *d = self->sent_head;
        self->sent_head = d->next;
        if (!self->sent_head)
            self->sent_tail = NULL;
        if (zhashx_lookup(self->sent, d->id) == d)
            zhashx_delete(self->sent, d->id);
        self->n_sent--;
        done_free(d);
    }
}

/* Sends one DONE and keeps a final one on the sent list. */
static void send_and_keep(worker_t *self, done_msg_t *d, int64_t now) {
    send_done(self, d);
    if (d->status == DONE_RETRY) {
        /* not kept: sent again, it would count a retry twice */
        done_free(d);
        return;
    }
    d->sent_ms = now;
    done_append(&self->sent_head, &self->sent_tail, d);
    zhashx_update(self->sent, d->id, d);
    self->n_sent++;
    trim_sent(self, now);
}

/* Sends the DONEs whose states Redis has confirmed (or that wrote none, or
 * whose state was dropped), in order. Without a connection they wait: a task
 * that finished while the broker was away is reported after the next HELLO,
 * so the broker does not run it again. */
static void send_ready_dones(worker_t *self) {
    if (self->conn == CONN_DOWN)
        return;
    int64_t now = zt_clock_mono_ms();
    uint64_t acked = zt_backend_acked(self->backend);
    while (self->done_head && self->done_head->batch <= acked) {
        done_msg_t *d = self->done_head;
        self->done_head = d->next;
        if (!self->done_head)
            self->done_tail = NULL;
        if (self->credit_next == d)
            self->credit_next = d->next;
        done_append(&self->ready_head, &self->ready_tail, d);
    }
    while (self->ready_head) {
        done_msg_t *d = self->ready_head;
        self->ready_head = d->next;
        if (!self->ready_head)
            self->ready_tail = NULL;
        send_and_keep(self, d, now);
    }
}

/* Gives back, with CREDIT, the slots of DONEs that wait for Redis while it
 * is away or slow: the broker keeps those tasks in flight here (they are
 * redelivered if this worker dies), and the worker keeps taking work. */
static void return_waiting_credit(worker_t *self, int64_t now) {
    done_msg_t *d = self->credit_next;
    if (!d || (zt_backend_connected(self->backend) && now - d->queued_ms < EARLY_CREDIT_MS))
        return;
    bool can = self->conn != CONN_DOWN && !self->warm && !self->cold;
    for (; d; d = d->next) {
        /* a HELLO sent since counted the slot free already */
        if (can && d->hello_seq == self->hello_seq)
            self->credit_to_return++;
        d->credit_returned = true;
        /* its DONE may wait long: the broker learns now that the task ran */
        if (d->pid > 0 && self->conn != CONN_DOWN && d->hello_seq == self->hello_seq) {
            send_started(self, d->id, d->pid);
            d->pid = 0;
        }
    }
    self->credit_next = NULL;
}

/* Sends the final DONEs of the sent list again (after a rejoin): the broker
 * may have restarted without seeing them, and holds those tasks again. A
 * broker that does not hold one ignores it. No credit: the HELLO counted it. */
static void resend_kept_dones(worker_t *self) {
    int64_t now = zt_clock_mono_ms();
    trim_sent(self, now);
    int n = 0;
    for (done_msg_t *d = self->sent_head; d; d = d->next) {
        bool saved = d->credit_returned;
        d->credit_returned = true;
        send_done(self, d);
        d->credit_returned = saved;
        n++;
    }
    if (n)
        zt_info("sent the DONEs of %d tasks finished in the last %d s again", n,
                SENT_KEEP_MS / 1000);
}

/* ------------------------------------------------------------------------ */
/* Jobs */

static void job_free(job_t *job) {
    json_decref(job->extended);
    free(job->body);
    free(job->progress_message);
    free(job);
}

static void reserved_push(worker_t *self, job_t *job, bool front) {
    int p = job->priority;
    job->state = JOB_RESERVED;
    job->prev = job->next = NULL;
    if (front) {
        job->next = self->reserved_head[p];
        if (job->next)
            job->next->prev = job;
        else
            self->reserved_tail[p] = job;
        self->reserved_head[p] = job;
    } else {
        job->prev = self->reserved_tail[p];
        if (job->prev)
            job->prev->next = job;
        else
            self->reserved_head[p] = job;
        self->reserved_tail[p] = job;
    }
    self->n_reserved++;
}

static void reserved_remove(worker_t *self, job_t *job) {
    int p = job->priority;
    if (job->prev)
        job->prev->next = job->next;
    else
        self->reserved_head[p] = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        self->reserved_tail[p] = job->prev;
    job->prev = job->next = NULL;
    self->n_reserved--;
}

/* Highest priority first, FIFO within a priority. */
static job_t *reserved_pop(worker_t *self) {
    for (int p = ZT_PRIORITY_MAX; p >= 0; p--) {
        job_t *job = self->reserved_head[p];
        if (job) {
            reserved_remove(self, job);
            return job;
        }
    }
    return NULL;
}

/* Forgets a job that is no longer reserved nor running. */
static void job_forget(worker_t *self, job_t *job) {
    if (job->in_hash)
        zhashx_delete(self->jobs, job->id);
    job_free(job);
}

/* A slot the current HELLO counted as taken was freed without a DONE to
 * return it: give it back with CREDIT. */
static void return_slot(worker_t *self) {
    if (self->conn != CONN_DOWN && !self->warm && !self->cold)
        self->credit_to_return++;
}

/* Queues a state for Redis unless the task ignores results. extended: the
 * result_extended fields (NULL: none; results only, as Celery does).
 * Returns the batch its DONE must wait for (0 when nothing was written). */
static uint64_t write_state(worker_t *self, const char *id, bool ignore_result, const char *status,
                            const json_t *result, const char *traceback, const json_t *extended) {
    if (ignore_result)
        return 0;
    uint64_t batch = zt_backend_next_batch(self->backend);
    int rc = zt_backend_queue_state_ext(self->backend, id, status, result, traceback,
                                        self->config.result_expires, extended);
    if (rc != 0) {
        /* Only a result jansson cannot encode gets here: record that instead. */
        json_t *exc = zt_backend_exception("EncodeError", "result cannot be encoded as JSON",
                                           "kombu.exceptions");
        rc = zt_backend_queue_state_ext(self->backend, id, "FAILURE", exc, NULL,
                                        self->config.result_expires, extended);
        json_decref(exc);
        if (rc != 0)
            return 0;
    }
    return batch;
}

/* Queues the DONE of a task that is no longer held (called as it stops
 * being held: the HELLO count taken here decides its credit). batch 0: no
 * state to wait for. */
static done_msg_t *queue_done(worker_t *self, const char *id, const char *name, int retries,
                              uint64_t batch, done_status_t status, double runtime,
                              double countdown, const char *error) {
    done_msg_t *d = zt_calloc(1, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    d->name = zt_strdup(name);
    d->retries = retries;
    d->hello_seq = self->hello_seq;
    d->queued_ms = zt_clock_mono_ms();
    d->batch = batch;
    d->status = status;
    d->runtime = runtime;
    d->countdown = countdown;
    d->error = error ? zt_strdup(error) : NULL;
    if (batch == 0 || batch <= zt_backend_acked(self->backend)) {
        done_append(&self->ready_head, &self->ready_tail, d);
        return d;
    }
    done_append(&self->done_head, &self->done_tail, d);
    if (!self->credit_next)
        self->credit_next = d;
    return d;
}

/* zt_backend_lost_fn: the result buffer's bound dropped a state a DONE waits
 * for. The task did finish: its DONE goes out now; a lost result is said
 * loudly and counted. */
static void on_state_lost(const char *id, const char *status, void *arg) {
    worker_t *self = arg;
    done_msg_t *prev = NULL, *d = self->done_head;
    while (d && strcmp(d->id, id) != 0) {
        prev = d;
        d = d->next;
    }
    bool result = zt_backend_state_is_final(status);
    if (result)
        self->results_lost++;
    if (!d) {
        if (result)
            zt_warn("result of task [%s] lost (%s): more than %lld result writes held while "
                    "redis is away",
                    id, status, (long long)self->config.result_buffer_max);
        return;
    }
    if (result)
        zt_warn("result of %s[%s] lost (%s): more than %lld result writes held while redis is "
                "away; the task is reported done",
                d->name, id, status, (long long)self->config.result_buffer_max);
    else
        zt_debug("state %s of %s[%s] dropped: the result buffer is full", status, d->name, id);
    if (prev)
        prev->next = d->next;
    else
        self->done_head = d->next;
    if (self->done_tail == d)
        self->done_tail = prev;
    if (self->credit_next == d)
        self->credit_next = d->next;
    d->batch = 0;
    done_append(&self->ready_head, &self->ready_tail, d);
}

/* Records REVOKED for a task that will not (or no longer) run. */
static done_msg_t *record_revoked(worker_t *self, const char *id, const char *name, int retries,
                                  bool ignore_result, const char *reason, double runtime,
                                  const json_t *extended) {
    json_t *exc = zt_backend_exception("TaskRevokedError", reason, "celery.exceptions");
    uint64_t batch = write_state(self, id, ignore_result, "REVOKED", exc, NULL, extended);
    json_decref(exc);
    done_msg_t *d = queue_done(self, id, name, retries, batch, DONE_REVOKED, runtime, 0, NULL);
    zt_info("task revoked: %s[%s] (%s)", name, id, reason);
    return d;
}

typedef struct {
    worker_outcome_t outcome;
    const json_t *result;
    const char *exc_type;
    const char *exc_module;
    const char *message;
    const char *traceback;
    double countdown;
    bool permanent; /* worker_task_fail_permanently: never retried */
} outcome_t;

/* Decides what a finished attempt means (success, retry, failure, revoked),
 * records it in Redis and queues its DONE, which it returns. */
static done_msg_t *record_outcome(worker_t *self, job_t *job, const outcome_t *o, double runtime) {
    if (job->revoked)
        return record_revoked(self, job->id, job->name, job->retries, job->ignore_result,
                              job->revoke_reason ? job->revoke_reason : "revoked", runtime,
                              job->extended);
    uint64_t *count = zhashx_lookup(self->per_task, job->name);
    if (!count) {
        count = zt_calloc(1, sizeof *count);
        zhashx_insert(self->per_task, job->name, count);
    }
    (*count)++;
    if (o->outcome == WORKER_OUTCOME_SUCCESS) {
        uint64_t batch = write_state(self, job->id, job->ignore_result, "SUCCESS", o->result, NULL,
                                     job->extended);
        self->processed++;
        zt_info("task succeeded: %s[%s] in %.3fs", job->name, job->id, runtime);
        return queue_done(self, job->id, job->name, job->retries, batch, DONE_SUCCESS, runtime, 0,
                          NULL);
    }
    const char *exc_type = o->exc_type ? o->exc_type : "Exception";
    const char *exc_module = o->exc_module;
    const char *message = o->message ? o->message : "";
    char error[4400];
    bool retryable = !o->permanent && strcmp(exc_type, "NotRegistered") != 0 &&
                     strcmp(exc_type, "InvalidTaskError") != 0;
    if (retryable && job->retries < job->max_retries) {
        double countdown = o->outcome == WORKER_OUTCOME_RETRY && o->countdown >= 0
                               ? o->countdown
                               : backoff(job->retries, job->retry_delay);
        snprintf(error, sizeof error, "%.200s: %.4000s", exc_type, message);
        json_t *exc = zt_backend_exception(exc_type, message, exc_module);
        uint64_t batch = write_state(self, job->id, job->ignore_result, "RETRY", exc, o->traceback,
                                     job->extended);
        json_decref(exc);
        self->retried++;
        zt_info("task retry: %s[%s] in %.3fs: %s (retry %d of %d in %.3fs)", job->name, job->id,
                runtime, error, job->retries + 1, job->max_retries, countdown);
        return queue_done(self, job->id, job->name, job->retries, batch, DONE_RETRY, runtime,
                          countdown, error);
    }
    char max_message[4400];
    if (o->outcome == WORKER_OUTCOME_RETRY) {
        /* Asked for a retry with none left: Celery's MaxRetriesExceededError. */
        snprintf(max_message, sizeof max_message,
                 "Can't retry %s[%s]: max retries (%d) exceeded: %s", job->name, job->id,
                 job->max_retries, message);
        exc_type = "MaxRetriesExceededError";
        exc_module = "celery.exceptions";
        message = max_message;
    }
    snprintf(error, sizeof error, "%.200s: %.4000s", exc_type, message);
    json_t *exc = zt_backend_exception(exc_type, message, exc_module);
    uint64_t batch =
        write_state(self, job->id, job->ignore_result, "FAILURE", exc, o->traceback, job->extended);
    json_decref(exc);
    self->processed++;
    self->failed++;
    zt_info("task failed: %s[%s] in %.3fs: %s", job->name, job->id, runtime, error);
    return queue_done(self, job->id, job->name, job->retries, batch, DONE_FAILURE, runtime, 0,
                      error);
}

/* Reports a finished attempt (record_outcome) and frees the job. */
static void finish_job(worker_t *self, job_t *job, const outcome_t *o) {
    double runtime =
        job->started_ms ? (double)(zt_clock_mono_ms() - job->started_ms) / 1000.0 : 0.0;
    if (job->progress_pending && !stale(self, job)) {
        announce_started(self, job); /* a start before its progress (PROTOCOL.md §6.3) */
        send_progress(self, job);    /* the last report always reaches the broker */
        job->progress_pending = false;
    }
    /* ran, but too briefly to have been announced: its DONE carries the pid */
    pid_t unannounced =
        job->state == JOB_RUNNING && !job->started_sent && !stale(self, job) ? job->pid : 0;
    done_msg_t *d = record_outcome(self, job, o, runtime);
    d->pid = unannounced;
    job_forget(self, job);
}

static void fail_job(worker_t *self, job_t *job, const char *exc_type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_job(worker_t *self, job_t *job, const char *exc_type, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    char traceback[1600];
    snprintf(traceback, sizeof traceback,
             "%.100s: %.1000s\n  reported by worker %.100s for %.100s[%.100s], attempt %d\n",
             exc_type, message, self->name, job->name, job->id, job->retries + 1);
    outcome_t o = {WORKER_OUTCOME_FAILURE,
                   NULL,
                   exc_type,
                   worker_exc_module(exc_type),
                   message,
                   traceback,
                   -1,
                   false};
    finish_job(self, job, &o);
}

/* Emits a held progress report: broker PROGRESS and Redis PROGRESS. */
static void emit_progress(worker_t *self, job_t *job) {
    job->progress_pending = false;
    job->progress_sent_ms = zt_clock_mono_ms();
    announce_started(self, job); /* the broker hears of a start before its progress */
    if (!stale(self, job))
        send_progress(self, job);
    json_t *r = json_object();
    json_object_set_new(r, "current", json_real(job->progress_current));
    json_object_set_new(r, "total", json_real(job->progress_total));
    json_object_set_new(r, "message",
                        json_string(job->progress_message ? job->progress_message : ""));
    if (!json_object_get(r, "message"))
        json_object_set_new(r, "message", json_string(""));
    write_state(self, job->id, job->ignore_result, "PROGRESS", r, NULL, NULL);
    json_decref(r);
    job->started_written = true; /* a later STARTED must not overwrite PROGRESS */
}

/* ------------------------------------------------------------------------ */
/* Pool events */

static void on_pool_event(void *arg, const worker_pool_event_t *ev) {
    worker_t *self = arg;
    job_t *job = self->running[ev->slot];
    switch (ev->type) {
    case WORKER_POOL_PROGRESS:
        if (!job)
            return;
        job->progress_current = ev->current;
        job->progress_total = ev->total;
        free(job->progress_message);
        job->progress_message = zt_strdup(ev->message ? ev->message : "");
        job->progress_pending = true;
        job->has_progress = true;
        if (zt_clock_mono_ms() - job->progress_sent_ms >= PROGRESS_INTERVAL_MS)
            emit_progress(self, job);
        return;
    case WORKER_POOL_DONE: {
        if (!job)
            return;
        self->running[ev->slot] = NULL;
        self->n_running--;
        outcome_t o = {ev->outcome, ev->result,    ev->exc_type,  ev->exc_module,
                       ev->message, ev->traceback, ev->countdown, ev->permanent};
        int64_t max_tasks = self->config.worker_max_tasks_per_child;
        int64_t max_kib = self->config.worker_max_memory_per_child;
        if (job->terminated ||
            (max_tasks > 0 && worker_pool_tasks_run(self->pool, ev->slot) >= max_tasks))
            self->retire[ev->slot] = true;
        if (max_kib > 0 && ev->maxrss_kib > max_kib) {
            zt_info("child pid %d uses %lld KiB (limit %lld); replacing it", (int)ev->pid,
                    (long long)ev->maxrss_kib, (long long)max_kib);
            self->retire[ev->slot] = true;
        }
        finish_job(self, job, &o);
        return;
    }
    case WORKER_POOL_LOST:
        self->retire[ev->slot] = false;
        if (!job) {
            if (!self->cold)
                zt_warn("child pid %d (slot %d) %s while idle; replaced", (int)ev->pid, ev->slot,
                        ev->reason);
            return;
        }
        self->running[ev->slot] = NULL;
        self->n_running--;
        if (job->revoked) {
            outcome_t o = {WORKER_OUTCOME_FAILURE, NULL, NULL, NULL, NULL, NULL, -1, false};
            finish_job(self, job, &o);
        } else if (job->hard_killed) {
            zt_warn("child pid %d killed at the hard time limit of %s[%s]; replaced", (int)ev->pid,
                    job->name, job->id);
            fail_job(self, job, "TimeLimitExceeded",
                     "task exceeded its hard time limit of %gs (child pid %d killed)",
                     job->time_limit, (int)ev->pid);
        } else {
            zt_warn("child pid %d %s while running %s[%s]; replaced", (int)ev->pid, ev->reason,
                    job->name, job->id);
            fail_job(self, job, "WorkerLostError", "child pid %d %s", (int)ev->pid, ev->reason);
        }
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Broker messages */

/* Celery's result_extended fields of a task (stored with its results, so a
 * monitor can show and retry a finished task): {name, args, kwargs, worker,
 * retries, queue}. tm borrows from the worker's decoder: converted now. */
static json_t *extended_fields(worker_t *self, const job_t *job, const zt_taskmsg_t *tm) {
    json_t *args = tm->args ? zt_mp_to_json(tm->args) : NULL;
    json_t *kwargs = tm->kwargs ? zt_mp_to_json(tm->kwargs) : NULL;
    json_t *ext = json_object();
    json_object_set_new(ext, "name", json_string(job->name));
    json_object_set_new(ext, "args", args ? args : json_array());
    json_object_set_new(ext, "kwargs", kwargs ? kwargs : json_object());
    json_object_set_new(ext, "worker", json_string(self->name));
    json_object_set_new(ext, "retries", json_integer(job->retries));
    json_t *queue = json_stringn(tm->queue, tm->queue_len);
    json_object_set_new(ext, "queue", queue ? queue : json_null());
    return ext;
}

static void on_dispatch(worker_t *self, const void *body, size_t size, const void *extra,
                        size_t extra_size) {
    char id[ZT_ID_MAX + 1];
    char revoked[64] = "";
    uint64_t retries = 0;
    bool redelivered = false;
    const msgpack_object *d = extra ? zt_decoder_parse(self->decoder, extra, extra_size) : NULL;
    if (!d || zt_mp_copy_str(zt_mp_get(d, "id"), id, sizeof id) != 0 ||
        !zt_taskmsg_valid_id(id, strlen(id))) {
        zt_warn("broker sent a DISPATCH without a readable delivery id; ignored");
        return;
    }
    int rc = zt_mp_get_uint(d, "retries", &retries);
    if (rc != 0 && rc != ZT_ERR_NOT_FOUND)
        retries = 0;
    (void)zt_mp_get_bool(d, "redelivered", &redelivered);
    const msgpack_object *rv = zt_mp_get(d, "revoked");
    if (rv && rv->type == MSGPACK_OBJECT_STR)
        zt_mp_copy_str(rv, revoked, sizeof revoked);
    /* d is invalid from here: the decoder is reused for the body */

    job_t *job = zt_calloc(1, sizeof *job);
    snprintf(job->id, sizeof job->id, "%s", id);
    snprintf(job->name, sizeof job->name, "?");
    job->retries = retries > 1000000 ? 1000000 : (int)retries;
    job->redelivered = redelivered;
    job->generation = self->generation;
    job->slot = -1;
    job->received_ms = zt_clock_mono_ms();

    const msgpack_object *root = zt_decoder_parse(self->decoder, body, size);
    zt_taskmsg_t tm;
    char reason[256] = "not a MessagePack map";
    bool parsed = root && zt_taskmsg_parse(root, &tm, reason, sizeof reason) == 0;
    const worker_task_options_t *opts = NULL;
    worker_task_fn_t *fn = NULL;
    if (parsed) {
        copy_strn(job->name, sizeof job->name, tm.task, tm.task_len);
        job->priority = tm.priority;
        job->ignore_result = tm.ignore_result;
        job->expires = tm.expires;
        fn = worker_registry_lookup(self->registry, tm.task, tm.task_len, &opts);
        job->max_retries = tm.max_retries >= 0              ? tm.max_retries
                           : opts && opts->max_retries >= 0 ? opts->max_retries
                                                            : (int)self->config.task_max_retries;
        job->retry_delay = tm.retry_delay >= 0              ? tm.retry_delay
                           : opts && opts->retry_delay >= 0 ? opts->retry_delay
                                                            : self->config.task_default_retry_delay;
        job->time_limit = tm.time_limit > 0              ? tm.time_limit
                          : opts && opts->time_limit > 0 ? opts->time_limit
                                                         : self->config.task_time_limit;
        job->soft_time_limit = tm.soft_time_limit > 0 ? tm.soft_time_limit
                               : opts && opts->soft_time_limit > 0
                                   ? opts->soft_time_limit
                                   : self->config.task_soft_time_limit;
        if (self->config.result_extended && !job->ignore_result)
            job->extended = extended_fields(self, job, &tm);
    }

    /* Tombstone: record REVOKED without running (PROTOCOL.md §6.2). */
    if (revoked[0]) {
        record_revoked(self, job->id, job->name, job->retries, job->ignore_result, revoked, 0,
                       job->extended);
        job_free(job);
        return;
    }

    job_t *old = zhashx_lookup(self->jobs, id);
    if (old) {
        if (!stale(self, old)) {
            zt_warn("broker dispatched %s[%s] again while it is held here; ignored", job->name, id);
            job_free(job);
            return;
        }
        /* Redelivered (our old identity was declared dead) while the copy
         * that came through an earlier connection is still here. */
        if (old->state == JOB_RUNNING) {
            /* Let the running copy answer for this delivery: it becomes the
             * current connection's job (STARTED now, its DONE later, which
             * the broker matches by id); the credit this DISPATCH took goes
             * back, as the running copy's slot is returned by its DONE. */
            zt_info("task %s[%s] redelivered while it runs here; the running copy answers",
                    old->name, id);
            old->generation = self->generation;
            old->started_sent = false;
            announce_started(self, old);
            return_slot(self);
            job_free(job);
            return;
        }
        /* Not started: the broker's new delivery replaces it. */
        reserved_remove(self, old);
        job_forget(self, old);
        return_slot(self);
    } else if (redelivered && zhashx_size(self->sent)) {
        /* A broker that restarted (or lost our DONE) sends back a task that
         * finished here: its state is in Redis already, so report it again
         * rather than run it again. */
        const done_msg_t *sent = zhashx_lookup(self->sent, id);
        if (sent && sent->retries == job->retries) {
            zt_info("task %s[%s] redelivered, but it finished here already (%s); reporting it "
                    "again instead of running it",
                    job->name, id, done_status_name(sent->status));
            queue_done(self, id, job->name, job->retries, 0, sent->status, sent->runtime, 0,
                       sent->error);
            job_free(job);
            return;
        }
    }

    if (self->warm) {
        /* Shutting down: hand it straight back. */
        const char *ids[1] = {job->id};
        send_release(self, ids, 1);
        zt_info("task released (shutting down): %s[%s]", job->name, job->id);
        job_free(job);
        return;
    }

    zt_info("task received: %s[%s] retries=%d%s", job->name, job->id, job->retries,
            job->redelivered ? " redelivered" : "");
    if (!parsed) {
        fail_job(self, job, "InvalidTaskError", "invalid task message: %s", reason);
        return;
    }
    if (!fn) {
        job->max_retries = 0;
        fail_job(self, job, "NotRegistered", "%s", job->name);
        return;
    }
    job->body = zt_malloc(size);
    memcpy(job->body, body, size);
    job->body_size = size;
    zhashx_insert(self->jobs, job->id, job);
    job->in_hash = true;
    reserved_push(self, job, false);
}

static int signal_by_name(const char *name) {
    if (!name || !*name)
        return SIGTERM;
    const char *n = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
    static const struct {
        const char *name;
        int sig;
    } table[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},
                 {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(n, table[i].name) == 0)
            return table[i].sig;
    char *end;
    long v = strtol(name, &end, 10);
    if (end != name && *end == '\0' && v > 0 && v < 65)
        return (int)v;
    return -1;
}

static void on_revoke(worker_t *self, const msgpack_object *root) {
    char id[ZT_ID_MAX + 1];
    char signame[32] = "";
    bool terminate = false;
    if (zt_mp_copy_str(zt_mp_get(root, "id"), id, sizeof id) != 0) {
        zt_warn("broker sent a REVOKE without an id; ignored");
        return;
    }
    (void)zt_mp_get_bool(root, "terminate", &terminate);
    const msgpack_object *s = zt_mp_get(root, "signal");
    if (s && s->type == MSGPACK_OBJECT_STR)
        zt_mp_copy_str(s, signame, sizeof signame);
    job_t *job = zhashx_lookup(self->jobs, id);
    if (!job) {
        zt_debug("REVOKE for %s, which is not held here", id);
        return;
    }
    job->revoked = true;
    job->revoke_reason = "revoked";
    if (job->state == JOB_RESERVED) {
        reserved_remove(self, job);
        outcome_t o = {WORKER_OUTCOME_FAILURE, NULL, NULL, NULL, NULL, NULL, -1, false};
        finish_job(self, job, &o);
        return;
    }
    if (!terminate) {
        zt_info("task %s[%s] revoked while running; its result will be discarded", job->name, id);
        return;
    }
    int sig = signal_by_name(signame);
    if (sig < 0) {
        zt_warn("REVOKE for %s names unknown signal '%s'; using SIGTERM", id, signame);
        sig = SIGTERM;
    }
    job->terminated = true;
    job->revoke_reason = "terminated";
    self->retire[job->slot] = true; /* whatever the signal does, do not reuse that child */
    zt_info("terminating %s[%s]: signal %d to child pid %d", job->name, id, sig, (int)job->pid);
    worker_pool_signal(self->pool, job->slot, sig);
}

static void stale_all(worker_t *self) {
    /* Everything held now came through the connection that just ended. The
     * jobs stay in self->jobs, so that a redelivery of one finds it. */
    self->generation++;
}

static void disconnect(worker_t *self) {
    if (self->dealer) {
        zsock_set_linger(self->dealer, 0);
        zsock_destroy(&self->dealer);
    }
    self->sock = NULL;
    self->conn = CONN_DOWN;
}

static int connect_broker(worker_t *self) {
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer)
        return ZT_ERR_IO;
    zsock_set_linger(self->dealer, 1000);
    zsock_set_sndhwm(self->dealer, 100000);
    zsock_set_rcvhwm(self->dealer, 100000);
    if (zt_curve_apply(self->curve, self->dealer) != 0) {
        zt_error("cannot set the CURVE keys on the broker socket");
        zsock_destroy(&self->dealer);
        return ZT_ERR_IO;
    }
    if (zsock_connect(self->dealer, "%s", self->config.broker_url) != 0) {
        zt_error("cannot connect to broker endpoint '%s'", self->config.broker_url);
        zsock_destroy(&self->dealer);
        return ZT_ERR_INVALID;
    }
    self->sock = zsock_resolve(self->dealer);
    size_t fd_size = sizeof self->sock_fd;
    if (zmq_getsockopt(self->sock, ZMQ_FD, &self->sock_fd, &fd_size) != 0) {
        zt_error("cannot get the broker socket's descriptor: %s", zmq_strerror(errno));
        disconnect(self);
        return ZT_ERR_IO;
    }
    int64_t now = zt_clock_mono_ms();
    self->last_recv_ms = now;
    send_hello(self, true);
    resend_kept_dones(self);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Remote control (PROTOCOL.md §6.5): the broker relays a client's broadcast. */

static void pack_active(worker_t *self, msgpack_packer *pk) {
    double now = zt_clock_wall();
    msgpack_pack_array(pk, (size_t)self->n_running);
    for (int slot = 0; slot < self->concurrency; slot++) {
        const job_t *job = self->running[slot];
        if (!job)
            continue;
        msgpack_pack_map(pk, 7);
        zt_pack_kv_cstr(pk, "id", job->id);
        zt_pack_kv_cstr(pk, "task", job->name);
        zt_pack_kv_uint(pk, "pid", (uint64_t)job->pid);
        zt_pack_kv_double(pk, "started", job->started_wall);
        zt_pack_kv_double(pk, "runtime", now - job->started_wall);
        zt_pack_kv_uint(pk, "retries", (uint64_t)job->retries);
        zt_pack_cstr(pk, "progress");
        if (job->has_progress) {
            msgpack_pack_map(pk, 3);
            zt_pack_kv_double(pk, "current", job->progress_current);
            zt_pack_kv_double(pk, "total", job->progress_total);
            zt_pack_kv_cstr(pk, "message", job->progress_message ? job->progress_message : "");
        } else {
            msgpack_pack_nil(pk);
        }
    }
}

static void pack_reserved(worker_t *self, msgpack_packer *pk) {
    msgpack_pack_array(pk, (size_t)self->n_reserved);
    for (int p = ZT_PRIORITY_MAX; p >= 0; p--) {
        for (const job_t *job = self->reserved_head[p]; job; job = job->next) {
            msgpack_pack_map(pk, 3);
            zt_pack_kv_cstr(pk, "id", job->id);
            zt_pack_kv_cstr(pk, "task", job->name);
            zt_pack_kv_uint(pk, "retries", (uint64_t)job->retries);
        }
    }
}

static double timeval_s(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void pack_stats(worker_t *self, msgpack_packer *pk) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    msgpack_pack_map(pk, 12);
    zt_pack_kv_uint(pk, "pid", (uint64_t)getpid());
    zt_pack_kv_cstr(pk, "hostname", self->host);
    zt_pack_kv_double(pk, "uptime", zt_clock_wall() - self->started_wall);
    zt_pack_kv_uint(pk, "concurrency", (uint64_t)self->concurrency);
    zt_pack_cstr(pk, "pool");
    msgpack_pack_map(pk, 3);
    zt_pack_kv_uint(pk, "size", (uint64_t)worker_pool_size(self->pool));
    zt_pack_cstr(pk, "pids");
    int live = 0;
    for (int i = 0; i < worker_pool_size(self->pool); i++)
        live += worker_pool_pid(self->pool, i) > 0;
    msgpack_pack_array(pk, (size_t)live);
    for (int i = 0; i < worker_pool_size(self->pool); i++)
        if (worker_pool_pid(self->pool, i) > 0)
            msgpack_pack_uint64(pk, (uint64_t)worker_pool_pid(self->pool, i));
    zt_pack_kv_uint(pk, "recycled", (uint64_t)worker_pool_replaced(self->pool));
    zt_pack_cstr(pk, "processed");
    msgpack_pack_map(pk, zhashx_size(self->per_task));
    uint64_t total = 0;
    for (uint64_t *n = zhashx_first(self->per_task); n; n = zhashx_next(self->per_task)) {
        zt_pack_kv_uint(pk, (const char *)zhashx_cursor(self->per_task), *n);
        total += *n;
    }
    zt_pack_kv_uint(pk, "total", total);
    zt_pack_cstr(pk, "rusage");
    msgpack_pack_map(pk, 3);
    zt_pack_kv_double(pk, "utime", timeval_s(ru.ru_utime));
    zt_pack_kv_double(pk, "stime", timeval_s(ru.ru_stime));
    zt_pack_kv_uint(pk, "maxrss_kib", ru.ru_maxrss > 0 ? (uint64_t)ru.ru_maxrss : 0);
    zt_pack_cstr(pk, "broker");
    msgpack_pack_map(pk, 2);
    zt_pack_kv_cstr(pk, "url", self->config.broker_url);
    zt_pack_kv_uint(pk, "connects", (uint64_t)self->connects);
    /* the result buffer (zt_backend): states held for Redis, results lost */
    zt_pack_kv_uint(pk, "results_buffered", (uint64_t)zt_backend_pending(self->backend));
    zt_pack_kv_uint(pk, "results_lost", (uint64_t)self->results_lost);
    zt_pack_kv_uint(pk, "result_buffer_max", (uint64_t)self->config.result_buffer_max);
}

static void begin_warm_shutdown(worker_t *self);

static void on_control(worker_t *self, const msgpack_object *root) {
    uint64_t req = 0;
    if (zt_mp_get_uint(root, "req", &req) != 0) {
        zt_warn("broker sent a CONTROL without a request number; ignored");
        return;
    }
    char op[64] = "";
    const msgpack_object *o = zt_mp_get(root, "op");
    if (o && zt_mp_copy_str(o, op, sizeof op) != 0)
        snprintf(op, sizeof op, "?");
    msgpack_packer *pk = msg_begin(self);
    bool shutdown = false;
    bool known = true;
    if (strcmp(op, "ping") == 0 || strcmp(op, "active") == 0 || strcmp(op, "reserved") == 0 ||
        strcmp(op, "registered") == 0 || strcmp(op, "stats") == 0 || strcmp(op, "shutdown") == 0) {
        msgpack_pack_map(pk, 3);
        zt_pack_kv_uint(pk, "req", req);
        zt_pack_kv_bool(pk, "ok", true);
        zt_pack_cstr(pk, "result");
    } else {
        known = false;
    }
    if (!known) {
        char error[96];
        snprintf(error, sizeof error, "unknown op '%s'", op);
        msgpack_pack_map(pk, 3);
        zt_pack_kv_uint(pk, "req", req);
        zt_pack_kv_bool(pk, "ok", false);
        zt_pack_kv_cstr(pk, "error", error);
    } else if (strcmp(op, "ping") == 0) {
        msgpack_pack_map(pk, 1);
        zt_pack_kv_bool(pk, "pong", true);
    } else if (strcmp(op, "active") == 0) {
        pack_active(self, pk);
    } else if (strcmp(op, "reserved") == 0) {
        pack_reserved(self, pk);
    } else if (strcmp(op, "registered") == 0) {
        size_t n = worker_registry_size(self->registry);
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            zt_pack_cstr(pk, worker_registry_name(self->registry, i));
    } else if (strcmp(op, "stats") == 0) {
        pack_stats(self, pk);
    } else {
        msgpack_pack_map(pk, 1);
        zt_pack_kv_bool(pk, "ok", true);
        shutdown = true;
    }
    msg_send(self, ZT_CMD_CONTROL_REPLY);
    zt_debug("control '%s' answered", op);
    if (shutdown && !self->warm && !self->cold) {
        zt_info("shutdown requested by remote control");
        begin_warm_shutdown(self);
    }
}

static void on_broker_message(worker_t *self, zt_frames_t *frames) {
    int cmd;
    const void *body, *extra;
    size_t size, extra_size;
    const char *code;
    if (zt_frames_envelope(frames, &cmd, &body, &size, &extra, &extra_size, &code) != 0) {
        zt_warn("broker sent a malformed message (%s); ignored", code);
        return;
    }
    self->last_recv_ms = zt_clock_mono_ms();
    if (cmd == ZT_CMD_DISPATCH) {
        on_dispatch(self, body, size, extra, extra_size);
        return;
    }
    const msgpack_object *root = zt_decoder_parse(self->decoder, body, size);
    if (!root) {
        zt_warn("broker sent an undecodable %s body; ignored", zt_cmd_name(cmd));
        return;
    }
    switch (cmd) {
    case ZT_CMD_WELCOME: {
        uint64_t hb = 0, live = 0;
        if (zt_mp_get_uint(root, "heartbeat_ms", &hb) == 0 && hb >= 10 && hb <= 3600000)
            self->heartbeat_ms = (int64_t)hb;
        if (zt_mp_get_uint(root, "liveness", &live) == 0 && live >= 1 && live <= 1000)
            self->liveness = (int64_t)live;
        char broker[128] = "broker";
        const msgpack_object *bn = zt_mp_get(root, "broker");
        if (bn)
            zt_mp_copy_str(bn, broker, sizeof broker);
        if (self->conn != CONN_READY)
            zt_info("%s to %s at %s (heartbeat %lld ms x %lld)",
                    self->ever_welcomed ? "reconnected" : "connected", broker,
                    self->config.broker_url, (long long)self->heartbeat_ms,
                    (long long)self->liveness);
        self->conn = CONN_READY;
        self->ever_welcomed = true;
        self->reconnect_ivl_ms = RECONNECT_MIN_MS;
        break;
    }
    case ZT_CMD_REVOKE:
        on_revoke(self, root);
        break;
    case ZT_CMD_CONTROL:
        on_control(self, root);
        break;
    case ZT_CMD_HEARTBEAT:
        break;
    case ZT_CMD_ERROR: {
        char ecode[64] = "", ereason[256] = "";
        const msgpack_object *v;
        if ((v = zt_mp_get(root, "code")))
            zt_mp_copy_str(v, ecode, sizeof ecode);
        if ((v = zt_mp_get(root, "reason")))
            zt_mp_copy_str(v, ereason, sizeof ereason);
        if (strcmp(ecode, ZT_WIRE_UNKNOWN_WORKER) == 0) {
            /* The broker does not know us (it restarted): announce ourselves
             * again, once; the errors for what we sent before come first. */
            if (self->conn != CONN_HELLO_SENT) {
                zt_warn("broker does not know this worker (restarted?); sending HELLO again");
                stale_all(self);
                send_hello(self, true);
                resend_kept_dones(self);
            }
        } else if (strcmp(ecode, ZT_WIRE_FORBIDDEN) == 0) {
            /* CURVE: the broker refuses this worker's key (its role, or it was
             * revoked). Refusals are no sign of a usable broker: drop the
             * connection and retry with backoff, in case the key comes back. */
            zt_error("the broker refuses this worker's key: %s; reconnecting in %lld ms", ereason,
                     (long long)self->reconnect_ivl_ms);
            disconnect(self);
            stale_all(self);
            self->reconnect_at_ms = zt_clock_mono_ms() + self->reconnect_ivl_ms;
            self->reconnect_ivl_ms *= 2;
            if (self->reconnect_ivl_ms > RECONNECT_MAX_MS)
                self->reconnect_ivl_ms = RECONNECT_MAX_MS;
        } else {
            zt_warn("broker answered ERROR %s: %s", ecode, ereason);
        }
        break;
    }
    default:
        zt_warn("broker sent unexpected %s; ignored", zt_cmd_name(cmd));
        break;
    }
}

static void drain_broker(worker_t *self) {
    while (self->sock) {
        zt_frames_t frames;
        int rc = zt_frames_recv(self->sock, &frames, false, ZMQ_DONTWAIT);
        if (rc != 0)
            break;
        on_broker_message(self, &frames);
        zt_frames_close(&frames);
    }
}

/* ------------------------------------------------------------------------ */
/* Timers */

static void check_connection(worker_t *self, int64_t now) {
    if (self->conn == CONN_DOWN) {
        if (now >= self->reconnect_at_ms && !self->cold) {
            if (connect_broker(self) != 0) {
                self->reconnect_at_ms = now + self->reconnect_ivl_ms;
            }
        }
        return;
    }
    int64_t silence = now - self->last_recv_ms;
    if (silence > self->heartbeat_ms * self->liveness) {
        zt_warn("broker silent for %lld ms; reconnecting in %lld ms", (long long)silence,
                (long long)self->reconnect_ivl_ms);
        disconnect(self);
        stale_all(self);
        self->reconnect_at_ms = now + self->reconnect_ivl_ms;
        self->reconnect_ivl_ms *= 2;
        if (self->reconnect_ivl_ms > RECONNECT_MAX_MS)
            self->reconnect_ivl_ms = RECONNECT_MAX_MS;
        return;
    }
    if (now - self->last_send_ms >= self->heartbeat_ms)
        send_simple(self, ZT_CMD_HEARTBEAT);
}

static void check_jobs(worker_t *self, int64_t now) {
    for (int slot = 0; slot < self->concurrency; slot++) {
        job_t *job = self->running[slot];
        if (!job)
            continue;
        int64_t elapsed = now - job->started_ms;
        if (job->time_limit > 0 && !job->hard_killed &&
            elapsed >= (int64_t)(job->time_limit * 1000)) {
            zt_warn("task %s[%s] passed its hard time limit (%gs); killing child pid %d", job->name,
                    job->id, job->time_limit, (int)job->pid);
            job->hard_killed = true;
            worker_pool_signal(self->pool, slot, SIGKILL);
        } else if (job->soft_time_limit > 0 && !job->soft_signalled &&
                   elapsed >= (int64_t)(job->soft_time_limit * 1000)) {
            zt_warn("task %s[%s] passed its soft time limit (%gs); signalling child pid %d",
                    job->name, job->id, job->soft_time_limit, (int)job->pid);
            job->soft_signalled = true;
            worker_pool_signal(self->pool, slot, SIGUSR1);
        }
        if (!job->started_sent && elapsed >= STARTED_NOTICE_MS)
            announce_started(self, job);
        if (job->progress_pending && now - job->progress_sent_ms >= PROGRESS_INTERVAL_MS)
            emit_progress(self, job);
        if (!job->started_written && elapsed >= STARTED_DELAY_MS) {
            json_t *r = json_object();
            json_object_set_new(r, "pid", json_integer(job->pid));
            json_object_set_new(r, "hostname", json_string(self->name));
            write_state(self, job->id, job->ignore_result, "STARTED", r, NULL, NULL);
            json_decref(r);
            job->started_written = true;
        }
    }
}

/* Msecs until the next timer, at most max. */
static long next_timeout(worker_t *self, int64_t now, long max) {
    int64_t due = now + max;
#define EARLIER(t)                                                                                 \
    do {                                                                                           \
        int64_t t_ = (t);                                                                          \
        if (t_ < due)                                                                              \
            due = t_;                                                                              \
    } while (0)
    if (self->conn == CONN_DOWN) {
        EARLIER(self->reconnect_at_ms);
    } else {
        EARLIER(self->last_send_ms + self->heartbeat_ms);
        EARLIER(self->last_recv_ms + self->heartbeat_ms * self->liveness + 1);
    }
    for (int slot = 0; slot < self->concurrency; slot++) {
        job_t *job = self->running[slot];
        if (!job)
            continue;
        if (job->time_limit > 0 && !job->hard_killed)
            EARLIER(job->started_ms + (int64_t)(job->time_limit * 1000));
        if (job->soft_time_limit > 0 && !job->soft_signalled)
            EARLIER(job->started_ms + (int64_t)(job->soft_time_limit * 1000));
        if (job->progress_pending)
            EARLIER(job->progress_sent_ms + PROGRESS_INTERVAL_MS);
        if (!job->started_sent && !stale(self, job))
            EARLIER(job->started_ms + STARTED_NOTICE_MS);
        if (!job->started_written && !job->ignore_result)
            EARLIER(job->started_ms + STARTED_DELAY_MS);
    }
    int64_t retry = zt_backend_retry_ms(self->backend);
    if (retry > 0 && zt_backend_pending(self->backend) > 0)
        EARLIER(retry);
    if (self->credit_next)
        EARLIER(self->credit_next->queued_ms + EARLY_CREDIT_MS);
#undef EARLIER
    return due <= now ? 0 : (long)(due - now);
}

/* ------------------------------------------------------------------------ */
/* Assignment */

static void assign_jobs(worker_t *self) {
    if (self->cold)
        return;
    for (int slot = 0; slot < self->concurrency && self->n_reserved > 0; slot++) {
        if (self->running[slot] || self->retire[slot] || !worker_pool_idle(self->pool, slot))
            continue;
        job_t *job = reserved_pop(self);
        if (job->expires > 0 && zt_clock_wall() > job->expires) {
            job->revoked = true;
            job->revoke_reason = "expired";
            outcome_t o = {WORKER_OUTCOME_FAILURE, NULL, NULL, NULL, NULL, NULL, -1, false};
            finish_job(self, job, &o);
            slot--; /* the slot is still free */
            continue;
        }
        if (worker_pool_run(self->pool, slot, job->id, job->retries, job->body, job->body_size) !=
            0) {
            reserved_push(self, job, true);
            continue; /* the child is being replaced; try the next slot */
        }
        free(job->body);
        job->body = NULL;
        job->state = JOB_RUNNING;
        job->slot = slot;
        job->pid = worker_pool_pid(self->pool, slot);
        job->started_ms = zt_clock_mono_ms();
        job->started_wall = zt_clock_wall();
        job->progress_sent_ms = 0;
        job->started_sent = false; /* announced after STARTED_NOTICE_MS, or by its DONE */
        self->running[slot] = job;
        self->n_running++;
        zt_info("task started: %s[%s] attempt %d in child pid %d", job->name, job->id,
                job->retries + 1, (int)job->pid);
    }
}

static void retire_children(worker_t *self) {
    for (int slot = 0; slot < self->concurrency; slot++) {
        if (self->retire[slot] && !self->running[slot] && !self->warm) {
            self->retire[slot] = false;
            worker_pool_retire(self->pool, slot);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Shutdown */

static void begin_warm_shutdown(worker_t *self) {
    self->warm = true;
    worker_pool_stop_respawning(self->pool);
    /* Credit 0 first: the broker's credit is what it may still send us, and
     * RELEASE does not touch it, so released tasks would come straight back. */
    if (self->conn != CONN_DOWN)
        send_hello(self, false);
    self->warm_since_ms = zt_clock_mono_ms();
    int total = self->n_reserved;
    job_t **list = zt_calloc((size_t)(total ? total : 1), sizeof *list);
    int k = 0;
    job_t *job;
    while ((job = reserved_pop(self)))
        list[k++] = job;
    const char *ids[RELEASE_CHUNK];
    int n = 0, released = 0, dropped = 0;
    for (int i = 0; i < k; i++) {
        /* A job of an earlier connection is unknown to the current broker;
         * the one that sent it has requeued it (or is gone with it). */
        if (stale(self, list[i])) {
            dropped++;
            continue;
        }
        ids[n++] = list[i]->id;
        if (n == RELEASE_CHUNK) {
            send_release(self, ids, n);
            released += n;
            n = 0;
        }
    }
    send_release(self, ids, n);
    released += n;
    for (int i = 0; i < k; i++) {
        if (list[i]->in_hash)
            zhashx_delete(self->jobs, list[i]->id);
        job_free(list[i]);
    }
    free(list);
    zt_info("warm shutdown: %d reserved tasks handed back, %d running to finish%s", released,
            self->n_running, dropped ? " (tasks of an earlier connection dropped)" : "");
}

static bool warm_shutdown_done(worker_t *self, int64_t now) {
    if (self->n_running > 0)
        return false;
    if (!self->done_head && !self->ready_head && zt_backend_pending(self->backend) == 0)
        return true;
    if (now - self->warm_since_ms > SHUTDOWN_BACKEND_MS) {
        int pending = zt_backend_pending(self->backend);
        if (pending > 0) {
            zt_warn("redis did not confirm %d results in time; their tasks will be redelivered",
                    pending);
        } else {
            int dones = 0;
            for (const done_msg_t *d = self->done_head; d; d = d->next)
                dones++;
            for (const done_msg_t *d = self->ready_head; d; d = d->next)
                dones++;
            zt_warn("no broker connection to report %d finished tasks; they will be redelivered",
                    dones);
        }
        return true;
    }
    return false;
}

static void handle_signals(worker_t *self) {
    char buf[64];
    while (read(self->wake_pipe[0], buf, sizeof buf) > 0) {
    }
    if ((g_cold || g_stop_requests >= 2) && !self->cold) {
        zt_warn("cold shutdown: killing %d running tasks (the broker redelivers them)",
                self->n_running);
        self->cold = true;
        worker_pool_stop_respawning(self->pool);
    } else if (g_stop_requests >= 1 && !self->warm && !self->cold) {
        begin_warm_shutdown(self);
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle */

static int parse_queues(worker_t *self, const char *queues) {
    const char *list = queues && *queues ? queues : ZT_DEFAULT_QUEUE;
    char *copy = zt_strdup(list);
    int count = 1;
    for (const char *p = copy; *p; p++)
        count += *p == ',';
    self->queues = zt_calloc((size_t)count, sizeof(char *));
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (!len)
            continue;
        if (!zt_taskmsg_valid_queue(tok, len)) {
            zt_error("invalid queue name '%s'", tok);
            free(copy);
            return ZT_ERR_INVALID;
        }
        self->queues[self->n_queues++] = zt_strdup(tok);
    }
    free(copy);
    if (self->n_queues == 0) {
        zt_error("no queue to serve in '%s'", list);
        return ZT_ERR_INVALID;
    }
    return 0;
}

worker_t *worker_new(const zt_config_t *config, const char *name, const char *queues,
                     const worker_registry_t *registry, int *err) {
    if (err)
        *err = ZT_ERR_INVALID;
    worker_t *self = zt_calloc(1, sizeof *self);
    self->config = *config;
    self->registry = registry;
    self->wake_pipe[0] = self->wake_pipe[1] = -1;
    snprintf(self->name, sizeof self->name, "%s", name);
    if (gethostname(self->host, sizeof self->host) != 0)
        snprintf(self->host, sizeof self->host, "localhost");
    self->host[sizeof self->host - 1] = '\0';
    self->concurrency = (int)config->worker_concurrency;
    if (self->concurrency <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        self->concurrency = cpus > 0 ? (int)cpus : 1;
    }
    int64_t capacity = (int64_t)self->concurrency * config->worker_prefetch_multiplier;
    self->capacity = capacity > 1000000 ? 1000000 : (int)capacity;
    self->heartbeat_ms = config->broker_heartbeat_ms;
    self->liveness = config->broker_liveness;
    self->reconnect_ivl_ms = RECONNECT_MIN_MS;
    self->generation = 1;
    self->jobs = zhashx_new();
    self->sent = zhashx_new();
    self->per_task = zhashx_new();
    zhashx_set_destructor(self->per_task, free_counter);
    self->decoder = zt_decoder_new(0);
    msgpack_sbuffer_init(&self->out);
    msgpack_packer_init(&self->pk, &self->out, msgpack_sbuffer_write);
    self->running = zt_calloc((size_t)self->concurrency, sizeof(job_t *));
    self->retire = zt_calloc((size_t)self->concurrency, sizeof(bool));
    srand48((long)getpid() ^ (long)zt_clock_mono_us());
    int rc = parse_queues(self, queues);
    if (rc != 0)
        goto fail;
    char why[512];
    if (zt_curve_from_config(config, ZT_CURVE_CLIENT, &self->curve, why, sizeof why) != 0) {
        zt_error("%s", why);
        goto fail;
    }
    if (self->curve)
        zt_info("CURVE on: key '%s' (%s)", zt_curve_name(self->curve), zt_curve_role(self->curve));
    int berr = 0;
    self->backend = zt_backend_new_lazy(config->result_backend, &berr);
    if (!self->backend) {
        zt_error("invalid result backend url '%s'", config->result_backend);
        goto fail;
    }
    zt_backend_set_limit(self->backend,
                         config->result_buffer_max > INT32_MAX ? INT32_MAX
                                                               : (int)config->result_buffer_max,
                         on_state_lost, self);
    /* Children first: they should inherit as little as possible. */
    zt_log_level_t level = ZT_LOG_INFO;
    zt_log_level_parse(config->loglevel, &level);
    worker_pool_config_t pc = {self->concurrency, registry,
                               self->name,        level,
                               config->logfile,   config->worker_max_memory_per_child > 0,
                               &self->config};
    int perr = 0;
    self->pool = worker_pool_new(&pc, &perr);
    if (!self->pool) {
        if (err)
            *err = perr ? perr : ZT_ERR_IO;
        zt_error("cannot start the pool of %d children", self->concurrency);
        worker_destroy(&self);
        return NULL;
    }
    if (pipe2(self->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        if (err)
            *err = ZT_ERR_IO;
        worker_destroy(&self);
        return NULL;
    }
    self->n_fds_max = 3 + self->concurrency;
    self->fds = zt_calloc((size_t)self->n_fds_max, sizeof(struct pollfd));
    if (err)
        *err = 0;
    return self;
fail:
    worker_destroy(&self);
    return NULL;
}

void worker_destroy(worker_t **self_p) {
    if (!self_p || !*self_p)
        return;
    worker_t *self = *self_p;
    worker_pool_destroy(&self->pool);
    disconnect(self);
    zt_curve_destroy(&self->curve);
    job_t *job;
    while ((job = reserved_pop(self)))
        job_free(job);
    for (int i = 0; self->running && i < self->concurrency; i++)
        if (self->running[i])
            job_free(self->running[i]);
    free_done_list(self->done_head);
    free_done_list(self->ready_head);
    free_done_list(self->sent_head);
    zhashx_destroy(&self->sent);
    zhashx_destroy(&self->jobs);
    zhashx_destroy(&self->per_task);
    zt_decoder_destroy(&self->decoder);
    msgpack_sbuffer_destroy(&self->out);
    zt_backend_destroy(&self->backend);
    for (int i = 0; i < self->n_queues; i++)
        free(self->queues[i]);
    free(self->queues);
    free(self->running);
    free(self->retire);
    free(self->fds);
    if (self->wake_pipe[0] >= 0)
        close(self->wake_pipe[0]);
    if (self->wake_pipe[1] >= 0)
        close(self->wake_pipe[1]);
    free(self);
    *self_p = NULL;
}

static void install_signals(worker_t *self) {
    g_wake_fd = self->wake_pipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

int worker_run(worker_t *self) {
    install_signals(self);
    self->started_wall = zt_clock_wall();
    g_sigchld = 1; /* a child may have died before the handler existed */
    char queues[512] = "";
    for (int i = 0; i < self->n_queues; i++)
        snprintf(queues + strlen(queues), sizeof queues - strlen(queues), "%s%s", i ? "," : "",
                 self->queues[i]);
    zt_info("%s starting: queues %s, concurrency %d, prefetch %lld, %zu tasks registered",
            self->name, queues, self->concurrency,
            (long long)self->config.worker_prefetch_multiplier,
            worker_registry_size(self->registry));
    if (connect_broker(self) != 0)
        return ZT_ERR_INVALID;

    /* poll(2) rather than zmq_poll: zmq_poll makes a zero-timeout pass and
     * checks ZMQ_EVENTS twice per call, several system calls each, which at
     * one or two tasks per iteration cost more than the rest of the loop. */
    for (;;) {
        self->iterations++;
        int64_t now = zt_clock_mono_ms();
        int n = 0;
        int sock_i = -1, redis_i = -1;
        bool zmq_ready = false;
        if (self->sock) {
            /* ZMQ_FD is edge-triggered: input already taken in by libzmq (while
             * we sent) would not wake poll, so ask before sleeping. */
            uint32_t events = 0;
            size_t size = sizeof events;
            if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &size) == 0 &&
                (events & ZMQ_POLLIN))
                zmq_ready = true;
            self->fds[n] = (struct pollfd){self->sock_fd, POLLIN, 0};
            sock_i = n++;
        }
        int wake_i = n;
        self->fds[n++] = (struct pollfd){self->wake_pipe[0], POLLIN, 0};
        int rfd = zt_backend_fd(self->backend);
        if (rfd >= 0) {
            self->fds[n] = (struct pollfd){rfd, POLLIN, 0};
            redis_i = n++;
        }
        int first_child = n;
        n += worker_pool_pollfds(self->pool, self->fds + n, self->n_fds_max - n);
        long timeout = zmq_ready ? 0 : next_timeout(self, now, 1000);
        int rc = poll(self->fds, (nfds_t)n, (int)timeout);
        if (rc < 0 && errno != EINTR) {
            zt_error("poll failed: %s", strerror(errno));
            return ZT_ERR_IO;
        }
        if (rc < 0)
            rc = 0;
        if (self->fds[wake_i].revents & POLLIN)
            handle_signals(self);
        if (g_stop_requests || g_cold)
            handle_signals(self);
        if (self->cold)
            break;
        if (sock_i >= 0 && (zmq_ready || self->fds[sock_i].revents))
            drain_broker(self);
        if (rc > 0)
            worker_pool_process(self->pool, self->fds + first_child, n - first_child, on_pool_event,
                                self);
        if (g_sigchld) {
            g_sigchld = 0;
            worker_pool_reap(self->pool, on_pool_event, self);
        }
        if (redis_i >= 0 && self->fds[redis_i].revents)
            zt_backend_recv(self->backend);
        now = zt_clock_mono_ms();
        check_connection(self, now);
        check_jobs(self, now);
        retire_children(self);
        assign_jobs(self);
        zt_backend_send(self->backend);
        send_ready_dones(self);
        return_waiting_credit(self, zt_clock_mono_ms());
        send_credit(self);
        if (self->warm && warm_shutdown_done(self, now))
            break;
    }

    if (self->cold) {
        /* Kill the children now; what they ran is redelivered after BYE,
         * flagged as such: the broker must know each of them started. */
        for (int slot = 0; slot < self->concurrency; slot++)
            if (self->running[slot])
                announce_started(self, self->running[slot]);
        worker_pool_destroy(&self->pool);
        /* Results already confirmed by Redis can still be reported. */
        zt_backend_recv(self->backend);
        send_ready_dones(self);
    }
    zt_debug("%lld loop iterations for %lld tasks", (long long)self->iterations,
             (long long)self->processed);
    if (self->conn != CONN_DOWN) {
        send_simple(self, ZT_CMD_BYE);
        zt_info("BYE sent; %s stopped (%lld tasks processed)", self->name,
                (long long)self->processed);
    } else {
        zt_info("%s stopped (%lld tasks processed)", self->name, (long long)self->processed);
    }
    return 0;
}
