/*
 * reload — SIGHUP on the main thread: re-read the secret files, then the
 * whole config, and apply it route by route.
 *
 * The new file goes through config_load, the loader and checks `check` uses;
 * with a problem, each is logged as `file:line: …` and the running config
 * stays. Then config_diff compares it with the running one and one line per
 * route says what changed. A reload is all or nothing: if any change needs a
 * restart (a process key such as name, broker or admin; any inbound route
 * added, removed or changed — they share the publisher's connection and the
 * listeners), it is refused whole, so the running routes always match one
 * file and the next SIGHUP compares against a config that really runs.
 *
 * Applied, outbound routes that go or change are drained together (the
 * consumer cancels, in-flight deliveries settle, publishes confirm, at most
 * drain_timeout), stopped, and the changed and added ones start on their own
 * new connections. Unchanged routes keep their struct route, connection and
 * consumer: nothing of theirs is touched. The route set is swapped under
 * sc->routes_lock so the admin endpoint never sees half of it.
 */
#include "sidecar_internal.h"

#include "config_diff.h"
#include "log.h"
#include "oauth2.h"
#include "queue_watch.h"
#include "route.h"
#include "status.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static void reload_secrets(struct sidecar *sc)
{
    struct config_report rep = {.file = sc->cfg->path};
    if (config_reload_secrets(sc->cfg, &rep) != 0) {
        for (size_t i = 0; i < rep.n; i++)
            log_error(NULL, "SIGHUP: %s", rep.errors[i].msg);
        log_error(NULL, "SIGHUP: the secrets above kept their previous values (the others were "
                        "re-read); fix the files and send SIGHUP again");
    } else {
        log_info(NULL, "SIGHUP: secret files re-read");
    }
    config_report_free(&rep);
    /* A token fetched with the old secret must not outlive it. */
    oauth2_registry_drop_tokens(sc->services.oauth2);
    for (size_t i = 0; i < sc->cfg->n_routes; i++)
        if (sc->cfg->routes[i]->kind->reload)
            sc->cfg->routes[i]->kind->reload(sc->cfg->routes[i]);
}

static void log_problems(const struct config_report *rep)
{
    for (size_t i = 0; i < rep->n_notes; i++)
        log_warn(NULL, "reload: %s:%d: note: %s", rep->file, rep->notes[i].line, rep->notes[i].msg);
    for (size_t i = 0; i < rep->n; i++) {
        if (rep->errors[i].line > 0)
            log_error(NULL, "reload refused: %s:%d: %s", rep->file, rep->errors[i].line,
                      rep->errors[i].msg);
        else
            log_error(NULL, "reload refused: %s: %s", rep->file, rep->errors[i].msg);
    }
}

static const char *plan_name(const struct route_plan *e)
{
    return e->next ? e->next->name : e->running->name;
}

static void log_plan(const struct config_plan *plan)
{
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        const struct route *r = e->next ? e->next : e->running;
        if (e->change == ROUTE_CHANGED)
            log_info(r->name, "reload: changed: %s", e->keys);
        else
            log_info(r->name, "reload: %s (%s %s)", route_change_name(e->change),
                     route_direction_name(r->direction), r->kind->name);
    }
}

/* Logs every change that needs a restart; returns how many. */
static size_t log_refusals(const struct sidecar *sc, const struct config_plan *plan)
{
    size_t n = 0;
    if (plan->process_keys != NULL) {
        log_error(NULL,
                  "reload refused: %s changed; that needs a restart (systemctl restart "
                  "amqp-sidecar@%s)",
                  plan->process_keys, sc->cfg->name);
        n++;
    }
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        bool inbound = (e->running && e->running->direction == ROUTE_INBOUND) ||
                       (e->next && e->next->direction == ROUTE_INBOUND);
        if (e->change == ROUTE_UNCHANGED || !inbound)
            continue;
        log_error(plan_name(e),
                  "reload refused: inbound route %s needs a restart (inbound routes share the "
                  "publisher's connection and listeners and are not started or stopped live)",
                  route_change_name(e->change));
        n++;
    }
    return n;
}

static struct outbound_runtime *runtime_of(const struct sidecar *sc, const struct route *r)
{
    for (size_t i = 0; i < sc->n_outbound; i++)
        if (sc->outbound[i]->route == r)
            return sc->outbound[i];
    return NULL;
}

struct going {
    struct outbound_runtime **v;
    size_t n;
};

static bool going_busy(void *arg, struct buf *why)
{
    const struct going *g = arg;
    for (size_t i = 0; i < g->n; i++)
        if (sidecar_outbound_busy(g->v[i]))
            buf_printf(why, " %s: deliveries in flight;", g->v[i]->route->name);
    return why->len > 0;
}

/* Publishes the new route set: routes (taken), with its outbound runtimes. */
static void swap_route_set(struct sidecar *sc, struct route **routes, size_t n_routes,
                           struct outbound_runtime **outbound, size_t n_outbound)
{
    struct connection_metrics **conns = xcalloc(n_outbound + 1, sizeof(*conns));
    size_t n_conns = 0;
    if (sc->publisher_broker != NULL)
        conns[n_conns++] = &sc->publisher_connection;
    for (size_t i = 0; i < n_outbound; i++)
        conns[n_conns++] = &outbound[i]->connection;

