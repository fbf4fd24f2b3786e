/* zt-media-probe: a test-only driver for test/system/test_media.py (never
 * installed). Python has no image library here, so the pictures and the
 * checks of thumbnails go through libvips in this program; LINE pushes go
 * through worker/drive2/line.c exactly as the tasks send them.
 *
 *   zt-media-probe make-photo OUT W H ORIENTATION [gps]
 *       a JPEG, left half black and right half white as stored, with the
 *       EXIF orientation tag (0: none), a camera make and, with "gps", a
 *       GPS position
 *   zt-media-probe info FILE
 *       {"width", "height", "loader", "metadata": [field names that carry
 *        metadata], "mean": {"top", "bottom", "left", "right"}}
 *   zt-media-probe line-push KIND TO SEED [HERO_URL]
 *       pushes a sample complete|failed|quota|summary notice to TO with the
 *       retry key made from SEED (LINE_API_BASE_URL, LINE_CHANNEL_ACCESS_TOKEN
 *       from the environment); prints {"rc", "error", "status", "attempts",
 *       "duplicate", "request_id", "retry_key"}
 * Exit status 0 when the command worked (line-push: whatever LINE said, the
 * JSON tells), 1 on an error, 2 on a usage error. */
#include "flex.h"
#include "line.h"
#include "thumbnail.h"
#include "zt_error.h"
#include "zt_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

static int usage(void) {
    fprintf(stderr, "usage: zt-media-probe make-photo OUT W H ORIENTATION [gps]\n"
                    "       zt-media-probe info FILE\n"
                    "       zt-media-probe line-push complete|failed|quota|summary TO SEED "
                    "[HERO_URL]\n");
    return 2;
}

