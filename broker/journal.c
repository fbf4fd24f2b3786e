/* journal: issue 2 has no journal (see journal.h). This file creates the
 * data directory so deployments and scripts can rely on it, and the hooks
 * deliberately do nothing: the broker's state lives in memory only. */
#include "journal.h"
#include "zt_error.h"
#include "zt_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct broker_journal {
    char *dir;
};

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

broker_journal_t *broker_journal_new(const char *data_dir, int *err) {
    if (!data_dir || make_dirs(data_dir) != 0) {
        zt_error("cannot create data directory %s: %s", data_dir ? data_dir : "(none)",
                 strerror(errno));
        if (err)
            *err = ZT_ERR_IO;
        return NULL;
    }
    broker_journal_t *self = zt_calloc(1, sizeof *self);
    self->dir = zt_strdup(data_dir);
    zt_info("data directory %s (no journal yet: tasks live in memory only)", self->dir);
    return self;
}

void broker_journal_destroy(broker_journal_t **self_p) {
    if (!self_p || !*self_p)
        return;
    free((*self_p)->dir);
    free(*self_p);
    *self_p = NULL;
}

void broker_journal_task_added(broker_journal_t *self, const broker_task_t *task) {
    (void)self;
    (void)task;
}

void broker_journal_task_updated(broker_journal_t *self, const broker_task_t *task) {
    (void)self;
    (void)task;
}

void broker_journal_task_removed(broker_journal_t *self, const broker_task_t *task) {
    (void)self;
    (void)task;
}

int broker_journal_commit(broker_journal_t *self) {
    (void)self;
    return 0;
}
