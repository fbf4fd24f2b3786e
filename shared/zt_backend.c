/* zt_backend: Celery's Redis result layout written with hiredis (0.14 API).
 *
 * Writers queue states as pre-formatted "SETEX key ttl meta" + "PUBLISH key
 * meta" command pairs. A send moves the queue into one in-flight batch written
 * as a single pipeline; replies are read as they come (event loop) or waited
 * for (zt_backend_flush). Until Redis confirms a batch its commands are kept,
 * so a lost connection puts them back at the head of the queue to be written
 * again (SETEX and PUBLISH are safe to repeat).
 * Invariant: entries in self->nonfinal are queued, unsent, not dropped
 * STARTED/PROGRESS entries, keyed by task id (the newest of each task).
 * Bound (zt_backend_set_limit): queued + in flight never exceeds the limit
 * for longer than one zt_backend_queue_state call, except by entries in
 * flight and the newest one; to make room the oldest queued entry that is
 * not a result (STARTED, PROGRESS, RETRY: the "spare" list) is dropped, else
 * the oldest queued result (SUCCESS, FAILURE, REVOKED), and the caller hears
 * of every dropped entry it may be waiting for (RETRY and results).
 * A result is never overwritten by STARTED, PROGRESS or RETRY: those are
 * written by a Lua script that first checks the key (a second run of a task,
 * after a redelivery, must not leave "STARTED" over the first run's SUCCESS
 * when it dies; Celery's backend has the same rule for SUCCESS). Results are
 * plain SETEX + PUBLISH. */
#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"

#include <czmq.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define KEY_PREFIX "celery-task-meta-"
#define IO_TIMEOUT_MS 2000      /* msecs a blocking Redis read or write may take */
#define CONNECT_TIMEOUT_MS 1000 /* msecs per connection step for blocking callers */
#define LOOP_CONNECT_MS 250     /* msecs per connection step from zt_backend_send */
#define RETRY_MIN_MS 100        /* reconnect backoff, doubling... */
#define RETRY_MAX_MS 2000       /* ...up to this */
/* reads per zt_backend_drain_meta (16 KiB each, as hiredis reads): bounds how
 * long one call takes on a busy channel. */
#define DRAIN_READS_MAX 16
/* Writes a state that is not a result (ARGV: ttl, meta) unless the key holds
 * a result already; then neither SETEX nor PUBLISH happens. Returns 1 when
 * written, 0 when skipped. The pattern allows Celery's own spacing. */
#define GUARD_SCRIPT                                                                               \
    "local cur = redis.call('GET', KEYS[1]) "                                                      \
    "if cur then "                                                                                 \
    "local st = string.match(cur, '\"status\"%s*:%s*\"(%u+)\"') "                                  \
    "if st == 'SUCCESS' or st == 'FAILURE' or st == 'REVOKED' then return 0 end "                  \
    "end "                                                                                         \
    "redis.call('SETEX', KEYS[1], ARGV[1], ARGV[2]) "                                              \
    "redis.call('PUBLISH', KEYS[1], ARGV[2]) "                                                     \
    "return 1"
#define REPLY_TIMEOUT_MS                                                                           \
    5000 /* msecs a sent batch may wait for Redis before the                                       \
          * connection counts as lost (a hung server) */

typedef struct entry {
    struct entry *next;
    char *id;      /* task id (owned) */
    char *cmd;     /* RESP-formatted command(s) (owned): SETEX + PUBLISH, or EVAL */
    size_t len;    /* bytes in cmd */
    int replies;   /* replies cmd gets: 2 (SETEX, PUBLISH) or 1 (EVAL) */
    bool final;    /* SUCCESS/FAILURE/REVOKED/RETRY: never superseded */
    bool result;   /* SUCCESS/FAILURE/REVOKED: dropped last when over the limit */
    bool progress; /* PROGRESS: superseded only by a newer PROGRESS */
    bool dropped;  /* superseded or dropped before it was sent */
    bool spare;    /* on the spare list (queued, not a result, not dropped) */
    struct entry *spare_prev, *spare_next;
    char status[12]; /* its state, for the lost-state callback */
} entry_t;

typedef struct batch {
    struct batch *next;
    uint64_t number;
    int64_t sent_ms;  /* monotonic msecs when it was written */
    entry_t *entries; /* in send order */
    int n_entries;
    int replies_left; /* entry->replies summed */
    entry_t *cur;     /* the entry the next reply belongs to */
    int cur_left;     /* replies still due for cur */
} batch_t;

struct zt_backend {
    /* Where */
    char *host; /* NULL for a unix socket */
    int port;
    char *unix_path; /* NULL for TCP */
    char *username;  /* NULL: AUTH with the password alone */
    char *password;  /* NULL: no AUTH */
    int db;
    /* Writer */
    redisContext *ctx; /* NULL while disconnected */
    entry_t *q_head, *q_tail;
    int queued;                       /* entries queued and not dropped */
    int inflight;                     /* entries sent and not confirmed */
    zhashx_t *nonfinal;               /* id -> entry_t* (borrowed) */
    entry_t *spare_head, *spare_tail; /* queued non-results, oldest first */
    int limit;                        /* most entries queued + in flight; 0 = none */
    zt_backend_lost_fn *lost_fn;      /* told of each dropped RETRY or result */
    void *lost_arg;
    int64_t lost;             /* results (SUCCESS/FAILURE/REVOKED) dropped, ever */
    int64_t lost_outage;      /* of those, since the last "back" log line */
    batch_t *b_head, *b_tail; /* in flight, oldest first */
    uint64_t next_batch;      /* number the queue will be sent under */
    uint64_t acked;           /* every batch <= this is confirmed */
    int64_t retry_at_ms;      /* no reconnect before this monotonic time */
    int64_t retry_ivl_ms;     /* current backoff */
    bool warned_down;         /* "Redis unreachable" logged once per outage */
    bool warned_state;        /* a refused non-result state was logged */
    char last_error[160];     /* why the last connection attempt failed */
    int64_t date_secs;        /* unix second date_prefix was made for */
    char date_prefix[40];     /* "YYYY-MM-DDTHH:MM:SS" of date_secs */
    /* Readers */
    redisContext *sub;      /* SUBSCRIBE connection for zt_backend_wait */
    redisContext *meta_sub; /* PSUBSCRIBE celery-task-meta-* stream, or NULL */
};

