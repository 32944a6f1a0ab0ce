/* yamljson: YAML to JSON trees through libyaml's event parser, and JSON trees
 * back to YAML through its event emitter (see yaml.h). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"
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
			/* base 10 with its sign, so that LLONG_MIN fits */
			v = strtoll(base == 10 ? s : d, &end, base);
			if (!*end && errno == 0 && end != d)
				return json_integer(base != 10 && s[0] == '-' ? -v : v);
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

/* Parses documents into ALL (when non-NULL, every document; the empty ones
 * too when KEEP_EMPTY) or *FIRST. */
static int parse_stream(const char *buf, size_t len, json_t *all, int keep_empty, json_t **first)
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
				if (all && keep_empty &&
				    json_array_append_new(all, json_null()) < 0) {
					err_set("out of memory");
					goto out;
				}
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
			if ((keep_empty || !json_is_null(doc)) && json_array_append(all, doc) < 0) {
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
	return parse_stream(buf, len, NULL, 0, out);
}

static int load_all(json_t **out, const char *buf, size_t len, int keep_empty)
{
	json_t *all = json_array();

	*out = NULL;
	if (!all)
		return err_set("out of memory");
	if (parse_stream(buf, len, all, keep_empty, NULL) < 0) {
		json_decref(all);
		return -1;
	}
	*out = all;
	return 0;
}

int yamljson_load_all(json_t **out, const char *buf, size_t len)
{
	return load_all(out, buf, len, 0);
}

int yamljson_load_documents(json_t **out, const char *buf, size_t len)
{
	return load_all(out, buf, len, 1);
}

/* --- emitting ------------------------------------------------------------ */

struct emit_state {
	yaml_emitter_t e;
	struct buf out;
	int write_failed; /* the buffer refused output; err_msg() says why */
};

static int write_handler(void *data, unsigned char *bytes, size_t size)
{
	struct emit_state *st = data;

	if (buf_add(&st->out, bytes, size) < 0) {
		st->write_failed = 1;
		return 0;
	}
	return 1;
}

/* Emits EV (always consumed, as yaml_emitter_emit does). */
static int emit_event(struct emit_state *st, yaml_event_t *ev)
{
	if (yaml_emitter_emit(&st->e, ev))
		return 0;
	if (st->write_failed)
		return -1; /* buf_add set the message */
	return err_set("yaml: cannot emit: %s",
	               st->e.problem ? st->e.problem : "libyaml emitter error");
}

/* Whether the plain scalar S (LEN bytes) could be read back as something
 * other than this string: by our own resolver (resolve_plain), or by other
 * YAML 1.1/1.2 readers (PyYAML, go-yaml, yq), which also know y/n, the merge
 * key "<<", ".nan", 0b/_-separated/sexagesimal numbers and timestamps. Those
 * all start with a digit, or a sign or dot and a digit, so any such string is
 * quoted: a few needless quotes ("1.2.3") buy round trips everywhere. */
static int is_ambiguous_plain(const char *s, size_t len)
{
	static const char *const others[] = {"y",     "Y",     "n",     "N",    "<<",
	                                     "=",     ".nan",  ".NaN",  ".NAN", ".INF",
	                                     "+.Inf", "+.INF", "-.INF", NULL};
	const char *d = s;
	json_t *v;
	int is_str;

	if (len == 0 || strlen(s) != len)
		return 1;
	if (is_one_of(s, others))
		return 1;
	if (*d == '+' || *d == '-')
		d++;
	if (*d == '.')
		d++;
	if (isdigit((unsigned char)*d))
		return 1;
	v = resolve_plain(s, len);
	is_str = json_is_string(v);
	json_decref(v);
	return !is_str;
}

/* Formats the real D so that it reads back as the same double, as a float
 * (YAML 1.1 floats need a '.' and a signed exponent: "1.0e+300"). OUT holds
 * at least 32 bytes; %.17g of a double takes at most 24. */
