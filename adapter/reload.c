/*
 * reload — SIGHUP on the main thread: re-read the secret files, then the
 * whole config, and apply it route by route.
 *
 * The new file goes through config_load, the loader and checks `check` uses;
 * with a problem, each is logged as `file:line: …` and the running config
 * stays. Then config_diff compares it with the running one and one line per
 * route says what changed. A reload is all or nothing: if any change needs a
 * restart (a process key such as name, broker or admin; an inbound change
 * sidecar_inbound_refusals names: a route with lease, a route with a spool
 * that goes or whose change would leave its journal behind, the first inbound
 * route, a route joining the admin listener, a listener's tls), or the new
 * inbound routes' queues cannot be
 * declared, it is refused whole, so the running routes always match one file
 * and the next SIGHUP compares against a config that really runs.
 *
 * Applied, the routes that go or change stop taking work together (outbound:
 * the consumer cancels; http/soap: the path is handed over; file, poll: no
 * new file or poll), the new http/soap routes start at once and take their
 * paths in one step (new requests meet the new settings, 404 for a path that
 * went), then everything that goes drains (in-flight deliveries settle,
 * requests are answered with the old settings, publishes confirm; at most
 * drain_timeout) and stops, and the changed and added outbound, file and
 * poll routes start. Unchanged routes keep their struct route, connection,
 * consumer, listener and connections: nothing of theirs is touched. The route
 * set is swapped under sc->routes_lock so the admin endpoint never sees half
 * of it (sidecar_inbound.c has the inbound details).
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
    return n + sidecar_inbound_refusals(sc, plan);
}

static struct outbound_runtime *runtime_of(const struct sidecar *sc, const struct route *r)
{
    for (size_t i = 0; i < sc->n_outbound; i++)
        if (sc->outbound[i]->route == r)
            return sc->outbound[i];
    return NULL;
}

static bool is_inbound(const struct route *r)
{
    return r != NULL && r->direction == ROUTE_INBOUND;
}

/* What goes: the outbound runtimes and the inbound routes that go or change. */
struct going {
    const struct sidecar *sc;
    struct outbound_runtime **out;
    size_t n_out;
    struct route **in;
    size_t n_in;
};

static bool going_busy(void *arg, struct buf *why)
{
    const struct going *g = arg;
    for (size_t i = 0; i < g->n_out; i++)
        if (sidecar_outbound_busy(g->out[i]))
            buf_printf(why, " %s: deliveries in flight;", g->out[i]->route->name);
    for (size_t i = 0; i < g->n_in; i++)
        if (sidecar_inbound_busy(g->sc, g->in[i]))
            buf_printf(why, " %s: requests or publishes in flight;", g->in[i]->name);
    return why->len > 0;
}

/* Publishes the new route set: routes (taken), with its outbound runtimes (taken). */
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

/* Before the inbound routes that go are stopped, they leave the set, so no
 * other thread (/readyz, /metrics, the status page) asks them anything more. */
static void hide_going(struct sidecar *sc, const struct going *g)
{
    struct route **routes = xcalloc(sc->cfg->n_routes + 1, sizeof(*routes));
    size_t n = 0;
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        bool goes = false;
        for (size_t j = 0; j < g->n_in && !goes; j++)
            goes = g->in[j] == sc->cfg->routes[i];
        if (!goes)
            routes[n++] = sc->cfg->routes[i];
    }
    struct outbound_runtime **outbound = xcalloc(sc->n_outbound + 1, sizeof(*outbound));
    memcpy(outbound, sc->outbound, sc->n_outbound * sizeof(*outbound));
    swap_route_set(sc, routes, n, outbound, sc->n_outbound);
}

/* Starts next's route i, which moves to the running config: true, or false
 * (logged, the route freed or retired: the next SIGHUP tries it again). */
static bool start_new(struct sidecar *sc, struct sidecar_config *next, size_t i,
                      const struct route *replaces, struct outbound_runtime **o)
{
    struct route *r = next->routes[i];
    next->routes[i] = NULL; /* it runs now: the running config owns it */
    char err[1024] = "";
    if (r->direction == ROUTE_OUTBOUND) {
        *o = sidecar_outbound_start(sc, r, err, sizeof(err));
        if (*o != NULL)
            return true;
    } else if (sidecar_inbound_stopping(sc, r->name)) {
        log_error(r->name, "reload: not started: the route it replaces is still publishing; send "
                           "SIGHUP again once that one logged \"stopped\"");
        config_route_free(r);
        return false;
    } else {
        sidecar_inbound_gauges(sc, r);
        sidecar_inbound_inherit(r, replaces);
        if (sidecar_inbound_start(sc, r, err, sizeof(err)) == 0 &&
            sidecar_inbound_listen(sc, r, err, sizeof(err)) == 0)
            return true;
    }
    log_error(r->name,
              "reload: cannot start: %s; the route is not running — fix it and send "
              "SIGHUP again",
              err);
    if (r->direction == ROUTE_INBOUND)
        sidecar_inbound_abandon(sc, r);
    else
        config_route_free(r);
    return false;
}

