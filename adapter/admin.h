/*
 * admin — GET /healthz (the process answers), /readyz (the broker and every
 * route are up; JSON detail either way, 503 naming what is not ready) and
 * /metrics (Prometheus text), / (the status page, HTML) and /status.json
 * (the same, for scripts; status.h) on `admin.listen`.
 */
#ifndef SIDECAR_ADMIN_H
#define SIDECAR_ADMIN_H

#include <stddef.h>

struct sidecar;

/* Registers the endpoints when admin.listen is set. 0, or -1 with err. */
int admin_start(struct sidecar *sc, char *err, size_t errlen);

#endif
