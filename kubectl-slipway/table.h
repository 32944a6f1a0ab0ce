/* table: kubectl-style output for the plugin: tables with uppercase headers
 * and padded columns (kubectl's printers use a tabwriter with 3 spaces of
 * padding), ages and durations in kubectl's short human form. */
#ifndef SLIP_PLUGIN_TABLE_H
#define SLIP_PLUGIN_TABLE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

/* Largest number of columns and rows of one table. */
#define TABLE_MAX_COLS 16
#define TABLE_MAX_ROWS 100000

struct table {
	size_t ncols;               /* columns, fixed by table_init */
	char **cells;               /* nrows * ncols strings, row-major (owned) */
	size_t nrows;               /* rows added, header excluded */
	size_t cap;                 /* rows allocated */
	const char *const *headers; /* borrowed */
};

/* Sets up an empty table in place with NCOLS (<= TABLE_MAX_COLS) HEADERS,
 * which stay borrowed. */
void table_init(struct table *t, size_t ncols, const char *const *headers);

/* Frees the rows; leaves an empty table with the same headers. */
void table_release(struct table *t);

/* Adds a row of t->ncols CELLS (copied; a NULL or "" cell prints as
 * "<none>", as kubectl does). Returns 0, or -1 with err_msg() when out of
 * memory or past TABLE_MAX_ROWS. */
int table_add(struct table *t, const char *const *cells);

/* Appends the table to OUT: the header line then each row, columns
 * left-aligned and padded to their widest cell plus 3 spaces, the last column
 * not padded, each line ending in "\n". Returns 0 or -1 with err_msg(). */
int table_render(struct buf *out, const struct table *t);

/* Writes D seconds in kubectl's short form (apimachinery's
 * duration.HumanDuration: "45s", "3m20s", "5m", "3h10m", "3h", "2d4h",
 * "90d", "3y20d", "9y") into BUF of SIZE bytes. Negative D prints "0s",
 * below -1 "<invalid>", as kubectl does for clock skew. */
void table_human_duration(char *buf, size_t size, long long d);

/* Writes the age of timestamp S at NOW (table_human_duration of NOW - S)
 * into BUF, or "<unknown>" when S does not parse. */
void table_age(char *buf, size_t size, const char *s, time_t now);

/* Writes the duration from timestamp FROM to timestamp TO (or to NOW while
 * TO is NULL) into BUF, or "" when FROM is missing or either does not parse. */
void table_span(char *buf, size_t size, const char *from, const char *to, time_t now);

#endif
