/* Unit tests for broker/queue and the task list it is built on: priority
 * order (9 first), FIFO within a level, O(1) removal from the middle,
 * push-head for redelivery, tombstones before everything, counts, purge,
 * iteration and the unknown-task rule. */
#include "queue.h"
#include "task.h"
#include "zt_error.h"
#include "zt_test.h"

#include <stdio.h>
#include <string.h>

#define MAX_TASKS 64

static broker_task_t *tasks[MAX_TASKS];
static int ntasks;

/* A task record with id "t<n>" at priority p; freed by free_tasks(). */
static broker_task_t *make(int n, int priority) {
    static char ids[MAX_TASKS][16];
    snprintf(ids[n], sizeof ids[n], "t%d", n);
    zt_taskmsg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.id = ids[n];
    msg.id_len = strlen(ids[n]);
    msg.task = "builtin.noop";
    msg.task_len = strlen(msg.task);
    msg.priority = priority;
    const unsigned char body[] = {0x80};
    broker_task_t *t = broker_task_new(body, sizeof body, &msg);
    tasks[ntasks++] = t;
    return t;
}

static void free_tasks(void) {
    for (int i = 0; i < ntasks; i++) {
        broker_task_list_remove(tasks[i]);
        broker_task_destroy(&tasks[i]);
    }
    ntasks = 0;
}

/* Pops everything and writes the ids, space-separated, into out. */
static const char *drain(broker_queue_t *q, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    broker_task_t *t;
    while ((t = broker_queue_pop(q)) && used < size)
        used +=
            (size_t)snprintf(out + used, size - used, "%s%s", used ? " " : "", broker_task_id(t));
    return out;
}

static void test_task_record(void) {
    broker_task_t *t = make(0, 3);
    CHECK_STR(broker_task_id(t), "t0");
    CHECK_INT(broker_task_id_len(t), 2);
    CHECK_STR(broker_task_name(t), "builtin.noop");
    size_t size;
    const unsigned char *body = broker_task_body(t, &size);
    CHECK_INT(size, 1);
    CHECK_INT(body[0], 0x80);
    CHECK_INT(broker_task_priority(t), 3);
    CHECK_INT(broker_task_heap_index(t), (long long)BROKER_TASK_NO_HEAP);
    CHECK(broker_task_overhead(t) < 300);
    CHECK(broker_revoked_name(BROKER_REVOKED_NONE) == NULL);
    CHECK_STR(broker_revoked_name(BROKER_REVOKED_EXPIRED), "expired");
    free_tasks();
}

static void test_priority_order(void) {
    broker_queue_t *q = broker_queue_new("default");
    CHECK_STR(broker_queue_name(q), "default");
    CHECK(broker_queue_peek(q) == NULL);
    CHECK(broker_queue_pop(q) == NULL);
    int prios[] = {0, 5, 9, 5, 0, 9, 3, 1, 9, 0};
    for (int i = 0; i < 10; i++)
        broker_queue_push(q, make(i, prios[i]), 100 + i);
    CHECK_INT(broker_queue_size(q), 10);
    CHECK_INT(broker_queue_ready(q), 10);
    CHECK_INT(broker_queue_count(q, 9), 3);
    CHECK_INT(broker_queue_count(q, 5), 2);
    CHECK_INT(broker_queue_count(q, 0), 3);
    CHECK_INT(broker_queue_count(q, 7), 0);
    CHECK_INT(broker_queue_count(q, 10), 0);
    CHECK_INT(broker_queue_count(q, -1), 0);
    CHECK_STR(broker_task_id(broker_queue_peek(q)), "t2");
    CHECK(broker_task_queue(broker_queue_peek(q)) == q);
    CHECK_INT(broker_task_state(broker_queue_peek(q)), BROKER_TASK_QUEUED);
    char out[256];
    CHECK_STR(drain(q, out, sizeof out), "t2 t5 t8 t1 t3 t6 t7 t0 t4 t9");
    CHECK_INT(broker_queue_size(q), 0);
    CHECK(broker_queue_peek(q) == NULL);
    broker_queue_destroy(&q);
    CHECK(q == NULL);
    broker_queue_destroy(&q); /* harmless twice */
    free_tasks();
}

static void test_fifo_within_level(void) {
    broker_queue_t *q = broker_queue_new("q");
    for (int i = 0; i < 20; i++)
        broker_queue_push(q, make(i, 4), i);
    char out[256], want[256];
    size_t used = 0;
    for (int i = 0; i < 20; i++)
        used += (size_t)snprintf(want + used, sizeof want - used, "%st%d", i ? " " : "", i);
    CHECK_STR(drain(q, out, sizeof out), want);
    broker_queue_destroy(&q);
    free_tasks();
}

