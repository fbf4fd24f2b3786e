/* catalog: see catalog.h. A small query layer (db_run) hides the two
 * backends: SQL is written once with PostgreSQL's $N placeholders, which
 * SQLite reads as ?N after a one-character rewrite; parameters and result
 * cells are typed (text, integer, blob). The sqlite3 and PGconn handles live
 * only here. */
#include "catalog.h"
#include "migrations.h"

#include "zt_error.h"
#include "zt_log.h"

#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef enum { BACKEND_SQLITE, BACKEND_POSTGRES } backend_t;

struct drive2_catalog {
    backend_t backend;
    sqlite3 *db;            /* BACKEND_SQLITE */
    PGconn *pg;             /* BACKEND_POSTGRES */
    char where[ZT_URL_MAX]; /* the database for messages: a path, or the url without password */
};

/* msecs a SQLite writer waits for another process's lock before giving up */
#define SQLITE_BUSY_MS 15000
/* PostgreSQL advisory lock key that serialises migrations ("drv2") */
#define MIGRATION_LOCK_KEY 0x64727632

/* --- errors -------------------------------------------------------------- */

/* A database message on one line (libpq ends them with newlines). */
static void one_line(char *s) {
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
}

/* Copies a postgresql:// url with any password replaced by "***". */
static void redact_url(const char *url, char *out, size_t size) {
    const char *scheme_end = strstr(url, "://");
    const char *user = scheme_end ? scheme_end + 3 : NULL;
    const char *at = user ? strchr(user, '@') : NULL;
    const char *slash = user ? strchr(user, '/') : NULL;
    const char *colon =
        at && (!slash || at < slash) ? memchr(user, ':', (size_t)(at - user)) : NULL;
    if (!colon) {
        snprintf(out, size, "%s", url);
        return;
    }
    snprintf(out, size, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

/* --- time ---------------------------------------------------------------- */

static void format_time(double epoch, char *buf, size_t size) {
    time_t secs = (time_t)floor(epoch);
    long usec = (long)((epoch - (double)secs) * 1e6);
    if (usec < 0)
        usec = 0;
    if (usec > 999999)
        usec = 999999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%06ldZ", date, usec);
}

static double now_epoch(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void drive2_catalog_now(char *buf, size_t size) {
    format_time(now_epoch(), buf, size);
}

/* --- the query layer ----------------------------------------------------- */

typedef enum { P_NULL, P_TEXT, P_INT, P_BLOB } ptype_t;

typedef struct {
    ptype_t type;
    const char *text; /* P_TEXT (NULL becomes SQL NULL) */
    int64_t i;        /* P_INT */
    const void *blob; /* P_BLOB */
    size_t len;
} param_t;

static param_t ptext(const char *s) {
    param_t p = {s ? P_TEXT : P_NULL, s, 0, NULL, 0};
    return p;
}
static param_t pint(int64_t i) {
    param_t p = {P_INT, NULL, i, NULL, 0};
    return p;
}
static param_t pblob(const void *b, size_t len) {
    param_t p = {P_BLOB, NULL, 0, b, len};
    return p;
}

#define MAX_PARAMS 16
#define MAX_COLS 24

typedef struct {
    const char *data; /* NUL-terminated for text cells */
    size_t len;
    bool null;
} cell_t;

/* Called per result row; cells are borrowed for the call. Non-zero stops. */
typedef int(row_fn_t)(void *arg, const cell_t *cells, int ncols);

/* Rewrites $N placeholders as ?N for SQLite (our SQL has no '$' elsewhere). */
static char *sqlite_sql(const char *sql) {
    char *s = zt_strdup(sql);
    for (char *p = s; *p; p++)
        if (*p == '$' && p[1] >= '0' && p[1] <= '9')
            *p = '?';
    return s;
}

static int sqlite_code(int rc) {
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return ZT_ERR_REJECTED;
    case SQLITE_NOMEM:
        return ZT_ERR_NOMEM;
    case SQLITE_TOOBIG:
        return ZT_ERR_TOO_LARGE;
    default:
        return ZT_ERR_IO;
    }
}

static int run_sqlite(drive2_catalog_t *self, const char *sql, const param_t *params, int nparams,
                      unsigned blob_cols, row_fn_t *fn, void *arg, int64_t *changes,
                      const char *what, char *err, size_t err_size) {
    char *text = sqlite_sql(sql);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(self->db, text, -1, &st, NULL);
    free(text);
    if (rc != SQLITE_OK)
        return zt_fail(err, err_size, sqlite_code(rc), "%s: %s", what, sqlite3_errmsg(self->db));
    for (int i = 0; i < nparams && rc == SQLITE_OK; i++) {
        const param_t *p = &params[i];
        switch (p->type) {
        case P_NULL:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        case P_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p->text, -1, SQLITE_TRANSIENT);
            break;
        case P_INT:
            rc = sqlite3_bind_int64(st, i + 1, p->i);
            break;
        case P_BLOB:
            rc = sqlite3_bind_blob64(st, i + 1, p->blob, p->len, SQLITE_TRANSIENT);
            break;
        }
    }
    if (rc != SQLITE_OK) {
        int code =
            zt_fail(err, err_size, sqlite_code(rc), "%s: %s", what, sqlite3_errmsg(self->db));
        sqlite3_finalize(st);
        return code;
    }
    int stopped = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!fn || stopped)
            continue;
        int ncols = sqlite3_column_count(st);
        if (ncols > MAX_COLS)
            ncols = MAX_COLS;
        cell_t cells[MAX_COLS];
        for (int c = 0; c < ncols; c++) {
            if (sqlite3_column_type(st, c) == SQLITE_NULL) {
                cells[c] = (cell_t){"", 0, true};
            } else if (blob_cols & (1u << c)) {
                const void *b = sqlite3_column_blob(st, c);
                cells[c] = (cell_t){b ? b : "", (size_t)sqlite3_column_bytes(st, c), false};
            } else {
                const unsigned char *t = sqlite3_column_text(st, c);
                cells[c] =
                    (cell_t){t ? (const char *)t : "", (size_t)sqlite3_column_bytes(st, c), false};
            }
        }
        stopped = fn(arg, cells, ncols);
    }
    if (rc != SQLITE_DONE) {
        int code =
            zt_fail(err, err_size, sqlite_code(rc), "%s: %s", what, sqlite3_errmsg(self->db));
        sqlite3_finalize(st);
        return code;
    }
    sqlite3_finalize(st);
    if (changes)
        *changes = sqlite3_changes64(self->db);
    return 0;
}

