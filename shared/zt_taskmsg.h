/* zt_taskmsg: the task message (docs/PROTOCOL.md §7), Celery protocol v2's
 * fields as a MessagePack map. zt_taskmsg_t is a plain value struct: parsing
 * fills it with pointers borrowed from the zt_body it came from; building
 * packs it from caller-owned values. */
#ifndef ZT_TASKMSG_H
#define ZT_TASKMSG_H

#include "zt_codec.h"
#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define ZT_ID_MAX 128    /* bytes in a task id, NUL excluded */
#define ZT_NAME_MAX 200  /* bytes in a task name */
#define ZT_QUEUE_MAX 100 /* bytes in a queue name */
#define ZT_PRIORITY_MIN 0
#define ZT_PRIORITY_MAX 9
#define ZT_DEFAULT_QUEUE "default"

typedef struct {
    /* Strings: borrowed, NOT NUL-terminated when parsed; use the lengths. */
    const char *id;
    size_t id_len;
    const char *task;
    size_t task_len;
    const char *queue; /* "default" when absent */
    size_t queue_len;
    const char *parent_id; /* NULL when absent or nil */
    size_t parent_id_len;
    const char *root_id;
    size_t root_id_len;
    const msgpack_object *args;   /* array, or NULL when absent */
    const msgpack_object *kwargs; /* map with str keys, or NULL when absent */
    int priority;                 /* 0..9 */
    double eta;                   /* unix seconds; 0 = none */
    double countdown;             /* seconds; < 0 = none */
    double expires;               /* unix seconds; 0 = none */
    int retries;                  /* >= 0 */
    int max_retries;              /* -1 = worker default */
    double retry_delay;           /* seconds; < 0 = worker default */
    double time_limit;            /* seconds; 0 = worker default */
    double soft_time_limit;       /* seconds; 0 = worker default */
    bool ignore_result;
} zt_taskmsg_t;

/* Validates a task message map and fills msg with borrowed pointers into it.
 * Returns 0, or ZT_ERR_INVALID with a one-line reason naming the field in
 * reason (reason may be NULL). */
int zt_taskmsg_parse(const msgpack_object *map, zt_taskmsg_t *msg, char *reason,
                     size_t reason_size);

/* True if s[0..len) is a valid task id / task name / queue name. */
bool zt_taskmsg_valid_id(const char *s, size_t len);
bool zt_taskmsg_valid_name(const char *s, size_t len);
bool zt_taskmsg_valid_queue(const char *s, size_t len);

/* What a client sets to send a task. Strings are NUL-terminated and borrowed;
 * NULL means absent. args must be a JSON array or NULL, kwargs an object or NULL. */
typedef struct {
    const char *id; /* NULL: a new UUID is generated */
    const char *task;
    const json_t *args;
    const json_t *kwargs;
    const char *queue;
    int priority;
    double eta;         /* unix seconds; 0 = none */
    double countdown;   /* seconds; < 0 = none */
    double expires;     /* unix seconds; 0 = none */
    int max_retries;    /* -1 = worker default */
    double retry_delay; /* < 0 = worker default */
    double time_limit;  /* 0 = default */
    double soft_time_limit;
    const char *parent_id;
    const char *root_id;
    bool ignore_result;
} zt_task_options_t;

/* Fills opts with the defaults (everything absent, priority 0). */
void zt_task_options_init(zt_task_options_t *opts);

/* Packs a task message for opts, with id as its id. Returns 0, or
 * ZT_ERR_INVALID (bad name, queue, priority, args not an array, ...) with a
 * reason. */
int zt_taskmsg_pack(msgpack_packer *pk, const zt_task_options_t *opts, const char *id, char *reason,
                    size_t reason_size);

/* Writes a new random UUID (36 chars + NUL) into buf (size >= 37). */
void zt_uuid_generate(char *buf, size_t size);

/* Writes the RFC 4122 name-based UUID (version 5, SHA-1) of name in namespace
 * ns, lower case (36 chars + NUL): the same name always gives the same id,
 * which is what makes retried sends idempotent (beat runs, LINE retry keys,
 * Qdrant point ids). */
void zt_uuid5(const unsigned char ns[16], const char *name, size_t name_len, char out[37]);

#endif