/* ------------------------------------------------------------------------ */
/* URL and connections */

static int parse_url(zt_backend_t *self, const char *url) {
    const char *p;
    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/')
            return ZT_ERR_INVALID;
        self->unix_path = zt_strndup(p, n);
        if (q) {
            if (strncmp(q, "?db=", 4) != 0)
                return ZT_ERR_INVALID;
            char *end;
            long db = strtol(q + 4, &end, 10);
            if (end == q + 4 || *end || db < 0 || db > 100000)
                return ZT_ERR_INVALID;
            self->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return ZT_ERR_INVALID;
    p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return ZT_ERR_INVALID; /* redis://user@host is not a thing */
        if (colon > p)
            self->username = zt_strndup(p, (size_t)(colon - p));
        if (at > colon + 1)
            self->password = zt_strndup(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *host_end;
    const char *after;
    if (*p == '[') { /* [::1]:6379 */
        host_end = strchr(p, ']');
        if (!host_end)
            return ZT_ERR_INVALID;
        self->host = zt_strndup(p + 1, (size_t)(host_end - p - 1));
        after = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        self->host = zt_strndup(p, (size_t)(host_end - p));
        after = host_end;
    }
    if (!*self->host) {
        free(self->host);
        self->host = zt_strdup("127.0.0.1");
    }
    self->port = 6379;
    if (*after == ':') {
        char *end;
        long port = strtol(after + 1, &end, 10);
        if (end == after + 1 || port < 1 || port > 65535)
            return ZT_ERR_INVALID;
        self->port = (int)port;
        after = end;
    }
    if (*after == '/') {
        after++;
        if (*after) {
            char *end;
            long db = strtol(after, &end, 10);
            if (end == after || *end || db < 0 || db > 100000)
                return ZT_ERR_INVALID;
            self->db = (int)db;
        }
    } else if (*after) {
        return ZT_ERR_INVALID;
    }
    return 0;
}

static const char *where(const zt_backend_t *self, char *buf, size_t size) {
    if (self->unix_path)
        snprintf(buf, size, "%s", self->unix_path);
    else
        snprintf(buf, size, "%s:%d", self->host, self->port);
    return buf;
}

static struct timeval tv_ms(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Runs one command synchronously and checks for an error reply; the reason
 * of a failure goes to self->last_error. */
static int simple_command(zt_backend_t *self, redisContext *c, const char *what, int argc,
                          const char **argv) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        snprintf(self->last_error, sizeof self->last_error, "%s failed: %s", what, c->errstr);
        return ZT_ERR_BACKEND;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(self->last_error, sizeof self->last_error, "%s refused: %.100s", what, r->str);
        rc = ZT_ERR_BACKEND;
    }
    freeReplyObject(r);
    return rc;
}

/* Opens a connection, authenticates and (when select_db) selects the db,
 * each step bounded by timeout_ms. Returns the context, or NULL with the
 * reason in self->last_error (also logged at warn when loud). */
static redisContext *open_context(zt_backend_t *self, bool select_db, bool loud, int timeout_ms) {
    char buf[300];
    redisContext *c;
    if (self->unix_path)
        c = redisConnectUnixWithTimeout(self->unix_path, tv_ms(timeout_ms));
    else
        c = redisConnectWithTimeout(self->host, self->port, tv_ms(timeout_ms));
    if (!c || c->err) {
        snprintf(self->last_error, sizeof self->last_error, "cannot connect: %s",
                 c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv_ms(timeout_ms));
    redisEnableKeepAlive(c);
    if (self->password) {
        const char *argv[3] = {"AUTH", self->username ? self->username : self->password,
                               self->password};
        if (simple_command(self, c, "AUTH", self->username ? 3 : 2, argv) != 0)
            goto fail;
    }
    if (select_db && self->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", self->db);
        const char *argv[2] = {"SELECT", db};
        if (simple_command(self, c, "SELECT", 2, argv) != 0)
            goto fail;
    }
    redisSetTimeout(c, tv_ms(IO_TIMEOUT_MS));
    return c;
fail:
    if (loud)
        zt_warn("redis at %s: %s", where(self, buf, sizeof buf), self->last_error);
    if (c)
        redisFree(c);
    return NULL;
}

/* timeout_ms bounds each step of connecting: short from an event loop, which
 * must not stall its heartbeats on a Redis that accepts and never answers. */
static int ensure_writer(zt_backend_t *self, bool loud, int timeout_ms) {
    if (self->ctx)
        return 0;
    self->ctx = open_context(self, true, loud, timeout_ms);
    if (!self->ctx)
        return ZT_ERR_BACKEND;
    return 0;
}

static void entry_free(entry_t *e) {
    free(e->id);
    free(e->cmd);
    free(e);
}

static void free_entries(entry_t *e) {
    while (e) {
        entry_t *next = e->next;
        entry_free(e);
        e = next;
    }
}

/* The spare list: queued entries that are not results, oldest first, so the
 * limit can drop the oldest of them in O(1). */
static void spare_append(zt_backend_t *self, entry_t *e) {
    e->spare = true;
    e->spare_next = NULL;
    e->spare_prev = self->spare_tail;
    if (self->spare_tail)
        self->spare_tail->spare_next = e;
    else
        self->spare_head = e;
    self->spare_tail = e;
}

static void spare_remove(zt_backend_t *self, entry_t *e) {
    if (!e->spare)
        return;
    if (e->spare_prev)
        e->spare_prev->spare_next = e->spare_next;
    else
        self->spare_head = e->spare_next;
    if (e->spare_next)
        e->spare_next->spare_prev = e->spare_prev;
    else
        self->spare_tail = e->spare_prev;
    e->spare = false;
    e->spare_prev = e->spare_next = NULL;
}

static void enforce_limit(zt_backend_t *self, const entry_t *keep);

/* The connection failed: forget it and put every unconfirmed entry back at the
 * head of the queue, oldest first, to be written again (within the limit). */
static void connection_lost(zt_backend_t *self, const char *why) {
    char buf[300];
    if (!self->warned_down)
        zt_warn("redis at %s: %s; results will be written again once it is back",
                where(self, buf, sizeof buf), why);
    self->warned_down = true;
    if (self->ctx) {
        redisFree(self->ctx);
        self->ctx = NULL;
    }
    entry_t *head = NULL, *tail = NULL;
    int count = 0;
    /* Spare entries coming back are older than any queued one: they go to
     * the front of the spare list, in their order. */
    entry_t *spare_first = NULL, *spare_last = NULL;
    while (self->b_head) {
        batch_t *b = self->b_head;
        self->b_head = b->next;
        for (entry_t *e = b->entries; e; e = e->next) {
            count++;
            if (!e->result) {
                e->spare = true;
                e->spare_prev = spare_last;
                e->spare_next = NULL;
                if (spare_last)
                    spare_last->spare_next = e;
                else
                    spare_first = e;
                spare_last = e;
            }
        }
        if (b->entries) {
            if (tail)
                tail->next = b->entries;
            else
                head = b->entries;
            tail = b->entries;
            while (tail->next)
                tail = tail->next;
        }
        free(b);
    }
    self->b_tail = NULL;
    self->inflight = 0;
    if (spare_first) {
        spare_last->spare_next = self->spare_head;
        if (self->spare_head)
            self->spare_head->spare_prev = spare_last;
        else
            self->spare_tail = spare_last;
        self->spare_head = spare_first;
    }
    if (head) {
        tail->next = self->q_head;
        self->q_head = head;
        if (!self->q_tail)
            self->q_tail = tail;
        self->queued += count;
    }
    enforce_limit(self, NULL);
    int64_t now = zt_clock_mono_ms();
    self->retry_ivl_ms = self->retry_ivl_ms ? self->retry_ivl_ms * 2 : RETRY_MIN_MS;
    if (self->retry_ivl_ms > RETRY_MAX_MS)
        self->retry_ivl_ms = RETRY_MAX_MS;
    self->retry_at_ms = now + self->retry_ivl_ms;
}

/* ------------------------------------------------------------------------ */
/* Life cycle */

static zt_backend_t *create(const char *url, int *err) {
    if (err)
        *err = ZT_ERR_INVALID;
    if (!url)
        return NULL;
    zt_backend_t *self = zt_calloc(1, sizeof *self);
    self->next_batch = 1;
    self->nonfinal = zhashx_new();
    if (parse_url(self, url) != 0) {
        zt_warn("invalid result backend url '%s' (want redis://[:password@]host[:port][/db])", url);
        zt_backend_destroy(&self);
        return NULL;
    }
    return self;
}

zt_backend_t *zt_backend_new(const char *url, int *err) {
    zt_backend_t *self = create(url, err);
    if (!self)
        return NULL;
    if (ensure_writer(self, true, CONNECT_TIMEOUT_MS) != 0) {
        if (err)
            *err = ZT_ERR_BACKEND;
        zt_backend_destroy(&self);
        return NULL;
    }
    if (err)
        *err = 0;
    return self;
}

zt_backend_t *zt_backend_new_lazy(const char *url, int *err) {
    zt_backend_t *self = create(url, err);
    if (self && err)
        *err = 0;
    return self;
}

void zt_backend_destroy(zt_backend_t **self_p) {
    if (!self_p || !*self_p)
        return;
    zt_backend_t *self = *self_p;
    if (self->ctx)
        redisFree(self->ctx);
    if (self->sub)
        redisFree(self->sub);
    if (self->meta_sub)
        redisFree(self->meta_sub);
    while (self->b_head) {
        batch_t *b = self->b_head;
        self->b_head = b->next;
        free_entries(b->entries);
        free(b);
    }
    free_entries(self->q_head);
    zhashx_destroy(&self->nonfinal);
    free(self->host);
    free(self->unix_path);
    free(self->username);
    free(self->password);
    free(self);
    *self_p = NULL;
}

/* ------------------------------------------------------------------------ */
/* Writing */

bool zt_backend_state_is_final(const char *status) {
    return status && (strcmp(status, "SUCCESS") == 0 || strcmp(status, "FAILURE") == 0 ||
                      strcmp(status, "REVOKED") == 0);
}

static bool valid_status(const char *s) {
    static const char *const names[] = {"STARTED", "PROGRESS", "RETRY",
                                        "SUCCESS", "FAILURE",  "REVOKED"};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0)
            return true;
    return false;
}

json_t *zt_backend_exception(const char *exc_type, const char *message, const char *exc_module) {
    json_t *o = json_object();
    json_object_set_new(o, "exc_type", json_string(exc_type ? exc_type : "Exception"));
    json_t *args = json_array();
    json_t *msg = json_string(message ? message : "");
    if (!msg) /* not UTF-8: keep the failure readable rather than lose it */
        msg = json_string("(message was not valid UTF-8)");
    json_array_append_new(args, msg);
    json_object_set_new(o, "exc_message", args);
    json_object_set_new(o, "exc_module", exc_module ? json_string(exc_module) : json_null());
    return o;
}

/* A growing byte buffer for RESP commands. */
typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = zt_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_add_uint(buf_t *b, uint64_t v) {
    char digits[24];
    int i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_add(b, digits + i, sizeof digits - (size_t)i);
}

#define BUF_ADD_LIT(b, lit) buf_add((b), (lit), sizeof(lit) - 1)

/* One RESP bulk string: $<len>\r\n<bytes>\r\n */
static void buf_add_bulk(buf_t *b, const char *p, size_t n) {
    buf_add(b, "$", 1);
    buf_add_uint(b, n);
    buf_add(b, "\r\n", 2);
    buf_add(b, p, n);
    buf_add(b, "\r\n", 2);
}

/* ISO 8601 UTC of now, as zt_clock_iso8601 writes it; the calendar part is
 * formatted once per second (gmtime and snprintf per result add up). */
static void date_now(zt_backend_t *self, char *out, size_t size) {
    double now = zt_clock_wall();
    int64_t secs = (int64_t)now;
    long usec = (long)((now - (double)secs) * 1e6);
    if (usec > 999999)
        usec = 999999;
    if (secs != self->date_secs) {
        char full[40];
        zt_clock_iso8601((double)secs, full, sizeof full);
        /* "YYYY-MM-DDTHH:MM:SS.000000": keep up to the dot */
        char *dot = strchr(full, '.');
        if (dot)
            *dot = '\0';
        snprintf(self->date_prefix, sizeof self->date_prefix, "%s", full);
        self->date_secs = secs;
    }
    size_t n = strlen(self->date_prefix);
    if (size < n + 8)
        return;
    memcpy(out, self->date_prefix, n);
    out[n] = '.';
    for (int i = 6; i >= 1; i--) {
        out[n + (size_t)i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    out[n + 7] = '\0';
}

/* Frees the dropped entries at the head of the queue, so that finding the
 * oldest live entry stays O(1) however many were dropped. */
static void trim_head(zt_backend_t *self) {
    while (self->q_head && self->q_head->dropped) {
        entry_t *e = self->q_head;
        self->q_head = e->next;
        if (!self->q_head)
            self->q_tail = NULL;
        entry_free(e);
    }
}

/* Drops queued entry e (not yet sent) to make room; tells the caller when it
 * was a state it may be waiting for (a RETRY or a result). */
static void drop_entry(zt_backend_t *self, entry_t *e) {
    e->dropped = true;
    spare_remove(self, e);
    if (!e->final && zhashx_lookup(self->nonfinal, e->id) == e)
        zhashx_delete(self->nonfinal, e->id);
    self->queued--;
    if (e->result) {
        self->lost++;
        self->lost_outage++;
    }
    if (e->final && self->lost_fn)
        self->lost_fn(e->id, e->status, self->lost_arg);
}

/* Keeps queued + in flight within the limit: drops the oldest spare entry
 * (STARTED, PROGRESS, RETRY), else the oldest queued result. keep (the entry
 * just queued, or NULL) is never dropped, nor is anything in flight. */
static void enforce_limit(zt_backend_t *self, const entry_t *keep) {
    while (self->limit > 0 && self->queued + self->inflight > self->limit) {
        entry_t *victim = self->spare_head;
        if (victim && victim == keep)
            victim = victim->spare_next;
        if (!victim) {
            trim_head(self);
            victim = self->q_head;
            /* with no spare entry left (but keep), every live entry is a result */
            while (victim && (victim->dropped || victim == keep || !victim->result))
                victim = victim->next;
        }
        if (!victim)
            return;
        drop_entry(self, victim);
    }
}

void zt_backend_set_limit(zt_backend_t *self, int max_states, zt_backend_lost_fn *fn, void *arg) {
    self->limit = max_states > 0 ? max_states : 0;
    self->lost_fn = fn;
    self->lost_arg = arg;
    enforce_limit(self, NULL);
}

int64_t zt_backend_lost(const zt_backend_t *self) {
    return self->lost;
}

bool zt_backend_connected(const zt_backend_t *self) {
    return self->ctx != NULL;
}

int zt_backend_queue_state(zt_backend_t *self, const char *id, const char *status,
                           const json_t *result, const char *traceback, int64_t ttl_s) {
    return zt_backend_queue_state_ext(self, id, status, result, traceback, ttl_s, NULL);
}

/* True for the keys of the meta itself, which extended fields must not replace. */
static bool meta_key(const char *key) {
    static const char *const keys[] = {"status",   "result",    "traceback",
                                       "children", "date_done", "task_id"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

int zt_backend_queue_state_ext(zt_backend_t *self, const char *id, const char *status,
                               const json_t *result, const char *traceback, int64_t ttl_s,
                               const json_t *extended) {
    if (!id || !*id || strlen(id) > 256 || !valid_status(status) || ttl_s <= 0)
        return ZT_ERR_INVALID;
    bool final = strcmp(status, "STARTED") != 0 && strcmp(status, "PROGRESS") != 0;
    /* Celery's meta, in Celery's key order. */
    json_t *meta = json_object();
    json_object_set_new(meta, "status", json_string(status));
    json_object_set(meta, "result", result ? (json_t *)result : json_null());
    json_t *tb = traceback ? json_string(traceback) : json_null();
    json_object_set_new(meta, "traceback", tb ? tb : json_null());
    json_object_set_new(meta, "children", json_array());
    if (zt_backend_state_is_final(status)) {
        char date[40];
        date_now(self, date, sizeof date);
        json_object_set_new(meta, "date_done", json_string(date));
    } else {
        json_object_set_new(meta, "date_done", json_null());
    }
    if (json_is_object(extended)) {
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)extended, key, value) {
            if (!meta_key(key))
                json_object_set(meta, key, value);
        }
    }
    json_object_set_new(meta, "task_id", json_string(id));
    char *text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    if (!text)
        return ZT_ERR_INVALID; /* a result jansson cannot encode (NaN and the like) */
    size_t text_len = strlen(text);

    /* A result: SETEX key ttl meta, then PUBLISH key meta, as RESP arrays.
     * Any other state: EVAL of the guard script, key, ttl, meta. */
    bool result_state = zt_backend_state_is_final(status);
    size_t id_len = strlen(id);
    size_t key_len = sizeof KEY_PREFIX - 1 + id_len;
    char ttl[24];
    int ttl_len = snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_s);
    buf_t b = {NULL, 0, 0};
    b.cap = 2 * text_len + 2 * key_len + sizeof GUARD_SCRIPT + 128;
    b.data = zt_malloc(b.cap);
    if (result_state) {
        BUF_ADD_LIT(&b, "*4\r\n$5\r\nSETEX\r\n$");
        buf_add_uint(&b, key_len);
        BUF_ADD_LIT(&b, "\r\n" KEY_PREFIX);
        buf_add(&b, id, id_len);
        buf_add(&b, "\r\n", 2);
        buf_add_bulk(&b, ttl, (size_t)ttl_len);
        buf_add_bulk(&b, text, text_len);
        BUF_ADD_LIT(&b, "*3\r\n$7\r\nPUBLISH\r\n$");
        buf_add_uint(&b, key_len);
        BUF_ADD_LIT(&b, "\r\n" KEY_PREFIX);
        buf_add(&b, id, id_len);
        buf_add(&b, "\r\n", 2);
        buf_add_bulk(&b, text, text_len);
    } else {
        BUF_ADD_LIT(&b, "*6\r\n$4\r\nEVAL\r\n");
        buf_add_bulk(&b, GUARD_SCRIPT, sizeof GUARD_SCRIPT - 1);
        BUF_ADD_LIT(&b, "$1\r\n1\r\n$");
        buf_add_uint(&b, key_len);
        BUF_ADD_LIT(&b, "\r\n" KEY_PREFIX);
        buf_add(&b, id, id_len);
        buf_add(&b, "\r\n", 2);
        buf_add_bulk(&b, ttl, (size_t)ttl_len);
        buf_add_bulk(&b, text, text_len);
    }
    free(text);

    entry_t *e = zt_calloc(1, sizeof *e);
    e->id = zt_strndup(id, id_len);
    e->cmd = b.data;
    e->len = b.len;
    e->replies = result_state ? 2 : 1;
    e->final = final;
    e->result = zt_backend_state_is_final(status);
    e->progress = strcmp(status, "PROGRESS") == 0;
    snprintf(e->status, sizeof e->status, "%s", status);

    /* A later state supersedes a queued STARTED of the same task, and a newer
     * PROGRESS an older one. The last PROGRESS before a final state is still
     * sent: waiters subscribed to the channel are promised the last update. */
    entry_t *old = zhashx_lookup(self->nonfinal, id);
    if (old) {
        if (!(old->progress && final)) {
            old->dropped = true;
            spare_remove(self, old);
            self->queued--;
        }
        zhashx_delete(self->nonfinal, id);
    }
    if (!final)
        zhashx_insert(self->nonfinal, id, e);
    if (!e->result)
        spare_append(self, e);
    if (self->q_tail)
        self->q_tail->next = e;
    else
        self->q_head = e;
    self->q_tail = e;
    self->queued++;
    enforce_limit(self, e);
    return 0;
}

int zt_backend_pending(const zt_backend_t *self) {
    return self->queued + self->inflight;
}

uint64_t zt_backend_next_batch(const zt_backend_t *self) {
    return self->next_batch;
}

uint64_t zt_backend_acked(const zt_backend_t *self) {
    return self->acked;
}

int zt_backend_fd(const zt_backend_t *self) {
    return self->ctx && self->b_head ? self->ctx->fd : -1;
}

bool zt_backend_waiting(const zt_backend_t *self) {
    return self->b_head != NULL;
}

int64_t zt_backend_retry_ms(const zt_backend_t *self) {
    return self->ctx ? 0 : self->retry_at_ms;
}

/* With nothing in flight, the batch numbers of an empty queue are confirmed
 * at once, so callers waiting on them are released. */
static void ack_if_idle(zt_backend_t *self) {
    if (!self->b_head && self->queued == 0) {
        free_entries(self->q_head); /* only dropped entries can be left */
        self->q_head = self->q_tail = NULL;
        self->acked = self->next_batch - 1;
    }
}

int zt_backend_send(zt_backend_t *self) {
    if (self->b_head && zt_clock_mono_ms() - self->b_head->sent_ms > REPLY_TIMEOUT_MS) {
        char why[80];
        snprintf(why, sizeof why, "no reply for %d ms", REPLY_TIMEOUT_MS);
        connection_lost(self, why);
        return ZT_ERR_BACKEND;
    }
    if (self->queued == 0) {
        ack_if_idle(self);
        return 0;
    }
    if (!self->ctx) {
        if (zt_clock_mono_ms() < self->retry_at_ms)
            return ZT_ERR_BACKEND;
        if (ensure_writer(self, false, LOOP_CONNECT_MS) != 0) {
            connection_lost(self, self->last_error);
            return ZT_ERR_BACKEND;
        }
        /* "back" is said once Redis confirms a write (take_replies): a
         * server still loading its data accepts connections and refuses
         * writes. */
    }
    batch_t *b = zt_calloc(1, sizeof *b);
    b->number = self->next_batch++;
    b->sent_ms = zt_clock_mono_ms();
    entry_t *tail = NULL;
    entry_t *e = self->q_head;
    while (e) {
        entry_t *next = e->next;
        if (e->dropped) {
            entry_free(e);
        } else {
            e->next = NULL;
            spare_remove(self, e);
            if (!e->final && zhashx_lookup(self->nonfinal, e->id) == e)
                zhashx_delete(self->nonfinal, e->id);
            if (redisAppendFormattedCommand(self->ctx, e->cmd, e->len) != REDIS_OK)
                ZT_ASSERT(!"hiredis refused to buffer a command"); /* only on OOM */
            if (tail)
                tail->next = e;
            else
                b->entries = e;
            tail = e;
            b->n_entries++;
            b->replies_left += e->replies;
        }
        e = next;
    }
    self->q_head = self->q_tail = NULL;
    b->cur = b->entries;
    b->cur_left = b->entries ? b->entries->replies : 0;
    self->inflight += b->n_entries;
    self->queued = 0;
    if (self->b_tail)
        self->b_tail->next = b;
    else
        self->b_head = b;
    self->b_tail = b;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(self->ctx, &done) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof why, "write failed: %s", self->ctx->errstr);
            connection_lost(self, why);
            return ZT_ERR_BACKEND;
        }
    }
    return 0;
}