static int pg_code(const PGresult *res) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strncmp(state, "23", 2) == 0) /* integrity constraint violation */
        return ZT_ERR_REJECTED;
    if (state && strcmp(state, "54000") == 0) /* program limit exceeded */
        return ZT_ERR_TOO_LARGE;
    return ZT_ERR_IO;
}

static int run_pg(drive2_catalog_t *self, const char *sql, const param_t *params, int nparams,
                  unsigned blob_cols, row_fn_t *fn, void *arg, int64_t *changes, const char *what,
                  char *err, size_t err_size) {
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
    char ints[MAX_PARAMS][24];
    for (int i = 0; i < nparams; i++) {
        const param_t *p = &params[i];
        lengths[i] = 0;
        formats[i] = 0;
        switch (p->type) {
        case P_NULL:
            values[i] = NULL;
            break;
        case P_TEXT:
            values[i] = p->text;
            break;
        case P_INT:
            snprintf(ints[i], sizeof ints[i], "%lld", (long long)p->i);
            values[i] = ints[i];
            break;
        case P_BLOB:
            if (p->len > INT32_MAX)
                return zt_fail(err, err_size, ZT_ERR_TOO_LARGE, "%s: value too large", what);
            values[i] = p->blob;
            lengths[i] = (int)p->len;
            formats[i] = 1; /* binary: raw bytes, no escaping */
            break;
        }
    }
    if (PQstatus(self->pg) == CONNECTION_BAD)
        PQreset(self->pg); /* the server restarted: one reconnect per call */
    PGresult *res = PQexecParams(self->pg, sql, nparams, NULL, values, lengths, formats, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(self->pg));
        if (!*msg)
            snprintf(msg, sizeof msg, "%s", PQerrorMessage(self->pg));
        one_line(msg);
        int code = pg_code(res);
        PQclear(res);
        return zt_fail(err, err_size, code, "%s: %s", what, msg);
    }
    int rows = PQntuples(res), ncols = PQnfields(res);
    if (ncols > MAX_COLS)
        ncols = MAX_COLS;
    int stopped = 0;
    for (int r = 0; r < rows && fn && !stopped; r++) {
        cell_t cells[MAX_COLS];
        unsigned char *decoded[MAX_COLS] = {NULL};
        for (int c = 0; c < ncols; c++) {
            if (PQgetisnull(res, r, c)) {
                cells[c] = (cell_t){"", 0, true};
            } else if (blob_cols & (1u << c)) {
                size_t n = 0;
                decoded[c] = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, c), &n);
                cells[c] =
                    (cell_t){decoded[c] ? (const char *)decoded[c] : "", decoded[c] ? n : 0, false};
            } else {
                cells[c] = (cell_t){PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c), false};
            }
        }
        stopped = fn(arg, cells, ncols);
        for (int c = 0; c < ncols; c++)
            if (decoded[c])
                PQfreemem(decoded[c]);
    }
    if (changes) {
        const char *n = PQcmdTuples(res);
        *changes = n && *n ? strtoll(n, NULL, 10) : 0;
    }
    PQclear(res);
    return 0;
}

/* Runs one parameterised statement. Rows go to fn (may be NULL); blob_cols
 * marks blob result columns by bit; *changes (may be NULL) gets the rows an
 * INSERT/UPDATE/DELETE touched. what names the operation in errors. */
static int db_run(drive2_catalog_t *self, const char *sql, const param_t *params, int nparams,
                  unsigned blob_cols, row_fn_t *fn, void *arg, int64_t *changes, const char *what,
                  char *err, size_t err_size) {
    ZT_ASSERT(nparams <= MAX_PARAMS);
    if (self->backend == BACKEND_SQLITE)
        return run_sqlite(self, sql, params, nparams, blob_cols, fn, arg, changes, what, err,
                          err_size);
    return run_pg(self, sql, params, nparams, blob_cols, fn, arg, changes, what, err, err_size);
}

/* Runs SQL without parameters, possibly several statements (migrations,
 * BEGIN/COMMIT). */
static int db_exec(drive2_catalog_t *self, const char *sql, const char *what, char *err,
                   size_t err_size) {
    if (self->backend == BACKEND_SQLITE) {
        char *msg = NULL;
        int rc = sqlite3_exec(self->db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            int code = zt_fail(err, err_size, sqlite_code(rc), "%s: %s", what,
                               msg ? msg : sqlite3_errmsg(self->db));
            sqlite3_free(msg);
            return code;
        }
        return 0;
    }
    if (PQstatus(self->pg) == CONNECTION_BAD)
        PQreset(self->pg);
    PGresult *res = PQexec(self->pg, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(self->pg));
        one_line(msg);
        int code = pg_code(res);
        PQclear(res);
        return zt_fail(err, err_size, code, "%s: %s", what, msg);
    }
    PQclear(res);
    return 0;
}

/* A write transaction. SQLite takes the write lock at BEGIN (IMMEDIATE), so
 * two processes never deadlock upgrading read locks. */
static int db_begin(drive2_catalog_t *self, const char *what, char *err, size_t err_size) {
    return db_exec(self, self->backend == BACKEND_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN", what, err,
                   err_size);
}

static int db_commit(drive2_catalog_t *self, const char *what, char *err, size_t err_size) {
    return db_exec(self, "COMMIT", what, err, err_size);
}

static void db_rollback(drive2_catalog_t *self) {
    char ignored[256];
    (void)db_exec(self, "ROLLBACK", "rollback", ignored, sizeof ignored);
}

