/* mon_link: CONTROL replies are matched by request number, SUBMIT replies
 * by task id; requests wait in a small array (a monitor has a handful out at
 * a time). Events are decoded with one reused zt_decoder, walking each map
 * once, because at 5,000 tasks/s the stream carries 20,000 events a second
 * and this is where zmqmon spends its time. */
#include "mon_link.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"

#include <czmq.h>
#include <string.h>

#define PENDING_MAX 256
/* Events held by our side of the SUB: zmqmon drains them ten times a second,
 * so this holds several seconds at full rate before ZeroMQ drops any. */
#define EVENTS_RCVHWM 200000

typedef struct {
    uint64_t req; /* CONTROL request number; 0 for a SUBMIT */
    uint64_t tag;
    char op[32];
    char id[ZT_ID_MAX + 1]; /* SUBMIT: the task id */
    uint64_t seq;           /* order of sending */
    int64_t sent_ms;        /* monotonic msecs */
    int64_t deadline_ms;
} pending_t;

struct mon_link {
    char *broker_url;
    const zt_curve_t *curve; /* borrowed from the caller, NULL = plain */
    zsock_t *dealer;
    void *dealer_raw;
    zsock_t *sub;
    void *sub_raw;
    zt_decoder_t *decoder;
    uint64_t next_req;
    uint64_t next_seq;
    pending_t pending[PENDING_MAX];
    size_t n_pending;
    uint64_t bad_events;
};

static zsock_t *open_dealer(const char *url, const zt_curve_t *curve) {
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s)
        return NULL;
    zsock_set_linger(s, 0);
    if (zt_curve_apply(curve, s) != 0 || zsock_connect(s, "%s", url) != 0) {
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}

mon_link_t *mon_link_new(const char *broker_url, const char *events_url, const zt_curve_t *curve,
                         int *err) {
    if (err)
        *err = ZT_ERR_INVALID;
    mon_link_t *self = zt_calloc(1, sizeof *self);
    self->broker_url = zt_strdup(broker_url);
    self->curve = curve;
    self->next_req = 1;
    self->dealer = open_dealer(broker_url, curve);
    if (!self->dealer) {
        zt_warn("cannot connect to broker endpoint '%s'", broker_url);
        goto fail;
    }
    self->dealer_raw = zsock_resolve(self->dealer);
    self->sub = zsock_new(ZMQ_SUB);
    if (!self->sub)
        goto fail;
    zsock_set_linger(self->sub, 0);
    zsock_set_rcvhwm(self->sub, EVENTS_RCVHWM);
    zsock_set_subscribe(self->sub, "task-");
    zsock_set_subscribe(self->sub, "worker-");
    if (zt_curve_apply(curve, self->sub) != 0 || zsock_connect(self->sub, "%s", events_url) != 0) {
        zt_warn("cannot connect to events endpoint '%s'", events_url);
        goto fail;
    }
    self->sub_raw = zsock_resolve(self->sub);
    self->decoder = zt_decoder_new(0);
    if (err)
        *err = 0;
    return self;
fail:
    mon_link_destroy(&self);
    return NULL;
}

void mon_link_destroy(mon_link_t **self_p) {
    if (!self_p || !*self_p)
        return;
    mon_link_t *self = *self_p;
    zsock_destroy(&self->dealer);
    zsock_destroy(&self->sub);
    zt_decoder_destroy(&self->decoder);
    free(self->broker_url);
    free(self);
    *self_p = NULL;
}

void *mon_link_control_socket(mon_link_t *self) {
    return self->dealer_raw;
}

size_t mon_link_pending(const mon_link_t *self) {
    return self->n_pending;
}

static pending_t *add_pending(mon_link_t *self, const char *op, int timeout_ms, uint64_t tag) {
    if (self->n_pending == PENDING_MAX)
        return NULL;
    pending_t *p = &self->pending[self->n_pending++];
    memset(p, 0, sizeof *p);
    p->tag = tag;
    p->seq = ++self->next_seq;
    snprintf(p->op, sizeof p->op, "%s", op);
    p->sent_ms = zt_clock_mono_ms();
    p->deadline_ms = p->sent_ms + (timeout_ms > 0 ? timeout_ms : 1);
    return p;
}

static void remove_pending(mon_link_t *self, size_t i) {
    self->pending[i] = self->pending[--self->n_pending];
}

