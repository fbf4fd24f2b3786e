/* drive2: the Drive2 file service from the command line: the seed's API
 * endpoints as commands (upload, status, reprocess) plus search. It reads
 * the same settings as the workers (zt_config: --config FILE, environment,
 * defaults), so with nothing configured both use the embedded defaults
 * (./drive2-data: objects, catalog.db; the local analyzer).
 * Exit status: 0 ok; 1 error (no such file, refused, service failure);
 * 2 usage error; 3 `status --wait` timed out. docs/DRIVE2.md, "drive2 CLI". */
#include "analyzer.h"
#include "catalog.h"
#include "extract.h"
#include "line.h"
#include "notify.h"
#include "pipeline.h"
#include "storage.h"
#include "vectors.h"

#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_config.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

#define ERR_MAX 1024
#define DEFAULT_USER "default"
#define SEARCH_MAX_K 100

typedef struct {
    zt_config_t config;
    bool json;
    const char *user;
    bool force;
    int k;
    double wait_s; /* status --wait: seconds; < 0 = do not wait */
    const char *name;
    int limit; /* notifications: the last N (0 = all) */
} opts_t;

static void usage(FILE *out) {
    fprintf(out,
            "Usage: drive2 [OPTIONS] COMMAND ARGS...\n"
            "\n"
            "Commands:\n"
            "  upload FILE [--user ID] [--name NAME]\n"
            "                      store FILE, record it as pending, queue its processing;\n"
            "                      prints the file id and returns at once\n"
            "  status FILE_ID [--wait S]\n"
            "                      the file's status, progress while processing, AI results\n"
            "                      when completed, the error when failed (--wait: until\n"
            "                      completed or failed, at most S seconds; exit 3 on timeout)\n"
            "  reprocess FILE_ID [--force]\n"
            "                      process a failed file again (--force: any file)\n"
            "  search TEXT [-k N]  the N files nearest to TEXT by embedding (default 5)\n"
            "  notifications [--user ID] [--limit N]\n"
            "                      notices in the outbox (DATA_DIR/outbox.jsonl: where they\n"
            "                      go without a LINE token), oldest first (default: last 20)\n"
            "\n"
            "Options:\n"
            "      --json                  machine-readable output\n"
            "  -b, --broker URL            broker endpoint (env ZMQ_BROKER_URL)\n"
            "      --result-backend URL    Redis result backend (env RESULT_BACKEND)\n"
            "      --config FILE           INI settings file (same keys as zmqworker)\n"
            "  -h, --help                  this text\n"
            "\n"
            "Settings (config file keys; Drive2's are listed in docs/DRIVE2.md):\n");
    zt_config_print_help(out);
}

/* --- output helpers ---------------------------------------------------------- */

static void print_json(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

/* An error: JSON {"error": ...} on stdout with --json, text on stderr. */
static int report_error(const opts_t *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int report_error(const opts_t *o, int code, const char *fmt, ...) {
    char msg[ERR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->json) {
        /* a path in the message may not be UTF-8, and the cut may split a character */
        size_t n = 0;
        char *clean = drive2_utf8_sanitize(msg, strlen(msg), &n);
        json_t *j = json_pack("{s:s, s:s}", "error", clean, "code", zt_strerror(code));
        print_json(j);
        json_decref(j);
        free(clean);
    } else {
        fprintf(stderr, "drive2: %s\n", msg);
    }
    return EXIT_FAIL;
}

/* --- upload ---------------------------------------------------------------------- */

/* User ids go into object keys: a safe alphabet, never "." or "..". */
static bool valid_user(const char *u) {
    size_t n = strlen(u);
    if (n == 0 || n > 64 || strcmp(u, ".") == 0 || strcmp(u, "..") == 0)
        return false;
    for (const char *p = u; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_.@-", *p)))
            return false;
    return true;
}

static int read_file(const char *path, int64_t max, unsigned char **data, size_t *len, char *err,
                     size_t err_size) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
        return errno == ENOENT ? ZT_ERR_NOT_FOUND : ZT_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s is not a regular file", path);
        return ZT_ERR_INVALID;
    }
    if (st.st_size > max) {
        snprintf(err, err_size, "%s is %lld bytes, over upload_max_bytes (%lld)", path,
                 (long long)st.st_size, (long long)max);
        return ZT_ERR_TOO_LARGE;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return ZT_ERR_IO;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    unsigned char *buf = zt_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) { /* it grew since stat */
            if ((int64_t)n > max) {
                fclose(f);
                free(buf);
                snprintf(err, err_size, "%s grew over upload_max_bytes while read", path);
                return ZT_ERR_TOO_LARGE;
            }
            cap *= 2;
            buf = zt_realloc(buf, cap);
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, err_size, "cannot read %s", path);
        return ZT_ERR_IO;
    }
    *data = buf;
    *len = n;
    return 0;
}