/* Row readers for the common single-value answers. */
static int row_int(void *arg, const cell_t *cells, int ncols) {
    int64_t *out = arg;
    if (ncols > 0 && !cells[0].null)
        *out = strtoll(cells[0].data, NULL, 10);
    return 1;
}

typedef struct {
    char **ids;
    size_t count, cap;
} id_list_t;

static int row_id(void *arg, const cell_t *cells, int ncols) {
    id_list_t *l = arg;
    if (ncols < 1 || cells[0].null)
        return 0;
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->ids = zt_realloc(l->ids, l->cap * sizeof *l->ids);
    }
    l->ids[l->count++] = zt_strndup(cells[0].data, cells[0].len);
    return 0;
}

void drive2_ids_free(char **ids, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(ids[i]);
    free(ids);
}

/* --- opening and migrations ---------------------------------------------- */

/* mkdir -p for the folder that will hold path (the last component is a file). */
static int make_parent_dirs(const char *path, char *err, size_t err_size) {
    char buf[ZT_URL_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return zt_fail(err, err_size, ZT_ERR_IO, "catalog: cannot create folder %s: %s", buf,
                           strerror(errno));
        *p = '/';
    }
    return 0;
}

static int open_sqlite(drive2_catalog_t *self, const char *path, char *err, size_t err_size) {
    snprintf(self->where, sizeof self->where, "%s", path);
    int rc = make_parent_dirs(path, err, err_size);
    if (rc != 0)
        return rc;
    if (sqlite3_open_v2(path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return zt_fail(err, err_size, ZT_ERR_IO, "catalog: cannot open SQLite database %s: %s",
                       path, self->db ? sqlite3_errmsg(self->db) : "out of memory");
    sqlite3_busy_timeout(self->db, SQLITE_BUSY_MS);
    /* WAL: readers (drive2 status) never block the workers' writes; NORMAL
     * sync is WAL's documented safe setting (a power cut may lose the last
     * commits, never corrupt the file). */
    char what[ZT_URL_MAX + 64];
    snprintf(what, sizeof what, "catalog: cannot set up SQLite database %s", path);
    rc = db_exec(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
                 what, err, err_size);
    return rc;
}

static int open_pg(drive2_catalog_t *self, const char *url, char *err, size_t err_size) {
    redact_url(url, self->where, sizeof self->where);
    self->pg = PQconnectdb(url);
    if (!self->pg)
        return zt_fail(err, err_size, ZT_ERR_NOMEM, "catalog: out of memory connecting to %s",
                       self->where);
    if (PQstatus(self->pg) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(self->pg));
        one_line(msg);
        return zt_fail(err, err_size, ZT_ERR_IO, "catalog: cannot connect to PostgreSQL %s: %s",
                       self->where, msg);
    }
    /* Our own messages say enough; keep NOTICEs ("relation already exists,
     * skipping") off stderr. */
    return db_exec(self, "SET client_min_messages = warning", "catalog: session setup", err,
                   err_size);
}

/* The migration text for this backend: {{BLOB}} -> BLOB | BYTEA. */
static char *dialect_sql(const drive2_catalog_t *self, const char *sql) {
    const char *token = "{{BLOB}}";
    const char *type = self->backend == BACKEND_SQLITE ? "BLOB" : "BYTEA";
    size_t tlen = strlen(token), ylen = strlen(type), count = 0;
    for (const char *p = strstr(sql, token); p; p = strstr(p + tlen, token))
        count++;
    char *out = zt_malloc(strlen(sql) + count * ylen + 1);
    char *w = out;
    const char *r = sql;
    for (const char *p = strstr(r, token); p; p = strstr(r, token)) {
        memcpy(w, r, (size_t)(p - r));
        w += p - r;
        memcpy(w, type, ylen);
        w += ylen;
        r = p + tlen;
    }
    strcpy(w, r);
    return out;
}

static int current_version(drive2_catalog_t *self, int64_t *version, char *err, size_t err_size) {
    *version = 0;
    return db_run(self, "SELECT MAX(version) FROM schema_migrations", NULL, 0, 0, row_int, version,
                  NULL, "catalog: cannot read schema_migrations", err, err_size);
}

static int migrate(drive2_catalog_t *self, char *err, size_t err_size) {
    int64_t latest = drive2_migrations[drive2_migration_count - 1].version;
    int64_t version = 0;
    char ignored[256];
    /* Fast path, no write lock: every worker child opens the catalog per task. */
    if (current_version(self, &version, ignored, sizeof ignored) == 0 && version >= latest) {
        if (version > latest)
            zt_warn("catalog %s has schema version %lld, newer than this program's %lld",
                    self->where, (long long)version, (long long)latest);
        return 0;
    }
    int rc = db_begin(self, "catalog: cannot start the migration", err, err_size);
    if (rc != 0)
        return rc;
    if (self->backend == BACKEND_POSTGRES) {
        char lock[96];
        snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", MIGRATION_LOCK_KEY);
        rc = db_exec(self, lock, "catalog: cannot lock for the migration", err, err_size);
    }
    if (rc == 0)
        rc = db_exec(self,
                     "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at TEXT NOT NULL)",
                     "catalog: cannot create schema_migrations", err, err_size);
    if (rc == 0)
        rc = current_version(self, &version, err, err_size);
    for (size_t i = 0; rc == 0 && i < drive2_migration_count; i++) {
        const drive2_migration_t *m = &drive2_migrations[i];
        if (m->version <= version)
            continue;
        char what[160];
        snprintf(what, sizeof what, "catalog: migration %s failed", m->name);
        char *sql = dialect_sql(self, m->sql);
        rc = db_exec(self, sql, what, err, err_size);
        free(sql);
        if (rc != 0)
            break;
        char now[32];
        drive2_catalog_now(now, sizeof now);
        param_t p[] = {pint(m->version), ptext(m->name), ptext(now)};
        rc = db_run(self,
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    p, 3, 0, NULL, NULL, NULL, what, err, err_size);
        if (rc == 0)
            zt_info("catalog %s: applied migration %s", self->where, m->name);
    }
    if (rc == 0)
        rc = db_commit(self, "catalog: cannot commit the migration", err, err_size);
    if (rc != 0)
        db_rollback(self);
    return rc;
}

drive2_catalog_t *drive2_catalog_new(const zt_config_t *config, char *err, size_t err_size) {
    drive2_catalog_t *self = zt_calloc(1, sizeof *self);
    const char *url = config->database_url;
    int rc;
    if (!*url) {
        char path[ZT_URL_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/catalog.db", config->drive2_data_dir) >=
            sizeof path) {
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "catalog: drive2_data_dir is too long");
            goto failed;
        }
        self->backend = BACKEND_SQLITE;
        rc = open_sqlite(self, path, err, err_size);
    } else if (strncmp(url, "sqlite:///", 10) == 0 && url[10]) {
        /* SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute.db */
        self->backend = BACKEND_SQLITE;
        rc = open_sqlite(self, url + 10, err, err_size);
    } else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        self->backend = BACKEND_POSTGRES;
        rc = open_pg(self, url, err, err_size);
    } else {
        char shown[ZT_URL_MAX];
        redact_url(url, shown, sizeof shown);
        rc = zt_fail(err, err_size, ZT_ERR_INVALID,
                     "catalog: database_url '%s' is not sqlite:///PATH or postgresql://...", shown);
    }
    if (rc == 0)
        rc = migrate(self, err, err_size);
    if (rc == 0)
        return self;
