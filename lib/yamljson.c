/* yamljson: YAML to JSON trees through libyaml's event parser (see yaml.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "err.h"
#include "yamljson.h"
#include "banned.h"

static int parse_error(yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "malformed YAML";

	return err_set("yaml: line %zu column %zu: %s", p->problem_mark.line + 1,
	               p->problem_mark.column + 1, problem);
}

static int event_error(const yaml_event_t *ev, const char *what)
{
	return err_set("yaml: line %zu column %zu: %s", ev->start_mark.line + 1,
	               ev->start_mark.column + 1, what);
}

static int next_event(yaml_parser_t *p, yaml_event_t *ev)
{
	if (!yaml_parser_parse(p, ev))
		return parse_error(p);
	return 0;
}

static int is_one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp(s, *words))
			return 1;
	return 0;
}

/* Resolves a plain scalar to a JSON value (new reference). */
static json_t *resolve_plain(const char *s, size_t len)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
	                                    "YES",  "on",   "On",   "ON",  NULL};
	static const char *const falses[] = {"false", "False", "FALSE", "no",  "No",
	                                     "NO",    "off",   "Off",   "OFF", NULL};
	char *end;

	if (strlen(s) != len) /* an embedded NUL: keep it a string */
		return json_stringn(s, len);
	if (is_one_of(s, nulls))
		return json_null();
	if (is_one_of(s, trues))
		return json_true();
	if (is_one_of(s, falses))
		return json_false();
	if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && s[1])) {
		const char *d = s + (s[0] == '-' || s[0] == '+');
		long long v;
		double f;
		int base = 10;

		if (d[0] == '0' && (d[1] == 'x' || d[1] == 'o')) {
			base = d[1] == 'x' ? 16 : 8;
			d += 2;
		}
		if (base == 16 ? isxdigit((unsigned char)*d) : isdigit((unsigned char)*d)) {
			errno = 0;
			v = strtoll(d, &end, base);
			if (!*end && errno == 0 && end != d)
				return json_integer(s[0] == '-' ? -v : v);
		}
		if (base == 10 && strspn(s, "0123456789+-.eE") == len) {
			errno = 0;
			f = strtod(s, &end);
			if (!*end && errno == 0 && strpbrk(s, "0123456789"))
				return json_real(f);
		}
	}
	if (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, "+.inf"))
		return json_real(HUGE_VAL);
	if (!strcmp(s, "-.inf") || !strcmp(s, "-.Inf"))
		return json_real(-HUGE_VAL);
	return json_stringn(s, len);
}

static int parse_node(yaml_parser_t *p, yaml_event_t *ev, json_t **out, int depth);

/* Parses the nodes up to the end event of a mapping or sequence started by
 * the event before. */
