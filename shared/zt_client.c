/* zt_client: the client side of ZTP/1 (SUBMIT, CONTROL) over one DEALER, plus
 * result waiting through zt_backend. Replies are matched by task id or by
 * request number; replies to earlier, abandoned requests are skipped. */
#include "zt_client.h"
#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"

#include <czmq.h>
#include <stdarg.h>
#include <string.h>

struct zt_client {
    zsock_t *dealer;
    void *socket;          /* raw libzmq handle of dealer */
    zt_backend_t *backend; /* NULL until first needed */
    char *backend_url;     /* NULL: no result backend */
    int timeout_ms;        /* msecs to wait for the broker */
    uint64_t next_req;     /* CONTROL request numbers */
    char last_error[512];
};

static void set_error(zt_client_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(zt_client_t *self, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->last_error, sizeof self->last_error, fmt, ap);
    va_end(ap);
}

zt_client_t *zt_client_new(const char *broker_url, const char *backend_url, int *err) {
    return zt_client_new_secure(broker_url, backend_url, NULL, err);
}

zt_client_t *zt_client_new_config(const zt_config_t *config, const char *backend_url, int *err,
                                  char *reason, size_t reason_size) {
    zt_curve_t *curve = NULL;
    int rc = zt_curve_from_config(config, ZT_CURVE_CLIENT, &curve, reason, reason_size);
    if (rc != 0) {
        if (err)
            *err = rc;
        return NULL;
    }
    int e = 0;
    zt_client_t *self = zt_client_new_secure(config->broker_url, backend_url, curve, &e);
    zt_curve_destroy(&curve);
    if (!self)
        zt_fail(reason, reason_size, e, "cannot use broker endpoint '%s'", config->broker_url);
    if (err)
        *err = e;
    return self;
}

zt_client_t *zt_client_new_secure(const char *broker_url, const char *backend_url,
                                  const zt_curve_t *curve, int *err) {
    if (err)
        *err = ZT_ERR_INVALID;
    if (!broker_url || !*broker_url)
        return NULL;
    zt_client_t *self = zt_calloc(1, sizeof *self);
    self->timeout_ms = 5000;
    self->next_req = 1;
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer)
        goto fail;
    /* Every request waits for its reply, so nothing useful is left unsent at
     * close; lingering would only delay exit when the broker is unreachable. */
    zsock_set_linger(self->dealer, 0);
    zsock_set_sndhwm(self->dealer, 100000);
    zsock_set_rcvhwm(self->dealer, 100000);
    if (zt_curve_apply(curve, self->dealer) != 0) {
        zt_warn("cannot set the CURVE keys on the broker socket");
        goto fail;
    }
    if (zsock_connect(self->dealer, "%s", broker_url) != 0) {
        zt_warn("cannot connect to broker endpoint '%s'", broker_url);
        goto fail;
    }
    self->socket = zsock_resolve(self->dealer);
    if (backend_url && *backend_url)
        self->backend_url = zt_strdup(backend_url);
    if (err)
        *err = 0;
    return self;
fail:
    zt_client_destroy(&self);
    return NULL;
}

void zt_client_destroy(zt_client_t **self_p) {
    if (!self_p || !*self_p)
        return;
    zt_client_t *self = *self_p;
    zsock_destroy(&self->dealer);
    zt_backend_destroy(&self->backend);
    free(self->backend_url);
    free(self);
    *self_p = NULL;
}

void zt_client_set_timeout(zt_client_t *self, int timeout_ms) {
    self->timeout_ms = timeout_ms;
}

const char *zt_client_last_error(const zt_client_t *self) {
    return self->last_error;
}

void *zt_client_socket(zt_client_t *self) {
    return self->socket;
}

/* Waits for one ZTP message until deadline (monotonic msecs). Returns 0 with
 * frames filled and the envelope parsed, ZT_ERR_TIMEOUT, or ZT_ERR_PROTOCOL
 * for a message that is not valid ZTP (it is closed and skipped by callers). */
