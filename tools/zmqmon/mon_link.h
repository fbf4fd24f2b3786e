/* mon_link: zmqmon's connections to the broker, none of which ever blocks
 * the screen: a DEALER for CONTROL requests and SUBMITs whose replies come
 * back through a callback (or time out), and a SUB on the events stream
 * decoded into mon_event_t. Owns both sockets.
 *
 *   mon_link_control(link, "queues", NULL, 2000, TAG_QUEUES);
 *   ... poll mon_link_control_socket(link) ...
 *   mon_link_process(link, on_reply, app);          // replies and timeouts
 *   mon_link_drain_events(link, on_event, app, N);  // events, in order
 */
#ifndef MON_LINK_H
#define MON_LINK_H

#include "mon_model.h"
#include "zt_curve.h"
#include "zt_taskmsg.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mon_link mon_link_t;

/* The answer to one request. Everything is borrowed for the callback. */
typedef struct {
    uint64_t tag;         /* the caller's, from the request */
    const char *op;       /* the CONTROL op, or "submit" */
    int status;           /* 0; ZT_ERR_REJECTED (error says why); ZT_ERR_TIMEOUT */
    const json_t *result; /* status 0, CONTROL: the reply's result */
    const char *error;    /* status != 0: why */
    const char *id;       /* submit: the task id */
    double rtt;           /* seconds from request to reply */
} mon_reply_t;

typedef void(mon_reply_fn)(void *arg, const mon_reply_t *reply);
typedef void(mon_event_fn)(void *arg, const mon_event_t *event);

/* Connects (in the background, as ZeroMQ does) to the broker and its events
 * stream, with CURVE when curve is not NULL (borrowed: the sockets keep
 * their copy of the keys). Returns the link, or NULL with *err =
 * ZT_ERR_INVALID for an endpoint ZeroMQ refuses (err may be NULL). */
mon_link_t *mon_link_new(const char *broker_url, const char *events_url, const zt_curve_t *curve,
                         int *err);
void mon_link_destroy(mon_link_t **self_p);

/* Sends CONTROL {op, ...args}; args is a JSON object (borrowed, may be NULL).
 * The reply, or a timeout after timeout_ms, reaches the callback of a later
 * mon_link_process(). Returns 0, or ZT_ERR_IO / ZT_ERR_INVALID (nothing sent,
 * no callback will come). */
int mon_link_control(mon_link_t *self, const char *op, const json_t *args, int timeout_ms,
                     uint64_t tag);

/* Sends a task (opts->id NULL: a new id, written to id_out). Its ACCEPTED or
 * REJECTED reaches the callback as op "submit". Returns 0, ZT_ERR_INVALID
 * (bad options; reason in reason) or ZT_ERR_IO. */
int mon_link_submit(mon_link_t *self, const zt_task_options_t *opts, int timeout_ms, uint64_t tag,
                    char *id_out, size_t id_size, char *reason, size_t reason_size);

/* Requests still waiting for an answer. */
size_t mon_link_pending(const mon_link_t *self);

/* The raw DEALER, to poll for ZMQ_POLLIN. */
void *mon_link_control_socket(mon_link_t *self);

/* Reads every reply that has arrived and times out overdue requests,
 * calling fn once for each. Never blocks. */
void mon_link_process(mon_link_t *self, mon_reply_fn *fn, void *arg);

/* Milliseconds until the earliest request times out (-1: none pending). */
int mon_link_next_timeout_ms(const mon_link_t *self);

/* Drops the DEALER and connects a new one (after the broker went away: a
 * DEALER keeps queued requests for a peer that may never come back, and a
 * restarted broker should not get them). Pending requests end with
 * ZT_ERR_TIMEOUT through fn. Returns 0 or ZT_ERR_IO. */
int mon_link_reconnect(mon_link_t *self, mon_reply_fn *fn, void *arg);

/* Reads up to max events that have arrived and calls fn for each, in
 * order. Malformed events are counted and skipped. Returns how many were
 * delivered. Never blocks. */
size_t mon_link_drain_events(mon_link_t *self, mon_event_fn *fn, void *arg, size_t max);

/* Events skipped as malformed since start. */
uint64_t mon_link_bad_events(const mon_link_t *self);

#endif
