/* zt_log: the one logger. Lines look like
 *   2026-11-28T17:00:00.123Z INFO  broker: message
 * Each process names itself once at start (broker, worker name@host, beat, zmqctl).
 * The settings are process-wide and set once in main(); logging is thread-safe
 * (one write(2) per line). Never log payloads or secrets. */
#ifndef ZT_LOG_H
#define ZT_LOG_H

typedef enum {
    ZT_LOG_DEBUG = 0,
    ZT_LOG_INFO = 1,
    ZT_LOG_WARNING = 2,
    ZT_LOG_ERROR = 3,
    ZT_LOG_OFF = 4
} zt_log_level_t;

/* Sets the process name, the minimum level and the destination. logfile NULL
 * or "-" means stderr. Returns 0, or ZT_ERR_IO if the file cannot be opened
 * (the logger then keeps writing to stderr). May be called again. */
int zt_log_setup(const char *process_name, zt_log_level_t level, const char *logfile);

/* Parses "debug", "info", "warning" (or "warn"), "error", "off", any case.
 * Returns 0 and sets *level, or ZT_ERR_INVALID. */
int zt_log_level_parse(const char *text, zt_log_level_t *level);

/* True when a message at this level would be written. */
int zt_log_enabled(zt_log_level_t level);

void zt_log(zt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define zt_debug(...) zt_log(ZT_LOG_DEBUG, __VA_ARGS__)
#define zt_info(...) zt_log(ZT_LOG_INFO, __VA_ARGS__)
#define zt_warn(...) zt_log(ZT_LOG_WARNING, __VA_ARGS__)
#define zt_error(...) zt_log(ZT_LOG_ERROR, __VA_ARGS__)

#endif