static int make_photo(const char *out, int w, int h, int orientation, int gps) {
    VipsImage *l = NULL, *r0 = NULL, *r = NULL, *im = NULL, *copy = NULL;
    int rc = 1;
    if (vips_black(&l, w / 2, h, "bands", 3, NULL) ||
        vips_black(&r0, w - w / 2, h, "bands", 3, NULL) ||
        vips_linear1(r0, &r, 1.0, 255.0, "uchar", TRUE, NULL) ||
        vips_join(l, r, &im, VIPS_DIRECTION_HORIZONTAL, NULL) || vips_copy(im, &copy, NULL))
        goto done;
    if (orientation > 0)
        vips_image_set_int(copy, "orientation", orientation);
    vips_image_set_string(copy, "exif-ifd0-Make", "TestCam");
    vips_image_set_string(copy, "exif-ifd0-Model", "TestCam One");
    if (gps) {
        vips_image_set_string(copy, "exif-ifd3-GPSLatitudeRef", "N");
        vips_image_set_string(copy, "exif-ifd3-GPSLatitude", "35/1 41/1 22/1");
        vips_image_set_string(copy, "exif-ifd3-GPSLongitudeRef", "E");
        vips_image_set_string(copy, "exif-ifd3-GPSLongitude", "139/1 41/1 30/1");
    }
    rc = vips_image_write_to_file(copy, out, NULL) == 0 ? 0 : 1;
done:
    if (rc != 0)
        fprintf(stderr, "zt-media-probe: %s\n", vips_error_buffer());
    VipsImage *all[] = {l, r0, r, im, copy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            g_object_unref(all[i]);
    return rc;
}

static void *collect_meta(VipsImage *im, const char *name, GValue *value, void *a) {
    (void)im;
    (void)value;
    if (strncmp(name, "exif-", 5) == 0 || strcmp(name, "xmp-data") == 0 ||
        strcmp(name, "iptc-data") == 0 || strcmp(name, "icc-profile-data") == 0 ||
        strcmp(name, "orientation") == 0)
        json_array_append_new((json_t *)a, json_string(name));
    return NULL;
}

static double region_mean(VipsImage *im, int x, int y, int w, int h) {
    VipsImage *area = NULL;
    double v = -1;
    if (w > 0 && h > 0 && vips_extract_area(im, &area, x, y, w, h, NULL) == 0) {
        if (vips_avg(area, &v, NULL) != 0)
            v = -1;
        g_object_unref(area);
    }
    return v;
}

static int info(const char *path) {
    VipsImage *im = vips_image_new_from_file(path, NULL);
    if (!im) {
        fprintf(stderr, "zt-media-probe: %s\n", vips_error_buffer());
        return 1;
    }
    int w = vips_image_get_width(im), h = vips_image_get_height(im);
    const char *loader = NULL;
    if (vips_image_get_typeof(im, "vips-loader"))
        vips_image_get_string(im, "vips-loader", &loader);
    json_t *meta = json_array();
    vips_image_map(im, collect_meta, meta);
    /* the middle of each half, away from the edge between them */
    json_t *mean =
        json_pack("{s:f, s:f, s:f, s:f}", "top", region_mean(im, w / 4, h / 8, w / 2, h / 4),
                  "bottom", region_mean(im, w / 4, h * 5 / 8, w / 2, h / 4), "left",
                  region_mean(im, w / 8, h / 4, w / 4, h / 2), "right",
                  region_mean(im, w * 5 / 8, h / 4, w / 4, h / 2));
    json_t *out =
        json_pack("{s:i, s:i, s:i, s:s?, s:o, s:o}", "width", w, "height", h, "bands",
                  vips_image_get_bands(im), "loader", loader, "metadata", meta, "mean", mean);
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(out);
    g_object_unref(im);
    return 0;
}

static int line_push(const char *kind, const char *to, const char *seed, const char *hero) {
    zt_config_t config;
    zt_config_defaults(&config);
    zt_config_load_env(&config);
    char err[1024] = "";
    drive2_http_options_t ho;
    drive2_http_options_default(&ho);
    ho.backoff_base_ms = 100; /* a test: short waits unless Retry-After says otherwise */
    drive2_line_t *line = drive2_line_new(&config, &ho, err, sizeof err);
    if (!line) {
        fprintf(stderr, "zt-media-probe: %s\n", err);
        return 1;
    }
    drive2_flex_file_t f = {.file_id = "3f0c2a4e-1111-4000-8000-00000000abcd",
                            .original_name = "IMG_0001.JPG",
                            .ai_filename = "photo-2024-05-01-harbour.jpg",
                            .ai_summary = "A photo of a harbour at dusk, boats and lights.",
                            .ai_tags_json = "[\"photo\",\"harbour\",\"dusk\"]",
                            .status = "completed",
                            .mime_type = "image/jpeg",
                            .size = 2345678,
                            .error = "extract: not a valid PDF: PDF document is damaged",
                            .hero_url = hero};
    json_t *m;
    if (strcmp(kind, "complete") == 0)
        m = drive2_flex_processing_complete(&f);
    else if (strcmp(kind, "failed") == 0)
        m = drive2_flex_processing_failed(&f);
    else if (strcmp(kind, "quota") == 0)
        m = drive2_flex_quota_alert("alice", 8800000000LL, 10737418240LL, 80);
    else if (strcmp(kind, "summary") == 0) {
        drive2_flex_count_t c[] = {{"completed", 3, 3000000}, {"failed", 1, 1000}};
        m = drive2_flex_daily_summary("alice", "2026-11-28", c, 2);
    } else {
        drive2_line_destroy(&line);
        return usage();
    }
    json_t *msgs = json_pack("[o]", m);
    char key[37];
    drive2_line_retry_key(seed, key);
    drive2_line_result_t r;
    int rc = drive2_line_push(line, to, msgs, key, &r, err, sizeof err);
    json_t *out = json_pack("{s:i, s:s, s:s?, s:i, s:i, s:b, s:s, s:s}", "rc", rc, "code",
                            rc ? zt_strerror(rc) : "ok", "error", rc ? err : NULL, "status",
                            (int)r.status, "attempts", r.attempts, "duplicate", r.duplicate,
                            "request_id", r.request_id, "retry_key", key);
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(out);
    json_decref(msgs);
    drive2_line_destroy(&line);
    return 0;
}

int main(int argc, char **argv) {
    zt_log_setup("zt-media-probe", ZT_LOG_WARNING, NULL);
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "line-push") == 0) {
        if (argc < 5 || argc > 6)
            return usage();
        return line_push(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
    }
    char err[256];
    if (drive2_thumbnail_init(err, sizeof err) != 0) {
        fprintf(stderr, "zt-media-probe: %s\n", err);
        return 1;
    }
    int rc;
    if (strcmp(cmd, "make-photo") == 0 && (argc == 6 || argc == 7))
        rc = make_photo(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                        argc == 7 && strcmp(argv[6], "gps") == 0);
    else if (strcmp(cmd, "info") == 0 && argc == 3)
        rc = info(argv[2]);
    else
        rc = usage();
    vips_shutdown();
    return rc;
}
