/* broker: the loop, the protocol handlers and the task life cycle.
 *
 * Durability: every change a restart must survive is appended to the
 * journal as a record (j_* helpers) at the point it happens in memory;
 * one commit per loop turn writes them. Replies to SUBMIT (ACCEPTED and, to
 * keep their order, REJECTED) wait in a FIFO until the journal says the
 * records before them are durable. On start the same records are replayed
 * (replay_* below) into the same structures, without events or replies.
 *
 * Ownership: the broker owns every task record (the `tasks` hash destroys
 * them); a task is at any time in exactly one place: a queue list (ready or
 * tombstone), the timer heap (scheduled), or a worker's in-flight list.
 * Queues live until the broker is destroyed; workers until they leave or die.
 *
 * Hot path (SUBMIT -> ACCEPTED, DISPATCH, DONE): frames are read with raw
 * libzmq into a stack zt_frames_t, replies are packed into one reused
 * buffer, and a task costs one allocation for its record (plus the hash
 * entry). Up to BATCH_MAX messages are handled per wakeup before timers,
 * the journal commit and the dispatch pass run. */
#include "broker.h"
#include "access.h"
#include "beat.h"
#include "recent.h"
#include "broadcast.h"
#include "control.h"
#include "events.h"
#include "journal.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_curve.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"
#include "zt_taskmsg.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_MAX 256         /* messages per wakeup before timers and dispatch */
#define SOCKET_HWM 100000     /* messages queued per peer, each way */
#define QUEUES_MAX 4096       /* distinct queue names; more are refused */
#define REVOKED_IDS_MAX 10000 /* unknown ids remembered by revoke (FIFO) */
#define HELLO_QUEUES_MAX 64   /* queues one worker may serve */
#define HELLO_TASKS_MAX 10000 /* task names one worker may register */
#define FRAME_LIMIT_FACTOR 16 /* libzmq drops peers sending frames this much over the limit */
#define TEXT_MAX 4096         /* bytes of an error or progress message we relay */
#define WARN_PER_SECOND 20    /* peer warnings logged per second at most */
#define POLL_MAX_MS 1000      /* longest sleep, so a missed signal still stops us */
#define ZONE_CHUNK 65536      /* bytes; decoded bodies up to a few KiB never allocate */
#define JOURNAL_PENDING_MAX (64u * 1024 * 1024) /* bytes unwritten before SUBMIT is refused */
#define HELD_MAX (16u * 1024 * 1024) /* bytes of held replies before rejections skip the queue */
#define JOURNAL_RETRY_MS 100         /* msecs between write retries while the disk fails */

struct broker {
    /* options */
    char *bind;
    char *events_bind;
    char *data_dir;
    int64_t heartbeat_us;     /* usecs between heartbeats */
    int64_t liveness;         /* heartbeats missed before a worker is dead */
    size_t max_message_bytes; /* bytes, all frames */
    const volatile sig_atomic_t *stop_flag;
    volatile sig_atomic_t stop;

    char name[300];            /* "zmqbroker@host" */
    char endpoint[256];        /* ROUTER endpoint as bound */
    char events_endpoint[256]; /* events endpoint as bound */

    zsock_t *router; /* czmq sets it up; the loop uses the raw handle */
    void *raw;
    broker_events_t *events;
    /* CURVE: keys, roles and zauth; NULL in plain mode. peer is the
     * authenticated sender of the message being handled (NULL in plain mode). */
    broker_access_t *access;
    const broker_peer_t *peer;
    volatile sig_atomic_t *reload_flag;
    broker_journal_t *journal;
    broker_journal_recovery_t recovery; /* what recovery found at start */
    size_t recovered_tasks;
    uint64_t max_queue_length; /* 0 = no limit */
    uint64_t max_queued_bytes; /* 0 = no limit */
    uint64_t queued_bytes;     /* message + record bytes of every task held */

    /* SUBMIT replies waiting for durability, oldest first: records of
     * {lsn u64, cmd u8, identity size u8, body size u32, identity, body} */
    broker_jbuf_t held;
    size_t held_head; /* bytes of held already sent */
    size_t held_count;

    /* recovery only */
    broker_task_list_t replay_inflight; /* tasks the journal says were at workers */
    double replay_wall;                 /* unix seconds when replay began */
    size_t replay_missing;              /* records naming tasks not found */

    zhashx_t *tasks;             /* id (the record's own string) -> task; owns tasks */
    zhashx_t *queues;            /* name -> queue; owns queues */
    broker_queue_t *last_queue;  /* lookup cache: clients tend to use one queue */
    broker_timer_heap_t *timers; /* scheduled tasks by due time (monotonic usecs) */
    broker_workers_t *workers;
    broker_broadcasts_t *broadcasts; /* client broadcasts waiting for workers */
    broker_beat_t *beat;             /* beat lease and schedule entries' last fires */
    broker_recent_t *recent;         /* ids of tasks finished lately (duplicate-id) */
    zhashx_t *revoked_ids;           /* unknown ids revoked (set); keys owned by the hash */
    char **revoked_ring;             /* same ids in arrival order, for FIFO eviction */
    size_t revoked_next;

    msgpack_zone zone;   /* decoded bodies, cleared per message */
    msgpack_object body; /* the body decoded last, in zone */
    msgpack_sbuffer out; /* reused for every body we send */
    msgpack_packer pk;
    msgpack_sbuffer reply; /* CONTROL-REPLY being built (ops may send meanwhile) */
    msgpack_packer reply_pk;

    broker_stats_t stats;
    int64_t start_us; /* monotonic usecs at start */
    int64_t now;      /* monotonic usecs of the current loop iteration */
    bool dispatch_dirty;
    int64_t next_housekeeping; /* monotonic usecs */

    int64_t warn_window; /* monotonic usecs: start of the current second */
    int warn_count;
    uint64_t warn_suppressed;
};

/* ---- small helpers -------------------------------------------------------- */

static void task_free(void **item) {
    broker_task_destroy((broker_task_t **)item);
}

static void queue_free(void **item) {
    broker_queue_destroy((broker_queue_t **)item);
}

/* Copies a borrowed, non-terminated string into buf as a C string. */
static void cstr(char *buf, size_t size, const char *s, size_t len) {
    if (len >= size)
        len = size - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
}

static void pack_reset(broker_t *self) {
    self->out.size = 0;
}

/* Log lines caused by peers are rate-limited: a hostile or buggy peer must
 * not be able to flood the log. Returns true if one more may be written. */
static bool peer_log_allowed(broker_t *self) {
    int64_t now = zt_clock_mono_us();
    if (now - self->warn_window >= 1000000) {
        if (self->warn_suppressed)
            zt_warn("%llu log lines about peers suppressed in the last second",
                    (unsigned long long)self->warn_suppressed);
        self->warn_window = now;
        self->warn_count = 0;
        self->warn_suppressed = 0;
    }
    if (++self->warn_count > WARN_PER_SECOND) {
        self->warn_suppressed++;
        return false;
    }
    return true;
}

__attribute__((format(printf, 4, 5))) static void peer_warn(broker_t *self, const void *identity,
                                                            size_t size, const char *fmt, ...) {
    if (!peer_log_allowed(self))
        return;
    char hex[2 * 16 + 1];
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    zt_warn("peer %s: %s", broker_identity_hex(identity, size < 16 ? size : 16, hex, sizeof hex),
            text);
}

static void send_raw(broker_t *self, const void *identity, size_t size, int cmd, const void *body,
                     size_t body_size, const void *extra, size_t extra_size) {
    if (zt_proto_send(self->raw, identity, size, cmd, body, body_size, extra, extra_size) != 0)
        zt_warn("cannot send %s: %s", zt_cmd_name(cmd), zmq_strerror(zmq_errno()));
    else
        self->stats.messages_out++;
}

/* Decodes a message body into the broker's reused zone, in place (strings
 * point into data, which must outlive the result). The same checks as
 * zt_body_parse() — zt_codec_check() bounds every count before msgpack-c
 * allocates, the root must be a map, no trailing bytes — without its three
 * allocations per message: this is the hot path. Returns the map (valid
 * until the next call) or NULL. */
