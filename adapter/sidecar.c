/*
 * sidecar — start everything in order, run the main loop, drain on SIGTERM.
 * (About 670 lines: start, readiness, drain and shutdown walk the same list
 * of brokers, routes and listeners, in orders that depend on each other.)
 *
 * Start: inbound routes get the shared publisher (its broker connects in
 * the background); each outbound route gets its own broker, consumer and
 * thread; kinds register paths on HTTP servers, which start listening last,
 * with connection limits that fit the fd limit (raised to its hard limit
 * first; see fd_budget.h) and an admin listener that keeps its own budget.
 * Signals are blocked in every thread and read here through a signalfd, so a
 * handler never runs in the middle of anything.
 *
 * Drain (SIGTERM/SIGINT): stop accepting (listeners quiesce, consumers
 * cancel, file and poll routes stop picking up work), wait until nothing is
 * in flight — every HTTP request answered, every publish confirmed, every
 * delivery settled — or drain_timeout passes, then close the connections and
 * free everything. Exit 0 when drained, 1 when the deadline cut work short.
 */
#include "sidecar.h"
#include "sidecar_internal.h"

#include "admin.h"
#include "broker.h"
#include "consumer.h"
#include "fd_budget.h"
#include "httpd.h"
#include "lease.h"
#include "log.h"
#include "loop.h"
#include "oauth2.h"
#include "otel.h"
#include "publisher.h"
#include "queue_watch.h"
#include "status.h"
#include "route.h"
#include "topology.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define SUMMARY_INTERVAL_MS 60000
#define READY_CHECK_MS      200
#define LOG_FLUSH_MS        5000 /* summaries of suppressed log lines, once a flood stopped */

struct http_server *sidecar_http_server(struct sidecar *sc, const char *listen,
                                        const struct listen_tls_config *tls, char *err,
                                        size_t errlen)
{
    for (size_t i = 0; i < sc->n_servers; i++)
        if (strcmp(http_server_listen(sc->servers[i]), listen) == 0)
            return http_server_set_tls(sc->servers[i], tls, err, errlen) == 0 ? sc->servers[i]
                                                                              : NULL;
    struct http_server *s = http_server_new(listen, err, errlen);
    if (s == NULL)
        return NULL;
    sc->servers = xrealloc(sc->servers, (sc->n_servers + 1) * sizeof(*sc->servers));
    sc->servers[sc->n_servers++] = s;
    return http_server_set_tls(s, tls, err, errlen) == 0 ? s : NULL;
}

void sidecar_routes_read_lock(struct sidecar *sc)
{
    pthread_rwlock_rdlock(&sc->routes_lock);
}

void sidecar_routes_read_unlock(struct sidecar *sc)
{
    pthread_rwlock_unlock(&sc->routes_lock);
}

/* ---- fatal errors from other threads ------------------------------------------ */

static void fatal_on_main(void *arg)
{
    struct sidecar *sc = arg;
    loop_stop(sc->loop);
}

void sidecar_fatal(struct sidecar *sc, const char *why)
{
    if (sc->fatal[0] == '\0')
        snprintf(sc->fatal, sizeof(sc->fatal), "%s", why);
    loop_post(sc->loop, fatal_on_main, sc);
}

static void on_broker_fatal(void *arg, const char *why)
{
    sidecar_fatal(arg, why);
}

static void on_route_fatal(struct route *r, const char *why)
{
    sidecar_fatal(r->sc, why);
}

static struct http_server *route_http_server(struct route *r, const char *listen,
                                             const struct listen_tls_config *tls, char *err,
                                             size_t errlen)
{
    return sidecar_http_server(r->sc, listen, tls, err, errlen);
}

/* ---- readiness ------------------------------------------------------------------ */

