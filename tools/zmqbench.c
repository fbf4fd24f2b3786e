/* zmqbench: end-to-end throughput and latency of the cluster. Sends N
 * builtin.noop tasks through zt_client, pipelined with at most --window tasks
 * unfinished at a time, and times each from its SUBMIT to the arrival of its
 * final state (Redis PUBLISH, or the broker's task-succeeded event with
 * --no-results). Listening starts before the first SUBMIT, so nothing is
 * missed; every wait is bounded by --stall. Ids are "zb-<run>-<index>", so a
 * notice maps to its task without a lookup and other traffic is ignored. */
#include "bench_results.h"
#include "zt_client.h"
#include "zt_clock.h"
#include "zt_codec.h"
#include "zt_config.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_proto.h"
#include "zt_taskmsg.h"

#include <errno.h>
#include <czmq.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define BENCH_DEFAULT_TASKS 10000
#define BENCH_DEFAULT_WINDOW 1000
#define BENCH_DEFAULT_STALL_S 10.0
#define BENCH_MAX_WINDOW 100000 /* zt_client's send high-water mark */
#define BENCH_SEND_BATCH 64     /* SUBMITs per writability check */
#define BENCH_TASK "builtin.noop"

static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    zt_config_t config;
    long tasks;
    long window;
    char queue[ZT_QUEUE_MAX + 1];
    bool no_results;
    bool json;
    double stall_s; /* seconds without any completion before giving up */
} bench_options_t;

/* Run state, shared with the completion callback. */
typedef struct {
    char prefix[32]; /* "zb-<8 hex>-": this run's ids */
    size_t prefix_len;
    long tasks;
    int64_t *submit_us;  /* per task index: when it was submitted */
    int64_t *latency_us; /* per completion, in completion order */
    uint8_t *finished;   /* per task index: final state seen */
    long submitted;      /* SUBMITs sent */
    long accepted;       /* ACCEPTED replies read */
    long completed;      /* tasks with a final state */
    long failed;         /* of which FAILURE / REVOKED */
} bench_run_t;

/* ------------------------------------------------------------- options */

enum {
    OPT_RESULT_BACKEND = 256,
    OPT_EVENTS,
    OPT_TASKS,
    OPT_NO_RESULTS,
    OPT_WINDOW,
    OPT_JSON,
    OPT_STALL,
    OPT_CONFIG
};

static void print_help(FILE *out) {
    fprintf(
        out,
        "Usage: zmqbench [OPTIONS]\n"
        "\n"
        "Sends N builtin.noop tasks, pipelined, waits for every result and prints the\n"
        "throughput and the submit-to-result latency (p50, p99, max).\n"
        "\n"
        "  -b, --broker URL        broker endpoint (env ZMQ_BROKER_URL,\n"
        "                          default tcp://127.0.0.1:5555)\n"
        "  --result-backend URL    Redis the workers write results to (env RESULT_BACKEND,\n"
        "                          default redis://127.0.0.1:6379/1); results are\n"
        "                          observed with PSUBSCRIBE celery-task-meta-*\n"
        "  --events-url URL        broker events endpoint, for --no-results (env\n"
        "                          ZMQ_EVENTS_URL, default tcp://127.0.0.1:5556)\n"
        "  --tasks N               tasks to send (default %d)\n"
        "  -Q, --queue QUEUE       queue (default: default)\n"
        "  --no-results            tasks carry ignore_result; completion is the broker's\n"
        "                          task-succeeded event instead of the Redis result\n"
        "  --window N              at most N tasks sent and not finished, 1-100000\n"
        "                          (default %d; 1 measures latency at idle)\n"
        "  --stall S               give up when no task finishes for S seconds\n"
        "                          (default %g)\n"
        "  --json                  print {\"tasks\", \"seconds\", \"tasks_per_s\", \"p50_ms\",\n"
        "                          \"p99_ms\", \"max_ms\", \"cpu_s\" (its own CPU), ...}\n"
        "  --config FILE           INI file (broker_url, result_backend, events_url)\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit status: 0 all tasks succeeded; 1 a task failed, was rejected, or results\n"
        "stopped arriving; 2 usage error.\n",
        BENCH_DEFAULT_TASKS, BENCH_DEFAULT_WINDOW, BENCH_DEFAULT_STALL_S);
}

