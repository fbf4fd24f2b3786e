/* Unit tests for broker/timer_heap: order under many random inserts and
 * removals by stored position, FIFO among equal due times, and release of
 * due items against an injected `now` (no sleeping). */
#include "timer_heap.h"
#include "zt_test.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    int64_t due;
    size_t pos; /* kept up to date by the heap */
    int id;
    int in_heap;
} item_t;

static void setpos(void *item, size_t pos) {
    ((item_t *)item)->pos = pos;
}

/* Deterministic PRNG so a failure reproduces. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Every entry knows its position and no child is due before its parent. */
static int heap_ok(const broker_timer_heap_t *h) {
    size_t n = broker_timer_heap_size(h);
    for (size_t i = 0; i < n; i++) {
        int64_t due;
        item_t *it = broker_timer_heap_at(h, i, &due);
        if (!it || it->pos != i || it->due != due)
            return 0;
        if (i > 0) {
            int64_t parent_due;
            broker_timer_heap_at(h, (i - 1) / 2, &parent_due);
            if (parent_due > due)
                return 0;
        }
    }
    return 1;
}

static void test_empty(void) {
    broker_timer_heap_t *h = broker_timer_heap_new(setpos);
    int64_t due = 42;
    CHECK(broker_timer_heap_peek(h, &due) == NULL);
    CHECK_INT(due, 42);
    CHECK(broker_timer_heap_pop_due(h, INT64_MAX) == NULL);
    CHECK_INT(broker_timer_heap_wait(h, 0), -1);
    CHECK_INT(broker_timer_heap_size(h), 0);
    CHECK(broker_timer_heap_remove(h, 0) == NULL);
    CHECK(broker_timer_heap_at(h, 0, NULL) == NULL);
    broker_timer_heap_destroy(&h);
    CHECK(h == NULL);
    broker_timer_heap_destroy(&h);
}

static void test_random_order(void) {
    enum { N = 5000 };
    static item_t items[N];
    broker_timer_heap_t *h = broker_timer_heap_new(setpos);
    for (int i = 0; i < N; i++) {
        items[i].due = (int64_t)(rng() % 100000);
        items[i].id = i;
        broker_timer_heap_insert(h, items[i].due, &items[i]);
    }
    CHECK_INT(broker_timer_heap_size(h), N);
    CHECK(heap_ok(h));
    int64_t last = -1;
    int count = 0, sorted = 1;
    item_t *it;
    while ((it = broker_timer_heap_pop_due(h, INT64_MAX))) {
        sorted &= it->due >= last;
        last = it->due;
        CHECK_INT(it->pos, (long long)SIZE_MAX); /* told it left */
        count++;
    }
    CHECK(sorted);
    CHECK_INT(count, N);
    broker_timer_heap_destroy(&h);
}

static void test_fifo_for_equal_due(void) {
    item_t items[50];
    broker_timer_heap_t *h = broker_timer_heap_new(setpos);
    for (int i = 0; i < 50; i++) {
        items[i].due = i % 2 ? 10 : 20;
        items[i].id = i;
        broker_timer_heap_insert(h, items[i].due, &items[i]);
    }
    int prev_id = -1, ok = 1;
    int64_t prev_due = 0;
    item_t *it;
    while ((it = broker_timer_heap_pop_due(h, 100))) {
        if (it->due == prev_due)
            ok &= it->id > prev_id;
        prev_due = it->due;
        prev_id = it->id;
    }
    CHECK(ok);
    broker_timer_heap_destroy(&h);
}

