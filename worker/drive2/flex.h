/* flex: the LINE Flex Messages Drive2 sends (jansson objects, ready for
 * drive2_line_push or the outbox): processing complete, processing failed,
 * storage quota alert, daily summary. Each is one message object
 * {"type": "flex", "altText", "contents": {"type": "bubble", ...}} built
 * within LINE's limits whatever the input: texts are clipped at character
 * boundaries (UTF-16 counts, as LINE counts), at most DRIVE2_FLEX_TAGS_MAX
 * tags, the altText under DRIVE2_LINE_ALT_TEXT_MAX, the bubble under
 * DRIVE2_LINE_BUBBLE_MAX bytes. Every function returns a new reference (the
 * caller owns it) and never NULL. Strings in the inputs are borrowed and may
 * be NULL. */
#ifndef DRIVE2_FLEX_H
#define DRIVE2_FLEX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DRIVE2_FLEX_TAGS_MAX 8      /* tags shown in a bubble */
#define DRIVE2_FLEX_SUMMARY_MAX 500 /* characters of the AI summary shown */
#define DRIVE2_FLEX_NAME_MAX 100    /* characters of a file name shown */
#define DRIVE2_FLEX_ERROR_MAX 400   /* characters of an error shown */

/* One file, as a notice shows it. */
typedef struct {
    const char *file_id;
    const char *original_name;
    const char *ai_filename; /* suggested name */
    const char *ai_summary;
    const char *ai_tags_json; /* JSON array text, as the catalog stores it */
    const char *status;       /* processing_status */
    const char *mime_type;
    int64_t size;         /* bytes */
    const char *error;    /* why it failed */
    const char *hero_url; /* https URL of a JPEG/PNG thumbnail, or NULL */
} drive2_flex_file_t;

/* One line of a daily summary: files of one status. */
typedef struct {
    const char *status;
    int64_t files;
    int64_t bytes;
} drive2_flex_count_t;

json_t *drive2_flex_processing_complete(const drive2_flex_file_t *f);

/* The error and a hint to reprocess (`drive2 reprocess FILE_ID`). */
json_t *drive2_flex_processing_failed(const drive2_flex_file_t *f);

/* used and quota in bytes; threshold_pct: the threshold crossed (80, 95...). */
json_t *drive2_flex_quota_alert(const char *user_id, int64_t used, int64_t quota,
                                int threshold_pct);

/* day: the period's label ("2026-11-28"); counts[0..n) per status. */
json_t *drive2_flex_daily_summary(const char *user_id, const char *day,
                                  const drive2_flex_count_t *counts, size_t n);

/* A copy of text clipped to at most max_units UTF-16 code units at a
 * character boundary, with "…" when clipped; control characters other than
 * newline become spaces. NULL text gives "". malloc'd. */
char *drive2_flex_clip(const char *text, size_t max_units);

/* "1.5 MB"-style size into buf. */
void drive2_flex_format_bytes(int64_t bytes, char *buf, size_t size);

/* The hero image URL of a thumbnail: base (must be https://) + "/" + path
 * (percent-encoded, '/' kept), into buf. Returns 0, or ZT_ERR_INVALID when
 * no usable URL can be formed (no base, not https, not JPEG/PNG as LINE
 * requires, longer than DRIVE2_LINE_URL_MAX). */
int drive2_flex_hero_url(const char *base, const char *thumbnail_path, char *buf, size_t size);

#endif
