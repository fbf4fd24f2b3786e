/* flex: see flex.h. Layout follows LINE's Flex Message reference: a bubble
 * with an optional hero image, a vertical body box of text and baseline
 * rows, and a footer naming the file id. */
#include "flex.h"

#include "http.h"
#include "line.h"
#include "zt_error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALT_BUDGET 300 /* characters of an altText we build (LINE's limit: 400) */
#define TAG_MAX 30     /* characters of one tag shown */

#define COLOR_OK "#1DB446"
#define COLOR_FAIL "#E5483C"
#define COLOR_WARN "#F08C00"
#define COLOR_MUTED "#999999"

/* Decodes one UTF-8 character at p (NUL-terminated): its code point and
 * length, or -1 for an invalid sequence (overlong, surrogate, too large,
 * truncated). */
static long utf8_next(const unsigned char *p, size_t *len) {
    unsigned char c = p[0];
    long cp;
    size_t n;
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        *len = 1;
        return -1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *len = 1;
            return -1;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    *len = n;
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        *len = 1;
        return -1;
    }
    return cp;
}

char *drive2_flex_clip(const char *text, size_t max_units) {
    if (!text)
        text = "";
    size_t cap = strlen(text) * 3 + 4; /* an invalid byte becomes U+FFFD (3 bytes) */
    char *out = zt_malloc(cap);
    size_t w = 0, units = 0, cut_w = 0;
    bool clipped = false;
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        size_t n;
        long cp = utf8_next(p, &n);
        size_t u = cp >= 0x10000 ? 2 : 1;
        /* keep room for the ellipsis: remember where max-1 units end */
        if (units + u <= (max_units > 0 ? max_units - 1 : 0))
            cut_w = w + (cp < 0 ? 3 : (cp < 0x20 && cp != '\n') ? 1 : n);
        if (units + u > max_units) {
            clipped = true;
            break;
        }
        units += u;
        if (cp < 0) {
            memcpy(out + w, "\xef\xbf\xbd", 3);
            w += 3;
        } else if (cp < 0x20 && cp != '\n') {
            out[w++] = ' ';
        } else {
            memcpy(out + w, p, n);
            w += n;
        }
        p += n;
    }
    if (clipped && max_units > 0) {
        w = cut_w;
        memcpy(out + w, "\xe2\x80\xa6", 3); /* … */
        w += 3;
    } else if (clipped) {
        w = 0;
    }
    out[w] = '\0';
    return out;
}

