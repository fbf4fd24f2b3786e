/* Unit tests for zt_config: defaults, file parsing with line-numbered errors,
 * and precedence (file < environment). */
#include "zt_config.h"
#include "zt_error.h"
#include "zt_test.h"

#include <stdlib.h>
#include <unistd.h>

static char *write_temp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/zt_config_test_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_defaults(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    CHECK(c.task_time_limit == 600);
    CHECK(c.task_soft_time_limit == 540);
    CHECK_INT(c.task_max_retries, 3);
    CHECK(c.task_default_retry_delay == 60);
    CHECK_INT(c.worker_prefetch_multiplier, 4);
    CHECK_INT(c.worker_max_tasks_per_child, 1000);
    CHECK_INT(c.result_expires, 86400);
    CHECK_STR(c.broker_url, "tcp://127.0.0.1:5555");
    CHECK_STR(c.result_backend, "redis://127.0.0.1:6379/1");
}

static void test_file(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    char reason[300] = "";
    char *path = write_temp("# worker settings\n[worker]\ntask_max_retries = 7\n"
                            "task_default_retry_delay = 0.5\nresult_backend = redis://h:1/2\n");
    CHECK_INT(zt_config_load_file(&c, path, reason, sizeof reason), 0);
    CHECK_INT(c.task_max_retries, 7);
    CHECK(c.task_default_retry_delay == 0.5);
    CHECK_STR(c.result_backend, "redis://h:1/2");
    unlink(path);
}

static void test_file_errors_name_line(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    char reason[300] = "";
    char *path = write_temp("task_max_retries = 2\n\nno_such_setting = 1\n");
    CHECK_INT(zt_config_load_file(&c, path, reason, sizeof reason), ZT_ERR_INVALID);
    CHECK(strstr(reason, ":3:") != NULL);
    CHECK(strstr(reason, "no_such_setting") != NULL);
    unlink(path);
    path = write_temp("worker_prefetch_multiplier = lots\n");
    CHECK_INT(zt_config_load_file(&c, path, reason, sizeof reason), ZT_ERR_INVALID);
    CHECK(strstr(reason, "worker_prefetch_multiplier") != NULL);
    unlink(path);
    CHECK_INT(zt_config_load_file(&c, "/nonexistent/zt.conf", reason, sizeof reason), ZT_ERR_IO);
}

static void test_precedence(void) {
    char *path = write_temp("broker_url = tcp://file:1\nresult_expires = 10\n");
    char arg[128];
    snprintf(arg, sizeof arg, "--config=%s", path);
    char *argv[] = {"prog", arg, NULL};
    setenv("ZMQ_BROKER_URL", "tcp://env:2", 1);
    zt_config_t c;
    char reason[300] = "";
    CHECK_INT(zt_config_load(&c, 2, argv, reason, sizeof reason), 0);
    CHECK_STR(c.broker_url, "tcp://env:2"); /* environment beats file */
    CHECK_INT(c.result_expires, 10);        /* file beats default */
    unsetenv("ZMQ_BROKER_URL");
    unlink(path);
}

static void test_set(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    char reason[200];
    CHECK_INT(zt_config_set(&c, "broker_liveness", "0", reason, sizeof reason), ZT_ERR_INVALID);
    CHECK_INT(zt_config_set(&c, "nope", "1", reason, sizeof reason), ZT_ERR_NOT_FOUND);
    CHECK_INT(zt_config_set(&c, "task_time_limit", "1.5", reason, sizeof reason), 0);
    CHECK(c.task_time_limit == 1.5);
}

/* Booleans take Celery's spellings (True/False) and the INI ones. */
static void test_bool(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    char reason[200];
    CHECK(c.result_extended); /* default on */
    CHECK_INT(zt_config_set(&c, "result_extended", "False", reason, sizeof reason), 0);
    CHECK(!c.result_extended);
    CHECK_INT(zt_config_set(&c, "result_extended", "yes", reason, sizeof reason), 0);
    CHECK(c.result_extended);
    CHECK_INT(zt_config_set(&c, "result_extended", "0", reason, sizeof reason), 0);
    CHECK(!c.result_extended);
    CHECK_INT(zt_config_set(&c, "result_extended", "maybe", reason, sizeof reason), ZT_ERR_INVALID);
    CHECK(strstr(reason, "result_extended") != NULL);
}

int main(void) {
    RUN(test_bool);
    RUN(test_defaults);
    RUN(test_file);
    RUN(test_file_errors_name_line);
    RUN(test_precedence);
    RUN(test_set);
    return zt_test_summary();
}
