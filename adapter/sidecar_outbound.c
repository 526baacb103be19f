/*
 * sidecar_outbound — one outbound route's runtime: its own broker connection
 * and thread, carrying its publisher (retries, dead letters, replies), its
 * consumer and the watch of its queues (see sidecar_internal.h). `run`
 * starts one per outbound route; SIGHUP starts, drains and stops them one at
 * a time, so the other routes' connections are never touched.
 */
#include "sidecar_internal.h"

#include "log.h"

#include "broker.h"
#include "consumer.h"
#include "loop.h"
#include "publisher.h"
#include "queue_watch.h"
#include "route.h"
#include "topology.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static void on_broker_fatal(void *arg, const char *why)
{
    sidecar_fatal(arg, why);
}

struct outbound_runtime *sidecar_outbound_start(struct sidecar *sc, struct route *r, char *err,
                                                size_t errlen)
{
    struct outbound_runtime *o = xcalloc(1, sizeof(*o));
    o->route = r;
    snprintf(o->connection.name, sizeof(o->connection.name), "%s", r->name);
    struct broker_events ev = {
        .fatal = on_broker_fatal, .arg = sc, .metrics = &sc->metrics, .connection = &o->connection};
    struct topology *topo = topology_for_route(sc->cfg, r);
    queue_watch_gauges(topo, &r, 1);
    o->watch = queue_watch_new(r->name, &r, 1, (int64_t)(sc->cfg->admin.queue_interval * 1000));
    o->broker = broker_new(r->name, sc->cfg->name, &sc->cfg->broker, topo, &ev);
    /* The route's connection carries its publisher and its consumer, attached in that order. */
    o->publisher = publisher_new(r->name, &sc->cfg->broker, broker_loop(o->broker), &sc->metrics);
    o->consumer = consumer_new(r, o->publisher, broker_loop(o->broker));
    broker_attach(o->broker, publisher_client(o->publisher));
    broker_attach(o->broker, consumer_client(o->consumer));
    broker_attach(o->broker, queue_watch_client(o->watch));
    r->sc = sc;
    r->services = &sc->services;
    r->loop = broker_loop(o->broker);
    r->publisher = o->publisher;
    r->consumer = o->consumer;
    /* start runs here, before the route's thread exists; from now on, only there. */
    char why[512] = "";
    if (r->kind->start(r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "route \"%s\": %s", r->name, why);
        goto fail;
    }
    if (broker_start(o->broker) != 0) {
        snprintf(err, errlen, "route \"%s\": cannot start its thread", r->name);
        goto fail;
    }
    log_info(r->name, "started (outbound %s, queue %s)", r->kind->name, r->queue);
    return o;
fail:
    sidecar_outbound_stop(o);
    sidecar_outbound_free(o);
    queue_watch_gauges_free(r);
    return NULL;
}

static void drain_on_thread(void *arg)
{
    struct outbound_runtime *o = arg;
    consumer_drain(o->consumer);
    if (o->route->kind->drain)
        o->route->kind->drain(o->route);
}

void sidecar_outbound_drain(struct outbound_runtime *o)
{
    loop_post(broker_loop(o->broker), drain_on_thread, o);
}

bool sidecar_outbound_busy(const struct outbound_runtime *o)
{
    return consumer_busy(o->consumer) || !publisher_idle(o->publisher);
}

void sidecar_outbound_stop(struct outbound_runtime *o)
{
    broker_stop(o->broker);
    /* The thread is gone: the kind's stop may run here (start ran here too). */
    if (o->route->kind->stop)
        o->route->kind->stop(o->route);
    o->route->sc = NULL; /* stopped: shutdown_all must not stop it again */
}

void sidecar_outbound_free(struct outbound_runtime *o)
{
    if (o == NULL)
        return;
    consumer_free(o->consumer);
    broker_free(o->broker);
    publisher_free(o->publisher);
    queue_watch_free(o->watch);
    free(o);
}
