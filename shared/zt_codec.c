/* zt_codec: bounded MessagePack validation, decoded bodies with typed
 * getters, pack helpers, and msgpack <-> JSON conversion.
 *
 * Why a validator before msgpack-c: its unpacker allocates an array of
 * msgpack_object (24 bytes each) for whatever count a header claims, so a
 * nine-byte input can ask for gigabytes. The walker below checks that every
 * claimed element could still fit in the remaining bytes (each element takes
 * at least one), which bounds msgpack-c's allocation to about 24x the input. */
#include "zt_codec.h"
#include "zt_error.h"

#include <math.h>
#include <string.h>

struct zt_body {
    msgpack_unpacked unpacked; /* owns the zone holding the object tree */
    char *data;                /* copy of the bytes: strings point into it */
};

static uint64_t read_be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int zt_codec_check(const void *data, size_t size) {
    const unsigned char *p = data;
    size_t pos = 0;
    /* remaining[d] = elements still expected in the container at depth d;
     * depth 0 is the single top-level value. */
    uint64_t remaining[ZT_CODEC_MAX_DEPTH + 1];
    int depth = 0;
    uint64_t pending = 1; /* elements announced and not yet read, all depths */
    remaining[0] = 1;
    if (!p || size == 0)
        return ZT_ERR_INVALID;
    while (depth >= 0) {
        if (remaining[depth] == 0) {
            depth--;
            continue;
        }
        if (pos >= size)
            return ZT_ERR_INVALID;
        remaining[depth]--;
        pending--;
        unsigned char b = p[pos++];
        uint64_t skip = 0;     /* payload bytes after the header */
        uint64_t children = 0; /* nested elements this value announces */
        int lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool: no payload */
        } else if (b >= 0x80 && b <= 0x8f) {
            children = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                lenbytes = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                lenbytes = 2;
                break; /* bin16, str16 */
            case 0xc6:
            case 0xdb:
                lenbytes = 4;
                break; /* bin32, str32 */
            case 0xc7:
                lenbytes = 1;
                skip = 1;
                break; /* ext8: len, type */
            case 0xc8:
                lenbytes = 2;
                skip = 1;
                break;
            case 0xc9:
                lenbytes = 4;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break; /* float32 */
            case 0xcb:
                skip = 8;
                break; /* float64 */
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break; /* fixext1..16 */
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
            case 0xde:
                lenbytes = 2;
                break; /* array16, map16 */
            case 0xdd:
            case 0xdf:
                lenbytes = 4;
                break; /* array32, map32 */
            default:
                return ZT_ERR_INVALID; /* 0xc1: never used */
            }
        }
        if (lenbytes) {
            if (size - pos < (size_t)lenbytes)
                return ZT_ERR_INVALID;
            uint64_t n = read_be(p + pos, lenbytes);
            pos += (size_t)lenbytes;
            if (b == 0xdc || b == 0xdd)
                children = n;
            else if (b == 0xde || b == 0xdf)
                children = 2 * n;
            else
                skip += n;
        }
        if (skip > size - pos)
            return ZT_ERR_INVALID;
        pos += (size_t)skip;
        if (children) {
            if (depth >= ZT_CODEC_MAX_DEPTH)
                return ZT_ERR_INVALID;
            if (pending + children > size - pos)
                return ZT_ERR_INVALID; /* cannot fit: refuse before anyone allocates */
            pending += children;
            remaining[++depth] = children;
        }
    }
    return pos == size ? 0 : ZT_ERR_INVALID;
}

/* The checks every decode makes before msgpack-c sees the bytes: well-formed
 * and bounded (zt_codec_check), and a map at the root (a cheap look at the
 * first byte, so that no other value is unpacked only to be refused). */
