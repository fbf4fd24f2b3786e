/* zmqbroker: parses options (defaults < config file < environment < command
 * line), sets up logging and signals, then broker new -> run -> destroy.
 * SIGTERM/SIGINT end the loop; the process exits 0 after freeing everything.
 * SIGHUP rereads the allowed CURVE certificates (docs/SECURITY.md). */
#include "broker.h"
#include "zt_config.h"
#include "zt_error.h"
#include "zt_log.h"

#include <czmq.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop;   /* the signal flags: SIGTERM/SIGINT */
static volatile sig_atomic_t g_reload; /* SIGHUP */

static void on_signal(int sig) {
    if (sig == SIGHUP)
        g_reload = 1;
    else
        g_stop = 1;
}

static void usage(FILE *out, const zt_config_t *d) {
    fprintf(
        out,
        "Usage: zmqbroker [OPTIONS]\n"
        "The task broker: named priority queues, delayed and retried tasks, credit-based\n"
        "dispatch to workers, events stream (ZTP/1, docs/PROTOCOL.md).\n"
        "\n"
        "Options (command line > environment > config file > defaults):\n"
        "  --bind EP                ROUTER endpoint for clients and workers (default %s)\n"
        "  --events-bind EP         events PUB endpoint (default %s)\n"
        "  --data-dir DIR           journal and snapshots, locked by one broker (default %s)\n"
        "  --heartbeat-ms N         msecs between heartbeats (default %lld)\n"
        "  --liveness N             heartbeats missed before a worker is dead (default %lld)\n"
        "  --max-message-bytes N    largest message accepted, bytes (default %lld)\n"
        "  --fsync MODE             journal durability: always, batch (group commit) or off\n"
        "                           (default %s; docs/DURABILITY.md)\n"
        "  --fsync-interval-ms N    batch, under load: least msecs between the starts of two\n"
        "                           fsyncs (default %lld; 0: back to back)\n"
        "  --journal-compact-bytes N  journal bytes that start a compaction into a\n"
        "                           snapshot; 0 = never (default %lld)\n"
        "  --max-queue-length N     tasks waiting in one queue (ready + scheduled) before\n"
        "                           SUBMIT gets REJECTED queue-full; 0 = no limit (default %lld)\n"
        "  --max-queued-bytes N     bytes of all tasks held before SUBMIT gets REJECTED\n"
        "                           queue-full; 0 = no limit (default %lld)\n"
        "  --insecure               allow binding non-loopback TCP without CURVE (refused\n"
        "                           otherwise; prefer curve_server_cert, docs/SECURITY.md)\n"
        "  --config FILE            INI settings file (keys below; default none)\n"
        "  --loglevel L             debug, info, warning or error (default %s)\n"
        "  --logfile F              log file (default standard error)\n"
        "  --help                   this text\n"
        "\n"
        "Config file keys used: broker_bind, broker_events_bind, broker_data_dir,\n"
        "broker_heartbeat_ms, broker_liveness, broker_max_message_bytes, broker_fsync,\n"
        "broker_fsync_interval_ms, broker_journal_compact_bytes, broker_max_queue_length,\n"
        "broker_max_queued_bytes, broker_insecure, curve_server_cert, curve_allowed_dir,\n"
        "loglevel, logfile.\n"
        "\n"
        "CURVE (docs/SECURITY.md): with curve_server_cert (env ZT_CURVE_SERVER_CERT_FILE)\n"
        "and curve_allowed_dir (env ZT_CURVE_ALLOWED_DIR) both sockets encrypt and\n"
        "authenticate, and each key's role (worker, client, beat, admin) decides what it\n"
        "may do. Certificate files come from the config file or the environment, never\n"
        "from the command line. SIGHUP rereads curve_allowed_dir.\n"
        "\n",
        d->broker_bind, d->broker_events_bind, d->broker_data_dir,
        (long long)d->broker_heartbeat_ms, (long long)d->broker_liveness,
        (long long)d->broker_max_message_bytes, d->broker_fsync,
        (long long)d->broker_fsync_interval_ms, (long long)d->broker_journal_compact_bytes,
        (long long)d->broker_max_queue_length, (long long)d->broker_max_queued_bytes, d->loglevel);
    zt_config_print_help(out);
}

