/* app.workers.tasks.file_processing.*: the Drive2 pipeline (docs/DRIVE2.md,
 * "Tasks"). process_uploaded_file(file_id) downloads an upload, extracts its
 * text, analyses it, updates the catalog and stores the embedding, reporting
 * each of the five steps as progress; generate_ai_metadata(file_id) runs the
 * AI step alone; reprocess_file(file_id, force=False) starts a new run;
 * cleanup_old_tasks([older_than]) fails files stuck in processing.
 * Every service is opened per call from the worker's settings and closed
 * before the call returns: a pool child keeps nothing between tasks.
 * A redelivered run is harmless: the catalog's conditional updates decide,
 * the vector is an upsert and follow-up tasks carry ids derived from the
 * run's id, so the broker refuses a second copy (duplicate-id). */
#include "tasks.h"

#include "analyzer.h"
#include "catalog.h"
#include "extract.h"
#include "pipeline.h"
#include "storage.h"
#include "vectors.h"

#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_MAX 1024           /* bytes of an error message */
#define FOLLOW_UP_TIMEOUT 5000 /* msecs to wait for the broker's answer to a follow-up */

/* Everything one call opens; closed by call_close(). */
typedef struct {
    worker_task_t *t;
    bool owns_status; /* process_uploaded_file: failures fail the file */
    zt_config_t config;
    const char *file_id; /* borrowed from the task's args */
    drive2_catalog_t *catalog;
    drive2_storage_t *storage;
    drive2_analyzer_t *analyzer;
    drive2_vectors_t *vectors;
    drive2_file_t row;
    unsigned char *data; /* the original's bytes */
    size_t len;
    drive2_extract_t extracted;
    drive2_analysis_t analysis;
    int64_t steps_us[DRIVE2_STEPS]; /* microseconds each step took */
} call_t;

static void call_close(call_t *c) {
    drive2_vectors_destroy(&c->vectors);
    drive2_analyzer_destroy(&c->analyzer);
    drive2_storage_destroy(&c->storage);
    drive2_catalog_destroy(&c->catalog);
    drive2_file_clear(&c->row);
    free(c->data);
    c->data = NULL;
    drive2_extract_clear(&c->extracted);
    drive2_analysis_clear(&c->analysis);
}

/* The worker's settings, or (a runner without them, e.g. a test harness)
 * the defaults and the environment. */
static void load_config(worker_task_t *t, zt_config_t *config) {
    const zt_config_t *given = worker_task_config(t);
    if (given) {
        *config = *given;
        return;
    }
    zt_config_defaults(config);
    zt_config_load_env(config);
}

/* The file_id argument: a catalog id (1..63 bytes of a task-id alphabet). */
static const char *file_id_arg(worker_task_t *t) {
    const json_t *v = worker_task_arg(t, 0, "file_id");
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(((drive2_hit_t *)0)->file_id) || !zt_taskmsg_valid_id(s, n))
        return NULL;
    return s;
}

/* Errors that another attempt cannot fix: the input itself is wrong. */
static bool permanent(int code) {
    return code == ZT_ERR_INVALID || code == ZT_ERR_NOT_FOUND || code == ZT_ERR_TOO_LARGE;
}

static const char *exc_type_for(int code) {
    switch (code) {
    case ZT_ERR_NOT_FOUND:
        return "FileNotFoundError";
    case ZT_ERR_INVALID:
    case ZT_ERR_TOO_LARGE:
        return "ValueError";
    case ZT_ERR_IO:
    case ZT_ERR_TIMEOUT:
    case ZT_ERR_BACKEND:
        return "ConnectionError";
    default:
        return "RuntimeError";
    }
}

/* Sends a follow-up task with an id derived from run_id (the task id of the
 * run that completed or failed the file), and records what happened in
 * follow_ups[name]. A refusal (no worker knows the task yet, the broker is
 * away) is logged, never a failure of the file. */
