/* Unit tests for worker/drive2/local_analyzer: summary, tags, suggested
 * file names, the feature-hashed embedding (deterministic, unit length,
 * similar texts nearer than unrelated ones) and image metadata read with
 * libvips from images this test makes (a JPEG with EXIF camera and date). */
#include "zt_test.h"

#include "local_analyzer.h"
#include "zt_error.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <vips/vips.h>

static const char *SOLAR =
    "# Solar Panels for Small Homes\n"
    "\n"
    "Solar panels turn sunlight into electricity for the home. A small roof can hold\n"
    "enough solar panels to cover most of the electricity a family uses in summer.\n"
    "\n"
    "The price of solar panels fell sharply over the last decade, and batteries now\n"
    "store the electricity for the evening.\n"
    "\n"
    "My neighbour has a cat.\n"
    "\n"
    "Installers check the roof angle, the shade from trees and the local rules before\n"
    "they mount the panels.\n";

static drive2_input_t text_input(const char *text, const char *name, const char *mime) {
    drive2_input_t in;
    memset(&in, 0, sizeof in);
    in.file_id = "f";
    in.original_name = name;
    in.mime_type = mime;
    in.size = text ? (int64_t)strlen(text) : 0;
    in.text = text;
    in.text_len = text ? strlen(text) : 0;
    return in;
}

static bool has_tag(const drive2_analysis_t *a, const char *tag) {
    for (size_t i = 0; i < a->tag_count; i++)
        if (strcmp(a->tags[i], tag) == 0)
            return true;
    return false;
}

static double cosine(const float *a, const float *b, size_t n) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return dot / (sqrt(na) * sqrt(nb));
}

static void test_text(void) {
    drive2_analysis_t a;
    char err[256];
    drive2_input_t in = text_input(SOLAR, "notes.MD", "text/markdown");
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
    CHECK_STR(a.filename, "solar-panels-for-small-homes.md");
    CHECK(a.summary && strstr(a.summary, "Solar panels turn sunlight into electricity") != NULL);
    CHECK(a.summary && strstr(a.summary, "cat") == NULL); /* the off-topic line is left out */
    CHECK(a.summary && strlen(a.summary) < 800);
    fprintf(stderr, "summary: %s\n", a.summary);
    CHECK(a.tag_count >= 3 && a.tag_count <= DRIVE2_LOCAL_MAX_TAGS);
    CHECK(has_tag(&a, "solar"));
    CHECK(has_tag(&a, "panels"));
    CHECK(has_tag(&a, "electricity"));
    CHECK(has_tag(&a, "markdown"));
    CHECK(!has_tag(&a, "the") && !has_tag(&a, "for"));
    for (size_t i = 0; i < a.tag_count; i++)
        for (const char *p = a.tags[i]; *p; p++)
            CHECK(!(*p >= 'A' && *p <= 'Z'));
    CHECK_INT(a.dim, DRIVE2_LOCAL_DIM);
    double norm = 0;
    for (size_t i = 0; i < a.dim; i++)
        norm += (double)a.embedding[i] * a.embedding[i];
    CHECK(fabs(norm - 1.0) < 1e-5);
    drive2_analysis_clear(&a);
    CHECK(a.summary == NULL && a.tags == NULL && a.embedding == NULL);
}

