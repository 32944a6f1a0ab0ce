/* Unit tests for gitd/packclosure: the closure marker's parser, its writer
 * (atomic, sorted, bound to the pack's header and trailer) and its check
 * against a pack and .idx made by hand (gitformat-pack.txt). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "packclosure.h"
#include "tap.h"

#define NOBJ 3

static const char *const hex_ids[NOBJ] = {
    "1111111111111111111111111111111111111111",
    "5555555555555555555555555555555555555555",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};
static const char pack_hex[] = "0123456789abcdef0123456789abcdef01234567";

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A pack of NOBJ one-byte "entries" (never read here) ending with the id
 * pack_hex, and its .idx v2 listing hex_ids. */
static unsigned char pack[PACKFILE_HEADER_SIZE + NOBJ + PACKFILE_ID_SIZE];
static unsigned char idx[8 + 1024 + NOBJ * 28 + 2 * PACKFILE_ID_SIZE];

static void make_pack(void)
{
	git_oid id;
	size_t at;

	memcpy(pack, "PACK", 4);
	put_be32(pack + 4, 2);
	put_be32(pack + 8, NOBJ);
	memset(pack + PACKFILE_HEADER_SIZE, 0x30, NOBJ);
	git_oid_fromstr(&id, pack_hex);
	memcpy(pack + PACKFILE_HEADER_SIZE + NOBJ, id.id, PACKFILE_ID_SIZE);

	memcpy(idx, "\377tOc\0\0\0\2", 8);
	for (int b = 0; b < 256; b++) {
		uint32_t n = 0;

		for (int i = 0; i < NOBJ; i++) {
			git_oid_fromstr(&id, hex_ids[i]);
			n += id.id[0] <= b;
		}
		put_be32(idx + 8 + 4 * b, n);
	}
	at = 8 + 1024;
	for (int i = 0; i < NOBJ; i++, at += PACKFILE_ID_SIZE) {
		git_oid_fromstr(&id, hex_ids[i]);
		memcpy(idx + at, id.id, PACKFILE_ID_SIZE);
	}
	memset(idx + at, 0, 4 * NOBJ); /* CRC32s */
	at += 4 * NOBJ;
	for (int i = 0; i < NOBJ; i++, at += 4)
		put_be32(idx + at, (uint32_t)(PACKFILE_HEADER_SIZE + i));
	memcpy(idx + at, pack + PACKFILE_HEADER_SIZE + NOBJ, PACKFILE_ID_SIZE);
	memset(idx + at + PACKFILE_ID_SIZE, 0, PACKFILE_ID_SIZE);
}

static char good[512];

static void make_good(void)
{
	snprintf(good, sizeof(good),
	         "slipway pack closure 1\npack %s\nobjects 3\ntips 2\ntip %s\ntip %s\n", pack_hex,
	         hex_ids[0], hex_ids[2]);
}

/* The marker GOOD with FROM replaced by TO, parsed: whether it is refused. */
static bool is_refused(const char *from, const char *to)
{
	struct packclosure c;
	char text[512];
	const char *at = strstr(good, from);
	int r;

	if (!at)
		return false;
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
	r = packclosure_parse(&c, text, strlen(text));
	packclosure_release(&c);
	return r < 0 && err_msg()[0];
}

static void test_parse(void)
{
	struct packclosure c;
	char hex[GIT_OID_HEXSZ + 1];

	make_good();
	ok(packclosure_parse(&c, good, strlen(good)) == 0, "a well-formed marker parses");
	is_int(c.nobjects, 3, "its object count");
	is_int(c.ntips, 2, "its tips");
	is_str(git_oid_tostr(hex, sizeof(hex), &c.tips[1]), hex_ids[2], "the second tip");
	{
		git_oid id;

		git_oid_fromstr(&id, pack_hex);
		ok(!memcmp(c.pack_id, id.id, PACKFILE_ID_SIZE), "the pack id");
	}
	packclosure_release(&c);
	ok(c.tips == NULL && c.ntips == 0, "release empties it");

	ok(is_refused("slipway pack closure 1", "slipway pack closure 2"), "another version");
	ok(is_refused("pack 0123", "pack 0A23"), "upper-case hex");
	ok(is_refused("objects 3", "objects 03"), "a count with a leading zero");
	ok(is_refused("objects 3", "objects 4294967296"), "a count past 32 bits");
	ok(is_refused("objects 3", "objects"), "a count missing");
	ok(is_refused("tips 2", "tips 0"), "no tips");
	ok(is_refused("tips 2", "tips 3"), "fewer tips than announced");
	ok(is_refused("tips 2", "tips 1"), "more tips than announced");
	ok(is_refused("tip 1111", "tip zz11"), "a tip that is not hex");
	ok(is_refused(hex_ids[2], hex_ids[0]), "a tip given twice");
	ok(is_refused("tip 1111111111111111111111111111111111111111\ntip aaaa",
	              "tip aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\ntip 1111"),
	   "tips out of order");
	ok(is_refused("aaaa\n", "aaaa\ngarbage\n") || is_refused("aaaaaaaa\n", "aaaaaaaa\nx"),
	   "bytes after the last tip");
	ok(packclosure_parse(&c, good, strlen(good) - 1) < 0, "a last line without its newline");
	ok(packclosure_parse(&c, "", 0) < 0, "an empty file");
	ok(packclosure_parse(&c, "\0\0\0", 3) < 0, "binary garbage");
}

