/* Unit tests for zmqmon's model (tools/zmqmon/mon_model): the history bound
 * (finished tasks go first, running ones stay), state ordering (a final
 * state sticks, an older attempt's event or a late snapshot never moves a
 * task back), the per-task event log (timestamp order, merged progress, its
 * bound), filters and paging, workers from events and snapshots, rates
 * from stats, and the retry options built from a result_extended meta. */
#include "mon_actions.h"
#include "mon_model.h"
#include "zt_test.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static mon_event_t ev(mon_event_type_t type, const char *id, double ts) {
    mon_event_t e;
    memset(&e, 0, sizeof e);
    e.type = type;
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.name, sizeof e.name, "builtin.noop");
    snprintf(e.queue, sizeof e.queue, "default");
    e.timestamp = ts;
    e.retries = -1;
    return e;
}

static void apply(mon_model_t *m, mon_event_type_t type, const char *id, double ts, int retries) {
    mon_event_t e = ev(type, id, ts);
    e.retries = retries;
    if (type == MON_EV_TASK_STARTED || type >= MON_EV_TASK_SUCCEEDED)
        snprintf(e.worker, sizeof e.worker, "w1@test");
    if (type == MON_EV_TASK_FAILED || type == MON_EV_TASK_RETRIED)
        snprintf(e.text, sizeof e.text, "ValueError: boom");
    mon_model_apply_event(m, &e, ts);
}

static mon_task_state_t state_of(mon_model_t *m, const char *id) {
    const mon_task_t *t = mon_model_task(m, id);
    return t ? t->state : MON_TASK_STATES;
}

static void test_lifecycle(void) {
    mon_model_t *m = mon_model_new(100);
    apply(m, MON_EV_TASK_RECEIVED, "a", 10.0, 0);
    CHECK_INT(state_of(m, "a"), MON_TASK_RECEIVED);
    apply(m, MON_EV_TASK_STARTED, "a", 10.1, 0);
    CHECK_INT(state_of(m, "a"), MON_TASK_STARTED);
    mon_event_t p = ev(MON_EV_TASK_PROGRESS, "a", 10.2);
    p.current = 3;
    p.total = 10;
    snprintf(p.text, sizeof p.text, "step 3");
    mon_model_apply_event(m, &p, 10.2);
    const mon_task_t *t = mon_model_task(m, "a");
    CHECK(t->has_progress);
    CHECK_INT((int)t->current, 3);
    CHECK_STR(t->progress_message, "step 3");
    mon_event_t s = ev(MON_EV_TASK_SUCCEEDED, "a", 10.5);
    s.runtime = 0.4;
    snprintf(s.worker, sizeof s.worker, "w1@test");
    mon_model_apply_event(m, &s, 10.5);
    t = mon_model_task(m, "a");
    CHECK_INT(t->state, MON_TASK_SUCCESS);
    CHECK_STR(t->worker, "w1@test");
    CHECK_STR(t->name, "builtin.noop");
    CHECK(t->runtime > 0.39 && t->runtime < 0.41);
    CHECK_INT((int)(t->finished * 10), 105);
    CHECK_INT(t->log_size, 4);
    CHECK_INT(mon_model_events_applied(m), 4);
    mon_model_destroy(&m);
    CHECK(m == NULL);
}

/* A final state sticks; an event of an earlier attempt, or a snapshot taken
 * before the task finished, does not move it back. */
