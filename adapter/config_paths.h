/*
 * config_paths — every file system path a loaded config names, with the key
 * and file:line that named it and what the sidecar does there: the
 * directories file routes write and rename files in (each KEY_PATH key:
 * dir, done_dir, failed_dir, file-out dir, state_dir) and the files it only
 * reads (KEY_FILE and KEY_SECRET keys: transforms, WSDLs, certificates,
 * secrets). `systemd-dropin` turns them into ReadWritePaths=; `check --user`
 * checks them as the service's user. One walk over the same key tables that
 * load the config, so a new path key is covered without a line here.
 */
#ifndef SIDECAR_CONFIG_PATHS_H
#define SIDECAR_CONFIG_PATHS_H

#include <stdbool.h>
#include <stddef.h>

struct sidecar_config;

enum config_path_use {
    CONFIG_PATH_WRITE_DIR, /* a directory: files are created, renamed, deleted there */
    CONFIG_PATH_READ_FILE, /* a file read at start (and at SIGHUP, for secrets) */
};

struct config_path {
    char *key;  /* how a message names it: `inbound route "orders": done_dir`, `broker.tls.ca` */
    char *path; /* as the sidecar uses it: resolved against the config's directory */
    int line; /* where the file sets it; 0: a default (the route's or the file's line is not it) */
    enum config_path_use use;
    int access;  /* what the sidecar needs: R_OK, or R_OK|W_OK|X_OK (file in), W_OK|X_OK */
    bool secret; /* a KEY_SECRET: must belong to the service's user, mode 0600 */
};

struct config_paths {
    struct config_path *v;
    size_t n;
};

/* Fills out from cfg, re-reading cfg->path for the lines (cfg was loaded
 * from it without errors). 0, or -1 with err when the file cannot be read
 * again. Free out with config_paths_free. */
int config_paths_collect(const struct sidecar_config *cfg, struct config_paths *out, char *err,
                         size_t errlen);
void config_paths_free(struct config_paths *paths);

#endif