static char dir[] = "/tmp/unit-packclosure-XXXXXX";

static size_t count_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void test_write_and_check(void)
{
	char pack_path[256], marker_path[256], text[512];
	struct packclosure c;
	struct packfile pf;
	struct stat st;
	git_oid tips[4];
	FILE *f;
	int fd;

	if (!ok(mkdtemp(dir) != NULL, "a scratch directory"))
		return;
	snprintf(pack_path, sizeof(pack_path), "%s/pack-%s.pack", dir, pack_hex);
	snprintf(marker_path, sizeof(marker_path), "%s/pack-%s.closure", dir, pack_hex);
	fd = open(pack_path, O_WRONLY | O_CREAT | O_EXCL, 0444);
	ok(fd >= 0 && write(fd, pack, sizeof(pack)) == (ssize_t)sizeof(pack) && close(fd) == 0,
	   "a pack on disk");

	git_oid_fromstr(&tips[0], hex_ids[2]);
	git_oid_fromstr(&tips[1], hex_ids[0]);
	git_oid_fromstr(&tips[2], hex_ids[2]);
	git_oid_fromstr(&tips[3], hex_ids[0]);
	ok(packclosure_write(pack_path, tips, 4) == 0, "the marker is written");
	f = fopen(marker_path, "r");
	memset(text, 0, sizeof(text));
	ok(f && fread(text, 1, sizeof(text) - 1, f) > 0, "it is beside the pack");
	if (f)
		fclose(f);
	is_str(text, good, "it holds the pack's id and count and the tips sorted, once each");
	ok(stat(marker_path, &st) == 0 && (st.st_mode & 0777) == 0444, "it is read-only");
	is_int(count_files(), 2, "no temporary file is left");

	ok(packclosure_load(&c, marker_path) == 0, "it loads");
	ok(packfile_open_memory(&pf, idx, sizeof(idx), pack, sizeof(pack)) == 0,
	   "the pack and .idx made by hand open");
	ok(packclosure_check(&c, &pf) == 0, "the marker matches its pack");
	c.nobjects = 4;
	ok(packclosure_check(&c, &pf) < 0 && strstr(err_msg(), "counts 4 objects"),
	   "a marker counting other objects does not");
	c.nobjects = 3;
	c.pack_id[0] ^= 1;
	ok(packclosure_check(&c, &pf) < 0 && strstr(err_msg(), "another pack"),
	   "a marker of another pack does not");
	c.pack_id[0] ^= 1;
	git_oid_fromstr(&c.tips[1], "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	ok(packclosure_check(&c, &pf) < 0 && strstr(err_msg(), "is not in the pack"),
	   "a marker with a tip outside the pack does not");
	packfile_close(&pf);
	packclosure_release(&c);

	ok(packclosure_write(pack_path, tips, 0) < 0, "no tips are refused");
	ok(packclosure_write(marker_path, tips, 1) < 0 && strstr(err_msg(), "not named *.pack"),
	   "a path not naming a pack is refused");
	snprintf(text, sizeof(text), "%s/pack-missing.pack", dir);
	ok(packclosure_write(text, tips, 1) < 0 && strstr(err_msg(), "cannot read"),
	   "a missing pack is refused");
	is_int(count_files(), 2, "and refusals leave nothing behind");
	snprintf(text, sizeof(text), "%s/pack-missing.closure", dir);
	is_int(packclosure_load(&c, text), PACKCLOSURE_ENOTFOUND, "a missing marker is not found");

	unlink(marker_path);
	unlink(pack_path);
	rmdir(dir);
}

int main(void)
{
	make_pack();
	test_parse();
	test_write_and_check();
	return tap_done();
}
