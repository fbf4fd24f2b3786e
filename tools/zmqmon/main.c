/* zmqmon: the terminal monitor and admin console of the cluster (Flower's
 * job, over SSH). main parses options and either prints one snapshot
 * (--once, for scripts and for people without a terminal) or runs the
 * interactive screen (mon_app). Settings: command line > environment >
 * config file > defaults, as every program of the cluster. */
#include "mon_app.h"
#include "zmqctl_format.h"
#include "zt_client.h"
#include "zt_clock.h"
#include "zt_config.h"
#include "zt_curve.h"
#include "zt_error.h"
#include "zt_log.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

/* The only mutable global: set by SIGINT/SIGTERM. */
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(
        out,
        "Usage: zmqmon [OPTIONS]\n"
        "\n"
        "A terminal monitor and admin console for the cluster: workers, queues,\n"
        "tasks (live, with progress), task details, and revoke / retry / purge /\n"
        "shutdown actions. Fed by the broker's events stream and CONTROL requests.\n"
        "\n"
        "  -b, --broker URL          broker endpoint (env ZMQ_BROKER_URL; default\n"
        "                            tcp://127.0.0.1:5555)\n"
        "  -e, --events URL          events endpoint (env ZMQ_EVENTS_URL; default: the\n"
        "                            broker's host with its port + 1, as zmqbroker's defaults)\n"
        "  --result-backend URL      Redis for task details and retries (env RESULT_BACKEND)\n"
        "  --once                    print one snapshot and exit (no terminal needed)\n"
        "  --json                    with --once: the snapshot as JSON\n"
        "  --timeout S               --once: seconds to wait for each answer (default 3)\n"
        "  --view NAME               first view: dashboard, workers, tasks or queues\n"
        "  --history N               tasks kept in the Tasks view (default %d)\n"
        "  --refresh HZ              redraws per second at most (default 5, 1-20)\n"
        "  --interval S              seconds between stats/queues/workers requests\n"
        "                            (default 1)\n"
        "  --config FILE             INI settings file (broker_url, events_url,\n"
        "                            result_backend, curve_client_cert, curve_broker_key)\n"
        "  --loglevel L              debug, info, warning, error (default warning)\n"
        "  --logfile F               log here (the screen: default /dev/null; --once: stderr)\n"
        "  -h, --help                this help\n"
        "\n"
        "Keys: 1-4 views, Enter detail, s/n/u// filter, r revoke, T terminate,\n"
        "R retry, p purge, x shut down worker, ? help, q quit.\n"
        "\n"
        "--once --json prints {\"broker\", \"stats\", \"queues\", \"workers\", \"active\",\n"
        "\"reserved\", \"scheduled\"}: the broker's replies to those CONTROL ops.\n"
        "Exit status: 0 ok; 1 error; 2 usage; 3 the broker did not answer.\n",
        MON_HISTORY_DEFAULT);
}

typedef struct {
    zt_config_t config;
    bool once, json;
    bool events_given;
    double timeout_s;
    const char *view;
    long history;
    double refresh_hz;
    double interval_s;
    char loglevel[16];
    char logfile[ZT_URL_MAX];
    bool logfile_given;
} options_t;

enum {
    OPT_BACKEND = 256,
    OPT_ONCE,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_VIEW,
    OPT_HISTORY,
    OPT_REFRESH,
    OPT_INTERVAL,
    OPT_CONFIG,
    OPT_LOGLEVEL,
    OPT_LOGFILE
};

