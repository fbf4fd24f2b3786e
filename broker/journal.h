/* journal: the seam where durability (issue 4) plugs in. The broker calls
 * these hooks at every state change a restart must survive, and
 * broker_journal_commit() once per loop iteration after a batch of messages.
 *
 * In this issue there is NO journal: broker_journal_new() only creates the
 * data directory, and the hooks record nothing, so a broker restart loses
 * every task it held. Issue 4 replaces journal.c (record I/O plus a policy
 * module for rotation, compaction and fsync pacing) without touching the
 * broker's call sites. When it does, ACCEPTED must be sent only after the
 * commit that covers the task (PROTOCOL.md §5.1); the broker sends it right
 * away today. */
#ifndef BROKER_JOURNAL_H
#define BROKER_JOURNAL_H

#include "task.h"

typedef struct broker_journal broker_journal_t;

/* Opens the journal in data_dir, creating the directory (and its parents)
 * if missing. Returns the journal, or NULL with *err = ZT_ERR_IO when the
 * directory cannot be created. */
broker_journal_t *broker_journal_new(const char *data_dir, int *err);
void broker_journal_destroy(broker_journal_t **self_p);

/* A task the broker now owns (accepted SUBMIT). */
void broker_journal_task_added(broker_journal_t *self, const broker_task_t *task);

/* A task whose durable fields changed: retries and due time (retry
 * rescheduled), revoked reason (revoke, expiry, purge). */
void broker_journal_task_updated(broker_journal_t *self, const broker_task_t *task);

/* A task the broker forgets (DONE success, failure or revoked). */
void broker_journal_task_removed(broker_journal_t *self, const broker_task_t *task);

/* Ends a batch: after this returns 0, everything hooked so far is durable.
 * Returns 0 or ZT_ERR_IO. */
int broker_journal_commit(broker_journal_t *self);

#endif
