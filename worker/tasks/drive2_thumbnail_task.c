/* app.workers.tasks.thumbnails.generate_thumbnail(file_id): reads the
 * original from the object store, makes its thumbnail (worker/drive2/
 * thumbnail.h: images, PDFs, videos), stores it as thumbnails/<file_id>.jpg
 * (or .webp), records thumbnail_path in the catalog, and reports each of
 * its four steps as progress (docs/DRIVE2.md, "Thumbnails"). The file's
 * processing status is not touched: a file whose thumbnail cannot be made
 * stays completed, the task fails with the reason.
 *
 * libvips starts in the pool child on its first thumbnail (never in the
 * worker parent, which forks the children: libvips is not fork-safe once
 * started); the child keeps it for its next tasks. */
#include "tasks.h"

#include "catalog.h"
#include "drive2_task_args.h"
#include "pipeline.h"
#include "storage.h"
#include "thumbnail.h"

#include "zt_error.h"
#include "zt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_MAX 1024
#define STEPS 4

static void step(worker_task_t *t, int n, const char *what) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s (step %d of %d)", what, n, STEPS);
    worker_task_progress(t, n, STEPS, msg);
}

/* An error that another attempt cannot fix: the input or a setting. */
static bool permanent(int code) {
    return code == ZT_ERR_INVALID || code == ZT_ERR_NOT_FOUND || code == ZT_ERR_TOO_LARGE ||
           code == ZT_ERR_TIMEOUT;
}

static const char *exc_type(int code) {
    switch (code) {
    case ZT_ERR_NOT_FOUND:
        return "FileNotFoundError";
    case ZT_ERR_INVALID:
    case ZT_ERR_TOO_LARGE:
        return "ValueError";
    case ZT_ERR_TIMEOUT:
        return "TimeoutError";
    default:
        return "ConnectionError";
    }
}

static int failed(worker_task_t *t, const char *file_id, const char *step_name, int code,
                  const char *message) {
    zt_warn("file %s: thumbnail %s: %s", file_id, step_name, message);
    if (permanent(code))
        return worker_task_fail_permanently(t, exc_type(code), "%s: %s", step_name, message);
    return worker_task_retry(t, -1, "%s: %s", step_name, message);
}

static const char *source_name(drive2_thumb_source_t s) {
    return s == DRIVE2_THUMB_PDF ? "pdf" : s == DRIVE2_THUMB_VIDEO ? "video" : "image";
}

/* generate_thumbnail(file_id) -> {file_id, thumbnail_path, width, height,
 * bytes, content_type, source, source_width, source_height, loader} */
static int generate_thumbnail(worker_task_t *t) {
    const char *file_id = tasks_drive2_id_arg(t, 0, "file_id");
    if (!file_id)
        return worker_task_fail_permanently(t, "TypeError",
                                            "generate_thumbnail(file_id) takes a file id");
    zt_config_t config;
    tasks_drive2_config(t, &config);
    char err[ERR_MAX] = "";
    drive2_thumbnail_options_t opts;
    int rc = drive2_thumbnail_options_from_config(&config, &opts, err, sizeof err);
    if (rc != 0)
        return worker_task_fail_permanently(t, "ValueError", "%s", err);

    step(t, 1, "download");
    drive2_catalog_t *catalog = drive2_catalog_new(&config, err, sizeof err);
    if (!catalog)
        return failed(t, file_id, "catalog", ZT_ERR_IO, err);
    drive2_file_t row;
    memset(&row, 0, sizeof row);
    drive2_storage_t *storage = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    drive2_thumbnail_t thumb;
    memset(&thumb, 0, sizeof thumb);
    const char *where = "catalog";
    rc = drive2_catalog_get_file(catalog, file_id, &row, err, sizeof err);
    if (rc == 0) {
        where = "download";
        storage = drive2_storage_new(&config, err, sizeof err);
        rc = storage ? drive2_storage_get(storage, row.storage_key, &data, &len, err, sizeof err)
                     : ZT_ERR_INVALID;
    }
    if (rc == 0 && worker_task_soft_limit_exceeded(t)) {
        rc = ZT_ERR_INTERRUPTED;
        snprintf(err, sizeof err, "soft time limit exceeded");
    }
    if (rc == 0) {
        where = "thumbnail";
        step(t, 2, "thumbnail");
        rc = drive2_thumbnail_make(data, len, row.mime_type, &opts, &thumb, err, sizeof err);
    }
    char key[DRIVE2_STORAGE_KEY_MAX];
    if (rc == 0) {
        where = "store";
        step(t, 3, "store");
        rc = drive2_thumbnail_key(file_id, thumb.extension, key, sizeof key);
        if (rc != 0)
            snprintf(err, sizeof err, "no thumbnail key for file id %s", file_id);
        else
            rc = drive2_storage_put(storage, key, thumb.data, thumb.len, thumb.content_type, err,
                                    sizeof err);
    }
    if (rc == 0) {
        where = "update catalog";
        step(t, 4, "update catalog");
        rc = drive2_catalog_set_thumbnail(catalog, file_id, key, err, sizeof err);
        /* A thumbnail of the other format made before a settings change:
         * one thumbnail per file. */
        if (rc == 0 && row.thumbnail_path && strcmp(row.thumbnail_path, key) != 0 &&
            strncmp(row.thumbnail_path, "thumbnails/", 11) == 0) {
            char ignored[256];
            if (drive2_storage_delete(storage, row.thumbnail_path, ignored, sizeof ignored) != 0)
                zt_warn("file %s: old thumbnail %s not removed: %s", file_id, row.thumbnail_path,
                        ignored);
        }
    }
    int out;
    if (rc == 0) {
        zt_info("file %s: %s thumbnail %dx%d (%zu bytes) from a %dx%d %s", file_id,
                thumb.content_type, thumb.width, thumb.height, thumb.len, thumb.source_width,
                thumb.source_height, source_name(thumb.source));
        json_t *r =
            json_pack("{s:s, s:s, s:i, s:i, s:I, s:s, s:s, s:i, s:i, s:s}", "file_id", file_id,
                      "thumbnail_path", key, "width", thumb.width, "height", thumb.height, "bytes",
                      (json_int_t)thumb.len, "content_type", thumb.content_type, "source",
                      source_name(thumb.source), "source_width", thumb.source_width,
                      "source_height", thumb.source_height, "loader", thumb.loader);
        out = worker_task_succeed(t, r);
    } else if (rc == ZT_ERR_INTERRUPTED) {
        out = worker_task_fail(t, "SoftTimeLimitExceeded", "%s: soft time limit exceeded", where);
    } else {
        out = failed(t, file_id, where, rc, err);
    }
    drive2_thumbnail_clear(&thumb);
    free(data);
    drive2_storage_destroy(&storage);
    drive2_file_clear(&row);
    drive2_catalog_destroy(&catalog);
    return out;
}

int tasks_thumbnails_register(worker_registry_t *registry) {
    worker_task_options_t o;
    worker_task_options_init(&o);
    o.max_retries = 3;  /* storage or catalog away */
    o.retry_delay = 10; /* seconds, base of the backoff */
    o.time_limit = 300; /* a video: ffprobe + up to two ffmpeg runs of thumbnail_timeout */
    o.soft_time_limit = 280;
    return worker_registry_add(registry, DRIVE2_TASK_THUMBNAIL, generate_thumbnail, &o);
}