static const msgpack_object *parse_body(broker_t *self, const void *data, size_t size) {
    if (zt_codec_check(data, size) != 0)
        return NULL;
    unsigned char first = *(const unsigned char *)data;
    if (!((first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf))
        return NULL;
    msgpack_zone_clear(&self->zone);
    size_t off = 0;
    if (msgpack_unpack(data, size, &off, &self->zone, &self->body) != MSGPACK_UNPACK_SUCCESS ||
        off != size || self->body.type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &self->body;
}

/* Sends the body packed in self->out. */
static void send_packed(broker_t *self, const void *identity, size_t size, int cmd) {
    send_raw(self, identity, size, cmd, self->out.data, self->out.size, NULL, 0);
}

static void send_to_worker(broker_t *self, broker_worker_t *w, int cmd) {
    size_t size;
    const void *identity = broker_worker_identity(w, &size);
    send_packed(self, identity, size, cmd);
    broker_worker_sent(w, self->now);
}

/* Answers a malformed message with ERROR and counts it. */
static void protocol_error(broker_t *self, const void *identity, size_t size, const char *code,
                           const char *reason) {
    self->stats.protocol_errors++;
    peer_warn(self, identity, size, "%s: %s", code, reason);
    if (zt_proto_send_error(self->raw, identity, size, code, reason) == 0)
        self->stats.messages_out++;
}

static void submit_reply(broker_t *self, const void *identity, size_t isize, int cmd,
                         const void *body, size_t body_size);

/* Answers a SUBMIT with REJECTED. id may be NULL. Malformed ones count as
 * protocol errors too. */
static void reject(broker_t *self, const void *identity, size_t size, const char *id,
                   const char *code, const char *reason, bool malformed) {
    self->stats.rejected++;
    if (malformed) {
        self->stats.protocol_errors++;
        peer_warn(self, identity, size, "SUBMIT rejected, %s: %s", code, reason);
    } else if (peer_log_allowed(self)) {
        zt_info("task %s rejected: %s: %s", id ? id : "?", code, reason);
    }
    /* through the held FIFO: replies keep the order of the SUBMITs; but a
     * flood while the disk fails must not grow it without bound, so past
     * HELD_MAX rejections go out at once (order is then best effort) */
    pack_reset(self);
    msgpack_pack_map(&self->pk, 3);
    zt_pack_kv_cstr(&self->pk, "id", id);
    zt_pack_kv_cstr(&self->pk, "code", code);
    zt_pack_kv_cstr(&self->pk, "reason", reason);
    if (self->held.size - self->held_head > HELD_MAX)
        send_raw(self, identity, size, ZT_CMD_REJECTED, self->out.data, self->out.size, NULL, 0);
    else
        submit_reply(self, identity, size, ZT_CMD_REJECTED, self->out.data, self->out.size);
}

/* ---- events --------------------------------------------------------------- */

static void event_task_revoked(broker_t *self, const broker_task_t *t, const char *reason) {
    msgpack_packer *pk = broker_events_begin(self->events, "task-revoked", 4);
    if (!pk)
        return;
    zt_pack_kv_cstr(pk, "id", broker_task_id(t));
    zt_pack_kv_cstr(pk, "name", broker_task_name(t));
    zt_pack_kv_cstr(pk, "queue", broker_queue_name(broker_task_queue(t)));
    zt_pack_kv_cstr(pk, "reason", reason);
    broker_events_send(self->events);
}

static void event_worker_offline(broker_t *self, broker_worker_t *w, const char *reason) {
    msgpack_packer *pk = broker_events_begin(self->events, "worker-offline", 2);
    if (!pk)
        return;
    zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
    zt_pack_kv_cstr(pk, "reason", reason);
    broker_events_send(self->events);
}

/* ---- journal records (docs/DURABILITY.md) ----------------------------------- */

/* Fills the ADD record of a task as it is now. due: unix seconds, 0 = ready. */
static void add_record(broker_jrec_t *rec, const broker_task_t *t, double due, uint8_t flags) {
    const char *queue = broker_queue_name(broker_task_queue(t));
    size_t body_size;
    memset(rec, 0, sizeof *rec);
    rec->type = BROKER_JREC_ADD;
    rec->flags = flags | (broker_task_redelivered(t) ? BROKER_JREC_F_REDELIVERED : 0);
    rec->revoked = (uint8_t)broker_task_revoked(t);
    rec->priority = (uint8_t)broker_task_priority(t);
    rec->retries = broker_task_retries(t);
    rec->expires = broker_task_expires(t);
    rec->due = due;
    rec->id = broker_task_id(t);
    rec->id_len = broker_task_id_len(t);
    rec->name = broker_task_name(t);
    rec->name_len = strlen(rec->name);
    rec->queue = queue;
    rec->queue_len = strlen(queue);
    rec->body = broker_task_body(t, &body_size);
    rec->body_size = body_size;
}

static void j_add(broker_t *self, const broker_task_t *t, double due) {
    broker_jrec_t rec;
    add_record(&rec, t, due, 0);
    broker_journal_append(self->journal, &rec);
}

/* DISPATCH, READY, DONE: records that carry only the id. */
static void j_id(broker_t *self, broker_jrec_type_t type, const broker_task_t *t) {
    broker_jrec_t rec = {.type = type, .id = broker_task_id(t), .id_len = broker_task_id_len(t)};
    broker_journal_append(self->journal, &rec);
}

static void j_requeue(broker_t *self, const broker_task_t *t) {
    broker_jrec_t rec = {.type = BROKER_JREC_REQUEUE,
                         .flags = broker_task_redelivered(t) ? BROKER_JREC_F_REDELIVERED : 0,
                         .id = broker_task_id(t),
                         .id_len = broker_task_id_len(t)};
    broker_journal_append(self->journal, &rec);
}

static void j_retry(broker_t *self, const broker_task_t *t, double due) {
    broker_jrec_t rec = {.type = BROKER_JREC_RETRY,
                         .retries = broker_task_retries(t),
                         .due = due,
                         .id = broker_task_id(t),
                         .id_len = broker_task_id_len(t)};
    broker_journal_append(self->journal, &rec);
}

static void j_revoke(broker_t *self, const broker_task_t *t) {
    broker_jrec_t rec = {.type = BROKER_JREC_REVOKE,
                         .revoked = (uint8_t)broker_task_revoked(t),
                         .id = broker_task_id(t),
                         .id_len = broker_task_id_len(t)};
    broker_journal_append(self->journal, &rec);
}

/* queue NULL: every queue */
static void j_purge(broker_t *self, const char *queue) {
    broker_jrec_t rec = {.type = BROKER_JREC_PURGE,
                         .queue = queue ? queue : "",
                         .queue_len = queue ? strlen(queue) : 0};
    broker_journal_append(self->journal, &rec);
}

static void j_revoked_id(broker_t *self, const char *id) {
    broker_jrec_t rec = {.type = BROKER_JREC_REVOKED_ID, .id = id, .id_len = strlen(id)};
    broker_journal_append(self->journal, &rec);
}

/* Unix seconds of a timer heap due time (monotonic usecs), never 0. */
static double due_wall(const broker_t *self, int64_t due) {
    double w = broker_due_to_wall(self, due);
    return w > 1 ? w : 1;
}

/* ---- replies that wait for durability ---------------------------------------- */

#define HELD_HEADER 14 /* lsn u64, cmd u8, identity size u8, body size u32 */

/* Sends a SUBMIT reply now if nothing before it waits, else queues it until
 * the journal has made everything appended so far durable. */
static void submit_reply(broker_t *self, const void *identity, size_t isize, int cmd,
                         const void *body, size_t body_size) {
    uint64_t lsn = broker_journal_appended(self->journal);
    if (self->held_count == 0 && lsn <= broker_journal_durable(self->journal)) {
        send_raw(self, identity, isize, cmd, body, body_size, NULL, 0);
        return;
    }
    size_t need = HELD_HEADER + isize + body_size;
    if (self->held_head > 0 && self->held.size + need > self->held.capacity) {
        /* reclaim what was sent before growing */
        memmove(self->held.data, self->held.data + self->held_head,
                self->held.size - self->held_head);
        self->held.size -= self->held_head;
        self->held_head = 0;
    }
    unsigned char *p = broker_jbuf_append(&self->held, need);
    uint32_t bs = (uint32_t)body_size;
    memcpy(p, &lsn, 8);
    p[8] = (unsigned char)cmd;
    p[9] = (unsigned char)isize;
    memcpy(p + 10, &bs, 4);
    memcpy(p + HELD_HEADER, identity, isize);
    memcpy(p + HELD_HEADER + isize, body, body_size);
    self->held_count++;
}

/* Sends every held reply whose records are durable now, in order. */
static void release_replies(broker_t *self) {
    uint64_t durable = broker_journal_durable(self->journal);
    while (self->held_head < self->held.size) {
        const unsigned char *p = self->held.data + self->held_head;
        uint64_t lsn;
        uint32_t bs;
        memcpy(&lsn, p, 8);
        if (lsn > durable)
            break;
        memcpy(&bs, p + 10, 4);
        size_t isize = p[9];
        send_raw(self, p + HELD_HEADER, isize, p[8], p + HELD_HEADER + isize, bs, NULL, 0);
        self->held_head += HELD_HEADER + isize + bs;
        self->held_count--;
    }
    if (self->held_head == self->held.size)
        self->held_head = self->held.size = 0;
}

/* ---- queues and task life cycle ------------------------------------------- */

/* The queue named name[0..len); created when create is set (NULL past
 * QUEUES_MAX queues). */
static broker_queue_t *get_queue(broker_t *self, const char *name, size_t len, bool create) {
    broker_queue_t *q = self->last_queue;
    if (q) {
        const char *qn = broker_queue_name(q);
        if (strncmp(qn, name, len) == 0 && qn[len] == '\0')
            return q;
    }
    char key[ZT_QUEUE_MAX + 1];
    if (len > ZT_QUEUE_MAX)
        return NULL;
    cstr(key, sizeof key, name, len);
    q = zhashx_lookup(self->queues, key);
    if (!q && create) {
        if (zhashx_size(self->queues) >= QUEUES_MAX)
            return NULL;
        q = broker_queue_new(key);
        zhashx_insert(self->queues, key, q);
        zt_debug("queue %s created", key);
    }
    if (q)
        self->last_queue = q;
    return q;
}

static broker_task_t *find_task(broker_t *self, const char *id, size_t len) {
    char key[ZT_ID_MAX + 1];
    if (len > ZT_ID_MAX)
        return NULL;
    cstr(key, sizeof key, id, len);
    return zhashx_lookup(self->tasks, key);
}

/* Forgets a finished task: out of the hash, which frees the record. */
static void forget_task(broker_t *self, broker_task_t *t) {
    j_id(self, BROKER_JREC_DONE, t);
    broker_recent_add(self->recent, broker_task_id(t));
    self->queued_bytes -= broker_task_size(t);
    zhashx_delete(self->tasks, broker_task_id(t));
}

/* Puts a task on the timer heap, due at `due` (monotonic usecs). */
static void schedule_task(broker_t *self, broker_task_t *t, int64_t due) {
    broker_task_set_due(t, due);
    broker_task_set_state(t, BROKER_TASK_SCHEDULED);
    broker_timer_heap_insert(self->timers, due, t);
    broker_queue_add_scheduled(broker_task_queue(t), 1);
}

/* Marks a task that is in no list revoked for `reason` (counting it) and
 * queues it as a tombstone. */
static void tombstone(broker_t *self, broker_task_t *t, broker_revoked_t reason) {
    broker_task_set_revoked(t, reason);
    if (reason == BROKER_REVOKED_EXPIRED)
        self->stats.expired++;
    else
        self->stats.revoked++;
    event_task_revoked(self, t, broker_revoked_name(reason));
    j_revoke(self, t);
    broker_queue_push(broker_task_queue(t), t, self->now);
    self->dispatch_dirty = true;
}

/* wall: unix seconds, or 0 to read the clock only if the task can expire */
static bool is_expired(const broker_task_t *t, double wall) {
    double expires = broker_task_expires(t);
    if (expires <= 0)
        return false;
    return expires <= (wall > 0 ? wall : zt_clock_wall());
}

/* A task leaves the timer heap, or arrives due now: into its queue, as a
 * tombstone if it expired meanwhile. wall as for is_expired(). */
static void make_ready(broker_t *self, broker_task_t *t, double wall) {
    if (broker_task_revoked(t) == BROKER_REVOKED_NONE && is_expired(t, wall)) {
        tombstone(self, t, BROKER_REVOKED_EXPIRED);
        return;
    }
    broker_queue_push(broker_task_queue(t), t, self->now);
    self->dispatch_dirty = true;
}

static void release_timers(broker_t *self) {
    broker_task_t *t;
    while ((t = broker_timer_heap_pop_due(self->timers, self->now))) {
        broker_queue_add_scheduled(broker_task_queue(t), -1);
        j_id(self, BROKER_JREC_READY, t);
        make_ready(self, t, 0);
    }
}

/* Puts back everything a worker holds, at the head of their queues and in
 * their original order. started_only: flag redelivered only the tasks that
 * started (BYE); otherwise all (the worker died: any of them may have run). */
static void requeue_in_flight(broker_t *self, broker_worker_t *w, bool started_only) {
    broker_task_list_t *list = broker_worker_in_flight(w);
    broker_task_t *t;
    while ((t = list->tail)) {
        bool started = broker_task_state(t) == BROKER_TASK_STARTED;
        broker_worker_unassign(w, t);
        broker_task_set_started(t, 0);
        if (!started_only || started) {
            broker_task_set_redelivered(t, true);
            self->stats.redelivered++;
        }
        j_requeue(self, t);
        broker_queue_push_head(broker_task_queue(t), t, self->now);
        zt_info("task %s %s requeued from %s%s", broker_task_id(t), broker_task_name(t),
                broker_worker_name(w), broker_task_redelivered(t) ? " (redelivered)" : "");
    }
    self->dispatch_dirty = true;
}

/* A worker is gone (BYE or silence): requeue, publish, forget it. */
static void worker_gone(broker_t *self, broker_worker_t *w, const char *reason) {
    bool bye = strcmp(reason, "bye") == 0;
    size_t held = broker_worker_in_flight(w)->count;
    if (bye)
        zt_info("worker %s left (%zu tasks in flight requeued)", broker_worker_name(w), held);
    else if (strcmp(reason, "revoked") == 0)
        zt_warn("worker %s cut off: its key was withdrawn (%zu tasks in flight requeued)",
                broker_worker_name(w), held);
    else
        zt_warn("worker %s lost: no message for %lld ms (%zu tasks in flight requeued)",
                broker_worker_name(w), (long long)((self->now - broker_worker_last_seen(w)) / 1000),
                held);
    requeue_in_flight(self, w, bye);
    size_t idsize;
    const void *identity = broker_worker_identity(w, &idsize);
    broker_broadcasts_worker_gone(self->broadcasts, identity, idsize);
    event_worker_offline(self, w, reason);
    broker_workers_remove(self->workers, &w);
}

/* ---- dispatch -------------------------------------------------------------- */

static void send_dispatch(broker_t *self, broker_worker_t *w, broker_task_t *t) {
    const char *revoked = broker_revoked_name(broker_task_revoked(t));
    pack_reset(self);
    msgpack_pack_map(&self->pk, 4);
    zt_pack_kv_cstr(&self->pk, "id", broker_task_id(t));
    zt_pack_kv_uint(&self->pk, "retries", broker_task_retries(t));
    zt_pack_kv_bool(&self->pk, "redelivered", broker_task_redelivered(t));
    zt_pack_kv_cstr(&self->pk, "revoked", revoked); /* NULL packs nil */
    size_t body_size, idsize;
    const void *body = broker_task_body(t, &body_size);
    const void *identity = broker_worker_identity(w, &idsize);
    send_raw(self, identity, idsize, ZT_CMD_DISPATCH, body, body_size, self->out.data,
             self->out.size);
    broker_worker_sent(w, self->now);
}

/* Hands ready tasks to workers with credit, one task per worker in turn so
 * each queue's work spreads over its consumers. Stops when a full round of
 * workers took nothing. */
static void dispatch(broker_t *self) {
    if (!self->dispatch_dirty)
        return;
    self->dispatch_dirty = false;
    size_t n = broker_workers_size(self->workers);
    size_t misses = 0;
    double wall = 0;
    while (misses < n) {
        broker_worker_t *w = broker_workers_next(self->workers);
        broker_task_t *t = NULL;
        if (broker_worker_credit(w) > 0)
            t = broker_worker_pick(w);
        if (!t) {
            misses++;
            continue;
        }
        misses = 0;
        if (broker_task_revoked(t) == BROKER_REVOKED_NONE && broker_task_expires(t) > 0) {
            if (wall == 0)
                wall = zt_clock_wall();
            if (is_expired(t, wall)) {
                /* it goes out now anyway: as a tombstone, to this worker */
                broker_task_set_revoked(t, BROKER_REVOKED_EXPIRED);
                self->stats.expired++;
                event_task_revoked(self, t, "expired");
                j_revoke(self, t);
            }
        }
        broker_worker_assign(w, t, self->now);
        j_id(self, BROKER_JREC_DISPATCH, t);
        send_dispatch(self, w, t);
        self->stats.dispatched++;
        if (zt_log_enabled(ZT_LOG_DEBUG))
            zt_debug("task %s %s dispatched to %s", broker_task_id(t), broker_task_name(t),
                     broker_worker_name(w));
    }
}

/* ---- client commands --------------------------------------------------------- */

static void handle_submit(broker_t *self, const void *identity, size_t isize, const void *body,
                          size_t body_size) {
    self->stats.submitted++;
    const msgpack_object *root = parse_body(self, body, body_size);
    if (!root) {
        reject(self, identity, isize, NULL, ZT_WIRE_BAD_BODY, "body is not a MessagePack map",
               true);
        return;
    }
    zt_taskmsg_t msg;
    char reason[256];
    char id[ZT_ID_MAX + 1];
    if (zt_taskmsg_parse(root, &msg, reason, sizeof reason) != 0) {
        /* name the id if it is readable, so a pipelining client can match */
        const char *rid;
        size_t rlen;
        bool have_id =
            zt_mp_get_str(root, "id", &rid, &rlen) == 0 && zt_taskmsg_valid_id(rid, rlen);
        if (have_id)
            cstr(id, sizeof id, rid, rlen);
        reject(self, identity, isize, have_id ? id : NULL, ZT_WIRE_INVALID_FIELD, reason, true);
        return;
    }
    cstr(id, sizeof id, msg.id, msg.id_len);
    if (zhashx_lookup(self->tasks, id)) {
        reject(self, identity, isize, id, ZT_WIRE_DUPLICATE_ID,
               "the broker already holds a task with this id", false);
        return;
    }
    if (broker_recent_has(self->recent, id)) {
        reject(self, identity, isize, id, ZT_WIRE_DUPLICATE_ID,
               "a task with this id finished lately", false);
        return;
    }
    broker_queue_t *queue = get_queue(self, msg.queue, msg.queue_len, true);
    if (!queue) {
        reject(self, identity, isize, id, ZT_WIRE_QUEUE_FULL, "too many queues", false);
        return;
    }
    if (!broker_queue_accepts(queue, msg.task, msg.task_len)) {
        snprintf(reason, sizeof reason, "no worker serving queue '%s' registered task '%.*s'",
                 broker_queue_name(queue), (int)msg.task_len, msg.task);
        reject(self, identity, isize, id, ZT_WIRE_UNKNOWN_TASK, reason, false);
        return;
    }

    /* bounded resources: refuse rather than grow without limit */
    if (self->max_queue_length &&
        broker_queue_size(queue) + broker_queue_scheduled(queue) >= self->max_queue_length) {
        snprintf(reason, sizeof reason, "queue '%s' holds %llu tasks (limit %llu)",
                 broker_queue_name(queue),
                 (unsigned long long)(broker_queue_size(queue) + broker_queue_scheduled(queue)),
                 (unsigned long long)self->max_queue_length);
        reject(self, identity, isize, id, ZT_WIRE_QUEUE_FULL, reason, false);
        return;
    }
    if (self->max_queued_bytes &&
        self->queued_bytes + body_size + sizeof(void *) * 16 > self->max_queued_bytes) {
        snprintf(reason, sizeof reason, "the broker holds %llu bytes of tasks (limit %llu)",
                 (unsigned long long)self->queued_bytes,
                 (unsigned long long)self->max_queued_bytes);
        reject(self, identity, isize, id, ZT_WIRE_QUEUE_FULL, reason, false);
        return;
    }
    if (broker_journal_pending(self->journal) > JOURNAL_PENDING_MAX) {
        reject(self, identity, isize, id, ZT_WIRE_QUEUE_FULL,
               "the journal cannot be written (see the broker's log)", false);
        return;
    }

    /* When does it run? eta wins over countdown (PROTOCOL.md §7). */
    double delay = -1; /* seconds from now; < 0: no delay */
    double wall = 0;
    if (msg.eta > 0 || msg.countdown >= 0 || msg.expires > 0)
        wall = zt_clock_wall();
    if (msg.eta > 0)
        delay = msg.eta - wall;
    else if (msg.countdown >= 0)
        delay = msg.countdown;

    broker_task_t *t = broker_task_new(body, body_size, &msg);
    broker_task_set_queue(t, queue);
    zhashx_insert(self->tasks, broker_task_id(t), t);
    self->queued_bytes += broker_task_size(t);
    j_add(self, t, delay > 0 ? wall + delay : 0);
    self->stats.accepted++;

    /* goes out once the ADD record is durable (PROTOCOL.md §5.1) */
    pack_reset(self);
    msgpack_pack_map(&self->pk, 1);
    zt_pack_kv_cstr(&self->pk, "id", id);
    submit_reply(self, identity, isize, ZT_CMD_ACCEPTED, self->out.data, self->out.size);

    msgpack_packer *pk = broker_events_begin(self->events, "task-received", 7);
    if (pk) {
        zt_pack_kv_cstr(pk, "id", id);
        zt_pack_kv_cstr(pk, "name", broker_task_name(t));
        zt_pack_kv_cstr(pk, "queue", broker_queue_name(queue));
        zt_pack_kv_int(pk, "priority", msg.priority);
        if (delay >= 0)
            zt_pack_kv_double(pk, "eta", msg.eta > 0 ? msg.eta : wall + delay);
        else
            zt_pack_kv_nil(pk, "eta");
        if (msg.expires > 0)
            zt_pack_kv_double(pk, "expires", msg.expires);
        else
            zt_pack_kv_nil(pk, "expires");
        zt_pack_kv_uint(pk, "retries", broker_task_retries(t));
        broker_events_send(self->events);
    }
    if (zt_log_enabled(ZT_LOG_DEBUG))
        zt_debug("task %s %s received (queue %s, priority %d)", id, broker_task_name(t),
                 broker_queue_name(queue), msg.priority);

    if (zhashx_size(self->revoked_ids) && zhashx_lookup(self->revoked_ids, id)) {
        tombstone(self, t, BROKER_REVOKED_REVOKED);
    } else if (delay > 0) {
        /* the batch's clock may be a little stale: take a fresh one so the
         * task never becomes due early */
        int64_t now = zt_clock_mono_us();
        schedule_task(self, t, now + (int64_t)ceil(delay * 1e6));
    } else {
        make_ready(self, t, wall);
    }
}

static bool printable(const char *s, size_t len);

/* CURVE: may the sender run this CONTROL op? If not, answers CONTROL-REPLY
 * {req, ok: false, error: "forbidden: ..."} and returns false. A request too
 * malformed to tell is left to broker_control_handle() (ERROR invalid-field). */
static bool control_allowed(broker_t *self, const void *identity, size_t isize,
                            const msgpack_object *root) {
    const char *op;
    size_t op_len;
    uint64_t req;
    if (!self->peer || zt_mp_get_str(root, "op", &op, &op_len) != 0 ||
        zt_mp_get_uint(root, "req", &req) != 0)
        return true;
    broker_role_t need = broker_access_control_roles(op, op_len);
    if (self->peer->role & need)
        return true;
    char roles[64], error[320];
    bool show = op_len <= 64 && printable(op, op_len);
    snprintf(error, sizeof error, "forbidden: op '%.*s' needs role %s; key '%s' has role %s",
             show ? (int)op_len : 1, show ? op : "?", broker_roles_text(need, roles, sizeof roles),
             self->peer->name, broker_role_name(self->peer->role));
    peer_warn(self, identity, isize, "%s", error);
    self->reply.size = 0;
    msgpack_pack_map(&self->reply_pk, 3);
    zt_pack_kv_uint(&self->reply_pk, "req", req);
    zt_pack_kv_bool(&self->reply_pk, "ok", false);
    zt_pack_kv_cstr(&self->reply_pk, "error", error);
    send_raw(self, identity, isize, ZT_CMD_CONTROL_REPLY, self->reply.data, self->reply.size, NULL,
             0);
    return false;
}

static void handle_control(broker_t *self, const void *identity, size_t isize,
                           const msgpack_object *root) {
    char reason[256];
    bool deferred;
    if (!control_allowed(self, identity, isize, root))
        return;
    self->reply.size = 0;
    if (broker_control_handle(self, identity, isize, root, &self->reply_pk, &deferred, reason,
                              sizeof reason) != 0) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD, reason);
        return;
    }
    if (deferred)
        return; /* a broadcast: finish_broadcasts() answers */
    send_raw(self, identity, isize, ZT_CMD_CONTROL_REPLY, self->reply.data, self->reply.size, NULL,
             0);
}

