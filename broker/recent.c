/* recent: see recent.h. The ids live in one array of fixed slots (no
 * allocation per finished task); the hash's keys point into the slots. */
#include "recent.h"
#include "zt_error.h"
#include "zt_taskmsg.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

typedef char slot_t[ZT_ID_MAX + 1];

struct broker_recent {
    slot_t *slots;
    size_t capacity;
    size_t next; /* slot the next id goes to */
    size_t size;
    zhashx_t *index; /* id (in a slot) -> non-NULL */
};

broker_recent_t *broker_recent_new(size_t capacity) {
    broker_recent_t *self = zt_calloc(1, sizeof *self);
    self->capacity = capacity ? capacity : 1;
    /* calloc: pages of slots never used are never touched */
    self->slots = zt_calloc(self->capacity, sizeof(slot_t));
    self->index = zhashx_new();
    zhashx_set_key_duplicator(self->index, NULL);
    zhashx_set_key_destructor(self->index, NULL);
    return self;
}

void broker_recent_destroy(broker_recent_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_recent_t *self = *self_p;
    zhashx_destroy(&self->index);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

void broker_recent_add(broker_recent_t *self, const char *id) {
    size_t len = strlen(id);
    if (len == 0 || len > ZT_ID_MAX || zhashx_lookup(self->index, id))
        return;
    char *slot = self->slots[self->next];
    if (self->size == self->capacity)
        zhashx_delete(self->index, slot); /* forget the oldest */
    else
        self->size++;
    memcpy(slot, id, len + 1);
    zhashx_insert(self->index, slot, slot);
    self->next = (self->next + 1) % self->capacity;
}

bool broker_recent_has(const broker_recent_t *self, const char *id) {
    return zhashx_lookup(self->index, id) != NULL;
}

size_t broker_recent_size(const broker_recent_t *self) {
    return self->size;
}

const char *broker_recent_at(const broker_recent_t *self, size_t i) {
    size_t oldest = self->size == self->capacity ? self->next : 0;
    return self->slots[(oldest + i) % self->capacity];
}
