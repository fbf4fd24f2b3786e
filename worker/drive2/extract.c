/* extract: see extract.h. Every piece of text goes through one appender
 * (text_t) that repairs UTF-8 and enforces max_bytes, so no format can emit
 * invalid text or grow past the limit. The poppler and libxml2 documents
 * live only inside the functions that parse them. */
#include "extract.h"

#include "zt_error.h"

#include <ctype.h>
#include <jansson.h>
#include <libxml/HTMLparser.h>
#include <limits.h>
#include <poppler.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- UTF-8 ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_valid(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* The appender: text under a byte limit, always valid UTF-8. */
typedef struct {
    char *data;
    size_t len, cap;
    size_t max;     /* bytes */
    bool truncated; /* something did not fit; later appends are dropped */
} text_t;

static void text_reserve(text_t *t, size_t more) {
    if (t->len + more + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + more + 1)
        cap *= 2;
    t->data = zt_realloc(t->data, cap);
    t->cap = cap;
}

/* Appends bytes already known to be valid UTF-8, cutting at a character
 * boundary when the limit is reached. */
static void text_put_valid(text_t *t, const char *s, size_t n) {
    if (t->truncated || n == 0)
        return;
    if (t->len + n > t->max) {
        n = t->max - t->len;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* s[n] continues a character: keep it whole or not at all */
        t->truncated = true;
    }
    text_reserve(t, n);
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

/* Appends bytes unchecked (a scratch buffer whose content is checked when it
 * is copied into the text). */
static void raw_put(text_t *t, const void *s, size_t n) {
    text_reserve(t, n);
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

/* Appends any bytes: invalid sequences and NUL become U+FFFD. */
static void text_put(text_t *t, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0, i = 0;
    while (i < n && !t->truncated) {
        size_t k = u[i] ? utf8_valid(u + i, n - i) : 0;
        if (k) {
            i += k;
            continue;
        }
        text_put_valid(t, s + start, i - start);
        text_put_valid(t, REPLACEMENT, 3);
        i++;
        start = i;
    }
    text_put_valid(t, s + start, i - start);
}

static void text_puts(text_t *t, const char *s) {
    text_put(t, s, strlen(s));
}

/* A newline unless the text is empty or already ends with a blank line. */
static void text_break(text_t *t, int max_newlines) {
    if (t->len == 0)
        return;
    int trailing = 0;
    for (size_t i = t->len; i > 0 && t->data[i - 1] == '\n' && trailing < max_newlines; i--)
        trailing++;
    /* drop spaces left before the break */
    while (t->len > 0 && t->data[t->len - 1] == ' ' && !t->truncated)
        t->data[--t->len] = '\0';
    if (trailing < max_newlines)
        text_put_valid(t, "\n", 1);
}

char *drive2_utf8_sanitize(const char *data, size_t len, size_t *out_len) {
    text_t t = {NULL, 0, 0, SIZE_MAX / 2, false};
    text_reserve(&t, len);
    t.data[0] = '\0';
    text_put(&t, data, len);
    if (out_len)
        *out_len = t.len;
    return t.data;
}

/* UTF-16 with a byte order mark, as Windows tools write "Unicode" text. */
static void text_put_utf16(text_t *t, const unsigned char *s, size_t n, bool big_endian) {
    for (size_t i = 0; i + 1 < n && !t->truncated; i += 2) {
        uint32_t u =
            big_endian ? (uint32_t)(s[i] << 8 | s[i + 1]) : (uint32_t)(s[i + 1] << 8 | s[i]);
        if (u >= 0xD800 && u <= 0xDBFF && i + 3 < n) {
            uint32_t v = big_endian ? (uint32_t)(s[i + 2] << 8 | s[i + 3])
                                    : (uint32_t)(s[i + 3] << 8 | s[i + 2]);
            if (v >= 0xDC00 && v <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00);
                i += 2;
            }
        }
        char out[4];
        size_t k;
        if (u == 0 || (u >= 0xD800 && u <= 0xDFFF)) {
            text_put_valid(t, REPLACEMENT, 3);
            continue;
        } else if (u < 0x80) {
            out[0] = (char)u;
            k = 1;
        } else if (u < 0x800) {
            out[0] = (char)(0xC0 | u >> 6);
            out[1] = (char)(0x80 | (u & 0x3F));
            k = 2;
        } else if (u < 0x10000) {
            out[0] = (char)(0xE0 | u >> 12);
            out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[2] = (char)(0x80 | (u & 0x3F));
            k = 3;
        } else {
            out[0] = (char)(0xF0 | u >> 18);
            out[1] = (char)(0x80 | ((u >> 12) & 0x3F));
            out[2] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[3] = (char)(0x80 | (u & 0x3F));
            k = 4;
        }
        text_put_valid(t, out, k);
    }
}

/* --- sniffing ---------------------------------------------------------------- */

typedef struct {
    const char *ext;
    const char *mime;
    bool binary; /* the format has magic bytes: text content is not it */
} ext_type_t;

static const ext_type_t EXT_TYPES[] = {
    {"txt", "text/plain", false},
    {"text", "text/plain", false},
    {"log", "text/plain", false},
    {"md", "text/markdown", false},
    {"markdown", "text/markdown", false},
    {"csv", "text/csv", false},
    {"tsv", "text/tab-separated-values", false},
    {"html", "text/html", false},
    {"htm", "text/html", false},
    {"xhtml", "text/html", false},
    {"json", "application/json", false},
    {"xml", "application/xml", false},
    {"svg", "image/svg+xml", false},
    {"yaml", "text/yaml", false},
    {"yml", "text/yaml", false},
    {"pdf", "application/pdf", true},
    {"png", "image/png", true},
    {"jpg", "image/jpeg", true},
    {"jpeg", "image/jpeg", true},
    {"gif", "image/gif", true},
    {"webp", "image/webp", true},
    {"tif", "image/tiff", true},
    {"tiff", "image/tiff", true},
    {"heic", "image/heic", true},
    {"zip", "application/zip", true},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", true},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", true},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", true},
    {"odt", "application/vnd.oasis.opendocument.text", true},
    {"mp4", "video/mp4", true},
    {"m4v", "video/mp4", true},
    {"mov", "video/quicktime", true},
    {"webm", "video/webm", true},
    {"mkv", "video/x-matroska", true},
    {"avi", "video/x-msvideo", true},
    {"mp3", "audio/mpeg", true},
    {"wav", "audio/wav", true},
};