static void test_remove_from_middle(void) {
    broker_queue_t *q = broker_queue_new("q");
    broker_queue_t *other = broker_queue_new("other");
    broker_task_t *t[6];
    for (int i = 0; i < 6; i++) {
        t[i] = make(i, i < 3 ? 2 : 7);
        broker_queue_push(q, t[i], i);
    }
    broker_task_t *stranger = make(6, 2);
    broker_queue_push(other, stranger, 0);

    CHECK_INT(broker_queue_remove(q, t[1]), 0);                    /* middle of level 2 */
    CHECK_INT(broker_queue_remove(q, t[5]), 0);                    /* tail of level 7 */
    CHECK_INT(broker_queue_remove(q, t[3]), 0);                    /* head of level 7 */
    CHECK_INT(broker_queue_remove(q, t[3]), ZT_ERR_NOT_FOUND);     /* already out */
    CHECK_INT(broker_queue_remove(q, stranger), ZT_ERR_NOT_FOUND); /* another queue's */
    CHECK(broker_task_list_of(t[1]) == NULL);
    CHECK_INT(broker_queue_size(q), 3);
    CHECK_INT(broker_queue_count(q, 7), 1);
    CHECK_INT(broker_queue_count(q, 2), 2);
    CHECK_INT(broker_queue_size(other), 1);
    char out[256];
    CHECK_STR(drain(q, out, sizeof out), "t4 t0 t2");

    /* removing the last task of the top level lets the next level through */
    broker_queue_push(q, t[0], 10);
    broker_queue_push(q, t[4], 11);
    CHECK_INT(broker_queue_remove(q, t[4]), 0);
    CHECK_STR(broker_task_id(broker_queue_peek(q)), "t0");
    CHECK_INT(broker_queue_remove(q, t[0]), 0);
    CHECK(broker_queue_peek(q) == NULL);
    broker_queue_destroy(&q);
    broker_queue_destroy(&other);
    free_tasks();
}

static void test_push_head(void) {
    broker_queue_t *q = broker_queue_new("q");
    broker_queue_push(q, make(0, 5), 1);
    broker_queue_push(q, make(1, 5), 2);
    broker_queue_push(q, make(2, 8), 3);
    broker_task_t *back = make(3, 5);
    broker_task_set_redelivered(back, true);
    broker_queue_push_head(q, back, 4);
    /* head of its own level, still behind the higher priority */
    char out[256];
    CHECK_STR(drain(q, out, sizeof out), "t2 t3 t0 t1");
    CHECK(broker_task_redelivered(back));
    /* push_head into an empty queue */
    broker_queue_push_head(q, back, 5);
    CHECK(broker_queue_peek(q) == back);
    CHECK(broker_queue_pop(q) == back);
    broker_queue_destroy(&q);
    free_tasks();
}

static void test_tombstones_first(void) {
    broker_queue_t *q = broker_queue_new("q");
    broker_queue_push(q, make(0, 9), 1);
    broker_queue_push(q, make(1, 0), 2);
    broker_task_t *dead = make(2, 0);
    broker_task_set_revoked(dead, BROKER_REVOKED_EXPIRED);
    broker_queue_push(q, dead, 3);
    broker_task_t *dead2 = make(3, 9);
    broker_task_set_revoked(dead2, BROKER_REVOKED_REVOKED);
    broker_queue_push(q, dead2, 4);
    CHECK_INT(broker_queue_tombstones(q), 2);
    CHECK_INT(broker_queue_ready(q), 2);
    CHECK_INT(broker_queue_size(q), 4);
    CHECK_INT(broker_queue_count(q, 0), 1); /* tombstones not counted by priority */
    char out[256];
    CHECK_STR(drain(q, out, sizeof out), "t2 t3 t0 t1");

    /* a queued task revoked later: remove, mark, push -> goes out first */
    broker_task_t *a = tasks[0], *b = tasks[1];
    broker_task_set_revoked(a, BROKER_REVOKED_NONE);
    broker_queue_push(q, a, 5);
    broker_queue_push(q, b, 6);
    CHECK_INT(broker_queue_remove(q, b), 0);
    broker_task_set_revoked(b, BROKER_REVOKED_REVOKED);
    broker_queue_push(q, b, 7);
    CHECK_STR(drain(q, out, sizeof out), "t1 t0");
    broker_queue_destroy(&q);
    free_tasks();
}

static void count_purged(broker_task_t *t, void *arg) {
    (void)t;
    (*(int *)arg)++;
}

