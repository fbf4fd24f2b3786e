/* zmqctl_format: human-readable output of zmqctl (tables, task states,
 * inspect replies). Input is whatever the broker or Redis sent, so every
 * field is type-checked and missing ones print as "-". */
#include "zmqctl_format.h"
#include "zt_clock.h"
#include "zt_error.h"

#include <math.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

/* ---------------------------------------------------------------- tables */

struct zmqctl_table {
    int ncols;
    char **cells; /* rows x ncols, row 0 is the header; each cell owned */
    int rows;     /* rows stored, header included */
    int capacity; /* rows allocated */
};

zmqctl_table_t *zmqctl_table_new(int ncols, const char *const *headers) {
    ZT_ASSERT(ncols > 0);
    zmqctl_table_t *self = zt_calloc(1, sizeof *self);
    self->ncols = ncols;
    zmqctl_table_add(self, headers);
    return self;
}

void zmqctl_table_destroy(zmqctl_table_t **self_p) {
    if (!self_p || !*self_p)
        return;
    zmqctl_table_t *self = *self_p;
    for (int i = 0; i < self->rows * self->ncols; i++)
        free(self->cells[i]);
    free(self->cells);
    free(self);
    *self_p = NULL;
}

void zmqctl_table_add(zmqctl_table_t *self, const char *const *cells) {
    if (self->rows == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 16;
        self->cells =
            zt_realloc(self->cells, (size_t)self->capacity * (size_t)self->ncols * sizeof(char *));
    }
    char **row = self->cells + (size_t)self->rows * (size_t)self->ncols;
    for (int c = 0; c < self->ncols; c++)
        row[c] = zt_strdup(cells[c] ? cells[c] : "-");
    self->rows++;
}

int zmqctl_table_rows(const zmqctl_table_t *self) {
    return self->rows - 1;
}

void zmqctl_table_print(const zmqctl_table_t *self, FILE *out) {
    int *width = zt_calloc((size_t)self->ncols, sizeof *width);
    for (int r = 0; r < self->rows; r++)
        for (int c = 0; c < self->ncols; c++) {
            int len = (int)strlen(self->cells[r * self->ncols + c]);
            if (len > width[c])
                width[c] = len;
        }
    for (int r = 0; r < self->rows; r++) {
        for (int c = 0; c < self->ncols; c++) {
            const char *cell = self->cells[r * self->ncols + c];
            if (c == self->ncols - 1)
                fprintf(out, "%s\n", cell); /* no trailing blanks */
            else
                fprintf(out, "%-*s  ", width[c], cell);
        }
    }
    free(width);
}

/* ---------------------------------------------------------------- values */

void zmqctl_print_json(FILE *out, const json_t *value) {
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(out, "%s\n", text ? text : "null");
    free(text);
}

char *zmqctl_cell(const json_t *value, char *buf, size_t size) {
    if (!value || json_is_null(value)) {
        snprintf(buf, size, "-");
    } else if (json_is_string(value)) {
        snprintf(buf, size, "%s", json_string_value(value));
    } else if (json_is_integer(value)) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    } else if (json_is_real(value)) {
        snprintf(buf, size, "%g", json_real_value(value));
    } else if (json_is_boolean(value)) {
        snprintf(buf, size, "%s", json_is_true(value) ? "yes" : "no");
    } else {
        char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, size, "%s", text ? text : "?");
        free(text);
    }
    return buf;
}

/* A field of an object as a cell (obj may be anything). */
static char *field_cell(const json_t *obj, const char *key, char *buf, size_t size) {
    return zmqctl_cell(json_is_object(obj) ? json_object_get(obj, key) : NULL, buf, size);
}

/* A number of seconds for humans: "850 ms", "3.2 s", "4 min", "2.5 h". */
static char *duration_text(double seconds, char *buf, size_t size) {
    double a = fabs(seconds);
    if (a < 1)
        snprintf(buf, size, "%.0f ms", seconds * 1000);
    else if (a < 120)
        snprintf(buf, size, "%.1f s", seconds);
    else if (a < 7200)
        snprintf(buf, size, "%.0f min", seconds / 60);
    else
        snprintf(buf, size, "%.1f h", seconds / 3600);
    return buf;
}

