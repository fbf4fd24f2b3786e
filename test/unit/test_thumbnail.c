/* Unit tests for worker/drive2/thumbnail: every input is made here (libvips
 * for images, ps2pdf for a PDF, ffmpeg's lavfi test source for a video) and
 * every output is opened again with libvips to check its size, its
 * orientation (by pixels, not by a tag) and that no metadata survived.
 * Hostile inputs: a PNG and a JPEG declaring huge sizes, a truncated JPEG,
 * a text file posing as a JPEG, garbage posing as a video, a hanging tool. */
#define _GNU_SOURCE /* memmem */
#include "zt_test.h"

#include "thumbnail.h"
#include "zt_error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

static char tmpdir[256];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long maxrss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A w x h picture, left half black and right half white, encoded by
 * suffix (".jpg", ".png"...). orientation > 0 sets the EXIF tag; gps adds
 * GPS fields; alpha adds an alpha band. g_free the result. */
static void *make_picture(int w, int h, const char *suffix, int orientation, int gps, int alpha,
                          size_t *len) {
    VipsImage *l = NULL, *r0 = NULL, *r = NULL, *im = NULL, *out = NULL;
    void *buf = NULL;
    *len = 0;
    if (vips_black(&l, w / 2, h, "bands", 3, NULL) ||
        vips_black(&r0, w - w / 2, h, "bands", 3, NULL) ||
        vips_linear1(r0, &r, 1.0, 255.0, "uchar", TRUE, NULL) ||
        vips_join(l, r, &im, VIPS_DIRECTION_HORIZONTAL, NULL)) {
        fprintf(stderr, "make_picture: %s\n", vips_error_buffer());
        vips_error_clear();
        goto done;
    }
    if (alpha) {
        if (vips_bandjoin_const1(im, &out, 128.0, NULL))
            goto done;
        g_object_unref(im);
        im = out;
        out = NULL;
    }
    /* a private copy: metadata must not land on a shared operation's output */
    if (vips_copy(im, &out, NULL))
        goto done;
    if (orientation > 0)
        vips_image_set_int(out, "orientation", orientation);
    vips_image_set_string(out, "exif-ifd0-Make", "TestCam");
    if (gps) {
        vips_image_set_string(out, "exif-ifd3-GPSLatitudeRef", "N");
        vips_image_set_string(out, "exif-ifd3-GPSLatitude", "35/1 41/1 22/1");
        vips_image_set_string(out, "exif-ifd3-GPSLongitudeRef", "E");
        vips_image_set_string(out, "exif-ifd3-GPSLongitude", "139/1 41/1 30/1");
    }
    if (vips_image_write_to_buffer(out, suffix, &buf, len, NULL)) {
        fprintf(stderr, "write_to_buffer %s: %s\n", suffix, vips_error_buffer());
        vips_error_clear();
        buf = NULL;
    }
done:
    if (l)
        g_object_unref(l);
    if (r0)
        g_object_unref(r0);
    if (r)
        g_object_unref(r);
    if (im)
        g_object_unref(im);
    if (out)
        g_object_unref(out);
    return buf;
}

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* Counts metadata fields that would leak from the original. */
static void *count_meta(VipsImage *im, const char *name, GValue *value, void *a) {
    (void)im;
    (void)value;
    if (strncmp(name, "exif-", 5) == 0 || strcmp(name, "xmp-data") == 0 ||
        strcmp(name, "iptc-data") == 0 || strcmp(name, "icc-profile-data") == 0 ||
        strcmp(name, "orientation") == 0) {
        fprintf(stderr, "  left in the thumbnail: %s\n", name);
        (*(int *)a)++;
    }
    return NULL;
}

/* Average of band 0 over a 5x5 patch around (x, y). */
static double sample(VipsImage *im, int x, int y) {
    double v = -1;
    VipsImage *area = NULL;
    if (vips_extract_area(im, &area, x - 2, y - 2, 5, 5, NULL) == 0) {
        if (vips_avg(area, &v, NULL) != 0)
            v = -1;
        g_object_unref(area);
    }
    return v;
}