static void test_purge(void) {
    broker_queue_t *q = broker_queue_new("q");
    for (int i = 0; i < 5; i++)
        broker_queue_push(q, make(i, i * 2), i);
    broker_task_t *dead = make(5, 1);
    broker_task_set_revoked(dead, BROKER_REVOKED_EXPIRED);
    broker_queue_push(q, dead, 5);
    int calls = 0;
    CHECK_INT(broker_queue_purge(q, count_purged, &calls), 5);
    CHECK_INT(calls, 5);
    CHECK_INT(broker_queue_ready(q), 0);
    CHECK_INT(broker_queue_tombstones(q), 6);
    for (int p = 0; p < BROKER_PRIORITY_LEVELS; p++)
        CHECK_INT(broker_queue_count(q, p), 0);
    CHECK_INT(broker_task_revoked(tasks[0]), BROKER_REVOKED_PURGED);
    CHECK_INT(broker_task_revoked(dead), BROKER_REVOKED_EXPIRED); /* kept its reason */
    CHECK_INT(broker_queue_purge(q, NULL, NULL), 0);
    CHECK_INT(broker_queue_size(q), 6);
    broker_queue_destroy(&q); /* unlinks, does not free */
    CHECK(broker_task_list_of(tasks[0]) == NULL);
    free_tasks();
}

static void test_iteration_and_oldest(void) {
    broker_queue_t *q = broker_queue_new("q");
    CHECK(broker_queue_first(q) == NULL);
    CHECK_INT(broker_queue_oldest(q), 0);
    broker_queue_push(q, make(0, 1), 500);
    broker_queue_push(q, make(1, 6), 300);
    broker_queue_push(q, make(2, 6), 700);
    broker_task_t *dead = make(3, 2);
    broker_task_set_revoked(dead, BROKER_REVOKED_PURGED);
    broker_queue_push(q, dead, 900);
    char out[256];
    size_t used = 0;
    for (broker_task_t *t = broker_queue_first(q); t; t = broker_queue_next(q, t))
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%s", used ? " " : "",
                                 broker_task_id(t));
    CHECK_STR(out, "t3 t1 t2 t0");
    CHECK_INT(broker_queue_oldest(q), 300);
    CHECK_INT(broker_task_listed_at(tasks[2]), 700);
    broker_queue_destroy(&q);
    free_tasks();
}

static void test_bookkeeping(void) {
    broker_queue_t *q = broker_queue_new("q");
    broker_queue_add_scheduled(q, 3);
    broker_queue_add_scheduled(q, -1);
    broker_queue_add_in_flight(q, 1);
    broker_queue_add_consumers(q, -5); /* never below zero */
    CHECK_INT(broker_queue_scheduled(q), 2);
    CHECK_INT(broker_queue_in_flight(q), 1);
    CHECK_INT(broker_queue_consumers(q), 0);
    broker_queue_destroy(&q);
}

static void test_unknown_task_rule(void) {
    broker_queue_t *q = broker_queue_new("q");
    /* never had workers: anything goes (the worker reports NotRegistered) */
    CHECK(broker_queue_accepts(q, "no.such", 7));
    broker_queue_learn_task(q, "builtin.add");
    CHECK(broker_queue_accepts(q, "builtin.add", 11));
    CHECK(!broker_queue_accepts(q, "builtin.addx", 12));
    CHECK(!broker_queue_accepts(q, "builtin.ad", 10));
    broker_queue_learn_task(q, "builtin.noop");
    CHECK(broker_queue_accepts(q, "builtin.noop", 12));
    broker_queue_t *r = broker_queue_new("r");
    broker_queue_learn_worker(r); /* a worker registering nothing */
    CHECK(!broker_queue_accepts(r, "builtin.add", 11));
    broker_queue_destroy(&q);
    broker_queue_destroy(&r);
}

static void test_task_list(void) {
    broker_task_list_t list = BROKER_TASK_LIST_INIT;
    broker_task_t *a = make(0, 0), *b = make(1, 0), *c = make(2, 0);
    CHECK(broker_task_list_pop(&list) == NULL);
    broker_task_list_push_tail(&list, a, 1);
    broker_task_list_push_tail(&list, b, 2);
    broker_task_list_push_head(&list, c, 3);
    CHECK_INT(list.count, 3);
    CHECK(list.head == c && list.tail == b);
    CHECK(broker_task_next(c) == a && broker_task_prev(a) == c);
    broker_task_list_remove(a);
    CHECK(broker_task_next(c) == b && broker_task_prev(b) == c);
    broker_task_list_remove(a); /* not listed: no-op */
    CHECK_INT(list.count, 2);
    CHECK(broker_task_list_of(b) == &list);
    CHECK(broker_task_list_pop(&list) == c);
    CHECK(broker_task_list_pop(&list) == b);
    CHECK(list.head == NULL && list.tail == NULL && list.count == 0);
    free_tasks();
}

int main(void) {
    RUN(test_task_record);
    RUN(test_priority_order);
    RUN(test_fifo_within_level);
    RUN(test_remove_from_middle);
    RUN(test_push_head);
    RUN(test_tombstones_first);
    RUN(test_purge);
    RUN(test_iteration_and_oldest);
    RUN(test_bookkeeping);
    RUN(test_unknown_task_rule);
    RUN(test_task_list);
    return zt_test_summary();
}
