/* thumbnail: see thumbnail.h. Owns every VipsImage it makes (unref'd before
 * each function returns) and the ffprobe/ffmpeg child processes it starts
 * (always reaped, killed first on a timeout). Temporary files of a video
 * live in a private mkdtemp folder removed before returning. */
#define _GNU_SOURCE /* pipe2, dladdr */
#include "thumbnail.h"

#include "zt_error.h"
#include "zt_log.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gmodule.h>
#include <vips/vips.h>

#define TOOL_OUTPUT_MAX 4096 /* bytes kept of a tool's stdout and of its stderr */
#define VIDEO_SEEK 0.10      /* fraction of the duration where the frame is taken */

/* Demuxers ffmpeg may use on an upload. Playlists (hls, concat) and image2
 * are left out on purpose: they open other files or URLs named inside the
 * input, the classic way to make ffmpeg read /etc/passwd into a frame. */
#define VIDEO_FORMATS "mov,mp4,matroska,webm,avi,mpegts,mpeg,flv,ogg"

/* Loaders left enabled; every other libvips loader is blocked (ImageMagick
 * and its delegates, FITS, Matlab, OpenSlide, raw, CSV, vips, PPM...). */
static const char *const allowed_loaders[] = {
    "VipsForeignLoadJpeg", "VipsForeignLoadPng",  "VipsForeignLoadWebp", "VipsForeignLoadNsgif",
    "VipsForeignLoadTiff", "VipsForeignLoadHeif", "VipsForeignLoadSvg",  "VipsForeignLoadPdf",
};

/* libvips' error buffer as one short line (then cleared). */
static void vips_reason(char *buf, size_t size) {
    snprintf(buf, size, "%s", vips_error_buffer());
    vips_error_clear();
    for (char *p = buf; *p; p++)
        if (*p == '\n') {
            /* keep the first two lines: libvips often puts the cause second */
            char *second = strchr(p + 1, '\n');
            if (second)
                *second = '\0';
            *p = ' ';
            break;
        }
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\n'))
        buf[--n] = '\0';
    if (!*buf)
        snprintf(buf, size, "unknown libvips error");
}

void drive2_thumbnail_options_default(drive2_thumbnail_options_t *o) {
    memset(o, 0, sizeof *o);
    o->size = 300;
    snprintf(o->crop, sizeof o->crop, "none");
    snprintf(o->format, sizeof o->format, "jpeg");
    o->quality = 80;
    o->max_pixels = 100000000;
    o->timeout = 60;
}

int drive2_thumbnail_options_from_config(const zt_config_t *c, drive2_thumbnail_options_t *o,
                                         char *err, size_t err_size) {
    drive2_thumbnail_options_default(o);
    if (c->thumbnail_size < 16 || c->thumbnail_size > 2048)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "thumbnail_size %lld is not 16..2048",
                       (long long)c->thumbnail_size);
    o->size = (int)c->thumbnail_size;
    if (strcmp(c->thumbnail_format, "jpeg") != 0 && strcmp(c->thumbnail_format, "jpg") != 0 &&
        strcmp(c->thumbnail_format, "webp") != 0)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "thumbnail_format '%s' is not jpeg or webp",
                       c->thumbnail_format);
    snprintf(o->format, sizeof o->format, "%s",
             strcmp(c->thumbnail_format, "webp") == 0 ? "webp" : "jpeg");
    if (strcmp(c->thumbnail_crop, "none") != 0 && strcmp(c->thumbnail_crop, "centre") != 0 &&
        strcmp(c->thumbnail_crop, "center") != 0 && strcmp(c->thumbnail_crop, "attention") != 0)
        return zt_fail(err, err_size, ZT_ERR_INVALID,
                       "thumbnail_crop '%s' is not none, centre or attention", c->thumbnail_crop);
    snprintf(o->crop, sizeof o->crop, "%s",
             strcmp(c->thumbnail_crop, "center") == 0 ? "centre" : c->thumbnail_crop);
    if (c->thumbnail_max_pixels < 1)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "thumbnail_max_pixels must be >= 1");
    o->max_pixels = c->thumbnail_max_pixels;
    if (!(c->thumbnail_timeout > 0))
        return zt_fail(err, err_size, ZT_ERR_INVALID, "thumbnail_timeout must be > 0");
    o->timeout = c->thumbnail_timeout;
    return 0;
}