    pthread_rwlock_wrlock(&sc->routes_lock); /* nothing here may log: the log observer reads */
    struct route **was = sc->cfg->routes;
    size_t n_was = sc->cfg->n_routes;
    struct outbound_runtime **old_outbound = sc->outbound;
    struct connection_metrics **old_conns = sc->connections;
    sc->cfg->routes = routes;
    sc->cfg->n_routes = n_routes;
    sc->outbound = outbound;
    sc->n_outbound = n_outbound;
    sc->connections = conns;
    sc->n_connections = n_conns;
    sc->metrics_sources.routes = routes;
    sc->metrics_sources.n_routes = n_routes;
    sc->metrics_sources.connections = conns;
    sc->metrics_sources.n_connections = n_conns;
    status_routes_changed(sc->status, was, n_was);
    pthread_rwlock_unlock(&sc->routes_lock);

    sidecar_summary_follow(sc, was, n_was);
    free(was);
    free(old_outbound);
    free(old_conns);
}

/* Applies a plan with no refusals; next's routes that are used move out of it. */
static void apply(struct sidecar *sc, struct sidecar_config *next, struct config_plan *plan)
{
    /* 1. Drain and stop the outbound routes that go or change, all at once. */
    struct outbound_runtime **gone = xcalloc(plan->n_routes + 1, sizeof(*gone));
    size_t n_gone = 0;
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        if (e->change == ROUTE_REMOVED || e->change == ROUTE_CHANGED) {
            gone[n_gone] = runtime_of(sc, e->running);
            sidecar_outbound_drain(gone[n_gone++]);
        }
    }
    /* Past drain_timeout, unsettled deliveries go back to their queue as the channel closes. */
    sidecar_wait_idle(sc, going_busy, &(struct going){gone, n_gone}, "reload: ");
    for (size_t i = 0; i < n_gone; i++) {
        sidecar_outbound_stop(gone[i]);
        log_info(gone[i]->route->name, "stopped for the reload");
    }

    /* 2. The new set, in the file's order: unchanged routes as they run,
     * changed and added ones started (a start that fails leaves the route
     * out; the next SIGHUP tries it again). */
    struct route **routes = xcalloc(next->n_routes + 1, sizeof(*routes));
    struct outbound_runtime **outbound = xcalloc(next->n_routes + 1, sizeof(*outbound));
    size_t n_routes = 0, n_outbound = 0, failed = 0;
    for (size_t i = 0; i < next->n_routes; i++) {
        struct route_plan *e = &plan->routes[i]; /* the plan lists next's routes first */
        struct route *r = e->change == ROUTE_UNCHANGED ? e->running : e->next;
        struct outbound_runtime *o = NULL;
        if (e->change == ROUTE_UNCHANGED && r->direction == ROUTE_OUTBOUND)
            o = runtime_of(sc, r);
        if (e->change != ROUTE_UNCHANGED) {
            next->routes[i] = NULL; /* it runs now: the running config owns it */
            char err[1024] = "";
            o = sidecar_outbound_start(sc, r, err, sizeof(err));
            if (o == NULL) {
                log_error(r->name,
                          "reload: cannot start: %s; the route is not running — fix "
                          "it and send SIGHUP again",
                          err);
                config_route_free(r);
                failed++;
                continue;
            }
        }
        routes[n_routes++] = r;
        if (o != NULL)
            outbound[n_outbound++] = o;
    }
    swap_route_set(sc, routes, n_routes, outbound, n_outbound);

    /* 3. Nothing reads the routes that went any more. */
    for (size_t i = 0; i < n_gone; i++) {
        struct route *r = gone[i]->route;
        sidecar_outbound_free(gone[i]);
        queue_watch_gauges_free(r);
        config_route_free(r);
    }
    free(gone);
    log_info(NULL, "reload: applied: %zu added, %zu removed, %zu changed, %zu unchanged%s",
             plan->count[ROUTE_ADDED], plan->count[ROUTE_REMOVED], plan->count[ROUTE_CHANGED],
             plan->count[ROUTE_UNCHANGED], failed ? " (some failed to start: see above)" : "");
}

void sidecar_reload(struct sidecar *sc)
{
    reload_secrets(sc);
    struct sidecar_config next;
    struct config_report rep = {0};
    if (config_load(sc->cfg->path, &next, &rep) != 0) {
        log_problems(&rep);
        log_error(NULL,
                  "reload refused: %zu problem%s in %s; the running config stays (fix the "
                  "file, `amqp-sidecar check -c %s`, and send SIGHUP again)",
                  rep.n, rep.n == 1 ? "" : "s", sc->cfg->path, sc->cfg->path);
        config_report_free(&rep);
        config_free(&next);
        return;
    }
    log_problems(&rep); /* the notes, if any */
    config_report_free(&rep);

    struct config_plan plan;
    config_plan_make(sc->cfg, &next, &plan);
    log_plan(&plan);
    size_t refused = log_refusals(sc, &plan);
    if (refused > 0)
        log_error(NULL,
                  "reload refused: %zu change%s above need%s a restart; the running config "
                  "stays (%zu added, %zu removed, %zu changed, %zu unchanged were not applied)",
                  refused, refused == 1 ? "" : "s", refused == 1 ? "s" : "",
                  plan.count[ROUTE_ADDED], plan.count[ROUTE_REMOVED], plan.count[ROUTE_CHANGED],
                  plan.count[ROUTE_UNCHANGED]);
    else if (plan.count[ROUTE_UNCHANGED] == plan.n_routes)
        log_info(NULL, "reload: no route changed (%zu unchanged)", plan.n_routes);
    else
        apply(sc, &next, &plan);
    config_plan_free(&plan);
    config_free(&next);
}
