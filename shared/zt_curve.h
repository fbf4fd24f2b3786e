/* zt_curve: CurveZMQ (RFC 26) for every ZeroMQ socket of the cluster, in one
 * place (docs/SECURITY.md). A zt_curve_t holds one certificate (czmq zcert:
 * public and secret key, metadata `name` and `role`) and, on the client side,
 * the broker's public key; zt_curve_apply() puts them on a socket before it
 * connects or binds. Clients, workers, zmqbeat, zmqctl, zmqbench, drive2 and
 * monitors are CURVE clients; the broker's ROUTER and events XPUB are servers.
 *
 * Secret keys are read only from certificate files whose paths come from the
 * config file or the environment (ZT_CURVE_*_FILE), never from the command
 * line, and are never printed: messages name the file, not its contents.
 *
 *   zt_curve_t *curve = NULL;
 *   if (zt_curve_from_config(&config, ZT_CURVE_CLIENT, &curve, why, sizeof why) != 0) fail;
 *   zsock_t *s = zsock_new(ZMQ_DEALER);
 *   zt_curve_apply(curve, s);              // no-op when curve is NULL (plain)
 *   zsock_connect(s, "%s", config.broker_url);
 *   zt_curve_destroy(&curve);              // the socket keeps its copy of the keys
 */
#ifndef ZT_CURVE_H
#define ZT_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include <czmq.h>

#include "zt_config.h"

typedef struct zt_curve zt_curve_t;

typedef enum {
    ZT_CURVE_CLIENT, /* connects to the broker: own certificate + the broker's public key */
    ZT_CURVE_SERVER  /* the broker: its certificate; sockets become CURVE servers */
} zt_curve_side_t;

/* Length of a Z85-encoded CURVE key. */
#define ZT_CURVE_KEY_LEN 40

/* Roles a certificate's `role` metadata may name (docs/SECURITY.md). */
#define ZT_CURVE_ROLES "worker|client|beat|admin"

/* True when role is one of ZT_CURVE_ROLES. */
bool zt_curve_role_valid(const char *role);

/* True when name is a certificate name zmqctl keygen accepts: 1-64 bytes of
 * [A-Za-z0-9_.@-], not starting with a dot. */
bool zt_curve_name_valid(const char *name);

/* Reads the CURVE settings of one side from config. A client uses
 * curve_client_cert (its own secret certificate file) and curve_broker_key
 * (the broker's Z85 public key, or the path of its public certificate); the
 * broker uses curve_server_cert. Returns 0 with *out NULL when that side is
 * not configured (plain), 0 with a new object, or ZT_ERR_INVALID / ZT_ERR_IO
 * with reason filled (it names files and settings, never key material). */
int zt_curve_from_config(const zt_config_t *config, zt_curve_side_t side, zt_curve_t **out,
                         char *reason, size_t reason_size);

/* The same from explicit values: cert_path is a secret certificate file;
 * broker_key is used on the client side only. Returns NULL with reason. */
zt_curve_t *zt_curve_new(zt_curve_side_t side, const char *cert_path, const char *broker_key,
                         char *reason, size_t reason_size);

void zt_curve_destroy(zt_curve_t **self_p);

/* msecs a CURVE client's blocking send waits for a connection at most. */
#define ZT_CURVE_SEND_TIMEOUT_MS 1000

/* Sets the keys on sock (before bind or connect): client side, its
 * certificate and the broker's public key, and a send timeout of
 * ZT_CURVE_SEND_TIMEOUT_MS (a refused key leaves the socket without a
 * connection, see zt_curve.c); server side, its certificate and the CURVE
 * server flag. self NULL: does nothing (plain). Returns 0, or ZT_ERR_IO if
 * libzmq refused an option. */
int zt_curve_apply(const zt_curve_t *self, zsock_t *sock);

/* This certificate's public key (Z85, borrowed), its `name` metadata (or the
 * file name when it has none) and its `role` metadata ("" when none). */
const char *zt_curve_public_key(const zt_curve_t *self);
const char *zt_curve_name(const zt_curve_t *self);
const char *zt_curve_role(const zt_curve_t *self);

/* True for endpoints only this machine can reach: ipc://, inproc://, and
 * tcp:// on a loopback host (127.0.0.0/8, ::1, localhost, interface lo).
 * Everything else (a wildcard such as tcp://0.0.0.0:N too) is not local. */
bool zt_endpoint_is_local(const char *endpoint);

/* zmqctl keygen: makes a new certificate with metadata name and role and
 * writes DIR/NAME.key (public) and DIR/NAME.key_secret (mode 0600, created
 * fresh: an existing file is never overwritten). The paths written go into
 * public_path / secret_path (may be NULL). Returns 0, ZT_ERR_INVALID (bad
 * name or role) or ZT_ERR_IO (a file exists or cannot be written), with
 * reason filled. */
int zt_curve_keygen(const char *dir, const char *name, const char *role, char *public_path,
                    size_t public_size, char *secret_path, size_t secret_size, char *reason,
                    size_t reason_size);

#endif
