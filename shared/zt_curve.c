/* zt_curve: see zt_curve.h. The zcert (and with it the secret key) lives only
 * in this module; sockets get copies through zcert_apply(). Files are checked
 * before czmq reads them, so a missing or unreadable file gets a message that
 * says which, and a secret file others can read gets a warning. */
#include "zt_curve.h"
#include "zt_error.h"
#include "zt_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZERO_KEY "0000000000000000000000000000000000000000" /* czmq: no secret key */
#define NAME_MAX_LEN 64

struct zt_curve {
    zt_curve_side_t side;
    zcert_t *cert;
    char broker_key[ZT_CURVE_KEY_LEN + 1]; /* client side: the broker's public key, Z85 */
    char name[NAME_MAX_LEN + 1];
    char role[16];
};

bool zt_curve_role_valid(const char *role) {
    return role && (strcmp(role, "worker") == 0 || strcmp(role, "client") == 0 ||
                    strcmp(role, "beat") == 0 || strcmp(role, "admin") == 0);
}

bool zt_curve_name_valid(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

/* A Z85 text of exactly one CURVE key. */
static bool z85_key(const char *text) {
    if (!text || strlen(text) != ZT_CURVE_KEY_LEN)
        return false;
    uint8_t bin[32];
    return zmq_z85_decode(bin, text) != NULL;
}

/* The certificate's name: its `name` metadata, else the file name without
 * .key / .key_secret. */
static void cert_name(zcert_t *cert, const char *path, char *out, size_t size) {
    const char *meta = zcert_meta(cert, "name");
    if (meta && *meta) {
        snprintf(out, size, "%s", meta);
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 11 && strcmp(base + n - 11, ".key_secret") == 0)
        n -= 11;
    else if (n > 4 && strcmp(base + n - 4, ".key") == 0)
        n -= 4;
    snprintf(out, size, "%.*s", (int)n, base);
}

/* Loads a certificate file that must hold a secret key. */
static zcert_t *load_secret_cert(const char *what, const char *path, char *reason,
                                 size_t reason_size) {
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        zt_fail(reason, reason_size, ZT_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        zt_fail(reason, reason_size, ZT_ERR_IO, "%s %s: not a regular file", what, path);
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        zt_fail(reason, reason_size, ZT_ERR_INVALID,
                "%s %s is not a CURVE certificate (make one with zmqctl keygen)", what, path);
        return NULL;
    }
    if (strcmp(zcert_secret_txt(cert), ZERO_KEY) == 0) {
        zcert_destroy(&cert);
        zt_fail(reason, reason_size, ZT_ERR_INVALID,
                "%s %s holds no secret key (give the NAME.key_secret file)", what, path);
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        zt_warn("%s %s can be read by other users (mode %04o): chmod 600 it", what, path,
                (unsigned)(st.st_mode & 07777));
    return cert;
}

/* The broker's public key from text: a certificate file if one exists at
 * that path, else Z85 key text. */
static int broker_public_key(const char *value, char out[ZT_CURVE_KEY_LEN + 1], char *reason,
                             size_t reason_size) {
    struct stat st;
    if (stat(value, &st) == 0) {
        zcert_t *cert = S_ISREG(st.st_mode) ? zcert_load(value) : NULL;
        if (!cert)
            return zt_fail(reason, reason_size, ZT_ERR_INVALID,
                           "curve_broker_key: %s is not a CURVE certificate", value);
        snprintf(out, ZT_CURVE_KEY_LEN + 1, "%s", zcert_public_txt(cert));
        zcert_destroy(&cert);
        return 0;
    }
    if (!z85_key(value))
        return zt_fail(reason, reason_size, ZT_ERR_INVALID,
                       "curve_broker_key must be the broker's public key (40 characters of Z85) "
                       "or the path of its public certificate; '%s' is neither",
                       value);
    snprintf(out, ZT_CURVE_KEY_LEN + 1, "%s", value);
    return 0;
}

zt_curve_t *zt_curve_new(zt_curve_side_t side, const char *cert_path, const char *broker_key,
                         char *reason, size_t reason_size) {
    const char *what = side == ZT_CURVE_SERVER ? "curve_server_cert" : "curve_client_cert";
    if (!cert_path || !*cert_path) {
        zt_fail(reason, reason_size, ZT_ERR_INVALID, "%s is not set", what);
        return NULL;
    }
    zt_curve_t *self = zt_calloc(1, sizeof *self);
    self->side = side;
    if (side == ZT_CURVE_CLIENT) {
        if (!broker_key || !*broker_key) {
            zt_fail(reason, reason_size, ZT_ERR_INVALID,
                    "curve_client_cert is set but curve_broker_key (the broker's public key) is "
                    "not");
            goto fail;
        }
        if (broker_public_key(broker_key, self->broker_key, reason, reason_size) != 0)
            goto fail;
    }
    self->cert = load_secret_cert(what, cert_path, reason, reason_size);
    if (!self->cert)
        goto fail;
    cert_name(self->cert, cert_path, self->name, sizeof self->name);
    const char *role = zcert_meta(self->cert, "role");
    snprintf(self->role, sizeof self->role, "%s", role ? role : "");
    return self;
fail:
    zt_curve_destroy(&self);
    return NULL;
}

int zt_curve_from_config(const zt_config_t *config, zt_curve_side_t side, zt_curve_t **out,
                         char *reason, size_t reason_size) {
    *out = NULL;
    const char *cert =
        side == ZT_CURVE_SERVER ? config->curve_server_cert : config->curve_client_cert;
    if (!cert[0]) {
        if (side == ZT_CURVE_CLIENT && config->curve_broker_key[0])
            return zt_fail(reason, reason_size, ZT_ERR_INVALID,
                           "curve_broker_key is set but curve_client_cert (this program's own "
                           "certificate) is not");
        return 0; /* plain */
    }
    *out = zt_curve_new(side, cert, config->curve_broker_key, reason, reason_size);
    return *out ? 0 : ZT_ERR_INVALID;
}

void zt_curve_destroy(zt_curve_t **self_p) {
    if (!self_p || !*self_p)
        return;
    zt_curve_t *self = *self_p;
    zcert_destroy(&self->cert);
    free(self);
    *self_p = NULL;
}

int zt_curve_apply(const zt_curve_t *self, zsock_t *sock) {
    if (!self)
        return 0;
    zcert_apply(self->cert, sock);
    if (self->side == ZT_CURVE_SERVER) {
        zsock_set_curve_server(sock, 1);
        return zsock_curve_server(sock) == 1 ? 0 : ZT_ERR_IO;
    }
    zsock_set_curve_serverkey(sock, self->broker_key);
    /* When the broker refuses our key (ZAP 400), libzmq ends that connection
     * for good and does not redial: the socket is left with no peer, and a
     * blocking send would wait forever (a worker could not even stop). So a
     * CURVE client's send gives up after ZT_CURVE_SEND_TIMEOUT_MS instead;
     * with a live connection sends only wait at the high-water mark. */
    zsock_set_sndtimeo(sock, ZT_CURVE_SEND_TIMEOUT_MS);
    /* zsock setters cannot fail loudly; read one back to be sure CURVE is on */
    return zsock_mechanism(sock) == ZMQ_CURVE ? 0 : ZT_ERR_IO;
}

const char *zt_curve_public_key(const zt_curve_t *self) {
    return zcert_public_txt(self->cert);
}

const char *zt_curve_name(const zt_curve_t *self) {
    return self->name;
}

const char *zt_curve_role(const zt_curve_t *self) {
    return self->role;
}

/* ---- endpoints ---------------------------------------------------------- */

static bool loopback_ipv4(const char *host, size_t len) {
    if (len < 4 || strncmp(host, "127.", 4) != 0)
        return false;
    for (size_t i = 4; i < len; i++)
        if (!((host[i] >= '0' && host[i] <= '9') || host[i] == '.'))
            return false;
    return true;
}

bool zt_endpoint_is_local(const char *endpoint) {
    if (!endpoint)
        return false;
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr(host, ':'); /* the port follows the last colon */
    if (!colon)
        return false;
    size_t len = (size_t)(colon - host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 3 && strncmp(host, "::1", 3) == 0)
        return true;
    if (len == 9 && strncmp(host, "localhost", 9) == 0)
        return true;
    if (len == 2 && strncmp(host, "lo", 2) == 0)
        return true;
    return loopback_ipv4(host, len);
}

/* ---- keygen ------------------------------------------------------------- */

int zt_curve_keygen(const char *dir, const char *name, const char *role, char *public_path,
                    size_t public_size, char *secret_path, size_t secret_size, char *reason,
                    size_t reason_size) {
    if (!zt_curve_name_valid(name))
        return zt_fail(reason, reason_size, ZT_ERR_INVALID,
                       "bad name '%s' (1-64 of [A-Za-z0-9_.@-], not starting with a dot)",
                       name ? name : "");
    if (!zt_curve_role_valid(role))
        return zt_fail(reason, reason_size, ZT_ERR_INVALID, "bad role '%s' (want %s)",
                       role ? role : "", ZT_CURVE_ROLES);
    if (!dir || !*dir)
        dir = ".";
    if (zsys_dir_create("%s", dir) != 0)
        return zt_fail(reason, reason_size, ZT_ERR_IO, "cannot create %s: %s", dir,
                       strerror(errno));
    char pub[4096], sec[4096];
    if (snprintf(pub, sizeof pub, "%s/%s.key", dir, name) >= (int)sizeof pub ||
        snprintf(sec, sizeof sec, "%s/%s.key_secret", dir, name) >= (int)sizeof sec)
        return zt_fail(reason, reason_size, ZT_ERR_INVALID, "directory name too long");
    struct stat st;
    if (lstat(pub, &st) == 0 || lstat(sec, &st) == 0)
        return zt_fail(reason, reason_size, ZT_ERR_IO,
                       "%s or %s exists already; not overwriting a certificate", pub, sec);
    /* Create the secret file 0600 before anything is written to it: czmq
     * opens it with fopen(), which keeps an existing file's mode. */
    int fd = open(sec, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return zt_fail(reason, reason_size, ZT_ERR_IO, "cannot create %s: %s", sec,
                       strerror(errno));
    close(fd);
    zcert_t *cert = zcert_new();
    if (!cert) {
        unlink(sec);
        return zt_fail(reason, reason_size, ZT_ERR_IO, "cannot make a key pair");
    }
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "role", "%s", role);
    int rc = 0;
    if (zcert_save_secret(cert, sec) != 0 || chmod(sec, 0600) != 0) {
        rc = zt_fail(reason, reason_size, ZT_ERR_IO, "cannot write %s: %s", sec, strerror(errno));
        unlink(sec);
    } else if (zcert_save_public(cert, pub) != 0) {
        rc = zt_fail(reason, reason_size, ZT_ERR_IO, "cannot write %s: %s", pub, strerror(errno));
        unlink(sec);
        unlink(pub);
    }
    zcert_destroy(&cert);
    if (rc == 0) {
        if (public_path && public_size)
            snprintf(public_path, public_size, "%s", pub);
        if (secret_path && secret_size)
            snprintf(secret_path, secret_size, "%s", sec);
    }
    return rc;
}
