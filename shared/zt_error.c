/* zt_error: error names, the never-compiled-out assert, and allocation
 * wrappers that abort on out-of-memory (the one sanctioned abort). */
#include "zt_error.h"
#include "zt_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *zt_strerror(int code) {
    switch (code) {
    case ZT_OK:
        return "success";
    case ZT_ERR_NOMEM:
        return "out of memory";
    case ZT_ERR_INVALID:
        return "invalid input";
    case ZT_ERR_TOO_LARGE:
        return "too large";
    case ZT_ERR_IO:
        return "input/output error";
    case ZT_ERR_TIMEOUT:
        return "timed out";
    case ZT_ERR_PROTOCOL:
        return "protocol error";
    case ZT_ERR_NOT_FOUND:
        return "not found";
    case ZT_ERR_REJECTED:
        return "rejected";
    case ZT_ERR_BACKEND:
        return "result backend error";
    case ZT_ERR_INTERRUPTED:
        return "interrupted";
    default:
        return "unknown error";
    }
}

void zt_assert_fail(const char *expr, const char *file, int line) {
    zt_error("assertion failed: %s at %s:%d", expr, file, line);
    abort();
}

static void out_of_memory(size_t size) {
    zt_error("out of memory allocating %zu bytes", size);
    abort();
}

void *zt_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *zt_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *zt_realloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

char *zt_strdup(const char *s) {
    return zt_strndup(s, strlen(s));
}

char *zt_strndup(const char *s, size_t n) {
    char *p = zt_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int zt_fail(char *err, size_t err_size, int code, const char *fmt, ...) {
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}
