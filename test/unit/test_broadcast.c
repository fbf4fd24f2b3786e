/* Unit tests for broker/broadcast: req numbers per target, replies matched
 * by req and identity, ok:false kept as {error}, late and stray replies
 * refused, workers gone, deadlines, several broadcasts at once, the answer
 * map (first answer per name), and the pending limit. No sockets, no clock. */
#include "broadcast.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_test.h"

#include <stdlib.h>
#include <string.h>

/* Decodes a JSON-ish reply built with msgpack into a zone-backed object. */
typedef struct {
    msgpack_sbuffer buf;
    msgpack_zone zone;
    msgpack_object obj;
} packed_t;

static void reply_body(packed_t *p, uint64_t req, int ok, const char *text) {
    msgpack_sbuffer_init(&p->buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, ok < 0 ? 1 : 3);
    zt_pack_kv_uint(&pk, "req", req);
    if (ok > 0) {
        zt_pack_kv_bool(&pk, "ok", true);
        zt_pack_kv_cstr(&pk, "result", text);
    } else if (ok == 0) {
        zt_pack_kv_bool(&pk, "ok", false);
        zt_pack_kv_cstr(&pk, "error", text);
    }
    msgpack_zone_init(&p->zone, 1024);
    size_t off = 0;
    msgpack_unpack(p->buf.data, p->buf.size, &off, &p->zone, &p->obj);
}

static void reply_free(packed_t *p) {
    msgpack_zone_destroy(&p->zone);
    msgpack_sbuffer_destroy(&p->buf);
}

static int reply(broker_broadcasts_t *r, const char *identity, uint64_t req, int ok,
                 const char *text) {
    packed_t p;
    reply_body(&p, req, ok, text);
    int rc = broker_broadcasts_reply(r, identity, strlen(identity), req, &p.obj);
    reply_free(&p);
    return rc;
}

/* Packs the answer map and renders it as "name=value;..." (values are
 * strings, or "{error:...}"), in map order. */
static const char *answer(const broker_broadcast_t *bc, char *out, size_t size) {
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    broker_broadcast_pack_result(bc, &pk);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    out[0] = '\0';
    if (msgpack_unpack(buf.data, buf.size, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS &&
        obj.type == MSGPACK_OBJECT_MAP && off == buf.size) {
        size_t used = 0;
        for (uint32_t i = 0; i < obj.via.map.size && used < size; i++) {
            const msgpack_object_kv *kv = &obj.via.map.ptr[i];
            char key[64] = "?", val[64] = "?";
            zt_mp_copy_str(&kv->key, key, sizeof key);
            if (kv->val.type == MSGPACK_OBJECT_STR) {
                zt_mp_copy_str(&kv->val, val, sizeof val);
            } else if (kv->val.type == MSGPACK_OBJECT_MAP) {
                char e[48] = "?";
                const msgpack_object *eo = zt_mp_get(&kv->val, "error");
                if (eo)
                    zt_mp_copy_str(eo, e, sizeof e);
                snprintf(val, sizeof val, "{error:%s}", e);
            } else if (kv->val.type == MSGPACK_OBJECT_NIL) {
                snprintf(val, sizeof val, "nil");
            }
            used += (size_t)snprintf(out + used, size - used, "%s%s=%s", i ? ";" : "", key, val);
        }
    } else {
        snprintf(out, size, "<bad map>");
    }
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&buf);
    return out;
}

static void test_gather_all(void) {
    broker_broadcasts_t *r = broker_broadcasts_new();
    broker_broadcast_t *bc = broker_broadcasts_start(r, "client", 6, 42, 1000);
    CHECK(bc != NULL);
    uint64_t qa = broker_broadcast_add_target(r, bc, "wa", 2, "a@h");
    uint64_t qb = broker_broadcast_add_target(r, bc, "wb", 2, "b@h");
    CHECK(qa != qb);
    CHECK_INT(broker_broadcasts_wait(r, 0), 1000);
    CHECK(broker_broadcasts_pop_finished(r, 10) == NULL);
    /* wrong identity for that req: refused */
    CHECK_INT(reply(r, "wb", qa, 1, "x"), ZT_ERR_NOT_FOUND);
    CHECK_INT(reply(r, "wa", qa, 1, "pong-a"), 0);
    CHECK_INT(reply(r, "wa", qa, 1, "again"), ZT_ERR_NOT_FOUND); /* duplicate */
    CHECK(broker_broadcasts_pop_finished(r, 10) == NULL);
    CHECK_INT(reply(r, "wb", qb, 0, "nope"), 0);
    CHECK_INT(broker_broadcasts_wait(r, 10), 0);
    broker_broadcast_t *done = broker_broadcasts_pop_finished(r, 10);
    CHECK(done == bc);
    size_t csize;
    CHECK(memcmp(broker_broadcast_client(done, &csize), "client", 6) == 0);
    CHECK_INT(csize, 6);
    CHECK_INT(broker_broadcast_client_req(done), 42);
    CHECK_INT(broker_broadcast_answered(done), 2);
    char out[256];
    CHECK_STR(answer(done, out, sizeof out), "a@h=pong-a;b@h={error:nope}");
    broker_broadcast_destroy(&done);
    CHECK(done == NULL);
    CHECK_INT(broker_broadcasts_size(r), 0);
    CHECK_INT(broker_broadcasts_wait(r, 10), -1);
    /* late reply after it was answered */
    CHECK_INT(reply(r, "wa", qa, 1, "late"), ZT_ERR_NOT_FOUND);
    broker_broadcasts_destroy(&r);
    CHECK(r == NULL);
}

