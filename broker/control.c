/* control: each op packs its `result` value; handle() wraps it in
 * {req, ok, result}. Listings count first and pack second because
 * MessagePack needs array sizes up front. */
#include "control.h"
#include "beat.h"
#include "broadcast.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    broker_t *broker;
    const void *client; /* ROUTER identity of the asking client */
    size_t client_size;
    uint64_t req;
    const msgpack_object *request;
    msgpack_packer *pk;
    size_t limit;  /* for listings */
    bool deferred; /* the op answers later (broadcast) */
    char error[256];
} ctx_t;

typedef int(op_fn)(ctx_t *ctx);

static double usecs_to_s(int64_t us) {
    return (double)us / 1e6;
}

static int op_ping(ctx_t *c) {
    msgpack_pack_map(c->pk, 3);
    zt_pack_kv_bool(c->pk, "pong", true);
    zt_pack_kv_cstr(c->pk, "broker", broker_name(c->broker));
    zt_pack_kv_double(c->pk, "uptime", broker_uptime(c->broker));
    return 0;
}

static int op_queues(ctx_t *c) {
    size_t n;
    broker_queue_t **queues = broker_queue_list(c->broker, &n);
    int64_t now = zt_clock_mono_us();
    msgpack_pack_array(c->pk, n);
    for (size_t i = 0; i < n; i++) {
        broker_queue_t *q = queues[i];
        int64_t oldest = broker_queue_oldest(q);
        msgpack_pack_map(c->pk, 8);
        zt_pack_kv_cstr(c->pk, "name", broker_queue_name(q));
        zt_pack_kv_uint(c->pk, "ready", broker_queue_ready(q));
        zt_pack_kv_uint(c->pk, "scheduled", broker_queue_scheduled(q));
        zt_pack_kv_uint(c->pk, "in_flight", broker_queue_in_flight(q));
        zt_pack_kv_uint(c->pk, "consumers", broker_queue_consumers(q));
        zt_pack_kv_uint(c->pk, "tombstones", broker_queue_tombstones(q));
        zt_pack_kv_double(c->pk, "oldest_age", oldest ? usecs_to_s(now - oldest) : 0.0);
        zt_pack_cstr(c->pk, "by_priority");
        msgpack_pack_array(c->pk, BROKER_PRIORITY_LEVELS);
        for (int p = 0; p < BROKER_PRIORITY_LEVELS; p++)
            msgpack_pack_uint64(c->pk, broker_queue_count(q, p));
    }
    free(queues);
    return 0;
}

static int op_workers(ctx_t *c) {
    broker_workers_t *ws = broker_workers(c->broker);
    size_t n = broker_workers_size(ws);
    int64_t now = zt_clock_mono_us();
    msgpack_pack_array(c->pk, n);
    for (size_t i = 0; i < n; i++) {
        broker_worker_t *w = broker_workers_at(ws, i);
        broker_worker_counters_t *k = broker_worker_counters(w);
        char hex[2 * BROKER_IDENTITY_MAX + 1];
        size_t idsize;
        const void *id = broker_worker_identity(w, &idsize);
        msgpack_pack_map(c->pk, 15);
        zt_pack_kv_cstr(c->pk, "name", broker_worker_name(w));
        zt_pack_kv_cstr(c->pk, "host", broker_worker_host(w));
        zt_pack_kv_uint(c->pk, "pid", broker_worker_pid(w));
        zt_pack_cstr(c->pk, "queues");
        size_t nq = broker_worker_queue_count(w);
        msgpack_pack_array(c->pk, nq);
        for (size_t j = 0; j < nq; j++)
            zt_pack_cstr(c->pk, broker_queue_name(broker_worker_queue(w, j)));
        zt_pack_kv_uint(c->pk, "concurrency", broker_worker_concurrency(w));
        zt_pack_kv_uint(c->pk, "credit", broker_worker_credit(w));
        zt_pack_kv_uint(c->pk, "in_flight", broker_worker_in_flight(w)->count);
        zt_pack_kv_uint(c->pk, "active", broker_worker_active(w));
        zt_pack_kv_uint(c->pk, "processed", k->succeeded + k->failed + k->retried + k->revoked);
        zt_pack_kv_uint(c->pk, "succeeded", k->succeeded);
        zt_pack_kv_uint(c->pk, "failed", k->failed);
        zt_pack_kv_uint(c->pk, "dispatched", k->dispatched);
        zt_pack_kv_double(c->pk, "heartbeat_age", usecs_to_s(now - broker_worker_last_seen(w)));
        zt_pack_kv_bool(c->pk, "online", true);
        zt_pack_kv_cstr(c->pk, "identity", broker_identity_hex(id, idsize, hex, sizeof hex));
    }
    return 0;
}

