/* storage: see storage.h. The local backend keeps objects as files under one
 * root (a key's segments become directories) and never follows a key out of
 * it: keys are validated lexically, and the parent directory's real path is
 * checked to be under the root's real path before any write or read, so a
 * symlink planted inside the store cannot redirect it either. The S3 backend
 * sends path-style requests (ENDPOINT/BUCKET/KEY) signed with SigV4 by
 * libcurl; libcurl 7.88 does not send x-amz-content-sha256, so we do (the
 * SHA-256 of the payload, computed with OpenSSL). */
#include "storage.h"

#include "http.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_secret.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { BACKEND_LOCAL, BACKEND_S3 } backend_t;

struct drive2_storage {
    backend_t backend;
    int64_t max_object_bytes; /* bytes, upload_max_bytes */
    /* local */
    char *root;      /* as configured */
    char *real_root; /* realpath(root) */
    /* s3 */
    drive2_http_t *http;
    char *endpoint; /* no trailing '/' */
    char *bucket;
    char *sigv4;  /* "aws:amz:REGION:s3" */
    char *key_id; /* access key id (not secret, still never logged) */
    char secret[256];
};

/* ---------------------------------------------------------------- keys */

/* Length of the UTF-8 sequence at p (1..4), or 0 when malformed. */
static size_t utf8_len(const unsigned char *p) {
    if (p[0] < 0x80)
        return 1;
    size_t n = (p[0] & 0xE0) == 0xC0   ? 2
               : (p[0] & 0xF0) == 0xE0 ? 3
               : (p[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && p[0] < 0xC2) || (n == 4 && p[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

int drive2_storage_key_valid(const char *key, char *why, size_t why_size) {
    const char *reason = NULL;
    size_t len = key ? strlen(key) : 0;
    if (len == 0)
        reason = "empty key";
    else if (len > DRIVE2_STORAGE_KEY_MAX)
        reason = "key longer than 1024 bytes";
    else if (key[0] == '/')
        reason = "absolute key (starts with '/')";
    else if (key[len - 1] == '/')
        reason = "key ends with '/'";
    for (const unsigned char *p = (const unsigned char *)key; !reason && *p;) {
        if (*p < 0x20 || *p == 0x7f) {
            reason = "control character in key";
            break;
        }
        if (*p == '\\') {
            reason = "backslash in key";
            break;
        }
        size_t n = utf8_len(p);
        if (!n) {
            reason = "key is not valid UTF-8";
            break;
        }
        p += n;
    }
    /* segments */
    for (const char *seg = key; !reason && seg && *seg;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if (n == 0)
            reason = "empty path segment in key ('//')";
        else if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            reason = "'.' or '..' segment in key";
        seg = slash ? slash + 1 : NULL;
    }
    if (reason) {
        if (why && why_size)
            snprintf(why, why_size, "%s", reason);
        return 0;
    }
    if (why && why_size)
        why[0] = '\0';
    return 1;
}

static int check_key(const char *key, char *err, size_t err_size) {
    char why[128];
    if (drive2_storage_key_valid(key, why, sizeof why))
        return 0;
    snprintf(err, err_size, "storage: refused object key: %s", why);
    return ZT_ERR_INVALID;
}

/* ---------------------------------------------------------------- local */

static int mkdir_p(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Builds root/key into path and checks that the real path of its parent
 * directory lies under the real root. create: make the parents first. */
static int local_path(drive2_storage_t *self, const char *key, int create, char *path,
                      size_t path_size, char *err, size_t err_size) {
    if (snprintf(path, path_size, "%s/%s", self->real_root, key) >= (int)path_size) {
        snprintf(err, err_size, "storage: key too long for the local path");
        return ZT_ERR_INVALID;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = '\0';
    if (create && mkdir_p(parent) != 0) {
        snprintf(err, err_size, "storage: cannot create a folder for object %s: %s", key,
                 strerror(errno));
        return ZT_ERR_IO;
    }
    char real[PATH_MAX];
    if (!realpath(parent, real)) {
        if (errno == ENOENT || errno == ENOTDIR) {
            snprintf(err, err_size, "storage: no object %s", key);
            return ZT_ERR_NOT_FOUND;
        }
        snprintf(err, err_size, "storage: object %s: %s", key, strerror(errno));
        return ZT_ERR_IO;
    }
    size_t rl = strlen(self->real_root);
    if (strncmp(real, self->real_root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
        snprintf(err, err_size, "storage: refused object key %s: it leaves the storage root", key);
        return ZT_ERR_INVALID;
    }
    return 0;
}

static int local_put(drive2_storage_t *self, const char *key, const void *data, size_t len,
                     char *err, size_t err_size) {
    char path[PATH_MAX + 32];
    int rc = local_path(self, key, 1, path, PATH_MAX, err, err_size);
    if (rc)
        return rc;
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_size, "storage: cannot write object %s: %s", key, strerror(errno));
        return ZT_ERR_IO;
    }
    const unsigned char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, err_size, "storage: cannot write object %s: %s", key,
                     strerror(w < 0 ? errno : EIO));
            close(fd);
            unlink(tmp);
            return ZT_ERR_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    /* fsync before rename: after a crash the key names either the old object
     * or the complete new one, never a torn file. */
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, err_size, "storage: cannot write object %s: %s", key, strerror(errno));
        unlink(tmp);
        return ZT_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "storage: cannot store object %s: %s", key, strerror(errno));
        unlink(tmp);
        return ZT_ERR_IO;
    }
    return 0;
}

/* Reads a whole regular file (at most max bytes) into a malloc'd buffer. */
static int read_file(const char *path, int64_t max, unsigned char **data, size_t *len,
                     const char *what, char *err, size_t err_size) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "storage: %s: %s", what, e == ENOENT ? "not found" : strerror(e));
        return e == ENOENT ? ZT_ERR_NOT_FOUND : ZT_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "storage: %s: not a regular file", what);
        close(fd);
        return ZT_ERR_INVALID;
    }
    if ((int64_t)st.st_size > max) {
        snprintf(err, err_size, "storage: %s: %lld bytes is over the %lld-byte limit", what,
                 (long long)st.st_size, (long long)max);
        close(fd);
        return ZT_ERR_TOO_LARGE;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = zt_malloc(n + 1);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        snprintf(err, err_size, "storage: %s: short read", what);
        free(buf);
        return ZT_ERR_IO;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int local_get(drive2_storage_t *self, const char *key, unsigned char **data, size_t *len,
                     char *err, size_t err_size) {
    char path[PATH_MAX];
    int rc = local_path(self, key, 0, path, sizeof path, err, err_size);
    if (rc)
        return rc;
    char what[DRIVE2_STORAGE_KEY_MAX + 16];
    snprintf(what, sizeof what, "object %s", key);
    return read_file(path, self->max_object_bytes, data, len, what, err, err_size);
}

static int local_delete(drive2_storage_t *self, const char *key, char *err, size_t err_size) {
    char path[PATH_MAX];
    int rc = local_path(self, key, 0, path, sizeof path, err, err_size);
    if (rc == ZT_ERR_NOT_FOUND)
        return 0;
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, err_size, "storage: cannot delete object %s: %s", key, strerror(errno));
        return ZT_ERR_IO;
    }
    return 0;
}

