/* worker_decoder: decodes MessagePack maps on the worker's hot path without
 * allocating per message. One msgpack zone is reused (cleared, not freed)
 * for every decode, and strings point into the caller's bytes rather than
 * into a copy (zt_body_parse copies and allocates a fresh zone each time,
 * which at tens of thousands of messages a second is most of the malloc
 * traffic). Input is validated with zt_codec_check first, as everywhere. */
#ifndef WORKER_DECODER_H
#define WORKER_DECODER_H

#include <msgpack.h>
#include <stddef.h>

typedef struct worker_decoder worker_decoder_t;

worker_decoder_t *worker_decoder_new(void);
void worker_decoder_destroy(worker_decoder_t **self_p);

/* Decodes data[0..size) as one MessagePack map. Returns the root map, or NULL
 * if the bytes are not exactly one well-formed map. The result borrows from
 * data and from the decoder: valid while data is and until the next call. */
const msgpack_object *worker_decoder_map(worker_decoder_t *self, const void *data, size_t size);

#endif
