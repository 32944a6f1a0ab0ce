/* packclosure: reads, checks and writes the marker that says a pack holds
 * exactly the objects reachable from a set of tips (format in
 * packclosure.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "packclosure.h"
#include "banned.h"

#define HEX_SIZE (2 * PACKFILE_ID_SIZE)

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 40 lowercase hex digits at P into OUT. */
static bool parse_hex_id(unsigned char *out, const char *p)
{
	for (size_t i = 0; i < PACKFILE_ID_SIZE; i++) {
		int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static void format_hex_id(char *out, const unsigned char *id)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < PACKFILE_ID_SIZE; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
}

/* The next line of [*P, END) without its "\n" into *LINE and *LEN. */
static bool next_line(const char **line, size_t *len, const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));

	if (!nl)
		return false;
	*line = *p;
	*len = (size_t)(nl - *p);
	*p = nl + 1;
	return true;
}

/* "KEYWORD N" with N decimal, 1 to 10 digits, no leading zero, at most MAX. */
static bool parse_count(uint64_t *out, const char *line, size_t len, const char *keyword,
                        uint64_t max)
{
	size_t k = strlen(keyword);
	uint64_t v = 0;

	if (len <= k + 1 || len > k + 11 || memcmp(line, keyword, k) || line[k] != ' ' ||
	    (line[k + 1] == '0' && len > k + 2))
		return false;
	for (size_t i = k + 1; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

int packclosure_parse(struct packclosure *out, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *line;
	size_t n;
	uint64_t count;

	memset(out, 0, sizeof(*out));
	if (!next_line(&line, &n, &p, end) || n != strlen(PACKCLOSURE_MAGIC) ||
	    memcmp(line, PACKCLOSURE_MAGIC, n))
		return err_set("pack closure marker: not a '%s' file", PACKCLOSURE_MAGIC);
	if (!next_line(&line, &n, &p, end) || n != 5 + HEX_SIZE || memcmp(line, "pack ", 5) ||
	    !parse_hex_id(out->pack_id, line + 5))
		return err_set("pack closure marker: bad pack line");
	if (!next_line(&line, &n, &p, end) || !parse_count(&count, line, n, "objects", UINT32_MAX))
		return err_set("pack closure marker: bad objects line");
	out->nobjects = (uint32_t)count;
	if (!next_line(&line, &n, &p, end) ||
	    !parse_count(&count, line, n, "tips", PACKCLOSURE_TIPS_MAX) || !count)
		return err_set("pack closure marker: bad tips line");
	/* each tip line takes 45 bytes: no more tips than the bytes left hold */
	if (count > (uint64_t)(end - p) / (5 + HEX_SIZE))
		return err_set("pack closure marker: %llu tips announced, fewer given",
		               (unsigned long long)count);
	if (!(out->tips = calloc((size_t)count, sizeof(*out->tips))))
		return err_set("out of memory");
	for (; out->ntips < count; out->ntips++) {
		git_oid *t = &out->tips[out->ntips];

		if (!next_line(&line, &n, &p, end) || n != 4 + HEX_SIZE ||
		    memcmp(line, "tip ", 4) || !parse_hex_id(t->id, line + 4)) {
			err_set("pack closure marker: bad tip line %zu", out->ntips + 1);
			goto fail;
		}
		if (out->ntips && git_oid_cmp(&out->tips[out->ntips - 1], t) >= 0) {
			err_set("pack closure marker: tips not sorted or repeated at line %zu",
			        out->ntips + 1);
			goto fail;
		}
	}
	if (p != end) {
		err_set("pack closure marker: bytes after the last tip");
		goto fail;
	}
	return 0;
fail:
	packclosure_release(out);
	return -1;
}

int packclosure_load(struct packclosure *out, const char *path)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd, ret = -1;

	memset(out, 0, sizeof(*out));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT) {
			err_set("%s: no such file", path);
			return PACKCLOSURE_ENOTFOUND;
		}
		return err_set("cannot open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		err_set("cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)PACKCLOSURE_FILE_MAX) {
		err_set("%s: not a regular file of at most %zu bytes", path,
		        (size_t)PACKCLOSURE_FILE_MAX);
		goto out;
	}
	if (!(data = malloc((size_t)st.st_size + 1))) {
		err_set("out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err_set("cannot read %s: %s", path, r < 0 ? strerror(errno) : "it shrank");
			goto out;
		}
		got += (size_t)r;
	}
	if (packclosure_parse(out, data, got) < 0) {
		err_set("%s: %s", path, err_msg());
		goto out;
	}
	ret = 0;
out:
	free(data);
	close(fd);
	return ret;
}

