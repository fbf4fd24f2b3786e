/* events: XPUB publisher. The socket reports each distinct subscription
 * prefix once when its first subscriber arrives and once when its last one
 * leaves (non-verbose XPUB), so a small table of live prefixes answers
 * "does anyone want this type?". Beyond MAX_TOPICS prefixes we stop
 * tracking and publish everything. */
#include "events.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>

#define MAX_TOPICS 64
#define TOPIC_MAX 64
#define EVENTS_SNDHWM 500000 /* messages; a slow monitor loses events past this */

typedef struct {
    size_t len;
    char bytes[TOPIC_MAX];
} topic_t;

struct broker_events {
    zsock_t *sock;
    void *raw;
    char endpoint[256]; /* as bound ("*" ports resolved), for broker_events_rebind() */
    topic_t topics[MAX_TOPICS];
    size_t ntopics;
    bool overflow; /* too many prefixes: treat every type as wanted */
    msgpack_sbuffer buf;
    msgpack_packer pk;
    char type[32]; /* type of the event being built */
    size_t published;
    size_t dropped;
    /* events waiting for their burst, as records: type length (1 byte), the
     * type, body length (4 bytes, host order), the body */
    char *held;
    size_t held_size, held_cap, held_count;
    int64_t last_burst; /* monotonic usecs of the last send */
};

broker_events_t *broker_events_new(const char *endpoint, int *err) {
    return broker_events_new_secure(endpoint, NULL, err);
}

