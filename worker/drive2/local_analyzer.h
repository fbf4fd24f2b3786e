/* local_analyzer: the embedded AI step, used when no Gemini key is set.
 * Deterministic and offline: an extractive summary (the best-scoring
 * sentences by word frequency), keyword tags (English stopwords dropped,
 * lower-case), a filename suggested from the title, first heading or first
 * line (extension kept from the original), and a feature-hashed embedding
 * (word unigrams and bigrams, signed hashing, L2-normalised) so that similar
 * texts get near vectors. Images get tags and a summary sentence from their
 * metadata read by libvips (size, orientation, EXIF date and camera). */
#ifndef DRIVE2_LOCAL_ANALYZER_H
#define DRIVE2_LOCAL_ANALYZER_H

#include "analysis.h"

#include <stddef.h>

/* Dimensions of drive2_local_embed's vectors in the pipeline. */
#define DRIVE2_LOCAL_DIM 256

/* Most tags an analysis carries. */
#define DRIVE2_LOCAL_MAX_TAGS 8

/* Analyses one file: in->text (may be NULL: metadata only) and, for images,
 * in->image. Fills out (cleared first; the caller frees it with
 * drive2_analysis_clear) with filename, summary, tags and a
 * DRIVE2_LOCAL_DIM embedding. Returns 0, or ZT_ERR_INVALID with err filled
 * when an image cannot be read ("not a readable image: ..."). */
int drive2_local_analyze(const drive2_input_t *in, drive2_analysis_t *out, char *err,
                         size_t err_size);

/* The embedding of text[0..len) into out[0..dim): the same text always
 * gives the same vector, texts sharing words and word pairs give near ones
 * (cosine). L2-normalised; a text without words still gets a unit vector
 * (from its bytes). Returns 0, or ZT_ERR_INVALID if out is NULL or dim 0. */
int drive2_local_embed(const char *text, size_t len, float *out, size_t dim);

#endif