static int usage(const char *fmt, const char *arg) {
    fprintf(stderr, "zmqbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'zmqbench --help'.\n");
    return 2;
}

static int parse_count(const char *text, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, 1 after printing help, or 2 for a usage error. */
static int parse_args(bench_options_t *opts, int argc, char **argv) {
    static const struct option longopts[] = {
        {"broker", required_argument, NULL, 'b'},
        {"result-backend", required_argument, NULL, OPT_RESULT_BACKEND},
        {"events-url", required_argument, NULL, OPT_EVENTS},
        {"tasks", required_argument, NULL, OPT_TASKS},
        {"queue", required_argument, NULL, 'Q'},
        {"no-results", no_argument, NULL, OPT_NO_RESULTS},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"json", no_argument, NULL, OPT_JSON},
        {"stall", required_argument, NULL, OPT_STALL},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, ":b:Q:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
        case OPT_RESULT_BACKEND:
        case OPT_EVENTS: {
            char *field = c == 'b'                  ? opts->config.broker_url
                          : c == OPT_RESULT_BACKEND ? opts->config.result_backend
                                                    : opts->config.events_url;
            if (strlen(optarg) >= ZT_URL_MAX)
                return usage("URL too long: %s", optarg);
            snprintf(field, ZT_URL_MAX, "%s", optarg);
            break;
        }
        case OPT_TASKS:
            if (parse_count(optarg, 100000000, &opts->tasks))
                return usage("--tasks wants an integer 1-100000000, not '%s'", optarg);
            break;
        case OPT_WINDOW:
            if (parse_count(optarg, BENCH_MAX_WINDOW, &opts->window))
                return usage("--window wants an integer 1-100000, not '%s'", optarg);
            break;
        case 'Q':
            if (!zt_taskmsg_valid_queue(optarg, strlen(optarg)))
                return usage("bad queue name '%s'", optarg);
            snprintf(opts->queue, sizeof opts->queue, "%s", optarg);
            break;
        case OPT_NO_RESULTS:
            opts->no_results = true;
            break;
        case OPT_JSON:
            opts->json = true;
            break;
        case OPT_STALL:
            errno = 0;
            opts->stall_s = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(opts->stall_s >= 0.1) || opts->stall_s > 3600)
                return usage("--stall wants seconds (0.1 to 3600), not '%s'", optarg);
            break;
        case OPT_CONFIG:
            break; /* read by zt_config_load() */
        case 'h':
            print_help(stdout);
            return 1;
        case ':':
            return usage("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* ------------------------------------------------------------ the run */

/* A completion notice: maps "zb-<run>-<index>" back to its task. Notices for
 * other ids (other runs, other clients) and repeats (redelivery) are ignored. */
static void on_result(const char *id, size_t id_len, bench_state_t state, void *arg) {
    bench_run_t *run = arg;
    if (state == BENCH_STATE_OTHER || id_len <= run->prefix_len || id_len > run->prefix_len + 12 ||
        memcmp(id, run->prefix, run->prefix_len))
        return;
    long index = 0;
    for (size_t i = run->prefix_len; i < id_len; i++) {
        if (id[i] < '0' || id[i] > '9')
            return;
        index = index * 10 + (id[i] - '0');
    }
    if (index >= run->submitted || run->finished[index])
        return;
    run->finished[index] = 1;
    run->latency_us[run->completed++] = zt_clock_mono_us() - run->submit_us[index];
    if (state == BENCH_STATE_FAILED)
        run->failed++;
}

/* True when the socket can take a message without blocking. */
static bool socket_has(void *socket, int event) {
    int events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt(socket, ZMQ_EVENTS, &events, &size))
        return false;
    return (events & event) != 0;
}

/* Copies body[key] (a str) into buf, or leaves "?" there. */
static void body_str(const zt_body_t *body, const char *key, char *buf, size_t size) {
    const msgpack_object *v = body ? zt_mp_get(zt_body_root(body), key) : NULL;
    if (!v || zt_mp_copy_str(v, buf, size))
        snprintf(buf, size, "?");
}

/* Reads every reply waiting on the client socket, without blocking. ACCEPTED
 * is only counted (its id is ours by construction); the first REJECTED or
 * ERROR is reported and ends the run. This reads the raw socket with
 * zt_proto's framing instead of calling zt_client_recv_reply(), which polls
 * and decodes the body before each receive: that was a fifth of zmqbench's
 * CPU, taken from the cluster it measures. Returns 0 or ZT_ERR_REJECTED. */
static int read_replies(zt_client_t *client, bench_run_t *run) {
    void *socket = zt_client_socket(client);
    for (;;) {
        zt_frames_t frames;
        int rc = zt_frames_recv(socket, &frames, false, ZMQ_DONTWAIT);
        if (rc == ZT_ERR_TIMEOUT || rc == ZT_ERR_INTERRUPTED)
            return 0;
        if (rc) {
            fprintf(stderr, "zmqbench: receive from the broker failed: %s\n", zt_strerror(rc));
            return ZT_ERR_IO;
        }
        int cmd;
        const void *body, *extra;
        size_t body_size, extra_size;
        const char *code;
        rc = zt_frames_envelope(&frames, &cmd, &body, &body_size, &extra, &extra_size, &code);
        if (rc == 0 && cmd == ZT_CMD_ACCEPTED) {
            run->accepted++;
        } else if (rc == 0 && (cmd == ZT_CMD_REJECTED || cmd == ZT_CMD_ERROR)) {
            zt_body_t *reply = zt_body_parse(body, body_size, NULL);
            char id[ZT_ID_MAX + 1], why[64], reason[400];
            body_str(reply, "id", id, sizeof id);
            body_str(reply, "code", why, sizeof why);
            body_str(reply, "reason", reason, sizeof reason);
            fprintf(stderr, "zmqbench: task %s %s: %s: %s\n", id,
                    cmd == ZT_CMD_ERROR ? "refused (ERROR)" : "rejected", why, reason);
            zt_body_destroy(&reply);
            zt_frames_close(&frames);
            return ZT_ERR_REJECTED;
        }
        /* Anything else (a late CONTROL-REPLY, a malformed message) is not ours. */
        zt_frames_close(&frames);
    }
}

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values, in milliseconds. */
static double percentile_ms(const int64_t *sorted, long n, double p) {
    long rank = (long)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1] / 1000.0;
}

