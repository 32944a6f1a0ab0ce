/* slipway-post-render: a Helm --post-renderer. Reads the chart Helm rendered
 * on stdin, sets the images a push just built (by digest) on the workloads'
 * containers with manifests_set_images_stream, and writes the result on
 * stdout, so the chart's placeholder image never reaches the cluster. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "manifests.h"
#include "banned.h"

/* The most images one file lists: gitd builds at most 100 Deployments of
 * 50 containers (remote.h). */
#define IMAGES_MAX 5000

static const char usage_text[] =
    "usage: slipway-post-render IMAGES-FILE [REPORT-FILE]\n"
    "\n"
    "A Helm post-renderer (helm install/upgrade --post-renderer): reads the\n"
    "rendered chart, multi-document YAML, on stdin and writes it on stdout with\n"
    "the built images set on the workloads' containers.\n"
    "\n"
    "  IMAGES-FILE   a JSON array of {\"deployment\": NAME, \"container\": NAME,\n"
    "                \"image\": REF}: the image REF is set on the container (or\n"
    "                init container) NAME of every Deployment, StatefulSet,\n"
    "                DaemonSet, Job or CronJob named NAME. gitd writes it with the\n"
    "                images a push built, by digest\n"
    "  REPORT-FILE   written (replaced) with the same array, each entry with\n"
    "                \"matched\": how many rendered objects got the image (0: the\n"
    "                chart does not render that workload or container)\n"
    "  -h, --help    this text\n"
    "\n"
    "Every document is written back as YAML, each starting with \"---\";\n"
    "comments and empty documents are dropped. Nothing else changes.\n"
    "\n"
    "Example:\n"
    "  helm upgrade --install www ./chart \\\n"
    "      --post-renderer /usr/local/bin/slipway-post-render \\\n"
    "      --post-renderer-args /tmp/run/images.json\n"
    "\n"
    "exit status: 0 done; 1 the input or IMAGES-FILE is malformed, or a file\n"
    "cannot be read or written (the message is on stderr; nothing is written\n"
    "on stdout); 2 usage error.\n";

/* Reads IMAGES-FILE into *OUT (caller json_decref()s), checked. */
static int load_images(json_t **out, const char *path)
{
	json_error_t jerr;
	json_t *list, *e;
	size_t i;

	*out = NULL;
	list = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!list && jerr.line < 1)
		return err_set("%s", jerr.text); /* jansson names the file */
	if (!list)
		return err_set("%s: line %d: %s", path, jerr.line, jerr.text);
	if (!json_is_array(list)) {
		json_decref(list);
		return err_set("%s: not a JSON array", path);
	}
	if (json_array_size(list) > IMAGES_MAX) {
		json_decref(list);
		return err_set("%s: more than %d images", path, IMAGES_MAX);
	}
	json_array_foreach(list, i, e)
	{
		const char *keys[] = {"deployment", "container", "image"};

		for (size_t k = 0; k < 3; k++) {
			const char *s = json_string_value(json_object_get(e, keys[k]));

			if (!s || !*s) {
				json_decref(list);
				return err_set("%s: item %zu: %s is missing or not a string", path,
				               i, keys[k]);
			}
		}
	}
	*out = list;
	return 0;
}

/* Reads all of FD into B (bounded by B's maximum). */
static int read_all(struct buf *b, int fd)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set("cannot read stdin: %s", strerror(errno));
		if (n == 0)
			return 0;
		if (buf_add(b, chunk, (size_t)n) < 0)
			return err_set("stdin: more than %d bytes", MANIFESTS_MAX_BYTES);
	}
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set("cannot write stdout: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes LIST with each entry's "matched" from IMAGES to PATH. */
static int write_report(const char *path, json_t *list, const struct manifests_image *images)
{
	json_t *e;
	size_t i;

	json_array_foreach(list, i, e)
	{
		if (json_object_set_new(e, "matched", json_integer((json_int_t)images[i].matched)) <
		    0)
			return err_set("out of memory");
	}
	if (json_dump_file(list, path, JSON_COMPACT) < 0)
		return err_set("cannot write %s", path);
	return 0;
}

int main(int argc, char **argv)
{
	struct manifests_image *images = NULL;
	json_t *list = NULL, *e;
	char *out = NULL;
	struct buf in;
	size_t i, n;
	int ret = 1;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 2 || argc > 3 || argv[1][0] == '-') {
		fputs("slipway-post-render: expected IMAGES-FILE [REPORT-FILE]\n"
		      "Try 'slipway-post-render --help'.\n",
		      stderr);
		return 2;
	}
	buf_init(&in, MANIFESTS_MAX_BYTES);
	if (load_images(&list, argv[1]) < 0)
		goto out;
	n = json_array_size(list);
	images = calloc(n ? n : 1, sizeof(*images));
	if (!images) {
		err_set("out of memory");
		goto out;
	}
	json_array_foreach(list, i, e)
	{
		images[i].workload = json_string_value(json_object_get(e, "deployment"));
		images[i].container = json_string_value(json_object_get(e, "container"));
		images[i].image = json_string_value(json_object_get(e, "image"));
	}
	if (read_all(&in, STDIN_FILENO) < 0)
		goto out;
	if (manifests_set_images_stream(&out, buf_str(&in), in.len, images, n) < 0)
		goto out;
	if (argc == 3 && write_report(argv[2], list, images) < 0)
		goto out;
	if (write_all(STDOUT_FILENO, out, strlen(out)) < 0)
		goto out;
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "slipway-post-render: %s\n", err_msg());
	free(out);
	free(images);
	json_decref(list);
	buf_release(&in);
	return ret;
}