int mon_link_control(mon_link_t *self, const char *op, const json_t *args, int timeout_ms,
                     uint64_t tag) {
    if (self->n_pending == PENDING_MAX)
        return ZT_ERR_IO;
    uint64_t req = self->next_req++;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    size_t extra = 0;
    const char *key;
    json_t *val;
    if (json_is_object(args))
        json_object_foreach((json_t *)args, key, val) {
            extra += strcmp(key, "req") != 0 && strcmp(key, "op") != 0;
        }
    msgpack_pack_map(&pk, 2 + extra);
    zt_pack_kv_uint(&pk, "req", req);
    zt_pack_kv_cstr(&pk, "op", op);
    if (extra) {
        json_object_foreach((json_t *)args, key, val) {
            if (strcmp(key, "req") == 0 || strcmp(key, "op") == 0)
                continue;
            zt_pack_cstr(&pk, key);
            if (zt_json_pack(&pk, val) != 0) {
                msgpack_sbuffer_destroy(&sbuf);
                return ZT_ERR_INVALID;
            }
        }
    }
    int rc =
        zt_proto_send(self->dealer_raw, NULL, 0, ZT_CMD_CONTROL, sbuf.data, sbuf.size, NULL, 0);
    msgpack_sbuffer_destroy(&sbuf);
    if (rc != 0)
        return rc;
    pending_t *p = add_pending(self, op, timeout_ms, tag);
    p->req = req;
    return 0;
}

int mon_link_submit(mon_link_t *self, const zt_task_options_t *opts, int timeout_ms, uint64_t tag,
                    char *id_out, size_t id_size, char *reason, size_t reason_size) {
    if (self->n_pending == PENDING_MAX) {
        snprintf(reason, reason_size, "too many requests waiting for the broker");
        return ZT_ERR_IO;
    }
    char id[ZT_ID_MAX + 1];
    if (opts->id)
        snprintf(id, sizeof id, "%s", opts->id);
    else
        zt_uuid_generate(id, sizeof id);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    int rc = zt_taskmsg_pack(&pk, opts, id, reason, reason_size);
    if (rc == 0)
        rc = zt_proto_send(self->dealer_raw, NULL, 0, ZT_CMD_SUBMIT, sbuf.data, sbuf.size, NULL, 0);
    msgpack_sbuffer_destroy(&sbuf);
    if (rc != 0) {
        if (rc != ZT_ERR_INVALID)
            snprintf(reason, reason_size, "cannot send to the broker");
        return rc;
    }
    pending_t *p = add_pending(self, "submit", timeout_ms, tag);
    snprintf(p->id, sizeof p->id, "%s", id);
    if (id_out)
        snprintf(id_out, id_size, "%s", id);
    return 0;
}

static void copy_str(const msgpack_object *o, char *buf, size_t size) {
    buf[0] = '\0';
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return;
    size_t n = o->via.str.size < size - 1 ? o->via.str.size : size - 1;
    memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
}

static double elapsed_s(const pending_t *p) {
    return (double)(zt_clock_mono_ms() - p->sent_ms) / 1000.0;
}

/* One message from the DEALER: finds its request and reports it. */
static void on_message(mon_link_t *self, int cmd, const msgpack_object *root, mon_reply_fn *fn,
                       void *arg) {
    if (cmd == ZT_CMD_CONTROL_REPLY) {
        uint64_t req = 0;
        if (zt_mp_get_uint(root, "req", &req) != 0)
            return;
        for (size_t i = 0; i < self->n_pending; i++) {
            pending_t p = self->pending[i];
            if (p.req != req)
                continue;
            remove_pending(self, i);
            bool ok = false;
            (void)zt_mp_get_bool(root, "ok", &ok);
            mon_reply_t r = {p.tag, p.op, 0, NULL, NULL, NULL, elapsed_s(&p)};
            json_t *result = NULL;
            char error[512];
            if (ok) {
                const msgpack_object *res = zt_mp_get(root, "result");
                result = res ? zt_mp_to_json(res) : json_null();
                if (!result) {
                    r.status = ZT_ERR_REJECTED;
                    r.error = "the broker's reply cannot be read as JSON";
                }
                r.result = result;
            } else {
                copy_str(zt_mp_get(root, "error"), error, sizeof error);
                r.status = ZT_ERR_REJECTED;
                r.error = error[0] ? error : "request failed";
            }
            fn(arg, &r);
            json_decref(result);
            return;
        }
        return; /* a reply to a request that timed out */
    }
    if (cmd == ZT_CMD_ACCEPTED || cmd == ZT_CMD_REJECTED) {
        char id[ZT_ID_MAX + 1];
        copy_str(zt_mp_get(root, "id"), id, sizeof id);
        for (size_t i = 0; i < self->n_pending; i++) {
            pending_t p = self->pending[i];
            if (p.req != 0 || strcmp(p.id, id) != 0)
                continue;
            remove_pending(self, i);
            char code[64], reason[400], error[480];
            copy_str(zt_mp_get(root, "code"), code, sizeof code);
            copy_str(zt_mp_get(root, "reason"), reason, sizeof reason);
            snprintf(error, sizeof error, "%s: %s", code, reason);
            mon_reply_t r = {p.tag,
                             p.op,
                             cmd == ZT_CMD_ACCEPTED ? 0 : ZT_ERR_REJECTED,
                             NULL,
                             cmd == ZT_CMD_ACCEPTED ? NULL : error,
                             p.id,
                             elapsed_s(&p)};
            fn(arg, &r);
            return;
        }
        return;
    }
    if (cmd == ZT_CMD_ERROR) {
        /* an ERROR names no request; the broker answers in order, so it is
         * about the oldest one waiting (and it is an answer: the broker is there) */
        char code[64], reason[400], error[480];
        copy_str(zt_mp_get(root, "code"), code, sizeof code);
        copy_str(zt_mp_get(root, "reason"), reason, sizeof reason);
        zt_warn("broker answered ERROR %s: %s", code, reason);
        if (self->n_pending == 0)
            return;
        size_t oldest = 0;
        for (size_t i = 1; i < self->n_pending; i++)
            if (self->pending[i].seq < self->pending[oldest].seq)
                oldest = i;
        pending_t p = self->pending[oldest];
        remove_pending(self, oldest);
        snprintf(error, sizeof error, "%s: %s", code, reason);
        mon_reply_t r = {p.tag,        p.op, ZT_ERR_REJECTED, NULL, error, p.req ? NULL : p.id,
                         elapsed_s(&p)};
        fn(arg, &r);
    }
}