/* Reads obj[key] as a number (integer or real). Returns 0 or -1. */
static int field_number(const json_t *obj, const char *key, double *out) {
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

/* Joins an array of strings with commas into buf ("-" when empty). */
static char *join_strings(const json_t *array, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    if (json_is_array(array)) {
        size_t i;
        const json_t *item;
        json_array_foreach(array, i, item) {
            char cell[256];
            int n = snprintf(buf + used, size - used, "%s%s", i ? "," : "",
                             zmqctl_cell(item, cell, sizeof cell));
            if (n < 0 || (size_t)n >= size - used)
                break;
            used += (size_t)n;
        }
    }
    if (!buf[0])
        snprintf(buf, size, "-");
    return buf;
}

/* ------------------------------------------------------------ task state */

/* Celery's exception object as "Type: message" (falls back to raw JSON). */
static void format_exception(FILE *out, const json_t *exc) {
    const char *type = json_string_value(json_object_get(exc, "exc_type"));
    const json_t *message = json_object_get(exc, "exc_message");
    char text[2048];
    if (json_is_array(message) && json_array_size(message) == 1)
        zmqctl_cell(json_array_get(message, 0), text, sizeof text);
    else if (json_is_array(message) && json_array_size(message) == 0)
        text[0] = '\0';
    else
        zmqctl_cell(message, text, sizeof text);
    if (type)
        fprintf(out, "error:     %s%s%s\n", type, text[0] ? ": " : "", text);
    else
        fprintf(out, "error:     %s\n", text);
}

void zmqctl_format_meta(FILE *out, const char *id, const char *status, const json_t *meta) {
    const json_t *result = json_is_object(meta) ? json_object_get(meta, "result") : NULL;
    fprintf(out, "id:        %s\n", id);
    fprintf(out, "status:    %s\n", status);
    if (!meta)
        return;
    if (!strcmp(status, "SUCCESS")) {
        char *text = json_dumps(result ? result : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(out, "result:    %s\n", text ? text : "?");
        free(text);
    } else if (!strcmp(status, "PROGRESS")) {
        char cur[64], tot[64], msg[512];
        fprintf(out, "progress:  %s/%s %s\n", field_cell(result, "current", cur, sizeof cur),
                field_cell(result, "total", tot, sizeof tot),
                field_cell(result, "message", msg, sizeof msg));
    } else if (!strcmp(status, "STARTED")) {
        char host[256], pid[64];
        fprintf(out, "worker:    %s (pid %s)\n", field_cell(result, "hostname", host, sizeof host),
                field_cell(result, "pid", pid, sizeof pid));
    } else if (json_is_object(result)) {
        format_exception(out, result);
    } else if (result && !json_is_null(result)) {
        char *text = json_dumps(result, JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(out, "result:    %s\n", text ? text : "?");
        free(text);
    }
    const char *date_done = json_string_value(json_object_get(meta, "date_done"));
    if (date_done)
        fprintf(out, "date_done: %s\n", date_done);
    const char *traceback = json_string_value(json_object_get(meta, "traceback"));
    if (traceback && traceback[0]) {
        fprintf(out, "traceback:\n");
        /* Indent every line so the block stands apart from the fields. */
        const char *line = traceback;
        while (*line) {
            size_t len = strcspn(line, "\n");
            fprintf(out, "    %.*s\n", (int)len, line);
            line += len;
            if (*line == '\n')
                line++;
        }
    }
}

/* ---------------------------------------------------------------- inspect */

/* Prints a note instead of a table when result is not an array or is empty. */
static int expect_rows(FILE *out, const json_t *result, const char *what) {
    if (!json_is_array(result)) {
        fprintf(out, "unexpected reply for %s (not a list)\n", what);
        return -1;
    }
    if (json_array_size(result) == 0) {
        fprintf(out, "no %s\n", what);
        return -1;
    }
    return 0;
}

/* "9:3 5:1 0:200": the non-empty priority levels, highest first. */
static char *priorities_text(const json_t *levels, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    if (json_is_array(levels)) {
        for (int p = (int)json_array_size(levels) - 1; p >= 0; p--) {
            const json_t *n = json_array_get(levels, (size_t)p);
            if (!json_is_integer(n) || json_integer_value(n) == 0)
                continue;
            int w = snprintf(buf + used, size - used, "%s%d:%" JSON_INTEGER_FORMAT, used ? " " : "",
                             p, json_integer_value(n));
            if (w < 0 || (size_t)w >= size - used)
                break;
            used += (size_t)w;
        }
    }
    if (!buf[0])
        snprintf(buf, size, "-");
    return buf;
}

void zmqctl_format_queues(FILE *out, const json_t *result) {
    if (expect_rows(out, result, "queues"))
        return;
    static const char *const headers[] = {"QUEUE",     "READY",     "SCHEDULED",
                                          "IN-FLIGHT", "CONSUMERS", "BY-PRIORITY (prio:count)"};
    zmqctl_table_t *table = zmqctl_table_new(6, headers);
    size_t i;
    const json_t *q;
    json_array_foreach(result, i, q) {
        char name[128], ready[32], sched[32], flight[32], cons[32], prio[256];
        const char *row[] = {field_cell(q, "name", name, sizeof name),
                             field_cell(q, "ready", ready, sizeof ready),
                             field_cell(q, "scheduled", sched, sizeof sched),
                             field_cell(q, "in_flight", flight, sizeof flight),
                             field_cell(q, "consumers", cons, sizeof cons),
                             priorities_text(json_object_get(q, "by_priority"), prio, sizeof prio)};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
}

void zmqctl_format_workers(FILE *out, const json_t *result) {
    if (expect_rows(out, result, "workers"))
        return;
    static const char *const headers[] = {"NAME",        "HOST",      "QUEUES",
                                          "CONCURRENCY", "IN-FLIGHT", "PROCESSED",
                                          "FAILED",      "HEARTBEAT", "ONLINE"};
    zmqctl_table_t *table = zmqctl_table_new(9, headers);
    size_t i;
    const json_t *w;
    json_array_foreach(result, i, w) {
        char name[256], host[256], queues[512], conc[32], flight[32], done[32], failed[32], age[40],
            online[16];
        char d[32];
        double seconds;
        if (field_number(w, "heartbeat_age", &seconds) == 0)
            snprintf(age, sizeof age, "%s ago", duration_text(seconds, d, sizeof d));
        else
            snprintf(age, sizeof age, "-");
        const char *row[] = {field_cell(w, "name", name, sizeof name),
                             field_cell(w, "host", host, sizeof host),
                             join_strings(json_object_get(w, "queues"), queues, sizeof queues),
                             field_cell(w, "concurrency", conc, sizeof conc),
                             field_cell(w, "in_flight", flight, sizeof flight),
                             field_cell(w, "processed", done, sizeof done),
                             field_cell(w, "failed", failed, sizeof failed),
                             age,
                             field_cell(w, "online", online, sizeof online)};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
}

void zmqctl_format_scheduled(FILE *out, const json_t *result, double now) {
    if (expect_rows(out, result, "scheduled tasks"))
        return;
    static const char *const headers[] = {"ID",  "TASK",    "QUEUE",   "ETA (UTC)",
                                          "DUE", "RETRIES", "PRIORITY"};
    zmqctl_table_t *table = zmqctl_table_new(7, headers);
    size_t i;
    const json_t *t;
    json_array_foreach(result, i, t) {
        char id[160], task[256], queue[128], eta[40], due[48], retries[32], prio[32];
        double when;
        if (field_number(t, "eta", &when) == 0) {
            char d[32];
            zt_clock_iso8601(when, eta, sizeof eta);
            eta[19] = '\0'; /* whole seconds are enough on screen */
            if (when >= now)
                snprintf(due, sizeof due, "in %s", duration_text(when - now, d, sizeof d));
            else
                snprintf(due, sizeof due, "%s late", duration_text(now - when, d, sizeof d));
        } else {
            snprintf(eta, sizeof eta, "-");
            snprintf(due, sizeof due, "-");
        }
        const char *row[] = {field_cell(t, "id", id, sizeof id),
                             field_cell(t, "task", task, sizeof task),
                             field_cell(t, "queue", queue, sizeof queue),
                             eta,
                             due,
                             field_cell(t, "retries", retries, sizeof retries),
                             field_cell(t, "priority", prio, sizeof prio)};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
}

void zmqctl_format_registered(FILE *out, const json_t *result) {
    if (!json_is_object(result)) {
        fprintf(out, "unexpected reply for registered (not a map)\n");
        return;
    }
    if (json_object_size(result) == 0) {
        fprintf(out, "no workers\n");
        return;
    }
    static const char *const headers[] = {"WORKER", "TASK"};
    zmqctl_table_t *table = zmqctl_table_new(2, headers);
    const char *worker;
    const json_t *tasks;
    json_object_foreach((json_t *)result, worker, tasks) {
        /* One task per line; the worker's name only on its first line. */
        if (!json_is_array(tasks) || json_array_size(tasks) == 0) {
            const char *row[] = {worker, NULL};
            zmqctl_table_add(table, row);
            continue;
        }
        size_t i;
        const json_t *task;
        json_array_foreach(tasks, i, task) {
            char name[256];
            const char *row[] = {i == 0 ? worker : "", zmqctl_cell(task, name, sizeof name)};
            zmqctl_table_add(table, row);
        }
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
}

static int compare_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void zmqctl_format_stats(FILE *out, const json_t *result) {
    if (!json_is_object(result)) {
        fprintf(out, "unexpected reply for stats (not a map)\n");
        return;
    }
    size_t n = json_object_size(result), i = 0;
    const char **keys = zt_calloc(n ? n : 1, sizeof *keys);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)result, key, value) {
        keys[i++] = key;
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    static const char *const headers[] = {"STAT", "VALUE"};
    zmqctl_table_t *table = zmqctl_table_new(2, headers);
    for (i = 0; i < n; i++) {
        char cell[512];
        const char *row[] = {keys[i],
                             zmqctl_cell(json_object_get(result, keys[i]), cell, sizeof cell)};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
    free(keys);
}

/* One worker's table rows for `inspect active` / `inspect reserved`. */
static void add_task_rows(zmqctl_table_t *table, const char *worker, const json_t *tasks,
                          bool active) {
    size_t i;
    const json_t *t;
    json_array_foreach(tasks, i, t) {
        char id[160], task[256], runtime[32] = "-", retries[32], progress[300] = "-";
        double secs;
        if (active && field_number(t, "runtime", &secs) == 0)
            duration_text(secs, runtime, sizeof runtime);
        const json_t *p = json_object_get(t, "progress");
        double cur, total;
        if (active && json_is_object(p) && field_number(p, "current", &cur) == 0 &&
            field_number(p, "total", &total) == 0) {
            char msg[200];
            int pct = total > 0 ? (int)(100.0 * cur / total) : 0;
            snprintf(progress, sizeof progress, "%d%% %s", pct,
                     field_cell(p, "message", msg, sizeof msg));
        }
        if (active) {
            const char *row[] = {i == 0 ? worker : "",
                                 field_cell(t, "id", id, sizeof id),
                                 field_cell(t, "task", task, sizeof task),
                                 runtime,
                                 field_cell(t, "retries", retries, sizeof retries),
                                 progress};
            zmqctl_table_add(table, row);
        } else {
            const char *row[] = {i == 0 ? worker : "", field_cell(t, "id", id, sizeof id),
                                 field_cell(t, "task", task, sizeof task),
                                 field_cell(t, "retries", retries, sizeof retries)};
            zmqctl_table_add(table, row);
        }
    }
}

void zmqctl_format_worker_replies(FILE *out, const char *command, const json_t *replies,
                                  double now) {
    (void)now;
    if (!json_is_object(replies)) {
        fprintf(out, "unexpected reply for %s (not a map)\n", command);
        return;
    }
    if (!strcmp(command, "registered")) {
        zmqctl_format_registered(out, replies);
        return;
    }
    const char *worker;
    const json_t *reply;
    if (!strcmp(command, "ping") || !strcmp(command, "shutdown")) {
        json_object_foreach((json_t *)replies, worker, reply) {
            const json_t *err = json_object_get(reply, "error");
            if (json_is_string(err))
                fprintf(out, "-> %s: error: %s\n", worker, json_string_value(err));
            else
                fprintf(out, "-> %s: %s\n", worker,
                        !strcmp(command, "ping") ? "pong" : "shutting down");
        }
        fprintf(out, "%zu worker%s replied\n", json_object_size(replies),
                json_object_size(replies) == 1 ? "" : "s");
        return;
    }
    if (!strcmp(command, "active") || !strcmp(command, "reserved")) {
        bool active = !strcmp(command, "active");
        static const char *const active_headers[] = {"WORKER",  "ID",      "TASK",
                                                     "RUNNING", "RETRIES", "PROGRESS"};
        static const char *const reserved_headers[] = {"WORKER", "ID", "TASK", "RETRIES"};
        zmqctl_table_t *table =
            active ? zmqctl_table_new(6, active_headers) : zmqctl_table_new(4, reserved_headers);
        json_object_foreach((json_t *)replies, worker, reply) {
            if (json_is_array(reply) && json_array_size(reply) > 0)
                add_task_rows(table, worker, reply, active);
        }
        if (zmqctl_table_rows(table) > 0)
            zmqctl_table_print(table, out);
        /* Name the workers that answered with nothing, so silence is not ambiguous. */
        json_object_foreach((json_t *)replies, worker, reply) {
            if (!json_is_array(reply) || json_array_size(reply) == 0)
                fprintf(out, "-> %s: no %s tasks\n", worker, command);
        }
        zmqctl_table_destroy(&table);
        return;
    }
    /* stats: one table of each worker's headline figures. */
    static const char *const headers[] = {"WORKER",    "PID",      "UPTIME",  "POOL",   "RECYCLED",
                                          "PROCESSED", "CPU USER", "CPU SYS", "MAX RSS"};
    zmqctl_table_t *table = zmqctl_table_new(9, headers);
    json_object_foreach((json_t *)replies, worker, reply) {
        char pid[32], uptime[32] = "-", pool[32], recycled[32], total[32], utime[32] = "-",
                      stime[32] = "-", rss[32] = "-";
        const json_t *p = json_object_get(reply, "pool");
        const json_t *ru = json_object_get(reply, "rusage");
        double v;
        if (field_number(reply, "uptime", &v) == 0)
            duration_text(v, uptime, sizeof uptime);
        if (field_number(ru, "utime", &v) == 0)
            snprintf(utime, sizeof utime, "%.2f s", v);
        if (field_number(ru, "stime", &v) == 0)
            snprintf(stime, sizeof stime, "%.2f s", v);
        if (field_number(ru, "maxrss_kib", &v) == 0)
            snprintf(rss, sizeof rss, "%.1f MiB", v / 1024.0);
        const char *row[] = {worker,
                             field_cell(reply, "pid", pid, sizeof pid),
                             uptime,
                             field_cell(p, "size", pool, sizeof pool),
                             field_cell(p, "recycled", recycled, sizeof recycled),
                             field_cell(reply, "total", total, sizeof total),
                             utime,
                             stime,
                             rss};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
}

/* A unix time as "2026-11-28T08:00:00 (in 3m)" or "-" when 0. */
static char *when_text(double t, double now, char *buf, size_t size) {
    if (t <= 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    char iso[40], d[32];
    zt_clock_iso8601(t, iso, sizeof iso);
    iso[19] = '\0';
    if (t >= now)
        snprintf(buf, size, "%s (in %s)", iso, duration_text(t - now, d, sizeof d));
    else
        snprintf(buf, size, "%s (%s ago)", iso, duration_text(now - t, d, sizeof d));
    return buf;
}

void zmqctl_format_beat(FILE *out, const json_t *result, double now) {
    const char *leader = json_string_value(json_object_get(result, "leader"));
    double left = 0;
    field_number(result, "lease_left", &left);
    if (leader && *leader)
        fprintf(out, "beat leader: %s (lease %.1f s left)\n", leader, left);
    else
        fprintf(out, "beat leader: none\n");
    const json_t *entries = json_object_get(result, "entries");
    if (!json_is_array(entries) || json_array_size(entries) == 0) {
        fprintf(out, "No periodic entries\n");
        return;
    }
    static const char *const headers[] = {"ENTRY", "LAST FIRE (UTC)", "NEXT FIRE (UTC)"};
    zmqctl_table_t *table = zmqctl_table_new(3, headers);
    size_t i;
    const json_t *e;
    json_array_foreach(entries, i, e) {
        char name[256], last[80], next[80];
        double l = 0, n = 0;
        field_number(e, "last_fire", &l);
        field_number(e, "next_fire", &n);
        const char *row[] = {field_cell(e, "name", name, sizeof name),
                             when_text(l, now, last, sizeof last),
                             when_text(n, now, next, sizeof next)};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, out);
    zmqctl_table_destroy(&table);
}
