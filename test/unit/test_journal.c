/* Unit tests for broker/journal (the durability policy) on a temporary
 * directory: LSNs and durability under each fsync policy (batch through the
 * sync thread and its eventfd), records coming back in order after a
 * restart, one journal generation per start, the directory lock, a torn
 * tail cut on recovery, a corrupt record skipped, and a compaction by the
 * forked snapshot writer that replaces the old files. */
#include "journal.h"
#include "zt_clock.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];

static void make_dir(char *dir, size_t size, const char *name) {
    snprintf(dir, size, "%s/%s", base, name);
}

static broker_journal_t *open_journal(const char *dir, broker_fsync_t policy, int64_t compact) {
    broker_journal_options_t o;
    broker_journal_options_defaults(&o);
    o.dir = dir;
    o.fsync = policy;
    o.batch_ms = 1;
    o.compact_bytes = compact;
    return broker_journal_new(&o, NULL);
}

/* Collects the ids of replayed records as "TYPE:id" strings. */
typedef struct {
    char items[4096][48];
    size_t n;
} seen_t;

static void collect(void *arg, const broker_jrec_t *rec) {
    seen_t *s = arg;
    if (s->n < 4096)
        snprintf(s->items[s->n++], sizeof s->items[0], "%d:%.*s", (int)rec->type, (int)rec->id_len,
                 rec->id ? rec->id : "");
}

static void append_done(broker_journal_t *j, int i) {
    char id[32];
    snprintf(id, sizeof id, "task-%d", i);
    broker_jrec_t rec = {.type = BROKER_JREC_DONE, .id = id, .id_len = strlen(id)};
    broker_journal_append(j, &rec);
}

/* Waits (bounded) until everything appended is durable. */
static bool wait_durable(broker_journal_t *j) {
    int64_t deadline = zt_clock_mono_ms() + 5000;
    while (broker_journal_durable(j) < broker_journal_appended(j)) {
        int fd = broker_journal_sync_fd(j);
        if (fd < 0 || zt_clock_mono_ms() > deadline)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0)
            broker_journal_on_synced(j);
    }
    return true;
}

