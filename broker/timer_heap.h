/* timer_heap: a binary min-heap of (due, item) for delayed work: countdown and
 * ETA tasks and retry timers. Items with equal due times come out in the
 * order they went in. Each item learns its position through a setpos
 * callback, so it can be removed in O(log n) (revoke of a scheduled task).
 *
 * There is no hidden clock: due times and `now` are plain integers in the
 * caller's unit (the broker uses monotonic microseconds), so tests need no
 * sleeping. The heap does not own its items. */
#ifndef BROKER_TIMER_HEAP_H
#define BROKER_TIMER_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct broker_timer_heap broker_timer_heap_t;

/* Called whenever an item's position changes; pos is SIZE_MAX when the
 * item leaves the heap. */
typedef void(broker_timer_setpos_fn)(void *item, size_t pos);

/* Creates an empty heap. setpos may be NULL (then removal by position needs
 * positions from elsewhere). Never NULL. */
broker_timer_heap_t *broker_timer_heap_new(broker_timer_setpos_fn *setpos);
void broker_timer_heap_destroy(broker_timer_heap_t **self_p);

/* Adds item (not NULL) due at `due`. O(log n). */
void broker_timer_heap_insert(broker_timer_heap_t *self, int64_t due, void *item);

/* Removes and returns the item at position pos, or NULL if pos is out of
 * range. O(log n). */
void *broker_timer_heap_remove(broker_timer_heap_t *self, size_t pos);

/* The earliest item (borrowed) and its due time, or NULL when empty. */
void *broker_timer_heap_peek(const broker_timer_heap_t *self, int64_t *due);

/* Removes and returns the earliest item if it is due (due <= now), else NULL.
 * Call in a loop to release everything due. */
void *broker_timer_heap_pop_due(broker_timer_heap_t *self, int64_t now);

/* Time from now until the earliest item is due: 0 if already due, -1 when
 * the heap is empty. */
int64_t broker_timer_heap_wait(const broker_timer_heap_t *self, int64_t now);

size_t broker_timer_heap_size(const broker_timer_heap_t *self);

/* Item at position pos (heap order, not due order) and its due time, for
 * listings; NULL when out of range. */
void *broker_timer_heap_at(const broker_timer_heap_t *self, size_t pos, int64_t *due);

#endif