static int op_purge(ctx_t *c) {
    const char *queue = NULL;
    size_t len = 0;
    char name[ZT_QUEUE_MAX + 1];
    int rc = zt_mp_get_str(c->request, "queue", &queue, &len);
    if (rc == ZT_ERR_INVALID || (rc == 0 && !zt_taskmsg_valid_queue(queue, len))) {
        snprintf(c->error, sizeof c->error, "purge: 'queue' must be a queue name");
        return ZT_ERR_INVALID;
    }
    if (rc == 0) {
        memcpy(name, queue, len);
        name[len] = '\0';
    }
    size_t purged = broker_purge(c->broker, rc == 0 ? name : NULL);
    msgpack_pack_map(c->pk, 1);
    zt_pack_kv_uint(c->pk, "purged", purged);
    return 0;
}

static int op_revoke(ctx_t *c) {
    const char *id;
    size_t len;
    char idbuf[ZT_ID_MAX + 1];
    char signame[32] = "SIGTERM";
    bool terminate = false;
    if (zt_mp_get_str(c->request, "id", &id, &len) != 0 || !zt_taskmsg_valid_id(id, len)) {
        snprintf(c->error, sizeof c->error, "revoke: 'id' must be a task id");
        return ZT_ERR_INVALID;
    }
    memcpy(idbuf, id, len);
    idbuf[len] = '\0';
    int rc = zt_mp_get_bool(c->request, "terminate", &terminate);
    if (rc == ZT_ERR_INVALID) {
        snprintf(c->error, sizeof c->error, "revoke: 'terminate' must be a boolean");
        return ZT_ERR_INVALID;
    }
    const msgpack_object *sig = zt_mp_get(c->request, "signal");
    if (sig && sig->type != MSGPACK_OBJECT_NIL &&
        zt_mp_copy_str(sig, signame, sizeof signame) != 0) {
        snprintf(c->error, sizeof c->error, "revoke: 'signal' must be a signal name");
        return ZT_ERR_INVALID;
    }
    const char *state = broker_revoke(c->broker, idbuf, terminate, signame);
    msgpack_pack_map(c->pk, 2);
    zt_pack_kv_cstr(c->pk, "id", idbuf);
    zt_pack_kv_cstr(c->pk, "state", state);
    return 0;
}

static int op_scheduled(ctx_t *c) {
    broker_timer_heap_t *timers = broker_timers(c->broker);
    size_t n = broker_timer_heap_size(timers);
    if (n > c->limit)
        n = c->limit;
    msgpack_pack_array(c->pk, n);
    for (size_t i = 0; i < n; i++) {
        int64_t due;
        broker_task_t *t = broker_timer_heap_at(timers, i, &due);
        msgpack_pack_map(c->pk, 6);
        zt_pack_kv_cstr(c->pk, "id", broker_task_id(t));
        zt_pack_kv_cstr(c->pk, "task", broker_task_name(t));
        zt_pack_kv_cstr(c->pk, "queue", broker_queue_name(broker_task_queue(t)));
        zt_pack_kv_double(c->pk, "eta", broker_due_to_wall(c->broker, due));
        zt_pack_kv_uint(c->pk, "retries", broker_task_retries(t));
        zt_pack_kv_int(c->pk, "priority", broker_task_priority(t));
    }
    return 0;
}

/* task {id} -> what the broker holds for one task, with its task message as
 * submitted (args and kwargs included: a monitor shows them for tasks that
 * have not finished; finished ones are only in the result backend). */
