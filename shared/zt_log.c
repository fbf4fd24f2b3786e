/* zt_log: one format-checked logger for every process. Settings are
 * process-wide, written once by main() before threads start; each line goes
 * out in a single write(2) so lines from threads and children never interleave. */
#include "zt_log.h"
#include "zt_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The logger is the one piece of process-wide state besides signal flags:
 * passing a logger to every function would buy nothing but noise. */
static struct {
    char name[96];
    zt_log_level_t level;
    int fd;
} g_log = {"zt", ZT_LOG_INFO, STDERR_FILENO};

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

int zt_log_setup(const char *process_name, zt_log_level_t level, const char *logfile) {
    snprintf(g_log.name, sizeof g_log.name, "%s", process_name ? process_name : "zt");
    g_log.level = level;
    if (g_log.fd != STDERR_FILENO) {
        close(g_log.fd);
        g_log.fd = STDERR_FILENO;
    }
    if (logfile && *logfile && strcmp(logfile, "-") != 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            zt_error("cannot open log file %s: %s", logfile, strerror(errno));
            return ZT_ERR_IO;
        }
        g_log.fd = fd;
    }
    return 0;
}

int zt_log_level_parse(const char *text, zt_log_level_t *level) {
    static const struct {
        const char *name;
        zt_log_level_t level;
    } names[] = {{"debug", ZT_LOG_DEBUG},  {"info", ZT_LOG_INFO},   {"warning", ZT_LOG_WARNING},
                 {"warn", ZT_LOG_WARNING}, {"error", ZT_LOG_ERROR}, {"critical", ZT_LOG_ERROR},
                 {"off", ZT_LOG_OFF}};
    for (size_t i = 0; text && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(text, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    }
    return ZT_ERR_INVALID;
}

int zt_log_enabled(zt_log_level_t level) {
    return level >= g_log.level && level < ZT_LOG_OFF;
}

void zt_log(zt_log_level_t level, const char *fmt, ...) {
    if (!zt_log_enabled(level))
        return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level], g_log.name);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated: a log line is not the place for megabytes */
    line[len++] = '\n';
    ssize_t w = write(g_log.fd, line, len);
    (void)w; /* nowhere left to report a failing log write */
}
