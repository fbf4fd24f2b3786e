/* beat: see beat.h. A handful of entries: a plain array, searched linearly. */
#include "beat.h"
#include "zt_error.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[BROKER_BEAT_NAME_MAX + 1];
    double last_fire; /* unix seconds; 0 = never */
    double next_fire; /* as the leader last reported it; 0 = unknown */
} entry_t;

struct broker_beat {
    char leader[BROKER_BEAT_NAME_MAX + 1];
    int64_t expires; /* monotonic usecs */
    entry_t *entries;
    size_t count, cap;
};

broker_beat_t *broker_beat_new(void) {
    return zt_calloc(1, sizeof(broker_beat_t));
}

void broker_beat_destroy(broker_beat_t **self_p) {
    if (!self_p || !*self_p)
        return;
    free((*self_p)->entries);
    free(*self_p);
    *self_p = NULL;
}

bool broker_beat_lease(broker_beat_t *self, const char *name, int64_t lease_us, int64_t now) {
    if (strlen(name) > BROKER_BEAT_NAME_MAX)
        return false;
    bool free_lease = self->leader[0] == '\0' || now >= self->expires;
    if (!free_lease && strcmp(self->leader, name) != 0)
        return false;
    strcpy(self->leader, name);
    self->expires = now + lease_us;
    return true;
}

const char *broker_beat_leader(const broker_beat_t *self, int64_t now, int64_t *expires) {
    if (expires)
        *expires = self->expires;
    return self->leader[0] && now < self->expires ? self->leader : "";
}

static entry_t *find(const broker_beat_t *self, const char *entry) {
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->entries[i].name, entry) == 0)
            return &self->entries[i];
    return NULL;
}

static entry_t *find_or_add(broker_beat_t *self, const char *entry) {
    entry_t *e = find(self, entry);
    if (e || strlen(entry) > BROKER_BEAT_NAME_MAX || self->count >= BROKER_BEAT_ENTRIES_MAX)
        return e;
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->entries = zt_realloc(self->entries, self->cap * sizeof *self->entries);
    }
    e = &self->entries[self->count++];
    memset(e, 0, sizeof *e);
    strcpy(e->name, entry);
    return e;
}

bool broker_beat_set_fire(broker_beat_t *self, const char *entry, double fire) {
    entry_t *e = find_or_add(self, entry);
    if (!e || fire <= e->last_fire)
        return false;
    e->last_fire = fire;
    return true;
}

void broker_beat_set_next(broker_beat_t *self, const char *entry, double next) {
    entry_t *e = find_or_add(self, entry);
    if (e)
        e->next_fire = next;
}

size_t broker_beat_entries(const broker_beat_t *self) {
    return self->count;
}

const char *broker_beat_entry_at(const broker_beat_t *self, size_t i, double *last_fire,
                                 double *next_fire) {
    const entry_t *e = &self->entries[i];
    if (last_fire)
        *last_fire = e->last_fire;
    if (next_fire)
        *next_fire = e->next_fire;
    return e->name;
}
