/* app.workers.tasks.notifications.*: Drive2's notices over LINE, or into
 * the outbox without a token (worker/drive2/notify.h; docs/DRIVE2.md, "LINE
 * notifications"):
 *   send_processing_complete(file_id)   Flex bubble with the AI results and
 *       the thumbnail as hero image; then checks the owner's storage quota
 *       and sends send_storage_quota_alert when a threshold is crossed
 *   send_processing_failed(file_id[, error])  the error and how to reprocess
 *   send_storage_quota_alert(user_id)   once per crossing of each threshold
 *   send_daily_summary([hours=24])      per user with uploads in the period:
 *       files by status and their size (beat sends it daily)
 * Each notice's key comes from the task id (plus the user or threshold), so
 * a retried or redelivered task reuses its LINE retry key and LINE (or the
 * outbox) delivers it once. Transient failures (LINE 429/5xx after http.c's
 * own retries, catalog away) retry the task; a refusal by LINE (4xx) fails
 * it at once with LINE's message. */
#include "tasks.h"

#include "catalog.h"
#include "drive2_task_args.h"
#include "extract.h"
#include "flex.h"
#include "line.h"
#include "notify.h"
#include "pipeline.h"

#include "zt_error.h"
#include "zt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_MAX 1024
#define THRESHOLDS_MAX 8
#define THUMBNAIL_WAITS 3      /* retries spent waiting for a thumbnail to exist */
#define THUMBNAIL_WAIT_S 5.0   /* seconds between them */
#define FOLLOW_UP_TIMEOUT 5000 /* msecs to wait for the broker's answer */

static bool transient(int code) {
    return code == ZT_ERR_IO || code == ZT_ERR_TIMEOUT || code == ZT_ERR_BACKEND;
}

/* Ends the call after a delivery or catalog error: retry what may pass,
 * fail the rest at once. */
static int failed(worker_task_t *t, int code, const char *message) {
    if (transient(code))
        return worker_task_retry(t, -1, "%s", message);
    return worker_task_fail_permanently(t,
                                        code == ZT_ERR_NOT_FOUND  ? "LookupError"
                                        : code == ZT_ERR_REJECTED ? "PermissionError"
                                                                  : "ValueError",
                                        "%s", message);
}

/* The owner's LINE user id (malloc'd) or NULL when not linked. */
static char *line_id_of(drive2_catalog_t *catalog, const char *user_id) {
    drive2_user_t u;
    memset(&u, 0, sizeof u);
    char ignored[256];
    char *id = NULL;
    if (user_id && drive2_catalog_get_user(catalog, user_id, &u, ignored, sizeof ignored) == 0 &&
        u.line_user_id && *u.line_user_id)
        id = zt_strdup(u.line_user_id);
    drive2_user_clear(&u);
    return id;
}

/* Sends notice + message; *receipt (may be NULL) gets the receipt. */
static int deliver(const zt_config_t *config, const drive2_notice_t *n, json_t *message,
                   json_t **receipt, char *err, size_t err_size) {
    drive2_notifier_t *notifier = drive2_notifier_new(config, err, err_size);
    if (!notifier) {
        json_decref(message);
        return ZT_ERR_INVALID;
    }
    int rc = drive2_notifier_send(notifier, n, message, receipt, err, err_size);
    drive2_notifier_destroy(&notifier);
    json_decref(message);
    return rc;
}

/* --- quota ------------------------------------------------------------------ */

/* quota_alert_thresholds ("80,95") as ascending unique percents. Returns
 * the count, or -1 when the setting is malformed. */
static int parse_thresholds(const char *text, int *out, int max) {
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000 || n == max)
            return -1;
        int at = n;
        while (at > 0 && out[at - 1] > v)
            at--;
        if (at > 0 && out[at - 1] == v) {
            /* repeated: keep one */
        } else {
            memmove(out + at + 1, out + at, (size_t)(n - at) * sizeof *out);
            out[at] = (int)v;
            n++;
        }
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
        while (*p == ' ')
            p++;
    }
    return n;
}

/* send_storage_quota_alert(user_id) -> {user_id, used, quota, percent,
 * crossed, alerted, threshold?, receipt?}. Releases the thresholds the user
 * fell back below, claims the ones crossed, and alerts once for the highest
 * newly claimed one. */
