/* zt_client: the client API: connect to the broker, send tasks, wait for
 * results, revoke, purge and inspect. Owns one DEALER socket and, when a
 * result backend is given, a zt_backend. Not thread-safe: one client per thread.
 *
 *   zt_client_t *c = zt_client_new("tcp://127.0.0.1:5555", "redis://127.0.0.1:6379/1");
 *   zt_task_options_t o; zt_task_options_init(&o); o.task = "builtin.add"; o.args = args;
 *   char id[ZT_ID_MAX + 1];
 *   if (zt_client_send(c, &o, id, sizeof id) == 0) zt_client_wait(c, id, 5000, &meta);
 */
#ifndef ZT_CLIENT_H
#define ZT_CLIENT_H

#include "zt_config.h"
#include "zt_curve.h"
#include "zt_taskmsg.h"
#include <jansson.h>
#include <stddef.h>

typedef struct zt_client zt_client_t;

/* Connects (asynchronously, as ZeroMQ does) to broker_url; backend_url may be
 * NULL when results are not needed. Redis is connected on first use, so a
 * client that only sends never needs it. Returns NULL with *err
 * (ZT_ERR_INVALID for a bad endpoint or url); err may be NULL. */
zt_client_t *zt_client_new(const char *broker_url, const char *backend_url, int *err);

/* The same, secured by CURVE when curve is not NULL (zt_curve.h; borrowed:
 * the socket keeps its own copy of the keys). */
zt_client_t *zt_client_new_secure(const char *broker_url, const char *backend_url,
                                  const zt_curve_t *curve, int *err);

/* The usual way for programs: connects to config->broker_url, with CURVE
 * when config names a client certificate (curve_client_cert and
 * curve_broker_key). Returns NULL with *err and a message in reason (may be
 * NULL) naming the bad setting or file, never key material. */
zt_client_t *zt_client_new_config(const zt_config_t *config, const char *backend_url, int *err,
                                  char *reason, size_t reason_size);
void zt_client_destroy(zt_client_t **self_p);

/* Default time to wait for the broker's ACCEPTED or CONTROL-REPLY (msecs). */
void zt_client_set_timeout(zt_client_t *self, int timeout_ms);

/* Human-readable reason of the last failure ("" if none). Borrowed. */
const char *zt_client_last_error(const zt_client_t *self);

/* Sends a task and waits for the broker's answer. On ACCEPTED returns 0 and
 * writes the id into id_out. Returns ZT_ERR_REJECTED (reason in last_error),
 * ZT_ERR_INVALID (bad options), or ZT_ERR_TIMEOUT. */
int zt_client_send(zt_client_t *self, const zt_task_options_t *opts, char *id_out, size_t id_size);

/* Pipelined sending for high rates: zt_client_submit() only sends; each
 * zt_client_recv_reply() reads one ACCEPTED/REJECTED (in submit order). */
int zt_client_submit(zt_client_t *self, const zt_task_options_t *opts, char *id_out,
                     size_t id_size);
/* Returns 0 for ACCEPTED, ZT_ERR_REJECTED, or ZT_ERR_TIMEOUT; id_out gets the
 * id the reply names (may be empty for a rejection without id). */
int zt_client_recv_reply(zt_client_t *self, int timeout_ms, char *id_out, size_t id_size);

/* Waits for task id's final state in the result backend. Returns 0 with the
 * Celery meta object in *meta (caller owns), ZT_ERR_TIMEOUT (meta: latest or
 * NULL), ZT_ERR_BACKEND, or ZT_ERR_INVALID if no backend was configured. */
int zt_client_wait(zt_client_t *self, const char *id, int timeout_ms, json_t **meta);

/* Reads task id's current meta without waiting: 0, or ZT_ERR_NOT_FOUND (PENDING). */
int zt_client_get(zt_client_t *self, const char *id, json_t **meta);

/* Sends CONTROL {op, ...args} and waits for its reply. args is a JSON object
 * (borrowed, may be NULL) whose members are added to the request. Returns 0
 * with the reply's result as JSON in *result (caller owns); ZT_ERR_REJECTED
 * with the broker's error in last_error; ZT_ERR_TIMEOUT. */
int zt_client_control(zt_client_t *self, const char *op, const json_t *args, json_t **result);

/* The raw libzmq socket, for callers that poll it with others (zmqbench). */
void *zt_client_socket(zt_client_t *self);

#endif
