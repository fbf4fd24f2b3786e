/* zt_proto: ZTP/1 framing on raw libzmq sockets. Receiving keeps at most
 * ZT_FRAMES_MAX frames and drains the rest so a hostile multipart message
 * cannot make us allocate per frame; sending builds no intermediate objects. */
#include "zt_proto.h"
#include "zt_codec.h"
#include "zt_error.h"

#include <errno.h>
#include <string.h>

const char *zt_cmd_name(int cmd) {
    switch (cmd) {
    case ZT_CMD_SUBMIT:
        return "SUBMIT";
    case ZT_CMD_ACCEPTED:
        return "ACCEPTED";
    case ZT_CMD_REJECTED:
        return "REJECTED";
    case ZT_CMD_CONTROL:
        return "CONTROL";
    case ZT_CMD_CONTROL_REPLY:
        return "CONTROL-REPLY";
    case ZT_CMD_HELLO:
        return "HELLO";
    case ZT_CMD_WELCOME:
        return "WELCOME";
    case ZT_CMD_CREDIT:
        return "CREDIT";
    case ZT_CMD_DISPATCH:
        return "DISPATCH";
    case ZT_CMD_STARTED:
        return "STARTED";
    case ZT_CMD_PROGRESS:
        return "PROGRESS";
    case ZT_CMD_DONE:
        return "DONE";
    case ZT_CMD_RELEASE:
        return "RELEASE";
    case ZT_CMD_REVOKE:
        return "REVOKE";
    case ZT_CMD_HEARTBEAT:
        return "HEARTBEAT";
    case ZT_CMD_BYE:
        return "BYE";
    case ZT_CMD_ERROR:
        return "ERROR";
    default:
        return "UNKNOWN";
    }
}

int zt_frames_recv(void *socket, zt_frames_t *frames, bool router, int flags) {
    frames->count = 0;
    frames->total = 0;
    frames->bytes = 0;
    frames->has_identity = router;
    zmq_msg_t spill; /* frames past the limit land here and are dropped */
    for (;;) {
        zmq_msg_t *msg = frames->count < ZT_FRAMES_MAX ? &frames->frame[frames->count] : &spill;
        zmq_msg_init(msg);
        int rc = zmq_msg_recv(msg, socket, frames->total == 0 ? flags : 0);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(msg);
            if (frames->total == 0) {
                if (e == EAGAIN)
                    return ZT_ERR_TIMEOUT;
                if (e == EINTR)
                    return ZT_ERR_INTERRUPTED;
                return ZT_ERR_IO;
            }
            /* A multipart message arrives whole; failing midway means the
             * socket is going away. Keep what we have, callers see a short message. */
            break;
        }
        if (!(router && frames->total == 0))
            frames->bytes += zmq_msg_size(msg);
        frames->total++;
        bool more = zmq_msg_more(msg);
        if (msg == &spill)
            zmq_msg_close(&spill);
        else
            frames->count++;
        if (!more)
            break;
    }
    return 0;
}

void zt_frames_close(zt_frames_t *frames) {
    for (int i = 0; i < frames->count; i++)
        zmq_msg_close(&frames->frame[i]);
    frames->count = 0;
}

const void *zt_frames_identity(zt_frames_t *frames, size_t *size) {
    if (!frames->has_identity || frames->count == 0) {
        *size = 0;
        return NULL;
    }
    *size = zmq_msg_size(&frames->frame[0]);
    return zmq_msg_data(&frames->frame[0]);
}

