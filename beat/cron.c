/* cron: see cron.h.
 *
 * The search runs on the naive local calendar (field arithmetic through
 * timegm/gmtime_r, which know no DST), finds the next local date and time
 * that matches, and only then turns it into an instant with mktime() in the
 * entry's zone. So a matching local time inside a DST gap becomes the first
 * instant after the gap, and a repeated local time is one candidate, not
 * two. */
#define _DEFAULT_SOURCE /* timegm */
#include "cron.h"
#include "zt_error.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ZONEINFO "/usr/share/zoneinfo/"
#define SEARCH_STEPS 200000 /* each step moves at least a minute, usually a day or more */
#define HORIZON_S (10LL * 366 * 86400)

struct beat_cron {
    uint64_t minute; /* bit n: minute n */
    uint32_t hour;   /* bit n: hour n */
    uint32_t mday;   /* bit n: day n (1-31) */
    uint16_t month;  /* bit n: month n (1-12) */
    uint8_t wday;    /* bit n: weekday n (0 = Sunday) */
    bool mday_any;   /* the field was `*` (or `* /n`) */
    bool wday_any;
    char *expr;
    char *tz; /* "" = UTC */
};

typedef struct {
    const char *name;
    int lo, hi;
    const char *const *names; /* names for lo.., or NULL */
} field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const field_t fields[5] = {{"minute", 0, 59, NULL},
                                  {"hour", 0, 23, NULL},
                                  {"day of month", 1, 31, NULL},
                                  {"month", 1, 12, month_names},
                                  {"day of week", 0, 7, day_names}};

/* Reads a number or a name at *p. Returns 0 and advances, or -1. */
static int parse_value(const char **p, const field_t *f, int *out) {
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (f->names && isalpha((unsigned char)s[0]) && isalpha((unsigned char)s[1]) &&
        isalpha((unsigned char)s[2])) {
        int n = f == &fields[3] ? 12 : 7;
        for (int i = 0; i < n; i++)
            if (strncasecmp(s, f->names[i], 3) == 0) {
                *out = f->lo + i;
                *p = s + 3;
                return 0;
            }
    }
    return -1;
}

/* Parses one field into bits; any tells whether it began with `*`. */
static int parse_field(const char *text, const field_t *f, uint64_t *bits, bool *any, char *why,
                       size_t why_size) {
    *bits = 0;
    *any = false;
    const char *p = text;
    for (;;) {
        int lo, hi, step = 1;
        if (*p == '*') {
            lo = f->lo;
            hi = f->hi;
            p++;
            *any = true;
        } else {
            if (parse_value(&p, f, &lo) != 0)
                goto bad;
            hi = lo;
            if (*p == '-') {
                p++;
                if (parse_value(&p, f, &hi) != 0)
                    goto bad;
            }
        }
        if (*p == '/') {
            p++;
            if (parse_value(&p, &(field_t){"step", 1, 1000, NULL}, &step) != 0 || step < 1)
                goto bad;
            if (lo == hi && !*any)
                hi = f->hi; /* "5/15": from 5 to the end, as Vixie cron */
        }
        if (lo < f->lo || hi > f->hi || lo > hi) {
            snprintf(why, why_size, "%s field '%s': values must be %d-%d, low to high", f->name,
                     text, f->lo, f->hi);
            return ZT_ERR_INVALID;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << v;
        if (*p == ',') {
            p++;
            *any = false; /* "*,5" is not a plain star */
            continue;
        }
        if (*p == '\0')
            return 0;
        goto bad;
    }
bad:
    snprintf(why, why_size, "%s field '%s' is not a number, range, list or step", f->name, text);
    return ZT_ERR_INVALID;
}

/* A zone name from the system's tz database: no path tricks. */
static bool zone_exists(const char *tz) {
    if (!*tz || tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 64)
        return false;
    for (const char *c = tz; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("/_-+", *c))
            return false;
    char path[128];
    snprintf(path, sizeof path, ZONEINFO "%s", tz);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

beat_cron_t *beat_cron_new(const char *expr, const char *tz, char *why, size_t why_size) {
    if (!tz)
        tz = "";
    if (*tz && strcmp(tz, "UTC") != 0 && !zone_exists(tz)) {
        snprintf(why, why_size, "unknown time zone '%s' (not in " ZONEINFO ")", tz);
        return NULL;
    }
    char copy[256];
    if (!expr || strlen(expr) >= sizeof copy) {
        snprintf(why, why_size, "crontab expression missing or too long");
        return NULL;
    }
    snprintf(copy, sizeof copy, "%s", expr);
    char *parts[6];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " \t", &save); t && n < 6; t = strtok_r(NULL, " \t", &save))
        parts[n++] = t;
    if (n != 5) {
        snprintf(why, why_size,
                 "crontab '%s' has %d fields; it needs 5 (minute hour day month weekday)", expr, n);
        return NULL;
    }
    beat_cron_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    uint64_t bits[5];
    bool any[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(parts[i], &fields[i], &bits[i], &any[i], why, why_size) != 0) {
            free(self);
            return NULL;
        }
    self->minute = bits[0];
    self->hour = (uint32_t)bits[1];
    self->mday = (uint32_t)bits[2];
    self->month = (uint16_t)bits[3];
    self->wday = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7F); /* 7 is Sunday too */
    self->mday_any = any[2];
    self->wday_any = any[4];
    self->expr = strdup(expr);
    self->tz = strdup(strcmp(tz, "UTC") == 0 ? "" : tz);
    if (!self->expr || !self->tz) {
        beat_cron_destroy(&self);
        return NULL;
    }
    /* "0 0 30 2 *" parses but never fires: refuse it now, not at run time */
    if (beat_cron_next(self, (int64_t)time(NULL)) < 0) {
        snprintf(why, why_size, "crontab '%s' never fires", expr);
        beat_cron_destroy(&self);
        return NULL;
    }
    return self;
}

