/* Unit tests for worker/drive2/line.c, flex.c and notify.c without a
 * network: LINE's character counting, retry keys, the limit checks, the four
 * Flex notices (shape, limits, clipping of hostile input), hero URLs, and
 * the outbox (append, duplicate keys, listing, concurrent writers). The
 * pushes themselves run against test/system/line_mock.py in
 * test/system/test_media.py. */
#include "zt_test.h"

#include "flex.h"
#include "line.h"
#include "notify.h"
#include "zt_error.h"
#include "zt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void test_utf16_and_keys(void) {
    CHECK_INT(drive2_line_utf16_length(""), 0);
    CHECK_INT(drive2_line_utf16_length("abc"), 3);
    CHECK_INT(drive2_line_utf16_length("日本語"), 3);           /* BMP: one unit each */
    CHECK_INT(drive2_line_utf16_length("\xf0\x9f\x8d\x8e"), 2); /* 🍎: a surrogate pair */
    CHECK_INT(drive2_line_utf16_length("a\xff"
                                       "b"),
              3); /* invalid byte: one unit */

    char k1[37], k2[37], k3[37];
    drive2_line_retry_key("complete:task-1", k1);
    drive2_line_retry_key("complete:task-1", k2);
    drive2_line_retry_key("complete:task-2", k3);
    CHECK_STR(k1, k2);
    CHECK(strcmp(k1, k3) != 0);
    CHECK_INT(strlen(k1), 36);
    CHECK(k1[8] == '-' && k1[13] == '-' && k1[18] == '-' && k1[23] == '-');
    CHECK(k1[14] == '5');                  /* version 5 */
    CHECK(strchr("89ab", k1[19]) != NULL); /* RFC 4122 variant */
}

static void test_clip(void) {
    char *s = drive2_flex_clip("hello", 10);
    CHECK_STR(s, "hello");
    free(s);
    s = drive2_flex_clip("hello world", 5);
    CHECK_STR(s, "hell…");
    CHECK_INT(drive2_line_utf16_length(s), 5);
    free(s);
    /* never splits a character, counts emoji as two */
    s = drive2_flex_clip("ab🍎🍎🍎", 5);
    CHECK_STR(s, "ab🍎…");
    free(s);
    s = drive2_flex_clip("日本語のテキスト", 4);
    CHECK_STR(s, "日本語…");
    free(s);
    /* control characters become spaces, invalid UTF-8 a replacement character */
    s = drive2_flex_clip("a\tb\x01"
                         "c\nd\xc3",
                         20);
    CHECK_STR(s, "a b c\nd\xef\xbf\xbd");
    free(s);
    s = drive2_flex_clip(NULL, 5);
    CHECK_STR(s, "");
    free(s);
    char buf[32];
    drive2_flex_format_bytes(512, buf, sizeof buf);
    CHECK_STR(buf, "512 B");
    drive2_flex_format_bytes(1536, buf, sizeof buf);
    CHECK_STR(buf, "1.5 KB");
    drive2_flex_format_bytes(10737418240LL, buf, sizeof buf);
    CHECK_STR(buf, "10.0 GB");
}

static void test_hero_url(void) {
    char url[2100];
    CHECK_INT(
        drive2_flex_hero_url("https://cdn.example.com/d2/", "thumbnails/f1.jpg", url, sizeof url),
        0);
    CHECK_STR(url, "https://cdn.example.com/d2/thumbnails/f1.jpg");
    CHECK_INT(
        drive2_flex_hero_url("https://cdn.example.com", "thumbnails/a b.png", url, sizeof url), 0);
    CHECK_STR(url, "https://cdn.example.com/thumbnails/a%20b.png");
    /* LINE wants https and JPEG or PNG */
    CHECK_INT(drive2_flex_hero_url("http://cdn.example.com", "thumbnails/f1.jpg", url, sizeof url),
              ZT_ERR_INVALID);
    CHECK_INT(
        drive2_flex_hero_url("https://cdn.example.com", "thumbnails/f1.webp", url, sizeof url),
        ZT_ERR_INVALID);
    CHECK_INT(drive2_flex_hero_url("", "thumbnails/f1.jpg", url, sizeof url), ZT_ERR_INVALID);
    CHECK_INT(drive2_flex_hero_url("https://x", NULL, url, sizeof url), ZT_ERR_INVALID);
    char longpath[2100];
    memset(longpath, 'a', 2050);
    memcpy(longpath + 2050, ".jpg", 5);
    CHECK_INT(drive2_flex_hero_url("https://x", longpath, url, sizeof url), ZT_ERR_INVALID);
}

