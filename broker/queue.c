/* queue: priority levels as intrusive FIFO lists with a bitmap of the
 * non-empty ones. Bit p (0..9) is level p; bit BIT_TOMB is the tombstone list.
 * Invariant: a bit is set exactly when its list is non-empty. */
#include "queue.h"
#include "zt_error.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#define TOMB BROKER_PRIORITY_LEVELS /* index of the tombstone list */
#define LISTS (BROKER_PRIORITY_LEVELS + 1)

struct broker_queue {
    char *name;
    broker_task_list_t lists[LISTS]; /* 0..9 by priority, TOMB last */
    unsigned nonempty;               /* bitmap over lists */
    size_t scheduled;                /* this queue's tasks on the timer heap */
    size_t in_flight;                /* this queue's tasks at workers */
    size_t consumers;                /* workers serving this queue */
    bool had_workers;                /* some worker served it since start */
    bool known_overflow;             /* too many names to remember: accept all */
    zhashx_t *known_tasks;           /* names registered by its workers (set) */
};

broker_queue_t *broker_queue_new(const char *name) {
    broker_queue_t *self = zt_calloc(1, sizeof *self);
    self->name = zt_strdup(name);
    self->known_tasks = zhashx_new();
    ZT_ASSERT(self->known_tasks);
    return self;
}

void broker_queue_destroy(broker_queue_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_queue_t *self = *self_p;
    for (int i = 0; i < LISTS; i++)
        while (broker_task_list_pop(&self->lists[i]))
            ;
    zhashx_destroy(&self->known_tasks);
    free(self->name);
    free(self);
    *self_p = NULL;
}

const char *broker_queue_name(const broker_queue_t *self) {
    return self->name;
}

static int list_index(const broker_task_t *task) {
    if (broker_task_revoked(task) != BROKER_REVOKED_NONE)
        return TOMB;
    int p = broker_task_priority(task);
    ZT_ASSERT(p >= 0 && p < BROKER_PRIORITY_LEVELS);
    return p;
}

void broker_queue_push(broker_queue_t *self, broker_task_t *task, int64_t now) {
    int i = list_index(task);
    broker_task_list_push_tail(&self->lists[i], task, now);
    self->nonempty |= 1u << i;
    broker_task_set_queue(task, self);
    broker_task_set_state(task, BROKER_TASK_QUEUED);
}

void broker_queue_push_head(broker_queue_t *self, broker_task_t *task, int64_t now) {
    int i = list_index(task);
    broker_task_list_push_head(&self->lists[i], task, now);
    self->nonempty |= 1u << i;
    broker_task_set_queue(task, self);
    broker_task_set_state(task, BROKER_TASK_QUEUED);
}

/* Which of our lists holds task, or -1. */
static int holder(const broker_queue_t *self, const broker_task_t *task) {
    /* compared as integers: the list may belong to another object */
    uintptr_t list = (uintptr_t)broker_task_list_of(task);
    uintptr_t first = (uintptr_t)&self->lists[0];
    if (list < first || list >= (uintptr_t)&self->lists[LISTS])
        return -1;
    return (int)((list - first) / sizeof self->lists[0]);
}

int broker_queue_remove(broker_queue_t *self, broker_task_t *task) {
    int i = holder(self, task);
    if (i < 0)
        return ZT_ERR_NOT_FOUND;
    broker_task_list_remove(task);
    if (self->lists[i].count == 0)
        self->nonempty &= ~(1u << i);
    return 0;
}

/* Index of the list served next, or -1. */
static int next_list(const broker_queue_t *self) {
    if (!self->nonempty)
        return -1;
    if (self->nonempty & (1u << TOMB))
        return TOMB;
    /* highest set bit among the priority levels */
    return 31 - __builtin_clz(self->nonempty);
}

broker_task_t *broker_queue_peek(const broker_queue_t *self) {
    int i = next_list(self);
    return i < 0 ? NULL : self->lists[i].head;
}

broker_task_t *broker_queue_pop(broker_queue_t *self) {
    int i = next_list(self);
    if (i < 0)
        return NULL;
    broker_task_t *task = broker_task_list_pop(&self->lists[i]);
    if (self->lists[i].count == 0)
        self->nonempty &= ~(1u << i);
    return task;
}

size_t broker_queue_size(const broker_queue_t *self) {
    size_t n = 0;
    for (int i = 0; i < LISTS; i++)
        n += self->lists[i].count;
    return n;
}

