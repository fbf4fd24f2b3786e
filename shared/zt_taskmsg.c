/* zt_taskmsg: validating and building the task message (PROTOCOL.md §7).
 * Parsing borrows from the decoded body and never allocates. */
#include "zt_taskmsg.h"
#include "zt_error.h"

#include <czmq.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool chars_ok(const char *s, size_t len, size_t max, const char *extra) {
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (c != '\0' && strchr(extra, c))
            continue;
        return false;
    }
    return true;
}

bool zt_taskmsg_valid_id(const char *s, size_t len) {
    return chars_ok(s, len, ZT_ID_MAX, "._:@-");
}

bool zt_taskmsg_valid_name(const char *s, size_t len) {
    return chars_ok(s, len, ZT_NAME_MAX, "_.:-");
}

bool zt_taskmsg_valid_queue(const char *s, size_t len) {
    return chars_ok(s, len, ZT_QUEUE_MAX, "_.-");
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (reason)                                                                                \
            snprintf(reason, reason_size, __VA_ARGS__);                                            \
        return ZT_ERR_INVALID;                                                                     \
    } while (0)

/* Optional string field: absent/nil leaves *out NULL. */
static int opt_str(const msgpack_object *map, const char *key, const char **out, size_t *len) {
    int rc = zt_mp_get_str(map, key, out, len);
    if (rc == ZT_ERR_NOT_FOUND) {
        *out = NULL;
        *len = 0;
        return 0;
    }
    return rc;
}

static int opt_double(const msgpack_object *map, const char *key, double *out, double dflt) {
    int rc = zt_mp_get_double(map, key, out);
    if (rc == ZT_ERR_NOT_FOUND) {
        *out = dflt;
        return 0;
    }
    return rc;
}