static int send_storage_quota_alert(worker_task_t *t) {
    const char *user_id = tasks_drive2_id_arg(t, 0, "user_id");
    if (!user_id)
        return worker_task_fail_permanently(t, "TypeError",
                                            "send_storage_quota_alert(user_id) takes a user id");
    zt_config_t config;
    tasks_drive2_config(t, &config);
    int th[THRESHOLDS_MAX];
    int nth = parse_thresholds(config.quota_alert_thresholds, th, THRESHOLDS_MAX);
    if (nth < 0)
        return worker_task_fail_permanently(
            t, "ValueError", "quota_alert_thresholds '%s' is not a list of percents 1-1000",
            config.quota_alert_thresholds);
    char err[ERR_MAX] = "";
    drive2_catalog_t *catalog = drive2_catalog_new(&config, err, sizeof err);
    if (!catalog)
        return worker_task_retry(t, -1, "%s", err);
    int64_t used = 0, quota = 0;
    int rc = drive2_catalog_user_usage(catalog, user_id, &used, &quota, err, sizeof err);
    if (rc != 0) {
        drive2_catalog_destroy(&catalog);
        return failed(t, rc, err);
    }
    /* integer percent, rounded down: 79.99% has not crossed 80% */
    int pct = quota > 0 ? (int)((used * 100) / quota) : 1000;
    rc = drive2_catalog_quota_alert_release(catalog, user_id, pct, err, sizeof err);
    int crossed = 0, newly = 0;
    for (int i = 0; rc == 0 && i < nth; i++) {
        if (used * 100 < (int64_t)th[i] * quota)
            break;
        crossed = th[i];
        bool claimed = false;
        rc = drive2_catalog_quota_alert_claim(catalog, user_id, th[i], &claimed, err, sizeof err);
        if (claimed)
            newly = th[i];
    }
    if (rc != 0) {
        drive2_catalog_destroy(&catalog);
        return failed(t, rc, err);
    }
    json_t *r = json_pack("{s:s, s:I, s:I, s:i}", "user_id", user_id, "used", (json_int_t)used,
                          "quota", (json_int_t)quota, "percent", pct);
    json_object_set_new(r, "crossed", crossed ? json_integer(crossed) : json_null());
    if (!newly) {
        /* Nothing crossed, or every crossed threshold was alerted before. */
        json_object_set_new(r, "alerted", json_false());
        drive2_catalog_destroy(&catalog);
        return worker_task_succeed(t, r);
    }
    char *line_id = line_id_of(catalog, user_id);
    char key[200];
    snprintf(key, sizeof key, "storage_quota_alert:%s:%d:%.120s", user_id, newly,
             worker_task_id(t));
    drive2_notice_t n = {"storage_quota_alert", user_id, line_id, NULL, key};
    json_t *receipt = NULL;
    rc = deliver(&config, &n, drive2_flex_quota_alert(user_id, used, quota, newly), &receipt, err,
                 sizeof err);
    if (rc != 0) {
        /* Not delivered: forget the claims of this call so the retry (same
         * task id, same retry key) claims and sends again. */
        char ignored[256];
        (void)drive2_catalog_quota_alert_release(catalog, user_id, crossed ? crossed - 1 : 0,
                                                 ignored, sizeof ignored);
        free(line_id);
        json_decref(receipt);
        json_decref(r);
        drive2_catalog_destroy(&catalog);
        return failed(t, rc, err);
    }
    zt_info("user %s: storage at %d%% of the quota; alerted for %d%%", user_id, pct, newly);
    json_object_set_new(r, "alerted", json_true());
    json_object_set_new(r, "threshold", json_integer(newly));
    json_object_set_new(r, "receipt", receipt);
    free(line_id);
    drive2_catalog_destroy(&catalog);
    return worker_task_succeed(t, r);
}

/* After a completed upload: sends send_storage_quota_alert(owner) when the
 * owner is at or above the lowest threshold (that task decides whether the
 * crossing is new), else forgets alerts the owner fell back below. Returns
 * what it did, for the result. */
