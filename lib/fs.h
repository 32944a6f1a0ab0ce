/* fs: file-system helpers the programs share. */
#ifndef SLIP_FS_H
#define SLIP_FS_H

#include <stddef.h>

/* Removes PATH and everything below it, like "rm -rf" but staying on PATH's
 * device (a mount inside is left alone and makes the call fail) and never
 * following symbolic links. A missing PATH is success. Returns 0, or -1 with
 * err_msg() naming PATH and the first errno. */
int fs_remove_tree(const char *path);

/* Writes all N bytes at P (borrowed) to FD, retrying after EINTR and short
 * writes. Returns 0, or -1 with errno set (EIO when write() wrote nothing);
 * err_msg() is left alone, for the caller to name FD's file. */
int fs_write_all(int fd, const void *p, size_t n);

#endif
