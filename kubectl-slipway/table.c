/* table: kubectl-style tables, ages and durations for the plugin's output
 * (see table.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "table.h"
#include "banned.h"

/* kubectl's printers: tabwriter.NewWriter(out, 10, 4, 3, ' ', 0) */
#define TABLE_PADDING 3

void table_init(struct table *t, size_t ncols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols > TABLE_MAX_COLS ? TABLE_MAX_COLS : ncols;
	t->headers = headers;
}

void table_release(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

int table_add(struct table *t, const char *const *cells)
{
	size_t base;

	if (t->nrows == TABLE_MAX_ROWS)
		return err_set("table: more than %d rows", TABLE_MAX_ROWS);
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **grown;

		if (cap > TABLE_MAX_ROWS)
			cap = TABLE_MAX_ROWS;
		grown = realloc(t->cells, cap * t->ncols * sizeof(*grown));
		if (!grown)
			return err_set("out of memory");
		t->cells = grown;
		t->cap = cap;
	}
	base = t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = cells[i] && *cells[i] ? cells[i] : "<none>";

		t->cells[base + i] = strdup(s);
		if (!t->cells[base + i]) {
			while (i-- > 0)
				free(t->cells[base + i]);
			return err_set("out of memory");
		}
	}
	t->nrows++;
	return 0;
}

static int render_row(struct buf *out, const struct table *t, const char *const *cells,
                      const size_t *width)
{
	for (size_t i = 0; i < t->ncols; i++) {
		bool last = i + 1 == t->ncols;

		if (buf_addf(out, "%-*s", last ? 0 : (int)(width[i] + TABLE_PADDING), cells[i]) < 0)
			return -1;
	}
	return buf_adds(out, "\n");
}

int table_render(struct buf *out, const struct table *t)
{
	size_t width[TABLE_MAX_COLS] = {0};

	for (size_t i = 0; i < t->ncols; i++)
		width[i] = strlen(t->headers[i]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t n = strlen(t->cells[r * t->ncols + i]);

			if (n > width[i])
				width[i] = n;
		}
	if (render_row(out, t, t->headers, width) < 0)
		return -1;
	for (size_t r = 0; r < t->nrows; r++)
		if (render_row(out, t, (const char *const *)t->cells + r * t->ncols, width) < 0)
			return -1;
	return 0;
}

void table_human_duration(char *buf, size_t size, long long d)
{
	long long minutes = d / 60, hours = d / 3600, days = hours / 24;

	if (d < -1)
		snprintf(buf, size, "<invalid>");
	else if (d < 0)
		snprintf(buf, size, "0s");
	else if (d < 60 * 2)
		snprintf(buf, size, "%llds", d);
	else if (minutes < 10 && d % 60)
		snprintf(buf, size, "%lldm%llds", minutes, d % 60);
	else if (minutes < 60 * 3)
		snprintf(buf, size, "%lldm", minutes);
	else if (hours < 8 && minutes % 60)
		snprintf(buf, size, "%lldh%lldm", hours, minutes % 60);
	else if (hours < 48)
		snprintf(buf, size, "%lldh", hours);
	else if (hours < 24 * 8 && hours % 24)
		snprintf(buf, size, "%lldd%lldh", days, hours % 24);
	else if (hours < 24 * 365 * 2)
		snprintf(buf, size, "%lldd", days);
	else if (hours < 24 * 365 * 8 && days % 365)
		snprintf(buf, size, "%lldy%lldd", days / 365, days % 365);
	else
		snprintf(buf, size, "%lldy", days / 365);
}

void table_age(char *buf, size_t size, const char *s, time_t now)
{
	time_t t;

	if (clock_parse_rfc3339(&t, s) < 0)
		snprintf(buf, size, "<unknown>");
	else
		table_human_duration(buf, size, (long long)(now - t));
}

void table_span(char *buf, size_t size, const char *from, const char *to, time_t now)
{
	time_t a, b = now;

	if (clock_parse_rfc3339(&a, from) < 0 || (to && clock_parse_rfc3339(&b, to) < 0))
		snprintf(buf, size, "%s", "");
	else
		table_human_duration(buf, size, (long long)(b - a));
}