static void test_ordering(void) {
    mon_model_t *m = mon_model_new(100);
    apply(m, MON_EV_TASK_RECEIVED, "r", 1.0, 0);
    apply(m, MON_EV_TASK_STARTED, "r", 1.1, 0);
    apply(m, MON_EV_TASK_RETRIED, "r", 1.2, 1); /* the next attempt is 1 */
    CHECK_INT(state_of(m, "r"), MON_TASK_RETRY);
    CHECK_INT(mon_model_task(m, "r")->retries, 1);
    CHECK_STR(mon_model_task(m, "r")->error, "ValueError: boom");
    /* a late STARTED of attempt 0 changes nothing */
    apply(m, MON_EV_TASK_STARTED, "r", 1.15, 0);
    CHECK_INT(state_of(m, "r"), MON_TASK_RETRY);
    /* the scheduled listing says what a pending retry is: RETRY stays */
    json_t *listing =
        json_pack("[{s:s, s:s, s:s, s:f, s:i, s:i}]", "id", "r", "task", "builtin.noop", "queue",
                  "default", "eta", 5.0, "retries", 1, "priority", 0);
    mon_model_apply_listing(m, listing, MON_TASK_SCHEDULED);
    json_decref(listing);
    CHECK_INT(state_of(m, "r"), MON_TASK_RETRY);
    apply(m, MON_EV_TASK_STARTED, "r", 2.0, 1);
    CHECK_INT(state_of(m, "r"), MON_TASK_STARTED);
    apply(m, MON_EV_TASK_FAILED, "r", 2.1, -1);
    CHECK_INT(state_of(m, "r"), MON_TASK_FAILURE);
    /* a snapshot of `active` taken before the failure arrives after it */
    listing = json_pack("[{s:s, s:s, s:s, s:s, s:f, s:i}]", "id", "r", "task", "builtin.noop",
                        "queue", "default", "worker", "w1@test", "started", 2.0, "retries", 1);
    mon_model_apply_listing(m, listing, MON_TASK_STARTED);
    json_decref(listing);
    CHECK_INT(state_of(m, "r"), MON_TASK_FAILURE);
    /* a second final state does not replace the first */
    apply(m, MON_EV_TASK_REVOKED, "r", 2.2, -1);
    CHECK_INT(state_of(m, "r"), MON_TASK_FAILURE);
    /* but every event is logged, in timestamp order (the late STARTED too) */
    const mon_task_t *t = mon_model_task(m, "r");
    CHECK_INT(t->log_size, 7);
    for (size_t i = 1; i < t->log_size; i++)
        CHECK(t->log[i - 1].timestamp <= t->log[i].timestamp);
    CHECK_INT(t->log[2].type, MON_EV_TASK_STARTED); /* 1.15 sorted before the 1.2 retry */
    CHECK_INT(t->log[3].type, MON_EV_TASK_RETRIED);

    /* a snapshot can introduce a task the events never showed */
    listing = json_pack("[{s:s, s:s, s:s, s:s}]", "id", "q", "task", "builtin.sleep", "queue",
                        "slow", "worker", "w2@test");
    mon_model_apply_listing(m, listing, MON_TASK_RESERVED);
    json_decref(listing);
    CHECK_INT(state_of(m, "q"), MON_TASK_RESERVED);
    CHECK_STR(mon_model_task(m, "q")->queue, "slow");
    /* and task-received with an ETA in the future means scheduled */
    mon_event_t r = ev(MON_EV_TASK_RECEIVED, "eta", 100.0);
    r.eta = 160.0;
    mon_model_apply_event(m, &r, 100.0);
    CHECK_INT(state_of(m, "eta"), MON_TASK_SCHEDULED);
    mon_model_destroy(&m);
}

/* Progress reports merge into one log entry; the log keeps its first entry
 * and the latest ones within its bound. */
