/* mon_view: every draw erases the screen and writes it again; ncurses sends
 * the terminal only the cells that changed, so a redraw of an unchanged
 * screen costs no output. The caller bounds how often draws happen.
 * Drawing clips at the screen's edges, so any size works (80x24 and up
 * shows everything; smaller shows what fits). Text from outside (names,
 * errors, args) is drawn with control characters replaced. */
#include "mon_view.h"
#include "zt_error.h"

#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <ncurses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { C_OK = 1, C_ERR, C_WARN, C_RUN, C_REVOKED, C_HEAD, C_DIM, C_SEL };

struct mon_view {
    bool colors;
    bool utf8; /* the locale is UTF-8: block characters for sparklines */
};

#define BODY_TOP 3 /* rows 0-2: tabs, broker line, blank */

mon_view_t *mon_view_new(void) {
    mon_view_t *self = zt_calloc(1, sizeof *self);
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    self->utf8 = cs && strcmp(cs, "UTF-8") == 0;
    if (!initscr()) {
        free(self);
        return NULL;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(C_OK, COLOR_GREEN, -1);
        init_pair(C_ERR, COLOR_RED, -1);
        init_pair(C_WARN, COLOR_YELLOW, -1);
        init_pair(C_RUN, COLOR_CYAN, -1);
        init_pair(C_REVOKED, COLOR_MAGENTA, -1);
        init_pair(C_HEAD, COLOR_BLACK, COLOR_CYAN);
        init_pair(C_DIM, COLOR_BLUE, -1);
        init_pair(C_SEL, COLOR_BLACK, COLOR_WHITE);
        self->colors = true;
    }
    return self;
}

void mon_view_destroy(mon_view_t **self_p) {
    if (!self_p || !*self_p)
        return;
    curs_set(1);
    endwin();
    free(*self_p);
    *self_p = NULL;
}

int mon_view_key(mon_view_t *self) {
    int ch = getch();
    return ch == ERR ? -1 : ch;
}

int mon_view_page_rows(const mon_view_t *self) {
    int rows = LINES - BODY_TOP - 3;
    return rows > 1 ? rows : 1;
}

/* ---------------------------------------------------------------- format */

void mon_format_duration(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 1e10) {
        snprintf(buf, size, "-");
        return;
    }
    long long whole = (long long)s;
    if (s < 1.0)
        snprintf(buf, size, "%.0fms", s * 1000.0);
    else if (s < 60.0)
        snprintf(buf, size, "%.1fs", s);
    else if (whole < 3600)
        snprintf(buf, size, "%lldm%02llds", whole / 60, whole % 60);
    else if (whole < 86400)
        snprintf(buf, size, "%lldh%02lldm", whole / 3600, whole / 60 % 60);
    else
        snprintf(buf, size, "%lldd%02lldh", whole / 86400, whole / 3600 % 24);
}