static json_t *check_quota(worker_task_t *t, const zt_config_t *config, drive2_catalog_t *catalog,
                           const char *owner) {
    int th[THRESHOLDS_MAX];
    int nth = parse_thresholds(config->quota_alert_thresholds, th, THRESHOLDS_MAX);
    char err[ERR_MAX] = "";
    int64_t used = 0, quota = 0;
    if (nth <= 0 || drive2_catalog_user_usage(catalog, owner, &used, &quota, err, sizeof err) != 0)
        return json_pack("{s:b, s:s}", "checked", 0, "error",
                         nth <= 0 ? "no usable quota_alert_thresholds" : err);
    int pct = quota > 0 ? (int)((used * 100) / quota) : 1000;
    json_t *q = json_pack("{s:b, s:i}", "checked", 1, "percent", pct);
    if (used * 100 < (int64_t)th[0] * quota) {
        (void)drive2_catalog_quota_alert_release(catalog, owner, pct, err, sizeof err);
        return q;
    }
    char id[ZT_ID_MAX + 1];
    snprintf(id, sizeof id, "%.100s:quota", worker_task_id(t));
    json_t *args = json_pack("[s]", owner);
    bool duplicate = false;
    int rc = drive2_send_task(config, DRIVE2_TASK_QUOTA_ALERT, args, DRIVE2_QUEUE_NOTIFICATIONS, id,
                              FOLLOW_UP_TIMEOUT, NULL, 0, &duplicate, err, sizeof err);
    json_decref(args);
    json_object_set_new(q, "alert_task", json_pack("{s:s, s:b}", "id", id, "sent", rc == 0));
    if (rc != 0) {
        zt_warn("user %s: quota alert not queued: %s", owner, err);
        json_object_set_new(json_object_get(q, "alert_task"), "error", json_string(err));
    }
    return q;
}

/* --- file notices ------------------------------------------------------------ */

/* The hero image URL of a completed file, "" when none can be formed. The
 * thumbnail may still be in the making (its task was sent together with
 * this one): then *wait is set when it is worth waiting for. */
static void hero_for(const zt_config_t *config, const drive2_file_t *row, char *url, size_t size,
                     bool *wait) {
    *wait = false;
    url[0] = '\0';
    if (!config->thumbnail_public_base_url[0])
        return;
    if (row->thumbnail_path) {
        (void)drive2_flex_hero_url(config->thumbnail_public_base_url, row->thumbnail_path, url,
                                   size);
        return;
    }
    *wait = drive2_mime_wants_thumbnail(row->mime_type);
}

static void fill_flex(const drive2_file_t *row, drive2_flex_file_t *f) {
    memset(f, 0, sizeof *f);
    f->file_id = row->id;
    f->original_name = row->original_name;
    f->ai_filename = row->ai_filename;
    f->ai_summary = row->ai_summary;
    f->ai_tags_json = row->ai_tags;
    f->status = row->processing_status;
    f->mime_type = row->mime_type;
    f->size = row->size;
    f->error = row->error;
}

/* The worker's settings, the catalog and file_id's row, for a notice about
 * that file. Returns 0 with *catalog set, or (*catalog NULL) what the task
 * returns: a retry when the catalog cannot be opened, else the failure. */
static int open_file(worker_task_t *t, const char *file_id, zt_config_t *config,
                     drive2_catalog_t **catalog, drive2_file_t *row) {
    tasks_drive2_config(t, config);
    char err[ERR_MAX] = "";
    *catalog = drive2_catalog_new(config, err, sizeof err);
    if (!*catalog)
        return worker_task_retry(t, -1, "%s", err);
    int rc = drive2_catalog_get_file(*catalog, file_id, row, err, sizeof err);
    if (rc != 0) {
        drive2_catalog_destroy(catalog);
        return failed(t, rc, err);
    }
    return 0;
}

/* send_processing_complete(file_id) -> {file_id, sent, receipt, quota} */
static int send_processing_complete(worker_task_t *t) {
    const char *file_id = tasks_drive2_id_arg(t, 0, "file_id");
    if (!file_id)
        return worker_task_fail_permanently(t, "TypeError",
                                            "send_processing_complete(file_id) takes a file id");
    zt_config_t config;
    drive2_catalog_t *catalog = NULL;
    drive2_file_t row;
    int rc = open_file(t, file_id, &config, &catalog, &row);
    if (!catalog)
        return rc;
    char err[ERR_MAX] = "";
    if (strcmp(row.processing_status, DRIVE2_STATUS_COMPLETED) != 0) {
        /* Reset or failed since (reprocess, cleanup): this notice is stale. */
        json_t *r = json_pack("{s:s, s:b, s:s}", "file_id", file_id, "sent", 0, "skipped",
                              "the file is not completed any more");
        json_object_set_new(r, "processing_status", json_string(row.processing_status));
        drive2_file_clear(&row);
        drive2_catalog_destroy(&catalog);
        return worker_task_succeed(t, r);
    }
    char hero[DRIVE2_LINE_URL_MAX + 1];
    bool wait = false;
    hero_for(&config, &row, hero, sizeof hero, &wait);
    if (wait && worker_task_retries(t) < THUMBNAIL_WAITS) {
        drive2_file_clear(&row);
        drive2_catalog_destroy(&catalog);
        return worker_task_retry(t, THUMBNAIL_WAIT_S, "waiting for the thumbnail of %s", file_id);
    }
    char *line_id = line_id_of(catalog, row.owner);
    char key[200];
    snprintf(key, sizeof key, "processing_complete:%.150s", worker_task_id(t));
    drive2_flex_file_t f;
    fill_flex(&row, &f);
    f.hero_url = hero[0] ? hero : NULL;
    drive2_notice_t n = {"processing_complete", row.owner, line_id, file_id, key};
    json_t *receipt = NULL;
    rc = deliver(&config, &n, drive2_flex_processing_complete(&f), &receipt, err, sizeof err);
    free(line_id);
    if (rc != 0) {
        json_decref(receipt);
        drive2_file_clear(&row);
        drive2_catalog_destroy(&catalog);
        return failed(t, rc, err);
    }
    json_t *r = json_pack("{s:s, s:b, s:o}", "file_id", file_id, "sent", 1, "receipt", receipt);
    json_object_set_new(r, "hero_url", hero[0] ? json_string(hero) : json_null());
    json_object_set_new(r, "quota", check_quota(t, &config, catalog, row.owner));
    drive2_file_clear(&row);
    drive2_catalog_destroy(&catalog);
    return worker_task_succeed(t, r);
}

