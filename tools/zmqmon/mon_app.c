/* mon_app: the loop, the keys, and the bookkeeping between the link, the
 * model, the actions and the view. Broker health: a request that times out
 * while the broker was answering marks it unreachable (workers go offline in
 * the model, the DEALER is replaced); the next answer marks it reachable and
 * asks for a whole snapshot again. The result backend is read only for the
 * task on screen and for retries, never in the event path. */
#include "mon_app.h"
#include "mon_actions.h"
#include "mon_link.h"
#include "mon_model.h"
#include "zt_backend.h"
#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <ncurses.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define TICK_S 0.1              /* events are taken this often */
#define EVENTS_PER_TICK 100000  /* bound on one take, so keys stay responsive */
#define REQUEST_TIMEOUT_MS 2000 /* a CONTROL the broker leaves unanswered this long */
#define LISTING_LIMIT 2000      /* tasks asked for in active/reserved/scheduled */
#define BACKEND_RETRY_S 5.0     /* after Redis failed, wait this long before trying again */
#define DETAIL_REFRESH_S 0.5    /* the detail's sources are re-read at most this often */

/* Tags of our own requests (actions use MON_ACTION_TAG_BIT). */
enum {
    TAG_PING = 1,
    TAG_STATS,
    TAG_QUEUES,
    TAG_WORKERS,
    TAG_ACTIVE,
    TAG_RESERVED,
    TAG_SCHEDULED,
    TAG_TASK
};

typedef enum { PROMPT_NONE, PROMPT_NAME, PROMPT_QUEUE, PROMPT_ID } prompt_t;
typedef enum {
    CONFIRM_NONE,
    CONFIRM_REVOKE,
    CONFIRM_TERMINATE,
    CONFIRM_RETRY,
    CONFIRM_PURGE,
    CONFIRM_PURGE_ALL,
    CONFIRM_SHUTDOWN
} confirm_t;

typedef struct {
    const mon_app_options_t *opts;
    mon_model_t *model;
    mon_link_t *link;
    mon_actions_t *actions;
    mon_view_t *view;
    zt_backend_t *backend;    /* NULL until first needed, or after a failure */
    double backend_failed_at; /* monotonic seconds; 0 = no recent failure */
    mon_ui_t ui;
    bool dirty;
    bool quit;
    /* broker health */
    bool connected;
    bool ping_out;    /* a ping is waiting for its answer */
    int snapshot_out; /* stats/queues/workers requests waiting */
    bool want_full;   /* the next answer starts a whole snapshot */
    /* Tasks: the selected task, pinned by id ("" = follow the newest) */
    char task_sel_id[MON_STR_ID];
    /* detail sources */
    json_t *detail_meta;
    json_t *detail_broker;
    double detail_read_at; /* monotonic seconds */
    mon_task_state_t detail_state;
    size_t detail_log;
    bool detail_task_out;
    /* input */
    prompt_t prompt;
    confirm_t confirm;
    char confirm_target[MON_STR_NAME + MON_STR_WORKER];
    /* events rate */
    uint64_t events_window;
    double events_window_at;
} app_t;

static double mono_s(void) {
    return (double)zt_clock_mono_us() / 1e6;
}

static void say(app_t *app, mon_msg_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(app_t *app, mon_msg_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->ui.message, sizeof app->ui.message, fmt, ap);
    va_end(ap);
    app->ui.message_level = level;
    app->dirty = true;
}

/* ------------------------------------------------------------ backend */

/* The result backend, connected on first use; NULL (with a note) when Redis
 * does not answer, and then not tried again for a few seconds: every try
 * may block the screen for a second. */