bool sidecar_route_ready(struct sidecar *sc, struct route *r, struct buf *why)
{
    if (r->direction == ROUTE_OUTBOUND) {
        for (size_t i = 0; i < sc->n_outbound; i++) {
            if (sc->outbound[i]->route != r)
                continue;
            if (!broker_is_up(sc->outbound[i]->broker)) {
                char desc[512];
                broker_describe(sc->outbound[i]->broker, desc, sizeof(desc));
                buf_puts(why, desc);
                return false;
            }
            if (!consumer_ready(sc->outbound[i]->consumer, why))
                return false;
        }
    } else if (sc->publisher_broker && !broker_is_up(sc->publisher_broker)) {
        buf_puts(why, "the publisher's broker connection is down");
        if (!(r->kind->spools && r->kind->spools(r)))
            return false;
        buf_puts(why, ": requests are spooled; ");
    } else if (sc->publisher_broker && broker_is_blocked(sc->publisher_broker)) {
        /* Every request would get 503 now: a load balancer should send them elsewhere. */
        if (!(r->kind->spools && r->kind->spools(r))) {
            buf_puts(why, "the broker is blocking publishes (resource alarm): requests get 503");
            return false;
        }
        buf_puts(why, "the broker is blocking publishes (resource alarm): requests are spooled; ");
    }
    if (r->kind->ready && !r->kind->ready(r, why))
        return false;
    if (r->lease_handle && lease_role(r->lease_handle) == LEASE_STANDBY)
        buf_printf(why, "%sstandby: another sidecar holds the lease %s", why->len ? "; " : "",
                   r->lease_queue); /* ready all the same: waiting is its job now */
    return true;
}

bool sidecar_ready(struct sidecar *sc, struct buf *detail)
{
    bool all = !sc->draining;
    struct buf routes = {0};
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        struct buf why = {0};
        bool ok = sidecar_route_ready(sc, r, &why);
        all = all && ok;
        if (detail) {
            buf_printf(&routes, "%s\"%s\":{\"kind\":\"%s\",\"direction\":\"%s\",\"ready\":%s",
                       i ? "," : "", r->name, r->kind->name, route_direction_name(r->direction),
                       ok ? "true" : "false");
            if (r->lease_handle)
                buf_printf(&routes, ",\"lease\":\"%s\"",
                           lease_role_name(lease_role(r->lease_handle)));
            if (why.len) {
                buf_puts(&routes, ",\"detail\":");
                buf_json_string(&routes, why.data);
            }
            buf_puts(&routes, "}");
        }
        buf_free(&why);
    }
    if (detail) {
        buf_printf(detail, "{\"status\":\"%s\"",
                   all            ? "ready"
                   : sc->draining ? "draining"
                                  : "not ready");
        if (sc->publisher_broker) {
            char desc[512];
            broker_describe(sc->publisher_broker, desc, sizeof(desc));
            buf_puts(detail, ",\"publisher\":");
            buf_json_string(detail, desc);
        }
        buf_printf(detail, ",\"routes\":{%s}}\n", routes.data ? routes.data : "");
    }
    buf_free(&routes);
    return all;
}

/* ---- periodic work on the main loop ----------------------------------------------- */

/* The summary line counts events in its interval (a confirm of a message received
 * in the previous one counts in this one, so confirmed may exceed received) and
 * adds in_flight, a gauge at the time of the line: inbound, publishes awaiting the
 * broker's answer; outbound, deliveries taken and not yet settled. */
struct summary_snapshot {
    uint64_t received, confirmed, returned, failed, delivered, retries, dead;
    int64_t in_flight;
};

static uint64_t dead_total(const struct route_metrics *m)
{
    uint64_t n = 0;
    for (int i = 0; i < DEAD_REASONS; i++)
        n += metric_get(((struct route_metrics *)m)->dead[i]);
    return n;
}