static void follow_up(call_t *c, json_t *follow_ups, const char *run_id, const char *task,
                      const char *queue, const char *suffix, json_t *args) {
    char id[ZT_ID_MAX + 1], err[ERR_MAX];
    snprintf(id, sizeof id, "%.100s:%s", run_id, suffix);
    bool duplicate = false;
    int rc = drive2_send_task(&c->config, task, args, queue, id, FOLLOW_UP_TIMEOUT, NULL, 0,
                              &duplicate, err, sizeof err);
    json_t *entry = json_pack("{s:s, s:s, s:b}", "id", id, "queue", queue, "sent", rc == 0);
    if (rc != 0) {
        json_object_set_new(entry, "error", json_string(err));
        zt_warn("file %s: %s", c->file_id, err);
    } else if (duplicate) {
        json_object_set_new(entry, "duplicate", json_true());
    }
    const char *short_name = strrchr(task, '.');
    json_object_set_new(follow_ups, short_name ? short_name + 1 : task, entry);
    json_decref(args);
}

/* The result of a completed file: the row's AI fields and what was sent. */
static json_t *completed_result(call_t *c, const drive2_file_t *row, json_t *follow_ups,
                                bool already) {
    json_t *tags = row->ai_tags ? json_loads(row->ai_tags, 0, NULL) : NULL;
    json_t *r = json_pack("{s:s, s:s, s:s?, s:s?, s:o, s:s?, s:s?}", "file_id", c->file_id,
                          "status", DRIVE2_STATUS_COMPLETED, "mime_type", row->mime_type,
                          "ai_filename", row->ai_filename, "ai_tags", tags ? tags : json_array(),
                          "ai_summary", row->ai_summary, "processed_at", row->processed_at);
    if (already)
        json_object_set_new(r, "already_completed", json_true());
    json_object_set_new(r, "follow_ups", follow_ups ? follow_ups : json_object());
    return r;
}

/* Sends the follow-ups of a completed file (c->row, as completed): a
 * thumbnail for images, PDFs and videos, and the completion notice. Their
 * ids come from the completing run, so every copy of a run sends the same
 * ids and the broker keeps one. */
static json_t *send_completion(call_t *c) {
    const char *run_id = c->row.task_id ? c->row.task_id : worker_task_id(c->t);
    json_t *f = json_object();
    if (drive2_mime_wants_thumbnail(c->row.mime_type))
        follow_up(c, f, run_id, DRIVE2_TASK_THUMBNAIL, DRIVE2_QUEUE_THUMBNAILS, "thumbnail",
                  json_pack("[s]", c->file_id));
    follow_up(c, f, run_id, DRIVE2_TASK_COMPLETE, DRIVE2_QUEUE_NOTIFICATIONS, "complete",
              json_pack("[s]", c->file_id));
    return f;
}

/* When another run completed the file meanwhile (a redelivered or duplicate
 * run): ends this call with the stored results and returns true. */
static bool answer_if_completed(call_t *c, int *rc_out) {
    char err[ERR_MAX];
    drive2_file_clear(&c->row);
    if (!c->catalog ||
        drive2_catalog_get_file(c->catalog, c->file_id, &c->row, err, sizeof err) != 0 ||
        strcmp(c->row.processing_status, DRIVE2_STATUS_COMPLETED) != 0)
        return false;
    zt_info("file %s is completed (run %s); not processing it again", c->file_id,
            c->row.task_id ? c->row.task_id : "?");
    json_t *f = send_completion(c);
    json_t *r = completed_result(c, &c->row, f, true);
    call_close(c);
    *rc_out = worker_task_succeed(c->t, r);
    return true;
}

/* A step failed with code and message. Final (a permanent error, or the
 * retries are used up): the file becomes failed, send_processing_failed is
 * sent and the task fails. Otherwise the error is noted on the file and the
 * task asks for a retry. For a task that does not own the file's status
 * (generate_ai_metadata) only the task fails or retries. */