int packclosure_check(const struct packclosure *c, const struct packfile *pack)
{
	const unsigned char *trailer = pack->pack_bytes + pack->pack_size - PACKFILE_ID_SIZE;
	/* .idx v2 ends with the pack's checksum, then its own */
	const unsigned char *idx_copy = pack->idx.data + pack->idx.size - 2 * PACKFILE_ID_SIZE;
	char hex[HEX_SIZE + 1];

	if (memcmp(trailer, c->pack_id, PACKFILE_ID_SIZE) ||
	    memcmp(idx_copy, c->pack_id, PACKFILE_ID_SIZE))
		return err_set("pack closure marker names another pack");
	if (pack->idx.nobjects != c->nobjects)
		return err_set("pack closure marker counts %u objects, the pack %u", c->nobjects,
		               pack->idx.nobjects);
	for (size_t i = 0; i < c->ntips; i++)
		if (packfile_idx_find(&pack->idx, c->tips[i].id) < 0)
			return err_set("pack closure marker: tip %s is not in the pack",
			               git_oid_tostr(hex, sizeof(hex), &c->tips[i]));
	return 0;
}

static int compare_oids(const void *a, const void *b)
{
	return git_oid_cmp(a, b);
}

/* Reads exactly N bytes at OFFSET of FD into BUF. */
static bool read_at(int fd, unsigned char *buf, size_t n, off_t offset)
{
	while (n) {
		ssize_t r = pread(fd, buf, n, offset);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		buf += r;
		n -= (size_t)r;
		offset += r;
	}
	return true;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

int packclosure_write(const char *pack_path, const git_oid *tips, size_t ntips)
{
	unsigned char header[PACKFILE_HEADER_SIZE], trailer[PACKFILE_ID_SIZE];
	char path[PATH_MAX], tmp[PATH_MAX], hex[HEX_SIZE + 1];
	size_t len = strlen(pack_path), ndistinct = 0, at = 0, cap;
	git_oid *sorted = NULL;
	char *text = NULL;
	struct stat st;
	int fd = -1, out_fd = -1, ret = -1;
	bool has_tmp = false;
	int n;

	if (len < 5 || strcmp(pack_path + len - 5, ".pack"))
		return err_set("pack closure marker: %s is not named *.pack", pack_path);
	if (!ntips || ntips > PACKCLOSURE_TIPS_MAX)
		return err_set("pack closure marker: %zu tips, not 1 to %d", ntips,
		               PACKCLOSURE_TIPS_MAX);
	if ((size_t)snprintf(path, sizeof(path), "%.*s%s", (int)(len - 5), pack_path,
	                     PACKCLOSURE_SUFFIX) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp))
		return err_set("pack closure marker: path too long: %s", pack_path);
	if ((fd = open(pack_path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		err_set("pack closure marker: cannot read %s: %s", pack_path, strerror(errno));
		goto out;
	}
	if (st.st_size < PACKFILE_HEADER_SIZE + PACKFILE_ID_SIZE ||
	    !read_at(fd, header, sizeof(header), 0) ||
	    !read_at(fd, trailer, sizeof(trailer), st.st_size - PACKFILE_ID_SIZE) ||
	    memcmp(header, "PACK", 4)) {
		err_set("pack closure marker: %s is not a pack", pack_path);
		goto out;
	}
	if (!(sorted = malloc(ntips * sizeof(*sorted)))) {
		err_set("out of memory");
		goto out;
	}
	memcpy(sorted, tips, ntips * sizeof(*sorted));
	qsort(sorted, ntips, sizeof(*sorted), compare_oids);
	for (size_t i = 0; i < ntips; i++)
		if (!ndistinct || git_oid_cmp(&sorted[ndistinct - 1], &sorted[i]))
			sorted[ndistinct++] = sorted[i];
	cap = 128 + ndistinct * (5 + HEX_SIZE);
	if (!(text = malloc(cap))) {
		err_set("out of memory");
		goto out;
	}
	format_hex_id(hex, trailer);
	hex[HEX_SIZE] = '\0';
	n = snprintf(text, cap, "%s\npack %s\nobjects %u\ntips %zu\n", PACKCLOSURE_MAGIC, hex,
	             (unsigned)header[8] << 24 | (unsigned)header[9] << 16 |
	                 (unsigned)header[10] << 8 | header[11],
	             ndistinct);
	if (n < 0 || (size_t)n >= cap) {
		err_set("pack closure marker: header too long");
		goto out;
	}
	at = (size_t)n;
	for (size_t i = 0; i < ndistinct; i++) {
		memcpy(text + at, "tip ", 4);
		format_hex_id(text + at + 4, sorted[i].id);
		text[at + 4 + HEX_SIZE] = '\n';
		at += 5 + HEX_SIZE;
	}
	if ((out_fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		err_set("pack closure marker: cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	has_tmp = true;
	if (!write_all(out_fd, text, at) || fchmod(out_fd, 0444) < 0 || fsync(out_fd) < 0) {
		err_set("pack closure marker: cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(out_fd) < 0) {
		out_fd = -1;
		err_set("pack closure marker: cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	out_fd = -1;
	if (rename(tmp, path) < 0) {
		err_set("pack closure marker: cannot rename %s to %s: %s", tmp, path,
		        strerror(errno));
		goto out;
	}
	has_tmp = false;
	ret = 0;
out:
	if (out_fd >= 0)
		close(out_fd);
	if (has_tmp)
		unlink(tmp);
	if (fd >= 0)
		close(fd);
	free(text);
	free(sorted);
	return ret;
}

void packclosure_release(struct packclosure *c)
{
	free(c->tips);
	memset(c, 0, sizeof(*c));
}