/* Opens a thumbnail's bytes with libvips and checks what every thumbnail
 * must be: readable, within the box, no metadata. Returns the image (unref
 * it) or NULL. */
static VipsImage *check_output(const drive2_thumbnail_t *t, int box) {
    VipsImage *im = vips_image_new_from_buffer(t->data, t->len, "", NULL);
    CHECK(im != NULL);
    if (!im) {
        vips_error_clear();
        return NULL;
    }
    CHECK_INT(vips_image_get_width(im), t->width);
    CHECK_INT(vips_image_get_height(im), t->height);
    CHECK(t->width <= box && t->height <= box);
    CHECK(t->width > 0 && t->height > 0);
    CHECK_INT(vips_image_get_bands(im), 3); /* sRGB, alpha flattened or absent */
    int leaks = 0;
    vips_image_map(im, count_meta, &leaks);
    CHECK_INT(leaks, 0);
    /* and at the byte level: no EXIF block (JPEG APP1 "Exif", WebP "EXIF") */
    CHECK(memmem(t->data, t->len, "Exif", 4) == NULL);
    CHECK(memmem(t->data, t->len, "EXIF", 4) == NULL);
    return im;
}

static void test_options(void) {
    zt_config_t c;
    zt_config_defaults(&c);
    drive2_thumbnail_options_t o;
    char err[256] = "";
    CHECK_INT(drive2_thumbnail_options_from_config(&c, &o, err, sizeof err), 0);
    CHECK_INT(o.size, 300);
    CHECK_STR(o.format, "jpeg");
    CHECK_STR(o.crop, "none");
    CHECK_INT(o.max_pixels, 100000000);
    snprintf(c.thumbnail_format, sizeof c.thumbnail_format, "gif");
    CHECK_INT(drive2_thumbnail_options_from_config(&c, &o, err, sizeof err), ZT_ERR_INVALID);
    CHECK(strstr(err, "thumbnail_format") != NULL);
    zt_config_defaults(&c);
    snprintf(c.thumbnail_crop, sizeof c.thumbnail_crop, "center");
    CHECK_INT(drive2_thumbnail_options_from_config(&c, &o, err, sizeof err), 0);
    CHECK_STR(o.crop, "centre");
    snprintf(c.thumbnail_crop, sizeof c.thumbnail_crop, "sideways");
    CHECK_INT(drive2_thumbnail_options_from_config(&c, &o, err, sizeof err), ZT_ERR_INVALID);

    char key[64];
    CHECK_INT(drive2_thumbnail_key("f1", "jpg", key, sizeof key), 0);
    CHECK_STR(key, "thumbnails/f1.jpg");
    CHECK_INT(drive2_thumbnail_key("a/b", "jpg", key, sizeof key), ZT_ERR_INVALID);
    CHECK_INT(drive2_thumbnail_key("f1", "jpg", key, 8), ZT_ERR_INVALID);

    CHECK(drive2_thumbnail_looks_like_video((const unsigned char *)"\0\0\0\x20"
                                                                   "ftypisom",
                                            12));
    CHECK(drive2_thumbnail_looks_like_video((const unsigned char *)"\x1a\x45\xdf\xa3", 4));
    CHECK(drive2_thumbnail_looks_like_video((const unsigned char *)"RIFF\0\0\0\0AVI ", 12));
    CHECK(!drive2_thumbnail_looks_like_video((const unsigned char *)"RIFF\0\0\0\0WEBP", 12));
    CHECK(!drive2_thumbnail_looks_like_video((const unsigned char *)"hello", 5));
}

/* The photo of the issue: 4000x3000 JPEG, EXIF orientation 6 (shown turned
 * 90 degrees clockwise: portrait), GPS position. */