/* libvips modules (shared objects in vips-modules-X.Y) a thumbnail may
 * need, in the order they are tried: PDF (poppler), then HEIF/AVIF. */
static const char *const wanted_modules[] = {"vips-poppler", "vips-heif"};

/* The process's module state. libvips' vips_init loads every module of its
 * folder: on Debian also ImageMagick, OpenSlide and JPEG XL, whose loaders
 * are blocked here anyway, with HEIF's and poppler's codecs. That took a
 * process making JPEG thumbnails from 18 to 27 MiB peak RSS, one making PDF
 * thumbnails from 28 to 31 MiB, and vips_init from 3 to 38 ms
 * (docs/BENCHMARKS.md). So the first start points libvips at a prefix with
 * no modules, and a wanted module is loaded only when a file comes that no
 * loader already present recognises. */
static struct {
    bool tried;         /* the first start has been made */
    bool deferred;      /* the modules below have not been loaded by libvips */
    size_t next;        /* index into wanted_modules of the next to load */
    char dir[PATH_MAX]; /* the module folder */
} modules;

/* Blocks every loader, then allows the list back. Run again after a module
 * is loaded: blocking marks the classes that exist when it runs, so a class
 * a module registers later would not be covered. */
static void apply_loader_policy(void) {
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (size_t i = 0; i < sizeof allowed_loaders / sizeof allowed_loaders[0]; i++)
        vips_operation_block_set(allowed_loaders[i], FALSE);
}

/* Before libvips' first start in this process: when its module folder sits
 * next to libvips (Debian's layout) and holds the PDF module, sets VIPSHOME
 * to a prefix with no modules and returns true (the caller unsets it after
 * vips_init). Not when VIPSHOME is set already (the operator's choice) or
 * libvips is started already. */
static bool defer_modules(void) {
    if (getenv("VIPSHOME") || g_type_from_name("VipsImage") != 0)
        return false;
    Dl_info info;
    if (dladdr((void *)vips_init, &info) == 0 || !info.dli_fname)
        return false;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash)
        return false;
    int n =
        snprintf(modules.dir, sizeof modules.dir, "%.*s/vips-modules-%d.%d",
                 (int)(slash - info.dli_fname), info.dli_fname, vips_version(0), vips_version(1));
    char probe[PATH_MAX + 32];
    if (n < 0 || (size_t)n >= sizeof modules.dir ||
        (size_t)snprintf(probe, sizeof probe, "%s/%s.so", modules.dir, wanted_modules[0]) >=
            sizeof probe ||
        access(probe, R_OK) != 0)
        return false;
    /* libvips reads its modules from $VIPSHOME/lib/vips-modules-X.Y; under
     * /dev/null no such folder can exist. */
    return setenv("VIPSHOME", "/dev/null", 1) == 0;
}

/* Loads the next wanted module; false when none is left. */
static bool load_next_module(void) {
    while (modules.deferred && modules.next < sizeof wanted_modules / sizeof wanted_modules[0]) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s.so", modules.dir, wanted_modules[modules.next++]);
        if (access(path, R_OK) != 0)
            continue; /* that format is not installed */
        /* as libvips loads them; the module makes itself resident */
        if (g_module_open(path, G_MODULE_BIND_LAZY)) {
            apply_loader_policy();
            return true;
        }
        zt_warn("cannot load the libvips module %s: %s", path, g_module_error());
    }
    return false;
}

