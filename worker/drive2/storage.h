/* storage: Drive2's object store behind one interface, with two backends
 * chosen by the storage_url setting: a local directory ("" = DATA_DIR/objects,
 * or file:///DIR; writes go to a temporary file renamed into place) and
 * S3/MinIO (s3://BUCKET at s3_endpoint, path-style URLs, AWS SigV4 signed by
 * libcurl, secret from AWS_SECRET_ACCESS_KEY via zt_secret). Keys are
 * validated the same way for both, so a key can never name something outside
 * the store. Errors never contain the secret. */
#ifndef DRIVE2_STORAGE_H
#define DRIVE2_STORAGE_H

#include "zt_config.h"

#include <stddef.h>

typedef struct drive2_storage drive2_storage_t;

#define DRIVE2_STORAGE_KEY_MAX 1024 /* bytes of a key */

/* True (1) when key is acceptable: 1..DRIVE2_STORAGE_KEY_MAX bytes, valid
 * UTF-8, '/'-separated segments that are neither empty, "." nor "..", no
 * leading '/', no control characters and no backslash. When not, returns 0
 * and writes the reason into why (may be NULL). */
int drive2_storage_key_valid(const char *key, char *why, size_t why_size);

/* Opens the store the configuration names (creating the local directory when
 * needed; S3 is not contacted here). Returns NULL with err filled on a bad
 * setting or a missing credential. */
drive2_storage_t *drive2_storage_new(const zt_config_t *config, char *err, size_t err_size);

/* Frees the store and sets *self_p to NULL; harmless on NULL. */
void drive2_storage_destroy(drive2_storage_t **self_p);

/* "local" or "s3". */
const char *drive2_storage_kind(const drive2_storage_t *self);

/* Stores len bytes under key (replacing any object there). content_type may
 * be NULL (application/octet-stream). Returns 0 or a negative ZT_ERR_*. */
int drive2_storage_put(drive2_storage_t *self, const char *key, const void *data, size_t len,
                       const char *content_type, char *err, size_t err_size);

/* Stores the file at path under key. Files over upload_max_bytes are refused
 * with ZT_ERR_TOO_LARGE. */
int drive2_storage_put_file(drive2_storage_t *self, const char *key, const char *path, char *err,
                            size_t err_size);

/* Reads the object: *data is malloc'd (the caller frees it), NUL-terminated
 * one byte past *len. ZT_ERR_NOT_FOUND when there is no such object. */
int drive2_storage_get(drive2_storage_t *self, const char *key, unsigned char **data, size_t *len,
                       char *err, size_t err_size);

/* Removes the object. Removing a missing object succeeds (as on S3). */
int drive2_storage_delete(drive2_storage_t *self, const char *key, char *err, size_t err_size);

/* Lists up to max keys that start with prefix ("" = all), sorted. *keys is a
 * malloc'd array of *count malloc'd strings: free with drive2_storage_keys_free. */
int drive2_storage_list(drive2_storage_t *self, const char *prefix, size_t max, char ***keys,
                        size_t *count, char *err, size_t err_size);
void drive2_storage_keys_free(char **keys, size_t count);

#endif
