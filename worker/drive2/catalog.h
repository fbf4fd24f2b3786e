/* catalog: Drive2's database of users, files and (for the embedded vector
 * store) embeddings. Two backends behind one API, chosen by database_url:
 * SQLite ("" = DATA_DIR/catalog.db, or sqlite:///PATH) and PostgreSQL via
 * libpq (postgresql://...). One schema, from the numbered migrations in
 * worker/drive2/migrations/, applied by drive2_catalog_new(). Every query is
 * parameterised. A catalog is one connection: use it from one thread; each
 * process (worker child, CLI) opens its own. Status changes are conditional
 * so a redelivered task run is harmless (docs/DRIVE2.md, "Catalog database").
 *
 * Every function returns 0 or a negative ZT_ERR_* code with err filled
 * (err may be NULL when err_size is 0). Error texts name the operation and
 * the file id, never a password. */
#ifndef DRIVE2_CATALOG_H
#define DRIVE2_CATALOG_H

#include "analysis.h"
#include "zt_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct drive2_catalog drive2_catalog_t;

/* The four processing states, as stored in files.processing_status. */
#define DRIVE2_STATUS_PENDING "pending"
#define DRIVE2_STATUS_PROCESSING "processing"
#define DRIVE2_STATUS_COMPLETED "completed"
#define DRIVE2_STATUS_FAILED "failed"

/* Bytes a new user may store unless set otherwise (10 GiB). */
#define DRIVE2_DEFAULT_QUOTA_BYTES 10737418240LL

/* One row of files. Every string is malloc'd (NULL = SQL NULL); free with
 * drive2_file_clear(). Timestamps are UTC text, 2026-11-28T17:00:00.123456Z. */
typedef struct {
    char *id;
    char *owner;
    char *original_name;
    char *mime_type;
    int64_t size; /* bytes */
    char *checksum;
    char *storage_key;
    char *processing_status;
    char *task_id;
    char *error;
    char *ai_filename;
    char *ai_summary;
    char *ai_tags; /* JSON array text */
    char *thumbnail_path;
    char *uploaded_at;
    char *processed_at;
    char *processing_started_at;
    char *updated_at;
    int64_t attempts; /* runs started since upload or the last reset */
} drive2_file_t;

/* What an upload knows about a new file (all borrowed). */
typedef struct {
    const char *id;
    const char *owner;
    const char *original_name;
    const char *mime_type;
    int64_t size; /* bytes */
    const char *checksum;
    const char *storage_key;
    const char *task_id; /* may be NULL: set later with drive2_catalog_set_task */
} drive2_new_file_t;

/* One row of users (strings malloc'd; free with drive2_user_clear). */
typedef struct {
    char *id;
    int64_t quota_bytes;
    char *line_user_id; /* NULL when not linked */
    char *created_at;
} drive2_user_t;

/* A search answer: a file id and its cosine similarity (-1..1). */
typedef struct {
    char file_id[64];
    double score;
} drive2_hit_t;

void drive2_file_clear(drive2_file_t *f);
void drive2_user_clear(drive2_user_t *u);

/* Opens the catalog config->database_url names (creating DATA_DIR and the
 * SQLite file when needed) and applies pending migrations. Safe to call from
 * several processes at once: the migration runs under a lock (SQLite: BEGIN
 * IMMEDIATE; PostgreSQL: an advisory transaction lock). Returns the catalog,
 * or NULL with err filled. */
drive2_catalog_t *drive2_catalog_new(const zt_config_t *config, char *err, size_t err_size);
void drive2_catalog_destroy(drive2_catalog_t **self_p);

/* "sqlite" or "postgresql". */
const char *drive2_catalog_backend(const drive2_catalog_t *self);

/* The highest applied migration version. */
int drive2_catalog_schema_version(drive2_catalog_t *self, int *version, char *err, size_t err_size);

/* --- users ------------------------------------------------------------- */

/* Creates user_id with quota_bytes (< 0: the default) and line_user_id (may
 * be NULL) or, if it exists, updates both. */
int drive2_catalog_put_user(drive2_catalog_t *self, const char *user_id, int64_t quota_bytes,
                            const char *line_user_id, char *err, size_t err_size);

/* Reads a user. ZT_ERR_NOT_FOUND if there is none. */
int drive2_catalog_get_user(drive2_catalog_t *self, const char *user_id, drive2_user_t *out,
                            char *err, size_t err_size);

/* Bytes of user_id's files (*used) and the user's quota (*quota; the default
 * for an unknown user). */
int drive2_catalog_user_usage(drive2_catalog_t *self, const char *user_id, int64_t *used,
                              int64_t *quota, char *err, size_t err_size);

/* --- files ------------------------------------------------------------- */

/* Inserts a pending file, creating its owner with the default quota if
 * needed. In one transaction the owner's quota is checked: a file that would
 * take the owner past it is refused with ZT_ERR_TOO_LARGE. An existing id is
 * ZT_ERR_REJECTED. */
int drive2_catalog_insert_file(drive2_catalog_t *self, const drive2_new_file_t *f, char *err,
                               size_t err_size);

/* Reads a file into out (cleared first). ZT_ERR_NOT_FOUND if there is none. */
int drive2_catalog_get_file(drive2_catalog_t *self, const char *file_id, drive2_file_t *out,
                            char *err, size_t err_size);

/* Records the task that will process the file (after upload or reprocess
 * sent it), without changing its status. */
int drive2_catalog_set_task(drive2_catalog_t *self, const char *file_id, const char *task_id,
                            char *err, size_t err_size);

/* Moves a file to processing for run task_id: allowed from pending,
 * processing (a redelivery or a retry) and failed; counts an attempt and
 * restarts the stuck clock. ZT_ERR_REJECTED if the file is completed (the
 * caller skips the run), ZT_ERR_NOT_FOUND if it does not exist. */
