/* source: fetch a source tarball with libcurl, unpack it with libarchive in a
 * child process that works inside the target directory (see source.h). */
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "source.h"
#include "err.h"
#include "banned.h"

/* ---- fetch ------------------------------------------------------------- */

const char *source_url_redact(char *buf, size_t size, const char *url)
{
	const char *sep = strstr(url, "://"), *auth, *host, *at, *rest;
	size_t auth_len;

	if (!sep) {
		snprintf(buf, size, "%.*s", (int)strcspn(url, "?#"), url);
		return buf;
	}
	auth = sep + 3;
	auth_len = strcspn(auth, "/?#");
	at = memrchr(auth, '@', auth_len);
	host = at ? at + 1 : auth;
	rest = auth + auth_len;
	snprintf(buf, size, "%.*s%.*s%.*s", (int)(auth - url), url, (int)(rest - host), host,
	         (int)strcspn(rest, "?#"), rest);
	return buf;
}

struct fetch {
	int fd;                              /* the file being written */
	uint64_t written, max;               /* bytes so far, limit */
	const volatile sig_atomic_t *cancel; /* may be NULL */
	bool too_big;                        /* stopped at the limit */
	int write_errno;                     /* stopped by a write error */
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t total = size * nmemb, done = 0;

	if (total > f->max - f->written) {
		f->too_big = true;
		return 0;
	}
	while (done < total) {
		ssize_t n = write(f->fd, p + done, total - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			f->write_errno = errno;
			return 0;
		}
		done += (size_t)n;
	}
	f->written += total;
	return total;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct fetch *f = arg;

	return f->cancel && *f->cancel;
}