static size_t count_files(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static void test_policies(void) {
    broker_fsync_t policies[] = {BROKER_FSYNC_OFF, BROKER_FSYNC_ALWAYS, BROKER_FSYNC_BATCH};
    for (int p = 0; p < 3; p++) {
        char dir[512];
        make_dir(dir, sizeof dir, broker_fsync_name(policies[p]));
        broker_journal_t *j = open_journal(dir, policies[p], 0);
        CHECK(j != NULL);
        /* one broker per directory */
        CHECK(open_journal(dir, policies[p], 0) == NULL);
        seen_t *seen = calloc(1, sizeof *seen);
        broker_journal_recovery_t rec;
        CHECK_INT(broker_journal_recover(j, collect, seen, &rec), 0);
        CHECK_INT(seen->n, 0);
        CHECK_INT(rec.generation, 1);
        CHECK_INT(broker_journal_sync_fd(j) >= 0, policies[p] == BROKER_FSYNC_BATCH);
        for (int i = 0; i < 100; i++)
            append_done(j, i);
        CHECK(broker_journal_appended(j) > 0);
        CHECK(broker_journal_durable(j) < broker_journal_appended(j));
        CHECK_INT(broker_journal_pending(j) > 0, 1);
        CHECK_INT(broker_journal_commit(j), 0);
        CHECK_INT(broker_journal_pending(j), 0);
        if (policies[p] == BROKER_FSYNC_BATCH)
            CHECK(wait_durable(j));
        CHECK_INT(broker_journal_durable(j), broker_journal_appended(j));
        broker_journal_stats_t st;
        broker_journal_stats(j, &st);
        CHECK_STR(st.fsync, broker_fsync_name(policies[p]));
        CHECK_INT(st.records, 100);
        if (policies[p] != BROKER_FSYNC_OFF)
            CHECK(st.syncs >= 1);
        broker_journal_destroy(&j);
        CHECK(j == NULL);

        /* a restart replays them in order and starts generation 2 */
        j = open_journal(dir, policies[p], 0);
        seen->n = 0;
        CHECK_INT(broker_journal_recover(j, collect, seen, &rec), 0);
        CHECK_INT(seen->n, 100);
        CHECK_STR(seen->items[0], "7:task-0");
        CHECK_STR(seen->items[99], "7:task-99");
        CHECK_INT(rec.generation, 2);
        CHECK_INT(rec.files, 1);
        CHECK_INT(rec.corrupt + rec.torn + rec.bad_files, 0);
        append_done(j, 100);
        broker_journal_destroy(&j); /* destroy writes what is pending */
        j = open_journal(dir, policies[p], 0);
        seen->n = 0;
        CHECK_INT(broker_journal_recover(j, collect, seen, &rec), 0);
        CHECK_INT(seen->n, 101);
        CHECK_INT(rec.files, 2);
        broker_journal_destroy(&j);
        free(seen);
    }
}

static void test_torn_and_corrupt(void) {
    char dir[512], path[700];
    make_dir(dir, sizeof dir, "damage");
    broker_journal_t *j = open_journal(dir, BROKER_FSYNC_ALWAYS, 0);
    seen_t *seen = calloc(1, sizeof *seen);
    CHECK_INT(broker_journal_recover(j, collect, seen, NULL), 0);
    for (int i = 0; i < 10; i++)
        append_done(j, i);
    CHECK_INT(broker_journal_commit(j), 0);
    broker_journal_destroy(&j);
    snprintf(path, sizeof path, "%s/journal-%016x.ztj", dir, 1);
    struct stat st;
    CHECK_INT(stat(path, &st), 0);
    off_t good = st.st_size;
    /* damage record 5 (each DONE "task-N" is 12 + 7 bytes) and add a torn tail */
    int fd = open(path, O_RDWR);
    off_t rec5 = 24 + 5 * 19 + 14;
    CHECK_INT(pwrite(fd, "XX", 2, rec5), 2);
    CHECK_INT(pwrite(fd, "\xd7\x4a\x07\x00\x40\x00", 6, good), 6);
    close(fd);

    j = open_journal(dir, BROKER_FSYNC_ALWAYS, 0);
    seen->n = 0;
    broker_journal_recovery_t rec;
    CHECK_INT(broker_journal_recover(j, collect, seen, &rec), 0);
    CHECK_INT(seen->n, 9);
    CHECK_STR(seen->items[4], "7:task-4");
    CHECK_STR(seen->items[5], "7:task-6");
    CHECK_INT(rec.corrupt, 1);
    CHECK_INT(rec.torn, 1);
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_size, good); /* the torn tail was cut */
    /* damage makes compaction due even without a threshold... unless it is off */
    CHECK(!broker_journal_compaction_due(j));
    broker_journal_destroy(&j);

    /* a file whose header is damaged is set aside, the broker still starts */
    fd = open(path, O_RDWR);
    CHECK_INT(pwrite(fd, "ZZ", 2, 0), 2);
    close(fd);
    j = open_journal(dir, BROKER_FSYNC_ALWAYS, 0);
    seen->n = 0;
    CHECK_INT(broker_journal_recover(j, collect, seen, &rec), 0);
    CHECK_INT(rec.bad_files, 1);
    CHECK_INT(count_files(dir, "journal-0000000000000001.ztj.damaged"), 1);
    broker_journal_destroy(&j);
    free(seen);
}

/* The snapshot: three ADD records and a revoked id. */
static int write_snapshot(void *arg, broker_journal_t *j) {
    (void)arg;
    static const unsigned char body[] = {0x80};
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "live-%d", i);
        broker_jrec_t rec = {.type = BROKER_JREC_ADD,
                             .id = id,
                             .id_len = strlen(id),
                             .name = "builtin.noop",
                             .name_len = 12,
                             .queue = "default",
                             .queue_len = 7,
                             .body = body,
                             .body_size = 1};
        broker_journal_snapshot_put(j, &rec);
    }
    broker_jrec_t rid = {.type = BROKER_JREC_REVOKED_ID, .id = "gone", .id_len = 4};
    broker_journal_snapshot_put(j, &rid);
    return 0;
}