static bool precheck_map(const void *data, size_t size) {
    if (zt_codec_check(data, size) != 0)
        return false;
    unsigned char first = *(const unsigned char *)data;
    return (first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf;
}

zt_body_t *zt_body_parse(const void *data, size_t size, int *err) {
    if (err)
        *err = ZT_ERR_INVALID;
    if (!precheck_map(data, size))
        return NULL;
    zt_body_t *self = zt_calloc(1, sizeof *self);
    self->data = zt_malloc(size);
    memcpy(self->data, data, size);
    msgpack_unpacked_init(&self->unpacked);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(&self->unpacked, self->data, size, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != size ||
        self->unpacked.data.type != MSGPACK_OBJECT_MAP) {
        zt_body_destroy(&self);
        return NULL;
    }
    if (err)
        *err = 0;
    return self;
}

void zt_body_destroy(zt_body_t **self_p) {
    if (!self_p || !*self_p)
        return;
    zt_body_t *self = *self_p;
    msgpack_unpacked_destroy(&self->unpacked);
    free(self->data);
    free(self);
    *self_p = NULL;
}

const msgpack_object *zt_body_root(const zt_body_t *self) {
    return &self->unpacked.data;
}

struct zt_decoder {
    msgpack_zone zone;   /* cleared before each decode; its first chunk stays */
    msgpack_object root; /* the map decoded last, in zone */
};

zt_decoder_t *zt_decoder_new(size_t chunk_size) {
    zt_decoder_t *self = zt_calloc(1, sizeof *self);
    if (!msgpack_zone_init(&self->zone, chunk_size ? chunk_size : MSGPACK_ZONE_CHUNK_SIZE))
        ZT_ASSERT(!"out of memory for a msgpack zone");
    return self;
}

void zt_decoder_destroy(zt_decoder_t **self_p) {
    if (!self_p || !*self_p)
        return;
    msgpack_zone_destroy(&(*self_p)->zone);
    free(*self_p);
    *self_p = NULL;
}

const msgpack_object *zt_decoder_parse(zt_decoder_t *self, const void *data, size_t size) {
    if (!precheck_map(data, size))
        return NULL;
    /* Clearing keeps the zone's first chunk and frees any larger ones a big
     * message needed, so one outsized body does not pin its memory. */
    msgpack_zone_clear(&self->zone);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack(data, size, &off, &self->zone, &self->root);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != size || self->root.type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &self->root;
}

bool zt_mp_str_eq(const msgpack_object *obj, const char *s) {
    if (!obj || obj->type != MSGPACK_OBJECT_STR)
        return false;
    size_t n = strlen(s);
    return obj->via.str.size == n && memcmp(obj->via.str.ptr, s, n) == 0;
}

const msgpack_object *zt_mp_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (zt_mp_str_eq(&kv->key, key))
            return &kv->val;
    }
    return NULL;
}

static const msgpack_object *get_present(const msgpack_object *map, const char *key) {
    const msgpack_object *v = zt_mp_get(map, key);
    if (!v || v->type == MSGPACK_OBJECT_NIL)
        return NULL;
    return v;
}

int zt_mp_get_str(const msgpack_object *map, const char *key, const char **out, size_t *len) {
    const msgpack_object *v = get_present(map, key);
    if (!v)
        return ZT_ERR_NOT_FOUND;
    if (v->type != MSGPACK_OBJECT_STR)
        return ZT_ERR_INVALID;
    *out = v->via.str.ptr;
    *len = v->via.str.size;
    return 0;
}

int zt_mp_get_int(const msgpack_object *map, const char *key, int64_t *out) {
    const msgpack_object *v = get_present(map, key);
    if (!v)
        return ZT_ERR_NOT_FOUND;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 > (uint64_t)INT64_MAX)
            return ZT_ERR_INVALID;
        *out = (int64_t)v->via.u64;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return 0;
    }
    return ZT_ERR_INVALID;
}

int zt_mp_get_uint(const msgpack_object *map, const char *key, uint64_t *out) {
    const msgpack_object *v = get_present(map, key);
    if (!v)
        return ZT_ERR_NOT_FOUND;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return ZT_ERR_INVALID;
    *out = v->via.u64;
    return 0;
}

int zt_mp_get_double(const msgpack_object *map, const char *key, double *out) {
    const msgpack_object *v = get_present(map, key);
    if (!v)
        return ZT_ERR_NOT_FOUND;
    double d;
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        d = (double)v->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        d = (double)v->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        d = v->via.f64;
        break;
    default:
        return ZT_ERR_INVALID;
    }
    if (!isfinite(d))
        return ZT_ERR_INVALID;
    *out = d;
    return 0;
}

