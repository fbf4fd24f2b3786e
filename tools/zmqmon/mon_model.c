/* mon_model: tasks in a hash by id plus two intrusive lists (first-seen
 * order for the views, finish order for eviction), workers and queues in
 * small sorted arrays, broker counters with a ring of per-second bins.
 * Names, queues and worker names repeat across thousands of tasks, so they
 * are interned once (bounded) and tasks point at the shared copy.
 * Invariant: a task is in the hash and on the order list; it is on the done
 * list exactly when its state is final (in_done). */
#include "mon_model.h"
#include "zt_error.h"

#include <czmq.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INTERN_MAX 50000 /* distinct strings kept; past it new ones share one label */
#define RATE_WINDOW 5.0  /* seconds the rates average over */
#define SAMPLES 16       /* stats samples kept for the rates */

typedef struct {
    double at; /* monotonic seconds */
    uint64_t totals[MON_SERIES_N];
} sample_t;

struct mon_model {
    size_t history_max;
    zhashx_t *tasks;  /* id -> mon_task_t (key lives in the record) */
    zhashx_t *intern; /* string -> the same string (owned) */
    mon_task_t *order_head, *order_tail;
    mon_task_t *done_head, *done_tail;
    uint64_t next_seq;
    size_t state_counts[MON_TASK_STATES];
    mon_worker_t *workers;
    size_t n_workers, cap_workers;
    mon_queue_t *queues;
    size_t n_queues;
    mon_broker_t broker;
    sample_t samples[SAMPLES]; /* ring of stats samples */
    size_t n_samples, sample_next;
    int64_t bin_second[MON_RATE_SECONDS]; /* which second each bin holds */
    double bins[MON_RATE_SECONDS][MON_SERIES_N];
    uint64_t events_applied;
};

static const char *const state_names[MON_TASK_STATES] = {
    "RECEIVED", "SCHEDULED", "RESERVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"};

static const char *const event_names[MON_EV_TYPES] = {
    "task-received", "task-started", "task-progress", "task-succeeded",   "task-failed",
    "task-retried",  "task-revoked", "worker-online", "worker-heartbeat", "worker-offline"};

const char *mon_task_state_name(mon_task_state_t state) {
    return state >= 0 && state < MON_TASK_STATES ? state_names[state] : "?";
}

int mon_task_state_parse(const char *name, mon_task_state_t *out) {
    static const struct {
        const char *alias;
        mon_task_state_t state;
    } aliases[] = {{"queued", MON_TASK_RECEIVED},   {"pending", MON_TASK_RECEIVED},
                   {"running", MON_TASK_STARTED},   {"active", MON_TASK_STARTED},
                   {"succeeded", MON_TASK_SUCCESS}, {"failed", MON_TASK_FAILURE},
                   {"retried", MON_TASK_RETRY},     {"revoked", MON_TASK_REVOKED}};
    for (int i = 0; i < MON_TASK_STATES; i++) {
        if (strcasecmp(name, state_names[i]) == 0) {
            *out = (mon_task_state_t)i;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].state;
            return 0;
        }
    }
    return -1;
}

bool mon_task_state_final(mon_task_state_t state) {
    return state == MON_TASK_SUCCESS || state == MON_TASK_FAILURE || state == MON_TASK_REVOKED;
}

const char *mon_event_type_name(mon_event_type_t type) {
    return type >= 0 && type < MON_EV_TYPES ? event_names[type] : "?";
}