static void test_photo(void) {
    size_t len = 0;
    void *jpg = make_picture(4000, 3000, ".jpg", 6, 1, 0, &len);
    CHECK(jpg != NULL);
    if (!jpg)
        return;
    /* the source really carries what the thumbnail must drop */
    VipsImage *src = vips_image_new_from_buffer(jpg, len, "", NULL);
    CHECK(src && vips_image_get_typeof(src, "exif-ifd3-GPSLatitude") != 0);
    CHECK(src && vips_image_get_orientation(src) == 6);
    if (src)
        g_object_unref(src);

    drive2_thumbnail_options_t o;
    drive2_thumbnail_options_default(&o);
    drive2_thumbnail_t t;
    char err[512] = "";
    double t0 = now_s();
    CHECK_INT(drive2_thumbnail_make(jpg, len, "image/jpeg", &o, &t, err, sizeof err), 0);
    fprintf(stderr, "  4000x3000 JPEG -> %dx%d %s, %zu bytes, %.3f s %s\n", t.width, t.height,
            t.loader, t.len, now_s() - t0, err);
    CHECK_INT(t.width, 225);
    CHECK_INT(t.height, 300);
    CHECK_INT(t.source_width, 3000); /* upright */
    CHECK_INT(t.source_height, 4000);
    CHECK_INT(t.source, DRIVE2_THUMB_IMAGE);
    CHECK_STR(t.content_type, "image/jpeg");
    CHECK_STR(t.extension, "jpg");
    CHECK(t.len > 3 && memcmp(t.data, "\xff\xd8\xff", 3) == 0);
    VipsImage *im = check_output(&t, 300);
    if (im) {
        /* stored left half black -> after turning 90 degrees clockwise the
         * top half is black and the bottom half white */
        CHECK(sample(im, t.width / 2, t.height / 8) < 40);
        CHECK(sample(im, t.width / 2, t.height * 7 / 8) > 215);
        g_object_unref(im);
    }
    drive2_thumbnail_clear(&t);
    CHECK(t.data == NULL);

    /* crop: fills the box */
    snprintf(o.crop, sizeof o.crop, "centre");
    CHECK_INT(drive2_thumbnail_make(jpg, len, "image/jpeg", &o, &t, err, sizeof err), 0);
    CHECK_INT(t.width, 300);
    CHECK_INT(t.height, 300);
    im = check_output(&t, 300);
    if (im)
        g_object_unref(im);
    drive2_thumbnail_clear(&t);

    /* WebP output */
    drive2_thumbnail_options_default(&o);
    snprintf(o.format, sizeof o.format, "webp");
    CHECK_INT(drive2_thumbnail_make(jpg, len, "image/jpeg", &o, &t, err, sizeof err), 0);
    CHECK_STR(t.content_type, "image/webp");
    CHECK_STR(t.extension, "webp");
    CHECK(t.len > 12 && memcmp(t.data + 8, "WEBP", 4) == 0);
    im = check_output(&t, 300);
    if (im)
        g_object_unref(im);
    drive2_thumbnail_clear(&t);

    /* truncated: the header still reads, the pixels do not */
    CHECK_INT(drive2_thumbnail_make(jpg, len / 2, "image/jpeg", NULL, &t, err, sizeof err),
              ZT_ERR_INVALID);
    fprintf(stderr, "  truncated JPEG: %s\n", err);
    CHECK(strstr(err, "truncated or corrupt") != NULL);
    CHECK(t.data == NULL);
    g_free(jpg);
}

