/* worker_decoder: a reusable msgpack zone behind a validating decode call. */
#include "decoder.h"

#include "zt_codec.h"
#include "zt_error.h"

#include <stdlib.h>

struct worker_decoder {
    msgpack_zone zone; /* cleared before each decode; its first chunk stays */
    msgpack_object root;
};

worker_decoder_t *worker_decoder_new(void) {
    worker_decoder_t *self = zt_calloc(1, sizeof *self);
    if (!msgpack_zone_init(&self->zone, MSGPACK_ZONE_CHUNK_SIZE))
        ZT_ASSERT(!"out of memory for a msgpack zone");
    return self;
}

void worker_decoder_destroy(worker_decoder_t **self_p) {
    if (!self_p || !*self_p)
        return;
    msgpack_zone_destroy(&(*self_p)->zone);
    free(*self_p);
    *self_p = NULL;
}

const msgpack_object *worker_decoder_map(worker_decoder_t *self, const void *data, size_t size) {
    /* The check bounds what msgpack-c allocates to ~24x the input. */
    if (zt_codec_check(data, size) != 0)
        return NULL;
    msgpack_zone_clear(&self->zone);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack(data, size, &off, &self->zone, &self->root);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != size || self->root.type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &self->root;
}