static void sha256_hex(const unsigned char *data, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* "uploads/USER/FILE_ID.ext": the extension (if short and alphanumeric)
 * keeps objects recognisable in an S3 console. */
static void storage_key(const char *user, const char *file_id, const char *name, char *out,
                        size_t size) {
    const char *dot = strrchr(name, '.');
    bool ext_ok = dot && dot != name && dot[1] && strlen(dot + 1) <= 10;
    for (const char *p = dot ? dot + 1 : ""; ext_ok && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            ext_ok = false;
    snprintf(out, size, "uploads/%s/%s%s", user, file_id, ext_ok ? dot : "");
    for (char *p = out + strlen("uploads/") + strlen(user) + 1 + strlen(file_id); *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

static int cmd_upload(opts_t *o, const char *path) {
    const char *user = o->user ? o->user : DEFAULT_USER;
    if (!valid_user(user))
        return report_error(o, ZT_ERR_INVALID,
                            "user id '%s' must be 1-64 characters of A-Z a-z 0-9 _ . @ -", user);
    const char *slash = strrchr(path, '/');
    const char *given = o->name ? o->name : slash ? slash + 1 : path;
    if (!*given)
        return report_error(o, ZT_ERR_INVALID, "the file needs a name (--name)");
    char err[ERR_MAX] = "";
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, o->config.upload_max_bytes, &data, &len, err, sizeof err);
    if (rc != 0)
        return report_error(o, rc, "%s", err);
    /* File names are bytes (a Latin-1 name from an old archive); the
     * catalog, PostgreSQL's UTF8 and every JSON answer need UTF-8. */
    size_t name_len = 0;
    char *name = drive2_utf8_sanitize(given, strlen(given), &name_len);
    char checksum[65], file_id[ZT_ID_MAX + 1], task_id[ZT_ID_MAX + 1], key[300];
    sha256_hex(data, len, checksum);
    const char *mime = drive2_sniff_mime(data, len, name);
    zt_uuid_generate(file_id, sizeof file_id);
    zt_uuid_generate(task_id, sizeof task_id);
    storage_key(user, file_id, name, key, sizeof key);

    int exit_code = EXIT_OK;
    drive2_catalog_t *catalog = NULL;
    drive2_storage_t *storage = drive2_storage_new(&o->config, err, sizeof err);
    if (!storage) {
        exit_code = report_error(o, ZT_ERR_INVALID, "%s", err);
        goto done;
    }
    catalog = drive2_catalog_new(&o->config, err, sizeof err);
    if (!catalog) {
        exit_code = report_error(o, ZT_ERR_IO, "%s", err);
        goto done;
    }
    rc = drive2_storage_put(storage, key, data, len, mime, err, sizeof err);
    if (rc != 0) {
        exit_code = report_error(o, rc, "%s", err);
        goto done;
    }
    drive2_new_file_t nf = {file_id, user, name, mime, (int64_t)len, checksum, key, task_id};
    rc = drive2_catalog_insert_file(catalog, &nf, err, sizeof err);
    if (rc != 0) {
        char ignored[ERR_MAX];
        (void)drive2_storage_delete(storage, key, ignored, sizeof ignored);
        exit_code = report_error(o, rc, "%s", err);
        goto done;
    }
    /* The row exists (pending, with the task id) before the task is sent, so
     * a worker that starts at once finds it. */
    json_t *args = json_pack("[s]", file_id);
    rc = drive2_send_task(&o->config, DRIVE2_TASK_PROCESS, args, DRIVE2_QUEUE_AI, task_id, 5000,
                          NULL, 0, NULL, err, sizeof err);
    json_decref(args);
    if (rc != 0) {
        char reason[ERR_MAX + 64], ignored[ERR_MAX];
        snprintf(reason, sizeof reason, "could not queue the processing task: %s", err);
        (void)drive2_catalog_fail(catalog, file_id, reason, ignored, sizeof ignored);
        exit_code = report_error(o, rc, "file %s stored but not queued: %s", file_id, err);
        goto done;
    }
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "file_id", file_id,
                              "task_id", task_id, "processing_status", DRIVE2_STATUS_PENDING,
                              "original_name", name, "mime_type", mime, "size", (json_int_t)len,
                              "checksum", checksum, "storage_key", key, "owner", user);
        print_json(j);
        json_decref(j);
    } else {
        printf("%s\n", file_id);
    }
done:
    free(data);
    free(name);
    drive2_catalog_destroy(&catalog);
    drive2_storage_destroy(&storage);
    return exit_code;
}

/* --- status ----------------------------------------------------------------------- */

static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

static json_t *file_json(const drive2_file_t *f) {
    json_t *j = json_object();
    json_object_set_new(j, "file_id", json_string(f->id));
    json_object_set_new(j, "id", json_string(f->id));
    json_object_set_new(j, "owner", str_or_null(f->owner));
    json_object_set_new(j, "original_name", str_or_null(f->original_name));
    json_object_set_new(j, "mime_type", str_or_null(f->mime_type));
    json_object_set_new(j, "size", json_integer((json_int_t)f->size));
    json_object_set_new(j, "checksum", str_or_null(f->checksum));
    json_object_set_new(j, "storage_key", str_or_null(f->storage_key));
    json_object_set_new(j, "processing_status", str_or_null(f->processing_status));
    json_object_set_new(j, "task_id", str_or_null(f->task_id));
    json_object_set_new(j, "error", str_or_null(f->error));
    json_object_set_new(j, "ai_filename", str_or_null(f->ai_filename));
    json_object_set_new(j, "ai_summary", str_or_null(f->ai_summary));
    json_t *tags = f->ai_tags ? json_loads(f->ai_tags, 0, NULL) : NULL;
    json_object_set_new(j, "ai_tags", tags ? tags : json_null());
    json_object_set_new(j, "thumbnail_path", str_or_null(f->thumbnail_path));
    json_object_set_new(j, "uploaded_at", str_or_null(f->uploaded_at));
    json_object_set_new(j, "processed_at", str_or_null(f->processed_at));
    json_object_set_new(j, "processing_started_at", str_or_null(f->processing_started_at));
    json_object_set_new(j, "updated_at", str_or_null(f->updated_at));
    json_object_set_new(j, "attempts", json_integer((json_int_t)f->attempts));
    return j;
}

/* The task's state in the result backend: {"state", "current", "total",
 * "step", "percent"} while it reports progress; NULL if Redis has nothing. */
static json_t *task_progress(zt_backend_t *backend, const char *task_id) {
    json_t *meta = NULL;
    if (!backend || !task_id || zt_backend_get(backend, task_id, &meta) != 0 || !meta)
        return NULL;
    const char *state = json_string_value(json_object_get(meta, "status"));
    json_t *p = json_pack("{s:s}", "state", state ? state : "?");
    const json_t *r = json_object_get(meta, "result");
    if (state && strcmp(state, "PROGRESS") == 0 && json_is_object(r)) {
        double cur = json_number_value(json_object_get(r, "current"));
        double tot = json_number_value(json_object_get(r, "total"));
        json_object_set_new(p, "current", json_integer((json_int_t)cur));
        json_object_set_new(p, "total", json_integer((json_int_t)tot));
        const char *msg = json_string_value(json_object_get(r, "message"));
        json_object_set_new(p, "step", json_string(msg ? msg : ""));
        json_object_set_new(p, "percent",
                            json_integer(tot > 0 ? (json_int_t)(100 * cur / tot) : 0));
    } else if (state && strcmp(state, "RETRY") == 0 && json_is_object(r)) {
        const char *msg = json_string_value(json_object_get(r, "exc_message"));
        if (!msg) {
            const json_t *m = json_object_get(r, "exc_message");
            msg = json_is_array(m) ? json_string_value(json_array_get(m, 0)) : NULL;
        }
        if (msg)
            json_object_set_new(p, "retrying_after", json_string(msg));
    }
    json_decref(meta);
    return p;
}

static void print_field(const char *label, const char *value) {
    if (value && *value)
        printf("%-15s %s\n", label, value);
}

static void print_status_text(const drive2_file_t *f, const json_t *progress) {
    char line[512];
    print_field("file_id:", f->id);
    snprintf(line, sizeof line, "%s (%s, %lld bytes, owner %s)", f->original_name, f->mime_type,
             (long long)f->size, f->owner);
    print_field("file:", line);
    const char *step = progress ? json_string_value(json_object_get(progress, "step")) : NULL;
    if (step && strcmp(f->processing_status, DRIVE2_STATUS_PROCESSING) == 0) {
        snprintf(line, sizeof line, "%s: %s, %lld%%", f->processing_status, step,
                 (long long)json_integer_value(json_object_get(progress, "percent")));
        print_field("status:", line);
    } else {
        print_field("status:", f->processing_status);
    }
    print_field("task_id:", f->task_id);
    print_field("ai_filename:", f->ai_filename);
    print_field("ai_summary:", f->ai_summary);
    json_t *tags = f->ai_tags ? json_loads(f->ai_tags, 0, NULL) : NULL;
    if (json_array_size(tags)) {
        line[0] = '\0';
        size_t i;
        json_t *t;
        json_array_foreach(tags, i, t) {
            size_t n = strlen(line);
            snprintf(line + n, sizeof line - n, "%s%s", i ? ", " : "", json_string_value(t));
        }
        print_field("ai_tags:", line);
    }
    json_decref(tags);
    print_field("thumbnail_path:", f->thumbnail_path);
    print_field("error:", f->error);
    print_field("uploaded_at:", f->uploaded_at);
    print_field("processed_at:", f->processed_at);
}

static bool is_final(const char *status) {
    return strcmp(status, DRIVE2_STATUS_COMPLETED) == 0 ||
           strcmp(status, DRIVE2_STATUS_FAILED) == 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmd_status(opts_t *o, const char *file_id) {
    char err[ERR_MAX] = "";
    drive2_catalog_t *catalog = drive2_catalog_new(&o->config, err, sizeof err);
    if (!catalog)
        return report_error(o, ZT_ERR_IO, "%s", err);
    int berr = 0;
    zt_backend_t *backend = zt_backend_new_lazy(o->config.result_backend, &berr);
    int64_t deadline = zt_clock_mono_ms() + (int64_t)(o->wait_s * 1000);
    drive2_file_t f;
    int exit_code = EXIT_OK;
    for (;;) {
        int rc = drive2_catalog_get_file(catalog, file_id, &f, err, sizeof err);
        if (rc != 0) {
            exit_code = report_error(o, rc, "%s", err);
            break;
        }
        bool final = is_final(f.processing_status);
        if (o->wait_s < 0 || final || zt_clock_mono_ms() >= deadline) {
            json_t *progress = final ? NULL : task_progress(backend, f.task_id);
            if (o->json) {
                json_t *j = file_json(&f);
                if (progress)
                    json_object_set(j, "progress", progress);
                print_json(j);
                json_decref(j);
            } else {
                print_status_text(&f, progress);
            }
            json_decref(progress);
            if (o->wait_s >= 0 && !final)
                exit_code = EXIT_TIMEOUT;
            drive2_file_clear(&f);
            break;
        }
        drive2_file_clear(&f);
        sleep_ms(100);
    }
    zt_backend_destroy(&backend);
    drive2_catalog_destroy(&catalog);
    return exit_code;
}

/* --- reprocess ------------------------------------------------------------------- */

static int cmd_reprocess(opts_t *o, const char *file_id) {
    char err[ERR_MAX] = "", task_id[ZT_ID_MAX + 1] = "";
    drive2_catalog_t *catalog = drive2_catalog_new(&o->config, err, sizeof err);
    if (!catalog)
        return report_error(o, ZT_ERR_IO, "%s", err);
    int rc = drive2_start_run(catalog, &o->config, file_id, o->force, NULL, task_id, sizeof task_id,
                              err, sizeof err);
    drive2_catalog_destroy(&catalog);
    if (rc == ZT_ERR_REJECTED)
        return report_error(o, rc, "%s; --force processes it again anyway", err);
    if (rc != 0)
        return report_error(o, rc, "%s", err);
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:b}", "file_id", file_id, "task_id", task_id,
                              "processing_status", DRIVE2_STATUS_PENDING, "force", o->force);
        print_json(j);
        json_decref(j);
    } else {
        printf("%s\n", task_id);
    }
    return EXIT_OK;
}