static void test_other_images(void) {
    drive2_thumbnail_t t;
    char err[512] = "";
    size_t len = 0;
    /* PNG with alpha -> JPEG: flattened; landscape; no orientation tag */
    void *png = make_picture(1200, 600, ".png", 0, 0, 1, &len);
    CHECK(png != NULL);
    CHECK_INT(drive2_thumbnail_make(png, len, "image/png", NULL, &t, err, sizeof err), 0);
    CHECK_INT(t.width, 300);
    CHECK_INT(t.height, 150);
    VipsImage *im = check_output(&t, 300);
    if (im) {
        /* alpha 128: black over white flattens to mid grey, white stays white */
        double dark = sample(im, 40, 75), light = sample(im, 260, 75);
        CHECK(dark > 100 && dark < 160);
        CHECK(light > 240);
        g_object_unref(im);
    }
    drive2_thumbnail_clear(&t);
    g_free(png);

    /* small images are not blown up */
    void *small = make_picture(120, 80, ".gif", 0, 0, 0, &len);
    CHECK(small != NULL);
    CHECK_INT(drive2_thumbnail_make(small, len, "image/gif", NULL, &t, err, sizeof err), 0);
    CHECK_INT(t.width, 120);
    CHECK_INT(t.height, 80);
    drive2_thumbnail_clear(&t);
    g_free(small);

    const char *suffixes[] = {".webp", ".tif"};
    for (size_t i = 0; i < 2; i++) {
        void *b = make_picture(800, 1000, suffixes[i], 0, 0, 0, &len);
        CHECK(b != NULL);
        int rc = drive2_thumbnail_make(b, len, NULL, NULL, &t, err, sizeof err);
        CHECK_INT(rc, 0);
        if (rc != 0)
            fprintf(stderr, "  %s: %s\n", suffixes[i], err);
        CHECK_INT(t.width, 240);
        CHECK_INT(t.height, 300);
        drive2_thumbnail_clear(&t);
        g_free(b);
    }
}

static void test_pdf(void) {
    char ps[300], pdf[300], cmd[800];
    snprintf(ps, sizeof ps, "%s/page.ps", tmpdir);
    snprintf(pdf, sizeof pdf, "%s/page.pdf", tmpdir);
    FILE *f = fopen(ps, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    /* A4 landscape; the left half black */
    fputs("%!PS\n<< /PageSize [842 595] >> setpagedevice\n0 0 421 595 rectfill\n"
          "/Helvetica findfont 24 scalefont setfont 500 300 moveto (Quarterly report) show\n"
          "showpage\n"
          "<< /PageSize [595 842] >> setpagedevice\nshowpage\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "ps2pdf '%s' '%s' 2>&1", ps, pdf);
    int rc = system(cmd);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  ps2pdf is needed (ghostscript, tools/packages.txt)\n");
        return;
    }
    size_t len = 0;
    void *data = read_file(pdf, &len);
    CHECK(data != NULL);
    drive2_thumbnail_t t;
    char err[512] = "";
    double t0 = now_s();
    CHECK_INT(drive2_thumbnail_make(data, len, "application/pdf", NULL, &t, err, sizeof err), 0);
    fprintf(stderr, "  PDF page -> %dx%d %s, %.3f s %s\n", t.width, t.height, t.loader,
            now_s() - t0, err);
    CHECK_INT(t.source, DRIVE2_THUMB_PDF);
    CHECK_INT(t.width, 300); /* the first page, landscape */
    CHECK(t.height >= 210 && t.height <= 213);
    VipsImage *im = check_output(&t, 300);
    if (im) {
        CHECK(sample(im, 60, t.height / 2) < 40);
        CHECK(sample(im, 240, t.height / 2) > 215);
        g_object_unref(im);
    }
    drive2_thumbnail_clear(&t);

    /* a damaged PDF: the header is cut off */
    CHECK_INT(drive2_thumbnail_make((unsigned char *)data, len / 3, "application/pdf", NULL, &t,
                                    err, sizeof err),
              ZT_ERR_INVALID);
    fprintf(stderr, "  truncated PDF: %s\n", err);
    free(data);
}

static void test_video(void) {
    char mp4[300], cmd[800];
    snprintf(mp4, sizeof mp4, "%s/clip.mp4", tmpdir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -f lavfi "
             "-i testsrc=duration=2:size=640x480:rate=25 -pix_fmt yuv420p -y '%s'",
             mp4);
    int rc = system(cmd);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  ffmpeg is needed (tools/packages.txt)\n");
        return;
    }
    size_t len = 0;
    void *data = read_file(mp4, &len);
    drive2_thumbnail_t t;
    char err[512] = "";
    double t0 = now_s();
    CHECK_INT(drive2_thumbnail_make(data, len, "video/mp4", NULL, &t, err, sizeof err), 0);
    fprintf(stderr, "  640x480 MP4 -> %dx%d %s, %.3f s %s\n", t.width, t.height, t.loader,
            now_s() - t0, err);
    CHECK_INT(t.source, DRIVE2_THUMB_VIDEO);
    CHECK_INT(t.width, 300);
    CHECK_INT(t.height, 225);
    CHECK_INT(t.source_width, 640);
    VipsImage *im = check_output(&t, 300);
    if (im)
        g_object_unref(im);
    drive2_thumbnail_clear(&t);

    /* the mime type alone does not make garbage a video */
    const char junk[] = "\0\0\0\x18"
                        "ftypmp42 this is not a movie at all";
    CHECK_INT(drive2_thumbnail_make((const unsigned char *)junk, sizeof junk, "video/mp4", NULL, &t,
                                    err, sizeof err),
              ZT_ERR_INVALID);
    fprintf(stderr, "  fake MP4: %s\n", err);
    CHECK(strstr(err, "not a video") != NULL);
    free(data);
}

