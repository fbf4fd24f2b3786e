/* access: see access.h. The key map is a zhashx from Z85 public key to a
 * broker_peer_t it owns; a reload builds a new map and swaps it in whole, so
 * a failed reload changes nothing. The directory is read with zdir and
 * zcert_load(), exactly as zauth's zcertstore reads it, so both agree on
 * which files count (every regular file that parses as a certificate, in
 * subfolders too; NAME.key with a NAME.key_secret beside it loads the latter). */
#include "access.h"
#include "zt_curve.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MONITORS_MAX 4
#define REFUSED_KINDS 16        /* distinct (socket, reason) pairs remembered for logging */
#define REFUSED_REPEAT_MS 10000 /* one line per kind per this many msecs; the rest counted */

/* A kind of refused handshake and when it was last logged: a plain client
 * retrying every 100 ms must not write ten lines a second. */
typedef struct {
    size_t monitor;
    uint16_t event;
    uint32_t value;
    int64_t logged_ms; /* monotonic msecs; 0 = slot free */
    uint64_t unlogged; /* refusals of this kind since that line */
} refused_kind_t;

typedef struct {
    zsock_t *pair;     /* our end of the monitor pipe */
    char label[32];    /* "clients", "events" */
    char endpoint[64]; /* inproc endpoint libzmq publishes the events on */
} monitor_t;

struct broker_access {
    zt_curve_t *server; /* the broker's certificate */
    char *dir;          /* allowed certificates */
    zactor_t *auth;     /* zauth: the ZAP handler */
    zhashx_t *peers;    /* Z85 key -> broker_peer_t (owned) */
    monitor_t monitors[MONITORS_MAX];
    size_t nmonitors;
    uint64_t refused;
    refused_kind_t kinds[REFUSED_KINDS];
};

/* ---- policy ------------------------------------------------------------ */

#define ROLES_QUERY (BROKER_ROLE_CLIENT | BROKER_ROLE_BEAT | BROKER_ROLE_ADMIN)

broker_role_t broker_access_command_roles(int cmd) {
    switch (cmd) {
    case ZT_CMD_SUBMIT:
        /* workers too: tasks send follow-up tasks, as Celery workers do */
        return ROLES_QUERY | BROKER_ROLE_WORKER;
    case ZT_CMD_CONTROL:
        return ROLES_QUERY; /* then per op: broker_access_control_roles() */
    case ZT_CMD_HELLO:
    case ZT_CMD_CREDIT:
    case ZT_CMD_STARTED:
    case ZT_CMD_PROGRESS:
    case ZT_CMD_DONE:
    case ZT_CMD_RELEASE:
    case ZT_CMD_HEARTBEAT:
    case ZT_CMD_BYE:
    case ZT_CMD_CONTROL_REPLY:
        return BROKER_ROLE_WORKER;
    default:
        return BROKER_ROLE_NONE;
    }
}

/* CONTROL ops (PROTOCOL.md §5.2) and who may run them. An op missing here
 * (a new one) is for admin keys until it is added. */
static const struct {
    const char *op;
    broker_role_t roles;
} control_policy[] = {
    {"ping", ROLES_QUERY},
    {"queues", ROLES_QUERY},
    {"workers", ROLES_QUERY},
    {"scheduled", ROLES_QUERY},
    {"active", ROLES_QUERY},
    {"reserved", ROLES_QUERY},
    {"registered", ROLES_QUERY},
    {"stats", ROLES_QUERY},
    {"beat", ROLES_QUERY},
    {"beat-lease", BROKER_ROLE_BEAT},
    {"beat-fired", BROKER_ROLE_BEAT},
    {"purge", BROKER_ROLE_ADMIN},
    {"revoke", BROKER_ROLE_ADMIN},
    {"broadcast", BROKER_ROLE_ADMIN}, /* remote control of workers, shutdown included */
    {"task", BROKER_ROLE_ADMIN},      /* shows a held task's message: arguments are user data */
};

broker_role_t broker_access_control_roles(const char *op, size_t op_len) {
    for (size_t i = 0; i < sizeof control_policy / sizeof control_policy[0]; i++)
        if (strlen(control_policy[i].op) == op_len && memcmp(control_policy[i].op, op, op_len) == 0)
            return control_policy[i].roles;
    return BROKER_ROLE_ADMIN;
}

static const struct {
    broker_role_t role;
    const char *name;
} role_names[] = {{BROKER_ROLE_WORKER, "worker"},
                  {BROKER_ROLE_CLIENT, "client"},
                  {BROKER_ROLE_BEAT, "beat"},
                  {BROKER_ROLE_ADMIN, "admin"}};

