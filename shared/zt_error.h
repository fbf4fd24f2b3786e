/* zt_error: error codes shared by every module, the assert macro for our own
 * invariants, and the allocation wrappers that abort on out-of-memory.
 * Functions return 0 on success and a negative ZT_ERR_* code on failure;
 * zt_strerror() names a code. ZT_ASSERT is never compiled out: use it for our
 * own bugs only, never for input from outside. */
#ifndef ZT_ERROR_H
#define ZT_ERROR_H

#include <stddef.h>

enum {
    ZT_OK = 0,
    ZT_ERR_NOMEM = -1,       /* allocation failed */
    ZT_ERR_INVALID = -2,     /* malformed or out-of-range input */
    ZT_ERR_TOO_LARGE = -3,   /* input over a configured limit */
    ZT_ERR_IO = -4,          /* socket, file or process failure */
    ZT_ERR_TIMEOUT = -5,     /* no answer in time */
    ZT_ERR_PROTOCOL = -6,    /* peer broke the wire protocol */
    ZT_ERR_NOT_FOUND = -7,   /* no such key, task, worker, ... */
    ZT_ERR_REJECTED = -8,    /* the broker refused the request */
    ZT_ERR_BACKEND = -9,     /* result backend (Redis) failure */
    ZT_ERR_INTERRUPTED = -10 /* a signal asked us to stop */
};

/* Returns a static English name for an error code ("invalid input", ...). */
const char *zt_strerror(int code);

/* Writes the printf-style message into err (when err is not NULL and
 * err_size > 0) and returns code: `return zt_fail(err, n, ZT_ERR_IO, ...)`
 * reports an error in one line. */
int zt_fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs "assertion failed: EXPR at file:line" at ERROR and aborts. */
void zt_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define ZT_ASSERT(expr) ((expr) ? (void)0 : zt_assert_fail(#expr, __FILE__, __LINE__))

/* Allocation that never returns NULL: on out-of-memory it logs and aborts,
 * the one place the project allows that. */
void *zt_malloc(size_t size);
void *zt_calloc(size_t count, size_t size);
void *zt_realloc(void *ptr, size_t size);
char *zt_strdup(const char *s);
char *zt_strndup(const char *s, size_t n);

#endif
