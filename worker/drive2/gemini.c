/* gemini: see gemini.h. Request and answer shapes follow the Gemini API
 * reference (v1beta): POST {base}/v1beta/models/{model}:generateContent with
 * {"contents":[{"role":"user","parts":[{"text"},{"inlineData"}]}],
 *  "generationConfig":{"responseMimeType":"application/json","responseSchema":{...}}}
 * answered by {"candidates":[{"content":{"parts":[{"text":"<json>"}]},"finishReason"}]};
 * POST {base}/v1beta/models/{model}:embedContent with
 * {"model":"models/M","content":{"parts":[{"text"}]},"taskType"} answered by
 * {"embedding":{"values":[...]}}. Errors come as {"error":{"code","message","status"}}. */
#include "gemini.h"

#include "http.h"
#include "zt_error.h"
#include "zt_log.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAGS 20

struct drive2_gemini {
    drive2_http_t *http;
    char *generate_url;
    char *embed_url;
    char *embed_model; /* "models/NAME" */
    char key[512];
    char key_header[600]; /* "x-goog-api-key: KEY" */
};

static int model_name_ok(const char *m) {
    if (!*m || strlen(m) > 100)
        return 0;
    for (const char *p = m; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            return 0;
    return 1;
}

drive2_gemini_t *drive2_gemini_new(const zt_config_t *config, const char *api_key, char *err,
                                   size_t err_size) {
    const char *base = config->gemini_base_url;
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        snprintf(err, err_size, "gemini_base_url: expected an http:// or https:// URL");
        return NULL;
    }
    if (!model_name_ok(config->gemini_model) || !model_name_ok(config->gemini_embed_model)) {
        snprintf(err, err_size,
                 "gemini_model / gemini_embed_model: use letters, digits, '-', '.' and '_'");
        return NULL;
    }
    if (!api_key || !*api_key || strlen(api_key) >= 512 || strpbrk(api_key, "\r\n")) {
        snprintf(err, err_size, "GEMINI_API_KEY is missing or malformed");
        return NULL;
    }
    drive2_gemini_t *self = zt_calloc(1, sizeof *self);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    size_t n = bl + 256;
    self->generate_url = zt_malloc(n);
    snprintf(self->generate_url, n, "%.*s/v1beta/models/%s:generateContent", (int)bl, base,
             config->gemini_model);
    self->embed_url = zt_malloc(n);
    snprintf(self->embed_url, n, "%.*s/v1beta/models/%s:embedContent", (int)bl, base,
             config->gemini_embed_model);
    self->embed_model = zt_malloc(sizeof config->gemini_embed_model + 8);
    snprintf(self->embed_model, sizeof config->gemini_embed_model + 8, "models/%s",
             config->gemini_embed_model);
    snprintf(self->key, sizeof self->key, "%s", api_key);
    snprintf(self->key_header, sizeof self->key_header, "x-goog-api-key: %s", api_key);
    drive2_http_options_t o;
    drive2_http_options_default(&o);
    o.max_attempts = 5;
    o.timeout_ms = 90000;
    o.max_total_ms = 180000;
    o.max_response_bytes = 8u << 20;
    self->http = drive2_http_new(&o);
    if (!self->http) {
        snprintf(err, err_size, "gemini: cannot initialise libcurl");
        drive2_gemini_destroy(&self);
    }
    return self;
}

void drive2_gemini_destroy(drive2_gemini_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_gemini_t *self = *self_p;
    drive2_http_destroy(&self->http);
    free(self->generate_url);
    free(self->embed_url);
    free(self->embed_model);
    explicit_bzero(self->key, sizeof self->key);
    explicit_bzero(self->key_header, sizeof self->key_header);
    free(self);
    *self_p = NULL;
}

/* Copies src into dst, replacing any occurrence of the key by "***", so a
 * server that echoes the key cannot make us print it. */
static void scrub(const drive2_gemini_t *self, const char *src, char *dst, size_t size) {
    size_t kl = strlen(self->key), o = 0;
    for (const char *p = src; *p && o + 1 < size;) {
        if (kl >= 4 && strncmp(p, self->key, kl) == 0) {
            for (const char *s = "***"; *s && o + 1 < size; s++)
                dst[o++] = *s;
            p += kl;
        } else {
            dst[o++] = *p++;
        }
    }
    dst[o] = '\0';
}

/* POSTs body (a JSON object, consumed) to url. On 2xx *answer is the parsed
 * JSON (caller decrefs). what names the call in errors. */