static const ext_type_t *ext_lookup(const char *filename) {
    if (!filename)
        return NULL;
    const char *slash = strrchr(filename, '/');
    const char *base = slash ? slash + 1 : filename;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base || strlen(dot + 1) >= 16)
        return NULL;
    for (size_t i = 0; i < sizeof EXT_TYPES / sizeof EXT_TYPES[0]; i++)
        if (strcasecmp(dot + 1, EXT_TYPES[i].ext) == 0)
            return &EXT_TYPES[i];
    return NULL;
}

static bool starts(const unsigned char *d, size_t len, size_t off, const char *magic, size_t n) {
    return len >= off + n && memcmp(d + off, magic, n) == 0;
}

/* Case-insensitive search for needle in the first len bytes. */
static bool contains_ci(const unsigned char *d, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp((const char *)d + i, needle, n) == 0)
            return true;
    return false;
}

static const char *sniff_magic(const unsigned char *d, size_t len, const ext_type_t *ext) {
    size_t head = len < 1024 ? len : 1024;
    /* %PDF- may follow some junk (the spec allows it within the first KiB) */
    for (size_t i = 0; i + 5 <= head; i++)
        if (memcmp(d + i, "%PDF-", 5) == 0)
            return "application/pdf";
    if (starts(d, len, 0, "\x89PNG\r\n\x1a\n", 8))
        return "image/png";
    if (starts(d, len, 0, "\xFF\xD8\xFF", 3))
        return "image/jpeg";
    if (starts(d, len, 0, "GIF87a", 6) || starts(d, len, 0, "GIF89a", 6))
        return "image/gif";
    if (starts(d, len, 0, "RIFF", 4) && starts(d, len, 8, "WEBP", 4))
        return "image/webp";
    if (starts(d, len, 0, "RIFF", 4) && starts(d, len, 8, "WAVE", 4))
        return "audio/wav";
    if (starts(d, len, 0, "RIFF", 4) && starts(d, len, 8, "AVI ", 4))
        return "video/x-msvideo";
    if (starts(d, len, 0, "II*\0", 4) || starts(d, len, 0, "MM\0*", 4))
        return "image/tiff";
    if (starts(d, len, 4, "ftyp", 4)) {
        if (starts(d, len, 8, "heic", 4) || starts(d, len, 8, "heix", 4) ||
            starts(d, len, 8, "mif1", 4))
            return "image/heic";
        if (starts(d, len, 8, "qt  ", 4))
            return "video/quicktime";
        if (starts(d, len, 8, "M4A ", 4))
            return "audio/mp4";
        return "video/mp4";
    }
    if (starts(d, len, 0, "\x1A\x45\xDF\xA3", 4))
        return contains_ci(d, len < 64 ? len : 64, "webm") ? "video/webm" : "video/x-matroska";
    if (starts(d, len, 0, "PK\x03\x04", 4) || starts(d, len, 0, "PK\x05\x06", 4)) {
        if (ext && strncmp(ext->mime, "application/", 12) == 0 && ext->binary &&
            strcmp(ext->mime, "application/pdf") != 0)
            return ext->mime; /* docx, xlsx, ...: ZIP containers with a better name */
        return "application/zip";
    }
    if (starts(d, len, 0, "ID3", 3))
        return "audio/mpeg";
    return NULL;
}

