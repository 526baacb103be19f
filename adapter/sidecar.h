/*
 * sidecar — the process: one context (no other globals) that owns the
 * config, the broker connections, the HTTP servers and every route, and
 * runs the main thread's loop (signals, readiness, periodic summaries,
 * systemd notifications).
 *
 * Threads, all named here: the main thread (this loop); one broker thread
 * for the shared inbound publisher; one thread per outbound route (its own
 * connection, consumer and HTTP client); libmicrohttpd's threads per listen
 * address; the threads inbound kinds start for themselves (file, poll); and,
 * with otel set, the trace exporter's thread (otel.h).
 */
#ifndef SIDECAR_SIDECAR_H
#define SIDECAR_SIDECAR_H

#include "config.h"
#include "httpd.h"
#include "metrics.h"
#include "route.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct broker;
struct buf;
struct http_server;
struct listen_tls_config;
struct loop;
struct publisher;
struct lease_set;
struct queue_watch;
struct status;
struct summary_snapshot;

struct outbound_runtime {
    struct route *route;
    struct broker *broker;
    struct publisher *publisher; /* of the route's own connection */
    struct consumer *consumer;
    struct queue_watch *watch; /* the depths of the route's queues, on its connection */
    struct connection_metrics connection;
};

struct sidecar {
    struct sidecar_config *cfg;
    struct loop *loop;                   /* the main thread's */
    struct broker *publisher_broker;     /* NULL without inbound routes */
    struct publisher *publisher;         /* the inbound routes' publisher, on publisher_broker */
    struct queue_watch *publisher_watch; /* the inbound DLQs' depths, on publisher_broker */
    struct outbound_runtime **outbound;  /* each on the heap: its threads hold it */
    struct lease_set *leases;            /* routes with lease = true, on publisher_broker */
    size_t n_outbound;
    struct http_server **servers;
    size_t n_servers;
    struct http_limits route_limits; /* what plan_listeners gave each route listener */
    /* SIGHUP (sidecar_inbound.c), main thread only: */
    struct route **retired;  /* inbound routes out of the set, kept until exit: late */
    size_t n_retired;        /* answers, the publisher and old topologies name them */
    struct route **stopping; /* inbound routes drained, still publishing past drain_timeout */
    size_t n_stopping;
    struct http_server **closing; /* listeners whose last route went, still answering */
    size_t n_closing;
    bool reaping; /* the timer that stops and closes those is set */
    struct process_metrics metrics;
    struct connection_metrics publisher_connection;
    struct connection_metrics **connections; /* every broker's gauge, for /metrics */
    size_t n_connections;
    struct metrics_sources metrics_sources; /* what /metrics renders */
    int64_t started_ms;
    bool draining;
    bool ready_notified;
    char fatal[1024];
    int signal_fd;
    struct summary_snapshot *summary; /* counts at the last periodic summary */
    int64_t summary_ms;               /* when it was taken (start, at first) */
    struct route_services services;   /* what every route's kind may ask of the process */
    struct status *status;            /* what the status page shows beyond the metrics */
    /* The route set (cfg->routes, outbound, connections, metrics_sources)
     * changes only on the main thread (SIGHUP, reload.c), with this held for
     * writing; other threads that walk it hold it for reading
     * (sidecar_routes_read_lock). The main thread reads it without. */
    pthread_rwlock_t routes_lock;
};

/* Any thread but the main one: around a walk of the route set. */
void sidecar_routes_read_lock(struct sidecar *sc);
void sidecar_routes_read_unlock(struct sidecar *sc);

/* The server for `listen`, created on first use (started by sidecar_run), with
 * the listener's tls (NULL: plain HTTP; see http_server_set_tls). NULL with err. */
struct http_server *sidecar_http_server(struct sidecar *sc, const char *listen,
                                        const struct listen_tls_config *tls, char *err,
                                        size_t errlen);

/* Runs until SIGTERM/SIGINT or a fatal error. Returns the exit code. */
int sidecar_run(struct sidecar_config *cfg);

/* Any thread: everything up? detail (optional) receives a JSON object. */
bool sidecar_ready(struct sidecar *sc, struct buf *detail);

/* Any thread: can route r work now? If not, why (its broker connection, an
 * open circuit, the kind's own reason) is appended to why. */
bool sidecar_route_ready(struct sidecar *sc, struct route *r, struct buf *why);

/* Any thread: a fatal problem (logged); the process exits 1. */
void sidecar_fatal(struct sidecar *sc, const char *why);

#endif