static int step_failed(call_t *c, const char *step, int code, const char *message) {
    worker_task_t *t = c->t;
    char text[ERR_MAX + 64];
    snprintf(text, sizeof text, "%s: %s", step, message);
    int max = worker_task_max_retries(t);
    bool final = permanent(code) || (max >= 0 && worker_task_retries(t) >= max);
    char err[ERR_MAX] = "";
    if (!c->owns_status) {
        call_close(c);
        if (final)
            return worker_task_fail_permanently(t, exc_type_for(code), "%s", text);
        return worker_task_retry(t, -1, "%s", text);
    }
    if (!final) {
        if (c->catalog &&
            drive2_catalog_note_error(c->catalog, c->file_id, text, err, sizeof err) != 0)
            zt_warn("file %s: %s", c->file_id, err);
        zt_warn("file %s: %s (attempt %d, will retry)", c->file_id, text,
                worker_task_retries(t) + 1);
        call_close(c);
        return worker_task_retry(t, -1, "%s", text);
    }
    if (c->catalog && drive2_catalog_fail(c->catalog, c->file_id, text, err, sizeof err) != 0)
        zt_warn("file %s: %s", c->file_id, err);
    zt_warn("file %s failed: %s", c->file_id, text);
    json_t *ignored = json_object();
    follow_up(c, ignored, worker_task_id(t), DRIVE2_TASK_FAILED, DRIVE2_QUEUE_NOTIFICATIONS,
              "failed", json_pack("[s, s]", c->file_id, text));
    json_decref(ignored);
    call_close(c);
    /* the file is failed now: a retry by the worker's policy would undo that */
    return worker_task_fail_permanently(t, exc_type_for(code), "%s", text);
}

/* Opens the catalog and reads the file. */
static int open_file(call_t *c, char *err, size_t err_size) {
    c->catalog = drive2_catalog_new(&c->config, err, err_size);
    if (!c->catalog)
        return ZT_ERR_IO;
    return drive2_catalog_get_file(c->catalog, c->file_id, &c->row, err, err_size);
}

static void progress(call_t *c, int step, const char *what) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s (step %d of %d)", what, step, DRIVE2_STEPS);
    worker_task_progress(c->t, step, DRIVE2_STEPS, msg);
}

/* Steps 1-3: download, extract, analyze. Returns 0 or calls step_failed. */
static int download_extract_analyze(call_t *c, bool report, int *rc_out) {
    char err[ERR_MAX] = "";
    int64_t t0 = zt_clock_mono_us();
    if (report)
        progress(c, 1, "download");
    c->storage = drive2_storage_new(&c->config, err, sizeof err);
    int rc = c->storage ? drive2_storage_get(c->storage, c->row.storage_key, &c->data, &c->len, err,
                                             sizeof err)
                        : ZT_ERR_INVALID;
    if (rc != 0) {
        *rc_out = step_failed(c, "download", rc, err);
        return -1;
    }
    int64_t t1 = zt_clock_mono_us();
    c->steps_us[0] = t1 - t0;
    if (report)
        progress(c, 2, "extract");
    rc = drive2_extract(c->data, c->len, c->row.mime_type, c->row.original_name,
                        (size_t)c->config.extract_max_bytes, &c->extracted, err, sizeof err);
    if (rc != 0) {
        *rc_out = step_failed(c, "extract", rc, err);
        return -1;
    }
    int64_t t2 = zt_clock_mono_us();
    c->steps_us[1] = t2 - t1;
    if (worker_task_soft_limit_exceeded(c->t)) {
        *rc_out = step_failed(c, "analyze", ZT_ERR_TIMEOUT, "soft time limit exceeded");
        return -1;
    }
    if (report)
        progress(c, 3, "analyze");
    c->analyzer = drive2_analyzer_new(&c->config, err, sizeof err);
    if (!c->analyzer) {
        *rc_out = step_failed(c, "analyze", ZT_ERR_INVALID, err);
        return -1;
    }
    bool image = strncmp(c->extracted.mime_type, "image/", 6) == 0;
    drive2_input_t in = {
        c->file_id,        c->row.original_name,  c->extracted.mime_type, c->row.size,
        c->extracted.text, c->extracted.text_len, image ? c->data : NULL, image ? c->len : 0};
    rc = drive2_analyzer_analyze(c->analyzer, &in, &c->analysis, err, sizeof err);
    if (rc == 0 && (!c->analysis.embedding || c->analysis.dim == 0)) {
        rc = ZT_ERR_PROTOCOL;
        snprintf(err, sizeof err, "the analyzer returned no embedding");
    }
    if (rc != 0) {
        *rc_out = step_failed(c, "analyze", rc, err);
        return -1;
    }
    c->steps_us[2] = zt_clock_mono_us() - t2;
    zt_info("file %s analysed by %s: %zu bytes of text, %zu tags, %zu dimensions", c->file_id,
            drive2_analyzer_kind(c->analyzer), c->extracted.text_len, c->analysis.tag_count,
            c->analysis.dim);
    return 0;
}