static zt_backend_t *backend(app_t *app, char *note, size_t size) {
    if (app->backend)
        return app->backend;
    if (!app->opts->backend_url || !*app->opts->backend_url) {
        snprintf(note, size, "no result backend configured (--result-backend)");
        return NULL;
    }
    double now = mono_s();
    if (app->backend_failed_at > 0 && now - app->backend_failed_at < BACKEND_RETRY_S) {
        snprintf(note, size, "result backend %s unreachable (retrying shortly)",
                 app->opts->backend_url);
        return NULL;
    }
    int err = 0;
    app->backend = zt_backend_new(app->opts->backend_url, &err);
    if (!app->backend) {
        app->backend_failed_at = now;
        snprintf(note, size, "result backend %s unreachable", app->opts->backend_url);
        app->ui.backend_ok = false;
        return NULL;
    }
    app->backend_failed_at = 0;
    return app->backend;
}

/* Reads a task's meta: 0 with *meta (caller owns), or a code with a note. */
static int read_meta(app_t *app, const char *id, json_t **meta, char *note, size_t size) {
    *meta = NULL;
    zt_backend_t *b = backend(app, note, size);
    if (!b)
        return ZT_ERR_BACKEND;
    int rc = zt_backend_get(b, id, meta);
    if (rc == ZT_ERR_NOT_FOUND) {
        snprintf(note, size, "no state in the result backend yet (PENDING)");
        app->ui.backend_ok = true;
    } else if (rc != 0) {
        snprintf(note, size, "result backend error; reconnecting on the next read");
        zt_backend_destroy(&app->backend);
        app->backend_failed_at = mono_s();
        app->ui.backend_ok = false;
    } else {
        note[0] = '\0';
        app->ui.backend_ok = true;
    }
    return rc;
}

/* ------------------------------------------------------------ requests */

static void request(app_t *app, const char *op, json_t *args, uint64_t tag) {
    if (mon_link_control(app->link, op, args, REQUEST_TIMEOUT_MS, tag) != 0)
        zt_debug("cannot send %s", op);
    json_decref(args);
}

static json_t *limit_args(void) {
    json_t *a = json_object();
    json_object_set_new(a, "limit", json_integer(LISTING_LIMIT));
    return a;
}

static void ask_snapshot(app_t *app, bool full) {
    request(app, "stats", NULL, TAG_STATS);
    request(app, "queues", NULL, TAG_QUEUES);
    request(app, "workers", NULL, TAG_WORKERS);
    app->snapshot_out = 3;
    if (full) {
        /* what a monitor started late has missed: what runs, is reserved, waits */
        request(app, "active", limit_args(), TAG_ACTIVE);
        request(app, "reserved", limit_args(), TAG_RESERVED);
        request(app, "scheduled", limit_args(), TAG_SCHEDULED);
    }
}

static void ask_task(app_t *app) {
    if (!app->ui.detail_id[0] || app->detail_task_out)
        return;
    json_t *args = json_object();
    json_object_set_new(args, "id", json_string(app->ui.detail_id));
    request(app, "task", args, TAG_TASK);
    app->detail_task_out = true;
}

/* Re-reads the detail's sources (broker and result backend). */
static void refresh_detail(app_t *app) {
    json_decref(app->detail_meta);
    app->detail_meta = NULL;
    read_meta(app, app->ui.detail_id, &app->detail_meta, app->ui.detail_meta_note,
              sizeof app->ui.detail_meta_note);
    app->ui.detail_meta = app->detail_meta;
    if (app->connected)
        ask_task(app);
    app->detail_read_at = mono_s();
    const mon_task_t *t = mon_model_task(app->model, app->ui.detail_id);
    app->detail_state = t ? t->state : MON_TASK_STATES;
    app->detail_log = t ? t->log_size : 0;
    app->dirty = true;
}

static void open_detail(app_t *app, const char *id) {
    if (app->ui.view != MON_VIEW_DETAIL)
        app->ui.back = app->ui.view;
    app->ui.view = MON_VIEW_DETAIL;
    snprintf(app->ui.detail_id, sizeof app->ui.detail_id, "%s", id);
    app->ui.detail_scroll = 0;
    app->ui.detail_broker_note[0] = '\0';
    json_decref(app->detail_broker);
    app->detail_broker = NULL;
    app->ui.detail_broker = NULL;
    refresh_detail(app);
}

