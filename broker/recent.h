/* recent: the ids of the last N tasks the broker finished, so a SUBMIT that
 * repeats one of them (a second beat leader, a client retrying after a lost
 * ACCEPTED) is answered REJECTED duplicate-id instead of running the task
 * again. A fixed ring: the oldest id is forgotten when a new one comes. */
#ifndef BROKER_RECENT_H
#define BROKER_RECENT_H

#include <stdbool.h>
#include <stddef.h>

#define BROKER_RECENT_DEFAULT 65536 /* ids remembered */

typedef struct broker_recent broker_recent_t;

/* capacity: ids remembered (at least 1). */
broker_recent_t *broker_recent_new(size_t capacity);
void broker_recent_destroy(broker_recent_t **self_p);

/* Remembers id (NUL-terminated, at most ZT_ID_MAX bytes; longer ones are
 * ignored); a repeated id is not stored twice. */
void broker_recent_add(broker_recent_t *self, const char *id);
bool broker_recent_has(const broker_recent_t *self, const char *id);
size_t broker_recent_size(const broker_recent_t *self);

/* The i-th remembered id, oldest first (i < size), for snapshots. */
const char *broker_recent_at(const broker_recent_t *self, size_t i);

#endif