static int parse_number(const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int bad(const char *what, const char *value) {
    fprintf(stderr, "zmqmon: %s, not '%s'\nTry 'zmqmon --help'.\n", what, value);
    return EXIT_USAGE;
}

static int set_url(char *field, const char *value) {
    if (strlen(value) >= ZT_URL_MAX)
        return bad("URL too long", value);
    snprintf(field, ZT_URL_MAX, "%s", value);
    return 0;
}

/* Returns 0, -1 after --help, or EXIT_USAGE. */
static int parse(options_t *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"broker", required_argument, NULL, 'b'},
        {"events", required_argument, NULL, 'e'},
        {"result-backend", required_argument, NULL, OPT_BACKEND},
        {"once", no_argument, NULL, OPT_ONCE},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"view", required_argument, NULL, OPT_VIEW},
        {"history", required_argument, NULL, OPT_HISTORY},
        {"refresh", required_argument, NULL, OPT_REFRESH},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"loglevel", required_argument, NULL, OPT_LOGLEVEL},
        {"logfile", required_argument, NULL, OPT_LOGFILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    double v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":b:e:h", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'b':
            rc = set_url(o->config.broker_url, optarg);
            break;
        case 'e':
            rc = set_url(o->config.events_url, optarg);
            o->events_given = true;
            break;
        case OPT_BACKEND:
            rc = set_url(o->config.result_backend, optarg);
            break;
        case OPT_ONCE:
            o->once = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_TIMEOUT:
            if (parse_number(optarg, 0.01, 3600, &o->timeout_s))
                rc = bad("--timeout wants seconds (0.01 to 3600)", optarg);
            break;
        case OPT_VIEW:
            o->view = optarg;
            break;
        case OPT_HISTORY:
            if (parse_number(optarg, 10, 10000000, &v))
                rc = bad("--history wants a number of tasks (10 to 10000000)", optarg);
            o->history = (long)v;
            break;
        case OPT_REFRESH:
            if (parse_number(optarg, 1, 20, &o->refresh_hz))
                rc = bad("--refresh wants redraws per second (1 to 20)", optarg);
            break;
        case OPT_INTERVAL:
            if (parse_number(optarg, 0.1, 60, &o->interval_s))
                rc = bad("--interval wants seconds (0.1 to 60)", optarg);
            break;
        case OPT_CONFIG:
            break; /* read by zt_config_load */
        case OPT_LOGLEVEL:
            snprintf(o->loglevel, sizeof o->loglevel, "%s", optarg);
            break;
        case OPT_LOGFILE:
            snprintf(o->logfile, sizeof o->logfile, "%s", optarg);
            o->logfile_given = true;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case ':':
            return bad("this option needs a value", argv[optind - 1]);
        default:
            return bad("unknown option", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return bad("unexpected argument", argv[optind]);
    if (o->json && !o->once)
        return bad("--json goes with --once", "--json");
    return 0;
}

/* With only the broker given, the events endpoint is the broker's host with
 * the next port (zmqbroker binds 5555 and 5556 by default). */
static void derive_events_url(options_t *o) {
    zt_config_t d;
    zt_config_defaults(&d);
    const char *env = getenv("ZMQ_EVENTS_URL");
    if (o->events_given || (env && *env) || strcmp(o->config.events_url, d.events_url) != 0 ||
        strcmp(o->config.broker_url, d.broker_url) == 0)
        return;
    const char *url = o->config.broker_url;
    const char *colon = strrchr(url, ':');
    if (strncmp(url, "tcp://", 6) != 0 || !colon || colon < url + 6)
        return;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port >= 65535)
        return;
    snprintf(o->config.events_url, sizeof o->config.events_url, "%.*s:%ld", (int)(colon - url), url,
             port + 1);
}

/* ------------------------------------------------------------ --once */

static const char *const once_ops[] = {"ping",   "stats",    "queues",   "workers",
                                       "active", "reserved", "scheduled"};

/* Asks every op in once_ops; fills snap (keys: broker for ping, else the
 * op). Returns EXIT_OK, EXIT_TIMEOUT or EXIT_FAIL after printing why. */
static int take_snapshot(zt_client_t *client, json_t *snap) {
    for (size_t i = 0; i < sizeof once_ops / sizeof once_ops[0]; i++) {
        json_t *args = NULL;
        if (i >= 4) {
            args = json_object();
            json_object_set_new(args, "limit", json_integer(1000));
        }
        json_t *result = NULL;
        int rc = zt_client_control(client, once_ops[i], args, &result);
        json_decref(args);
        if (rc != 0) {
            fprintf(stderr, "zmqmon: %s: %s\n", once_ops[i], zt_client_last_error(client));
            return rc == ZT_ERR_TIMEOUT ? EXIT_TIMEOUT : EXIT_FAIL;
        }
        json_object_set_new(snap, i == 0 ? "broker" : once_ops[i], result);
    }
    return EXIT_OK;
}

static void print_active(const json_t *active, double now) {
    if (!json_is_array(active) || json_array_size(active) == 0) {
        printf("(no task running)\n");
        return;
    }
    static const char *const headers[] = {"ID",     "TASK",        "QUEUE",
                                          "WORKER", "RUNNING FOR", "RETRIES"};
    zmqctl_table_t *table = zmqctl_table_new(6, headers);
    size_t i;
    const json_t *t;
    json_array_foreach(active, i, t) {
        char id[160], task[220], queue[120], worker[260], age[32] = "-", retries[16];
        const json_t *started = json_object_get(t, "started");
        if (json_is_number(started) && json_number_value(started) > 0)
            snprintf(age, sizeof age, "%.1fs", now - json_number_value(started));
        const char *row[] = {zmqctl_cell(json_object_get(t, "id"), id, sizeof id),
                             zmqctl_cell(json_object_get(t, "task"), task, sizeof task),
                             zmqctl_cell(json_object_get(t, "queue"), queue, sizeof queue),
                             zmqctl_cell(json_object_get(t, "worker"), worker, sizeof worker),
                             age,
                             zmqctl_cell(json_object_get(t, "retries"), retries, sizeof retries)};
        zmqctl_table_add(table, row);
    }
    zmqctl_table_print(table, stdout);
    zmqctl_table_destroy(&table);
}