void mon_link_process(mon_link_t *self, mon_reply_fn *fn, void *arg) {
    for (;;) {
        zt_frames_t frames;
        if (zt_frames_recv(self->dealer_raw, &frames, false, ZMQ_DONTWAIT) != 0)
            break;
        int cmd;
        const void *body, *extra;
        size_t size, extra_size;
        const char *code;
        if (zt_frames_envelope(&frames, &cmd, &body, &size, &extra, &extra_size, &code) == 0) {
            zt_body_t *b = zt_body_parse(body, size, NULL);
            if (b)
                on_message(self, cmd, zt_body_root(b), fn, arg);
            zt_body_destroy(&b);
        }
        zt_frames_close(&frames);
    }
    int64_t now = zt_clock_mono_ms();
    for (size_t i = 0; i < self->n_pending;) {
        if (self->pending[i].deadline_ms > now) {
            i++;
            continue;
        }
        pending_t p = self->pending[i];
        remove_pending(self, i);
        mon_reply_t r = {p.tag,
                         p.op,
                         ZT_ERR_TIMEOUT,
                         NULL,
                         "no answer from the broker",
                         p.req ? NULL : p.id,
                         elapsed_s(&p)};
        fn(arg, &r);
    }
}

int mon_link_next_timeout_ms(const mon_link_t *self) {
    if (self->n_pending == 0)
        return -1;
    int64_t now = zt_clock_mono_ms(), first = INT64_MAX;
    for (size_t i = 0; i < self->n_pending; i++)
        if (self->pending[i].deadline_ms < first)
            first = self->pending[i].deadline_ms;
    return first <= now ? 0 : (int)(first - now);
}

int mon_link_reconnect(mon_link_t *self, mon_reply_fn *fn, void *arg) {
    while (self->n_pending > 0) {
        pending_t p = self->pending[self->n_pending - 1];
        self->n_pending--;
        mon_reply_t r = {p.tag,
                         p.op,
                         ZT_ERR_TIMEOUT,
                         NULL,
                         "connection to the broker reset",
                         p.req ? NULL : p.id,
                         elapsed_s(&p)};
        fn(arg, &r);
    }
    zsock_destroy(&self->dealer);
    self->dealer_raw = NULL;
    self->dealer = open_dealer(self->broker_url, self->curve);
    if (!self->dealer)
        return ZT_ERR_IO;
    self->dealer_raw = zsock_resolve(self->dealer);
    return 0;
}

/* ------------------------------------------------------------------ events */

static bool key_is(const msgpack_object *k, const char *name, size_t n) {
    return k->via.str.size == n && memcmp(k->via.str.ptr, name, n) == 0;
}
#define KEY_IS(k, lit) key_is((k), (lit), sizeof(lit) - 1)

static double num(const msgpack_object *v) {
    switch (v->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return v->via.f64;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)v->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return (double)v->via.i64;
    default:
        return 0;
    }
}

