/* local_analyzer: see local_analyzer.h. Text is read as UTF-8 (extract.c
 * guarantees it; anything else is skipped safely). Words are runs of
 * letters and digits, lower-cased (ASCII, Latin-1, Cyrillic). One word table
 * per call (open addressing) feeds the summary scores and the tags; the
 * embedding hashes words straight into the vector. VipsImage lives only in
 * image_meta(). */
#include "local_analyzer.h"
#include "thumbnail.h"

#include "zt_error.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <vips/vips.h>

/* --- words ----------------------------------------------------------------- */

#define WORD_MAX 48 /* bytes of a word kept; longer words are cut */

/* Sorted (bytewise) for bsearch: keep it so when adding words. */
static const char *const STOPWORDS[] = {
    "a",       "about",    "above",     "after",      "again",     "against", "all",     "also",
    "am",      "an",       "and",       "any",        "are",       "aren",    "as",      "at",
    "be",      "because",  "been",      "before",     "being",     "below",   "between", "both",
    "but",     "by",       "can",       "cannot",     "could",     "couldn",  "did",     "didn",
    "do",      "does",     "doesn",     "doing",      "don",       "down",    "during",  "each",
    "etc",     "few",      "for",       "from",       "further",   "get",     "got",     "had",
    "hadn",    "has",      "hasn",      "have",       "haven",     "having",  "he",      "her",
    "here",    "hers",     "herself",   "him",        "himself",   "his",     "how",     "http",
    "https",   "i",        "if",        "in",         "into",      "is",      "isn",     "it",
    "its",     "itself",   "just",      "like",       "ll",        "may",     "me",      "might",
    "more",    "most",     "must",      "my",         "myself",    "new",     "no",      "nor",
    "not",     "of",       "off",       "on",         "once",      "one",     "only",    "or",
    "other",   "ought",    "our",       "ours",       "ourselves", "out",     "over",    "own",
    "per",     "re",       "said",      "same",       "say",       "says",    "shall",   "she",
    "should",  "shouldn",  "so",        "some",       "such",      "than",    "that",    "the",
    "their",   "theirs",   "them",      "themselves", "then",      "there",   "these",   "they",
    "this",    "those",    "through",   "to",         "too",       "two",     "under",   "until",
    "up",      "us",       "use",       "used",       "using",     "ve",      "very",    "via",
    "was",     "wasn",     "we",        "were",       "weren",     "what",    "when",    "where",
    "which",   "while",    "who",       "whom",       "why",       "will",    "with",    "within",
    "without", "won",      "would",     "wouldn",     "www",       "yet",     "you",     "your",
    "yours",   "yourself", "yourselves"};

static int cmp_str(const void *key, const void *elem) {
    return strcmp((const char *)key, *(const char *const *)elem);
}

static bool is_stopword(const char *w) {
    return bsearch(w, STOPWORDS, sizeof STOPWORDS / sizeof STOPWORDS[0], sizeof STOPWORDS[0],
                   cmp_str) != NULL;
}

static bool all_digits(const char *w) {
    for (; *w; w++)
        if (!isdigit((unsigned char)*w))
            return false;
    return true;
}

/* One code point at s (n bytes left); *len gets its size. Invalid bytes
 * decode as U+FFFD, one byte each. */
static uint32_t decode(const unsigned char *s, size_t n, size_t *len) {
    unsigned char c = s[0];
    size_t k = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (k == 0 || k > n) {
        *len = 1;
        return 0xFFFD;
    }
    uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *len = 1;
            return 0xFFFD;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *len = k;
    return cp;
}

static size_t encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Letters and digits: ASCII alphanumerics, and non-ASCII code points outside
 * the punctuation, symbol and emoji blocks. */
static bool is_word_cp(uint32_t cp) {
    if (cp < 0x80)
        return isalnum((int)cp) != 0;
    if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7 || cp == 0xFFFD)
        return false;
    if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0x1F000 && cp <= 0x1FAFF) ||
        (cp >= 0xE000 && cp <= 0xF8FF))
        return false;
    return true;
}

