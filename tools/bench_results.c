/* bench_results: completion notices for zmqbench, from Redis (PSUBSCRIBE
 * celery-task-meta-*) or from the broker's events socket. Owns its
 * redisContext or its SUB socket; nothing else in tools/ touches either.
 * After setup every read is driven by the caller's zmq_poll() and never
 * blocks: one read(2) per drain, then every complete reply in the buffer. */
#include "bench_results.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"

#include <czmq.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define META_PREFIX "celery-task-meta-"
#define META_PREFIX_LEN (sizeof META_PREFIX - 1)

struct bench_results {
    redisContext *redis; /* Redis source, or NULL */
    zsock_t *sub;        /* events source, or NULL */
};

/* ------------------------------------------------------------- Redis */

/* Splits "redis://[[user]:password@]host[:port][/db]" into its parts.
 * The db does not matter here (pub/sub channels are server-wide).
 * Returns 0 or ZT_ERR_INVALID. */
static int parse_redis_url(const char *url, char *host, size_t host_size, int *port, char *user,
                           size_t user_size, char *password, size_t password_size) {
    const char *p = url;
    if (strncmp(p, "redis://", 8))
        return ZT_ERR_INVALID;
    p += 8;
    user[0] = password[0] = '\0';
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : 0;
        size_t plen = colon ? (size_t)(at - colon - 1) : (size_t)(at - p);
        const char *pw = colon ? colon + 1 : p;
        if (ulen >= user_size || plen >= password_size)
            return ZT_ERR_INVALID;
        memcpy(user, p, ulen);
        user[ulen] = '\0';
        memcpy(password, pw, plen);
        password[plen] = '\0';
        p = at + 1;
    }
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen >= host_size)
        return ZT_ERR_INVALID;
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    p += hlen;
    *port = 6379;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535 || (*end && *end != '/'))
            return ZT_ERR_INVALID;
        *port = (int)v;
        p = end;
    }
    return 0;
}

/* Runs one blocking command during setup; returns 0 if Redis did not answer
 * with an error. */
static int setup_command(redisContext *redis, const char *what, redisReply *reply) {
    int ok = reply && reply->type != REDIS_REPLY_ERROR;
    if (!ok)
        zt_error("%s failed: %s", what,
                 reply ? reply->str : (redis->errstr[0] ? redis->errstr : "no reply"));
    if (reply)
        freeReplyObject(reply);
    return ok ? 0 : ZT_ERR_BACKEND;
}

bench_results_t *bench_results_new_redis(const char *url, int timeout_ms) {
    char host[256], user[128], password[256];
    int port;
    if (parse_redis_url(url, host, sizeof host, &port, user, sizeof user, password,
                        sizeof password)) {
        zt_error("bad result backend url '%s' (want redis://host[:port][/db])", url);
        return NULL;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    bench_results_t *self = zt_calloc(1, sizeof *self);
    self->redis = redisConnectWithTimeout(host, port, tv);
    if (!self->redis || self->redis->err) {
        zt_error("cannot connect to Redis at %s:%d: %s", host, port,
                 self->redis ? self->redis->errstr : "out of memory");
        goto fail;
    }
    /* The timeout also bounds the reads of the setup commands below. */
    redisSetTimeout(self->redis, tv);
    if (password[0]) {
        redisReply *reply = user[0] ? redisCommand(self->redis, "AUTH %s %s", user, password)
                                    : redisCommand(self->redis, "AUTH %s", password);
        if (setup_command(self->redis, "AUTH", reply))
            goto fail;
    }
    /* Wait for the confirmation: once Redis has answered, every later PUBLISH
     * matching the pattern reaches us. */
    redisReply *reply = redisCommand(self->redis, "PSUBSCRIBE %s*", META_PREFIX);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "psubscribe")) {
        setup_command(self->redis, "PSUBSCRIBE", reply ? reply : NULL);
        goto fail;
    }
    freeReplyObject(reply);
    return self;
fail:
    bench_results_destroy(&self);
    return NULL;
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

/* Handles one reply of the subscription: ["pmessage", pattern, channel, payload]. */
static int redis_message(redisReply *reply, bench_results_fn *fn, void *arg) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "pmessage") ||
        reply->element[2]->type != REDIS_REPLY_STRING ||
        reply->element[3]->type != REDIS_REPLY_STRING)
        return 0;
    const redisReply *channel = reply->element[2];
    const redisReply *payload = reply->element[3];
    if ((size_t)channel->len <= META_PREFIX_LEN)
        return 0;
    fn(channel->str + META_PREFIX_LEN, (size_t)channel->len - META_PREFIX_LEN,
       payload_state(payload->str, (size_t)payload->len), arg);
    return 1;
}

static int redis_drain(bench_results_t *self, bench_results_fn *fn, void *arg) {
    if (redisBufferRead(self->redis) != REDIS_OK) {
        zt_error("Redis subscription lost: %s", self->redis->errstr);
        return ZT_ERR_BACKEND;
    }
    int count = 0;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(self->redis->reader, &reply) != REDIS_OK) {
            zt_error("Redis protocol error: %s", self->redis->reader->errstr);
            return ZT_ERR_BACKEND;
        }
        if (!reply)
            return count;
        count += redis_message(reply, fn, arg);
        freeReplyObject(reply);
    }
}

/* ------------------------------------------------------------ events */

bench_results_t *bench_results_new_events(const char *url, int settle_ms) {
    bench_results_t *self = zt_calloc(1, sizeof *self);
    self->sub = zsock_new(ZMQ_SUB);
    if (!self->sub || zsock_connect(self->sub, "%s", url)) {
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
    if (self->redis)
        redisFree(self->redis);
    zsock_destroy(&self->sub);
    free(self);
    *self_p = NULL;
}

void bench_results_pollitem(bench_results_t *self, zmq_pollitem_t *item) {
    memset(item, 0, sizeof *item);
    if (self->redis)
        item->fd = self->redis->fd;
    else
        item->socket = zsock_resolve(self->sub);
    item->events = ZMQ_POLLIN;
}

int bench_results_drain(bench_results_t *self, bench_results_fn *fn, void *arg) {
    return self->redis ? redis_drain(self, fn, arg) : events_drain(self, fn, arg);
}