static void summary_tick(struct loop *loop, void *arg)
{
    struct sidecar *sc = arg;
    if (sc->summary == NULL)
        sc->summary = xcalloc(sc->cfg->n_routes, sizeof(*sc->summary));
    struct summary_snapshot *last = sc->summary;
    /* The interval really covered: 60 s, or less for the closing summary at exit. */
    int64_t now_ms = loop_now_ms();
    int seconds = (int)((now_ms - sc->summary_ms + 500) / 1000);
    sc->summary_ms = now_ms;
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        struct route_metrics *m = &r->metrics;
        struct summary_snapshot now = {
            .received = metric_get(m->received),
            .confirmed = metric_get(m->confirmed),
            .returned = metric_get(m->returned),
            .failed = metric_get(m->publish_failed) + metric_get(m->nacked),
            .delivered = metric_get(m->delivered),
            .retries = metric_get(m->retries),
            .dead = dead_total(m),
            .in_flight = r->direction == ROUTE_INBOUND ? atomic_load(&m->publishing)
                                                       : atomic_load(&m->inflight),
        };
        struct summary_snapshot *was = &last[i];
        if (memcmp(&now, was, sizeof(now)) != 0) {
            if (r->direction == ROUTE_INBOUND)
                log_info(r->name,
                         "last %ds: received=%llu confirmed=%llu unroutable=%llu failed=%llu "
                         "in_flight=%lld",
                         seconds, (unsigned long long)(now.received - was->received),
                         (unsigned long long)(now.confirmed - was->confirmed),
                         (unsigned long long)(now.returned - was->returned),
                         (unsigned long long)(now.failed - was->failed), (long long)now.in_flight);
            else
                log_info(r->name,
                         "last %ds: received=%llu delivered=%llu retried=%llu dead_lettered=%llu "
                         "in_flight=%lld",
                         seconds, (unsigned long long)(now.received - was->received),
                         (unsigned long long)(now.delivered - was->delivered),
                         (unsigned long long)(now.retries - was->retries),
                         (unsigned long long)(now.dead - was->dead), (long long)now.in_flight);
        }
        *was = now;
    }
    if (!sc->draining)
        loop_timer(loop, SUMMARY_INTERVAL_MS, summary_tick, sc);
}

void sidecar_summary_follow(struct sidecar *sc, struct route *const *was, size_t n_was)
{
    if (sc->summary == NULL)
        return;
    struct summary_snapshot *now = xcalloc(sc->cfg->n_routes + 1, sizeof(*now));
    for (size_t i = 0; i < sc->cfg->n_routes; i++)
        for (size_t j = 0; j < n_was; j++)
            if (was[j] == sc->cfg->routes[i])
                now[i] = sc->summary[j];
    free(sc->summary);
    sc->summary = now;
}

/* Started: every broker connection is open. systemd's READY=1 waits for this,
 * not for the legacy side (a legacy API that is down at boot must not make the
 * unit fail to start: the route retries and /readyz says why). */
static bool connections_up(struct sidecar *sc)
{
    if (sc->publisher_broker && !broker_is_up(sc->publisher_broker))
        return false;
    for (size_t i = 0; i < sc->n_outbound; i++)
        if (!broker_is_up(sc->outbound[i]->broker))
            return false;
    return true;
}

static void ready_tick(struct loop *loop, void *arg)
{
    struct sidecar *sc = arg;
    if (sc->draining)
        return;
    if (!sc->ready_notified && connections_up(sc)) {
        sc->ready_notified = true;
        log_info(NULL, "ready: broker connected and %zu route(s) running", sc->cfg->n_routes);
        sd_notify(0, "READY=1\nSTATUS=ready");
    }
    loop_timer(loop, READY_CHECK_MS, ready_tick, sc);
}

static void status_tick(struct loop *loop, void *arg)
{
    struct sidecar *sc = arg;
    status_sample(sc->status);
    loop_timer(loop, STATUS_SAMPLE_MS, status_tick, sc);
}

static void log_flush_tick(struct loop *loop, void *arg)
{
    log_flush_suppressed(false);
    loop_timer(loop, LOG_FLUSH_MS, log_flush_tick, arg);
}

