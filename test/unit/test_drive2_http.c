/* test_drive2_http: the pure parts of worker/drive2/http.c -- which answers
 * are retried and after how long (Retry-After in seconds and as an HTTP
 * date, exponential backoff with jitter), URL redaction for error texts,
 * percent-encoding, header lookup, and refusal of non-HTTP schemes. The
 * network paths are covered by test/system/test_drive2_services.py. */
#include "http.h"
#include "zt_error.h"
#include "zt_test.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <time.h>

static void test_retry_decisions(void) {
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    unsigned seed = 1;
    CHECK_INT(drive2_http_retry_delay_ms(&o, 200, 0, NULL, 1, &seed), -1);
    CHECK_INT(drive2_http_retry_delay_ms(&o, 404, 0, NULL, 1, &seed), -1);
    CHECK_INT(drive2_http_retry_delay_ms(&o, 403, 0, NULL, 1, &seed), -1);
    CHECK(drive2_http_retry_delay_ms(&o, 429, 0, NULL, 1, &seed) >= 0);
    CHECK(drive2_http_retry_delay_ms(&o, 503, 0, NULL, 1, &seed) >= 0);
    CHECK(drive2_http_retry_delay_ms(&o, 0, 1, NULL, 1, &seed) >= 0);
    CHECK_INT(drive2_http_retry_delay_ms(&o, 429, 0, "7", 1, &seed), 7000);
    CHECK_INT(drive2_http_retry_delay_ms(&o, 503, 0, "0", 3, &seed), 0);
}

static void test_retry_after_date(void) {
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    unsigned seed = 2;
    char date[64];
    time_t later = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int64_t d = drive2_http_retry_delay_ms(&o, 429, 0, date, 1, &seed);
    CHECK(d > 27000 && d <= 30000);
    /* a date in the past means "now" */
    CHECK_INT(drive2_http_retry_delay_ms(&o, 429, 0, "Wed, 21 Oct 2015 07:28:00 GMT", 1, &seed), 0);
}

static void test_backoff_grows_with_jitter(void) {
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    o.backoff_base_ms = 100;
    o.backoff_max_ms = 1000;
    unsigned seed = 3;
    int varied = 0;
    int64_t first = -1;
    for (int i = 0; i < 50; i++) {
        int64_t d1 = drive2_http_retry_delay_ms(&o, 500, 0, NULL, 1, &seed);
        int64_t d3 = drive2_http_retry_delay_ms(&o, 500, 0, NULL, 3, &seed);
        int64_t d9 = drive2_http_retry_delay_ms(&o, 500, 0, NULL, 9, &seed);
        CHECK(d1 >= 50 && d1 <= 100);
        CHECK(d3 >= 200 && d3 <= 400);
        CHECK(d9 >= 500 && d9 <= 1000);
        if (first >= 0 && d1 != first)
            varied = 1;
        first = d1;
    }
    CHECK(varied);
    /* garbage Retry-After falls back to our own backoff */
    int64_t g = drive2_http_retry_delay_ms(&o, 429, 0, "soon-ish", 1, &seed);
    CHECK(g >= 50 && g <= 100);
}

static void test_redact_and_encode(void) {
    char buf[256];
    drive2_http_redact_url("https://user:pw@host:9000/a/b?key=SECRET#x", buf, sizeof buf);
    CHECK_STR(buf, "https://host:9000/a/b");
    drive2_http_redact_url("http://h/p", buf, sizeof buf);
    CHECK_STR(buf, "http://h/p");
    char *e = drive2_http_encode("dir/a b+ü~.txt", 1);
    CHECK_STR(e, "dir/a%20b%2B%C3%BC~.txt");
    free(e);
    e = drive2_http_encode("dir/", 0);
    CHECK_STR(e, "dir%2F");
    free(e);
}

static void test_header_lookup(void) {
    drive2_http_response_t r = {0};
    r.headers =
        strdup("HTTP/1.1 429 Too Many\r\nContent-Type: text/plain\r\nretry-after:  3 \r\n\r\n");
    char v[32];
    CHECK_INT(drive2_http_response_header(&r, "Retry-After", v, sizeof v), 0);
    CHECK_STR(v, "3");
    CHECK_INT(drive2_http_response_header(&r, "X-Nope", v, sizeof v), ZT_ERR_NOT_FOUND);
    drive2_http_response_clear(&r);
    CHECK(r.headers == NULL);
}

static void test_refuses_other_schemes(void) {
    drive2_http_t *h = drive2_http_new(NULL);
    CHECK(h != NULL);
    const char *urls[] = {"file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/",
                          "127.0.0.1:1/x"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        drive2_http_request_t rq = {.method = "GET", .url = urls[i]};
        drive2_http_response_t resp;
        char err[256];
        CHECK_INT(drive2_http_perform(h, &rq, &resp, err, sizeof err), ZT_ERR_INVALID);
        CHECK(strstr(err, "http") != NULL);
        drive2_http_response_clear(&resp);
    }
    /* a closed loopback port: bounded retries, then a clear error */
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    o.max_attempts = 3;
    o.backoff_base_ms = 10;
    drive2_http_destroy(&h);
    h = drive2_http_new(&o);
    drive2_http_request_t rq = {.method = "GET", .url = "http://127.0.0.1:1/x?token=SECRET"};
    drive2_http_response_t resp;
    char err[256];
    int rc = drive2_http_perform(h, &rq, &resp, err, sizeof err);
    CHECK_INT(rc, ZT_ERR_IO);
    CHECK_INT(resp.attempts, 3);
    CHECK(strstr(err, "after 3 attempts") != NULL);
    CHECK(strstr(err, "SECRET") == NULL);
    drive2_http_response_clear(&resp);
    drive2_http_destroy(&h);
    CHECK(h == NULL);
    drive2_http_destroy(&h);
}

int main(void) {
    RUN(test_retry_decisions);
    RUN(test_retry_after_date);
    RUN(test_backoff_grows_with_jitter);
    RUN(test_redact_and_encode);
    RUN(test_header_lookup);
    RUN(test_refuses_other_schemes);
    return zt_test_summary();
}