failed:
    drive2_catalog_destroy(&self);
    return NULL;
}

void drive2_catalog_destroy(drive2_catalog_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_catalog_t *self = *self_p;
    if (self->db)
        sqlite3_close_v2(self->db);
    if (self->pg)
        PQfinish(self->pg);
    free(self);
    *self_p = NULL;
}

const char *drive2_catalog_backend(const drive2_catalog_t *self) {
    return self->backend == BACKEND_SQLITE ? "sqlite" : "postgresql";
}

int drive2_catalog_schema_version(drive2_catalog_t *self, int *version, char *err,
                                  size_t err_size) {
    int64_t v = 0;
    int rc = current_version(self, &v, err, err_size);
    *version = (int)v;
    return rc;
}

/* --- users ---------------------------------------------------------------- */

static char *cell_dup(const cell_t *c) {
    return c->null ? NULL : zt_strndup(c->data, c->len);
}

static int64_t cell_int(const cell_t *c) {
    return c->null ? 0 : strtoll(c->data, NULL, 10);
}

void drive2_user_clear(drive2_user_t *u) {
    free(u->id);
    free(u->line_user_id);
    free(u->created_at);
    memset(u, 0, sizeof *u);
}

int drive2_catalog_put_user(drive2_catalog_t *self, const char *user_id, int64_t quota_bytes,
                            const char *line_user_id, char *err, size_t err_size) {
    if (!user_id || !*user_id)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "catalog: empty user id");
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(user_id), pint(quota_bytes < 0 ? DRIVE2_DEFAULT_QUOTA_BYTES : quota_bytes),
                   ptext(line_user_id), ptext(now)};
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot store user %.64s", user_id);
    return db_run(self,
                  "INSERT INTO users (id, quota_bytes, line_user_id, created_at) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET "
                  "quota_bytes = excluded.quota_bytes, line_user_id = excluded.line_user_id",
                  p, 4, 0, NULL, NULL, NULL, what, err, err_size);
}

static int row_user(void *arg, const cell_t *c, int ncols) {
    drive2_user_t *u = arg;
    if (ncols < 4)
        return 1;
    u->id = cell_dup(&c[0]);
    u->quota_bytes = cell_int(&c[1]);
    u->line_user_id = cell_dup(&c[2]);
    u->created_at = cell_dup(&c[3]);
    return 1;
}

int drive2_catalog_get_user(drive2_catalog_t *self, const char *user_id, drive2_user_t *out,
                            char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    param_t p[] = {ptext(user_id)};
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot read user %.64s", user_id);
    int rc =
        db_run(self, "SELECT id, quota_bytes, line_user_id, created_at FROM users WHERE id = $1", p,
               1, 0, row_user, out, NULL, what, err, err_size);
    if (rc == 0 && !out->id)
        return zt_fail(err, err_size, ZT_ERR_NOT_FOUND, "catalog: no user %.64s", user_id);
    return rc;
}

int drive2_catalog_user_usage(drive2_catalog_t *self, const char *user_id, int64_t *used,
                              int64_t *quota, char *err, size_t err_size) {
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot read the usage of user %.64s", user_id);
    param_t p[] = {ptext(user_id)};
    *used = 0;
    *quota = -1;
    int rc = db_run(self, "SELECT COALESCE(SUM(size), 0) FROM files WHERE owner = $1", p, 1, 0,
                    row_int, used, NULL, what, err, err_size);
    if (rc == 0)
        rc = db_run(self, "SELECT quota_bytes FROM users WHERE id = $1", p, 1, 0, row_int, quota,
                    NULL, what, err, err_size);
    if (rc == 0 && *quota < 0)
        *quota = DRIVE2_DEFAULT_QUOTA_BYTES;
    return rc;
}

/* --- files ---------------------------------------------------------------- */

#define FILE_COLUMNS                                                                               \
    "id, owner, original_name, mime_type, size, checksum, storage_key, processing_status, "        \
    "task_id, error, ai_filename, ai_summary, ai_tags, thumbnail_path, uploaded_at, "              \
    "processed_at, processing_started_at, updated_at, attempts"

void drive2_file_clear(drive2_file_t *f) {
    char **strings[] = {&f->id,
                        &f->owner,
                        &f->original_name,
                        &f->mime_type,
                        &f->checksum,
                        &f->storage_key,
                        &f->processing_status,
                        &f->task_id,
                        &f->error,
                        &f->ai_filename,
                        &f->ai_summary,
                        &f->ai_tags,
                        &f->thumbnail_path,
                        &f->uploaded_at,
                        &f->processed_at,
                        &f->processing_started_at,
                        &f->updated_at};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(*strings[i]);
    memset(f, 0, sizeof *f);
}

