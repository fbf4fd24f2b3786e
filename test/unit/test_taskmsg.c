/* Unit tests for zt_taskmsg: what the broker accepts and refuses, and that a
 * packed message parses back to the same fields. */
#include "zt_error.h"
#include "zt_taskmsg.h"
#include "zt_test.h"

#include <string.h>

static zt_body_t *pack_opts(const zt_task_options_t *o, const char *id) {
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    char reason[200];
    int rc = zt_taskmsg_pack(&pk, o, id, reason, sizeof reason);
    zt_body_t *body = rc == 0 ? zt_body_parse(sbuf.data, sbuf.size, NULL) : NULL;
    msgpack_sbuffer_destroy(&sbuf);
    return body;
}

static zt_body_t *from_json(const char *text) {
    json_t *v = json_loads(text, 0, NULL);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    zt_json_pack(&pk, v);
    json_decref(v);
    zt_body_t *body = zt_body_parse(sbuf.data, sbuf.size, NULL);
    msgpack_sbuffer_destroy(&sbuf);
    return body;
}

static void test_round_trip(void) {
    zt_task_options_t o;
    zt_task_options_init(&o);
    json_t *args = json_pack("[i, i]", 2, 3);
    o.task = "builtin.add";
    o.args = args;
    o.queue = "ai_processing";
    o.priority = 7;
    o.countdown = 2.5;
    o.expires = 2000000000.0;
    o.max_retries = 5;
    o.parent_id = "p-1";
    zt_body_t *body = pack_opts(&o, "0b6a8f5e-1234-4c1a-9d7e-0123456789ab");
    CHECK(body != NULL);
    zt_taskmsg_t m;
    char reason[200] = "";
    CHECK_INT(zt_taskmsg_parse(zt_body_root(body), &m, reason, sizeof reason), 0);
    CHECK(m.task_len == strlen("builtin.add") && memcmp(m.task, "builtin.add", m.task_len) == 0);
    CHECK(m.queue_len == 13 && memcmp(m.queue, "ai_processing", 13) == 0);
    CHECK_INT(m.priority, 7);
    CHECK(m.countdown == 2.5);
    CHECK(m.expires == 2000000000.0);
    CHECK_INT(m.max_retries, 5);
    CHECK_INT(m.retries, 0);
    CHECK(m.args && m.args->type == MSGPACK_OBJECT_ARRAY && m.args->via.array.size == 2);
    CHECK(m.parent_id_len == 3);
    CHECK(m.root_id == NULL);
    CHECK(m.retry_delay < 0);
    zt_body_destroy(&body);
    json_decref(args);
}

static void test_defaults(void) {
    zt_body_t *body = from_json("{\"id\": \"abc\", \"task\": \"builtin.noop\"}");
    zt_taskmsg_t m;
    CHECK_INT(zt_taskmsg_parse(zt_body_root(body), &m, NULL, 0), 0);
    CHECK(m.queue_len == 7 && memcmp(m.queue, "default", 7) == 0);
    CHECK_INT(m.priority, 0);
    CHECK_INT(m.max_retries, -1);
    CHECK(m.eta == 0 && m.expires == 0 && m.countdown < 0);
    zt_body_destroy(&body);
}

static void expect_invalid(const char *json, const char *field) {
    zt_body_t *body = from_json(json);
    CHECK(body != NULL);
    zt_taskmsg_t m;
    char reason[200] = "";
    CHECK_INT(zt_taskmsg_parse(zt_body_root(body), &m, reason, sizeof reason), ZT_ERR_INVALID);
    if (!strstr(reason, field))
        fprintf(stderr, "reason '%s' does not name '%s'\n", reason, field);
    CHECK(strstr(reason, field) != NULL);
    zt_body_destroy(&body);
}

static void test_refusals(void) {
    expect_invalid("{\"task\": \"x\"}", "id");
    expect_invalid("{\"id\": \"a b\", \"task\": \"x\"}", "id");
    expect_invalid("{\"id\": \"a\"}", "task");
    expect_invalid("{\"id\": \"a\", \"task\": \"x/../y\"}", "task");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"queue\": \"../etc\"}", "queue");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"priority\": 10}", "priority");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"priority\": -1}", "priority");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"priority\": \"high\"}", "priority");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"args\": {}}", "args");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"kwargs\": []}", "kwargs");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"countdown\": -3}", "countdown");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"eta\": \"tomorrow\"}", "eta");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"max_retries\": -2}", "max_retries");
    expect_invalid("{\"id\": \"a\", \"task\": \"x\", \"ignore_result\": 1}", "ignore_result");
}

static void test_uuid(void) {
    char a[40], b[40];
    zt_uuid_generate(a, sizeof a);
    zt_uuid_generate(b, sizeof b);
    CHECK_INT(strlen(a), 36);
    CHECK(strcmp(a, b) != 0);
    CHECK(zt_taskmsg_valid_id(a, strlen(a)));
    CHECK(a[8] == '-' && a[14] == '4');
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_defaults);
    RUN(test_refusals);
    RUN(test_uuid);
    return zt_test_summary();
}