int drive2_thumbnail_init(char *err, size_t err_size) {
    /* VIPS_INIT is idempotent; the first call in this process starts
     * libvips (see the header on why that must be the pool child). */
    bool first = !modules.tried && defer_modules();
    modules.tried = true;
    int rc = VIPS_INIT("drive2");
    if (first) {
        unsetenv("VIPSHOME"); /* ffmpeg and friends inherit the environment */
        modules.deferred = rc == 0;
    }
    if (rc != 0) {
        char why[256];
        vips_reason(why, sizeof why);
        return zt_fail(err, err_size, ZT_ERR_IO, "cannot start libvips: %s", why);
    }
    /* Idempotent too, and cheap: done on every call rather than tracked in
     * a global. */
    apply_loader_policy();
    /* Each task opens different files: caching operations only holds memory. */
    vips_cache_set_max(0);
    /* A pool child is one of several processes working in parallel: libvips'
     * own thread pool would only compete with the other children, and each
     * of its threads holds buffers (peak memory, docs/BENCHMARKS.md). */
    vips_concurrency_set(1);
    return 0;
}

void drive2_thumbnail_clear(drive2_thumbnail_t *out) {
    if (!out)
        return;
    free(out->data);
    memset(out, 0, sizeof *out);
}

int drive2_thumbnail_key(const char *file_id, const char *extension, char *key, size_t size) {
    int n = snprintf(key, size, "thumbnails/%s.%s", file_id, extension);
    if (n < 0 || (size_t)n >= size || !*file_id || strchr(file_id, '/'))
        return ZT_ERR_INVALID;
    return 0;
}

bool drive2_thumbnail_looks_like_video(const unsigned char *d, size_t n) {
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0)
        return true; /* ISO BMFF: MP4, MOV, 3GP (HEIF too, but libvips takes that first) */
    if (n >= 4 && memcmp(d, "\x1a\x45\xdf\xa3", 4) == 0)
        return true; /* EBML: Matroska, WebM */
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "AVI ", 4) == 0)
        return true;
    if (n >= 4 && memcmp(d, "\x00\x00\x01\xba", 4) == 0)
        return true; /* MPEG program stream */
    if (n >= 377 && d[0] == 0x47 && d[188] == 0x47 && d[376] == 0x47)
        return true; /* MPEG transport stream: a sync byte every 188 bytes */
    if (n >= 3 && memcmp(d, "FLV", 3) == 0)
        return true;
    if (n >= 4 && memcmp(d, "OggS", 4) == 0)
        return true;
    return false;
}

static bool loader_allowed(const char *class_name) {
    for (size_t i = 0; i < sizeof allowed_loaders / sizeof allowed_loaders[0]; i++)
        if (strncmp(class_name, allowed_loaders[i], strlen(allowed_loaders[i])) == 0)
            return true;
    return false;
}

/* The allowed loader that takes data, or NULL (libvips' error cleared).
 * find_load_buffer also names blocked loaders (ImageMagick's takes almost
 * anything): only the allowed ones count as "an image". */
static const char *find_loader(const unsigned char *data, size_t len) {
    const char *loader = vips_foreign_find_load_buffer(data, len);
    if (loader && !loader_allowed(loader))
        loader = NULL;
    if (!loader)
        vips_error_clear();
    return loader;
}

const char *drive2_thumbnail_find_loader(const unsigned char *data, size_t len) {
    const char *loader = find_loader(data, len);
    /* a PDF or HEIF the first time: its module comes now (see modules) */
    while (!loader && load_next_module())
        loader = find_loader(data, len);
    return loader;
}

/* --- the libvips part ------------------------------------------------------ */

static VipsInteresting crop_mode(const char *crop) {
    if (strcmp(crop, "centre") == 0)
        return VIPS_INTERESTING_CENTRE;
    if (strcmp(crop, "attention") == 0)
        return VIPS_INTERESTING_ATTENTION;
    return VIPS_INTERESTING_NONE;
}

/* Declared size of a loaded header, checked against the pixel limit before
 * anything is decoded (libvips reads only the header until pixels are
 * asked for). */
