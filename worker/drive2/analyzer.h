/* analyzer: the front the Drive2 tasks call for the AI step. It picks the
 * implementation from the `analyzer` setting: gemini (Google Gemini over
 * REST, gemini.h; needs GEMINI_API_KEY), local (the embedded analyzer,
 * local_analyzer.h: extractive summary, keyword tags, feature-hashed
 * embedding) or auto (gemini when GEMINI_API_KEY is set, else local).
 * An analysis always carries an L2-normalised embedding; query embeddings
 * come from the same implementation so they are comparable. */
#ifndef DRIVE2_ANALYZER_H
#define DRIVE2_ANALYZER_H

#include "analysis.h"
#include "zt_config.h"

#include <stddef.h>

typedef struct drive2_analyzer drive2_analyzer_t;

/* Chooses and opens the analyzer. NULL with err on a bad setting, or when
 * analyzer = gemini and GEMINI_API_KEY is missing. */
drive2_analyzer_t *drive2_analyzer_new(const zt_config_t *config, char *err, size_t err_size);

/* Frees it and sets *self_p to NULL; harmless on NULL. */
void drive2_analyzer_destroy(drive2_analyzer_t **self_p);

/* "gemini" or "local". */
const char *drive2_analyzer_kind(const drive2_analyzer_t *self);

/* Analyses one file: filename, summary, tags and embedding into out (which
 * the caller zeroes before and clears after). 0 or a negative ZT_ERR_* with
 * err filled; out is left cleared on error. */
int drive2_analyzer_analyze(drive2_analyzer_t *self, const drive2_input_t *in,
                            drive2_analysis_t *out, char *err, size_t err_size);

/* Embeds a search query: *vec is malloc'd (caller frees), *dim floats. */
int drive2_analyzer_embed_query(drive2_analyzer_t *self, const char *text, float **vec, size_t *dim,
                                char *err, size_t err_size);

#endif
