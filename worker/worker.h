/* worker: the zmqworker parent process. Owns the DEALER connection to the
 * broker (HELLO, credit, heartbeats, Paranoid Pirate reconnection), the
 * tasks it holds (reserved and running), the retry decisions, the Redis
 * result writer (zt_backend, one pipeline per loop iteration, acks-late: DONE
 * only after Redis confirmed the state), and the prefork pool (pool.h).
 * Single-threaded: one zmq_poll loop over the broker socket, the children's
 * channels, Redis and a self-pipe for signals. */
#ifndef WORKER_H
#define WORKER_H

#include "registry.h"

#include "zt_config.h"

typedef struct worker worker_t;

/* Creates the worker: forks the pool, prepares the result backend (Redis is
 * connected lazily and re-connected as needed) and the broker connection.
 * name is the worker's name (already %h-expanded), queues a comma-separated
 * list (NULL or "": "default"). config and queues are copied; registry is
 * borrowed and must outlive the worker. Returns NULL with *err (ZT_ERR_INVALID
 * for a bad setting, reason logged; ZT_ERR_IO if no child could be started). */
worker_t *worker_new(const zt_config_t *config, const char *name, const char *queues,
                     const worker_registry_t *registry, int *err);

/* Runs until shut down: SIGTERM/SIGINT start a warm shutdown (reserved
 * tasks are handed back with RELEASE, running ones finish, BYE), a second one
 * or SIGQUIT a cold one (children killed at once). Installs its own signal
 * handlers for SIGTERM, SIGINT, SIGQUIT and SIGCHLD. Returns 0 after a
 * shutdown, or a negative code if the loop could not run. */
int worker_run(worker_t *self);

/* Kills any children left and frees everything. */
void worker_destroy(worker_t **self_p);

/* Expands %h (host name), %n (the part before the first '.') and %% in a
 * worker name pattern such as "worker@%h". Returns 0 or ZT_ERR_TOO_LARGE. */
int worker_expand_name(const char *pattern, char *out, size_t size);

#endif
