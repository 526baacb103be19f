/*
 * systemd_dropin — `amqp-sidecar systemd-dropin -c FILE`: the [Service]
 * drop-in the hardened unit (packaging/systemd/amqp-sidecar@.service:
 * ProtectSystem=strict, ProtectHome=yes, PrivateTmp=yes) needs for FILE's
 * routes: ReadWritePaths= for every directory they write or rename files in
 * (config_paths.h), BindPaths=/BindReadOnlyPaths= with ProtectHome=tmpfs for
 * those under /home, /root or /run/user, and a warning for paths in the
 * unit's private /tmp. Files only read need nothing elsewhere: the rest of
 * the file system stays readable.
 */
#ifndef SIDECAR_SYSTEMD_DROPIN_H
#define SIDECAR_SYSTEMD_DROPIN_H

#include <stdio.h>

struct sidecar_config;

/* Writes the drop-in to out, warnings also to stderr. Returns an exit code. */
int systemd_dropin_print(const struct sidecar_config *cfg, FILE *out);

#endif