static int check_header(VipsImage *hdr, const drive2_thumbnail_options_t *o, const char *what,
                        drive2_thumbnail_t *out, char *err, size_t err_size) {
    int64_t w = vips_image_get_width(hdr), h = vips_image_get_height(hdr);
    if (w <= 0 || h <= 0)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "%s declares no size", what);
    if (w * h > o->max_pixels)
        return zt_fail(err, err_size, ZT_ERR_TOO_LARGE,
                       "%s declares %lldx%lld pixels, over the limit of %lld "
                       "(thumbnail_max_pixels); refusing to decode it",
                       what, (long long)w, (long long)h, (long long)o->max_pixels);
    bool swap = vips_image_get_orientation_swap(hdr);
    out->source_width = (int)(swap ? h : w);
    out->source_height = (int)(swap ? w : h);
    return 0;
}

static uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Drops the EXIF, XMP and ICC chunks of a WebP file in place (and their
 * flags in VP8X); returns the new length. libvips 8.14's webpsave ignores
 * strip and always writes an EXIF chunk of its own; this makes the WebP
 * thumbnail as bare as the JPEG one. Input is our encoder's output, but it
 * is parsed defensively: anything unexpected leaves the bytes unchanged. */
static size_t webp_strip_chunks(unsigned char *d, size_t len) {
    if (len < 12 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WEBP", 4) != 0)
        return len;
    size_t r = 12, w = 12;
    unsigned char *vp8x = NULL;
    while (r + 8 <= len) {
        uint32_t size = get_le32(d + r + 4);
        size_t whole = 8 + (size_t)size + (size & 1);
        if (whole > len - r)
            return len; /* malformed: keep it as libvips wrote it */
        bool drop = memcmp(d + r, "EXIF", 4) == 0 || memcmp(d + r, "XMP ", 4) == 0 ||
                    memcmp(d + r, "ICCP", 4) == 0;
        if (!drop) {
            memmove(d + w, d + r, whole);
            if (memcmp(d + w, "VP8X", 4) == 0 && size >= 1)
                vp8x = d + w;
            w += whole;
        }
        r += whole;
    }
    if (vp8x)
        vp8x[8] &= (unsigned char)~(0x20 | 0x08 | 0x04); /* ICC, EXIF, XMP */
    put_le32(d + 4, (uint32_t)(w - 8));
    return w;
}

/* Fields that carry metadata of the original (camera, place, time, colour
 * profile, rotation already applied). */
static bool is_metadata(const char *name) {
    return strncmp(name, "exif-", 5) == 0 || strcmp(name, "xmp-data") == 0 ||
           strcmp(name, "iptc-data") == 0 || strcmp(name, "icc-profile-data") == 0 ||
           strcmp(name, "orientation") == 0 || strncmp(name, "png-comment-", 12) == 0 ||
           strcmp(name, "gif-comment") == 0 || strncmp(name, "heif-", 5) == 0;
}

/* From the thumbnail operation's output to the encoded bytes: 8-bit sRGB,
 * alpha flattened onto white for JPEG, every metadata block stripped.
 * Consumes *im. The pixels are computed here, so decoding errors of a
 * truncated or corrupt file surface here too. */
static int finish(VipsImage **im, const drive2_thumbnail_options_t *o, const char *what,
                  drive2_thumbnail_t *out, char *err, size_t err_size) {
    VipsImage *cur = *im, *next = NULL;
    *im = NULL;
    int rc = 0;
    char why[512];
    if (vips_image_guess_interpretation(cur) != VIPS_INTERPRETATION_sRGB ||
        vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        if (vips_colourspace(cur, &next, VIPS_INTERPRETATION_sRGB, NULL) != 0)
            goto vips_failed;
        g_object_unref(cur);
        cur = next;
        next = NULL;
    }
    if (vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(cur, &next, NULL) != 0)
            goto vips_failed;
        g_object_unref(cur);
        cur = next;
        next = NULL;
    }
    bool webp = strcmp(o->format, "webp") == 0;
    if (!webp && vips_image_hasalpha(cur)) {
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        int frc = vips_flatten(cur, &next, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (frc != 0)
            goto vips_failed;
        g_object_unref(cur);
        cur = next;
        next = NULL;
    }
    /* strip=TRUE alone is not enough: libvips 8.14's webpsave writes the
     * EXIF block (GPS included) anyway. Remove the fields themselves. */
    if (vips_copy(cur, &next, NULL) != 0)
        goto vips_failed;
    g_object_unref(cur);
    cur = next;
    next = NULL;
    gchar **fields = vips_image_get_fields(cur);
    for (size_t i = 0; fields && fields[i]; i++)
        if (is_metadata(fields[i]))
            vips_image_remove(cur, fields[i]);
    g_strfreev(fields);
    void *buf = NULL;
    size_t len = 0;
    int src = webp ? vips_webpsave_buffer(cur, &buf, &len, "Q", o->quality, "strip", TRUE, NULL)
                   : vips_jpegsave_buffer(cur, &buf, &len, "Q", o->quality, "strip", TRUE,
                                          "optimize_coding", TRUE, NULL);
    if (src != 0)
        goto vips_failed;
    out->data = malloc(len ? len : 1);
    if (!out->data) {
        g_free(buf);
        g_object_unref(cur);
        return zt_fail(err, err_size, ZT_ERR_IO, "out of memory for a %zu-byte thumbnail", len);
    }
    memcpy(out->data, buf, len);
    out->len = webp ? webp_strip_chunks(out->data, len) : len;
    g_free(buf);
    out->width = vips_image_get_width(cur);
    out->height = vips_image_get_height(cur);
    out->content_type = webp ? "image/webp" : "image/jpeg";
    out->extension = webp ? "webp" : "jpg";
    g_object_unref(cur);
    return 0;

vips_failed:
    vips_reason(why, sizeof why);
    if (cur)
        g_object_unref(cur);
    rc = zt_fail(err, err_size, ZT_ERR_INVALID, "%s cannot be decoded (truncated or corrupt): %s",
                 what, why);
    return rc;
}

/* An image or PDF page in memory, through libvips' thumbnail operation. */
static int thumb_buffer(const unsigned char *data, size_t len, const char *loader,
                        const drive2_thumbnail_options_t *o, drive2_thumbnail_t *out, char *err,
                        size_t err_size) {
    bool pdf = strncmp(loader, "VipsForeignLoadPdf", 18) == 0;
    /* Through the loader's own options: the thumbnail operation's fail_on
     * argument does not reach the JPEG loader in libvips 8.14 (a truncated
     * JPEG came out grey-bottomed instead of failing). */
    const char *load_options = pdf ? "[page=0,fail_on=error]" : "[fail_on=error]";
    const char *what = pdf ? "the PDF" : "the image";
    /* Header only: pixels are decoded lazily, and never here. */
    VipsImage *hdr =
        vips_image_new_from_buffer(data, len, load_options, "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                   VIPS_ACCESS_SEQUENTIAL, NULL);
    char why[512];
    if (!hdr) {
        vips_reason(why, sizeof why);
        return zt_fail(err, err_size, ZT_ERR_INVALID, "%s cannot be read: %s", what, why);
    }
    int rc = check_header(hdr, o, what, out, err, err_size);
    g_object_unref(hdr);
    if (rc != 0)
        return rc;
    VipsImage *t = NULL;
    /* size=down: a small image is not blown up; the box is a maximum. */
    if (vips_thumbnail_buffer((void *)data, len, &t, o->size, "height", o->size, "size",
                              VIPS_SIZE_DOWN, "crop", crop_mode(o->crop), "fail_on",
                              VIPS_FAIL_ON_ERROR, "option_string", load_options, NULL) != 0) {
        vips_reason(why, sizeof why);
        return zt_fail(err, err_size, ZT_ERR_INVALID,
                       "%s cannot be decoded (truncated or corrupt): %s", what, why);
    }
    const char *nick = vips_nickname_find(g_type_from_name(loader));
    snprintf(out->loader, sizeof out->loader, "%s", nick ? nick : loader);
    out->source = pdf ? DRIVE2_THUMB_PDF : DRIVE2_THUMB_IMAGE;
    return finish(&t, o, what, out, err, err_size);
}

/* --- the video part: ffprobe and ffmpeg as child processes ----------------- */

/* The absolute path of program found in PATH, into buf. Resolved before
 * fork() so the child only calls async-signal-safe functions. */
static int find_program(const char *program, char *buf, size_t size) {
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)n, path, program) < size &&
            access(buf, X_OK) == 0)
            return 0;
        path += n + (colon ? 1 : 0);
    }
    return ZT_ERR_NOT_FOUND;
}

