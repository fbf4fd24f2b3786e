/* zmqctl: the command-line client of the cluster. Parses global options, one
 * command and its options; talks to the broker and the result backend only
 * through zt_client; prints tables (zmqctl_format) or raw JSON (--json).
 * Exit status: 0 ok; 1 rejected, error, FAILURE or REVOKED result; 2 usage
 * error; 3 timeout. Settings: command line > environment > file > defaults. */
#include "zmqctl_format.h"
#include "zt_client.h"
#include "zt_clock.h"
#include "zt_config.h"
#include "zt_curve.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAIL = 1,    /* rejected, error, FAILURE or REVOKED */
    CTL_EXIT_USAGE = 2,   /* bad command line */
    CTL_EXIT_TIMEOUT = 3, /* broker or result did not answer in time */
    CTL_HELP_SHOWN = -1   /* parse_options printed help: exit 0 */
};

#define CTL_DEFAULT_TIMEOUT_S 5.0

/* Settings every command sees. */
typedef struct {
    zt_config_t config; /* broker_url and result_backend are used */
    bool json;          /* print raw JSON instead of tables */
    double timeout_s;   /* seconds to wait for ACCEPTED / CONTROL-REPLY */
} ctl_t;

/* Long-only option codes. */
enum {
    OPT_RESULT_BACKEND = 256,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_CONFIG,
    OPT_ARGS,
    OPT_KWARGS,
    OPT_PRIORITY,
    OPT_COUNTDOWN,
    OPT_ETA,
    OPT_EXPIRES,
    OPT_MAX_RETRIES,
    OPT_RETRY_DELAY,
    OPT_TIME_LIMIT,
    OPT_SOFT_TIME_LIMIT,
    OPT_ID,
    OPT_WAIT,
    OPT_TERMINATE,
    OPT_SIGNAL,
    OPT_DESTINATION,
    OPT_REPLY_TIMEOUT,
    OPT_ROLE,
    OPT_DIR
};

#define CTL_DEFAULT_REPLY_TIMEOUT_S 1.0

/* Accepted before the command and after it, so `zmqctl send ... --json` works. */
#define GLOBAL_SHORT "b:h"
#define GLOBAL_LONG                                                                                \
    {"broker", required_argument, NULL, 'b'},                                                      \
        {"result-backend", required_argument, NULL, OPT_RESULT_BACKEND},                           \
        {"json", no_argument, NULL, OPT_JSON}, {"timeout", required_argument, NULL, OPT_TIMEOUT},  \
        {"config", required_argument, NULL, OPT_CONFIG}, {                                         \
        "help", no_argument, NULL, 'h'                                                             \
    }

typedef struct command command_t;
struct command {
    const char *name;
    const char *summary; /* one line for the command list */
    const char *usage;   /* synopsis and options, for COMMAND --help */
    const char *shortopts;
    const struct option *longopts;
    int (*run)(ctl_t *ctl, const command_t *cmd, int argc, char **argv);
};

/* ------------------------------------------------------------- parsing */

/* Parses a finite number >= min. Returns 0 or -1. */
static int parse_double(const char *text, double min, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < min)
        return -1;
    *out = v;
    return 0;
}

/* Parses a base-10 integer in [min, max]. Returns 0 or -1. */
static int parse_long(const char *text, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int usage_error(const command_t *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "zmqctl%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'zmqctl %s%s--help'.\n", cmd ? cmd->name : "", cmd ? " " : "");
    return CTL_EXIT_USAGE;
}

/* Copies a URL option into a config field, refusing ones that do not fit. */
static int set_url(char *field, const char *value, const command_t *cmd) {
    if (strlen(value) >= ZT_URL_MAX)
        return usage_error(cmd, "URL too long: %s", value);
    snprintf(field, ZT_URL_MAX, "%s", value);
    return 0;
}

/* Handles an option every command accepts. Returns 1 if c was not a global
 * option, 0 if handled, CTL_HELP_SHOWN for --help, CTL_EXIT_USAGE for a bad value. */
static int global_option(ctl_t *ctl, const command_t *cmd, int c, const char *arg) {
    switch (c) {
    case 'b':
        return set_url(ctl->config.broker_url, arg, cmd);
    case OPT_RESULT_BACKEND:
        return set_url(ctl->config.result_backend, arg, cmd);
    case OPT_JSON:
        ctl->json = true;
        return 0;
    case OPT_TIMEOUT:
        if (parse_double(arg, 0.001, &ctl->timeout_s) || ctl->timeout_s > 86400)
            return usage_error(cmd, "--timeout wants seconds (0.001 to 86400), not '%s'", arg);
        return 0;
    case OPT_CONFIG:
        return 0; /* already read by zt_config_load() */
    case 'h':
        return CTL_HELP_SHOWN;
    default:
        return 1;
    }
}

/* Per-command option handler: returns 0, or CTL_EXIT_USAGE after printing why. */
typedef int (*option_fn)(const command_t *cmd, void *state, int c, const char *arg);

/* Runs getopt_long over a command's arguments (argv[0] is the command name),
 * handing command options to handle and global ones to global_option().
 * Positional arguments end up, in order, at argv[*first .. argc).
 * Returns 0, CTL_HELP_SHOWN after printing the command's help, or CTL_EXIT_USAGE. */
