/* events: the broker's events stream (PROTOCOL.md §10) on an XPUB socket.
 * Each event is two frames: the type, then a MessagePack map that starts with
 * `type` and `timestamp`. XPUB tells us which prefixes subscribers want, so
 * an event nobody subscribed to is not even encoded: the hot path pays for
 * events only while a monitor listens.
 *
 *   msgpack_packer *pk = broker_events_begin(ev, "task-received", 3);
 *   if (pk) { zt_pack_kv_cstr(pk, "id", id); ...; broker_events_send(ev); } */
#ifndef BROKER_EVENTS_H
#define BROKER_EVENTS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"

typedef struct broker_events broker_events_t;

/* Binds an XPUB socket on endpoint. Returns the stream, or NULL with *err
 * (ZT_ERR_IO: cannot bind). */
broker_events_t *broker_events_new(const char *endpoint, int *err);

/* The same as a CURVE server (access may be NULL: plain): only keys in the
 * allowed directory can subscribe; refused handshakes are logged. */
broker_events_t *broker_events_new_secure(const char *endpoint, broker_access_t *access, int *err);

/* Unbinds and binds the socket again on the endpoint it got, which drops
 * every subscriber; they reconnect by themselves and pass the handshake
 * again. Used when keys were withdrawn (SIGHUP): a CURVE connection keeps
 * its key for life, so a revoked subscriber is only cut off this way.
 * Subscribers miss the events of the moment. Returns 0 or ZT_ERR_IO. */
int broker_events_rebind(broker_events_t *self);
void broker_events_destroy(broker_events_t **self_p);

/* The raw libzmq socket, to poll for subscription messages (ZMQ_POLLIN). */
void *broker_events_socket(broker_events_t *self);

/* Reads the pending subscribe/unsubscribe messages. Never blocks. */
void broker_events_handle_input(broker_events_t *self);

/* True when some subscriber's prefix matches this event type. */
bool broker_events_wanted(const broker_events_t *self, const char *type);

/* Starts an event of this type with `fields` more key/value pairs to come
 * (type and timestamp are added here). Returns the packer to add exactly
 * that many pairs to, then call broker_events_send(); or NULL when nobody
 * wants the event (then do nothing more). */
msgpack_packer *broker_events_begin(broker_events_t *self, const char *type, size_t fields);

/* Publishes the event begun last. Drops it (counted) if the socket is full.
 * Events go out in bursts: an event after a quiet spell leaves at once, but
 * under load they are held and sent together at most every
 * BROKER_EVENTS_BURST_US, so that a subscriber's libzmq reads many per
 * wake-up instead of waking for each (at 15,000 events/s that difference
 * is most of a monitor's CPU). Order is kept; nothing is held longer. */
void broker_events_send(broker_events_t *self);

#define BROKER_EVENTS_BURST_US 10000 /* usecs: most an event waits for its burst */

/* Sends the held events if their burst is due at now (monotonic usecs), or
 * at once with force (the broker stopping). */
void broker_events_flush(broker_events_t *self, int64_t now, bool force);

/* Usecs from now until held events are due (0: now), or -1 when none are
 * held: bounds the broker's poll timeout. */
int64_t broker_events_wait(const broker_events_t *self, int64_t now);

/* Events published and dropped since start. */
size_t broker_events_published(const broker_events_t *self);
size_t broker_events_dropped(const broker_events_t *self);

#endif
