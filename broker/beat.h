/* beat: the broker's side of zmqbeat (PROTOCOL.md §5.3). Any number of
 * beats may run; the broker grants a lease to one of them (the leader, the
 * only one that sends periodic tasks) and keeps each schedule entry's last
 * fire time, which it journals so a new leader, after a failover or a
 * restart, knows what was already sent. */
#ifndef BROKER_BEAT_H
#define BROKER_BEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_BEAT_NAME_MAX 200
#define BROKER_BEAT_ENTRIES_MAX 4096

typedef struct broker_beat broker_beat_t;

broker_beat_t *broker_beat_new(void);
void broker_beat_destroy(broker_beat_t **self_p);

/* A beat named `name` asks for (or renews) the lease for lease_us from now
 * (monotonic usecs). It gets it when nobody holds it, when the holder's
 * lease ran out, or when it is the holder. Returns true when `name` leads. */
bool broker_beat_lease(broker_beat_t *self, const char *name, int64_t lease_us, int64_t now);

/* The current leader ("" if none or expired at now) and its lease's end. */
const char *broker_beat_leader(const broker_beat_t *self, int64_t now, int64_t *expires);

/* Sets an entry's last fire time (unix seconds) if later than the one held.
 * Returns true when it changed (the caller journals it). Refuses more than
 * BROKER_BEAT_ENTRIES_MAX entries (returns false). */
bool broker_beat_set_fire(broker_beat_t *self, const char *entry, double fire);

/* Notes the leader's next fire time of an entry, for listings only. */
void broker_beat_set_next(broker_beat_t *self, const char *entry, double next);

/* Entries, in no particular order: count, then each by index. */
size_t broker_beat_entries(const broker_beat_t *self);
const char *broker_beat_entry_at(const broker_beat_t *self, size_t i, double *last_fire,
                                 double *next_fire);

#endif