/* ---- broadcast (PROTOCOL.md §6.5) --------------------------------------------------- */

/* True if the worker's name is one of the strings in dest (an array). */
static bool named_in(const broker_worker_t *w, const msgpack_object *dest) {
    const char *name = broker_worker_name(w);
    size_t len = strlen(name);
    for (uint32_t i = 0; i < dest->via.array.size; i++) {
        const msgpack_object *o = &dest->via.array.ptr[i];
        if (o->via.str.size == len && memcmp(o->via.str.ptr, name, len) == 0)
            return true;
    }
    return false;
}

/* Packs CONTROL {req, op, ...arguments} into self->out. Arguments named
 * req or op are left out: those two are the broker's. */
static void pack_worker_control(broker_t *self, uint64_t req, const broker_broadcast_request_t *r) {
    size_t nargs = 0;
    const msgpack_object *args = r->arguments;
    for (uint32_t i = 0; args && i < args->via.map.size; i++) {
        const msgpack_object *k = &args->via.map.ptr[i].key;
        nargs += !zt_mp_str_eq(k, "req") && !zt_mp_str_eq(k, "op");
    }
    pack_reset(self);
    msgpack_pack_map(&self->pk, 2 + nargs);
    zt_pack_kv_uint(&self->pk, "req", req);
    zt_pack_cstr(&self->pk, "op");
    zt_pack_strn(&self->pk, r->command, r->command_len);
    for (uint32_t i = 0; args && i < args->via.map.size; i++) {
        const msgpack_object_kv *kv = &args->via.map.ptr[i];
        if (zt_mp_str_eq(&kv->key, "req") || zt_mp_str_eq(&kv->key, "op"))
            continue;
        msgpack_pack_object(&self->pk, kv->key);
        msgpack_pack_object(&self->pk, kv->val);
    }
}

int broker_broadcast(broker_t *self, const void *client, size_t client_size, uint64_t req,
                     const broker_broadcast_request_t *r) {
    int64_t deadline = self->now + (int64_t)ceil(r->timeout * 1e6);
    broker_broadcast_t *bc =
        broker_broadcasts_start(self->broadcasts, client, client_size, req, deadline);
    if (!bc)
        return ZT_ERR_TOO_LARGE;
    size_t n = broker_workers_size(self->workers);
    for (size_t i = 0; i < n; i++) {
        broker_worker_t *w = broker_workers_at(self->workers, i);
        if (!broker_worker_registered(w) || (r->destination && !named_in(w, r->destination)))
            continue;
        size_t idsize;
        const void *identity = broker_worker_identity(w, &idsize);
        uint64_t wreq = broker_broadcast_add_target(self->broadcasts, bc, identity, idsize,
                                                    broker_worker_name(w));
        pack_worker_control(self, wreq, r);
        send_to_worker(self, w, ZT_CMD_CONTROL);
    }
    zt_info("broadcast '%.*s' sent to %zu workers (timeout %.3g s)", (int)r->command_len,
            r->command, broker_broadcast_targets(bc), r->timeout);
    return 0;
}

/* Answers every broadcast that is complete or past its deadline. */
static void finish_broadcasts(broker_t *self) {
    broker_broadcast_t *bc;
    while ((bc = broker_broadcasts_pop_finished(self->broadcasts, self->now))) {
        size_t csize;
        const void *client = broker_broadcast_client(bc, &csize);
        self->reply.size = 0;
        msgpack_pack_map(&self->reply_pk, 3);
        zt_pack_kv_uint(&self->reply_pk, "req", broker_broadcast_client_req(bc));
        zt_pack_kv_bool(&self->reply_pk, "ok", true);
        zt_pack_cstr(&self->reply_pk, "result");
        broker_broadcast_pack_result(bc, &self->reply_pk);
        send_raw(self, client, csize, ZT_CMD_CONTROL_REPLY, self->reply.data, self->reply.size,
                 NULL, 0);
        zt_debug("broadcast answered: %zu of %zu workers replied", broker_broadcast_answered(bc),
                 broker_broadcast_targets(bc));
        broker_broadcast_destroy(&bc);
    }
}

/* ---- worker commands ------------------------------------------------------------ */

/* Reads an optional unsigned field; returns false (and answers
 * invalid-field) when it has the wrong type or exceeds max. */
