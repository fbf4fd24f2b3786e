/* Unit tests for zt_codec: the bounded validator refuses hostile headers
 * before msgpack-c allocates, bodies decode, getters check types, and JSON
 * round-trips through MessagePack. */
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_test.h"

#include <stdlib.h>

static msgpack_sbuffer pack_json(const char *text) {
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    CHECK(v != NULL);
    CHECK_INT(zt_json_pack(&pk, v), 0);
    json_decref(v);
    return sbuf;
}

static void test_check_refuses_huge_claims(void) {
    /* array32 claiming 4 billion elements in nine bytes */
    const unsigned char big_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04};
    CHECK_INT(zt_codec_check(big_array, sizeof big_array), ZT_ERR_INVALID);
    const unsigned char big_map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    CHECK_INT(zt_codec_check(big_map, sizeof big_map), ZT_ERR_INVALID);
    const unsigned char big_str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
    CHECK_INT(zt_codec_check(big_str, sizeof big_str), ZT_ERR_INVALID);
    const unsigned char never_used[] = {0xc1};
    CHECK_INT(zt_codec_check(never_used, 1), ZT_ERR_INVALID);
    const unsigned char truncated_float[] = {0xcb, 0x00, 0x01};
    CHECK_INT(zt_codec_check(truncated_float, sizeof truncated_float), ZT_ERR_INVALID);
    const unsigned char trailing[] = {0x80, 0x00};
    CHECK_INT(zt_codec_check(trailing, sizeof trailing), ZT_ERR_INVALID);
    CHECK_INT(zt_codec_check(NULL, 0), ZT_ERR_INVALID);
}

static void test_check_depth_limit(void) {
    unsigned char deep[64];
    for (int i = 0; i < 63; i++)
        deep[i] = 0x91; /* array of one */
    deep[63] = 0xc0;
    CHECK_INT(zt_codec_check(deep, sizeof deep), ZT_ERR_INVALID);
    CHECK_INT(zt_codec_check(deep + 63 - 10, 11), 0); /* ten deep is fine */
}

static void test_body_getters(void) {
    msgpack_sbuffer sbuf =
        pack_json("{\"s\": \"hi\", \"i\": -5, \"u\": 7, \"d\": 2.5, \"b\": true, \"n\": null}");
    int err = 1;
    zt_body_t *body = zt_body_parse(sbuf.data, sbuf.size, &err);
    CHECK(body != NULL);
    CHECK_INT(err, 0);
    const msgpack_object *root = zt_body_root(body);
    const char *s;
    size_t len;
    CHECK_INT(zt_mp_get_str(root, "s", &s, &len), 0);
    CHECK_INT(len, 2);
    int64_t i;
    CHECK_INT(zt_mp_get_int(root, "i", &i), 0);
    CHECK_INT(i, -5);
    uint64_t u;
    CHECK_INT(zt_mp_get_uint(root, "u", &u), 0);
    CHECK_INT(u, 7);
    CHECK_INT(zt_mp_get_uint(root, "i", &u), ZT_ERR_INVALID);
    double d;
    CHECK_INT(zt_mp_get_double(root, "d", &d), 0);
    CHECK(d == 2.5);
    CHECK_INT(zt_mp_get_double(root, "u", &d), 0);
    CHECK(d == 7.0);
    bool b;
    CHECK_INT(zt_mp_get_bool(root, "b", &b), 0);
    CHECK(b);
    CHECK_INT(zt_mp_get_str(root, "n", &s, &len), ZT_ERR_NOT_FOUND);
    CHECK_INT(zt_mp_get_str(root, "absent", &s, &len), ZT_ERR_NOT_FOUND);
    CHECK_INT(zt_mp_get_str(root, "i", &s, &len), ZT_ERR_INVALID);
    char buf[3];
    CHECK_INT(zt_mp_copy_str(zt_mp_get(root, "s"), buf, sizeof buf), 0);
    CHECK_STR(buf, "hi");
    CHECK_INT(zt_mp_copy_str(zt_mp_get(root, "s"), buf, 2), ZT_ERR_INVALID);
    zt_body_destroy(&body);
    CHECK(body == NULL);
    zt_body_destroy(&body); /* harmless twice */
    msgpack_sbuffer_destroy(&sbuf);
}

static void test_body_must_be_map(void) {
    msgpack_sbuffer sbuf = pack_json("[1, 2]");
    int err = 0;
    CHECK(zt_body_parse(sbuf.data, sbuf.size, &err) == NULL);
    CHECK_INT(err, ZT_ERR_INVALID);
    msgpack_sbuffer_destroy(&sbuf);
    CHECK(zt_body_parse("garbage!", 8, &err) == NULL);
}

static void test_json_round_trip(void) {
    const char *text =
        "{\"a\": [1, -2, 3.5, \"x\", true, false, null], \"b\": {\"c\": \"\\u00e9\"}}";
    msgpack_sbuffer sbuf = pack_json(text);
    zt_body_t *body = zt_body_parse(sbuf.data, sbuf.size, NULL);
    CHECK(body != NULL);
    json_t *back = zt_mp_to_json(zt_body_root(body));
    json_t *want = json_loads(text, 0, NULL);
    CHECK(back && want && json_equal(back, want));
    json_decref(back);
    json_decref(want);
    zt_body_destroy(&body);
    msgpack_sbuffer_destroy(&sbuf);
}

static void test_random_bytes_never_crash(void) {
    /* Fuzz-lite: random inputs must be refused or accepted, never crash. */
    unsigned char buf[64];
    srand(12345);
    int disagreements = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(rand() % (int)sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)rand();
        if (round % 2)
            buf[0] = (unsigned char)(0x80 | (rand() % 4)); /* often a small map */
        zt_body_t *body = zt_body_parse(buf, n, NULL);
        /* The validator and msgpack-c must agree: a body only when valid. */
        if (body && zt_codec_check(buf, n) != 0)
            disagreements++;
        if (body) {
            json_t *j = zt_mp_to_json(zt_body_root(body));
            json_decref(j);
            zt_body_destroy(&body);
        }
    }
    CHECK_INT(disagreements, 0);
}

int main(void) {
    RUN(test_check_refuses_huge_claims);
    RUN(test_check_depth_limit);
    RUN(test_body_getters);
    RUN(test_body_must_be_map);
    RUN(test_json_round_trip);
    RUN(test_random_bytes_never_crash);
    return zt_test_summary();
}