/* A tool that hangs is killed at the timeout. */
static void test_tool_timeout(void) {
    char bindir[300], fake[400];
    snprintf(bindir, sizeof bindir, "%s/bin", tmpdir);
    mkdir(bindir, 0700);
    snprintf(fake, sizeof fake, "%s/ffprobe", bindir);
    FILE *f = fopen(fake, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("#!/bin/sh\nexec sleep 30\n", f);
    fclose(f);
    chmod(fake, 0700);
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s:%s", bindir, old ? old : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    drive2_thumbnail_options_t o;
    drive2_thumbnail_options_default(&o);
    o.timeout = 0.5;
    drive2_thumbnail_t t;
    char err[512] = "";
    const char mkv[] = "\x1a\x45\xdf\xa3 pretend matroska";
    double t0 = now_s();
    CHECK_INT(drive2_thumbnail_make((const unsigned char *)mkv, sizeof mkv, NULL, &o, &t, err,
                                    sizeof err),
              ZT_ERR_TIMEOUT);
    double took = now_s() - t0;
    fprintf(stderr, "  hanging ffprobe: %s (%.2f s)\n", err, took);
    CHECK(took < 3.0);
    /* a tool that is missing */
    setenv("PATH", bindir, 1);
    unlink(fake);
    CHECK_INT(drive2_thumbnail_make((const unsigned char *)mkv, sizeof mkv, NULL, &o, &t, err,
                                    sizeof err),
              ZT_ERR_IO);
    CHECK(strstr(err, "not installed") != NULL);
    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    }
    rmdir(bindir);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void test_hostile(void) {
    drive2_thumbnail_t t;
    char err[512] = "";
    long rss0 = maxrss_kib();

    /* PNG whose header claims 100000 x 100000 (10 gigapixels) */
    unsigned char png[8 + 25 + 12 + 12];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    unsigned char *ihdr = png + 8;
    put32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put32(ihdr + 8, 100000);
    put32(ihdr + 12, 100000);
    ihdr[16] = 8; /* bit depth */
    ihdr[17] = 2; /* RGB */
    ihdr[18] = ihdr[19] = ihdr[20] = 0;
    put32(ihdr + 21, crc32_of(ihdr + 4, 17));
    unsigned char *idat = ihdr + 25;
    put32(idat, 0);
    memcpy(idat + 4, "IDAT", 4);
    put32(idat + 8, crc32_of(idat + 4, 4));
    unsigned char *iend = idat + 12;
    put32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put32(iend + 8, crc32_of(iend + 4, 4));
    double t0 = now_s();
    CHECK_INT(drive2_thumbnail_make(png, sizeof png, "image/png", NULL, &t, err, sizeof err),
              ZT_ERR_TOO_LARGE);
    fprintf(stderr, "  PNG bomb: %s (%.3f s)\n", err, now_s() - t0);
    CHECK(strstr(err, "100000x100000") != NULL);
    CHECK(strstr(err, "thumbnail_max_pixels") != NULL);
    CHECK(now_s() - t0 < 2.0);

    /* JPEG whose SOF claims 65000 x 65000 */
    size_t len = 0;
    unsigned char *jpg = make_picture(64, 48, ".jpg", 0, 0, 0, &len);
    CHECK(jpg != NULL);
    bool patched = false;
    for (size_t i = 2; jpg && i + 9 < len; i++)
        if (jpg[i] == 0xff && (jpg[i + 1] == 0xc0 || jpg[i + 1] == 0xc2)) {
            jpg[i + 5] = 0xfd; /* height 65000 = 0xfde8 */
            jpg[i + 6] = 0xe8;
            jpg[i + 7] = 0xfd; /* width */
            jpg[i + 8] = 0xe8;
            patched = true;
            break;
        }
    CHECK(patched);
    t0 = now_s();
    CHECK_INT(drive2_thumbnail_make(jpg, len, "image/jpeg", NULL, &t, err, sizeof err),
              ZT_ERR_TOO_LARGE);
    fprintf(stderr, "  JPEG bomb: %s (%.3f s)\n", err, now_s() - t0);
    /* a smaller limit applies to ordinary images too */
    g_free(jpg);
    jpg = make_picture(640, 480, ".jpg", 0, 0, 0, &len);
    drive2_thumbnail_options_t o;
    drive2_thumbnail_options_default(&o);
    o.max_pixels = 640 * 480 - 1;
    CHECK_INT(drive2_thumbnail_make(jpg, len, "image/jpeg", &o, &t, err, sizeof err),
              ZT_ERR_TOO_LARGE);
    o.max_pixels = 640 * 480;
    CHECK_INT(drive2_thumbnail_make(jpg, len, "image/jpeg", &o, &t, err, sizeof err), 0);
    drive2_thumbnail_clear(&t);
    g_free(jpg);
    long grown = maxrss_kib() - rss0;
    fprintf(stderr, "  peak RSS grew by %ld KiB over the bombs\n", grown);
    CHECK(grown < 200 * 1024);

    /* a text file named photo.jpg */
    const char *text = "Dear diary, today I renamed a text file to photo.jpg.\n";
    CHECK_INT(drive2_thumbnail_make((const unsigned char *)text, strlen(text), "image/jpeg", NULL,
                                    &t, err, sizeof err),
              ZT_ERR_INVALID);
    fprintf(stderr, "  text as .jpg: %s\n", err);
    CHECK(strstr(err, "not an image, PDF or video") != NULL);
    CHECK(strstr(err, "image/jpeg") != NULL);

    /* a JPEG signature and nothing else */
    CHECK_INT(drive2_thumbnail_make((const unsigned char *)"\xff\xd8\xff\xe0", 4, "image/jpeg",
                                    NULL, &t, err, sizeof err),
              ZT_ERR_INVALID);
    fprintf(stderr, "  JPEG signature only: %s\n", err);
    CHECK_INT(drive2_thumbnail_make(NULL, 0, "image/jpeg", NULL, &t, err, sizeof err),
              ZT_ERR_INVALID);

    /* a loader that is blocked (a PPM file: libvips could read it, we do not) */
    const char ppm[] = "P6\n2 2\n255\n\xff\0\0\0\xff\0\0\0\xff\xff\xff\xff";
    CHECK_INT(drive2_thumbnail_make((const unsigned char *)ppm, sizeof ppm - 1, "image/x-ppm", NULL,
                                    &t, err, sizeof err),
              ZT_ERR_INVALID);
    fprintf(stderr, "  PPM (blocked loader): %s\n", err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/zt-thumb-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char err[256];
    CHECK_INT(drive2_thumbnail_init(err, sizeof err), 0);
    RUN(test_options);
    RUN(test_photo);
    RUN(test_other_images);
    RUN(test_pdf);
    RUN(test_video);
    RUN(test_tool_timeout);
    RUN(test_hostile);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    vips_shutdown();
    return zt_test_summary();
}