/* Consumes the replies hiredis has already parsed. */
static int take_replies(zt_backend_t *self) {
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(self->ctx, &reply) != REDIS_OK) {
            connection_lost(self, "unreadable reply");
            return ZT_ERR_BACKEND;
        }
        if (!reply)
            return 0;
        redisReply *r = reply;
        batch_t *b = self->b_head;
        if (!b) {
            freeReplyObject(r);
            connection_lost(self, "reply nobody asked for");
            return ZT_ERR_BACKEND;
        }
        entry_t *e = b->cur;
        if (r->type == REDIS_REPLY_ERROR && e && e->result) {
            /* LOADING, MISCONF, OOM, READONLY...: not written. Keep the
             * states and try again after the backoff, as for a lost
             * connection, rather than count them as confirmed. */
            char why[200];
            snprintf(why, sizeof why, "write refused: %.150s", r->str);
            freeReplyObject(r);
            connection_lost(self, why);
            return ZT_ERR_BACKEND;
        }
        if (r->type == REDIS_REPLY_ERROR && !self->warned_state) {
            /* a STARTED/PROGRESS/RETRY (EVAL) refused: those are worth no
             * stall of the results behind them; skipped */
            zt_warn("redis refused a state write (%.150s); states other than results are "
                    "skipped while it does",
                    r->str);
            self->warned_state = true;
        }
        freeReplyObject(r);
        if (e && --b->cur_left == 0) {
            b->cur = e->next;
            b->cur_left = b->cur ? b->cur->replies : 0;
        }
        if (--b->replies_left == 0) {
            if (self->warned_down) {
                char buf[300];
                if (self->lost_outage > 0)
                    zt_warn("redis at %s is back: %d held states written; %lld results were lost "
                            "(more than %d states to hold)",
                            where(self, buf, sizeof buf), b->n_entries,
                            (long long)self->lost_outage, self->limit);
                else
                    zt_info("redis at %s is back: %d held states written",
                            where(self, buf, sizeof buf), b->n_entries);
                self->warned_down = false;
                self->lost_outage = 0;
            }
            self->retry_ivl_ms = 0;
            self->acked = b->number;
            self->inflight -= b->n_entries;
            self->b_head = b->next;
            if (!self->b_head)
                self->b_tail = NULL;
            free_entries(b->entries);
            free(b);
        }
    }
}

