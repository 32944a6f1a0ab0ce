/* fs: writing a whole buffer, and recursive removal without following
 * symbolic links, relative to directory descriptors so that a rename during
 * the walk cannot redirect it. */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "banned.h"

/* Removes NAME under directory AT and everything below it, staying on
 * device DEV. Returns 0 or -1 (errno of the first failure kept in *ERR). */
static int remove_at(int at, const char *name, dev_t dev, int *err)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : (*err = errno, -1);
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) < 0 ? (*err = errno, -1) : 0;
	if (st.st_dev != dev)
		return (*err = EXDEV, -1);
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		*err = errno;
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    remove_at(fd, de->d_name, dev, err) < 0)
			ret = -1;
	closedir(d);
	if (ret == 0 && unlinkat(at, name, AT_REMOVEDIR) < 0) {
		*err = errno;
		ret = -1;
	}
	return ret;
}

int fs_remove_tree(const char *path)
{
	struct stat st;
	int err = 0;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_set("cannot remove %s: %s", path, strerror(errno));
	if (remove_at(AT_FDCWD, path, st.st_dev, &err) < 0)
		return err_set("cannot remove %s: %s", path, strerror(err));
	return 0;
}

int fs_write_all(int fd, const void *p, size_t n)
{
	const unsigned char *at = p;

	while (n) {
		ssize_t w = write(fd, at, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		at += w;
		n -= (size_t)w;
	}
	return 0;
}