static int recv_message(zt_client_t *self, int64_t deadline, zt_frames_t *frames, int *cmd,
                        zt_body_t **body) {
    for (;;) {
        /* Under pipelining a reply is usually waiting already: try to read
         * before paying for a poll(2). */
        int got = zt_frames_recv(self->socket, frames, false, ZMQ_DONTWAIT);
        if (got == ZT_ERR_INTERRUPTED)
            return got;
        if (got != 0) {
            int64_t left = deadline - zt_clock_mono_ms();
            if (left < 0)
                left = 0;
            zmq_pollitem_t item = {self->socket, 0, ZMQ_POLLIN, 0};
            int rc = zmq_poll(&item, 1, (long)left);
            if (rc < 0)
                return errno == EINTR ? ZT_ERR_INTERRUPTED : ZT_ERR_IO;
            if (rc == 0)
                return ZT_ERR_TIMEOUT;
            continue;
        }
        const void *data, *extra;
        size_t size, extra_size;
        const char *code;
        if (zt_frames_envelope(frames, cmd, &data, &size, &extra, &extra_size, &code) != 0) {
            zt_warn("broker sent a malformed message (%s); skipped", code);
            zt_frames_close(frames);
            continue;
        }
        *body = zt_body_parse(data, size, NULL);
        if (!*body) {
            zt_warn("broker sent an undecodable %s body; skipped", zt_cmd_name(*cmd));
            zt_frames_close(frames);
            continue;
        }
        return 0;
    }
}

static void copy_field(const msgpack_object *map, const char *key, char *buf, size_t size) {
    const msgpack_object *v = zt_mp_get(map, key);
    buf[0] = '\0';
    if (v && v->type == MSGPACK_OBJECT_STR) {
        size_t n = v->via.str.size < size - 1 ? v->via.str.size : size - 1;
        memcpy(buf, v->via.str.ptr, n);
        buf[n] = '\0';
    }
}

int zt_client_submit(zt_client_t *self, const zt_task_options_t *opts, char *id_out,
                     size_t id_size) {
    char id[ZT_ID_MAX + 1];
    char reason[256];
    if (opts->id)
        snprintf(id, sizeof id, "%s", opts->id);
    else
        zt_uuid_generate(id, sizeof id);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    int rc = zt_taskmsg_pack(&pk, opts, id, reason, sizeof reason);
    if (rc != 0) {
        set_error(self, "%s", reason);
        msgpack_sbuffer_destroy(&sbuf);
        return rc;
    }
    rc = zt_proto_send(self->socket, NULL, 0, ZT_CMD_SUBMIT, sbuf.data, sbuf.size, NULL, 0);
    msgpack_sbuffer_destroy(&sbuf);
    if (rc != 0) {
        set_error(self, "cannot send to broker: %s", zmq_strerror(errno));
        return rc;
    }
    if (id_out)
        snprintf(id_out, id_size, "%s", id);
    return 0;
}

int zt_client_recv_reply(zt_client_t *self, int timeout_ms, char *id_out, size_t id_size) {
    int64_t deadline = zt_clock_mono_ms() + timeout_ms;
    for (;;) {
        zt_frames_t frames;
        zt_body_t *body = NULL;
        int cmd;
        int rc = recv_message(self, deadline, &frames, &cmd, &body);
        if (rc != 0) {
            if (rc == ZT_ERR_TIMEOUT)
                set_error(self, "no answer from the broker within %d ms", timeout_ms);
            return rc;
        }
        const msgpack_object *root = zt_body_root(body);
        if (id_out)
            copy_field(root, "id", id_out, id_size);
        char code[64], reason[400];
        copy_field(root, "code", code, sizeof code);
        copy_field(root, "reason", reason, sizeof reason);
        zt_body_destroy(&body);
        zt_frames_close(&frames);
        if (cmd == ZT_CMD_ACCEPTED)
            return 0;
        if (cmd == ZT_CMD_REJECTED || cmd == ZT_CMD_ERROR) {
            set_error(self, "%s: %s", code, reason);
            return ZT_ERR_REJECTED;
        }
        /* A CONTROL-REPLY to an abandoned request: skip it. */
    }
}

int zt_client_send(zt_client_t *self, const zt_task_options_t *opts, char *id_out, size_t id_size) {
    char id[ZT_ID_MAX + 1];
    int rc = zt_client_submit(self, opts, id, sizeof id);
    if (rc != 0)
        return rc;
    int64_t deadline = zt_clock_mono_ms() + self->timeout_ms;
    for (;;) {
        char got[ZT_ID_MAX + 1];
        int left = (int)(deadline - zt_clock_mono_ms());
        rc = zt_client_recv_reply(self, left > 0 ? left : 0, got, sizeof got);
        /* Replies to earlier pipelined submits carry other ids; an ERROR
         * carries none and can only be about our message. */
        if (rc == ZT_ERR_TIMEOUT || rc == ZT_ERR_IO || rc == ZT_ERR_INTERRUPTED)
            return rc;
        if (got[0] && strcmp(got, id) != 0)
            continue;
        if (rc == 0 && id_out)
            snprintf(id_out, id_size, "%s", id);
        return rc;
    }
}

