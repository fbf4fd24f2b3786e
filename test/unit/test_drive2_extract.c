/* Unit tests for worker/drive2/extract: type sniffing, UTF-8 repair, the
 * limit, and text from JSON, CSV, HTML and a PDF this test writes itself;
 * corrupt inputs fail with a message, random bytes never crash. */
#include "zt_test.h"

#include "extract.h"
#include "zt_error.h"

#include <stdlib.h>

/* A one-page PDF with one text line per entry of lines (Helvetica, a
 * base-14 font, so no font file is needed). Returns malloc'd bytes. */
static unsigned char *make_pdf(const char *const *lines, size_t nlines, size_t *len) {
    char content[4096];
    size_t c = (size_t)snprintf(content, sizeof content, "BT /F1 18 Tf 72 720 Td 22 TL\n");
    for (size_t i = 0; i < nlines; i++)
        c += (size_t)snprintf(content + c, sizeof content - c, "(%s) Tj T*\n", lines[i]);
    c += (size_t)snprintf(content + c, sizeof content - c, "ET\n");
    char *out = malloc(8192);
    size_t off[6];
    size_t n = (size_t)sprintf(out, "%%PDF-1.4\n");
    off[1] = n;
    n += (size_t)sprintf(out + n, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    off[2] = n;
    n += (size_t)sprintf(out + n, "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
    off[3] = n;
    n += (size_t)sprintf(out + n,
                         "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                         "/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n");
    off[4] = n;
    n += (size_t)sprintf(out + n, "4 0 obj\n<< /Length %zu >>\nstream\n%sendstream\nendobj\n", c,
                         content);
    off[5] = n;
    n += (size_t)sprintf(out + n, "5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                                  ">>\nendobj\n");
    size_t xref = n;
    n += (size_t)sprintf(out + n, "xref\n0 6\n0000000000 65535 f \n");
    for (int i = 1; i <= 5; i++)
        n += (size_t)sprintf(out + n, "%010zu 00000 n \n", off[i]);
    n += (size_t)sprintf(out + n, "trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n",
                         xref);
    *len = n;
    return (unsigned char *)out;
}

static const unsigned char PNG[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};

static void test_sniff(void) {
    const char *pdf = "%PDF-1.7\n...";
    CHECK_STR(drive2_sniff_mime((const unsigned char *)pdf, strlen(pdf), "x.txt"),
              "application/pdf");
    CHECK_STR(drive2_sniff_mime(PNG, sizeof PNG, "photo.jpg"), "image/png"); /* content wins */
    const unsigned char jpg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F'};
    CHECK_STR(drive2_sniff_mime(jpg, sizeof jpg, NULL), "image/jpeg");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"GIF89a\x01\x00", 8, NULL), "image/gif");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"RIFF\x10\0\0\0WEBPVP8 ", 16, NULL),
              "image/webp");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"PK\x03\x04\x14\0\0\0", 8, "a.zip"),
              "application/zip");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"PK\x03\x04\x14\0\0\0", 8, "Letter.DOCX"),
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"\0\0\0\x18"
                                                       "ftypmp42\0\0\0\0",
                                16, NULL),
              "video/mp4");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"Hello world\n", 12, NULL), "text/plain");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"a,b\n1,2\n", 8, "data.csv"), "text/csv");
    const char *html = "  <!DOCTYPE html><html><body>x</body></html>";
    CHECK_STR(drive2_sniff_mime((const unsigned char *)html, strlen(html), "page"), "text/html");
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"{\"a\": 1}", 8, NULL), "application/json");
    /* braces that are not JSON stay plain text */
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"{not json", 9, NULL), "text/plain");
    /* but a file that says .json is JSON (and fails later if broken) */
    CHECK_STR(drive2_sniff_mime((const unsigned char *)"{not json", 9, "a.json"),
              "application/json");
    const char *svg = "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>";
    CHECK_STR(drive2_sniff_mime((const unsigned char *)svg, strlen(svg), NULL), "image/svg+xml");
    unsigned char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)(i * 7 + 3);
    CHECK_STR(drive2_sniff_mime(bin, sizeof bin, NULL), "application/octet-stream");
    CHECK_STR(drive2_sniff_mime(bin, sizeof bin, "broken.pdf"), "application/pdf");
    CHECK_STR(drive2_sniff_mime(NULL, 0, "empty.md"), "text/markdown");
    CHECK_STR(drive2_sniff_mime(NULL, 0, NULL), "text/plain");
    CHECK(drive2_mime_wants_thumbnail("image/jpeg"));
    CHECK(drive2_mime_wants_thumbnail("application/pdf"));
    CHECK(drive2_mime_wants_thumbnail("video/mp4"));
    CHECK(!drive2_mime_wants_thumbnail("text/plain"));
}