static bool get_uint(broker_t *self, const void *identity, size_t isize, const msgpack_object *root,
                     const char *key, uint64_t *out, uint64_t dflt, uint64_t max) {
    int rc = zt_mp_get_uint(root, key, out);
    if (rc == ZT_ERR_NOT_FOUND) {
        *out = dflt;
        return true;
    }
    if (rc == 0 && *out <= max)
        return true;
    char reason[128];
    snprintf(reason, sizeof reason, "field '%s' must be an unsigned integer up to %llu", key,
             (unsigned long long)max);
    protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD, reason);
    return false;
}

/* Optional string field, borrowed; absent gives "" (len 0). */
static bool get_str(broker_t *self, const void *identity, size_t isize, const msgpack_object *root,
                    const char *key, const char **out, size_t *len) {
    int rc = zt_mp_get_str(root, key, out, len);
    if (rc == ZT_ERR_NOT_FOUND) {
        *out = "";
        *len = 0;
        return true;
    }
    if (rc == 0)
        return true;
    char reason[128];
    snprintf(reason, sizeof reason, "field '%s' must be a string", key);
    protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD, reason);
    return false;
}

/* Optional float field (ints accepted) in [lo, hi]. */
static bool get_double(broker_t *self, const void *identity, size_t isize,
                       const msgpack_object *root, const char *key, double *out, double dflt,
                       double lo, double hi) {
    int rc = zt_mp_get_double(root, key, out);
    if (rc == ZT_ERR_NOT_FOUND) {
        *out = dflt;
        return true;
    }
    if (rc == 0 && *out >= lo && *out <= hi)
        return true;
    char reason[128];
    snprintf(reason, sizeof reason, "field '%s' must be a number from %g to %g", key, lo, hi);
    protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD, reason);
    return false;
}

/* Required task id field. */
static bool get_id(broker_t *self, const void *identity, size_t isize, const msgpack_object *root,
                   const char **id, size_t *len) {
    if (zt_mp_get_str(root, "id", id, len) == 0 && zt_taskmsg_valid_id(*id, *len))
        return true;
    protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                   "field 'id' missing or not a task id");
    return false;
}

static bool printable(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void handle_hello(broker_t *self, const void *identity, size_t isize,
                         const msgpack_object *root) {
    char name[256], host[256];
    const char *s;
    size_t len;
    uint64_t pid, concurrency, credit;
    if (zt_mp_get_str(root, "name", &s, &len) != 0 || len == 0 || len >= sizeof name ||
        !printable(s, len)) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'name' must be a printable string of 1-255 bytes");
        return;
    }
    cstr(name, sizeof name, s, len);
    if (!get_str(self, identity, isize, root, "host", &s, &len))
        return;
    if (len >= sizeof host || !printable(s, len)) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'host' must be a printable string of at most 255 bytes");
        return;
    }
    cstr(host, sizeof host, s, len);
    if (!get_uint(self, identity, isize, root, "pid", &pid, 0, UINT32_MAX) ||
        !get_uint(self, identity, isize, root, "concurrency", &concurrency, 1, 1000000) ||
        !get_uint(self, identity, isize, root, "credit", &credit, concurrency, UINT32_MAX))
        return;

    const msgpack_object *qs = zt_mp_get(root, "queues");
    if (!qs || qs->type != MSGPACK_OBJECT_ARRAY || qs->via.array.size == 0 ||
        qs->via.array.size > HELLO_QUEUES_MAX) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'queues' must be an array of 1-64 queue names");
        return;
    }
    const msgpack_object *ts = zt_mp_get(root, "tasks");
    if (ts && ts->type == MSGPACK_OBJECT_NIL)
        ts = NULL;
    if (ts && (ts->type != MSGPACK_OBJECT_ARRAY || ts->via.array.size > HELLO_TASKS_MAX)) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'tasks' must be an array of at most 10000 task names");
        return;
    }
    size_t ntasks = ts ? ts->via.array.size : 0;
    for (size_t i = 0; i < ntasks; i++) {
        const msgpack_object *o = &ts->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR ||
            !zt_taskmsg_valid_name(o->via.str.ptr, o->via.str.size)) {
            protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                           "field 'tasks' holds something that is not a task name");
            return;
        }
    }
    broker_queue_t *queues[HELLO_QUEUES_MAX];
    size_t nqueues = 0;
    for (uint32_t i = 0; i < qs->via.array.size; i++) {
        const msgpack_object *o = &qs->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR ||
            !zt_taskmsg_valid_queue(o->via.str.ptr, o->via.str.size)) {
            protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                           "field 'queues' holds something that is not a queue name");
            return;
        }
    }
    for (uint32_t i = 0; i < qs->via.array.size; i++) {
        const msgpack_object *o = &qs->via.array.ptr[i];
        broker_queue_t *q = get_queue(self, o->via.str.ptr, o->via.str.size, true);
        if (!q) {
            protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD, "too many queues");
            return;
        }
        bool dup = false;
        for (size_t j = 0; j < nqueues; j++)
            dup |= queues[j] == q;
        if (!dup)
            queues[nqueues++] = q;
    }

    char **tasks = zt_calloc(ntasks ? ntasks : 1, sizeof *tasks);
    for (size_t i = 0; i < ntasks; i++)
        tasks[i] = zt_strndup(ts->via.array.ptr[i].via.str.ptr, ts->via.array.ptr[i].via.str.size);

    broker_worker_t *w = broker_workers_lookup(self->workers, identity, isize);
    bool known = w != NULL;
    if (!w)
        w = broker_workers_add(self->workers, identity, isize, self->now);
    if (!w) {
        for (size_t i = 0; i < ntasks; i++)
            free(tasks[i]);
        free(tasks);
        protocol_error(self, identity, isize, ZT_WIRE_BAD_FRAMES, "unusable peer identity");
        return;
    }
    broker_worker_register(w, name, host, pid, queues, nqueues,
                           ts ? (const char *const *)tasks : NULL, ntasks, (uint32_t)concurrency,
                           credit);
    broker_worker_set_curve_key(w, self->peer ? self->peer->key : NULL);
    for (size_t i = 0; i < ntasks; i++)
        free(tasks[i]);
    free(tasks);
    broker_worker_seen(w, self->now);

    char qlist[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < nqueues && used < sizeof qlist; i++)
        used += (size_t)snprintf(qlist + used, sizeof qlist - used, "%s%s", i ? "," : "",
                                 broker_queue_name(queues[i]));
    zt_info("worker %s %s (host %s, pid %llu, queues %s, concurrency %llu, credit %llu, %zu "
            "tasks%s%s%s)",
            name, known ? "registered again" : "online", host, (unsigned long long)pid, qlist,
            (unsigned long long)concurrency, (unsigned long long)broker_worker_credit(w), ntasks,
            self->peer ? ", key '" : "", self->peer ? self->peer->name : "", self->peer ? "'" : "");

    pack_reset(self);
    msgpack_pack_map(&self->pk, 3);
    zt_pack_kv_cstr(&self->pk, "broker", self->name);
    zt_pack_kv_uint(&self->pk, "heartbeat_ms", (uint64_t)(self->heartbeat_us / 1000));
    zt_pack_kv_uint(&self->pk, "liveness", (uint64_t)self->liveness);
    send_to_worker(self, w, ZT_CMD_WELCOME);

    msgpack_packer *pk = broker_events_begin(self->events, "worker-online", 5);
    if (pk) {
        zt_pack_kv_cstr(pk, "worker", name);
        zt_pack_kv_cstr(pk, "host", host);
        zt_pack_kv_uint(pk, "pid", pid);
        zt_pack_cstr(pk, "queues");
        msgpack_pack_array(pk, nqueues);
        for (size_t i = 0; i < nqueues; i++)
            zt_pack_cstr(pk, broker_queue_name(queues[i]));
        zt_pack_kv_uint(pk, "concurrency", concurrency);
        broker_events_send(self->events);
    }
    self->dispatch_dirty = true;
}

static void handle_credit(broker_t *self, broker_worker_t *w, const void *identity, size_t isize,
                          const msgpack_object *root) {
    uint64_t credit;
    if (zt_mp_get_uint(root, "credit", &credit) != 0) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'credit' missing or not an unsigned integer");
        return;
    }
    broker_worker_add_credit(w, credit);
    self->dispatch_dirty = true;
}

/* The task named by id if `w` holds it in flight, else NULL (logged). */
static broker_task_t *held_task(broker_t *self, broker_worker_t *w, const char *id, size_t len,
                                const char *what) {
    broker_task_t *t = find_task(self, id, len);
    if (t && broker_task_worker(t) == w)
        return t;
    zt_debug("%s from %s for task %.*s it does not hold: ignored", what, broker_worker_name(w),
             (int)len, id);
    return NULL;
}

static void mark_started(broker_t *self, broker_worker_t *w, broker_task_t *t, uint64_t pid);

static void handle_started(broker_t *self, broker_worker_t *w, const void *identity, size_t isize,
                           const msgpack_object *root) {
    const char *id;
    size_t len;
    uint64_t pid;
    if (!get_id(self, identity, isize, root, &id, &len) ||
        !get_uint(self, identity, isize, root, "pid", &pid, 0, UINT32_MAX))
        return;
    broker_task_t *t = held_task(self, w, id, len, "STARTED");
    if (t)
        mark_started(self, w, t, pid);
}

/* A task began to run on w: from STARTED, or from a DONE that carries the
 * pid of a task too short to have been announced (PROTOCOL.md §6.3). */
static void mark_started(broker_t *self, broker_worker_t *w, broker_task_t *t, uint64_t pid) {
    if (broker_task_state(t) == BROKER_TASK_STARTED)
        return;
    broker_task_set_state(t, BROKER_TASK_STARTED);
    broker_task_set_started(t, zt_clock_wall());
    broker_worker_counters(w)->started++;
    msgpack_packer *pk = broker_events_begin(self->events, "task-started", 6);
    if (pk) {
        zt_pack_kv_cstr(pk, "id", broker_task_id(t));
        zt_pack_kv_cstr(pk, "name", broker_task_name(t));
        zt_pack_kv_cstr(pk, "queue", broker_queue_name(broker_task_queue(t)));
        zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
        zt_pack_kv_uint(pk, "pid", pid);
        zt_pack_kv_uint(pk, "retries", broker_task_retries(t));
        broker_events_send(self->events);
    }
}

static void handle_progress(broker_t *self, broker_worker_t *w, const void *identity, size_t isize,
                            const msgpack_object *root) {
    const char *id, *message;
    size_t len, mlen;
    double current, total;
    if (!get_id(self, identity, isize, root, &id, &len) ||
        !get_double(self, identity, isize, root, "current", &current, 0, -1e300, 1e300) ||
        !get_double(self, identity, isize, root, "total", &total, 0, -1e300, 1e300) ||
        !get_str(self, identity, isize, root, "message", &message, &mlen))
        return;
    broker_task_t *t = held_task(self, w, id, len, "PROGRESS");
    if (!t)
        return;
    msgpack_packer *pk = broker_events_begin(self->events, "task-progress", 6);
    if (pk) {
        zt_pack_kv_cstr(pk, "id", broker_task_id(t));
        zt_pack_kv_cstr(pk, "name", broker_task_name(t));
        zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
        zt_pack_kv_double(pk, "current", current);
        zt_pack_kv_double(pk, "total", total);
        zt_pack_cstr(pk, "message");
        zt_pack_strn(pk, message, mlen > TEXT_MAX ? TEXT_MAX : mlen);
        broker_events_send(self->events);
    }
}

typedef enum { DONE_SUCCESS, DONE_FAILURE, DONE_RETRY, DONE_REVOKED } done_status_t;