static void test_deadline_gone_and_malformed(void) {
    broker_broadcasts_t *r = broker_broadcasts_new();
    broker_broadcast_t *bc = broker_broadcasts_start(r, "c", 1, 1, 500);
    uint64_t qa = broker_broadcast_add_target(r, bc, "wa", 2, "a@h");
    uint64_t qb = broker_broadcast_add_target(r, bc, "wb", 2, "b@h");
    broker_broadcast_add_target(r, bc, "wc", 2, "c@h");
    CHECK_INT(reply(r, "wa", qa, -1, NULL), 0); /* no ok: kept as an error */
    CHECK_INT(broker_broadcasts_worker_gone(r, "wb", 2), 1);
    CHECK_INT(reply(r, "wb", qb, 1, "after death"), ZT_ERR_NOT_FOUND);
    CHECK_INT(broker_broadcasts_wait(r, 100), 400);
    CHECK(broker_broadcasts_pop_finished(r, 499) == NULL);
    broker_broadcast_t *done = broker_broadcasts_pop_finished(r, 500);
    CHECK(done == bc);
    char out[256];
    CHECK_STR(answer(done, out, sizeof out), "a@h={error:malformed reply}");
    broker_broadcast_destroy(&done);

    /* a broadcast whose only target dies finishes before its deadline */
    bc = broker_broadcasts_start(r, "c", 1, 2, 1000000);
    broker_broadcast_add_target(r, bc, "wz", 2, "z@h");
    CHECK(broker_broadcasts_pop_finished(r, 0) == NULL);
    broker_broadcasts_worker_gone(r, "wz", 2);
    done = broker_broadcasts_pop_finished(r, 0);
    CHECK(done == bc);
    CHECK_STR(answer(done, out, sizeof out), "");
    broker_broadcast_destroy(&done);

    /* no targets at all: finished at once */
    bc = broker_broadcasts_start(r, "c", 1, 3, 1000000);
    CHECK(broker_broadcasts_pop_finished(r, 0) == bc);
    broker_broadcast_destroy(&bc);
    broker_broadcasts_destroy(&r);
}

static void test_several_and_names(void) {
    broker_broadcasts_t *r = broker_broadcasts_new();
    broker_broadcast_t *b1 = broker_broadcasts_start(r, "c1", 2, 1, 100);
    uint64_t q1a = broker_broadcast_add_target(r, b1, "wa", 2, "same@h");
    uint64_t q1b = broker_broadcast_add_target(r, b1, "wb", 2, "same@h");
    broker_broadcast_t *b2 = broker_broadcasts_start(r, "c2", 2, 1, 50);
    uint64_t q2a = broker_broadcast_add_target(r, b2, "wa", 2, "same@h");
    CHECK_INT(broker_broadcasts_size(r), 2);
    /* replies to the second first, with req numbers of the first mixed in */
    CHECK_INT(reply(r, "wa", q2a, 1, "two"), 0);
    CHECK_INT(reply(r, "wb", q1b, 1, "one-b"), 0);
    broker_broadcast_t *done = broker_broadcasts_pop_finished(r, 0);
    CHECK(done == b2);
    char out[256];
    CHECK_STR(answer(done, out, sizeof out), "same@h=two");
    broker_broadcast_destroy(&done);
    CHECK_INT(reply(r, "wa", q1a, 1, "one-a"), 0);
    done = broker_broadcasts_pop_finished(r, 0);
    CHECK(done == b1);
    /* two workers with one name: the first target's answer is kept */
    CHECK_STR(answer(done, out, sizeof out), "same@h=one-a");
    broker_broadcast_destroy(&done);
    CHECK(broker_broadcasts_pop_finished(r, 1000) == NULL);
    /* unknown req numbers */
    CHECK_INT(reply(r, "wa", 0, 1, "x"), ZT_ERR_NOT_FOUND);
    CHECK_INT(reply(r, "wa", UINT64_MAX, 1, "x"), ZT_ERR_NOT_FOUND);
    broker_broadcasts_destroy(&r);
}

static void test_limits(void) {
    broker_broadcasts_t *r = broker_broadcasts_new();
    CHECK(broker_broadcasts_start(r, "c", 0, 1, 10) == NULL);
    char big[300];
    memset(big, 'x', sizeof big);
    CHECK(broker_broadcasts_start(r, big, sizeof big, 1, 10) == NULL);
    for (int i = 0; i < BROKER_BROADCASTS_MAX; i++) {
        broker_broadcast_t *bc = broker_broadcasts_start(r, "c", 1, (uint64_t)i, 10);
        CHECK(bc != NULL);
        broker_broadcast_add_target(r, bc, "w", 1, "w@h");
    }
    CHECK(broker_broadcasts_start(r, "c", 1, 9999, 10) == NULL);
    CHECK_INT(broker_broadcasts_size(r), BROKER_BROADCASTS_MAX);
    /* destroy frees the pending ones (ASan checks) */
    broker_broadcasts_destroy(&r);
    broker_broadcasts_destroy(&r); /* harmless twice */
}

int main(void) {
    RUN(test_gather_all);
    RUN(test_deadline_gone_and_malformed);
    RUN(test_several_and_names);
    RUN(test_limits);
    return zt_test_summary();
}