static void test_log_bound(void) {
    mon_model_t *m = mon_model_new(10);
    apply(m, MON_EV_TASK_RECEIVED, "p", 1.0, 0);
    apply(m, MON_EV_TASK_STARTED, "p", 1.1, 0);
    for (int i = 1; i <= 100; i++) {
        mon_event_t e = ev(MON_EV_TASK_PROGRESS, "p", 1.1 + i * 0.01);
        e.current = i;
        e.total = 100;
        mon_model_apply_event(m, &e, 2.0);
    }
    const mon_task_t *t = mon_model_task(m, "p");
    CHECK_INT(t->log_size, 3);
    CHECK_INT(t->log[2].count, 100);
    CHECK_INT((int)t->log[2].a, 100);
    CHECK_INT((int)t->current, 100);
    /* interleave another event (a stale retry of attempt 0: logged, the
     * state does not change) so that nothing merges: the bound holds */
    for (int i = 0; i < 3 * MON_TASK_LOG_MAX; i++) {
        mon_event_t e = ev(i % 2 ? MON_EV_TASK_PROGRESS : MON_EV_TASK_RETRIED, "p", 3.0 + i);
        e.retries = 0;
        mon_model_apply_event(m, &e, 3.0 + i);
    }
    CHECK_INT(state_of(m, "p"), MON_TASK_STARTED);
    t = mon_model_task(m, "p");
    CHECK_INT(t->log_size, MON_TASK_LOG_MAX);
    CHECK_INT(t->log[0].type, MON_EV_TASK_RECEIVED); /* the first entry stays */
    CHECK(t->log_dropped > 0);
    CHECK_INT((int)t->log[MON_TASK_LOG_MAX - 1].timestamp, 3 + 3 * MON_TASK_LOG_MAX - 1);
    mon_model_destroy(&m);
}

/* Past the bound the oldest finished task goes first; running ones stay. */
static void test_history_bound(void) {
    mon_model_t *m = mon_model_new(10);
    apply(m, MON_EV_TASK_RECEIVED, "long", 0.5, 0);
    apply(m, MON_EV_TASK_STARTED, "long", 0.6, 0);
    char id[32];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "t%d", i);
        apply(m, MON_EV_TASK_RECEIVED, id, 1.0 + i, 0);
        apply(m, MON_EV_TASK_STARTED, id, 1.0 + i, 0);
        apply(m, MON_EV_TASK_SUCCEEDED, id, 1.0 + i, -1);
        CHECK(mon_model_task_count(m) <= 10);
    }
    CHECK_INT(mon_model_task_count(m), 10);
    CHECK(mon_model_task(m, "long") != NULL); /* running: kept */
    CHECK(mon_model_task(m, "t49") != NULL);
    CHECK(mon_model_task(m, "t41") != NULL);
    CHECK(mon_model_task(m, "t40") == NULL); /* the oldest finished ones went */
    size_t counts[MON_TASK_STATES];
    mon_model_state_counts(m, counts);
    CHECK_INT(counts[MON_TASK_STARTED], 1);
    CHECK_INT(counts[MON_TASK_SUCCESS], 9);
    /* nothing finished: the oldest unfinished goes */
    mon_model_t *q = mon_model_new(10);
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof id, "q%d", i);
        apply(q, MON_EV_TASK_RECEIVED, id, 1.0 + i, 0);
    }
    CHECK_INT(mon_model_task_count(q), 10);
    CHECK(mon_model_task(q, "q14") == NULL);
    CHECK(mon_model_task(q, "q15") != NULL);
    mon_model_destroy(&q);
    mon_model_destroy(&m);
}