/* Text or binary, from the first 8 KiB: binary files have NUL bytes or
 * many control characters; text in any 8-bit encoding has neither. */
static bool looks_like_text(const unsigned char *d, size_t len) {
    if (starts(d, len, 0, "\xFF\xFE", 2) || starts(d, len, 0, "\xFE\xFF", 2))
        return true; /* UTF-16 with a byte order mark */
    size_t n = len < 8192 ? len : 8192, controls = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = d[i];
        if (c == 0)
            return false;
        if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v' &&
             c != 0x1b) ||
            c == 0x7f)
            controls++;
    }
    return controls * 50 <= n; /* at most 2% */
}

static const unsigned char *skip_space_bom(const unsigned char *d, size_t *len) {
    if (starts(d, *len, 0, "\xEF\xBB\xBF", 3)) {
        d += 3;
        *len -= 3;
    }
    while (*len > 0 && isspace(*d)) {
        d++;
        (*len)--;
    }
    return d;
}

static bool parses_as_json(const unsigned char *d, size_t len) {
    json_error_t e;
    json_t *j = json_loadb((const char *)d, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    json_decref(j);
    return j != NULL;
}

const char *drive2_sniff_mime(const unsigned char *data, size_t len, const char *filename) {
    const ext_type_t *ext = ext_lookup(filename);
    if (!data)
        len = 0;
    const char *magic = len ? sniff_magic(data, len, ext) : NULL;
    if (magic)
        return magic;
    if (len == 0)
        return ext ? ext->mime : "text/plain";
    if (!looks_like_text(data, len))
        return ext && ext->binary ? ext->mime : "application/octet-stream";
    /* Text: the extension names a text format, else the content decides. */
    if (ext && !ext->binary)
        return ext->mime;
    size_t n = len;
    const unsigned char *d = skip_space_bom(data, &n);
    size_t head = n < 1024 ? n : 1024;
    if (starts(d, n, 0, "<?xml", 5))
        return contains_ci(d, head, "<svg")    ? "image/svg+xml"
               : contains_ci(d, head, "<html") ? "text/html"
                                               : "application/xml";
    if (n >= 4 && strncasecmp((const char *)d, "<svg", 4) == 0)
        return "image/svg+xml";
    if (n > 0 && d[0] == '<' &&
        (contains_ci(d, head, "<!doctype html") || contains_ci(d, head, "<html") ||
         contains_ci(d, head, "<head") || contains_ci(d, head, "<body")))
        return "text/html";
    if (n > 0 && (d[0] == '{' || d[0] == '[') && parses_as_json(d, n))
        return "application/json";
    return "text/plain";
}

bool drive2_extract_has_text(const char *mime) {
    if (!mime)
        return false;
    return strncmp(mime, "text/", 5) == 0 || strcmp(mime, "application/json") == 0 ||
           strcmp(mime, "application/xml") == 0 || strcmp(mime, "application/pdf") == 0 ||
           strcmp(mime, "application/xhtml+xml") == 0;
}

bool drive2_mime_wants_thumbnail(const char *mime) {
    if (!mime)
        return false;
    return strncmp(mime, "image/", 6) == 0 || strncmp(mime, "video/", 6) == 0 ||
           strcmp(mime, "application/pdf") == 0;
}

/* --- formats ------------------------------------------------------------------ */

static void extract_plain(const unsigned char *d, size_t len, text_t *t) {
    if (starts(d, len, 0, "\xFF\xFE", 2))
        text_put_utf16(t, d + 2, len - 2, false);
    else if (starts(d, len, 0, "\xFE\xFF", 2))
        text_put_utf16(t, d + 2, len - 2, true);
    else if (starts(d, len, 0, "\xEF\xBB\xBF", 3))
        text_put(t, (const char *)d + 3, len - 3);
    else
        text_put(t, (const char *)d, len);
}

/* JSON: one "key.path: value" line per scalar; arrays keep their parent's
 * key. Object keys carry meaning ("title", "description"), so they stay. */
static void json_walk(const json_t *v, char *path, size_t path_len, size_t path_cap, text_t *t) {
    if (t->truncated)
        return;
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child) {
            size_t klen = strlen(key);
            size_t need = path_len + (path_len ? 1 : 0) + klen;
            if (need >= path_cap) {
                json_walk(child, path, path_len, path_cap, t); /* too deep to name */
                continue;
            }
            size_t n = path_len;
            if (n)
                path[n++] = '.';
            memcpy(path + n, key, klen);
            path[need] = '\0';
            json_walk(child, path, need, path_cap, t);
            path[path_len] = '\0';
        }
        return;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach((json_t *)v, i, child) json_walk(child, path, path_len, path_cap, t);
        return;
    }
    char num[64];
    const char *s = NULL;
    size_t n = 0;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        n = (size_t)snprintf(num, sizeof num, "%.17g", json_real_value(v));
        s = num;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
        n = strlen(s);
    } else {
        return; /* null */
    }
    if (path_len) {
        text_put(t, path, path_len);
        text_put_valid(t, ": ", 2);
    }
    text_put(t, s, n);
    text_put_valid(t, "\n", 1);
}