static int row_file(void *arg, const cell_t *c, int ncols) {
    drive2_file_t *f = arg;
    if (ncols < 19)
        return 1;
    f->id = cell_dup(&c[0]);
    f->owner = cell_dup(&c[1]);
    f->original_name = cell_dup(&c[2]);
    f->mime_type = cell_dup(&c[3]);
    f->size = cell_int(&c[4]);
    f->checksum = cell_dup(&c[5]);
    f->storage_key = cell_dup(&c[6]);
    f->processing_status = cell_dup(&c[7]);
    f->task_id = cell_dup(&c[8]);
    f->error = cell_dup(&c[9]);
    f->ai_filename = cell_dup(&c[10]);
    f->ai_summary = cell_dup(&c[11]);
    f->ai_tags = cell_dup(&c[12]);
    f->thumbnail_path = cell_dup(&c[13]);
    f->uploaded_at = cell_dup(&c[14]);
    f->processed_at = cell_dup(&c[15]);
    f->processing_started_at = cell_dup(&c[16]);
    f->updated_at = cell_dup(&c[17]);
    f->attempts = cell_int(&c[18]);
    return 1;
}

int drive2_catalog_insert_file(drive2_catalog_t *self, const drive2_new_file_t *f, char *err,
                               size_t err_size) {
    if (!f->id || !*f->id || !f->owner || !*f->owner || !f->original_name || !f->mime_type ||
        !f->checksum || !f->storage_key || f->size < 0)
        return zt_fail(err, err_size, ZT_ERR_INVALID,
                       "catalog: a new file needs id, owner, name, "
                       "type, size, checksum and storage key");
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot insert file %.64s", f->id);
    char now[32];
    drive2_catalog_now(now, sizeof now);
    int rc = db_begin(self, what, err, err_size);
    if (rc != 0)
        return rc;
    param_t u[] = {ptext(f->owner), pint(DRIVE2_DEFAULT_QUOTA_BYTES), ptext(now)};
    rc = db_run(self,
                "INSERT INTO users (id, quota_bytes, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (id) DO NOTHING",
                u, 3, 0, NULL, NULL, NULL, what, err, err_size);
    /* Touch the owner's row: PostgreSQL then holds its row lock until commit,
     * so two uploads of one user check the quota one after the other
     * (SQLite's BEGIN IMMEDIATE already serialises all writers). */
    param_t o[] = {ptext(f->owner)};
    if (rc == 0)
        rc = db_run(self, "UPDATE users SET id = id WHERE id = $1", o, 1, 0, NULL, NULL, NULL, what,
                    err, err_size);
    int64_t used = 0, quota = 0, exists = 0;
    param_t i[] = {ptext(f->id)};
    if (rc == 0)
        rc = db_run(self, "SELECT COUNT(*) FROM files WHERE id = $1", i, 1, 0, row_int, &exists,
                    NULL, what, err, err_size);
    if (rc == 0 && exists)
        rc = zt_fail(err, err_size, ZT_ERR_REJECTED, "catalog: file %.64s already exists", f->id);
    if (rc == 0)
        rc = db_run(self, "SELECT COALESCE(SUM(size), 0) FROM files WHERE owner = $1", o, 1, 0,
                    row_int, &used, NULL, what, err, err_size);
    if (rc == 0)
        rc = db_run(self, "SELECT quota_bytes FROM users WHERE id = $1", o, 1, 0, row_int, &quota,
                    NULL, what, err, err_size);
    if (rc == 0 && used + f->size > quota)
        rc = zt_fail(err, err_size, ZT_ERR_TOO_LARGE,
                     "catalog: user %.64s is over quota: %lld + %lld bytes > %lld", f->owner,
                     (long long)used, (long long)f->size, (long long)quota);
    if (rc == 0) {
        param_t p[] = {ptext(f->id),          ptext(f->owner),   ptext(f->original_name),
                       ptext(f->mime_type),   pint(f->size),     ptext(f->checksum),
                       ptext(f->storage_key), ptext(f->task_id), ptext(now)};
        rc = db_run(self,
                    "INSERT INTO files (id, owner, original_name, mime_type, size, checksum, "
                    "storage_key, processing_status, task_id, uploaded_at, updated_at, attempts) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9, 0)",
                    p, 9, 0, NULL, NULL, NULL, what, err, err_size);
    }
    if (rc == 0)
        rc = db_commit(self, what, err, err_size);
    if (rc != 0)
        db_rollback(self);
    return rc;
}

int drive2_catalog_get_file(drive2_catalog_t *self, const char *file_id, drive2_file_t *out,
                            char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot read file %.64s", file_id);
    param_t p[] = {ptext(file_id)};
    int rc = db_run(self, "SELECT " FILE_COLUMNS " FROM files WHERE id = $1", p, 1, 0, row_file,
                    out, NULL, what, err, err_size);
    if (rc == 0 && !out->id)
        return zt_fail(err, err_size, ZT_ERR_NOT_FOUND, "no file %.64s in the catalog", file_id);
    if (rc != 0)
        drive2_file_clear(out);
    return rc;
}

/* After an UPDATE that changed no row: ZT_ERR_NOT_FOUND if the file does not
 * exist, else ZT_ERR_REJECTED naming its status. */
static int explain_no_change(drive2_catalog_t *self, const char *file_id, const char *action,
                             char *err, size_t err_size) {
    drive2_file_t f;
    int rc = drive2_catalog_get_file(self, file_id, &f, err, err_size);
    if (rc != 0)
        return rc;
    rc = zt_fail(err, err_size, ZT_ERR_REJECTED, "file %.64s is %s: cannot %s", file_id,
                 f.processing_status ? f.processing_status : "?", action);
    drive2_file_clear(&f);
    return rc;
}

/* Runs an UPDATE of one file; no row changed is explained as above. */
static int update_file(drive2_catalog_t *self, const char *file_id, const char *sql,
                       const param_t *p, int np, const char *action, char *err, size_t err_size) {
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot %s file %.64s", action, file_id);
    int64_t changed = 0;
    int rc = db_run(self, sql, p, np, 0, NULL, NULL, &changed, what, err, err_size);
    if (rc == 0 && changed == 0)
        return explain_no_change(self, file_id, action, err, err_size);
    return rc;
}