static uint64_t unum(const msgpack_object *v) {
    return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

/* "a,b,c" from an array of strings. */
static void join(const msgpack_object *v, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *s = &v->via.array.ptr[i];
        if (s->type != MSGPACK_OBJECT_STR)
            continue;
        size_t n = s->via.str.size;
        if (used + n + 2 > size)
            break;
        if (used)
            buf[used++] = ',';
        memcpy(buf + used, s->via.str.ptr, n);
        used += n;
        buf[used] = '\0';
    }
}

/* Fills ev from one event body. Returns false for a malformed one. */
static bool decode_event(const msgpack_object *root, mon_event_t *ev) {
    ev->id[0] = ev->name[0] = ev->queue[0] = ev->worker[0] = ev->host[0] = '\0';
    ev->queues[0] = ev->text[0] = '\0';
    ev->priority = 0;
    ev->retries = -1;
    ev->timestamp = ev->eta = ev->expires = ev->runtime = ev->countdown = 0;
    ev->current = ev->total = 0;
    ev->pid = ev->concurrency = ev->active = ev->processed = ev->in_flight = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        const msgpack_object *v = &root->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0)
            continue;
        switch (k->via.str.ptr[0]) {
        case 'i':
            if (KEY_IS(k, "id"))
                copy_str(v, ev->id, sizeof ev->id);
            else if (KEY_IS(k, "in_flight"))
                ev->in_flight = unum(v);
            break;
        case 'n':
            if (KEY_IS(k, "name"))
                copy_str(v, ev->name, sizeof ev->name);
            break;
        case 'q':
            if (KEY_IS(k, "queue"))
                copy_str(v, ev->queue, sizeof ev->queue);
            else if (KEY_IS(k, "queues"))
                join(v, ev->queues, sizeof ev->queues);
            break;
        case 'w':
            if (KEY_IS(k, "worker"))
                copy_str(v, ev->worker, sizeof ev->worker);
            break;
        case 'h':
            if (KEY_IS(k, "host"))
                copy_str(v, ev->host, sizeof ev->host);
            break;
        case 't':
            if (KEY_IS(k, "timestamp"))
                ev->timestamp = num(v);
            else if (KEY_IS(k, "total"))
                ev->total = num(v);
            break;
        case 'e':
            if (KEY_IS(k, "error"))
                copy_str(v, ev->text, sizeof ev->text);
            else if (KEY_IS(k, "eta"))
                ev->eta = num(v);
            else if (KEY_IS(k, "expires"))
                ev->expires = num(v);
            break;
        case 'm':
            if (KEY_IS(k, "message"))
                copy_str(v, ev->text, sizeof ev->text);
            break;
        case 'r':
            if (KEY_IS(k, "reason"))
                copy_str(v, ev->text, sizeof ev->text);
            else if (KEY_IS(k, "retries"))
                ev->retries = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 < 1000000000
                                  ? (int)v->via.u64
                                  : -1;
            else if (KEY_IS(k, "runtime"))
                ev->runtime = num(v);
            break;
        case 'p':
            if (KEY_IS(k, "priority"))
                ev->priority = unum(v) > 9 ? 9 : (int)unum(v);
            else if (KEY_IS(k, "pid"))
                ev->pid = unum(v);
            else if (KEY_IS(k, "processed"))
                ev->processed = unum(v);
            break;
        case 'c':
            if (KEY_IS(k, "current"))
                ev->current = num(v);
            else if (KEY_IS(k, "countdown"))
                ev->countdown = num(v);
            else if (KEY_IS(k, "concurrency"))
                ev->concurrency = unum(v);
            break;
        case 'a':
            if (KEY_IS(k, "active"))
                ev->active = unum(v);
            break;
        default:
            break;
        }
    }
    return ev->timestamp > 0;
}

size_t mon_link_drain_events(mon_link_t *self, mon_event_fn *fn, void *arg, size_t max) {
    mon_event_t ev;
    size_t delivered = 0;
    for (size_t n = 0; n < max; n++) {
        zt_frames_t frames;
        if (zt_frames_recv(self->sub_raw, &frames, false, ZMQ_DONTWAIT) != 0)
            break;
        bool ok = false;
        if (frames.count >= 2 &&
            mon_event_type_parse(zmq_msg_data(&frames.frame[0]), zmq_msg_size(&frames.frame[0]),
                                 &ev.type) == 0) {
            const msgpack_object *root = zt_decoder_parse(
                self->decoder, zmq_msg_data(&frames.frame[1]), zmq_msg_size(&frames.frame[1]));
            ok = root && decode_event(root, &ev);
        }
        zt_frames_close(&frames);
        if (!ok) {
            self->bad_events++;
            continue;
        }
        fn(arg, &ev);
        delivered++;
    }
    return delivered;
}

uint64_t mon_link_bad_events(const mon_link_t *self) {
    return self->bad_events;
}
