/* qdrant: see qdrant.h. Endpoints used (Qdrant REST API reference):
 *   GET  /collections/{name}                     exists? (404 when not)
 *   PUT  /collections/{name}                     {"vectors":{"size":N,"distance":"Cosine"}}
 *   PUT  /collections/{name}/points?wait=true    {"points":[{"id","vector","payload"}]}
 *   POST /collections/{name}/points/search       {"vector","limit","with_payload":true}
 * Answers are {"result": ..., "status": "ok", "time": s}; errors
 * {"status": {"error": "..."}}. */
#include "qdrant.h"

#include "http.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct drive2_qdrant {
    drive2_http_t *http;
    char *base;           /* qdrant_url without trailing '/' */
    char *collection;     /* URL-safe name */
    char key_header[600]; /* "api-key: KEY" or "" */
    size_t ensured_dim;   /* dim of a collection known to exist; 0 = not checked */
};

drive2_qdrant_t *drive2_qdrant_new(const zt_config_t *config, const char *api_key, char *err,
                                   size_t err_size) {
    const char *url = config->qdrant_url;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, err_size, "qdrant_url: expected an http:// or https:// URL");
        return NULL;
    }
    const char *c = config->qdrant_collection;
    int ok = *c != '\0' && strlen(c) <= 100;
    for (const char *p = c; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_';
    if (!ok) {
        snprintf(err, err_size, "qdrant_collection %s: use letters, digits, '-' and '_'", c);
        return NULL;
    }
    if (api_key && (strlen(api_key) >= 512 || strpbrk(api_key, "\r\n"))) {
        snprintf(err, err_size, "QDRANT_API_KEY is malformed");
        return NULL;
    }
    drive2_qdrant_t *self = zt_calloc(1, sizeof *self);
    self->base = zt_strdup(url);
    size_t n = strlen(self->base);
    while (n > 0 && self->base[n - 1] == '/')
        self->base[--n] = '\0';
    self->collection = zt_strdup(c);
    if (api_key && *api_key)
        snprintf(self->key_header, sizeof self->key_header, "api-key: %s", api_key);
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    o.timeout_ms = 30000;
    o.max_total_ms = 60000;
    o.max_response_bytes = 16u << 20;
    self->http = drive2_http_new(&o);
    if (!self->http) {
        snprintf(err, err_size, "qdrant: cannot initialise libcurl");
        drive2_qdrant_destroy(&self);
    }
    return self;
}

void drive2_qdrant_destroy(drive2_qdrant_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_qdrant_t *self = *self_p;
    drive2_http_destroy(&self->http);
    free(self->base);
    free(self->collection);
    explicit_bzero(self->key_header, sizeof self->key_header);
    free(self);
    *self_p = NULL;
}

void drive2_qdrant_point_id(const char *file_id, char out[37]) {
    /* a fixed namespace, so the same file always maps to the same point and
     * an upsert replaces it */
    static const unsigned char ns[16] = {0x6b, 0x1e, 0x4d, 0x2a, 0x0f, 0x3c, 0x4e, 0x55,
                                         0x9a, 0x7d, 0x21, 0xd2, 0x9e, 0x00, 0x0f, 0x06};
    zt_uuid5(ns, file_id, strlen(file_id), out);
}

/* One request; body (consumed) may be NULL. *answer: parsed JSON of a 2xx
 * answer (may be NULL for an empty body). *status: the HTTP status. */
static int call(drive2_qdrant_t *self, const char *method, const char *path, json_t *body,
                const char *what, long *status, json_t **answer, char *err, size_t err_size) {
    *answer = NULL;
    *status = 0;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    size_t ul = strlen(self->base) + strlen(path) + 1;
    char *url = zt_malloc(ul);
    snprintf(url, ul, "%s%s", self->base, path);
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
    if (self->key_header[0])
        headers[1] = self->key_header;
    drive2_http_request_t rq = {.method = method,
                                .url = url,
                                .headers = headers,
                                .body = (const unsigned char *)text,
                                .body_len = text ? strlen(text) : 0};
    drive2_http_response_t r;
    char herr[600];
    int rc = drive2_http_perform(self->http, &rq, &r, herr, sizeof herr);
    free(url);
    free(text);
    if (rc) {
        snprintf(err, err_size, "Qdrant %s: %s", what, herr);
        drive2_http_response_clear(&r);
        return rc;
    }
    *status = r.status;
    json_error_t jerr;
    json_t *j = r.body_len ? json_loadb((const char *)r.body, r.body_len, 0, &jerr) : NULL;
    if (r.status < 200 || r.status > 299) {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "status"), "error"));
        snprintf(err, err_size, "Qdrant %s: HTTP %ld%s%.300s", what, r.status, msg ? ": " : "",
                 msg ? msg : "");
        json_decref(j);
        drive2_http_response_clear(&r);
        if (*status == 404)
            return ZT_ERR_NOT_FOUND;
        return *status == 429 || *status >= 500 ? ZT_ERR_IO : ZT_ERR_REJECTED;
    }
    if (r.body_len && !json_is_object(j)) {
        snprintf(err, err_size, "Qdrant %s: the answer is not a JSON object", what);
        json_decref(j);
        drive2_http_response_clear(&r);
        return ZT_ERR_PROTOCOL;
    }
    drive2_http_response_clear(&r);
    *answer = j;
    return 0;
}

