/* Unit tests for broker/jfile (the journal's record I/O):
 * every record type round-tripped, a torn tail found
 * and located, a corrupt record in the middle skipped with its offset and
 * the records after it recovered, damaged headers refused, and payloads
 * whose lengths or values lie refused without reading past them. */
#include "jfile.h"
#include "zt_error.h"
#include "zt_test.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char body[] = {0x82, 0xa2, 'i', 'd', 0xa2, 't',  '1',
                                     0xa4, 't',  'a', 's', 'k',  0xa1, 'x'};

static broker_jrec_t add_rec(const char *id) {
    broker_jrec_t r = {.type = BROKER_JREC_ADD,
                       .flags = BROKER_JREC_F_REDELIVERED,
                       .revoked = 0,
                       .priority = 7,
                       .retries = 3,
                       .expires = 1900000000.5,
                       .due = 1800000000.25,
                       .id = id,
                       .id_len = strlen(id),
                       .name = "builtin.add",
                       .name_len = 11,
                       .queue = "q1",
                       .queue_len = 2,
                       .body = body,
                       .body_size = sizeof body};
    return r;
}

/* A journal file with: ADD t1, DISPATCH t1, REQUEUE t1, READY t1, RETRY t1,
 * REVOKE t1, DONE t1, PURGE q1, PURGE (all), REVOKED_ID x9, END. Offsets of
 * each record's start go to offsets[]. */
static void build(broker_jbuf_t *buf, size_t offsets[11]) {
    memset(buf, 0, sizeof *buf);
    broker_jfile_header(buf, BROKER_JFILE_JOURNAL, 42);
    broker_jrec_t recs[11];
    recs[0] = add_rec("t1");
    recs[1] = (broker_jrec_t){.type = BROKER_JREC_DISPATCH, .id = "t1", .id_len = 2};
    recs[2] = (broker_jrec_t){
        .type = BROKER_JREC_REQUEUE, .flags = BROKER_JREC_F_REDELIVERED, .id = "t1", .id_len = 2};
    recs[3] = (broker_jrec_t){.type = BROKER_JREC_READY, .id = "t1", .id_len = 2};
    recs[4] = (broker_jrec_t){
        .type = BROKER_JREC_RETRY, .retries = 4, .due = 1234.5, .id = "t1", .id_len = 2};
    recs[5] = (broker_jrec_t){.type = BROKER_JREC_REVOKE, .revoked = 2, .id = "t1", .id_len = 2};
    recs[6] = (broker_jrec_t){.type = BROKER_JREC_DONE, .id = "t1", .id_len = 2};
    recs[7] = (broker_jrec_t){.type = BROKER_JREC_PURGE, .queue = "q1", .queue_len = 2};
    recs[8] = (broker_jrec_t){.type = BROKER_JREC_PURGE, .queue = "", .queue_len = 0};
    recs[9] = (broker_jrec_t){.type = BROKER_JREC_REVOKED_ID, .id = "x9", .id_len = 2};
    recs[10] = (broker_jrec_t){.type = BROKER_JREC_END, .count = 5, .count2 = 6};
    for (int i = 0; i < 11; i++) {
        offsets[i] = buf->size;
        size_t n = broker_jrec_encode(buf, &recs[i]);
        CHECK_INT(n, buf->size - offsets[i]);
    }
}