static void print_snapshot(const json_t *snap, const char *url) {
    const json_t *ping = json_object_get(snap, "broker");
    const json_t *stats = json_object_get(snap, "stats");
    const json_t *uptime = json_object_get(ping, "uptime");
    char name[256], now_text[40];
    double now = zt_clock_wall();
    zt_clock_iso8601(now, now_text, sizeof now_text);
    char *dot = strchr(now_text, '.');
    if (dot)
        *dot = '\0';
    printf("zmqmon snapshot %sZ: broker %s at %s, up %.0f s\n\n", now_text,
           zmqctl_cell(json_object_get(ping, "broker"), name, sizeof name), url,
           json_is_number(uptime) ? json_number_value(uptime) : 0.0);
    static const char *const counters[] = {"submitted", "succeeded", "failed",    "retried",
                                           "revoked",   "queued",    "scheduled", "in_flight"};
    printf("Tasks:");
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        char v[32];
        printf(" %s %s%s", counters[i],
               zmqctl_cell(json_object_get(stats, counters[i]), v, sizeof v),
               i + 1 < sizeof counters / sizeof counters[0] ? "," : "\n");
    }
    printf("\nWorkers\n");
    zmqctl_format_workers(stdout, json_object_get(snap, "workers"));
    printf("\nQueues\n");
    zmqctl_format_queues(stdout, json_object_get(snap, "queues"));
    printf("\nRunning tasks\n");
    print_active(json_object_get(snap, "active"), now);
    const json_t *reserved = json_object_get(snap, "reserved");
    const json_t *scheduled = json_object_get(snap, "scheduled");
    printf("\nReserved: %zu task(s); scheduled: %zu task(s)\n",
           json_is_array(reserved) ? json_array_size(reserved) : 0,
           json_is_array(scheduled) ? json_array_size(scheduled) : 0);
}

static int run_once(const options_t *o) {
    int err = 0;
    char why[512] = "";
    zt_client_t *client = zt_client_new_config(&o->config, NULL, &err, why, sizeof why);
    if (!client) {
        fprintf(stderr, "zmqmon: cannot use broker %s: %s\n", o->config.broker_url,
                why[0] ? why : zt_strerror(err));
        return EXIT_FAIL;
    }
    zt_client_set_timeout(client, (int)lround(o->timeout_s * 1000));
    json_t *snap = json_object();
    int status = take_snapshot(client, snap);
    if (status == EXIT_OK) {
        if (o->json)
            zmqctl_print_json(stdout, snap);
        else
            print_snapshot(snap, o->config.broker_url);
    }
    json_decref(snap);
    zt_client_destroy(&client);
    return status;
}

/* ------------------------------------------------------------ main */

static int view_by_name(const char *name, mon_view_id_t *out) {
    static const char *const names[] = {"dashboard", "workers", "tasks", "queues"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (mon_view_id_t)i;
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv) {
    options_t o;
    memset(&o, 0, sizeof o);
    o.timeout_s = 3.0;
    o.refresh_hz = 5.0;
    o.interval_s = 1.0;
    snprintf(o.loglevel, sizeof o.loglevel, "warning");
    char reason[512] = "";
    if (zt_config_load(&o.config, argc, argv, reason, sizeof reason) != 0) {
        fprintf(stderr, "zmqmon: %s\n", reason);
        return EXIT_USAGE;
    }
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    derive_events_url(&o);
    mon_view_id_t first = MON_VIEW_DASHBOARD;
    if (o.view && view_by_name(o.view, &first) != 0)
        return bad("--view wants dashboard, workers, tasks or queues", o.view);
    zt_log_level_t level;
    if (zt_log_level_parse(o.loglevel, &level) != 0)
        return bad("--loglevel wants debug, info, warning or error", o.loglevel);
    /* the screen owns the terminal: log lines would tear it */
    const char *logfile = o.logfile_given ? o.logfile : o.once ? NULL : "/dev/null";
    if (zt_log_setup("zmqmon", level, logfile) != 0) {
        fprintf(stderr, "zmqmon: cannot open log file %s\n", logfile);
        return EXIT_USAGE;
    }

    if (o.once)
        return run_once(&o);

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr,
                "zmqmon: the screen needs a terminal; use --once [--json] for a snapshot\n");
        return EXIT_USAGE;
    }
    zt_curve_t *curve = NULL;
    if (zt_curve_from_config(&o.config, ZT_CURVE_CLIENT, &curve, reason, sizeof reason) != 0) {
        fprintf(stderr, "zmqmon: %s\n", reason);
        return EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    mon_app_options_t ao = {.broker_url = o.config.broker_url,
                            .events_url = o.config.events_url,
                            .backend_url = o.config.result_backend,
                            .curve = curve,
                            .history = (size_t)o.history,
                            .refresh_hz = o.refresh_hz,
                            .snapshot_s = o.interval_s,
                            .view = first,
                            .stop_flag = &stop_requested};
    rc = mon_app_run(&ao);
    zt_curve_destroy(&curve);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}