/* Finds the first component of type/text containing needle, depth first. */
static int contains_text(const json_t *node, const char *needle) {
    if (json_is_string(node))
        return strstr(json_string_value(node), needle) != NULL;
    size_t i;
    const char *k;
    json_t *v;
    if (json_is_array(node)) {
        json_array_foreach(node, i, v) if (contains_text(v, needle)) return 1;
    } else if (json_is_object(node)) {
        json_object_foreach((json_t *)node, k, v) if (contains_text(v, needle)) return 1;
    }
    return 0;
}

static void check_message(json_t *m) {
    json_t *arr = json_pack("[O]", m);
    char err[256] = "";
    CHECK_INT(drive2_line_check_messages(arr, err, sizeof err), 0);
    if (err[0])
        fprintf(stderr, "  %s\n", err);
    json_decref(arr);
    CHECK_STR(json_string_value(json_object_get(m, "type")), "flex");
    const char *alt = json_string_value(json_object_get(m, "altText"));
    CHECK(alt && drive2_line_utf16_length(alt) >= 1 &&
          drive2_line_utf16_length(alt) <= DRIVE2_LINE_ALT_TEXT_MAX);
    json_t *b = json_object_get(m, "contents");
    CHECK_STR(json_string_value(json_object_get(b, "type")), "bubble");
    CHECK(json_is_object(json_object_get(b, "body")));
}