static void test_random_inserts_and_removes(void) {
    enum { N = 4000 };
    static item_t items[N];
    broker_timer_heap_t *h = broker_timer_heap_new(setpos);
    int live = 0, ok = 1;
    /* interleave inserts and removals of random live items by their position */
    for (int round = 0; round < 3 * N; round++) {
        int i = (int)(rng() % N);
        if (!items[i].in_heap) {
            items[i].due = (int64_t)(rng() % 1000); /* many equal dues too */
            items[i].id = i;
            items[i].in_heap = 1;
            broker_timer_heap_insert(h, items[i].due, &items[i]);
            live++;
        } else {
            item_t *got = broker_timer_heap_remove(h, items[i].pos);
            ok &= got == &items[i];
            ok &= items[i].pos == SIZE_MAX;
            items[i].in_heap = 0;
            live--;
        }
        if (round % 97 == 0)
            ok &= heap_ok(h);
    }
    CHECK(ok);
    CHECK(heap_ok(h));
    CHECK_INT(broker_timer_heap_size(h), live);
    /* what is left comes out in order, and is exactly the live set */
    int64_t last = -1;
    int count = 0, sorted = 1, all_live = 1;
    item_t *it;
    while ((it = broker_timer_heap_pop_due(h, INT64_MAX))) {
        sorted &= it->due >= last;
        last = it->due;
        all_live &= it->in_heap;
        it->in_heap = 0;
        count++;
    }
    CHECK(sorted);
    CHECK(all_live);
    CHECK_INT(count, live);
    CHECK(broker_timer_heap_remove(h, 12345) == NULL);
    broker_timer_heap_destroy(&h);
}

static void test_release_with_injected_now(void) {
    item_t a = {.due = 300}, b = {.due = 100}, c = {.due = 200}, d = {.due = 200};
    broker_timer_heap_t *h = broker_timer_heap_new(setpos);
    broker_timer_heap_insert(h, a.due, &a);
    broker_timer_heap_insert(h, b.due, &b);
    broker_timer_heap_insert(h, c.due, &c);
    broker_timer_heap_insert(h, d.due, &d);
    int64_t due;
    CHECK(broker_timer_heap_peek(h, &due) == &b);
    CHECK_INT(due, 100);
    /* nothing is released early */
    CHECK(broker_timer_heap_pop_due(h, 99) == NULL);
    CHECK_INT(broker_timer_heap_wait(h, 40), 60);
    /* due exactly now is due */
    CHECK(broker_timer_heap_pop_due(h, 100) == &b);
    CHECK(broker_timer_heap_pop_due(h, 150) == NULL);
    CHECK_INT(broker_timer_heap_wait(h, 150), 50);
    /* a late wake-up releases everything due, in order */
    CHECK(broker_timer_heap_pop_due(h, 1000) == &c);
    CHECK(broker_timer_heap_pop_due(h, 1000) == &d);
    CHECK_INT(broker_timer_heap_wait(h, 1000), 0);
    /* revoke of a scheduled item by its stored position */
    CHECK(broker_timer_heap_remove(h, a.pos) == &a);
    CHECK(broker_timer_heap_pop_due(h, 1000) == NULL);
    CHECK_INT(broker_timer_heap_wait(h, 1000), -1);
    broker_timer_heap_destroy(&h);
}

static void test_destroy_tells_items(void) {
    item_t a = {.due = 1}, b = {.due = 2};
    broker_timer_heap_t *h = broker_timer_heap_new(setpos);
    broker_timer_heap_insert(h, a.due, &a);
    broker_timer_heap_insert(h, b.due, &b);
    broker_timer_heap_destroy(&h);
    CHECK_INT(a.pos, (long long)SIZE_MAX);
    CHECK_INT(b.pos, (long long)SIZE_MAX);
    /* without setpos the heap still works */
    broker_timer_heap_t *plain = broker_timer_heap_new(NULL);
    broker_timer_heap_insert(plain, 5, &a);
    broker_timer_heap_insert(plain, 3, &b);
    CHECK(broker_timer_heap_pop_due(plain, 10) == &b);
    broker_timer_heap_destroy(&plain);
}

int main(void) {
    RUN(test_empty);
    RUN(test_random_order);
    RUN(test_fifo_for_equal_due);
    RUN(test_random_inserts_and_removes);
    RUN(test_release_with_injected_now);
    RUN(test_destroy_tells_items);
    return zt_test_summary();
}
