/* zt_backend: the Redis result backend, in Celery's layout (docs/PROTOCOL.md §9).
 * Owns the hiredis contexts. Writers (workers) queue state changes and flush
 * them in one pipelined round trip (SETEX + PUBLISH per state); a queued
 * STARTED or PROGRESS is dropped when a later state of the same task is queued
 * before the flush. Readers (clients) GET a task's meta or wait for a final
 * state through SUBSCRIBE, without polling; a streaming reader (zmqbench)
 * follows every task's states through PSUBSCRIBE.
 * Blocking: every call here may block on Redis; never call it from the broker.
 * The event-loop calls (zt_backend_send/_recv/_drain_meta) never wait for
 * Redis to answer; zt_backend_send blocks only as long as writing one
 * pipeline to a local socket takes. */
#ifndef ZT_BACKEND_H
#define ZT_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zt_backend zt_backend_t;

/* Connects to url ("redis://[[user]:password@]host[:port][/db]", default port
 * 6379, db 0; or "unix:///path/to/socket[?db=N]"). Returns the backend, or NULL
 * with *err set (ZT_ERR_INVALID for a bad url, ZT_ERR_BACKEND if Redis does not
 * answer); err may be NULL. */
zt_backend_t *zt_backend_new(const char *url, int *err);
void zt_backend_destroy(zt_backend_t **self_p);

/* Like zt_backend_new, but a Redis that does not answer yet is not an error:
 * the connection is made (and re-made after failures, with a backoff) by
 * zt_backend_send(). Returns NULL only for a bad url (ZT_ERR_INVALID). */
zt_backend_t *zt_backend_new_lazy(const char *url, int *err);

/* Queues a state change of task id. status is "STARTED", "PROGRESS", "RETRY",
 * "SUCCESS", "FAILURE" or "REVOKED"; result is borrowed (NULL = JSON null);
 * traceback may be NULL. ttl_s is the key's time to live. Nothing is sent
 * until zt_backend_flush() or zt_backend_send(). Returns 0 or ZT_ERR_INVALID. */
int zt_backend_queue_state(zt_backend_t *self, const char *id, const char *status,
                           const json_t *result, const char *traceback, int64_t ttl_s);

/* Like zt_backend_queue_state, and the members of extended (a JSON object,
 * borrowed; NULL = none) are stored in the meta too, after date_done and
 * before task_id: Celery's result_extended fields {name, args, kwargs,
 * worker, retries, queue}. Members named like the meta's own are ignored. */
int zt_backend_queue_state_ext(zt_backend_t *self, const char *id, const char *status,
                               const json_t *result, const char *traceback, int64_t ttl_s,
                               const json_t *extended);

/* Builds Celery's exception object {"exc_type", "exc_message": [message],
 * "exc_module"} (module NULL = JSON null). Caller owns the reference. */
json_t *zt_backend_exception(const char *exc_type, const char *message, const char *exc_module);

/* Number of state changes held: queued, or sent and not yet confirmed. */
int zt_backend_pending(const zt_backend_t *self);

/* Called for each queued RETRY, SUCCESS, FAILURE or REVOKED state the limit
 * drops (status is one of those names); id and status are borrowed for the
 * call. It runs inside zt_backend_queue_state/_send/_recv/_set_limit and must
 * not call back into the backend. */
typedef void(zt_backend_lost_fn)(const char *id, const char *status, void *arg);

/* Bounds the states held (zt_backend_pending) to max_states (0: no bound),
 * for a Redis that is away longer than memory allows. To make room for a
 * new state the oldest queued STARTED, PROGRESS or RETRY is dropped first,
 * then the oldest queued result (SUCCESS, FAILURE, REVOKED); states already
 * sent are never dropped, so a busy connection may exceed the bound by what
 * is in flight. fn (may be NULL) hears of every dropped RETRY or result:
 * its batch will be confirmed without it. */
void zt_backend_set_limit(zt_backend_t *self, int max_states, zt_backend_lost_fn *fn, void *arg);

/* Results (SUCCESS, FAILURE, REVOKED) dropped by the limit so far. */
int64_t zt_backend_lost(const zt_backend_t *self);

/* True while the writer holds a connection to Redis (it may still turn out
 * to be dead at the next write). */
bool zt_backend_connected(const zt_backend_t *self);

/* Sends everything queued in one pipeline and reads all replies. On a Redis
 * failure it reconnects once and retries; if that fails the writes stay
 * queued, ZT_ERR_BACKEND is returned, and the caller retries later.
 * Returns 0 when everything was written. */
int zt_backend_flush(zt_backend_t *self);