/* The detail follows its task: new events re-read its sources (bounded). */
static void follow_detail(app_t *app) {
    if (app->ui.view != MON_VIEW_DETAIL)
        return;
    const mon_task_t *t = mon_model_task(app->model, app->ui.detail_id);
    if (!t)
        return;
    bool changed = t->state != app->detail_state || t->log_size != app->detail_log;
    if (changed && mono_s() - app->detail_read_at >= DETAIL_REFRESH_S)
        refresh_detail(app);
}

/* ------------------------------------------------------------ replies */

static void set_connected(app_t *app, bool up) {
    if (up == app->connected)
        return;
    app->connected = up;
    app->ui.connected = up;
    app->dirty = true;
    if (up) {
        app->ui.down_since = 0;
        app->ui.ever_connected = true;
        app->want_full = true;
    } else {
        app->ui.down_since = zt_clock_wall();
        mon_model_broker_lost(app->model, app->ui.down_since);
    }
}

static void on_reply(void *arg, const mon_reply_t *r) {
    app_t *app = arg;
    app->dirty = true;
    if (r->tag == TAG_PING)
        app->ping_out = false;
    if (r->tag == TAG_STATS || r->tag == TAG_QUEUES || r->tag == TAG_WORKERS)
        if (app->snapshot_out > 0)
            app->snapshot_out--;
    if (r->tag == TAG_TASK)
        app->detail_task_out = false;
    if (r->status == ZT_ERR_TIMEOUT) {
        /* actions say so themselves below; any timeout means the broker is away */
        set_connected(app, false);
    } else {
        set_connected(app, true);
    }
    char line[600];
    bool ok;
    if (mon_actions_on_reply(app->actions, r, line, sizeof line, &ok)) {
        say(app, ok ? MON_MSG_OK : MON_MSG_ERROR, "%s", line);
        /* the screen shows the effect as soon as the broker has it */
        if (app->connected)
            ask_snapshot(app, false);
        return;
    }
    if (r->status != 0) {
        if (r->tag == TAG_TASK) {
            json_decref(app->detail_broker);
            app->detail_broker = NULL;
            app->ui.detail_broker = NULL;
            /* "unknown task" is the normal answer for a finished one */
            bool unknown = r->error && strncmp(r->error, "unknown task", 12) == 0;
            snprintf(app->ui.detail_broker_note, sizeof app->ui.detail_broker_note, "%.250s",
                     unknown || !r->error ? "" : r->error);
        }
        return;
    }
    double now_mono = mono_s(), now_wall = zt_clock_wall();
    switch (r->tag) {
    case TAG_STATS:
        mon_model_apply_stats(app->model, r->result, now_mono);
        break;
    case TAG_QUEUES:
        mon_model_apply_queues(app->model, r->result);
        break;
    case TAG_WORKERS:
        mon_model_apply_workers(app->model, r->result, now_mono, now_wall);
        break;
    case TAG_ACTIVE:
        mon_model_apply_listing(app->model, r->result, MON_TASK_STARTED);
        break;
    case TAG_RESERVED:
        mon_model_apply_listing(app->model, r->result, MON_TASK_RESERVED);
        break;
    case TAG_SCHEDULED:
        mon_model_apply_listing(app->model, r->result, MON_TASK_SCHEDULED);
        break;
    case TAG_TASK: {
        const char *id = json_string_value(json_object_get(r->result, "id"));
        if (id && strcmp(id, app->ui.detail_id) == 0) {
            json_decref(app->detail_broker);
            app->detail_broker = json_incref((json_t *)r->result);
            app->ui.detail_broker = app->detail_broker;
            app->ui.detail_broker_note[0] = '\0';
        }
        break;
    }
    default:
        break;
    }
}