static json_t *vector_json(const float *v, size_t dim) {
    json_t *a = json_array();
    for (size_t i = 0; i < dim; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

static int check_vector(const float *v, size_t dim, const char *what, char *err, size_t err_size) {
    if (!v || dim == 0 || dim > 65536) {
        snprintf(err, err_size, "Qdrant %s: vector of %zu dimensions", what, dim);
        return ZT_ERR_INVALID;
    }
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(v[i])) {
            snprintf(err, err_size, "Qdrant %s: vector value %zu is not finite", what, i);
            return ZT_ERR_INVALID;
        }
    return 0;
}

/* Makes sure the collection exists with vectors of dim. */
static int ensure_collection(drive2_qdrant_t *self, size_t dim, char *err, size_t err_size) {
    if (self->ensured_dim == dim)
        return 0;
    char path[256];
    snprintf(path, sizeof path, "/collections/%s", self->collection);
    long status;
    json_t *a;
    int rc = call(self, "GET", path, NULL, "get collection", &status, &a, err, err_size);
    if (rc == 0) {
        /* result.config.params.vectors.size, when it is a single unnamed vector */
        json_t *size = json_object_get(
            json_object_get(
                json_object_get(json_object_get(json_object_get(a, "result"), "config"), "params"),
                "vectors"),
            "size");
        json_int_t have = json_is_integer(size) ? json_integer_value(size) : 0;
        json_decref(a);
        if (have && (size_t)have != dim) {
            snprintf(err, err_size,
                     "Qdrant collection %s holds %lld-dimensional vectors, this embedding has %zu "
                     "(changed the embedding model? use another qdrant_collection)",
                     self->collection, (long long)have, dim);
            return ZT_ERR_INVALID;
        }
        self->ensured_dim = dim;
        return 0;
    }
    if (rc != ZT_ERR_NOT_FOUND)
        return rc;
    json_t *body = json_pack("{s{sIss}}", "vectors", "size", (json_int_t)dim, "distance", "Cosine");
    rc = call(self, "PUT", path, body, "create collection", &status, &a, err, err_size);
    json_decref(a);
    if (rc)
        return rc;
    zt_info("qdrant: created collection %s (%zu dimensions, Cosine)", self->collection, dim);
    self->ensured_dim = dim;
    return 0;
}

int drive2_qdrant_upsert(drive2_qdrant_t *self, const char *file_id, const float *v, size_t dim,
                         char *err, size_t err_size) {
    int rc = check_vector(v, dim, "upsert", err, err_size);
    if (rc)
        return rc;
    if (!file_id || !*file_id || strlen(file_id) >= sizeof(((drive2_hit_t *)0)->file_id)) {
        snprintf(err, err_size, "Qdrant upsert: bad file id");
        return ZT_ERR_INVALID;
    }
    rc = ensure_collection(self, dim, err, err_size);
    if (rc)
        return rc;
    char id[37], path[256];
    drive2_qdrant_point_id(file_id, id);
    snprintf(path, sizeof path, "/collections/%s/points?wait=true", self->collection);
    json_t *body = json_pack("{s[{ssso s{ss}}]}", "points", "id", id, "vector", vector_json(v, dim),
                             "payload", "file_id", file_id);
    long status;
    json_t *a;
    rc = call(self, "PUT", path, body, "upsert points", &status, &a, err, err_size);
    json_decref(a);
    return rc;
}

int drive2_qdrant_search(drive2_qdrant_t *self, const float *v, size_t dim, drive2_hit_t *hits,
                         size_t k, size_t *found, char *err, size_t err_size) {
    *found = 0;
    int rc = check_vector(v, dim, "search", err, err_size);
    if (rc || k == 0)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/collections/%s/points/search", self->collection);
    json_t *body = json_pack("{sosIsb}", "vector", vector_json(v, dim), "limit", (json_int_t)k,
                             "with_payload", 1);
    long status;
    json_t *a;
    rc = call(self, "POST", path, body, "search points", &status, &a, err, err_size);
    if (rc == ZT_ERR_NOT_FOUND)
        return 0; /* no collection yet: nothing stored, nothing found */
    if (rc)
        return rc;
    json_t *result = json_object_get(a, "result");
    if (!json_is_array(result)) {
        snprintf(err, err_size, "Qdrant search points: the answer has no result array");
        json_decref(a);
        return ZT_ERR_PROTOCOL;
    }
    size_t i;
    json_t *p;
    json_array_foreach(result, i, p) {
        if (*found >= k)
            break;
        const char *fid =
            json_string_value(json_object_get(json_object_get(p, "payload"), "file_id"));
        json_t *score = json_object_get(p, "score");
        if (!fid || !json_is_number(score) || strlen(fid) >= sizeof hits->file_id) {
            zt_warn("qdrant: search hit %zu without a usable payload.file_id/score, skipped", i);
            continue;
        }
        snprintf(hits[*found].file_id, sizeof hits[*found].file_id, "%s", fid);
        hits[*found].score = json_number_value(score);
        (*found)++;
    }
    json_decref(a);
    return 0;
}