static int post_json(drive2_gemini_t *self, const char *url, json_t *body, const char *what,
                     json_t **answer, char *err, size_t err_size) {
    *answer = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        snprintf(err, err_size, "Gemini %s: cannot encode the request", what);
        return ZT_ERR_INVALID;
    }
    const char *headers[] = {self->key_header, "Content-Type: application/json", NULL};
    drive2_http_request_t rq = {.method = "POST",
                                .url = url,
                                .headers = headers,
                                .body = (const unsigned char *)text,
                                .body_len = strlen(text)};
    drive2_http_response_t r;
    char herr[600];
    int rc = drive2_http_perform(self->http, &rq, &r, herr, sizeof herr);
    free(text);
    if (rc) {
        snprintf(err, err_size, "Gemini %s: %s", what, herr);
        drive2_http_response_clear(&r);
        return rc;
    }
    json_error_t jerr;
    json_t *j = json_loadb((const char *)r.body, r.body_len, 0, &jerr);
    if (r.status < 200 || r.status > 299) {
        const char *status = NULL, *message = NULL;
        json_t *e = j ? json_object_get(j, "error") : NULL;
        if (e) {
            status = json_string_value(json_object_get(e, "status"));
            message = json_string_value(json_object_get(e, "message"));
        }
        char msg[400];
        scrub(self, message ? message : "", msg, sizeof msg);
        snprintf(err, err_size, "Gemini %s: HTTP %ld%s%s%s%s%s", what, r.status, status ? " " : "",
                 status ? status : "", msg[0] ? ": " : "", msg,
                 r.status == 429 || r.status >= 500 ? " (after retries)" : "");
        long st = r.status;
        json_decref(j);
        drive2_http_response_clear(&r);
        return st == 429 || st >= 500 ? ZT_ERR_IO : ZT_ERR_REJECTED;
    }
    drive2_http_response_clear(&r);
    if (!j || !json_is_object(j)) {
        snprintf(err, err_size, "Gemini %s: the answer is not a JSON object", what);
        json_decref(j);
        return ZT_ERR_PROTOCOL;
    }
    *answer = j;
    return 0;
}

/* Cuts at most max bytes of s without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static char *base64(const unsigned char *data, size_t len) {
    size_t n = 4 * ((len + 2) / 3) + 1;
    char *out = zt_malloc(n);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static json_t *response_schema(void) {
    return json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:{s:s}, s:s}}, s:[sss]}",
                     "type", "OBJECT", "properties", "filename", "type", "STRING", "description",
                     "a descriptive file name keeping the original extension", "summary", "type",
                     "STRING", "description", "two or three sentences on what the file contains",
                     "tags", "type", "ARRAY", "items", "type", "STRING", "description",
                     "three to eight short lower-case topic tags", "required", "filename",
                     "summary", "tags");
}

/* A file name safe to show and store: no '/', '\\' or control characters,
 * at most 200 bytes, the original's extension added when it went missing. */
static char *clean_filename(const char *name, const char *original) {
    char buf[256];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o < 200; p++)
        buf[o++] = (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\') ? '_' : (char)*p;
    o = utf8_cut(buf, o, o);
    buf[o] = '\0';
    const char *ext = original ? strrchr(original, '.') : NULL;
    if (ext && strlen(ext) <= 10 && !strrchr(buf, '.'))
        snprintf(buf + o, sizeof buf - o, "%s", ext);
    return zt_strdup(buf);
}

