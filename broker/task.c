/* task: the broker's task record and the intrusive list it lives in.
 * Layout of one record (one malloc): struct broker_task, then the body bytes,
 * then "id\0name\0". Ids are at most 128 bytes and names 200 (zt_taskmsg
 * validates both), so their lengths fit in a byte each. */
#include "task.h"
#include "zt_error.h"

#include <stdlib.h>
#include <string.h>

struct broker_task {
    broker_task_t *prev, *next; /* links in `list` */
    broker_task_list_t *list;   /* the list holding the task, or NULL */
    broker_queue_t *queue;      /* borrowed: queues live as long as the broker */
    broker_worker_t *worker;    /* holding it in flight, or NULL */
    int64_t listed_at;          /* monotonic usecs: entered its current list */
    int64_t due;                /* timer heap due time (broker: monotonic usecs) */
    double expires;             /* unix seconds; 0 = never */
    double started;             /* unix seconds of STARTED; 0 = not started */
    size_t heap_index;          /* BROKER_TASK_NO_HEAP when not on the heap */
    uint32_t retries;           /* broker's count (authoritative) */
    uint32_t body_size;         /* bytes of the task message */
    uint8_t id_len;             /* bytes, NUL excluded */
    uint8_t name_len;           /* bytes, NUL excluded */
    uint8_t priority;           /* 0..9 */
    uint8_t state;              /* broker_task_state_t */
    uint8_t revoked;            /* broker_revoked_t */
    bool redelivered;           /* dispatched before to a worker that vanished */
    char data[];                /* body, id\0, name\0 */
};

const char *broker_revoked_name(broker_revoked_t reason) {
    switch (reason) {
    case BROKER_REVOKED_REVOKED:
        return "revoked";
    case BROKER_REVOKED_EXPIRED:
        return "expired";
    case BROKER_REVOKED_PURGED:
        return "purged";
    default:
        return NULL;
    }
}

const char *broker_task_state_name(broker_task_state_t state) {
    switch (state) {
    case BROKER_TASK_QUEUED:
        return "queued";
    case BROKER_TASK_SCHEDULED:
        return "scheduled";
    case BROKER_TASK_RESERVED:
        return "reserved";
    case BROKER_TASK_STARTED:
        return "started";
    }
    return "unknown";
}

broker_task_t *broker_task_new(const void *body, size_t body_size, const zt_taskmsg_t *msg) {
    ZT_ASSERT(msg->id_len <= ZT_ID_MAX && msg->id_len <= UINT8_MAX);
    ZT_ASSERT(msg->task_len <= ZT_NAME_MAX && msg->task_len <= UINT8_MAX);
    ZT_ASSERT(body_size <= UINT32_MAX);
    size_t size = sizeof(broker_task_t) + body_size + msg->id_len + 1 + msg->task_len + 1;
    broker_task_t *self = zt_malloc(size);
    memset(self, 0, sizeof *self);
    self->heap_index = BROKER_TASK_NO_HEAP;
    self->body_size = (uint32_t)body_size;
    self->id_len = (uint8_t)msg->id_len;
    self->name_len = (uint8_t)msg->task_len;
    self->priority = (uint8_t)msg->priority;
    self->retries = (uint32_t)msg->retries;
    self->expires = msg->expires;
    char *p = self->data;
    memcpy(p, body, body_size);
    p += body_size;
    memcpy(p, msg->id, msg->id_len);
    p[msg->id_len] = '\0';
    p += msg->id_len + 1;
    memcpy(p, msg->task, msg->task_len);
    p[msg->task_len] = '\0';
    return self;
}

void broker_task_destroy(broker_task_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_task_t *self = *self_p;
    ZT_ASSERT(self->list == NULL);
    ZT_ASSERT(self->heap_index == BROKER_TASK_NO_HEAP);
    free(self);
    *self_p = NULL;
}

const char *broker_task_id(const broker_task_t *self) {
    return self->data + self->body_size;
}

size_t broker_task_id_len(const broker_task_t *self) {
    return self->id_len;
}

const char *broker_task_name(const broker_task_t *self) {
    return self->data + self->body_size + self->id_len + 1;
}