void mon_format_clock(double t, char *buf, size_t size) {
    if (t <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    time_t secs = (time_t)t;
    struct tm tm;
    localtime_r(&secs, &tm);
    int ms = (int)((t - (double)secs) * 1000.0);
    if (ms > 999)
        ms = 999;
    snprintf(buf, size, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void mon_format_progress(double current, double total, int width, char *buf, size_t size) {
    if (width < 8)
        width = 8;
    if ((size_t)width + 1 > size)
        width = (int)size - 1;
    double frac = total > 0 ? current / total : 0;
    if (!(frac >= 0))
        frac = 0;
    if (frac > 1)
        frac = 1;
    int cells = width - 7; /* "[" + cells + "]" + " 100%" */
    int filled = (int)floor(frac * cells + 0.5);
    size_t n = 0;
    buf[n++] = '[';
    for (int i = 0; i < cells; i++)
        buf[n++] = i < filled ? '#' : '-';
    buf[n++] = ']';
    snprintf(buf + n, size - n, " %3d%%", (int)floor(frac * 100.0 + 0.5));
}

/* 1234567 -> "1,234,567" */
static void fmt_count(uint64_t v, char *buf, size_t size) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t out = 0;
    for (int i = 0; i < n && out + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[out++] = ',';
        buf[out++] = digits[i];
    }
    buf[out] = '\0';
}

static void fmt_rate(double r, char *buf, size_t size) {
    if (r >= 1000)
        snprintf(buf, size, "%.0f/s", r);
    else
        snprintf(buf, size, "%.1f/s", r);
}

/* ----------------------------------------------------------------- drawing */

/* Writes s at (y, x), at most w columns and never past the right edge;
 * control characters become '?'. */
static void put(int y, int x, int w, const char *s) {
    if (y < 0 || y >= LINES || x >= COLS || w <= 0)
        return;
    if (x + w > COLS)
        w = COLS - x;
    char clean[1024];
    size_t n = 0;
    for (const char *p = s; *p && n < sizeof clean - 1 && (int)n < w * 4; p++)
        clean[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    clean[n] = '\0';
    mvaddnstr(y, x, clean, w);
}

static void putf(int y, int x, int w, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void putf(int y, int x, int w, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    put(y, x, w, buf);
}

static void color_on(const mon_view_t *self, int pair, int extra) {
    if (self->colors && pair)
        attron(COLOR_PAIR(pair));
    if (extra)
        attron(extra);
}

static void color_off(const mon_view_t *self, int pair, int extra) {
    if (self->colors && pair)
        attroff(COLOR_PAIR(pair));
    if (extra)
        attroff(extra);
}

static int state_color(mon_task_state_t s) {
    switch (s) {
    case MON_TASK_SUCCESS:
        return C_OK;
    case MON_TASK_FAILURE:
        return C_ERR;
    case MON_TASK_RETRY:
        return C_WARN;
    case MON_TASK_STARTED:
        return C_RUN;
    case MON_TASK_REVOKED:
        return C_REVOKED;
    default:
        return 0;
    }
}

/* A row of a table: cells at the given columns (the last takes what is left). */
typedef struct {
    const char *title;
    int width;
} column_t;

static void table_header(const mon_view_t *self, int y, const column_t *cols, int n) {
    color_on(self, 0, A_BOLD | A_UNDERLINE);
    int x = 1;
    for (int i = 0; i < n; i++) {
        put(y, x, i == n - 1 ? COLS - x : cols[i].width, cols[i].title);
        x += cols[i].width + 1;
    }
    color_off(self, 0, A_BOLD | A_UNDERLINE);
}

/* Marks a row as selected: reverse video over the whole width. */
static void row_select(int y) {
    mvchgat(y, 0, -1, A_REVERSE, 0, NULL);
}

static const char *const view_names[MON_VIEW_COUNT] = {"Dashboard", "Workers", "Tasks", "Queues",
                                                       "Task"};

static void draw_header(mon_view_t *self, const mon_model_t *model, const mon_ui_t *ui) {
    color_on(self, C_HEAD, 0);
    mvhline(0, 0, ' ', COLS);
    int x = 1;
    put(0, x, 7, "zmqmon");
    x += 8;
    for (int v = 0; v < MON_VIEW_DETAIL; v++) {
        char tab[32];
        snprintf(tab, sizeof tab, " %d %s ", v + 1, view_names[v]);
        bool current = (int)ui->view == v || (ui->view == MON_VIEW_DETAIL && (int)ui->back == v);
        if (current)
            attron(A_BOLD | A_REVERSE);
        put(0, x, (int)strlen(tab), tab);
        if (current)
            attroff(A_BOLD | A_REVERSE);
        x += (int)strlen(tab) + 1;
    }
    char clock[32];
    mon_format_clock(ui->now_wall, clock, sizeof clock);
    clock[8] = '\0';
    put(0, COLS - 10, 9, clock);
    color_off(self, C_HEAD, 0);

    const mon_broker_t *b = mon_model_broker(model);
    char up[32] = "-";
    if (b->have_stats)
        mon_format_duration(b->uptime + (ui->now_mono - b->stats_at), up, sizeof up);
    if (ui->connected) {
        color_on(self, C_OK, A_BOLD);
        put(1, 1, 12, "* connected");
        color_off(self, C_OK, A_BOLD);
        putf(1, 14, COLS - 15, "broker %s at %s, up %s   events %.0f/s%s",
             *b->broker ? b->broker : "?", ui->broker_url, up, ui->events_rate,
             ui->backend_ok ? "" : "   (result backend unreachable)");
    } else {
        char since[32] = "-";
        if (ui->down_since > 0)
            mon_format_duration(ui->now_wall - ui->down_since, since, sizeof since);
        color_on(self, C_ERR, A_BOLD);
        if (ui->ever_connected)
            putf(1, 1, COLS - 2,
                 "! BROKER UNREACHABLE at %s for %s: reconnecting; data shown is "
                 "from before",
                 ui->broker_url, since);
        else
            putf(1, 1, COLS - 2, "! connecting to the broker at %s (%s so far) ...", ui->broker_url,
                 since);
        color_off(self, C_ERR, A_BOLD);
    }
}

static void draw_footer(mon_view_t *self, const mon_ui_t *ui) {
    static const char *const hints[MON_VIEW_COUNT] = {
        "1-4/Tab views  ? help  q quit", "Up/Down select  x shut down worker  ? help  q quit",
        "Enter detail  s state  n name  u queue  / id  c clear  r revoke  T terminate  R retry  ? "
        "help",
        "Up/Down select  p purge queue  P purge all  Enter its tasks  ? help  q quit",
        "Up/Down scroll  r revoke  T terminate  R retry  Esc back  ? help"};
    color_on(self, C_DIM, 0);
    put(LINES - 2, 1, COLS - 2, hints[ui->view]);
    color_off(self, C_DIM, 0);
    int y = LINES - 1;
    if (ui->prompting) {
        color_on(self, 0, A_BOLD);
        putf(y, 1, COLS - 2, "%s: %s_", ui->prompt_label, ui->prompt);
        color_off(self, 0, A_BOLD);
    } else if (ui->confirming) {
        color_on(self, C_WARN, A_BOLD);
        putf(y, 1, COLS - 2, "%s [y/N]", ui->confirm);
        color_off(self, C_WARN, A_BOLD);
    } else if (ui->message[0]) {
        int pair = ui->message_level == MON_MSG_ERROR ? C_ERR
                   : ui->message_level == MON_MSG_OK  ? C_OK
                                                      : 0;
        color_on(self, pair, 0);
        put(y, 1, COLS - 2, ui->message);
        color_off(self, pair, 0);
    }
}

/* Keeps the selection inside [0, count) and visible in rows rows. */
static void scroll_to(mon_ui_t *ui, mon_view_id_t v, size_t count, int rows) {
    if (count == 0) {
        ui->sel[v] = ui->top[v] = 0;
        return;
    }
    if (ui->sel[v] >= count)
        ui->sel[v] = count - 1;
    if (ui->sel[v] < ui->top[v])
        ui->top[v] = ui->sel[v];
    if (ui->sel[v] >= ui->top[v] + (size_t)rows)
        ui->top[v] = ui->sel[v] - (size_t)rows + 1;
    if (ui->top[v] + (size_t)rows > count)
        ui->top[v] = count > (size_t)rows ? count - (size_t)rows : 0;
}

/* ---------------------------------------------------------------- dashboard */

static void sparkline(const mon_view_t *self, const mon_model_t *model, mon_series_t series,
                      double now_mono, int y, int x, int width, double *peak_out) {
    static const char *const blocks[] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                         "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[] = " _.-:=+*#";
    if (width < 4 || x >= COLS)
        return;
    if (x + width > COLS)
        width = COLS - x;
    /* each column covers `per` seconds, as many as fit the history */
    int per = (MON_RATE_SECONDS + width - 1) / width;
    if (per < 1)
        per = 1;
    size_t seconds = (size_t)width * (size_t)per;
    if (seconds > MON_RATE_SECONDS) {
        width = MON_RATE_SECONDS / per;
        seconds = (size_t)width * (size_t)per;
    }
    double bins[MON_RATE_SECONDS];
    /* the current second is still filling: end the line at the last whole one */
    mon_model_series(model, series, now_mono - 1.0, bins, seconds);
    double cols[MON_RATE_SECONDS], peak = 0;
    for (int c = 0; c < width; c++) {
        double sum = 0;
        for (int k = 0; k < per; k++)
            sum += bins[c * per + k];
        cols[c] = sum / per;
        if (cols[c] > peak)
            peak = cols[c];
    }
    for (int c = 0; c < width; c++) {
        int level = peak > 0 ? (int)ceil(cols[c] / peak * 8.0) : 0;
        if (level > 8)
            level = 8;
        if (self->utf8)
            mvaddstr(y, x + c, blocks[level]);
        else
            mvaddch(y, x + c, (chtype)ascii[level]);
    }
    *peak_out = peak;
}

static void draw_dashboard(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui) {
    const mon_broker_t *b = mon_model_broker(model);
    int y = BODY_TOP;
    size_t online = 0, offline = 0;
    for (size_t i = 0; i < mon_model_worker_count(model); i++)
        mon_model_worker_at(model, i)->online ? online++ : offline++;
    size_t counts[MON_TASK_STATES];
    mon_model_state_counts(model, counts);
    color_on(self, 0, A_BOLD);
    put(y, 1, 10, "Workers");
    color_off(self, 0, A_BOLD);
    putf(y, 12, COLS - 13, "%zu online, %zu offline", online, offline);
    y++;
    char q[32], s[32], f[32];
    fmt_count(b->queued, q, sizeof q);
    fmt_count(b->scheduled, s, sizeof s);
    fmt_count(b->in_flight, f, sizeof f);
    color_on(self, 0, A_BOLD);
    put(y, 1, 10, "Broker");
    color_off(self, 0, A_BOLD);
    putf(y, 12, COLS - 13, "%s queued, %s scheduled, %s in flight", q, s, f);
    y++;
    color_on(self, 0, A_BOLD);
    put(y, 1, 10, "History");
    color_off(self, 0, A_BOLD);
    putf(y, 12, COLS - 13,
         "%zu of at most %zu tasks: %zu running, %zu queued, %zu scheduled, %zu succeeded, %zu "
         "failed, %zu retrying, %zu revoked",
         mon_model_task_count(model), mon_model_history_max(model), counts[MON_TASK_STARTED],
         counts[MON_TASK_RECEIVED] + counts[MON_TASK_RESERVED], counts[MON_TASK_SCHEDULED],
         counts[MON_TASK_SUCCESS], counts[MON_TASK_FAILURE], counts[MON_TASK_RETRY],
         counts[MON_TASK_REVOKED]);
    y += 2;

    color_on(self, 0, A_BOLD | A_UNDERLINE);
    putf(y++, 1, COLS - 2, "%-11s %13s %10s %9s  %s", "Tasks", "total", "rate", "peak",
         "per second, last 10 minutes");
    color_off(self, 0, A_BOLD | A_UNDERLINE);
    struct {
        const char *label;
        uint64_t total;
        double rate;
        int series;
        int color;
    } rows[] = {{"succeeded", b->succeeded, b->rate_succeeded, MON_SERIES_SUCCEEDED, C_OK},
                {"failed", b->failed, b->rate_failed, MON_SERIES_FAILED, C_ERR},
                {"retried", b->retried, b->rate_retried, MON_SERIES_RETRIED, C_WARN},
                {"revoked", b->revoked, 0, -1, C_REVOKED},
                {"submitted", b->submitted, 0, -1, 0}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++, y++) {
        char total[32], rate[32] = "", peak_text[32] = "";
        fmt_count(rows[i].total, total, sizeof total);
        color_on(self, rows[i].color, 0);
        put(y, 1, 11, rows[i].label);
        color_off(self, rows[i].color, 0);
        putf(y, 13, 13, "%13s", total);
        if (rows[i].series >= 0) {
            fmt_rate(rows[i].rate, rate, sizeof rate);
            putf(y, 27, 10, "%10s", rate);
            double peak = 0;
            color_on(self, rows[i].color, 0);
            sparkline(self, model, (mon_series_t)rows[i].series, ui->now_mono, y, 49,
                      COLS - 50 > 120 ? 120 : COLS - 50, &peak);
            color_off(self, rows[i].color, 0);
            fmt_rate(peak, peak_text, sizeof peak_text);
            putf(y, 38, 9, "%9s", peak_text);
        }
    }
    y++;

    color_on(self, 0, A_BOLD | A_UNDERLINE);
    putf(y++, 1, COLS - 2, "%-24s %10s %10s %10s %10s %14s", "Queue", "ready", "scheduled",
         "in flight", "consumers", "oldest waiting");
    color_off(self, 0, A_BOLD | A_UNDERLINE);
    int bottom = LINES - 3;
    size_t nq = mon_model_queue_count(model);
    int room_for_queues = (bottom - y) / 2;
    for (size_t i = 0; i < nq && (int)i < room_for_queues; i++, y++) {
        const mon_queue_t *qq = mon_model_queue_at(model, i);
        char age[32] = "-";
        if (qq->ready)
            mon_format_duration(qq->oldest_age, age, sizeof age);
        putf(y, 1, COLS - 2, "%-24.24s %10llu %10llu %10llu %10llu %14s", qq->name,
             (unsigned long long)qq->ready, (unsigned long long)qq->scheduled,
             (unsigned long long)qq->in_flight, (unsigned long long)qq->consumers, age);
    }
    if (nq == 0)
        put(y++, 1, COLS - 2, "(no queues yet)");
    y++;

    /* running tasks: the newest few, with their progress */
    if (y >= bottom)
        return;
    static const column_t rcols[] = {
        {"Running", 36}, {"name", 24}, {"worker", 20}, {"runtime", 9}, {"progress", 0}};
    table_header(self, y++, rcols, 5);
    mon_filter_t running = {.by_state = true, .state = MON_TASK_STARTED};
    const mon_task_t *list[64];
    int room = bottom - y;
    if (room > 64)
        room = 64;
    size_t total = 0;
    size_t n = room > 0 ? mon_model_tasks(model, &running, 0, list, (size_t)room, &total) : 0;
    for (size_t i = 0; i < n; i++, y++) {
        const mon_task_t *t = list[i];
        char rt[32], bar[64] = "";
        mon_format_duration(t->started ? ui->now_wall - t->started : 0, rt, sizeof rt);
        if (t->has_progress)
            mon_format_progress(t->current, t->total, 22, bar, sizeof bar);
        putf(y, 1, COLS - 2, "%-36.36s %-24.24s %-20.20s %9s %s", t->id, t->name, t->worker, rt,
             bar);
    }
    if (total == 0 && y < bottom)
        put(y, 1, COLS - 2, "(nothing running)");
    else if (total > n && y < bottom)
        putf(y, 1, COLS - 2, "... and %zu more (Tasks view, s to filter by state)", total - n);
}

/* ---------------------------------------------------------------- workers */

static void draw_workers(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui) {
    /* whether it is online comes second, so that a narrow terminal shows it */
    int y = BODY_TOP;
    color_on(self, 0, A_BOLD | A_UNDERLINE);
    putf(y++, 1, COLS - 2, "%-22s %-7s %4s %7s %8s %10s %7s %9s  %-14s %s", "Worker", "status",
         "conc", "running", "reserved", "processed", "failed", "heartbeat", "host",
         "queues (offline: why, when)");
    color_off(self, 0, A_BOLD | A_UNDERLINE);
    size_t n = mon_model_worker_count(model);
    int rows = mon_view_page_rows(self) - 1;
    scroll_to(ui, MON_VIEW_WORKERS, n, rows);
    if (n == 0) {
        put(y, 1, COLS - 2, "(no workers seen yet)");
        return;
    }
    for (size_t i = ui->top[MON_VIEW_WORKERS]; i < n && y < BODY_TOP + 1 + rows; i++, y++) {
        const mon_worker_t *w = mon_model_worker_at(model, i);
        char hb[32] = "-", processed[32], last[MON_STR_TEXT + 96];
        if (w->online)
            mon_format_duration(ui->now_mono - w->last_seen, hb, sizeof hb);
        fmt_count(w->processed, processed, sizeof processed);
        uint64_t reserved = w->in_flight > w->active ? w->in_flight - w->active : 0;
        if (w->online) {
            snprintf(last, sizeof last, "%s", w->queues);
        } else {
            char ago[32];
            mon_format_duration(ui->now_wall - w->offline_at, ago, sizeof ago);
            snprintf(last, sizeof last, "%s  (%s, %s ago)", w->queues, w->offline_reason, ago);
        }
        put(y, 1, 22, w->name);
        int pair = w->online ? C_OK : C_ERR;
        color_on(self, pair, A_BOLD);
        put(y, 24, 7, w->online ? "online" : "OFFLINE");
        color_off(self, pair, A_BOLD);
        putf(y, 32, COLS - 33, "%4llu %7llu %8llu %10s %7llu %9s  %-14.14s %s",
             (unsigned long long)w->concurrency, (unsigned long long)w->active,
             (unsigned long long)reserved, processed, (unsigned long long)w->failed, hb, w->host,
             last);
        if (i == ui->sel[MON_VIEW_WORKERS])
            row_select(y);
    }
}

/* ---------------------------------------------------------------- tasks */

static void draw_filter(mon_view_t *self, const mon_ui_t *ui, int y, size_t shown, size_t total,
                        size_t kept) {
    const mon_filter_t *f = &ui->filter;
    char line[1024];
    snprintf(line, sizeof line,
             "state %s   name %s   queue %s   id %s      %zu matching of %zu kept",
             f->by_state ? mon_task_state_name(f->state) : "any", f->name[0] ? f->name : "*",
             f->queue[0] ? f->queue : "*", f->id[0] ? f->id : "*", total, kept);
    (void)shown;
    color_on(self, 0, A_BOLD);
    put(y, 1, 7, "Filter");
    color_off(self, 0, A_BOLD);
    put(y, 9, COLS - 10, line);
}

static void draw_tasks(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui) {
    /* A UUID needs 36 columns; a narrower terminal shows its first 18 (the
     * detail and `/` take a prefix), and below 130 columns queue, received
     * and retries make way, so the progress bars always have room. */
    int idw = COLS >= 150 ? 36 : 18;
    bool narrow = COLS < 130;
    int namew = narrow ? 16 : 22, workerw = narrow ? 10 : 14;
    column_t wide_cols[] = {{"Task id", idw}, {"name", 22},  {"state", 9},
                            {"worker", 14},   {"queue", 13}, {"received", 12},
                            {"runtime", 7},   {"retry", 5},  {"progress / error", 0}};
    column_t narrow_cols[] = {{"Task id", idw},    {"name", namew}, {"state", 9},
                              {"worker", workerw}, {"runtime", 7},  {"progress / error", 0}};
    int y = BODY_TOP;
    int rows = mon_view_page_rows(self) - 2;
    size_t total = 0;
    mon_model_tasks(model, &ui->filter, 0, NULL, 0, &total);
    scroll_to(ui, MON_VIEW_TASKS, total, rows);
    draw_filter(self, ui, y++, 0, total, mon_model_task_count(model));
    if (narrow)
        table_header(self, y++, narrow_cols, 6);
    else
        table_header(self, y++, wide_cols, 9);
    const mon_task_t *list[256];
    size_t want = rows > 256 ? 256 : (size_t)rows;
    size_t n = mon_model_tasks(model, &ui->filter, ui->top[MON_VIEW_TASKS], list, want, NULL);
    if (total == 0)
        put(y, 1, COLS - 2,
            mon_model_task_count(model) ? "(no task matches the filter: c clears it)"
                                        : "(no tasks seen yet: they appear as the broker reports "
                                          "them)");
    int state_x = 1 + idw + 1 + namew + 1;
    int last_x = narrow ? state_x + 9 + 1 + workerw + 1 + 7 + 1
                        : state_x + 9 + 1 + 14 + 1 + 13 + 1 + 12 + 1 + 7 + 1 + 5 + 1;
    for (size_t i = 0; i < n; i++, y++) {
        const mon_task_t *t = list[i];
        char received[32], runtime[32] = "", retries[16];
        mon_format_clock(t->received, received, sizeof received);
        if (t->state == MON_TASK_STARTED && t->started > 0)
            mon_format_duration(ui->now_wall - t->started, runtime, sizeof runtime);
        else if (mon_task_state_final(t->state) && t->state != MON_TASK_REVOKED)
            mon_format_duration(t->runtime, runtime, sizeof runtime);
        snprintf(retries, sizeof retries, "%d", t->retries);
        putf(y, 1, COLS - 2, "%-*.*s %-*.*s", idw, idw, t->id, namew, namew, t->name);
        int pair = state_color(t->state);
        color_on(self, pair, A_BOLD);
        put(y, state_x, 9, mon_task_state_name(t->state));
        color_off(self, pair, A_BOLD);
        if (narrow)
            putf(y, state_x + 10, COLS, "%-*.*s %7s", workerw, workerw, t->worker, runtime);
        else
            putf(y, state_x + 10, COLS, "%-14.14s %-13.13s %-12.12s %7s %5s", t->worker, t->queue,
                 received, runtime, retries);
        int w = COLS - last_x - 1;
        if (t->state == MON_TASK_STARTED && t->has_progress && w >= 8) {
            char bar[128];
            mon_format_progress(t->current, t->total, w > 32 ? 32 : w, bar, sizeof bar);
            color_on(self, C_RUN, 0);
            put(y, last_x, w, bar);
            color_off(self, C_RUN, 0);
            if (w > 33 && t->progress_message)
                put(y, last_x + 33, w - 33, t->progress_message);
        } else if (t->state == MON_TASK_RETRY && w > 0) {
            char in[32];
            mon_format_duration(t->eta - ui->now_wall, in, sizeof in);
            color_on(self, pair, 0);
            putf(y, last_x, w, "retry in %s: %s", t->eta > ui->now_wall ? in : "now",
                 t->error ? t->error : "");
            color_off(self, pair, 0);
        } else if (t->error && w > 0) {
            color_on(self, pair, 0);
            put(y, last_x, w, t->error);
            color_off(self, pair, 0);
        } else if (t->state == MON_TASK_SCHEDULED) {
            char in[32];
            mon_format_duration(t->eta - ui->now_wall, in, sizeof in);
            putf(y, last_x, w, "due in %s", t->eta > ui->now_wall ? in : "now");
        }
        if (ui->top[MON_VIEW_TASKS] + i == ui->sel[MON_VIEW_TASKS])
            row_select(y);
    }
}

/* ---------------------------------------------------------------- queues */

static void draw_queues(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui) {
    int y = BODY_TOP;
    color_on(self, 0, A_BOLD | A_UNDERLINE);
    putf(y, 1, COLS - 2, "%-24s %9s %9s %9s %9s %9s %6s  %s", "Queue", "ready", "scheduled",
         "in flight", "consumers", "oldest", "tombs", "ready by priority: 9 8 7 6 5 4 3 2 1 0");
    color_off(self, 0, A_BOLD | A_UNDERLINE);
    y++;
    size_t n = mon_model_queue_count(model);
    int rows = mon_view_page_rows(self) - 1;
    scroll_to(ui, MON_VIEW_QUEUES, n, rows);
    if (n == 0)
        put(y, 1, COLS - 2, "(no queues yet: a queue exists once a task or a worker names it)");
    for (size_t i = ui->top[MON_VIEW_QUEUES]; i < n && y < BODY_TOP + 1 + rows; i++, y++) {
        const mon_queue_t *q = mon_model_queue_at(model, i);
        char age[32] = "-", prio[256];
        if (q->ready)
            mon_format_duration(q->oldest_age, age, sizeof age);
        size_t used = 0;
        for (int p = MON_PRIORITIES - 1; p >= 0 && used < sizeof prio; p--) {
            int k = snprintf(prio + used, sizeof prio - used, "%s%llu", used ? " " : "",
                             (unsigned long long)q->by_priority[p]);
            if (k < 0)
                break;
            used += (size_t)k;
        }
        putf(y, 1, COLS - 2, "%-24.24s %9llu %9llu %9llu %9llu %9s %6llu  %s", q->name,
             (unsigned long long)q->ready, (unsigned long long)q->scheduled,
             (unsigned long long)q->in_flight, (unsigned long long)q->consumers, age,
             (unsigned long long)q->tombstones, prio);
        if (q->consumers == 0 && (q->ready || q->scheduled)) {
            color_on(self, C_WARN, A_BOLD);
            put(y, COLS - 14, 13, "no consumer!");
            color_off(self, C_WARN, A_BOLD);
        }
        if (i == ui->sel[MON_VIEW_QUEUES])
            row_select(y);
    }
}

/* ---------------------------------------------------------------- detail */

/* The detail is built as lines first (it scrolls), then drawn. */
typedef struct {
    char text[512];
    int pair;
    int attr;
} line_t;

typedef struct {
    line_t *lines;
    size_t n, cap;
} lines_t;

static void add_line(lines_t *ls, int pair, int attr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_line(lines_t *ls, int pair, int attr, const char *fmt, ...) {
    if (ls->n == ls->cap) {
        ls->cap = ls->cap ? ls->cap * 2 : 64;
        ls->lines = zt_realloc(ls->lines, ls->cap * sizeof *ls->lines);
    }
    line_t *l = &ls->lines[ls->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
    l->pair = pair;
    l->attr = attr;
}

/* "label    text", text wrapped at width (and cut after a few lines). */
static void add_wrapped(lines_t *ls, int pair, const char *label, const char *text, int width) {
    const int indent = 12;
    int room = width - indent - 2;
    if (room < 20)
        room = 20;
    size_t len = strlen(text);
    size_t at = 0;
    int shown = 0;
    do {
        /* a newline in the text starts a new line too */
        size_t n = len - at < (size_t)room ? len - at : (size_t)room;
        const char *nl = memchr(text + at, '\n', n);
        if (nl)
            n = (size_t)(nl - (text + at));
        add_line(ls, pair, 0, "%-*.*s %.*s", indent - 1, indent - 1, shown ? "" : label, (int)n,
                 text + at);
        at += n + (nl ? 1 : 0);
        shown++;
    } while (at < len && shown < 40);
    if (at < len)
        add_line(ls, C_DIM, 0, "%-*s ... (%zu more bytes)", indent - 1, "", len - at);
}

static void add_json(lines_t *ls, const char *label, const json_t *value, int width) {
    char *text =
        value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) : NULL;
    add_wrapped(ls, 0, label, text ? text : "-", width);
    free(text);
}

static const char *meta_str(const json_t *meta, const char *key) {
    return json_string_value(json_object_get(meta, key));
}

/* The error of a Celery meta: "ExcType: message". */
static void meta_error(const json_t *meta, char *buf, size_t size) {
    const json_t *r = json_object_get(meta, "result");
    const char *type = meta_str(r, "exc_type");
    const json_t *msg = json_object_get(r, "exc_message");
    const char *first = json_string_value(json_is_array(msg) ? json_array_get(msg, 0) : msg);
    snprintf(buf, size, "%s: %s", type ? type : "?", first ? first : "");
}

static void log_line(lines_t *ls, const mon_log_entry_t *e) {
    char clock[32], detail[600] = "", d[32];
    mon_format_clock(e->timestamp, clock, sizeof clock);
    switch (e->type) {
    case MON_EV_TASK_RECEIVED:
        snprintf(detail, sizeof detail, "priority %.0f%s", e->b, e->a > 0 ? ", with an ETA" : "");
        break;
    case MON_EV_TASK_STARTED:
        snprintf(detail, sizeof detail, "on %s, pid %.0f, attempt %d", e->worker, e->a,
                 e->retries >= 0 ? e->retries + 1 : 1);
        break;
    case MON_EV_TASK_PROGRESS:
        snprintf(detail, sizeof detail, "%g / %g %s%s(%u report%s)", e->a, e->b,
                 e->text ? e->text : "", e->text ? " " : "", e->count, e->count == 1 ? "" : "s");
        break;
    case MON_EV_TASK_SUCCEEDED:
        mon_format_duration(e->a, d, sizeof d);
        snprintf(detail, sizeof detail, "on %s in %s", e->worker, d);
        break;
    case MON_EV_TASK_FAILED:
        mon_format_duration(e->a, d, sizeof d);
        snprintf(detail, sizeof detail, "on %s in %s: %s", e->worker, d, e->text ? e->text : "");
        break;
    case MON_EV_TASK_RETRIED:
        mon_format_duration(e->a, d, sizeof d);
        snprintf(detail, sizeof detail, "retry %d in %s: %s", e->retries, d,
                 e->text ? e->text : "");
        break;
    case MON_EV_TASK_REVOKED:
        snprintf(detail, sizeof detail, "reason %s", e->text ? e->text : "-");
        break;
    default:
        break;
    }
    int pair = e->type == MON_EV_TASK_FAILED      ? C_ERR
               : e->type == MON_EV_TASK_SUCCEEDED ? C_OK
               : e->type == MON_EV_TASK_RETRIED   ? C_WARN
               : e->type == MON_EV_TASK_REVOKED   ? C_REVOKED
                                                  : 0;
    add_line(ls, pair, 0, "  %s  %-15s %s", clock, mon_event_type_name(e->type), detail);
}

static void draw_detail(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui) {
    const mon_task_t *t = mon_model_task(model, ui->detail_id);
    const json_t *meta = ui->detail_meta;
    const json_t *held = ui->detail_broker;
    const json_t *message = json_object_get(held, "message");
    lines_t ls = {NULL, 0, 0};
    int width = COLS - 2;
    char a[64], b[64], c[64];

    const char *status = meta_str(meta, "status");
    const char *state = t ? mon_task_state_name(t->state) : status ? status : "?";
    int pair = t ? state_color(t->state) : 0;
    add_line(&ls, pair, A_BOLD, "Task %s   %s", ui->detail_id, state);
    add_line(&ls, 0, 0, "%s", "");
    const char *name = t && strcmp(t->name, "?") != 0 ? t->name : meta_str(meta, "name");
    const char *queue = t && *t->queue ? t->queue : meta_str(meta, "queue");
    const char *worker = t && *t->worker ? t->worker : meta_str(meta, "worker");
    add_line(&ls, 0, 0, "%-11s %-40s %-9s %s", "name", name ? name : "?", "queue",
             queue ? queue : "-");
    if (t) {
        add_line(&ls, 0, 0, "%-11s %-40s %-9s %d   priority %d", "worker",
                 worker && *worker ? worker : "-", "retries", t->retries, t->priority);
        mon_format_clock(t->received, a, sizeof a);
        mon_format_clock(t->started, b, sizeof b);
        mon_format_clock(t->finished, c, sizeof c);
        add_line(&ls, 0, 0, "%-11s %-14s %-9s %-14s %-9s %s", "received", a, "started", b,
                 "finished", c);
        char rt[32] = "-";
        if (t->state == MON_TASK_STARTED && t->started > 0)
            mon_format_duration(ui->now_wall - t->started, rt, sizeof rt);
        else if (t->state == MON_TASK_REVOKED && t->started > 0 && t->finished > t->started)
            mon_format_duration(t->finished - t->started, rt, sizeof rt);
        else if (mon_task_state_final(t->state) && t->state != MON_TASK_REVOKED)
            mon_format_duration(t->runtime, rt, sizeof rt);
        mon_format_clock(t->eta, a, sizeof a);
        mon_format_clock(t->expires, b, sizeof b);
        add_line(&ls, 0, 0, "%-11s %-14s %-9s %-14s %-9s %s", "runtime", rt, "eta", a, "expires",
                 b);
        if (t->state == MON_TASK_STARTED && t->has_progress) {
            char bar[64];
            mon_format_progress(t->current, t->total, 40, bar, sizeof bar);
            add_line(&ls, C_RUN, 0, "%-11s %s  %g/%g %s", "progress", bar, t->current, t->total,
                     t->progress_message ? t->progress_message : "");
        }
    } else {
        add_line(&ls, C_DIM, 0, "(no longer in zmqmon's history: shown from the result backend)");
    }
    add_line(&ls, 0, 0, "%s", "");

    /* args and kwargs: the broker's copy while it holds the task, else the
     * result backend's (result_extended) */
    const json_t *args = message ? json_object_get(message, "args") : json_object_get(meta, "args");
    const json_t *kwargs =
        message ? json_object_get(message, "kwargs") : json_object_get(meta, "kwargs");
    if (args || kwargs) {
        if (args)
            add_json(&ls, "args", args, width);
        else
            add_line(&ls, 0, 0, "%-11s []", "args");
        if (kwargs)
            add_json(&ls, "kwargs", kwargs, width);
        else
            add_line(&ls, 0, 0, "%-11s {}", "kwargs");
        if (message)
            add_line(&ls, C_DIM, 0, "%-11s (from the broker, which holds the task: %s)", "",
                     meta_str(held, "state") ? meta_str(held, "state") : "?");
    } else if (ui->detail_broker_note[0]) {
        add_line(&ls, C_WARN, 0, "%-11s (the broker did not give them: %s)", "args",
                 ui->detail_broker_note);
    } else {
        add_line(&ls, C_DIM, 0, "%-11s %s", "args",
                 meta ? "(not stored: enable result_extended on the workers)"
                      : "(not known yet: the broker no longer holds the task and the result "
                        "backend has nothing)");
    }
    add_line(&ls, 0, 0, "%s", "");

    if (meta) {
        const char *st = status ? status : "?";
        if (strcmp(st, "SUCCESS") == 0) {
            add_json(&ls, "result", json_object_get(meta, "result"), width);
        } else if (strcmp(st, "FAILURE") == 0 || strcmp(st, "RETRY") == 0 ||
                   strcmp(st, "REVOKED") == 0) {
            char err[1200];
            meta_error(meta, err, sizeof err);
            add_wrapped(&ls, strcmp(st, "REVOKED") == 0 ? C_REVOKED : C_ERR, "error", err, width);
            const char *tb = meta_str(meta, "traceback");
            if (tb && *tb)
                add_wrapped(&ls, C_DIM, "traceback", tb, width);
        } else {
            add_json(&ls, "state", json_object_get(meta, "result"), width);
        }
        const char *done = meta_str(meta, "date_done");
        add_line(&ls, C_DIM, 0, "%-11s %s in the result backend%s%s", "backend", st,
                 done ? ", done " : "", done ? done : "");
    } else {
        if (t && t->error)
            add_wrapped(&ls, state_color(t->state), "error", t->error, width);
        add_line(&ls, C_DIM, 0, "%-11s %s", "backend",
                 ui->detail_meta_note[0] ? ui->detail_meta_note : "(nothing yet)");
    }
    add_line(&ls, 0, 0, "%s", "");

    if (t) {
        add_line(&ls, 0, A_BOLD, "Events (%zu%s)", t->log_size,
                 t->log_dropped ? ", the oldest dropped" : "");
        for (size_t i = 0; i < t->log_size; i++)
            log_line(&ls, &t->log[i]);
    }

    int rows = LINES - BODY_TOP - 2;
    if (ls.n > (size_t)rows && ui->detail_scroll > ls.n - (size_t)rows)
        ui->detail_scroll = ls.n - (size_t)rows;
    if (ls.n <= (size_t)rows)
        ui->detail_scroll = 0;
    int y = BODY_TOP;
    for (size_t i = ui->detail_scroll; i < ls.n && y < BODY_TOP + rows; i++, y++) {
        color_on(self, ls.lines[i].pair, ls.lines[i].attr);
        put(y, 1, width, ls.lines[i].text);
        color_off(self, ls.lines[i].pair, ls.lines[i].attr);
    }
    free(ls.lines);
}

/* ---------------------------------------------------------------- help */

static void draw_help(mon_view_t *self) {
    static const char *const text[] = {
        "zmqmon keys",
        "",
        "  1 2 3 4, Tab     Dashboard, Workers, Tasks, Queues; Tab cycles",
        "  Up Down j k      move the selection (PgUp PgDn Home End)",
        "  Enter            Tasks: the task's detail; Queues: its tasks",
        "  Esc Backspace    back from the detail; cancel a prompt",
        "",
        "  Tasks view:",
        "    s              cycle the state filter (any, RECEIVED ... REVOKED)",
        "    n  u           filter by name (substring) / by queue",
        "    /              find a task by id (prefix): opens its detail",
        "    c              clear the filters",
        "",
        "  Actions (ask for confirmation, the outcome shows at the bottom):",
        "    r              revoke the selected task (it will not run / its result is dropped)",
        "    T              revoke and terminate it (SIGTERM to its process)",
        "    R              retry a failed or revoked task: send it again, same args",
        "    p  P           Queues: purge the selected queue / every queue",
        "    x              Workers: shut the selected worker down (warm)",
        "",
        "  ?                this help (any key closes it)",
        "  q  Ctrl-C        quit",
    };
    int n = (int)(sizeof text / sizeof text[0]);
    int w = 92, h = n + 2;
    int y0 = (LINES - h) / 2, x0 = (COLS - w) / 2;
    if (y0 < 0)
        y0 = 0;
    if (x0 < 0)
        x0 = 0;
    for (int i = 0; i < h && y0 + i < LINES; i++)
        mvhline(y0 + i, x0, ' ', w < COLS ? w : COLS);
    color_on(self, C_HEAD, 0);
    mvhline(y0, x0, ' ', w < COLS ? w : COLS);
    put(y0, x0 + 2, w - 4, text[0]);
    color_off(self, C_HEAD, 0);
    for (int i = 1; i < n; i++)
        put(y0 + 1 + i, x0 + 1, w - 2, text[i]);
}

void mon_view_draw(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui) {
    erase();
    draw_header(self, model, ui);
    switch (ui->view) {
    case MON_VIEW_DASHBOARD:
        draw_dashboard(self, model, ui);
        break;
    case MON_VIEW_WORKERS:
        draw_workers(self, model, ui);
        break;
    case MON_VIEW_TASKS:
        draw_tasks(self, model, ui);
        break;
    case MON_VIEW_QUEUES:
        draw_queues(self, model, ui);
        break;
    case MON_VIEW_DETAIL:
        draw_detail(self, model, ui);
        break;
    default:
        break;
    }
    draw_footer(self, ui);
    if (ui->help)
        draw_help(self);
    wnoutrefresh(stdscr);
    doupdate();
}