static void test_round_trip(void) {
    broker_jbuf_t buf;
    size_t off[11];
    build(&buf, off);
    broker_jreader_t r;
    const char *why = NULL;
    CHECK_INT(broker_jreader_init(&r, buf.data, buf.size, &why), 0);
    CHECK_INT(r.kind, BROKER_JFILE_JOURNAL);
    CHECK_INT(r.generation, 42);
    broker_jrec_t rec;
    CHECK_INT(broker_jreader_next(&r, &rec), BROKER_JREAD_RECORD);
    CHECK_INT(rec.type, BROKER_JREC_ADD);
    CHECK_INT(rec.flags, BROKER_JREC_F_REDELIVERED);
    CHECK_INT(rec.priority, 7);
    CHECK_INT(rec.retries, 3);
    CHECK(rec.expires == 1900000000.5 && rec.due == 1800000000.25);
    CHECK(rec.id_len == 2 && memcmp(rec.id, "t1", 2) == 0);
    CHECK(rec.name_len == 11 && memcmp(rec.name, "builtin.add", 11) == 0);
    CHECK(rec.queue_len == 2 && memcmp(rec.queue, "q1", 2) == 0);
    CHECK(rec.body_size == sizeof body && memcmp(rec.body, body, sizeof body) == 0);
    int types[] = {BROKER_JREC_DISPATCH, BROKER_JREC_REQUEUE, BROKER_JREC_READY,
                   BROKER_JREC_RETRY,    BROKER_JREC_REVOKE,  BROKER_JREC_DONE,
                   BROKER_JREC_PURGE,    BROKER_JREC_PURGE,   BROKER_JREC_REVOKED_ID,
                   BROKER_JREC_END};
    for (int i = 0; i < 10; i++) {
        CHECK_INT(broker_jreader_next(&r, &rec), BROKER_JREAD_RECORD);
        CHECK_INT(rec.type, types[i]);
        if (rec.type == BROKER_JREC_RETRY)
            CHECK(rec.retries == 4 && rec.due == 1234.5);
        if (rec.type == BROKER_JREC_REVOKE)
            CHECK_INT(rec.revoked, 2);
        if (rec.type == BROKER_JREC_REQUEUE)
            CHECK_INT(rec.flags, BROKER_JREC_F_REDELIVERED);
        if (rec.type == BROKER_JREC_END)
            CHECK(rec.count == 5 && rec.count2 == 6);
    }
    CHECK_INT(broker_jreader_next(&r, &rec), BROKER_JREAD_END);
    CHECK(!r.torn);
    CHECK_INT(r.records, 11);
    CHECK_INT(r.good_end, buf.size);
    broker_jbuf_free(&buf);
}

static void test_torn_tail(void) {
    broker_jbuf_t buf;
    size_t off[11];
    build(&buf, off);
    /* every cut inside the last record is a torn tail at its start */
    for (size_t cut = off[10] + 1; cut < buf.size; cut++) {
        broker_jreader_t r;
        const char *why;
        CHECK_INT(broker_jreader_init(&r, buf.data, cut, &why), 0);
        broker_jrec_t rec;
        int n = 0, rc;
        while ((rc = broker_jreader_next(&r, &rec)) == BROKER_JREAD_RECORD)
            n++;
        CHECK_INT(rc, BROKER_JREAD_END);
        CHECK_INT(n, 10);
        CHECK(r.torn);
        CHECK_INT(r.good_end, off[10]);
        CHECK_INT(r.corrupt, 0);
    }
    /* zeroes after the last record (a preallocated tail): torn, all kept */
    unsigned char *big = calloc(1, buf.size + 100);
    memcpy(big, buf.data, buf.size);
    broker_jreader_t r;
    const char *why;
    CHECK_INT(broker_jreader_init(&r, big, buf.size + 100, &why), 0);
    broker_jrec_t rec;
    int n = 0;
    while (broker_jreader_next(&r, &rec) == BROKER_JREAD_RECORD)
        n++;
    CHECK_INT(n, 11);
    CHECK(r.torn);
    CHECK_INT(r.good_end, buf.size);
    free(big);
    broker_jbuf_free(&buf);
}

static void test_corrupt_middle(void) {
    broker_jbuf_t buf;
    size_t off[11];
    build(&buf, off);
    /* a flipped bit anywhere in record 3 (READY): reported at its offset,
     * everything else recovered */
    for (size_t at = off[3]; at < off[4]; at++) {
        buf.data[at] ^= 0x10;
        broker_jreader_t r;
        const char *why;
        CHECK_INT(broker_jreader_init(&r, buf.data, buf.size, &why), 0);
        broker_jrec_t rec;
        int n = 0, corrupt = 0, rc;
        while ((rc = broker_jreader_next(&r, &rec)) != BROKER_JREAD_END) {
            if (rc == BROKER_JREAD_CORRUPT) {
                corrupt++;
                CHECK_INT(r.bad_offset, off[3]);
                CHECK_INT(r.bad_length, off[4] - off[3]);
                CHECK(r.bad_reason != NULL);
            } else {
                n++;
                CHECK(rec.type != BROKER_JREC_READY);
            }
        }
        CHECK_INT(corrupt, 1);
        CHECK_INT(n, 10);
        CHECK(!r.torn);
        buf.data[at] ^= 0x10;
    }
    broker_jbuf_free(&buf);
}

