/*
 * poll_cursor — where a poll route keeps its cursor: one small file,
 * `<state_dir>/<route>.cursor`, replaced atomically and durably (temp file,
 * fsync, rename, fsync of the directory), so a crash leaves the old cursor or
 * the new one, never a torn one. The file holds the cursor's bytes and
 * nothing else, so an operator can read or reset it with a text editor.
 */
#ifndef SIDECAR_POLL_CURSOR_H
#define SIDECAR_POLL_CURSOR_H

#include <stdbool.h>
#include <stddef.h>

#define POLL_CURSOR_MAX 65536 /* bytes of a stored cursor */

/* mkdir -p dir (mode 0750). 0, or -1 with errno. */
int poll_cursor_dir_create(const char *dir);

/* Config time: NULL when dir is a writable directory or can be created as one;
 * else what is wrong, naming the path in the way (caller frees). */
char *poll_cursor_dir_problem(const char *dir);

/* The stored cursor (caller frees; one trailing newline dropped), or NULL with
 * *missing set when there is none yet, or NULL with err when it cannot be read.
 */
char *poll_cursor_load(const char *path, bool *missing, char *err, size_t errlen);

/* Replaces the cursor at path (a file in dir) with value. 0, or -1 with err. */
int poll_cursor_save(const char *dir, const char *path, const char *value, char *err,
                     size_t errlen);

#endif