static void handle_done(broker_t *self, broker_worker_t *w, const void *identity, size_t isize,
                        const msgpack_object *root) {
    const char *id, *status, *error;
    size_t len, slen, elen;
    double runtime, countdown;
    uint64_t credit, pid;
    if (!get_id(self, identity, isize, root, &id, &len) ||
        !get_str(self, identity, isize, root, "status", &status, &slen) ||
        !get_str(self, identity, isize, root, "error", &error, &elen) ||
        !get_double(self, identity, isize, root, "runtime", &runtime, 0, 0, 1e12) ||
        !get_double(self, identity, isize, root, "countdown", &countdown, 0, 0, 1e9) ||
        !get_uint(self, identity, isize, root, "credit", &credit, 0, UINT32_MAX) ||
        !get_uint(self, identity, isize, root, "pid", &pid, 0, UINT32_MAX))
        return;
    done_status_t st;
    if (slen == 7 && memcmp(status, "success", 7) == 0)
        st = DONE_SUCCESS;
    else if (slen == 7 && memcmp(status, "failure", 7) == 0)
        st = DONE_FAILURE;
    else if (slen == 5 && memcmp(status, "retry", 5) == 0)
        st = DONE_RETRY;
    else if (slen == 7 && memcmp(status, "revoked", 7) == 0)
        st = DONE_REVOKED;
    else {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'status' must be success, failure, retry or revoked");
        return;
    }
    if (credit) {
        broker_worker_add_credit(w, credit);
        self->dispatch_dirty = true;
    }
    /* Normally w holds the task. It may also be in flight at another record
     * of the same worker process: one that reconnected with a new socket
     * (Paranoid Pirate) while its old identity has not timed out yet. The
     * outcome is real either way, so accept it rather than run the task
     * again when the old record dies. */
    broker_task_t *t = find_task(self, id, len);
    broker_worker_t *holder = t ? broker_task_worker(t) : NULL;
    if (!holder) {
        zt_debug("DONE from %s for task %.*s not in flight: ignored", broker_worker_name(w),
                 (int)len, id);
        return;
    }
    if (holder != w)
        zt_info("task %s finished by %s while dispatched to %s", broker_task_id(t),
                broker_worker_name(w), broker_worker_name(holder));
    if (pid)
        mark_started(self, holder, t, pid); /* watchers see it start before it ends */
    broker_worker_unassign(holder, t);
    broker_worker_counters_t *k = broker_worker_counters(w);
    const char *queue = broker_queue_name(broker_task_queue(t));
    if (elen > TEXT_MAX)
        elen = TEXT_MAX;

    if (st == DONE_RETRY && broker_task_revoked(t) != BROKER_REVOKED_NONE) {
        /* revoked while it ran, and the worker did not record it: send it
         * back as a tombstone so REVOKED reaches the backend */
        broker_task_set_started(t, 0);
        j_id(self, BROKER_JREC_READY, t);
        broker_queue_push(broker_task_queue(t), t, self->now);
        self->dispatch_dirty = true;
        return;
    }
    switch (st) {
    case DONE_SUCCESS: {
        k->succeeded++;
        self->stats.succeeded++;
        msgpack_packer *pk = broker_events_begin(self->events, "task-succeeded", 5);
        if (pk) {
            zt_pack_kv_cstr(pk, "id", broker_task_id(t));
            zt_pack_kv_cstr(pk, "name", broker_task_name(t));
            zt_pack_kv_cstr(pk, "queue", queue);
            zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
            zt_pack_kv_double(pk, "runtime", runtime);
            broker_events_send(self->events);
        }
        if (zt_log_enabled(ZT_LOG_DEBUG))
            zt_debug("task %s %s succeeded on %s in %.3fs", broker_task_id(t), broker_task_name(t),
                     broker_worker_name(w), runtime);
        forget_task(self, t);
        break;
    }
    case DONE_FAILURE: {
        k->failed++;
        self->stats.failed++;
        msgpack_packer *pk = broker_events_begin(self->events, "task-failed", 6);
        if (pk) {
            zt_pack_kv_cstr(pk, "id", broker_task_id(t));
            zt_pack_kv_cstr(pk, "name", broker_task_name(t));
            zt_pack_kv_cstr(pk, "queue", queue);
            zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
            zt_pack_kv_double(pk, "runtime", runtime);
            zt_pack_cstr(pk, "error");
            zt_pack_strn(pk, error, elen);
            broker_events_send(self->events);
        }
        zt_info("task %s %s failed on %s after %.3fs", broker_task_id(t), broker_task_name(t),
                broker_worker_name(w), runtime);
        forget_task(self, t);
        break;
    }
    case DONE_REVOKED:
        k->revoked++;
        if (broker_task_revoked(t) == BROKER_REVOKED_NONE) {
            /* the worker revoked it on its own (e.g. a REVOKE that raced a
             * requeue): still publish the final state */
            self->stats.revoked++;
            event_task_revoked(self, t, "revoked");
        }
        forget_task(self, t);
        break;
    case DONE_RETRY: {
        k->retried++;
        self->stats.retried++;
        uint32_t retries = broker_task_retries(t) + 1;
        broker_task_set_retries(t, retries);
        broker_task_set_redelivered(t, false);
        broker_task_set_started(t, 0);
        msgpack_packer *pk = broker_events_begin(self->events, "task-retried", 7);
        if (pk) {
            zt_pack_kv_cstr(pk, "id", broker_task_id(t));
            zt_pack_kv_cstr(pk, "name", broker_task_name(t));
            zt_pack_kv_cstr(pk, "queue", queue);
            zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
            zt_pack_kv_uint(pk, "retries", retries);
            zt_pack_kv_double(pk, "countdown", countdown);
            zt_pack_cstr(pk, "error");
            zt_pack_strn(pk, error, elen);
            broker_events_send(self->events);
        }
        zt_info("task %s %s retry %u in %.3fs", broker_task_id(t), broker_task_name(t), retries,
                countdown);
        j_retry(self, t, countdown > 0 ? zt_clock_wall() + countdown : 0);
        if (countdown > 0) {
            int64_t now = zt_clock_mono_us();
            schedule_task(self, t, now + (int64_t)ceil(countdown * 1e6));
        } else {
            make_ready(self, t, 0);
        }
        break;
    }
    }
}

static void handle_release(broker_t *self, broker_worker_t *w, const void *identity, size_t isize,
                           const msgpack_object *root) {
    const msgpack_object *ids = zt_mp_get(root, "ids");
    if (!ids || ids->type != MSGPACK_OBJECT_ARRAY) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'ids' must be an array of task ids");
        return;
    }
    for (uint32_t i = 0; i < ids->via.array.size; i++) {
        const msgpack_object *o = &ids->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR ||
            !zt_taskmsg_valid_id(o->via.str.ptr, o->via.str.size)) {
            protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                           "field 'ids' holds something that is not a task id");
            return;
        }
    }
    /* backwards, so that pushing each at the head keeps their order */
    size_t released = 0;
    for (uint32_t i = ids->via.array.size; i-- > 0;) {
        const msgpack_object *o = &ids->via.array.ptr[i];
        broker_task_t *t = held_task(self, w, o->via.str.ptr, o->via.str.size, "RELEASE");
        if (!t)
            continue;
        bool started = broker_task_state(t) == BROKER_TASK_STARTED;
        broker_worker_unassign(w, t);
        broker_task_set_started(t, 0);
        if (started) {
            /* it may have run partly: whoever gets it must know */
            broker_task_set_redelivered(t, true);
            self->stats.redelivered++;
        }
        j_requeue(self, t);
        broker_queue_push_head(broker_task_queue(t), t, self->now);
        released++;
    }
    if (released) {
        zt_info("worker %s released %zu tasks", broker_worker_name(w), released);
        self->dispatch_dirty = true;
    }
}

/* A worker answers a broadcast's CONTROL. Late or stray replies are dropped. */
static void handle_control_reply(broker_t *self, broker_worker_t *w, const void *identity,
                                 size_t isize, const msgpack_object *root) {
    uint64_t req;
    if (zt_mp_get_uint(root, "req", &req) != 0) {
        protocol_error(self, identity, isize, ZT_WIRE_INVALID_FIELD,
                       "field 'req' missing or not an unsigned integer");
        return;
    }
    if (broker_broadcasts_reply(self->broadcasts, identity, isize, req, root) != 0)
        zt_debug("CONTROL-REPLY %llu from %s answers no pending broadcast: dropped",
                 (unsigned long long)req, broker_worker_name(w));
}

static void handle_heartbeat(broker_t *self, broker_worker_t *w, const void *identity, size_t isize,
                             const msgpack_object *root) {
    uint64_t active, processed;
    broker_worker_counters_t *k = broker_worker_counters(w);
    if (!get_uint(self, identity, isize, root, "active", &active, k->hb_active, UINT64_MAX) ||
        !get_uint(self, identity, isize, root, "processed", &processed, k->hb_processed,
                  UINT64_MAX))
        return;
    k->hb_active = active;
    k->hb_processed = processed;
    msgpack_packer *pk = broker_events_begin(self->events, "worker-heartbeat", 4);
    if (pk) {
        zt_pack_kv_cstr(pk, "worker", broker_worker_name(w));
        zt_pack_kv_uint(pk, "active", active);
        zt_pack_kv_uint(pk, "processed", processed);
        zt_pack_kv_uint(pk, "in_flight", broker_worker_in_flight(w)->count);
        broker_events_send(self->events);
    }
}

/* ---- message entry point ----------------------------------------------------------- */

/* True for the commands only a worker that said HELLO may send. */
static bool worker_command(int cmd) {
    switch (cmd) {
    case ZT_CMD_CREDIT:
    case ZT_CMD_STARTED:
    case ZT_CMD_PROGRESS:
    case ZT_CMD_DONE:
    case ZT_CMD_RELEASE:
    case ZT_CMD_HEARTBEAT:
    case ZT_CMD_BYE:
    case ZT_CMD_CONTROL_REPLY:
        return true;
    default:
        return false;
    }
}

/* ---- CURVE: roles (docs/SECURITY.md) ----------------------------------------------- */

/* What a command does, for refusals a human reads. */
static const char *command_purpose(int cmd) {
    switch (cmd) {
    case ZT_CMD_SUBMIT:
        return "submitting tasks (SUBMIT)";
    case ZT_CMD_CONTROL:
        return "querying the broker (CONTROL)";
    case ZT_CMD_HELLO:
        return "registering as a worker (HELLO)";
    default:
        return "worker messages";
    }
}

/* Refuses a message from a key that may not send it: REJECTED forbidden
 * for SUBMIT (with the task id when the body has one, in SUBMIT order like
 * any rejection), ERROR forbidden otherwise; one log line with the key's
 * certificate name (rate-limited, like every line about peers). */
static void forbid(broker_t *self, const void *identity, size_t isize, int cmd, const void *body,
                   size_t body_size, const char *why) {
    peer_warn(self, identity, isize, "forbidden: %s", why);
    if (cmd != ZT_CMD_SUBMIT) {
        if (zt_proto_send_error(self->raw, identity, isize, ZT_WIRE_FORBIDDEN, why) == 0)
            self->stats.messages_out++;
        return;
    }
    self->stats.submitted++;
    self->stats.rejected++;
    char id[ZT_ID_MAX + 1] = "";
    const msgpack_object *root = parse_body(self, body, body_size);
    const char *s;
    size_t len;
    if (root && zt_mp_get_str(root, "id", &s, &len) == 0 && zt_taskmsg_valid_id(s, len))
        cstr(id, sizeof id, s, len);
    pack_reset(self);
    msgpack_pack_map(&self->pk, 3);
    zt_pack_kv_cstr(&self->pk, "id", id[0] ? id : NULL);
    zt_pack_kv_cstr(&self->pk, "code", ZT_WIRE_FORBIDDEN);
    zt_pack_kv_cstr(&self->pk, "reason", why);
    if (self->held.size - self->held_head > HELD_MAX)
        send_raw(self, identity, isize, ZT_CMD_REJECTED, self->out.data, self->out.size, NULL, 0);
    else
        submit_reply(self, identity, isize, ZT_CMD_REJECTED, self->out.data, self->out.size);
}

/* CURVE: finds the key that sent this message and checks that its role may
 * send cmd, and that worker messages come with the key the worker
 * registered with. Sets self->peer and returns true, or answers forbidden
 * and returns false. */
static bool authorised(broker_t *self, zt_frames_t *f, const void *identity, size_t isize, int cmd,
                       const void *body, size_t body_size) {
    /* libzmq puts the handshake's metadata on every frame; frame 1 is ours */
    const broker_peer_t *peer = broker_access_peer(self->access, &f->frame[f->count > 1 ? 1 : 0]);
    broker_role_t need = broker_access_command_roles(cmd);
    char why[400], roles[64];
    if (!peer) {
        snprintf(why, sizeof why,
                 "this key is not among the broker's allowed certificates (if it was added to "
                 "%s lately, send the broker SIGHUP)",
                 broker_access_dir(self->access));
    } else if (!(peer->role & need)) {
        snprintf(why, sizeof why, "key '%s' has role %s; %s needs role %s", peer->name,
                 broker_role_name(peer->role), command_purpose(cmd),
                 broker_roles_text(need, roles, sizeof roles));
    } else {
        broker_worker_t *w = need == BROKER_ROLE_WORKER
                                 ? broker_workers_lookup(self->workers, identity, isize)
                                 : NULL;
        if (!w || strcmp(broker_worker_curve_key(w), peer->key) == 0) {
            self->peer = peer;
            return true;
        }
        snprintf(why, sizeof why,
                 "key '%s' sent %s for worker %s, which registered with another key", peer->name,
                 zt_cmd_name(cmd), broker_worker_name(w));
    }
    forbid(self, identity, isize, cmd, body, body_size, why);
    return false;
}

/* Oversized: answered without decoding the body. A SUBMIT (recognisable
 * from its first frames) gets REJECTED so the client's reply count holds. */