void beat_cron_destroy(beat_cron_t **self_p) {
    if (!self_p || !*self_p)
        return;
    beat_cron_t *self = *self_p;
    free(self->expr);
    free(self->tz);
    free(self);
    *self_p = NULL;
}

const char *beat_cron_expr(const beat_cron_t *self) {
    return self->expr;
}

const char *beat_cron_tz(const beat_cron_t *self) {
    return *self->tz ? self->tz : "UTC";
}

static bool day_matches(const beat_cron_t *self, const struct tm *tm) {
    bool dom = self->mday & (1U << tm->tm_mday);
    bool dow = self->wday & (1U << tm->tm_wday);
    if (self->mday_any && self->wday_any)
        return true;
    if (self->mday_any)
        return dow;
    if (self->wday_any)
        return dom;
    return dom || dow; /* both restricted: either (Vixie cron) */
}

/* Switches the process's zone; returns the previous TZ (malloc'd, or NULL
 * when it was unset) for restore_tz. */
static char *use_tz(const char *tz) {
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZ", *tz ? tz : "UTC0", 1);
    tzset();
    return saved;
}

static void restore_tz(char *saved) {
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

/* Next naive local time (seconds on the DST-free calendar) strictly after
 * naive, or -1. */
static int64_t next_naive(const beat_cron_t *self, int64_t naive) {
    time_t t = (time_t)((naive / 60 + 1) * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    for (int steps = 0; steps < SEARCH_STEPS; steps++) {
        if ((int64_t)t - naive > HORIZON_S)
            return -1;
        if (!(self->month & (1U << (tm.tm_mon + 1)))) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day_matches(self, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!(self->hour & (1U << tm.tm_hour))) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!(self->minute & (1ULL << tm.tm_min))) {
            tm.tm_min++;
        } else {
            return (int64_t)t;
        }
        t = timegm(&tm); /* normalises month/day/hour overflow */
        gmtime_r(&t, &tm);
    }
    return -1;
}

int64_t beat_cron_next(const beat_cron_t *self, int64_t after) {
    char *saved = use_tz(self->tz);
    time_t a = (time_t)after;
    struct tm local;
    localtime_r(&a, &local);
    int64_t naive = (int64_t)timegm(&local); /* the local wall clock, as if UTC */
    int64_t result = -1;
    for (int tries = 0; tries < 8; tries++) {
        naive = next_naive(self, naive);
        if (naive < 0)
            break;
        time_t nt = (time_t)naive;
        struct tm want;
        gmtime_r(&nt, &want);
        want.tm_isdst = -1; /* let the zone decide; a gap moves forward */
        time_t instant = mktime(&want);
        if (instant != (time_t)-1 && (int64_t)instant > after) {
            result = (int64_t)instant;
            break;
        }
        /* the repeated hour: this local time's instant is not after `after` */
    }
    restore_tz(saved);
    return result;
}

int64_t beat_interval_parse_ms(const char *text, char *why, size_t why_size) {
    const char *p = text ? text : "";
    int64_t total = 0;
    int parts = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        int64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            if (v > 1000000000)
                goto bad;
            v = v * 10 + (*p++ - '0');
        }
        int64_t unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60000;
            p++;
        } else if (*p == 'h') {
            unit = 3600000;
            p++;
        } else if (*p == 'd') {
            unit = 86400000;
            p++;
        } else {
            goto bad;
        }
        if (v > (INT64_MAX - total) / unit)
            goto bad;
        total += v * unit;
        parts++;
    }
    if (parts == 0 || total <= 0)
        goto bad;
    return total;
bad:
    snprintf(why, why_size,
             "interval '%s' is not like 30s, 5m, 1h30m, 1d or 250ms (a positive duration)",
             text ? text : "");
    return -1;
}