#define N_ROLES (sizeof role_names / sizeof role_names[0])

const char *broker_role_name(broker_role_t role) {
    for (size_t i = 0; i < N_ROLES; i++)
        if (role_names[i].role == role)
            return role_names[i].name;
    return "none";
}

const char *broker_roles_text(broker_role_t roles, char *buf, size_t size) {
    size_t n = 0, count = 0, total = 0;
    for (size_t i = 0; i < N_ROLES; i++)
        total += (roles & role_names[i].role) != 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ROLES && n < size; i++) {
        if (!(roles & role_names[i].role))
            continue;
        const char *sep = count == 0 ? "" : count + 1 == total ? " or " : ", ";
        n += (size_t)snprintf(buf + n, size - n, "%s%s", sep, role_names[i].name);
        count++;
    }
    if (total == 0)
        snprintf(buf, size, "none");
    return buf;
}

static broker_role_t parse_role(const char *text) {
    for (size_t i = 0; text && i < N_ROLES; i++)
        if (strcmp(role_names[i].name, text) == 0)
            return role_names[i].role;
    return BROKER_ROLE_NONE;
}

/* ---- the key map ------------------------------------------------------- */

static void peer_free(void **item) {
    free(*item);
    *item = NULL;
}

/* Reads every certificate under dir into a new map; NULL if dir cannot be
 * read. Problems with single files are logged, not fatal. */
static zhashx_t *load_dir(const char *dir) {
    zdir_t *d = zdir_new(dir, NULL);
    if (!d)
        return NULL;
    zhashx_t *peers = zhashx_new();
    zhashx_set_destructor(peers, peer_free);
    zfile_t **files = zdir_flatten(d);
    for (size_t i = 0; files && files[i]; i++) {
        if (!zfile_is_regular(files[i]))
            continue;
        const char *path = zfile_filename(files[i], NULL);
        zcert_t *cert = zcert_load(path);
        if (!cert)
            continue; /* not a certificate: zauth ignores it too */
        broker_peer_t *p = zt_calloc(1, sizeof *p);
        snprintf(p->key, sizeof p->key, "%s", zcert_public_txt(cert));
        const char *name = zcert_meta(cert, "name");
        if (name && *name) {
            snprintf(p->name, sizeof p->name, "%s", name);
        } else {
            const char *base = strrchr(path, '/');
            snprintf(p->name, sizeof p->name, "%s", base ? base + 1 : path);
        }
        const char *role = zcert_meta(cert, "role");
        p->role = parse_role(role);
        if (p->role == BROKER_ROLE_NONE)
            zt_warn("allowed certificate %s has no valid role (want %s, has '%s'): its key "
                    "may connect but every command from it is refused",
                    path, ZT_CURVE_ROLES, role ? role : "");
        zcert_destroy(&cert);
        const broker_peer_t *other = zhashx_lookup(peers, p->key);
        if (other) {
            /* NAME.key and NAME.key_secret of one certificate: not news */
            if (strcmp(other->name, p->name) != 0 || other->role != p->role)
                zt_warn("allowed certificate %s repeats the key of '%s'; the first one counts",
                        path, other->name);
            free(p);
            continue;
        }
        zhashx_insert(peers, p->key, p);
    }
    zdir_flatten_free(&files);
    zdir_destroy(&d);
    return peers;
}

static size_t count_role(zhashx_t *peers, broker_role_t role) {
    size_t n = 0;
    for (broker_peer_t *p = zhashx_first(peers); p; p = zhashx_next(peers))
        n += p->role == role;
    return n;
}

static void log_keys(const broker_access_t *self, const char *verb) {
    zt_info("%s %zu allowed keys from %s (%zu worker, %zu client, %zu beat, %zu admin)", verb,
            zhashx_size(self->peers), self->dir, count_role(self->peers, BROKER_ROLE_WORKER),
            count_role(self->peers, BROKER_ROLE_CLIENT), count_role(self->peers, BROKER_ROLE_BEAT),
            count_role(self->peers, BROKER_ROLE_ADMIN));
}