static int extract_json(const unsigned char *d, size_t len, text_t *t, char *err, size_t err_size) {
    json_error_t e;
    json_t *root = json_loadb((const char *)d, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!root)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "not valid JSON: line %d column %d: %s",
                       e.line, e.column, e.text);
    char path[256] = "";
    json_walk(root, path, 0, sizeof path, t);
    json_decref(root);
    return 0;
}

/* CSV (RFC 4180: quoted cells, "" inside quotes, newlines in quotes): one
 * line per row, non-empty cells joined by ", ". The delimiter is the most
 * frequent of , ; TAB | on the first line. */
static void extract_csv(const unsigned char *d, size_t len, const char *mime, text_t *t) {
    if (starts(d, len, 0, "\xEF\xBB\xBF", 3)) {
        d += 3;
        len -= 3;
    }
    char delim = ',';
    if (mime && strcmp(mime, "text/tab-separated-values") == 0) {
        delim = '\t';
    } else {
        const char candidates[] = {',', ';', '\t', '|'};
        size_t best = 0;
        for (size_t c = 0; c < sizeof candidates; c++) {
            size_t count = 0;
            bool quoted = false;
            for (size_t i = 0; i < len && (quoted || d[i] != '\n'); i++) {
                if (d[i] == '"')
                    quoted = !quoted;
                else if (!quoted && d[i] == (unsigned char)candidates[c])
                    count++;
            }
            if (count > best) {
                best = count;
                delim = candidates[c];
            }
        }
    }
    text_t cell = {NULL, 0, 0, t->max, false};
    text_reserve(&cell, 64);
    bool quoted = false, row_has_cells = false;
    for (size_t i = 0; i <= len && !t->truncated; i++) {
        bool at_end = i == len;
        unsigned char c = at_end ? '\n' : d[i];
        if (quoted && !at_end) {
            if (c == '"' && i + 1 < len && d[i + 1] == '"') {
                raw_put(&cell, "\"", 1);
                i++;
            } else if (c == '"') {
                quoted = false;
            } else {
                raw_put(&cell, &d[i], 1);
            }
            continue;
        }
        if (c == '"' && cell.len == 0) {
            quoted = true;
        } else if (c == (unsigned char)delim || c == '\n') {
            /* end of cell: trim, then add unless empty */
            size_t s = 0, e = cell.len;
            while (s < e && isspace((unsigned char)cell.data[s]))
                s++;
            while (e > s && isspace((unsigned char)cell.data[e - 1]))
                e--;
            if (e > s) {
                if (row_has_cells)
                    text_put_valid(t, ", ", 2);
                text_put(t, cell.data + s, e - s);
                row_has_cells = true;
            }
            cell.len = 0;
            cell.data[0] = '\0';
            if (c == '\n' && row_has_cells) {
                text_put_valid(t, "\n", 1);
                row_has_cells = false;
            }
            if (at_end)
                break;
        } else if (c != '\r') {
            raw_put(&cell, &d[i], 1);
        }
    }
    free(cell.data);
}

