/*
 * sidecar_inbound — the inbound routes' starts and stops: at `run` (all of
 * them, before the publisher's thread starts) and on SIGHUP one at a time
 * while the others serve on (see sidecar_internal.h for the order).
 *
 * Inbound routes share the publisher's connection, and http/soap routes
 * share listeners by path. So a route that goes never takes anything of the
 * others with it: its path leaves its listener's table (new requests get 404,
 * or, for a changed route, the new route registered in the same step), the
 * requests it took finish with its settings, and a listener whose last route
 * went is closed once it answered what it took. file and poll routes stop as
 * at shutdown (a file being published finishes or stays in processing/ for
 * the next start; a poll keeps its cursor) before the new one starts.
 *
 * A route out of the set is never freed while the process runs (it is
 * retired): answers the publisher still owes, a listener's late request, an
 * older topology and the queue watch may name it. One that is still
 * publishing past drain_timeout is stopped by a timer once it is idle.
 */
#include "sidecar_internal.h"

#include "broker.h"
#include "broker_once.h"
#include "config_diff.h"
#include "httpd.h"
#include "listen_tls.h"
#include "log.h"
#include "loop.h"
#include "queue_watch.h"
#include "route.h"
#include "topology.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REAP_MS 200 /* how often a stopping route or a closing listener is looked at */

/* The route's HTTP endpoint, when a listener serves it (http, soap). */
static bool http_endpoint_of(const struct route *r, struct http_endpoint *e)
{
    *e = (struct http_endpoint){0};
    return r != NULL && r->direction == ROUTE_INBOUND && r->kind->endpoint &&
           r->kind->endpoint(r, e) && e->listen != NULL;
}

bool sidecar_inbound_on_listener(const struct route *r)
{
    struct http_endpoint e;
    return http_endpoint_of(r, &e);
}

static struct http_server *server_at(const struct sidecar *sc, const char *listen)
{
    for (size_t i = 0; i < sc->n_servers; i++)
        if (strcmp(http_server_listen(sc->servers[i]), listen) == 0)
            return sc->servers[i];
    return NULL;
}

static struct http_server *server_of(const struct sidecar *sc, const struct route *r)
{
    struct http_endpoint e;
    return http_endpoint_of(r, &e) ? server_at(sc, e.listen) : NULL;
}

int sidecar_inbound_start(struct sidecar *sc, struct route *r, char *err, size_t errlen)
{
    r->sc = sc;
    r->services = &sc->services;
    r->publisher = sc->publisher;
    char why[512] = "";
    if (r->kind->start(r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "route \"%s\": %s", r->name, why);
        return -1;
    }
    log_info(r->name, "started (inbound %s)", r->kind->name);
    return 0;
}

/* ---- what SIGHUP cannot do live -------------------------------------------------- */

static bool is_inbound(const struct route *r)
{
    return r != NULL && r->direction == ROUTE_INBOUND;
}

bool sidecar_inbound_stopping(const struct sidecar *sc, const char *name)
{
    for (size_t i = 0; i < sc->n_stopping; i++)
        if (strcmp(sc->stopping[i]->name, name) == 0)
            return true;
    return false;
}

/* A running route on listen, if any: its listener's tls is that route's. */
static const struct route *running_route_at(const struct config_plan *plan, const char *listen)
{
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        struct http_endpoint ep;
        if (e->running && http_endpoint_of(e->running, &ep) && strcmp(ep.listen, listen) == 0)
            return e->running;
    }
    return NULL;
}

/* One line per reason the next side of e cannot start live; how many. */
static size_t refuse_next(const struct sidecar *sc, const struct config_plan *plan,
                          const struct route *r)
{
    size_t n = 0;
    struct http_endpoint ep;
    if (sc->publisher == NULL) {
        log_error(r->name,
                  "reload refused: the first inbound route needs the publisher's broker "
                  "connection, which is opened at start; restart (systemctl restart "
                  "amqp-sidecar@%s)",
                  sc->cfg->name);
        n++;
    }
    if (r->lease) {
        log_error(r->name, "reload refused: a route with lease = true is not started live (its "
                           "lease lives on the publisher's connection); restart");
        n++;
    }
    if (sidecar_inbound_stopping(sc, r->name)) {
        log_error(r->name, "reload refused: the route of this name that the last reload removed is "
                           "still publishing; send SIGHUP again once it logged \"stopped\"");
        n++;
    }
    if (http_endpoint_of(r, &ep)) {
        const struct http_server *s = server_at(sc, ep.listen);
        const struct route *other = running_route_at(plan, ep.listen);
        struct http_endpoint oe;
        if (sc->cfg->admin.listen && strcmp(ep.listen, sc->cfg->admin.listen) == 0 && s &&
            other == NULL) {
            log_error(r->name,
                      "reload refused: %s is the admin listener's address; a route joins it "
                      "only at start; restart, or choose another listen address",
                      ep.listen);
            n++;
        } else if (other && http_endpoint_of(other, &oe) && !listen_tls_same(oe.tls, ep.tls)) {
            log_error(r->name,
                      "reload refused: the tls of %s is not that of its running listener (route "
                      "\"%s\"); every route on one address shares its tls, and a listener's "
                      "tls changes only with a restart",
                      ep.listen, other->name);
            n++;
        }
    }
    return n;
}