static int parse_options(ctl_t *ctl, const command_t *cmd, int argc, char **argv, option_fn handle,
                         void *state, int *first) {
    char shortopts[64];
    snprintf(shortopts, sizeof shortopts, ":%s%s", GLOBAL_SHORT, cmd->shortopts);
    bool help = false;
    opterr = 0;
    optind = 0; /* GNU: reinitialise, scanning from argv[1] */
    int c;
    while ((c = getopt_long(argc, argv, shortopts, cmd->longopts, NULL)) != -1) {
        if (c == '?')
            return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        int rc = global_option(ctl, cmd, c, optarg);
        if (rc == CTL_HELP_SHOWN) {
            help = true;
            continue;
        }
        if (rc == 1)
            rc = handle ? handle(cmd, state, c, optarg) : 1;
        if (rc == 1)
            return usage_error(cmd, "unexpected option '%s'", argv[optind - 1]);
        if (rc)
            return rc;
    }
    if (help) {
        printf("%s", cmd->usage);
        return CTL_HELP_SHOWN;
    }
    *first = optind;
    return 0;
}

/* ------------------------------------------------------------ plumbing */

/* Opens a client; with_backend also connects to Redis. Returns NULL after
 * printing why, with *exit_code set. */
static zt_client_t *open_client(ctl_t *ctl, bool with_backend, int *exit_code) {
    int err = 0;
    char why[512] = "";
    zt_client_t *client = zt_client_new_config(
        &ctl->config, with_backend ? ctl->config.result_backend : NULL, &err, why, sizeof why);
    if (!client) {
        if (ctl->config.curve_client_cert[0] || ctl->config.curve_broker_key[0])
            fprintf(stderr, "zmqctl: %s\n", why); /* a CURVE setting; never key material */
        else if (err == ZT_ERR_BACKEND)
            fprintf(stderr, "zmqctl: cannot reach the result backend at %s\n",
                    ctl->config.result_backend);
        else
            fprintf(stderr, "zmqctl: cannot use broker %s%s%s: %s\n", ctl->config.broker_url,
                    with_backend ? " / backend " : "",
                    with_backend ? ctl->config.result_backend : "", zt_strerror(err));
        *exit_code = err == ZT_ERR_INVALID ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
        return NULL;
    }
    zt_client_set_timeout(client, (int)lround(ctl->timeout_s * 1000));
    return client;
}

/* Turns a failed client call into a message and an exit status. */
static int client_failure(ctl_t *ctl, zt_client_t *client, int rc, const char *what) {
    const char *detail = zt_client_last_error(client);
    switch (rc) {
    case ZT_ERR_TIMEOUT:
        fprintf(stderr, "zmqctl: %s: no reply from the broker at %s within %g s%s\n", what,
                ctl->config.broker_url, ctl->timeout_s,
                ctl->config.curve_client_cert[0]
                    ? " (CURVE: is this key in the broker's allowed folder, and is "
                      "curve_broker_key the broker's key?)"
                    : "");
        return CTL_EXIT_TIMEOUT;
    case ZT_ERR_REJECTED:
        fprintf(stderr, "zmqctl: %s rejected: %s\n", what, detail[0] ? detail : "no reason given");
        return CTL_EXIT_FAIL;
    case ZT_ERR_INVALID:
        fprintf(stderr, "zmqctl: %s: %s\n", what, detail[0] ? detail : zt_strerror(rc));
        return CTL_EXIT_USAGE;
    case ZT_ERR_BACKEND:
        fprintf(stderr, "zmqctl: %s: the result backend at %s failed or cannot be reached\n", what,
                ctl->config.result_backend);
        return CTL_EXIT_FAIL;
    default:
        fprintf(stderr, "zmqctl: %s failed: %s%s%s\n", what, zt_strerror(rc), detail[0] ? ": " : "",
                detail);
        return CTL_EXIT_FAIL;
    }
}

/* Prints a task's state (rc from zt_client_wait/get) and returns the exit
 * status: 0 for SUCCESS or a non-final state, 1 for FAILURE/REVOKED, 3 for a
 * wait that timed out. meta may be NULL (PENDING). */
static int report_state(ctl_t *ctl, const char *id, int rc, const json_t *meta, double waited_s) {
    const char *status = json_string_value(json_object_get(meta, "status"));
    if (!status)
        status = meta ? "UNKNOWN" : "PENDING";
    if (ctl->json) {
        json_t *out = json_object();
        json_object_set_new(out, "id", json_string(id));
        json_object_set_new(out, "status", json_string(status));
        static const char *const fields[] = {"result", "traceback", "date_done"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            json_t *v = meta ? json_object_get(meta, fields[i]) : NULL;
            json_object_set(out, fields[i], v ? v : json_null());
        }
        if (rc == ZT_ERR_TIMEOUT)
            json_object_set_new(out, "timeout", json_true());
        zmqctl_print_json(stdout, out);
        json_decref(out);
    } else {
        zmqctl_format_meta(stdout, id, status, meta);
    }
    if (rc == ZT_ERR_TIMEOUT) {
        fprintf(stderr, "zmqctl: task %s not finished within %g s (state %s)\n", id, waited_s,
                status);
        return CTL_EXIT_TIMEOUT;
    }
    if (!strcmp(status, "FAILURE") || !strcmp(status, "REVOKED"))
        return CTL_EXIT_FAIL;
    return CTL_EXIT_OK;
}

/* Waits up to wait_s for id's final state and reports it. */
static int wait_and_report(ctl_t *ctl, zt_client_t *client, const char *id, double wait_s) {
    json_t *meta = NULL;
    int rc = zt_client_wait(client, id, (int)lround(wait_s * 1000), &meta);
    int status;
    if (rc == 0 || rc == ZT_ERR_TIMEOUT)
        status = report_state(ctl, id, rc, meta, wait_s);
    else
        status = client_failure(ctl, client, rc, "wait");
    json_decref(meta);
    return status;
}