/* Filters, newest first, paging and the position of a task. */
static void test_filter(void) {
    mon_model_t *m = mon_model_new(100);
    char id[32];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "id-%02d", i);
        mon_event_t e = ev(MON_EV_TASK_RECEIVED, id, 1.0 + i);
        snprintf(e.name, sizeof e.name, "%s", i % 2 ? "drive2.thumbnail" : "builtin.add");
        snprintf(e.queue, sizeof e.queue, "%s", i % 4 == 0 ? "media" : "default");
        mon_model_apply_event(m, &e, 1.0 + i);
        if (i % 5 == 0) {
            e.type = MON_EV_TASK_FAILED;
            e.timestamp = 2.0 + i;
            mon_model_apply_event(m, &e, 2.0 + i);
        }
    }
    const mon_task_t *out[32];
    size_t total = 0;
    size_t n = mon_model_tasks(m, NULL, 0, out, 32, &total);
    CHECK_INT(n, 20);
    CHECK_INT(total, 20);
    CHECK_STR(out[0]->id, "id-19"); /* newest first */
    CHECK_STR(out[19]->id, "id-00");

    mon_filter_t f;
    memset(&f, 0, sizeof f);
    snprintf(f.name, sizeof f.name, "thumb");
    n = mon_model_tasks(m, &f, 0, out, 32, &total);
    CHECK_INT(total, 10);
    for (size_t i = 0; i < n; i++)
        CHECK_STR(out[i]->name, "drive2.thumbnail");

    memset(&f, 0, sizeof f);
    snprintf(f.queue, sizeof f.queue, "media");
    mon_model_tasks(m, &f, 0, out, 32, &total);
    CHECK_INT(total, 5);

    memset(&f, 0, sizeof f);
    f.by_state = true;
    f.state = MON_TASK_FAILURE;
    n = mon_model_tasks(m, &f, 0, out, 32, &total);
    CHECK_INT(total, 4);
    CHECK_INT(n, 4);
    CHECK_STR(out[0]->id, "id-15");
    /* a page of 2 after skipping 1 */
    n = mon_model_tasks(m, &f, 1, out, 2, &total);
    CHECK_INT(n, 2);
    CHECK_STR(out[0]->id, "id-10");
    CHECK_STR(out[1]->id, "id-05");
    CHECK_INT(mon_model_task_index(m, &f, "id-05"), 2);
    CHECK_INT(mon_model_task_index(m, &f, "id-06"), -1);

    f.by_state = true;
    f.state = MON_TASK_RECEIVED;
    snprintf(f.queue, sizeof f.queue, "media"); /* state and queue */
    mon_model_tasks(m, &f, 0, out, 32, &total);
    CHECK_INT(total, 4); /* media: 0, 4, 8, 12, 16; 0 failed */

    memset(&f, 0, sizeof f);
    snprintf(f.id, sizeof f.id, "id-1");
    mon_model_tasks(m, &f, 0, out, 32, &total);
    CHECK_INT(total, 10);

    mon_task_state_t s;
    CHECK_INT(mon_task_state_parse("failed", &s), 0);
    CHECK_INT(s, MON_TASK_FAILURE);
    CHECK_INT(mon_task_state_parse("Running", &s), 0);
    CHECK_INT(s, MON_TASK_STARTED);
    CHECK_INT(mon_task_state_parse("nonsense", &s), -1);
    mon_model_destroy(&m);
}

static void test_workers(void) {
    mon_model_t *m = mon_model_new(100);
    mon_event_t e = ev(MON_EV_WORKER_ONLINE, "", 1.0);
    snprintf(e.worker, sizeof e.worker, "b@host");
    snprintf(e.host, sizeof e.host, "host");
    snprintf(e.queues, sizeof e.queues, "default,media");
    e.concurrency = 4;
    mon_model_apply_event(m, &e, 1.0);
    json_t *snap = json_pack("[{s:s, s:s, s:[s], s:i, s:i, s:i, s:i, s:f}]", "name", "a@host",
                             "host", "host", "queues", "default", "concurrency", 2, "active", 1,
                             "in_flight", 3, "processed", 7, "heartbeat_age", 0.5);
    mon_model_apply_workers(m, snap, 10.0, 1000.0);
    json_decref(snap);
    /* b@host is not listed any more: offline ("gone"); online ones first */
    CHECK_INT(mon_model_worker_count(m), 2);
    const mon_worker_t *w = mon_model_worker_at(m, 0);
    CHECK_STR(w->name, "a@host");
    CHECK(w->online);
    CHECK_INT(w->processed, 7);
    CHECK(w->last_seen > 9.4 && w->last_seen < 9.6);
    w = mon_model_worker_at(m, 1);
    CHECK_STR(w->name, "b@host");
    CHECK(!w->online);
    CHECK_STR(w->offline_reason, "gone");
    CHECK_STR(w->queues, "default,media");
    e = ev(MON_EV_WORKER_OFFLINE, "", 11.0);
    snprintf(e.worker, sizeof e.worker, "a@host");
    snprintf(e.text, sizeof e.text, "heartbeat-lost");
    mon_model_apply_event(m, &e, 11.0);
    w = mon_model_worker_at(m, 0);
    CHECK_STR(w->name, "a@host");
    CHECK(!w->online);
    CHECK_STR(w->offline_reason, "heartbeat-lost");
    mon_model_destroy(&m);
}