static void handle_oversized(broker_t *self, zt_frames_t *f, const void *identity, size_t isize) {
    char reason[128];
    snprintf(reason, sizeof reason, "message of %zu bytes exceeds the limit of %zu bytes", f->bytes,
             self->max_message_bytes);
    bool submit =
        f->count >= 3 && zmq_msg_size(&f->frame[1]) == ZT_PROTO_SIGNATURE_LEN &&
        memcmp(zmq_msg_data(&f->frame[1]), ZT_PROTO_SIGNATURE, ZT_PROTO_SIGNATURE_LEN) == 0 &&
        zmq_msg_size(&f->frame[2]) == 1 &&
        *(const unsigned char *)zmq_msg_data(&f->frame[2]) == ZT_CMD_SUBMIT;
    if (submit) {
        self->stats.submitted++;
        reject(self, identity, isize, NULL, ZT_WIRE_TOO_LARGE, reason, true);
    } else {
        protocol_error(self, identity, isize, ZT_WIRE_TOO_LARGE, reason);
    }
}

static void handle_message(broker_t *self, zt_frames_t *f) {
    size_t isize;
    const void *identity = zt_frames_identity(f, &isize);
    if (!identity)
        return; /* a ROUTER always gives one; nothing to answer otherwise */
    if (f->bytes > self->max_message_bytes) {
        handle_oversized(self, f, identity, isize);
        return;
    }
    int cmd;
    const void *body, *extra;
    size_t body_size, extra_size;
    const char *code;
    if (zt_frames_envelope(f, &cmd, &body, &body_size, &extra, &extra_size, &code) != 0) {
        protocol_error(self, identity, isize, code, "malformed ZTP envelope");
        return;
    }
    self->peer = NULL;
    if (self->access && broker_access_command_roles(cmd) != BROKER_ROLE_NONE &&
        !authorised(self, f, identity, isize, cmd, body, body_size))
        return;
    if (cmd == ZT_CMD_SUBMIT) {
        handle_submit(self, identity, isize, body, body_size);
        return;
    }
    if (cmd != ZT_CMD_CONTROL && cmd != ZT_CMD_HELLO && !worker_command(cmd)) {
        char reason[64];
        snprintf(reason, sizeof reason, "the broker does not accept %s", zt_cmd_name(cmd));
        protocol_error(self, identity, isize, ZT_WIRE_BAD_COMMAND, reason);
        return;
    }
    broker_worker_t *w = NULL;
    if (worker_command(cmd)) {
        w = broker_workers_lookup(self->workers, identity, isize);
        if (!w) {
            if (cmd == ZT_CMD_BYE)
                return; /* leaving without having joined: nothing to undo */
            /* normal after a broker restart: the worker says HELLO again */
            if (zt_proto_send_error(self->raw, identity, isize, ZT_WIRE_UNKNOWN_WORKER,
                                    "send HELLO first") == 0)
                self->stats.messages_out++;
            return;
        }
        broker_worker_seen(w, self->now);
    }
    const msgpack_object *root = parse_body(self, body, body_size);
    if (!root) {
        protocol_error(self, identity, isize, ZT_WIRE_BAD_BODY, "body is not a MessagePack map");
        return;
    }
    switch (cmd) {
    case ZT_CMD_CONTROL:
        handle_control(self, identity, isize, root);
        break;
    case ZT_CMD_HELLO:
        handle_hello(self, identity, isize, root);
        break;
    case ZT_CMD_CREDIT:
        handle_credit(self, w, identity, isize, root);
        break;
    case ZT_CMD_STARTED:
        handle_started(self, w, identity, isize, root);
        break;
    case ZT_CMD_PROGRESS:
        handle_progress(self, w, identity, isize, root);
        break;
    case ZT_CMD_DONE:
        handle_done(self, w, identity, isize, root);
        break;
    case ZT_CMD_RELEASE:
        handle_release(self, w, identity, isize, root);
        break;
    case ZT_CMD_HEARTBEAT:
        handle_heartbeat(self, w, identity, isize, root);
        break;
    case ZT_CMD_CONTROL_REPLY:
        handle_control_reply(self, w, identity, isize, root);
        break;
    case ZT_CMD_BYE:
        worker_gone(self, w, "bye");
        break;
    default:
        break;
    }
}

/* ---- housekeeping: heartbeats and liveness ------------------------------------------------ */

static void housekeeping(broker_t *self) {
    int64_t now = self->now;
    int64_t dead_after = self->heartbeat_us * self->liveness;
    int64_t next = now + self->heartbeat_us;
    /* backwards: worker_gone() removes from the array */
    for (size_t i = broker_workers_size(self->workers); i-- > 0;) {
        broker_worker_t *w = broker_workers_at(self->workers, i);
        if (now - broker_worker_last_seen(w) >= dead_after) {
            worker_gone(self, w, "heartbeat-lost");
            continue;
        }
        if (now - broker_worker_last_sent(w) >= self->heartbeat_us) {
            pack_reset(self);
            msgpack_pack_map(&self->pk, 0);
            send_to_worker(self, w, ZT_CMD_HEARTBEAT);
        }
        int64_t hb_due = broker_worker_last_sent(w) + self->heartbeat_us;
        int64_t dead_due = broker_worker_last_seen(w) + dead_after;
        if (hb_due < next)
            next = hb_due;
        if (dead_due < next)
            next = dead_due;
    }
    self->next_housekeeping = next;
}

/* ---- loop ----------------------------------------------------------------------------- */

static bool stopping(const broker_t *self) {
    return self->stop || (self->stop_flag && *self->stop_flag);
}

static void drain(broker_t *self) {
    for (int i = 0; i < BATCH_MAX; i++) {
        zt_frames_t f;
        if (zt_frames_recv(self->raw, &f, true, ZMQ_DONTWAIT) != 0)
            break; /* nothing more (EAGAIN), or interrupted */
        self->stats.messages_in++;
        handle_message(self, &f);
        zt_frames_close(&f);
    }
}

/* msecs to sleep: until the next timer or housekeeping, at most POLL_MAX_MS. */
static long poll_timeout(broker_t *self) {
    if (self->dispatch_dirty)
        return 0;
    int64_t wait = self->next_housekeeping - self->now;
    int64_t timer = broker_timer_heap_wait(self->timers, self->now);
    if (timer >= 0 && timer < wait)
        wait = timer;
    int64_t bcast = broker_broadcasts_wait(self->broadcasts, self->now);
    if (bcast >= 0 && bcast < wait)
        wait = bcast;
    int64_t events = broker_events_wait(self->events, self->now);
    if (events >= 0 && events < wait)
        wait = events;
    /* the disk failed: try again soon (replies wait for it) */
    if (broker_journal_pending(self->journal) && wait > JOURNAL_RETRY_MS * 1000)
        wait = JOURNAL_RETRY_MS * 1000;
    if (wait <= 0)
        return 0;
    int64_t ms = (wait + 999) / 1000; /* round up: never wake before due */
    return ms > POLL_MAX_MS ? POLL_MAX_MS : (long)ms;
}

static int snapshot_state(void *arg, broker_journal_t *journal);

/* End of a loop turn: write this turn's records, send the replies they
 * made durable, and start a compaction when the journal grew enough (the
 * state equals the journal right after a commit). */
static void commit(broker_t *self) {
    broker_journal_commit(self->journal); /* failures are logged there; retried */
    if (self->held_count)
        release_replies(self);
    if (broker_journal_compaction_due(self->journal) &&
        broker_journal_compact(self->journal, snapshot_state, self) == 0)
        release_replies(self); /* compaction synced everything */
    broker_journal_poll(self->journal);
}

int broker_reload_keys(broker_t *self) {
    if (!self->access) {
        zt_info("reload: CURVE is off, no keys to reload");
        return 0;
    }
    int withdrawn = broker_access_reload(self->access);
    if (withdrawn <= 0)
        return withdrawn;
    /* workers whose key is gone or no longer a worker key: off at once, their
     * tasks back to the queues (backwards: worker_gone() removes) */
    for (size_t i = broker_workers_size(self->workers); i-- > 0;) {
        broker_worker_t *w = broker_workers_at(self->workers, i);
        const broker_peer_t *p = broker_access_lookup(self->access, broker_worker_curve_key(w));
        if (!p || !(p->role & BROKER_ROLE_WORKER))
            worker_gone(self, w, "revoked");
    }
    /* a CURVE connection keeps its key for life: drop every events
     * subscriber, the ones still allowed come back through the handshake */
    broker_events_rebind(self->events);
    return withdrawn;
}

/* True when libzmq holds input for sock. Its ZMQ_FD only signals edges, so
 * input taken in while we were busy would not wake poll(2): ask first. */
static bool has_input(void *sock) {
    uint32_t events = 0;
    size_t size = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &size) == 0 && (events & ZMQ_POLLIN);
}

int broker_run(broker_t *self) {
    /* Waited on with poll(2) over the sockets' ZMQ_FDs rather than zmq_poll():
     * zmq_poll makes a zero-timeout pass first and asks every socket for
     * ZMQ_EVENTS twice per call, which at a few messages per wake-up costs
     * more than handling them (the worker's loop does the same). Slots: the
     * ROUTER, the events socket, CURVE monitors, then the journal's sync pipe. */
    enum { WAIT_MAX = 8, FIRST_MONITOR = 2 };
    void *socks[WAIT_MAX] = {self->raw, broker_events_socket(self->events)};
    int nsocks = FIRST_MONITOR;
    size_t nmonitors = self->access ? broker_access_monitor_count(self->access) : 0;
    for (size_t i = 0; i < nmonitors && nsocks < WAIT_MAX - 1; i++)
        socks[nsocks++] = broker_access_monitor_socket(self->access, i);
    struct pollfd fds[WAIT_MAX];
    for (int i = 0; i < nsocks; i++) {
        size_t size = sizeof fds[i].fd;
        if (zmq_getsockopt(socks[i], ZMQ_FD, &fds[i].fd, &size) != 0) {
            zt_error("cannot get a socket's descriptor: %s", zmq_strerror(zmq_errno()));
            return ZT_ERR_IO;
        }
        fds[i].events = POLLIN;
    }
    int nfds = nsocks;
    int sync_fd = broker_journal_sync_fd(self->journal);
    int sync_i = -1;
    if (sync_fd >= 0) {
        sync_i = nfds++;
        fds[sync_i] = (struct pollfd){sync_fd, POLLIN, 0};
    }
    self->stop = 0;
    self->now = zt_clock_mono_us();
    self->next_housekeeping = self->now + self->heartbeat_us;
    while (!stopping(self)) {
        self->now = zt_clock_mono_us();
        bool ready[WAIT_MAX] = {false};
        bool any = false;
        for (int i = 0; i < nsocks; i++)
            any |= ready[i] = has_input(socks[i]);
        long timeout = any ? 0 : poll_timeout(self);
        for (int i = 0; i < nfds; i++)
            fds[i].revents = 0;
        if (poll(fds, (nfds_t)nfds, (int)timeout) < 0) {
            if (errno == EINTR)
                continue;
            zt_error("poll failed: %s", strerror(errno));
            return ZT_ERR_IO;
        }
        self->now = zt_clock_mono_us();
        /* a socket's fd waking us is only a hint: each handler reads until EAGAIN */
        if (ready[0] || fds[0].revents)
            drain(self);
        if (ready[1] || fds[1].revents)
            broker_events_handle_input(self->events);
        if (sync_i >= 0 && (fds[sync_i].revents & POLLIN)) {
            broker_journal_on_synced(self->journal);
            release_replies(self);
        }
        for (int i = FIRST_MONITOR; i < nsocks; i++)
            if (ready[i] || fds[i].revents)
                broker_access_handle_monitor(self->access, (size_t)(i - FIRST_MONITOR));
        if (self->reload_flag && *self->reload_flag) {
            *self->reload_flag = 0;
            zt_info("SIGHUP: rereading the allowed keys");
            broker_reload_keys(self);
        }
        release_timers(self);
        dispatch(self);
        if (self->now >= self->next_housekeeping)
            housekeeping(self);
        if (broker_broadcasts_size(self->broadcasts))
            finish_broadcasts(self);
        commit(self);
        broker_events_flush(self->events, zt_clock_mono_us(), false);
    }
    broker_events_flush(self->events, zt_clock_mono_us(), true);
    zt_info("stopping");
    /* what clients were promised goes to disk before we go */
    if (broker_journal_sync_now(self->journal) == 0)
        release_replies(self);
    else if (self->held_count)
        zt_error("%zu replies not sent: their tasks may not be durable", self->held_count);
    return 0;
}

void broker_stop(broker_t *self) {
    self->stop = 1;
}

/* ---- construction ---------------------------------------------------------------------- */