static void on_event(void *arg, const mon_event_t *ev) {
    app_t *app = arg;
    mon_model_apply_event(app->model, ev, app->ui.now_mono);
    app->events_window++;
}

/* ------------------------------------------------------------ selection */

static size_t list_count(app_t *app, mon_view_id_t v) {
    switch (v) {
    case MON_VIEW_WORKERS:
        return mon_model_worker_count(app->model);
    case MON_VIEW_QUEUES:
        return mon_model_queue_count(app->model);
    case MON_VIEW_TASKS: {
        size_t total = 0;
        mon_model_tasks(app->model, &app->ui.filter, 0, NULL, 0, &total);
        return total;
    }
    default:
        return 0;
    }
}

/* Tasks: a pinned task keeps its row under the selection while new ones
 * arrive above it; at the top the selection follows the newest task. */
static void resolve_task_selection(app_t *app) {
    if (!app->task_sel_id[0]) {
        app->ui.sel[MON_VIEW_TASKS] = 0;
        return;
    }
    long i = mon_model_task_index(app->model, &app->ui.filter, app->task_sel_id);
    if (i >= 0)
        app->ui.sel[MON_VIEW_TASKS] = (size_t)i;
    else
        app->task_sel_id[0] = '\0'; /* evicted or filtered out: keep the row index */
}

static const mon_task_t *selected_task(app_t *app) {
    if (app->ui.view == MON_VIEW_DETAIL)
        return mon_model_task(app->model, app->ui.detail_id);
    if (app->ui.view != MON_VIEW_TASKS)
        return NULL;
    resolve_task_selection(app);
    const mon_task_t *t = NULL;
    mon_model_tasks(app->model, &app->ui.filter, app->ui.sel[MON_VIEW_TASKS], &t, 1, NULL);
    return t;
}

static void move_selection(app_t *app, long delta, bool absolute) {
    mon_view_id_t v = app->ui.view;
    if (v == MON_VIEW_DETAIL) {
        long s = absolute ? delta : (long)app->ui.detail_scroll + delta;
        app->ui.detail_scroll = s > 0 ? (size_t)s : 0;
        app->dirty = true;
        return;
    }
    if (v == MON_VIEW_DASHBOARD)
        return;
    if (v == MON_VIEW_TASKS)
        resolve_task_selection(app);
    size_t count = list_count(app, v);
    long s = absolute ? delta : (long)app->ui.sel[v] + delta;
    if (s >= (long)count)
        s = (long)count - 1;
    if (s < 0)
        s = 0;
    app->ui.sel[v] = (size_t)s;
    if (v == MON_VIEW_TASKS) {
        app->task_sel_id[0] = '\0';
        if (s > 0) {
            const mon_task_t *t = NULL;
            mon_model_tasks(app->model, &app->ui.filter, (size_t)s, &t, 1, NULL);
            if (t)
                snprintf(app->task_sel_id, sizeof app->task_sel_id, "%s", t->id);
        }
    }
    app->dirty = true;
}

/* ------------------------------------------------------------ actions */

static void ask_confirm(app_t *app, confirm_t what, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ask_confirm(app_t *app, confirm_t what, const char *target, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->ui.confirm, sizeof app->ui.confirm, fmt, ap);
    va_end(ap);
    app->confirm = what;
    app->ui.confirming = true;
    snprintf(app->confirm_target, sizeof app->confirm_target, "%s", target ? target : "");
    app->dirty = true;
}

