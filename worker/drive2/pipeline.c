/* pipeline: see pipeline.h. A zt_client lives only for one send: tasks and
 * the CLI send a handful of messages per file, and a pool child must not
 * keep sockets between tasks. */
#include "pipeline.h"

#include "zt_client.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int drive2_send_task(const zt_config_t *config, const char *name, const json_t *args,
                     const char *queue, const char *id, int timeout_ms, char *id_out,
                     size_t id_size, bool *duplicate, char *err, size_t err_size) {
    if (duplicate)
        *duplicate = false;
    char idbuf[ZT_ID_MAX + 1];
    if (id)
        snprintf(idbuf, sizeof idbuf, "%s", id);
    else
        zt_uuid_generate(idbuf, sizeof idbuf);
    if (id_out && id_size)
        snprintf(id_out, id_size, "%s", idbuf);
    int cerr = 0;
    char why[512] = "";
    zt_client_t *client = zt_client_new_config(config, NULL, &cerr, why, sizeof why);
    if (!client)
        return zt_fail(err, err_size, cerr ? cerr : ZT_ERR_INVALID, "cannot send %s: %s", name,
                       why);
    zt_client_set_timeout(client, timeout_ms);
    json_t *empty = args ? NULL : json_array();
    zt_task_options_t o;
    zt_task_options_init(&o);
    o.id = idbuf;
    o.task = name;
    o.args = args ? args : empty;
    o.queue = queue;
    char got[ZT_ID_MAX + 1];
    int rc = zt_client_send(client, &o, got, sizeof got);
    if (rc == ZT_ERR_REJECTED && strstr(zt_client_last_error(client), "duplicate-id")) {
        if (duplicate)
            *duplicate = true;
        rc = 0;
    } else if (rc != 0) {
        zt_fail(err, err_size, rc, "cannot send %s to queue %s: %s", name, queue,
                *zt_client_last_error(client) ? zt_client_last_error(client) : zt_strerror(rc));
    }
    json_decref(empty);
    zt_client_destroy(&client);
    return rc;
}

int drive2_start_run(drive2_catalog_t *catalog, const zt_config_t *config, const char *file_id,
                     bool force, const char *task_id, char *task_id_out, size_t id_size, char *err,
                     size_t err_size) {
    char id[ZT_ID_MAX + 1];
    if (task_id)
        snprintf(id, sizeof id, "%s", task_id);
    else
        zt_uuid_generate(id, sizeof id);
    if (task_id_out && id_size)
        snprintf(task_id_out, id_size, "%s", id);
    int rc = drive2_catalog_reset(catalog, file_id, force, err, err_size);
    if (rc == 0)
        rc = drive2_catalog_set_task(catalog, file_id, id, err, err_size);
    if (rc != 0)
        return rc;
    json_t *args = json_pack("[s]", file_id);
    char why[512];
    rc = drive2_send_task(config, DRIVE2_TASK_PROCESS, args, DRIVE2_QUEUE_AI, id, 5000, NULL, 0,
                          NULL, why, sizeof why);
    json_decref(args);
    if (rc != 0) {
        char ignored[256];
        char reason[600];
        snprintf(reason, sizeof reason, "could not queue the processing task: %s", why);
        (void)drive2_catalog_fail(catalog, file_id, reason, ignored, sizeof ignored);
        return zt_fail(err, err_size, rc, "%s", reason);
    }
    return 0;
}
