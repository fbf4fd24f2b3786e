/* workers: registry as a hash (hex identity -> record) for lookups plus an
 * array for round-robin order and iteration. Workers are few (tens), so the
 * array's O(n) removal is fine; lookups happen per worker message and use
 * the hash. */
#include "workers.h"
#include "zt_error.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct broker_worker {
    unsigned char identity[BROKER_IDENTITY_MAX];
    size_t identity_size;
    char key[2 * BROKER_IDENTITY_MAX + 1]; /* hex identity, the hash key */
    bool registered;                       /* HELLO seen */
    char *name;
    char *host;
    uint64_t pid;
    uint32_t concurrency;
    uint64_t credit;         /* dispatches still allowed */
    broker_queue_t **queues; /* borrowed; the broker keeps queues forever */
    size_t nqueues;
    char **tasks; /* registered task names */
    size_t ntasks;
    broker_task_list_t in_flight; /* dispatched, not finished, oldest first */
    broker_worker_counters_t counters;
    int64_t last_seen;  /* monotonic usecs */
    int64_t last_sent;  /* monotonic usecs */
    char curve_key[41]; /* CURVE public key (Z85) its HELLO came with; "" in plain mode */
};

struct broker_workers {
    zhashx_t *by_identity;  /* key -> broker_worker_t (not owned by the hash) */
    broker_worker_t **ring; /* all workers, round-robin order */
    size_t size;
    size_t capacity;
    size_t cursor; /* index the next broker_workers_next() returns */
};

char *broker_identity_hex(const void *identity, size_t size, char *buf, size_t buf_size) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = identity;
    size_t n = 0;
    for (size_t i = 0; i < size && n + 2 < buf_size; i++) {
        buf[n++] = digits[p[i] >> 4];
        buf[n++] = digits[p[i] & 15];
    }
    if (buf_size)
        buf[n] = '\0';
    return buf;
}

broker_workers_t *broker_workers_new(void) {
    broker_workers_t *self = zt_calloc(1, sizeof *self);
    self->by_identity = zhashx_new();
    ZT_ASSERT(self->by_identity);
    return self;
}

static void clear_registration(broker_worker_t *self) {
    for (size_t i = 0; i < self->nqueues; i++)
        broker_queue_add_consumers(self->queues[i], -1);
    free(self->queues);
    self->queues = NULL;
    self->nqueues = 0;
    for (size_t i = 0; i < self->ntasks; i++)
        free(self->tasks[i]);
    free(self->tasks);
    self->tasks = NULL;
    self->ntasks = 0;
    free(self->name);
    free(self->host);
    self->name = self->host = NULL;
}

static void worker_free(broker_worker_t *self) {
    while (broker_task_list_pop(&self->in_flight))
        ;
    clear_registration(self);
    free(self);
}

void broker_workers_destroy(broker_workers_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_workers_t *self = *self_p;
    for (size_t i = 0; i < self->size; i++)
        worker_free(self->ring[i]);
    free(self->ring);
    zhashx_destroy(&self->by_identity);
    free(self);
    *self_p = NULL;
}

broker_worker_t *broker_workers_lookup(broker_workers_t *self, const void *identity, size_t size) {
    if (size == 0 || size > BROKER_IDENTITY_MAX || self->size == 0)
        return NULL;
    char key[2 * BROKER_IDENTITY_MAX + 1];
    broker_identity_hex(identity, size, key, sizeof key);
    return zhashx_lookup(self->by_identity, key);
}

broker_worker_t *broker_workers_add(broker_workers_t *self, const void *identity, size_t size,
                                    int64_t now) {
    if (size == 0 || size > BROKER_IDENTITY_MAX)
        return NULL;
    broker_worker_t *w = zt_calloc(1, sizeof *w);
    memcpy(w->identity, identity, size);
    w->identity_size = size;
    broker_identity_hex(identity, size, w->key, sizeof w->key);
    w->last_seen = w->last_sent = now;
    if (zhashx_insert(self->by_identity, w->key, w) != 0) {
        free(w); /* already known: the caller should have looked it up */
        return NULL;
    }
    if (self->size == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 16;
        self->ring = zt_realloc(self->ring, self->capacity * sizeof *self->ring);
    }
    self->ring[self->size++] = w;
    return w;
}

void broker_workers_remove(broker_workers_t *self, broker_worker_t **worker_p) {
    broker_worker_t *w = *worker_p;
    ZT_ASSERT(w->in_flight.count == 0);
    zhashx_delete(self->by_identity, w->key);
    for (size_t i = 0; i < self->size; i++) {
        if (self->ring[i] == w) {
            memmove(&self->ring[i], &self->ring[i + 1], (self->size - i - 1) * sizeof w);
            self->size--;
            if (self->cursor > i)
                self->cursor--;
            break;
        }
    }
    if (self->cursor >= self->size)
        self->cursor = 0;
    worker_free(w);
    *worker_p = NULL;
}

size_t broker_workers_size(const broker_workers_t *self) {
    return self->size;
}

broker_worker_t *broker_workers_at(const broker_workers_t *self, size_t i) {
    return i < self->size ? self->ring[i] : NULL;
}

broker_worker_t *broker_workers_next(broker_workers_t *self) {
    if (self->size == 0)
        return NULL;
    if (self->cursor >= self->size)
        self->cursor = 0;
    return self->ring[self->cursor++];
}

