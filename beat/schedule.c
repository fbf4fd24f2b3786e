/* schedule: see schedule.h. libyaml's document API gives a node tree whose
 * nodes carry their line, so every error points at the line it is about. */
#include "schedule.h"
#include "zt_error.h"
#include "zt_taskmsg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define ENTRIES_MAX 1024

struct beat_schedule {
    beat_entry_t *entries;
    size_t count;
};

typedef struct {
    yaml_document_t *doc;
    const char *path;
    char *why;
    size_t why_size;
} loader_t;

static int fail(loader_t *l, const yaml_node_t *node, const char *fmt, const char *a,
                const char *b) {
    char reason[512];
    snprintf(reason, sizeof reason, fmt, a, b);
    snprintf(l->why, l->why_size, "%s:%lu: %s", l->path,
             node ? (unsigned long)node->start_mark.line + 1 : 1UL, reason);
    return ZT_ERR_INVALID;
}

static const char *scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A YAML node as JSON: plain scalars that read as numbers, booleans or null
 * become those; quoted ones stay strings. */
static json_t *to_json(loader_t *l, yaml_node_t *n, int depth) {
    if (!n || depth > 32)
        return NULL;
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            if (!strcmp(v, "true") || !strcmp(v, "false"))
                return json_boolean(!strcmp(v, "true"));
            if (!strcmp(v, "null") || !strcmp(v, "~") || !*v)
                return json_null();
            char *end;
            errno = 0;
            long long i = strtoll(v, &end, 10);
            if (!errno && *end == '\0')
                return json_integer(i);
            double d = strtod(v, &end);
            if (*end == '\0' && isfinite(d))
                return json_real(d);
        }
        return json_string(v);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v = to_json(l, yaml_document_get_node(l->doc, *it), depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    if (n->type == YAML_MAPPING_NODE) {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            const char *k = scalar(yaml_document_get_node(l->doc, p->key));
            json_t *v = to_json(l, yaml_document_get_node(l->doc, p->value), depth + 1);
            if (!k || !v) {
                json_decref(v);
                json_decref(o);
                return NULL;
            }
            json_object_set_new(o, k, v);
        }
        return o;
    }
    return NULL;
}

static void entry_clear(beat_entry_t *e) {
    free(e->name);
    free(e->task);
    free(e->queue);
    json_decref(e->args);
    json_decref(e->kwargs);
    beat_cron_destroy(&e->cron);
    memset(e, 0, sizeof *e);
}

/* key: the node of the entry's name, the line entry-level errors name */
static int load_entry(loader_t *l, const char *name, yaml_node_t *key, yaml_node_t *node,
                      const char *zone, beat_entry_t *e) {
    if (!zt_taskmsg_valid_name(name, strlen(name)))
        return fail(l, node, "entry name '%s' must be characters of A-Z a-z 0-9 _ . : -%s", name,
                    "");
    if (node->type != YAML_MAPPING_NODE)
        return fail(l, key, "entry '%s' must be a mapping (task, every or cron, ...)%s", name, "");
    e->name = strdup(name);
    e->queue = strdup("default");
    e->args = json_array();
    e->kwargs = json_object();
    const char *every = NULL, *cron = NULL, *tz = zone;
    yaml_node_t *cron_node = NULL, *every_node = NULL;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(l->doc, p->value);
        const char *k = scalar(kn), *v = scalar(vn);
        if (!k)
            return fail(l, kn, "entry '%s': keys must be plain words%s", name, "");
        if (!strcmp(k, "args") || !strcmp(k, "kwargs")) {
            json_t *j = to_json(l, vn, 0);
            bool is_args = !strcmp(k, "args");
            if (!j || (is_args ? !json_is_array(j) : !json_is_object(j))) {
                json_decref(j);
                return fail(l, vn, "entry '%s': %s", name,
                            is_args ? "args must be a list" : "kwargs must be a mapping");
            }
            json_decref(is_args ? e->args : e->kwargs);
            *(is_args ? &e->args : &e->kwargs) = j;
            continue;
        }
        if (!v)
            return fail(l, vn, "entry '%s': '%s' must be a single value", name, k);
        if (!strcmp(k, "task")) {
            if (!zt_taskmsg_valid_name(v, strlen(v)))
                return fail(l, vn, "entry '%s': task '%s' is not a task name", name, v);
            free(e->task);
            e->task = strdup(v);
        } else if (!strcmp(k, "queue")) {
            if (!zt_taskmsg_valid_queue(v, strlen(v)))
                return fail(l, vn, "entry '%s': queue '%s' is not a queue name", name, v);
            free(e->queue);
            e->queue = strdup(v);
        } else if (!strcmp(k, "priority")) {
            char *end;
            long pr = strtol(v, &end, 10);
            if (*end || end == v || pr < 0 || pr > ZT_PRIORITY_MAX)
                return fail(l, vn, "entry '%s': priority must be 0-9, not '%s'", name, v);
            e->priority = (int)pr;
        } else if (!strcmp(k, "every")) {
            every = v;
            every_node = vn;
        } else if (!strcmp(k, "cron")) {
            cron = v;
            cron_node = vn;
        } else if (!strcmp(k, "timezone")) {
            tz = v;
        } else if (!strcmp(k, "expires")) {
            char why[200];
            int64_t ms = beat_interval_parse_ms(v, why, sizeof why);
            if (ms < 0)
                return fail(l, vn, "entry '%s': expires: %s", name, why);
            e->expires_s = (double)ms / 1000.0;
        } else {
            return fail(l, kn,
                        "entry '%s': unknown key '%s' (task, args, kwargs, queue, priority, "
                        "every, cron, timezone, expires)",
                        name, k);
        }
    }
    if (!e->task)
        return fail(l, key, "entry '%s' has no task%s", name, "");
    if (!!every == !!cron)
        return fail(l, key, "entry '%s' needs exactly one of every or cron%s", name, "");
    char why[200];
    if (every) {
        e->every_ms = beat_interval_parse_ms(every, why, sizeof why);
        if (e->every_ms < 0)
            return fail(l, every_node, "entry '%s': %s", name, why);
    } else {
        e->cron = beat_cron_new(cron, tz, why, sizeof why);
        if (!e->cron)
            return fail(l, cron_node, "entry '%s': %s", name, why);
    }
    return 0;
}

