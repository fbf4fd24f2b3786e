/* zt_secret: see zt_secret.h. */
#include "zt_secret.h"
#include "zt_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Overwrites a buffer that held secret bytes; volatile so the compiler keeps
 * the stores even though nothing reads them after. */
static void wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static int fail(char *buf, size_t size, char *reason, size_t reason_size, int code, const char *fmt,
                const char *name, const char *detail) {
    if (size)
        wipe(buf, size);
    if (reason && reason_size)
        snprintf(reason, reason_size, fmt, name, detail);
    return code;
}

int zt_secret_get(const char *name, char *buf, size_t size, char *reason, size_t reason_size) {
    if (size == 0)
        return ZT_ERR_INVALID;
    buf[0] = '\0';
    const char *value = getenv(name);
    if (value && *value) {
        size_t n = strlen(value);
        if (n >= size)
            return fail(buf, size, reason, reason_size, ZT_ERR_INVALID,
                        "%s is longer than this program accepts%s", name, "");
        memcpy(buf, value, n + 1);
        return 0;
    }
    char file_var[128];
    snprintf(file_var, sizeof file_var, "%s_FILE", name);
    const char *path = getenv(file_var);
    if (!path || !*path)
        return fail(buf, size, reason, reason_size, ZT_ERR_NOT_FOUND, "%s is not set%s", name, "");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(buf, size, reason, reason_size, ZT_ERR_IO, "%s_FILE: cannot open: %s", name,
                    strerror(errno));
    size_t n = fread(buf, 1, size, f);
    int read_error = ferror(f);
    fclose(f);
    if (read_error)
        return fail(buf, size, reason, reason_size, ZT_ERR_IO, "%s_FILE: read failed%s", name, "");
    if (n == size)
        return fail(buf, size, reason, reason_size, ZT_ERR_INVALID,
                    "%s_FILE holds more than this program accepts%s", name, "");
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\0', n))
        return fail(buf, size, reason, reason_size, ZT_ERR_INVALID,
                    "%s_FILE is empty or not text%s", name, "");
    return 0;
}

bool zt_secret_present(const char *name) {
    const char *value = getenv(name);
    if (value && *value)
        return true;
    char file_var[128];
    snprintf(file_var, sizeof file_var, "%s_FILE", name);
    value = getenv(file_var);
    return value && *value;
}