static double mono_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends what fd has to buf (keeping at most size-1 bytes, NUL-terminated);
 * returns false at end of file or on an error. */
static bool drain(int fd, char *buf, size_t size, size_t *used) {
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    size_t room = size - 1 - *used;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *used, chunk, take);
    *used += take;
    buf[*used] = '\0';
    return true;
}

/* Runs argv[0] (looked up in PATH) with argv, no shell, stdin from
 * /dev/null, for at most timeout seconds of wall time (and of CPU time, by
 * RLIMIT_CPU), killed with SIGKILL past it, and also if this process dies
 * (PR_SET_PDEATHSIG). out/errtext get the first bytes of stdout/stderr.
 * Returns 0 with *status the exit code (or 128 + signal), ZT_ERR_TIMEOUT,
 * or ZT_ERR_IO (cannot start it). */
static int run_tool(char *const argv[], double timeout, char *out, size_t out_size, char *errtext,
                    size_t errtext_size, int *status, char *err, size_t err_size) {
    char path[1024];
    out[0] = errtext[0] = '\0';
    if (find_program(argv[0], path, sizeof path) != 0)
        return zt_fail(err, err_size, ZT_ERR_IO,
                       "%s is not installed (needed for video thumbnails; tools/packages.txt)",
                       argv[0]);
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0)
        return zt_fail(err, err_size, ZT_ERR_IO, "cannot create a pipe: %s", strerror(errno));
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return zt_fail(err, err_size, ZT_ERR_IO, "cannot create a pipe: %s", strerror(errno));
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = devnull < 0 ? -1 : fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls until execv. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(devnull, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        /* dup2 clears FD_CLOEXEC on 0-2; every other descriptor this
         * process holds (the pool's channel, sockets) must not leak. */
        long maxfd = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (maxfd > 0 && maxfd < 65536 ? maxfd : 65536); fd++)
            close((int)fd);
        struct rlimit cpu = {(rlim_t)ceil(timeout) + 1, (rlim_t)ceil(timeout) + 2};
        setrlimit(RLIMIT_CPU, &cpu);
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        execv(path, argv);
        _exit(127);
    }
    int saved = errno;
    if (devnull >= 0)
        close(devnull);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        return zt_fail(err, err_size, ZT_ERR_IO, "cannot start %s: %s", argv[0], strerror(saved));
    }
    double deadline = mono_seconds() + timeout;
    size_t out_used = 0, err_used = 0;
    bool out_open = true, err_open = true, timed_out = false;
    while (out_open || err_open) {
        double left = deadline - mono_seconds();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p[2] = {{out_open ? po[0] : -1, POLLIN, 0},
                              {err_open ? pe[0] : -1, POLLIN, 0}};
        int n = poll(p, 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (p[0].revents)
            out_open = drain(po[0], out, out_size, &out_used);
        if (p[1].revents)
            err_open = drain(pe[0], errtext, errtext_size, &err_used);
    }
    close(po[0]);
    close(pe[0]);
    int st = 0;
    /* Both pipes closed: the tool is exiting. Wait for it within the
     * deadline too (it could close its output and keep running). */
    while (!timed_out) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            *status = 127;
            return zt_fail(err, err_size, ZT_ERR_IO, "cannot wait for %s: %s", argv[0],
                           strerror(errno));
        }
        if (mono_seconds() >= deadline)
            timed_out = true;
        else
            usleep(2000);
    }
    if (timed_out) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        return zt_fail(err, err_size, ZT_ERR_TIMEOUT, "%s took longer than %g s and was stopped",
                       argv[0], timeout);
    }
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 0;
}

