/* thumbnail: small previews of images, PDFs and videos, made with libvips'
 * thumbnail operation (shrink-on-load: a JPEG is decoded at 1/2, 1/4 or 1/8
 * scale, a PDF page rendered at the target size; never a full decode then a
 * resize). The result fits a box (aspect kept) or fills it (crop option), is
 * turned upright by its EXIF orientation, converted to 8-bit sRGB and saved
 * as JPEG or WebP with every metadata block stripped (no GPS leaves the
 * original). Videos: ffprobe reads the duration, ffmpeg grabs a frame about
 * 10% in (both run without a shell, with a timeout), then libvips as above.
 *
 * Hostile input fails with a clear error and bounded work: the declared
 * width x height is checked against a limit before any pixel is decoded,
 * loaders run with fail_on=error (a truncated file is an error, not a grey
 * half), and only a list of loaders is enabled (no ImageMagick delegates,
 * no FITS/Matlab/OpenSlide...).
 *
 * libvips is started lazily, in the process that first makes a thumbnail:
 * the worker parent never touches it, so the pool children it forks start
 * with no libvips threads (libvips is not fork-safe once started). It is
 * started without its loadable modules (on Debian: ImageMagick, OpenSlide,
 * JPEG XL, whose loaders are blocked anyway, and poppler and HEIF); the PDF
 * and HEIF modules are loaded the first time a file needs them, so a
 * process pays only for the formats it has seen (docs/BENCHMARKS.md). */
#ifndef DRIVE2_THUMBNAIL_H
#define DRIVE2_THUMBNAIL_H

#include "zt_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How thumbnails are made (plain value struct). */
typedef struct {
    int size;           /* px, edge of the box */
    char crop[16];      /* "none" (fit inside), "centre" or "attention" (fill, then crop) */
    char format[8];     /* "jpeg" or "webp" */
    int quality;        /* 1..100, encoder quality */
    int64_t max_pixels; /* largest width x height a source may declare */
    double timeout;     /* seconds, each ffprobe / ffmpeg run */
} drive2_thumbnail_options_t;

/* What kind of source a thumbnail came from. */
typedef enum { DRIVE2_THUMB_IMAGE = 1, DRIVE2_THUMB_PDF, DRIVE2_THUMB_VIDEO } drive2_thumb_source_t;

/* A finished thumbnail. data is malloc'd (free with drive2_thumbnail_clear). */
typedef struct {
    unsigned char *data;
    size_t len;        /* bytes */
    int width, height; /* px */
    int source_width;  /* px, as declared by the source (upright) */
    int source_height; /* px */
    drive2_thumb_source_t source;
    const char *content_type; /* static: "image/jpeg" or "image/webp" */
    const char *extension;    /* static: "jpg" or "webp" */
    char loader[48];          /* libvips loader used, e.g. "jpegload_buffer" */
} drive2_thumbnail_t;

/* Defaults: 300 px, fit, JPEG quality 80, 100 megapixels, 60 s. */
void drive2_thumbnail_options_default(drive2_thumbnail_options_t *options);

/* The options the settings name (thumbnail_size, _format, _crop,
 * _max_pixels, _timeout). Returns 0, or ZT_ERR_INVALID with err naming the
 * bad setting. */
int drive2_thumbnail_options_from_config(const zt_config_t *config,
                                         drive2_thumbnail_options_t *options, char *err,
                                         size_t err_size);

/* Starts libvips in this process if needed, with the loader allow-list and
 * no operation cache. Returns 0 or ZT_ERR_IO. Called by drive2_thumbnail_make;
 * exposed for tests and tools that use libvips themselves. */
int drive2_thumbnail_init(char *err, size_t err_size);

/* The allowed libvips loader that takes data (class name), or NULL. A PDF
 * or HEIF the first time in this process loads its deferred module first.
 * Call after drive2_thumbnail_init succeeded. Shared with the local
 * analyzer, so both read uploads through the same allow-list. */
const char *drive2_thumbnail_find_loader(const unsigned char *data, size_t len);

/* Makes a thumbnail of data[0..len). mime_type (may be NULL) is only a hint:
 * the bytes decide (an image libvips can load, a PDF, else a video when
 * the bytes look like a video container or mime_type says video/...).
 * Returns 0 with *out filled, or:
 *   ZT_ERR_INVALID   not an image, PDF or video we read; corrupt or truncated
 *   ZT_ERR_TOO_LARGE declared pixels over max_pixels (a decompression bomb)
 *   ZT_ERR_TIMEOUT   ffprobe/ffmpeg took longer than timeout
 *   ZT_ERR_IO        temporary files, ffmpeg missing, libvips cannot start
 * with err saying what happened in words a user understands. */
int drive2_thumbnail_make(const unsigned char *data, size_t len, const char *mime_type,
                          const drive2_thumbnail_options_t *options, drive2_thumbnail_t *out,
                          char *err, size_t err_size);

/* Frees what out holds and zeroes it (safe on a zeroed one). */
void drive2_thumbnail_clear(drive2_thumbnail_t *out);

/* The object key of file_id's thumbnail: "thumbnails/<file_id>.<ext>".
 * Returns 0, or ZT_ERR_INVALID when it does not fit in size. */
int drive2_thumbnail_key(const char *file_id, const char *extension, char *key, size_t size);

/* True when the bytes look like a video container ffmpeg may open (MP4/MOV,
 * Matroska/WebM, AVI, MPEG-TS/PS, FLV, Ogg). Exposed for the unit test. */
bool drive2_thumbnail_looks_like_video(const unsigned char *data, size_t len);

#endif
