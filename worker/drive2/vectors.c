/* vectors: see vectors.h. A thin switch; each backend validates its input. */
#include "vectors.h"

#include "qdrant.h"
#include "zt_error.h"
#include "zt_secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct drive2_vectors {
    drive2_qdrant_t *qdrant;   /* owned; NULL: the catalog */
    drive2_catalog_t *catalog; /* borrowed */
};

drive2_vectors_t *drive2_vectors_new(const zt_config_t *config, drive2_catalog_t *catalog,
                                     char *err, size_t err_size) {
    drive2_vectors_t *self = zt_calloc(1, sizeof *self);
    if (config->qdrant_url[0]) {
        char key[512] = "", reason[256];
        int rc = zt_secret_get("QDRANT_API_KEY", key, sizeof key, reason, sizeof reason);
        if (rc != 0 && rc != ZT_ERR_NOT_FOUND) {
            snprintf(err, err_size, "vectors: QDRANT_API_KEY: %s", reason);
            free(self);
            return NULL;
        }
        self->qdrant = drive2_qdrant_new(config, key, err, err_size);
        explicit_bzero(key, sizeof key);
        if (!self->qdrant) {
            free(self);
            return NULL;
        }
        return self;
    }
    if (!catalog) {
        snprintf(err, err_size, "vectors: qdrant_url is empty and no catalog was given");
        free(self);
        return NULL;
    }
    self->catalog = catalog;
    return self;
}

void drive2_vectors_destroy(drive2_vectors_t **self_p) {
    if (!self_p || !*self_p)
        return;
    drive2_qdrant_destroy(&(*self_p)->qdrant);
    free(*self_p);
    *self_p = NULL;
}

const char *drive2_vectors_kind(const drive2_vectors_t *self) {
    return self->qdrant ? "qdrant" : "catalog";
}

int drive2_vectors_upsert(drive2_vectors_t *self, const char *file_id, const float *v, size_t dim,
                          char *err, size_t err_size) {
    if (self->qdrant)
        return drive2_qdrant_upsert(self->qdrant, file_id, v, dim, err, err_size);
    return drive2_catalog_put_embedding(self->catalog, file_id, v, dim, err, err_size);
}

int drive2_vectors_search(drive2_vectors_t *self, const float *v, size_t dim, drive2_hit_t *hits,
                          size_t k, size_t *found, char *err, size_t err_size) {
    *found = 0;
    if (self->qdrant)
        return drive2_qdrant_search(self->qdrant, v, dim, hits, k, found, err, err_size);
    return drive2_catalog_search_embeddings(self->catalog, v, dim, hits, k, found, err, err_size);
}