/* First line of a tool's stderr, for an error message, without ffmpeg's
 * "[demuxer @ 0x55d0...] " prefix (an address means nothing to a user). */
static const char *first_line(char *text) {
    char *nl = strchr(text, '\n');
    if (nl)
        *nl = '\0';
    if (text[0] == '[') {
        char *close = strstr(text, "] ");
        if (close && strstr(text, " @ 0x") && strstr(text, " @ 0x") < close)
            text = close + 2;
    }
    return *text ? text : "no message";
}

/* Reads key=value lines of ffprobe's output. */
static double probe_value(const char *text, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *end;
            double v = strtod(p + kl + 1, &end);
            if (end != p + kl + 1 && isfinite(v))
                return v;
        }
    return -1;
}

static int write_file(const char *path, const unsigned char *data, size_t len, char *err,
                      size_t err_size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return zt_fail(err, err_size, ZT_ERR_IO, "cannot create a temporary file: %s",
                       strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            return zt_fail(err, err_size, ZT_ERR_IO, "cannot write a temporary file: %s",
                           strerror(e));
        }
        done += (size_t)n;
    }
    close(fd);
    return 0;
}

/* ffmpeg writes one frame at `at` seconds into frame (PNG). Returns 0 when
 * a non-empty frame file exists afterwards. */