typedef struct {
    char **keys;
    size_t count, cap, max;
} keylist_t;

static void keylist_add(keylist_t *l, const char *key) {
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->keys = zt_realloc(l->keys, l->cap * sizeof *l->keys);
    }
    l->keys[l->count++] = zt_strdup(key);
}

static void local_walk(const char *dir, const char *rel, const char *prefix, keylist_t *l,
                       int depth) {
    if (depth > 64)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strstr(e->d_name, ".tmp.") != NULL)
            continue;
        char path[PATH_MAX], key[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            snprintf(key, sizeof key, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >= (int)sizeof key)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            local_walk(path, key, prefix, l, depth + 1);
        else if (S_ISREG(st.st_mode) && strncmp(key, prefix, strlen(prefix)) == 0 &&
                 drive2_storage_key_valid(key, NULL, 0))
            keylist_add(l, key);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---------------------------------------------------------------- s3 */

static void sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        sprintf(out + i * 2, "%02x", md[i]);
    out[64] = '\0';
}

/* Text of the first element called name anywhere under node, or NULL. */
static xmlNode *xml_find(xmlNode *node, const char *name) {
    for (xmlNode *n = node; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            return n;
        xmlNode *c = xml_find(n->children, name);
        if (c)
            return c;
    }
    return NULL;
}