/* Would next take over running's spool: both http/soap, spooling into one directory? */
static bool spool_passes(const struct route *running, const struct route *next)
{
    struct http_endpoint was, now;
    return http_endpoint_of(running, &was) && http_endpoint_of(next, &now) && was.spool_dir &&
           now.spool_dir && strcmp(was.spool_dir, now.spool_dir) == 0;
}

void sidecar_inbound_inherit(struct route *r, const struct route *replaces)
{
    if (replaces != NULL && replaces->state != NULL && spool_passes(replaces, r))
        r->state = replaces->state;
}

size_t sidecar_inbound_refusals(const struct sidecar *sc, const struct config_plan *plan)
{
    size_t n = 0;
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        if (e->change == ROUTE_UNCHANGED)
            continue;
        const struct route *old = e->running;
        if (is_inbound(old) && old->lease) {
            log_error(old->name, "reload refused: a route with lease = true is not stopped live "
                                 "(its lease lives on the publisher's connection); restart");
            n++;
        }
        /* http_front keeps a route's spool in r->state. What its journal holds is
         * forwarded by the route that runs it: a changed route with a spool in the same
         * directory takes it over; otherwise nothing would forward it. */
        struct http_endpoint ep;
        if (http_endpoint_of(old, &ep) && old->state != NULL && !spool_passes(old, e->next)) {
            log_error(old->name,
                      "reload refused: %s; what its spool holds would not be forwarded (keep "
                      "the route and its spool.dir until the spool is empty, then reload, or "
                      "restart)",
                      e->change == ROUTE_REMOVED ? "a route with a spool is removed"
                                                 : "its spool.dir changes or goes");
            n++;
        }
        if (is_inbound(e->next))
            n += refuse_next(sc, plan, e->next);
    }
    return n;
}

int sidecar_inbound_declare(struct sidecar *sc, const struct config_plan *plan, char *err,
                            size_t errlen)
{
    struct route **fresh = xcalloc(plan->n_routes + 1, sizeof(*fresh));
    struct sidecar_config some = {.routes = fresh};
    for (size_t i = 0; i < plan->n_routes; i++)
        if (plan->routes[i].change != ROUTE_UNCHANGED && is_inbound(plan->routes[i].next))
            fresh[some.n_routes++] = plan->routes[i].next;
    int rc = 0;
    if (some.n_routes > 0) {
        struct topology *t = topology_for_inbound(&some);
        rc = broker_declare_once(&sc->cfg->broker, sc->cfg->name, t, err, errlen);
        topology_free(t);
    }
    free(fresh);
    return rc;
}

/* ---- one route's stop ---------------------------------------------------------------- */

void sidecar_inbound_leave(struct sidecar *sc, struct route *r)
{
    struct http_server *s = server_of(sc, r);
    if (s != NULL)
        http_server_route_leaving(s, r); /* a new route takes its path in one step */
    else if (r->kind->drain)
        r->kind->drain(r); /* file, poll: take no more work */
}

void sidecar_inbound_unroute(struct sidecar *sc, struct route *r)
{
    struct http_server *s = server_of(sc, r);
    if (s != NULL)
        http_server_unroute(s, r);
}

bool sidecar_inbound_busy(const struct sidecar *sc, struct route *r)
{
    struct http_server *s = server_of(sc, r);
    if (s != NULL)
        return http_server_route_busy(s, r);
    return r->kind->busy && r->kind->busy(r);
}

static void retire(struct sidecar *sc, struct route *r)
{
    r->sc = NULL; /* stopped: shutdown_all must not stop it again */
    sc->retired = xrealloc(sc->retired, (sc->n_retired + 1) * sizeof(*sc->retired));
    sc->retired[sc->n_retired++] = r;
}

void sidecar_inbound_abandon(struct sidecar *sc, struct route *r)
{
    sidecar_inbound_unroute(sc, r);
    if (r->kind->stop)
        r->kind->stop(r);
    retire(sc, r);
}

static void reap_tick(struct loop *loop, void *arg);

static void reap_soon(struct sidecar *sc)
{
    if (!sc->reaping)
        loop_timer(sc->loop, REAP_MS, reap_tick, sc);
    sc->reaping = true;
}

bool sidecar_inbound_stop(struct sidecar *sc, struct route *r)
{
    struct http_server *s = server_of(sc, r);
    if (s != NULL) {
        /* An upload still arriving gets 503 when complete; answers owed still go out
         * (the kind's stop frees nothing they use: the route lives on, retired). */
        http_server_unroute(s, r);
        http_server_route_gone(s, r);
    } else if (r->kind->busy && r->kind->busy(r)) {
        /* Its publishes' answers come to its thread, which the kind's stop ends. */
        log_error(r->name, "reload: still publishing after drain_timeout; it stops once its "
                           "last publish is answered");
        sc->stopping = xrealloc(sc->stopping, (sc->n_stopping + 1) * sizeof(*sc->stopping));
        sc->stopping[sc->n_stopping++] = r;
        reap_soon(sc);
        return false;
    }
    if (r->kind->stop)
        r->kind->stop(r);
    retire(sc, r);
    log_info(r->name, "stopped for the reload");
    return true;
}

