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

/* ---- inbound routes (sidecar_inbound.c) -------------------------------------
 * They share the publisher and, by path, the listeners. On SIGHUP, for the
 * routes that go or change: leave (an http route that is replaced stays in
 * its listener's table until the new one takes its path; one that goes
 * leaves it: 404; file and poll stop taking work) → the changed and added
 * http routes start (and listen, on a new address) → unroute (a replaced
 * route whose new one moved) → busy until false or drain_timeout → stop (an
 * upload still arriving gets 503; file or poll still publishing stop later,
 * from a timer) → the changed and added file and poll routes start → the set
 * changed (the queue watch and the topology of later connects follow) →
 * listeners without routes close once they answered what they took. */
struct config_plan;
/* Is r an inbound route a listener serves (http, soap)? */
bool sidecar_inbound_on_listener(const struct route *r);
/* Main thread: start r on sc's publisher. 0, or -1 with err. */
int sidecar_inbound_start(struct sidecar *sc, struct route *r, char *err, size_t errlen);
/* A changed http/soap route whose running one spools into the same directory
 * takes that spool over (replaces: the running route, or NULL). */
void sidecar_inbound_inherit(struct route *r, const struct route *replaces);
/* Logs each inbound change of plan that needs a restart; how many. */
size_t sidecar_inbound_refusals(const struct sidecar *sc, const struct config_plan *plan);
/* Declares the new and changed inbound routes' queues and bindings (and checks
 * their exchanges) on a connection of its own. 0, or -1 with err. */
int sidecar_inbound_declare(struct sidecar *sc, const struct config_plan *plan, char *err,
                            size_t errlen);
void sidecar_inbound_leave(struct sidecar *sc, struct route *r);
void sidecar_inbound_unroute(struct sidecar *sc, struct route *r);
bool sidecar_inbound_busy(const struct sidecar *sc, struct route *r);
/* true: stopped and retired; false: still publishing, stopped later by a timer. */
bool sidecar_inbound_stop(struct sidecar *sc, struct route *r);
/* After r's start: open its listener if it is new. 0, or -1 with err (r no
 * longer served). */
int sidecar_inbound_listen(struct sidecar *sc, struct route *r, char *err, size_t errlen);
/* Is an inbound route of that name still stopping (publishing past drain_timeout)? */
bool sidecar_inbound_stopping(const struct sidecar *sc, const char *name);
/* A route whose start (or listen) failed: stopped, out of every listener, retired. */
void sidecar_inbound_abandon(struct sidecar *sc, struct route *r);
/* A new route's queue gauges. */
void sidecar_inbound_gauges(struct sidecar *sc, struct route *r);
/* After the route set changed. */
void sidecar_inbound_set_changed(struct sidecar *sc);
void sidecar_inbound_close_unused(struct sidecar *sc);
/* shutdown_all, after the publisher and the listeners stopped. */
void sidecar_inbound_shutdown(struct sidecar *sc);

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