broker_access_t *broker_access_new(const char *server_cert, const char *allowed_dir, int *err) {
    char reason[512];
    int rc = ZT_ERR_INVALID;
    broker_access_t *self = zt_calloc(1, sizeof *self);
    if (!allowed_dir || !*allowed_dir) {
        zt_error("curve_server_cert is set but curve_allowed_dir is not: the broker needs the "
                 "folder of the certificates it accepts (docs/SECURITY.md)");
        goto fail;
    }
    self->dir = zt_strdup(allowed_dir);
    self->server = zt_curve_new(ZT_CURVE_SERVER, server_cert, NULL, reason, sizeof reason);
    if (!self->server) {
        zt_error("%s", reason);
        goto fail;
    }
    self->peers = load_dir(allowed_dir);
    if (!self->peers) {
        zt_error("curve_allowed_dir %s cannot be read: %s", allowed_dir, strerror(errno));
        goto fail;
    }
    rc = ZT_ERR_IO;
    self->auth = zactor_new(zauth, NULL);
    if (!self->auth) {
        zt_error("cannot start the ZAP handler (zauth)");
        goto fail;
    }
    if (zt_log_enabled(ZT_LOG_DEBUG)) {
        /* czmq's own log (standard output): each ZAP request with the
         * client's address and key, allowed or denied */
        zstr_send(self->auth, "VERBOSE");
        zsock_wait(self->auth);
    }
    zstr_sendx(self->auth, "CURVE", allowed_dir, NULL);
    zsock_wait(self->auth);
    zt_info("CURVE on: server key %s (%s)", zt_curve_public_key(self->server),
            zt_curve_name(self->server));
    log_keys(self, "loaded");
    if (zhashx_size(self->peers) == 0)
        zt_warn("curve_allowed_dir %s holds no certificates: nobody can connect", allowed_dir);
    return self;
fail:
    broker_access_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void broker_access_destroy(broker_access_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_access_t *self = *self_p;
    for (size_t i = 0; i < self->nmonitors; i++)
        zsock_destroy(&self->monitors[i].pair);
    zactor_destroy(&self->auth);
    zhashx_destroy(&self->peers);
    zt_curve_destroy(&self->server);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

int broker_access_apply(broker_access_t *self, zsock_t *sock) {
    return zt_curve_apply(self->server, sock);
}

const char *broker_access_public_key(const broker_access_t *self) {
    return zt_curve_public_key(self->server);
}

const char *broker_access_dir(const broker_access_t *self) {
    return self->dir;
}

const broker_peer_t *broker_access_peer(const broker_access_t *self, const zmq_msg_t *msg) {
    /* zmq_msg_gets takes a non-const message but only reads its metadata */
    const char *key = zmq_msg_gets((zmq_msg_t *)msg, "User-Id");
    if (!key || strlen(key) != ZT_CURVE_KEY_LEN)
        return NULL;
    return zhashx_lookup(self->peers, key);
}

const broker_peer_t *broker_access_lookup(const broker_access_t *self, const char *key) {
    return key && *key ? zhashx_lookup(self->peers, key) : NULL;
}

int broker_access_reload(broker_access_t *self) {
    zhashx_t *fresh = load_dir(self->dir);
    if (!fresh) {
        zt_error("reload: curve_allowed_dir %s cannot be read (%s); keeping the %zu keys loaded "
                 "before",
                 self->dir, strerror(errno), zhashx_size(self->peers));
        return ZT_ERR_IO;
    }
    int withdrawn = 0;
    size_t added = 0;
    for (broker_peer_t *p = zhashx_first(self->peers); p; p = zhashx_next(self->peers)) {
        const broker_peer_t *now = zhashx_lookup(fresh, p->key);
        if (!now) {
            zt_info("reload: key '%s' (%s) removed", p->name, broker_role_name(p->role));
            withdrawn++;
        } else if (now->role != p->role) {
            zt_info("reload: key '%s' changed role from %s to %s", p->name,
                    broker_role_name(p->role), broker_role_name(now->role));
            withdrawn++;
        }
    }
    for (broker_peer_t *p = zhashx_first(fresh); p; p = zhashx_next(fresh))
        added += zhashx_lookup(self->peers, p->key) == NULL;
    zhashx_destroy(&self->peers);
    self->peers = fresh;
    /* zauth rereads the folder on its own when it changes; tell it anyway,
     * so both views are taken now */
    zstr_sendx(self->auth, "CURVE", self->dir, NULL);
    zsock_wait(self->auth);
    log_keys(self, "reloaded");
    if (added || withdrawn)
        zt_info("reload: %zu keys added, %d removed or changed", added, withdrawn);
    return withdrawn;
}

/* ---- handshake monitors ------------------------------------------------ */

int broker_access_watch(broker_access_t *self, zsock_t *sock, const char *label) {
    if (self->nmonitors == MONITORS_MAX)
        return ZT_ERR_INVALID;
    monitor_t *m = &self->monitors[self->nmonitors];
    snprintf(m->label, sizeof m->label, "%s", label);
    snprintf(m->endpoint, sizeof m->endpoint, "inproc://zt-access-monitor-%p-%zu", (void *)self,
             self->nmonitors);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(zsock_resolve(sock), m->endpoint, events) != 0) {
        zt_error("cannot monitor the %s socket: %s", label, zmq_strerror(zmq_errno()));
        return ZT_ERR_IO;
    }
    m->pair = zsock_new(ZMQ_PAIR);
    if (!m->pair || zsock_connect(m->pair, "%s", m->endpoint) != 0) {
        zsock_destroy(&m->pair);
        zt_error("cannot connect to the %s socket's monitor", label);
        return ZT_ERR_IO;
    }
    self->nmonitors++;
    return 0;
}

size_t broker_access_monitor_count(const broker_access_t *self) {
    return self->nmonitors;
}

void *broker_access_monitor_socket(const broker_access_t *self, size_t i) {
    return zsock_resolve(self->monitors[i].pair);
}

/* Why a handshake failed, in words an operator can act on. */
static void describe(uint16_t event, uint32_t value, char *buf, size_t size) {
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        if (value == 400)
            snprintf(buf, size, "its key is not in curve_allowed_dir (ZAP 400)");
        else
            snprintf(buf, size, "refused by the authenticator (ZAP %u)", (unsigned)value);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            snprintf(buf, size, "the peer does not use CURVE (no curve_client_cert?)");
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            snprintf(buf, size, "CURVE decryption failed (the peer has a wrong curve_broker_key?)");
        else
            snprintf(buf, size, "handshake protocol error 0x%08x", (unsigned)value);
    } else {
        /* no detail: typically the peer hung up first, having seen that we
         * speak CURVE and it does not (or that it cannot read our reply) */
        snprintf(buf, size,
                 "the peer closed the connection during the handshake (%s): no CURVE, or a "
                 "wrong curve_broker_key?",
                 zmq_strerror((int)value));
    }
}

