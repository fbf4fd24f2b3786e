/* mon_actions: zmqmon's admin actions — revoke (and terminate) a task, retry
 * a finished task, purge a queue, shut a worker down — sent through the
 * link without waiting, each remembered until its answer arrives and then
 * told as one line for the status bar ("revoke 3f2a…: running, revoked").
 *
 *   mon_actions_revoke(actions, id, true, line, sizeof line);   // line: "revoking …"
 *   ...
 *   if (mon_actions_on_reply(actions, reply, line, sizeof line, &ok)) show(line);
 */
#ifndef MON_ACTIONS_H
#define MON_ACTIONS_H

#include "mon_link.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tags of action requests carry this bit; other tags belong to the caller. */
#define MON_ACTION_TAG_BIT (1ULL << 63)

typedef struct mon_actions mon_actions_t;

/* link is borrowed and must outlive the actions. */
mon_actions_t *mon_actions_new(mon_link_t *link);
void mon_actions_destroy(mon_actions_t **self_p);

/* Each starts an action and writes what it is doing (or why it could not
 * start) into line. Returns 0 when a request went out, else a negative code
 * (the line says why; no answer will follow). */
int mon_actions_revoke(mon_actions_t *self, const char *id, bool terminate, char *line,
                       size_t size);
/* Sends the task again under a new id with the name, args, kwargs and queue
 * the result backend stored for it (meta: its Celery meta with the
 * result_extended fields). name and queue are used when meta lacks them. */
int mon_actions_retry(mon_actions_t *self, const char *id, const json_t *meta, const char *name,
                      const char *queue, char *line, size_t size);
/* queue NULL: every queue. */
int mon_actions_purge(mon_actions_t *self, const char *queue, char *line, size_t size);
int mon_actions_shutdown(mon_actions_t *self, const char *worker, char *line, size_t size);

/* If reply answers one of our actions, writes its outcome into line, sets
 * *ok, forgets the action and returns true; otherwise returns false. */
bool mon_actions_on_reply(mon_actions_t *self, const mon_reply_t *reply, char *line, size_t size,
                          bool *ok);

/* The task options a retry of meta sends (exposed for tests): fills opts
 * with borrowed pointers into meta (name and queue fall back to the given
 * ones). Returns 0, or -1 with why in reason when meta has no args. */
int mon_actions_retry_options(const json_t *meta, const char *name, const char *queue,
                              zt_task_options_t *opts, char *reason, size_t reason_size);

#endif
