/* zt_proto: ZTP/1 framing (docs/PROTOCOL.md): signature, command byte,
 * MessagePack body, on raw libzmq sockets. This is the hot path of the broker
 * and the worker, so it works on zmq_msg_t directly, without czmq's zmsg.
 *
 * A received message is held in a zt_frames_t (a plain value struct) whose
 * frames stay valid until zt_frames_close(). */
#ifndef ZT_PROTO_H
#define ZT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define ZT_PROTO_SIGNATURE "ZTP01"
#define ZT_PROTO_SIGNATURE_LEN 5
#define ZT_PROTO_VERSION "1"

/* Default limit on a whole message (all frames), broker side. */
#define ZT_PROTO_MAX_MESSAGE_DEFAULT (1024 * 1024)

typedef enum {
    ZT_CMD_SUBMIT = 0x01,
    ZT_CMD_ACCEPTED = 0x02,
    ZT_CMD_REJECTED = 0x03,
    ZT_CMD_CONTROL = 0x04,
    ZT_CMD_CONTROL_REPLY = 0x05,
    ZT_CMD_HELLO = 0x10,
    ZT_CMD_WELCOME = 0x11,
    ZT_CMD_CREDIT = 0x12,
    ZT_CMD_DISPATCH = 0x13,
    ZT_CMD_STARTED = 0x14,
    ZT_CMD_PROGRESS = 0x15,
    ZT_CMD_DONE = 0x16,
    ZT_CMD_RELEASE = 0x17,
    ZT_CMD_REVOKE = 0x18,
    ZT_CMD_HEARTBEAT = 0x19,
    ZT_CMD_BYE = 0x1A,
    ZT_CMD_ERROR = 0x7F
} zt_cmd_t;

/* Returns "SUBMIT", "DONE", ... or "UNKNOWN". */
const char *zt_cmd_name(int cmd);

/* Wire error codes carried in ERROR and REJECTED ("bad-signature", ...). */
#define ZT_WIRE_BAD_SIGNATURE "bad-signature"
#define ZT_WIRE_BAD_COMMAND "bad-command"
#define ZT_WIRE_BAD_FRAMES "bad-frames"
#define ZT_WIRE_BAD_BODY "bad-body"
#define ZT_WIRE_INVALID_FIELD "invalid-field"
#define ZT_WIRE_TOO_LARGE "too-large"
#define ZT_WIRE_UNKNOWN_WORKER "unknown-worker"
#define ZT_WIRE_UNKNOWN_TASK "unknown-task"
#define ZT_WIRE_DUPLICATE_ID "duplicate-id"
#define ZT_WIRE_QUEUE_FULL "queue-full"
#define ZT_WIRE_FORBIDDEN "forbidden" /* CURVE: the key's role may not do this */

#define ZT_FRAMES_MAX 8

/* One received multipart message. On a ROUTER the first frame is the peer
 * identity (has_identity). Fields are read-only for callers. */
typedef struct {
    zmq_msg_t frame[ZT_FRAMES_MAX];
    int count;         /* frames kept (at most ZT_FRAMES_MAX) */
    int total;         /* frames the message really had */
    size_t bytes;      /* payload bytes in all frames, identity excluded */
    bool has_identity; /* frame[0] is a ROUTER identity */
} zt_frames_t;

/* Receives one whole multipart message from a raw libzmq socket (use
 * zsock_resolve() on a zsock_t). Frames past ZT_FRAMES_MAX are read and
 * dropped (counted in total). flags: 0 or ZMQ_DONTWAIT.
 * Returns 0, ZT_ERR_TIMEOUT if nothing was ready (EAGAIN), ZT_ERR_INTERRUPTED
 * on EINTR, or ZT_ERR_IO. On failure nothing needs closing. */
int zt_frames_recv(void *socket, zt_frames_t *frames, bool router, int flags);
void zt_frames_close(zt_frames_t *frames);

/* After zt_frames_recv: validates the ZTP envelope (signature, command byte,
 * a body frame) and points the outputs at the parts (borrowed from frames).
 * extra/extra_size receive frame 3 if present (DISPATCH), else NULL/0.
 * Returns 0, or ZT_ERR_PROTOCOL with *wire_code set to the ERROR code to send. */
int zt_frames_envelope(zt_frames_t *frames, int *cmd, const void **body, size_t *body_size,
                       const void **extra, size_t *extra_size, const char **wire_code);

/* Identity of a ROUTER message (borrowed). */
const void *zt_frames_identity(zt_frames_t *frames, size_t *size);

/* Sends one ZTP message. identity may be NULL (DEALER side). extra may be
 * NULL (no frame 3). Blocks only as libzmq's send does (ROUTER drops to
 * unknown or full peers unless the socket says otherwise).
 * Returns 0 or ZT_ERR_IO. */
int zt_proto_send(void *socket, const void *identity, size_t identity_size, int cmd,
                  const void *body, size_t body_size, const void *extra, size_t extra_size);

/* Sends ERROR {code, reason} (or, for REJECTED, {id, code, reason}). */
int zt_proto_send_error(void *socket, const void *identity, size_t identity_size, const char *code,
                        const char *reason);
int zt_proto_send_rejected(void *socket, const void *identity, size_t identity_size,
                           const char *task_id, const char *code, const char *reason);

#endif