const void *broker_task_body(const broker_task_t *self, size_t *size) {
    *size = self->body_size;
    return self->data;
}

size_t broker_task_overhead(const broker_task_t *self) {
    return sizeof(broker_task_t) + self->id_len + 1u + self->name_len + 1u;
}

size_t broker_task_size(const broker_task_t *self) {
    return broker_task_overhead(self) + self->body_size;
}

int broker_task_priority(const broker_task_t *self) {
    return self->priority;
}

broker_queue_t *broker_task_queue(const broker_task_t *self) {
    return self->queue;
}

void broker_task_set_queue(broker_task_t *self, broker_queue_t *queue) {
    self->queue = queue;
}

broker_worker_t *broker_task_worker(const broker_task_t *self) {
    return self->worker;
}

void broker_task_set_worker(broker_task_t *self, broker_worker_t *worker) {
    self->worker = worker;
}

broker_task_state_t broker_task_state(const broker_task_t *self) {
    return (broker_task_state_t)self->state;
}

void broker_task_set_state(broker_task_t *self, broker_task_state_t state) {
    self->state = (uint8_t)state;
}

uint32_t broker_task_retries(const broker_task_t *self) {
    return self->retries;
}

void broker_task_set_retries(broker_task_t *self, uint32_t retries) {
    self->retries = retries;
}

bool broker_task_redelivered(const broker_task_t *self) {
    return self->redelivered;
}

void broker_task_set_redelivered(broker_task_t *self, bool redelivered) {
    self->redelivered = redelivered;
}

broker_revoked_t broker_task_revoked(const broker_task_t *self) {
    return (broker_revoked_t)self->revoked;
}

void broker_task_set_revoked(broker_task_t *self, broker_revoked_t reason) {
    self->revoked = (uint8_t)reason;
}

double broker_task_expires(const broker_task_t *self) {
    return self->expires;
}

double broker_task_started(const broker_task_t *self) {
    return self->started;
}

void broker_task_set_started(broker_task_t *self, double unix_seconds) {
    self->started = unix_seconds;
}

int64_t broker_task_due(const broker_task_t *self) {
    return self->due;
}

void broker_task_set_due(broker_task_t *self, int64_t due) {
    self->due = due;
}

size_t broker_task_heap_index(const broker_task_t *self) {
    return self->heap_index;
}

void broker_task_heap_setpos(void *task, size_t pos) {
    ((broker_task_t *)task)->heap_index = pos;
}

int64_t broker_task_listed_at(const broker_task_t *self) {
    return self->listed_at;
}

void broker_task_list_push_tail(broker_task_list_t *list, broker_task_t *task, int64_t now) {
    ZT_ASSERT(task->list == NULL);
    task->list = list;
    task->listed_at = now;
    task->next = NULL;
    task->prev = list->tail;
    if (list->tail)
        list->tail->next = task;
    else
        list->head = task;
    list->tail = task;
    list->count++;
}

void broker_task_list_push_head(broker_task_list_t *list, broker_task_t *task, int64_t now) {
    ZT_ASSERT(task->list == NULL);
    task->list = list;
    task->listed_at = now;
    task->prev = NULL;
    task->next = list->head;
    if (list->head)
        list->head->prev = task;
    else
        list->tail = task;
    list->head = task;
    list->count++;
}

void broker_task_list_remove(broker_task_t *task) {
    broker_task_list_t *list = task->list;
    if (!list)
        return;
    if (task->prev)
        task->prev->next = task->next;
    else
        list->head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        list->tail = task->prev;
    list->count--;
    task->prev = task->next = NULL;
    task->list = NULL;
}

broker_task_t *broker_task_list_pop(broker_task_list_t *list) {
    broker_task_t *task = list->head;
    if (task)
        broker_task_list_remove(task);
    return task;
}

broker_task_list_t *broker_task_list_of(const broker_task_t *task) {
    return task->list;
}

broker_task_t *broker_task_next(const broker_task_t *task) {
    return task->next;
}

broker_task_t *broker_task_prev(const broker_task_t *task) {
    return task->prev;
}