/* --- search ---------------------------------------------------------------------- */

static int cmd_search(opts_t *o, const char *text) {
    if (!*text)
        return report_error(o, ZT_ERR_INVALID, "search needs some text");
    char err[ERR_MAX] = "";
    int exit_code = EXIT_OK;
    drive2_vectors_t *vectors = NULL;
    drive2_analyzer_t *analyzer = NULL;
    float *vec = NULL;
    size_t dim = 0, found = 0;
    drive2_hit_t *hits = zt_calloc((size_t)o->k, sizeof *hits);
    drive2_catalog_t *catalog = drive2_catalog_new(&o->config, err, sizeof err);
    if (!catalog) {
        exit_code = report_error(o, ZT_ERR_IO, "%s", err);
        goto done;
    }
    analyzer = drive2_analyzer_new(&o->config, err, sizeof err);
    if (!analyzer) {
        exit_code = report_error(o, ZT_ERR_INVALID, "%s", err);
        goto done;
    }
    int rc = drive2_analyzer_embed_query(analyzer, text, &vec, &dim, err, sizeof err);
    if (rc != 0) {
        exit_code = report_error(o, rc, "%s", err);
        goto done;
    }
    vectors = drive2_vectors_new(&o->config, catalog, err, sizeof err);
    rc = vectors
             ? drive2_vectors_search(vectors, vec, dim, hits, (size_t)o->k, &found, err, sizeof err)
             : ZT_ERR_INVALID;
    if (rc != 0) {
        exit_code = report_error(o, rc, "%s", err);
        goto done;
    }
    json_t *results = json_array();
    for (size_t i = 0; i < found; i++) {
        drive2_file_t f;
        json_t *r;
        if (drive2_catalog_get_file(catalog, hits[i].file_id, &f, err, sizeof err) == 0) {
            r = file_json(&f);
            drive2_file_clear(&f);
        } else { /* a vector whose file is gone (deleted meanwhile) */
            r = json_pack("{s:s}", "file_id", hits[i].file_id);
        }
        json_object_set_new(r, "score", json_real(hits[i].score));
        json_array_append_new(results, r);
    }
    if (o->json) {
        json_t *j =
            json_pack("{s:s, s:o, s:s, s:s}", "query", text, "results", results, "analyzer",
                      drive2_analyzer_kind(analyzer), "vectors", drive2_vectors_kind(vectors));
        print_json(j);
        json_decref(j);
    } else {
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r) {
            const char *name = json_string_value(json_object_get(r, "ai_filename"));
            if (!name)
                name = json_string_value(json_object_get(r, "original_name"));
            printf("%.3f  %s  %s\n", json_real_value(json_object_get(r, "score")),
                   json_string_value(json_object_get(r, "file_id")), name ? name : "");
        }
        json_decref(results);
    }
