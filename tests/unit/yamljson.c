/* Unit tests of lib/yamljson: scalar resolution, nesting, documents, and
 * refusal of malformed or hostile input. */
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

int main(void)
{
	test_scalars();
	test_structure();
	test_errors();
	return tap_done();
}