int drive2_catalog_set_task(drive2_catalog_t *self, const char *file_id, const char *task_id,
                            char *err, size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(file_id), ptext(task_id), ptext(now)};
    return update_file(self, file_id,
                       "UPDATE files SET task_id = $2, updated_at = $3 WHERE id = $1", p, 3,
                       "set the task of", err, err_size);
}

int drive2_catalog_start_processing(drive2_catalog_t *self, const char *file_id,
                                    const char *task_id, char *err, size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(file_id), ptext(task_id), ptext(now)};
    return update_file(self, file_id,
                       "UPDATE files SET processing_status = 'processing', task_id = $2, "
                       "processing_started_at = $3, updated_at = $3, attempts = attempts + 1, "
                       "processed_at = NULL WHERE id = $1 AND processing_status IN "
                       "('pending', 'processing', 'failed')",
                       p, 3, "start processing", err, err_size);
}

/* The tags as a JSON array text (malloc'd). */
static char *tags_json(const drive2_analysis_t *a) {
    json_t *arr = json_array();
    for (size_t i = 0; i < a->tag_count; i++)
        if (a->tags[i])
            json_array_append_new(arr, json_string(a->tags[i]));
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s ? s : zt_strdup("[]");
}

/* The AI fields of one file; while_processing: only while it is processing
 * (the pipeline's step 4, which must not touch a file reset meanwhile). */
static int write_ai(drive2_catalog_t *self, const char *file_id, const drive2_analysis_t *a,
                    bool while_processing, const char *what, char *err, size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    char *tags = tags_json(a);
    param_t p[] = {ptext(file_id), ptext(a->filename), ptext(a->summary), ptext(tags), ptext(now)};
    int rc = update_file(self, file_id,
                         while_processing
                             ? "UPDATE files SET ai_filename = $2, ai_summary = $3, ai_tags = $4, "
                               "updated_at = $5 WHERE id = $1 AND processing_status = 'processing'"
                             : "UPDATE files SET ai_filename = $2, ai_summary = $3, ai_tags = $4, "
                               "updated_at = $5 WHERE id = $1",
                         p, 5, what, err, err_size);
    free(tags);
    return rc;
}

int drive2_catalog_save_results(drive2_catalog_t *self, const char *file_id,
                                const drive2_analysis_t *a, char *err, size_t err_size) {
    return write_ai(self, file_id, a, true, "save the results of", err, err_size);
}

int drive2_catalog_update_ai(drive2_catalog_t *self, const char *file_id,
                             const drive2_analysis_t *a, char *err, size_t err_size) {
    return write_ai(self, file_id, a, false, "save the AI results of", err, err_size);
}

int drive2_catalog_complete(drive2_catalog_t *self, const char *file_id, const drive2_analysis_t *a,
                            char *err, size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    char *tags = tags_json(a);
    param_t p[] = {ptext(file_id), ptext(a->filename), ptext(a->summary), ptext(tags), ptext(now)};
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot complete file %.64s", file_id);
    /* One statement is one transaction in both databases; the explicit
     * transaction keeps it so if this ever grows a second statement. */
    int rc = db_begin(self, what, err, err_size);
    if (rc == 0)
        rc = update_file(self, file_id,
                         "UPDATE files SET ai_filename = $2, ai_summary = $3, ai_tags = $4, "
                         "error = NULL, processing_status = 'completed', processed_at = $5, "
                         "updated_at = $5 WHERE id = $1 AND processing_status = 'processing'",
                         p, 5, "complete", err, err_size);
    if (rc == 0)
        rc = db_commit(self, what, err, err_size);
    if (rc != 0)
        db_rollback(self);
    free(tags);
    return rc;
}

int drive2_catalog_note_error(drive2_catalog_t *self, const char *file_id, const char *error,
                              char *err, size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(file_id), ptext(error), ptext(now)};
    return update_file(self, file_id,
                       "UPDATE files SET error = $2, updated_at = $3 WHERE id = $1 AND "
                       "processing_status = 'processing'",
                       p, 3, "note an error on", err, err_size);
}

int drive2_catalog_fail(drive2_catalog_t *self, const char *file_id, const char *error, char *err,
                        size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(file_id), ptext(error ? error : "failed"), ptext(now)};
    return update_file(self, file_id,
                       "UPDATE files SET processing_status = 'failed', error = $2, "
                       "processed_at = $3, updated_at = $3 WHERE id = $1 AND processing_status "
                       "IN ('pending', 'processing')",
                       p, 3, "fail", err, err_size);
}

int drive2_catalog_reset(drive2_catalog_t *self, const char *file_id, bool force, char *err,
                         size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(file_id), ptext(now)};
    const char *sql = force
                          ? "UPDATE files SET processing_status = 'pending', task_id = NULL, "
                            "error = NULL, ai_filename = NULL, ai_summary = NULL, ai_tags = NULL, "
                            "thumbnail_path = NULL, processed_at = NULL, "
                            "processing_started_at = NULL, attempts = 0, updated_at = $2 "
                            "WHERE id = $1"
                          : "UPDATE files SET processing_status = 'pending', task_id = NULL, "
                            "error = NULL, ai_filename = NULL, ai_summary = NULL, ai_tags = NULL, "
                            "thumbnail_path = NULL, processed_at = NULL, "
                            "processing_started_at = NULL, attempts = 0, updated_at = $2 "
                            "WHERE id = $1 AND processing_status = 'failed'";
    return update_file(self, file_id, sql, p, 2, "reprocess (without --force)", err, err_size);
}

int drive2_catalog_set_thumbnail(drive2_catalog_t *self, const char *file_id, const char *path,
                                 char *err, size_t err_size) {
    char now[32];
    drive2_catalog_now(now, sizeof now);
    param_t p[] = {ptext(file_id), ptext(path), ptext(now)};
    return update_file(self, file_id,
                       "UPDATE files SET thumbnail_path = $2, updated_at = $3 WHERE id = $1", p, 3,
                       "set the thumbnail of", err, err_size);
}