/* steps_ms: what each step took, in milliseconds with microsecond
 * precision (a small text file takes well under one millisecond a step). */
static json_t *steps_json(const call_t *c) {
    static const char *const names[DRIVE2_STEPS] = {"download", "extract", "analyze",
                                                    "update_database", "store_embedding"};
    json_t *steps = json_object();
    for (int i = 0; i < DRIVE2_STEPS; i++)
        json_object_set_new(steps, names[i], json_real((double)c->steps_us[i] / 1000.0));
    return steps;
}

/* process_uploaded_file(file_id) -> {file_id, status, ai_*, follow_ups, ...} */
static int process_uploaded_file(worker_task_t *t) {
    call_t c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.owns_status = true;
    c.file_id = file_id_arg(t);
    if (!c.file_id)
        return worker_task_fail_permanently(t, "TypeError",
                                            "process_uploaded_file(file_id) takes a file id");
    load_config(t, &c.config);
    char err[ERR_MAX] = "";
    int rc = open_file(&c, err, sizeof err);
    if (rc == ZT_ERR_NOT_FOUND) {
        call_close(&c);
        return worker_task_fail_permanently(t, "FileNotFoundError", "%s", err);
    }
    if (rc != 0)
        return step_failed(&c, "catalog", rc, err);

    /* A redelivery of a finished run, or a run that another copy finished:
     * answer with the stored results (follow-ups again: their ids make
     * copies harmless, and the first run may have died before sending). */
    rc = strcmp(c.row.processing_status, DRIVE2_STATUS_COMPLETED) == 0
             ? ZT_ERR_REJECTED
             : drive2_catalog_start_processing(c.catalog, c.file_id, worker_task_id(t), err,
                                               sizeof err);
    int answered = 0;
    if (rc == ZT_ERR_REJECTED && answer_if_completed(&c, &answered))
        return answered;
    if (rc != 0)
        return step_failed(&c, "catalog", rc, err);
    zt_info("file %s (%s, %lld bytes): processing, attempt %d", c.file_id, c.row.mime_type,
            (long long)c.row.size, worker_task_retries(t) + 1);

    int out = 0;
    if (download_extract_analyze(&c, true, &out) != 0)
        return out;

    int64_t t3 = zt_clock_mono_us();
    progress(&c, 4, "update database");
    rc = drive2_catalog_save_results(c.catalog, c.file_id, &c.analysis, err, sizeof err);
    if (rc == ZT_ERR_REJECTED && answer_if_completed(&c, &answered))
        return answered; /* a copy of this run was faster */
    if (rc != 0)
        return step_failed(&c, "update database", rc == ZT_ERR_REJECTED ? ZT_ERR_IO : rc, err);
    int64_t t4 = zt_clock_mono_us();
    c.steps_us[3] = t4 - t3;

    progress(&c, 5, "store embedding");
    c.vectors = drive2_vectors_new(&c.config, c.catalog, err, sizeof err);
    rc = c.vectors ? drive2_vectors_upsert(c.vectors, c.file_id, c.analysis.embedding,
                                           c.analysis.dim, err, sizeof err)
                   : ZT_ERR_INVALID;
    if (rc != 0)
        return step_failed(&c, "store embedding", rc, err);
    c.steps_us[4] = zt_clock_mono_us() - t4;

    rc = drive2_catalog_complete(c.catalog, c.file_id, &c.analysis, err, sizeof err);
    if (rc == ZT_ERR_REJECTED && answer_if_completed(&c, &answered))
        return answered; /* a copy of this run was faster */
    if (rc == ZT_ERR_REJECTED) {
        /* Reset or failed by someone else meanwhile (reprocess --force,
         * cleanup_old_tasks): their decision stands. */
        zt_warn("file %s: %s; this run's results are dropped", c.file_id, err);
        json_t *r = json_pack("{s:s, s:s, s:s}", "file_id", c.file_id, "status", "superseded",
                              "reason", err);
        call_close(&c);
        return worker_task_succeed(t, r);
    }
    if (rc != 0)
        return step_failed(&c, "update database", rc, err);
    drive2_file_clear(&c.row);
    if (drive2_catalog_get_file(c.catalog, c.file_id, &c.row, err, sizeof err) != 0)
        return step_failed(&c, "update database", ZT_ERR_IO, err);
    zt_info("file %s completed: %s", c.file_id, c.row.ai_filename ? c.row.ai_filename : "");
    json_t *f = send_completion(&c);
    json_t *r = completed_result(&c, &c.row, f, false);
    json_object_set_new(r, "analyzer", json_string(drive2_analyzer_kind(c.analyzer)));
    json_object_set_new(r, "vectors", json_string(drive2_vectors_kind(c.vectors)));
    json_object_set_new(r, "text_bytes", json_integer((json_int_t)c.extracted.text_len));
    json_object_set_new(r, "text_truncated", json_boolean(c.extracted.truncated));
    json_object_set_new(r, "embedding_dim", json_integer((json_int_t)c.analysis.dim));
    json_object_set_new(r, "steps_ms", steps_json(&c));
    call_close(&c);
    return worker_task_succeed(t, r);
}

