/* notify: where Drive2's notices go. With a LINE channel access token
 * (zt_secret LINE_CHANNEL_ACCESS_TOKEN) they are pushed to the owner's LINE
 * user id (line.h); without one (the embedded default) they are appended to
 * an outbox, DATA_DIR/outbox.jsonl, one JSON object per line, which
 * `drive2 notifications` lists. Either way a notice has a key that stays
 * the same across retries and redeliveries of the task sending it: LINE
 * gets it as X-Line-Retry-Key, the outbox skips a key it already holds, so
 * a notice is delivered at most once.
 *
 * Outbox line: {"time", "kind", "user_id", "to" (LINE user id or null),
 * "file_id" (or null), "retry_key", "message" (the Flex message object)}.
 * Appends take an exclusive flock and write each line with one write(), so
 * workers on one host can share the file. */
#ifndef DRIVE2_NOTIFY_H
#define DRIVE2_NOTIFY_H

#include "zt_config.h"

#include <jansson.h>
#include <stddef.h>

typedef struct drive2_notifier drive2_notifier_t;

/* The notification tasks pipeline.h does not name (queue: notifications;
 * beat sends the daily summary on its own schedule). */
#define DRIVE2_TASK_QUOTA_ALERT "app.workers.tasks.notifications.send_storage_quota_alert"
#define DRIVE2_TASK_DAILY_SUMMARY "app.workers.tasks.notifications.send_daily_summary"

#define DRIVE2_OUTBOX_FILE "outbox.jsonl"
#define DRIVE2_OUTBOX_MAX_BYTES (64 << 20) /* bytes of outbox read by a listing */

/* One notice to deliver (borrowed strings). */
typedef struct {
    const char *kind;         /* "processing_complete", "processing_failed", ... */
    const char *user_id;      /* the Drive2 user it is for */
    const char *line_user_id; /* the user's LINE id; NULL when not linked */
    const char *file_id;      /* the file it is about, or NULL */
    const char *key;          /* the same for every retry of this notice */
} drive2_notice_t;

/* Opens LINE when its token is configured, else the outbox. Returns NULL
 * with err filled when the token is configured but unusable. */
drive2_notifier_t *drive2_notifier_new(const zt_config_t *config, char *err, size_t err_size);
void drive2_notifier_destroy(drive2_notifier_t **self_p);

/* "line" or "outbox". */
const char *drive2_notifier_kind(const drive2_notifier_t *self);

/* Delivers message (one Flex message object, borrowed). *receipt (may be
 * NULL; a new object the caller owns) says what happened: {channel, kind,
 * retry_key, to, delivered, duplicate, skipped?, status?, attempts?,
 * request_id?}. A user without a LINE id is skipped when sending to LINE
 * (not an error). Returns 0, or drive2_line_push's errors (ZT_ERR_IO /
 * ZT_ERR_TIMEOUT: retry; ZT_ERR_REJECTED / ZT_ERR_INVALID: do not), or
 * ZT_ERR_IO for an outbox that cannot be written. */
int drive2_notifier_send(drive2_notifier_t *self, const drive2_notice_t *notice,
                         const json_t *message, json_t **receipt, char *err, size_t err_size);

/* The outbox's path for config into buf. */
void drive2_outbox_path(const zt_config_t *config, char *buf, size_t size);

/* The last `limit` outbox entries (0: all), of user_id only when not NULL,
 * oldest first, as a new JSON array in *entries. A missing outbox is empty.
 * Lines that are not JSON objects are skipped. */
int drive2_outbox_list(const zt_config_t *config, const char *user_id, size_t limit,
                       json_t **entries, char *err, size_t err_size);

#endif