void drive2_flex_format_bytes(int64_t bytes, char *buf, size_t size) {
    static const char *units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    double v = (double)(bytes < 0 ? 0 : bytes);
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%lld B", (long long)(bytes < 0 ? 0 : bytes));
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

int drive2_flex_hero_url(const char *base, const char *path, char *buf, size_t size) {
    if (size)
        buf[0] = '\0';
    if (!base || strncmp(base, "https://", 8) != 0 || !base[8] || !path || !*path)
        return ZT_ERR_INVALID;
    const char *dot = strrchr(path, '.');
    if (!dot || (strcasecmp(dot, ".jpg") != 0 && strcasecmp(dot, ".jpeg") != 0 &&
                 strcasecmp(dot, ".png") != 0))
        return ZT_ERR_INVALID; /* LINE shows JPEG and PNG only */
    size_t blen = strlen(base);
    while (blen > 8 && base[blen - 1] == '/')
        blen--;
    char *enc = drive2_http_encode(path[0] == '/' ? path + 1 : path, 1);
    int n = snprintf(buf, size, "%.*s/%s", (int)blen, base, enc);
    free(enc);
    if (n < 0 || (size_t)n >= size || (size_t)n > DRIVE2_LINE_URL_MAX) {
        if (size)
            buf[0] = '\0';
        return ZT_ERR_INVALID;
    }
    return 0;
}

/* --- building blocks ------------------------------------------------------- */

/* A text component; text is clipped to max characters and never empty. */
static json_t *text(const char *s, size_t max, const char *size, const char *color, bool bold,
                    bool wrap) {
    char *clipped = drive2_flex_clip(s, max);
    json_t *t = json_pack("{s:s, s:s}", "type", "text", "text", *clipped ? clipped : "-");
    free(clipped);
    if (size)
        json_object_set_new(t, "size", json_string(size));
    if (color)
        json_object_set_new(t, "color", json_string(color));
    if (bold)
        json_object_set_new(t, "weight", json_string("bold"));
    if (wrap)
        json_object_set_new(t, "wrap", json_true());
    return t;
}

/* "Label   value" on one baseline row. */
static json_t *row(const char *label, const char *value, size_t max) {
    json_t *l = text(label, 20, "sm", COLOR_MUTED, false, false);
    json_object_set_new(l, "flex", json_integer(2));
    json_t *v = text(value, max, "sm", NULL, false, true);
    json_object_set_new(v, "flex", json_integer(5));
    return json_pack("{s:s, s:s, s:s, s:[o, o]}", "type", "box", "layout", "baseline", "spacing",
                     "sm", "contents", l, v);
}

static json_t *separator(void) {
    return json_pack("{s:s, s:s}", "type", "separator", "margin", "md");
}

static json_t *footer(const char *label, const char *id) {
    char line[160];
    snprintf(line, sizeof line, "%s %.100s", label, id ? id : "-");
    return json_pack("{s:s, s:s, s:[o]}", "type", "box", "layout", "vertical", "contents",
                     text(line, 140, "xxs", COLOR_MUTED, false, true));
}

/* The message object around a bubble, with an altText from alt. */
static json_t *message(const char *alt, json_t *bubble) {
    char *a = drive2_flex_clip(alt, ALT_BUDGET);
    json_t *m = json_pack("{s:s, s:s, s:o}", "type", "flex", "altText", *a ? a : "Drive2",
                          "contents", bubble);
    free(a);
    return m;
}

static json_t *bubble(json_t *hero, json_t *body_contents, json_t *foot) {
    json_t *b = json_pack("{s:s}", "type", "bubble");
    if (hero)
        json_object_set_new(b, "hero", hero);
    json_object_set_new(b, "body",
                        json_pack("{s:s, s:s, s:s, s:o}", "type", "box", "layout", "vertical",
                                  "spacing", "md", "contents", body_contents));
    if (foot)
        json_object_set_new(b, "footer", foot);
    return b;
}

/* "tag1, tag2, ..." from the catalog's JSON array text. */
static void tags_line(const char *tags_json, char *buf, size_t size) {
    buf[0] = '\0';
    json_t *tags = tags_json ? json_loads(tags_json, 0, NULL) : NULL;
    size_t used = 0, shown = 0, i;
    json_t *v;
    json_array_foreach(tags, i, v) {
        if (!json_is_string(v) || shown == DRIVE2_FLEX_TAGS_MAX)
            continue;
        char *t = drive2_flex_clip(json_string_value(v), TAG_MAX);
        int n = snprintf(buf + used, size - used, "%s%s", shown ? ", " : "", t);
        free(t);
        if (n < 0 || (size_t)n >= size - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)n;
        shown++;
    }
    json_decref(tags);
}

static const char *display_name(const drive2_flex_file_t *f) {
    if (f->ai_filename && *f->ai_filename)
        return f->ai_filename;
    return f->original_name && *f->original_name ? f->original_name : "your file";
}

/* --- the four notices ------------------------------------------------------ */

json_t *drive2_flex_processing_complete(const drive2_flex_file_t *f) {
    json_t *hero = NULL;
    if (f->hero_url && strncmp(f->hero_url, "https://", 8) == 0 &&
        strlen(f->hero_url) <= DRIVE2_LINE_URL_MAX)
        hero = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "image", "url", f->hero_url, "size",
                         "full", "aspectRatio", "1:1", "aspectMode", "fit");
    json_t *body = json_array();
    json_array_append_new(body, text("Processing complete", 40, "sm", COLOR_OK, true, false));
    json_array_append_new(body,
                          text(display_name(f), DRIVE2_FLEX_NAME_MAX, "lg", NULL, true, true));
    if (f->original_name && f->ai_filename && strcmp(f->original_name, f->ai_filename) != 0) {
        char was[200];
        char *orig = drive2_flex_clip(f->original_name, DRIVE2_FLEX_NAME_MAX);
        snprintf(was, sizeof was, "uploaded as %s", orig);
        free(orig);
        json_array_append_new(body,
                              text(was, DRIVE2_FLEX_NAME_MAX + 12, "xs", COLOR_MUTED, false, true));
    }
    json_array_append_new(body, separator());
    if (f->ai_summary && *f->ai_summary)
        json_array_append_new(
            body, text(f->ai_summary, DRIVE2_FLEX_SUMMARY_MAX, "sm", NULL, false, true));
    char tags[DRIVE2_FLEX_TAGS_MAX * (TAG_MAX * 4 + 2) + 1];
    tags_line(f->ai_tags_json, tags, sizeof tags);
    if (*tags)
        json_array_append_new(body, row("Tags", tags, 400));
    json_array_append_new(body, row("Status", f->status ? f->status : "completed", 20));
    char size[32], info[160];
    drive2_flex_format_bytes(f->size, size, sizeof size);
    snprintf(info, sizeof info, "%s%s%.100s", size, f->mime_type ? " · " : "",
             f->mime_type ? f->mime_type : "");
    json_array_append_new(body, row("Size", info, 120));

    char alt[700];
    char *name = drive2_flex_clip(display_name(f), DRIVE2_FLEX_NAME_MAX);
    char *sum = drive2_flex_clip(f->ai_summary ? f->ai_summary : "", 150);
    snprintf(alt, sizeof alt, "Processed: %s%s%s", name, *sum ? " - " : "", sum);
    free(name);
    free(sum);
    return message(alt, bubble(hero, body, footer("File ID", f->file_id)));
}