/* generate_ai_metadata(file_id) -> {file_id, ai_filename, ai_summary, ai_tags}:
 * the AI step alone, whatever the file's status: the results and the vector
 * are stored, the status is left as it is. */
static int generate_ai_metadata(worker_task_t *t) {
    call_t c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.file_id = file_id_arg(t);
    if (!c.file_id)
        return worker_task_fail_permanently(t, "TypeError",
                                            "generate_ai_metadata(file_id) takes a file id");
    load_config(t, &c.config);
    char err[ERR_MAX] = "";
    int rc = open_file(&c, err, sizeof err);
    if (rc != 0) {
        call_close(&c);
        if (permanent(rc))
            return worker_task_fail_permanently(t, exc_type_for(rc), "%s", err);
        return worker_task_retry(t, -1, "%s", err);
    }
    int out = 0;
    if (download_extract_analyze(&c, true, &out) != 0)
        return out;
    rc = drive2_catalog_update_ai(c.catalog, c.file_id, &c.analysis, err, sizeof err);
    if (rc == 0) {
        c.vectors = drive2_vectors_new(&c.config, c.catalog, err, sizeof err);
        rc = c.vectors ? drive2_vectors_upsert(c.vectors, c.file_id, c.analysis.embedding,
                                               c.analysis.dim, err, sizeof err)
                       : ZT_ERR_INVALID;
    }
    if (rc != 0) {
        call_close(&c);
        if (permanent(rc))
            return worker_task_fail_permanently(t, exc_type_for(rc), "%s", err);
        return worker_task_retry(t, -1, "%s", err);
    }
    json_t *tags = json_array();
    for (size_t i = 0; i < c.analysis.tag_count; i++)
        json_array_append_new(tags, json_string(c.analysis.tags[i]));
    json_t *res = json_pack("{s:s, s:s?, s:s?, s:o, s:s}", "file_id", c.file_id, "ai_filename",
                            c.analysis.filename, "ai_summary", c.analysis.summary, "ai_tags", tags,
                            "analyzer", drive2_analyzer_kind(c.analyzer));
    call_close(&c);
    return worker_task_succeed(t, res);
}

/* reprocess_file(file_id, force=False) -> {file_id, task_id, status}: resets
 * a failed file (any file with force) and sends process_uploaded_file. */
