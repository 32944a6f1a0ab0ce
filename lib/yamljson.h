/* yamljson: YAML documents to jansson JSON trees, with libyaml's event parser,
 * and JSON trees back to YAML, with its event emitter.
 *
 * For kubeconfigs and manifests, so the subset is what Kubernetes YAML uses:
 * mappings, sequences and scalars. Plain scalars resolve as YAML 1.1 does in
 * sigs.k8s.io/yaml: null, ~ and empty are null; true/false/yes/no/on/off
 * (in lower, Title or UPPER case) are booleans; decimal, 0x and 0o integers
 * and decimal floats (with .inf/.nan) are numbers; anything else, and every
 * quoted or !!str-tagged scalar, is a string. Mapping keys must be scalars
 * and become strings. Anchors and aliases are refused (an alias can blow a
 * small document up exponentially). Nesting deeper than YAMLJSON_MAX_DEPTH is
 * refused. */
#ifndef SLIP_YAMLJSON_H
#define SLIP_YAMLJSON_H

#include <stddef.h>
#include <jansson.h>

#define YAMLJSON_MAX_DEPTH 64
/* Largest YAML text yamljson_emit writes (a big List of API objects). */
#define YAMLJSON_EMIT_MAX (64 * 1024 * 1024)

/* Parses the first document of BUF (LEN bytes) into *OUT (caller frees with
 * json_decref). An empty stream gives JSON null. Returns 0, or -1 with
 * err_msg() "yaml: line L column C: PROBLEM" (1-based). */
int yamljson_load(json_t **out, const char *buf, size_t len);

/* Parses every document of BUF into *OUT, a JSON array with one element per
 * document (empty documents, e.g. between two "---", are skipped). Caller
 * frees. Returns 0 or -1 as yamljson_load. */
int yamljson_load_all(json_t **out, const char *buf, size_t len);

/* Like yamljson_load_all, but keeps empty documents as JSON null, so that
 * element I of *OUT is document I + 1 of the stream (for messages that point
 * into a multi-document file). A stream of only comments has no documents. */
int yamljson_load_documents(json_t **out, const char *buf, size_t len);

/* Writes DOC as one YAML document (block style, 2-space indent, no "---")
 * into *OUT, a NUL-terminated string the caller frees with free(). Mapping
 * keys come sorted by byte order, as kubectl -o yaml prints them. Integers,
 * reals, true, false and null are plain scalars; a string is plain when
 * yamljson_load, or a YAML 1.1/1.2 reader such as PyYAML or go-yaml, would
 * read it back as that same string, a literal block ("|") when it has line
 * breaks, and double-quoted otherwise ("true", "null", "0123", "", "1e3",
 * "~", "yes"...), so yamljson_load of the result is json_equal to DOC. Empty
 * objects and arrays are "{}" and "[]". Returns 0, or -1 with err_msg() when
 * DOC is nested deeper than YAMLJSON_MAX_DEPTH, the text would exceed
 * YAMLJSON_EMIT_MAX, or memory runs out (*OUT stays NULL). */
int yamljson_emit(char **out, const json_t *doc);

#endif
