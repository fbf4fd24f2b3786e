/* zt_codec: MessagePack bodies and their JSON twins.
 *
 * - zt_body: a decoded MessagePack map, validated before any allocation
 *   (msgpack-c allocates whatever an array or map header claims, so every
 *   header count is checked against the bytes left first). Getters return
 *   borrowed pointers valid until the body is destroyed.
 * - zt_decoder: the same decode for hot paths, in place and into one reused
 *   zone, so that decoding a message allocates nothing.
 * - pack helpers for building bodies on a msgpack_packer.
 * - conversion between msgpack objects and jansson values (args, kwargs and
 *   results are JSON at the edges: CLI, Redis, task functions). */
#ifndef ZT_CODEC_H
#define ZT_CODEC_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting deeper than this is refused (protects the recursive converters). */
#define ZT_CODEC_MAX_DEPTH 32

/* Checks that data[0..size) is exactly one well-formed MessagePack value whose
 * every array/map/str/bin/ext length fits in the bytes that remain, nested at
 * most ZT_CODEC_MAX_DEPTH deep. Returns 0, or ZT_ERR_INVALID. Allocates nothing. */
int zt_codec_check(const void *data, size_t size);

typedef struct zt_body zt_body_t;

/* Decodes one MessagePack map from data (copied: the caller keeps data).
 * Returns the body, or NULL with *err set to ZT_ERR_INVALID (not MessagePack,
 * not a map, trailing bytes, a bad length) — err may be NULL. */
zt_body_t *zt_body_parse(const void *data, size_t size, int *err);
void zt_body_destroy(zt_body_t **self_p);

/* The root map object (borrowed). */
const msgpack_object *zt_body_root(const zt_body_t *self);

/* zt_decoder: decodes message after message without allocating per message.
 * One msgpack zone is reused (cleared, not freed) for every decode, and
 * strings point into the caller's bytes rather than into a copy
 * (zt_body_parse copies and makes a fresh zone each time, three allocations
 * a message). Input is validated exactly as zt_body_parse does. */
typedef struct zt_decoder zt_decoder_t;

/* chunk_size: bytes of the zone's first chunk, kept across decodes, so that
 * bodies decoding into less than that never allocate; 0 takes msgpack-c's
 * default (MSGPACK_ZONE_CHUNK_SIZE, 8 KiB). Returns the decoder (aborts on
 * out of memory, like zt_malloc). */
zt_decoder_t *zt_decoder_new(size_t chunk_size);
void zt_decoder_destroy(zt_decoder_t **self_p);

/* Decodes data[0..size) as exactly one MessagePack map. Returns the root map,
 * or NULL when zt_body_parse would fail (not MessagePack, not a map, trailing
 * bytes, a bad length). The result borrows from data and from the decoder:
 * valid while data is unchanged and until the next zt_decoder_parse() or
 * zt_decoder_destroy(). */
const msgpack_object *zt_decoder_parse(zt_decoder_t *self, const void *data, size_t size);

/* Looks up key in a map object (first match). Returns a borrowed pointer or
 * NULL if map is not a map or the key is absent. */
const msgpack_object *zt_mp_get(const msgpack_object *map, const char *key);

/* Typed getters on a map. Each returns 0 and sets *out; ZT_ERR_NOT_FOUND when
 * the key is absent or nil (out untouched); ZT_ERR_INVALID when the value has
 * the wrong type or range. Strings are borrowed and NOT NUL-terminated. */
int zt_mp_get_str(const msgpack_object *map, const char *key, const char **out, size_t *len);
int zt_mp_get_int(const msgpack_object *map, const char *key, int64_t *out);
int zt_mp_get_uint(const msgpack_object *map, const char *key, uint64_t *out);
/* Accepts integers and floats; refuses NaN and infinities. */
int zt_mp_get_double(const msgpack_object *map, const char *key, double *out);
int zt_mp_get_bool(const msgpack_object *map, const char *key, bool *out);

/* Copies a str object into buf as a NUL-terminated string. Returns 0, or
 * ZT_ERR_INVALID if obj is not a str, holds a NUL, or does not fit. */
int zt_mp_copy_str(const msgpack_object *obj, char *buf, size_t size);

/* True if obj is a str equal to the C string s. */
bool zt_mp_str_eq(const msgpack_object *obj, const char *s);

/* Pack helpers: a NUL-terminated string (NULL packs nil), a key and a value. */
void zt_pack_cstr(msgpack_packer *pk, const char *s);
void zt_pack_strn(msgpack_packer *pk, const char *s, size_t len);
void zt_pack_kv_cstr(msgpack_packer *pk, const char *key, const char *value);
void zt_pack_kv_int(msgpack_packer *pk, const char *key, int64_t value);
void zt_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t value);
void zt_pack_kv_double(msgpack_packer *pk, const char *key, double value);
void zt_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);
void zt_pack_kv_nil(msgpack_packer *pk, const char *key);

/* Converts a msgpack object to a new JSON value (caller owns the reference).
 * bin becomes a string if it is valid UTF-8, else fails; map keys must be
 * strings; ext is refused. Returns NULL on failure. */
json_t *zt_mp_to_json(const msgpack_object *obj);

/* Packs a JSON value. Integers stay integers, reals stay doubles. Returns 0,
 * or ZT_ERR_INVALID on nesting deeper than ZT_CODEC_MAX_DEPTH. */
int zt_json_pack(msgpack_packer *pk, const json_t *value);

#endif
