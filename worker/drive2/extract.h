/* extract: the text of an uploaded file, for the AI step. Knows the type of
 * a file from its content (magic bytes, text heuristics) with the file
 * name's extension as a hint, and extracts UTF-8 text from text/... (invalid
 * bytes replaced by U+FFFD), JSON (values flattened to "key: value" lines),
 * CSV (one line per row), HTML (libxml2's HTML parser; script and style
 * dropped) and PDF (poppler). Other types get no text, which is not an
 * error: they are processed for metadata only. A file that claims a type it
 * does not hold (a truncated PDF, broken JSON) fails with a clear message.
 * Pure functions on memory; safe on any input. */
#ifndef DRIVE2_EXTRACT_H
#define DRIVE2_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>

/* What extraction found. Strings are malloc'd; free with drive2_extract_clear. */
typedef struct {
    char *mime_type; /* the type extraction used (sniffed, or as given) */
    char *text;      /* UTF-8, NUL-terminated; NULL: metadata only */
    size_t text_len; /* bytes of text, without the NUL */
    bool truncated;  /* text was cut at max_bytes */
    int pages;       /* PDF pages, else 0 */
} drive2_extract_t;

/* The MIME type of data (len bytes) as a static string. The content decides
 * when it can (PDF, PNG, JPEG, GIF, WebP, TIFF, ZIP, MP4/QuickTime, WebM,
 * HTML, JSON, SVG, text vs binary); filename's extension (may be NULL)
 * refines it (".csv" text is text/csv; ".docx" is a ZIP with a better
 * name) or decides for binary content no magic recognises
 * ("application/octet-stream" when it cannot). */
const char *drive2_sniff_mime(const unsigned char *data, size_t len, const char *filename);

/* True for types drive2_extract takes text from. */
bool drive2_extract_has_text(const char *mime_type);

/* True for types that get a thumbnail: images, PDFs and videos. */
bool drive2_mime_wants_thumbnail(const char *mime_type);

/* Extracts the text of data. mime_type NULL or "" means sniff it. At most
 * max_bytes of text are kept (cut at a character boundary; out->truncated
 * says so). Returns 0, or ZT_ERR_INVALID with err saying what is wrong with
 * the file ("not a valid PDF: ..."), ZT_ERR_TOO_LARGE for input this code
 * cannot take (over 2 GiB for the parsers). out is cleared first. */
int drive2_extract(const unsigned char *data, size_t len, const char *mime_type,
                   const char *filename, size_t max_bytes, drive2_extract_t *out, char *err,
                   size_t err_size);

void drive2_extract_clear(drive2_extract_t *x);

/* Copies len bytes into a malloc'd NUL-terminated string of valid UTF-8:
 * invalid or overlong sequences, surrogates and NUL bytes become U+FFFD.
 * *out_len gets the result's length. */
char *drive2_utf8_sanitize(const char *data, size_t len, size_t *out_len);

#endif