static int reprocess_file(worker_task_t *t) {
    const char *file_id = file_id_arg(t);
    if (!file_id)
        return worker_task_fail_permanently(t, "TypeError",
                                            "reprocess_file(file_id, force) takes a file id");
    const json_t *f = worker_task_arg(t, 1, "force");
    if (f && !json_is_boolean(f))
        return worker_task_fail_permanently(t, "TypeError",
                                            "reprocess_file: force must be true or false");
    bool force = f && json_is_true(f);
    zt_config_t config;
    load_config(t, &config);
    char err[ERR_MAX] = "";
    drive2_catalog_t *catalog = drive2_catalog_new(&config, err, sizeof err);
    if (!catalog)
        return worker_task_retry(t, -1, "%s", err);
    /* The new run's id comes from this task's: a redelivered reprocess_file
     * finds its run already started and does not start another. */
    char run_id[ZT_ID_MAX + 1];
    snprintf(run_id, sizeof run_id, "%.100s:run", worker_task_id(t));
    drive2_file_t row;
    int rc = drive2_catalog_get_file(catalog, file_id, &row, err, sizeof err);
    if (rc == 0 && row.task_id && strcmp(row.task_id, run_id) == 0 &&
        strcmp(row.processing_status, DRIVE2_STATUS_FAILED) != 0) {
        json_t *r = json_pack("{s:s, s:s, s:s, s:b}", "file_id", file_id, "task_id", run_id,
                              "status", row.processing_status, "already_started", 1);
        drive2_file_clear(&row);
        drive2_catalog_destroy(&catalog);
        return worker_task_succeed(t, r);
    }
    drive2_file_clear(&row);
    if (rc == 0)
        rc = drive2_start_run(catalog, &config, file_id, force, run_id, NULL, 0, err, sizeof err);
    drive2_catalog_destroy(&catalog);
    if (rc == ZT_ERR_NOT_FOUND)
        return worker_task_fail_permanently(t, "FileNotFoundError", "%s", err);
    if (rc == ZT_ERR_REJECTED)
        return worker_task_fail_permanently(t, "ValueError", "%s", err);
    if (rc != 0)
        return worker_task_retry(t, -1, "%s", err);
    zt_info("file %s: reprocessing as task %s%s", file_id, run_id, force ? " (forced)" : "");
    return worker_task_succeed(t, json_pack("{s:s, s:s, s:s}", "file_id", file_id, "task_id",
                                            run_id, "status", DRIVE2_STATUS_PENDING));
}

/* cleanup_old_tasks([older_than]) -> {failed, file_ids, older_than}: files
 * processing for longer than older_than seconds (processing_stuck_after by
 * default; the seed's hour) become failed with the reason as their error. */
static int cleanup_old_tasks(worker_task_t *t) {
    zt_config_t config;
    load_config(t, &config);
    double older_than = config.processing_stuck_after;
    const json_t *o = worker_task_arg(t, 0, "older_than");
    if (o) {
        if (!json_is_number(o) || json_number_value(o) < 0)
            return worker_task_fail_permanently(t, "TypeError",
                                                "cleanup_old_tasks(older_than) takes seconds");
        older_than = json_number_value(o);
    }
    char err[ERR_MAX] = "", reason[160];
    snprintf(reason, sizeof reason,
             "stuck in processing for more than %g s; failed by cleanup_old_tasks", older_than);
    drive2_catalog_t *catalog = drive2_catalog_new(&config, err, sizeof err);
    if (!catalog)
        return worker_task_retry(t, -1, "%s", err);
    char **ids = NULL;
    size_t count = 0;
    int rc = drive2_catalog_fail_stuck(catalog, older_than, reason, &ids, &count, err, sizeof err);
    drive2_catalog_destroy(&catalog);
    if (rc != 0)
        return worker_task_retry(t, -1, "%s", err);
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++) {
        json_array_append_new(list, json_string(ids[i]));
        zt_info("file %s: %s", ids[i], reason);
    }
    drive2_ids_free(ids, count);
    return worker_task_succeed(t, json_pack("{s:I, s:o, s:f}", "failed", (json_int_t)count,
                                            "file_ids", list, "older_than", older_than));
}

int tasks_drive2_register(worker_registry_t *registry) {
    worker_task_options_t retried;
    worker_task_options_init(&retried);
    retried.max_retries = 3;  /* transient failures: storage, database, AI service */
    retried.retry_delay = 10; /* seconds, base of the backoff */
    retried.time_limit = 900; /* a large PDF through a slow AI service */
    retried.soft_time_limit = 840;
    worker_task_options_t quick;
    worker_task_options_init(&quick);
    quick.max_retries = 3;
    quick.retry_delay = 10;
    quick.time_limit = 120;
    const struct {
        const char *name;
        worker_task_fn_t *fn;
        const worker_task_options_t *opts;
    } tasks[] = {
        {DRIVE2_TASK_PROCESS, process_uploaded_file, &retried},
        {DRIVE2_TASK_GENERATE_AI, generate_ai_metadata, &retried},
        {DRIVE2_TASK_REPROCESS, reprocess_file, &quick},
        {DRIVE2_TASK_CLEANUP, cleanup_old_tasks, &quick},
    };
    for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
        int rc = worker_registry_add(registry, tasks[i].name, tasks[i].fn, tasks[i].opts);
        if (rc != 0)
            return rc;
    }
    return 0;
}