/* ---------------------------------------------------------------- send */

typedef struct {
    zt_task_options_t opts;
    json_t *args;
    json_t *kwargs;
    char queue[ZT_QUEUE_MAX + 1];
    char id[ZT_ID_MAX + 1];
    bool has_countdown, has_eta, has_wait;
    double expires_in; /* seconds from now; < 0 = none */
    double wait_s;
} send_state_t;

/* Parses --args/--kwargs text into a JSON array/object. */
static int parse_json_option(const command_t *cmd, const char *option, const char *text,
                             bool want_array, json_t **out) {
    json_error_t error;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &error);
    if (!v) {
        fprintf(stderr, "zmqctl send: %s is not valid JSON: %s (column %d)\n", option, error.text,
                error.column);
        return CTL_EXIT_USAGE;
    }
    if (want_array ? !json_is_array(v) : !json_is_object(v)) {
        json_decref(v);
        fprintf(stderr, "zmqctl send: %s must be a JSON %s, like %s\n", option,
                want_array ? "array" : "object", want_array ? "'[2, 3]'" : "'{\"x\": 1}'");
        return CTL_EXIT_USAGE;
    }
    json_decref(*out);
    *out = v;
    return 0;
}

static int send_option(const command_t *cmd, void *state, int c, const char *arg) {
    send_state_t *s = state;
    long n;
    double d;
    switch (c) {
    case OPT_ARGS:
        return parse_json_option(cmd, "--args", arg, true, &s->args);
    case OPT_KWARGS:
        return parse_json_option(cmd, "--kwargs", arg, false, &s->kwargs);
    case 'Q':
        if (!zt_taskmsg_valid_queue(arg, strlen(arg)))
            return usage_error(cmd, "bad queue name '%s' (1-100 of [A-Za-z0-9_.-])", arg);
        snprintf(s->queue, sizeof s->queue, "%s", arg);
        s->opts.queue = s->queue;
        return 0;
    case OPT_PRIORITY:
        if (parse_long(arg, ZT_PRIORITY_MIN, ZT_PRIORITY_MAX, &n))
            return usage_error(cmd, "--priority wants an integer 0-9, not '%s'", arg);
        s->opts.priority = (int)n;
        return 0;
    case OPT_COUNTDOWN:
        if (parse_double(arg, 0, &d))
            return usage_error(cmd, "--countdown wants seconds >= 0, not '%s'", arg);
        s->opts.countdown = d;
        s->has_countdown = true;
        return 0;
    case OPT_ETA:
        if (zt_clock_parse_iso8601(arg, &d))
            return usage_error(cmd,
                               "--eta wants an ISO 8601 time like 2026-11-28T17:00:00Z, "
                               "not '%s'",
                               arg);
        s->opts.eta = d;
        s->has_eta = true;
        return 0;
    case OPT_EXPIRES:
        if (parse_double(arg, 0, &d))
            return usage_error(cmd, "--expires wants seconds >= 0, not '%s'", arg);
        s->expires_in = d;
        return 0;
    case OPT_MAX_RETRIES:
        if (parse_long(arg, 0, 1000000, &n))
            return usage_error(cmd, "--max-retries wants an integer >= 0, not '%s'", arg);
        s->opts.max_retries = (int)n;
        return 0;
    case OPT_RETRY_DELAY:
        if (parse_double(arg, 0, &d))
            return usage_error(cmd, "--retry-delay wants seconds >= 0, not '%s'", arg);
        s->opts.retry_delay = d;
        return 0;
    case OPT_TIME_LIMIT:
    case OPT_SOFT_TIME_LIMIT:
        if (parse_double(arg, 0, &d) || d <= 0)
            return usage_error(cmd, "time limits want seconds > 0, not '%s'", arg);
        if (c == OPT_TIME_LIMIT)
            s->opts.time_limit = d;
        else
            s->opts.soft_time_limit = d;
        return 0;
    case OPT_ID:
        if (!zt_taskmsg_valid_id(arg, strlen(arg)))
            return usage_error(cmd, "bad task id '%s' (1-128 of [A-Za-z0-9._:@-])", arg);
        snprintf(s->id, sizeof s->id, "%s", arg);
        s->opts.id = s->id;
        return 0;
    case OPT_WAIT:
        if (parse_double(arg, 0, &d) || d > 86400 * 7)
            return usage_error(cmd, "--wait wants seconds (0 to 604800), not '%s'", arg);
        s->wait_s = d;
        s->has_wait = true;
        return 0;
    default:
        return 1;
    }
}

static int cmd_send(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    send_state_t s;
    memset(&s, 0, sizeof s);
    zt_task_options_init(&s.opts);
    s.expires_in = -1;
    int first, status = parse_options(ctl, cmd, argc, argv, send_option, &s, &first);
    if (status)
        goto done;
    if (argc - first != 1) {
        status = usage_error(
            cmd, "%s", argc - first ? "takes exactly one TASK name" : "missing the TASK name");
        goto done;
    }
    s.opts.task = argv[first];
    if (s.has_countdown && s.has_eta) {
        status = usage_error(cmd, "%s", "--countdown and --eta exclude each other");
        goto done;
    }
    s.opts.args = s.args;
    s.opts.kwargs = s.kwargs;
    if (s.expires_in >= 0)
        s.opts.expires = zt_clock_wall() + s.expires_in; /* absolute on the wire */

    zt_client_t *client = open_client(ctl, s.has_wait, &status);
    if (!client)
        goto done;
    char id[ZT_ID_MAX + 1];
    int rc = zt_client_send(client, &s.opts, id, sizeof id);
    if (rc) {
        status = client_failure(ctl, client, rc, "send");
    } else if (s.has_wait) {
        status = wait_and_report(ctl, client, id, s.wait_s);
    } else {
        if (ctl->json) {
            json_t *out = json_pack("{s:s}", "id", id);
            zmqctl_print_json(stdout, out);
            json_decref(out);
        } else {
            printf("%s\n", id);
        }
        status = CTL_EXIT_OK;
    }
    zt_client_destroy(&client);
done:
    json_decref(s.args);
    json_decref(s.kwargs);
    return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
}