int drive2_catalog_list_stuck(drive2_catalog_t *self, double older_than, size_t max, char ***ids,
                              size_t *count, char *err, size_t err_size) {
    char cutoff[32];
    format_time(now_epoch() - older_than, cutoff, sizeof cutoff);
    id_list_t l = {NULL, 0, 0};
    param_t p[] = {ptext(cutoff), pint(max > INT64_MAX ? INT64_MAX : (int64_t)max)};
    int rc = db_run(self,
                    "SELECT id FROM files WHERE processing_status = 'processing' AND "
                    "processing_started_at < $1 ORDER BY processing_started_at LIMIT $2",
                    p, 2, 0, row_id, &l, NULL, "catalog: cannot list stuck files", err, err_size);
    if (rc != 0) {
        drive2_ids_free(l.ids, l.count);
        l.ids = NULL;
        l.count = 0;
    }
    *ids = l.ids;
    *count = l.count;
    return rc;
}

int drive2_catalog_fail_stuck(drive2_catalog_t *self, double older_than, const char *reason,
                              char ***ids, size_t *count, char *err, size_t err_size) {
    char cutoff[32], now[32];
    format_time(now_epoch() - older_than, cutoff, sizeof cutoff);
    drive2_catalog_now(now, sizeof now);
    id_list_t l = {NULL, 0, 0};
    param_t p[] = {ptext(cutoff), ptext(reason ? reason : "stuck in processing"), ptext(now)};
    /* RETURNING (SQLite >= 3.35, PostgreSQL): one atomic statement, so a file
     * that finishes meanwhile is either completed or failed, never both. */
    int rc = db_run(self,
                    "UPDATE files SET processing_status = 'failed', error = $2, processed_at = $3, "
                    "updated_at = $3 WHERE processing_status = 'processing' AND "
                    "processing_started_at < $1 RETURNING id",
                    p, 3, 0, row_id, &l, NULL, "catalog: cannot fail stuck files", err, err_size);
    if (rc != 0 || !ids) {
        drive2_ids_free(l.ids, l.count);
        l.ids = NULL;
        if (rc != 0)
            l.count = 0;
    }
    if (ids)
        *ids = l.ids;
    if (count)
        *count = l.count;
    return rc;
}

int drive2_catalog_delete_file(drive2_catalog_t *self, const char *file_id, char *err,
                               size_t err_size) {
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot delete file %.64s", file_id);
    param_t p[] = {ptext(file_id)};
    int64_t changed = 0;
    int rc = db_begin(self, what, err, err_size);
    if (rc == 0)
        rc = db_run(self, "DELETE FROM embeddings WHERE file_id = $1", p, 1, 0, NULL, NULL, NULL,
                    what, err, err_size);
    if (rc == 0)
        rc = db_run(self, "DELETE FROM files WHERE id = $1", p, 1, 0, NULL, NULL, &changed, what,
                    err, err_size);
    if (rc == 0 && changed == 0)
        rc = zt_fail(err, err_size, ZT_ERR_NOT_FOUND, "no file %.64s in the catalog", file_id);
    if (rc == 0)
        rc = db_commit(self, what, err, err_size);
    if (rc != 0)
        db_rollback(self);
    return rc;
}

/* --- quota alerts and activity -------------------------------------------- */

int drive2_catalog_quota_alert_claim(drive2_catalog_t *self, const char *user_id, int threshold_pct,
                                     bool *claimed, char *err, size_t err_size) {
    *claimed = false;
    if (!user_id || !*user_id || threshold_pct <= 0 || threshold_pct > 1000)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "catalog: bad quota alert (user, 1-1000 %%)");
    char now[32], what[160];
    drive2_catalog_now(now, sizeof now);
    snprintf(what, sizeof what, "catalog: cannot record a quota alert for user %.64s", user_id);
    param_t p[] = {ptext(user_id), pint(threshold_pct), ptext(now)};
    int64_t changed = 0;
    /* the primary key decides: one insert wins, the others change nothing */
    int rc = db_run(self,
                    "INSERT INTO quota_alerts (user_id, threshold_pct, alerted_at) "
                    "VALUES ($1, $2, $3) ON CONFLICT (user_id, threshold_pct) DO NOTHING",
                    p, 3, 0, NULL, NULL, &changed, what, err, err_size);
    if (rc == 0)
        *claimed = changed > 0;
    return rc;
}

int drive2_catalog_quota_alert_release(drive2_catalog_t *self, const char *user_id, int pct_now,
                                       char *err, size_t err_size) {
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot clear the quota alerts of user %.64s", user_id);
    param_t p[] = {ptext(user_id), pint(pct_now)};
    return db_run(self, "DELETE FROM quota_alerts WHERE user_id = $1 AND threshold_pct > $2", p, 2,
                  0, NULL, NULL, NULL, what, err, err_size);
}

typedef struct {
    drive2_activity_t *rows;
    size_t count, cap;
} activity_list_t;

static int row_activity(void *arg, const cell_t *c, int ncols) {
    activity_list_t *l = arg;
    if (ncols < 4)
        return 0;
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->rows = zt_realloc(l->rows, l->cap * sizeof *l->rows);
    }
    drive2_activity_t *a = &l->rows[l->count++];
    a->owner = cell_dup(&c[0]);
    a->status = cell_dup(&c[1]);
    a->files = cell_int(&c[2]);
    a->bytes = cell_int(&c[3]);
    return 0;
}

void drive2_activity_free(drive2_activity_t *rows, size_t count) {
    for (size_t i = 0; i < count; i++) {
        free(rows[i].owner);
        free(rows[i].status);
    }
    free(rows);
}

