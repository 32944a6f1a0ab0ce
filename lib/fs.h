/* fs: file-system helpers the programs share. */
#ifndef SLIP_FS_H
#define SLIP_FS_H

/* Removes PATH and everything below it, like "rm -rf" but staying on PATH's
 * device (a mount inside is left alone and makes the call fail) and never
 * following symbolic links. A missing PATH is success. Returns 0, or -1 with
 * err_msg() naming PATH and the first errno. */
int fs_remove_tree(const char *path);

#endif