static void test_utf8(void) {
    size_t n = 0;
    char *s = drive2_utf8_sanitize("caf\xe9 ok", 7, &n);
    CHECK_STR(s, "caf\xEF\xBF\xBD ok");
    CHECK_INT(n, 9);
    free(s);
    s = drive2_utf8_sanitize("a\xc0\xafz", 4, &n); /* overlong '/' */
    CHECK_STR(s, "a\xEF\xBF\xBD\xEF\xBF\xBDz");
    free(s);
    s = drive2_utf8_sanitize("\xed\xa0\x80", 3, &n); /* a UTF-16 surrogate */
    CHECK(strstr(s, "\xed\xa0") == NULL);
    free(s);
    s = drive2_utf8_sanitize("x\0y", 3, &n);
    CHECK_STR(s, "x\xEF\xBF\xBDy");
    free(s);
    s = drive2_utf8_sanitize("\xe2\x82\xac \xf0\x9f\x98\x80", 8, &n); /* euro, emoji */
    CHECK_STR(s, "\xe2\x82\xac \xf0\x9f\x98\x80");
    free(s);
    s = drive2_utf8_sanitize("\xe2\x82", 2, &n); /* cut in the middle */
    CHECK_STR(s, "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);

    drive2_extract_t x;
    char err[256];
    const char *text = "caf\xe9 and \xc3\xa9\xc3\xa9\xc3\xa9";
    CHECK_INT(drive2_extract((const unsigned char *)text, strlen(text), NULL, "n.txt", 1 << 20, &x,
                             err, sizeof err),
              0);
    CHECK_STR(x.mime_type, "text/plain");
    CHECK_STR(x.text, "caf\xEF\xBF\xBD and \xc3\xa9\xc3\xa9\xc3\xa9");
    CHECK(!x.truncated);
    drive2_extract_clear(&x);
    /* the limit cuts at a character boundary */
    CHECK_INT(drive2_extract((const unsigned char *)"\xc3\xa9\xc3\xa9\xc3\xa9", 6, "text/plain",
                             NULL, 5, &x, err, sizeof err),
              0);
    CHECK_STR(x.text, "\xc3\xa9\xc3\xa9");
    CHECK_INT(x.text_len, 4);
    CHECK(x.truncated);
    drive2_extract_clear(&x);
    /* UTF-16LE with a byte order mark */
    const unsigned char u16[] = {0xFF, 0xFE, 'H', 0, 'i', 0, 0xAC, 0x20, 0x3D, 0xD8, 0x00, 0xDE};
    CHECK_INT(drive2_extract(u16, sizeof u16, NULL, "w.txt", 1 << 20, &x, err, sizeof err), 0);
    CHECK_STR(x.text, "Hi\xe2\x82\xac\xf0\x9f\x98\x80");
    drive2_extract_clear(&x);
}

static void test_json(void) {
    const char *j = "{\"title\": \"Q3 report\", \"tags\": [\"a\", \"b\"], \"n\": 3, \"r\": 1.5, "
                    "\"nested\": {\"k\": true}, \"z\": null}";
    drive2_extract_t x;
    char err[256];
    CHECK_INT(drive2_extract((const unsigned char *)j, strlen(j), NULL, "doc.json", 1 << 20, &x,
                             err, sizeof err),
              0);
    CHECK_STR(x.mime_type, "application/json");
    CHECK_STR(x.text, "title: Q3 report\ntags: a\ntags: b\nn: 3\nr: 1.5\nnested.k: true\n");
    drive2_extract_clear(&x);
    const char *bad = "{\"title\": \"Q3\",\n \"x\": }";
    CHECK_INT(drive2_extract((const unsigned char *)bad, strlen(bad), NULL, "doc.json", 1 << 20, &x,
                             err, sizeof err),
              ZT_ERR_INVALID);
    CHECK(strstr(err, "not valid JSON: line 2") != NULL);
    CHECK(x.text == NULL);
    drive2_extract_clear(&x);
}

static void test_csv(void) {
    const char *csv = "name,price,note\r\n\"Widget, large\",10,\"says \"\"hi\"\"\"\r\n"
                      "Gadget,,\"two\nlines\"\r\n\xc3\x89"
                      "clair,3,\r\n";
    drive2_extract_t x;
    char err[256];
    CHECK_INT(drive2_extract((const unsigned char *)csv, strlen(csv), NULL, "items.csv", 1 << 20,
                             &x, err, sizeof err),
              0);
    CHECK_STR(x.mime_type, "text/csv");
    CHECK_STR(x.text, "name, price, note\nWidget, large, 10, says \"hi\"\nGadget, two\nlines\n"
                      "\xc3\x89"
                      "clair, 3\n");
    drive2_extract_clear(&x);
    const char *semi = "a;b;c\n1;2;3";
    CHECK_INT(drive2_extract((const unsigned char *)semi, strlen(semi), "text/csv", NULL, 1 << 20,
                             &x, err, sizeof err),
              0);
    CHECK_STR(x.text, "a, b, c\n1, 2, 3\n");
    drive2_extract_clear(&x);
}

static void test_html(void) {
    const char *html = "<!DOCTYPE html><html><head><title>Trip Notes</title>"
                       "<style>body { color: red }</style><script>var secret = 1;</script></head>"
                       "<body><h1>Day one</h1><p>We saw  the <b>sea</b> &amp; the hills.</p>"
                       "<ul><li>fish</li><li>caf&eacute;</li></ul></body></html>";
    drive2_extract_t x;
    char err[256];
    CHECK_INT(drive2_extract((const unsigned char *)html, strlen(html), NULL, "trip.html", 1 << 20,
                             &x, err, sizeof err),
              0);
    CHECK_STR(x.mime_type, "text/html");
    CHECK_STR(x.text, "Trip Notes\nDay one\nWe saw the sea & the hills.\nfish\ncaf\xc3\xa9");
    CHECK(strstr(x.text, "secret") == NULL && strstr(x.text, "color") == NULL);
    drive2_extract_clear(&x);
    /* broken markup is still read (the parser recovers) */
    const char *broken = "<html><body><p>open <div>never closed";
    CHECK_INT(drive2_extract((const unsigned char *)broken, strlen(broken), "text/html", NULL,
                             1 << 20, &x, err, sizeof err),
              0);
    CHECK(x.text && strstr(x.text, "never closed") != NULL);
    drive2_extract_clear(&x);
}

static void test_pdf(void) {
    const char *lines[] = {"Quarterly Sales Report", "Revenue grew in the third quarter.",
                           "Widgets sold well in Europe."};
    size_t len = 0;
    unsigned char *pdf = make_pdf(lines, 3, &len);
    drive2_extract_t x;
    char err[256];
    CHECK_INT(drive2_extract(pdf, len, NULL, "report.pdf", 1 << 20, &x, err, sizeof err), 0);
    CHECK_STR(x.mime_type, "application/pdf");
    CHECK_INT(x.pages, 1);
    CHECK(x.text && strstr(x.text, "Quarterly Sales Report") != NULL);
    CHECK(x.text && strstr(x.text, "Widgets sold well in Europe.") != NULL);
    if (x.text && !strstr(x.text, "Quarterly"))
        fprintf(stderr, "pdf text: [%s]\n", x.text);
    drive2_extract_clear(&x);

    /* truncated: the header survives, the document does not */
    for (size_t cut = 9; cut < len; cut += len / 4) {
        int rc = drive2_extract(pdf, cut, NULL, "report.pdf", 1 << 20, &x, err, sizeof err);
        if (rc != 0) {
            CHECK_INT(rc, ZT_ERR_INVALID);
            CHECK(strstr(err, "PDF") != NULL);
            CHECK(x.text == NULL);
        }
        drive2_extract_clear(&x);
    }
    CHECK_INT(drive2_extract(pdf, 40, NULL, "report.pdf", 1 << 20, &x, err, sizeof err),
              ZT_ERR_INVALID);
    CHECK(strstr(err, "not a valid PDF") != NULL);
    drive2_extract_clear(&x);
    /* garbage that calls itself a PDF */
    unsigned char junk[300];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 13 + 1);
    CHECK_INT(drive2_extract(junk, sizeof junk, NULL, "fake.pdf", 1 << 20, &x, err, sizeof err),
              ZT_ERR_INVALID);
    CHECK(strstr(err, "not a valid PDF") != NULL);
    drive2_extract_clear(&x);
    /* the limit applies to PDF text too */
    CHECK_INT(drive2_extract(pdf, len, NULL, "report.pdf", 10, &x, err, sizeof err), 0);
    CHECK(x.truncated && x.text_len <= 10);
    drive2_extract_clear(&x);
    free(pdf);
}