int zt_backend_recv(zt_backend_t *self) {
    if (!self->ctx || !self->b_head) {
        ack_if_idle(self);
        return 0;
    }
    struct pollfd pfd = {self->ctx->fd, POLLIN, 0};
    int n = poll(&pfd, 1, 0);
    if (n > 0) {
        if (redisBufferRead(self->ctx) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof why, "read failed: %s", self->ctx->errstr);
            connection_lost(self, why);
            return ZT_ERR_BACKEND;
        }
    }
    int rc = take_replies(self);
    if (rc == 0)
        ack_if_idle(self);
    return rc;
}

/* Waits until every sent batch is confirmed. */
static int drain(zt_backend_t *self) {
    int64_t deadline = zt_clock_mono_ms() + IO_TIMEOUT_MS;
    while (self->b_head) {
        int64_t left = deadline - zt_clock_mono_ms();
        if (left <= 0) {
            connection_lost(self, "no reply within the time limit");
            return ZT_ERR_BACKEND;
        }
        struct pollfd pfd = {self->ctx->fd, POLLIN, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno != EINTR) {
            connection_lost(self, "poll failed");
            return ZT_ERR_BACKEND;
        }
        if (n > 0 && redisBufferRead(self->ctx) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof why, "read failed: %s", self->ctx->errstr);
            connection_lost(self, why);
            return ZT_ERR_BACKEND;
        }
        if (take_replies(self) != 0)
            return ZT_ERR_BACKEND;
    }
    return 0;
}

