/* zt-drive2-probe: a test-only driver for the Drive2 service fronts
 * (storage, analyzer, vectors), used by test/system/test_drive2_services.py.
 * Not a user tool: it is built with the tests and never installed. Settings
 * come the usual way (--config FILE, then the environment); each command
 * prints one JSON object on stdout, {"ok": true, ...} or
 * {"ok": false, "error": "...", "code": N}, and exits 0 or 1 (2 on usage).
 *
 *   zt-drive2-probe [--config FILE] COMMAND ARGS
 *     key-valid KEY           put KEY FILE            put-text KEY TEXT
 *     get KEY [OUTFILE]       delete KEY              list [PREFIX]
 *     analyze FILE MIME NAME  embed TEXT
 *     vec-upsert FILE_ID CSV  vec-search CSV K        (CSV: 0.1,0.2,...) */
#include "analysis.h"
#include "analyzer.h"
#include "catalog.h"
#include "storage.h"
#include "vectors.h"
#include "zt_config.h"
#include "zt_error.h"
#include "zt_log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int finish(json_t *out, int rc, const char *err) {
    if (!out)
        out = json_object();
    json_object_set_new(out, "ok", json_boolean(rc == 0));
    if (rc != 0) {
        json_object_set_new(out, "error", json_string(err));
        json_object_set_new(out, "code", json_integer(rc));
        json_object_set_new(out, "code_name", json_string(zt_strerror(rc)));
    }
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(out);
    return rc == 0 ? 0 : 1;
}

static int usage(void) {
    fprintf(stderr,
            "usage: zt-drive2-probe [--config FILE] COMMAND ARGS (see test/drive2_probe.c)\n");
    return 2;
}

static float *parse_csv(const char *csv, size_t *dim) {
    size_t n = 1;
    for (const char *p = csv; *p; p++)
        n += *p == ',';
    float *v = zt_calloc(n, sizeof *v);
    char *end;
    const char *p = csv;
    for (size_t i = 0; i < n; i++) {
        v[i] = strtof(p, &end);
        p = *end == ',' ? end + 1 : end;
    }
    *dim = n;
    return v;
}

static int storage_cmd(const zt_config_t *config, int argc, char **argv) {
    char err[1024] = "";
    const char *cmd = argv[0];
    if (strcmp(cmd, "key-valid") == 0) {
        if (argc < 2)
            return usage();
        char why[128];
        int ok = drive2_storage_key_valid(argv[1], why, sizeof why);
        return finish(json_pack("{sbss}", "valid", ok, "why", why), 0, NULL);
    }
    drive2_storage_t *st = drive2_storage_new(config, err, sizeof err);
    if (!st)
        return finish(NULL, ZT_ERR_INVALID, err);
    json_t *out = json_pack("{ss}", "backend", drive2_storage_kind(st));
    int rc;
    if (strcmp(cmd, "put") == 0 && argc >= 3) {
        rc = drive2_storage_put_file(st, argv[1], argv[2], err, sizeof err);
    } else if (strcmp(cmd, "put-text") == 0 && argc >= 3) {
        rc = drive2_storage_put(st, argv[1], argv[2], strlen(argv[2]), "text/plain", err,
                                sizeof err);
    } else if (strcmp(cmd, "get") == 0 && argc >= 2) {
        unsigned char *data;
        size_t len;
        rc = drive2_storage_get(st, argv[1], &data, &len, err, sizeof err);
        if (rc == 0) {
            json_object_set_new(out, "size", json_integer((json_int_t)len));
            if (argc >= 3) {
                FILE *f = fopen(argv[2], "wb");
                if (!f || fwrite(data, 1, len, f) != len) {
                    snprintf(err, sizeof err, "cannot write %s", argv[2]);
                    rc = ZT_ERR_IO;
                }
                if (f)
                    fclose(f);
            } else {
                json_object_set_new(out, "text", json_stringn((const char *)data, len));
            }
            free(data);
        }
    } else if (strcmp(cmd, "delete") == 0 && argc >= 2) {
        rc = drive2_storage_delete(st, argv[1], err, sizeof err);
    } else if (strcmp(cmd, "list") == 0) {
        char **keys;
        size_t count;
        rc = drive2_storage_list(st, argc >= 2 ? argv[1] : "", 100000, &keys, &count, err,
                                 sizeof err);
        if (rc == 0) {
            json_t *a = json_array();
            for (size_t i = 0; i < count; i++)
                json_array_append_new(a, json_string(keys[i]));
            json_object_set_new(out, "keys", a);
            drive2_storage_keys_free(keys, count);
        }
    } else {
        json_decref(out);
        drive2_storage_destroy(&st);
        return usage();
    }
    drive2_storage_destroy(&st);
    return finish(out, rc, err);
}

