/* zt_config: settings for every program, under Celery's names where Celery has
 * one. Precedence: command line > environment > config file > defaults.
 * The file is INI (parsed by inih): `key = value` lines, `#` or `;` comments,
 * optional [sections] that only group keys. Unknown keys are errors that name
 * the file and line. zt_config_t is a plain value struct. */
#ifndef ZT_CONFIG_H
#define ZT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define ZT_URL_MAX 512

typedef struct {
    /* Endpoints (env ZMQ_BROKER_URL, ZMQ_EVENTS_URL, RESULT_BACKEND) */
    char broker_url[ZT_URL_MAX];     /* where clients and workers connect */
    char events_url[ZT_URL_MAX];     /* where monitors subscribe */
    char result_backend[ZT_URL_MAX]; /* redis://host:port/db */
    /* Broker */
    char broker_bind[ZT_URL_MAX];         /* ROUTER bind endpoint */
    char broker_events_bind[ZT_URL_MAX];  /* PUB bind endpoint */
    char broker_data_dir[ZT_URL_MAX];     /* journal directory */
    int64_t broker_heartbeat_ms;          /* msecs between heartbeats */
    int64_t broker_liveness;              /* missed heartbeats before a peer is dead */
    int64_t broker_max_message_bytes;     /* bytes; larger messages get ERROR too-large */
    char broker_fsync[16];                /* always | batch | off */
    int64_t broker_fsync_interval_ms;     /* batch: least msecs between two fsyncs */
    int64_t broker_journal_compact_bytes; /* journal size that starts a compaction; 0 = never */
    int64_t broker_max_queue_length;      /* per queue; 0 = no limit */
    int64_t broker_max_queued_bytes;      /* all queues; 0 = no limit */
    /* Tasks and workers (Celery names) */
    double task_time_limit;              /* seconds, hard limit */
    double task_soft_time_limit;         /* seconds, soft limit */
    int64_t task_max_retries;            /* retries allowed by default */
    double task_default_retry_delay;     /* seconds, base of the backoff */
    int64_t worker_concurrency;          /* pool size; 0 = number of CPUs */
    int64_t worker_prefetch_multiplier;  /* credit = concurrency x this */
    int64_t worker_max_tasks_per_child;  /* recycle a child after this many tasks */
    int64_t worker_max_memory_per_child; /* KiB of RSS; 0 = unlimited */
    int64_t result_expires;              /* seconds a result lives in Redis */
    int64_t result_buffer_max;           /* result writes held while Redis is away */
    bool result_extended; /* Celery's result_extended: name, args, kwargs, worker, retries and
                           * queue are stored with each result */
    /* Drive2 services (secrets come from zt_secret_get, never from here) */
    char drive2_data_dir[ZT_URL_MAX];
    char storage_url[ZT_URL_MAX];
    char s3_endpoint[ZT_URL_MAX];
    char s3_region[64];
    char s3_access_key_id[128];
    char database_url[ZT_URL_MAX];
    char analyzer[16];
    char gemini_base_url[ZT_URL_MAX];
    char gemini_model[128];
    char gemini_embed_model[128];
    char qdrant_url[ZT_URL_MAX];
    char qdrant_collection[128];
    int64_t extract_max_bytes;
    int64_t upload_max_bytes;
    double processing_stuck_after; /* seconds */
    /* Thumbnails and notifications */
    int64_t thumbnail_size;                     /* px, edge of the box a thumbnail fits in */
    char thumbnail_format[8];                   /* jpeg | webp */
    char thumbnail_crop[16];                    /* none (fit) | centre | attention */
    int64_t thumbnail_max_pixels;               /* width x height a source may declare */
    double thumbnail_timeout;                   /* seconds, each ffprobe/ffmpeg run */
    char thumbnail_public_base_url[ZT_URL_MAX]; /* https URL serving thumbnails/; "" = none */
    char line_api_base_url[ZT_URL_MAX];         /* LINE Messaging API; token: zt_secret */
    char quota_alert_thresholds[64];            /* percents of the quota, "80,95" */
    /* CURVE security (docs/SECURITY.md): paths and public keys only; secret
     * keys stay in their certificate files (zt_curve.h) */
    char curve_server_cert[ZT_URL_MAX]; /* broker: its secret certificate file; "" = plain */
    char curve_allowed_dir[ZT_URL_MAX]; /* broker: public certificates allowed to connect */
    char curve_client_cert[ZT_URL_MAX]; /* connectors: own secret certificate file; "" = plain */
    char curve_broker_key[ZT_URL_MAX];  /* connectors: broker public key (Z85) or its cert file */
    int64_t broker_insecure;            /* 1: non-loopback TCP binds allowed without CURVE */
    /* Logging */
    char loglevel[16];
    char logfile[ZT_URL_MAX]; /* "" = stderr */
} zt_config_t;

/* Fills config with the embedded defaults. */
void zt_config_defaults(zt_config_t *config);

/* Sets one setting by its name from text. Returns 0, ZT_ERR_NOT_FOUND for an
 * unknown key, or ZT_ERR_INVALID for a bad value; reason says which. */
int zt_config_set(zt_config_t *config, const char *key, const char *value, char *reason,
                  size_t reason_size);

/* Reads an INI file. Returns 0, ZT_ERR_IO if it cannot be opened, or
 * ZT_ERR_INVALID with "FILE:LINE: reason" in reason. */
int zt_config_load_file(zt_config_t *config, const char *path, char *reason, size_t reason_size);

/* Applies the environment variables named in the settings table (ZMQ_BROKER_URL,
 * RESULT_BACKEND, DATABASE_URL, ...) if set. */
void zt_config_load_env(zt_config_t *config);

/* The usual start-up sequence for a program: defaults, then the file named by
 * a --config FILE (or --config=FILE) found in argv, then the environment. The
 * caller then applies its own command-line options on top.
 * Returns 0, or a negative code with reason filled. */
int zt_config_load(zt_config_t *config, int argc, char **argv, char *reason, size_t reason_size);

/* Prints the settings table (name, value, meaning) for --help output. */
void zt_config_print_help(FILE *out);

#endif