/* Turns a non-2xx S3 answer into "S3 PUT bucket/key: 403 Code: Message". */
static int s3_error(const char *method, const char *bucket, const char *key,
                    const drive2_http_response_t *r, char *err, size_t err_size) {
    char code[128] = "", message[512] = "";
    if (r->body_len > 0) {
        xmlDoc *doc = xmlReadMemory((const char *)r->body, (int)r->body_len, "s3-error.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (doc) {
            xmlNode *root = xmlDocGetRootElement(doc);
            xmlNode *c = xml_find(root, "Code"), *m = xml_find(root, "Message");
            xmlChar *t;
            if (c && (t = xmlNodeGetContent(c)) != NULL) {
                snprintf(code, sizeof code, "%s", (const char *)t);
                xmlFree(t);
            }
            if (m && (t = xmlNodeGetContent(m)) != NULL) {
                snprintf(message, sizeof message, "%s", (const char *)t);
                xmlFree(t);
            }
            xmlFreeDoc(doc);
        }
    }
    snprintf(err, err_size, "S3 %s %s/%s: HTTP %ld%s%s%s%s", method, bucket, key ? key : "",
             r->status, code[0] ? " " : "", code, message[0] ? ": " : "", message);
    if (r->status == 404 && (!code[0] || strcmp(code, "NoSuchKey") == 0))
        return ZT_ERR_NOT_FOUND;
    if (r->status == 400 || r->status == 403 || r->status == 404)
        return ZT_ERR_REJECTED;
    return ZT_ERR_IO;
}

/* One signed request. query: already sorted and encoded ("" or NULL: none). */
static int s3_request(drive2_storage_t *self, const char *method, const char *key,
                      const char *query, const void *body, size_t body_len,
                      const char *content_type, drive2_http_response_t *resp, char *err,
                      size_t err_size) {
    char *ekey = drive2_http_encode(key ? key : "", 1);
    size_t ulen = strlen(self->endpoint) + strlen(self->bucket) + strlen(ekey) +
                  (query ? strlen(query) : 0) + 8;
    char *url = zt_malloc(ulen);
    snprintf(url, ulen, "%s/%s%s%s%s%s", self->endpoint, self->bucket, key ? "/" : "", ekey,
             query && *query ? "?" : "", query ? query : "");
    free(ekey);
    char hash[65], hash_hdr[96], type_hdr[256];
    sha256_hex(body ? body : "", body ? body_len : 0, hash);
    snprintf(hash_hdr, sizeof hash_hdr, "x-amz-content-sha256: %s", hash);
    const char *headers[3] = {hash_hdr, NULL, NULL};
    if (content_type) {
        snprintf(type_hdr, sizeof type_hdr, "Content-Type: %s", content_type);
        headers[1] = type_hdr;
    }
    drive2_http_request_t rq = {.method = method,
                                .url = url,
                                .headers = headers,
                                .body = body,
                                .body_len = body_len,
                                .aws_sigv4 = self->sigv4,
                                .username = self->key_id,
                                .password = self->secret};
    int rc = drive2_http_perform(self->http, &rq, resp, err, err_size);
    free(url);
    if (rc) {
        /* err names the method and URL (without the query) already */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "S3: %s", err);
        snprintf(err, err_size, "%s", tmp);
        return rc;
    }
    if (resp->status < 200 || resp->status > 299)
        return s3_error(method, self->bucket, key, resp, err, err_size);
    return 0;
}