int zt_backend_flush(zt_backend_t *self) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1)
            self->retry_at_ms = 0; /* "reconnects once": now, not after the backoff */
        if (self->b_head && drain(self) != 0)
            continue;
        if (zt_backend_send(self) != 0)
            continue;
        if (drain(self) != 0)
            continue;
        ack_if_idle(self);
        return 0;
    }
    return ZT_ERR_BACKEND;
}

/* ------------------------------------------------------------------------ */
/* Reading */

static json_t *parse_meta(const char *text, size_t len) {
    json_error_t jerr;
    json_t *meta = json_loadb(text, len, 0, &jerr);
    if (!meta || !json_is_object(meta)) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}

int zt_backend_get(zt_backend_t *self, const char *id, json_t **meta) {
    *meta = NULL;
    if (!id || strlen(id) > 256)
        return ZT_ERR_INVALID;
    if (self->b_head || self->queued) {
        if (zt_backend_flush(self) != 0)
            return ZT_ERR_BACKEND;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure_writer(self, true, CONNECT_TIMEOUT_MS) != 0)
            return ZT_ERR_BACKEND;
        char key[sizeof KEY_PREFIX + 256];
        snprintf(key, sizeof key, "%s%s", KEY_PREFIX, id);
        redisReply *r = redisCommand(self->ctx, "GET %s", key);
        if (!r) {
            redisFree(self->ctx);
            self->ctx = NULL;
            continue;
        }
        int rc;
        if (r->type == REDIS_REPLY_NIL) {
            rc = ZT_ERR_NOT_FOUND;
        } else if (r->type == REDIS_REPLY_STRING) {
            *meta = parse_meta(r->str, r->len);
            rc = *meta ? 0 : ZT_ERR_BACKEND;
            if (!*meta)
                zt_warn("result of %s in redis is not a JSON object", id);
        } else {
            zt_warn("redis GET %s: unexpected reply type %d", key, r->type);
            rc = ZT_ERR_BACKEND;
        }
        freeReplyObject(r);
        return rc;
    }
    return ZT_ERR_BACKEND;
}