/* -------------------------------------------------------------- result */

typedef struct {
    bool has_wait;
    double wait_s;
} result_state_t;

static int result_option(const command_t *cmd, void *state, int c, const char *arg) {
    result_state_t *s = state;
    if (c != OPT_WAIT)
        return 1;
    if (parse_double(arg, 0, &s->wait_s) || s->wait_s > 86400 * 7)
        return usage_error(cmd, "--wait wants seconds (0 to 604800), not '%s'", arg);
    s->has_wait = true;
    return 0;
}

/* Reads the one positional ID of result/revoke, validating it. */
static int one_id(const command_t *cmd, int argc, char **argv, int first, const char **id) {
    if (argc - first != 1)
        return usage_error(cmd, "%s",
                           argc - first ? "takes exactly one task ID" : "missing the task ID");
    if (!zt_taskmsg_valid_id(argv[first], strlen(argv[first])))
        return usage_error(cmd, "bad task id '%s'", argv[first]);
    *id = argv[first];
    return 0;
}

static int cmd_result(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    result_state_t s = {0};
    const char *id = NULL;
    int first, status = parse_options(ctl, cmd, argc, argv, result_option, &s, &first);
    if (!status)
        status = one_id(cmd, argc, argv, first, &id);
    if (status)
        return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
    zt_client_t *client = open_client(ctl, true, &status);
    if (!client)
        return status;
    if (s.has_wait) {
        status = wait_and_report(ctl, client, id, s.wait_s);
    } else {
        json_t *meta = NULL;
        int rc = zt_client_get(client, id, &meta);
        if (rc == 0 || rc == ZT_ERR_NOT_FOUND)
            status = report_state(ctl, id, 0, rc == 0 ? meta : NULL, 0);
        else
            status = client_failure(ctl, client, rc, "result");
        json_decref(meta);
    }
    zt_client_destroy(&client);
    return status;
}

/* -------------------------------------------------------------- control */

/* Sends CONTROL op with args (borrowed, may be NULL); on success stores the
 * result in *result (caller owns). Returns an exit status. */
static int control(ctl_t *ctl, const char *op, const json_t *args, json_t **result) {
    int status;
    zt_client_t *client = open_client(ctl, false, &status);
    if (!client)
        return status;
    int rc = zt_client_control(client, op, args, result);
    char what[64];
    snprintf(what, sizeof what, "%s", op);
    status = rc ? client_failure(ctl, client, rc, what) : CTL_EXIT_OK;
    zt_client_destroy(&client);
    return status;
}

typedef struct {
    bool terminate;
    const char *signal;
} revoke_state_t;

static int revoke_option(const command_t *cmd, void *state, int c, const char *arg) {
    revoke_state_t *s = state;
    if (c == OPT_TERMINATE) {
        s->terminate = true;
        return 0;
    }
    if (c != OPT_SIGNAL)
        return 1;
    const char *name = strncasecmp(arg, "SIG", 3) ? arg : arg + 3;
    if (!strcasecmp(name, "TERM"))
        s->signal = "SIGTERM";
    else if (!strcasecmp(name, "KILL"))
        s->signal = "SIGKILL";
    else
        return usage_error(cmd, "--signal wants SIGTERM or SIGKILL, not '%s'", arg);
    return 0;
}

static int cmd_revoke(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    revoke_state_t s = {false, NULL};
    const char *id = NULL;
    int first, status = parse_options(ctl, cmd, argc, argv, revoke_option, &s, &first);
    if (!status)
        status = one_id(cmd, argc, argv, first, &id);
    if (!status && s.signal && !s.terminate)
        status = usage_error(cmd, "%s", "--signal only makes sense with --terminate");
    if (status)
        return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
    json_t *args = json_pack("{s:s, s:b, s:s}", "id", id, "terminate", s.terminate, "signal",
                             s.signal ? s.signal : "SIGTERM");
    json_t *result = NULL;
    status = control(ctl, "revoke", args, &result);
    if (status == CTL_EXIT_OK) {
        if (ctl->json) {
            zmqctl_print_json(stdout, result);
        } else {
            const char *state = json_string_value(json_object_get(result, "state"));
            if (!state)
                state = "unknown";
            if (!strcmp(state, "running"))
                printf("revoked %s: running; %s\n", id,
                       s.terminate ? "its process is being terminated"
                                   : "its result will be discarded and recorded REVOKED");
            else if (!strcmp(state, "unknown"))
                printf("revoked %s: the broker does not hold it (finished, or never sent)\n", id);
            else
                printf("revoked %s: was %s; it will not run and ends REVOKED\n", id, state);
        }
    }
    json_decref(result);
    json_decref(args);
    return status;
}

typedef struct {
    const char *queue; /* NULL: all queues */
} purge_state_t;

static int purge_option(const command_t *cmd, void *state, int c, const char *arg) {
    purge_state_t *s = state;
    if (c != 'Q')
        return 1;
    if (!zt_taskmsg_valid_queue(arg, strlen(arg)))
        return usage_error(cmd, "bad queue name '%s'", arg);
    s->queue = arg;
    return 0;
}