done:
    free(vec);
    free(hits);
    drive2_vectors_destroy(&vectors);
    drive2_analyzer_destroy(&analyzer);
    drive2_catalog_destroy(&catalog);
    return exit_code;
}

/* --- notifications --------------------------------------------------------------- */

static int cmd_notifications(opts_t *o) {
    char err[ERR_MAX] = "", path[ZT_URL_MAX + 32];
    json_t *list = NULL;
    drive2_outbox_path(&o->config, path, sizeof path);
    int rc = drive2_outbox_list(&o->config, o->user, (size_t)o->limit, &list, err, sizeof err);
    if (rc != 0) {
        json_decref(list);
        return report_error(o, rc, "%s", err);
    }
    /* With a token, new notices go to LINE; the outbox keeps earlier ones. */
    const char *channel = drive2_line_configured() ? "line" : "outbox";
    if (o->json) {
        json_t *j =
            json_pack("{s:s, s:s, s:O}", "outbox", path, "channel", channel, "notifications", list);
        print_json(j);
        json_decref(j);
    } else {
        if (strcmp(channel, "line") == 0)
            printf(
                "(a LINE token is set: new notices go to LINE; the outbox holds earlier ones)\n");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            const char *to = json_string_value(json_object_get(e, "to"));
            json_t *m = json_object_get(e, "message");
            const char *when = json_string_value(json_object_get(e, "time"));
            const char *kind = json_string_value(json_object_get(e, "kind"));
            const char *user = json_string_value(json_object_get(e, "user_id"));
            const char *alt = json_string_value(json_object_get(m, "altText"));
            printf("%s  %-20s %s%s%s  %s\n", when ? when : "?", kind ? kind : "?",
                   user ? user : "?", to ? " -> " : "", to ? to : "", alt ? alt : "");
        }
        if (json_array_size(list) == 0)
            printf("no notifications in %s\n", path);
    }
    json_decref(list);
    return EXIT_OK;
}

