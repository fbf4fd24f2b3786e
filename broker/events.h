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

typedef struct broker_events broker_events_t;

/* Binds an XPUB socket on endpoint. Returns the stream, or NULL with *err
 * (ZT_ERR_IO: cannot bind). */
broker_events_t *broker_events_new(const char *endpoint, int *err);
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

/* Publishes the event begun last. Drops it (counted) if the socket is full. */
void broker_events_send(broker_events_t *self);

/* Events published and dropped since start. */
size_t broker_events_published(const broker_events_t *self);
size_t broker_events_dropped(const broker_events_t *self);

#endif