static void watchdog_tick(struct loop *loop, void *arg)
{
    uint64_t usec = (uint64_t)(uintptr_t)arg;
    sd_notify(0, "WATCHDOG=1");
    loop_timer(loop, (int64_t)(usec / 2000), watchdog_tick, arg);
}

static void on_signal(struct loop *loop, int fd, short revents, void *arg)
{
    struct sidecar *sc = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            sidecar_reload(sc);
        } else {
            log_info(NULL, "%s received: draining", strsignal((int)si.ssi_signo));
            loop_stop(loop);
        }
    }
}

/* ---- start -------------------------------------------------------------------------- */

static int start_inbound(struct sidecar *sc, char *err, size_t errlen)
{
    bool any = false;
    for (size_t i = 0; i < sc->cfg->n_routes; i++)
        any = any || sc->cfg->routes[i]->direction == ROUTE_INBOUND;
    if (!any)
        return 0;
    snprintf(sc->publisher_connection.name, sizeof(sc->publisher_connection.name), "publisher");
    sc->connections[sc->n_connections++] = &sc->publisher_connection;
    struct broker_events ev = {.fatal = on_broker_fatal,
                               .arg = sc,
                               .metrics = &sc->metrics,
                               .connection = &sc->publisher_connection};
    struct topology *topo = topology_for_inbound(sc->cfg);
    struct route **inbound = xcalloc(sc->cfg->n_routes, sizeof(*inbound));
    size_t n_inbound = 0;
    for (size_t i = 0; i < sc->cfg->n_routes; i++)
        if (sc->cfg->routes[i]->direction == ROUTE_INBOUND)
            inbound[n_inbound++] = sc->cfg->routes[i];
    queue_watch_gauges(topo, inbound, n_inbound);
    sc->publisher_watch = queue_watch_new("publisher", inbound, n_inbound,
                                          (int64_t)(sc->cfg->admin.queue_interval * 1000));
    free(inbound);
    sc->publisher_broker = broker_new("publisher", sc->cfg->name, &sc->cfg->broker, topo, &ev);
    sc->publisher = publisher_new("publisher", &sc->cfg->broker, broker_loop(sc->publisher_broker),
                                  &sc->metrics);
    broker_attach(sc->publisher_broker, publisher_client(sc->publisher));
    broker_attach(sc->publisher_broker, queue_watch_client(sc->publisher_watch));
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        if (r->direction != ROUTE_INBOUND || !r->lease)
            continue;
        if (sc->leases == NULL) {
            sc->leases = lease_set_new("publisher");
            broker_attach(sc->publisher_broker, lease_set_client(sc->leases));
        }
        lease_set_add(sc->leases, r); /* before start: the kind waits for the lease */
    }
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        if (r->direction == ROUTE_INBOUND && sidecar_inbound_start(sc, r, err, errlen) != 0)
            return -1;
    }
    return broker_start(sc->publisher_broker) == 0 ? 0 : -1;
}

static int start_outbound(struct sidecar *sc, char *err, size_t errlen)
{
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        if (r->direction != ROUTE_OUTBOUND)
            continue;
        struct outbound_runtime *o = sidecar_outbound_start(sc, r, err, errlen);
        if (o == NULL)
            return -1;
        sc->outbound[sc->n_outbound++] = o;
        sc->connections[sc->n_connections++] = &o->connection;
    }
    return 0;
}

/* ---- drain ---------------------------------------------------------------------------- */