static void test_compaction(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "compact");
    broker_journal_t *j = open_journal(dir, BROKER_FSYNC_BATCH, 1000);
    seen_t *seen = calloc(1, sizeof *seen);
    CHECK_INT(broker_journal_recover(j, collect, seen, NULL), 0);
    CHECK(!broker_journal_compaction_due(j));
    for (int i = 0; i < 100; i++)
        append_done(j, i);
    CHECK_INT(broker_journal_commit(j), 0);
    CHECK(broker_journal_compaction_due(j));
    CHECK_INT(broker_journal_compact(j, write_snapshot, NULL), 0);
    /* compaction synced everything before switching generations */
    CHECK_INT(broker_journal_durable(j), broker_journal_appended(j));
    append_done(j, 1000); /* goes to the new generation */
    CHECK_INT(broker_journal_commit(j), 0);
    broker_journal_stats_t st;
    int64_t deadline = zt_clock_mono_ms() + 10000;
    do {
        usleep(10000);
        broker_journal_poll(j);
        broker_journal_stats(j, &st);
    } while (st.compacting && zt_clock_mono_ms() < deadline);
    CHECK(!st.compacting);
    CHECK_INT(st.compactions, 1);
    CHECK_INT(st.generation, 2);
    CHECK(st.snapshot_bytes > 0);
    CHECK_INT(count_files(dir, "snapshot-0000000000000002.zts"), 1);
    CHECK_INT(count_files(dir, "journal-0000000000000001"), 0); /* replaced */
    CHECK(!broker_journal_compaction_due(j));
    CHECK(wait_durable(j));
    broker_journal_destroy(&j);

    j = open_journal(dir, BROKER_FSYNC_BATCH, 1000);
    seen->n = 0;
    broker_journal_recovery_t rec;
    CHECK_INT(broker_journal_recover(j, collect, seen, &rec), 0);
    CHECK_INT(seen->n, 5); /* snapshot: 3 ADD + 1 revoked id; journal: 1 DONE */
    CHECK_STR(seen->items[0], "1:live-0");
    CHECK_STR(seen->items[3], "9:gone");
    CHECK_STR(seen->items[4], "7:task-1000");
    CHECK_INT(rec.generation, 3);
    broker_journal_destroy(&j);
    free(seen);
}

static void test_options(void) {
    broker_fsync_t p;
    CHECK_INT(broker_fsync_parse("always", &p), 0);
    CHECK_INT(p, BROKER_FSYNC_ALWAYS);
    CHECK_INT(broker_fsync_parse("batch", &p), 0);
    CHECK_INT(p, BROKER_FSYNC_BATCH);
    CHECK_INT(broker_fsync_parse("off", &p), 0);
    CHECK_INT(p, BROKER_FSYNC_OFF);
    CHECK_INT(broker_fsync_parse("sometimes", &p), ZT_ERR_INVALID);
    CHECK_INT(broker_fsync_parse(NULL, &p), ZT_ERR_INVALID);
    broker_journal_options_t o;
    broker_journal_options_defaults(&o);
    int err = 0;
    CHECK(broker_journal_new(&o, &err) == NULL); /* no directory */
    CHECK_INT(err, ZT_ERR_INVALID);
    o.dir = "/proc/no/such/place";
    CHECK(broker_journal_new(&o, &err) == NULL);
    CHECK_INT(err, ZT_ERR_IO);
}

int main(void) {
    zt_log_setup("test_journal", ZT_LOG_ERROR, NULL);
    snprintf(base, sizeof base, "/tmp/zt-test-journal-XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_options);
    RUN(test_policies);
    RUN(test_torn_and_corrupt);
    RUN(test_compaction);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    return zt_test_summary();
}
