/* http: see http.h. The CURL handle lives here and nowhere else; it is reset
 * before every attempt so no option (credentials above all) leaks from one
 * request into the next, while libcurl keeps its connection cache. */
#include "http.h"

#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct drive2_http {
    CURL *curl;
    drive2_http_options_t options;
    unsigned seed; /* jitter; per client so there is no global state */
};

/* What the write callbacks fill during one attempt. */
typedef struct {
    unsigned char *body;
    size_t len, cap;
    size_t max;
    int too_large;
    char *headers;
    size_t headers_len, headers_cap;
} sink_t;

void drive2_http_options_default(drive2_http_options_t *o) {
    o->connect_timeout_ms = 10000;
    o->timeout_ms = 60000;
    o->max_attempts = 4;
    o->max_total_ms = 120000;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 8000;
    o->max_retry_after_ms = 60000;
    o->max_response_bytes = (size_t)64 << 20;
}

void drive2_http_response_clear(drive2_http_response_t *r) {
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

int drive2_http_response_header(const drive2_http_response_t *r, const char *name, char *buf,
                                size_t size) {
    if (size)
        buf[0] = '\0';
    if (!r->headers)
        return ZT_ERR_NOT_FOUND;
    size_t nlen = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t line = eol ? (size_t)(eol - p) : strlen(p);
        if (line > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *end = p + line;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && isspace((unsigned char)end[-1]))
                end--;
            size_t n = (size_t)(end - v);
            if (n >= size)
                n = size ? size - 1 : 0;
            if (size) {
                memcpy(buf, v, n);
                buf[n] = '\0';
            }
            return 0;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return ZT_ERR_NOT_FOUND;
}

drive2_http_t *drive2_http_new(const drive2_http_options_t *options) {
    /* curl_global_init is reference counted and cheap after the first call. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    drive2_http_t *self = zt_calloc(1, sizeof *self);
    self->curl = curl_easy_init();
    if (!self->curl) {
        free(self);
        curl_global_cleanup();
        return NULL;
    }
    if (options)
        self->options = *options;
    else
        drive2_http_options_default(&self->options);
    if (self->options.max_attempts < 1)
        self->options.max_attempts = 1;
    self->seed = (unsigned)zt_clock_mono_us() ^ (unsigned)(uintptr_t)self;
    return self;
}

void drive2_http_destroy(drive2_http_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_http_t *self = *self_p;
    curl_easy_cleanup(self->curl);
    free(self);
    curl_global_cleanup();
    *self_p = NULL;
}

void drive2_http_redact_url(const char *url, char *buf, size_t size) {
    if (!size)
        return;
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    size_t auth_end = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth_end);
    size_t prefix = (size_t)(host - url);
    const char *rest = at ? at + 1 : host;
    size_t rest_len = strcspn(rest, "?#");
    snprintf(buf, size, "%.*s%.*s", (int)prefix, url, (int)rest_len, rest);
}

char *drive2_http_encode(const char *text, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(text);
    char *out = zt_malloc(n * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
    sink_t *s = arg;
    size_t n = size * nmemb;
    if (s->len + n > s->max) {
        s->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->body = zt_realloc(s->body, cap);
        s->cap = cap;
    }
    memcpy(s->body + s->len, data, n);
    s->len += n;
    s->body[s->len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg) {
    sink_t *s = arg;
    size_t n = size * nmemb;
    /* A new status line (after 100 Continue, say) starts a new header block. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        s->headers_len = 0;
    if (s->headers_len + n > 65536)
        return n; /* keep the first 64 KiB of headers; the rest are ignored */
    if (s->headers_len + n + 1 > s->headers_cap) {
        size_t cap = s->headers_cap ? s->headers_cap : 1024;
        while (cap < s->headers_len + n + 1)
            cap *= 2;
        s->headers = zt_realloc(s->headers, cap);
        s->headers_cap = cap;
    }
    memcpy(s->headers + s->headers_len, data, n);
    s->headers_len += n;
    s->headers[s->headers_len] = '\0';
    return n;
}

/* Transport failures worth another attempt: the peer may come back. */
static int curl_transient(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

int64_t drive2_http_retry_delay_ms(const drive2_http_options_t *o, long status, int curl_failed,
                                   const char *retry_after, int retry, unsigned *seed) {
    if (!curl_failed && status != 429 && (status < 500 || status > 599))
        return -1;
    if (retry_after && *retry_after) {
        char *end;
        errno = 0;
        long long secs = strtoll(retry_after, &end, 10);
        if (end != retry_after && *end == '\0' && errno == 0 && secs >= 0)
            return secs > INT64_MAX / 1000 ? INT64_MAX : (int64_t)secs * 1000;
        time_t when = curl_getdate(retry_after, NULL);
        if (when != (time_t)-1) {
            double d = ((double)when - zt_clock_wall()) * 1000.0;
            return d < 0 ? 0 : (int64_t)d;
        }
        /* unparseable: fall back to our own backoff */
    }
    int64_t delay = o->backoff_base_ms;
    for (int i = 1; i < retry && delay < o->backoff_max_ms; i++)
        delay *= 2;
    if (delay > o->backoff_max_ms)
        delay = o->backoff_max_ms;
    /* "equal jitter": between half and all of the backoff, so clients that
     * failed together do not come back together. */
    int64_t half = delay / 2;
    return half + (half > 0 ? (int64_t)(rand_r(seed) % (unsigned)(half + 1)) : 0);
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sets up the handle for one attempt. Returns 0 or ZT_ERR_INVALID. */
static int setup(drive2_http_t *self, const drive2_http_request_t *rq, struct curl_slist **hdrs,
                 sink_t *sink, char *curl_err, int64_t timeout_ms) {
    CURL *c = self->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
        return ZT_ERR_INVALID;
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)self->options.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, sink);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "zmqtasks-drive2/0.1");
    if (self->options.max_response_bytes < INT64_MAX)
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)self->options.max_response_bytes);

    const char *m = rq->method ? rq->method : "GET";
    int has_body = rq->body != NULL || strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0;
    if (strcmp(m, "GET") == 0 && !rq->body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
        if (has_body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
        }
    }
    /* No "Expect: 100-continue" round trip, and no default form type. Not
     * when signing: libcurl 7.88 signs the empty "expect" header it then
     * does not send, and the server's signature differs. */
    if (!rq->aws_sigv4)
        *hdrs = curl_slist_append(*hdrs, "Expect:");
    int has_type = 0;
    for (size_t i = 0; rq->headers && rq->headers[i]; i++) {
        if (strncasecmp(rq->headers[i], "Content-Type:", 13) == 0)
            has_type = 1;
        *hdrs = curl_slist_append(*hdrs, rq->headers[i]);
    }
    if (has_body && !has_type)
        *hdrs = curl_slist_append(*hdrs, "Content-Type: application/octet-stream");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    if (rq->aws_sigv4) {
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, rq->aws_sigv4);
        curl_easy_setopt(c, CURLOPT_USERNAME, rq->username ? rq->username : "");
        curl_easy_setopt(c, CURLOPT_PASSWORD, rq->password ? rq->password : "");
    }
    return 0;
}

