/* timer_heap: array-backed binary min-heap ordered by (due, seq). seq is an
 * insertion counter that makes equal due times FIFO. Invariant: every entry
 * is not less than its parent, and setpos was told each entry's index. */
#include "timer_heap.h"
#include "zt_error.h"

#include <stdbool.h>
#include <stdlib.h>

typedef struct {
    int64_t due;  /* caller's unit */
    uint64_t seq; /* insertion order, breaks ties */
    void *item;
} entry_t;

struct broker_timer_heap {
    entry_t *entries;
    size_t size;
    size_t capacity;
    uint64_t next_seq;
    broker_timer_setpos_fn *setpos;
};

broker_timer_heap_t *broker_timer_heap_new(broker_timer_setpos_fn *setpos) {
    broker_timer_heap_t *self = zt_calloc(1, sizeof *self);
    self->setpos = setpos;
    return self;
}

void broker_timer_heap_destroy(broker_timer_heap_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_timer_heap_t *self = *self_p;
    if (self->setpos)
        for (size_t i = 0; i < self->size; i++)
            self->setpos(self->entries[i].item, SIZE_MAX);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static bool less(const entry_t *a, const entry_t *b) {
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(broker_timer_heap_t *self, size_t pos, entry_t e) {
    self->entries[pos] = e;
    if (self->setpos)
        self->setpos(e.item, pos);
}

/* Moves the entry at pos towards the root until its parent is not greater. */
static void sift_up(broker_timer_heap_t *self, size_t pos) {
    entry_t e = self->entries[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!less(&e, &self->entries[parent]))
            break;
        place(self, pos, self->entries[parent]);
        pos = parent;
    }
    place(self, pos, e);
}

/* Moves the entry at pos towards the leaves until no child is smaller. */
static void sift_down(broker_timer_heap_t *self, size_t pos) {
    entry_t e = self->entries[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= self->size)
            break;
        if (child + 1 < self->size && less(&self->entries[child + 1], &self->entries[child]))
            child++;
        if (!less(&self->entries[child], &e))
            break;
        place(self, pos, self->entries[child]);
        pos = child;
    }
    place(self, pos, e);
}

void broker_timer_heap_insert(broker_timer_heap_t *self, int64_t due, void *item) {
    ZT_ASSERT(item);
    if (self->size == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 64;
        self->entries = zt_realloc(self->entries, self->capacity * sizeof(entry_t));
    }
    entry_t e = {due, self->next_seq++, item};
    self->entries[self->size++] = e;
    sift_up(self, self->size - 1);
}

void *broker_timer_heap_remove(broker_timer_heap_t *self, size_t pos) {
    if (pos >= self->size)
        return NULL;
    void *item = self->entries[pos].item;
    self->size--;
    if (pos < self->size) {
        /* the last entry fills the hole; it may belong above or below it */
        entry_t last = self->entries[self->size];
        place(self, pos, last);
        if (pos > 0 && less(&last, &self->entries[(pos - 1) / 2]))
            sift_up(self, pos);
        else
            sift_down(self, pos);
    }
    if (self->setpos)
        self->setpos(item, SIZE_MAX);
    return item;
}

void *broker_timer_heap_peek(const broker_timer_heap_t *self, int64_t *due) {
    if (self->size == 0)
        return NULL;
    if (due)
        *due = self->entries[0].due;
    return self->entries[0].item;
}

void *broker_timer_heap_pop_due(broker_timer_heap_t *self, int64_t now) {
    if (self->size == 0 || self->entries[0].due > now)
        return NULL;
    return broker_timer_heap_remove(self, 0);
}

int64_t broker_timer_heap_wait(const broker_timer_heap_t *self, int64_t now) {
    if (self->size == 0)
        return -1;
    int64_t due = self->entries[0].due;
    return due <= now ? 0 : due - now;
}

size_t broker_timer_heap_size(const broker_timer_heap_t *self) {
    return self->size;
}

void *broker_timer_heap_at(const broker_timer_heap_t *self, size_t pos, int64_t *due) {
    if (pos >= self->size)
        return NULL;
    if (due)
        *due = self->entries[pos].due;
    return self->entries[pos].item;
}