int source_fetch(const char *url, const char *token, const char *path, uint64_t max_bytes,
                 long timeout_ms, const volatile sig_atomic_t *cancel)
{
	struct fetch f = {.fd = -1, .max = max_bytes, .cancel = cancel};
	char shown[512], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL;
	char *auth = NULL;
	size_t auth_len;
	CURL *h = NULL;
	long code = 0;
	bool created = false;
	CURLcode rc;
	int ret = -1;

	source_url_redact(shown, sizeof(shown), url);
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		err_set("source URL %s: only http:// and https:// are supported", shown);
		goto out;
	}
	auth_len = strcspn(strstr(url, "://") + 3, "/?#");
	if (memchr(strstr(url, "://") + 3, '@', auth_len)) {
		err_set("source URL %s: credentials in the URL are refused (use a token file)",
		        shown);
		goto out;
	}
	f.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f.fd < 0) {
		err_set("cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	created = true;
	h = curl_easy_init();
	if (!h || (token && asprintf(&auth, "Authorization: Bearer %s", token) < 0) ||
	    (auth && !(headers = curl_slist_append(NULL, auth)))) {
		err_set("out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "slipway-builder");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &f);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (f.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		err_set("source URL %s: larger than %llu bytes", shown,
		        (unsigned long long)max_bytes);
		goto out;
	}
	if (f.write_errno) {
		err_set("cannot write %s: %s", path, strerror(f.write_errno));
		goto out;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		err_set("source URL %s: cancelled", shown);
		goto out;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		err_set("source URL %s: timed out", shown);
		goto out;
	}
	if (rc != CURLE_OK) {
		err_set("source URL %s: %s", shown, *errbuf ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	if (code != 200) {
		err_set("source URL %s: HTTP status %ld", shown, code);
		goto out;
	}
	if (close(f.fd) < 0) {
		f.fd = -1;
		err_set("cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	f.fd = -1;
	ret = 0;
out:
	if (f.fd >= 0)
		close(f.fd);
	if (ret < 0 && created)
		unlink(path);
	if (h)
		curl_easy_cleanup(h);
	if (headers) {
		explicit_bzero(headers->data, strlen(headers->data));
		curl_slist_free_all(headers);
	}
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	return ret;
}

/* ---- extract ----------------------------------------------------------- */

/* libarchive's own guards (archive_write_disk(3)); no owners, modes with
 * set-id bits, ACLs, xattrs or file flags are restored. */
#define EXTRACT_FLAGS                                                                              \
	(ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |                       \
	 ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_TIME)

/* Copies NAME into BUF for a message: control characters become '?'. */
static const char *shown_name(char *buf, size_t size, const char *name)
{
	size_t i;

	if (!name)
		name = "(unnamed)";
	for (i = 0; name[i] && i + 1 < size; i++)
		buf[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
	buf[i] = '\0';
	return buf;
}

static bool has_dotdot(const char *name)
{
	for (const char *p = name; *p;) {
		size_t len = strcspn(p, "/");

		if (len == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += len;
		while (*p == '/')
			p++;
	}
	return false;
}

/* Our own check of one entry, before libarchive's: clearer messages, and a
 * second guard should a flag ever be lost. */
static int check_entry(struct archive_entry *e, const char *label)
{
	const char *name = archive_entry_pathname(e), *link = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);
	char shown[256];

	if (!name || !*name)
		return err_set("source archive %s: an entry has no usable name", label);
	shown_name(shown, sizeof(shown), name);
	if (name[0] == '/')
		return err_set("source archive %s: entry \"%s\" has an absolute name: refused",
		               label, shown);
	if (has_dotdot(name))
		return err_set("source archive %s: entry \"%s\" leads outside the archive "
		               "(\"..\"): refused",
		               label, shown);
	if (link && (link[0] == '/' || has_dotdot(link)))
		return err_set("source archive %s: hard link \"%s\" points outside the archive: "
		               "refused",
		               label, shown);
	if (!link && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		return err_set("source archive %s: entry \"%s\" is not a file, directory or link: "
		               "refused",
		               label, shown);
	return 0;
}

static int copy_data(struct archive *in, struct archive *out, const char *label, const char *name)
{
	const void *block;
	size_t size;
	la_int64_t offset;
	char shown[256];
	int r;

	while ((r = archive_read_data_block(in, &block, &size, &offset)) == ARCHIVE_OK)
		if (archive_write_data_block(out, block, size, offset) < ARCHIVE_OK)
			return err_set("source archive %s: entry \"%s\": %s", label,
			               shown_name(shown, sizeof(shown), name),
			               archive_error_string(out));
	if (r != ARCHIVE_EOF)
		return err_set("source archive %s: entry \"%s\": %s", label,
		               shown_name(shown, sizeof(shown), name), archive_error_string(in));
	return 0;
}

/* In the child, with the working directory set to the target. */
static int extract_here(int fd, const char *label, uint64_t max_bytes, uint64_t max_entries)
{
	struct archive *in = archive_read_new(), *out = archive_write_disk_new();
	uint64_t bytes = 0, entries = 0;
	struct archive_entry *e;
	char shown[256];
	int r, ret = -1;

	if (!in || !out) {
		err_set("out of memory");
		goto out;
	}
	/* ARCHIVE_WARN here would mean an external program: not wanted */
	if (archive_read_support_format_tar(in) != ARCHIVE_OK ||
	    archive_read_support_filter_gzip(in) != ARCHIVE_OK) {
		err_set("libarchive lacks built-in tar or gzip support");
		goto out;
	}
	archive_write_disk_set_options(out, EXTRACT_FLAGS);
	if (archive_read_open_fd(in, fd, 65536) != ARCHIVE_OK) {
		err_set("source archive %s: %s", label, archive_error_string(in));
		goto out;
	}
	while ((r = archive_read_next_header(in, &e)) != ARCHIVE_EOF) {
		const char *name;

		if (r < ARCHIVE_WARN) {
			err_set("source archive %s: %s", label, archive_error_string(in));
			goto out;
		}
		if (++entries > max_entries) {
			err_set("source archive %s: more than %llu entries", label,
			        (unsigned long long)max_entries);
			goto out;
		}
		if (check_entry(e, label) < 0)
			goto out;
		name = archive_entry_pathname(e);
		if (archive_entry_size(e) > 0 &&
		    (uint64_t)archive_entry_size(e) > max_bytes - bytes) {
			err_set("source archive %s: more than %llu bytes of files", label,
			        (unsigned long long)max_bytes);
			goto out;
		}
		if (archive_entry_size(e) > 0)
			bytes += (uint64_t)archive_entry_size(e);
		if (archive_write_header(out, e) < ARCHIVE_WARN) {
			err_set("source archive %s: entry \"%s\": %s", label,
			        shown_name(shown, sizeof(shown), name), archive_error_string(out));
			goto out;
		}
		if (archive_entry_size(e) > 0 && copy_data(in, out, label, name) < 0)
			goto out;
		if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
			err_set("source archive %s: entry \"%s\": %s", label,
			        shown_name(shown, sizeof(shown), name), archive_error_string(out));
			goto out;
		}
	}
	if (archive_write_close(out) < ARCHIVE_WARN) {
		err_set("source archive %s: %s", label, archive_error_string(out));
		goto out;
	}
	ret = 0;
out:
	if (out)
		archive_write_free(out);
	if (in)
		archive_read_free(in);
	return ret;
}

int source_extract(const char *tarball, const char *label, const char *dir, uint64_t max_bytes,
                   uint64_t max_entries)
{
	char msg[ERR_MAX];
	int pfd[2] = {-1, -1}, fd = -1, status, ret = -1;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	fd = open(tarball, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set("source archive %s: %s", label, strerror(errno));
		goto out;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		err_set("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err_set("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* the parser of untrusted bytes: confined to DIR, and its files to
		 * the size limit even if a guard failed */
		struct rlimit fsize = {max_bytes + 1, max_bytes + 1};

		close(pfd[0]);
		umask(022);
		setrlimit(RLIMIT_FSIZE, &fsize);
		signal(SIGXFSZ, SIG_IGN);
		if (chdir(dir) < 0)
			err_set("cannot enter %s: %s", dir, strerror(errno));
		else if (extract_here(fd, label, max_bytes, max_entries) == 0)
			_exit(0);
		if (write(pfd[1], err_msg(), strlen(err_msg())) < 0)
			_exit(2);
		_exit(1);
	}
	close(pfd[1]);
	pfd[1] = -1;
	while (got < sizeof(msg) - 1) {
		n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	msg[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		ret = 0;
	else if (got)
		err_set("%s", msg);
	else
		err_set("source archive %s: the unpacking process failed (status %d)", label,
		        status);
out:
	if (fd >= 0)
		close(fd);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return ret;
}
