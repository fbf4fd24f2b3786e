/* mon_view: zmqmon's screen, drawn with ncursesw: a header with the views
 * and the broker's state, the body of the current view (Dashboard, Workers,
 * Tasks, Queues, Task detail), a help overlay, and a bottom line for
 * prompts, confirmations and the outcome of the last action. It reads the
 * model and the screen state (mon_ui_t) and changes nothing but the scroll
 * positions in mon_ui_t. Owns the terminal between new and destroy. */
#ifndef MON_VIEW_H
#define MON_VIEW_H

#include "mon_model.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    MON_VIEW_DASHBOARD = 0,
    MON_VIEW_WORKERS,
    MON_VIEW_TASKS,
    MON_VIEW_QUEUES,
    MON_VIEW_DETAIL,
    MON_VIEW_COUNT
} mon_view_id_t;

typedef enum { MON_MSG_INFO = 0, MON_MSG_OK, MON_MSG_ERROR } mon_msg_level_t;

/* What the screen shows. A plain value struct owned by the caller (the app);
 * pointers in it are borrowed for the draw. */
typedef struct {
    mon_view_id_t view;
    mon_view_id_t back;         /* the view Esc returns to from the detail */
    size_t sel[MON_VIEW_COUNT]; /* selected row of each list view */
    size_t top[MON_VIEW_COUNT]; /* first row shown (the view keeps sel visible) */
    mon_filter_t filter;        /* Tasks */
    /* Task detail */
    char detail_id[MON_STR_ID];
    const json_t *detail_meta;    /* the result backend's meta, or NULL */
    char detail_meta_note[256];   /* why there is no meta, "" if there is */
    const json_t *detail_broker;  /* the broker's `task` reply, or NULL */
    char detail_broker_note[256]; /* why there is no `task` reply ("" when none is known) */
    size_t detail_scroll;         /* lines scrolled */
    /* overlays and the bottom line */
    bool help;
    bool prompting;
    char prompt_label[64];
    char prompt[256];
    bool confirming;
    char confirm[384];
    char message[512];
    mon_msg_level_t message_level;
    /* connection and clocks */
    char broker_url[256];
    bool connected;
    bool ever_connected;
    double down_since;  /* unix seconds; 0 while connected */
    double now_wall;    /* unix seconds */
    double now_mono;    /* monotonic seconds (the model's worker times) */
    double events_rate; /* events per second received lately */
    bool backend_ok;    /* the result backend answered last time */
} mon_ui_t;

typedef struct mon_view mon_view_t;

/* Takes the terminal (ncursesw, keypad, no echo, colours when it has
 * them). Returns the view, or NULL when the terminal cannot be used. */
mon_view_t *mon_view_new(void);
/* Gives the terminal back as it was. */
void mon_view_destroy(mon_view_t **self_p);

/* Draws everything and updates the terminal (only what changed is sent). */
void mon_view_draw(mon_view_t *self, const mon_model_t *model, mon_ui_t *ui);

/* The next key, or -1 when none is waiting. KEY_RESIZE after SIGWINCH. */
int mon_view_key(mon_view_t *self);

/* Rows of a list view's page (for Page Up/Down). */
int mon_view_page_rows(const mon_view_t *self);

/* Human text of a duration (seconds): "850ms", "12.3s", "4m05s", "2h03m", "3d04h". */
void mon_format_duration(double seconds, char *buf, size_t size);

/* "HH:MM:SS.mmm" local time of unix seconds t ("-" for 0). */
void mon_format_clock(double t, char *buf, size_t size);

/* A progress bar "[#####-----]  50%" exactly width columns wide (>= 8). */
void mon_format_progress(double current, double total, int width, char *buf, size_t size);

#endif