static int grab_frame(const char *input, const char *frame, double at,
                      const drive2_thumbnail_options_t *o, char *errtext, size_t errtext_size,
                      char *err, size_t err_size) {
    char seek[32], out[256];
    snprintf(seek, sizeof seek, "%.3f", at);
    char *argv[] = {"ffmpeg",
                    "-nostdin",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-protocol_whitelist",
                    "file",
                    "-format_whitelist",
                    VIDEO_FORMATS,
                    "-ss",
                    seek,
                    "-i",
                    (char *)input,
                    "-map",
                    "0:v:0",
                    "-frames:v",
                    "1",
                    "-an",
                    "-sn",
                    "-dn",
                    "-f",
                    "image2",
                    "-c:v",
                    "png",
                    "-y",
                    (char *)frame,
                    NULL};
    int status = 0;
    unlink(frame);
    int rc =
        run_tool(argv, o->timeout, out, sizeof out, errtext, errtext_size, &status, err, err_size);
    if (rc != 0)
        return rc;
    struct stat st;
    if (status != 0 || stat(frame, &st) != 0 || st.st_size == 0)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "ffmpeg could not take a frame at %s s: %s",
                       seek, first_line(errtext));
    return 0;
}

static int thumb_video(const unsigned char *data, size_t len, const drive2_thumbnail_options_t *o,
                       drive2_thumbnail_t *out, char *err, size_t err_size) {
    const char *tmp = getenv("TMPDIR");
    char dir[512], input[600], frame[600];
    snprintf(dir, sizeof dir, "%s/drive2-thumb-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return zt_fail(err, err_size, ZT_ERR_IO, "cannot create a temporary folder: %s",
                       strerror(errno));
    snprintf(input, sizeof input, "%s/input", dir);
    snprintf(frame, sizeof frame, "%s/frame.png", dir);
    char outtext[TOOL_OUTPUT_MAX], errtext[TOOL_OUTPUT_MAX];
    int rc = write_file(input, data, len, err, err_size);
    int status = 0;
    if (rc == 0) {
        char *probe[] = {"ffprobe",
                         "-v",
                         "error",
                         "-protocol_whitelist",
                         "file",
                         "-format_whitelist",
                         VIDEO_FORMATS,
                         "-select_streams",
                         "v:0",
                         "-show_entries",
                         "format=duration:stream=width,height",
                         "-of",
                         "default=noprint_wrappers=1",
                         input,
                         NULL};
        rc = run_tool(probe, o->timeout, outtext, sizeof outtext, errtext, sizeof errtext, &status,
                      err, err_size);
        if (rc == 0 && status != 0)
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "not a video ffmpeg can read: %s",
                         first_line(errtext));
    }
    if (rc == 0) {
        double w = probe_value(outtext, "width"), h = probe_value(outtext, "height");
        double duration = probe_value(outtext, "duration");
        if (w <= 0 || h <= 0)
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "the video has no picture stream");
        else if (w * h > (double)o->max_pixels)
            rc = zt_fail(err, err_size, ZT_ERR_TOO_LARGE,
                         "the video declares %.0fx%.0f pixels, over the limit of %lld "
                         "(thumbnail_max_pixels); refusing to decode it",
                         w, h, (long long)o->max_pixels);
        else {
            double at = duration > 0 ? duration * VIDEO_SEEK : 0;
            rc = grab_frame(input, frame, at, o, errtext, sizeof errtext, err, err_size);
            /* Seeking can land past the last decodable frame of a short or
             * badly indexed file: the first frame is the next best. */
            if (rc == ZT_ERR_INVALID && at > 0)
                rc = grab_frame(input, frame, 0, o, errtext, sizeof errtext, err, err_size);
        }
    }
    if (rc == 0) {
        VipsImage *hdr = vips_image_new_from_file(frame, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
        char why[512];
        if (!hdr) {
            vips_reason(why, sizeof why);
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "the video frame cannot be read: %s", why);
        } else {
            rc = check_header(hdr, o, "the video frame", out, err, err_size);
            g_object_unref(hdr);
        }
        VipsImage *t = NULL;
        char frame_opts[640]; /* loader options ride on a file name */
        snprintf(frame_opts, sizeof frame_opts, "%s[fail_on=error]", frame);
        if (rc == 0 && vips_thumbnail(frame_opts, &t, o->size, "height", o->size, "size",
                                      VIPS_SIZE_DOWN, "crop", crop_mode(o->crop), NULL) != 0) {
            vips_reason(why, sizeof why);
            rc = zt_fail(err, err_size, ZT_ERR_INVALID, "the video frame cannot be thumbnailed: %s",
                         why);
        }
        if (rc == 0) {
            snprintf(out->loader, sizeof out->loader, "ffmpeg+pngload");
            out->source = DRIVE2_THUMB_VIDEO;
            rc = finish(&t, o, "the video frame", out, err, err_size);
        }
    }
    unlink(frame);
    unlink(input);
    rmdir(dir);
    return rc;
}

