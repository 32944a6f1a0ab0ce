/* libFuzzer target: gitd/indexpack over untrusted bytes. An even first byte
 * makes the rest a delta applied to a base: the second byte is the base's
 * length, the base follows, then the delta data. An odd first byte makes
 * the rest a pack without its trailer (its second byte picks the thread
 * count): what packfile_check passes is indexed by indexpack_run, which
 * either writes an index, finds the pack thin, or refuses it with a reason,
 * and never reads or writes out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "indexpack.h"
#include "packfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void apply(const uint8_t *p, size_t n)
{
	unsigned char *out = NULL;
	size_t base_len, out_size = 0;

	if (n < 1 || (base_len = p[0]) > n - 1)
		return;
	if (indexpack_delta_apply(&out, &out_size, p + 1, base_len, p + 1 + base_len,
	                          n - 1 - base_len, 1 << 20) == 0) {
		uint64_t base_size, result_size;

		if (packfile_delta_sizes(&base_size, &result_size, p + 1 + base_len,
		                         n - 1 - base_len) <= 0 ||
		    base_size != base_len || result_size != out_size)
			abort();
		if (out_size)
			out[out_size - 1] ^= 1; /* all of it is ours to write */
	} else if (out) {
		abort();
	}
	free(out);
}

static char dir[] = "/tmp/fuzz-indexpack-XXXXXX";

static void index_pack(const uint8_t *p, size_t n, int nthreads)
{
	static struct packfile_check c;
	static unsigned char pack[65536 + 20];
	struct indexpack_opts opts = {.nthreads = nthreads};
	struct indexpack_result res;
	char path[256];
	FILE *f;
	int rc;

	if (n > 65536 || packfile_check_init(&c, 1 << 20) < 0)
		return;
	memcpy(pack, p, n);
	memset(pack + n, 0xab, 20); /* the trailer: pack_end checks it, not indexpack */
	packfile_check_keep_offsets(&c);
	if (packfile_check_add(&c, pack, n + 20) < 0 || !packfile_check_is_done(&c) ||
	    c.entry_offset != n)
		goto out;
	snprintf(path, sizeof(path), "%s/tmp_pack", dir);
	f = fopen(path, "wb");
	if (!f || fwrite(pack, 1, n + 20, f) != n + 20 || fclose(f) != 0)
		abort();
	rc = indexpack_run(&res, dir, path, c.offsets, c.noffsets, &opts);
	if (rc == 0) {
		if (res.nobjects != c.noffsets)
			abort();
		snprintf(path, sizeof(path), "%s/%s.pack", dir, res.pack_name);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s.idx", dir, res.pack_name);
		unlink(path);
	} else if (rc != INDEXPACK_ETHIN && !res.reason[0]) {
		abort();
	}
	snprintf(path, sizeof(path), "%s/tmp_pack", dir);
	unlink(path);
out:
	packfile_check_release(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool has_dir;

	if (size < 2)
		return 0;
	if (!(data[0] & 1)) {
		apply(data + 1, size - 1);
		return 0;
	}
	if (!has_dir) {
		if (!mkdtemp(dir))
			abort();
		has_dir = true;
	}
	index_pack(data + 2, size - 2, 1 + data[1] % 3);
	return 0;
}
