/* zmqctl_format: human-readable output of zmqctl — aligned tables and the
 * renderings of results, queues, workers and inspect replies. Everything it
 * prints comes from the broker or Redis, so it checks every field's type and
 * prints "-" for what is missing or malformed instead of trusting it.
 * The JSON output (--json) does not go through here: it prints replies raw. */
#ifndef ZMQCTL_FORMAT_H
#define ZMQCTL_FORMAT_H

#include <jansson.h>
#include <stdio.h>

/* An aligned text table: a header row, then rows of cells, every column as
 * wide as its widest cell. Cells are copied. */
typedef struct zmqctl_table zmqctl_table_t;

/* Returns a table with ncols columns named by headers[0..ncols). */
zmqctl_table_t *zmqctl_table_new(int ncols, const char *const *headers);
void zmqctl_table_destroy(zmqctl_table_t **self_p);

/* Appends a row of ncols cells (NULL cells print as "-"). */
void zmqctl_table_add(zmqctl_table_t *self, const char *const *cells);

/* Number of rows added (header excluded). */
int zmqctl_table_rows(const zmqctl_table_t *self);

/* Prints the header and every row, columns separated by two spaces. */
void zmqctl_table_print(const zmqctl_table_t *self, FILE *out);

/* Prints value as one line of compact JSON (any JSON type). */
void zmqctl_print_json(FILE *out, const json_t *value);

/* Renders a JSON value for a table cell into buf: strings unquoted, numbers
 * as numbers, null and absent as "-", anything else as compact JSON
 * (truncated to size). Returns buf. */
char *zmqctl_cell(const json_t *value, char *buf, size_t size);

/* A task's state for humans: id, status, then the result for SUCCESS, the
 * error (exc_type: message) and traceback for FAILURE/RETRY/REVOKED,
 * progress for PROGRESS. meta may be NULL (PENDING). */
void zmqctl_format_meta(FILE *out, const char *id, const char *status, const json_t *meta);

/* Tables for the CONTROL replies of docs/PROTOCOL.md §5.2. Each accepts the
 * reply's "result" and prints a note when it is empty or not the expected
 * type. now is the wall clock (unix seconds) for relative times. */
void zmqctl_format_queues(FILE *out, const json_t *result);
void zmqctl_format_workers(FILE *out, const json_t *result);
void zmqctl_format_scheduled(FILE *out, const json_t *result, double now);
void zmqctl_format_registered(FILE *out, const json_t *result);
void zmqctl_format_stats(FILE *out, const json_t *result);

/* zmqbeat's lease holder and entries (CONTROL op beat). */
void zmqctl_format_beat(FILE *out, const json_t *result, double now);

/* Workers' answers to a broadcast (`inspect ping|active|reserved|registered|
 * stats`, `control shutdown`): replies maps worker name -> answer. */
void zmqctl_format_worker_replies(FILE *out, const char *command, const json_t *replies,
                                  double now);

#endif
