/* mon_app: interactive zmqmon. One loop polls the broker connection and the
 * keyboard; ten times a second it takes every event that arrived into the
 * model (events are never handled one wake-up each: at 20,000 events/s that
 * would cost more than the drawing); once a second it asks the broker for
 * stats, queues and workers (and pings it: three missed seconds mark it
 * unreachable, and zmqmon reconnects and takes a new snapshot when it
 * answers again). The screen is redrawn at most refresh_hz times a second,
 * and only when something changed or a second passed (clocks and ages). */
#ifndef MON_APP_H
#define MON_APP_H

#include "mon_view.h"
#include "zt_curve.h"

#include <signal.h>
#include <stddef.h>

typedef struct {
    const char *broker_url;                 /* ROUTER endpoint */
    const char *events_url;                 /* events endpoint */
    const char *backend_url;                /* result backend (Redis) for details and retries */
    const zt_curve_t *curve;                /* CURVE keys for the broker's sockets; NULL = plain */
    size_t history;                         /* tasks kept; 0 = MON_HISTORY_DEFAULT */
    double refresh_hz;                      /* redraws per second at most */
    double snapshot_s;                      /* seconds between stats/queues/workers requests */
    mon_view_id_t view;                     /* the view shown first */
    const volatile sig_atomic_t *stop_flag; /* returns soon after it turns non-zero */
} mon_app_options_t;

/* Runs until q, or until *stop_flag. Returns 0, or ZT_ERR_IO when the
 * terminal or the sockets cannot be used (a message went to stderr). */
int mon_app_run(const mon_app_options_t *opts);

#endif