int drive2_thumbnail_make(const unsigned char *data, size_t len, const char *mime_type,
                          const drive2_thumbnail_options_t *options, drive2_thumbnail_t *out,
                          char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    drive2_thumbnail_options_t dflt;
    if (!options) {
        drive2_thumbnail_options_default(&dflt);
        options = &dflt;
    }
    if (!data || len == 0)
        return zt_fail(err, err_size, ZT_ERR_INVALID, "the file is empty");
    int rc = drive2_thumbnail_init(err, err_size);
    if (rc != 0)
        return rc;
    const char *loader = drive2_thumbnail_find_loader(data, len);
    if (loader) {
        rc = thumb_buffer(data, len, loader, options, out, err, err_size);
    } else {
        vips_error_clear();
        bool video_mime = mime_type && strncmp(mime_type, "video/", 6) == 0;
        if (video_mime || drive2_thumbnail_looks_like_video(data, len))
            rc = thumb_video(data, len, options, out, err, err_size);
        else
            rc = zt_fail(err, err_size, ZT_ERR_INVALID,
                         "not an image, PDF or video this worker can read%s%s%s (no decoder "
                         "recognises its content)",
                         mime_type ? " (declared " : "", mime_type ? mime_type : "",
                         mime_type ? ")" : "");
    }
    if (rc != 0)
        drive2_thumbnail_clear(out);
#ifdef __GLIBC__
    /* Hand the heap libvips, poppler and cairo have freed back to the
     * system: a pool child lives on between tasks, and without this it keeps
     * ~2 MiB more of freed, fragmented heap (docs/BENCHMARKS.md). */
    malloc_trim(0);
#endif
    return rc;
}