static void test_flex_notices(void) {
    drive2_flex_file_t f = {.file_id = "3f0c2a4e-0000-4000-8000-000000000001",
                            .original_name = "IMG_0001.JPG",
                            .ai_filename = "photo-2024-05-01-canon.jpg",
                            .ai_summary = "A landscape photo of a harbour at dusk.",
                            .ai_tags_json = "[\"photo\", \"harbour\", \"dusk\"]",
                            .status = "completed",
                            .mime_type = "image/jpeg",
                            .size = 2500000,
                            .hero_url = "https://cdn.example.com/thumbnails/f1.jpg"};
    json_t *m = drive2_flex_processing_complete(&f);
    check_message(m);
    json_t *b = json_object_get(m, "contents");
    CHECK_STR(json_string_value(json_object_get(json_object_get(b, "hero"), "url")),
              "https://cdn.example.com/thumbnails/f1.jpg");
    CHECK(contains_text(b, "photo-2024-05-01-canon.jpg"));
    CHECK(contains_text(b, "harbour at dusk"));
    CHECK(contains_text(b, "photo, harbour, dusk"));
    CHECK(contains_text(b, "completed"));
    CHECK(strstr(json_string_value(json_object_get(m, "altText")), "photo-2024-05-01") != NULL);
    json_decref(m);

    /* no hero without a usable URL */
    f.hero_url = NULL;
    m = drive2_flex_processing_complete(&f);
    CHECK(json_object_get(json_object_get(m, "contents"), "hero") == NULL);
    json_decref(m);

    /* hostile input: huge summary, many long tags, control characters,
     * broken UTF-8, no names at all -- still within LINE's limits */
    size_t big = 200000;
    char *huge = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        huge[i] = (char)("ab\x01\xff日"[i % 6]);
    huge[big] = '\0';
    json_t *tags = json_array();
    for (int i = 0; i < 500; i++)
        json_array_append_new(tags, json_string("a-very-long-tag-name-that-goes-on-and-on"));
    char *tags_text = json_dumps(tags, 0);
    json_decref(tags);
    drive2_flex_file_t h = {.file_id = "x",
                            .ai_summary = huge,
                            .ai_tags_json = tags_text,
                            .ai_filename = huge,
                            .original_name = huge,
                            .error = huge,
                            .size = -5};
    m = drive2_flex_processing_complete(&h);
    check_message(m);
    json_decref(m);
    m = drive2_flex_processing_failed(&h);
    check_message(m);
    json_decref(m);
    drive2_flex_file_t empty = {0};
    m = drive2_flex_processing_complete(&empty);
    check_message(m);
    json_decref(m);
    m = drive2_flex_processing_failed(&empty);
    check_message(m);
    json_decref(m);
    free(huge);
    free(tags_text);

    drive2_flex_file_t failed = {.file_id = "f-9",
                                 .original_name = "report.pdf",
                                 .status = "failed",
                                 .error = "extract: not a valid PDF: PDF document is damaged"};
    m = drive2_flex_processing_failed(&failed);
    check_message(m);
    b = json_object_get(m, "contents");
    CHECK(contains_text(b, "not a valid PDF"));
    CHECK(contains_text(b, "drive2 reprocess f-9"));
    CHECK(contains_text(b, "failed"));
    json_decref(m);

    m = drive2_flex_quota_alert("alice", 8589934592LL, 10737418240LL, 80);
    check_message(m);
    CHECK(contains_text(m, "80%"));
    CHECK(contains_text(m, "8.0 GB of 10.0 GB"));
    json_decref(m);

    drive2_flex_count_t counts[] = {{"completed", 3, 3000}, {"failed", 1, 1000}};
    m = drive2_flex_daily_summary("alice", "2026-11-28", counts, 2);
    check_message(m);
    CHECK(contains_text(m, "4 files, 3.9 KB"));
    CHECK(contains_text(m, "completed"));
    json_decref(m);
}

static void test_check_messages(void) {
    char err[256];
    json_t *m = json_loads("[]", 0, NULL);
    CHECK_INT(drive2_line_check_messages(m, err, sizeof err), ZT_ERR_INVALID);
    json_decref(m);
    m = json_loads("[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"a\"},"
                   "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"a\"},"
                   "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"a\"}]",
                   0, NULL);
    CHECK_INT(drive2_line_check_messages(m, err, sizeof err), ZT_ERR_INVALID);
    json_decref(m);
    /* altText over 400 characters */
    char alt[402];
    memset(alt, 'x', 401);
    alt[401] = '\0';
    m = json_pack("[{s:s, s:s, s:{s:s, s:{s:s, s:s, s:[]}}}]", "type", "flex", "altText", alt,
                  "contents", "type", "bubble", "body", "type", "box", "layout", "vertical",
                  "contents");
    CHECK_INT(drive2_line_check_messages(m, err, sizeof err), ZT_ERR_INVALID);
    CHECK(strstr(err, "altText") != NULL);
    json_decref(m);
    /* a bubble over 30 KB */
    char *big = malloc(40000);
    memset(big, 'y', 39999);
    big[39999] = '\0';
    m = json_pack("[{s:s, s:s, s:{s:s, s:{s:s, s:s, s:[{s:s, s:s}]}}}]", "type", "flex", "altText",
                  "a", "contents", "type", "bubble", "body", "type", "box", "layout", "vertical",
                  "contents", "type", "text", "text", big);
    CHECK_INT(drive2_line_check_messages(m, err, sizeof err), ZT_ERR_INVALID);
    CHECK(strstr(err, "bytes") != NULL);
    json_decref(m);
    free(big);
    /* an http image */
    m = json_pack("[{s:s, s:s, s:{s:s, s:{s:s, s:s}}}]", "type", "flex", "altText", "a", "contents",
                  "type", "bubble", "hero", "type", "image", "url",
                  "http://insecure.example.com/a.jpg");
    CHECK_INT(drive2_line_check_messages(m, err, sizeof err), ZT_ERR_INVALID);
    CHECK(strstr(err, "https") != NULL);
    json_decref(m);
    m = json_loads("[{\"type\":\"sticker\"}]", 0, NULL);
    CHECK_INT(drive2_line_check_messages(m, err, sizeof err), ZT_ERR_INVALID);
    json_decref(m);
}

