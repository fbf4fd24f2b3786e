/* analyzer: see analyzer.h. With Gemini, the document embedding is taken of
 * the analysis itself (suggested name, summary, tags) followed by the start
 * of the text, so images -- which have no text -- still get a meaningful
 * vector from their caption. */
#include "analyzer.h"

#include "gemini.h"
#include "local_analyzer.h"
#include "zt_error.h"
#include "zt_log.h"
#include "zt_secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct drive2_analyzer {
    drive2_gemini_t *gemini; /* NULL: local */
};

drive2_analyzer_t *drive2_analyzer_new(const zt_config_t *config, char *err, size_t err_size) {
    const char *mode = config->analyzer[0] ? config->analyzer : "auto";
    if (strcmp(mode, "auto") != 0 && strcmp(mode, "gemini") != 0 && strcmp(mode, "local") != 0) {
        snprintf(err, err_size, "analyzer %s: expected auto, gemini or local", mode);
        return NULL;
    }
    drive2_analyzer_t *self = zt_calloc(1, sizeof *self);
    if (strcmp(mode, "local") == 0)
        return self;
    char key[512], reason[256];
    int rc = zt_secret_get("GEMINI_API_KEY", key, sizeof key, reason, sizeof reason);
    if (rc == ZT_ERR_NOT_FOUND && strcmp(mode, "auto") == 0)
        return self; /* no key: the embedded analyzer */
    if (rc != 0) {
        snprintf(err, err_size, "analyzer %s: GEMINI_API_KEY: %s", mode, reason);
        free(self);
        return NULL;
    }
    self->gemini = drive2_gemini_new(config, key, err, err_size);
    explicit_bzero(key, sizeof key);
    if (!self->gemini) {
        free(self);
        return NULL;
    }
    return self;
}

void drive2_analyzer_destroy(drive2_analyzer_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_gemini_destroy(&(*self_p)->gemini);
    free(*self_p);
    *self_p = NULL;
}

const char *drive2_analyzer_kind(const drive2_analyzer_t *self) {
    return self->gemini ? "gemini" : "local";
}

/* "name. summary. tags: a, b. text..." for the document embedding. */
static char *embedding_text(const drive2_analysis_t *a, const drive2_input_t *in, size_t *len) {
    size_t cap =
        4096 + (a->summary ? strlen(a->summary) : 0) + (a->filename ? strlen(a->filename) : 0);
    for (size_t i = 0; i < a->tag_count; i++)
        cap += strlen(a->tags[i]) + 2;
    char *t = zt_malloc(cap);
    size_t n = (size_t)snprintf(t, cap, "%s. %s. tags:", a->filename ? a->filename : "",
                                a->summary ? a->summary : "");
    for (size_t i = 0; i < a->tag_count && n < cap; i++)
        n += (size_t)snprintf(t + n, cap - n, " %s", a->tags[i]);
    if (in->text && in->text_len && n + 2 < cap) {
        size_t room = cap - n - 2, take = in->text_len < room ? in->text_len : room;
        while (take > 0 && take < in->text_len && ((unsigned char)in->text[take] & 0xC0) == 0x80)
            take--; /* never split a UTF-8 sequence */
        t[n++] = ' ';
        memcpy(t + n, in->text, take);
        n += take;
    }
    if (n >= cap)
        n = cap - 1;
    t[n] = '\0';
    *len = n;
    return t;
}

int drive2_analyzer_analyze(drive2_analyzer_t *self, const drive2_input_t *in,
                            drive2_analysis_t *out, char *err, size_t err_size) {
    int rc;
    if (!self->gemini) {
        rc = drive2_local_analyze(in, out, err, err_size);
        if (rc == 0 && !out->embedding) {
            size_t len;
            char *t = embedding_text(out, in, &len);
            out->embedding = zt_calloc(DRIVE2_LOCAL_DIM, sizeof(float));
            out->dim = DRIVE2_LOCAL_DIM;
            rc = drive2_local_embed(t, len, out->embedding, DRIVE2_LOCAL_DIM);
            free(t);
            if (rc)
                snprintf(err, err_size, "local analyzer: cannot embed the text");
        }
    } else {
        rc = drive2_gemini_generate(self->gemini, in, out, err, err_size);
        if (rc == 0) {
            size_t len;
            char *t = embedding_text(out, in, &len);
            rc = drive2_gemini_embed(self->gemini, t, len, "RETRIEVAL_DOCUMENT", &out->embedding,
                                     &out->dim, err, err_size);
            free(t);
        }
    }
    if (rc)
        drive2_analysis_clear(out);
    return rc;
}

int drive2_analyzer_embed_query(drive2_analyzer_t *self, const char *text, float **vec, size_t *dim,
                                char *err, size_t err_size) {
    *vec = NULL;
    *dim = 0;
    if (self->gemini)
        return drive2_gemini_embed(self->gemini, text, strlen(text), "RETRIEVAL_QUERY", vec, dim,
                                   err, err_size);
    float *v = zt_calloc(DRIVE2_LOCAL_DIM, sizeof *v);
    if (drive2_local_embed(text, strlen(text), v, DRIVE2_LOCAL_DIM) != 0) {
        free(v);
        snprintf(err, err_size, "local analyzer: cannot embed the query");
        return ZT_ERR_INVALID;
    }
    *vec = v;
    *dim = DRIVE2_LOCAL_DIM;
    return 0;
}