static bool busy(struct sidecar *sc, struct buf *why)
{
    for (size_t i = 0; i < sc->n_servers; i++)
        if (http_server_active(sc->servers[i]) > 0)
            buf_printf(why, " http %s: %zu request(s);", http_server_listen(sc->servers[i]),
                       http_server_active(sc->servers[i]));
    for (size_t i = 0; i < sc->n_closing; i++) /* a reload closes them */
        if (http_server_active(sc->closing[i]) > 0)
            buf_printf(why, " http %s: %zu request(s);", http_server_listen(sc->closing[i]),
                       http_server_active(sc->closing[i]));
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        if (r->direction == ROUTE_INBOUND && r->kind->busy && r->kind->busy(r))
            buf_printf(why, " %s: work in flight;", r->name);
    }
    for (size_t i = 0; i < sc->n_stopping; i++) /* a reload stops them */
        if (sc->stopping[i]->kind->busy(sc->stopping[i]))
            buf_printf(why, " %s: work in flight;", sc->stopping[i]->name);
    if (sc->publisher && !publisher_idle(sc->publisher))
        buf_puts(why, " publishes awaiting confirms;");
    for (size_t i = 0; i < sc->n_outbound; i++)
        if (sidecar_outbound_busy(sc->outbound[i]))
            buf_printf(why, " %s: deliveries in flight;", sc->outbound[i]->route->name);
    return why->len > 0;
}

static bool busy_all(void *arg, struct buf *why)
{
    return busy(arg, why);
}

bool sidecar_wait_idle(struct sidecar *sc, bool (*busy_fn)(void *arg, struct buf *why), void *arg,
                       const char *prefix)
{
    int64_t deadline = loop_now_ms() + (int64_t)(sc->cfg->drain_timeout * 1000);
    int64_t next_log = loop_now_ms() + 2000;
    for (;;) {
        struct buf why = {0};
        if (!busy_fn(arg, &why)) {
            buf_free(&why);
            return true;
        }
        if (loop_now_ms() >= deadline) {
            log_error(NULL,
                      "%sdrain_timeout (%.0fs) passed with work in flight:%s closing anyway "
                      "(unconfirmed input was not acknowledged and will be retried)",
                      prefix, sc->cfg->drain_timeout, why.data);
            buf_free(&why);
            return false;
        }
        if (loop_now_ms() >= next_log) {
            log_info(NULL, "%sdraining:%s", prefix, why.data);
            next_log = loop_now_ms() + 2000;
        }
        buf_free(&why);
        sd_notify(0, "WATCHDOG=1"); /* the main loop waits here, not in its loop */
        poll(NULL, 0, 20);
    }
}

/* Does a route listen where the admin endpoint does? */
static bool admin_listener_shared(const struct sidecar *sc)
{
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        const struct route *r = sc->cfg->routes[i];
        struct http_endpoint e = {0};
        if (r->kind->endpoint && r->kind->endpoint(r, &e) && e.listen &&
            strcmp(e.listen, sc->cfg->admin.listen) == 0)
            return true;
    }
    return false;
}

static bool drain(struct sidecar *sc)
{
    sc->draining = true;
    /* The admin endpoint keeps answering (/readyz says "draining") unless it
     * shares its listener with a route. */
    for (size_t i = 0; i < sc->n_servers; i++)
        if (sc->cfg->admin.listen == NULL ||
            strcmp(http_server_listen(sc->servers[i]), sc->cfg->admin.listen) != 0 ||
            admin_listener_shared(sc))
            http_server_quiesce(sc->servers[i]);
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        if (r->direction == ROUTE_INBOUND && r->kind->drain)
            r->kind->drain(r);
    }
    for (size_t i = 0; i < sc->n_outbound; i++)
        sidecar_outbound_drain(sc->outbound[i]);

    return sidecar_wait_idle(sc, busy_all, sc, "");
}

static void shutdown_all(struct sidecar *sc)
{
    for (size_t i = 0; i < sc->n_outbound; i++)
        broker_stop(sc->outbound[i]->broker);
    if (sc->publisher_broker)
        broker_stop(sc->publisher_broker);
    for (size_t i = 0; i < sc->n_servers; i++)
        http_server_quiesce(sc->servers[i]);
    for (size_t i = 0; i < sc->cfg->n_routes; i++) {
        struct route *r = sc->cfg->routes[i];
        if (r->sc != NULL && r->kind->stop)
            r->kind->stop(r);
    }
    for (size_t i = 0; i < sc->n_servers; i++)
        http_server_free(sc->servers[i]);
    free(sc->servers);
    for (size_t i = 0; i < sc->n_outbound; i++)
        sidecar_outbound_free(sc->outbound[i]);
    free(sc->outbound);
    broker_free(sc->publisher_broker);
    publisher_free(sc->publisher);
    queue_watch_free(sc->publisher_watch);
    lease_set_free(sc->leases);
    for (size_t i = 0; i < sc->cfg->n_routes; i++) /* no listener reads them now */
        queue_watch_gauges_free(sc->cfg->routes[i]);
    sidecar_inbound_shutdown(sc); /* what reloads left: closing listeners, retired routes */
}