/* Reads one reply from a subscriber connection c within deadline. Returns
 * 0 with *reply (caller frees), ZT_ERR_TIMEOUT, or ZT_ERR_BACKEND. */
static int sub_read(redisContext *c, int64_t deadline, redisReply **reply) {
    *reply = NULL;
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(c, &r) != REDIS_OK)
            return ZT_ERR_BACKEND;
        if (r) {
            *reply = r;
            return 0;
        }
        int64_t left = deadline - zt_clock_mono_ms();
        if (left <= 0)
            return ZT_ERR_TIMEOUT;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno != EINTR)
            return ZT_ERR_BACKEND;
        if (n > 0 && redisBufferRead(c) != REDIS_OK)
            return ZT_ERR_BACKEND;
    }
}

/* Writes what hiredis has buffered for c, blocking (bounded by the
 * context's I/O timeout). Returns 0 or ZT_ERR_BACKEND. */
static int sub_write(redisContext *c) {
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return ZT_ERR_BACKEND;
    return 0;
}

static bool reply_kind(const redisReply *r, const char *kind) {
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, kind) == 0;
}

static void sub_close(zt_backend_t *self) {
    if (self->sub) {
        redisFree(self->sub);
        self->sub = NULL;
    }
}

static bool meta_is_final(const json_t *meta) {
    return zt_backend_state_is_final(json_string_value(json_object_get(meta, "status")));
}