static int parse_collection(yaml_parser_t *p, json_t *coll, int is_map, int depth)
{
	yaml_event_t ev;
	json_t *key = NULL, *val = NULL;
	int ret = -1;

	for (;;) {
		if (next_event(p, &ev) < 0)
			goto out;
		if (ev.type == (is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
			yaml_event_delete(&ev);
			break;
		}
		if (is_map) {
			if (ev.type != YAML_SCALAR_EVENT) {
				event_error(&ev, "mapping keys must be scalars");
				yaml_event_delete(&ev);
				goto out;
			}
			key =
			    json_stringn((const char *)ev.data.scalar.value, ev.data.scalar.length);
			yaml_event_delete(&ev);
			if (!key) {
				err_set("yaml: mapping key is not valid UTF-8");
				goto out;
			}
			if (next_event(p, &ev) < 0)
				goto out;
		}
		if (parse_node(p, &ev, &val, depth + 1) < 0)
			goto out;
		if (is_map) {
			if (json_object_set_new(coll, json_string_value(key), val) < 0) {
				val = NULL;
				err_set("yaml: bad mapping key");
				goto out;
			}
			json_decref(key);
			key = NULL;
		} else if (json_array_append_new(coll, val) < 0) {
			val = NULL;
			err_set("out of memory");
			goto out;
		}
		val = NULL;
	}
	ret = 0;
out:
	json_decref(key);
	return ret;
}

/* Parses the node that starts with EV (consumed here) into *OUT. */
static int parse_node(yaml_parser_t *p, yaml_event_t *ev, json_t **out, int depth)
{
	json_t *coll;
	int ret = -1;

	*out = NULL;
	if (depth > YAMLJSON_MAX_DEPTH) {
		event_error(ev, "nested too deeply");
		goto out;
	}
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		event_error(ev, "aliases are not supported");
		goto out;
	case YAML_SCALAR_EVENT: {
		const char *v = (const char *)ev->data.scalar.value;
		size_t len = ev->data.scalar.length;
		const char *tag = (const char *)ev->data.scalar.tag;

		if (ev->data.scalar.anchor) {
			event_error(ev, "anchors are not supported");
			goto out;
		}
		if ((tag && !strcmp(tag, YAML_STR_TAG)) ||
		    ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			*out = json_stringn(v, len);
		else
			*out = resolve_plain(v, len);
		if (!*out) {
			event_error(ev, "scalar is not valid UTF-8");
			goto out;
		}
		ret = 0;
		goto out;
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		int is_map = ev->type == YAML_MAPPING_START_EVENT;

		if (is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor) {
			event_error(ev, "anchors are not supported");
			goto out;
		}
		coll = is_map ? json_object() : json_array();
		if (!coll) {
			err_set("out of memory");
			goto out;
		}
		if (parse_collection(p, coll, is_map, depth) < 0) {
			json_decref(coll);
			goto out;
		}
		*out = coll;
		ret = 0;
		goto out;
	}
	default:
		event_error(ev, "unexpected YAML event");
		goto out;
	}
out:
	yaml_event_delete(ev);
	return ret;
}

/* Parses documents into ALL (when non-NULL, every document) or *FIRST. */
static int parse_stream(const char *buf, size_t len, json_t *all, json_t **first)
{
	yaml_parser_t p;
	yaml_event_t ev;
	json_t *doc = NULL;
	int ret = -1, done = 0;

	if (!yaml_parser_initialize(&p))
		return err_set("out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	while (!done) {
		if (next_event(&p, &ev) < 0)
			goto out;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			yaml_event_delete(&ev);
			break;
		case YAML_DOCUMENT_START_EVENT:
			yaml_event_delete(&ev);
			if (next_event(&p, &ev) < 0)
				goto out;
			if (ev.type == YAML_DOCUMENT_END_EVENT) {
				yaml_event_delete(&ev);
				break;
			}
			if (parse_node(&p, &ev, &doc, 1) < 0)
				goto out;
			if (next_event(&p, &ev) < 0)
				goto out;
			yaml_event_delete(&ev); /* DOCUMENT_END */
			if (!all) {
				*first = doc;
				doc = NULL;
				ret = 0;
				goto out;
			}
			if (!json_is_null(doc) && json_array_append(all, doc) < 0) {
				err_set("out of memory");
				goto out;
			}
			json_decref(doc);
			doc = NULL;
			break;
		default:
			yaml_event_delete(&ev);
			break;
		}
	}
	if (!all)
		*first = json_null();
	ret = 0;
out:
	json_decref(doc);
	yaml_parser_delete(&p);
	return ret;
}

int yamljson_load(json_t **out, const char *buf, size_t len)
{
	*out = NULL;
	return parse_stream(buf, len, NULL, out);
}

int yamljson_load_all(json_t **out, const char *buf, size_t len)
{
	json_t *all = json_array();

	*out = NULL;
	if (!all)
		return err_set("out of memory");
	if (parse_stream(buf, len, all, NULL) < 0) {
		json_decref(all);
		return -1;
	}
	*out = all;
	return 0;
}
