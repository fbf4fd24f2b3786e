/* libFuzzer target: the protocol body decoder (PROTOCOL.md §3 rule 4-7):
 * zt_codec_check() (bounds every count before anything is allocated),
 * zt_body_parse(), and for maps zt_taskmsg_parse() — the path every SUBMIT
 * body takes in the broker — plus the JSON conversion workers use.
 * Properties: no crash, no leak, no sanitizer report; a body the checker
 * refuses is refused by the parser too.
 *
 *   ./fuzz_body -malloc_limit_mb=512 -max_total_time=60 corpus/body */
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        zt_log_setup("fuzz", ZT_LOG_OFF, NULL);
        quiet = 1;
    }
    int checked = zt_codec_check(data, size);
    int err = 0;
    zt_body_t *body = zt_body_parse(data, size, &err);
    if (checked != 0 && body)
        abort(); /* the parser accepted what the bounds check refused */
    if (!body)
        return 0;
    const msgpack_object *root = zt_body_root(body);
    zt_taskmsg_t msg;
    char reason[256];
    if (zt_taskmsg_parse(root, &msg, reason, sizeof reason) == 0) {
        if (!zt_taskmsg_valid_id(msg.id, msg.id_len) ||
            !zt_taskmsg_valid_name(msg.task, msg.task_len) ||
            !zt_taskmsg_valid_queue(msg.queue, msg.queue_len) || msg.priority < ZT_PRIORITY_MIN ||
            msg.priority > ZT_PRIORITY_MAX)
            abort(); /* a parsed task message must satisfy its own rules */
    }
    json_t *json = zt_mp_to_json(root);
    json_decref(json);
    zt_body_destroy(&body);
    return 0;
}
