/* access: who may talk to the broker when it runs CurveZMQ (docs/SECURITY.md).
 *
 * Owns the zauth actor (the process's ZAP handler: it admits a CURVE
 * connection only when the client's public key is a certificate in the
 * allowed directory; it rereads that directory by itself when it changes),
 * the broker's server certificate, and the broker's own map from each allowed
 * public key to its certificate's name and role. libzmq stamps every received
 * message with the key its handshake proved (the ZAP User-Id), so the role of
 * a message is looked up here, per message: a peer cannot claim another's.
 *
 * Also watches the server sockets' handshakes (libzmq socket monitors) and
 * logs the connections zauth refused, rate-limited.
 *
 * Roles and what they may send are a policy table in access.c; a CONTROL op
 * it does not list is for admin keys only. */
#ifndef BROKER_ACCESS_H
#define BROKER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

typedef struct broker_access broker_access_t;

/* Roles, as bits: a policy is the set of roles allowed. */
typedef enum {
    BROKER_ROLE_NONE = 0,
    BROKER_ROLE_WORKER = 1 << 0,
    BROKER_ROLE_CLIENT = 1 << 1,
    BROKER_ROLE_BEAT = 1 << 2,
    BROKER_ROLE_ADMIN = 1 << 3
} broker_role_t;

/* One allowed certificate, as the broker knows it. A public value struct;
 * pointers to it are borrowed until the next broker_access_reload(). */
typedef struct {
    char key[41];  /* public key, Z85 */
    char name[65]; /* the certificate's `name` metadata, else its file name */
    broker_role_t role;
} broker_peer_t;

/* Loads the server certificate (a secret certificate file) and the allowed
 * directory, and starts zauth. Call before binding any socket. Returns the
 * object, or NULL with *err (ZT_ERR_INVALID bad file or folder, ZT_ERR_IO)
 * after logging why (naming files, never key material). */
broker_access_t *broker_access_new(const char *server_cert, const char *allowed_dir, int *err);

/* Stops zauth and the monitors, frees the certificates; *self_p = NULL. */
void broker_access_destroy(broker_access_t **self_p);

/* Makes sock a CURVE server with the broker's certificate (before bind) and
 * watches its handshakes under label ("clients", "events") once bound: call
 * broker_access_watch() after zsock_bind(). Returns 0 or ZT_ERR_IO. */
int broker_access_apply(broker_access_t *self, zsock_t *sock);
int broker_access_watch(broker_access_t *self, zsock_t *sock, const char *label);

/* The broker's public key (Z85, borrowed) and the allowed directory. */
const char *broker_access_public_key(const broker_access_t *self);
const char *broker_access_dir(const broker_access_t *self);

/* The peer that sent msg (any frame of a message received on a CURVE server
 * socket), or NULL when the message carries no key or a key the broker does
 * not know (removed from the directory, or added since the last reload). */
const broker_peer_t *broker_access_peer(const broker_access_t *self, const zmq_msg_t *msg);

/* The peer with this Z85 key, or NULL. */
const broker_peer_t *broker_access_lookup(const broker_access_t *self, const char *key);

/* Rereads the allowed directory (SIGHUP) and tells zauth to. On success
 * returns the number of keys whose access was withdrawn or narrowed (gone,
 * or role changed) and logs a summary; on failure (the folder cannot be
 * read) keeps the old map and returns a negative code. */
int broker_access_reload(broker_access_t *self);

/* The roles that may send command cmd (a ZT_CMD_* byte), and the roles that
 * may run CONTROL op (op_len bytes, not NUL-terminated). */
broker_role_t broker_access_command_roles(int cmd);
broker_role_t broker_access_control_roles(const char *op, size_t op_len);

/* "worker", "client", "beat", "admin", or "none"; for a set of roles,
 * "client, beat or admin" into buf. */
const char *broker_role_name(broker_role_t role);
const char *broker_roles_text(broker_role_t roles, char *buf, size_t size);

/* Monitors: sockets to poll (ZMQ_POLLIN) with the loop's others, and what to
 * call when one is readable (logs refused handshakes). */
size_t broker_access_monitor_count(const broker_access_t *self);
void *broker_access_monitor_socket(const broker_access_t *self, size_t i);
void broker_access_handle_monitor(broker_access_t *self, size_t i);

/* Handshakes refused since start (unknown key, not CURVE, bad crypto). */
uint64_t broker_access_refused(const broker_access_t *self);

#endif
