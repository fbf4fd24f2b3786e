/* drive2_task_args: the two argument helpers every Drive2 task module of
 * issue 7 needs (thumbnails, notifications): the worker's settings and a
 * validated file_id / user_id argument. Header-only (static inline) because
 * it is a few lines used by two task files. */
#ifndef WORKER_DRIVE2_TASK_ARGS_H
#define WORKER_DRIVE2_TASK_ARGS_H

#include "task.h"
#include "zt_config.h"
#include "zt_taskmsg.h"

#include <string.h>

#define TASKS_DRIVE2_ID_MAX 64 /* bytes of a file or user id (drive2 upload allows 64) */

/* The worker's settings, or (a runner without them, e.g. a test harness)
 * the defaults and the environment. */
static inline void tasks_drive2_config(worker_task_t *t, zt_config_t *config) {
    const zt_config_t *given = worker_task_config(t);
    if (given) {
        *config = *given;
        return;
    }
    zt_config_defaults(config);
    zt_config_load_env(config);
}

/* Argument `index` / `key` as an id: 1..64 bytes of the task-id alphabet
 * (what catalog file ids and user ids use). NULL when missing or not that. */
static inline const char *tasks_drive2_id_arg(worker_task_t *t, size_t index, const char *key) {
    const json_t *v = worker_task_arg(t, index, key);
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0 || n > TASKS_DRIVE2_ID_MAX || !zt_taskmsg_valid_id(s, n))
        return NULL;
    return s;
}

#endif
