/* libFuzzer target: the journal reader (broker/jfile.c) — what recovery
 * runs over files that a power cut, a bad disk or an operator damaged.
 * Properties: no crash, no read outside the input, no sanitizer report;
 * every record it returns re-encodes to exactly the bytes it came from;
 * good_end never passes the input; the reader always ends.
 *
 *   ./fuzz_journal -malloc_limit_mb=512 -max_total_time=60 corpus/journal */
#include "jfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    broker_jreader_t r;
    const char *why;
    if (broker_jreader_init(&r, data, size, &why) != 0)
        return 0;
    broker_jbuf_t buf = {0};
    for (size_t steps = 0;; steps++) {
        if (steps > size + 2)
            abort(); /* each step must consume input */
        size_t before = r.pos;
        broker_jrec_t rec;
        int rc = broker_jreader_next(&r, &rec);
        if (rc == BROKER_JREAD_END)
            break;
        if (rc == BROKER_JREAD_CORRUPT) {
            if (r.pos <= before || r.bad_offset + r.bad_length != r.pos)
                abort();
            continue;
        }
        buf.size = 0;
        size_t n = broker_jrec_encode(&buf, &rec);
        if (n != r.pos - before || memcmp(buf.data, data + before, n) != 0)
            abort(); /* decode and encode disagree */
    }
    if (r.good_end > size || r.pos != size)
        abort();
    broker_jbuf_free(&buf);
    return 0;
}