int main(int argc, char **argv) {
    zt_config_t config;
    char reason[512];
    zt_config_t defaults;
    zt_config_defaults(&defaults);
    zt_log_setup("broker", ZT_LOG_INFO, NULL);

    enum {
        OPT_BIND = 256,
        OPT_EVENTS,
        OPT_DATA,
        OPT_HB,
        OPT_LIVE,
        OPT_MAX,
        OPT_CONFIG,
        OPT_LEVEL,
        OPT_LOGFILE,
        OPT_HELP,
        OPT_FSYNC,
        OPT_FSYNC_MS,
        OPT_COMPACT,
        OPT_MAX_QLEN,
        OPT_MAX_QBYTES,
        OPT_INSECURE
    };
    static const struct option longopts[] = {
        {"bind", required_argument, NULL, OPT_BIND},
        {"events-bind", required_argument, NULL, OPT_EVENTS},
        {"data-dir", required_argument, NULL, OPT_DATA},
        {"heartbeat-ms", required_argument, NULL, OPT_HB},
        {"liveness", required_argument, NULL, OPT_LIVE},
        {"max-message-bytes", required_argument, NULL, OPT_MAX},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"loglevel", required_argument, NULL, OPT_LEVEL},
        {"logfile", required_argument, NULL, OPT_LOGFILE},
        {"help", no_argument, NULL, OPT_HELP},
        {"fsync", required_argument, NULL, OPT_FSYNC},
        {"fsync-interval-ms", required_argument, NULL, OPT_FSYNC_MS},
        {"journal-compact-bytes", required_argument, NULL, OPT_COMPACT},
        {"max-queue-length", required_argument, NULL, OPT_MAX_QLEN},
        {"max-queued-bytes", required_argument, NULL, OPT_MAX_QBYTES},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {NULL, 0, NULL, 0}};

    /* --help first, so it works even with a broken config file */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, &defaults);
            return 0;
        }
    }
    if (zt_config_load(&config, argc, argv, reason, sizeof reason) != 0) {
        fprintf(stderr, "zmqbroker: %s\n", reason);
        return 2;
    }
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case OPT_BIND:
            key = "broker_bind";
            break;
        case OPT_EVENTS:
            key = "broker_events_bind";
            break;
        case OPT_DATA:
            key = "broker_data_dir";
            break;
        case OPT_HB:
            key = "broker_heartbeat_ms";
            break;
        case OPT_LIVE:
            key = "broker_liveness";
            break;
        case OPT_MAX:
            key = "broker_max_message_bytes";
            break;
        case OPT_LEVEL:
            key = "loglevel";
            break;
        case OPT_LOGFILE:
            key = "logfile";
            break;
        case OPT_CONFIG:
            break; /* read by zt_config_load() */
        case OPT_FSYNC:
            key = "broker_fsync";
            break;
        case OPT_FSYNC_MS:
            key = "broker_fsync_interval_ms";
            break;
        case OPT_COMPACT:
            key = "broker_journal_compact_bytes";
            break;
        case OPT_MAX_QLEN:
            key = "broker_max_queue_length";
            break;
        case OPT_MAX_QBYTES:
            key = "broker_max_queued_bytes";
            break;
        case OPT_INSECURE:
            config.broker_insecure = 1;
            break;
        default:
            fprintf(stderr, "zmqbroker: unknown option or missing value: %s\n", argv[optind - 1]);
            fprintf(stderr, "Try 'zmqbroker --help'.\n");
            return 2;
        }
        if (key && zt_config_set(&config, key, optarg, reason, sizeof reason) != 0) {
            fprintf(stderr, "zmqbroker: %s\n", reason);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "zmqbroker: unexpected argument '%s'\nTry 'zmqbroker --help'.\n",
                argv[optind]);
        return 2;
    }
    zt_log_level_t level;
    if (zt_log_level_parse(config.loglevel, &level) != 0) {
        fprintf(stderr, "zmqbroker: bad log level '%s'\n", config.loglevel);
        return 2;
    }
    broker_options_t opts;
    broker_options_defaults(&opts);
    if (broker_fsync_parse(config.broker_fsync, &opts.fsync) != 0) {
        fprintf(stderr, "zmqbroker: fsync must be always, batch or off, not '%s'\n",
                config.broker_fsync);
        return 2;
    }
    zt_log_setup("broker", level, config.logfile[0] ? config.logfile : NULL);

    /* Our handlers, not czmq's; and block the signals while the ZeroMQ
     * context starts its I/O threads, so they inherit the block and the
     * signal always lands in this thread, interrupting its poll(2). */
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    opts.bind = config.broker_bind;
    opts.events_bind = config.broker_events_bind;
    opts.data_dir = config.broker_data_dir;
    opts.heartbeat_ms = config.broker_heartbeat_ms;
    opts.liveness = config.broker_liveness;
    opts.max_message_bytes = config.broker_max_message_bytes;
    opts.fsync_interval_ms = config.broker_fsync_interval_ms;
    opts.compact_bytes = config.broker_journal_compact_bytes;
    opts.max_queue_length = config.broker_max_queue_length;
    opts.max_queued_bytes = config.broker_max_queued_bytes;
    opts.stop_flag = &g_stop;
    opts.reload_flag = &g_reload;
    opts.curve_server_cert = config.curve_server_cert;
    opts.curve_allowed_dir = config.curve_allowed_dir;
    opts.insecure = config.broker_insecure != 0;
    /* tests only: simulate a full disk (docs/DURABILITY.md) */
    opts.journal_fault_file = getenv("ZT_JOURNAL_FAULT_FILE");
    int err = 0;
    broker_t *broker = broker_new(&opts, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!broker) {
        zt_error("cannot start: %s", zt_strerror(err));
        return 1;
    }
    int rc = broker_run(broker);
    broker_destroy(&broker);
    zsys_shutdown();
    zt_info("stopped");
    return rc == 0 ? 0 : 1;
}