/* Applies a plan with no refusals; next's routes that are used move out of it. */
static void apply(struct sidecar *sc, struct sidecar_config *next, struct config_plan *plan)
{
    /* 1. What goes or changes stops taking work, all at once. */
    struct going g = {.sc = sc,
                      .out = xcalloc(plan->n_routes + 1, sizeof(*g.out)),
                      .in = xcalloc(plan->n_routes + 1, sizeof(*g.in))};
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        if (e->change != ROUTE_REMOVED && e->change != ROUTE_CHANGED)
            continue;
        if (is_inbound(e->running)) {
            sidecar_inbound_leave(sc, e->running);
            g.in[g.n_in++] = e->running;
        } else {
            g.out[g.n_out] = runtime_of(sc, e->running);
            sidecar_outbound_drain(g.out[g.n_out++]);
        }
    }

    /* 2. New http/soap routes start now: each takes its path from the route it
     * replaces in one step; paths no route took any more answer 404. */
    bool *started = xcalloc(next->n_routes + 1, sizeof(*started));
    bool *early = xcalloc(next->n_routes + 1, sizeof(*early)); /* started in this step */
    struct outbound_runtime **runtimes = xcalloc(next->n_routes + 1, sizeof(*runtimes));
    size_t failed = 0;
    for (size_t i = 0; i < next->n_routes; i++) {
        struct route_plan *e = &plan->routes[i]; /* the plan lists next's routes first */
        early[i] = e->change != ROUTE_UNCHANGED && sidecar_inbound_on_listener(e->next);
        if (early[i]) {
            started[i] = start_new(sc, next, i, e->running, &runtimes[i]);
            failed += !started[i];
        }
    }
    for (size_t i = 0; i < g.n_in; i++)
        sidecar_inbound_unroute(sc, g.in[i]);

    /* 3. Drain. Past drain_timeout, unsettled deliveries go back to their queue as the
     * channel closes, an upload still arriving gets 503, and a file or poll route still
     * publishing stops once it is answered. */
    sidecar_wait_idle(sc, going_busy, &g, "reload: ");
    for (size_t i = 0; i < g.n_out; i++) {
        sidecar_outbound_stop(g.out[i]);
        log_info(g.out[i]->route->name, "stopped for the reload");
    }
    if (g.n_in > 0)
        hide_going(sc, &g);
    for (size_t i = 0; i < g.n_in; i++)
        sidecar_inbound_stop(sc, g.in[i]);

    /* 4. The new set, in the file's order: unchanged routes as they run, the
     * rest started (a start that fails leaves the route out). */
    struct route **routes = xcalloc(next->n_routes + 1, sizeof(*routes));
    struct outbound_runtime **outbound = xcalloc(next->n_routes + 1, sizeof(*outbound));
    size_t n_routes = 0, n_outbound = 0;
    for (size_t i = 0; i < next->n_routes; i++) {
        struct route_plan *e = &plan->routes[i];
        struct route *r = e->change == ROUTE_UNCHANGED ? e->running : e->next;
        struct outbound_runtime *o = runtimes[i];
        if (e->change == ROUTE_UNCHANGED && r->direction == ROUTE_OUTBOUND)
            o = runtime_of(sc, r);
        if (e->change != ROUTE_UNCHANGED && !early[i]) {
            started[i] = start_new(sc, next, i, e->running, &o);
            failed += !started[i];
        }
        if (e->change != ROUTE_UNCHANGED && !started[i])
            continue;
        routes[n_routes++] = r;
        if (o != NULL)
            outbound[n_outbound++] = o;
    }
    swap_route_set(sc, routes, n_routes, outbound, n_outbound);
    sidecar_inbound_set_changed(sc);
    sidecar_inbound_close_unused(sc);

    /* 5. Nothing reads the outbound routes that went any more. */
    for (size_t i = 0; i < g.n_out; i++) {
        struct route *r = g.out[i]->route;
        sidecar_outbound_free(g.out[i]);
        queue_watch_gauges_free(r);
        config_route_free(r);
    }
    free(g.out);
    free(g.in);
    free(started);
    free(early);
    free(runtimes);
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
    char err[1024] = "";
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
    else if (sidecar_inbound_declare(sc, &plan, err, sizeof(err)) != 0)
        log_error(NULL,
                  "reload refused: the new inbound routes' queues and bindings cannot be "
                  "declared: %s; the running config stays (is the broker reachable, does the "
                  "exchange exist?); send SIGHUP again",
                  err);
    else
        apply(sc, &next, &plan);
    config_plan_free(&plan);
    config_free(&next);
}
