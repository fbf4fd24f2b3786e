/* vectors: the front the Drive2 tasks call to store and search embeddings.
 * Qdrant (qdrant.h) when qdrant_url is set, else the embedded store in the
 * catalog database (drive2_catalog_put_embedding / _search_embeddings). */
#ifndef DRIVE2_VECTORS_H
#define DRIVE2_VECTORS_H

#include "catalog.h"
#include "zt_config.h"

#include <stddef.h>

typedef struct drive2_vectors drive2_vectors_t;

/* Opens the store. catalog is borrowed (it must outlive the store) and is
 * only needed when qdrant_url is empty. NULL with err on a bad setting. */
drive2_vectors_t *drive2_vectors_new(const zt_config_t *config, drive2_catalog_t *catalog,
                                     char *err, size_t err_size);
void drive2_vectors_destroy(drive2_vectors_t **self_p);

/* "qdrant" or "catalog". */
const char *drive2_vectors_kind(const drive2_vectors_t *self);

/* Stores the file's embedding, replacing any earlier one. */
int drive2_vectors_upsert(drive2_vectors_t *self, const char *file_id, const float *v, size_t dim,
                          char *err, size_t err_size);

/* The k nearest files by cosine similarity, best first, into hits[0..*found). */
int drive2_vectors_search(drive2_vectors_t *self, const float *v, size_t dim, drive2_hit_t *hits,
                          size_t k, size_t *found, char *err, size_t err_size);

#endif