static void do_confirmed(app_t *app) {
    char line[600] = "";
    int rc = 0;
    const char *target = app->confirm_target;
    switch (app->confirm) {
    case CONFIRM_REVOKE:
    case CONFIRM_TERMINATE:
        rc = mon_actions_revoke(app->actions, target, app->confirm == CONFIRM_TERMINATE, line,
                                sizeof line);
        break;
    case CONFIRM_RETRY: {
        json_t *meta = NULL;
        char note[256];
        const mon_task_t *t = mon_model_task(app->model, target);
        if (read_meta(app, target, &meta, note, sizeof note) != 0) {
            snprintf(line, sizeof line, "retry %.200s: %.250s", target, note);
            rc = ZT_ERR_NOT_FOUND;
            break;
        }
        rc = mon_actions_retry(app->actions, target, meta, t ? t->name : NULL, t ? t->queue : NULL,
                               line, sizeof line);
        json_decref(meta);
        break;
    }
    case CONFIRM_PURGE:
        rc = mon_actions_purge(app->actions, target, line, sizeof line);
        break;
    case CONFIRM_PURGE_ALL:
        rc = mon_actions_purge(app->actions, NULL, line, sizeof line);
        break;
    case CONFIRM_SHUTDOWN:
        rc = mon_actions_shutdown(app->actions, target, line, sizeof line);
        break;
    case CONFIRM_NONE:
        return;
    }
    say(app, rc == 0 ? MON_MSG_INFO : MON_MSG_ERROR, "%s", line);
}

static void task_action(app_t *app, int key) {
    const mon_task_t *t = selected_task(app);
    const char *id = t ? t->id : app->ui.view == MON_VIEW_DETAIL ? app->ui.detail_id : NULL;
    if (!id || !*id) {
        say(app, MON_MSG_ERROR, "no task selected");
        return;
    }
    if (key == 'R') {
        const char *status = json_string_value(json_object_get(app->detail_meta, "status"));
        bool finished =
            t ? (t->state == MON_TASK_FAILURE || t->state == MON_TASK_REVOKED)
              : (status && (strcmp(status, "FAILURE") == 0 || strcmp(status, "REVOKED") == 0));
        if (!finished) {
            say(app, MON_MSG_ERROR,
                "retry: only a FAILURE or REVOKED task can be sent again (%s is %s)", id,
                t        ? mon_task_state_name(t->state)
                : status ? status
                         : "unknown");
            return;
        }
        ask_confirm(app, CONFIRM_RETRY, id, "Send %s[%s] again with the same args?",
                    t ? t->name : "task", id);
        return;
    }
    if (t && mon_task_state_final(t->state)) {
        say(app, MON_MSG_ERROR, "%s is %s already: nothing to revoke", id,
            mon_task_state_name(t->state));
        return;
    }
    if (key == 'T')
        ask_confirm(app, CONFIRM_TERMINATE, id,
                    "Revoke %s[%s] and terminate its process (SIGTERM)?", t ? t->name : "task", id);
    else
        ask_confirm(app, CONFIRM_REVOKE, id, "Revoke %s[%s]?", t ? t->name : "task", id);
}

/* ------------------------------------------------------------ keys */

static void start_prompt(app_t *app, prompt_t what, const char *label, const char *initial) {
    app->prompt = what;
    app->ui.prompting = true;
    snprintf(app->ui.prompt_label, sizeof app->ui.prompt_label, "%s", label);
    snprintf(app->ui.prompt, sizeof app->ui.prompt, "%s", initial);
    app->dirty = true;
}

static void finish_prompt(app_t *app) {
    const char *text = app->ui.prompt;
    mon_filter_t *f = &app->ui.filter;
    switch (app->prompt) {
    case PROMPT_NAME:
        snprintf(f->name, sizeof f->name, "%.*s", (int)sizeof f->name - 1, text);
        break;
    case PROMPT_QUEUE:
        snprintf(f->queue, sizeof f->queue, "%.*s", (int)sizeof f->queue - 1, text);
        break;
    case PROMPT_ID: {
        if (!*text)
            break;
        /* an exact id opens its detail, even one only the backend knows */
        const mon_task_t *t = mon_model_task(app->model, text);
        if (!t) {
            mon_filter_t by_id;
            memset(&by_id, 0, sizeof by_id);
            snprintf(by_id.id, sizeof by_id.id, "%s", text);
            size_t total = 0;
            mon_model_tasks(app->model, &by_id, 0, &t, 1, &total);
            if (total > 1) {
                snprintf(f->id, sizeof f->id, "%s", text);
                say(app, MON_MSG_INFO, "%zu tasks start with %s: listed", total, text);
                break;
            }
        }
        open_detail(app, t ? t->id : text);
        break;
    }
    case PROMPT_NONE:
        break;
    }
    app->task_sel_id[0] = '\0';
    app->ui.sel[MON_VIEW_TASKS] = 0;
}