int drive2_http_perform(drive2_http_t *self, const drive2_http_request_t *rq,
                        drive2_http_response_t *resp, char *err, size_t err_size) {
    memset(resp, 0, sizeof *resp);
    if (err_size)
        err[0] = '\0';
    char where[600];
    const char *method = rq->method ? rq->method : "GET";
    if (!rq->url ||
        (strncasecmp(rq->url, "http://", 7) != 0 && strncasecmp(rq->url, "https://", 8) != 0)) {
        snprintf(err, err_size, "%s: only http:// and https:// URLs are allowed", method);
        return ZT_ERR_INVALID;
    }
    drive2_http_redact_url(rq->url, where, sizeof where);

    const drive2_http_options_t *o = &self->options;
    int64_t start = zt_clock_mono_ms();
    int rc = ZT_ERR_IO;
    for (int attempt = 1;; attempt++) {
        int64_t left = o->max_total_ms - (zt_clock_mono_ms() - start);
        if (left < 1)
            left = 1;
        sink_t sink = {.max = o->max_response_bytes};
        struct curl_slist *hdrs = NULL;
        char curl_err[CURL_ERROR_SIZE] = "";
        int64_t timeout = o->timeout_ms < left ? o->timeout_ms : left;
        if (setup(self, rq, &hdrs, &sink, curl_err, timeout) != 0) {
            curl_slist_free_all(hdrs);
            snprintf(err, err_size, "%s %s: libcurl lacks protocol restriction support", method,
                     where);
            return ZT_ERR_INVALID;
        }
        CURLcode cc = curl_easy_perform(self->curl);
        curl_slist_free_all(hdrs);
        long status = 0;
        curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);

        drive2_http_response_clear(resp);
        resp->attempts = attempt;
        resp->status = cc == CURLE_OK ? status : 0;
        resp->body = sink.body ? sink.body : zt_calloc(1, 1);
        resp->body_len = sink.len;
        resp->headers = sink.headers ? sink.headers : zt_calloc(1, 1);
        resp->headers_len = sink.headers_len;

        if (sink.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(err, err_size, "%s %s: response larger than %zu bytes", method, where,
                     o->max_response_bytes);
            return ZT_ERR_TOO_LARGE;
        }
        int failed = cc != CURLE_OK;
        if (failed && !curl_transient(cc)) {
            snprintf(err, err_size, "%s %s: %s", method, where,
                     curl_err[0] ? curl_err : curl_easy_strerror(cc));
            return cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ? ZT_ERR_INVALID
                                                                                 : ZT_ERR_IO;
        }
        char retry_after[128] = "";
        if (!failed)
            drive2_http_response_header(resp, "Retry-After", retry_after, sizeof retry_after);
        int64_t delay = drive2_http_retry_delay_ms(
            o, resp->status, failed, retry_after[0] ? retry_after : NULL, attempt, &self->seed);
        if (delay < 0)
            return 0; /* a final answer */
        int64_t spent = zt_clock_mono_ms() - start;
        const char *why = NULL;
        if (attempt >= o->max_attempts)
            why = "attempts used up";
        else if (delay > o->max_retry_after_ms)
            why = "the server asked to wait longer than allowed";
        else if (spent + delay >= o->max_total_ms)
            why = "time budget used up";
        if (why) {
            if (!failed)
                return 0; /* the caller sees the 429/5xx and its body */
            rc = cc == CURLE_OPERATION_TIMEDOUT ? ZT_ERR_TIMEOUT : ZT_ERR_IO;
            snprintf(err, err_size, "%s %s: %s (after %d attempt%s, %s)", method, where,
                     curl_err[0] ? curl_err : curl_easy_strerror(cc), attempt,
                     attempt == 1 ? "" : "s", why);
            return rc;
        }
        if (failed)
            zt_warn("http: %s %s: %s; retry %d in %lld ms", method, where, curl_easy_strerror(cc),
                    attempt, (long long)delay);
        else
            zt_warn("http: %s %s: status %ld; retry %d in %lld ms", method, where, resp->status,
                    attempt, (long long)delay);
        sleep_ms(delay);
    }
}
