/* cron: five-field crontab expressions ("0 8 * * 1-5") evaluated in an IANA
 * time zone, for zmqbeat's schedule entries.
 *
 * Fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 (or
 * jan-dec), day of week 0-7 (0 and 7 are Sunday, or sun-sat). Each field is
 * `*`, a number, a range `a-b`, a list `a,b-c`, and any of those with a step
 * `* /n` or `a-b/n` (written without the space). Day of month and day of week
 * follow Vixie cron: when both are restricted, a day matches if EITHER does.
 *
 * Daylight saving time: a local time that does not exist (the hour skipped
 * in spring) fires once, moved forward by the length of the gap (02:30
 * becomes 03:30, as mktime does); a local time that happens twice (the hour
 * repeated in autumn) fires once. */
#ifndef BEAT_CRON_H
#define BEAT_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct beat_cron beat_cron_t;

/* Parses expr in time zone tz (an IANA name such as "Asia/Tokyo"; NULL or
 * "" = UTC). Returns NULL with why filled (which field, what is wrong) for
 * a bad expression, an unknown zone, or one that never fires. */
beat_cron_t *beat_cron_new(const char *expr, const char *tz, char *why, size_t why_size);
void beat_cron_destroy(beat_cron_t **self_p);

/* The first fire strictly after `after` (unix seconds), in unix seconds;
 * -1 if there is none within the next ten years. Not thread-safe: it
 * switches the process's TZ while it computes (zmqbeat is one thread). */
int64_t beat_cron_next(const beat_cron_t *self, int64_t after);

/* The expression and zone as given. */
const char *beat_cron_expr(const beat_cron_t *self);
const char *beat_cron_tz(const beat_cron_t *self);

/* Parses an interval: a positive sum of <number><unit> with units d, h, m,
 * s, ms ("30s", "1h30m", "1d", "250ms"). Returns milliseconds, or -1 with
 * why filled. */
int64_t beat_interval_parse_ms(const char *text, char *why, size_t why_size);

#endif