int zt_backend_wait(zt_backend_t *self, const char *id, int timeout_ms, json_t **meta) {
    *meta = NULL;
    if (!id || strlen(id) > 256)
        return ZT_ERR_INVALID;
    int64_t deadline = zt_clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    char key[sizeof KEY_PREFIX + 256];
    snprintf(key, sizeof key, "%s%s", KEY_PREFIX, id);
    if (!self->sub) {
        self->sub = open_context(self, false, true, CONNECT_TIMEOUT_MS);
        if (!self->sub)
            return ZT_ERR_BACKEND;
    }
    /* Subscribe first, then GET: a state written in between is seen by one of the two. */
    const char *argv[2] = {"SUBSCRIBE", key};
    if (redisAppendCommandArgv(self->sub, 2, argv, NULL) != REDIS_OK || sub_write(self->sub) != 0) {
        sub_close(self);
        return ZT_ERR_BACKEND;
    }
    int rc;
    redisReply *r = NULL;
    /* The confirmation. */
    rc = sub_read(self->sub, zt_clock_mono_ms() + IO_TIMEOUT_MS, &r);
    if (rc != 0 || !reply_kind(r, "subscribe")) {
        if (r)
            freeReplyObject(r);
        sub_close(self);
        return ZT_ERR_BACKEND;
    }
    freeReplyObject(r);
    json_t *latest = NULL;
    rc = zt_backend_get(self, id, &latest);
    if (rc == ZT_ERR_NOT_FOUND) {
        rc = 0;
    } else if (rc != 0) {
        sub_close(self);
        return rc;
    }
    while (!(latest && meta_is_final(latest))) {
        rc = sub_read(self->sub, deadline, &r);
        if (rc != 0)
            break;
        if (reply_kind(r, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
            json_t *m = parse_meta(r->element[2]->str, r->element[2]->len);
            if (m) {
                json_decref(latest);
                latest = m;
            }
        }
        freeReplyObject(r);
    }
    if (rc == ZT_ERR_BACKEND) {
        sub_close(self);
        *meta = latest;
        return ZT_ERR_BACKEND;
    }
    /* Leave the connection reusable: unsubscribe and read up to the confirmation. */
    const char *uargv[2] = {"UNSUBSCRIBE", key};
    if (redisAppendCommandArgv(self->sub, 2, uargv, NULL) != REDIS_OK ||
        sub_write(self->sub) != 0) {
        sub_close(self);
    } else {
        int64_t udeadline = zt_clock_mono_ms() + IO_TIMEOUT_MS;
        while (self->sub) {
            if (sub_read(self->sub, udeadline, &r) != 0) {
                sub_close(self);
                break;
            }
            bool last = reply_kind(r, "unsubscribe");
            freeReplyObject(r);
            if (last)
                break;
        }
    }
    *meta = latest;
    if (latest && meta_is_final(latest))
        return 0;
    return ZT_ERR_TIMEOUT;
}

/* ------------------------------------------------------------------------ */
/* Streaming subscriber */

/* Logs why the stream failed and closes it (subscriber_fd is -1 after). */
static void meta_sub_fail(zt_backend_t *self, const char *what, const char *why) {
    char buf[300];
    zt_warn("redis at %s: %s %s*: %s", where(self, buf, sizeof buf), what, KEY_PREFIX, why);
    redisFree(self->meta_sub);
    self->meta_sub = NULL;
}

int zt_backend_subscribe_meta(zt_backend_t *self, int timeout_ms) {
    if (self->meta_sub)
        return 0;
    if (timeout_ms <= 0)
        timeout_ms = CONNECT_TIMEOUT_MS;
    /* No SELECT: channels are server-wide, whatever db the writers use. */
    self->meta_sub = open_context(self, false, true, timeout_ms);
    if (!self->meta_sub)
        return ZT_ERR_BACKEND;
    const char *argv[2] = {"PSUBSCRIBE", KEY_PREFIX "*"};
    if (redisAppendCommandArgv(self->meta_sub, 2, argv, NULL) != REDIS_OK ||
        sub_write(self->meta_sub) != 0) {
        meta_sub_fail(self, "cannot subscribe to",
                      self->meta_sub->errstr[0] ? self->meta_sub->errstr : "write failed");
        return ZT_ERR_BACKEND;
    }
    /* Once Redis has confirmed, every later PUBLISH on a matching channel
     * reaches this connection. */
    redisReply *r = NULL;
    int rc = sub_read(self->meta_sub, zt_clock_mono_ms() + timeout_ms, &r);
    if (rc != 0 || !reply_kind(r, "psubscribe")) {
        char why[200];
        if (rc == ZT_ERR_TIMEOUT)
            snprintf(why, sizeof why, "no confirmation within %d ms", timeout_ms);
        else if (r && r->type == REDIS_REPLY_ERROR)
            snprintf(why, sizeof why, "PSUBSCRIBE refused: %.150s", r->str);
        else if (r)
            snprintf(why, sizeof why, "unexpected reply to PSUBSCRIBE (type %d)", r->type);
        else
            snprintf(why, sizeof why, "%.150s",
                     self->meta_sub->errstr[0] ? self->meta_sub->errstr : "read failed");
        if (r)
            freeReplyObject(r);
        meta_sub_fail(self, "cannot subscribe to", why);
        return ZT_ERR_BACKEND;
    }
    freeReplyObject(r);
    return 0;
}

int zt_backend_subscriber_fd(const zt_backend_t *self) {
    return self->meta_sub ? self->meta_sub->fd : -1;
}

/* One reply of the subscription: ["pmessage", pattern, channel, payload].
 * Returns 1 when fn was called, 0 for anything else (nothing else is
 * expected, but nothing else is worth failing the stream for either). */
static int meta_message(const redisReply *r, zt_backend_meta_fn *fn, void *arg) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "pmessage") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[3]->type != REDIS_REPLY_STRING)
        return 0;
    const redisReply *channel = r->element[2];
    const redisReply *payload = r->element[3];
    const size_t prefix_len = sizeof KEY_PREFIX - 1;
    if ((size_t)channel->len <= prefix_len || memcmp(channel->str, KEY_PREFIX, prefix_len) != 0)
        return 0;
    fn(channel->str + prefix_len, (size_t)channel->len - prefix_len, payload->str,
       (size_t)payload->len, arg);
    return 1;
}