void broker_worker_register(broker_worker_t *self, const char *name, const char *host, uint64_t pid,
                            broker_queue_t **queues, size_t nqueues, const char *const *tasks,
                            size_t ntasks, uint32_t concurrency, uint64_t credit) {
    clear_registration(self);
    self->registered = true;
    self->name = zt_strdup(name);
    self->host = zt_strdup(host);
    self->pid = pid;
    self->concurrency = concurrency;
    self->credit = credit > BROKER_CREDIT_MAX ? BROKER_CREDIT_MAX : credit;
    self->queues = zt_calloc(nqueues ? nqueues : 1, sizeof *self->queues);
    for (size_t i = 0; i < nqueues; i++) {
        self->queues[i] = queues[i];
        broker_queue_add_consumers(queues[i], 1);
        if (!tasks)
            continue; /* no list announced: the queue learns nothing */
        broker_queue_learn_worker(queues[i]);
        for (size_t j = 0; j < ntasks; j++)
            broker_queue_learn_task(queues[i], tasks[j]);
    }
    self->nqueues = nqueues;
    self->tasks = zt_calloc(ntasks ? ntasks : 1, sizeof *self->tasks);
    for (size_t j = 0; j < ntasks; j++)
        self->tasks[j] = zt_strdup(tasks[j]);
    self->ntasks = ntasks;
}

bool broker_worker_registered(const broker_worker_t *self) {
    return self->registered;
}

const void *broker_worker_identity(const broker_worker_t *self, size_t *size) {
    *size = self->identity_size;
    return self->identity;
}

const char *broker_worker_name(const broker_worker_t *self) {
    return self->name ? self->name : "";
}

void broker_worker_set_curve_key(broker_worker_t *self, const char *key) {
    snprintf(self->curve_key, sizeof self->curve_key, "%s", key ? key : "");
}

const char *broker_worker_curve_key(const broker_worker_t *self) {
    return self->curve_key;
}

const char *broker_worker_host(const broker_worker_t *self) {
    return self->host ? self->host : "";
}

uint64_t broker_worker_pid(const broker_worker_t *self) {
    return self->pid;
}

uint32_t broker_worker_concurrency(const broker_worker_t *self) {
    return self->concurrency;
}

size_t broker_worker_queue_count(const broker_worker_t *self) {
    return self->nqueues;
}

broker_queue_t *broker_worker_queue(const broker_worker_t *self, size_t i) {
    return i < self->nqueues ? self->queues[i] : NULL;
}

size_t broker_worker_task_count(const broker_worker_t *self) {
    return self->ntasks;
}

const char *broker_worker_task(const broker_worker_t *self, size_t i) {
    return i < self->ntasks ? self->tasks[i] : NULL;
}

uint64_t broker_worker_credit(const broker_worker_t *self) {
    return self->credit;
}

void broker_worker_add_credit(broker_worker_t *self, uint64_t credit) {
    if (credit > BROKER_CREDIT_MAX || self->credit + credit > BROKER_CREDIT_MAX)
        self->credit = BROKER_CREDIT_MAX;
    else
        self->credit += credit;
}

broker_task_list_t *broker_worker_in_flight(broker_worker_t *self) {
    return &self->in_flight;
}

/* Order of service: tombstones first, then higher priority, then the task
 * that has waited longer. Returns true if a goes before b. */
static bool goes_before(const broker_task_t *a, const broker_task_t *b) {
    int ra = broker_task_revoked(a) ? BROKER_PRIORITY_LEVELS : broker_task_priority(a);
    int rb = broker_task_revoked(b) ? BROKER_PRIORITY_LEVELS : broker_task_priority(b);
    if (ra != rb)
        return ra > rb;
    return broker_task_listed_at(a) < broker_task_listed_at(b);
}

broker_task_t *broker_worker_pick(broker_worker_t *self) {
    broker_queue_t *best_queue = NULL;
    broker_task_t *best = NULL;
    for (size_t i = 0; i < self->nqueues; i++) {
        broker_task_t *head = broker_queue_peek(self->queues[i]);
        if (head && (!best || goes_before(head, best))) {
            best = head;
            best_queue = self->queues[i];
        }
    }
    if (!best)
        return NULL;
    broker_task_t *task = broker_queue_pop(best_queue);
    ZT_ASSERT(task == best);
    return task;
}

void broker_worker_assign(broker_worker_t *self, broker_task_t *task, int64_t now) {
    broker_task_list_push_tail(&self->in_flight, task, now);
    broker_task_set_worker(task, self);
    broker_task_set_state(task, BROKER_TASK_RESERVED);
    if (self->credit > 0)
        self->credit--;
    broker_queue_add_in_flight(broker_task_queue(task), 1);
    self->counters.dispatched++;
}

void broker_worker_unassign(broker_worker_t *self, broker_task_t *task) {
    ZT_ASSERT(broker_task_list_of(task) == &self->in_flight);
    broker_task_list_remove(task);
    broker_task_set_worker(task, NULL);
    broker_queue_add_in_flight(broker_task_queue(task), -1);
}

broker_worker_counters_t *broker_worker_counters(broker_worker_t *self) {
    return &self->counters;
}

size_t broker_worker_active(const broker_worker_t *self) {
    size_t n = 0;
    for (broker_task_t *t = self->in_flight.head; t; t = broker_task_next(t))
        n += broker_task_state(t) == BROKER_TASK_STARTED;
    return n;
}

void broker_worker_seen(broker_worker_t *self, int64_t now) {
    self->last_seen = now;
}

int64_t broker_worker_last_seen(const broker_worker_t *self) {
    return self->last_seen;
}

void broker_worker_sent(broker_worker_t *self, int64_t now) {
    self->last_sent = now;
}

int64_t broker_worker_last_sent(const broker_worker_t *self) {
    return self->last_sent;
}