int mon_event_type_parse(const char *name, size_t n, mon_event_type_t *out) {
    for (int i = 0; i < MON_EV_TYPES; i++) {
        if (strlen(event_names[i]) == n && memcmp(event_names[i], name, n) == 0) {
            *out = (mon_event_type_t)i;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ life */

static void task_free(mon_task_t *t) {
    for (size_t i = 0; i < t->log_size; i++)
        free(t->log[i].text);
    free(t->log);
    free(t->progress_message);
    free(t->error);
    free(t);
}

static void task_destructor(void **item) {
    if (*item)
        task_free(*item);
    *item = NULL;
}

static void intern_destructor(void **item) {
    free(*item);
    *item = NULL;
}

mon_model_t *mon_model_new(size_t history_max) {
    mon_model_t *self = zt_calloc(1, sizeof *self);
    self->history_max = history_max ? history_max : MON_HISTORY_DEFAULT;
    self->tasks = zhashx_new();
    zhashx_set_key_duplicator(self->tasks, NULL); /* keys live in the records */
    zhashx_set_key_destructor(self->tasks, NULL);
    zhashx_set_destructor(self->tasks, task_destructor);
    self->intern = zhashx_new();
    zhashx_set_key_duplicator(self->intern, NULL); /* the key is the item */
    zhashx_set_key_destructor(self->intern, NULL);
    zhashx_set_destructor(self->intern, intern_destructor);
    for (size_t i = 0; i < MON_RATE_SECONDS; i++)
        self->bin_second[i] = -1;
    return self;
}

void mon_model_destroy(mon_model_t **self_p) {
    if (!self_p || !*self_p)
        return;
    mon_model_t *self = *self_p;
    zhashx_destroy(&self->tasks);
    zhashx_destroy(&self->intern);
    free(self->workers);
    free(self->queues);
    free(self);
    *self_p = NULL;
}

/* The shared copy of s ("" stays a literal). */
static const char *intern(mon_model_t *self, const char *s) {
    if (!s || !*s)
        return "";
    char *found = zhashx_lookup(self->intern, s);
    if (found)
        return found;
    if (zhashx_size(self->intern) >= INTERN_MAX)
        return "(too many names)";
    char *copy = zt_strdup(s);
    zhashx_insert(self->intern, copy, copy);
    return copy;
}

/* Replaces an owned string (NULL or "" clears it). */
static void set_text(char **field, const char *value) {
    if (*field && value && strcmp(*field, value) == 0)
        return;
    free(*field);
    *field = value && *value ? zt_strdup(value) : NULL;
}

/* ----------------------------------------------------------------- lists */

static void order_unlink(mon_model_t *self, mon_task_t *t) {
    if (t->order_prev)
        t->order_prev->order_next = t->order_next;
    else
        self->order_head = t->order_next;
    if (t->order_next)
        t->order_next->order_prev = t->order_prev;
    else
        self->order_tail = t->order_prev;
    t->order_prev = t->order_next = NULL;
}

static void done_unlink(mon_model_t *self, mon_task_t *t) {
    if (!t->in_done)
        return;
    if (t->done_prev)
        t->done_prev->done_next = t->done_next;
    else
        self->done_head = t->done_next;
    if (t->done_next)
        t->done_next->done_prev = t->done_prev;
    else
        self->done_tail = t->done_prev;
    t->done_prev = t->done_next = NULL;
    t->in_done = false;
}

static void done_push(mon_model_t *self, mon_task_t *t) {
    t->done_prev = NULL;
    t->done_next = self->done_head;
    if (self->done_head)
        self->done_head->done_prev = t;
    else
        self->done_tail = t;
    self->done_head = t;
    t->in_done = true;
}

static void forget(mon_model_t *self, mon_task_t *t) {
    order_unlink(self, t);
    done_unlink(self, t);
    self->state_counts[t->state]--;
    zhashx_delete(self->tasks, t->id); /* frees it */
}

/* Past the bound: the oldest finished task goes first; running and queued
 * tasks only when nothing has finished (a flood of queued work). */
static void evict(mon_model_t *self, const mon_task_t *keep) {
    while (zhashx_size(self->tasks) > self->history_max) {
        mon_task_t *victim = self->done_tail ? self->done_tail : self->order_tail;
        if (victim == keep)
            victim = victim->in_done ? victim->done_prev : victim->order_prev;
        if (!victim)
            return;
        forget(self, victim);
    }
}

static mon_task_t *task_get(mon_model_t *self, const char *id, bool create) {
    mon_task_t *t = zhashx_lookup(self->tasks, id);
    if (t || !create)
        return t;
    t = zt_calloc(1, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    t->name = "?";
    t->queue = "";
    t->worker = "";
    t->state = MON_TASK_RECEIVED;
    t->retries = 0;
    t->seq = ++self->next_seq;
    zhashx_insert(self->tasks, t->id, t);
    self->state_counts[t->state]++;
    t->order_next = self->order_head;
    if (self->order_head)
        self->order_head->order_prev = t;
    else
        self->order_tail = t;
    self->order_head = t;
    evict(self, t);
    return t;
}

/* ----------------------------------------------------------------- state */

/* Where a state stands within one attempt: an update moves a task only
 * forward in (retries, rank). RETRY carries the next attempt's count, so it
 * ranks below everything of that attempt; final states rank above all. */
static int rank(mon_task_state_t state) {
    switch (state) {
    case MON_TASK_RETRY:
    case MON_TASK_RECEIVED:
    case MON_TASK_SCHEDULED:
        return 0;
    case MON_TASK_RESERVED:
        return 1;
    case MON_TASK_STARTED:
        return 2;
    default:
        return 3;
    }
}

/* Moves t to state (retries < 0: unknown, keeps the task's). Returns true
 * if the state was taken. */
static bool advance(mon_model_t *self, mon_task_t *t, mon_task_state_t state, int retries,
                    double timestamp) {
    if (mon_task_state_final(t->state))
        return false; /* the first final state wins */
    if (!mon_task_state_final(state)) {
        int r = retries >= 0 ? retries : t->retries;
        if (r < t->retries)
            return false;
        if (r == t->retries) {
            int have = rank(t->state), want = rank(state);
            /* within a rank anything goes (queued <-> scheduled), but a
             * pending retry says more than "scheduled" */
            if (want < have || (want == have && t->state == MON_TASK_RETRY && state != t->state))
                return false;
        }
        t->retries = r;
    } else if (retries > t->retries) {
        t->retries = retries;
    }
    if (state != t->state) {
        self->state_counts[t->state]--;
        self->state_counts[state]++;
        t->state = state;
    }
    if (mon_task_state_final(state)) {
        t->finished = timestamp;
        done_unlink(self, t);
        done_push(self, t);
    }
    return true;
}

/* Adds an event to the task's log in timestamp order. Consecutive progress
 * reports of one attempt merge into one entry (a long task reports ten
 * times a second). Past MON_TASK_LOG_MAX the oldest entry after the first
 * one goes. */
static void log_add(mon_model_t *self, mon_task_t *t, const mon_event_t *ev) {
    if (ev->type == MON_EV_TASK_PROGRESS && t->log_size > 0) {
        mon_log_entry_t *last = &t->log[t->log_size - 1];
        if (last->type == MON_EV_TASK_PROGRESS && last->timestamp <= ev->timestamp) {
            last->timestamp = ev->timestamp;
            last->count++;
            last->a = ev->current;
            last->b = ev->total;
            set_text(&last->text, ev->text);
            return;
        }
    }
    if (t->log_size == MON_TASK_LOG_MAX) {
        size_t drop = t->log_size > 1 ? 1 : 0;
        free(t->log[drop].text);
        memmove(&t->log[drop], &t->log[drop + 1], (t->log_size - drop - 1) * sizeof t->log[0]);
        t->log_size--;
        t->log_dropped++;
    }
    if (t->log_size == t->log_cap) {
        t->log_cap = t->log_cap ? t->log_cap * 2 : 4;
        if (t->log_cap > MON_TASK_LOG_MAX)
            t->log_cap = MON_TASK_LOG_MAX;
        t->log = zt_realloc(t->log, t->log_cap * sizeof t->log[0]);
    }
    /* events of one publisher arrive in order; only a skewed snapshot or
     * a second stream could put one before another */
    size_t at = t->log_size;
    while (at > 0 && t->log[at - 1].timestamp > ev->timestamp)
        at--;
    memmove(&t->log[at + 1], &t->log[at], (t->log_size - at) * sizeof t->log[0]);
    t->log_size++;
    mon_log_entry_t *e = &t->log[at];
    memset(e, 0, sizeof *e);
    e->timestamp = ev->timestamp;
    e->type = ev->type;
    e->count = 1;
    e->worker = intern(self, ev->worker);
    e->retries = ev->retries;
    switch (ev->type) {
    case MON_EV_TASK_PROGRESS:
        e->a = ev->current;
        e->b = ev->total;
        break;
    case MON_EV_TASK_SUCCEEDED:
    case MON_EV_TASK_FAILED:
        e->a = ev->runtime;
        break;
    case MON_EV_TASK_RETRIED:
        e->a = ev->countdown;
        break;
    case MON_EV_TASK_STARTED:
        e->a = (double)ev->pid;
        break;
    case MON_EV_TASK_RECEIVED:
        e->a = ev->eta;
        e->b = (double)ev->priority;
        break;
    default:
        break;
    }
    e->text = ev->text[0] ? zt_strdup(ev->text) : NULL;
}

static void apply_task_event(mon_model_t *self, const mon_event_t *ev) {
    mon_task_t *t = task_get(self, ev->id, true);
    if (ev->name[0])
        t->name = intern(self, ev->name);
    if (ev->queue[0])
        t->queue = intern(self, ev->queue);
    log_add(self, t, ev);
    switch (ev->type) {
    case MON_EV_TASK_RECEIVED:
        if (!t->received || ev->timestamp < t->received)
            t->received = ev->timestamp;
        t->priority = ev->priority;
        t->eta = ev->eta;
        t->expires = ev->expires;
        advance(self, t, ev->eta > ev->timestamp + 0.001 ? MON_TASK_SCHEDULED : MON_TASK_RECEIVED,
                ev->retries, ev->timestamp);
        break;
    case MON_EV_TASK_STARTED:
        if (advance(self, t, MON_TASK_STARTED, ev->retries, ev->timestamp)) {
            t->started = ev->timestamp;
            t->worker = intern(self, ev->worker);
            t->has_progress = false;
        }
        break;
    case MON_EV_TASK_PROGRESS:
        /* progress belongs to the running attempt; a report for a task we
         * saw only queued means it started before we knew */
        if (t->state == MON_TASK_STARTED || advance(self, t, MON_TASK_STARTED, -1, ev->timestamp)) {
            if (!t->started)
                t->started = ev->timestamp;
            if (ev->worker[0])
                t->worker = intern(self, ev->worker);
            t->has_progress = true;
            t->current = ev->current;
            t->total = ev->total;
            set_text(&t->progress_message, ev->text);
        }
        break;
    case MON_EV_TASK_SUCCEEDED:
    case MON_EV_TASK_FAILED:
        if (advance(self, t,
                    ev->type == MON_EV_TASK_SUCCEEDED ? MON_TASK_SUCCESS : MON_TASK_FAILURE,
                    ev->retries, ev->timestamp)) {
            t->runtime = ev->runtime;
            if (ev->worker[0])
                t->worker = intern(self, ev->worker);
            if (ev->type == MON_EV_TASK_FAILED)
                set_text(&t->error, ev->text);
        }
        break;
    case MON_EV_TASK_RETRIED:
        if (advance(self, t, MON_TASK_RETRY, ev->retries, ev->timestamp)) {
            t->eta = ev->timestamp + ev->countdown;
            if (ev->worker[0])
                t->worker = intern(self, ev->worker);
            set_text(&t->error, ev->text);
            t->has_progress = false;
        }
        break;
    case MON_EV_TASK_REVOKED:
        if (advance(self, t, MON_TASK_REVOKED, -1, ev->timestamp)) {
            char why[MON_STR_TEXT + 16];
            if (ev->text[0] && strcmp(ev->text, "revoked") != 0)
                snprintf(why, sizeof why, "revoked (%s)", ev->text);
            else
                snprintf(why, sizeof why, "revoked");
            set_text(&t->error, why);
        }
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------- workers */

static int worker_cmp(const void *a, const void *b) {
    const mon_worker_t *x = a, *y = b;
    if (x->online != y->online)
        return x->online ? -1 : 1;
    return strcmp(x->name, y->name);
}

static mon_worker_t *worker_get(mon_model_t *self, const char *name, bool create) {
    for (size_t i = 0; i < self->n_workers; i++)
        if (strcmp(self->workers[i].name, name) == 0)
            return &self->workers[i];
    if (!create)
        return NULL;
    if (self->n_workers == self->cap_workers) {
        self->cap_workers = self->cap_workers ? self->cap_workers * 2 : 8;
        self->workers = zt_realloc(self->workers, self->cap_workers * sizeof *self->workers);
    }
    mon_worker_t *w = &self->workers[self->n_workers++];
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    return w;
}

static void sort_workers(mon_model_t *self) {
    if (self->n_workers > 1)
        qsort(self->workers, self->n_workers, sizeof *self->workers, worker_cmp);
}

static void set_online(mon_worker_t *w, double now_mono) {
    w->online = true;
    w->offline_reason[0] = '\0';
    w->offline_at = 0;
    w->last_seen = now_mono;
}

static void set_offline(mon_worker_t *w, const char *reason, double when) {
    if (!w->online && w->offline_at)
        return;
    w->online = false;
    snprintf(w->offline_reason, sizeof w->offline_reason, "%.*s", (int)sizeof w->offline_reason - 1,
             reason);
    w->offline_at = when;
    w->active = w->in_flight = 0;
}

static void apply_worker_event(mon_model_t *self, const mon_event_t *ev, double now_mono) {
    if (!ev->worker[0])
        return;
    mon_worker_t *w = worker_get(self, ev->worker, true);
    switch (ev->type) {
    case MON_EV_WORKER_ONLINE:
        set_online(w, now_mono);
        snprintf(w->host, sizeof w->host, "%s", ev->host);
        snprintf(w->queues, sizeof w->queues, "%s", ev->queues);
        w->pid = ev->pid;
        w->concurrency = ev->concurrency;
        break;
    case MON_EV_WORKER_HEARTBEAT:
        if (!w->online)
            set_online(w, now_mono);
        w->last_seen = now_mono;
        w->active = ev->active;
        w->in_flight = ev->in_flight;
        break;
    case MON_EV_WORKER_OFFLINE:
        set_offline(w, ev->text[0] ? ev->text : "offline", ev->timestamp);
        break;
    default:
        break;
    }
    sort_workers(self);
}

void mon_model_apply_event(mon_model_t *self, const mon_event_t *ev, double now_mono) {
    if (ev->type >= MON_EV_WORKER_ONLINE) {
        apply_worker_event(self, ev, now_mono);
    } else {
        if (!ev->id[0])
            return;
        apply_task_event(self, ev);
        /* a task event is a sign of life of its worker */
        if (ev->worker[0]) {
            mon_worker_t *w = worker_get(self, ev->worker, false);
            if (w && w->online)
                w->last_seen = now_mono;
        }
    }
    self->events_applied++;
}

/* ------------------------------------------------------------- snapshots */

static const char *jstr(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static double jnum(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

static uint64_t juint(const json_t *o, const char *key) {
    double v = jnum(o, key);
    return v > 0 && v < 1.8e19 ? (uint64_t)v : 0;
}

/* An integer field as an int in [0, max]. */
static int jint(const json_t *o, const char *key, int max) {
    uint64_t v = juint(o, key);
    return v > (uint64_t)max ? max : (int)v;
}

/* A JSON array of strings as "a,b,c" into buf. */
static void join_strings(const json_t *array, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    size_t i;
    const json_t *v;
    json_array_foreach(array, i, v) {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", s);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

void mon_model_apply_workers(mon_model_t *self, const json_t *result, double now_mono,
                             double now_wall) {
    if (!json_is_array(result))
        return;
    bool *listed = zt_calloc(self->n_workers + json_array_size(result) + 1, sizeof *listed);
    size_t i;
    const json_t *e;
    json_array_foreach(result, i, e) {
        const char *name = jstr(e, "name");
        if (!*name)
            continue;
        mon_worker_t *w = worker_get(self, name, true);
        listed[w - self->workers] = true;
        if (!w->online)
            set_online(w, now_mono);
        snprintf(w->host, sizeof w->host, "%s", jstr(e, "host"));
        join_strings(json_object_get(e, "queues"), w->queues, sizeof w->queues);
        w->pid = juint(e, "pid");
        w->concurrency = juint(e, "concurrency");
        w->credit = juint(e, "credit");
        w->in_flight = juint(e, "in_flight");
        w->active = juint(e, "active");
        w->processed = juint(e, "processed");
        w->succeeded = juint(e, "succeeded");
        w->failed = juint(e, "failed");
        w->last_seen = now_mono - jnum(e, "heartbeat_age");
    }
    for (size_t k = 0; k < self->n_workers; k++)
        if (!listed[k] && self->workers[k].online)
            set_offline(&self->workers[k], "gone", now_wall);
    free(listed);
    sort_workers(self);
}

static int queue_cmp(const void *a, const void *b) {
    return strcmp(((const mon_queue_t *)a)->name, ((const mon_queue_t *)b)->name);
}

void mon_model_apply_queues(mon_model_t *self, const json_t *result) {
    if (!json_is_array(result))
        return;
    free(self->queues);
    self->queues = zt_calloc(json_array_size(result) + 1, sizeof *self->queues);
    self->n_queues = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(result, i, e) {
        const char *name = jstr(e, "name");
        if (!*name)
            continue;
        mon_queue_t *q = &self->queues[self->n_queues++];
        snprintf(q->name, sizeof q->name, "%s", name);
        q->ready = juint(e, "ready");
        q->scheduled = juint(e, "scheduled");
        q->in_flight = juint(e, "in_flight");
        q->consumers = juint(e, "consumers");
        q->tombstones = juint(e, "tombstones");
        q->oldest_age = jnum(e, "oldest_age");
        const json_t *bp = json_object_get(e, "by_priority");
        for (size_t p = 0; p < MON_PRIORITIES && p < json_array_size(bp); p++) {
            const json_t *v = json_array_get(bp, p);
            q->by_priority[p] = json_is_integer(v) && json_integer_value(v) > 0
                                    ? (uint64_t)json_integer_value(v)
                                    : 0;
        }
    }
    if (self->n_queues > 1)
        qsort(self->queues, self->n_queues, sizeof *self->queues, queue_cmp);
}

void mon_model_apply_listing(mon_model_t *self, const json_t *result, mon_task_state_t state) {
    if (!json_is_array(result))
        return;
    size_t i;
    const json_t *e;
    json_array_foreach(result, i, e) {
        const char *id = jstr(e, "id");
        if (!*id || strlen(id) >= MON_STR_ID)
            continue;
        mon_task_t *t = task_get(self, id, true);
        if (*jstr(e, "task"))
            t->name = intern(self, jstr(e, "task"));
        if (*jstr(e, "queue"))
            t->queue = intern(self, jstr(e, "queue"));
        double started = jnum(e, "started");
        int retries = jint(e, "retries", 1000000000);
        if (!advance(self, t, state, retries, started))
            continue;
        if (*jstr(e, "worker"))
            t->worker = intern(self, jstr(e, "worker"));
        if (state == MON_TASK_STARTED && started > 0)
            t->started = started;
        if (state == MON_TASK_SCHEDULED) {
            t->eta = jnum(e, "eta");
            t->priority = jint(e, "priority", 9);
        }
    }
}

/* Adds count to the per-second bins between two samples. */
static void bin_add(mon_model_t *self, mon_series_t series, double from, double to, double count) {
    int64_t first = (int64_t)floor(from) + 1, last = (int64_t)floor(to);
    if (last < first)
        first = last; /* both in one second */
    if (last - first >= MON_RATE_SECONDS)
        first = last - MON_RATE_SECONDS + 1;
    double per = count / (double)(last - first + 1);
    for (int64_t s = first; s <= last; s++) {
        size_t i = (size_t)(s % MON_RATE_SECONDS);
        if (self->bin_second[i] != s) {
            self->bin_second[i] = s;
            memset(self->bins[i], 0, sizeof self->bins[i]);
        }
        self->bins[i][series] += per;
    }
}

void mon_model_apply_stats(mon_model_t *self, const json_t *result, double now_mono) {
    if (!json_is_object(result))
        return;
    mon_broker_t *b = &self->broker;
    double uptime = jnum(result, "uptime");
    /* a broker that restarted starts its counters again: rates restart too */
    bool restarted = b->have_stats && uptime + 1.0 < b->uptime + (now_mono - b->stats_at);
    snprintf(b->broker, sizeof b->broker, "%s", jstr(result, "broker"));
    b->uptime = uptime;
    b->stats_at = now_mono;
    b->have_stats = true;
    b->submitted = juint(result, "submitted");
    b->succeeded = juint(result, "succeeded");
    b->failed = juint(result, "failed");
    b->retried = juint(result, "retried");
    b->revoked = juint(result, "revoked");
    b->expired = juint(result, "expired");
    b->redelivered = juint(result, "redelivered");
    b->rejected = juint(result, "rejected");
    b->queued = juint(result, "queued");
    b->scheduled = juint(result, "scheduled");
    b->in_flight = juint(result, "in_flight");
    b->events_dropped = juint(result, "events_dropped");

    if (restarted)
        self->n_samples = 0;
    sample_t now = {now_mono, {b->succeeded, b->failed, b->retried}};
    if (self->n_samples > 0) {
        const sample_t *prev = &self->samples[(self->sample_next + SAMPLES - 1) % SAMPLES];
        for (int s = 0; s < MON_SERIES_N; s++)
            if (now.totals[s] >= prev->totals[s])
                bin_add(self, (mon_series_t)s, prev->at, now.at,
                        (double)(now.totals[s] - prev->totals[s]));
    }
    self->samples[self->sample_next] = now;
    self->sample_next = (self->sample_next + 1) % SAMPLES;
    if (self->n_samples < SAMPLES)
        self->n_samples++;
    /* rates: from the oldest sample within the window (at least the previous one) */
    const sample_t *base = NULL;
    for (size_t k = 2; k <= self->n_samples; k++) {
        const sample_t *s = &self->samples[(self->sample_next + SAMPLES - k) % SAMPLES];
        if (base && now_mono - s->at > RATE_WINDOW)
            break;
        base = s;
    }
    double *rates[MON_SERIES_N] = {&b->rate_succeeded, &b->rate_failed, &b->rate_retried};
    for (int s = 0; s < MON_SERIES_N; s++) {
        double dt = base ? now_mono - base->at : 0;
        *rates[s] = base && dt > 0 && now.totals[s] >= base->totals[s]
                        ? (double)(now.totals[s] - base->totals[s]) / dt
                        : 0.0;
    }
}

void mon_model_broker_lost(mon_model_t *self, double now_wall) {
    for (size_t i = 0; i < self->n_workers; i++)
        if (self->workers[i].online)
            set_offline(&self->workers[i], "broker lost", now_wall);
    self->broker.rate_succeeded = self->broker.rate_failed = self->broker.rate_retried = 0;
    self->n_samples = 0;
    sort_workers(self);
}

/* ---------------------------------------------------------------- queries */

size_t mon_model_task_count(const mon_model_t *self) {
    return zhashx_size(self->tasks);
}

size_t mon_model_history_max(const mon_model_t *self) {
    return self->history_max;
}

const mon_task_t *mon_model_task(const mon_model_t *self, const char *id) {
    return zhashx_lookup(self->tasks, id);
}

bool mon_filter_match(const mon_filter_t *f, const mon_task_t *t) {
    if (!f)
        return true;
    if (f->by_state && t->state != f->state)
        return false;
    if (f->queue[0] && strcmp(f->queue, t->queue) != 0)
        return false;
    if (f->name[0] && !strstr(t->name, f->name))
        return false;
    if (f->id[0] && strncmp(t->id, f->id, strlen(f->id)) != 0)
        return false;
    return true;
}

size_t mon_model_tasks(const mon_model_t *self, const mon_filter_t *filter, size_t skip,
                       const mon_task_t **out, size_t max, size_t *total) {
    /* Without a filter, or with one by state alone, the number of matches is
     * known: the walk ends as soon as the page is full (the views ask for
     * the few running tasks among thousands several times a second). */
    bool any =
        !filter || (!filter->by_state && !filter->name[0] && !filter->queue[0] && !filter->id[0]);
    bool by_state_only =
        !any && filter->by_state && !filter->name[0] && !filter->queue[0] && !filter->id[0];
    size_t known = any             ? zhashx_size(self->tasks)
                   : by_state_only ? self->state_counts[filter->state]
                                   : SIZE_MAX;
    size_t matched = 0, written = 0;
    for (const mon_task_t *t = self->order_head; t && matched < known; t = t->order_next) {
        if (!mon_filter_match(filter, t))
            continue;
        if (matched >= skip && written < max)
            out[written++] = t;
        matched++;
        if (written == max && (!total || known != SIZE_MAX))
            break;
    }
    if (total)
        *total = known != SIZE_MAX ? known : matched;
    return written;
}

long mon_model_task_index(const mon_model_t *self, const mon_filter_t *filter, const char *id) {
    const mon_task_t *target = zhashx_lookup(self->tasks, id);
    if (!target || !mon_filter_match(filter, target))
        return -1;
    long index = 0;
    for (const mon_task_t *t = self->order_head; t && t != target; t = t->order_next)
        index += mon_filter_match(filter, t);
    return index;
}

void mon_model_state_counts(const mon_model_t *self, size_t *counts) {
    memcpy(counts, self->state_counts, sizeof self->state_counts);
}

size_t mon_model_worker_count(const mon_model_t *self) {
    return self->n_workers;
}

const mon_worker_t *mon_model_worker_at(const mon_model_t *self, size_t index) {
    return index < self->n_workers ? &self->workers[index] : NULL;
}

size_t mon_model_queue_count(const mon_model_t *self) {
    return self->n_queues;
}

const mon_queue_t *mon_model_queue_at(const mon_model_t *self, size_t index) {
    return index < self->n_queues ? &self->queues[index] : NULL;
}

const mon_broker_t *mon_model_broker(const mon_model_t *self) {
    return &self->broker;
}

void mon_model_series(const mon_model_t *self, mon_series_t series, double now_mono, double *out,
                      size_t n) {
    if (n > MON_RATE_SECONDS)
        n = MON_RATE_SECONDS;
    int64_t last = (int64_t)floor(now_mono);
    for (size_t k = 0; k < n; k++) {
        int64_t s = last - (int64_t)(n - 1 - k);
        out[k] = 0;
        if (s < 0)
            continue;
        size_t i = (size_t)(s % MON_RATE_SECONDS);
        if (self->bin_second[i] == s)
            out[k] = self->bins[i][series];
    }
}

uint64_t mon_model_events_applied(const mon_model_t *self) {
    return self->events_applied;
}
