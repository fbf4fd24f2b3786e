/* jfile: the journal's record I/O (docs/DURABILITY.md has the format): how
 * one record is framed and encoded, and a reader that walks a file's bytes,
 * checks every record's CRC-32 (zlib) and decodes it, resyncing past damage. It
 * knows nothing of files on disk, fsync or the broker: journal.c (policy)
 * decides where bytes go and when they are durable; broker.c decides what a
 * record means. Everything read is validated (the files come from outside:
 * disks lie, operators edit); the reader never aborts on its input.
 *
 * A file is a 24-byte header then records:
 *   header: "ZTJ1", version 1, kind ('J' journal, 'S' snapshot), 2 zero
 *           bytes, generation (u64 LE), CRC-32 (zlib) of the 16 bytes before (u32 LE),
 *           4 zero bytes.
 *   record: magic 0xD7 0x4A, type (u8), 1 zero byte, payload length (u32 LE),
 *           CRC-32 (zlib) of the 8 bytes before and the payload (u32 LE), payload. */
#ifndef BROKER_JFILE_H
#define BROKER_JFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_JFILE_HEADER_SIZE 24
#define BROKER_JREC_HEADER_SIZE 12
/* Largest payload accepted: a task message of up to 1 GiB (the broker's
 * ceiling on --max-message-bytes) plus its fixed fields. */
#define BROKER_JREC_PAYLOAD_MAX ((uint32_t)(1u << 30) + 4096u)

typedef enum { BROKER_JFILE_JOURNAL = 'J', BROKER_JFILE_SNAPSHOT = 'S' } broker_jfile_kind_t;

/* Record types. The numbers are on disk: never reuse one. */
typedef enum {
    BROKER_JREC_ADD = 1,        /* a task the broker owns, with its state */
    BROKER_JREC_DISPATCH = 2,   /* sent to a worker (in flight) */
    BROKER_JREC_REQUEUE = 3,    /* back at the head of its queue (released, worker gone) */
    BROKER_JREC_READY = 4,      /* to the tail of its queue (timer due, tombstone back) */
    BROKER_JREC_RETRY = 5,      /* DONE retry: new retries count, due time */
    BROKER_JREC_REVOKE = 6,     /* revoked/expired/purged reason set */
    BROKER_JREC_DONE = 7,       /* finished: forget it */
    BROKER_JREC_PURGE = 8,      /* every ready task of a queue (or all queues) purged */
    BROKER_JREC_REVOKED_ID = 9, /* an id revoked before the broker knew it */
    BROKER_JREC_END = 10,       /* snapshot complete: counts of what it holds */
    BROKER_JREC_BEAT_FIRE = 11  /* a beat schedule entry (name) last fired at due */
} broker_jrec_type_t;

/* ADD flags */
#define BROKER_JREC_F_REDELIVERED 0x01 /* dispatched before to a worker that vanished */
#define BROKER_JREC_F_IN_FLIGHT 0x02   /* snapshot: was at a worker (requeue on load) */

/* One decoded record: a plain value struct. Strings and the body point into
 * the bytes it was decoded from (not NUL-terminated) or, for encoding, into
 * the caller's memory. Fields a type does not use are zero. */
typedef struct {
    broker_jrec_type_t type;
    uint8_t flags;    /* ADD, REQUEUE: BROKER_JREC_F_* */
    uint8_t revoked;  /* ADD, REVOKE: broker_revoked_t */
    uint8_t priority; /* ADD: 0..9 */
    uint32_t retries; /* ADD, RETRY */
    double expires;   /* ADD: unix seconds, 0 = never */
    double due;       /* ADD, RETRY: unix seconds it becomes ready, 0 = ready now */
    const char *id;   /* every type but PURGE and END */
    size_t id_len;
    const char *name; /* ADD: task name */
    size_t name_len;
    const char *queue; /* ADD; PURGE (length 0 = every queue) */
    size_t queue_len;
    const void *body; /* ADD: the task message as submitted */
    size_t body_size;
    uint64_t count;  /* END: tasks in the snapshot */
    uint64_t count2; /* END: revoked ids in the snapshot */
} broker_jrec_t;

/* A growable byte buffer records are encoded into. Plain value struct:
 * zero-initialise, free with broker_jbuf_free(). */
typedef struct {
    unsigned char *data;
    size_t size;
    size_t capacity;
} broker_jbuf_t;

void broker_jbuf_free(broker_jbuf_t *buf);

/* Makes room for n more bytes at the end and returns where they go; size
 * grows by n (the capacity doubles, so appends are amortised O(1)). */
unsigned char *broker_jbuf_append(broker_jbuf_t *buf, size_t n);

/* Appends a file header of this kind and generation. */
void broker_jfile_header(broker_jbuf_t *buf, broker_jfile_kind_t kind, uint64_t generation);

/* Appends one framed record. The record must be well-formed (the broker's
 * own data: ids and names valid, lengths in range); checked by assert.
 * Returns the bytes appended. */
size_t broker_jrec_encode(broker_jbuf_t *buf, const broker_jrec_t *rec);

/* Decodes a record payload of the given type. Returns 0, or ZT_ERR_INVALID
 * with a short reason (a static string) in *why when the payload is short,
 * long, or holds a bad id, name, queue or value. */
int broker_jrec_decode(int type, const void *payload, size_t size, broker_jrec_t *rec,
                       const char **why);

/* Reader over one file's bytes in memory. Plain value struct; fields are
 * read-only for callers. */
typedef struct {
    const unsigned char *data;
    size_t size;
    size_t pos; /* where the next record starts */
    broker_jfile_kind_t kind;
    uint64_t generation;
    size_t good_end;        /* byte after the last good record */
    size_t records;         /* good records returned */
    size_t corrupt;         /* damaged regions skipped (middle) */
    size_t corrupt_bytes;   /* bytes in them */
    bool torn;              /* the file ends in damage: the tail from good_end is bad */
    size_t bad_offset;      /* last damage reported: where it starts */
    size_t bad_length;      /* and how long (to the next good record) */
    const char *bad_reason; /* and why (static string) */
} broker_jreader_t;

/* Starts reading data[0..size). Returns 0, or ZT_ERR_INVALID with *why when
 * the header is missing or damaged (nothing in the file can be trusted). */
int broker_jreader_init(broker_jreader_t *r, const void *data, size_t size, const char **why);

/* Outcomes of broker_jreader_next(). */
#define BROKER_JREAD_END 0    /* no more records (see torn) */
#define BROKER_JREAD_RECORD 1 /* *rec holds the next good record */
#define BROKER_JREAD_CORRUPT                                                                       \
    2 /* damage skipped (bad_offset, bad_length, bad_reason); call again                           \
       */

/* Reads the next record. Damage followed by a good record somewhere later
 * is skipped and reported once as BROKER_JREAD_CORRUPT; damage with nothing
 * good after it is a torn tail: END with torn set and good_end where the
 * file should be cut. A frame whose CRC is right but whose payload does not
 * decode counts as damage too. */
int broker_jreader_next(broker_jreader_t *r, broker_jrec_t *rec);

#endif
