/* mon_actions: a small table of actions waiting for their answer, keyed by
 * the link tag each request carried. The table is bounded: an action whose
 * answer never comes ends with the link's timeout, which frees its slot. */
#include "mon_actions.h"
#include "zt_error.h"

#include <string.h>

#define ACTIONS_MAX 64
#define ACTION_TIMEOUT_MS 3000
#define SHUTDOWN_REPLY_S 1.0 /* how long the broker waits for the worker's answer */

typedef enum { ACT_REVOKE, ACT_TERMINATE, ACT_RETRY, ACT_PURGE, ACT_SHUTDOWN } kind_t;

typedef struct {
    bool used;
    uint64_t tag;
    kind_t kind;
    char target[256]; /* task id, queue ("" = all) or worker */
    char extra[130];  /* retry: the new id */
} action_t;

struct mon_actions {
    mon_link_t *link;
    action_t table[ACTIONS_MAX];
    uint64_t next;
};

mon_actions_t *mon_actions_new(mon_link_t *link) {
    mon_actions_t *self = zt_calloc(1, sizeof *self);
    self->link = link;
    return self;
}

void mon_actions_destroy(mon_actions_t **self_p) {
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static action_t *slot(mon_actions_t *self, kind_t kind, const char *target) {
    for (size_t i = 0; i < ACTIONS_MAX; i++) {
        action_t *a = &self->table[i];
        if (a->used)
            continue;
        memset(a, 0, sizeof *a);
        a->used = true;
        a->kind = kind;
        a->tag = MON_ACTION_TAG_BIT | ++self->next;
        snprintf(a->target, sizeof a->target, "%s", target ? target : "");
        return a;
    }
    return NULL;
}

/* Sends op with args for action a; on failure frees the slot and says why. */
static int send_request(mon_actions_t *self, action_t *a, const char *op, json_t *args,
                        int timeout_ms, char *line, size_t size) {
    int rc = mon_link_control(self->link, op, args, timeout_ms, a->tag);
    json_decref(args);
    if (rc != 0) {
        a->used = false;
        snprintf(line, size, "%s: cannot send the request to the broker", op);
    }
    return rc;
}

int mon_actions_revoke(mon_actions_t *self, const char *id, bool terminate, char *line,
                       size_t size) {
    action_t *a = slot(self, terminate ? ACT_TERMINATE : ACT_REVOKE, id);
    if (!a) {
        snprintf(line, size, "too many actions waiting for an answer");
        return ZT_ERR_IO;
    }
    json_t *args = json_object();
    json_object_set_new(args, "id", json_string(id));
    json_object_set_new(args, "terminate", json_boolean(terminate));
    if (terminate)
        json_object_set_new(args, "signal", json_string("SIGTERM"));
    int rc = send_request(self, a, "revoke", args, ACTION_TIMEOUT_MS, line, size);
    if (rc == 0)
        snprintf(line, size, "%s %s ...", terminate ? "terminating" : "revoking", id);
    return rc;
}

int mon_actions_retry_options(const json_t *meta, const char *name, const char *queue,
                              zt_task_options_t *opts, char *reason, size_t reason_size) {
    zt_task_options_init(opts);
    const json_t *args = json_object_get(meta, "args");
    const json_t *kwargs = json_object_get(meta, "kwargs");
    if (!json_is_array(args)) {
        snprintf(reason, reason_size,
                 "the result backend has no args for it (workers without result_extended?)");
        return -1;
    }
    const char *n = json_string_value(json_object_get(meta, "name"));
    const char *q = json_string_value(json_object_get(meta, "queue"));
    opts->task = n && *n ? n : name;
    opts->queue = q && *q ? q : (queue && *queue ? queue : NULL);
    opts->args = args;
    opts->kwargs = json_is_object(kwargs) ? kwargs : NULL;
    if (!opts->task || !*opts->task || strcmp(opts->task, "?") == 0) {
        snprintf(reason, reason_size, "the task's name is unknown");
        return -1;
    }
    return 0;
}

int mon_actions_retry(mon_actions_t *self, const char *id, const json_t *meta, const char *name,
                      const char *queue, char *line, size_t size) {
    zt_task_options_t opts;
    char reason[256];
    if (!meta) {
        snprintf(line, size, "retry %s: no result in the result backend", id);
        return ZT_ERR_NOT_FOUND;
    }
    if (mon_actions_retry_options(meta, name, queue, &opts, reason, sizeof reason) != 0) {
        snprintf(line, size, "retry %s: %s", id, reason);
        return ZT_ERR_INVALID;
    }
    action_t *a = slot(self, ACT_RETRY, id);
    if (!a) {
        snprintf(line, size, "too many actions waiting for an answer");
        return ZT_ERR_IO;
    }
    /* the id is new: the broker refuses an id it finished lately (duplicate-id) */
    int rc = mon_link_submit(self->link, &opts, ACTION_TIMEOUT_MS, a->tag, a->extra,
                             sizeof a->extra, reason, sizeof reason);
    if (rc != 0) {
        a->used = false;
        snprintf(line, size, "retry %s: %s", id, reason);
        return rc;
    }
    snprintf(line, size, "retrying %s as %s ...", id, a->extra);
    return 0;
}

int mon_actions_purge(mon_actions_t *self, const char *queue, char *line, size_t size) {
    action_t *a = slot(self, ACT_PURGE, queue);
    if (!a) {
        snprintf(line, size, "too many actions waiting for an answer");
        return ZT_ERR_IO;
    }
    json_t *args = json_object();
    if (queue)
        json_object_set_new(args, "queue", json_string(queue));
    int rc = send_request(self, a, "purge", args, ACTION_TIMEOUT_MS, line, size);
    if (rc == 0)
        snprintf(line, size, "purging %s%s ...", queue ? "queue " : "all queues",
                 queue ? queue : "");
    return rc;
}

int mon_actions_shutdown(mon_actions_t *self, const char *worker, char *line, size_t size) {
    action_t *a = slot(self, ACT_SHUTDOWN, worker);
    if (!a) {
        snprintf(line, size, "too many actions waiting for an answer");
        return ZT_ERR_IO;
    }
    json_t *args = json_object();
    json_object_set_new(args, "command", json_string("shutdown"));
    json_t *dest = json_array();
    json_array_append_new(dest, json_string(worker));
    json_object_set_new(args, "destination", dest);
    json_object_set_new(args, "timeout", json_real(SHUTDOWN_REPLY_S));
    int rc = send_request(self, a, "broadcast", args,
                          ACTION_TIMEOUT_MS + (int)(SHUTDOWN_REPLY_S * 1000), line, size);
    if (rc == 0)
        snprintf(line, size, "asking %s to shut down ...", worker);
    return rc;
}

/* revoke: {id, state} */
static bool describe_revoke(const action_t *a, const mon_reply_t *r, char *line, size_t size) {
    const char *state = json_string_value(json_object_get(r->result, "state"));
    const char *verb = a->kind == ACT_TERMINATE ? "terminate" : "revoke";
    if (!state) {
        snprintf(line, size, "%s %s: the broker's answer has no state", verb, a->target);
        return false;
    }
    if (strcmp(state, "unknown") == 0)
        snprintf(line, size,
                 "%s %s: the broker does not hold it (finished?); remembered as revoked", verb,
                 a->target);
    else
        snprintf(line, size, "%s %s: was %s, now revoked%s", verb, a->target, state,
                 a->kind == ACT_TERMINATE && strcmp(state, "running") == 0
                     ? " (its process gets SIGTERM)"
                     : "");
    return true;
}

static bool describe_shutdown(const action_t *a, const mon_reply_t *r, char *line, size_t size) {
    const json_t *answer = json_object_get(r->result, a->target);
    if (!answer) {
        snprintf(line, size, "shutdown %s: no answer from the worker within %.0f s", a->target,
                 SHUTDOWN_REPLY_S);
        return false;
    }
    const char *error = json_string_value(json_object_get(answer, "error"));
    if (error) {
        snprintf(line, size, "shutdown %s: the worker refused: %s", a->target, error);
        return false;
    }
    snprintf(line, size, "shutdown %s: warm shutdown begun (finishes running tasks, then leaves)",
             a->target);
    return true;
}

bool mon_actions_on_reply(mon_actions_t *self, const mon_reply_t *r, char *line, size_t size,
                          bool *ok) {
    if (!(r->tag & MON_ACTION_TAG_BIT))
        return false;
    action_t *a = NULL;
    for (size_t i = 0; i < ACTIONS_MAX && !a; i++)
        if (self->table[i].used && self->table[i].tag == r->tag)
            a = &self->table[i];
    if (!a)
        return false;
    static const char *const verbs[] = {"revoke", "terminate", "retry", "purge", "shutdown"};
    *ok = false;
    if (r->status != 0) {
        snprintf(line, size, "%s %s: %s", verbs[a->kind], *a->target ? a->target : "(all)",
                 r->error ? r->error : "failed");
    } else {
        switch (a->kind) {
        case ACT_REVOKE:
        case ACT_TERMINATE:
            *ok = describe_revoke(a, r, line, size);
            break;
        case ACT_RETRY:
            snprintf(line, size, "retry %s: sent again as %s", a->target, a->extra);
            *ok = true;
            break;
        case ACT_PURGE: {
            const json_t *n = json_object_get(r->result, "purged");
            snprintf(line, size, "purge %s%s: %lld ready task(s) removed (they end REVOKED)",
                     *a->target ? "queue " : "all queues", a->target,
                     json_is_integer(n) ? (long long)json_integer_value(n) : 0LL);
            *ok = true;
            break;
        }
        case ACT_SHUTDOWN:
            *ok = describe_shutdown(a, r, line, size);
            break;
        }
    }
    a->used = false;
    return true;
}
