/* zt_clock: monotonic and wall clocks, ISO 8601 formatting and parsing. */
#include "zt_clock.h"
#include "zt_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t zt_clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t zt_clock_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double zt_clock_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *zt_clock_iso8601(double unix_seconds, char *buf, size_t size) {
    time_t secs = (time_t)floor(unix_seconds);
    long usec = lround((unix_seconds - (double)secs) * 1e6);
    if (usec >= 1000000) {
        secs++;
        usec -= 1000000;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
    return buf;
}

int zt_clock_parse_iso8601(const char *text, double *unix_seconds) {
    if (!text)
        return ZT_ERR_INVALID;
    int year, mon, day, hour = 0, min = 0, sec = 0, consumed = 0;
    if (sscanf(text, "%4d-%2d-%2d%n", &year, &mon, &day, &consumed) != 3)
        return ZT_ERR_INVALID;
    const char *p = text + consumed;
    double fraction = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (sscanf(p, "%2d:%2d%n", &hour, &min, &consumed) != 2)
            return ZT_ERR_INVALID;
        p += consumed;
        if (*p == ':') {
            p++;
            if (sscanf(p, "%2d%n", &sec, &consumed) != 1)
                return ZT_ERR_INVALID;
            p += consumed;
            if (*p == '.' || *p == ',') {
                char *end;
                char digits[32] = "0.";
                size_t n = strspn(p + 1, "0123456789");
                if (n == 0 || n > 20)
                    return ZT_ERR_INVALID;
                memcpy(digits + 2, p + 1, n);
                fraction = strtod(digits, &end);
                p += 1 + n;
            }
        }
    }
    long offset = 0; /* seconds east of UTC */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0;
        int sign = *p == '-' ? -1 : 1;
        p++;
        if (sscanf(p, "%2d%n", &oh, &consumed) != 1)
            return ZT_ERR_INVALID;
        p += consumed;
        if (*p == ':')
            p++;
        if (sscanf(p, "%2d%n", &om, &consumed) == 1)
            p += consumed;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p != '\0')
        return ZT_ERR_INVALID;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 ||
        year < 1970 || year > 9999)
        return ZT_ERR_INVALID;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ZT_ERR_INVALID;
    *unix_seconds = (double)(t - offset) + fraction;
    return 0;
}