static int read_all(const char *path, unsigned char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return ZT_ERR_IO;
    size_t cap = 4096, n = 0;
    unsigned char *buf = zt_malloc(cap + 1);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = zt_realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static json_t *vector_json(const float *v, size_t dim) {
    json_t *a = json_array();
    for (size_t i = 0; i < dim; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

static int analyzer_cmd(const zt_config_t *config, int argc, char **argv) {
    char err[1024] = "";
    const char *cmd = argv[0];
    drive2_analyzer_t *an = drive2_analyzer_new(config, err, sizeof err);
    if (!an)
        return finish(NULL, ZT_ERR_INVALID, err);
    json_t *out = json_pack("{ss}", "analyzer", drive2_analyzer_kind(an));
    int rc;
    if (strcmp(cmd, "analyze") == 0 && argc >= 4) {
        unsigned char *data = NULL;
        size_t len = 0;
        rc = read_all(argv[1], &data, &len);
        if (rc) {
            snprintf(err, sizeof err, "cannot read %s", argv[1]);
        } else {
            int image = strncmp(argv[2], "image/", 6) == 0;
            drive2_input_t in = {.file_id = "probe-file",
                                 .original_name = argv[3],
                                 .mime_type = argv[2],
                                 .size = (int64_t)len,
                                 .text = image ? NULL : (const char *)data,
                                 .text_len = image ? 0 : len,
                                 .image = image ? data : NULL,
                                 .image_len = image ? len : 0};
            drive2_analysis_t a = {0};
            rc = drive2_analyzer_analyze(an, &in, &a, err, sizeof err);
            if (rc == 0) {
                json_t *tags = json_array();
                for (size_t i = 0; i < a.tag_count; i++)
                    json_array_append_new(tags, json_string(a.tags[i]));
                json_object_set_new(out, "filename", json_string(a.filename));
                json_object_set_new(out, "summary", json_string(a.summary));
                json_object_set_new(out, "tags", tags);
                json_object_set_new(out, "dim", json_integer((json_int_t)a.dim));
                json_object_set_new(out, "embedding", vector_json(a.embedding, a.dim));
            }
            drive2_analysis_clear(&a);
        }
        free(data);
    } else if (strcmp(cmd, "embed") == 0 && argc >= 2) {
        float *v = NULL;
        size_t dim = 0;
        rc = drive2_analyzer_embed_query(an, argv[1], &v, &dim, err, sizeof err);
        if (rc == 0) {
            json_object_set_new(out, "dim", json_integer((json_int_t)dim));
            json_object_set_new(out, "embedding", vector_json(v, dim));
        }
        free(v);
    } else {
        json_decref(out);
        drive2_analyzer_destroy(&an);
        return usage();
    }
    drive2_analyzer_destroy(&an);
    return finish(out, rc, err);
}

static int vectors_cmd(const zt_config_t *config, int argc, char **argv) {
    char err[1024] = "";
    const char *cmd = argv[0];
    /* Without qdrant_url the front uses the catalog's embedded store. */
    drive2_catalog_t *catalog = NULL;
    if (!config->qdrant_url[0]) {
        catalog = drive2_catalog_new(config, err, sizeof err);
        if (!catalog)
            return finish(NULL, ZT_ERR_INVALID, err);
    }
    drive2_vectors_t *vs = drive2_vectors_new(config, catalog, err, sizeof err);
    if (!vs) {
        drive2_catalog_destroy(&catalog);
        return finish(NULL, ZT_ERR_INVALID, err);
    }
    json_t *out = json_pack("{ss}", "vectors", drive2_vectors_kind(vs));
    int rc;
    if (strcmp(cmd, "vec-upsert") == 0 && argc >= 3) {
        size_t dim;
        float *v = parse_csv(argv[2], &dim);
        rc = drive2_vectors_upsert(vs, argv[1], v, dim, err, sizeof err);
        free(v);
    } else if (strcmp(cmd, "vec-search") == 0 && argc >= 3) {
        size_t dim, found = 0, k = (size_t)atoi(argv[2]);
        if (k < 1 || k > 1000)
            k = 10;
        float *v = parse_csv(argv[1], &dim);
        drive2_hit_t *hits = zt_calloc(k, sizeof *hits);
        rc = drive2_vectors_search(vs, v, dim, hits, k, &found, err, sizeof err);
        if (rc == 0) {
            json_t *a = json_array();
            for (size_t i = 0; i < found; i++)
                json_array_append_new(
                    a, json_pack("{sssf}", "file_id", hits[i].file_id, "score", hits[i].score));
            json_object_set_new(out, "hits", a);
        }
        free(hits);
        free(v);
    } else {
        json_decref(out);
        drive2_vectors_destroy(&vs);
        drive2_catalog_destroy(&catalog);
        return usage();
    }
    drive2_vectors_destroy(&vs);
    drive2_catalog_destroy(&catalog);
    return finish(out, rc, err);
}

int main(int argc, char **argv) {
    zt_log_setup("drive2-probe", ZT_LOG_WARNING, NULL);
    zt_config_t config;
    char reason[512];
    if (zt_config_load(&config, argc, argv, reason, sizeof reason) != 0) {
        fprintf(stderr, "zt-drive2-probe: %s\n", reason);
        return 2;
    }
    int i = 1;
    while (i < argc && strncmp(argv[i], "--config", 8) == 0)
        i += strchr(argv[i], '=') ? 1 : 2;
    if (i >= argc)
        return usage();
    char **args = argv + i;
    int n = argc - i;
    const char *cmd = args[0];
    if (strcmp(cmd, "analyze") == 0 || strcmp(cmd, "embed") == 0)
        return analyzer_cmd(&config, n, args);
    if (strncmp(cmd, "vec-", 4) == 0)
        return vectors_cmd(&config, n, args);
    return storage_cmd(&config, n, args);
}