/* ---- listeners' limits ------------------------------------------------------------ */

static bool is_admin_only(const struct sidecar *sc, const struct http_server *s)
{
    return sc->cfg->admin.listen != NULL &&
           strcmp(http_server_listen(s), sc->cfg->admin.listen) == 0 && !admin_listener_shared(sc);
}

/* Raises the fd limit, then gives each listener its limits: the route
 * listeners share what the reserve leaves; the admin-only listener keeps its
 * own small budget, counted in the reserve, so /readyz answers under attack. */
static void plan_listeners(struct sidecar *sc)
{
    const struct http_listener_config *h = &sc->cfg->http;
    unsigned long was = 0;
    unsigned long limit = fd_budget_raise_limit(&was);
    struct fd_needs needs = {.servers = sc->n_servers, .routes = sc->cfg->n_routes};
    size_t n_route_listeners = 0;
    for (size_t i = 0; i < sc->n_servers; i++) {
        if (is_admin_only(sc, sc->servers[i]))
            needs.admin_connections = (unsigned)sc->cfg->admin.max_connections;
        else
            n_route_listeners++;
    }
    for (size_t i = 0; i < sc->cfg->n_routes; i++)
        if (sc->cfg->routes[i]->direction == ROUTE_OUTBOUND)
            needs.outbound_concurrency += (unsigned)sc->cfg->routes[i]->concurrency;
    unsigned long reserve = fd_budget_reserve(&needs);
    unsigned want = (unsigned)h->max_connections;
    unsigned each = fd_budget_per_listener(limit, reserve, n_route_listeners, want);
    sc->route_limits = (struct http_limits){
        .max_connections = each,
        .max_per_ip = (unsigned)h->max_connections_per_ip,
        .read_timeout = h->read_timeout,
        .idle_timeout = h->idle_timeout,
    };

    for (size_t i = 0; i < sc->n_servers; i++) {
        bool admin = is_admin_only(sc, sc->servers[i]);
        struct http_limits l = sc->route_limits;
        if (admin) {
            l.max_connections = (unsigned)sc->cfg->admin.max_connections;
            l.max_per_ip = 0;
        }
        http_server_set_limits(sc->servers[i], &l);
    }
    if (was != limit)
        log_info(NULL, "file descriptor limit (RLIMIT_NOFILE) raised from %lu to %lu", was, limit);
    if (n_route_listeners == 0)
        return;
    if (each < want)
        log_warn(NULL,
                 "http.max_connections lowered from %u to %u per route listener: RLIMIT_NOFILE "
                 "is %lu, %lu of them kept for the broker, HTTP calls, files and the admin "
                 "listener, %zu route listener(s) share the rest; raise LimitNOFILE= to serve more",
                 want, each, limit, reserve, n_route_listeners);
    log_info(NULL,
             "http: %zu route listener(s), each max_connections=%u max_connections_per_ip=%d "
             "read_timeout=%gs idle_timeout=%gs; %lu of RLIMIT_NOFILE %lu kept for the rest",
             n_route_listeners, each, h->max_connections_per_ip, h->read_timeout, h->idle_timeout,
             reserve, limit);
}