static int cmd_purge(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    purge_state_t s = {NULL};
    int first, status = parse_options(ctl, cmd, argc, argv, purge_option, &s, &first);
    if (!status && argc - first)
        status = usage_error(cmd, "unexpected argument '%s' (use -Q QUEUE)", argv[first]);
    if (status)
        return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
    json_t *args = s.queue ? json_pack("{s:s}", "queue", s.queue) : NULL;
    json_t *result = NULL;
    status = control(ctl, "purge", args, &result);
    if (status == CTL_EXIT_OK) {
        if (ctl->json) {
            zmqctl_print_json(stdout, result);
        } else {
            char n[32];
            zmqctl_cell(json_object_get(result, "purged"), n, sizeof n);
            printf("purged %s task(s) from %s%s\n", n, s.queue ? "queue " : "all queues",
                   s.queue ? s.queue : "");
        }
    }
    json_decref(result);
    json_decref(args);
    return status;
}

/* queues, workers, ping, stats and inspect scheduled: a broker CONTROL op
 * without arguments, shown as a table. */
static int show(ctl_t *ctl, const char *op) {
    json_t *result = NULL;
    int64_t t0 = zt_clock_mono_us();
    int status = control(ctl, op, NULL, &result);
    double rtt_ms = (double)(zt_clock_mono_us() - t0) / 1000.0;
    if (status != CTL_EXIT_OK)
        return status;
    double now = zt_clock_wall();
    if (ctl->json)
        zmqctl_print_json(stdout, result);
    else if (!strcmp(op, "queues"))
        zmqctl_format_queues(stdout, result);
    else if (!strcmp(op, "workers"))
        zmqctl_format_workers(stdout, result);
    else if (!strcmp(op, "scheduled"))
        zmqctl_format_scheduled(stdout, result, now);
    else if (!strcmp(op, "stats"))
        zmqctl_format_stats(stdout, result);
    else if (!strcmp(op, "beat"))
        zmqctl_format_beat(stdout, result, now);
    else {
        char broker[256];
        const json_t *uptime = json_object_get(result, "uptime");
        printf("pong from broker %s (up %.1f s) in %.2f ms\n",
               zmqctl_cell(json_object_get(result, "broker"), broker, sizeof broker),
               json_is_number(uptime) ? json_number_value(uptime) : 0.0, rtt_ms);
    }
    json_decref(result);
    return CTL_EXIT_OK;
}

static int cmd_list(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    int first, status = parse_options(ctl, cmd, argc, argv, NULL, NULL, &first);
    if (!status && argc - first)
        status = usage_error(cmd, "unexpected argument '%s'", argv[first]);
    if (status)
        return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
    return show(ctl, cmd->name);
}

/* Options of commands answered by workers: -d NAME[,NAME...] and -t S. */
typedef struct {
    json_t *destination; /* JSON array of names, or NULL for every worker */
    double reply_timeout_s;
} remote_state_t;

static int remote_option(const command_t *cmd, void *state, int c, const char *arg) {
    remote_state_t *s = state;
    if (c == 't') {
        if (parse_double(arg, 0.01, &s->reply_timeout_s) || s->reply_timeout_s > 30)
            return usage_error(cmd, "-t wants seconds (0.01 to 30), not '%s'", arg);
        return 0;
    }
    if (c != 'd')
        return 1;
    if (!s->destination)
        s->destination = json_array();
    /* Accept -d a,b as well as -d a -d b. */
    const char *p = arg;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0)
            json_array_append_new(s->destination, json_stringn(p, n));
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Asks the live workers (or those in -d) through the broker's `broadcast`
 * and prints their answers. No worker answering is a failure, as in Celery
 * ("No nodes replied within time constraint"). */
static int ask_workers(ctl_t *ctl, const char *command, const remote_state_t *s) {
    json_t *args = json_object();
    json_object_set_new(args, "command", json_string(command));
    json_object_set_new(args, "timeout", json_real(s->reply_timeout_s));
    if (s->destination)
        json_object_set(args, "destination", s->destination);
    json_t *result = NULL;
    double saved = ctl->timeout_s;
    /* The broker answers once the reply timeout has passed: wait for that too. */
    ctl->timeout_s = saved + s->reply_timeout_s;
    int status = control(ctl, "broadcast", args, &result);
    ctl->timeout_s = saved;
    json_decref(args);
    if (status != CTL_EXIT_OK)
        return status;
    if (!json_is_object(result) || json_object_size(result) == 0) {
        if (ctl->json)
            zmqctl_print_json(stdout, json_is_object(result) ? result : NULL);
        fprintf(stderr, "zmqctl: no worker replied within %.2f s\n", s->reply_timeout_s);
        json_decref(result);
        return CTL_EXIT_FAIL;
    }
    if (ctl->json)
        zmqctl_print_json(stdout, result);
    else
        zmqctl_format_worker_replies(stdout, command, result, zt_clock_wall());
    json_decref(result);
    return CTL_EXIT_OK;
}