/* A client needs the token; push refuses bad ids and keys before sending. */
static void test_line_client(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    char err[256] = "";
    unsetenv(DRIVE2_LINE_TOKEN);
    unsetenv(DRIVE2_LINE_TOKEN "_FILE");
    CHECK(!drive2_line_configured());
    CHECK(drive2_line_new(&c, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "token") != NULL);
    setenv(DRIVE2_LINE_TOKEN, "sekrit-token-value", 1);
    CHECK(drive2_line_configured());
    /* nothing listens on port 9 of loopback: pushes that pass the checks fail fast */
    snprintf(c.line_api_base_url, sizeof c.line_api_base_url, "http://127.0.0.1:9/");
    drive2_http_options_t ho;
    drive2_http_options_default(&ho);
    ho.max_attempts = 1;
    drive2_line_t *line = drive2_line_new(&c, &ho, err, sizeof err);
    CHECK(line != NULL);
    drive2_flex_file_t f = {.file_id = "f1", .original_name = "a.txt"};
    json_t *msgs = json_pack("[o]", drive2_flex_processing_complete(&f));
    char key[37];
    drive2_line_retry_key("k", key);
    drive2_line_result_t r;
    CHECK_INT(drive2_line_push(line, "not a user", msgs, key, &r, err, sizeof err), ZT_ERR_INVALID);
    CHECK_INT(drive2_line_push(line, "U0123456789abcdef0123456789abcdef", msgs, "not-a-uuid", &r,
                               err, sizeof err),
              ZT_ERR_INVALID);
    int rc =
        drive2_line_push(line, "U0123456789abcdef0123456789abcdef", msgs, key, &r, err, sizeof err);
    CHECK(rc == ZT_ERR_IO || rc == ZT_ERR_TIMEOUT);
    fprintf(stderr, "  no server: %s\n", err);
    CHECK(strstr(err, "sekrit") == NULL); /* the token never shows */
    json_decref(msgs);
    drive2_line_destroy(&line);
    CHECK(line == NULL);
    snprintf(c.line_api_base_url, sizeof c.line_api_base_url, "ftp://example.com");
    CHECK(drive2_line_new(&c, NULL, err, sizeof err) == NULL);
    unsetenv(DRIVE2_LINE_TOKEN);
}