static void test_filenames(void) {
    drive2_analysis_t a;
    char err[256];
    struct {
        const char *text, *name, *mime, *want;
    } cases[] = {
        /* JSON flattened by extract.c: a title line wins */
        {"id: 7\ntitle: Trip to Kyoto, Spring 2024\nbody: We went.", "trip.json",
         "application/json", "trip-to-kyoto-spring-2024.json"},
        /* the first line, words only, extension kept from the original */
        {"  Minutes of the *Board* meeting -- 3 March\nPresent: all.", "scan.TXT", "text/plain",
         "minutes-of-the-board-meeting-3-march.txt"},
        /* non-ASCII letters stay, lower-cased */
        {"Caf\xc3\x89 Men\xc3\xbc\nCoffee 3 EUR", "menu", "text/plain",
         "caf\xc3\xa9-men\xc3\xbc.txt"},
        /* no words at all: the original name */
        {"... --- !!!", "My Photo (1).txt", "text/plain", "my-photo-1.txt"},
        /* no text: the original name; no extension: one from the type */
        {NULL, "clip", "video/mp4", "clip.mp4"},
        {NULL, "", "application/octet-stream", "file"},
        /* long titles are cut to eight words */
        {"one two three four five six seven eight nine ten", "long.txt", "text/plain",
         "one-two-three-four-five-six-seven-eight.txt"},
        /* path separators and dots never survive */
        {"../../etc/passwd", "x.txt", "text/plain", "etc-passwd.txt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        drive2_input_t in = text_input(cases[i].text, cases[i].name, cases[i].mime);
        CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
        CHECK_STR(a.filename, cases[i].want);
        CHECK(a.summary && *a.summary);
        CHECK(a.embedding && a.dim == DRIVE2_LOCAL_DIM);
        drive2_analysis_clear(&a);
    }
    /* metadata only: a summary sentence from type and size */
    drive2_input_t in = text_input(NULL, "clip.mp4", "video/mp4");
    in.size = 3 * 1024 * 1024;
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
    CHECK_STR(a.summary, "A video file (video/mp4) of 3.0 MiB.");
    CHECK(has_tag(&a, "video"));
    drive2_analysis_clear(&a);
}

static void test_embedding(void) {
    float a[DRIVE2_LOCAL_DIM], a2[DRIVE2_LOCAL_DIM], b[DRIVE2_LOCAL_DIM], c[DRIVE2_LOCAL_DIM];
    const char *ta = "Solar panels on the roof produce electricity from sunlight; batteries store "
                     "the solar electricity for the night.";
    const char *tb = "Our roof has solar panels: sunlight becomes electricity, and a battery keeps "
                     "it for the evening.";
    const char *tc = "The medieval castle was besieged for months before the knights surrendered "
                     "to the king's army.";
    CHECK_INT(drive2_local_embed(ta, strlen(ta), a, DRIVE2_LOCAL_DIM), 0);
    CHECK_INT(drive2_local_embed(ta, strlen(ta), a2, DRIVE2_LOCAL_DIM), 0);
    CHECK(memcmp(a, a2, sizeof a) == 0); /* deterministic */
    CHECK_INT(drive2_local_embed(tb, strlen(tb), b, DRIVE2_LOCAL_DIM), 0);
    CHECK_INT(drive2_local_embed(tc, strlen(tc), c, DRIVE2_LOCAL_DIM), 0);
    double near = cosine(a, b, DRIVE2_LOCAL_DIM), far = cosine(a, c, DRIVE2_LOCAL_DIM);
    fprintf(stderr, "cosine similar %.3f, unrelated %.3f\n", near, far);
    CHECK(near > 0.4);
    CHECK(far < 0.2);
    CHECK(near > far + 0.3);
    /* case and punctuation do not matter */
    const char *shout =
        "SOLAR panels, on the ROOF... produce electricity from sunlight!! batteries "
        "store the solar electricity for the night";
    CHECK_INT(drive2_local_embed(shout, strlen(shout), a2, DRIVE2_LOCAL_DIM), 0);
    CHECK(cosine(a, a2, DRIVE2_LOCAL_DIM) > 0.999);
    /* no words still gives a unit vector; bad arguments are refused */
    CHECK_INT(drive2_local_embed("!!!", 3, a2, DRIVE2_LOCAL_DIM), 0);
    double norm = 0;
    for (size_t i = 0; i < DRIVE2_LOCAL_DIM; i++)
        norm += (double)a2[i] * a2[i];
    CHECK(fabs(norm - 1.0) < 1e-5);
    CHECK_INT(drive2_local_embed(NULL, 0, a2, 16), 0);
    CHECK_INT(drive2_local_embed("x", 1, NULL, 16), ZT_ERR_INVALID);
    CHECK_INT(drive2_local_embed("x", 1, a2, 0), ZT_ERR_INVALID);
    /* other dimensions work too */
    float small[8];
    CHECK_INT(drive2_local_embed(ta, strlen(ta), small, 8), 0);
}

/* Encodes a w x h image with libvips; exif fields (may be NULL) are set as
 * libvips names them, so jpegsave writes them into an EXIF block. */
static void *make_image(int w, int h, const char *suffix, const char *make, const char *model,
                        const char *date, size_t *len) {
    VipsImage *black = NULL, *im = NULL;
    void *buf = NULL;
    *len = 0;
    if (vips_black(&black, w, h, "bands", 3, NULL) != 0)
        return NULL;
    if (vips_linear1(black, &im, 1.0, 90.0, "uchar", TRUE, NULL) != 0) {
        g_object_unref(black);
        return NULL;
    }
    g_object_unref(black);
    if (make)
        vips_image_set_string(im, "exif-ifd0-Make", make);
    if (model)
        vips_image_set_string(im, "exif-ifd0-Model", model);
    if (date)
        vips_image_set_string(im, "exif-ifd2-DateTimeOriginal", date);
    if (vips_image_write_to_buffer(im, suffix, &buf, len, NULL) != 0) {
        fprintf(stderr, "write_to_buffer: %s\n", vips_error_buffer());
        vips_error_clear();
        buf = NULL;
    }
    g_object_unref(im);
    return buf;
}

static void test_images(void) {
    CHECK_INT(VIPS_INIT("test"), 0);
    drive2_analysis_t a;
    char err[256];
    size_t len = 0;
    void *jpg = make_image(640, 480, ".jpg", "Canon", "Canon EOS 80D", "2024:05:01 10:30:00", &len);
    CHECK(jpg != NULL);
    drive2_input_t in = text_input(NULL, "IMG_0001.JPG", "image/jpeg");
    in.image = jpg;
    in.image_len = len;
    in.size = (int64_t)len;
    err[0] = '\0';
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
    fprintf(stderr, "jpeg: %s | %s %s\n", a.filename, a.summary, err);
    CHECK_STR(a.summary,
              "A landscape JPEG image of 640x480 pixels, taken 2024-05-01 10:30:00 with a Canon "
              "EOS 80D.");
    CHECK_STR(a.filename, "photo-2024-05-01-canon-eos-80d.jpg");
    CHECK(has_tag(&a, "image") && has_tag(&a, "jpeg") && has_tag(&a, "landscape"));
    CHECK(has_tag(&a, "640x480") && has_tag(&a, "canon") && has_tag(&a, "2024"));
    CHECK(has_tag(&a, "canon eos 80d") && has_tag(&a, "photo"));
    CHECK(a.tag_count <= DRIVE2_LOCAL_MAX_TAGS);
    drive2_analysis_clear(&a);

    /* the same photo truncated: the header is still readable */
    in.image_len = len / 2;
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
    drive2_analysis_clear(&a);
    g_free(jpg);

    void *png = make_image(300, 400, ".png", NULL, NULL, NULL, &len);
    in = text_input(NULL, "scan.png", "image/png");
    in.image = png;
    in.image_len = len;
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
    CHECK_STR(a.summary, "A portrait PNG image of 300x400 pixels.");
    CHECK_STR(a.filename, "image-300x400.png");
    CHECK(has_tag(&a, "portrait") && !has_tag(&a, "photo"));
    drive2_analysis_clear(&a);
    g_free(png);

    void *sq = make_image(64, 64, ".png", NULL, NULL, NULL, &len);
    in.image = sq;
    in.image_len = len;
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), 0);
    CHECK(has_tag(&a, "square"));
    drive2_analysis_clear(&a);
    g_free(sq);

    /* not an image at all */
    unsigned char junk[200];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 31 + 7);
    in = text_input(NULL, "fake.jpg", "image/jpeg");
    in.image = junk;
    in.image_len = sizeof junk;
    CHECK_INT(drive2_local_analyze(&in, &a, err, sizeof err), ZT_ERR_INVALID);
    CHECK(strstr(err, "not a readable image") != NULL);
    CHECK(a.summary == NULL);
    drive2_analysis_clear(&a);
}

int main(void) {
    RUN(test_text);
    RUN(test_filenames);
    RUN(test_embedding);
    RUN(test_images);
    return zt_test_summary();
}
