/* Unit tests for worker/drive2/catalog: the same suite against SQLite (a
 * temporary DATA_DIR) and a real PostgreSQL 15 server this test starts on a
 * free loopback port (initdb + pg_ctl as user postgres, private socket
 * folder, stopped at exit). Without root or PostgreSQL the PostgreSQL part
 * is skipped, unless ZT_REQUIRE_POSTGRES=1 makes that a failure. */
#include "zt_test.h"

#include "catalog.h"
#include "zt_config.h"
#include "zt_error.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

static char g_tmp[256];
static char g_pgdir[300];
static int g_pg_started;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void pg_stop(void) {
    if (!g_pg_started)
        return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "runuser -u postgres -- " PG_BIN "/pg_ctl -D %s/data -m fast -w stop >/dev/null 2>&1",
             g_pgdir);
    run(cmd);
    g_pg_started = 0;
}

static void cleanup(void) {
    pg_stop();
    if (g_tmp[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
        run(cmd);
    }
}

/* Starts PostgreSQL; fills url. Returns 0, 1 to skip, -1 on failure. */
static int pg_start(char *url, size_t size) {
    if (geteuid() != 0 || access(PG_BIN "/initdb", X_OK) != 0)
        return 1;
    snprintf(g_pgdir, sizeof g_pgdir, "%s/pg", g_tmp);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/data %s/sock && chown -R postgres %s && chmod 755 %s && "
             "runuser -u postgres -- " PG_BIN "/initdb -D %s/data -U postgres --auth=trust "
             "-E UTF8 --locale=C.UTF-8 >%s/initdb.log 2>&1",
             g_pgdir, g_pgdir, g_pgdir, g_tmp, g_pgdir, g_tmp);
    if (run(cmd) != 0) {
        fprintf(stderr, "initdb failed (see %s/initdb.log)\n", g_tmp);
        return -1;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        int port = free_port();
        snprintf(cmd, sizeof cmd,
                 "runuser -u postgres -- " PG_BIN "/pg_ctl -D %s/data -l %s/data/server.log "
                 "-o \"-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s/sock "
                 "-c fsync=off\" -w -t 30 start >/dev/null 2>&1",
                 g_pgdir, g_pgdir, port, g_pgdir);
        if (run(cmd) == 0) {
            g_pg_started = 1;
            snprintf(url, size, "postgresql://postgres@127.0.0.1:%d/postgres", port);
            return 0;
        }
    }
    fprintf(stderr, "pg_ctl start failed (see %s/data/server.log)\n", g_pgdir);
    return -1;
}

static drive2_analysis_t analysis(const char *name, const char *summary) {
    drive2_analysis_t a;
    memset(&a, 0, sizeof a);
    a.filename = (char *)name;
    a.summary = (char *)summary;
    static char *tags[] = {"report", "q3 \"sales\""};
    a.tags = tags;
    a.tag_count = 2;
    return a;
}

static drive2_new_file_t new_file(const char *id, const char *owner, int64_t size) {
    drive2_new_file_t f = {id,   owner,          "Report Q3.txt", "text/plain",
                           size, "e3b0c44298fc", "objects/key",   NULL};
    return f;
}

