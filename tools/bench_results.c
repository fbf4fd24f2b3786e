/* bench_results: completion notices for zmqbench, from Redis (zt_backend's
 * PSUBSCRIBE celery-task-meta-* stream) or from the broker's events socket.
 * Owns its zt_backend or its SUB socket. After setup every read is driven by
 * the caller's zmq_poll() and never blocks. What a payload means (which
 * state, cheaply) is decided here; how it arrives is zt_backend's business. */
#include "bench_results.h"
#include "zt_backend.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"

#include <czmq.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct bench_results {
    zt_backend_t *backend; /* Redis source (subscribed), or NULL */
    zsock_t *sub;          /* events source, or NULL */
};

/* ------------------------------------------------------------- Redis */

bench_results_t *bench_results_new_redis(const char *url, int timeout_ms) {
    bench_results_t *self = zt_calloc(1, sizeof *self);
    int err = 0;
    /* Lazy: this source never writes, so no writer connection is opened. */
    self->backend = zt_backend_new_lazy(url, &err);
    if (!self->backend || zt_backend_subscribe_meta(self->backend, timeout_ms) != 0) {
        bench_results_destroy(&self);
        return NULL;
    }
    /* States that came with the confirmation cannot be this run's: none of
     * its tasks is submitted before this returns. */
    return self;
}

/* The state a meta payload records. Both writers we measure put "status" first
 * (our workers' compact jansson output, Celery's json.dumps of its meta dict), so
 * a payload that opens with the complete member "status":"SUCCESS" is a
 * SUCCESS without parsing; anything else is parsed with jansson. Parsing every
 * payload cost zmqbench about half its CPU, which the cluster under test then
 * lacked on a 2-core machine. */
static bench_state_t payload_state(const char *data, size_t len) {
    static const char *const success[] = {"{\"status\":\"SUCCESS\"", "{\"status\": \"SUCCESS\""};
    for (size_t i = 0; i < sizeof success / sizeof success[0]; i++) {
        size_t n = strlen(success[i]);
        if (len >= n && !memcmp(data, success[i], n))
            return BENCH_STATE_SUCCESS;
    }
    json_t *meta = json_loadb(data, len, 0, NULL);
    const char *status = json_string_value(json_object_get(meta, "status"));
    bench_state_t state = BENCH_STATE_OTHER;
    if (status && !strcmp(status, "SUCCESS"))
        state = BENCH_STATE_SUCCESS;
    else if (status && (!strcmp(status, "FAILURE") || !strcmp(status, "REVOKED")))
        state = BENCH_STATE_FAILED;
    json_decref(meta);
    return state;
}

typedef struct {
    bench_results_fn *fn;
    void *arg;
} redis_sink_t;

static void on_meta(const char *id, size_t id_len, const char *payload, size_t payload_len,
                    void *arg) {
    redis_sink_t *sink = arg;
    sink->fn(id, id_len, payload_state(payload, payload_len), sink->arg);
}

static int redis_drain(bench_results_t *self, bench_results_fn *fn, void *arg) {
    redis_sink_t sink = {fn, arg};
    return zt_backend_drain_meta(self->backend, on_meta, &sink);
}

/* ------------------------------------------------------------ events */

bench_results_t *bench_results_new_events(const char *url, const zt_curve_t *curve, int settle_ms) {
    bench_results_t *self = zt_calloc(1, sizeof *self);
    self->sub = zsock_new(ZMQ_SUB);
    if (!self->sub || zt_curve_apply(curve, self->sub) != 0 ||
        zsock_connect(self->sub, "%s", url)) {
        zt_error("cannot connect to the events endpoint %s", url);
        bench_results_destroy(&self);
        return NULL;
    }
    /* Final outcomes only; progress and worker events would just cost reads. */
    zsock_set_subscribe(self->sub, "task-succeeded");
    zsock_set_subscribe(self->sub, "task-failed");
    zsock_set_subscribe(self->sub, "task-revoked");
    /* No events are lost to slow subscribers before the HWM: make it roomy. */
    zsock_set_rcvhwm(self->sub, 1000000);
    zclock_sleep(settle_ms);
    return self;
}

static int events_drain(bench_results_t *self, bench_results_fn *fn, void *arg) {
    void *socket = zsock_resolve(self->sub);
    int count = 0;
    for (;;) {
        zt_frames_t frames;
        int rc = zt_frames_recv(socket, &frames, false, ZMQ_DONTWAIT);
        if (rc == ZT_ERR_TIMEOUT || rc == ZT_ERR_INTERRUPTED)
            return count;
        if (rc)
            return rc;
        if (frames.count >= 2) {
            const char *type = zmq_msg_data(&frames.frame[0]);
            size_t type_len = zmq_msg_size(&frames.frame[0]);
            bench_state_t state = type_len == 14 && !memcmp(type, "task-succeeded", 14)
                                      ? BENCH_STATE_SUCCESS
                                      : BENCH_STATE_FAILED;
            zt_body_t *body =
                zt_body_parse(zmq_msg_data(&frames.frame[1]), zmq_msg_size(&frames.frame[1]), NULL);
            const char *id;
            size_t id_len;
            if (body && zt_mp_get_str(zt_body_root(body), "id", &id, &id_len) == 0) {
                fn(id, id_len, state, arg);
                count++;
            }
            zt_body_destroy(&body);
        }
        zt_frames_close(&frames);
    }
}

/* ------------------------------------------------------------ common */

void bench_results_destroy(bench_results_t **self_p) {
    if (!self_p || !*self_p)
        return;
    bench_results_t *self = *self_p;
    zt_backend_destroy(&self->backend);
    zsock_destroy(&self->sub);
    free(self);
    *self_p = NULL;
}

void bench_results_pollitem(bench_results_t *self, zmq_pollitem_t *item) {
    memset(item, 0, sizeof *item);
    if (self->backend)
        item->fd = zt_backend_subscriber_fd(self->backend);
    else
        item->socket = zsock_resolve(self->sub);
    item->events = ZMQ_POLLIN;
}

int bench_results_drain(bench_results_t *self, bench_results_fn *fn, void *arg) {
    return self->backend ? redis_drain(self, fn, arg) : events_drain(self, fn, arg);
}