/* HTML elements whose text is not content. */
static bool html_skipped(const char *name) {
    static const char *const skip[] = {"script", "style",  "noscript", "template",
                                       "iframe", "object", "svg",      "canvas"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcasecmp(name, skip[i]) == 0)
            return true;
    return false;
}

/* Elements that start a new line of text. */
static bool html_block(const char *name) {
    static const char *const block[] = {
        "p",        "div",     "br",   "li",     "ul",         "ol",         "h1",      "h2",
        "h3",       "h4",      "h5",   "h6",     "tr",         "table",      "section", "article",
        "header",   "footer",  "nav",  "aside",  "main",       "blockquote", "pre",     "title",
        "dt",       "dd",      "dl",   "figure", "figcaption", "hr",         "address", "form",
        "fieldset", "caption", "body", "thead",  "tbody"};
    for (size_t i = 0; i < sizeof block / sizeof block[0]; i++)
        if (strcasecmp(name, block[i]) == 0)
            return true;
    return false;
}

/* Appends text with runs of white space collapsed to one space. */
static void text_put_collapsed(text_t *t, const char *s) {
    const char *p = s;
    while (*p && !t->truncated) {
        if (isspace((unsigned char)*p)) {
            while (isspace((unsigned char)*p))
                p++;
            if (t->len > 0 && t->data[t->len - 1] != ' ' && t->data[t->len - 1] != '\n')
                text_put_valid(t, " ", 1);
            continue;
        }
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        text_put(t, start, (size_t)(p - start));
    }
}

#define HTML_MAX_DEPTH 512

static void html_walk(xmlNode *n, text_t *t, int depth) {
    for (; n && !t->truncated; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content)
                text_put_collapsed(t, (const char *)n->content);
        } else if (n->type == XML_ELEMENT_NODE && n->name) {
            const char *name = (const char *)n->name;
            if (html_skipped(name))
                continue;
            bool block = html_block(name);
            if (block)
                text_break(t, 1);
            if (depth < HTML_MAX_DEPTH)
                html_walk(n->children, t, depth + 1);
            if (block)
                text_break(t, 1);
        }
    }
}