static int op_task(ctx_t *c) {
    const char *id;
    size_t len;
    char idbuf[ZT_ID_MAX + 1];
    if (zt_mp_get_str(c->request, "id", &id, &len) != 0 || !zt_taskmsg_valid_id(id, len)) {
        snprintf(c->error, sizeof c->error, "task: 'id' must be a task id");
        return ZT_ERR_INVALID;
    }
    memcpy(idbuf, id, len);
    idbuf[len] = '\0';
    broker_task_t *t = broker_task_find(c->broker, idbuf);
    if (!t) {
        snprintf(c->error, sizeof c->error, "unknown task '%s' (finished, or never seen)", idbuf);
        return ZT_ERR_NOT_FOUND;
    }
    broker_task_state_t state = broker_task_state(t);
    broker_worker_t *w = broker_task_worker(t);
    bool in_flight = w && (state == BROKER_TASK_RESERVED || state == BROKER_TASK_STARTED);
    bool scheduled = state == BROKER_TASK_SCHEDULED;
    const char *revoked = broker_revoked_name(broker_task_revoked(t));
    size_t body_size;
    const void *body = broker_task_body(t, &body_size);
    bool queued = state == BROKER_TASK_QUEUED;
    msgpack_pack_map(c->pk, 9 + (in_flight ? 2 : 0) + (scheduled ? 1 : 0) + (queued ? 1 : 0));
    zt_pack_kv_cstr(c->pk, "id", broker_task_id(t));
    zt_pack_kv_cstr(c->pk, "task", broker_task_name(t));
    zt_pack_kv_cstr(c->pk, "queue", broker_queue_name(broker_task_queue(t)));
    zt_pack_kv_cstr(c->pk, "state", broker_task_state_name(state));
    zt_pack_kv_int(c->pk, "priority", broker_task_priority(t));
    zt_pack_kv_uint(c->pk, "retries", broker_task_retries(t));
    zt_pack_kv_bool(c->pk, "redelivered", broker_task_redelivered(t));
    zt_pack_kv_cstr(c->pk, "revoked", revoked); /* nil when not revoked */
    /* how long it has waited in its queue */
    if (queued)
        zt_pack_kv_double(c->pk, "age", usecs_to_s(zt_clock_mono_us() - broker_task_listed_at(t)));
    if (in_flight) {
        zt_pack_kv_cstr(c->pk, "worker", broker_worker_name(w));
        zt_pack_kv_double(c->pk, "started", broker_task_started(t));
    }
    if (scheduled)
        zt_pack_kv_double(c->pk, "eta", broker_due_to_wall(c->broker, broker_task_due(t)));
    /* the message is one valid MessagePack map already (checked at SUBMIT) */
    zt_pack_cstr(c->pk, "message");
    msgpack_packer *pk = c->pk;
    pk->callback(pk->data, body, body_size);
    return 0;
}

/* ---- zmqbeat (PROTOCOL.md §5.3) ---- */

/* Copies the string at key into buf as a name (task-name characters).
 * Returns 0, or fills the error. */
