/* http: the one libcurl wrapper every Drive2 service client uses (S3, Gemini,
 * Qdrant, LINE). A client owns one CURL easy handle (so connections are
 * reused); a request is method + URL + headers + body, the answer is status,
 * headers and body up to a size cap. Transient failures (connection errors,
 * timeouts, 429, 5xx) are retried with exponential backoff and jitter,
 * honouring Retry-After, within a bound on attempts and on total time.
 * Only http:// and https:// URLs are accepted; redirects are not followed.
 * Error texts name the method and the URL without its query string and never
 * contain header values or credentials. One client per thread. */
#ifndef DRIVE2_HTTP_H
#define DRIVE2_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct drive2_http drive2_http_t;

/* Limits of a client (plain value struct; drive2_http_options_default()). */
typedef struct {
    int64_t connect_timeout_ms; /* msecs to establish a connection */
    int64_t timeout_ms;         /* msecs for one whole attempt */
    int max_attempts;           /* attempts in total, >= 1 */
    int64_t max_total_ms;       /* msecs for all attempts and the waits between them */
    int64_t backoff_base_ms;    /* msecs before the first retry (doubled each time) */
    int64_t backoff_max_ms;     /* msecs, cap of one computed backoff */
    int64_t max_retry_after_ms; /* msecs, longest Retry-After we are willing to wait */
    size_t max_response_bytes;  /* bytes of a response body; more fails ZT_ERR_TOO_LARGE */
} drive2_http_options_t;

/* Defaults: connect 10 s, attempt 60 s, 4 attempts, 120 s total, backoff
 * 500 ms doubling up to 8 s, Retry-After up to 60 s, responses up to 64 MiB. */
void drive2_http_options_default(drive2_http_options_t *options);

/* One request. Borrowed pointers; only method and url are required. */
typedef struct {
    const char *method;         /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const unsigned char *body;  /* request body, or NULL */
    size_t body_len;            /* bytes */
    const char *aws_sigv4;      /* e.g. "aws:amz:us-east-1:s3" to sign, or NULL */
    const char *username;       /* SigV4 access key id (with aws_sigv4) */
    const char *password;       /* SigV4 secret key (with aws_sigv4); never logged */
} drive2_http_request_t;

/* One answer. body is NUL-terminated (one extra byte, not counted in
 * body_len); headers holds the last response's header lines. Owned by the
 * caller: free with drive2_http_response_clear(). */
typedef struct {
    long status; /* HTTP status of the last attempt */
    unsigned char *body;
    size_t body_len;
    char *headers; /* raw "Name: value\r\n" lines of the final response */
    size_t headers_len;
    int attempts; /* attempts made */
} drive2_http_response_t;

/* Frees what a response holds and zeroes it (safe on a zeroed one). */
void drive2_http_response_clear(drive2_http_response_t *response);

/* Copies the value of response header NAME (case-insensitive, trimmed) into
 * buf. Returns 0, or ZT_ERR_NOT_FOUND. */
int drive2_http_response_header(const drive2_http_response_t *response, const char *name, char *buf,
                                size_t size);

/* Creates a client with these limits (NULL: defaults). Returns NULL when
 * libcurl cannot be initialised. */
drive2_http_t *drive2_http_new(const drive2_http_options_t *options);

/* Frees the client and sets *self_p to NULL; harmless on NULL. */
void drive2_http_destroy(drive2_http_t **self_p);

/* Performs the request, retrying transient failures. Returns 0 when an HTTP
 * answer arrived -- whatever its status, including a 429/5xx left after the
 * last attempt: the caller judges response->status. Otherwise returns
 * ZT_ERR_INVALID (bad URL or scheme), ZT_ERR_TIMEOUT, ZT_ERR_TOO_LARGE (body
 * over max_response_bytes) or ZT_ERR_IO, with err saying what happened.
 * response is always initialised (clear it either way). */
int drive2_http_perform(drive2_http_t *self, const drive2_http_request_t *request,
                        drive2_http_response_t *response, char *err, size_t err_size);

/* The delay before retry number `retry` (1 = first retry) for an answer with
 * this status and Retry-After header value (NULL if none), in msecs, or -1
 * when the answer is not worth retrying. Exposed for the unit test. */
int64_t drive2_http_retry_delay_ms(const drive2_http_options_t *options, long status,
                                   int curl_failed, const char *retry_after, int retry,
                                   unsigned *seed);

/* Writes url without its query string and user info into buf (for errors). */
void drive2_http_redact_url(const char *url, char *buf, size_t size);

/* Percent-encodes text as RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~)
 * plus, when keep_slash, '/'. Returns a malloc'd string. */
char *drive2_http_encode(const char *text, int keep_slash);

#endif