/* ---- recovery: replaying the journal ------------------------------------------------- */

static void remember_revoked(broker_t *self, const char *id);

/* Takes a task out of wherever replay put it (heap, queue list, or the
 * replay in-flight list), so any record can move it anywhere. */
static void replay_detach(broker_t *self, broker_task_t *t) {
    if (broker_task_heap_index(t) != BROKER_TASK_NO_HEAP) {
        broker_timer_heap_remove(self->timers, broker_task_heap_index(t));
        broker_queue_add_scheduled(broker_task_queue(t), -1);
    } else if (broker_task_list_of(t) == &self->replay_inflight) {
        broker_task_list_remove(t);
    } else if (broker_task_list_of(t)) {
        broker_queue_remove(broker_task_queue(t), t);
    }
}

/* Puts a detached task on the heap (due: unix seconds > 0) or at the tail
 * of its queue (tombstones to the tombstone list). */
static void replay_place(broker_t *self, broker_task_t *t, double due) {
    if (due > 0 && broker_task_revoked(t) == BROKER_REVOKED_NONE) {
        double delay = due - self->replay_wall;
        int64_t at = self->now + (delay > 0 ? (int64_t)ceil(delay * 1e6) : 0);
        schedule_task(self, t, at);
    } else {
        broker_queue_push(broker_task_queue(t), t, self->now);
    }
}

static void replay_add(broker_t *self, const broker_jrec_t *rec) {
    if (find_task(self, rec->id, rec->id_len)) {
        zt_warn("journal: task %.*s added twice; the first record wins", (int)rec->id_len, rec->id);
        return;
    }
    broker_queue_t *q = get_queue(self, rec->queue, rec->queue_len, true);
    if (!q) {
        zt_error("journal: task %.*s dropped: more than %d queues", (int)rec->id_len, rec->id,
                 QUEUES_MAX);
        return;
    }
    zt_taskmsg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.id = rec->id;
    msg.id_len = rec->id_len;
    msg.task = rec->name;
    msg.task_len = rec->name_len;
    msg.priority = rec->priority;
    msg.expires = rec->expires;
    broker_task_t *t = broker_task_new(rec->body, rec->body_size, &msg);
    broker_task_set_queue(t, q);
    broker_task_set_retries(t, rec->retries);
    broker_task_set_redelivered(t, (rec->flags & BROKER_JREC_F_REDELIVERED) != 0);
    broker_task_set_revoked(t, (broker_revoked_t)rec->revoked);
    zhashx_insert(self->tasks, broker_task_id(t), t);
    self->queued_bytes += broker_task_size(t);
    if (rec->flags & BROKER_JREC_F_IN_FLIGHT) {
        broker_task_list_push_tail(&self->replay_inflight, t, self->now);
        broker_task_set_state(t, BROKER_TASK_RESERVED);
    } else {
        replay_place(self, t, rec->due);
    }
}