static int ensure_backend(zt_client_t *self) {
    if (self->backend)
        return 0;
    if (!self->backend_url) {
        set_error(self, "no result backend configured");
        return ZT_ERR_INVALID;
    }
    int err = 0;
    self->backend = zt_backend_new(self->backend_url, &err);
    if (!self->backend) {
        set_error(self, "cannot reach the result backend: %s", zt_strerror(err));
        return err ? err : ZT_ERR_BACKEND;
    }
    return 0;
}

int zt_client_wait(zt_client_t *self, const char *id, int timeout_ms, json_t **meta) {
    *meta = NULL;
    int rc = ensure_backend(self);
    if (rc != 0)
        return rc;
    rc = zt_backend_wait(self->backend, id, timeout_ms, meta);
    if (rc == ZT_ERR_TIMEOUT)
        set_error(self, "task %s not finished within %d ms", id, timeout_ms);
    else if (rc != 0)
        set_error(self, "result backend error while waiting for %s", id);
    return rc;
}

int zt_client_get(zt_client_t *self, const char *id, json_t **meta) {
    *meta = NULL;
    int rc = ensure_backend(self);
    if (rc != 0)
        return rc;
    return zt_backend_get(self->backend, id, meta);
}

int zt_client_control(zt_client_t *self, const char *op, const json_t *args, json_t **result) {
    *result = NULL;
    uint64_t req = self->next_req++;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    size_t extra = 0;
    if (args && json_is_object(args)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)args, key, val) {
            if (strcmp(key, "req") != 0 && strcmp(key, "op") != 0)
                extra++;
        }
    }
    msgpack_pack_map(&pk, 2 + extra);
    zt_pack_kv_uint(&pk, "req", req);
    zt_pack_kv_cstr(&pk, "op", op);
    if (extra) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)args, key, val) {
            if (strcmp(key, "req") == 0 || strcmp(key, "op") == 0)
                continue;
            zt_pack_cstr(&pk, key);
            if (zt_json_pack(&pk, val) != 0) {
                msgpack_sbuffer_destroy(&sbuf);
                set_error(self, "control arguments nested too deeply");
                return ZT_ERR_INVALID;
            }
        }
    }
    int rc = zt_proto_send(self->socket, NULL, 0, ZT_CMD_CONTROL, sbuf.data, sbuf.size, NULL, 0);
    msgpack_sbuffer_destroy(&sbuf);
    if (rc != 0) {
        set_error(self, "cannot send to broker: %s", zmq_strerror(errno));
        return rc;
    }
    int64_t deadline = zt_clock_mono_ms() + self->timeout_ms;
    for (;;) {
        zt_frames_t frames;
        zt_body_t *body = NULL;
        int cmd;
        rc = recv_message(self, deadline, &frames, &cmd, &body);
        if (rc != 0) {
            if (rc == ZT_ERR_TIMEOUT)
                set_error(self, "no answer from the broker within %d ms", self->timeout_ms);
            return rc;
        }
        const msgpack_object *root = zt_body_root(body);
        uint64_t got = 0;
        bool ok = false;
        if (cmd == ZT_CMD_ERROR) {
            char code[64], reason[400];
            copy_field(root, "code", code, sizeof code);
            copy_field(root, "reason", reason, sizeof reason);
            set_error(self, "%s: %s", code, reason);
            rc = ZT_ERR_REJECTED;
        } else if (cmd == ZT_CMD_CONTROL_REPLY && zt_mp_get_uint(root, "req", &got) == 0 &&
                   got == req) {
            (void)zt_mp_get_bool(root, "ok", &ok);
            if (ok) {
                const msgpack_object *res = zt_mp_get(root, "result");
                *result = res ? zt_mp_to_json(res) : json_null();
                if (!*result) {
                    set_error(self, "broker reply could not be converted to JSON");
                    rc = ZT_ERR_PROTOCOL;
                } else {
                    rc = 0;
                }
            } else {
                char why[400];
                copy_field(root, "error", why, sizeof why);
                set_error(self, "%s", why[0] ? why : "request failed");
                rc = ZT_ERR_REJECTED;
            }
        } else {
            rc = 1; /* someone else's reply: keep waiting */
        }
        zt_body_destroy(&body);
        zt_frames_close(&frames);
        if (rc != 1)
            return rc;
    }
}