static void format_real(char out[static 32], double d)
{
	char *e;
	size_t n;

	if (isnan(d) || isinf(d)) {
		snprintf(out, 32, "%s", isnan(d) ? ".nan" : d < 0 ? "-.inf" : ".inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, 32, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (strchr(out, '.'))
		return;
	n = strlen(out);
	e = strchr(out, 'e');
	if (!e)
		e = out + n;
	memmove(e + 2, e, (size_t)(out + n - e) + 1);
	e[0] = '.';
	e[1] = '0';
}

/* Emits a scalar: strings plain when they read back as themselves, as a
 * literal block when they hold a newline (libyaml falls back to quoting when
 * a block cannot hold the text), double-quoted otherwise; other values
 * plain. */
static int emit_scalar(struct emit_state *st, const char *s, size_t len, int is_string)
{
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
	yaml_event_t ev;

	if (is_string) {
		if (is_ambiguous_plain(s, len))
			style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		else if (memchr(s, '\n', len))
			style = YAML_LITERAL_SCALAR_STYLE;
	}
	if (len > INT_MAX)
		return err_set("yaml: string too long to emit");
	/* plain_implicit=1 lets a plain scalar go untagged; quoted_implicit=1
	 * likewise for the quoted ones, which readers take as strings */
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
		return err_set("out of memory");
	return emit_event(st, &ev);
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int emit_node(struct emit_state *st, const json_t *v, int depth);

/* Emits an object's members with their keys sorted, as kubectl prints. */
static int emit_mapping(struct emit_state *st, const json_t *obj, int depth)
{
	const char **keys = NULL, *key;
	const json_t *val;
	yaml_event_t ev;
	size_t n = 0;
	int ret = -1;

	keys = calloc(json_object_size(obj) + 1, sizeof(*keys));
	if (!keys)
		return err_set("out of memory");
	json_object_foreach((json_t *)obj, key, val) keys[n++] = key;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)) {
		err_set("out of memory");
		goto out;
	}
	if (emit_event(st, &ev) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (emit_scalar(st, keys[i], strlen(keys[i]), 1) < 0 ||
		    emit_node(st, json_object_get(obj, keys[i]), depth + 1) < 0)
			goto out;
	}
	yaml_mapping_end_event_initialize(&ev);
	if (emit_event(st, &ev) < 0)
		goto out;
	ret = 0;
out:
	free(keys);
	return ret;
}

static int emit_sequence(struct emit_state *st, const json_t *arr, int depth)
{
	const json_t *val;
	yaml_event_t ev;
	size_t i;

	if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE))
		return err_set("out of memory");
	if (emit_event(st, &ev) < 0)
		return -1;
	json_array_foreach(arr, i, val)
	{
		if (emit_node(st, val, depth + 1) < 0)
			return -1;
	}
	yaml_sequence_end_event_initialize(&ev);
	return emit_event(st, &ev);
}

static int emit_node(struct emit_state *st, const json_t *v, int depth)
{
	char num[64];

	if (depth > YAMLJSON_MAX_DEPTH)
		return err_set("yaml: cannot emit: nested deeper than %d", YAMLJSON_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return emit_mapping(st, v, depth);
	case JSON_ARRAY:
		return emit_sequence(st, v, depth);
	case JSON_STRING:
		return emit_scalar(st, json_string_value(v), json_string_length(v), 1);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(st, num, strlen(num), 0);
	case JSON_REAL:
		format_real(num, json_real_value(v));
		return emit_scalar(st, num, strlen(num), 0);
	case JSON_TRUE:
		return emit_scalar(st, "true", 4, 0);
	case JSON_FALSE:
		return emit_scalar(st, "false", 5, 0);
	case JSON_NULL:
		return emit_scalar(st, "null", 4, 0);
	}
	return err_set("yaml: cannot emit: unknown JSON type");
}

/* Emits the stream and document framing events: implicit "---" and "...". */
static int emit_framing(struct emit_state *st, yaml_event_type_t type)
{
	yaml_event_t ev;
	int made = 0;

	switch (type) {
	case YAML_STREAM_START_EVENT:
		made = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
		break;
	case YAML_DOCUMENT_START_EVENT:
		made = yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
		break;
	case YAML_DOCUMENT_END_EVENT:
		made = yaml_document_end_event_initialize(&ev, 1);
		break;
	default:
		made = yaml_stream_end_event_initialize(&ev);
		break;
	}
	if (!made)
		return err_set("out of memory");
	return emit_event(st, &ev);
}

int yamljson_emit(char **out, const json_t *doc)
{
	struct emit_state st = {.write_failed = 0};
	int ret = -1;

	*out = NULL;
	if (!doc)
		return err_set("yaml: cannot emit: no document");
	if (!yaml_emitter_initialize(&st.e))
		return err_set("out of memory");
	buf_init(&st.out, YAMLJSON_EMIT_MAX);
	yaml_emitter_set_output(&st.e, write_handler, &st);
	yaml_emitter_set_unicode(&st.e, 1); /* UTF-8 as is, not \u escapes */
	yaml_emitter_set_width(&st.e, -1);  /* never fold long lines */
	yaml_emitter_set_indent(&st.e, 2);
	if (emit_framing(&st, YAML_STREAM_START_EVENT) < 0 ||
	    emit_framing(&st, YAML_DOCUMENT_START_EVENT) < 0 || emit_node(&st, doc, 1) < 0 ||
	    emit_framing(&st, YAML_DOCUMENT_END_EVENT) < 0 ||
	    emit_framing(&st, YAML_STREAM_END_EVENT) < 0)
		goto out;
	if (!yaml_emitter_flush(&st.e)) {
		if (!st.write_failed)
			err_set("yaml: cannot emit: flush failed");
		goto out;
	}
	*out = buf_detach(&st.out);
	if (!*out) {
		err_set("out of memory");
		goto out;
	}
	ret = 0;
out:
	yaml_emitter_delete(&st.e);
	buf_release(&st.out);
	return ret;
}