/* send_processing_failed(file_id[, error]) -> {file_id, sent, receipt} */
static int send_processing_failed(worker_task_t *t) {
    const char *file_id = tasks_drive2_id_arg(t, 0, "file_id");
    if (!file_id)
        return worker_task_fail_permanently(
            t, "TypeError", "send_processing_failed(file_id, error) takes a file id");
    const json_t *e = worker_task_arg(t, 1, "error");
    if (e && !json_is_string(e) && !json_is_null(e))
        return worker_task_fail_permanently(t, "TypeError",
                                            "send_processing_failed: error must be a string");
    zt_config_t config;
    drive2_catalog_t *catalog = NULL;
    drive2_file_t row;
    int rc = open_file(t, file_id, &config, &catalog, &row);
    if (!catalog)
        return rc;
    char err[ERR_MAX] = "";
    char *line_id = line_id_of(catalog, row.owner);
    char key[200];
    snprintf(key, sizeof key, "processing_failed:%.150s", worker_task_id(t));
    drive2_flex_file_t f;
    fill_flex(&row, &f);
    f.status = DRIVE2_STATUS_FAILED;
    if (json_is_string(e) && *json_string_value(e))
        f.error = json_string_value(e); /* the reason the pipeline sent */
    drive2_notice_t n = {"processing_failed", row.owner, line_id, file_id, key};
    json_t *receipt = NULL;
    rc = deliver(&config, &n, drive2_flex_processing_failed(&f), &receipt, err, sizeof err);
    free(line_id);
    drive2_file_clear(&row);
    drive2_catalog_destroy(&catalog);
    if (rc != 0) {
        json_decref(receipt);
        return failed(t, rc, err);
    }
    return worker_task_succeed(
        t, json_pack("{s:s, s:b, s:o}", "file_id", file_id, "sent", 1, "receipt", receipt));
}

/* --- daily summary ----------------------------------------------------------- */

static void catalog_time(time_t when, char *buf, size_t size) {
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
}

/* send_daily_summary([hours=24]) -> {since, users, sent, skipped, failed,
 * summaries: [{user_id, files, bytes, by_status, delivered, ...}]} */