static void prompt_key(app_t *app, int key) {
    size_t len = strlen(app->ui.prompt);
    if (key == 27) { /* Esc */
        app->ui.prompting = false;
    } else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        app->ui.prompting = false;
        finish_prompt(app);
    } else if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        if (len)
            app->ui.prompt[len - 1] = '\0';
    } else if (key >= 0x20 && key < 0x7f && len + 1 < sizeof app->ui.prompt) {
        app->ui.prompt[len] = (char)key;
        app->ui.prompt[len + 1] = '\0';
    }
    app->dirty = true;
}

static void switch_view(app_t *app, mon_view_id_t v) {
    app->ui.view = v;
    app->dirty = true;
}

static void handle_key(app_t *app, int key) {
    if (key == KEY_RESIZE) {
        app->dirty = true;
        return;
    }
    if (app->ui.help) {
        app->ui.help = false;
        app->dirty = true;
        return;
    }
    if (app->ui.prompting) {
        prompt_key(app, key);
        return;
    }
    if (app->ui.confirming) {
        app->ui.confirming = false;
        app->dirty = true;
        if (key == 'y' || key == 'Y')
            do_confirmed(app);
        else
            say(app, MON_MSG_INFO, "cancelled");
        app->confirm = CONFIRM_NONE;
        return;
    }
    mon_view_id_t v = app->ui.view;
    int page = mon_view_page_rows(app->view);
    switch (key) {
    case 'q':
    case 'Q':
        app->quit = true;
        return;
    case '?':
    case 'h':
        app->ui.help = true;
        app->dirty = true;
        return;
    case '1':
    case '2':
    case '3':
    case '4':
        switch_view(app, (mon_view_id_t)(key - '1'));
        return;
    case '\t':
        switch_view(app, v == MON_VIEW_DETAIL ? app->ui.back
                                              : (mon_view_id_t)((v + 1) % MON_VIEW_DETAIL));
        return;
    case KEY_BTAB:
        switch_view(app, v == MON_VIEW_DETAIL
                             ? app->ui.back
                             : (mon_view_id_t)((v + MON_VIEW_DETAIL - 1) % MON_VIEW_DETAIL));
        return;
    case KEY_UP:
    case 'k':
        move_selection(app, -1, false);
        return;
    case KEY_DOWN:
    case 'j':
        move_selection(app, 1, false);
        return;
    case KEY_PPAGE:
        move_selection(app, -page, false);
        return;
    case KEY_NPAGE:
    case ' ':
        move_selection(app, page, false);
        return;
    case KEY_HOME:
    case 'g':
        move_selection(app, 0, true);
        return;
    case KEY_END:
    case 'G':
        move_selection(app, 1L << 30, true);
        return;
    case 27: /* Esc */
    case KEY_BACKSPACE:
    case KEY_LEFT:
    case 127:
        if (v == MON_VIEW_DETAIL)
            switch_view(app, app->ui.back);
        return;
    default:
        break;
    }
    if (v == MON_VIEW_TASKS || v == MON_VIEW_DETAIL) {
        switch (key) {
        case 'r':
        case 'T':
        case 'R':
            task_action(app, key);
            return;
        default:
            break;
        }
    }
    if (v == MON_VIEW_TASKS) {
        mon_filter_t *f = &app->ui.filter;
        switch (key) {
        case '\n':
        case '\r':
        case KEY_ENTER: {
            const mon_task_t *t = selected_task(app);
            if (t)
                open_detail(app, t->id);
            return;
        }
        case 's':
            /* any -> RECEIVED -> ... -> REVOKED -> any */
            if (!f->by_state) {
                f->by_state = true;
                f->state = MON_TASK_RECEIVED;
            } else if (f->state + 1 < MON_TASK_STATES) {
                f->state = (mon_task_state_t)(f->state + 1);
            } else {
                f->by_state = false;
            }
            app->task_sel_id[0] = '\0';
            app->dirty = true;
            return;
        case 'S':
            f->by_state = false;
            app->dirty = true;
            return;
        case 'n':
            start_prompt(app, PROMPT_NAME, "name contains", f->name);
            return;
        case 'u':
            start_prompt(app, PROMPT_QUEUE, "queue", f->queue);
            return;
        case '/':
            start_prompt(app, PROMPT_ID, "task id (or its beginning)", "");
            return;
        case 'c':
            memset(f, 0, sizeof *f);
            app->task_sel_id[0] = '\0';
            app->dirty = true;
            return;
        default:
            return;
        }
    }
    if (v == MON_VIEW_WORKERS && key == 'x') {
        const mon_worker_t *w = mon_model_worker_at(app->model, app->ui.sel[MON_VIEW_WORKERS]);
        if (!w)
            say(app, MON_MSG_ERROR, "no worker selected");
        else if (!w->online)
            say(app, MON_MSG_ERROR, "%s is offline already", w->name);
        else
            ask_confirm(app, CONFIRM_SHUTDOWN, w->name,
                        "Shut down worker %s (warm: running tasks finish)?", w->name);
        return;
    }
    if (v == MON_VIEW_QUEUES) {
        const mon_queue_t *q = mon_model_queue_at(app->model, app->ui.sel[MON_VIEW_QUEUES]);
        if (key == 'p') {
            if (!q)
                say(app, MON_MSG_ERROR, "no queue selected");
            else
                ask_confirm(app, CONFIRM_PURGE, q->name,
                            "Purge queue %s: drop its %llu ready task(s)?", q->name,
                            (unsigned long long)q->ready);
        } else if (key == 'P') {
            ask_confirm(app, CONFIRM_PURGE_ALL, NULL,
                        "Purge EVERY queue: drop all ready tasks of all queues?");
        } else if ((key == '\n' || key == '\r' || key == KEY_ENTER) && q) {
            memset(&app->ui.filter, 0, sizeof app->ui.filter);
            snprintf(app->ui.filter.queue, sizeof app->ui.filter.queue, "%s", q->name);
            app->task_sel_id[0] = '\0';
            switch_view(app, MON_VIEW_TASKS);
        }
    }
}