/* --- Event-loop use (the worker parent) -----------------------------------
 * Batches are numbered from 1. zt_backend_next_batch() is the number the states
 * queued now will be confirmed under; zt_backend_acked() is the highest number
 * such that every state queued under it or earlier is in Redis. A caller that
 * must act only after a state is durable (acks-late DONE) remembers
 * next_batch at queue time and waits until acked reaches it. */
uint64_t zt_backend_next_batch(const zt_backend_t *self);
uint64_t zt_backend_acked(const zt_backend_t *self);

/* Writes the queued states as one pipeline without waiting for the replies
 * (connecting first if needed). Returns 0 (also when nothing was queued), or
 * ZT_ERR_BACKEND when Redis is unreachable: the states stay queued and the
 * next call after zt_backend_retry_ms() tries again. Call it at least once a
 * second: it also notices a Redis that stopped answering (5 s without a
 * reply) and treats that as a lost connection. */
int zt_backend_send(zt_backend_t *self);

/* The socket to poll for input while replies are outstanding, or -1. */
int zt_backend_fd(const zt_backend_t *self);

/* True while sent states wait for Redis's replies. */
bool zt_backend_waiting(const zt_backend_t *self);

/* Reads whatever replies have arrived, without blocking, and advances
 * zt_backend_acked(). On a lost connection the unconfirmed states go back to
 * the queue (to be sent again) and ZT_ERR_BACKEND is returned. */
int zt_backend_recv(zt_backend_t *self);

/* Monotonic msecs before which zt_backend_send() will not try to reconnect
 * (0 when connected). Lets an event loop bound its poll timeout. */
int64_t zt_backend_retry_ms(const zt_backend_t *self);

/* Reads task id's meta. Returns 0 and a new JSON object in *meta (caller owns),
 * ZT_ERR_NOT_FOUND if there is none (PENDING), or ZT_ERR_BACKEND. */
int zt_backend_get(zt_backend_t *self, const char *id, json_t **meta);

/* Waits up to timeout_ms for task id to reach a final state (SUCCESS,
 * FAILURE, REVOKED), via SUBSCRIBE on its channel then GET (no polling).
 * Returns 0 with the final meta in *meta (caller owns), ZT_ERR_TIMEOUT with the
 * latest meta seen in *meta (or NULL if none), or ZT_ERR_BACKEND. */
int zt_backend_wait(zt_backend_t *self, const char *id, int timeout_ms, json_t **meta);

/* True for SUCCESS, FAILURE and REVOKED. */
bool zt_backend_state_is_final(const char *status);

/* --- Streaming subscriber (benchmarks, monitors) ---------------------------
 * Every state a worker writes is also PUBLISHed on its key's channel
 * (PROTOCOL.md §9). A reader that follows all tasks at once subscribes to the
 * pattern celery-task-meta-* on a connection of its own (separate from the
 * writer and from zt_backend_wait's), polls zt_backend_subscriber_fd() with
 * its other sockets, and calls zt_backend_drain_meta() when it is readable. */

/* Called once per published state: id is the task id (the channel minus
 * "celery-task-meta-"), payload the meta JSON as published. Neither is
 * NUL-terminated; both are borrowed for the duration of the call. */
typedef void(zt_backend_meta_fn)(const char *id, size_t id_len, const char *payload,
                                 size_t payload_len, void *arg);

/* Opens the subscriber connection and PSUBSCRIBEs celery-task-meta-*,
 * waiting up to timeout_ms (each of connecting and the confirmation) for
 * Redis to confirm: every state published after this returns 0 reaches
 * zt_backend_drain_meta(). Already subscribed: returns 0 at once. Returns
 * ZT_ERR_BACKEND (logged) when Redis cannot be reached or refuses. */
int zt_backend_subscribe_meta(zt_backend_t *self, int timeout_ms);

/* The subscriber connection's socket, to poll for input, or -1 when not
 * subscribed (never, or lost). */
int zt_backend_subscriber_fd(const zt_backend_t *self);

/* Reads whatever has arrived on the subscriber connection without blocking
 * and calls fn for each published state, in arrival order. Call it once
 * right after zt_backend_subscribe_meta() too: states that arrived together
 * with the confirmation are already buffered and do not make the socket
 * readable. Returns the number of calls made, or ZT_ERR_BACKEND when the
 * connection failed (logged; the subscription is closed, and fn was called
 * for everything read before the failure). Not subscribed: ZT_ERR_INVALID. */
int zt_backend_drain_meta(zt_backend_t *self, zt_backend_meta_fn *fn, void *arg);

#endif
