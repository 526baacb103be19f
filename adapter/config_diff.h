/*
 * config_diff — what changed between the running config and a new one, for
 * SIGHUP (reload.c): which process keys differ (each needs a restart) and,
 * route by route (matched by name), whether it was added, removed, changed
 * (and which keys) or left alone.
 *
 * Equality is the key tables' (config.h): two routes are the same when every
 * key of their common, direction, rate and kind tables holds the same value,
 * compared field by field the way the tables store them. Derived fields
 * follow from those keys. Secrets compare by path (their contents are re-read
 * in place by SIGHUP anyway); files a key names (transform, wsdl) compare by
 * path, not content.
 *
 * Ownership: a plan borrows the two configs' routes and owns its strings.
 */
#ifndef SIDECAR_CONFIG_DIFF_H
#define SIDECAR_CONFIG_DIFF_H

#include "config.h"

#include <stddef.h>

struct buf;
struct route;

enum route_change { ROUTE_UNCHANGED, ROUTE_CHANGED, ROUTE_ADDED, ROUTE_REMOVED };
#define ROUTE_CHANGES 4

/* "unchanged", "changed", "added", "removed". */
const char *route_change_name(enum route_change c);

/* Appends to out (", "-separated) the dotted name of every key of the table
 * `keys` whose value differs between the structs a and b it describes;
 * prefix ("" or "auth.") goes before each name. Returns how many differ. */
size_t config_diff_keys(const struct config_key *keys, const void *a, const void *b,
                        const char *prefix, struct buf *out);

/* The keys that differ between two routes of one name (a different
 * direction or kind is reported as that key alone). Returns how many. */
size_t config_diff_route(const struct route *a, const struct route *b, struct buf *out);

/* The process keys (everything but the route lists) that differ. */
size_t config_diff_process(const struct sidecar_config *a, const struct sidecar_config *b,
                           struct buf *out);

struct route_plan {
    enum route_change change;
    struct route *running; /* NULL when added */
    struct route *next;    /* NULL when removed */
    char *keys;            /* changed: "url, concurrency"; else NULL */
};

struct config_plan {
    char *process_keys;        /* NULL when the process keys are the same */
    struct route_plan *routes; /* the next config's routes in its order, then the removed ones */
    size_t n_routes;
    size_t count[ROUTE_CHANGES];
};

/* Compares running with next. Borrows both configs' routes. */
void config_plan_make(const struct sidecar_config *running, const struct sidecar_config *next,
                      struct config_plan *plan);
void config_plan_free(struct config_plan *plan);

#endif