/* Sends everything and waits for every completion. Returns 0 or 1. */
static int run_bench(const bench_options_t *opts, zt_client_t *client, bench_results_t *results,
                     bench_run_t *run, double *seconds) {
    zt_task_options_t task;
    zt_task_options_init(&task);
    task.task = BENCH_TASK;
    task.queue = opts->queue;
    task.ignore_result = opts->no_results;
    char id[ZT_ID_MAX + 1];
    task.id = id;

    void *socket = zt_client_socket(client);
    zmq_pollitem_t items[2];
    bench_results_pollitem(results, &items[1]);
    const int64_t stall_us = (int64_t)(opts->stall_s * 1e6);
    int64_t start_us = zt_clock_mono_us(), progress_us = start_us;
    long last_completed = 0;

    while (run->completed < run->tasks) {
        /* Fill the window. Sends never block: the socket is writable before
         * each batch, and a window within the client's send high-water mark
         * (100,000) cannot fill the pipe. Asking the socket per batch rather
         * than per message saves a mailbox check (a poll(2)) per task. */
        while (run->submitted < run->tasks && run->submitted - run->completed < opts->window &&
               socket_has(socket, ZMQ_POLLOUT)) {
            for (int batch = 0; batch < BENCH_SEND_BATCH && run->submitted < run->tasks &&
                                run->submitted - run->completed < opts->window;
                 batch++) {
                snprintf(id, sizeof id, "%s%ld", run->prefix, run->submitted);
                run->submit_us[run->submitted] = zt_clock_mono_us();
                char sent[ZT_ID_MAX + 1];
                int rc = zt_client_submit(client, &task, sent, sizeof sent);
                if (rc) {
                    fprintf(stderr, "zmqbench: submit failed: %s %s\n", zt_strerror(rc),
                            zt_client_last_error(client));
                    return 1;
                }
                run->submitted++;
            }
        }
        bool want_out =
            run->submitted < run->tasks && run->submitted - run->completed < opts->window;
        items[0] = (zmq_pollitem_t){socket, 0, ZMQ_POLLIN | (want_out ? ZMQ_POLLOUT : 0), 0};
        int n = zmq_poll(items, 2, 100);
        if (interrupted) {
            fprintf(stderr, "zmqbench: interrupted after %ld of %ld tasks\n", run->completed,
                    run->tasks);
            return 1;
        }
        if (n < 0 && zmq_errno() != EINTR) {
            fprintf(stderr, "zmqbench: poll failed: %s\n", zmq_strerror(zmq_errno()));
            return 1;
        }
        if (read_replies(client, run))
            return 1;
        if (n > 0 && (items[1].revents & ZMQ_POLLIN) &&
            bench_results_drain(results, on_result, run) < 0) {
            fprintf(stderr, "zmqbench: lost the %s after %ld of %ld tasks\n",
                    opts->no_results ? "events subscription" : "Redis subscription", run->completed,
                    run->tasks);
            return 1;
        }
        int64_t now = zt_clock_mono_us();
        if (run->completed != last_completed) {
            last_completed = run->completed;
            progress_us = now;
        } else if (now - progress_us > stall_us) {
            fprintf(stderr,
                    "zmqbench: no task finished for %g s: %ld of %ld finished, %ld submitted, "
                    "%ld accepted (is a worker serving queue '%s'%s?)\n",
                    opts->stall_s, run->completed, run->tasks, run->submitted, run->accepted,
                    opts->queue,
                    opts->no_results ? " and the events endpoint right"
                                     : " and writing to the same Redis");
            return 1;
        }
    }
    *seconds = (double)(zt_clock_mono_us() - start_us) / 1e6;
    return 0;
}

