/* pipeline: the names that tie the Drive2 pipeline together (task names,
 * queues, follow-up task ids) and the two operations both the tasks and the
 * drive2 CLI perform: sending a task to the broker, and resetting a file
 * for a new run. One place, so the CLI and the workers cannot disagree. */
#ifndef DRIVE2_PIPELINE_H
#define DRIVE2_PIPELINE_H

#include "catalog.h"
#include "zt_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The seed's task names (module app.workers.tasks.<module>). */
#define DRIVE2_TASK_PROCESS "app.workers.tasks.file_processing.process_uploaded_file"
#define DRIVE2_TASK_GENERATE_AI "app.workers.tasks.file_processing.generate_ai_metadata"
#define DRIVE2_TASK_REPROCESS "app.workers.tasks.file_processing.reprocess_file"
#define DRIVE2_TASK_CLEANUP "app.workers.tasks.file_processing.cleanup_old_tasks"
#define DRIVE2_TASK_THUMBNAIL "app.workers.tasks.thumbnails.generate_thumbnail"
#define DRIVE2_TASK_COMPLETE "app.workers.tasks.notifications.send_processing_complete"
#define DRIVE2_TASK_FAILED "app.workers.tasks.notifications.send_processing_failed"

/* Their queues. */
#define DRIVE2_QUEUE_AI "ai_processing"
#define DRIVE2_QUEUE_THUMBNAILS "thumbnails"
#define DRIVE2_QUEUE_NOTIFICATIONS "notifications"

/* Steps process_uploaded_file reports as progress (current = 1..5). */
#define DRIVE2_STEPS 5

/* Sends task name(args) (args borrowed; NULL = []) to queue through the
 * broker config->broker_url names, waiting up to timeout_ms for its answer.
 * id NULL makes a new one; id_out (may be NULL) gets the id. A duplicate-id
 * rejection means a task with this id was already sent: *duplicate (may be
 * NULL) is set and 0 returned. Returns 0, or ZT_ERR_REJECTED / ZT_ERR_TIMEOUT
 * / ZT_ERR_INVALID with err filled. */
int drive2_send_task(const zt_config_t *config, const char *name, const json_t *args,
                     const char *queue, const char *id, int timeout_ms, char *id_out,
                     size_t id_size, bool *duplicate, char *err, size_t err_size);

/* Starts a new run of file_id: resets it to pending (a failed file; any
 * with force), records the new task id, and sends process_uploaded_file
 * with it. task_id NULL makes a new id; task_id_out gets it. If the send
 * fails the file is set to failed with the reason. Returns 0, ZT_ERR_NOT_FOUND,
 * ZT_ERR_REJECTED (not failed and no force), or a send error. */
int drive2_start_run(drive2_catalog_t *catalog, const zt_config_t *config, const char *file_id,
                     bool force, const char *task_id, char *task_id_out, size_t id_size, char *err,
                     size_t err_size);

#endif