int zt_frames_envelope(zt_frames_t *frames, int *cmd, const void **body, size_t *body_size,
                       const void **extra, size_t *extra_size, const char **wire_code) {
    int base = frames->has_identity ? 1 : 0;
    int parts = frames->total - base;
    *extra = NULL;
    *extra_size = 0;
    if (parts < 1 || frames->count <= base) {
        *wire_code = ZT_WIRE_BAD_FRAMES;
        return ZT_ERR_PROTOCOL;
    }
    zmq_msg_t *sig = &frames->frame[base];
    if (zmq_msg_size(sig) != ZT_PROTO_SIGNATURE_LEN ||
        memcmp(zmq_msg_data(sig), ZT_PROTO_SIGNATURE, ZT_PROTO_SIGNATURE_LEN) != 0) {
        *wire_code = ZT_WIRE_BAD_SIGNATURE;
        return ZT_ERR_PROTOCOL;
    }
    if (parts < 3 || parts > 4) {
        *wire_code = ZT_WIRE_BAD_FRAMES;
        return ZT_ERR_PROTOCOL;
    }
    zmq_msg_t *c = &frames->frame[base + 1];
    if (zmq_msg_size(c) != 1) {
        *wire_code = ZT_WIRE_BAD_COMMAND;
        return ZT_ERR_PROTOCOL;
    }
    *cmd = *(const unsigned char *)zmq_msg_data(c);
    if (strcmp(zt_cmd_name(*cmd), "UNKNOWN") == 0) {
        *wire_code = ZT_WIRE_BAD_COMMAND;
        return ZT_ERR_PROTOCOL;
    }
    /* Only DISPATCH carries a fourth frame. */
    if ((parts == 4) != (*cmd == ZT_CMD_DISPATCH)) {
        *wire_code = ZT_WIRE_BAD_FRAMES;
        return ZT_ERR_PROTOCOL;
    }
    *body = zmq_msg_data(&frames->frame[base + 2]);
    *body_size = zmq_msg_size(&frames->frame[base + 2]);
    if (parts == 4) {
        *extra = zmq_msg_data(&frames->frame[base + 3]);
        *extra_size = zmq_msg_size(&frames->frame[base + 3]);
    }
    *wire_code = NULL;
    return 0;
}

int zt_proto_send(void *socket, const void *identity, size_t identity_size, int cmd,
                  const void *body, size_t body_size, const void *extra, size_t extra_size) {
    unsigned char command = (unsigned char)cmd;
    static const unsigned char empty_map = 0x80;
    if (!body) {
        body = &empty_map;
        body_size = 1;
    }
    if (identity && zmq_send(socket, identity, identity_size, ZMQ_SNDMORE) < 0)
        return ZT_ERR_IO;
    if (zmq_send(socket, ZT_PROTO_SIGNATURE, ZT_PROTO_SIGNATURE_LEN, ZMQ_SNDMORE) < 0)
        return ZT_ERR_IO;
    if (zmq_send(socket, &command, 1, ZMQ_SNDMORE) < 0)
        return ZT_ERR_IO;
    if (zmq_send(socket, body, body_size, extra ? ZMQ_SNDMORE : 0) < 0)
        return ZT_ERR_IO;
    if (extra && zmq_send(socket, extra, extra_size, 0) < 0)
        return ZT_ERR_IO;
    return 0;
}

static int send_code_reason(void *socket, const void *identity, size_t identity_size, int cmd,
                            const char *task_id, const char *code, const char *reason) {
    char buf[1024];
    msgpack_sbuffer sbuf = {.size = 0, .data = NULL, .alloc = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, cmd == ZT_CMD_REJECTED ? 3 : 2);
    if (cmd == ZT_CMD_REJECTED)
        zt_pack_kv_cstr(&pk, "id", task_id);
    zt_pack_kv_cstr(&pk, "code", code);
    snprintf(buf, sizeof buf, "%s", reason ? reason : "");
    zt_pack_kv_cstr(&pk, "reason", buf);
    int rc = zt_proto_send(socket, identity, identity_size, cmd, sbuf.data, sbuf.size, NULL, 0);
    msgpack_sbuffer_destroy(&sbuf);
    return rc;
}

int zt_proto_send_error(void *socket, const void *identity, size_t identity_size, const char *code,
                        const char *reason) {
    return send_code_reason(socket, identity, identity_size, ZT_CMD_ERROR, NULL, code, reason);
}

int zt_proto_send_rejected(void *socket, const void *identity, size_t identity_size,
                           const char *task_id, const char *code, const char *reason) {
    return send_code_reason(socket, identity, identity_size, ZT_CMD_REJECTED, task_id, code,
                            reason);
}