int sidecar_run(struct sidecar_config *cfg)
{
    struct sidecar sc = {.cfg = cfg, .started_ms = loop_now_ms(), .signal_fd = -1};
    sc.summary_ms = sc.started_ms;
    sc.services = (struct route_services){.state_dir = cfg->state_dir,
                                          .publish_window = (size_t)cfg->broker.max_inflight,
                                          .oauth2 = oauth2_registry_new(),
                                          .fatal = on_route_fatal,
                                          .http_server = route_http_server};
    sc.loop = loop_new();
    pthread_rwlock_init(&sc.routes_lock, NULL);
    sc.outbound = xcalloc(cfg->n_routes, sizeof(*sc.outbound));
    sc.connections = xcalloc(cfg->n_routes + 1, sizeof(*sc.connections));
    sc.metrics_sources = (struct metrics_sources){.system = cfg->name,
                                                  .started_ms = sc.started_ms,
                                                  .process = &sc.metrics,
                                                  .routes = cfg->routes,
                                                  .n_routes = cfg->n_routes,
                                                  .connections = sc.connections};

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before any thread: they all inherit it */
    signal(SIGPIPE, SIG_IGN);
    sc.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    log_info(NULL, "amqp-sidecar %s starting for \"%s\" with %zu route(s)", SIDECAR_VERSION,
             cfg->name, cfg->n_routes);
    sc.status = status_new(&sc); /* before any thread: it hears their warnings */
    sc.services.otel = otel_new(&cfg->otel, cfg->name, &sc.metrics.otel);
    char err[1024] = "";
    int code = 0;
    if (start_inbound(&sc, err, sizeof(err)) != 0 || start_outbound(&sc, err, sizeof(err)) != 0 ||
        admin_start(&sc, err, sizeof(err)) != 0) {
        log_error(NULL, "cannot start: %s", err);
        code = 1;
    }
    sc.metrics_sources.n_connections = sc.n_connections; /* before any listener serves */
    if (code == 0)
        plan_listeners(&sc);
    for (size_t i = 0; code == 0 && i < sc.n_servers; i++) {
        /* Route listeners run in the publisher's loop; the admin-only one on its own. */
        struct loop *loop = is_admin_only(&sc, sc.servers[i]) || sc.publisher_broker == NULL
                                ? NULL
                                : broker_loop(sc.publisher_broker);
        if (http_server_start(sc.servers[i], loop, err, sizeof(err)) != 0) {
            log_error(NULL, "cannot start: %s", err);
            code = 1;
        }
    }

    if (code == 0) {
        sc.services.running = true; /* starts from now on are SIGHUP's */
        loop_watch(sc.loop, sc.signal_fd, POLLIN, on_signal, &sc);
        loop_timer(sc.loop, SUMMARY_INTERVAL_MS, summary_tick, &sc);
        loop_timer(sc.loop, 0, ready_tick, &sc);
        loop_timer(sc.loop, LOG_FLUSH_MS, log_flush_tick, &sc);
        loop_timer(sc.loop, STATUS_SAMPLE_MS, status_tick, &sc);
        uint64_t wd_usec = 0;
        if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0)
            loop_timer(sc.loop, 0, watchdog_tick, (void *)(uintptr_t)wd_usec);
        loop_run(sc.loop);

        if (sc.fatal[0]) {
            log_error(NULL, "stopping: %s", sc.fatal);
            code = 1;
        } else {
            sd_notify(0, "STOPPING=1");
            code = drain(&sc) ? 0 : 1;
        }
    }
    sc.draining = true;
    shutdown_all(&sc);
    summary_tick(sc.loop, &sc);
    if (sc.signal_fd >= 0)
        close(sc.signal_fd);
    loop_free(sc.loop);
    oauth2_registry_free(sc.services.oauth2); /* every route stopped: no client is left */
    otel_free(sc.services.otel);              /* every route stopped: the last spans are exported */
    free(sc.summary);
    free(sc.connections);
    status_free(sc.status); /* every thread is gone: nothing logs into it any more */
    pthread_rwlock_destroy(&sc.routes_lock);
    log_flush_suppressed(true);
    log_info(NULL, "stopped (exit %d)", code);
    return code;
}
