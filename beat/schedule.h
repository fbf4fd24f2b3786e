/* schedule: zmqbeat's schedule file (YAML, README "Periodic tasks"), loaded
 * into entries. Every refusal names FILE:LINE and the reason. */
#ifndef BEAT_SCHEDULE_H
#define BEAT_SCHEDULE_H

#include "cron.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;        /* entry name: task-name characters */
    char *task;        /* task name */
    char *queue;       /* default "default" */
    json_t *args;      /* array (owned) */
    json_t *kwargs;    /* object (owned) */
    int priority;      /* 0-9, default 0 */
    int64_t every_ms;  /* interval entries; 0 for crontab ones */
    beat_cron_t *cron; /* crontab entries; NULL for interval ones */
    double expires_s;  /* 0 = the interval, or the time to the next crontab fire */
} beat_entry_t;

typedef struct beat_schedule beat_schedule_t;

/* Loads path. Returns NULL with why = "FILE:LINE: reason" when the file
 * cannot be read or any entry is invalid (nothing is half-loaded). */
beat_schedule_t *beat_schedule_load(const char *path, char *why, size_t why_size);
void beat_schedule_destroy(beat_schedule_t **self_p);

size_t beat_schedule_size(const beat_schedule_t *self);
beat_entry_t *beat_schedule_at(beat_schedule_t *self, size_t i);

/* The first fire of e strictly after `after` (unix seconds). Interval
 * entries fire at anchor + k * every (anchor: the last fire, or the start). */
double beat_entry_next(const beat_entry_t *e, double after, double anchor);

/* How long a run of e fired at `fire` stays worth running (seconds). */
double beat_entry_expires(const beat_entry_t *e, double fire);

#endif