/* Whether to log this refusal: the first of its kind, then one per
 * REFUSED_REPEAT_MS. *since gets how many went unlogged before it. */
static bool log_refusal(broker_access_t *self, size_t monitor, uint16_t event, uint32_t value,
                        uint64_t *since) {
    int64_t now = zclock_mono();
    refused_kind_t *k = NULL, *oldest = &self->kinds[0];
    for (size_t i = 0; i < REFUSED_KINDS && !k; i++) {
        refused_kind_t *c = &self->kinds[i];
        if (c->logged_ms && c->monitor == monitor && c->event == event && c->value == value)
            k = c;
        else if (c->logged_ms < oldest->logged_ms)
            oldest = c;
    }
    *since = 0;
    if (!k) {
        k = oldest; /* a new kind takes the stalest slot */
        *k = (refused_kind_t){monitor, event, value, now, 0};
        return true;
    }
    if (now - k->logged_ms < REFUSED_REPEAT_MS) {
        k->unlogged++;
        return false;
    }
    *since = k->unlogged;
    k->logged_ms = now;
    k->unlogged = 0;
    return true;
}

void broker_access_handle_monitor(broker_access_t *self, size_t i) {
    monitor_t *m = &self->monitors[i];
    void *sock = zsock_resolve(m->pair);
    for (;;) {
        zmq_msg_t head, addr;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&head))
            (void)zmq_msg_recv(&addr, sock, 0);
        if (zmq_msg_size(&head) >= 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&head), 2);
            memcpy(&value, (const char *)zmq_msg_data(&head) + 2, 4);
            self->refused++;
            uint64_t since;
            if (log_refusal(self, i, event, value, &since)) {
                char why[128], more[64] = "";
                describe(event, value, why, sizeof why);
                if (since)
                    snprintf(more, sizeof more, " (%llu more like it before this one)",
                             (unsigned long long)since);
                zt_warn("refused a connection on the %s endpoint %.*s: %s%s", m->label,
                        (int)(zmq_msg_size(&addr) < 200 ? zmq_msg_size(&addr) : 200),
                        (const char *)zmq_msg_data(&addr), why, more);
            }
        }
        zmq_msg_close(&addr);
        zmq_msg_close(&head);
    }
}

uint64_t broker_access_refused(const broker_access_t *self) {
    return self->refused;
}