/* Applies one journal record to the state (broker_journal_apply_fn). */
static void replay_apply(void *arg, const broker_jrec_t *rec) {
    broker_t *self = arg;
    if (rec->type == BROKER_JREC_ADD) {
        replay_add(self, rec);
        return;
    }
    if (rec->type == BROKER_JREC_PURGE) {
        if (rec->queue_len) {
            broker_queue_t *q = get_queue(self, rec->queue, rec->queue_len, false);
            if (q)
                broker_queue_purge(q, NULL, NULL);
        } else {
            for (broker_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
                broker_queue_purge(q, NULL, NULL);
        }
        return;
    }
    if (rec->type == BROKER_JREC_REVOKED_ID) {
        char id[ZT_ID_MAX + 1];
        cstr(id, sizeof id, rec->id, rec->id_len);
        remember_revoked(self, id);
        return;
    }
    if (rec->type == BROKER_JREC_BEAT_FIRE) {
        char entry[ZT_NAME_MAX + 1];
        cstr(entry, sizeof entry, rec->name, rec->name_len);
        broker_beat_set_fire(self->beat, entry, rec->due);
        return;
    }
    broker_task_t *t = find_task(self, rec->id, rec->id_len);
    if (rec->type == BROKER_JREC_DONE) {
        /* finished ids are remembered (duplicate-id), also those a
         * snapshot lists without their task */
        char id[ZT_ID_MAX + 1];
        cstr(id, sizeof id, rec->id, rec->id_len);
        broker_recent_add(self->recent, id);
        if (!t)
            return;
    }
    if (!t) {
        /* its ADD was in a damaged region, or it finished already */
        self->replay_missing++;
        return;
    }
    switch (rec->type) {
    case BROKER_JREC_DISPATCH:
        replay_detach(self, t);
        broker_task_list_push_tail(&self->replay_inflight, t, self->now);
        broker_task_set_state(t, BROKER_TASK_RESERVED);
        break;
    case BROKER_JREC_REQUEUE:
        replay_detach(self, t);
        broker_task_set_redelivered(t, (rec->flags & BROKER_JREC_F_REDELIVERED) != 0);
        broker_queue_push_head(broker_task_queue(t), t, self->now);
        break;
    case BROKER_JREC_READY:
        replay_detach(self, t);
        broker_queue_push(broker_task_queue(t), t, self->now);
        break;
    case BROKER_JREC_RETRY:
        replay_detach(self, t);
        broker_task_set_retries(t, rec->retries);
        broker_task_set_redelivered(t, false);
        replay_place(self, t, rec->due);
        break;
    case BROKER_JREC_REVOKE:
        if (broker_task_revoked(t) != BROKER_REVOKED_NONE)
            break;
        broker_task_set_revoked(t, (broker_revoked_t)rec->revoked);
        if (broker_task_list_of(t) != &self->replay_inflight) {
            replay_detach(self, t); /* a queued or scheduled task becomes a tombstone */
            broker_queue_push(broker_task_queue(t), t, self->now);
        }
        break;
    case BROKER_JREC_DONE:
        replay_detach(self, t);
        self->queued_bytes -= broker_task_size(t);
        zhashx_delete(self->tasks, broker_task_id(t));
        break;
    default:
        break;
    }
}

/* Replays the journal, then requeues what was at workers when the broker
 * stopped: at the head of its queue, in dispatch order, flagged redelivered
 * (it may have run: at-least-once). */
static int recover(broker_t *self) {
    self->now = zt_clock_mono_us();
    self->replay_wall = zt_clock_wall();
    int rc = broker_journal_recover(self->journal, replay_apply, self, &self->recovery);
    size_t requeued = 0;
    broker_task_t *t;
    while ((t = self->replay_inflight.tail)) {
        broker_task_list_remove(t);
        broker_task_set_redelivered(t, true);
        broker_queue_push_head(broker_task_queue(t), t, self->now);
        self->stats.redelivered++;
        requeued++;
    }
    self->recovered_tasks = zhashx_size(self->tasks);
    const broker_journal_recovery_t *r = &self->recovery;
    if (r->files)
        zt_info("recovered %zu tasks (%zu scheduled, %zu were in flight: requeued as "
                "redelivered; %zu revoked ids) from %zu files, %zu records, %llu bytes in %.3f s%s",
                self->recovered_tasks, broker_timer_heap_size(self->timers), requeued,
                zhashx_size(self->revoked_ids), r->files, r->records, (unsigned long long)r->bytes,
                r->seconds,
                r->corrupt || r->torn || r->bad_files ? " (damage reported above)" : "");
    if (self->replay_missing)
        zt_info("journal: %zu records named tasks it does not hold (lost to damage): ignored",
                self->replay_missing);
    zt_info("journal in %s, fsync %s, generation %llu", self->data_dir,
            broker_fsync_name(broker_journal_policy(self->journal)),
            (unsigned long long)r->generation);
    self->dispatch_dirty = true;
    return rc;
}

/* ---- compaction: the snapshot, written by the forked child ----------------------------- */

static void snap_task(broker_journal_t *journal, const broker_task_t *t, double due,
                      uint8_t flags) {
    broker_jrec_t rec;
    add_record(&rec, t, due, flags);
    broker_journal_snapshot_put(journal, &rec);
}

/* broker_journal_snapshot_fn: the whole state as records whose replay
 * rebuilds it, list order included. Runs in the child on its copy of the
 * memory: it may read anything and must change nothing shared. */
static int snapshot_state(void *arg, broker_journal_t *journal) {
    broker_t *self = arg;
    for (broker_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        for (broker_task_t *t = broker_queue_first(q); t; t = broker_queue_next(q, t))
            snap_task(journal, t, 0, 0);
    size_t n = broker_timer_heap_size(self->timers);
    for (size_t i = 0; i < n; i++) {
        int64_t due;
        broker_task_t *t = broker_timer_heap_at(self->timers, i, &due);
        snap_task(journal, t, due_wall(self, due), 0);
    }
    for (size_t i = 0; i < broker_workers_size(self->workers); i++) {
        broker_task_list_t *l = broker_worker_in_flight(broker_workers_at(self->workers, i));
        for (broker_task_t *t = l->head; t; t = broker_task_next(t))
            snap_task(journal, t, 0, BROKER_JREC_F_IN_FLIGHT);
    }
    for (size_t i = 0; i < REVOKED_IDS_MAX; i++) {
        const char *id = self->revoked_ring[(self->revoked_next + i) % REVOKED_IDS_MAX];
        if (id) {
            broker_jrec_t rec = {.type = BROKER_JREC_REVOKED_ID, .id = id, .id_len = strlen(id)};
            broker_journal_snapshot_put(journal, &rec);
        }
    }
    for (size_t i = 0; i < broker_recent_size(self->recent); i++) {
        const char *id = broker_recent_at(self->recent, i);
        broker_jrec_t rec = {.type = BROKER_JREC_DONE, .id = id, .id_len = strlen(id)};
        broker_journal_snapshot_put(journal, &rec);
    }
    for (size_t i = 0; i < broker_beat_entries(self->beat); i++) {
        double last;
        const char *entry = broker_beat_entry_at(self->beat, i, &last, NULL);
        if (last > 0) {
            broker_jrec_t rec = {.type = BROKER_JREC_BEAT_FIRE,
                                 .name = entry,
                                 .name_len = strlen(entry),
                                 .due = last};
            broker_journal_snapshot_put(journal, &rec);
        }
    }
    return 0;
}

void broker_options_defaults(broker_options_t *opts) {
    memset(opts, 0, sizeof *opts);
    opts->bind = "tcp://127.0.0.1:5555";
    opts->events_bind = "tcp://127.0.0.1:5556";
    opts->data_dir = "./zmqbroker-data";
    opts->heartbeat_ms = 1000;
    opts->liveness = 3;
    opts->max_message_bytes = ZT_PROTO_MAX_MESSAGE_DEFAULT;
    opts->fsync = BROKER_FSYNC_BATCH;
    opts->fsync_interval_ms = BROKER_JOURNAL_BATCH_MS_DEFAULT;
    opts->compact_bytes = BROKER_JOURNAL_COMPACT_BYTES_DEFAULT;
    opts->max_queue_length = 0;
    opts->max_queued_bytes = BROKER_MAX_QUEUED_BYTES_DEFAULT;
}

/* Binds sock and stores the resolved endpoint in buf. */
static int bind_socket(zsock_t *sock, const char *endpoint, char *buf, size_t size) {
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        zt_error("cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return ZT_ERR_IO;
    }
    char *last = zsock_last_endpoint(sock);
    snprintf(buf, size, "%s", last ? last : endpoint);
    free(last);
    return 0;
}

broker_t *broker_new(const broker_options_t *opts, int *err) {
    int rc = ZT_ERR_INVALID;
    if (!opts || !opts->bind || !*opts->bind || !opts->events_bind || !*opts->events_bind ||
        !opts->data_dir || !*opts->data_dir || opts->heartbeat_ms < 1 || opts->liveness < 1 ||
        opts->heartbeat_ms > 3600000 || opts->liveness > 1000 || opts->max_message_bytes < 1024 ||
        opts->max_message_bytes > (int64_t)1 << 30 || opts->fsync_interval_ms < 0 ||
        opts->fsync_interval_ms > 10000 || opts->compact_bytes < 0 || opts->max_queue_length < 0 ||
        opts->max_queued_bytes < 0) {
        zt_error("invalid broker options");
        if (err)
            *err = rc;
        return NULL;
    }
    broker_t *self = zt_calloc(1, sizeof *self);
    self->bind = zt_strdup(opts->bind);
    self->events_bind = zt_strdup(opts->events_bind);
    self->data_dir = zt_strdup(opts->data_dir);
    self->heartbeat_us = opts->heartbeat_ms * 1000;
    self->liveness = opts->liveness;
    self->max_message_bytes = (size_t)opts->max_message_bytes;
    self->max_queue_length = (uint64_t)opts->max_queue_length;
    self->max_queued_bytes = (uint64_t)opts->max_queued_bytes;
    self->stop_flag = opts->stop_flag;
    self->reload_flag = opts->reload_flag;
    self->start_us = zt_clock_mono_us();
    self->now = self->start_us;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(self->name, sizeof self->name, "zmqbroker@%s", host);

    self->tasks = zhashx_new();
    zhashx_set_key_duplicator(self->tasks, NULL); /* keys live in the records */
    zhashx_set_key_destructor(self->tasks, NULL);
    zhashx_set_destructor(self->tasks, task_free);
    self->queues = zhashx_new();
    zhashx_set_destructor(self->queues, queue_free);
    self->timers = broker_timer_heap_new(broker_task_heap_setpos);
    self->workers = broker_workers_new();
    self->broadcasts = broker_broadcasts_new();
    self->beat = broker_beat_new();
    self->recent = broker_recent_new(BROKER_RECENT_DEFAULT);
    self->revoked_ids = zhashx_new();
    self->revoked_ring = zt_calloc(REVOKED_IDS_MAX, sizeof *self->revoked_ring);
    msgpack_zone_init(&self->zone, ZONE_CHUNK);
    msgpack_sbuffer_init(&self->out);
    msgpack_packer_init(&self->pk, &self->out, msgpack_sbuffer_write);
    msgpack_sbuffer_init(&self->reply);
    msgpack_packer_init(&self->reply_pk, &self->reply, msgpack_sbuffer_write);
    ZT_ASSERT(self->tasks && self->queues && self->revoked_ids);
    get_queue(self, ZT_DEFAULT_QUEUE, strlen(ZT_DEFAULT_QUEUE), true);

    /* Security first: nothing is opened before we know we may serve. */
    bool curve = (opts->curve_server_cert && *opts->curve_server_cert) ||
                 (opts->curve_allowed_dir && *opts->curve_allowed_dir);
    if (curve) {
        self->access = broker_access_new(opts->curve_server_cert, opts->curve_allowed_dir, &rc);
        if (!self->access)
            goto fail;
    } else {
        const char *eps[2] = {self->bind, self->events_bind};
        for (int i = 0; i < 2; i++) {
            if (zt_endpoint_is_local(eps[i]))
                continue;
            if (!opts->insecure) {
                zt_error("refusing to bind %s without CURVE: anyone who reaches it could submit "
                         "tasks, register as a worker and read every payload. Configure "
                         "curve_server_cert and curve_allowed_dir (docs/SECURITY.md), bind a "
                         "loopback or ipc:// endpoint, or start with --insecure",
                         eps[i]);
                rc = ZT_ERR_INVALID;
                goto fail;
            }
            zt_warn("--insecure: %s is served WITHOUT encryption or authentication", eps[i]);
        }
    }

    rc = ZT_ERR_IO;
    broker_journal_options_t jo;
    broker_journal_options_defaults(&jo);
    jo.dir = self->data_dir;
    jo.fsync = opts->fsync;
    jo.batch_ms = opts->fsync_interval_ms;
    jo.compact_bytes = opts->compact_bytes;
    jo.fault_file = opts->journal_fault_file;
    self->journal = broker_journal_new(&jo, NULL);
    if (!self->journal)
        goto fail;
    /* before binding: no client sees a half-recovered broker */
    if (recover(self) != 0)
        goto fail;
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router)
        goto fail;
    self->raw = zsock_resolve(self->router);
    int hwm = SOCKET_HWM, off = 0, on = 1, linger = 0;
    /* libzmq's own guard against absurd frames; our limit (with its
     * too-large reply) applies first to everything below this */
    int64_t maxmsg = (int64_t)self->max_message_bytes * FRAME_LIMIT_FACTOR;
    zmq_setsockopt(self->raw, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->raw, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->raw, ZMQ_ROUTER_MANDATORY, &off, sizeof off);
    /* Handover lets a new connection take over a live one's identity. Under
     * CURVE that would let one key receive what was meant for another's
     * connection, so there an identity in use is refused instead. */
    if (self->access)
        on = 0;
    zmq_setsockopt(self->raw, ZMQ_ROUTER_HANDOVER, &on, sizeof on);
    zmq_setsockopt(self->raw, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(self->raw, ZMQ_LINGER, &linger, sizeof linger);
    if (self->access && broker_access_apply(self->access, self->router) != 0) {
        zt_error("cannot make the ROUTER socket a CURVE server");
        goto fail;
    }
    if (bind_socket(self->router, self->bind, self->endpoint, sizeof self->endpoint) != 0)
        goto fail;
    if (self->access && broker_access_watch(self->access, self->router, "clients") != 0)
        goto fail;
    self->events = broker_events_new_secure(self->events_bind, self->access, NULL);
    if (!self->events)
        goto fail;
    {
        /* the events module binds; ask its socket what it got */
        char last[256];
        size_t size = sizeof last;
        if (zmq_getsockopt(broker_events_socket(self->events), ZMQ_LAST_ENDPOINT, last, &size) == 0)
            snprintf(self->events_endpoint, sizeof self->events_endpoint, "%s", last);
        else
            snprintf(self->events_endpoint, sizeof self->events_endpoint, "%s", self->events_bind);
    }
    zt_info("listening on %s%s", self->endpoint, self->access ? " (CURVE)" : "");
    zt_info("events on %s%s", self->events_endpoint, self->access ? " (CURVE)" : "");
    return self;
fail:
    broker_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void broker_destroy(broker_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_t *self = *self_p;
    zsock_destroy(&self->router);
    broker_events_destroy(&self->events);
    broker_access_destroy(&self->access); /* zauth after the sockets it serves */
    /* unlink every task from lists and the heap, then free the records */
    broker_broadcasts_destroy(&self->broadcasts);
    broker_beat_destroy(&self->beat);
    broker_recent_destroy(&self->recent);
    broker_workers_destroy(&self->workers);
    zhashx_destroy(&self->queues);
    broker_timer_heap_destroy(&self->timers);
    zhashx_destroy(&self->tasks);
    zhashx_destroy(&self->revoked_ids);
    if (self->revoked_ring)
        for (size_t i = 0; i < REVOKED_IDS_MAX; i++)
            free(self->revoked_ring[i]);
    free(self->revoked_ring);
    broker_journal_destroy(&self->journal);
    msgpack_sbuffer_destroy(&self->out);
    msgpack_sbuffer_destroy(&self->reply);
    msgpack_zone_destroy(&self->zone);
    broker_jbuf_free(&self->held);
    free(self->bind);
    free(self->events_bind);
    free(self->data_dir);
    free(self);
    *self_p = NULL;
}

/* ---- views and operations for control.c -------------------------------------------------- */

const char *broker_endpoint(const broker_t *self) {
    return self->endpoint;
}

const char *broker_events_endpoint(const broker_t *self) {
    return self->events_endpoint;
}

const broker_stats_t *broker_stats(broker_t *self) {
    self->stats.events_published = broker_events_published(self->events);
    self->stats.events_dropped = broker_events_dropped(self->events);
    return &self->stats;
}

const char *broker_name(const broker_t *self) {
    return self->name;
}

double broker_uptime(const broker_t *self) {
    return (double)(zt_clock_mono_us() - self->start_us) / 1e6;
}

size_t broker_task_count(const broker_t *self) {
    return zhashx_size(self->tasks);
}

uint64_t broker_queued_bytes(const broker_t *self) {
    return self->queued_bytes;
}

void broker_journal_view(const broker_t *self, broker_journal_stats_t *stats,
                         broker_journal_recovery_t *recovery) {
    if (stats)
        broker_journal_stats(self->journal, stats);
    if (recovery)
        *recovery = self->recovery;
}

broker_queue_t *broker_queue_lookup(broker_t *self, const char *name) {
    return zhashx_lookup(self->queues, name);
}

static int by_name(const void *a, const void *b) {
    return strcmp(broker_queue_name(*(broker_queue_t *const *)a),
                  broker_queue_name(*(broker_queue_t *const *)b));
}

broker_queue_t **broker_queue_list(broker_t *self, size_t *count) {
    size_t n = zhashx_size(self->queues);
    broker_queue_t **list = zt_calloc(n ? n : 1, sizeof *list);
    size_t i = 0;
    for (broker_queue_t *q = zhashx_first(self->queues); q && i < n; q = zhashx_next(self->queues))
        list[i++] = q;
    qsort(list, i, sizeof *list, by_name);
    *count = i;
    return list;
}

broker_workers_t *broker_workers(broker_t *self) {
    return self->workers;
}

broker_timer_heap_t *broker_timers(broker_t *self) {
    return self->timers;
}

broker_beat_t *broker_beat(broker_t *self) {
    return self->beat;
}

bool broker_beat_record_fire(broker_t *self, const char *entry, double fire) {
    if (!broker_beat_set_fire(self->beat, entry, fire))
        return false;
    broker_jrec_t rec = {
        .type = BROKER_JREC_BEAT_FIRE, .name = entry, .name_len = strlen(entry), .due = fire};
    broker_journal_append(self->journal, &rec);
    return true;
}

double broker_due_to_wall(const broker_t *self, int64_t due) {
    (void)self;
    return zt_clock_wall() + (double)(due - zt_clock_mono_us()) / 1e6;
}

static void on_purged(broker_task_t *t, void *arg) {
    broker_t *self = arg;
    self->stats.revoked++;
    event_task_revoked(self, t, "purged");
}

size_t broker_purge(broker_t *self, const char *queue) {
    size_t purged = 0;
    if (queue) {
        broker_queue_t *q = zhashx_lookup(self->queues, queue);
        if (q)
            purged = broker_queue_purge(q, on_purged, self);
    } else {
        for (broker_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
            purged += broker_queue_purge(q, on_purged, self);
    }
    if (purged) {
        j_purge(self, queue); /* one record: replay purges the same tasks */
        zt_info("purged %zu tasks from %s", purged, queue ? queue : "every queue");
        self->dispatch_dirty = true;
    }
    return purged;
}

static void remember_revoked(broker_t *self, const char *id) {
    if (zhashx_lookup(self->revoked_ids, id))
        return;
    char **slot = &self->revoked_ring[self->revoked_next];
    if (*slot) {
        zhashx_delete(self->revoked_ids, *slot); /* forget the oldest */
        free(*slot);
    }
    *slot = zt_strdup(id);
    zhashx_insert(self->revoked_ids, id, (void *)1);
    self->revoked_next = (self->revoked_next + 1) % REVOKED_IDS_MAX;
}

broker_task_t *broker_task_find(broker_t *self, const char *id) {
    return find_task(self, id, strlen(id));
}

const char *broker_revoke(broker_t *self, const char *id, bool terminate, const char *signal) {
    broker_task_t *t = zhashx_lookup(self->tasks, id);
    if (!t) {
        if (!zhashx_lookup(self->revoked_ids, id))
            j_revoked_id(self, id);
        remember_revoked(self, id);
        zt_info("revoke of unknown task %s: remembered", id);
        return "unknown";
    }
    switch (broker_task_state(t)) {
    case BROKER_TASK_QUEUED:
        if (broker_task_revoked(t) == BROKER_REVOKED_NONE) {
            broker_queue_remove(broker_task_queue(t), t);
            tombstone(self, t, BROKER_REVOKED_REVOKED);
            zt_info("task %s %s revoked while queued", id, broker_task_name(t));
        }
        return "queued";
    case BROKER_TASK_SCHEDULED:
        broker_timer_heap_remove(self->timers, broker_task_heap_index(t));
        broker_queue_add_scheduled(broker_task_queue(t), -1);
        tombstone(self, t, BROKER_REVOKED_REVOKED);
        zt_info("task %s %s revoked while scheduled", id, broker_task_name(t));
        return "scheduled";
    case BROKER_TASK_RESERVED:
    case BROKER_TASK_STARTED: {
        broker_worker_t *w = broker_task_worker(t);
        if (broker_task_revoked(t) == BROKER_REVOKED_NONE) {
            broker_task_set_revoked(t, BROKER_REVOKED_REVOKED);
            self->stats.revoked++;
            event_task_revoked(self, t, terminate ? "terminated" : "revoked");
            j_revoke(self, t);
        }
        pack_reset(self);
        msgpack_pack_map(&self->pk, 3);
        zt_pack_kv_cstr(&self->pk, "id", id);
        zt_pack_kv_bool(&self->pk, "terminate", terminate);
        zt_pack_kv_cstr(&self->pk, "signal", signal ? signal : "SIGTERM");
        send_to_worker(self, w, ZT_CMD_REVOKE);
        zt_info("task %s %s revoked while running on %s%s", id, broker_task_name(t),
                broker_worker_name(w), terminate ? " (terminate)" : "");
        return "running";
    }
    }
    return "unknown";
}