static int get_name(ctx_t *c, const char *key, char *buf, size_t size) {
    const char *s;
    size_t len;
    if (zt_mp_get_str(c->request, key, &s, &len) != 0 || len >= size ||
        !zt_taskmsg_valid_name(s, len)) {
        snprintf(c->error, sizeof c->error,
                 "%s: '%s' must be 1-%zu characters of A-Z a-z 0-9 _ . : -", "beat", key, size - 1);
        return ZT_ERR_INVALID;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

/* beat-lease {beat, lease_ms, entries: {name: next_fire}} ->
 * {leader, holder, lease_ms, last_fires: {name: unix seconds}} */
static int op_beat_lease(ctx_t *c) {
    char name[BROKER_BEAT_NAME_MAX + 1];
    uint64_t lease_ms = 15000;
    if (get_name(c, "beat", name, sizeof name) != 0)
        return ZT_ERR_INVALID;
    int rc = zt_mp_get_uint(c->request, "lease_ms", &lease_ms);
    if (rc == ZT_ERR_INVALID || lease_ms < 100 || lease_ms > 3600000) {
        snprintf(c->error, sizeof c->error, "beat-lease: 'lease_ms' must be 100-3600000");
        return ZT_ERR_INVALID;
    }
    broker_beat_t *beat = broker_beat(c->broker);
    int64_t now = zt_clock_mono_us();
    bool leader = broker_beat_lease(beat, name, (int64_t)lease_ms * 1000, now);
    const msgpack_object *entries = zt_mp_get(c->request, "entries");
    if (leader && entries && entries->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < entries->via.map.size; i++) {
            const msgpack_object_kv *kv = &entries->via.map.ptr[i];
            char entry[ZT_NAME_MAX + 1];
            double next;
            if (zt_mp_copy_str(&kv->key, entry, sizeof entry) != 0 ||
                !zt_taskmsg_valid_name(entry, strlen(entry)))
                continue;
            if (kv->val.type == MSGPACK_OBJECT_FLOAT64 || kv->val.type == MSGPACK_OBJECT_FLOAT32)
                next = kv->val.via.f64;
            else if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                next = (double)kv->val.via.u64;
            else
                continue;
            broker_beat_set_next(beat, entry, next);
        }
    }
    size_t n = broker_beat_entries(beat);
    msgpack_pack_map(c->pk, 4);
    zt_pack_kv_bool(c->pk, "leader", leader);
    zt_pack_kv_cstr(c->pk, "holder", broker_beat_leader(beat, now, NULL));
    zt_pack_kv_uint(c->pk, "lease_ms", lease_ms);
    zt_pack_cstr(c->pk, "last_fires");
    size_t fired = 0;
    for (size_t i = 0; i < n; i++) {
        double last;
        broker_beat_entry_at(beat, i, &last, NULL);
        fired += last > 0;
    }
    msgpack_pack_map(c->pk, fired);
    for (size_t i = 0; i < n; i++) {
        double last;
        const char *entry = broker_beat_entry_at(beat, i, &last, NULL);
        if (last > 0)
            zt_pack_kv_double(c->pk, entry, last);
    }
    return 0;
}

/* beat-fired {beat, entry, fire, next} -> {recorded}; only the leader may */
static int op_beat_fired(ctx_t *c) {
    char name[BROKER_BEAT_NAME_MAX + 1], entry[ZT_NAME_MAX + 1];
    double fire;
    if (get_name(c, "beat", name, sizeof name) != 0 ||
        get_name(c, "entry", entry, sizeof entry) != 0)
        return ZT_ERR_INVALID;
    if (zt_mp_get_double(c->request, "fire", &fire) != 0 || !(fire > 0 && fire < 1e11)) {
        snprintf(c->error, sizeof c->error, "beat-fired: 'fire' must be unix seconds");
        return ZT_ERR_INVALID;
    }
    const char *holder = broker_beat_leader(broker_beat(c->broker), zt_clock_mono_us(), NULL);
    if (strcmp(holder, name) != 0) {
        snprintf(c->error, sizeof c->error, "not-leader: the beat lease is held by '%s'",
                 *holder ? holder : "nobody");
        return ZT_ERR_INVALID;
    }
    bool recorded = broker_beat_record_fire(c->broker, entry, fire);
    double next;
    if (zt_mp_get_double(c->request, "next", &next) == 0 && next > fire && next < 1e11)
        broker_beat_set_next(broker_beat(c->broker), entry, next);
    msgpack_pack_map(c->pk, 1);
    zt_pack_kv_bool(c->pk, "recorded", recorded);
    return 0;
}

/* beat -> {leader, lease_left, entries: [{name, last_fire, next_fire}]} */
static int op_beat(ctx_t *c) {
    broker_beat_t *beat = broker_beat(c->broker);
    int64_t now = zt_clock_mono_us(), expires;
    const char *leader = broker_beat_leader(beat, now, &expires);
    size_t n = broker_beat_entries(beat);
    msgpack_pack_map(c->pk, 3);
    zt_pack_kv_cstr(c->pk, "leader", leader);
    zt_pack_kv_double(c->pk, "lease_left", *leader ? usecs_to_s(expires - now) : 0.0);
    zt_pack_cstr(c->pk, "entries");
    msgpack_pack_array(c->pk, n);
    for (size_t i = 0; i < n; i++) {
        double last, next;
        const char *entry = broker_beat_entry_at(beat, i, &last, &next);
        msgpack_pack_map(c->pk, 3);
        zt_pack_kv_cstr(c->pk, "name", entry);
        zt_pack_kv_double(c->pk, "last_fire", last);
        zt_pack_kv_double(c->pk, "next_fire", next);
    }
    return 0;
}

/* active (started) or reserved (dispatched, not started) tasks */
static int in_flight_listing(ctx_t *c, bool started) {
    broker_workers_t *ws = broker_workers(c->broker);
    size_t nw = broker_workers_size(ws);
    size_t n = 0;
    for (size_t i = 0; i < nw; i++) {
        broker_task_list_t *l = broker_worker_in_flight(broker_workers_at(ws, i));
        for (broker_task_t *t = l->head; t; t = broker_task_next(t))
            n += (broker_task_state(t) == BROKER_TASK_STARTED) == started;
    }
    if (n > c->limit)
        n = c->limit;
    msgpack_pack_array(c->pk, n);
    size_t packed = 0;
    for (size_t i = 0; i < nw && packed < n; i++) {
        broker_worker_t *w = broker_workers_at(ws, i);
        broker_task_list_t *l = broker_worker_in_flight(w);
        for (broker_task_t *t = l->head; t && packed < n; t = broker_task_next(t)) {
            if ((broker_task_state(t) == BROKER_TASK_STARTED) != started)
                continue;
            msgpack_pack_map(c->pk, started ? 6 : 5);
            zt_pack_kv_cstr(c->pk, "id", broker_task_id(t));
            zt_pack_kv_cstr(c->pk, "task", broker_task_name(t));
            zt_pack_kv_cstr(c->pk, "queue", broker_queue_name(broker_task_queue(t)));
            zt_pack_kv_cstr(c->pk, "worker", broker_worker_name(w));
            if (started)
                zt_pack_kv_double(c->pk, "started", broker_task_started(t));
            zt_pack_kv_uint(c->pk, "retries", broker_task_retries(t));
            packed++;
        }
    }
    return 0;
}

static int op_active(ctx_t *c) {
    return in_flight_listing(c, true);
}

static int op_reserved(ctx_t *c) {
    return in_flight_listing(c, false);
}

/* Worker names need not be unique; a map keeps the first of each name. */
static bool name_seen_before(broker_workers_t *ws, size_t i) {
    const char *name = broker_worker_name(broker_workers_at(ws, i));
    for (size_t j = 0; j < i; j++)
        if (strcmp(broker_worker_name(broker_workers_at(ws, j)), name) == 0)
            return true;
    return false;
}

static int op_registered(ctx_t *c) {
    broker_workers_t *ws = broker_workers(c->broker);
    size_t nw = broker_workers_size(ws);
    size_t unique = 0;
    for (size_t i = 0; i < nw; i++)
        unique += !name_seen_before(ws, i);
    msgpack_pack_map(c->pk, unique);
    for (size_t i = 0; i < nw; i++) {
        if (name_seen_before(ws, i))
            continue;
        broker_worker_t *w = broker_workers_at(ws, i);
        zt_pack_cstr(c->pk, broker_worker_name(w));
        size_t nt = broker_worker_task_count(w);
        msgpack_pack_array(c->pk, nt);
        for (size_t j = 0; j < nt; j++)
            zt_pack_cstr(c->pk, broker_worker_task(w, j));
    }
    return 0;
}

static int op_stats(ctx_t *c) {
    const broker_stats_t *s = broker_stats(c->broker);
    broker_workers_t *ws = broker_workers(c->broker);
    size_t nq;
    broker_queue_t **queues = broker_queue_list(c->broker, &nq);
    size_t queued = 0, in_flight = 0;
    for (size_t i = 0; i < nq; i++)
        queued += broker_queue_size(queues[i]);
    free(queues);
    for (size_t i = 0; i < broker_workers_size(ws); i++)
        in_flight += broker_worker_in_flight(broker_workers_at(ws, i))->count;
    broker_journal_stats_t js;
    broker_journal_recovery_t jr;
    broker_journal_view(c->broker, &js, &jr);
    msgpack_pack_map(c->pk, 23 + 13);
    zt_pack_kv_uint(c->pk, "submitted", s->submitted);
    zt_pack_kv_uint(c->pk, "accepted", s->accepted);
    zt_pack_kv_uint(c->pk, "rejected", s->rejected);
    zt_pack_kv_uint(c->pk, "dispatched", s->dispatched);
    zt_pack_kv_uint(c->pk, "succeeded", s->succeeded);
    zt_pack_kv_uint(c->pk, "failed", s->failed);
    zt_pack_kv_uint(c->pk, "retried", s->retried);
    zt_pack_kv_uint(c->pk, "revoked", s->revoked);
    zt_pack_kv_uint(c->pk, "expired", s->expired);
    zt_pack_kv_uint(c->pk, "redelivered", s->redelivered);
    zt_pack_kv_uint(c->pk, "protocol_errors", s->protocol_errors);
    zt_pack_kv_uint(c->pk, "messages_in", s->messages_in);
    zt_pack_kv_uint(c->pk, "messages_out", s->messages_out);
    zt_pack_kv_uint(c->pk, "events_published", s->events_published);
    zt_pack_kv_uint(c->pk, "events_dropped", s->events_dropped);
    zt_pack_kv_uint(c->pk, "workers", broker_workers_size(ws));
    zt_pack_kv_uint(c->pk, "queues", nq);
    zt_pack_kv_uint(c->pk, "tasks", broker_task_count(c->broker));
    zt_pack_kv_uint(c->pk, "queued", queued);
    zt_pack_kv_uint(c->pk, "scheduled", broker_timer_heap_size(broker_timers(c->broker)));
    zt_pack_kv_uint(c->pk, "in_flight", in_flight);
    zt_pack_kv_double(c->pk, "uptime", broker_uptime(c->broker));
    zt_pack_kv_cstr(c->pk, "broker", broker_name(c->broker));
    zt_pack_kv_uint(c->pk, "queued_bytes", broker_queued_bytes(c->broker));
    zt_pack_kv_cstr(c->pk, "fsync", js.fsync);
    zt_pack_kv_uint(c->pk, "journal_generation", js.generation);
    zt_pack_kv_uint(c->pk, "journal_bytes", js.journal_bytes);
    zt_pack_kv_uint(c->pk, "snapshot_bytes", js.snapshot_bytes);
    zt_pack_kv_uint(c->pk, "journal_records", js.records);
    zt_pack_kv_uint(c->pk, "journal_syncs", js.syncs);
    zt_pack_kv_uint(c->pk, "journal_write_errors", js.write_errors);
    zt_pack_kv_uint(c->pk, "compactions", js.compactions);
    zt_pack_kv_bool(c->pk, "compacting", js.compacting);
    zt_pack_kv_double(c->pk, "compaction_pause_ms", js.last_fork_ms);
    zt_pack_kv_double(c->pk, "recovery_seconds", jr.seconds);
    zt_pack_kv_uint(c->pk, "recovery_corrupt", jr.corrupt + jr.torn + jr.bad_files);
    return 0;
}

/* A worker op name: 1-64 bytes of [A-Za-z0-9_.-]. */
static bool valid_command(const char *s, size_t len) {
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static int op_broadcast(ctx_t *c) {
    broker_broadcast_request_t r;
    memset(&r, 0, sizeof r);
    if (zt_mp_get_str(c->request, "command", &r.command, &r.command_len) != 0 ||
        !valid_command(r.command, r.command_len)) {
        snprintf(c->error, sizeof c->error,
                 "broadcast: 'command' must be an op name (1-64 bytes of [A-Za-z0-9_.-])");
        return ZT_ERR_INVALID;
    }
    const msgpack_object *dest = zt_mp_get(c->request, "destination");
    if (dest && dest->type != MSGPACK_OBJECT_NIL) {
        bool ok = dest->type == MSGPACK_OBJECT_ARRAY;
        for (uint32_t i = 0; ok && i < dest->via.array.size; i++)
            ok = dest->via.array.ptr[i].type == MSGPACK_OBJECT_STR;
        if (!ok) {
            snprintf(c->error, sizeof c->error,
                     "broadcast: 'destination' must be an array of worker names");
            return ZT_ERR_INVALID;
        }
        r.destination = dest;
    }
    r.timeout = 1.0;
    int rc = zt_mp_get_double(c->request, "timeout", &r.timeout);
    if (rc == ZT_ERR_INVALID || r.timeout < 0 || r.timeout > BROKER_BROADCAST_TIMEOUT_MAX) {
        snprintf(c->error, sizeof c->error,
                 "broadcast: 'timeout' must be a number of seconds from 0 to %d",
                 BROKER_BROADCAST_TIMEOUT_MAX);
        return ZT_ERR_INVALID;
    }
    const msgpack_object *args = zt_mp_get(c->request, "arguments");
    if (args && args->type != MSGPACK_OBJECT_NIL) {
        bool ok = args->type == MSGPACK_OBJECT_MAP;
        for (uint32_t i = 0; ok && i < args->via.map.size; i++)
            ok = args->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR;
        if (!ok) {
            snprintf(c->error, sizeof c->error,
                     "broadcast: 'arguments' must be a map with string keys");
            return ZT_ERR_INVALID;
        }
        r.arguments = args;
    }
    if (broker_broadcast(c->broker, c->client, c->client_size, c->req, &r) != 0) {
        snprintf(c->error, sizeof c->error, "broadcast: %d broadcasts already pending",
                 BROKER_BROADCASTS_MAX);
        return ZT_ERR_INVALID;
    }
    c->deferred = true;
    return 0;
}

static const struct {
    const char *name;
    op_fn *fn;
} ops[] = {
    {"ping", op_ping},
    {"queues", op_queues},
    {"workers", op_workers},
    {"purge", op_purge},
    {"revoke", op_revoke},
    {"task", op_task},
    {"scheduled", op_scheduled},
    {"active", op_active},
    {"reserved", op_reserved},
    {"registered", op_registered},
    {"stats", op_stats},
    {"broadcast", op_broadcast},
    {"beat-lease", op_beat_lease},
    {"beat-fired", op_beat_fired},
    {"beat", op_beat},
};

int broker_control_handle(broker_t *broker, const void *client, size_t client_size,
                          const msgpack_object *request, msgpack_packer *pk, bool *deferred,
                          char *reason, size_t reason_size) {
    uint64_t req = 0;
    *deferred = false;
    int rc = zt_mp_get_uint(request, "req", &req);
    if (rc == ZT_ERR_INVALID) {
        snprintf(reason, reason_size, "field 'req' must be an unsigned integer");
        return ZT_ERR_INVALID;
    }
    const char *op;
    size_t op_len;
    if (zt_mp_get_str(request, "op", &op, &op_len) != 0) {
        snprintf(reason, reason_size, "field 'op' missing or not a string");
        return ZT_ERR_INVALID;
    }
    ctx_t c = {.broker = broker,
               .client = client,
               .client_size = client_size,
               .req = req,
               .request = request,
               .pk = pk,
               .limit = BROKER_CONTROL_LIST_MAX};
    uint64_t limit;
    if (zt_mp_get_uint(request, "limit", &limit) == 0 && limit < c.limit)
        c.limit = (size_t)limit;

    op_fn *fn = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strlen(ops[i].name) == op_len && memcmp(ops[i].name, op, op_len) == 0)
            fn = ops[i].fn;
    size_t begin = ((msgpack_sbuffer *)pk->data)->size;
    msgpack_pack_map(pk, 3);
    zt_pack_kv_uint(pk, "req", req);
    if (!fn) {
        zt_pack_kv_bool(pk, "ok", false);
        /* the op is shown only if it is printable: it came from outside */
        bool printable = op_len <= 64;
        for (size_t i = 0; printable && i < op_len; i++)
            printable = op[i] >= 0x20 && op[i] < 0x7f;
        char msg[128];
        snprintf(msg, sizeof msg, "unknown op '%.*s'", printable ? (int)op_len : 1,
                 printable ? op : "?");
        zt_pack_kv_cstr(pk, "error", msg);
        return 0;
    }
    /* The op packs its result after "ok"; on a bad argument it packs nothing
     * and we answer ok:false instead. Ops validate before packing. */
    size_t mark = ((msgpack_sbuffer *)pk->data)->size;
    zt_pack_cstr(pk, "ok");
    msgpack_pack_true(pk);
    zt_pack_cstr(pk, "result");
    size_t before = ((msgpack_sbuffer *)pk->data)->size;
    if (fn(&c) != 0) {
        ZT_ASSERT(((msgpack_sbuffer *)pk->data)->size == before);
        ((msgpack_sbuffer *)pk->data)->size = mark;
        zt_pack_kv_bool(pk, "ok", false);
        zt_pack_kv_cstr(pk, "error", c.error);
    } else if (c.deferred) {
        ZT_ASSERT(((msgpack_sbuffer *)pk->data)->size == before);
        ((msgpack_sbuffer *)pk->data)->size = begin; /* nothing to send now */
        *deferred = true;
    }
    return 0;
}