static void test_outbox(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    snprintf(c.drive2_data_dir, sizeof c.drive2_data_dir, "%s/data", tmpdir);
    unsetenv(DRIVE2_LINE_TOKEN);
    char err[256] = "";
    json_t *list = NULL;
    CHECK_INT(drive2_outbox_list(&c, NULL, 0, &list, err, sizeof err), 0);
    CHECK_INT(json_array_size(list), 0); /* no outbox yet */
    json_decref(list);

    drive2_notifier_t *n = drive2_notifier_new(&c, err, sizeof err);
    CHECK(n != NULL);
    CHECK_STR(drive2_notifier_kind(n), "outbox");
    drive2_flex_file_t f = {.file_id = "f1", .original_name = "a.txt", .status = "completed"};
    json_t *m = drive2_flex_processing_complete(&f);
    drive2_notice_t notice = {"processing_complete", "alice", NULL, "f1", "complete:t1"};
    json_t *receipt = NULL;
    CHECK_INT(drive2_notifier_send(n, &notice, m, &receipt, err, sizeof err), 0);
    CHECK(json_is_true(json_object_get(receipt, "delivered")));
    CHECK(json_is_false(json_object_get(receipt, "duplicate")));
    CHECK_STR(json_string_value(json_object_get(receipt, "channel")), "outbox");
    json_decref(receipt);
    /* the same notice again (a retried task): kept once */
    CHECK_INT(drive2_notifier_send(n, &notice, m, &receipt, err, sizeof err), 0);
    CHECK(json_is_true(json_object_get(receipt, "duplicate")));
    json_decref(receipt);
    drive2_notice_t other = {"processing_complete", "bob", "Uabc", "f2", "complete:t2"};
    CHECK_INT(drive2_notifier_send(n, &other, m, NULL, err, sizeof err), 0);
    json_decref(m);

    /* several processes appending at once: every line whole */
    for (int p = 0; p < 4; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            drive2_notifier_t *cn = drive2_notifier_new(&c, err, sizeof err);
            json_t *cm = drive2_flex_quota_alert("carol", 85, 100, 80);
            for (int i = 0; i < 25; i++) {
                char key[64];
                snprintf(key, sizeof key, "quota:%d:%d", p, i);
                drive2_notice_t q = {"storage_quota_alert", "carol", NULL, NULL, key};
                if (drive2_notifier_send(cn, &q, cm, NULL, err, sizeof err) != 0)
                    _exit(1);
            }
            json_decref(cm);
            drive2_notifier_destroy(&cn);
            _exit(0);
        }
    }
    int ok = 0;
    for (int p = 0; p < 4; p++) {
        int st = 0;
        if (wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
    }
    CHECK_INT(ok, 4);

    CHECK_INT(drive2_outbox_list(&c, NULL, 0, &list, err, sizeof err), 0);
    CHECK_INT(json_array_size(list), 102);
    json_t *first = json_array_get(list, 0);
    CHECK_STR(json_string_value(json_object_get(first, "kind")), "processing_complete");
    CHECK_STR(json_string_value(json_object_get(first, "user_id")), "alice");
    CHECK(json_is_null(json_object_get(first, "to")));
    CHECK_STR(json_string_value(json_object_get(first, "file_id")), "f1");
    CHECK_STR(json_string_value(json_object_get(json_object_get(first, "message"), "type")),
              "flex");
    char key[37];
    drive2_line_retry_key("complete:t1", key);
    CHECK_STR(json_string_value(json_object_get(first, "retry_key")), key);
    json_decref(list);
    CHECK_INT(drive2_outbox_list(&c, "bob", 0, &list, err, sizeof err), 0);
    CHECK_INT(json_array_size(list), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "to")), "Uabc");
    json_decref(list);
    CHECK_INT(drive2_outbox_list(&c, NULL, 5, &list, err, sizeof err), 0);
    CHECK_INT(json_array_size(list), 5);
    json_decref(list);
    drive2_notifier_destroy(&n);

    /* with a token, a user without a LINE id is skipped, not an error */
    setenv(DRIVE2_LINE_TOKEN, "t", 1);
    snprintf(c.line_api_base_url, sizeof c.line_api_base_url, "http://127.0.0.1:9");
    n = drive2_notifier_new(&c, err, sizeof err);
    CHECK(n != NULL);
    CHECK_STR(drive2_notifier_kind(n), "line");
    m = drive2_flex_processing_complete(&f);
    CHECK_INT(drive2_notifier_send(n, &notice, m, &receipt, err, sizeof err), 0);
    CHECK(json_is_string(json_object_get(receipt, "skipped")));
    CHECK(json_is_false(json_object_get(receipt, "delivered")));
    json_decref(receipt);
    json_decref(m);
    drive2_notifier_destroy(&n);
    unsetenv(DRIVE2_LINE_TOKEN);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/zt-line-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    zt_log_setup("test_line", ZT_LOG_WARNING, NULL); /* the outbox logs each notice at info */
    RUN(test_utf16_and_keys);
    RUN(test_clip);
    RUN(test_hero_url);
    RUN(test_flex_notices);
    RUN(test_check_messages);
    RUN(test_line_client);
    RUN(test_outbox);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return zt_test_summary();
}