int drive2_catalog_start_processing(drive2_catalog_t *self, const char *file_id,
                                    const char *task_id, char *err, size_t err_size);

/* Writes the AI results (filename, summary, tags) while the file is still
 * processing. ZT_ERR_REJECTED if it is not processing any more. */
int drive2_catalog_save_results(drive2_catalog_t *self, const char *file_id,
                                const drive2_analysis_t *a, char *err, size_t err_size);

/* Writes the AI results whatever the file's status (generate_ai_metadata:
 * the AI step run on its own); the status does not change. */
int drive2_catalog_update_ai(drive2_catalog_t *self, const char *file_id,
                             const drive2_analysis_t *a, char *err, size_t err_size);

/* In one transaction: writes the AI results, clears error, sets completed
 * and processed_at. Only from processing: ZT_ERR_REJECTED otherwise (it was
 * reset or failed meanwhile). */
int drive2_catalog_complete(drive2_catalog_t *self, const char *file_id, const drive2_analysis_t *a,
                            char *err, size_t err_size);

/* Stores error on a file still processing (a step failed and will be
 * retried); the status does not change. */
int drive2_catalog_note_error(drive2_catalog_t *self, const char *file_id, const char *error,
                              char *err, size_t err_size);

/* Sets a pending or processing file to failed with error and processed_at.
 * ZT_ERR_REJECTED if it is completed or already failed. */
int drive2_catalog_fail(drive2_catalog_t *self, const char *file_id, const char *error, char *err,
                        size_t err_size);

/* Resets a failed file (or, with force, one in any state) to pending for a
 * new run: clears the AI results, error, task id, thumbnail, processed_at
 * and attempts. ZT_ERR_REJECTED if the file is not failed and force is
 * false. */
int drive2_catalog_reset(drive2_catalog_t *self, const char *file_id, bool force, char *err,
                         size_t err_size);

/* Records the thumbnail of a file. */
int drive2_catalog_set_thumbnail(drive2_catalog_t *self, const char *file_id, const char *path,
                                 char *err, size_t err_size);

/* Ids of files processing for more than older_than seconds (at most max;
 * *ids is a malloc'd array of malloc'd strings, free with drive2_ids_free). */
int drive2_catalog_list_stuck(drive2_catalog_t *self, double older_than, size_t max, char ***ids,
                              size_t *count, char *err, size_t err_size);

/* Sets every file processing for more than older_than seconds to failed
 * with reason as its error, in one statement; *ids and *count (both may be NULL)
 * get the ids it failed. */
int drive2_catalog_fail_stuck(drive2_catalog_t *self, double older_than, const char *reason,
                              char ***ids, size_t *count, char *err, size_t err_size);

void drive2_ids_free(char **ids, size_t count);

/* Deletes a file's row and its embedding. ZT_ERR_NOT_FOUND if no row. */
int drive2_catalog_delete_file(drive2_catalog_t *self, const char *file_id, char *err,
                               size_t err_size);

/* --- quota alerts and activity (notifications) -------------------------- */

/* Records that user_id was alerted for crossing threshold_pct (e.g. 80) of
 * its quota. *claimed = true when this call recorded it (send the alert),
 * false when it was already recorded (an alert went out for this crossing).
 * Atomic: of several processes claiming at once, one gets true. */
int drive2_catalog_quota_alert_claim(drive2_catalog_t *self, const char *user_id, int threshold_pct,
                                     bool *claimed, char *err, size_t err_size);

/* Forgets user_id's alerts for thresholds above pct_now (its usage fell
 * below them), so crossing them again alerts again. */
int drive2_catalog_quota_alert_release(drive2_catalog_t *self, const char *user_id, int pct_now,
                                       char *err, size_t err_size);

/* One line of drive2_catalog_activity (strings malloc'd). */
typedef struct {
    char *owner;
    char *status;  /* processing_status */
    int64_t files; /* uploads */
    int64_t bytes; /* their total size */
} drive2_activity_t;

/* Files uploaded at or after since (catalog timestamp text, see
 * drive2_catalog_now), per owner and status, ordered by owner then status.
 * *rows is malloc'd (free with drive2_activity_free); *count may be 0. */
int drive2_catalog_activity(drive2_catalog_t *self, const char *since, drive2_activity_t **rows,
                            size_t *count, char *err, size_t err_size);
void drive2_activity_free(drive2_activity_t *rows, size_t count);

/* --- embeddings (the embedded vector store) ----------------------------- */

/* Stores file_id's vector (dim floats), replacing any earlier one: one
 * vector per file. */
int drive2_catalog_put_embedding(drive2_catalog_t *self, const char *file_id, const float *v,
                                 size_t dim, char *err, size_t err_size);

/* The k stored vectors of the same dim nearest to query by cosine
 * similarity, best first, into hits[0..*found). Vectors of another dim (an
 * earlier model) are skipped. O(rows x dim): fine for the embedded store. */
int drive2_catalog_search_embeddings(drive2_catalog_t *self, const float *query, size_t dim,
                                     drive2_hit_t *hits, size_t k, size_t *found, char *err,
                                     size_t err_size);

/* Number of stored vectors (for file_id only, if not NULL). */
int drive2_catalog_count_embeddings(drive2_catalog_t *self, const char *file_id, int64_t *count,
                                    char *err, size_t err_size);

/* Deletes file_id's vector (no error if it has none). */
int drive2_catalog_delete_embedding(drive2_catalog_t *self, const char *file_id, char *err,
                                    size_t err_size);

/* Writes the current UTC time in the catalog's timestamp form (buf >= 32). */
void drive2_catalog_now(char *buf, size_t size);

#endif