int zt_mp_get_bool(const msgpack_object *map, const char *key, bool *out) {
    const msgpack_object *v = get_present(map, key);
    if (!v)
        return ZT_ERR_NOT_FOUND;
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return ZT_ERR_INVALID;
    *out = v->via.boolean;
    return 0;
}

int zt_mp_copy_str(const msgpack_object *obj, char *buf, size_t size) {
    if (!obj || obj->type != MSGPACK_OBJECT_STR || obj->via.str.size >= size)
        return ZT_ERR_INVALID;
    if (memchr(obj->via.str.ptr, '\0', obj->via.str.size))
        return ZT_ERR_INVALID;
    memcpy(buf, obj->via.str.ptr, obj->via.str.size);
    buf[obj->via.str.size] = '\0';
    return 0;
}

void zt_pack_strn(msgpack_packer *pk, const char *s, size_t len) {
    msgpack_pack_str_with_body(pk, s, len);
}

void zt_pack_cstr(msgpack_packer *pk, const char *s) {
    if (!s)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_str_with_body(pk, s, strlen(s));
}

void zt_pack_kv_cstr(msgpack_packer *pk, const char *key, const char *value) {
    zt_pack_cstr(pk, key);
    zt_pack_cstr(pk, value);
}

void zt_pack_kv_int(msgpack_packer *pk, const char *key, int64_t value) {
    zt_pack_cstr(pk, key);
    msgpack_pack_int64(pk, value);
}

void zt_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t value) {
    zt_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, value);
}

void zt_pack_kv_double(msgpack_packer *pk, const char *key, double value) {
    zt_pack_cstr(pk, key);
    msgpack_pack_double(pk, value);
}

void zt_pack_kv_bool(msgpack_packer *pk, const char *key, bool value) {
    zt_pack_cstr(pk, key);
    if (value)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void zt_pack_kv_nil(msgpack_packer *pk, const char *key) {
    zt_pack_cstr(pk, key);
    msgpack_pack_nil(pk);
}

static json_t *mp_to_json(const msgpack_object *obj, int depth) {
    if (depth > ZT_CODEC_MAX_DEPTH)
        return NULL;
    switch (obj->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(obj->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (obj->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)obj->via.u64);
        return json_integer((json_int_t)obj->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)obj->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(obj->via.f64); /* NULL for NaN/inf */
    case MSGPACK_OBJECT_STR:
        return json_stringn(obj->via.str.ptr, obj->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return json_stringn(obj->via.bin.ptr, obj->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = json_array();
        for (uint32_t i = 0; i < obj->via.array.size; i++) {
            json_t *item = mp_to_json(&obj->via.array.ptr[i], depth + 1);
            if (!item || json_array_append_new(arr, item) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *o = json_object();
        for (uint32_t i = 0; i < obj->via.map.size; i++) {
            const msgpack_object_kv *kv = &obj->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR) {
                json_decref(o);
                return NULL;
            }
            json_t *val = mp_to_json(&kv->val, depth + 1);
            if (!val ||
                json_object_setn_new(o, kv->key.via.str.ptr, kv->key.via.str.size, val) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    default:
        return NULL; /* ext: no JSON meaning */
    }
}

json_t *zt_mp_to_json(const msgpack_object *obj) {
    return obj ? mp_to_json(obj, 0) : NULL;
}

static int json_pack_depth(msgpack_packer *pk, const json_t *v, int depth) {
    if (depth > ZT_CODEC_MAX_DEPTH)
        return ZT_ERR_INVALID;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach((json_t *)v, key, val) {
            zt_pack_cstr(pk, key);
            int rc = json_pack_depth(pk, val, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, val) {
            int rc = json_pack_depth(pk, val, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        zt_pack_strn(pk, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        return 0;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return 0;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return 0;
    }
    return ZT_ERR_INVALID;
}

int zt_json_pack(msgpack_packer *pk, const json_t *value) {
    if (!value) {
        msgpack_pack_nil(pk);
        return 0;
    }
    return json_pack_depth(pk, value, 0);
}
