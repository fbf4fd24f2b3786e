/* jfile: framing, payload encoding and the validating reader. Integers are
 * little-endian on disk whatever the host; doubles are their IEEE-754 bits
 * as a u64. Payload layouts (fixed part first, then the strings in order):
 *   ADD        flags u8, revoked u8, priority u8, id_len u8, name_len u8,
 *              queue_len u8, 0 u16, retries u32, body_len u32, expires f64,
 *              due f64 | id, name, queue, body
 *   DISPATCH, READY, DONE, REVOKED_ID   id_len u8 | id
 *   REQUEUE    flags u8, id_len u8 | id
 *   RETRY      retries u32, due f64, id_len u8 | id
 *   REVOKE     reason u8, id_len u8 | id
 *   PURGE      queue_len u8 | queue (empty: every queue)
 *   END        tasks u64, revoked ids u64 */
#include "jfile.h"
#include "zt_error.h"
#include "zt_taskmsg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAGIC0 0xD7
#define MAGIC1 0x4A
#define ADD_FIXED 32
#define REVOKED_MAX 3 /* broker_revoked_t's last value */

static const unsigned char file_magic[4] = {'Z', 'T', 'J', '1'};

/* ---- little-endian helpers ------------------------------------------------- */

/* CRC-32 (zlib's, the IEEE polynomial) extended over data: the checksum of
 * file headers and records. record_crc(record_crc(0, a), b) covers a then b. */
