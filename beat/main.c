/* zmqbeat: sends periodic tasks from a schedule file. Several may run; the
 * broker leases leadership to one (PROTOCOL.md §5.3), and only the leader
 * sends. Each run's task id is derived from (entry, fire time), so a run
 * sent twice (two leaders for a moment, a retry after a lost reply) is
 * refused by the broker as duplicate-id instead of running twice. The
 * broker keeps each entry's last fire time in its journal: a new leader
 * sends a run missed while no beat was up once, not once per period.
 *
 * One thread; SIGTERM/SIGINT end the loop. */
#include "cron.h"
#include "schedule.h"
#include "zt_client.h"
#include "zt_clock.h"
#include "zt_config.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_taskmsg.h"

#include <czmq.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 100           /* the loop's resolution */
#define LIST_FIRES 3          /* next fire times --list prints per entry */
#define CATCH_UP_STEPS 100000 /* bound on walking missed periods */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct {
    beat_entry_t *e;
    double next;      /* next fire (unix seconds); 0 = unknown until we lead */
    double last_sent; /* last fire this process sent and recorded */
    double warned;    /* fire time of the last refusal logged */
} slot_t;

typedef struct {
    zt_client_t *client;
    char name[200];
    int64_t lease_ms;
    double clock_offset; /* tests only: seconds added to the wall clock */
    bool leader;
    bool refused; /* CURVE: the broker refuses this beat's key (logged once) */
    slot_t *slots;
    size_t n;
} beat_t;

static double now_wall(const beat_t *b) {
    return zt_clock_wall() + b->clock_offset;
}

/* RFC 4122 version 5 (SHA-1, namespace URL) of "zmqbeat:ENTRY@FIRE", FIRE
 * being the fire time in whole UTC seconds: the same run always gets the
 * same id, on any machine. */
static void run_id(const char *entry, double fire, char *out, size_t size) {
    static const unsigned char ns_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                             0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    char iso[40], text[300];
    zt_clock_iso8601(floor(fire), iso, sizeof iso);
    iso[19] = '\0';
    int n = snprintf(text, sizeof text, "zmqbeat:%s@%sZ", entry, iso);
    ZT_ASSERT(size >= 37);
    zt_uuid5(ns_url, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1, out);
}

/* Asks for (or renews) the lease. On becoming leader, takes the broker's
 * last fire times: each entry's next run follows its last one (a run missed
 * meanwhile is due at once, and sent once); an entry never fired starts from
 * now. Returns 0, or a negative code when the broker did not answer. */
static int renew(beat_t *b) {
    json_t *entries = json_object();
    for (size_t i = 0; i < b->n; i++)
        json_object_set_new(entries, b->slots[i].e->name, json_real(b->slots[i].next));
    json_t *args = json_pack("{s:s, s:I, s:o}", "beat", b->name, "lease_ms",
                             (json_int_t)b->lease_ms, "entries", entries);
    json_t *result = NULL;
    int rc = zt_client_control(b->client, "beat-lease", args, &result);
    json_decref(args);
    if (rc != 0) {
        const char *why = zt_client_last_error(b->client);
        if (strncmp(why, "forbidden", 9) == 0) {
            if (!b->refused)
                zt_error("the broker refuses this beat's key (%s): not sending", why);
            b->refused = true;
        } else if (b->leader) {
            zt_warn("lost contact with the broker (%s): not sending until it answers", why);
        }
        b->leader = false;
        return rc;
    }
    b->refused = false;
    bool leader = json_is_true(json_object_get(result, "leader"));
    if (leader && !b->leader) {
        const json_t *fires = json_object_get(result, "last_fires");
        double now = now_wall(b);
        for (size_t i = 0; i < b->n; i++) {
            slot_t *s = &b->slots[i];
            const json_t *lf = json_object_get(fires, s->e->name);
            double last = json_is_number(lf) ? json_number_value(lf) : 0;
            if (last > 0 && last > s->last_sent)
                s->last_sent = last;
            s->next = s->last_sent > 0 ? beat_entry_next(s->e, s->last_sent, s->last_sent)
                                       : beat_entry_next(s->e, now, now);
        }
        zt_info("leading: sending periodic tasks (lease %lld ms)", (long long)b->lease_ms);
    } else if (!leader && b->leader) {
        zt_warn("lost the lease to %s: standing by",
                json_string_value(json_object_get(result, "holder")));
    } else if (!leader && !b->leader) {
        zt_debug("standing by: %s leads", json_string_value(json_object_get(result, "holder")));
    }
    b->leader = leader;
    json_decref(result);
    return 0;
}

/* Sends the run of s due at `fire` and records it with the broker. Returns
 * 0 when it went out (or the broker already had it), else a negative code
 * and the run stays due. */
