/* line: the LINE Messaging API push endpoint (POST /v2/bot/message/push)
 * over the one HTTP client (http.h). Every push carries an X-Line-Retry-Key
 * that the caller keeps for all attempts of one notification, so a retried
 * request (a timeout, a 5xx, a redelivered task) is delivered at most once:
 * LINE answers a repeat of an accepted key with 409, which counts as
 * delivered. 429 and 5xx are retried by http.c with backoff honouring
 * Retry-After; other 4xx are a clear failure quoting LINE's error message.
 * The channel access token comes only from zt_secret
 * (LINE_CHANNEL_ACCESS_TOKEN or LINE_CHANNEL_ACCESS_TOKEN_FILE) and appears
 * nowhere but in the Authorization header: not in logs, errors or results.
 * Messages are checked against LINE's documented limits before sending. */
#ifndef DRIVE2_LINE_H
#define DRIVE2_LINE_H

#include "http.h"
#include "zt_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct drive2_line drive2_line_t;

/* The secret's name. */
#define DRIVE2_LINE_TOKEN "LINE_CHANNEL_ACCESS_TOKEN"

/* LINE's documented limits (Messaging API reference), checked by
 * drive2_line_check_messages. Character counts are UTF-16 code units, as
 * LINE counts them. */
#define DRIVE2_LINE_MESSAGES_MAX 5   /* messages in one push */
#define DRIVE2_LINE_ALT_TEXT_MAX 400 /* characters of a Flex altText (the brief's bound) */
#define DRIVE2_LINE_BUBBLE_MAX 30000 /* bytes of one bubble's JSON ("30 KB") */
#define DRIVE2_LINE_TEXT_MAX 5000    /* characters of a text message */
#define DRIVE2_LINE_URL_MAX 2000     /* characters of an image URL (HTTPS, JPEG or PNG) */

/* True when the token is configured (the secret is not read). */
bool drive2_line_configured(void);

/* Opens a client for config->line_api_base_url with the token from
 * zt_secret. http_options NULL: http.c's defaults. Returns NULL with err
 * filled (no token, bad base URL). */
drive2_line_t *drive2_line_new(const zt_config_t *config, const drive2_http_options_t *http_options,
                               char *err, size_t err_size);
void drive2_line_destroy(drive2_line_t **self_p);

/* What a push did. */
typedef struct {
    long status;         /* HTTP status of the last attempt */
    int attempts;        /* HTTP attempts made */
    bool duplicate;      /* 409: LINE had already accepted this retry key */
    char request_id[80]; /* x-line-request-id (or x-line-accepted-request-id), "" if none */
} drive2_line_result_t;

/* Pushes messages (a JSON array of 1..5 message objects, borrowed) to the
 * LINE user id `to` with retry_key (a UUID, e.g. from drive2_line_retry_key)
 * in X-Line-Retry-Key. Returns 0 when LINE accepted it (2xx) or had already
 * accepted this key (409, result->duplicate), else:
 *   ZT_ERR_INVALID   a message breaks LINE's limits, bad to / retry key (not sent)
 *   ZT_ERR_REJECTED  LINE answered 4xx (400 bad request, 401 bad token, 403...):
 *                    err quotes LINE's message and details; do not retry
 *   ZT_ERR_IO / ZT_ERR_TIMEOUT  still 429/5xx after the retries, or no answer:
 *                    retry later with the same retry key
 * result (may be NULL) is filled either way. */
int drive2_line_push(drive2_line_t *self, const char *to, const json_t *messages,
                     const char *retry_key, drive2_line_result_t *result, char *err,
                     size_t err_size);

/* Checks messages against the limits above and the shapes we send (flex
 * with altText and a bubble, or text). Returns 0 or ZT_ERR_INVALID with err
 * naming the message and the limit. */
int drive2_line_check_messages(const json_t *messages, char *err, size_t err_size);

/* The retry key of one notification: a name-based UUID (RFC 4122 version 5,
 * SHA-1) of seed, so every attempt and every redelivery of the task that
 * sends it uses the same key. out gets 36 characters and a NUL. */
void drive2_line_retry_key(const char *seed, char out[37]);

/* Length of UTF-8 text in UTF-16 code units (LINE's character count);
 * invalid bytes count one each. */
size_t drive2_line_utf16_length(const char *text);

#endif
