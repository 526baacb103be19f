/*
 * status — what the status page and /status.json show: one JSON document
 * (jansson) built from the same sources /readyz and /metrics read (atomic
 * counters and gauges, the brokers' locked descriptions, route readiness),
 * plus two things only the page needs, kept here:
 *   - counts over the last minute: a ring of per-route counter samples the
 *     main loop takes every STATUS_SAMPLE_MS (status_sample);
 *   - each route's last warning or error and its time, from the log
 *     (log_set_observer), so an operator sees why without reading logs.
 * status_json runs on any thread (the admin listener's) and never touches a
 * broker connection.
 */
#ifndef SIDECAR_STATUS_H
#define SIDECAR_STATUS_H

#include <jansson.h>

#define STATUS_SAMPLE_MS 5000
#define STATUS_WINDOW_MS 60000

struct sidecar;

/* Takes the first sample and starts listening to the log: before threads
 * start. status_free (after they are gone) stops listening. */
struct status *status_new(struct sidecar *sc);
void status_free(struct status *st);

/* The main loop's timer: one sample of every route's counters. */
void status_sample(struct status *st);

/* Main thread, with the route set's write lock held (reload.c): the routes
 * changed from was[0..n_was) to sc->cfg->routes; samples and last errors
 * follow the routes that stayed (the same struct route). */
struct route;
void status_routes_changed(struct status *st, struct route *const *was, size_t n_was);

/* Any thread: a new reference to the whole status (see README "Status page"). */
json_t *status_json(struct status *st);

#endif