/* The whole suite against one configured backend. */
static void suite(const zt_config_t *config, const char *backend) {
    fprintf(stderr, "--- %s\n", backend);
    char err[512] = "";
    drive2_catalog_t *cat = drive2_catalog_new(config, err, sizeof err);
    CHECK(cat != NULL);
    if (!cat) {
        fprintf(stderr, "open: %s\n", err);
        return;
    }
    CHECK_STR(drive2_catalog_backend(cat), backend);
    int version = 0;
    CHECK_INT(drive2_catalog_schema_version(cat, &version, err, sizeof err), 0);
    CHECK_INT(version, 2); /* the number of worker/drive2/migrations/NNNN_*.sql */
    /* Opening again finds the schema in place. */
    drive2_catalog_t *again = drive2_catalog_new(config, err, sizeof err);
    CHECK(again != NULL);
    drive2_catalog_destroy(&again);
    CHECK(again == NULL);
    drive2_catalog_destroy(&again);

    /* users and quota */
    CHECK_INT(drive2_catalog_put_user(cat, "alice", 1000, "U123", err, sizeof err), 0);
    drive2_user_t u;
    CHECK_INT(drive2_catalog_get_user(cat, "alice", &u, err, sizeof err), 0);
    CHECK_STR(u.id, "alice");
    CHECK_INT(u.quota_bytes, 1000);
    CHECK_STR(u.line_user_id, "U123");
    CHECK(u.created_at && strlen(u.created_at) == 27);
    drive2_user_clear(&u);
    CHECK_INT(drive2_catalog_get_user(cat, "nobody", &u, err, sizeof err), ZT_ERR_NOT_FOUND);

    drive2_new_file_t f1 = new_file("f1", "alice", 600);
    CHECK_INT(drive2_catalog_insert_file(cat, &f1, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_insert_file(cat, &f1, err, sizeof err), ZT_ERR_REJECTED);
    drive2_new_file_t f2 = new_file("f2", "alice", 500);
    CHECK_INT(drive2_catalog_insert_file(cat, &f2, err, sizeof err), ZT_ERR_TOO_LARGE);
    CHECK(strstr(err, "quota") != NULL);
    int64_t used = 0, quota = 0;
    CHECK_INT(drive2_catalog_user_usage(cat, "alice", &used, &quota, err, sizeof err), 0);
    CHECK_INT(used, 600);
    CHECK_INT(quota, 1000);
    /* an unknown owner is created with the default quota */
    drive2_new_file_t f3 = new_file("f3", "bob", 10);
    f3.task_id = "task-3";
    CHECK_INT(drive2_catalog_insert_file(cat, &f3, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_user_usage(cat, "bob", &used, &quota, err, sizeof err), 0);
    CHECK_INT(quota, DRIVE2_DEFAULT_QUOTA_BYTES);
    drive2_new_file_t bad = new_file("", "bob", 10);
    CHECK_INT(drive2_catalog_insert_file(cat, &bad, err, sizeof err), ZT_ERR_INVALID);

    /* generate_ai_metadata's write: any status, the status unchanged */
    drive2_analysis_t early = analysis("early.txt", "Early.");
    CHECK_INT(drive2_catalog_update_ai(cat, "f1", &early, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_update_ai(cat, "nope", &early, err, sizeof err), ZT_ERR_NOT_FOUND);

    /* a file's life: pending -> processing -> completed */
    drive2_file_t f;
    CHECK_INT(drive2_catalog_get_file(cat, "f1", &f, err, sizeof err), 0);
    CHECK_STR(f.processing_status, "pending");
    CHECK_STR(f.original_name, "Report Q3.txt");
    CHECK_INT(f.size, 600);
    CHECK_STR(f.ai_filename, "early.txt");
    CHECK(f.task_id == NULL && f.error == NULL);
    CHECK_INT(f.attempts, 0);
    drive2_file_clear(&f);
    CHECK_INT(drive2_catalog_get_file(cat, "nope", &f, err, sizeof err), ZT_ERR_NOT_FOUND);
    CHECK(strstr(err, "nope") != NULL);

    CHECK_INT(drive2_catalog_set_task(cat, "f1", "task-1", err, sizeof err), 0);
    CHECK_INT(drive2_catalog_start_processing(cat, "f1", "task-1", err, sizeof err), 0);
    /* a redelivery starts again */
    CHECK_INT(drive2_catalog_start_processing(cat, "f1", "task-1", err, sizeof err), 0);
    CHECK_INT(drive2_catalog_note_error(cat, "f1", "storage timed out", err, sizeof err), 0);
    drive2_analysis_t a = analysis("q3-sales-report.txt", "Sales grew.");
    CHECK_INT(drive2_catalog_save_results(cat, "f1", &a, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_get_file(cat, "f1", &f, err, sizeof err), 0);
    CHECK_STR(f.processing_status, "processing");
    CHECK_STR(f.ai_filename, "q3-sales-report.txt");
    CHECK_STR(f.error, "storage timed out");
    CHECK_INT(f.attempts, 2);
    CHECK(f.processing_started_at != NULL && f.processed_at == NULL);
    drive2_file_clear(&f);
    CHECK_INT(drive2_catalog_complete(cat, "f1", &a, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_get_file(cat, "f1", &f, err, sizeof err), 0);
    CHECK_STR(f.processing_status, "completed");
    CHECK_STR(f.ai_summary, "Sales grew.");
    CHECK_STR(f.ai_tags, "[\"report\",\"q3 \\\"sales\\\"\"]");
    CHECK(f.error == NULL && f.processed_at != NULL);
    CHECK_STR(f.task_id, "task-1");
    drive2_file_clear(&f);
    /* completed is final for a redelivered run and for failure */
    CHECK_INT(drive2_catalog_start_processing(cat, "f1", "task-1", err, sizeof err),
              ZT_ERR_REJECTED);
    CHECK(strstr(err, "completed") != NULL);
    CHECK_INT(drive2_catalog_complete(cat, "f1", &a, err, sizeof err), ZT_ERR_REJECTED);
    CHECK_INT(drive2_catalog_fail(cat, "f1", "late", err, sizeof err), ZT_ERR_REJECTED);
    CHECK_INT(drive2_catalog_start_processing(cat, "nope", "t", err, sizeof err), ZT_ERR_NOT_FOUND);
    /* reset: completed only with force */
    CHECK_INT(drive2_catalog_reset(cat, "f1", false, err, sizeof err), ZT_ERR_REJECTED);
    CHECK_INT(drive2_catalog_reset(cat, "f1", true, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_get_file(cat, "f1", &f, err, sizeof err), 0);
    CHECK_STR(f.processing_status, "pending");
    CHECK(f.ai_filename == NULL && f.task_id == NULL && f.processed_at == NULL);
    CHECK_INT(f.attempts, 0);
    drive2_file_clear(&f);

    /* failure, then reprocess */
    CHECK_INT(drive2_catalog_start_processing(cat, "f3", "task-3", err, sizeof err), 0);
    CHECK_INT(drive2_catalog_fail(cat, "f3", "not a PDF: bad header", err, sizeof err), 0);
    CHECK_INT(drive2_catalog_fail(cat, "f3", "again", err, sizeof err), ZT_ERR_REJECTED);
    CHECK_INT(drive2_catalog_complete(cat, "f3", &a, err, sizeof err), ZT_ERR_REJECTED);
    CHECK_INT(drive2_catalog_get_file(cat, "f3", &f, err, sizeof err), 0);
    CHECK_STR(f.processing_status, "failed");
    CHECK_STR(f.error, "not a PDF: bad header");
    drive2_file_clear(&f);
    CHECK_INT(drive2_catalog_reset(cat, "f3", false, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_start_processing(cat, "f3", "task-3b", err, sizeof err), 0);

    /* stuck rows: f3 is processing since a moment ago */
    char **ids = NULL;
    size_t n = 0;
    CHECK_INT(drive2_catalog_fail_stuck(cat, 3600, "stuck", &ids, &n, err, sizeof err), 0);
    CHECK_INT(n, 0);
    drive2_ids_free(ids, n);
    sleep_ms(30);
    CHECK_INT(drive2_catalog_list_stuck(cat, 0.01, 10, &ids, &n, err, sizeof err), 0);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(ids[0], "f3");
    drive2_ids_free(ids, n);
    CHECK_INT(drive2_catalog_fail_stuck(cat, 0.01, "stuck in processing for over 0.01 s", &ids, &n,
                                        err, sizeof err),
              0);
    CHECK_INT(n, 1);
    drive2_ids_free(ids, n);
    CHECK_INT(drive2_catalog_get_file(cat, "f3", &f, err, sizeof err), 0);
    CHECK_STR(f.processing_status, "failed");
    CHECK_STR(f.error, "stuck in processing for over 0.01 s");
    drive2_file_clear(&f);
    CHECK_INT(drive2_catalog_set_thumbnail(cat, "f3", "thumbnails/f3.jpg", err, sizeof err), 0);

    /* embeddings: one per file, cosine top-k, other dims skipped */
    float e1[4] = {1, 0, 0, 0}, e2[4] = {0.7f, 0.7f, 0, 0}, e3[4] = {0, 0, 1, 0};
    float e3b[4] = {0, 1, 0, 0}, odd[3] = {1, 0, 0};
    CHECK_INT(drive2_catalog_put_embedding(cat, "f1", e1, 4, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_put_embedding(cat, "f2", e2, 4, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_put_embedding(cat, "f3", e3, 4, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_put_embedding(cat, "f3", e3b, 4, err, sizeof err), 0); /* replaces */
    CHECK_INT(drive2_catalog_put_embedding(cat, "x", odd, 3, err, sizeof err), 0);
    float nan_v[2] = {NAN, 1};
    CHECK_INT(drive2_catalog_put_embedding(cat, "y", nan_v, 2, err, sizeof err), ZT_ERR_INVALID);
    CHECK_INT(drive2_catalog_put_embedding(cat, "y", e1, 0, err, sizeof err), ZT_ERR_INVALID);
    int64_t count = 0;
    CHECK_INT(drive2_catalog_count_embeddings(cat, NULL, &count, err, sizeof err), 0);
    CHECK_INT(count, 4);
    CHECK_INT(drive2_catalog_count_embeddings(cat, "f3", &count, err, sizeof err), 0);
    CHECK_INT(count, 1);
    drive2_hit_t hits[5];
    size_t found = 0;
    float q[4] = {2, 0.1f, 0, 0};
    CHECK_INT(drive2_catalog_search_embeddings(cat, q, 4, hits, 2, &found, err, sizeof err), 0);
    CHECK_INT(found, 2);
    if (found == 2) {
        CHECK_STR(hits[0].file_id, "f1");
        CHECK_STR(hits[1].file_id, "f2");
        CHECK(hits[0].score > 0.99 && hits[0].score <= 1.0001);
        CHECK(hits[1].score > 0.7 && hits[1].score < 0.8);
    }
    CHECK_INT(drive2_catalog_search_embeddings(cat, q, 4, hits, 5, &found, err, sizeof err), 0);
    CHECK_INT(found, 3);
    if (found == 3) {
        CHECK_STR(hits[2].file_id, "f3"); /* the replaced vector (0,1,0,0) */
        CHECK(hits[2].score > 0.04 && hits[2].score < 0.06);
    }
    float zero[4] = {0, 0, 0, 0};
    CHECK_INT(drive2_catalog_search_embeddings(cat, zero, 4, hits, 2, &found, err, sizeof err),
              ZT_ERR_INVALID);
    CHECK_INT(drive2_catalog_delete_embedding(cat, "x", err, sizeof err), 0);
    CHECK_INT(drive2_catalog_delete_file(cat, "f3", err, sizeof err), 0);
    CHECK_INT(drive2_catalog_count_embeddings(cat, NULL, &count, err, sizeof err), 0);
    CHECK_INT(count, 2);
    CHECK_INT(drive2_catalog_delete_file(cat, "f3", err, sizeof err), ZT_ERR_NOT_FOUND);

    /* quota alerts: one claim per crossing, released when usage falls */
    bool claimed = false;
    CHECK_INT(drive2_catalog_quota_alert_claim(cat, "alice", 80, &claimed, err, sizeof err), 0);
    CHECK(claimed);
    CHECK_INT(drive2_catalog_quota_alert_claim(cat, "alice", 80, &claimed, err, sizeof err), 0);
    CHECK(!claimed);
    CHECK_INT(drive2_catalog_quota_alert_claim(cat, "alice", 95, &claimed, err, sizeof err), 0);
    CHECK(claimed);
    CHECK_INT(drive2_catalog_quota_alert_claim(cat, "alice", 0, &claimed, err, sizeof err),
              ZT_ERR_INVALID);
    CHECK_INT(drive2_catalog_quota_alert_release(cat, "alice", 90, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_quota_alert_claim(cat, "alice", 95, &claimed, err, sizeof err), 0);
    CHECK(claimed); /* 95 was released: a new crossing */
    CHECK_INT(drive2_catalog_quota_alert_claim(cat, "alice", 80, &claimed, err, sizeof err), 0);
    CHECK(!claimed); /* 80 was kept */

    /* activity since a time, per owner and status */
    drive2_activity_t *act = NULL;
    size_t nact = 0;
    CHECK_INT(
        drive2_catalog_activity(cat, "2000-01-01T00:00:00.000000Z", &act, &nact, err, sizeof err),
        0);
    CHECK_INT(nact, 1); /* f1 (pending after the forced reset); f3 was deleted */
    if (nact == 1) {
        CHECK_STR(act[0].owner, "alice");
        CHECK_STR(act[0].status, "pending");
        CHECK_INT(act[0].files, 1);
        CHECK_INT(act[0].bytes, 600);
    }
    drive2_activity_free(act, nact);
    CHECK_INT(
        drive2_catalog_activity(cat, "2999-01-01T00:00:00.000000Z", &act, &nact, err, sizeof err),
        0);
    CHECK_INT(nact, 0);
    drive2_activity_free(act, nact);

    /* hostile text goes in and out unchanged (parameters, not SQL text) */
    drive2_new_file_t h = new_file("h'; DROP TABLE files; --", "eve", 1);
    h.original_name = "x'); DELETE FROM users; -- \xc3\xa9.txt";
    CHECK_INT(drive2_catalog_insert_file(cat, &h, err, sizeof err), 0);
    CHECK_INT(drive2_catalog_get_file(cat, h.id, &f, err, sizeof err), 0);
    CHECK_STR(f.original_name, h.original_name);
    drive2_file_clear(&f);
    CHECK_INT(drive2_catalog_get_user(cat, "alice", &u, err, sizeof err), 0);
    drive2_user_clear(&u);
    drive2_catalog_destroy(&cat);
}

/* Several processes at once: opening (migrating) a fresh catalog and
 * writing to it. Every child must succeed (busy timeout, migration lock). */
static void concurrent(const zt_config_t *config, const char *backend) {
    fprintf(stderr, "--- %s, 4 processes\n", backend);
    enum { CHILDREN = 4, FILES = 25 };
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            char err[512];
            drive2_catalog_t *cat = drive2_catalog_new(config, err, sizeof err);
            if (!cat) {
                fprintf(stderr, "child %d: %s\n", c, err);
                _exit(1);
            }
            int bad = 0;
            for (int i = 0; i < FILES && !bad; i++) {
                char id[32];
                snprintf(id, sizeof id, "c%d-%d", c, i);
                drive2_new_file_t f = new_file(id, "shared-user", 1);
                float v[4] = {1, (float)c, (float)i, 0};
                if (drive2_catalog_insert_file(cat, &f, err, sizeof err) != 0 ||
                    drive2_catalog_start_processing(cat, id, "t", err, sizeof err) != 0 ||
                    drive2_catalog_put_embedding(cat, id, v, 4, err, sizeof err) != 0) {
                    fprintf(stderr, "child %d: %s\n", c, err);
                    bad = 1;
                }
            }
            drive2_catalog_destroy(&cat);
            _exit(bad);
        }
    }
    int ok = 0;
    for (int c = 0; c < CHILDREN; c++) {
        int status = 0;
        if (pids[c] > 0 && waitpid(pids[c], &status, 0) == pids[c] && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0)
            ok++;
    }
    CHECK_INT(ok, CHILDREN);
    char err[512];
    drive2_catalog_t *cat = drive2_catalog_new(config, err, sizeof err);
    CHECK(cat != NULL);
    if (!cat)
        return;
    int64_t used = 0, quota = 0;
    CHECK_INT(drive2_catalog_user_usage(cat, "shared-user", &used, &quota, err, sizeof err), 0);
    CHECK_INT(used, CHILDREN * FILES);
    drive2_catalog_destroy(&cat);
}

static void test_sqlite(void) {
    zt_config_t config;
    zt_config_defaults(&config);
    snprintf(config.drive2_data_dir, sizeof config.drive2_data_dir, "%s/data/nested", g_tmp);
    suite(&config, "sqlite");
    char path[512];
    snprintf(path, sizeof path, "%s/data/nested/catalog.db", g_tmp);
    CHECK(access(path, F_OK) == 0);

    /* sqlite:///PATH (SQLAlchemy's form: the path after the third slash) */
    snprintf(config.database_url, sizeof config.database_url, "sqlite:///%s/concurrent.db", g_tmp);
    concurrent(&config, "sqlite");
    snprintf(path, sizeof path, "%s/concurrent.db", g_tmp);
    CHECK(access(path, F_OK) == 0);
}

static void test_bad_urls(void) {
    zt_config_t config;
    zt_config_defaults(&config);
    char err[512] = "";
    snprintf(config.database_url, sizeof config.database_url, "mysql://u:hunter2@h/db");
    CHECK(drive2_catalog_new(&config, err, sizeof err) == NULL);
    CHECK(strstr(err, "mysql://u:***@h/db") != NULL);
    CHECK(strstr(err, "hunter2") == NULL);
    /* nothing listens on port 1: a clear error without the password */
    snprintf(config.database_url, sizeof config.database_url,
             "postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2");
    CHECK(drive2_catalog_new(&config, err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot connect to PostgreSQL") != NULL);
    CHECK(strstr(err, "hunter2") == NULL);
    /* a folder that cannot be made (a file is in the way; root could make
     * any other path) */
    char path[512];
    snprintf(path, sizeof path, "%s/afile", g_tmp);
    FILE *fp = fopen(path, "w");
    if (fp)
        fclose(fp);
    snprintf(config.database_url, sizeof config.database_url, "sqlite:///%s/afile/x.db", g_tmp);
    CHECK(drive2_catalog_new(&config, err, sizeof err) == NULL);
    CHECK(strstr(err, "afile") != NULL);
}

static void test_postgres(void) {
    char url[256];
    int rc = pg_start(url, sizeof url);
    if (rc == 1) {
        const char *req = getenv("ZT_REQUIRE_POSTGRES");
        fprintf(stderr, "PostgreSQL tests skipped (need root and %s)\n", PG_BIN);
        CHECK(!(req && strcmp(req, "1") == 0));
        return;
    }
    CHECK_INT(rc, 0);
    if (rc != 0)
        return;
    zt_config_t config;
    zt_config_defaults(&config);
    snprintf(config.database_url, sizeof config.database_url, "%s", url);
    suite(&config, "postgresql");
    /* a second database in the same server for the concurrent run */
    /* the port is between the last ':' and the '/' */
    char cmd[512], port[16];
    snprintf(port, sizeof port, "%s", strrchr(url, ':') + 1);
    *strchr(port, '/') = '\0';
    snprintf(cmd, sizeof cmd,
             "runuser -u postgres -- /usr/bin/psql -q -h 127.0.0.1 -p %s -U postgres -c "
             "'CREATE DATABASE conc' >/dev/null",
             port);
    CHECK_INT(run(cmd), 0);
    snprintf(config.database_url, sizeof config.database_url,
             "postgresql://postgres@127.0.0.1:%s/conc", port);
    concurrent(&config, "postgresql");
    pg_stop();
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/zt-catalog-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    RUN(test_sqlite);
    RUN(test_bad_urls);
    RUN(test_postgres);
    return zt_test_summary();
}
