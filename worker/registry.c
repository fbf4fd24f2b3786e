/* worker_registry: a sorted array searched by bisection. Registration happens
 * a handful of times at start-up, lookups once per task, so insertion keeps the
 * array sorted and lookups stay allocation-free. */
#include "registry.h"

#include "zt_error.h"
#include "zt_taskmsg.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    size_t len;
    worker_task_fn_t *fn;
    worker_task_options_t opts;
} entry_t;

struct worker_registry {
    entry_t *entries; /* sorted by name (bytewise) */
    size_t count;
    size_t cap;
};

void worker_task_options_init(worker_task_options_t *opts) {
    opts->time_limit = 0;
    opts->soft_time_limit = 0;
    opts->max_retries = -1;
    opts->retry_delay = -1;
}

worker_registry_t *worker_registry_new(void) {
    return zt_calloc(1, sizeof(worker_registry_t));
}

void worker_registry_destroy(worker_registry_t **self_p) {
    if (!self_p || !*self_p)
        return;
    worker_registry_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free(self->entries[i].name);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static int compare(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Index of name, or where it would go (*found false). */
static size_t find(const worker_registry_t *self, const char *name, size_t len, bool *found) {
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare(self->entries[mid].name, self->entries[mid].len, name, len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int worker_registry_add(worker_registry_t *self, const char *name, worker_task_fn_t *fn,
                        const worker_task_options_t *opts) {
    if (!name || !fn || !zt_taskmsg_valid_name(name, strlen(name)))
        return ZT_ERR_INVALID;
    worker_task_options_t o;
    if (opts)
        o = *opts;
    else
        worker_task_options_init(&o);
    if (o.time_limit < 0 || o.soft_time_limit < 0 || o.max_retries < -1)
        return ZT_ERR_INVALID;
    bool found;
    size_t len = strlen(name);
    size_t at = find(self, name, len, &found);
    if (found)
        return ZT_ERR_REJECTED;
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->entries = zt_realloc(self->entries, self->cap * sizeof *self->entries);
    }
    memmove(&self->entries[at + 1], &self->entries[at], (self->count - at) * sizeof(entry_t));
    self->entries[at] = (entry_t){zt_strdup(name), len, fn, o};
    self->count++;
    return 0;
}

worker_task_fn_t *worker_registry_lookup(const worker_registry_t *self, const char *name,
                                         size_t len, const worker_task_options_t **opts) {
    bool found;
    size_t at = find(self, name, len, &found);
    if (!found)
        return NULL;
    if (opts)
        *opts = &self->entries[at].opts;
    return self->entries[at].fn;
}

size_t worker_registry_size(const worker_registry_t *self) {
    return self->count;
}

const char *worker_registry_name(const worker_registry_t *self, size_t i) {
    return i < self->count ? self->entries[i].name : NULL;
}
