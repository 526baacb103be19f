/*
 * sidecar_internal — what sidecar.c, sidecar_outbound.c and reload.c share
 * and nothing else includes: one outbound route's runtime (its broker
 * connection, thread, publisher, consumer and queue watch), started and
 * stopped alone, so SIGHUP can add, remove or restart one route while the
 * others run on.
 *
 * Life of one: start (its thread runs) → drain (posted to its thread: the
 * consumer cancels, the kind stops taking work) → busy until false or the
 * deadline → stop (the thread joins, the kind frees what start made) → free.
 * The route itself stays the caller's (it belongs to the config).
 */
#ifndef SIDECAR_SIDECAR_INTERNAL_H
#define SIDECAR_SIDECAR_INTERNAL_H

#include "sidecar.h"

#include <stdbool.h>
#include <stddef.h>

/* Main thread: r's runtime, its thread running; NULL with err (nothing of it
 * is left running). The caller lists it in sc->outbound and its connection in
 * sc->connections. */
struct outbound_runtime *sidecar_outbound_start(struct sidecar *sc, struct route *r, char *err,
                                                size_t errlen);
/* Main thread: ask its thread to stop taking deliveries. */
void sidecar_outbound_drain(struct outbound_runtime *o);
/* Any thread: deliveries or publishes still in flight? */
bool sidecar_outbound_busy(const struct outbound_runtime *o);
/* Main thread: close its connection and join its thread, then the kind's stop. */
void sidecar_outbound_stop(struct outbound_runtime *o);
/* After stop, once no other thread reads it (it is out of sc's lists). */
void sidecar_outbound_free(struct outbound_runtime *o);

/* Main thread: polls busy_fn until it says nothing is in flight (true), or
 * drain_timeout passes (false, logged); a progress line every 2 s. prefix
 * ("" or "reload: ") starts its lines. */
struct buf;
bool sidecar_wait_idle(struct sidecar *sc, bool (*busy_fn)(void *arg, struct buf *why), void *arg,
                       const char *prefix);

/* Main thread, after the route set changed from was[0..n_was): the periodic
 * summary's last counts follow the routes that stayed (new ones start at 0). */
void sidecar_summary_follow(struct sidecar *sc, struct route *const *was, size_t n_was);

/* Main thread: SIGHUP (reload.c). Re-reads the secret files, then the
 * config; applies the route changes it allows, or refuses it whole. */
void sidecar_reload(struct sidecar *sc);

#endif
