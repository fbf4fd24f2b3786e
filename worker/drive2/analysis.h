/* analysis: the values that flow through Drive2's AI step, shared by every
 * analyzer (drive2_local_*, Gemini) and by the tasks that store the result.
 * Plain structs: the caller owns them and frees them with the functions
 * below. */
#ifndef DRIVE2_ANALYSIS_H
#define DRIVE2_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

/* What an analyzer is given about one file. */
typedef struct {
    const char *file_id;
    const char *original_name; /* as uploaded, e.g. "Report Q3.pdf" */
    const char *mime_type;     /* e.g. "application/pdf", "image/jpeg" */
    int64_t size;              /* bytes of the original */
    const char *text;          /* extracted text (NUL-terminated), NULL if none */
    size_t text_len;
    const unsigned char *image; /* the original's bytes for images, else NULL */
    size_t image_len;
} drive2_input_t;

/* What an analyzer answers. Every string is malloc'd and NUL-terminated. */
typedef struct {
    char *filename; /* suggested file name, extension kept */
    char *summary;  /* a few sentences */
    char **tags;    /* tag_count lower-case tags */
    size_t tag_count;
    float *embedding; /* dim floats, L2-normalised */
    size_t dim;
} drive2_analysis_t;

/* Frees everything an analysis holds and zeroes it (safe on a zeroed one). */
void drive2_analysis_clear(drive2_analysis_t *a);

#endif