static int send_daily_summary(worker_task_t *t) {
    const json_t *h = worker_task_arg(t, 0, "hours");
    double hours = 24;
    if (h) {
        if (!json_is_number(h) || json_number_value(h) <= 0 || json_number_value(h) > 24 * 366)
            return worker_task_fail_permanently(
                t, "TypeError", "send_daily_summary(hours) takes hours, more than 0");
        hours = json_number_value(h);
    }
    zt_config_t config;
    tasks_drive2_config(t, &config);
    char err[ERR_MAX] = "";
    drive2_catalog_t *catalog = drive2_catalog_new(&config, err, sizeof err);
    if (!catalog)
        return worker_task_retry(t, -1, "%s", err);
    time_t now = time(NULL);
    char since[40], label[64];
    catalog_time(now - (time_t)(hours * 3600), since, sizeof since);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (hours == 24)
        strftime(label, sizeof label, "%Y-%m-%d (last 24 h, UTC)", &tm);
    else {
        char end[32];
        strftime(end, sizeof end, "%Y-%m-%d %H:%M UTC", &tm);
        snprintf(label, sizeof label, "%g h to %s", hours, end);
    }
    drive2_activity_t *rows = NULL;
    size_t count = 0;
    int rc = drive2_catalog_activity(catalog, since, &rows, &count, err, sizeof err);
    if (rc != 0) {
        drive2_catalog_destroy(&catalog);
        return failed(t, rc, err);
    }
    json_t *summaries = json_array();
    int users = 0, sent = 0, skipped = 0, failures = 0, transient_failures = 0;
    char last_err[ERR_MAX] = "";
    /* rows are ordered by owner: one notice per run of the same owner */
    for (size_t i = 0; i < count;) {
        size_t j = i;
        while (j < count && strcmp(rows[j].owner, rows[i].owner) == 0)
            j++;
        const char *owner = rows[i].owner;
        drive2_flex_count_t counts[16];
        size_t n = 0;
        int64_t files = 0, bytes = 0;
        json_t *by_status = json_object();
        for (size_t k = i; k < j; k++) {
            if (n < sizeof counts / sizeof counts[0])
                counts[n++] = (drive2_flex_count_t){rows[k].status, rows[k].files, rows[k].bytes};
            files += rows[k].files;
            bytes += rows[k].bytes;
            json_object_set_new(by_status, rows[k].status,
                                json_pack("{s:I, s:I}", "files", (json_int_t)rows[k].files, "bytes",
                                          (json_int_t)rows[k].bytes));
        }
        users++;
        char *line_id = line_id_of(catalog, owner);
        char key[300];
        snprintf(key, sizeof key, "daily_summary:%.120s:%.64s", worker_task_id(t), owner);
        drive2_notice_t notice = {"daily_summary", owner, line_id, NULL, key};
        json_t *receipt = NULL;
        char e2[ERR_MAX] = "";
        int drc = deliver(&config, &notice, drive2_flex_daily_summary(owner, label, counts, n),
                          &receipt, e2, sizeof e2);
        free(line_id);
        json_t *s = json_pack("{s:s, s:I, s:I, s:o}", "user_id", owner, "files", (json_int_t)files,
                              "bytes", (json_int_t)bytes, "by_status", by_status);
        if (drc == 0) {
            bool skip = json_object_get(receipt, "skipped") != NULL;
            skip ? skipped++ : sent++;
            json_object_set_new(s, "receipt", receipt);
        } else {
            failures++;
            if (transient(drc))
                transient_failures++;
            snprintf(last_err, sizeof last_err, "%s", e2);
            json_object_set_new(s, "error", json_string(e2));
            json_decref(receipt);
            zt_warn("daily summary for %s not delivered: %s", owner, e2);
        }
        json_array_append_new(summaries, s);
        i = j;
    }
    drive2_activity_free(rows, count);
    drive2_catalog_destroy(&catalog);
    if (transient_failures > 0) {
        /* The ones delivered keep their retry keys: a retry sends them once. */
        json_decref(summaries);
        return worker_task_retry(t, -1, "%d of %d daily summaries not delivered: %s",
                                 transient_failures, users, last_err);
    }
    zt_info("daily summary since %s: %d users, %d sent, %d skipped, %d failed", since, users, sent,
            skipped, failures);
    return worker_task_succeed(t,
                               json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:o}", "since", since,
                                         "period", label, "users", users, "sent", sent, "skipped",
                                         skipped, "failed", failures, "summaries", summaries));
}

int tasks_notifications_register(worker_registry_t *registry) {
    worker_task_options_t o;
    worker_task_options_init(&o);
    o.max_retries = 5;  /* LINE or the catalog away; also the thumbnail waits */
    o.retry_delay = 10; /* seconds, base of the backoff */
    o.time_limit = 180; /* http.c gives up after 120 s */
    o.soft_time_limit = 170;
    worker_task_options_t daily = o;
    daily.time_limit = 900; /* one push per active user */
    daily.soft_time_limit = 880;
    const struct {
        const char *name;
        worker_task_fn_t *fn;
        const worker_task_options_t *opts;
    } tasks[] = {
        {DRIVE2_TASK_COMPLETE, send_processing_complete, &o},
        {DRIVE2_TASK_FAILED, send_processing_failed, &o},
        {DRIVE2_TASK_QUOTA_ALERT, send_storage_quota_alert, &o},
        {DRIVE2_TASK_DAILY_SUMMARY, send_daily_summary, &daily},
    };
    for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
        int rc = worker_registry_add(registry, tasks[i].name, tasks[i].fn, tasks[i].opts);
        if (rc != 0)
            return rc;
    }
    return 0;
}