/* Rounds to 3 decimals, so the JSON shows 0.218 and not 0.21799999999999999. */
static double round3(double x) {
    return round(x * 1000.0) / 1000.0;
}

/* CPU seconds (user + system) this process has used so far. */
static double cpu_seconds(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage))
        return 0;
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

/* Prints the summary; returns the exit status. */
static int report(const bench_options_t *opts, bench_run_t *run, double seconds) {
    qsort(run->latency_us, (size_t)run->completed, sizeof *run->latency_us, compare_i64);
    double rate = seconds > 0 ? (double)run->completed / seconds : 0;
    double p50 = percentile_ms(run->latency_us, run->completed, 50);
    double p99 = percentile_ms(run->latency_us, run->completed, 99);
    double max = (double)run->latency_us[run->completed - 1] / 1000.0;
    if (opts->json) {
        json_t *out =
            json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:b, s:I, s:f}", "tasks",
                      (json_int_t)run->completed, "seconds", round3(seconds), "tasks_per_s",
                      round3(rate), "p50_ms", round3(p50), "p99_ms", round3(p99), "max_ms",
                      round3(max), "window", (json_int_t)opts->window, "results", !opts->no_results,
                      "failed", (json_int_t)run->failed, "cpu_s", round3(cpu_seconds()));
        char *text = out ? json_dumps(out, JSON_REAL_PRECISION(12)) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(out);
    } else {
        printf("zmqbench: %ld %s tasks on queue %s, window %ld, completion via %s\n",
               run->completed, BENCH_TASK, opts->queue, opts->window,
               opts->no_results ? "task-succeeded events" : "Redis results");
        printf("  throughput  %.0f tasks/s (%.3f s)\n", rate, seconds);
        printf("  latency     p50 %.3f ms  p99 %.3f ms  max %.3f ms (submit to result)\n", p50, p99,
               max);
    }
    if (run->failed) {
        fprintf(stderr, "zmqbench: %ld task(s) ended FAILURE or REVOKED\n", run->failed);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    zt_log_setup("zmqbench", ZT_LOG_WARNING, NULL);
    bench_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.tasks = BENCH_DEFAULT_TASKS;
    opts.window = BENCH_DEFAULT_WINDOW;
    opts.stall_s = BENCH_DEFAULT_STALL_S;
    snprintf(opts.queue, sizeof opts.queue, "%s", ZT_DEFAULT_QUEUE);
    char reason[512] = "";
    int rc = zt_config_load(&opts.config, argc, argv, reason, sizeof reason);
    if (rc) {
        fprintf(stderr, "zmqbench: %s\n", reason[0] ? reason : zt_strerror(rc));
        return 2;
    }
    rc = parse_args(&opts, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    /* czmq would install its own SIGINT/SIGTERM handlers when the first
     * socket is made, replacing ours; ask it not to. */
    zsys_handler_set(NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    int status = 1;
    bench_run_t run;
    memset(&run, 0, sizeof run);
    bench_results_t *results = NULL;
    zt_curve_t *curve = NULL;
    if (zt_curve_from_config(&opts.config, ZT_CURVE_CLIENT, &curve, reason, sizeof reason) != 0) {
        fprintf(stderr, "zmqbench: %s\n", reason);
        return 2;
    }
    zt_client_t *client = zt_client_new_secure(opts.config.broker_url, NULL, curve, &rc);
    if (!client) {
        fprintf(stderr, "zmqbench: cannot use broker %s: %s\n", opts.config.broker_url,
                zt_strerror(rc));
        goto done;
    }
    /* A quick ping so a missing broker is reported as such, not as a stall. */
    zt_client_set_timeout(client, (int)(opts.stall_s * 1000));
    json_t *pong = NULL;
    rc = zt_client_control(client, "ping", NULL, &pong);
    json_decref(pong);
    if (rc) {
        fprintf(stderr, "zmqbench: broker %s does not answer ping: %s %s\n", opts.config.broker_url,
                zt_strerror(rc), zt_client_last_error(client));
        goto done;
    }
    /* Listen before the first SUBMIT so no completion can slip past. */
    results = opts.no_results ? bench_results_new_events(opts.config.events_url, curve, 300)
                              : bench_results_new_redis(opts.config.result_backend, 5000);
    if (!results) {
        fprintf(stderr, "zmqbench: cannot subscribe to %s\n",
                opts.no_results ? opts.config.events_url : opts.config.result_backend);
        goto done;
    }

    char uuid[40];
    zt_uuid_generate(uuid, sizeof uuid);
    snprintf(run.prefix, sizeof run.prefix, "zb-%.8s-", uuid);
    run.prefix_len = strlen(run.prefix);
    run.tasks = opts.tasks;
    run.submit_us = zt_calloc((size_t)opts.tasks, sizeof *run.submit_us);
    run.latency_us = zt_calloc((size_t)opts.tasks, sizeof *run.latency_us);
    run.finished = zt_calloc((size_t)opts.tasks, 1);

    double seconds = 0;
    if (run_bench(&opts, client, results, &run, &seconds) == 0)
        status = report(&opts, &run, seconds);
done:
    free(run.submit_us);
    free(run.latency_us);
    free(run.finished);
    bench_results_destroy(&results);
    zt_client_destroy(&client);
    zt_curve_destroy(&curve);
    return status;
}