json_t *drive2_flex_processing_failed(const drive2_flex_file_t *f) {
    json_t *body = json_array();
    json_array_append_new(body, text("Processing failed", 40, "sm", COLOR_FAIL, true, false));
    const char *name = f->original_name && *f->original_name ? f->original_name : "your file";
    json_array_append_new(body, text(name, DRIVE2_FLEX_NAME_MAX, "lg", NULL, true, true));
    json_array_append_new(body, separator());
    json_array_append_new(body, row("Status", f->status ? f->status : "failed", 20));
    json_array_append_new(body, row("Error", f->error && *f->error ? f->error : "unknown error",
                                    DRIVE2_FLEX_ERROR_MAX));
    char hint[200];
    snprintf(hint, sizeof hint,
             "Fix or re-upload the file, then reprocess it: drive2 reprocess %.64s",
             f->file_id ? f->file_id : "FILE_ID");
    json_array_append_new(body, text(hint, 200, "xs", COLOR_MUTED, false, true));

    char alt[700];
    char *n = drive2_flex_clip(name, DRIVE2_FLEX_NAME_MAX);
    char *e = drive2_flex_clip(f->error ? f->error : "unknown error", 150);
    snprintf(alt, sizeof alt, "Processing failed: %s - %s", n, e);
    free(n);
    free(e);
    return message(alt, bubble(NULL, body, footer("File ID", f->file_id)));
}

json_t *drive2_flex_quota_alert(const char *user_id, int64_t used, int64_t quota,
                                int threshold_pct) {
    double pct = quota > 0 ? 100.0 * (double)used / (double)quota : 100.0;
    char u[32], q[32], line[160], head[80];
    drive2_flex_format_bytes(used, u, sizeof u);
    drive2_flex_format_bytes(quota, q, sizeof q);
    snprintf(head, sizeof head, "Storage %.0f%% full", pct);
    snprintf(line, sizeof line, "%s of %s used", u, q);
    json_t *body = json_array();
    json_array_append_new(body, text("Storage quota alert", 40, "sm", COLOR_WARN, true, false));
    json_array_append_new(body, text(head, 60, "xl", NULL, true, false));
    json_array_append_new(body, text(line, 100, "sm", NULL, false, true));
    json_array_append_new(body, separator());
    char th[32];
    snprintf(th, sizeof th, "%d%% of the quota", threshold_pct);
    json_array_append_new(body, row("Crossed", th, 40));
    json_array_append_new(body,
                          text(threshold_pct >= 95
                                   ? "Uploads stop at 100%. Delete files you no longer need now."
                                   : "Delete files you no longer need, or ask for a larger quota.",
                               120, "xs", COLOR_MUTED, false, true));
    char alt[300];
    snprintf(alt, sizeof alt, "Storage quota alert: %.0f%% used (%s of %s)", pct, u, q);
    return message(alt, bubble(NULL, body, footer("User", user_id)));
}

json_t *drive2_flex_daily_summary(const char *user_id, const char *day,
                                  const drive2_flex_count_t *counts, size_t n) {
    int64_t files = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        files += counts[i].files;
        bytes += counts[i].bytes;
    }
    char head[80], total[64], size[32];
    snprintf(head, sizeof head, "Your Drive2 day: %.32s", day ? day : "today");
    drive2_flex_format_bytes(bytes, size, sizeof size);
    snprintf(total, sizeof total, "%lld file%s, %s", (long long)files, files == 1 ? "" : "s", size);
    json_t *body = json_array();
    json_array_append_new(body, text("Daily summary", 40, "sm", COLOR_OK, true, false));
    json_array_append_new(body, text(head, 60, "md", NULL, true, true));
    json_array_append_new(body, separator());
    /* a bounded list: a status per row (there are four) */
    for (size_t i = 0; i < n && i < 8; i++) {
        char v[64], s[32];
        drive2_flex_format_bytes(counts[i].bytes, s, sizeof s);
        snprintf(v, sizeof v, "%lld, %s", (long long)counts[i].files, s);
        json_array_append_new(body, row(counts[i].status ? counts[i].status : "?", v, 60));
    }
    json_array_append_new(body, separator());
    json_array_append_new(body, row("Uploaded", total, 60));
    char alt[200];
    snprintf(alt, sizeof alt, "Drive2 daily summary %.32s: %s uploaded", day ? day : "", total);
    return message(alt, bubble(NULL, body, footer("User", user_id)));
}
