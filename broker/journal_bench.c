/* zt-journal-bench: measures what docs/DURABILITY.md reports. Not a test:
 * a program a person runs on a quiet machine.
 *
 *   zt-journal-bench recovery [--tasks N] [--dir DIR]
 *     writes a journal of N queued tasks (realistic task messages), then
 *     times broker_new() recovering it and the memory it takes per task;
 *     then lets the broker compact it into a snapshot while a client pings
 *     it (the loop's pause, the snapshot time, the worst ping), and times a
 *     recovery from that snapshot.
 *   zt-journal-bench accept [--tasks N] [--window W] [--dir DIR] [--interval MS]
 *     for each --fsync policy: a broker in a thread, one client pipelining N
 *     SUBMITs (at most W unanswered), tasks/s and SUBMIT->ACCEPTED p50/p99.
 *
 * The broker runs in this process (in a second thread for `accept` and the
 * compaction phase) on loopback; the client speaks ZTP/1 over a DEALER. */
#include "broker.h"
#include "jfile.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"
#include "zt_taskmsg.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void) {
    return (double)zt_clock_mono_us() / 1e6;
}

/* Packs a task message like zmqctl's: {id, task, args, kwargs, queue}. */
static void pack_task(msgpack_sbuffer *buf, const char *id, int priority) {
    msgpack_packer pk;
    buf->size = 0;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    zt_pack_kv_cstr(&pk, "id", id);
    zt_pack_kv_cstr(&pk, "task", "builtin.noop");
    zt_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, 0);
    zt_pack_cstr(&pk, "kwargs");
    msgpack_pack_map(&pk, 0);
    zt_pack_kv_cstr(&pk, "queue", "default");
    zt_pack_kv_int(&pk, "priority", priority);
}

typedef struct {
    broker_t *broker;
    int rc;
} runner_t;

static void *run_broker(void *arg) {
    runner_t *r = arg;
    r->rc = broker_run(r->broker);
    return NULL;
}

static int64_t g_interval_ms = -1; /* --interval: group commit pacing; -1 = default */

static broker_t *start_broker(const char *dir, broker_fsync_t policy, int64_t compact) {
    broker_options_t o;
    broker_options_defaults(&o);
    if (g_interval_ms >= 0)
        o.fsync_interval_ms = g_interval_ms;
    o.bind = "tcp://127.0.0.1:*";
    o.events_bind = "tcp://127.0.0.1:*";
    o.data_dir = dir;
    o.fsync = policy;
    o.compact_bytes = compact;
    o.max_queued_bytes = 0; /* measuring, not limiting */
    return broker_new(&o, NULL);
}

/* A DEALER client on the broker. */
static void *client_new(broker_t *b) {
    zsock_t *s = zsock_new_dealer(broker_endpoint(b));
    zsock_set_sndhwm(s, 0);
    zsock_set_rcvhwm(s, 0);
    return s;
}

/* CONTROL stats; returns the value of a numeric key, or -1. */
static double control_stat(zsock_t *s, const char *key) {
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    zt_pack_kv_uint(&pk, "req", 1);
    zt_pack_kv_cstr(&pk, "op", "stats");
    zt_proto_send(zsock_resolve(s), NULL, 0, ZT_CMD_CONTROL, buf.data, buf.size, NULL, 0);
    msgpack_sbuffer_destroy(&buf);
    double value = -1;
    zt_frames_t f;
    zmq_pollitem_t item = {zsock_resolve(s), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 5000) != 1 || zt_frames_recv(zsock_resolve(s), &f, false, 0) != 0)
        return -1;
    int cmd;
    const void *body, *extra;
    size_t size, esize;
    const char *code;
    if (zt_frames_envelope(&f, &cmd, &body, &size, &extra, &esize, &code) == 0) {
        zt_body_t *b = zt_body_parse(body, size, NULL);
        if (b) {
            const msgpack_object *result = zt_mp_get(zt_body_root(b), "result");
            if (result && zt_mp_get_double(result, key, &value) != 0) {
                bool flag;
                value = zt_mp_get_bool(result, key, &flag) == 0 ? flag : -1;
            }
            zt_body_destroy(&b);
        }
    }
    zt_frames_close(&f);
    return value;
}

