/*
 * file_ops — the careful file-system steps the file kinds share: write
 * through a hidden temp file with fsync before the rename, rename without
 * replacing, move across file systems, fsync a directory so a rename
 * survives a crash. Every function returns 0 or a negative errno, so the
 * caller can tell "disk full" from "exists" and decide retry or dead letter.
 */
#ifndef SIDECAR_FILE_OPS_H
#define SIDECAR_FILE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Prefix of every temp file we create; such names are never picked up. */
#define FILE_TEMP_PREFIX ".tmp-"

int file_fsync_dir(const char *path);

/* mkdir -p: creates missing directories with mode. */
int file_mkdirs(const char *path, mode_t mode);

/* Renames from → to unless `to` exists (-EEXIST). Atomic where the file
 * system supports RENAME_NOREPLACE or hard links; else checks, then renames. */
int file_rename_noreplace(const char *from, const char *to);

/* Moves the file `from` to dir/name (replacing), copying when dir is on
 * another file system; fsyncs dir. */
int file_move_into(const char *from, const char *dir, const char *name);

/* The name to file something under in dir: `name` when free, else
 * "name.<alt>" (so yesterday's export.csv is never replaced). Either leaves
 * `reserve` bytes for a suffix within NAME_MAX (".error" beside it): a name
 * too long for that is cut, on a UTF-8 boundary, before ".<alt>". Caller frees. */
char *file_pick_name(const char *dir, const char *name, const char *alt, size_t reserve);

/* Writes all of data to fd (retrying short writes). */
int file_write_all(int fd, const void *data, size_t len);

/* Creates a new hidden temp file in dir ("<dir>/.tmp-<tag>-<random>"), open for
 * writing with mode. Returns the fd and the path in *path (caller frees), or -errno. */
int file_temp_create(const char *dir, const char *tag, mode_t mode, char **path);

/* Writes data to dir/name through a temp file (write, fsync, rename over any
 * existing file, fsync dir). */
int file_write_replace(const char *dir, const char *name, const void *data, size_t len,
                       mode_t mode);

/* 1 when the regular file at path holds exactly data[0..len), 0 when not, or -errno. */
int file_same_content(const char *path, const void *data, size_t len);

/* 0 when path is a directory this process may use with `access_mode` (R_OK, W_OK,
 * X_OK), else the errno that says why not (ENOTDIR for a non-directory). */
int file_dir_usable(const char *path, int access_mode);

#endif