static int extract_html(const unsigned char *d, size_t len, text_t *t, char *err, size_t err_size) {
    if (len > INT_MAX)
        return zt_fail(err, err_size, ZT_ERR_TOO_LARGE, "HTML file over 2 GiB");
    xmlInitParser();
    htmlDocPtr doc =
        htmlReadMemory((const char *)d, (int)len, NULL, NULL,
                       HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                           HTML_PARSE_NONET | HTML_PARSE_NOBLANKS | HTML_PARSE_COMPACT);
    if (!doc)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "not a readable HTML document");
    html_walk(xmlDocGetRootElement(doc), t, 0);
    xmlFreeDoc(doc);
    while (t->len > 0 && (t->data[t->len - 1] == '\n' || t->data[t->len - 1] == ' ') &&
           !t->truncated)
        t->data[--t->len] = '\0';
    return 0;
}

static int extract_pdf(const unsigned char *d, size_t len, text_t *t, int *pages, char *err,
                       size_t err_size) {
    GBytes *bytes = g_bytes_new_static(d, len);
    GError *gerr = NULL;
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
    if (!doc) {
        int rc;
        if (gerr && gerr->domain == POPPLER_ERROR && gerr->code == POPPLER_ERROR_ENCRYPTED)
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "PDF is password-protected");
        else
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "not a valid PDF: %s",
                         gerr && gerr->message ? gerr->message : "poppler cannot open it");
        if (gerr)
            g_error_free(gerr);
        g_bytes_unref(bytes);
        return rc;
    }
    int n = poppler_document_get_n_pages(doc);
    int rc = 0;
    if (n <= 0)
        rc = zt_fail(err, err_size, ZT_ERR_INVALID, "not a valid PDF: it has no pages");
    for (int i = 0; i < n && rc == 0 && !t->truncated; i++) {
        PopplerPage *page = poppler_document_get_page(doc, i);
        if (!page)
            continue;
        char *s = poppler_page_get_text(page);
        if (s && *s) {
            if (t->len)
                text_break(t, 2);
            text_puts(t, s);
        }
        g_free(s);
        g_object_unref(page);
    }
    *pages = n > 0 ? n : 0;
    g_object_unref(doc);
    g_bytes_unref(bytes);
    return rc;
}

void drive2_extract_clear(drive2_extract_t *x) {
    free(x->mime_type);
    free(x->text);
    memset(x, 0, sizeof *x);
}

int drive2_extract(const unsigned char *data, size_t len, const char *mime_type,
                   const char *filename, size_t max_bytes, drive2_extract_t *out, char *err,
                   size_t err_size) {
    memset(out, 0, sizeof *out);
    if (!data)
        len = 0;
    const char *mime = mime_type && *mime_type ? mime_type : drive2_sniff_mime(data, len, filename);
    out->mime_type = zt_strdup(mime);
    if (!drive2_extract_has_text(mime))
        return 0; /* metadata only */
    text_t t = {NULL, 0, 0, max_bytes, false};
    text_reserve(&t, 0);
    t.data[0] = '\0';
    static const unsigned char empty[1] = {0};
    const unsigned char *d = data ? data : empty;
    int rc = 0;
    if (strcmp(mime, "application/pdf") == 0)
        rc = extract_pdf(d, len, &t, &out->pages, err, err_size);
    else if (strcmp(mime, "text/html") == 0 || strcmp(mime, "application/xhtml+xml") == 0)
        rc = extract_html(d, len, &t, err, err_size);
    else if (strcmp(mime, "application/json") == 0)
        rc = extract_json(d, len, &t, err, err_size);
    else if (strcmp(mime, "text/csv") == 0 || strcmp(mime, "text/tab-separated-values") == 0)
        extract_csv(d, len, mime, &t);
    else
        extract_plain(d, len, &t);
    if (rc != 0) {
        free(t.data);
        return rc;
    }
    out->text = t.data;
    out->text_len = t.len;
    out->truncated = t.truncated;
    return 0;
}