static int fire_run(beat_t *b, slot_t *s, double fire) {
    const beat_entry_t *e = s->e;
    double now = now_wall(b);
    double expires = fire + beat_entry_expires(e, fire);
    char id[64];
    run_id(e->name, fire, id, sizeof id);
    if (expires <= now) {
        zt_warn("entry %s: run of %.0f expired %.0f s ago: skipped", e->name, fire, now - expires);
    } else {
        zt_task_options_t o;
        zt_task_options_init(&o);
        o.id = id;
        o.task = e->task;
        o.args = e->args;
        o.kwargs = e->kwargs;
        o.queue = e->queue;
        o.priority = e->priority;
        o.expires = expires;
        char got[ZT_ID_MAX + 1];
        int rc = zt_client_send(b->client, &o, got, sizeof got);
        const char *err = zt_client_last_error(b->client);
        if (rc == ZT_ERR_TIMEOUT) {
            zt_warn("entry %s: broker did not answer; the run will be sent when it does", e->name);
            b->leader = false; /* renew before sending again */
            return rc;
        }
        if (rc == 0) {
            zt_info("entry %s: sent %s[%s]", e->name, e->task, id);
        } else if (strncmp(err, "queue-full", 10) == 0) {
            /* the broker is full, not the run wrong: keep it due, try again */
            if (s->warned != fire) {
                s->warned = fire;
                zt_warn("entry %s: the broker is full (%s); the run stays due", e->name, err);
            }
            return ZT_ERR_REJECTED;
        } else if (strncmp(err, "duplicate-id", 12) == 0) {
            zt_info("entry %s: run %s was sent already", e->name, id);
        } else if (s->warned != fire) {
            s->warned = fire;
            zt_warn("entry %s: the broker refused %s: %s", e->name, e->task, err);
        }
    }
    json_t *args = json_pack("{s:s, s:s, s:f, s:f}", "beat", b->name, "entry", e->name, "fire",
                             fire, "next", beat_entry_next(e, fire, fire));
    json_t *result = NULL;
    int rc = zt_client_control(b->client, "beat-fired", args, &result);
    json_decref(args);
    json_decref(result);
    if (rc != 0) {
        zt_warn("entry %s: could not record the run with the broker: %s", e->name,
                zt_client_last_error(b->client));
        b->leader = false;
    }
    s->last_sent = fire;
    return 0;
}

static void tick(beat_t *b) {
    double now = now_wall(b);
    for (size_t i = 0; i < b->n && b->leader && !g_stop; i++) {
        slot_t *s = &b->slots[i];
        if (s->next <= 0 || s->next > now)
            continue;
        /* runs missed while nobody was sending collapse into the latest one */
        double fire = s->next;
        for (int k = 0; k < CATCH_UP_STEPS; k++) {
            double later = beat_entry_next(s->e, fire, fire);
            if (later <= fire || later > now)
                break;
            fire = later;
        }
        if (fire_run(b, s, fire) == 0)
            s->next = beat_entry_next(s->e, fire, fire);
    }
}

/* 3600000 -> "1h", 90000 -> "90s": the largest unit that divides it */
static const char *interval_text(int64_t ms) {
    static char buf[32];
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].ms == 0) {
            snprintf(buf, sizeof buf, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            break;
        }
    return buf;
}

static int list_entries(beat_schedule_t *sched, double now) {
    printf("%-28s %-44s %-22s %s\n", "ENTRY", "TASK", "SCHEDULE", "NEXT FIRES (UTC)");
    for (size_t i = 0; i < beat_schedule_size(sched); i++) {
        beat_entry_t *e = beat_schedule_at(sched, i);
        char when[80];
        if (e->cron)
            snprintf(when, sizeof when, "%s %s", beat_cron_expr(e->cron), beat_cron_tz(e->cron));
        else
            snprintf(when, sizeof when, "every %s", interval_text(e->every_ms));
        printf("%-28s %-44s %-22s", e->name, e->task, when);
        double t = now;
        for (int k = 0; k < LIST_FIRES; k++) {
            t = beat_entry_next(e, t, now);
            char iso[40];
            zt_clock_iso8601(t, iso, sizeof iso);
            iso[19] = '\0';
            printf(" %s", iso);
        }
        printf("\n");
    }
    return 0;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: zmqbeat --schedule FILE [OPTIONS]\n"
            "Sends periodic tasks from a schedule file (README, \"Periodic tasks\"). Run several\n"
            "for availability: the broker lets exactly one of them send.\n"
            "\n"
            "  --schedule FILE     the schedule (YAML)\n"
            "  --list              print each entry and its next fire times, then exit\n"
            "  -b, --broker URL    broker endpoint (default from config/ZMQ_BROKER_URL)\n"
            "  -n, --name NAME     this beat's name (default beat:HOST:PID)\n"
            "  --lease-ms N        leadership lease; a leader silent this long is replaced\n"
            "                      (default 15000)\n"
            "  --clock-offset S    tests only: seconds added to the wall clock\n"
            "  --config FILE       INI settings file\n"
            "  --loglevel L        debug, info, warning or error (default info)\n"
            "  --logfile F         log file (default standard error)\n"
            "  --help              this text\n");
}

