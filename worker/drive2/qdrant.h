/* qdrant: a client of Qdrant's REST API for Drive2's vector store. One
 * collection (qdrant_collection), created on first use when missing with the
 * vector size of the first embedding and Cosine distance; one point per file
 * whose id is a UUID derived from the file id (name-based, SHA-1, version 5)
 * and whose payload is {"file_id": ...}; search through
 * POST /collections/{name}/points/search. The api-key header carries
 * QDRANT_API_KEY when it is set; it is never logged. */
#ifndef DRIVE2_QDRANT_H
#define DRIVE2_QDRANT_H

#include "catalog.h"
#include "zt_config.h"

#include <stddef.h>

typedef struct drive2_qdrant drive2_qdrant_t;

/* A client for config->qdrant_url / qdrant_collection. api_key may be NULL
 * or "" (no header). NULL with err on a bad setting. */
drive2_qdrant_t *drive2_qdrant_new(const zt_config_t *config, const char *api_key, char *err,
                                   size_t err_size);
void drive2_qdrant_destroy(drive2_qdrant_t **self_p);

/* Writes the point id for file_id ("xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx"). */
void drive2_qdrant_point_id(const char *file_id, char out[37]);

/* Creates the collection (dim, Cosine) unless it exists; then upserts the
 * file's point (replacing an earlier one: re-running is harmless). */
int drive2_qdrant_upsert(drive2_qdrant_t *self, const char *file_id, const float *v, size_t dim,
                         char *err, size_t err_size);

/* The k nearest points, best first: hits[i].file_id from the payload. A
 * missing collection means no hits. */
int drive2_qdrant_search(drive2_qdrant_t *self, const float *v, size_t dim, drive2_hit_t *hits,
                         size_t k, size_t *found, char *err, size_t err_size);

#endif