static uint32_t record_crc(uint32_t crc, const void *data, size_t size) {
    return (uint32_t)crc32_z(crc, data, size);
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v) {
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static void put_f64(unsigned char *p, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(p, v);
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static double get_f64(const unsigned char *p) {
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* ---- buffer ---------------------------------------------------------------------- */

void broker_jbuf_free(broker_jbuf_t *buf) {
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

unsigned char *broker_jbuf_append(broker_jbuf_t *buf, size_t n) {
    if (buf->size + n > buf->capacity) {
        size_t cap = buf->capacity ? buf->capacity : 4096;
        while (cap < buf->size + n)
            cap *= 2;
        buf->data = zt_realloc(buf->data, cap);
        buf->capacity = cap;
    }
    unsigned char *p = buf->data + buf->size;
    buf->size += n;
    return p;
}

static void put_bytes(unsigned char **p, const void *src, size_t n) {
    if (n)
        memcpy(*p, src, n);
    *p += n;
}

void broker_jfile_header(broker_jbuf_t *buf, broker_jfile_kind_t kind, uint64_t generation) {
    unsigned char *p = broker_jbuf_append(buf, BROKER_JFILE_HEADER_SIZE);
    memcpy(p, file_magic, 4);
    p[4] = 1;
    p[5] = (unsigned char)kind;
    p[6] = p[7] = 0;
    put_u64(p + 8, generation);
    put_u32(p + 16, record_crc(0, p, 16));
    put_u32(p + 20, 0);
}

/* ---- encoding ------------------------------------------------------------------------ */

static size_t payload_size(const broker_jrec_t *rec) {
    switch (rec->type) {
    case BROKER_JREC_ADD:
        return ADD_FIXED + rec->id_len + rec->name_len + rec->queue_len + rec->body_size;
    case BROKER_JREC_DISPATCH:
    case BROKER_JREC_READY:
    case BROKER_JREC_DONE:
    case BROKER_JREC_REVOKED_ID:
        return 1 + rec->id_len;
    case BROKER_JREC_REQUEUE:
    case BROKER_JREC_REVOKE:
        return 2 + rec->id_len;
    case BROKER_JREC_RETRY:
        return 13 + rec->id_len;
    case BROKER_JREC_PURGE:
        return 1 + rec->queue_len;
    case BROKER_JREC_END:
        return 16;
    case BROKER_JREC_BEAT_FIRE:
        return 9 + rec->name_len;
    }
    ZT_ASSERT(!"unknown journal record type");
    return 0;
}

size_t broker_jrec_encode(broker_jbuf_t *buf, const broker_jrec_t *rec) {
    ZT_ASSERT(rec->id_len <= ZT_ID_MAX && rec->name_len <= ZT_NAME_MAX &&
              rec->queue_len <= ZT_QUEUE_MAX && rec->priority <= ZT_PRIORITY_MAX);
    ZT_ASSERT(rec->body_size <= BROKER_JREC_PAYLOAD_MAX - ADD_FIXED - 512);
    size_t plen = payload_size(rec);
    size_t start = buf->size;
    unsigned char *h = broker_jbuf_append(buf, BROKER_JREC_HEADER_SIZE + plen);
    unsigned char *p = h + BROKER_JREC_HEADER_SIZE;
    h[0] = MAGIC0;
    h[1] = MAGIC1;
    h[2] = (unsigned char)rec->type;
    h[3] = 0;
    put_u32(h + 4, (uint32_t)plen);
    switch (rec->type) {
    case BROKER_JREC_ADD:
        p[0] = rec->flags;
        p[1] = rec->revoked;
        p[2] = rec->priority;
        p[3] = (unsigned char)rec->id_len;
        p[4] = (unsigned char)rec->name_len;
        p[5] = (unsigned char)rec->queue_len;
        p[6] = p[7] = 0;
        put_u32(p + 8, rec->retries);
        put_u32(p + 12, (uint32_t)rec->body_size);
        put_f64(p + 16, rec->expires);
        put_f64(p + 24, rec->due);
        p += ADD_FIXED;
        put_bytes(&p, rec->id, rec->id_len);
        put_bytes(&p, rec->name, rec->name_len);
        put_bytes(&p, rec->queue, rec->queue_len);
        put_bytes(&p, rec->body, rec->body_size);
        break;
    case BROKER_JREC_DISPATCH:
    case BROKER_JREC_READY:
    case BROKER_JREC_DONE:
    case BROKER_JREC_REVOKED_ID:
        *p++ = (unsigned char)rec->id_len;
        put_bytes(&p, rec->id, rec->id_len);
        break;
    case BROKER_JREC_REQUEUE:
        *p++ = rec->flags;
        *p++ = (unsigned char)rec->id_len;
        put_bytes(&p, rec->id, rec->id_len);
        break;
    case BROKER_JREC_REVOKE:
        *p++ = rec->revoked;
        *p++ = (unsigned char)rec->id_len;
        put_bytes(&p, rec->id, rec->id_len);
        break;
    case BROKER_JREC_RETRY:
        put_u32(p, rec->retries);
        put_f64(p + 4, rec->due);
        p[12] = (unsigned char)rec->id_len;
        p += 13;
        put_bytes(&p, rec->id, rec->id_len);
        break;
    case BROKER_JREC_PURGE:
        *p++ = (unsigned char)rec->queue_len;
        put_bytes(&p, rec->queue, rec->queue_len);
        break;
    case BROKER_JREC_END:
        put_u64(p, rec->count);
        put_u64(p + 8, rec->count2);
        break;
    case BROKER_JREC_BEAT_FIRE:
        put_f64(p, rec->due);
        p[8] = (unsigned char)rec->name_len;
        p += 9;
        put_bytes(&p, rec->name, rec->name_len);
        break;
    }
    /* the CRC covers the header's first 8 bytes and the payload */
    uint32_t crc = record_crc(0, h, 8);
    crc = record_crc(crc, h + BROKER_JREC_HEADER_SIZE, plen);
    put_u32(h + 8, crc);
    return buf->size - start;
}

/* ---- decoding ------------------------------------------------------------------------- */

/* A time field: finite and not negative (unix seconds or 0). */
static bool good_time(double d) {
    return isfinite(d) && d >= 0 && d < 1e12;
}

/* Reads "id_len u8 | id" at p[0..size) which must end exactly there. */
static int decode_id(const unsigned char *p, size_t size, broker_jrec_t *rec, const char **why) {
    if (size < 1 || (size_t)p[0] + 1 != size) {
        *why = "id length does not match the record";
        return ZT_ERR_INVALID;
    }
    rec->id = (const char *)p + 1;
    rec->id_len = p[0];
    if (!zt_taskmsg_valid_id(rec->id, rec->id_len)) {
        *why = "bad task id";
        return ZT_ERR_INVALID;
    }
    return 0;
}

int broker_jrec_decode(int type, const void *payload, size_t size, broker_jrec_t *rec,
                       const char **why) {
    const unsigned char *p = payload;
    memset(rec, 0, sizeof *rec);
    rec->type = (broker_jrec_type_t)type;
    switch (type) {
    case BROKER_JREC_ADD: {
        if (size < ADD_FIXED) {
            *why = "ADD record too short";
            return ZT_ERR_INVALID;
        }
        rec->flags = p[0];
        rec->revoked = p[1];
        rec->priority = p[2];
        rec->id_len = p[3];
        rec->name_len = p[4];
        rec->queue_len = p[5];
        rec->retries = get_u32(p + 8);
        rec->body_size = get_u32(p + 12);
        rec->expires = get_f64(p + 16);
        rec->due = get_f64(p + 24);
        if ((rec->flags & ~(BROKER_JREC_F_REDELIVERED | BROKER_JREC_F_IN_FLIGHT)) ||
            rec->revoked > REVOKED_MAX || rec->priority > ZT_PRIORITY_MAX || p[6] || p[7] ||
            !good_time(rec->expires) || !good_time(rec->due)) {
            *why = "ADD record has a field out of range";
            return ZT_ERR_INVALID;
        }
        /* sizes as 64-bit sums: no overflow whatever the fields say */
        if ((uint64_t)ADD_FIXED + rec->id_len + rec->name_len + rec->queue_len + rec->body_size !=
            size) {
            *why = "ADD record lengths do not add up";
            return ZT_ERR_INVALID;
        }
        const char *s = (const char *)p + ADD_FIXED;
        rec->id = s;
        rec->name = s + rec->id_len;
        rec->queue = rec->name + rec->name_len;
        rec->body = rec->queue + rec->queue_len;
        if (!zt_taskmsg_valid_id(rec->id, rec->id_len) ||
            !zt_taskmsg_valid_name(rec->name, rec->name_len) ||
            !zt_taskmsg_valid_queue(rec->queue, rec->queue_len) || rec->body_size == 0) {
            *why = "ADD record has a bad id, name, queue or body";
            return ZT_ERR_INVALID;
        }
        return 0;
    }
    case BROKER_JREC_DISPATCH:
    case BROKER_JREC_READY:
    case BROKER_JREC_DONE:
    case BROKER_JREC_REVOKED_ID:
        return decode_id(p, size, rec, why);
    case BROKER_JREC_REQUEUE:
    case BROKER_JREC_REVOKE:
        if (size < 2) {
            *why = "record too short";
            return ZT_ERR_INVALID;
        }
        if (type == BROKER_JREC_REQUEUE) {
            rec->flags = p[0];
            if (rec->flags & ~BROKER_JREC_F_REDELIVERED) {
                *why = "REQUEUE record has unknown flags";
                return ZT_ERR_INVALID;
            }
        } else {
            rec->revoked = p[0];
            if (rec->revoked == 0 || rec->revoked > REVOKED_MAX) {
                *why = "REVOKE record has a bad reason";
                return ZT_ERR_INVALID;
            }
        }
        return decode_id(p + 1, size - 1, rec, why);
    case BROKER_JREC_RETRY:
        if (size < 13) {
            *why = "RETRY record too short";
            return ZT_ERR_INVALID;
        }
        rec->retries = get_u32(p);
        rec->due = get_f64(p + 4);
        if (!good_time(rec->due)) {
            *why = "RETRY record has a bad due time";
            return ZT_ERR_INVALID;
        }
        return decode_id(p + 12, size - 12, rec, why);
    case BROKER_JREC_PURGE:
        if (size < 1 || (size_t)p[0] + 1 != size ||
            (p[0] && !zt_taskmsg_valid_queue((const char *)p + 1, p[0]))) {
            *why = "PURGE record has a bad queue";
            return ZT_ERR_INVALID;
        }
        rec->queue = (const char *)p + 1;
        rec->queue_len = p[0];
        return 0;
    case BROKER_JREC_BEAT_FIRE:
        if (size < 9 || (size_t)p[8] + 9 != size ||
            !zt_taskmsg_valid_name((const char *)p + 9, p[8])) {
            *why = "BEAT_FIRE record has a bad entry name";
            return ZT_ERR_INVALID;
        }
        rec->due = get_f64(p);
        if (!good_time(rec->due)) {
            *why = "BEAT_FIRE record has a bad fire time";
            return ZT_ERR_INVALID;
        }
        rec->name = (const char *)p + 9;
        rec->name_len = p[8];
        return 0;
    case BROKER_JREC_END:
        if (size != 16) {
            *why = "END record has the wrong size";
            return ZT_ERR_INVALID;
        }
        rec->count = get_u64(p);
        rec->count2 = get_u64(p + 8);
        return 0;
    default:
        *why = "unknown record type";
        return ZT_ERR_INVALID;
    }
}

/* ---- reader ------------------------------------------------------------------------------- */

int broker_jreader_init(broker_jreader_t *r, const void *data, size_t size, const char **why) {
    memset(r, 0, sizeof *r);
    r->data = data;
    r->size = size;
    const unsigned char *p = data;
    if (size < BROKER_JFILE_HEADER_SIZE) {
        *why = "file shorter than its header";
        return ZT_ERR_INVALID;
    }
    if (memcmp(p, file_magic, 4) != 0 || p[4] != 1 ||
        (p[5] != BROKER_JFILE_JOURNAL && p[5] != BROKER_JFILE_SNAPSHOT) ||
        get_u32(p + 16) != record_crc(0, p, 16)) {
        *why = "not a journal file, or its header is damaged";
        return ZT_ERR_INVALID;
    }
    r->kind = (broker_jfile_kind_t)p[5];
    r->generation = get_u64(p + 8);
    r->pos = r->good_end = BROKER_JFILE_HEADER_SIZE;
    return 0;
}

/* Checks the frame at pos: returns 0 and decodes it into rec, or
 * ZT_ERR_INVALID with why. */
static int frame_at(const broker_jreader_t *r, size_t pos, broker_jrec_t *rec, size_t *frame_size,
                    const char **why) {
    const unsigned char *h = r->data + pos;
    size_t left = r->size - pos;
    if (left < BROKER_JREC_HEADER_SIZE) {
        *why = "truncated record header";
        return ZT_ERR_INVALID;
    }
    if (h[0] != MAGIC0 || h[1] != MAGIC1 || h[3] != 0) {
        *why = "bad record magic";
        return ZT_ERR_INVALID;
    }
    uint32_t plen = get_u32(h + 4);
    if (plen > BROKER_JREC_PAYLOAD_MAX || plen > left - BROKER_JREC_HEADER_SIZE) {
        *why = "record runs past the end of the file";
        return ZT_ERR_INVALID;
    }
    uint32_t crc = record_crc(0, h, 8);
    crc = record_crc(crc, h + BROKER_JREC_HEADER_SIZE, plen);
    if (crc != get_u32(h + 8)) {
        *why = "checksum mismatch";
        return ZT_ERR_INVALID;
    }
    if (broker_jrec_decode(h[2], h + BROKER_JREC_HEADER_SIZE, plen, rec, why) != 0)
        return ZT_ERR_INVALID;
    *frame_size = BROKER_JREC_HEADER_SIZE + plen;
    return 0;
}

int broker_jreader_next(broker_jreader_t *r, broker_jrec_t *rec) {
    if (r->pos >= r->size)
        return BROKER_JREAD_END;
    size_t frame;
    const char *why = NULL;
    if (frame_at(r, r->pos, rec, &frame, &why) == 0) {
        r->pos += frame;
        r->good_end = r->pos;
        r->records++;
        return BROKER_JREAD_RECORD;
    }
    /* Damage at pos. Look for the next good frame: if there is one, this was
     * a corrupt record in the middle; if not, a torn tail. */
    for (size_t q = r->pos + 1; q + BROKER_JREC_HEADER_SIZE <= r->size; q++) {
        const unsigned char *m = memchr(r->data + q, MAGIC0, r->size - q);
        if (!m)
            break;
        q = (size_t)(m - r->data);
        broker_jrec_t probe;
        size_t probe_frame;
        const char *probe_why;
        if (frame_at(r, q, &probe, &probe_frame, &probe_why) == 0) {
            r->bad_offset = r->pos;
            r->bad_length = q - r->pos;
            r->bad_reason = why;
            r->corrupt++;
            r->corrupt_bytes += q - r->pos;
            r->pos = q;
            return BROKER_JREAD_CORRUPT;
        }
    }
    r->torn = true;
    r->bad_offset = r->pos;
    r->bad_length = r->size - r->pos;
    r->bad_reason = why;
    r->pos = r->size;
    return BROKER_JREAD_END;
}
