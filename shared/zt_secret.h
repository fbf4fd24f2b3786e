/* zt_secret: API keys, tokens and secret keys, read the way Docker secrets
 * are passed: from the environment variable NAME, or from the file named by
 * NAME_FILE. Never from a config file or the command line (both end up in
 * `ps`, backups and logs), and never printed: callers log only whether a
 * secret is set. */
#ifndef ZT_SECRET_H
#define ZT_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* Reads secret NAME into buf (NUL-terminated). NAME wins over NAME_FILE;
 * one trailing newline of a file is dropped. Returns 0 when found,
 * ZT_ERR_NOT_FOUND when neither is set, ZT_ERR_IO when NAME_FILE cannot be
 * read, ZT_ERR_INVALID when the secret does not fit in buf or is empty.
 * On any error buf is an empty string; reason (may be NULL) says why
 * without quoting the secret. */
int zt_secret_get(const char *name, char *buf, size_t size, char *reason, size_t reason_size);

/* True when NAME or NAME_FILE is set (the secret itself is not read). */
bool zt_secret_present(const char *name);

#endif