/* ---- recovery ---------------------------------------------------------------- */

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int write_journal(const char *dir, long tasks, double *payload_avg) {
    char path[4096];
    mkdir(dir, 0750);
    snprintf(path, sizeof path, "%s/journal-%016x.ztj", dir, 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    broker_jbuf_t out = {0};
    broker_jfile_header(&out, BROKER_JFILE_JOURNAL, 1);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    double payload = 0;
    for (long i = 0; i < tasks; i++) {
        char id[40];
        zt_uuid_generate(id, sizeof id);
        int priority = (int)(i % 10);
        pack_task(&body, id, priority);
        payload += (double)body.size;
        broker_jrec_t rec = {.type = BROKER_JREC_ADD,
                             .priority = (uint8_t)priority,
                             .id = id,
                             .id_len = strlen(id),
                             .name = "builtin.noop",
                             .name_len = 12,
                             .queue = "default",
                             .queue_len = 7,
                             .body = body.data,
                             .body_size = body.size};
        broker_jrec_encode(&out, &rec);
        if (out.size > (8u << 20) || i == tasks - 1) {
            if (write(fd, out.data, out.size) != (ssize_t)out.size) {
                perror("write");
                close(fd);
                return -1;
            }
            out.size = 0;
        }
    }
    fsync(fd);
    close(fd);
    msgpack_sbuffer_destroy(&body);
    broker_jbuf_free(&out);
    *payload_avg = payload / (double)tasks;
    return 0;
}

static int bench_recovery(long tasks, const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    double payload;
    double t0 = now_s();
    if (write_journal(dir, tasks, &payload) != 0)
        return 1;
    struct stat st;
    char path[4096];
    snprintf(path, sizeof path, "%s/journal-%016x.ztj", dir, 1);
    stat(path, &st);
    printf("journal: %ld tasks, %.1f MB, written in %.2f s (message %.1f bytes on average)\n",
           tasks, (double)st.st_size / 1e6, now_s() - t0, payload);

    /* recovery from the journal */
    zsys_init();
    long rss0 = rss_kib();
    t0 = now_s();
    broker_t *b = start_broker(dir, BROKER_FSYNC_BATCH, 0);
    double secs = now_s() - t0;
    long rss1 = rss_kib();
    if (!b)
        return 1;
    double per_task = (double)(rss1 - rss0) * 1024.0 / (double)tasks;
    printf("recovery from journal: %zu tasks in %.3f s (broker_new, sockets included)\n",
           broker_task_count(b), secs);
    printf("memory: RSS +%.1f MB = %.1f bytes per task; message %.1f bytes; beyond it %.1f "
           "bytes per task\n",
           (double)(rss1 - rss0) / 1024.0, per_task, payload, per_task - payload);

    /* compaction while serving: the loop in a thread, pings meanwhile */
    broker_destroy(&b);
    b = start_broker(dir, BROKER_FSYNC_BATCH, 1);
    runner_t r = {b, 0};
    pthread_t th;
    pthread_create(&th, NULL, run_broker, &r);
    zsock_t *c = client_new(b);
    double started = now_s();
    size_t pings = 0;
    double rtts[100000];
    for (;;) {
        double p0 = now_s();
        double done = control_stat(c, "compactions");
        if (pings < sizeof rtts / sizeof rtts[0])
            rtts[pings++] = now_s() - p0;
        if (done >= 1 || now_s() - started > 120)
            break;
        usleep(1000);
    }
    double took = now_s() - started;
    double pause = control_stat(c, "compaction_pause_ms");
    double snap = control_stat(c, "snapshot_bytes");
    qsort(rtts, pings, sizeof rtts[0], by_double);
    printf("compaction: snapshot of %.1f MB done %.2f s after start; loop paused %.2f ms; "
           "%zu CONTROL stats meanwhile: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           snap / 1e6, took, pause, pings, rtts[pings / 2] * 1000,
           rtts[(size_t)((double)pings * 0.99)] * 1000, rtts[pings - 1] * 1000);
    zsock_destroy(&c);
    broker_stop(b);
    pthread_join(th, NULL);
    broker_destroy(&b);

    /* recovery from the snapshot */
    t0 = now_s();
    b = start_broker(dir, BROKER_FSYNC_BATCH, 0);
    secs = now_s() - t0;
    if (!b)
        return 1;
    printf("recovery from snapshot: %zu tasks in %.3f s\n", broker_task_count(b), secs);
    broker_destroy(&b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* ---- accept throughput -------------------------------------------------------- */

static int bench_accept(long tasks, long window, const char *base) {
    zsys_init();
    broker_fsync_t policies[] = {BROKER_FSYNC_OFF, BROKER_FSYNC_BATCH, BROKER_FSYNC_ALWAYS};
    double *sent_at = zt_calloc((size_t)tasks, sizeof *sent_at);
    double *lat = zt_calloc((size_t)tasks, sizeof *lat);
    char(*ids)[40] = zt_calloc((size_t)tasks, sizeof *ids);
    for (long i = 0; i < tasks; i++)
        snprintf(ids[i], sizeof ids[i], "bench-%08ld", i);
    for (int p = 0; p < 3; p++) {
        char dir[4096], cmd[4200];
        snprintf(dir, sizeof dir, "%s/%s", base, broker_fsync_name(policies[p]));
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            return 1;
        broker_t *b = start_broker(dir, policies[p], 0);
        if (!b)
            return 1;
        runner_t r = {b, 0};
        pthread_t th;
        pthread_create(&th, NULL, run_broker, &r);
        zsock_t *c = client_new(b);
        void *raw = zsock_resolve(c);
        msgpack_sbuffer body;
        msgpack_sbuffer_init(&body);
        long sent = 0, got = 0, rejected = 0;
        double t0 = now_s();
        while (got < tasks) {
            while (sent < tasks && sent - got < window) {
                pack_task(&body, ids[sent], (int)(sent % 10));
                sent_at[sent] = now_s();
                zt_proto_send(raw, NULL, 0, ZT_CMD_SUBMIT, body.data, body.size, NULL, 0);
                sent++;
            }
            zmq_pollitem_t item = {raw, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&item, 1, 10000) != 1) {
                fprintf(stderr, "no reply for 10 s\n");
                return 1;
            }
            zt_frames_t f;
            while (got < tasks && zt_frames_recv(raw, &f, false, ZMQ_DONTWAIT) == 0) {
                int cmd_byte;
                const void *bd, *ex;
                size_t bs, es;
                const char *code;
                if (zt_frames_envelope(&f, &cmd_byte, &bd, &bs, &ex, &es, &code) == 0 &&
                    cmd_byte != ZT_CMD_ACCEPTED)
                    rejected++;
                /* replies come in submit order (PROTOCOL.md §5.1) */
                lat[got] = now_s() - sent_at[got];
                got++;
                zt_frames_close(&f);
            }
        }
        double secs = now_s() - t0;
        qsort(lat, (size_t)tasks, sizeof *lat, by_double);
        printf("fsync %-6s %ld tasks in %.2f s = %.0f tasks/s; SUBMIT->ACCEPTED p50 %.2f ms, "
               "p99 %.2f ms; syncs %.0f%s\n",
               broker_fsync_name(policies[p]), tasks, secs, (double)tasks / secs,
               lat[tasks / 2] * 1000, lat[(long)((double)tasks * 0.99)] * 1000,
               control_stat(c, "journal_syncs"), rejected ? " (some REJECTED!)" : "");
        fflush(stdout);
        msgpack_sbuffer_destroy(&body);
        zsock_destroy(&c);
        broker_stop(b);
        pthread_join(th, NULL);
        broker_destroy(&b);
        if (system(cmd) != 0)
            return 1;
    }
    free(sent_at);
    free(lat);
    free(ids);
    return 0;
}

int main(int argc, char **argv) {
    zt_log_setup("bench", ZT_LOG_WARNING, NULL);
    if (argc < 2 || (strcmp(argv[1], "recovery") != 0 && strcmp(argv[1], "accept") != 0)) {
        fprintf(stderr, "usage: zt-journal-bench recovery|accept [--tasks N] [--window W] "
                        "[--dir DIR] [--interval MS]\n");
        return 2;
    }
    long tasks = strcmp(argv[1], "recovery") == 0 ? 1000000 : 200000;
    long window = 1000;
    const char *dir = "/tmp/zt-journal-bench";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tasks") == 0)
            tasks = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--window") == 0)
            window = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--interval") == 0)
            g_interval_ms = atol(argv[i + 1]);
    }
    if (tasks < 1 || window < 1) {
        fprintf(stderr, "--tasks and --window must be positive\n");
        return 2;
    }
    int rc = strcmp(argv[1], "recovery") == 0 ? bench_recovery(tasks, dir)
                                              : bench_accept(tasks, window, dir);
    zsys_shutdown();
    return rc;
}
