/*
 * file_watch — which files in a drop directory are complete and ready.
 *
 * inotify reports names as they change; a scan at start and every
 * scan_interval seconds catches what inotify cannot see (network file
 * systems, a queue overflow, a directory that appeared late). A file is ready
 * when it was renamed into the directory, or when its size and mtime stayed
 * the same for settle_ms — so a file still being written is never handed
 * out half-written. Dotfiles, directories, symlinks and names that do not
 * match the pattern are never considered. Runs on one loop (one thread).
 */
#ifndef SIDECAR_FILE_WATCH_H
#define SIDECAR_FILE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct loop;

struct file_watch_options {
    const char *route; /* for logs */
    const char *dir;
    const char *pattern; /* fnmatch(3) glob */
    int settle_ms;
    double scan_interval; /* seconds */
};

/* Called on the loop when at least one more file is ready. */
typedef void (*file_watch_ready_fn)(void *arg);

/* Strings in opt are borrowed for the watch's life. */
struct file_watch *file_watch_new(struct loop *loop, const struct file_watch_options *opt,
                                  file_watch_ready_fn ready, void *arg);
/* Adds the inotify watch, scans, and starts the timers. */
void file_watch_start(struct file_watch *w);
void file_watch_free(struct file_watch *w);

/* The oldest ready name (caller frees) and the stat it settled with (size,
 * mtime, dev, ino), or NULL. */
char *file_watch_next(struct file_watch *w, struct stat *settled);

/* Is a file ready (file_watch_next would return one)? */
bool file_watch_has_ready(const struct file_watch *w);

/* A handed-out name could not be claimed yet: watch it (settle) again. */
void file_watch_again(struct file_watch *w, const char *name);

/* The route put a claimed file back into dir (it changed after the claim): it
 * settles again like a file written in place, although it arrives by rename. */
void file_watch_put_back(struct file_watch *w, const char *name);

/* Files seen but not handed out yet (ready or settling). */
size_t file_watch_pending(const struct file_watch *w);

#endif
