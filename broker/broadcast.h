/* broadcast: the pending client `broadcast` requests (PROTOCOL.md §5.2, §6.5).
 * Each one remembers the client to answer (identity and req), a deadline,
 * and one target per worker it was sent to, each with the broker's own req
 * number and, once it answered, its reply packed as it goes in the final map
 * (the worker's result, or {error}). Pure bookkeeping: the broker sends the
 * CONTROLs and the final CONTROL-REPLY; no sockets and no clock in here, so
 * the unit test drives it with plain numbers.
 *
 * Req numbers are handed out consecutively, so a broadcast owns the range
 * [first, first + targets) and a reply finds its target in O(broadcasts). */
#ifndef BROKER_BROADCAST_H
#define BROKER_BROADCAST_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct broker_broadcasts broker_broadcasts_t;
typedef struct broker_broadcast broker_broadcast_t;

/* Outstanding broadcasts allowed at once; a client asking for more gets an
 * ok:false reply rather than a broker that grows without bound. */
#define BROKER_BROADCASTS_MAX 1024

/* Bytes of one worker's packed reply kept at most; a longer one is replaced
 * by {error: "reply too large"}. */
#define BROKER_BROADCAST_REPLY_MAX (4 * 1024 * 1024)

/* Creates an empty registry. Never NULL. */
broker_broadcasts_t *broker_broadcasts_new(void);

/* Destroys the registry and every pending broadcast (their clients get no
 * answer: the broker is going away). *self_p = NULL. */
void broker_broadcasts_destroy(broker_broadcasts_t **self_p);

/* Number of pending broadcasts. */
size_t broker_broadcasts_size(const broker_broadcasts_t *self);

/* Starts a broadcast for the client with this ROUTER identity (copied) and
 * request number, to be answered at `deadline` at the latest (caller's
 * clock unit). Returns the broadcast (owned by the registry), or NULL when
 * BROKER_BROADCASTS_MAX are pending or the identity size is not 1..255. */
broker_broadcast_t *broker_broadcasts_start(broker_broadcasts_t *self, const void *client,
                                            size_t client_size, uint64_t client_req,
                                            int64_t deadline);

/* Adds a target (a worker identity and name, both copied) to the broadcast
 * started last; targets must be added before any other broadcast starts.
 * Returns the req number to send it in its CONTROL. */
uint64_t broker_broadcast_add_target(broker_broadcasts_t *self, broker_broadcast_t *bc,
                                     const void *worker, size_t worker_size, const char *name);

/* A worker's CONTROL-REPLY body (a decoded map with `req`): records its
 * answer in the broadcast that sent that req to that identity. ok:true
 * keeps `result` (nil if absent); ok:false keeps {error: <error>}; a reply
 * without a boolean `ok` keeps {error: "malformed reply"}.
 * Returns 0, or ZT_ERR_NOT_FOUND when no pending broadcast waits for this
 * req from this identity (late, duplicate or stray: the caller drops it). */
int broker_broadcasts_reply(broker_broadcasts_t *self, const void *worker, size_t worker_size,
                            uint64_t req, const msgpack_object *body);

/* A worker is gone: every target with that identity stops being waited for
 * (it stays absent from the answer). Returns how many targets that was. */
size_t broker_broadcasts_worker_gone(broker_broadcasts_t *self, const void *worker,
                                     size_t worker_size);

/* Removes and returns a broadcast that is finished (every target answered
 * or gone) or whose deadline is <= now; NULL when there is none. The caller
 * answers its client and destroys it. */
broker_broadcast_t *broker_broadcasts_pop_finished(broker_broadcasts_t *self, int64_t now);

/* Time from now until the earliest deadline: 0 if some broadcast is
 * finished or overdue, -1 when none is pending. */
int64_t broker_broadcasts_wait(const broker_broadcasts_t *self, int64_t now);

/* The client to answer (borrowed) and its req. */
const void *broker_broadcast_client(const broker_broadcast_t *bc, size_t *size);
uint64_t broker_broadcast_client_req(const broker_broadcast_t *bc);

/* Targets, and how many of them answered. */
size_t broker_broadcast_targets(const broker_broadcast_t *bc);
size_t broker_broadcast_answered(const broker_broadcast_t *bc);

/* Packs the answer map: worker name -> its packed reply, for the targets
 * that answered, first answer of each name kept (names need not be unique). */
void broker_broadcast_pack_result(const broker_broadcast_t *bc, msgpack_packer *pk);

/* Frees a broadcast returned by broker_broadcasts_pop_finished(). */
void broker_broadcast_destroy(broker_broadcast_t **bc_p);

#endif