broker_events_t *broker_events_new_secure(const char *endpoint, broker_access_t *access, int *err) {
    broker_events_t *self = zt_calloc(1, sizeof *self);
    self->sock = zsock_new(ZMQ_XPUB);
    if (!self->sock)
        goto fail;
    zsock_set_sndhwm(self->sock, EVENTS_SNDHWM);
    zsock_set_linger(self->sock, 0);
    if (access && broker_access_apply(access, self->sock) != 0) {
        zt_error("cannot make the events socket a CURVE server");
        goto fail;
    }
    if (zsock_bind(self->sock, "%s", endpoint) < 0) {
        zt_error("cannot bind events endpoint %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    self->raw = zsock_resolve(self->sock);
    char *last = zsock_last_endpoint(self->sock);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", last ? last : endpoint);
    free(last);
    if (access && broker_access_watch(access, self->sock, "events") != 0)
        goto fail;
    msgpack_sbuffer_init(&self->buf);
    msgpack_packer_init(&self->pk, &self->buf, msgpack_sbuffer_write);
    return self;
fail:
    zsock_destroy(&self->sock);
    free(self);
    if (err)
        *err = ZT_ERR_IO;
    return NULL;
}

void broker_events_destroy(broker_events_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_events_t *self = *self_p;
    zsock_destroy(&self->sock);
    msgpack_sbuffer_destroy(&self->buf);
    free(self->held);
    free(self);
    *self_p = NULL;
}

int broker_events_rebind(broker_events_t *self) {
    if (zmq_unbind(self->raw, self->endpoint) != 0)
        zt_warn("events: cannot unbind %s: %s", self->endpoint, zmq_strerror(zmq_errno()));
    /* the listener closes in libzmq's I/O thread: the port may be busy for a moment */
    for (int attempt = 0; attempt < 200; attempt++) {
        if (zmq_bind(self->raw, self->endpoint) == 0) {
            zt_info("events: %s bound again; subscribers reconnect through the handshake",
                    self->endpoint);
            return 0;
        }
        if (zmq_errno() != EADDRINUSE)
            break;
        zclock_sleep(5);
    }
    zt_error("events: cannot bind %s again: %s; no events until restart", self->endpoint,
             zmq_strerror(zmq_errno()));
    return ZT_ERR_IO;
}

void *broker_events_socket(broker_events_t *self) {
    return self->raw;
}

static void subscribe(broker_events_t *self, const char *topic, size_t len) {
    if (len > TOPIC_MAX)
        len = TOPIC_MAX; /* a shorter prefix only matches more */
    if (self->ntopics == MAX_TOPICS) {
        if (!self->overflow)
            zt_warn("more than %d event subscriptions: publishing every event", MAX_TOPICS);
        self->overflow = true;
        return;
    }
    topic_t *t = &self->topics[self->ntopics++];
    t->len = len;
    memcpy(t->bytes, topic, len);
}

static void unsubscribe(broker_events_t *self, const char *topic, size_t len) {
    if (len > TOPIC_MAX)
        len = TOPIC_MAX;
    for (size_t i = 0; i < self->ntopics; i++) {
        topic_t *t = &self->topics[i];
        if (t->len == len && memcmp(t->bytes, topic, len) == 0) {
            self->topics[i] = self->topics[--self->ntopics];
            return;
        }
    }
}

void broker_events_handle_input(broker_events_t *self) {
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->raw, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        const char *data = zmq_msg_data(&msg);
        size_t size = zmq_msg_size(&msg);
        /* subscriptions are one frame: 1 or 0, then the prefix; ignore others */
        if (size >= 1 && !zmq_msg_more(&msg)) {
            if (data[0] == 1)
                subscribe(self, data + 1, size - 1);
            else if (data[0] == 0)
                unsubscribe(self, data + 1, size - 1);
        }
        zmq_msg_close(&msg);
    }
}

bool broker_events_wanted(const broker_events_t *self, const char *type) {
    if (self->overflow)
        return true;
    size_t n = strlen(type);
    for (size_t i = 0; i < self->ntopics; i++) {
        const topic_t *t = &self->topics[i];
        if (t->len <= n && memcmp(t->bytes, type, t->len) == 0)
            return true;
    }
    return false;
}

msgpack_packer *broker_events_begin(broker_events_t *self, const char *type, size_t fields) {
    if (!broker_events_wanted(self, type))
        return NULL;
    snprintf(self->type, sizeof self->type, "%s", type);
    self->buf.size = 0;
    msgpack_pack_map(&self->pk, fields + 2);
    zt_pack_kv_cstr(&self->pk, "type", type);
    zt_pack_kv_double(&self->pk, "timestamp", zt_clock_wall());
    return &self->pk;
}

#define HELD_MAX (1024 * 1024) /* bytes held before a burst goes out early */

static void publish(broker_events_t *self, const char *type, size_t type_len, const void *body,
                    size_t body_size) {
    if (zmq_send(self->raw, type, type_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->raw, body, body_size, ZMQ_DONTWAIT) < 0) {
        self->dropped++;
        return;
    }
    self->published++;
}

void broker_events_send(broker_events_t *self) {
    int64_t now = zt_clock_mono_us();
    size_t type_len = strlen(self->type);
    if (self->held_count == 0 && now - self->last_burst >= BROKER_EVENTS_BURST_US) {
        publish(self, self->type, type_len, self->buf.data, self->buf.size);
        self->last_burst = now;
        return;
    }
    uint32_t body_len = (uint32_t)self->buf.size;
    size_t need = self->held_size + 1 + type_len + sizeof body_len + body_len;
    if (need > self->held_cap) {
        self->held_cap = need * 2;
        self->held = zt_realloc(self->held, self->held_cap);
    }
    char *p = self->held + self->held_size;
    *p++ = (char)type_len;
    memcpy(p, self->type, type_len);
    p += type_len;
    memcpy(p, &body_len, sizeof body_len);
    p += sizeof body_len;
    memcpy(p, self->buf.data, body_len);
    self->held_size = need;
    self->held_count++;
    if (self->held_size > HELD_MAX)
        broker_events_flush(self, now, true);
}

void broker_events_flush(broker_events_t *self, int64_t now, bool force) {
    if (self->held_count == 0 || (!force && now - self->last_burst < BROKER_EVENTS_BURST_US))
        return;
    const char *p = self->held;
    for (size_t i = 0; i < self->held_count; i++) {
        size_t type_len = (unsigned char)*p++;
        const char *type = p;
        p += type_len;
        uint32_t body_len;
        memcpy(&body_len, p, sizeof body_len);
        p += sizeof body_len;
        publish(self, type, type_len, p, body_len);
        p += body_len;
    }
    self->held_size = self->held_count = 0;
    self->last_burst = now;
}

int64_t broker_events_wait(const broker_events_t *self, int64_t now) {
    if (self->held_count == 0)
        return -1;
    int64_t due = self->last_burst + BROKER_EVENTS_BURST_US - now;
    return due > 0 ? due : 0;
}

size_t broker_events_published(const broker_events_t *self) {
    return self->published;
}

size_t broker_events_dropped(const broker_events_t *self) {
    return self->dropped;
}
