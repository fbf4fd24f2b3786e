/* Unit tests for zt_secret: NAME wins over NAME_FILE, a file's trailing
 * newline is dropped, missing/unreadable/empty/oversized secrets are errors
 * whose reason never quotes the secret. */
#include "zt_error.h"
#include "zt_secret.h"
#include "zt_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void write_file(const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_env_wins(void) {
    char buf[64], why[128];
    write_file("from-file\n");
    setenv("ZT_T_KEY_FILE", path, 1);
    setenv("ZT_T_KEY", "from-env", 1);
    CHECK_INT(zt_secret_get("ZT_T_KEY", buf, sizeof buf, why, sizeof why), 0);
    CHECK(strcmp(buf, "from-env") == 0);
    unsetenv("ZT_T_KEY");
    CHECK_INT(zt_secret_get("ZT_T_KEY", buf, sizeof buf, why, sizeof why), 0);
    CHECK(strcmp(buf, "from-file") == 0);
    CHECK(zt_secret_present("ZT_T_KEY"));
    unsetenv("ZT_T_KEY_FILE");
}

static void test_errors(void) {
    char buf[16], why[128];
    CHECK(!zt_secret_present("ZT_T_NONE"));
    CHECK_INT(zt_secret_get("ZT_T_NONE", buf, sizeof buf, why, sizeof why), ZT_ERR_NOT_FOUND);
    CHECK(buf[0] == '\0');

    setenv("ZT_T_KEY_FILE", "/nonexistent/zt-secret", 1);
    CHECK_INT(zt_secret_get("ZT_T_KEY", buf, sizeof buf, why, sizeof why), ZT_ERR_IO);
    CHECK(strstr(why, "ZT_T_KEY_FILE") != NULL);

    setenv("ZT_T_KEY_FILE", path, 1);
    write_file("\n");
    CHECK_INT(zt_secret_get("ZT_T_KEY", buf, sizeof buf, why, sizeof why), ZT_ERR_INVALID);

    write_file("this-secret-is-far-too-long-for-the-buffer");
    CHECK_INT(zt_secret_get("ZT_T_KEY", buf, sizeof buf, why, sizeof why), ZT_ERR_INVALID);
    CHECK(buf[0] == '\0');
    CHECK(strstr(why, "this-secret") == NULL);

    setenv("ZT_T_KEY", "this-secret-is-far-too-long-for-the-buffer", 1);
    CHECK_INT(zt_secret_get("ZT_T_KEY", buf, sizeof buf, why, sizeof why), ZT_ERR_INVALID);
    CHECK(strstr(why, "this-secret") == NULL);
    unsetenv("ZT_T_KEY");
    unsetenv("ZT_T_KEY_FILE");
}

int main(void) {
    snprintf(path, sizeof path, "/tmp/zt-secret-%d", (int)getpid());
    RUN(test_env_wins);
    RUN(test_errors);
    unlink(path);
    return zt_test_summary();
}