static void test_metadata_only(void) {
    drive2_extract_t x;
    char err[256];
    CHECK_INT(drive2_extract(PNG, sizeof PNG, NULL, "p.png", 1 << 20, &x, err, sizeof err), 0);
    CHECK_STR(x.mime_type, "image/png");
    CHECK(x.text == NULL && x.text_len == 0);
    drive2_extract_clear(&x);
    unsigned char bin[64] = {1, 2, 3, 0, 5};
    CHECK_INT(drive2_extract(bin, sizeof bin, NULL, "blob.bin", 1 << 20, &x, err, sizeof err), 0);
    CHECK_STR(x.mime_type, "application/octet-stream");
    CHECK(x.text == NULL);
    drive2_extract_clear(&x);
    CHECK_INT(drive2_extract(NULL, 0, NULL, "empty.txt", 1 << 20, &x, err, sizeof err), 0);
    CHECK_STR(x.text, "");
    drive2_extract_clear(&x);
}

/* Random and mutated input through every parser: an error is fine, a crash
 * (or a sanitizer report) is not. */
static void test_random(void) {
    const char *types[] = {"application/pdf", "text/html",  "application/json",
                           "text/csv",        "text/plain", NULL};
    const char *lines[] = {"Some text"};
    size_t plen = 0;
    unsigned char *pdf = make_pdf(lines, 1, &plen);
    unsigned int seed = 12345;
    unsigned char buf[2048];
    int errors = 0;
    for (int round = 0; round < 300; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof buf);
        if (round % 3 == 0 && plen <= sizeof buf) {
            memcpy(buf, pdf, plen); /* a PDF with a few bytes flipped */
            len = plen;
            for (int k = 0; k < 4; k++)
                buf[rand_r(&seed) % plen] = (unsigned char)rand_r(&seed);
        } else {
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)rand_r(&seed);
        }
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            drive2_extract_t x;
            char err[256];
            int rc = drive2_extract(buf, len, types[t], "f", 4096, &x, err, sizeof err);
            if (rc != 0)
                errors++;
            else if (x.text)
                CHECK(x.text_len <= 4096 && strlen(x.text) == x.text_len);
            drive2_extract_clear(&x);
        }
    }
    CHECK(errors > 0); /* random PDFs and JSON are rejected */
    free(pdf);
}

int main(void) {
    RUN(test_sniff);
    RUN(test_utf8);
    RUN(test_json);
    RUN(test_csv);
    RUN(test_html);
    RUN(test_pdf);
    RUN(test_metadata_only);
    RUN(test_random);
    return zt_test_summary();
}
