/* notify: see notify.h. Owns the LINE client (when there is a token); the
 * outbox file is opened per notice and closed again. */
#include "notify.h"

#include "catalog.h"
#include "line.h"
#include "zt_error.h"
#include "zt_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct drive2_notifier {
    drive2_line_t *line; /* NULL: the outbox */
    char outbox[ZT_URL_MAX + 32];
    char data_dir[ZT_URL_MAX];
};

void drive2_outbox_path(const zt_config_t *config, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s", config->drive2_data_dir, DRIVE2_OUTBOX_FILE);
}

drive2_notifier_t *drive2_notifier_new(const zt_config_t *config, char *err, size_t err_size) {
    drive2_notifier_t *self = zt_calloc(1, sizeof *self);
    drive2_outbox_path(config, self->outbox, sizeof self->outbox);
    snprintf(self->data_dir, sizeof self->data_dir, "%s", config->drive2_data_dir);
    if (drive2_line_configured()) {
        self->line = drive2_line_new(config, NULL, err, err_size);
        if (!self->line) {
            free(self);
            return NULL;
        }
    }
    return self;
}

void drive2_notifier_destroy(drive2_notifier_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_line_destroy(&(*self_p)->line);
    free(*self_p);
    *self_p = NULL;
}

const char *drive2_notifier_kind(const drive2_notifier_t *self) {
    return self->line ? "line" : "outbox";
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads fd (already locked) from the start, up to max bytes; malloc'd,
 * NUL-terminated. */
static char *read_fd(int fd, size_t max, size_t *len) {
    struct stat st;
    *len = 0;
    if (fstat(fd, &st) != 0)
        return NULL;
    size_t want = st.st_size > 0 ? (size_t)st.st_size : 0;
    off_t start = 0;
    if (want > max) {
        start = (off_t)(want - max); /* the newest part */
        want = max;
    }
    char *buf = zt_malloc(want + 1);
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, start + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* Appends entry unless a line with the same retry key is there already. */
static int outbox_append(drive2_notifier_t *self, const char *retry_key, json_t *entry,
                         bool *duplicate, char *err, size_t err_size) {
    *duplicate = false;
    if (mkdir(self->data_dir, 0755) != 0 && errno != EEXIST)
        return zt_fail(err, err_size, ZT_ERR_IO, "outbox: cannot create %s: %s", self->data_dir,
                       strerror(errno));
    int fd = open(self->outbox, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return zt_fail(err, err_size, ZT_ERR_IO, "outbox: cannot open %s: %s", self->outbox,
                       strerror(errno));
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return zt_fail(err, err_size, ZT_ERR_IO, "outbox: cannot lock %s: %s", self->outbox,
                           strerror(e));
        }
    char needle[80];
    snprintf(needle, sizeof needle, "\"retry_key\":\"%s\"", retry_key);
    size_t len = 0;
    char *all = read_fd(fd, DRIVE2_OUTBOX_MAX_BYTES, &len);
    bool seen = all && strstr(all, needle) != NULL;
    free(all);
    int rc = 0;
    if (seen) {
        *duplicate = true;
    } else {
        char *line = json_dumps(entry, JSON_COMPACT);
        size_t n = line ? strlen(line) : 0;
        if (!line) {
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "outbox: cannot encode the notice");
        } else {
            line = zt_realloc(line, n + 2);
            line[n] = '\n';
            line[n + 1] = '\0';
            if (write_all(fd, line, n + 1) != 0)
                rc = zt_fail(err, err_size, ZT_ERR_IO, "outbox: cannot write %s: %s", self->outbox,
                             strerror(errno));
            free(line);
        }
    }
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

int drive2_notifier_send(drive2_notifier_t *self, const drive2_notice_t *n, const json_t *message,
                         json_t **receipt, char *err, size_t err_size) {
    if (receipt)
        *receipt = NULL;
    char key[37];
    drive2_line_retry_key(n->key, key);
    json_t *r =
        json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "channel", drive2_notifier_kind(self), "kind",
                  n->kind, "retry_key", key, "to", n->line_user_id, "user_id", n->user_id);
    int rc = 0;
    if (self->line) {
        if (!n->line_user_id || !*n->line_user_id) {
            zt_info("notice %s for user %s not sent: no LINE user id linked", n->kind,
                    n->user_id ? n->user_id : "?");
            json_object_set_new(r, "delivered", json_false());
            json_object_set_new(r, "skipped", json_string("the user has no LINE user id"));
        } else {
            json_t *messages = json_pack("[O]", message);
            drive2_line_result_t lr;
            rc = drive2_line_push(self->line, n->line_user_id, messages, key, &lr, err, err_size);
            json_decref(messages);
            json_object_set_new(r, "delivered", json_boolean(rc == 0));
            json_object_set_new(r, "duplicate", json_boolean(lr.duplicate));
            json_object_set_new(r, "status", json_integer(lr.status));
            json_object_set_new(r, "attempts", json_integer(lr.attempts));
            if (lr.request_id[0])
                json_object_set_new(r, "request_id", json_string(lr.request_id));
        }
    } else {
        char now[32];
        drive2_catalog_now(now, sizeof now);
        json_t *entry = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:O}", "time", now, "kind",
                                  n->kind, "user_id", n->user_id, "to", n->line_user_id, "file_id",
                                  n->file_id, "retry_key", key, "message", message);
        bool duplicate = false;
        rc = outbox_append(self, key, entry, &duplicate, err, err_size);
        json_decref(entry);
        json_object_set_new(r, "delivered", json_boolean(rc == 0));
        json_object_set_new(r, "duplicate", json_boolean(duplicate));
        json_object_set_new(r, "outbox", json_string(self->outbox));
        if (rc == 0)
            zt_info("notice %s for user %s %s the outbox %s", n->kind,
                    n->user_id ? n->user_id : "?", duplicate ? "already in" : "written to",
                    self->outbox);
    }
    if (receipt)
        *receipt = r;
    else
        json_decref(r);
    return rc;
}

int drive2_outbox_list(const zt_config_t *config, const char *user_id, size_t limit,
                       json_t **entries, char *err, size_t err_size) {
    *entries = json_array();
    char path[ZT_URL_MAX + 32];
    drive2_outbox_path(config, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return zt_fail(err, err_size, ZT_ERR_IO, "outbox: cannot open %s: %s", path,
                       strerror(errno));
    }
    /* a shared lock: never read a line half written */
    while (flock(fd, LOCK_SH) != 0 && errno == EINTR)
        ;
    size_t len = 0;
    char *all = read_fd(fd, DRIVE2_OUTBOX_MAX_BYTES, &len);
    close(fd);
    if (!all)
        return zt_fail(err, err_size, ZT_ERR_IO, "outbox: cannot read %s", path);
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *e = json_loads(line, 0, NULL);
        if (!json_is_object(e)) {
            json_decref(e);
            continue;
        }
        const char *u = json_string_value(json_object_get(e, "user_id"));
        if (user_id && (!u || strcmp(u, user_id) != 0)) {
            json_decref(e);
            continue;
        }
        json_array_append_new(*entries, e);
        if (limit > 0 && json_array_size(*entries) > limit)
            json_array_remove(*entries, 0);
    }
    free(all);
    return 0;
}