/* ---- listeners ------------------------------------------------------------------------ */

int sidecar_inbound_listen(struct sidecar *sc, struct route *r, char *err, size_t errlen)
{
    struct http_server *s = server_of(sc, r);
    if (s == NULL || http_server_started(s))
        return 0;
    http_server_set_limits(s, &sc->route_limits);
    if (http_server_start(s, broker_loop(sc->publisher_broker), err, errlen) == 0) {
        log_info(r->name,
                 "listening on %s (a new listener; its connection limit is the one the "
                 "route listeners got at start)",
                 http_server_listen(s));
        return 0;
    }
    /* Nothing listens: the route goes, and the server with it. */
    http_server_unroute(s, r);
    for (size_t i = 0; i < sc->n_servers; i++)
        if (sc->servers[i] == s)
            sc->servers[i] = sc->servers[--sc->n_servers];
    http_server_free(s);
    return -1;
}

void sidecar_inbound_close_unused(struct sidecar *sc)
{
    for (size_t i = sc->n_servers; i-- > 0;) {
        struct http_server *s = sc->servers[i];
        const char *admin = sc->cfg->admin.listen;
        if (http_server_n_routes(s) > 0 || (admin && strcmp(http_server_listen(s), admin) == 0))
            continue;
        sc->servers[i] = sc->servers[--sc->n_servers];
        if (!http_server_started(s)) {
            http_server_free(s);
            continue;
        }
        http_server_quiesce(s); /* closes the listen socket; what it took is answered */
        log_info(NULL, "reload: %s has no route left; it closes once its requests are answered",
                 http_server_listen(s));
        sc->closing = xrealloc(sc->closing, (sc->n_closing + 1) * sizeof(*sc->closing));
        sc->closing[sc->n_closing++] = s;
        reap_soon(sc);
    }
}

static void reap_tick(struct loop *loop, void *arg)
{
    struct sidecar *sc = arg;
    sc->reaping = false;
    if (sc->draining)
        return; /* shutdown stops and closes what is left */
    for (size_t i = sc->n_stopping; i-- > 0;) {
        struct route *r = sc->stopping[i];
        if (r->kind->busy && r->kind->busy(r))
            continue;
        sc->stopping[i] = sc->stopping[--sc->n_stopping];
        if (r->kind->stop)
            r->kind->stop(r);
        retire(sc, r);
        log_info(r->name, "stopped (its last publish was answered)");
    }
    for (size_t i = sc->n_closing; i-- > 0;) {
        struct http_server *s = sc->closing[i];
        if (http_server_active(s) > 0)
            continue;
        sc->closing[i] = sc->closing[--sc->n_closing];
        log_info(NULL, "reload: %s closed", http_server_listen(s));
        http_server_close(s);
    }
    if (sc->n_stopping > 0 || sc->n_closing > 0)
        reap_soon(sc);
}

/* ---- the set changed -------------------------------------------------------------------- */

void sidecar_inbound_gauges(struct sidecar *sc, struct route *r)
{
    struct sidecar_config one = {.routes = &r, .n_routes = 1};
    struct topology *t = topology_for_inbound(&one);
    queue_watch_gauges(t, &r, 1);
    topology_free(t);
}

struct watch_swap {
    struct sidecar *sc;
    struct route **inbound;
    size_t n;
};

static void swap_watch_on_thread(void *arg)
{
    struct watch_swap *w = arg;
    queue_watch_set_routes(w->sc->publisher_watch, w->inbound, w->n);
}

void sidecar_inbound_set_changed(struct sidecar *sc)
{
    if (sc->publisher_broker == NULL)
        return;
    struct watch_swap w = {.sc = sc, .inbound = xcalloc(sc->cfg->n_routes + 1, sizeof(*w.inbound))};
    for (size_t i = 0; i < sc->cfg->n_routes; i++)
        if (is_inbound(sc->cfg->routes[i]))
            w.inbound[w.n++] = sc->cfg->routes[i];
    loop_call(broker_loop(sc->publisher_broker), swap_watch_on_thread, &w);
    free(w.inbound);
    /* Declared on every later connect: the new routes' queues, not the old ones'. */
    broker_set_topology(sc->publisher_broker, topology_for_inbound(sc->cfg));
}

void sidecar_inbound_shutdown(struct sidecar *sc)
{
    for (size_t i = 0; i < sc->n_closing; i++)
        http_server_free(sc->closing[i]); /* the publisher's loop has ended */
    free(sc->closing);
    for (size_t i = 0; i < sc->n_stopping; i++) {
        if (sc->stopping[i]->kind->stop)
            sc->stopping[i]->kind->stop(sc->stopping[i]);
        retire(sc, sc->stopping[i]);
    }
    free(sc->stopping);
    for (size_t i = 0; i < sc->n_retired; i++) {
        queue_watch_gauges_free(sc->retired[i]);
        config_route_free(sc->retired[i]);
    }
    free(sc->retired);
}