int drive2_gemini_generate(drive2_gemini_t *self, const drive2_input_t *in, drive2_analysis_t *out,
                           char *err, size_t err_size) {
    char prompt[1024];
    snprintf(prompt, sizeof prompt,
             "You name and describe files stored in a personal drive. File: \"%s\", type %s, "
             "%lld bytes. Answer with JSON: a descriptive filename that keeps the extension, a "
             "summary of two or three sentences, and three to eight short lower-case tags.%s",
             in->original_name ? in->original_name : "unnamed",
             in->mime_type ? in->mime_type : "application/octet-stream", (long long)in->size,
             in->text && in->text_len ? " The file's text follows." : "");
    json_t *parts = json_array();
    json_array_append_new(parts, json_pack("{ss}", "text", prompt));
    if (in->text && in->text_len) {
        size_t n = utf8_cut(in->text, in->text_len, DRIVE2_GEMINI_TEXT_MAX);
        json_t *t = json_stringn(in->text, n);
        if (!t) /* not UTF-8: leave the text out rather than fail the file */
            zt_warn("gemini: file %s: text is not UTF-8, sent without it",
                    in->file_id ? in->file_id : "?");
        else
            json_array_append_new(parts, json_pack("{so}", "text", t));
    }
    if (in->image && in->image_len && in->image_len <= DRIVE2_GEMINI_IMAGE_MAX && in->mime_type) {
        char *b64 = base64(in->image, in->image_len);
        json_array_append_new(
            parts, json_pack("{s{ssss}}", "inlineData", "mimeType", in->mime_type, "data", b64));
        free(b64);
    }
    json_t *body = json_pack("{s[{ssso}]s{sssosf}}", "contents", "role", "user", "parts", parts,
                             "generationConfig", "responseMimeType", "application/json",
                             "responseSchema", response_schema(), "temperature", 0.2);
    json_t *a;
    int rc = post_json(self, self->generate_url, body, "generateContent", &a, err, err_size);
    if (rc)
        return rc;
    /* candidates[0].content.parts[*].text, concatenated */
    json_t *cands = json_object_get(a, "candidates");
    json_t *c0 = json_is_array(cands) ? json_array_get(cands, 0) : NULL;
    if (!c0) {
        const char *block =
            json_string_value(json_object_get(json_object_get(a, "promptFeedback"), "blockReason"));
        snprintf(err, err_size, "Gemini generateContent: no candidates in the answer%s%s",
                 block ? "; blocked: " : "", block ? block : "");
        json_decref(a);
        return ZT_ERR_PROTOCOL;
    }
    json_t *cparts = json_object_get(json_object_get(c0, "content"), "parts");
    size_t total = 0;
    char *text = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(cparts, i, p) {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (!t)
            continue;
        size_t tl = strlen(t);
        text = zt_realloc(text, total + tl + 1);
        memcpy(text + total, t, tl + 1);
        total += tl;
    }
    if (!text) {
        const char *finish = json_string_value(json_object_get(c0, "finishReason"));
        snprintf(err, err_size, "Gemini generateContent: the answer has no text (finishReason %s)",
                 finish ? finish : "missing");
        json_decref(a);
        return ZT_ERR_PROTOCOL;
    }
    json_decref(a);
    json_error_t jerr;
    json_t *r = json_loadb(text, total, 0, &jerr);
    free(text);
    json_t *fn = json_object_get(r, "filename"), *sm = json_object_get(r, "summary"),
           *tg = json_object_get(r, "tags");
    const char *missing = !r                   ? "it is not JSON"
                          : !json_is_object(r) ? "it is not a JSON object"
                          : !json_is_string(fn) || !*json_string_value(fn) ? "no filename"
                          : !json_is_string(sm)                            ? "no summary"
                          : !json_is_array(tg)                             ? "no tags array"
                                                                           : NULL;
    if (missing) {
        snprintf(err, err_size, "Gemini generateContent: bad analysis in the answer: %s", missing);
        json_decref(r);
        return ZT_ERR_PROTOCOL;
    }
    out->filename = clean_filename(json_string_value(fn), in->original_name);
    out->summary = zt_strdup(json_string_value(sm));
    out->tags = zt_calloc(MAX_TAGS, sizeof *out->tags);
    json_array_foreach(tg, i, p) {
        const char *t = json_string_value(p);
        if (!t || !*t || out->tag_count >= MAX_TAGS)
            continue;
        /* zt_strndup copies exactly n bytes: measure first, cut at a UTF-8 boundary */
        size_t tl = strlen(t);
        char *tag = zt_strndup(t, utf8_cut(t, tl, 64));
        for (char *q = tag; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        out->tags[out->tag_count++] = tag;
    }
    json_decref(r);
    return 0;
}

int drive2_gemini_embed(drive2_gemini_t *self, const char *text, size_t len, const char *task_type,
                        float **vec, size_t *dim, char *err, size_t err_size) {
    *vec = NULL;
    *dim = 0;
    json_t *t = json_stringn(text ? text : "", text ? utf8_cut(text, len, 8000) : 0);
    if (!t) {
        snprintf(err, err_size, "Gemini embedContent: the text is not UTF-8");
        return ZT_ERR_INVALID;
    }
    json_t *body = json_pack("{sss{s[{so}]}ss}", "model", self->embed_model, "content", "parts",
                             "text", t, "taskType", task_type ? task_type : "RETRIEVAL_DOCUMENT");
    json_t *a;
    int rc = post_json(self, self->embed_url, body, "embedContent", &a, err, err_size);
    if (rc)
        return rc;
    json_t *values = json_object_get(json_object_get(a, "embedding"), "values");
    size_t n = json_is_array(values) ? json_array_size(values) : 0;
    if (n == 0 || n > 65536) {
        snprintf(err, err_size, "Gemini embedContent: the answer has no embedding.values");
        json_decref(a);
        return ZT_ERR_PROTOCOL;
    }
    float *v = zt_malloc(n * sizeof *v);
    double norm = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(values, i);
        if (!json_is_number(x)) {
            snprintf(err, err_size, "Gemini embedContent: embedding value %zu is not a number", i);
            free(v);
            json_decref(a);
            return ZT_ERR_PROTOCOL;
        }
        v[i] = (float)json_number_value(x);
        norm += (double)v[i] * v[i];
    }
    json_decref(a);
    if (!(norm > 0) || !isfinite(norm)) {
        snprintf(err, err_size, "Gemini embedContent: the embedding is all zeros");
        free(v);
        return ZT_ERR_PROTOCOL;
    }
    norm = sqrt(norm);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(v[i] / norm);
    *vec = v;
    *dim = n;
    return 0;
}