int drive2_catalog_activity(drive2_catalog_t *self, const char *since, drive2_activity_t **rows,
                            size_t *count, char *err, size_t err_size) {
    activity_list_t l = {NULL, 0, 0};
    param_t p[] = {ptext(since ? since : "")};
    int rc =
        db_run(self,
               "SELECT owner, processing_status, COUNT(*), COALESCE(SUM(size), 0) FROM files "
               "WHERE uploaded_at >= $1 GROUP BY owner, processing_status "
               "ORDER BY owner, processing_status",
               p, 1, 0, row_activity, &l, NULL, "catalog: cannot read the activity", err, err_size);
    if (rc != 0) {
        drive2_activity_free(l.rows, l.count);
        l.rows = NULL;
        l.count = 0;
    }
    *rows = l.rows;
    *count = l.count;
    return rc;
}

/* --- embeddings ----------------------------------------------------------- */

/* Vectors are stored as float32 little-endian whatever the host. */
static void put_le32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (unsigned char)u;
    p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16);
    p[3] = (unsigned char)(u >> 24);
}

static float get_le32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Largest vector accepted (floats): beyond any embedding model. */
#define MAX_DIM 65536

int drive2_catalog_put_embedding(drive2_catalog_t *self, const char *file_id, const float *v,
                                 size_t dim, char *err, size_t err_size) {
    if (!file_id || !*file_id || strlen(file_id) >= sizeof(((drive2_hit_t *)0)->file_id))
        return zt_fail(err, err_size, ZT_ERR_INVALID, "catalog: bad file id for an embedding");
    if (!v || dim == 0 || dim > MAX_DIM)
        return zt_fail(err, err_size, ZT_ERR_INVALID,
                       "catalog: embedding of file %.64s has %zu dimensions (1..%d)", file_id, dim,
                       MAX_DIM);
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return zt_fail(err, err_size, ZT_ERR_INVALID,
                           "catalog: embedding of file %.64s has a non-finite value", file_id);
    unsigned char *bytes = zt_malloc(dim * 4);
    for (size_t i = 0; i < dim; i++)
        put_le32(bytes + 4 * i, v[i]);
    char now[32];
    drive2_catalog_now(now, sizeof now);
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot store the embedding of file %.64s", file_id);
    param_t p[] = {ptext(file_id), pint((int64_t)dim), pblob(bytes, dim * 4), ptext(now)};
    int rc =
        db_run(self,
               "INSERT INTO embeddings (file_id, dim, vector, updated_at) "
               "VALUES ($1, $2, $3, $4) ON CONFLICT (file_id) DO UPDATE SET "
               "dim = excluded.dim, vector = excluded.vector, updated_at = excluded.updated_at",
               p, 4, 0, NULL, NULL, NULL, what, err, err_size);
    free(bytes);
    return rc;
}

typedef struct {
    const float *query;
    size_t dim;
    double query_norm;
    drive2_hit_t *hits;
    size_t k, found;
} search_t;

static int row_vector(void *arg, const cell_t *c, int ncols) {
    search_t *s = arg;
    if (ncols < 2 || c[0].null || c[1].null || c[1].len != s->dim * 4 ||
        c[0].len >= sizeof s->hits[0].file_id)
        return 0; /* a row of another shape: not comparable */
    const unsigned char *b = (const unsigned char *)c[1].data;
    double dot = 0, norm = 0;
    for (size_t i = 0; i < s->dim; i++) {
        double x = get_le32(b + 4 * i);
        dot += x * s->query[i];
        norm += x * x;
    }
    if (norm <= 0)
        return 0;
    double score = dot / (sqrt(norm) * s->query_norm);
    /* Insertion into the sorted top-k (k is small). */
    size_t pos = s->found;
    while (pos > 0 && s->hits[pos - 1].score < score)
        pos--;
    if (pos >= s->k)
        return 0;
    size_t last = s->found < s->k ? s->found : s->k - 1;
    memmove(&s->hits[pos + 1], &s->hits[pos], (last - pos) * sizeof s->hits[0]);
    memcpy(s->hits[pos].file_id, c[0].data, c[0].len);
    s->hits[pos].file_id[c[0].len] = '\0';
    s->hits[pos].score = score;
    if (s->found < s->k)
        s->found++;
    return 0;
}

int drive2_catalog_search_embeddings(drive2_catalog_t *self, const float *query, size_t dim,
                                     drive2_hit_t *hits, size_t k, size_t *found, char *err,
                                     size_t err_size) {
    *found = 0;
    if (!query || dim == 0 || dim > MAX_DIM)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "catalog: search vector has %zu dimensions",
                       dim);
    if (k == 0)
        return 0;
    double qn = 0;
    for (size_t i = 0; i < dim; i++)
        qn += (double)query[i] * query[i];
    if (!(qn > 0) || !isfinite(qn))
        return zt_fail(err, err_size, ZT_ERR_INVALID,
                       "catalog: search vector is zero or not finite");
    search_t s = {query, dim, sqrt(qn), hits, k, 0};
    param_t p[] = {pint((int64_t)dim)};
    int rc = db_run(self, "SELECT file_id, vector FROM embeddings WHERE dim = $1", p, 1, 1u << 1,
                    row_vector, &s, NULL, "catalog: cannot search the embeddings", err, err_size);
    *found = rc == 0 ? s.found : 0;
    return rc;
}

int drive2_catalog_count_embeddings(drive2_catalog_t *self, const char *file_id, int64_t *count,
                                    char *err, size_t err_size) {
    *count = 0;
    param_t p[] = {ptext(file_id)};
    if (file_id)
        return db_run(self, "SELECT COUNT(*) FROM embeddings WHERE file_id = $1", p, 1, 0, row_int,
                      count, NULL, "catalog: cannot count embeddings", err, err_size);
    return db_run(self, "SELECT COUNT(*) FROM embeddings", NULL, 0, 0, row_int, count, NULL,
                  "catalog: cannot count embeddings", err, err_size);
}

int drive2_catalog_delete_embedding(drive2_catalog_t *self, const char *file_id, char *err,
                                    size_t err_size) {
    char what[160];
    snprintf(what, sizeof what, "catalog: cannot delete the embedding of file %.64s", file_id);
    param_t p[] = {ptext(file_id)};
    return db_run(self, "DELETE FROM embeddings WHERE file_id = $1", p, 1, 0, NULL, NULL, NULL,
                  what, err, err_size);
}
