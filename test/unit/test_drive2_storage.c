/* test_drive2_storage: object key validation (the one gate against path
 * traversal for both backends), the local backend's round trip in a
 * temporary folder, and the Qdrant point id derived from a file id. The S3
 * backend is tested against a real server in test_drive2_services.py. */
#include "qdrant.h"
#include "storage.h"
#include "zt_error.h"
#include "zt_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_key_validation(void) {
    const char *good[] = {
        "a",        "a/b/c.txt",  "users/42/Report Q3.pdf", "ünï/文件 €.txt", "a..b", ".hidden",
        "x/.y/..z", "k+=&?#%.bin"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[128];
        int ok = drive2_storage_key_valid(good[i], why, sizeof why);
        if (!ok)
            fprintf(stderr, "  refused %s: %s\n", good[i], why);
        CHECK(ok);
    }
    char long_key[1100];
    memset(long_key, 'x', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const char *bad[] = {"",
                         "..",
                         "../a",
                         "a/..",
                         "a/../b",
                         ".",
                         "./a",
                         "a/./b",
                         "/abs",
                         "a//b",
                         "a/",
                         "ctl\x01",
                         "del\x7f",
                         "tab\tkey",
                         "back\\slash",
                         "bad\xff\xfeutf8",
                         "overlong\xc0\xaf",
                         long_key};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[128] = "";
        CHECK(!drive2_storage_key_valid(bad[i], why, sizeof why));
        CHECK(why[0] != '\0');
    }
    CHECK(!drive2_storage_key_valid(NULL, NULL, 0));
}

static void test_local_round_trip(void) {
    char dir[] = "/tmp/zt-storage-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    zt_config_t config;
    zt_config_defaults(&config);
    snprintf(config.drive2_data_dir, sizeof config.drive2_data_dir, "%s", dir);
    config.upload_max_bytes = 16;
    char err[256] = "";
    drive2_storage_t *st = drive2_storage_new(&config, err, sizeof err);
    CHECK(st != NULL);
    if (!st)
        return;
    CHECK_STR(drive2_storage_kind(st), "local");
    CHECK_INT(drive2_storage_put(st, "d/e/f.txt", "hello", 5, NULL, err, sizeof err), 0);
    unsigned char *data = NULL;
    size_t len = 0;
    CHECK_INT(drive2_storage_get(st, "d/e/f.txt", &data, &len, err, sizeof err), 0);
    CHECK_INT(len, 5);
    CHECK(data && memcmp(data, "hello", 5) == 0 && data[5] == '\0');
    free(data);
    /* over upload_max_bytes */
    CHECK_INT(drive2_storage_put(st, "big", "0123456789abcdefXYZ", 19, NULL, err, sizeof err),
              ZT_ERR_TOO_LARGE);
    CHECK_INT(drive2_storage_get(st, "nope/x", &data, &len, err, sizeof err), ZT_ERR_NOT_FOUND);
    CHECK_INT(drive2_storage_get(st, "d/e/missing", &data, &len, err, sizeof err),
              ZT_ERR_NOT_FOUND);
    CHECK(data == NULL);
    CHECK_INT(drive2_storage_put(st, "../x", "v", 1, NULL, err, sizeof err), ZT_ERR_INVALID);
    CHECK(strstr(err, "refused object key") != NULL);
    char **keys;
    size_t count;
    CHECK_INT(drive2_storage_put(st, "d/a.txt", "1", 1, NULL, err, sizeof err), 0);
    CHECK_INT(drive2_storage_list(st, "d/", 10, &keys, &count, err, sizeof err), 0);
    CHECK_INT(count, 2);
    if (count == 2) {
        CHECK_STR(keys[0], "d/a.txt");
        CHECK_STR(keys[1], "d/e/f.txt");
    }
    drive2_storage_keys_free(keys, count);
    CHECK_INT(drive2_storage_list(st, "", 1, &keys, &count, err, sizeof err), 0);
    CHECK_INT(count, 1);
    drive2_storage_keys_free(keys, count);
    CHECK_INT(drive2_storage_delete(st, "d/e/f.txt", err, sizeof err), 0);
    CHECK_INT(drive2_storage_delete(st, "d/e/f.txt", err, sizeof err), 0);
    CHECK_INT(drive2_storage_get(st, "d/e/f.txt", &data, &len, err, sizeof err), ZT_ERR_NOT_FOUND);
    drive2_storage_destroy(&st);
    CHECK(st == NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

static void test_bad_settings(void) {
    zt_config_t config;
    zt_config_defaults(&config);
    char err[256];
    snprintf(config.storage_url, sizeof config.storage_url, "s3://Bad_Bucket");
    CHECK(drive2_storage_new(&config, err, sizeof err) == NULL);
    CHECK(strstr(err, "bucket") != NULL);
    snprintf(config.storage_url, sizeof config.storage_url, "s3://ok-bucket");
    config.s3_access_key_id[0] = '\0';
    CHECK(drive2_storage_new(&config, err, sizeof err) == NULL);
    CHECK(strstr(err, "AWS_ACCESS_KEY_ID") != NULL);
    snprintf(config.storage_url, sizeof config.storage_url, "file://relative/dir");
    CHECK(drive2_storage_new(&config, err, sizeof err) == NULL);
}

static void test_qdrant_point_id(void) {
    char a[37], b[37], c[37];
    drive2_qdrant_point_id("file-1", a);
    drive2_qdrant_point_id("file-1", b);
    drive2_qdrant_point_id("file-2", c);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK_INT(strlen(a), 36);
    CHECK(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    CHECK(a[14] == '5');                  /* version 5 */
    CHECK(strchr("89ab", a[19]) != NULL); /* RFC 4122 variant */
}

int main(void) {
    RUN(test_key_validation);
    RUN(test_local_round_trip);
    RUN(test_bad_settings);
    RUN(test_qdrant_point_id);
    return zt_test_summary();
}