size_t broker_queue_ready(const broker_queue_t *self) {
    return broker_queue_size(self) - self->lists[TOMB].count;
}

size_t broker_queue_count(const broker_queue_t *self, int priority) {
    if (priority < 0 || priority >= BROKER_PRIORITY_LEVELS)
        return 0;
    return self->lists[priority].count;
}

size_t broker_queue_tombstones(const broker_queue_t *self) {
    return self->lists[TOMB].count;
}

int64_t broker_queue_oldest(const broker_queue_t *self) {
    int64_t oldest = 0;
    for (int i = 0; i < LISTS; i++) {
        const broker_task_t *head = self->lists[i].head;
        if (head && (oldest == 0 || broker_task_listed_at(head) < oldest))
            oldest = broker_task_listed_at(head);
    }
    return oldest;
}

size_t broker_queue_purge(broker_queue_t *self, void (*on_purged)(broker_task_t *, void *),
                          void *arg) {
    size_t purged = 0;
    for (int i = 0; i < BROKER_PRIORITY_LEVELS; i++) {
        broker_task_t *task;
        while ((task = broker_task_list_pop(&self->lists[i]))) {
            /* keeps its waiting time: it is still the same task waiting */
            int64_t since = broker_task_listed_at(task);
            broker_task_set_revoked(task, BROKER_REVOKED_PURGED);
            broker_task_list_push_tail(&self->lists[TOMB], task, since);
            self->nonempty |= 1u << TOMB;
            purged++;
            if (on_purged)
                on_purged(task, arg);
        }
        self->nonempty &= ~(1u << i);
    }
    return purged;
}

broker_task_t *broker_queue_first(const broker_queue_t *self) {
    if (self->lists[TOMB].head)
        return self->lists[TOMB].head;
    for (int i = BROKER_PRIORITY_LEVELS - 1; i >= 0; i--)
        if (self->lists[i].head)
            return self->lists[i].head;
    return NULL;
}

broker_task_t *broker_queue_next(const broker_queue_t *self, const broker_task_t *task) {
    broker_task_t *next = broker_task_next(task);
    if (next)
        return next;
    int i = holder(self, task);
    if (i < 0)
        return NULL;
    /* order of lists: TOMB, 9, 8, ..., 0 */
    int from = i == TOMB ? BROKER_PRIORITY_LEVELS - 1 : i - 1;
    for (int j = from; j >= 0; j--)
        if (self->lists[j].head)
            return self->lists[j].head;
    return NULL;
}

static void adjust(size_t *count, int delta) {
    if (delta < 0 && (size_t)(-delta) > *count)
        *count = 0;
    else
        *count = (size_t)((ptrdiff_t)*count + delta);
}

void broker_queue_add_scheduled(broker_queue_t *self, int delta) {
    adjust(&self->scheduled, delta);
}

void broker_queue_add_in_flight(broker_queue_t *self, int delta) {
    adjust(&self->in_flight, delta);
}

void broker_queue_add_consumers(broker_queue_t *self, int delta) {
    adjust(&self->consumers, delta);
}

size_t broker_queue_scheduled(const broker_queue_t *self) {
    return self->scheduled;
}

size_t broker_queue_in_flight(const broker_queue_t *self) {
    return self->in_flight;
}

size_t broker_queue_consumers(const broker_queue_t *self) {
    return self->consumers;
}

void broker_queue_learn_task(broker_queue_t *self, const char *name) {
    self->had_workers = true;
    if (self->known_overflow || zhashx_lookup(self->known_tasks, name))
        return;
    if (zhashx_size(self->known_tasks) >= BROKER_QUEUE_MAX_KNOWN_TASKS) {
        self->known_overflow = true;
        return;
    }
    /* zhashx copies the key; the item only needs to be non-NULL */
    zhashx_insert(self->known_tasks, name, (void *)1);
}

void broker_queue_learn_worker(broker_queue_t *self) {
    self->had_workers = true;
}

bool broker_queue_accepts(const broker_queue_t *self, const char *name, size_t len) {
    if (!self->had_workers || self->known_overflow)
        return true;
    char key[256];
    if (len >= sizeof key)
        return false;
    memcpy(key, name, len);
    key[len] = '\0';
    return zhashx_lookup(self->known_tasks, key) != NULL;
}
