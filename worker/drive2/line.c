/* line: see line.h. The token lives in this struct (Authorization header
 * text) and is wiped on destroy; the HTTP client is http.c's. */
#include "line.h"

#include "zt_error.h"
#include "zt_log.h"
#include "zt_secret.h"
#include "zt_taskmsg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 1024 /* bytes of a channel access token (long-lived ones are ~172) */
#define PUSH_PATH "/v2/bot/message/push"

struct drive2_line {
    drive2_http_t *http;
    char url[ZT_URL_MAX + 32];        /* base + PUSH_PATH */
    char auth_header[TOKEN_MAX + 32]; /* "Authorization: Bearer <token>"; never logged */
};

bool drive2_line_configured(void) {
    return zt_secret_present(DRIVE2_LINE_TOKEN);
}

drive2_line_t *drive2_line_new(const zt_config_t *config, const drive2_http_options_t *http_options,
                               char *err, size_t err_size) {
    const char *base = config->line_api_base_url;
    if (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0) {
        zt_fail(err, err_size, ZT_ERR_INVALID, "line_api_base_url '%s' is not an http(s) URL",
                base);
        return NULL;
    }
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    drive2_line_t *self = zt_calloc(1, sizeof *self);
    snprintf(self->url, sizeof self->url, "%.*s%s", (int)blen, base, PUSH_PATH);
    char token[TOKEN_MAX], why[256] = "";
    int rc = zt_secret_get(DRIVE2_LINE_TOKEN, token, sizeof token, why, sizeof why);
    if (rc != 0) {
        zt_fail(err, err_size, rc, "no LINE channel access token: %s", why);
        drive2_line_destroy(&self);
        return NULL;
    }
    snprintf(self->auth_header, sizeof self->auth_header, "Authorization: Bearer %s", token);
    explicit_bzero(token, sizeof token);
    self->http = drive2_http_new(http_options);
    if (!self->http) {
        zt_fail(err, err_size, ZT_ERR_IO, "cannot initialise libcurl for LINE");
        drive2_line_destroy(&self);
        return NULL;
    }
    return self;
}

void drive2_line_destroy(drive2_line_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_line_t *self = *self_p;
    drive2_http_destroy(&self->http);
    explicit_bzero(self->auth_header, sizeof self->auth_header);
    free(self);
    *self_p = NULL;
}

void drive2_line_retry_key(const char *seed, char out[37]) {
    /* in Drive2's LINE namespace: the same notification always gets the same key */
    static const unsigned char ns[16] = {0x3f, 0x52, 0x0c, 0x9e, 0x71, 0xa4, 0x4b, 0x19,
                                         0x8d, 0x2e, 0x5a, 0x60, 0xc4, 0x17, 0xe9, 0x0b};
    zt_uuid5(ns, seed, strlen(seed), out);
}

size_t drive2_line_utf16_length(const char *text) {
    size_t units = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        size_t n = *p < 0x80         ? 1
                   : (*p >> 5) == 6  ? 2
                   : (*p >> 4) == 14 ? 3
                   : (*p >> 3) == 30 ? 4
                                     : 0;
        bool ok = n > 0;
        for (size_t i = 1; ok && i < n; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (!ok)
            n = 1; /* an invalid byte: one unit, as a replacement character */
        units += n == 4 && ok ? 2 : 1;
        p += n;
    }
    return units;
}

static bool uuid_valid(const char *s) {
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* User, group and room ids are short printable ASCII (U + 32 hex digits). */
static bool to_valid(const char *to) {
    size_t n = to ? strlen(to) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)to[i]) && to[i] != '_' && to[i] != '-')
            return false;
    return true;
}

