/* migrations: the catalog's schema migrations, embedded at build time from
 * worker/drive2/migrations/NNNN_name.sql by embed.cmake. Internal to the
 * catalog (catalog.c applies them); sorted by version, versions unique. */
#ifndef DRIVE2_MIGRATIONS_H
#define DRIVE2_MIGRATIONS_H

#include <stddef.h>

typedef struct {
    int version;      /* NNNN from the file name */
    const char *name; /* file name without .sql */
    const char *sql;  /* the file's text, NUL-terminated */
} drive2_migration_t;

extern const drive2_migration_t drive2_migrations[];
extern const size_t drive2_migration_count;

#endif
