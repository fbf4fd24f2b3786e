/* zt_config: every setting, its default, its parser and its help text in one
 * table, so the file, the environment and each program's --help agree. */
#include "zt_config.h"
#include "zt_error.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { KIND_STR, KIND_INT, KIND_SECONDS, KIND_BOOL } kind_t;

typedef struct {
    const char *key;
    kind_t kind;
    size_t offset;
    size_t size;      /* for strings: buffer size */
    const char *dflt; /* default as text, parsed by the same code as the file */
    int64_t min, max; /* bounds for numbers */
    const char *help;
} setting_t;

#define STR(field, dflt, help)                                                                     \
    {                                                                                              \
#field, KIND_STR, offsetof(zt_config_t, field), sizeof(((zt_config_t *)0)->field), dflt,   \
            0, 0, help                                                                             \
    }
#define INT(field, dflt, lo, hi, help)                                                             \
    { #field, KIND_INT, offsetof(zt_config_t, field), 0, dflt, lo, hi, help }
#define SECS(field, dflt, lo, hi, help)                                                            \
    { #field, KIND_SECONDS, offsetof(zt_config_t, field), 0, dflt, lo, hi, help }
#define BOOL(field, dflt, help)                                                                    \
    { #field, KIND_BOOL, offsetof(zt_config_t, field), 0, dflt, 0, 1, help }

static const setting_t settings[] = {
    STR(broker_url, "tcp://127.0.0.1:5555",
        "broker endpoint clients and workers connect to (env ZMQ_BROKER_URL)"),
    STR(events_url, "tcp://127.0.0.1:5556",
        "broker events endpoint monitors subscribe to (env ZMQ_EVENTS_URL)"),
    STR(result_backend, "redis://127.0.0.1:6379/1", "Redis result backend (env RESULT_BACKEND)"),
    STR(broker_bind, "tcp://127.0.0.1:5555",
        "endpoint the broker binds for clients and workers (non-loopback TCP needs CURVE)"),
    STR(broker_events_bind, "tcp://127.0.0.1:5556",
        "endpoint the broker binds for its events stream (non-loopback TCP needs CURVE)"),
    STR(broker_data_dir, "./zmqbroker-data", "directory of the broker's journal"),
    INT(broker_heartbeat_ms, "1000", 10, 3600000, "msecs between heartbeats"),
    INT(broker_liveness, "3", 1, 1000, "heartbeats missed before a peer counts as dead"),
    INT(broker_max_message_bytes, "1048576", 1024, 1073741824, "largest message accepted, bytes"),
    STR(broker_fsync, "batch", "journal durability: always, batch (group commit) or off"),
    INT(broker_fsync_interval_ms, "1", 0, 10000,
        "batch, under load: least msecs between the starts of two fsyncs (0: back to back)"),
    INT(broker_journal_compact_bytes, "67108864", 0, INT64_MAX,
        "journal bytes that start a compaction (0: never)"),
    INT(broker_max_queue_length, "0", 0, INT64_MAX,
        "tasks waiting in one queue before SUBMIT is rejected (0: no limit)"),
    INT(broker_max_queued_bytes, "1073741824", 0, INT64_MAX,
        "bytes of all queued tasks before SUBMIT is rejected (0: no limit)"),
    SECS(task_time_limit, "600", 0, 31536000, "hard time limit of a task, seconds"),
    SECS(task_soft_time_limit, "540", 0, 31536000, "soft time limit of a task, seconds"),
    INT(task_max_retries, "3", 0, 1000000, "retries of a failing task"),
    SECS(task_default_retry_delay, "60", 0, 31536000, "base delay of the retry backoff, seconds"),
    INT(worker_concurrency, "0", 0, 4096, "child processes per worker (0: one per CPU)"),
    INT(worker_prefetch_multiplier, "4", 1, 10000, "tasks reserved per child"),
    INT(worker_max_tasks_per_child, "1000", 0, 1000000000,
        "tasks before a child is replaced (0: never)"),
    INT(worker_max_memory_per_child, "0", 0, 1073741824,
        "KiB of RSS before a child is replaced (0: no limit)"),
    INT(result_expires, "86400", 1, 315360000, "seconds a result is kept in Redis"),
    INT(result_buffer_max, "10000", 1, 10000000,
        "result writes a worker holds while Redis is unreachable"),
    BOOL(result_extended, "true",
         "store task name, args, kwargs, worker, retries and queue with results (Celery's "
         "result_extended)"),
    /* Drive2 services (docs/DRIVE2.md); secrets never live here: zt_secret.h */
    STR(drive2_data_dir, "./drive2-data",
        "folder of the embedded defaults: objects, catalog.db (env DRIVE2_DATA_DIR)"),
    STR(storage_url, "",
        "object store: \"\" = DATA_DIR/objects, file:///DIR, or s3://BUCKET (env STORAGE_URL)"),
    STR(s3_endpoint, "",
        "S3 endpoint URL; \"\" = https://s3.REGION.amazonaws.com (env S3_ENDPOINT)"),
    STR(s3_region, "us-east-1", "S3 region signed into requests (env S3_REGION)"),
    STR(s3_access_key_id, "", "S3 access key id (env AWS_ACCESS_KEY_ID; the secret: env only)"),
    STR(database_url, "",
        "catalog: \"\" = sqlite DATA_DIR/catalog.db, sqlite:///PATH or postgresql://... (env "
        "DATABASE_URL)"),
    STR(analyzer, "auto",
        "AI analysis: auto (gemini with GEMINI_API_KEY, else local), gemini, local"),
    STR(gemini_base_url, "https://generativelanguage.googleapis.com",
        "Gemini REST base URL (env GEMINI_BASE_URL)"),
    STR(gemini_model, "gemini-1.5-flash", "Gemini model for generateContent"),
    STR(gemini_embed_model, "text-embedding-004", "Gemini model for embedContent"),
    STR(qdrant_url, "", "Qdrant REST URL; \"\" = vectors in the catalog (env QDRANT_URL)"),
    STR(qdrant_collection, "drive2_files", "Qdrant collection"),
    INT(extract_max_bytes, "1048576", 1024, 1073741824, "text kept from one file, bytes"),
    INT(upload_max_bytes, "104857600", 1, INT64_MAX, "largest file drive2 upload accepts, bytes"),
    SECS(processing_stuck_after, "3600", 1, 31536000,
         "seconds in processing before cleanup_old_tasks fails a file"),
    /* Thumbnails and notifications (docs/DRIVE2.md); the LINE token: zt_secret.h */
    INT(thumbnail_size, "300", 16, 2048, "edge of the box a thumbnail fits in, px"),
    STR(thumbnail_format, "jpeg", "thumbnail format: jpeg or webp"),
    STR(thumbnail_crop, "none", "none (fit, aspect kept), centre or attention (fill and crop)"),
    INT(thumbnail_max_pixels, "100000000", 1, INT64_MAX,
        "width x height a source image may declare (decompression bombs)"),
    SECS(thumbnail_timeout, "60", 1, 3600, "seconds one ffprobe/ffmpeg run of a video may take"),
    STR(thumbnail_public_base_url, "",
        "https URL under which thumbnails/ is served, for LINE hero images; \"\" = none (env "
        "THUMBNAIL_PUBLIC_BASE_URL)"),
    STR(line_api_base_url, "https://api.line.me",
        "LINE Messaging API base URL (env LINE_API_BASE_URL; token: LINE_CHANNEL_ACCESS_TOKEN)"),
    STR(quota_alert_thresholds, "80,95", "storage quota percents that send a LINE alert once"),
    /* CURVE security (docs/SECURITY.md); secret keys stay in their files */
    STR(curve_server_cert, "",
        "broker: its secret certificate file (zmqctl keygen); \"\" = no CURVE (env "
        "ZT_CURVE_SERVER_CERT_FILE)"),
    STR(curve_allowed_dir, "",
        "broker: folder of the public certificates allowed to connect, with their roles; "
        "SIGHUP reloads it (env ZT_CURVE_ALLOWED_DIR)"),
    STR(curve_client_cert, "",
        "clients, workers, beat, tools: own secret certificate file; \"\" = no CURVE (env "
        "ZT_CURVE_CLIENT_CERT_FILE)"),
    STR(curve_broker_key, "",
        "the broker's public key (Z85) or its public certificate file (env ZT_CURVE_BROKER_KEY)"),
    INT(broker_insecure, "0", 0, 1,
        "1: let the broker bind non-loopback TCP without CURVE (--insecure)"),
    STR(loglevel, "info", "debug, info, warning or error"),
    STR(logfile, "", "log file (empty: standard error)"),
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

static const setting_t *find(const char *key) {
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static int apply(zt_config_t *config, const setting_t *s, const char *value, char *reason,
                 size_t reason_size) {
    char *field = (char *)config + s->offset;
    if (s->kind == KIND_STR) {
        if (strlen(value) >= s->size) {
            snprintf(reason, reason_size, "%s: value longer than %zu bytes", s->key, s->size - 1);
            return ZT_ERR_INVALID;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    if (s->kind == KIND_BOOL) {
        /* Celery's spellings (True/False) and the usual INI ones */
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
            if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
                *(bool *)field = strcasecmp(value, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(reason, reason_size, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                 s->key, value);
        return ZT_ERR_INVALID;
    }
    char *end;
    errno = 0;
    if (s->kind == KIND_INT) {
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0' || v < s->min || v > s->max) {
            snprintf(reason, reason_size, "%s: '%s' is not an integer from %lld to %lld", s->key,
                     value, (long long)s->min, (long long)s->max);
            return ZT_ERR_INVALID;
        }
        *(int64_t *)field = v;
        return 0;
    }
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !isfinite(v) || v < (double)s->min ||
        v > (double)s->max) {
        snprintf(reason, reason_size, "%s: '%s' is not a number of seconds from %lld to %lld",
                 s->key, value, (long long)s->min, (long long)s->max);
        return ZT_ERR_INVALID;
    }
    *(double *)field = v;
    return 0;
}

void zt_config_defaults(zt_config_t *config) {
    char reason[256];
    memset(config, 0, sizeof *config);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        int rc = apply(config, &settings[i], settings[i].dflt, reason, sizeof reason);
        ZT_ASSERT(rc == 0); /* our own table */
    }
}

int zt_config_set(zt_config_t *config, const char *key, const char *value, char *reason,
                  size_t reason_size) {
    const setting_t *s = find(key);
    if (!s) {
        snprintf(reason, reason_size, "unknown setting '%s'", key);
        return ZT_ERR_NOT_FOUND;
    }
    return apply(config, s, value, reason, reason_size);
}

typedef struct {
    zt_config_t *config;
    char *reason;
    size_t reason_size;
    const char *path;
} file_ctx_t;

static int on_ini_line(void *user, const char *section, const char *name, const char *value) {
    file_ctx_t *ctx = user;
    char why[256];
    (void)section; /* sections only group keys */
    if (zt_config_set(ctx->config, name, value, why, sizeof why) != 0) {
        snprintf(ctx->reason, ctx->reason_size, "%s", why);
        return 0; /* inih reports the line number */
    }
    return 1;
}

int zt_config_load_file(zt_config_t *config, const char *path, char *reason, size_t reason_size) {
    file_ctx_t ctx = {config, reason, reason_size, path};
    char why[300] = "syntax error";
    ctx.reason = why;
    ctx.reason_size = sizeof why;
    int rc = ini_parse(path, on_ini_line, &ctx);
    if (rc == -1) {
        snprintf(reason, reason_size, "%s: cannot open: %s", path, strerror(errno));
        return ZT_ERR_IO;
    }
    if (rc != 0) {
        if (rc == -2)
            snprintf(reason, reason_size, "%s: out of memory", path);
        else
            snprintf(reason, reason_size, "%s:%d: %s", path, rc, why);
        return ZT_ERR_INVALID;
    }
    return 0;
}

void zt_config_load_env(zt_config_t *config) {
    static const struct {
        const char *env;
        const char *key;
    } map[] = {{"ZMQ_BROKER_URL", "broker_url"},
               {"ZMQ_EVENTS_URL", "events_url"},
               {"RESULT_BACKEND", "result_backend"},
               {"DRIVE2_DATA_DIR", "drive2_data_dir"},
               {"STORAGE_URL", "storage_url"},
               {"S3_ENDPOINT", "s3_endpoint"},
               {"S3_REGION", "s3_region"},
               {"AWS_ACCESS_KEY_ID", "s3_access_key_id"},
               {"DATABASE_URL", "database_url"},
               {"GEMINI_BASE_URL", "gemini_base_url"},
               {"QDRANT_URL", "qdrant_url"},
               {"LINE_API_BASE_URL", "line_api_base_url"},
               {"THUMBNAIL_PUBLIC_BASE_URL", "thumbnail_public_base_url"},
               {"ZT_CURVE_SERVER_CERT_FILE", "curve_server_cert"},
               {"ZT_CURVE_ALLOWED_DIR", "curve_allowed_dir"},
               {"ZT_CURVE_CLIENT_CERT_FILE", "curve_client_cert"},
               {"ZT_CURVE_BROKER_KEY", "curve_broker_key"}};
    char reason[256];
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *v = getenv(map[i].env);
        if (v && *v)
            (void)zt_config_set(config, map[i].key, v, reason, sizeof reason);
    }
}

int zt_config_load(zt_config_t *config, int argc, char **argv, char *reason, size_t reason_size) {
    zt_config_defaults(config);
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        else if (strcmp(argv[i], "--") == 0)
            break;
    }
    if (path) {
        int rc = zt_config_load_file(config, path, reason, reason_size);
        if (rc != 0)
            return rc;
    }
    zt_config_load_env(config);
    return 0;
}

void zt_config_print_help(FILE *out) {
    fprintf(out, "Settings (--config FILE, INI 'key = value'; command line > environment > file > "
                 "defaults):\n");
    for (size_t i = 0; i < N_SETTINGS; i++)
        fprintf(out, "  %-28s %-26s %s\n", settings[i].key,
                *settings[i].dflt ? settings[i].dflt : "\"\"", settings[i].help);
}