/* Image URLs anywhere in a Flex container: HTTPS, at most the URL limit. */
static int check_urls(const json_t *node, size_t index, char *err, size_t err_size) {
    if (json_is_array(node)) {
        size_t i;
        const json_t *v;
        json_array_foreach(node, i, v) {
            int rc = check_urls(v, index, err, err_size);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(node))
        return 0;
    const json_t *type = json_object_get(node, "type");
    const json_t *url = json_object_get(node, "url");
    if (json_is_string(type) && strcmp(json_string_value(type), "image") == 0) {
        const char *u = json_string_value(url);
        if (!u || strncmp(u, "https://", 8) != 0 || strlen(u) > DRIVE2_LINE_URL_MAX)
            return zt_fail(err, err_size, ZT_ERR_INVALID,
                           "message %zu: an image URL must be https:// and at most %d characters",
                           index, DRIVE2_LINE_URL_MAX);
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)node, key, v) {
        int rc = check_urls(v, index, err, err_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int drive2_line_check_messages(const json_t *messages, char *err, size_t err_size) {
    if (!json_is_array(messages) || json_array_size(messages) < 1 ||
        json_array_size(messages) > DRIVE2_LINE_MESSAGES_MAX)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "a push carries 1 to %d messages",
                       DRIVE2_LINE_MESSAGES_MAX);
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        if (!type)
            return zt_fail(err, err_size, ZT_ERR_INVALID, "message %zu has no type", i);
        if (strcmp(type, "text") == 0) {
            const char *text = json_string_value(json_object_get(m, "text"));
            size_t n = text ? drive2_line_utf16_length(text) : 0;
            if (n < 1 || n > DRIVE2_LINE_TEXT_MAX)
                return zt_fail(err, err_size, ZT_ERR_INVALID,
                               "message %zu: text must have 1 to %d characters (has %zu)", i,
                               DRIVE2_LINE_TEXT_MAX, n);
            continue;
        }
        if (strcmp(type, "flex") != 0)
            return zt_fail(err, err_size, ZT_ERR_INVALID,
                           "message %zu: type '%.32s' is not one Drive2 sends (flex, text)", i,
                           type);
        const char *alt = json_string_value(json_object_get(m, "altText"));
        size_t n = alt ? drive2_line_utf16_length(alt) : 0;
        if (n < 1 || n > DRIVE2_LINE_ALT_TEXT_MAX)
            return zt_fail(err, err_size, ZT_ERR_INVALID,
                           "message %zu: altText must have 1 to %d characters (has %zu)", i,
                           DRIVE2_LINE_ALT_TEXT_MAX, n);
        const json_t *contents = json_object_get(m, "contents");
        const char *ctype = json_string_value(json_object_get(contents, "type"));
        if (!ctype || strcmp(ctype, "bubble") != 0)
            return zt_fail(err, err_size, ZT_ERR_INVALID,
                           "message %zu: contents must be a Flex bubble", i);
        char *text = json_dumps(contents, JSON_COMPACT);
        size_t bytes = text ? strlen(text) : 0;
        free(text);
        if (bytes == 0 || bytes > DRIVE2_LINE_BUBBLE_MAX)
            return zt_fail(err, err_size, ZT_ERR_INVALID,
                           "message %zu: the bubble is %zu bytes of JSON, over LINE's %d", i, bytes,
                           DRIVE2_LINE_BUBBLE_MAX);
        int rc = check_urls(contents, i, err, err_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* LINE's error answer {"message", "details": [{"message", "property"}]} as
 * one line; the raw body's start when it is not that. */
static void line_error_text(const drive2_http_response_t *r, char *buf, size_t size) {
    buf[0] = '\0';
    json_t *j = json_loadb((const char *)r->body, r->body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (msg) {
        size_t used = (size_t)snprintf(buf, size, "%s", msg);
        const json_t *details = json_object_get(j, "details");
        size_t i;
        const json_t *d;
        json_array_foreach(details, i, d) {
            if (used >= size)
                break;
            const char *dm = json_string_value(json_object_get(d, "message"));
            const char *dp = json_string_value(json_object_get(d, "property"));
            used += (size_t)snprintf(buf + used, size - used, "%s%s%s%s", i == 0 ? " [" : "; ",
                                     dp ? dp : "", dp ? ": " : "", dm ? dm : "");
            if (i + 1 == json_array_size(details) && used < size)
                used += (size_t)snprintf(buf + used, size - used, "]");
        }
    } else {
        size_t n = r->body_len < 200 ? r->body_len : 200;
        snprintf(buf, size, "%.*s", (int)n, r->body ? (const char *)r->body : "");
        if (!*buf)
            snprintf(buf, size, "no error message");
    }
    json_decref(j);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

int drive2_line_push(drive2_line_t *self, const char *to, const json_t *messages,
                     const char *retry_key, drive2_line_result_t *result, char *err,
                     size_t err_size) {
    drive2_line_result_t local;
    if (!result)
        result = &local;
    memset(result, 0, sizeof *result);
    if (!to_valid(to))
        return zt_fail(err, err_size, ZT_ERR_INVALID, "LINE push: '%.64s' is not a LINE id",
                       to ? to : "");
    if (!uuid_valid(retry_key))
        return zt_fail(err, err_size, ZT_ERR_INVALID, "LINE push: the retry key must be a UUID");
    int rc = drive2_line_check_messages(messages, err, err_size);
    if (rc != 0)
        return rc;
    json_t *body = json_pack("{s:s, s:O}", "to", to, "messages", messages);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "LINE push: cannot encode the messages");
    char key_header[64];
    snprintf(key_header, sizeof key_header, "X-Line-Retry-Key: %s", retry_key);
    const char *headers[] = {"Content-Type: application/json", self->auth_header, key_header, NULL};
    drive2_http_request_t rq = {.method = "POST",
                                .url = self->url,
                                .headers = headers,
                                .body = (const unsigned char *)text,
                                .body_len = strlen(text)};
    drive2_http_response_t resp;
    char why[512] = "";
    rc = drive2_http_perform(self->http, &rq, &resp, why, sizeof why);
    free(text);
    result->attempts = resp.attempts;
    result->status = resp.status;
    if (rc != 0) {
        drive2_http_response_clear(&resp);
        return zt_fail(err, err_size, rc, "LINE push to %s: %s", to, why);
    }
    if (drive2_http_response_header(&resp, "x-line-request-id", result->request_id,
                                    sizeof result->request_id) != 0)
        drive2_http_response_header(&resp, "x-line-accepted-request-id", result->request_id,
                                    sizeof result->request_id);
    long status = resp.status;
    char line_msg[600];
    line_error_text(&resp, line_msg, sizeof line_msg);
    drive2_http_response_clear(&resp);
    if (status >= 200 && status < 300) {
        zt_info("LINE push to %s accepted (retry key %s, %d attempt%s)", to, retry_key,
                result->attempts, result->attempts == 1 ? "" : "s");
        return 0;
    }
    if (status == 409) {
        /* A request with this retry key was accepted before: the message
         * was delivered once, which is what the key is for. */
        result->duplicate = true;
        zt_info("LINE push to %s: retry key %s was already accepted (409); not sent twice", to,
                retry_key);
        return 0;
    }
    if (status == 429 || status >= 500)
        return zt_fail(err, err_size, ZT_ERR_IO,
                       "LINE push to %s: still %ld after %d attempt%s (%s); will retry with the "
                       "same retry key",
                       to, status, result->attempts, result->attempts == 1 ? "" : "s", line_msg);
    return zt_fail(err, err_size, ZT_ERR_REJECTED, "LINE refused the push to %s (%ld): %s", to,
                   status, line_msg);
}
