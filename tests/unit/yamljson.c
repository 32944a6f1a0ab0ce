/* Unit tests of lib/yamljson: scalar resolution, nesting, documents,
 * refusal of malformed or hostile input, and emitting YAML that reads back
 * as the same JSON. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "err.h"
#include "yamljson.h"

static json_t *load(const char *y)
{
	json_t *j = NULL;

	if (yamljson_load(&j, y, strlen(y)) < 0)
		return NULL;
	return j;
}

static char *dump(const char *y)
{
	json_t *j = load(y);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	return s;
}

static void is_yaml(const char *yaml, const char *want, const char *what)
{
	char *got = dump(yaml);

	is_str(got, want, what);
	free(got);
}

static void test_scalars(void)
{
	is_yaml("a: 1\nb: -2\nc: 0x1f\nd: 0o17\n", "{\"a\":1,\"b\":-2,\"c\":31,\"d\":15}",
	        "integers: decimal, negative, hex, octal");
	is_yaml("a: 1.5\nb: -2e3\n", "{\"a\":1.5,\"b\":-2000.0}", "floats");
	is_yaml("a: true\nb: False\nc: yes\nd: off\n",
	        "{\"a\":true,\"b\":false,\"c\":true,\"d\":false}", "YAML 1.1 booleans");
	is_yaml("a: ~\nb: null\nc:\n", "{\"a\":null,\"b\":null,\"c\":null}", "nulls");
	is_yaml("a: \"1\"\nb: 'true'\nc: !!str 2\n", "{\"a\":\"1\",\"b\":\"true\",\"c\":\"2\"}",
	        "quoted and !!str scalars stay strings");
	is_yaml("a: 1.2.3\nb: 12abc\nc: v1\n", "{\"a\":\"1.2.3\",\"b\":\"12abc\",\"c\":\"v1\"}",
	        "number-like words stay strings");
	is_yaml("a: |\n  line1\n  line2\n", "{\"a\":\"line1\\nline2\\n\"}", "literal block scalar");
	is_yaml("k: héllo\n", "{\"k\":\"héllo\"}", "UTF-8 text");
}

static void test_structure(void)
{
	json_t *all = NULL;
	const char *multi = "a: 1\n---\n---\nb: [x, {c: d}]\n...\n";

	is_yaml("l:\n- 1\n- name: x\n  v: [a, b]\n",
	        "{\"l\":[1,{\"name\":\"x\",\"v\":[\"a\",\"b\"]}]}",
	        "nested mappings and sequences");
	is_yaml("", "null", "an empty stream is null");
	is_yaml("a: 1\n---\nb: 2\n", "{\"a\":1}", "yamljson_load takes the first document");
	ok(yamljson_load_all(&all, multi, strlen(multi)) == 0 && json_array_size(all) == 2,
	   "yamljson_load_all returns each non-empty document");
	json_decref(all);
	all = NULL;
	ok(yamljson_load_documents(&all, multi, strlen(multi)) == 0 && json_array_size(all) == 3 &&
	       json_is_null(json_array_get(all, 1)) && json_is_object(json_array_get(all, 2)),
	   "yamljson_load_documents keeps the empty document in its place");
	json_decref(all);
	all = NULL;
	ok(yamljson_load_documents(&all, "# only a comment\n", 17) == 0 &&
	       json_array_size(all) == 0,
	   "a stream of only a comment has no documents");
	json_decref(all);
}

static void test_errors(void)
{
	json_t *j = NULL;
	char deep[400];
	size_t i;

	ok(load("a: [1, 2\nb: 3\n") == NULL, "an unterminated flow sequence is an error");
	ok(strncmp(err_msg(), "yaml: line ", 11) == 0, "the error names a line: %s", err_msg());
	ok(load("a: 1\n b: 2\n  - c\n") == NULL, "bad indentation is an error");
	ok(load("a: &x [1]\nb: *x\n") == NULL, "anchors are refused");
	ok(strstr(err_msg(), "not supported") != NULL, "and say so");
	ok(load("? [a, b]\n: c\n") == NULL, "a non-scalar key is refused");
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	deep[i] = '\0';
	ok(load(deep) == NULL, "nesting deeper than the limit is refused");
	ok(strstr(err_msg(), "nested too deeply") != NULL, "and says why");
	ok(yamljson_load(&j, "\"\\xff\"", 6) < 0 || json_is_string(j),
	   "invalid UTF-8 never crashes");
	json_decref(j);
}

/* Emits the JSON text J as YAML, reads it back and compares. */
static void round_trips(const char *j, const char *what)
{
	json_t *doc = json_loads(j, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *back = NULL;
	char *y = NULL;

	if (!ok(doc && yamljson_emit(&y, doc) == 0, "emit %s", what)) {
		printf("#   %s\n", doc ? err_msg() : "bad test JSON");
		goto out;
	}
	if (!ok(yamljson_load(&back, y, strlen(y)) == 0 && json_equal(doc, back),
	        "%s reads back equal", what))
		printf("#   yaml: '%s'\n", y);
out:
	free(y);
	json_decref(back);
	json_decref(doc);
}

static void test_emit_round_trip(void)
{
	round_trips("{\"a\":{\"b\":[1,[2,{\"c\":[]}],{\"d\":{}}]},\"e\":[[],{}]}",
	            "nested mappings and sequences, empty ones inside");
	round_trips("{}", "an empty object");
	round_trips("[]", "an empty array");
	round_trips("[\"true\",\"True\",\"false\",\"yes\",\"No\",\"on\",\"OFF\",\"y\",\"n\"]",
	            "strings that read as booleans");
	round_trips("[\"null\",\"Null\",\"~\",\"\",\" \"]", "strings that read as null");
	round_trips("[\"123\",\"0123\",\"-7\",\"+1\",\"0x1f\",\"0o17\",\"1e3\",\"1.5\","
	            "\".5\",\".inf\",\"-.Inf\",\".nan\",\"1_000\",\"12:30\"]",
	            "strings that read as numbers");
	round_trips("{\"true\":1,\"null\":2,\"1\":3,\"\":4,\"a: b\":5,\"- x\":6,\"#c\":7}",
	            "keys that need quoting");
	round_trips("[\"line1\\nline2\\n\",\"no final newline\\nhere\",\"trailing\\n\\n\\n\","
	            "\"\\n starts with a newline\",\"  indented\\n  block\\n\",\"tab\\there\","
	            "\"trailing space \\nline \"]",
	            "multi-line strings");
	round_trips(
	    "[\"h\\u00e9llo\",\"\\u65e5\\u672c\\u8a9e\",\"\\ud83d\\ude80 rocket\",\"\\u00a0nbsp\"]",
	    "unicode strings");
	round_trips("[9223372036854775807,-9223372036854775808,0,-1]",
	            "large and negative integers");
	round_trips("[-2.5,-0.001,1e300,-1.5e-300,0.1,3.0,123456789.125]",
	            "negative and odd reals");
	round_trips("[true,false,null,\"v1\",\"a b\",\"key: value\",\"# not a comment\","
	            "\"[x]\",\"{y}\",\"*alias\",\"&anchor\",\"!tag\",\"@at\",\"`tick\","
	            "\"%pct\",\"'single'\",\"\\\"double\\\"\",\"-\",\"---\",\"...\",\"?\"]",
	            "scalars with YAML indicators");
	round_trips("\"just a string\"", "a string as the whole document");
	round_trips("null", "null as the whole document");
	round_trips("{\"s\":\"nul\\u0000inside\"}", "a string with an embedded NUL");
}

static void test_emit_output(void)
{
	json_t *doc =
	    json_pack("{s:s, s:s, s:{s:s, s:{}}, s:[{s:i, s:b}, s, n], s:f, s:s}", "kind", "List",
	              "apiVersion", "v1", "metadata", "name", "web", "labels", "items", "replicas",
	              3, "ok", 1, "true", "real", -0.5, "log", "a\nb\n");
	char *y = NULL, deep[200] = "";
	json_t *nest = NULL;

	ok(doc && yamljson_emit(&y, doc) == 0, "emit a small document");
	is_str(y,
	       "apiVersion: v1\n"
	       "items:\n"
	       "- ok: true\n"
	       "  replicas: 3\n"
	       "- \"true\"\n"
	       "- null\n"
	       "kind: List\n"
	       "log: |\n"
	       "  a\n"
	       "  b\n"
	       "metadata:\n"
	       "  labels: {}\n"
	       "  name: web\n"
	       "real: -0.5\n",
	       "keys sorted, sequences unindented as kubectl prints, ambiguous strings quoted");
	free(y);
	json_decref(doc);

	memset(deep, '[', YAMLJSON_MAX_DEPTH + 1);
	memset(deep + YAMLJSON_MAX_DEPTH + 1, ']', YAMLJSON_MAX_DEPTH + 1);
	nest = json_loads(deep, 0, NULL);
	y = (char *)"unchanged";
	ok(nest && yamljson_emit(&y, nest) < 0 && y == NULL, "emitting too deep a tree fails");
	ok(strstr(err_msg(), "nested deeper") != NULL, "and says why: %s", err_msg());
	json_decref(nest);
}

int main(void)
{
	test_scalars();
	test_structure();
	test_errors();
	test_emit_round_trip();
	test_emit_output();
	return tap_done();
}
