/* zmqworker: parses options (command line > environment > config file >
 * defaults), registers the task modules, then runs worker_new -> worker_run
 * -> worker_destroy. Exit status: 0 after a shutdown, 1 on a failure to
 * start or run, 2 on a usage error. */
#include "tasks.h"
#include "worker.h"

#include "zt_config.h"
#include "zt_error.h"
#include "zt_log.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "Usage: zmqworker [OPTIONS]\n"
        "Runs tasks from a zmqbroker in a pool of child processes and writes their\n"
        "results to Redis (Celery's layout).\n"
        "\n"
        "  -b, --broker URL             broker endpoint (env ZMQ_BROKER_URL; default "
        "tcp://127.0.0.1:5555)\n"
        "  -Q, --queues A,B             queues to serve (default: default)\n"
        "  -c, --concurrency N          child processes (default: number of CPUs)\n"
        "      --prefetch-multiplier N  tasks reserved per child (default 4)\n"
        "  -n, --hostname NAME          worker name; %%h = host name, %%n = its first label,\n"
        "                               %%d = its domain (default worker@%%h)\n"
        "      --result-backend URL     redis://[:password@]host[:port][/db] (env RESULT_BACKEND)\n"
        "      --result-buffer-max N    result writes held while Redis is away (default 10000);\n"
        "                               past it the oldest results are lost, logged and counted\n"
        "      --max-tasks-per-child N  replace a child after N tasks (0: never)\n"
        "      --max-memory-per-child K replace a child above K KiB resident (0: no limit)\n"
        "      --time-limit S           hard time limit of a task, seconds (0: none)\n"
        "      --soft-time-limit S      soft time limit of a task, seconds (0: none)\n"
        "      --config FILE            INI settings file (Celery names, see below)\n"
        "      --loglevel L             debug, info, warning or error (default info)\n"
        "      --logfile F              log file (default: standard error)\n"
        "  -h, --help                   this text\n"
        "\n"
        "Signals: SIGTERM or SIGINT = warm shutdown (reserved tasks handed back, running\n"
        "ones finish); a second one or SIGQUIT = cold shutdown (children killed; the\n"
        "broker redelivers their tasks).\n"
        "\n"
        "Settings (config file keys):\n");
    zt_config_print_help(out);
}

enum {
    OPT_PREFETCH = 1000,
    OPT_BACKEND,
    OPT_RESULT_BUFFER_MAX,
    OPT_MAX_TASKS,
    OPT_MAX_MEMORY,
    OPT_TIME_LIMIT,
    OPT_SOFT_TIME_LIMIT,
    OPT_CONFIG,
    OPT_LOGLEVEL,
    OPT_LOGFILE
};

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"broker", required_argument, NULL, 'b'},
        {"queues", required_argument, NULL, 'Q'},
        {"concurrency", required_argument, NULL, 'c'},
        {"prefetch-multiplier", required_argument, NULL, OPT_PREFETCH},
        {"hostname", required_argument, NULL, 'n'},
        {"result-backend", required_argument, NULL, OPT_BACKEND},
        {"result-buffer-max", required_argument, NULL, OPT_RESULT_BUFFER_MAX},
        {"max-tasks-per-child", required_argument, NULL, OPT_MAX_TASKS},
        {"max-memory-per-child", required_argument, NULL, OPT_MAX_MEMORY},
        {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
        {"soft-time-limit", required_argument, NULL, OPT_SOFT_TIME_LIMIT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"loglevel", required_argument, NULL, OPT_LOGLEVEL},
        {"logfile", required_argument, NULL, OPT_LOGFILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};

    /* --help must work even with a broken config file. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    zt_config_t config;
    char reason[512];
    if (zt_config_load(&config, argc, argv, reason, sizeof reason) != 0) {
        fprintf(stderr, "zmqworker: %s\n", reason);
        return 2;
    }
    const char *queues = NULL;
    const char *name_pattern = "worker@%h";
    int opt;
    while ((opt = getopt_long(argc, argv, "b:Q:c:n:h", options, NULL)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case 'b':
            key = "broker_url";
            break;
        case 'Q':
            queues = optarg;
            break;
        case 'c':
            key = "worker_concurrency";
            break;
        case 'n':
            name_pattern = optarg;
            break;
        case OPT_PREFETCH:
            key = "worker_prefetch_multiplier";
            break;
        case OPT_BACKEND:
            key = "result_backend";
            break;
        case OPT_RESULT_BUFFER_MAX:
            key = "result_buffer_max";
            break;
        case OPT_MAX_TASKS:
            key = "worker_max_tasks_per_child";
            break;
        case OPT_MAX_MEMORY:
            key = "worker_max_memory_per_child";
            break;
        case OPT_TIME_LIMIT:
            key = "task_time_limit";
            break;
        case OPT_SOFT_TIME_LIMIT:
            key = "task_soft_time_limit";
            break;
        case OPT_CONFIG:
            break; /* read by zt_config_load */
        case OPT_LOGLEVEL:
            key = "loglevel";
            break;
        case OPT_LOGFILE:
            key = "logfile";
            break;
        default:
            fprintf(stderr, "Try 'zmqworker --help'.\n");
            return 2;
        }
        if (key && zt_config_set(&config, key, optarg, reason, sizeof reason) != 0) {
            fprintf(stderr, "zmqworker: %s\n", reason);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "zmqworker: unexpected argument '%s'\nTry 'zmqworker --help'.\n",
                argv[optind]);
        return 2;
    }
    zt_log_level_t level;
    if (zt_log_level_parse(config.loglevel, &level) != 0) {
        fprintf(stderr, "zmqworker: unknown log level '%s'\n", config.loglevel);
        return 2;
    }
    char name[256];
    if (!*name_pattern || worker_expand_name(name_pattern, name, sizeof name) != 0) {
        fprintf(stderr, "zmqworker: worker name '%s' is empty or too long\n", name_pattern);
        return 2;
    }
    zt_log_setup(name, level, config.logfile);

    /* Our own handlers, not czmq's: the worker's loop turns signals into shutdowns. */
    zsys_handler_set(NULL);

    worker_registry_t *registry = worker_registry_new();
    int rc = tasks_register_all(registry);
    if (rc != 0) {
        zt_error("cannot register the task modules: %s", zt_strerror(rc));
        worker_registry_destroy(&registry);
        return 1;
    }
    int err = 0;
    worker_t *worker = worker_new(&config, name, queues, registry, &err);
    if (!worker) {
        worker_registry_destroy(&registry);
        return err == ZT_ERR_INVALID ? 2 : 1;
    }
    rc = worker_run(worker);
    worker_destroy(&worker);
    worker_registry_destroy(&registry);
    return rc == 0 ? 0 : 1;
}