/* ------------------------------------------------------------ loop */

int mon_app_run(const mon_app_options_t *opts) {
    volatile sig_atomic_t no_stop = 0;
    app_t app;
    memset(&app, 0, sizeof app);
    app.opts = opts;
    const volatile sig_atomic_t *stop = opts->stop_flag ? opts->stop_flag : &no_stop;
    int err = 0;
    app.link = mon_link_new(opts->broker_url, opts->events_url, opts->curve, &err);
    if (!app.link) {
        fprintf(stderr, "zmqmon: cannot use the broker endpoints %s / %s\n", opts->broker_url,
                opts->events_url);
        return ZT_ERR_IO;
    }
    app.model = mon_model_new(opts->history);
    app.actions = mon_actions_new(app.link);
    app.view = mon_view_new();
    if (!app.view) {
        fprintf(stderr, "zmqmon: cannot use this terminal (TERM=%s); try --once\n",
                getenv("TERM") ? getenv("TERM") : "");
        mon_actions_destroy(&app.actions);
        mon_model_destroy(&app.model);
        mon_link_destroy(&app.link);
        return ZT_ERR_IO;
    }
    snprintf(app.ui.broker_url, sizeof app.ui.broker_url, "%s", opts->broker_url);
    app.ui.view = opts->view < MON_VIEW_DETAIL ? opts->view : MON_VIEW_DASHBOARD;
    app.ui.down_since = zt_clock_wall();
    app.ui.backend_ok = true;
    snprintf(app.ui.message, sizeof app.ui.message, "zmqmon: ? for help, q to quit");

    double hz = opts->refresh_hz > 0 ? opts->refresh_hz : 5.0;
    double draw_every = 1.0 / hz;
    double snapshot_every = opts->snapshot_s > 0 ? opts->snapshot_s : 1.0;
    double now = mono_s();
    double next_tick = now, next_snapshot = now, last_draw = 0;
    app.events_window_at = now;
    app.want_full = true;
    app.dirty = true;

    while (!app.quit && !*stop) {
        now = mono_s();
        if (now >= next_snapshot) {
            next_snapshot = now + snapshot_every;
            if (!app.ping_out) {
                request(&app, "ping", NULL, TAG_PING);
                app.ping_out = true;
            }
            if (app.connected && app.snapshot_out == 0)
                ask_snapshot(&app, false);
        }
        if (now >= next_tick) {
            next_tick = now + TICK_S;
            app.ui.now_mono = now; /* the events' arrival time, to a tick */
            if (mon_link_drain_events(app.link, on_event, &app, EVENTS_PER_TICK) > 0)
                app.dirty = true;
            if (now - app.events_window_at >= 1.0) {
                app.ui.events_rate = (double)app.events_window / (now - app.events_window_at);
                app.events_window = 0;
                app.events_window_at = now;
            }
            follow_detail(&app);
        }
        if (app.connected && app.want_full) {
            app.want_full = false;
            ask_snapshot(&app, true);
            if (app.ui.view == MON_VIEW_DETAIL)
                ask_task(&app);
        }
        /* a broker that stopped answering: replace the DEALER, keep asking */
        if (!app.connected && app.ui.ever_connected && mon_link_pending(app.link) == 0 &&
            !app.ping_out) {
            mon_link_reconnect(app.link, on_reply, &app);
        }
        now = mono_s();
        if ((app.dirty && now - last_draw >= draw_every) || now - last_draw >= 1.0) {
            app.ui.now_wall = zt_clock_wall();
            app.ui.now_mono = now;
            if (app.ui.view == MON_VIEW_TASKS)
                resolve_task_selection(&app);
            mon_view_draw(app.view, app.model, &app.ui);
            last_draw = now;
            app.dirty = false;
        }

        double wake = next_tick < next_snapshot ? next_tick : next_snapshot;
        if (app.dirty && last_draw + draw_every < wake)
            wake = last_draw + draw_every;
        if (last_draw + 1.0 < wake)
            wake = last_draw + 1.0;
        long timeout = (long)((wake - mono_s()) * 1000.0);
        int link_ms = mon_link_next_timeout_ms(app.link);
        if (link_ms >= 0 && link_ms < timeout)
            timeout = link_ms;
        if (timeout < 0)
            timeout = 0;
        zmq_pollitem_t items[2] = {{mon_link_control_socket(app.link), 0, ZMQ_POLLIN, 0},
                                   {NULL, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 2, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        /* SIGWINCH interrupts the poll; ncurses then has KEY_RESIZE for us */
        mon_link_process(app.link, on_reply, &app);
        int key;
        while ((key = mon_view_key(app.view)) >= 0 && !app.quit)
            handle_key(&app, key);
    }

    mon_view_destroy(&app.view);
    json_decref(app.detail_meta);
    json_decref(app.detail_broker);
    zt_backend_destroy(&app.backend);
    mon_actions_destroy(&app.actions);
    mon_model_destroy(&app.model);
    mon_link_destroy(&app.link);
    return 0;
}