int main(int argc, char **argv) {
    enum {
        OPT_SCHEDULE = 256,
        OPT_LIST,
        OPT_LEASE,
        OPT_OFFSET,
        OPT_CONFIG,
        OPT_LEVEL,
        OPT_LOGFILE
    };
    static const struct option longopts[] = {{"schedule", required_argument, NULL, OPT_SCHEDULE},
                                             {"list", no_argument, NULL, OPT_LIST},
                                             {"broker", required_argument, NULL, 'b'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"lease-ms", required_argument, NULL, OPT_LEASE},
                                             {"clock-offset", required_argument, NULL, OPT_OFFSET},
                                             {"config", required_argument, NULL, OPT_CONFIG},
                                             {"loglevel", required_argument, NULL, OPT_LEVEL},
                                             {"logfile", required_argument, NULL, OPT_LOGFILE},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    zt_config_t config;
    char reason[512];
    if (zt_config_load(&config, argc, argv, reason, sizeof reason) != 0) {
        fprintf(stderr, "zmqbeat: %s\n", reason);
        return 2;
    }
    const char *schedule_path = NULL;
    bool list = false;
    beat_t b;
    memset(&b, 0, sizeof b);
    b.lease_ms = 15000;
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(b.name, sizeof b.name, "beat:%s:%d", host, (int)getpid());
    int opt;
    while ((opt = getopt_long(argc, argv, "b:n:h", longopts, NULL)) != -1) {
        const char *key = NULL;
        char *end;
        switch (opt) {
        case OPT_SCHEDULE:
            schedule_path = optarg;
            break;
        case OPT_LIST:
            list = true;
            break;
        case 'b':
            key = "broker_url";
            break;
        case 'n':
            if (!zt_taskmsg_valid_name(optarg, strlen(optarg)) || strlen(optarg) >= sizeof b.name) {
                fprintf(stderr, "zmqbeat: --name must be characters of A-Z a-z 0-9 _ . : -\n");
                return 2;
            }
            snprintf(b.name, sizeof b.name, "%s", optarg);
            break;
        case OPT_LEASE:
            b.lease_ms = strtoll(optarg, &end, 10);
            if (*end || b.lease_ms < 300 || b.lease_ms > 3600000) {
                fprintf(stderr, "zmqbeat: --lease-ms must be 300-3600000\n");
                return 2;
            }
            break;
        case OPT_OFFSET:
            b.clock_offset = strtod(optarg, &end);
            if (*end || !isfinite(b.clock_offset)) {
                fprintf(stderr, "zmqbeat: --clock-offset must be a number of seconds\n");
                return 2;
            }
            break;
        case OPT_CONFIG:
            break;
        case OPT_LEVEL:
            key = "loglevel";
            break;
        case OPT_LOGFILE:
            key = "logfile";
            break;
        default:
            fprintf(stderr, "Try 'zmqbeat --help'.\n");
            return 2;
        }
        if (key && zt_config_set(&config, key, optarg, reason, sizeof reason) != 0) {
            fprintf(stderr, "zmqbeat: %s\n", reason);
            return 2;
        }
    }
    if (!schedule_path) {
        fprintf(stderr, "zmqbeat: --schedule FILE is required\nTry 'zmqbeat --help'.\n");
        return 2;
    }
    beat_schedule_t *sched = beat_schedule_load(schedule_path, reason, sizeof reason);
    if (!sched) {
        fprintf(stderr, "zmqbeat: %s\n", reason);
        return 2;
    }
    if (list) {
        int rc = list_entries(sched, zt_clock_wall() + b.clock_offset);
        beat_schedule_destroy(&sched);
        return rc;
    }
    zt_log_level_t level;
    if (zt_log_level_parse(config.loglevel, &level) != 0) {
        fprintf(stderr, "zmqbeat: bad log level '%s'\n", config.loglevel);
        beat_schedule_destroy(&sched);
        return 2;
    }
    zt_log_setup("beat", level, config.logfile[0] ? config.logfile : NULL);
    zsys_handler_set(NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int err = 0;
    char why[512] = "";
    b.client = zt_client_new_config(&config, NULL, &err, why, sizeof why);
    if (!b.client) {
        zt_error("%s", why);
        beat_schedule_destroy(&sched);
        return 2;
    }
    zt_client_set_timeout(b.client, 2000);
    b.n = beat_schedule_size(sched);
    b.slots = zt_calloc(b.n, sizeof *b.slots);
    for (size_t i = 0; i < b.n; i++)
        b.slots[i].e = beat_schedule_at(sched, i);
    zt_info("%s: %zu entries from %s, broker %s", b.name, b.n, schedule_path, config.broker_url);
    int64_t next_renew = 0;
    while (!g_stop) {
        int64_t now = zt_clock_mono_us();
        if (now >= next_renew || !b.leader) {
            int rc = renew(&b);
            /* renew a few times per lease; retry soon while the broker is away */
            next_renew = now + (rc == 0 ? b.lease_ms * 1000 / 4 : 500000);
        }
        if (b.leader)
            tick(&b);
        if (!g_stop)
            zclock_sleep(b.leader ? TICK_MS : 250);
    }
    zt_info("stopped");
    zt_client_destroy(&b.client);
    free(b.slots);
    beat_schedule_destroy(&sched);
    zsys_shutdown();
    return 0;
}