static void test_queues_and_rates(void) {
    mon_model_t *m = mon_model_new(100);
    json_t *q =
        json_pack("[{s:s, s:i, s:i, s:i, s:i, s:f, s:[i,i,i,i,i,i,i,i,i,i]}, {s:s}]", "name",
                  "zeta", "ready", 5, "scheduled", 1, "in_flight", 2, "consumers", 3, "oldest_age",
                  2.5, "by_priority", 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, "name", "alpha");
    mon_model_apply_queues(m, q);
    json_decref(q);
    CHECK_INT(mon_model_queue_count(m), 2);
    CHECK_STR(mon_model_queue_at(m, 0)->name, "alpha"); /* sorted */
    const mon_queue_t *z = mon_model_queue_at(m, 1);
    CHECK_INT(z->ready, 5);
    CHECK_INT(z->by_priority[9], 4);
    CHECK_INT(z->by_priority[0], 1);

    /* 100 successes a second for 10 s */
    for (int i = 0; i <= 10; i++) {
        json_t *s = json_pack("{s:s, s:f, s:i, s:i, s:i}", "broker", "b@h", "uptime", 100.0 + i,
                              "succeeded", 100 * i, "failed", i, "retried", 0);
        mon_model_apply_stats(m, s, 1000.0 + i);
        json_decref(s);
    }
    const mon_broker_t *b = mon_model_broker(m);
    CHECK_STR(b->broker, "b@h");
    CHECK_INT(b->succeeded, 1000);
    CHECK(b->rate_succeeded > 99 && b->rate_succeeded < 101);
    CHECK(b->rate_failed > 0.99 && b->rate_failed < 1.01);
    double series[20];
    mon_model_series(m, MON_SERIES_SUCCEEDED, 1010.0, series, 20);
    CHECK(series[19] > 99 && series[19] < 101); /* second 1010 */
    CHECK_INT((int)series[5], 0);               /* before the first sample */
    /* a restarted broker (uptime went back): no negative rate, counting starts again */
    json_t *s = json_pack("{s:s, s:f, s:i, s:i, s:i}", "broker", "b@h", "uptime", 1.0, "succeeded",
                          3, "failed", 0, "retried", 0);
    mon_model_apply_stats(m, s, 1011.0);
    json_decref(s);
    CHECK_INT((int)b->rate_succeeded, 0);
    mon_model_destroy(&m);
}

/* Retry sends the name, args, kwargs and queue that result_extended stored. */
static void test_retry_options(void) {
    json_t *meta = json_pack("{s:s, s:[i,s], s:{s:i}, s:s, s:s}", "status", "FAILURE", "args", 1,
                             "x", "kwargs", "k", 2, "name", "builtin.fail", "queue", "media");
    zt_task_options_t o;
    char why[128];
    CHECK_INT(mon_actions_retry_options(meta, "fallback", "q", &o, why, sizeof why), 0);
    CHECK_STR(o.task, "builtin.fail");
    CHECK_STR(o.queue, "media");
    CHECK_INT(json_array_size(o.args), 2);
    CHECK_INT(json_integer_value(json_object_get(o.kwargs, "k")), 2);
    json_decref(meta);
    /* without result_extended there is nothing to send again */
    meta = json_pack("{s:s, s:n}", "status", "FAILURE", "result");
    CHECK_INT(mon_actions_retry_options(meta, "builtin.fail", "q", &o, why, sizeof why), -1);
    CHECK(strstr(why, "result_extended") != NULL);
    json_decref(meta);
}

int main(void) {
    RUN(test_lifecycle);
    RUN(test_ordering);
    RUN(test_log_bound);
    RUN(test_history_bound);
    RUN(test_filter);
    RUN(test_workers);
    RUN(test_queues_and_rates);
    RUN(test_retry_options);
    return zt_test_summary();
}