int zt_taskmsg_parse(const msgpack_object *map, zt_taskmsg_t *msg, char *reason,
                     size_t reason_size) {
    memset(msg, 0, sizeof *msg);
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        FAIL("task message is not a map");
    if (zt_mp_get_str(map, "id", &msg->id, &msg->id_len) != 0)
        FAIL("field 'id' missing or not a string");
    if (!zt_taskmsg_valid_id(msg->id, msg->id_len))
        FAIL("field 'id' must be 1-%d characters of A-Z a-z 0-9 . _ : @ -", ZT_ID_MAX);
    if (zt_mp_get_str(map, "task", &msg->task, &msg->task_len) != 0)
        FAIL("field 'task' missing or not a string");
    if (!zt_taskmsg_valid_name(msg->task, msg->task_len))
        FAIL("field 'task' must be 1-%d characters of A-Z a-z 0-9 _ . : -", ZT_NAME_MAX);
    if (opt_str(map, "queue", &msg->queue, &msg->queue_len) != 0)
        FAIL("field 'queue' is not a string");
    if (!msg->queue) {
        msg->queue = ZT_DEFAULT_QUEUE;
        msg->queue_len = strlen(ZT_DEFAULT_QUEUE);
    } else if (!zt_taskmsg_valid_queue(msg->queue, msg->queue_len)) {
        FAIL("field 'queue' must be 1-%d characters of A-Z a-z 0-9 _ . -", ZT_QUEUE_MAX);
    }
    if (opt_str(map, "parent_id", &msg->parent_id, &msg->parent_id_len) != 0 ||
        (msg->parent_id && !zt_taskmsg_valid_id(msg->parent_id, msg->parent_id_len)))
        FAIL("field 'parent_id' is not a valid id");
    if (opt_str(map, "root_id", &msg->root_id, &msg->root_id_len) != 0 ||
        (msg->root_id && !zt_taskmsg_valid_id(msg->root_id, msg->root_id_len)))
        FAIL("field 'root_id' is not a valid id");

    const msgpack_object *args = zt_mp_get(map, "args");
    if (args && args->type != MSGPACK_OBJECT_NIL) {
        if (args->type != MSGPACK_OBJECT_ARRAY)
            FAIL("field 'args' is not an array");
        msg->args = args;
    }
    const msgpack_object *kwargs = zt_mp_get(map, "kwargs");
    if (kwargs && kwargs->type != MSGPACK_OBJECT_NIL) {
        if (kwargs->type != MSGPACK_OBJECT_MAP)
            FAIL("field 'kwargs' is not a map");
        for (uint32_t i = 0; i < kwargs->via.map.size; i++)
            if (kwargs->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
                FAIL("field 'kwargs' has a key that is not a string");
        msg->kwargs = kwargs;
    }

    int64_t i64;
    int rc = zt_mp_get_int(map, "priority", &i64);
    if (rc == ZT_ERR_NOT_FOUND)
        i64 = 0;
    else if (rc != 0 || i64 < ZT_PRIORITY_MIN || i64 > ZT_PRIORITY_MAX)
        FAIL("field 'priority' must be an integer from %d to %d", ZT_PRIORITY_MIN, ZT_PRIORITY_MAX);
    msg->priority = (int)i64;

    rc = zt_mp_get_int(map, "retries", &i64);
    if (rc == ZT_ERR_NOT_FOUND)
        i64 = 0;
    else if (rc != 0 || i64 < 0 || i64 > 1000000)
        FAIL("field 'retries' must be a non-negative integer");
    msg->retries = (int)i64;

    rc = zt_mp_get_int(map, "max_retries", &i64);
    if (rc == ZT_ERR_NOT_FOUND)
        i64 = -1;
    else if (rc != 0 || i64 < 0 || i64 > 1000000)
        FAIL("field 'max_retries' must be a non-negative integer");
    msg->max_retries = (int)i64;

    /* Times: eta/expires are absolute unix seconds; a year-9999 bound keeps
     * later millisecond arithmetic far from overflow. */
    const double max_time = 253402300799.0;
    if (opt_double(map, "eta", &msg->eta, 0) != 0 || msg->eta < 0 || msg->eta > max_time)
        FAIL("field 'eta' must be unix seconds");
    if (opt_double(map, "expires", &msg->expires, 0) != 0 || msg->expires < 0 ||
        msg->expires > max_time)
        FAIL("field 'expires' must be unix seconds");
    if (opt_double(map, "countdown", &msg->countdown, -1) != 0 ||
        (zt_mp_get(map, "countdown") && zt_mp_get(map, "countdown")->type != MSGPACK_OBJECT_NIL &&
         (msg->countdown < 0 || msg->countdown > 1e9)))
        FAIL("field 'countdown' must be seconds >= 0");
    if (opt_double(map, "retry_delay", &msg->retry_delay, -1) != 0 ||
        (msg->retry_delay < 0 && msg->retry_delay != -1) || msg->retry_delay > 1e9)
        FAIL("field 'retry_delay' must be seconds >= 0");
    if (opt_double(map, "time_limit", &msg->time_limit, 0) != 0 || msg->time_limit < 0 ||
        msg->time_limit > 1e9)
        FAIL("field 'time_limit' must be seconds > 0");
    if (opt_double(map, "soft_time_limit", &msg->soft_time_limit, 0) != 0 ||
        msg->soft_time_limit < 0 || msg->soft_time_limit > 1e9)
        FAIL("field 'soft_time_limit' must be seconds > 0");
    rc = zt_mp_get_bool(map, "ignore_result", &msg->ignore_result);
    if (rc != 0 && rc != ZT_ERR_NOT_FOUND)
        FAIL("field 'ignore_result' is not a boolean");
    return 0;
}

void zt_task_options_init(zt_task_options_t *opts) {
    memset(opts, 0, sizeof *opts);
    opts->countdown = -1;
    opts->max_retries = -1;
    opts->retry_delay = -1;
}

int zt_taskmsg_pack(msgpack_packer *pk, const zt_task_options_t *opts, const char *id, char *reason,
                    size_t reason_size) {
    if (!id || !zt_taskmsg_valid_id(id, strlen(id)))
        FAIL("invalid task id");
    if (!opts->task || !zt_taskmsg_valid_name(opts->task, strlen(opts->task)))
        FAIL("invalid task name '%s'", opts->task ? opts->task : "");
    if (opts->queue && !zt_taskmsg_valid_queue(opts->queue, strlen(opts->queue)))
        FAIL("invalid queue name '%s'", opts->queue);
    if (opts->priority < ZT_PRIORITY_MIN || opts->priority > ZT_PRIORITY_MAX)
        FAIL("priority must be from %d to %d", ZT_PRIORITY_MIN, ZT_PRIORITY_MAX);
    if (opts->args && !json_is_array(opts->args))
        FAIL("args must be a JSON array");
    if (opts->kwargs && !json_is_object(opts->kwargs))
        FAIL("kwargs must be a JSON object");
    if (opts->parent_id && !zt_taskmsg_valid_id(opts->parent_id, strlen(opts->parent_id)))
        FAIL("invalid parent id");
    if (opts->root_id && !zt_taskmsg_valid_id(opts->root_id, strlen(opts->root_id)))
        FAIL("invalid root id");

    int fields = 5; /* id, task, args, kwargs, queue */
    fields += opts->priority != 0;
    fields += opts->eta > 0;
    fields += opts->countdown >= 0 && opts->eta <= 0;
    fields += opts->expires > 0;
    fields += opts->max_retries >= 0;
    fields += opts->retry_delay >= 0;
    fields += opts->time_limit > 0;
    fields += opts->soft_time_limit > 0;
    fields += opts->parent_id != NULL;
    fields += opts->root_id != NULL;
    fields += opts->ignore_result;
    msgpack_pack_map(pk, (size_t)fields);
    zt_pack_kv_cstr(pk, "id", id);
    zt_pack_kv_cstr(pk, "task", opts->task);
    zt_pack_cstr(pk, "args");
    if (opts->args) {
        if (zt_json_pack(pk, opts->args) != 0)
            FAIL("args nested too deeply");
    } else {
        msgpack_pack_array(pk, 0);
    }
    zt_pack_cstr(pk, "kwargs");
    if (opts->kwargs) {
        if (zt_json_pack(pk, opts->kwargs) != 0)
            FAIL("kwargs nested too deeply");
    } else {
        msgpack_pack_map(pk, 0);
    }
    zt_pack_kv_cstr(pk, "queue", opts->queue ? opts->queue : ZT_DEFAULT_QUEUE);
    if (opts->priority != 0)
        zt_pack_kv_int(pk, "priority", opts->priority);
    if (opts->eta > 0)
        zt_pack_kv_double(pk, "eta", opts->eta);
    if (opts->countdown >= 0 && opts->eta <= 0)
        zt_pack_kv_double(pk, "countdown", opts->countdown);
    if (opts->expires > 0)
        zt_pack_kv_double(pk, "expires", opts->expires);
    if (opts->max_retries >= 0)
        zt_pack_kv_int(pk, "max_retries", opts->max_retries);
    if (opts->retry_delay >= 0)
        zt_pack_kv_double(pk, "retry_delay", opts->retry_delay);
    if (opts->time_limit > 0)
        zt_pack_kv_double(pk, "time_limit", opts->time_limit);
    if (opts->soft_time_limit > 0)
        zt_pack_kv_double(pk, "soft_time_limit", opts->soft_time_limit);
    if (opts->parent_id)
        zt_pack_kv_cstr(pk, "parent_id", opts->parent_id);
    if (opts->root_id)
        zt_pack_kv_cstr(pk, "root_id", opts->root_id);
    if (opts->ignore_result)
        zt_pack_kv_bool(pk, "ignore_result", true);
    return 0;
}

void zt_uuid_generate(char *buf, size_t size) {
    zuuid_t *uuid = zuuid_new();
    ZT_ASSERT(uuid);
    /* czmq's canonical form is upper case; Celery's ids are lower case. */
    const char *s = zuuid_str_canonical(uuid);
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        buf[i] = (char)tolower((unsigned char)s[i]);
    buf[i] = '\0';
    zuuid_destroy(&uuid);
}

void zt_uuid5(const unsigned char ns[16], const char *name, size_t name_len, char out[37]) {
    zdigest_t *digest = zdigest_new();
    ZT_ASSERT(digest);
    zdigest_update(digest, ns, 16);
    zdigest_update(digest, (const byte *)name, name_len);
    unsigned char h[20];
    memcpy(h, zdigest_data(digest), sizeof h);
    zdigest_destroy(&digest);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x50); /* version 5 */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0],
             h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13],
             h[14], h[15]);
}