/* Hands every reply the reader holds to fn. Returns the number of calls,
 * or ZT_ERR_BACKEND (subscription closed). */
static int meta_take(zt_backend_t *self, zt_backend_meta_fn *fn, void *arg) {
    int count = 0;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(self->meta_sub, &reply) != REDIS_OK) {
            meta_sub_fail(self, "lost the subscription to", "unreadable reply");
            return ZT_ERR_BACKEND;
        }
        if (!reply)
            return count;
        count += meta_message(reply, fn, arg);
        freeReplyObject(reply);
    }
}

int zt_backend_drain_meta(zt_backend_t *self, zt_backend_meta_fn *fn, void *arg) {
    if (!self->meta_sub || !fn)
        return ZT_ERR_INVALID;
    /* Replies already parsed first (those that came with the confirmation). */
    int count = meta_take(self, fn, arg);
    if (count < 0)
        return count;
    /* Then non-blocking reads fed to hiredis's reader by hand: the socket
     * itself is blocking (hiredis's synchronous API), and a poll(2) before
     * each read would double the system calls of the hot path. A short read
     * means the socket was empty a moment ago: stop there. */
    for (int reads = 0; reads < DRAIN_READS_MAX; reads++) {
        char buf[16 * 1024];
        ssize_t n = recv(self->meta_sub->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            char why[200];
            snprintf(why, sizeof why, "%s",
                     n == 0 ? "Redis closed the connection" : strerror(errno));
            meta_sub_fail(self, "lost the subscription to", why);
            return ZT_ERR_BACKEND;
        }
        if (redisReaderFeed(self->meta_sub->reader, buf, (size_t)n) != REDIS_OK) {
            meta_sub_fail(self, "lost the subscription to", "unreadable reply");
            return ZT_ERR_BACKEND;
        }
        int got = meta_take(self, fn, arg);
        if (got < 0)
            return got;
        count += got;
        if ((size_t)n < sizeof buf)
            break;
    }
    return count;
}