static int cmd_inspect(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    static const char *const remote[] = {"ping", "active", "reserved", "registered", "stats"};
    remote_state_t s = {NULL, CTL_DEFAULT_REPLY_TIMEOUT_S};
    int first, status = parse_options(ctl, cmd, argc, argv, remote_option, &s, &first);
    if (!status && argc - first != 1)
        status =
            usage_error(cmd, "%s", "wants one of ping|active|scheduled|reserved|registered|stats");
    if (!status && !strcmp(argv[first], "scheduled")) {
        /* Timers live in the broker, not in the workers. */
        status = s.destination ? usage_error(cmd, "%s", "-d does not apply to scheduled")
                               : show(ctl, "scheduled");
        /* and the periodic tasks zmqbeat sends (--json: `zmqctl beat --json`) */
        if (!status && !ctl->json) {
            printf("\n");
            status = show(ctl, "beat");
        }
        json_decref(s.destination);
        return status;
    }
    for (size_t i = 0; !status && i < sizeof remote / sizeof remote[0]; i++) {
        if (!strcmp(argv[first], remote[i])) {
            status = ask_workers(ctl, remote[i], &s);
            json_decref(s.destination);
            return status;
        }
    }
    if (!status)
        status = usage_error(cmd, "unknown inspect target '%s'", argv[first]);
    json_decref(s.destination);
    return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
}

static int cmd_control(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    remote_state_t s = {NULL, CTL_DEFAULT_REPLY_TIMEOUT_S};
    int first, status = parse_options(ctl, cmd, argc, argv, remote_option, &s, &first);
    if (!status && (argc - first != 1 || strcmp(argv[first], "shutdown") != 0))
        status = usage_error(cmd, "%s", "wants: shutdown");
    if (!status)
        status = ask_workers(ctl, "shutdown", &s);
    json_decref(s.destination);
    return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
}

/* ------------------------------------------------------------- commands */

/* keygen NAME --role ROLE [--dir DIR]: a certificate pair for one peer. */
typedef struct {
    const char *role;
    const char *dir;
} keygen_state_t;

static int keygen_option(const command_t *cmd, void *state, int c, const char *arg) {
    keygen_state_t *s = state;
    if (c == OPT_ROLE) {
        if (!zt_curve_role_valid(arg))
            return usage_error(cmd, "--role wants " ZT_CURVE_ROLES ", not '%s'", arg);
        s->role = arg;
        return 0;
    }
    if (c == OPT_DIR) {
        s->dir = arg;
        return 0;
    }
    return 1;
}

static int cmd_keygen(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    keygen_state_t s = {NULL, "."};
    int first, status = parse_options(ctl, cmd, argc, argv, keygen_option, &s, &first);
    if (!status && argc - first != 1)
        status = usage_error(cmd, "%s", argc - first ? "wants one NAME" : "wants a NAME");
    if (!status && !s.role)
        status = usage_error(cmd, "%s", "--role " ZT_CURVE_ROLES " is required");
    if (!status && !zt_curve_name_valid(argv[first]))
        status = usage_error(cmd, "bad NAME '%s' (1-64 of [A-Za-z0-9_.@-], no leading dot)",
                             argv[first]);
    if (status)
        return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
    const char *name = argv[first];
    char pub[4096], sec[4096], why[512];
    if (zt_curve_keygen(s.dir, name, s.role, pub, sizeof pub, sec, sizeof sec, why, sizeof why)) {
        fprintf(stderr, "zmqctl keygen: %s\n", why);
        return CTL_EXIT_FAIL;
    }
    /* read back what was written: the public key is printed, never the secret */
    zcert_t *cert = zcert_load(pub);
    const char *key = cert ? zcert_public_txt(cert) : "?";
    if (ctl->json) {
        json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "role", s.role,
                                "public_key", key, "public", pub, "secret", sec);
        zmqctl_print_json(stdout, out);
        json_decref(out);
    } else {
        printf("%s (role %s)\n  public key  %s\n  public      %s\n  secret      %s (mode 0600; "
               "keep it on its own machine)\n",
               name, s.role, key, pub, sec);
    }
    zcert_destroy(&cert);
    return CTL_EXIT_OK;
}

static int cmd_help(ctl_t *ctl, const command_t *cmd, int argc, char **argv);

static const struct option send_long[] = {
    GLOBAL_LONG,
    {"args", required_argument, NULL, OPT_ARGS},
    {"kwargs", required_argument, NULL, OPT_KWARGS},
    {"queue", required_argument, NULL, 'Q'},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"countdown", required_argument, NULL, OPT_COUNTDOWN},
    {"eta", required_argument, NULL, OPT_ETA},
    {"expires", required_argument, NULL, OPT_EXPIRES},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"retry-delay", required_argument, NULL, OPT_RETRY_DELAY},
    {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
    {"soft-time-limit", required_argument, NULL, OPT_SOFT_TIME_LIMIT},
    {"id", required_argument, NULL, OPT_ID},
    {"wait", required_argument, NULL, OPT_WAIT},
    {NULL, 0, NULL, 0}};
static const struct option result_long[] = {
    GLOBAL_LONG, {"wait", required_argument, NULL, OPT_WAIT}, {NULL, 0, NULL, 0}};
static const struct option revoke_long[] = {GLOBAL_LONG,
                                            {"terminate", no_argument, NULL, OPT_TERMINATE},
                                            {"signal", required_argument, NULL, OPT_SIGNAL},
                                            {NULL, 0, NULL, 0}};
static const struct option purge_long[] = {
    GLOBAL_LONG, {"queue", required_argument, NULL, 'Q'}, {NULL, 0, NULL, 0}};
static const struct option plain_long[] = {GLOBAL_LONG, {NULL, 0, NULL, 0}};
static const struct option keygen_long[] = {GLOBAL_LONG,
                                            {"role", required_argument, NULL, OPT_ROLE},
                                            {"dir", required_argument, NULL, OPT_DIR},
                                            {NULL, 0, NULL, 0}};