/* ---------------------------------------------------------------- api */

static char *join_path(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = zt_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

drive2_storage_t *drive2_storage_new(const zt_config_t *config, char *err, size_t err_size) {
    drive2_storage_t *self = zt_calloc(1, sizeof *self);
    self->max_object_bytes = config->upload_max_bytes > 0 ? config->upload_max_bytes : INT64_MAX;
    const char *url = config->storage_url;
    if (url[0] == '\0' || strncmp(url, "file://", 7) == 0) {
        self->backend = BACKEND_LOCAL;
        if (url[0] == '\0') {
            self->root =
                join_path(config->drive2_data_dir[0] ? config->drive2_data_dir : ".", "objects");
        } else {
            const char *p = url + 7;
            if (*p != '/') {
                snprintf(err, err_size,
                         "storage_url %s: a file URL needs an absolute path (file:///DIR)", url);
                goto fail;
            }
            self->root = zt_strdup(p);
        }
        if (mkdir_p(self->root) != 0) {
            snprintf(err, err_size, "storage: cannot create %s: %s", self->root, strerror(errno));
            goto fail;
        }
        char real[PATH_MAX];
        if (!realpath(self->root, real)) {
            snprintf(err, err_size, "storage: %s: %s", self->root, strerror(errno));
            goto fail;
        }
        self->real_root = zt_strdup(real);
        return self;
    }
    if (strncmp(url, "s3://", 5) != 0) {
        snprintf(err, err_size, "storage_url %s: expected \"\", file:///DIR or s3://BUCKET", url);
        goto fail;
    }
    self->backend = BACKEND_S3;
    const char *bucket = url + 5;
    size_t blen = strcspn(bucket, "/");
    if (blen == 0 || bucket[blen] != '\0' || blen > 63) {
        snprintf(err, err_size, "storage_url %s: expected s3://BUCKET (a bucket name, no path)",
                 url);
        goto fail;
    }
    for (size_t i = 0; i < blen; i++) {
        char ch = bucket[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.')) {
            snprintf(err, err_size, "storage_url %s: bucket names use a-z, 0-9, '-' and '.'", url);
            goto fail;
        }
    }
    self->bucket = zt_strdup(bucket);
    const char *region = config->s3_region[0] ? config->s3_region : "us-east-1";
    for (const char *p = region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            snprintf(err, err_size, "s3_region %s: use a-z, 0-9 and '-'", region);
            goto fail;
        }
    if (config->s3_endpoint[0]) {
        self->endpoint = zt_strdup(config->s3_endpoint);
    } else {
        char ep[160];
        snprintf(ep, sizeof ep, "https://s3.%s.amazonaws.com", region);
        self->endpoint = zt_strdup(ep);
    }
    size_t el = strlen(self->endpoint);
    while (el > 0 && self->endpoint[el - 1] == '/')
        self->endpoint[--el] = '\0';
    if (strncmp(self->endpoint, "http://", 7) != 0 && strncmp(self->endpoint, "https://", 8) != 0) {
        snprintf(err, err_size, "s3_endpoint: expected an http:// or https:// URL");
        goto fail;
    }
    char sig[128];
    snprintf(sig, sizeof sig, "aws:amz:%s:s3", region);
    self->sigv4 = zt_strdup(sig);
    if (!config->s3_access_key_id[0]) {
        snprintf(err, err_size, "storage: s3_access_key_id (env AWS_ACCESS_KEY_ID) is not set");
        goto fail;
    }
    self->key_id = zt_strdup(config->s3_access_key_id);
    char reason[256];
    if (zt_secret_get("AWS_SECRET_ACCESS_KEY", self->secret, sizeof self->secret, reason,
                      sizeof reason) != 0) {
        snprintf(err, err_size, "storage: S3 secret key: %s", reason);
        goto fail;
    }
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    o.max_response_bytes = (size_t)self->max_object_bytes + 65536;
    self->http = drive2_http_new(&o);
    if (!self->http) {
        snprintf(err, err_size, "storage: cannot initialise libcurl");
        goto fail;
    }
    return self;
fail:
    drive2_storage_destroy(&self);
    return NULL;
}

void drive2_storage_destroy(drive2_storage_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_storage_t *self = *self_p;
    free(self->root);
    free(self->real_root);
    drive2_http_destroy(&self->http);
    free(self->endpoint);
    free(self->bucket);
    free(self->sigv4);
    free(self->key_id);
    /* the secret should not linger in freed memory */
    explicit_bzero(self->secret, sizeof self->secret);
    free(self);
    *self_p = NULL;
}

const char *drive2_storage_kind(const drive2_storage_t *self) {
    return self->backend == BACKEND_S3 ? "s3" : "local";
}

int drive2_storage_put(drive2_storage_t *self, const char *key, const void *data, size_t len,
                       const char *content_type, char *err, size_t err_size) {
    int rc = check_key(key, err, err_size);
    if (rc)
        return rc;
    if ((int64_t)len > self->max_object_bytes) {
        snprintf(err, err_size, "storage: object %s: %zu bytes is over the %lld-byte limit", key,
                 len, (long long)self->max_object_bytes);
        return ZT_ERR_TOO_LARGE;
    }
    if (self->backend == BACKEND_LOCAL)
        return local_put(self, key, data, len, err, err_size);
    drive2_http_response_t r;
    rc = s3_request(self, "PUT", key, NULL, data ? data : "", len,
                    content_type ? content_type : "application/octet-stream", &r, err, err_size);
    drive2_http_response_clear(&r);
    return rc;
}

int drive2_storage_put_file(drive2_storage_t *self, const char *key, const char *path, char *err,
                            size_t err_size) {
    int rc = check_key(key, err, err_size);
    if (rc)
        return rc;
    unsigned char *data;
    size_t len;
    char what[PATH_MAX + 8];
    snprintf(what, sizeof what, "file %s", path);
    rc = read_file(path, self->max_object_bytes, &data, &len, what, err, err_size);
    if (rc)
        return rc;
    rc = drive2_storage_put(self, key, data, len, NULL, err, err_size);
    free(data);
    return rc;
}

int drive2_storage_get(drive2_storage_t *self, const char *key, unsigned char **data, size_t *len,
                       char *err, size_t err_size) {
    *data = NULL;
    *len = 0;
    int rc = check_key(key, err, err_size);
    if (rc)
        return rc;
    if (self->backend == BACKEND_LOCAL)
        return local_get(self, key, data, len, err, err_size);
    drive2_http_response_t r;
    rc = s3_request(self, "GET", key, NULL, NULL, 0, NULL, &r, err, err_size);
    if (rc == 0) {
        *data = r.body; /* NUL-terminated by http.c */
        *len = r.body_len;
        r.body = NULL;
    }
    drive2_http_response_clear(&r);
    return rc;
}

int drive2_storage_delete(drive2_storage_t *self, const char *key, char *err, size_t err_size) {
    int rc = check_key(key, err, err_size);
    if (rc)
        return rc;
    if (self->backend == BACKEND_LOCAL)
        return local_delete(self, key, err, err_size);
    drive2_http_response_t r;
    rc = s3_request(self, "DELETE", key, NULL, NULL, 0, NULL, &r, err, err_size);
    drive2_http_response_clear(&r);
    return rc == ZT_ERR_NOT_FOUND ? 0 : rc;
}

void drive2_storage_keys_free(char **keys, size_t count) {
    for (size_t i = 0; keys && i < count; i++)
        free(keys[i]);
    free(keys);
}

/* ListObjectsV2, following continuation tokens until max keys or the end.
 * The query is signed as sent, so its parameters are sorted by name and
 * their values percent-encoded (libcurl 7.88 does not normalise them). */
static int s3_list(drive2_storage_t *self, const char *prefix, keylist_t *l, char *err,
                   size_t err_size) {
    char *token = NULL;
    int rc = 0;
    for (int page = 0; page < 10000 && l->count < l->max; page++) {
        char *eprefix = drive2_http_encode(prefix, 0);
        char *etoken = token ? drive2_http_encode(token, 0) : NULL;
        size_t max_keys = l->max - l->count < 1000 ? l->max - l->count : 1000;
        size_t qn = strlen(eprefix) + (etoken ? strlen(etoken) : 0) + 96;
        char *q = zt_malloc(qn);
        snprintf(q, qn, "%s%s%slist-type=2&max-keys=%zu&prefix=%s",
                 etoken ? "continuation-token=" : "", etoken ? etoken : "", etoken ? "&" : "",
                 max_keys, eprefix);
        free(eprefix);
        free(etoken);
        drive2_http_response_t r;
        rc = s3_request(self, "GET", NULL, q, NULL, 0, NULL, &r, err, err_size);
        free(q);
        if (rc) {
            drive2_http_response_clear(&r);
            break;
        }
        xmlDoc *doc = xmlReadMemory((const char *)r.body, (int)r.body_len, "list.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        drive2_http_response_clear(&r);
        if (!doc) {
            snprintf(err, err_size, "S3 list %s: the answer is not XML", self->bucket);
            rc = ZT_ERR_PROTOCOL;
            break;
        }
        xmlNode *root = xmlDocGetRootElement(doc);
        free(token);
        token = NULL;
        int truncated = 0;
        for (xmlNode *n = root ? root->children : NULL; n; n = n->next) {
            if (n->type != XML_ELEMENT_NODE)
                continue;
            if (strcmp((const char *)n->name, "Contents") == 0) {
                xmlNode *k = xml_find(n->children, "Key");
                xmlChar *t = k ? xmlNodeGetContent(k) : NULL;
                if (t && l->count < l->max)
                    keylist_add(l, (const char *)t);
                xmlFree(t);
            } else if (strcmp((const char *)n->name, "IsTruncated") == 0) {
                xmlChar *t = xmlNodeGetContent(n);
                truncated = t && strcmp((const char *)t, "true") == 0;
                xmlFree(t);
            } else if (strcmp((const char *)n->name, "NextContinuationToken") == 0) {
                xmlChar *t = xmlNodeGetContent(n);
                if (t)
                    token = zt_strdup((const char *)t);
                xmlFree(t);
            }
        }
        xmlFreeDoc(doc);
        if (!truncated || !token)
            break;
    }
    free(token);
    return rc;
}

int drive2_storage_list(drive2_storage_t *self, const char *prefix, size_t max, char ***keys,
                        size_t *count, char *err, size_t err_size) {
    *keys = NULL;
    *count = 0;
    if (!prefix)
        prefix = "";
    keylist_t l = {.max = max};
    int rc = 0;
    if (self->backend == BACKEND_LOCAL)
        local_walk(self->real_root, "", prefix, &l, 0);
    else
        rc = s3_list(self, prefix, &l, err, err_size);
    if (rc) {
        drive2_storage_keys_free(l.keys, l.count);
        return rc;
    }
    if (l.count > 1)
        qsort(l.keys, l.count, sizeof *l.keys, cmp_str);
    while (l.count > max) /* the local walk collects everything; keep the first max */
        free(l.keys[--l.count]);
    *keys = l.keys;
    *count = l.count;
    return 0;
}
