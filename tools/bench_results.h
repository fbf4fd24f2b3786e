/* bench_results: where zmqbench learns that its tasks finished. Two sources,
 * one interface:
 *   - Redis: zt_backend's streaming subscriber (PSUBSCRIBE
 *     celery-task-meta-*); every state the workers PUBLISH arrives here;
 *   - events: a SUB socket on the broker's events endpoint, filtered to
 *     task-succeeded / task-failed / task-revoked (for --no-results runs).
 * Both are non-blocking after setup: the caller polls the item from
 * bench_results_pollitem() with its other sockets and calls
 * bench_results_drain() when it is readable. */
#ifndef BENCH_RESULTS_H
#define BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#include "zt_curve.h"

typedef struct bench_results bench_results_t;

typedef enum {
    BENCH_STATE_OTHER = 0, /* STARTED, PROGRESS, RETRY: not final */
    BENCH_STATE_SUCCESS,
    BENCH_STATE_FAILED /* FAILURE or REVOKED (or task-failed/-revoked events) */
} bench_state_t;

/* Called once per message: id is the task id (NOT NUL-terminated, id_len
 * bytes, borrowed for the call). */
typedef void(bench_results_fn)(const char *id, size_t id_len, bench_state_t state, void *arg);

/* Connects to Redis at url (a result backend url, see zt_backend_new) and
 * PSUBSCRIBEs to celery-task-meta-*, waiting up to timeout_ms for Redis to
 * confirm, so nothing published afterwards is missed. Returns the source or
 * NULL after logging why. */
bench_results_t *bench_results_new_redis(const char *url, int timeout_ms);

/* Subscribes to the broker's events endpoint, with CURVE when curve is not
 * NULL (borrowed). ZeroMQ subscriptions take a moment to reach the
 * publisher; this waits settle_ms before returning so the first tasks'
 * events are not lost. Returns the source or NULL. */
bench_results_t *bench_results_new_events(const char *url, const zt_curve_t *curve, int settle_ms);

void bench_results_destroy(bench_results_t **self_p);

/* Fills item so zmq_poll() can watch the source (socket or fd, ZMQ_POLLIN). */
void bench_results_pollitem(bench_results_t *self, zmq_pollitem_t *item);

/* Reads everything available without blocking and calls fn for each task
 * message. Returns the number of messages passed to fn, or a negative
 * ZT_ERR_* code if the connection failed (the source is then unusable). */
int bench_results_drain(bench_results_t *self, bench_results_fn *fn, void *arg);

#endif