static const struct option remote_long[] = {GLOBAL_LONG,
                                            {"destination", required_argument, NULL, 'd'},
                                            {"reply-timeout", required_argument, NULL, 't'},
                                            {NULL, 0, NULL, 0}};

static const command_t commands[] = {
    {"send", "send a task; prints its id, or its result with --wait",
     "Usage: zmqctl send TASK [OPTIONS]\n"
     "\n"
     "Sends task TASK to the broker and prints its id (with --json: {\"id\": ...}).\n"
     "With --wait S it then waits up to S seconds for the result and prints it\n"
     "(with --json: {\"id\", \"status\", \"result\", \"traceback\", \"date_done\"}).\n"
     "\n"
     "  --args JSON            positional arguments, a JSON array   ('[2, 3]')\n"
     "  --kwargs JSON          keyword arguments, a JSON object     ('{\"x\": 1}')\n"
     "  -Q, --queue QUEUE      queue (default: default)\n"
     "  --priority N           0-9, higher runs first (default 0)\n"
     "  --countdown S          run no earlier than S seconds from now\n"
     "  --eta ISO8601          run no earlier than this time (no zone = UTC)\n"
     "  --expires S            do not run after S seconds from now (ends REVOKED)\n"
     "  --max-retries N        retries allowed (default: the worker's task_max_retries)\n"
     "  --retry-delay S        base delay of the retry backoff (default: the worker's)\n"
     "  --time-limit S         hard time limit of this call\n"
     "  --soft-time-limit S    soft time limit of this call\n"
     "  --id ID                use this task id instead of a new UUID\n"
     "  --wait S               wait up to S seconds for the result\n"
     "\n"
     "Exit status: 0 sent (or SUCCESS); 1 rejected, FAILURE or REVOKED; 2 usage;\n"
     "3 no reply from the broker, or no result within --wait.\n",
     "Q:", send_long, cmd_send},
    {"result", "show a task's state and result from the result backend",
     "Usage: zmqctl result ID [--wait S]\n"
     "\n"
     "Prints the state of task ID as the result backend holds it (PENDING when it\n"
     "has none). With --wait S, waits up to S seconds for a final state.\n"
     "With --json: {\"id\", \"status\", \"result\", \"traceback\", \"date_done\"}.\n"
     "\n"
     "Exit status: 0 SUCCESS or not final yet; 1 FAILURE or REVOKED; 3 --wait ran out.\n",
     "", result_long, cmd_result},
    {"revoke", "revoke a task (queued, scheduled or running)",
     "Usage: zmqctl revoke ID [--terminate] [--signal SIGTERM|SIGKILL]\n"
     "\n"
     "Revokes task ID: if it has not run yet it never will; if it is running its\n"
     "result is discarded. Either way it ends REVOKED.\n"
     "\n"
     "  --terminate            also signal the process running it\n"
     "  --signal SIG           SIGTERM (default) or SIGKILL, with --terminate\n",
     "", revoke_long, cmd_revoke},
    {"purge", "drop the ready tasks of a queue (all queues without -Q)",
     "Usage: zmqctl purge [-Q QUEUE]\n"
     "\n"
     "Removes the ready tasks of QUEUE (of every queue without -Q); they end REVOKED\n"
     "with reason purged. Scheduled and running tasks are not touched.\n",
     "Q:", purge_long, cmd_purge},
    {"queues", "list queues: ready, scheduled, in flight, consumers, by priority",
     "Usage: zmqctl queues\n"
     "\n"
     "Lists the broker's queues with their ready, scheduled and in-flight counts,\n"
     "consumers, and ready tasks per priority (9 first).\n",
     "", plain_long, cmd_list},
    {"workers", "list workers: queues, concurrency, load, heartbeat",
     "Usage: zmqctl workers\n"
     "\n"
     "Lists the workers the broker knows: name, host, queues, concurrency, tasks in\n"
     "flight, processed and failed counts, time since last heard of, online.\n",
     "", plain_long, cmd_list},
    {"ping", "check that the broker answers, and how fast",
     "Usage: zmqctl ping\n"
     "\n"
     "Prints the broker's name, its uptime and the round trip.\n",
     "", plain_long, cmd_list},
    {"stats", "the broker's counters (tasks submitted, dispatched, failed, ...)",
     "Usage: zmqctl stats\n"
     "\n"
     "Prints the broker's counters: submitted, accepted, rejected, dispatched,\n"
     "succeeded, failed, retried, revoked, expired, redelivered, protocol errors...\n",
     "", plain_long, cmd_list},
    {"beat", "zmqbeat: the leader, each periodic entry's last and next fire",
     "Usage: zmqctl beat\n"
     "\n"
     "Shows which zmqbeat holds the lease (and for how long still) and, for each\n"
     "schedule entry the broker knows, its last fire and the leader's next fire.\n",
     "", plain_long, cmd_list},
    {"inspect", "ask the workers: ping|active|reserved|registered|stats; or scheduled",
     "Usage: zmqctl inspect ping|active|scheduled|reserved|registered|stats\n"
     "                      [-d NAME[,NAME...]] [-t S]\n"
     "\n"
     "Asked of every live worker (or those named with -d), through the broker;\n"
     "workers that do not answer within -t seconds (default 1) are left out:\n"
     "  ping        each worker answers pong\n"
     "  active      tasks running now, with runtime and last progress\n"
     "  reserved    tasks received and not started yet\n"
     "  registered  the task names each worker can run\n"
     "  stats       pool size and pids, children recycled, tasks processed per\n"
     "              name, CPU time and peak memory, uptime, broker connection\n"
     "Asked of the broker:\n"
     "  scheduled   countdown, ETA and retry timers waiting to release\n"
     "\n"
     "  -d, --destination NAME   only these workers (repeat, or comma-separated)\n"
     "  -t, --reply-timeout S    how long to wait for workers (default 1, at most 30)\n"
     "\n"
     "With --json: a map worker name -> its answer. Exit status 1 if no worker replied.\n",
     "d:t:", remote_long, cmd_inspect},
    {"control", "steer workers: shutdown",
     "Usage: zmqctl control shutdown [-d NAME[,NAME...]] [-t S]\n"
     "\n"
     "  shutdown    the workers (all, or those named with -d) begin a warm shutdown:\n"
     "              they stop taking work, hand reserved tasks back and finish\n"
     "              the running ones.\n",
     "d:t:", remote_long, cmd_control},
    {"keygen", "make a CURVE certificate pair for a broker, worker, client, beat or admin",
     "Usage: zmqctl keygen NAME --role worker|client|beat|admin [--dir DIR]\n"
     "\n"
     "Writes DIR/NAME.key (the public certificate: copy it into the broker's\n"
     "curve_allowed_dir) and DIR/NAME.key_secret (mode 0600: stays on the machine\n"
     "that uses it, named by curve_client_cert or curve_server_cert). Both carry\n"
     "the metadata name = NAME and role = ROLE; the broker grants what the role\n"
     "allows (docs/SECURITY.md). A broker's own pair may have any role. Existing\n"
     "files are never overwritten. Prints the public key, never the secret one.\n"
     "\n"
     "  --role ROLE            worker, client, beat or admin (required)\n"
     "  --dir DIR              where to write (default: the current folder)\n",
     "", keygen_long, cmd_keygen},
    {"help", "show help for a command", "Usage: zmqctl help [COMMAND]\n", "", plain_long, cmd_help},
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static void print_main_help(FILE *out) {
    fprintf(out, "Usage: zmqctl [OPTIONS] COMMAND [ARGS...]\n"
                 "\n"
                 "Talks to a zmqbroker: sends tasks, reads results, revokes, purges, inspects.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Options (before or after the command):\n"
            "  -b, --broker URL        broker endpoint (env ZMQ_BROKER_URL,\n"
            "                          default tcp://127.0.0.1:5555)\n"
            "  --result-backend URL    Redis holding results (env RESULT_BACKEND,\n"
            "                          default redis://127.0.0.1:6379/1)\n"
            "  --json                  machine-readable output (one JSON value per line)\n"
            "  --timeout S             seconds to wait for the broker's reply (default %g)\n"
            "  --config FILE           INI file (broker_url, result_backend, ...)\n"
            "  -h, --help              this help; 'zmqctl COMMAND --help' for a command\n"
            "\n"
            "CURVE (docs/SECURITY.md): curve_client_cert (env ZT_CURVE_CLIENT_CERT_FILE),\n"
            "this client's secret certificate file, and curve_broker_key (env\n"
            "ZT_CURVE_BROKER_KEY), the broker's public key, from the config file or the\n"
            "environment; never on the command line.\n"
            "\n"
            "Precedence: command line > environment > config file > defaults.\n"
            "Exit status: 0 ok; 1 rejected, error, FAILURE or REVOKED result;\n"
            "2 usage error; 3 timeout.\n",
            CTL_DEFAULT_TIMEOUT_S);
}

static const command_t *find_command(const char *name) {
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int cmd_help(ctl_t *ctl, const command_t *cmd, int argc, char **argv) {
    int first, status = parse_options(ctl, cmd, argc, argv, NULL, NULL, &first);
    if (status)
        return status == CTL_HELP_SHOWN ? CTL_EXIT_OK : status;
    if (argc - first == 0) {
        print_main_help(stdout);
        return CTL_EXIT_OK;
    }
    const command_t *topic = find_command(argv[first]);
    if (!topic)
        return usage_error(NULL, "no command '%s'", argv[first]);
    printf("%s", topic->usage);
    return CTL_EXIT_OK;
}

int main(int argc, char **argv) {
    zt_log_setup("zmqctl", ZT_LOG_WARNING, NULL);
    ctl_t ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.timeout_s = CTL_DEFAULT_TIMEOUT_S;
    char reason[512] = "";
    int rc = zt_config_load(&ctl.config, argc, argv, reason, sizeof reason);
    if (rc) {
        fprintf(stderr, "zmqctl: %s\n", reason[0] ? reason : zt_strerror(rc));
        return CTL_EXIT_USAGE;
    }

    /* Global options up to the command name ('+': stop at the first word). */
    static const struct option global_long[] = {GLOBAL_LONG, {NULL, 0, NULL, 0}};
    bool help = false;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:" GLOBAL_SHORT, global_long, NULL)) != -1) {
        if (c == '?')
            return usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error(NULL, "option '%s' needs a value", argv[optind - 1]);
        rc = global_option(&ctl, NULL, c, optarg);
        if (rc == CTL_HELP_SHOWN)
            help = true;
        else if (rc)
            return rc;
    }
    if (optind >= argc) {
        if (help) {
            print_main_help(stdout);
            return CTL_EXIT_OK;
        }
        print_main_help(stderr);
        return CTL_EXIT_USAGE;
    }
    const command_t *cmd = find_command(argv[optind]);
    if (!cmd)
        return usage_error(NULL, "unknown command '%s'", argv[optind]);
    if (help) {
        printf("%s", cmd->usage);
        return CTL_EXIT_OK;
    }
    return cmd->run(&ctl, cmd, argc - optind, argv + optind);
}