/* --- main ------------------------------------------------------------------------- */

enum {
    OPT_JSON = 256,
    OPT_BACKEND,
    OPT_CONFIG,
    OPT_USER,
    OPT_FORCE,
    OPT_WAIT,
    OPT_NAME,
    OPT_LIMIT
};

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"broker", required_argument, NULL, 'b'},
        {"result-backend", required_argument, NULL, OPT_BACKEND},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"user", required_argument, NULL, OPT_USER},
        {"name", required_argument, NULL, OPT_NAME},
        {"force", no_argument, NULL, OPT_FORCE},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
    }
    opts_t o;
    memset(&o, 0, sizeof o);
    o.k = 5;
    o.wait_s = -1;
    o.limit = 20;
    char reason[512];
    if (zt_config_load(&o.config, argc, argv, reason, sizeof reason) != 0) {
        fprintf(stderr, "drive2: %s\n", reason);
        return EXIT_USAGE;
    }
    /* Warnings only: the catalog's "applied migration" lines are for workers. */
    zt_log_setup("drive2", ZT_LOG_WARNING, NULL);
    int c;
    while ((c = getopt_long(argc, argv, "b:k:h", longopts, NULL)) != -1) {
        const char *key = NULL;
        char *end = NULL;
        switch (c) {
        case OPT_JSON:
            o.json = true;
            break;
        case 'b':
            key = "broker_url";
            break;
        case OPT_BACKEND:
            key = "result_backend";
            break;
        case OPT_CONFIG:
            break; /* read by zt_config_load */
        case OPT_USER:
            o.user = optarg;
            break;
        case OPT_NAME:
            o.name = optarg;
            break;
        case OPT_FORCE:
            o.force = true;
            break;
        case OPT_WAIT:
            o.wait_s = strtod(optarg, &end);
            if (!end || *end || !(o.wait_s >= 0) || o.wait_s > 86400) {
                fprintf(stderr, "drive2: --wait takes seconds (0-86400)\n");
                return EXIT_USAGE;
            }
            break;
        case OPT_LIMIT: {
            long n = strtol(optarg, &end, 10);
            if (!end || *end || n < 0 || n > 100000) {
                fprintf(stderr, "drive2: --limit takes 0-100000 (0: all)\n");
                return EXIT_USAGE;
            }
            o.limit = (int)n;
            break;
        }
        case 'k': {
            long k = strtol(optarg, &end, 10);
            if (!end || *end || k < 1 || k > SEARCH_MAX_K) {
                fprintf(stderr, "drive2: -k takes 1-%d\n", SEARCH_MAX_K);
                return EXIT_USAGE;
            }
            o.k = (int)k;
            break;
        }
        default:
            fprintf(stderr, "Try 'drive2 --help'.\n");
            return EXIT_USAGE;
        }
        if (key && zt_config_set(&o.config, key, optarg, reason, sizeof reason) != 0) {
            fprintf(stderr, "drive2: %s\n", reason);
            return EXIT_USAGE;
        }
    }
    int nargs = argc - optind;
    const char *cmd = nargs > 0 ? argv[optind] : NULL;
    const char *arg = nargs > 1 ? argv[optind + 1] : NULL;
    if (!cmd) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "notifications") == 0) {
        if (nargs != 1) {
            fprintf(stderr, "drive2: notifications takes no argument\nTry 'drive2 --help'.\n");
            return EXIT_USAGE;
        }
        return cmd_notifications(&o);
    }
    if (nargs != 2) {
        fprintf(stderr, "drive2: %s takes exactly one argument\nTry 'drive2 --help'.\n", cmd);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "upload") == 0)
        return cmd_upload(&o, arg);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&o, arg);
    if (strcmp(cmd, "reprocess") == 0)
        return cmd_reprocess(&o, arg);
    if (strcmp(cmd, "search") == 0)
        return cmd_search(&o, arg);
    fprintf(stderr, "drive2: unknown command '%s'\nTry 'drive2 --help'.\n", cmd);
    return EXIT_USAGE;
}