beat_schedule_t *beat_schedule_load(const char *path, char *why, size_t why_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(why, why_size, "%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "not valid YAML");
        yaml_parser_delete(&parser);
        fclose(f);
        return NULL;
    }
    yaml_parser_delete(&parser);
    fclose(f);
    loader_t l = {&doc, path, why, why_size};
    beat_schedule_t *self = zt_calloc(1, sizeof *self);
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *entries = NULL;
    const char *zone = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = fail(&l, root, "the file must be a mapping with 'entries'%s%s", "", "");
    } else {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             rc == 0 && p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
            const char *k = scalar(kn);
            if (k && !strcmp(k, "entries"))
                entries = vn;
            else if (k && !strcmp(k, "timezone") && scalar(vn))
                zone = scalar(vn);
            else
                rc = fail(&l, kn, "unknown top-level key '%s' (entries, timezone)%s", k ? k : "?",
                          "");
        }
        if (rc == 0 && (!entries || entries->type != YAML_MAPPING_NODE))
            rc = fail(&l, entries ? entries : root,
                      "'entries' must be a mapping of entry name to entry%s%s", "", "");
    }
    if (rc == 0) {
        size_t n = (size_t)(entries->data.mapping.pairs.top - entries->data.mapping.pairs.start);
        if (n == 0 || n > ENTRIES_MAX)
            rc = fail(&l, entries, "'entries' must hold 1-%s entries%s", "1024", "");
        else
            self->entries = zt_calloc(n, sizeof *self->entries);
        for (yaml_node_pair_t *p = entries->data.mapping.pairs.start;
             rc == 0 && p < entries->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
            const char *name = scalar(kn);
            if (!name) {
                rc = fail(&l, kn, "entry names must be plain words%s%s", "", "");
                break;
            }
            for (size_t i = 0; i < self->count; i++)
                if (!strcmp(self->entries[i].name, name))
                    rc = fail(&l, kn, "entry '%s' appears twice%s", name, "");
            if (rc)
                break;
            beat_entry_t *e = &self->entries[self->count++];
            rc = load_entry(&l, name, kn, yaml_document_get_node(&doc, p->value), zone, e);
        }
    }
    yaml_document_delete(&doc);
    if (rc != 0)
        beat_schedule_destroy(&self);
    return self;
}

void beat_schedule_destroy(beat_schedule_t **self_p) {
    if (!self_p || !*self_p)
        return;
    beat_schedule_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        entry_clear(&self->entries[i]);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

size_t beat_schedule_size(const beat_schedule_t *self) {
    return self->count;
}

beat_entry_t *beat_schedule_at(beat_schedule_t *self, size_t i) {
    return &self->entries[i];
}

double beat_entry_next(const beat_entry_t *e, double after, double anchor) {
    if (e->cron) {
        int64_t t = beat_cron_next(e->cron, (int64_t)floor(after));
        return t < 0 ? 0 : (double)t;
    }
    double every = (double)e->every_ms / 1000.0;
    if (anchor <= 0 || anchor > after)
        anchor = after;
    double k = floor((after - anchor) / every) + 1;
    return anchor + k * every;
}

double beat_entry_expires(const beat_entry_t *e, double fire) {
    if (e->expires_s > 0)
        return e->expires_s;
    if (e->every_ms)
        return (double)e->every_ms / 1000.0;
    double next = beat_entry_next(e, fire, 0);
    return next > fire ? next - fire : 60.0;
}
