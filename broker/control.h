/* control: the CONTROL operations of PROTOCOL.md §5.2 (ping, queues,
 * workers, purge, revoke, scheduled, active, reserved, registered, stats,
 * broadcast). It reads the broker through broker.h's views and asks it to
 * purge, revoke and start broadcasts; it never touches sockets. */
#ifndef BROKER_CONTROL_H
#define BROKER_CONTROL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker.h"

/* Listings (scheduled, active, reserved) return at most this many entries
 * unless the request's `limit` says fewer. */
#define BROKER_CONTROL_LIST_MAX 10000

/* Answers one CONTROL request (a decoded body map) from the client with
 * ROUTER identity client[0..client_size): packs the whole CONTROL-REPLY body
 * {req, ok, result | error} into pk, which must write to a msgpack_sbuffer
 * (a failed op is rolled back in it), and returns 0. When the request
 * itself is malformed (op missing or not a string, req not an unsigned
 * integer) packs nothing and returns ZT_ERR_INVALID with a reason; the
 * caller answers ERROR invalid-field. An unknown op or a bad argument is an
 * ok:false reply, not an error.
 * A `broadcast` that started packs nothing and sets *deferred: the broker
 * answers the client itself once the workers replied or the timeout passed.
 * Otherwise *deferred is false. */
int broker_control_handle(broker_t *broker, const void *client, size_t client_size,
                          const msgpack_object *request, msgpack_packer *pk, bool *deferred,
                          char *reason, size_t reason_size);

#endif