static uint32_t lower_cp(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z')
        return cp + 32;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) /* Latin-1 capitals */
        return cp + 32;
    if (cp >= 0x410 && cp <= 0x42F) /* Cyrillic capitals */
        return cp + 32;
    return cp;
}

/* The next word at or after *pos, lower-cased into tok (WORD_MAX + 1
 * bytes). Returns its length, 0 at the end; *start gets its offset. */
static size_t next_word(const char *text, size_t len, size_t *pos, char *tok, size_t *start) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = *pos, k;
    while (i < len && !is_word_cp(decode(s + i, len - i, &k)))
        i += k;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    *start = i;
    size_t n = 0;
    uint32_t cp;
    while (i < len && is_word_cp(cp = decode(s + i, len - i, &k))) {
        char buf[4];
        size_t m = encode(lower_cp(cp), buf);
        if (n + m <= WORD_MAX) {
            memcpy(tok + n, buf, m);
            n += m;
        }
        i += k;
    }
    tok[n] = '\0';
    *pos = i;
    return n;
}

static uint64_t fnv1a(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#define FNV_OFFSET 14695981039346656037ULL

/* --- word table ------------------------------------------------------------- */

typedef struct {
    char *word;     /* NULL: empty slot */
    uint32_t count; /* occurrences */
    uint32_t first; /* order of first occurrence */
} entry_t;

typedef struct {
    entry_t *slots;
    size_t cap, used;
    uint32_t max_count;
} table_t;

static void table_free(table_t *t) {
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].word);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static entry_t *table_find(table_t *t, const char *w, bool add, uint32_t order) {
    if (add && (t->used + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        entry_t *slots = zt_calloc(cap, sizeof *slots);
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i].word)
                continue;
            size_t j = fnv1a(t->slots[i].word, strlen(t->slots[i].word), FNV_OFFSET) & (cap - 1);
            while (slots[j].word)
                j = (j + 1) & (cap - 1);
            slots[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    if (t->cap == 0)
        return NULL;
    size_t j = fnv1a(w, strlen(w), FNV_OFFSET) & (t->cap - 1);
    while (t->slots[j].word) {
        if (strcmp(t->slots[j].word, w) == 0)
            return &t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    if (!add)
        return NULL;
    t->slots[j].word = zt_strdup(w);
    t->slots[j].count = 0;
    t->slots[j].first = order;
    t->used++;
    return &t->slots[j];
}

/* A word that carries meaning: not a stopword, two bytes or more. */
static bool content_word(const char *w, size_t n) {
    return n >= 2 && !is_stopword(w);
}

/* Counts the content words of text. */
static void count_words(const char *text, size_t len, table_t *t) {
    char tok[WORD_MAX + 1];
    size_t pos = 0, start, n;
    uint32_t order = 0;
    while ((n = next_word(text, len, &pos, tok, &start)) > 0) {
        if (!content_word(tok, n))
            continue;
        entry_t *e = table_find(t, tok, true, order++);
        e->count++;
        if (e->count > t->max_count)
            t->max_count = e->count;
    }
}

/* --- the embedding ----------------------------------------------------------- */

/* Adds weight to the bucket of feature hash h, with a sign from another bit
 * of it so collisions cancel out on average instead of piling up. */
static void add_feature(float *out, size_t dim, uint64_t h, float weight) {
    size_t index = (size_t)(h % dim);
    out[index] += (h >> 63) ? -weight : weight;
}

int drive2_local_embed(const char *text, size_t len, float *out, size_t dim) {
    if (!out || dim == 0)
        return ZT_ERR_INVALID;
    memset(out, 0, dim * sizeof *out);
    if (!text)
        len = 0;
    char tok[WORD_MAX + 1], prev[WORD_MAX + 1] = "";
    size_t pos = 0, start, n, features = 0;
    while ((n = next_word(text, len, &pos, tok, &start)) > 0) {
        if (!content_word(tok, n))
            continue;
        uint64_t h = fnv1a(tok, n, FNV_OFFSET);
        add_feature(out, dim, h, 1.0f);
        if (prev[0]) {
            /* bigram "prev tok": word order and phrases */
            uint64_t b = fnv1a(prev, strlen(prev), FNV_OFFSET ^ 0x9E3779B97F4A7C15ULL);
            b = fnv1a(" ", 1, b);
            b = fnv1a(tok, n, b);
            add_feature(out, dim, b, 0.5f);
        }
        memcpy(prev, tok, n + 1);
        features++;
    }
    if (features == 0) /* no words: hash the bytes, so the vector is still a unit one */
        add_feature(out, dim, fnv1a(text ? text : "", len, FNV_OFFSET), 1.0f);
    double norm = 0;
    for (size_t i = 0; i < dim; i++)
        norm += (double)out[i] * out[i];
    if (norm <= 0) { /* every feature cancelled out */
        out[0] = 1.0f;
        return 0;
    }
    norm = sqrt(norm);
    for (size_t i = 0; i < dim; i++)
        out[i] = (float)(out[i] / norm);
    return 0;
}

/* --- sentences and the summary ---------------------------------------------- */

typedef struct {
    size_t start, end; /* bytes of text */
    double score;
    size_t index; /* position in the document */
} sentence_t;

#define SENTENCE_MAX 600 /* bytes: a longer run is cut at a space */
#define SUMMARY_MAX 700  /* bytes of summary */
#define SUMMARY_SENTENCE_MAX 300

static size_t count_words_in(const char *s, size_t n) {
    char tok[WORD_MAX + 1];
    size_t pos = 0, start, words = 0;
    while (next_word(s, n, &pos, tok, &start) > 0)
        words++;
    return words;
}

/* Is the line s[0..n) a heading or a line of its own (a title, a list
 * item, a table row)? Short lines that do not end mid-sentence are. */
static bool line_stands_alone(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return true;
    char last = s[n - 1];
    if (last == ',' || last == ';' || last == '-')
        return false;
    return count_words_in(s, n) < 8;
}

/* Splits text into sentences: at . ! ? followed by a space, at blank lines,
 * and after lines that stand alone; other line breaks are soft wraps (PDF
 * text wraps mid-sentence). */
static sentence_t *split_sentences(const char *text, size_t len, size_t *count) {
    size_t cap = 16, n = 0;
    sentence_t *out = zt_malloc(cap * sizeof *out);
    size_t start = 0, line_start = 0;
    for (size_t i = 0; i <= len; i++) {
        bool boundary = false;
        size_t end = i;
        if (i == len) {
            boundary = true;
        } else {
            char c = text[i];
            if ((c == '.' || c == '!' || c == '?') &&
                (i + 1 == len || isspace((unsigned char)text[i + 1]))) {
                boundary = true;
                end = i + 1;
            } else if (c == '\n') {
                boundary = line_stands_alone(text + line_start, i - line_start);
                line_start = i + 1;
            } else if (i - start >= SENTENCE_MAX && isspace((unsigned char)c)) {
                boundary = true;
            }
        }
        if (!boundary)
            continue;
        while (start < end && isspace((unsigned char)text[start]))
            start++;
        size_t e = end;
        while (e > start && isspace((unsigned char)text[e - 1]))
            e--;
        while (start < e && (text[start] == '#' || text[start] == '*' || text[start] == '>' ||
                             isspace((unsigned char)text[start])))
            start++; /* markdown heading, list and quote marks */
        if (e > start && count_words_in(text + start, e - start) > 0) {
            if (n == cap) {
                cap *= 2;
                out = zt_realloc(out, cap * sizeof *out);
            }
            out[n] = (sentence_t){start, e, 0, n};
            n++;
        }
        start = end;
    }
    *count = n;
    return out;
}

/* A sentence that ends like prose (. ! ?), not a heading or a fragment. */
static bool punctuated(const char *text, const sentence_t *s) {
    char last = text[s->end - 1];
    return last == '.' || last == '!' || last == '?';
}

static void score_sentences(const char *text, sentence_t *s, size_t n, table_t *t) {
    char tok[WORD_MAX + 1];
    bool lead_seen = false;
    for (size_t i = 0; i < n; i++) {
        const char *p = text + s[i].start;
        size_t len = s[i].end - s[i].start, pos = 0, start, wl;
        double sum = 0;
        size_t words = 0, content = 0;
        while ((wl = next_word(p, len, &pos, tok, &start)) > 0) {
            words++;
            if (!content_word(tok, wl))
                continue;
            content++;
            entry_t *e = table_find(t, tok, false, 0);
            if (e && t->max_count)
                sum += (double)e->count / t->max_count;
        }
        double score = content ? sum / sqrt((double)content) : 0;
        bool prose = punctuated(text, &s[i]);
        if (words < 4 || !prose)
            score *= 0.3; /* headings and fragments make poor summaries */
        if (prose && !lead_seen) {
            score *= 1.2; /* documents tend to lead with their point */
            lead_seen = true;
        }
        s[i].score = score;
    }
}

static int by_score(const void *a, const void *b) {
    const sentence_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int by_index(const void *a, const void *b) {
    const sentence_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* A growing string. */
typedef struct {
    char *s;
    size_t len, cap;
} str_t;

static void str_add(str_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = zt_realloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void str_addf(str_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_addf(str_t *b, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        str_add(b, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Appends s[0..n) with white space collapsed, at most max bytes (cut at a
 * space, with an ellipsis). */
static void str_add_collapsed(str_t *b, const char *s, size_t n, size_t max) {
    size_t added = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            space = added > 0;
            continue;
        }
        if (added >= max && space) {
            str_add(b, "\xE2\x80\xA6", 3); /* … */
            return;
        }
        if (space) {
            str_add(b, " ", 1);
            added++;
            space = false;
        }
        str_add(b, (const char *)&c, 1);
        added++;
    }
}

/* The extractive summary, or NULL when the text has no sentences. */
static char *summarize(const char *text, size_t len, table_t *t) {
    size_t n = 0;
    sentence_t *s = split_sentences(text, len, &n);
    if (n == 0) {
        free(s);
        return NULL;
    }
    score_sentences(text, s, n, t);
    size_t want = n <= 2 ? n : n <= 6 ? 2 : 3;
    qsort(s, n, sizeof *s, by_score);
    qsort(s, want, sizeof *s, by_index);
    str_t b = {NULL, 0, 0};
    for (size_t i = 0; i < want && b.len < SUMMARY_MAX; i++) {
        if (b.len)
            str_add(&b, " ", 1);
        str_add_collapsed(&b, text + s[i].start, s[i].end - s[i].start, SUMMARY_SENTENCE_MAX);
        char last = b.s[b.len - 1];
        if (last != '.' && last != '!' && last != '?' && last != '\xA6')
            str_add(&b, ".", 1);
    }
    free(s);
    return b.s;
}

/* --- tags --------------------------------------------------------------------- */

static int by_count(const void *a, const void *b) {
    const entry_t *x = *(const entry_t *const *)a, *y = *(const entry_t *const *)b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->first < y->first ? -1 : x->first > y->first;
}

static void add_tag(drive2_analysis_t *out, const char *tag) {
    if (!tag || !*tag || out->tag_count >= DRIVE2_LOCAL_MAX_TAGS)
        return;
    for (size_t i = 0; i < out->tag_count; i++)
        if (strcmp(out->tags[i], tag) == 0)
            return;
    if (!out->tags)
        out->tags = zt_calloc(DRIVE2_LOCAL_MAX_TAGS, sizeof *out->tags);
    char *t = zt_strdup(tag);
    for (char *p = t; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    out->tags[out->tag_count++] = t;
}

/* The most frequent content words (three bytes or more, not numbers). */
static void keyword_tags(table_t *t, size_t max, drive2_analysis_t *out) {
    entry_t **list = zt_malloc((t->used ? t->used : 1) * sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].word && strlen(t->slots[i].word) >= 3 && !all_digits(t->slots[i].word))
            list[n++] = &t->slots[i];
    qsort(list, n, sizeof *list, by_count);
    for (size_t i = 0; i < n && out->tag_count < max; i++)
        add_tag(out, list[i]->word);
    free(list);
}

/* A one-word kind from the MIME type: pdf, csv, json, html, text, image... */
static const char *kind_of(const char *mime) {
    static const struct {
        const char *mime, *kind;
    } kinds[] = {{"application/pdf", "pdf"},
                 {"text/csv", "csv"},
                 {"application/json", "json"},
                 {"text/html", "html"},
                 {"text/markdown", "markdown"}};
    if (!mime)
        return "file";
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(mime, kinds[i].mime) == 0)
            return kinds[i].kind;
    if (strncmp(mime, "text/", 5) == 0)
        return "text";
    if (strncmp(mime, "image/", 6) == 0)
        return "image";
    if (strncmp(mime, "video/", 6) == 0)
        return "video";
    if (strncmp(mime, "audio/", 6) == 0)
        return "audio";
    return "file";
}

/* --- the file name --------------------------------------------------------------- */

#define SLUG_MAX_WORDS 8
#define SLUG_MAX_BYTES 60

/* "Quarterly Report: Q3 2024!" -> "quarterly-report-q3-2024" (words only,
 * lower-case, joined by '-'). Empty when s has no words. */
static void slugify(const char *s, size_t n, char *out, size_t size) {
    char tok[WORD_MAX + 1];
    size_t pos = 0, start, wl, len = 0, words = 0;
    out[0] = '\0';
    while ((wl = next_word(s, n, &pos, tok, &start)) > 0 && words < SLUG_MAX_WORDS) {
        size_t need = (len ? 1 : 0) + wl;
        if (len + need > SLUG_MAX_BYTES || len + need + 1 > size)
            break;
        if (len)
            out[len++] = '-';
        memcpy(out + len, tok, wl);
        len += wl;
        out[len] = '\0';
        words++;
    }
}

/* The extension of name ("pdf" for "Report.PDF"), lower-cased, or "". */
static void extension_of(const char *name, char *ext, size_t size) {
    ext[0] = '\0';
    if (!name)
        return;
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base || !dot[1] || strlen(dot + 1) > 10 || strlen(dot + 1) >= size)
        return;
    for (const char *p = dot + 1; *p; p++)
        if (!isalnum((unsigned char)*p))
            return;
    size_t i = 0;
    for (const char *p = dot + 1; *p; p++)
        ext[i++] = (char)tolower((unsigned char)*p);
    ext[i] = '\0';
}

static const char *extension_for_mime(const char *mime) {
    static const struct {
        const char *mime, *ext;
    } map[] = {{"text/plain", "txt"},      {"text/markdown", "md"},      {"text/csv", "csv"},
               {"text/html", "html"},      {"application/json", "json"}, {"application/pdf", "pdf"},
               {"image/jpeg", "jpg"},      {"image/png", "png"},         {"image/gif", "gif"},
               {"image/webp", "webp"},     {"image/tiff", "tiff"},       {"video/mp4", "mp4"},
               {"application/xml", "xml"}, {"image/svg+xml", "svg"}};
    for (size_t i = 0; mime && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(mime, map[i].mime) == 0)
            return map[i].ext;
    return "";
}

/* The title of a text: a markdown heading or a "title: ..." line among the
 * first lines, else the first line with words, as *t_start and *t_len. */
static bool find_title(const char *text, size_t len, size_t *t_start, size_t *t_len) {
    size_t first_start = 0, first_len = 0;
    bool have_first = false;
    size_t pos = 0;
    for (int line = 0; pos < len && line < 40; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t s = pos, e = end;
        while (s < e && isspace((unsigned char)text[s]))
            s++;
        while (e > s && isspace((unsigned char)text[e - 1]))
            e--;
        if (e > s && text[s] == '#') {
            while (s < e && (text[s] == '#' || text[s] == ' '))
                s++;
            if (count_words_in(text + s, e - s) > 0) {
                *t_start = s;
                *t_len = e - s;
                return true;
            }
        }
        if (e - s > 6 && strncasecmp(text + s, "title:", 6) == 0 &&
            count_words_in(text + s + 6, e - s - 6) > 0) {
            *t_start = s + 6;
            *t_len = e - s - 6;
            return true;
        }
        if (!have_first && e > s && count_words_in(text + s, e - s) > 0) {
            have_first = true;
            first_start = s;
            first_len = e - s;
        }
        pos = end + 1;
    }
    *t_start = first_start;
    *t_len = first_len;
    return have_first;
}

/* slug + "." + ext (ext may be empty) as a malloc'd string. */
static char *make_filename(const char *slug, const char *ext) {
    size_t n = strlen(slug) + strlen(ext) + 2;
    char *s = zt_malloc(n);
    snprintf(s, n, "%s%s%s", slug, *ext ? "." : "", ext);
    return s;
}

/* --- images ------------------------------------------------------------------------- */

typedef struct {
    int width, height; /* as displayed (EXIF orientation applied) */
    char make[64];
    char model[96];
    char date[32]; /* "2024-05-01 10:30:00", or "" */
} image_meta_t;

/* libvips shows an EXIF string as "V (V, ASCII, N components, M bytes)";
 * this keeps V (trimmed). */
static void exif_value(const char *shown, char *out, size_t size) {
    size_t n = strlen(shown), vlen = n;
    for (const char *p = strstr(shown, " ("); p; p = strstr(p + 1, " (")) {
        size_t v = (size_t)(p - shown);
        if (v + 2 + v + 2 <= n && strncmp(p + 2, shown, v) == 0 &&
            strncmp(p + 2 + v, ", ", 2) == 0) {
            vlen = v;
            break;
        }
    }
    while (vlen > 0 && (isspace((unsigned char)shown[vlen - 1]) || shown[vlen - 1] == '\0'))
        vlen--;
    size_t s = 0;
    while (s < vlen && isspace((unsigned char)shown[s]))
        s++;
    snprintf(out, size, "%.*s", (int)(vlen - s), shown + s);
    /* printable ASCII only: these end up in names and tags */
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = ' ';
}

static void exif_field(VipsImage *im, const char *name, char *out, size_t size) {
    out[0] = '\0';
    if (vips_image_get_typeof(im, name) == 0)
        return;
    char *shown = NULL;
    if (vips_image_get_as_string(im, name, &shown) == 0 && shown)
        exif_value(shown, out, size);
    g_free(shown);
}

/* "2024:05:01 10:30:00" -> "2024-05-01 10:30:00"; "" if it is not that. */
static void exif_date(const char *v, char *out, size_t size) {
    out[0] = '\0';
    int Y, M, D, h, m, s;
    char tail;
    if (sscanf(v, "%4d:%2d:%2d %2d:%2d:%2d%c", &Y, &M, &D, &h, &m, &s, &tail) != 6)
        return;
    if (Y < 1900 || Y > 2999 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0 ||
        m > 59 || s < 0 || s > 60)
        return;
    char buf[80];
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", Y, M, D, h, m, s);
    if (n > 0 && (size_t)n < size)
        memcpy(out, buf, (size_t)n + 1);
}

static int image_meta(const unsigned char *data, size_t len, image_meta_t *m, char *err,
                      size_t err_size) {
    memset(m, 0, sizeof *m);
    /* libvips as the thumbnails start it: the same loader allow-list (no
     * ImageMagick parsing uploads) and modules loaded only when needed. */
    int rc = drive2_thumbnail_init(err, err_size);
    if (rc != 0)
        return rc;
    if (!drive2_thumbnail_find_loader(data, len))
        return zt_fail(err, err_size, ZT_ERR_INVALID,
                       "not a readable image: not JPEG, PNG, WebP, GIF, TIFF, HEIF, SVG or PDF");
    /* Only the header is read here: libvips decodes pixels lazily. */
    VipsImage *im = vips_image_new_from_buffer(data, len, "", NULL);
    if (!im) {
        char why[200];
        snprintf(why, sizeof why, "%s", vips_error_buffer());
        vips_error_clear();
        char *nl = strchr(why, '\n');
        if (nl)
            *nl = '\0';
        return zt_fail(err, err_size, ZT_ERR_INVALID, "not a readable image: %s",
                       *why ? why : "unknown format");
    }
    m->width = vips_image_get_width(im);
    m->height = vips_image_get_height(im);
    if (vips_image_get_orientation_swap(im)) {
        int w = m->width;
        m->width = m->height;
        m->height = w;
    }
    exif_field(im, "exif-ifd0-Make", m->make, sizeof m->make);
    exif_field(im, "exif-ifd0-Model", m->model, sizeof m->model);
    char raw[64];
    exif_field(im, "exif-ifd2-DateTimeOriginal", raw, sizeof raw);
    if (!raw[0])
        exif_field(im, "exif-ifd0-DateTime", raw, sizeof raw);
    exif_date(raw, m->date, sizeof m->date);
    g_object_unref(im);
    return 0;
}

/* "Canon EOS 80D" from make "Canon" and model "Canon EOS 80D" (or "EOS 80D"). */
static void camera_name(const image_meta_t *m, char *out, size_t size) {
    if (m->model[0] && m->make[0] && strncasecmp(m->model, m->make, strlen(m->make)) != 0)
        snprintf(out, size, "%s %s", m->make, m->model);
    else
        snprintf(out, size, "%s", m->model[0] ? m->model : m->make);
}

static const char *format_name(const char *mime) {
    static const struct {
        const char *mime, *name;
    } names[] = {{"image/jpeg", "JPEG"},  {"image/png", "PNG"},   {"image/gif", "GIF"},
                 {"image/webp", "WebP"},  {"image/tiff", "TIFF"}, {"image/heic", "HEIC"},
                 {"image/svg+xml", "SVG"}};
    for (size_t i = 0; mime && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(mime, names[i].mime) == 0)
            return names[i].name;
    return NULL;
}

static void analyze_image(const drive2_input_t *in, const image_meta_t *m, str_t *summary,
                          drive2_analysis_t *out, char *slug, size_t slug_size) {
    const char *orientation = m->width > m->height   ? "landscape"
                              : m->width < m->height ? "portrait"
                                                     : "square";
    const char *format = format_name(in->mime_type);
    char camera[192];
    camera_name(m, camera, sizeof camera);
    if (format)
        str_addf(summary, "A %s %s image of %dx%d pixels", orientation, format, m->width,
                 m->height);
    else
        str_addf(summary, "A %s image of %dx%d pixels", orientation, m->width, m->height);
    if (m->date[0])
        str_addf(summary, ", taken %s", m->date);
    if (camera[0])
        str_addf(summary, "%s with a %s", m->date[0] ? "" : ", taken", camera);
    str_add(summary, ".", 1);

    add_tag(out, "image");
    if (format)
        add_tag(out, format);
    add_tag(out, orientation);
    char size[32];
    snprintf(size, sizeof size, "%dx%d", m->width, m->height);
    add_tag(out, size);
    if (camera[0] || m->date[0])
        add_tag(out, "photo");
    if (m->make[0])
        add_tag(out, m->make);
    if (camera[0])
        add_tag(out, camera);
    if (m->date[0]) {
        char year[5];
        snprintf(year, sizeof year, "%.4s", m->date);
        add_tag(out, year);
    }

    char words[256];
    if (m->date[0] || camera[0])
        snprintf(words, sizeof words, "photo %.10s %s", m->date, camera);
    else
        snprintf(words, sizeof words, "image %dx%d", m->width, m->height);
    slugify(words, strlen(words), slug, slug_size);
}

/* --- the whole analysis --------------------------------------------------------------- */

/* A human-readable size: "512 bytes", "1.5 KiB", "2.0 MiB". */
static void format_size(int64_t bytes, char *out, size_t size) {
    if (bytes < 1024)
        snprintf(out, size, "%lld bytes", (long long)(bytes < 0 ? 0 : bytes));
    else if (bytes < 1024 * 1024)
        snprintf(out, size, "%.1f KiB", (double)bytes / 1024);
    else if (bytes < 1024LL * 1024 * 1024)
        snprintf(out, size, "%.1f MiB", (double)bytes / (1024 * 1024));
    else
        snprintf(out, size, "%.1f GiB", (double)bytes / (1024.0 * 1024 * 1024));
}

int drive2_local_analyze(const drive2_input_t *in, drive2_analysis_t *out, char *err,
                         size_t err_size) {
    memset(out, 0, sizeof *out);
    const char *mime = in->mime_type && *in->mime_type ? in->mime_type : "application/octet-stream";
    const char *text = in->text;
    size_t text_len = text ? (in->text_len ? in->text_len : strlen(text)) : 0;
    char ext[16];
    extension_of(in->original_name, ext, sizeof ext);
    if (!ext[0])
        snprintf(ext, sizeof ext, "%s", extension_for_mime(mime));

    char slug[SLUG_MAX_BYTES + 8] = "";
    str_t summary = {NULL, 0, 0};
    bool is_image = strncmp(mime, "image/", 6) == 0 && in->image && in->image_len > 0;
    if (is_image) {
        image_meta_t m;
        int rc = image_meta(in->image, in->image_len, &m, err, err_size);
        if (rc != 0)
            return rc;
        analyze_image(in, &m, &summary, out, slug, sizeof slug);
    }

    table_t words = {NULL, 0, 0, 0};
    if (text_len > 0)
        count_words(text, text_len, &words);
    bool has_words = words.used > 0;
    if (has_words) {
        char *s = summarize(text, text_len, &words);
        if (s) {
            if (summary.len)
                str_add(&summary, " ", 1);
            str_add(&summary, s, strlen(s));
            free(s);
        }
        keyword_tags(&words, DRIVE2_LOCAL_MAX_TAGS - 1, out);
        size_t ts, tl;
        if (!is_image && find_title(text, text_len, &ts, &tl))
            slugify(text + ts, tl, slug, sizeof slug);
    }
    table_free(&words);
    add_tag(out, kind_of(mime));

    if (!summary.len) {
        char size[32];
        format_size(in->size, size, sizeof size);
        const char *kind = kind_of(mime);
        str_addf(&summary, "A%s %s file (%s) of %s%s.", strchr("aeiou", kind[0]) ? "n" : "", kind,
                 mime, size, text && text_len == 0 ? ", with no text" : "");
    }
    out->summary = summary.s;

    if (!slug[0]) { /* no title: the original name's words, else "file" */
        char base[256] = "";
        if (in->original_name) {
            const char *slash = strrchr(in->original_name, '/');
            snprintf(base, sizeof base, "%s", slash ? slash + 1 : in->original_name);
            char *dot = strrchr(base, '.');
            if (dot && dot != base)
                *dot = '\0';
        }
        slugify(base, strlen(base), slug, sizeof slug);
        if (!slug[0])
            snprintf(slug, sizeof slug, "%s", kind_of(mime));
    }
    out->filename = make_filename(slug, ext);

    /* The vector: the text's, or for files without words the words that
     * describe them (so images and videos are searchable by their tags). */
    out->dim = DRIVE2_LOCAL_DIM;
    out->embedding = zt_malloc(DRIVE2_LOCAL_DIM * sizeof(float));
    if (has_words) {
        drive2_local_embed(text, text_len, out->embedding, DRIVE2_LOCAL_DIM);
    } else {
        str_t meta = {NULL, 0, 0};
        str_add(&meta, out->summary, strlen(out->summary));
        for (size_t i = 0; i < out->tag_count; i++) {
            str_add(&meta, " ", 1);
            str_add(&meta, out->tags[i], strlen(out->tags[i]));
        }
        drive2_local_embed(meta.s, meta.len, out->embedding, DRIVE2_LOCAL_DIM);
        free(meta.s);
    }
    return 0;
}
