/* gemini: a client of Google's Gemini REST API (v1beta) for Drive2's AI step.
 * generateContent with a JSON response schema {filename, summary, tags[]}
 * (images travel inline as base64 inlineData so photos get a caption and
 * tags) and embedContent for embeddings. The API key goes in the
 * x-goog-api-key header, never in the URL, a log line or an error. 429 and
 * 5xx answers are retried by http.c honouring Retry-After; an answer that is
 * not the documented shape is a clear error. */
#ifndef DRIVE2_GEMINI_H
#define DRIVE2_GEMINI_H

#include "analysis.h"
#include "zt_config.h"

#include <stddef.h>

typedef struct drive2_gemini drive2_gemini_t;

/* Text sent to generateContent is cut to this many bytes (at a UTF-8
 * boundary); images larger than DRIVE2_GEMINI_IMAGE_MAX are described by
 * their metadata only (inline requests are limited to 20 MB). */
#define DRIVE2_GEMINI_TEXT_MAX 30000
#define DRIVE2_GEMINI_IMAGE_MAX (14u << 20)

/* Creates a client for config's gemini_base_url / gemini_model /
 * gemini_embed_model with this API key (copied). NULL with err on a bad
 * setting. */
drive2_gemini_t *drive2_gemini_new(const zt_config_t *config, const char *api_key, char *err,
                                   size_t err_size);

/* Frees the client (wiping its copy of the key); sets *self_p to NULL. */
void drive2_gemini_destroy(drive2_gemini_t **self_p);

/* generateContent: fills out->filename, ->summary and ->tags (lower-cased,
 * at most 20). Returns 0, or ZT_ERR_PROTOCOL for an answer that is not the
 * documented JSON, ZT_ERR_REJECTED for 4xx (bad key, ...), ZT_ERR_IO /
 * ZT_ERR_TIMEOUT for transport failures and 429/5xx left after retries. */
int drive2_gemini_generate(drive2_gemini_t *self, const drive2_input_t *in, drive2_analysis_t *out,
                           char *err, size_t err_size);

/* embedContent for len bytes of text. task_type: "RETRIEVAL_DOCUMENT" or
 * "RETRIEVAL_QUERY". *vec (malloc'd, caller frees) is L2-normalised. */
int drive2_gemini_embed(drive2_gemini_t *self, const char *text, size_t len, const char *task_type,
                        float **vec, size_t *dim, char *err, size_t err_size);

#endif