static void test_bad_headers(void) {
    broker_jbuf_t buf;
    size_t off[11];
    build(&buf, off);
    broker_jreader_t r;
    const char *why = NULL;
    CHECK_INT(broker_jreader_init(&r, buf.data, 10, &why), ZT_ERR_INVALID);
    CHECK(why != NULL);
    for (size_t at = 0; at < 20; at++) {
        buf.data[at] ^= 1;
        CHECK_INT(broker_jreader_init(&r, buf.data, buf.size, &why), ZT_ERR_INVALID);
        buf.data[at] ^= 1;
    }
    broker_jbuf_free(&buf);
}

static void test_hostile_payloads(void) {
    broker_jrec_t rec;
    const char *why;
    unsigned char p[64];
    memset(p, 0, sizeof p);
    /* ADD whose lengths claim more than the payload holds */
    p[3] = 200;
    p[4] = 200;
    p[5] = 100;
    p[12] = 0xff;
    p[13] = 0xff;
    p[14] = 0xff;
    p[15] = 0xff;
    CHECK_INT(broker_jrec_decode(BROKER_JREC_ADD, p, sizeof p, &rec, &why), ZT_ERR_INVALID);
    CHECK_INT(broker_jrec_decode(BROKER_JREC_ADD, p, 10, &rec, &why), ZT_ERR_INVALID);
    /* id records: length byte beyond the payload, bad characters, empty */
    unsigned char id1[] = {5, 'a', 'b'};
    CHECK_INT(broker_jrec_decode(BROKER_JREC_DONE, id1, sizeof id1, &rec, &why), ZT_ERR_INVALID);
    unsigned char id2[] = {2, 'a', ' '};
    CHECK_INT(broker_jrec_decode(BROKER_JREC_DONE, id2, sizeof id2, &rec, &why), ZT_ERR_INVALID);
    unsigned char id3[] = {0};
    CHECK_INT(broker_jrec_decode(BROKER_JREC_DONE, id3, sizeof id3, &rec, &why), ZT_ERR_INVALID);
    CHECK_INT(broker_jrec_decode(BROKER_JREC_DONE, id3, 0, &rec, &why), ZT_ERR_INVALID);
    /* REVOKE with reason 0 or 9; RETRY with a NaN due time */
    unsigned char rv[] = {9, 1, 'a'};
    CHECK_INT(broker_jrec_decode(BROKER_JREC_REVOKE, rv, sizeof rv, &rec, &why), ZT_ERR_INVALID);
    rv[0] = 0;
    CHECK_INT(broker_jrec_decode(BROKER_JREC_REVOKE, rv, sizeof rv, &rec, &why), ZT_ERR_INVALID);
    rv[0] = 1;
    CHECK_INT(broker_jrec_decode(BROKER_JREC_REVOKE, rv, sizeof rv, &rec, &why), 0);
    unsigned char rt[14] = {0};
    memset(rt + 4, 0xff, 8); /* NaN */
    rt[12] = 1;
    rt[13] = 'a';
    CHECK_INT(broker_jrec_decode(BROKER_JREC_RETRY, rt, sizeof rt, &rec, &why), ZT_ERR_INVALID);
    CHECK_INT(broker_jrec_decode(99, rt, sizeof rt, &rec, &why), ZT_ERR_INVALID);
    CHECK_INT(broker_jrec_decode(BROKER_JREC_END, rt, sizeof rt, &rec, &why), ZT_ERR_INVALID);
    /* a frame claiming 4 GiB of payload: refused, not read */
    broker_jbuf_t buf = {0};
    broker_jfile_header(&buf, BROKER_JFILE_JOURNAL, 1);
    unsigned char frame[] = {0xD7, 0x4A, 7, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    size_t hdr = buf.size;
    unsigned char *file = malloc(hdr + sizeof frame);
    memcpy(file, buf.data, hdr);
    memcpy(file + hdr, frame, sizeof frame);
    broker_jreader_t r;
    CHECK_INT(broker_jreader_init(&r, file, hdr + sizeof frame, &why), 0);
    CHECK_INT(broker_jreader_next(&r, &rec), BROKER_JREAD_END);
    CHECK(r.torn);
    CHECK_INT(r.good_end, hdr);
    free(file);
    broker_jbuf_free(&buf);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_torn_tail);
    RUN(test_corrupt_middle);
    RUN(test_bad_headers);
    RUN(test_hostile_payloads);
    return zt_test_summary();
}
