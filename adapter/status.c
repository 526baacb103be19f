/*
 * status — see status.h. Samples and last errors sit behind one mutex; the
 * rest is read lock-free (atomics) or through the brokers' own locks, the
 * way /readyz and /metrics read them.
 *
 * A route's "in" is what it took (requests, records, deliveries: received);
 * "out" what it handed on (inbound: confirmed by the broker; outbound:
 * accepted by the legacy side); "failed" what went wrong on the way
 * (inbound: refused, nacked, failed publishes; outbound: retries and dead
 * letters).
 */
#include "status.h"

#include "broker.h"
#include "lease.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "route.h"
#include "sidecar.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING       (STATUS_WINDOW_MS / STATUS_SAMPLE_MS + 2)
#define ERROR_TEXT 512

struct counts {
    uint64_t in, out, failed, retries, dead;
};

struct sample {
    int64_t ms; /* loop_now_ms(); 0 = empty slot */
    struct counts *routes;
};

struct last_error {
    char text[ERROR_TEXT];
    time_t at; /* 0 = none yet */
    enum log_level level;
};

struct status {
    struct sidecar *sc;
    pthread_mutex_t lock;
    struct sample ring[RING];
    size_t next; /* slot the next sample goes to */
    /* one per route, then the publisher's connection, then the process */
    struct last_error *errors;
    pthread_t main_thread; /* status_new's: the one that changes the route set */
};

static struct counts counts_of(struct route *r)
{
    struct route_metrics *m = &r->metrics;
    uint64_t dead = 0;
    for (int i = 0; i < DEAD_REASONS; i++)
        dead += metric_get(m->dead[i]);
    struct counts c = {.in = metric_get(m->received), .dead = dead};
    if (r->direction == ROUTE_INBOUND) {
        c.out = metric_get(m->confirmed);
        c.failed = metric_get(m->refused) + metric_get(m->nacked) + metric_get(m->publish_failed);
    } else {
        c.out = metric_get(m->delivered);
        c.retries = metric_get(m->retries);
        c.failed = c.retries + dead;
    }
    return c;
}

void status_sample(struct status *st)
{
    size_t n = st->sc->cfg->n_routes;
    struct counts *now = xcalloc(n ? n : 1, sizeof(*now));
    for (size_t i = 0; i < n; i++)
        now[i] = counts_of(st->sc->cfg->routes[i]);
    pthread_mutex_lock(&st->lock);
    struct sample *s = &st->ring[st->next];
    free(s->routes);
    s->routes = now;
    s->ms = loop_now_ms();
    st->next = (st->next + 1) % RING;
    pthread_mutex_unlock(&st->lock);
}

/* The sample to subtract for "the last minute": the newest one at least a
 * minute old, else the oldest (the process is younger than that). Locked. */
static const struct sample *window_base(struct status *st, int64_t now)
{
    const struct sample *best = NULL, *oldest = NULL;
    for (size_t i = 0; i < RING; i++) {
        const struct sample *s = &st->ring[i];
        if (s->ms == 0)
            continue;
        if (oldest == NULL || s->ms < oldest->ms)
            oldest = s;
        if (now - s->ms >= STATUS_WINDOW_MS && (best == NULL || s->ms > best->ms))
            best = s;
    }
    return best ? best : oldest;
}

/* ---- last errors, from the log ---------------------------------------------- */

static void on_log(void *arg, enum log_level level, const char *route, const char *message_id,
                   const char *msg)
{
    struct status *st = arg;
    bool main_thread = pthread_equal(pthread_self(), st->main_thread);
    if (!main_thread) /* the main thread changes the route set (SIGHUP) */
        sidecar_routes_read_lock(st->sc);
    size_t n = st->sc->cfg->n_routes, slot = n + 1; /* the process */
    if (route && strcmp(route, "publisher") == 0)
        slot = n;
    for (size_t i = 0; route && i < n; i++)
        if (strcmp(st->sc->cfg->routes[i]->name, route) == 0)
            slot = i;
    pthread_mutex_lock(&st->lock);
    struct last_error *e = &st->errors[slot];
    if (message_id)
        snprintf(e->text, sizeof(e->text), "%s (message_id %s)", msg, message_id);
    else
        snprintf(e->text, sizeof(e->text), "%s", msg);
    e->at = time(NULL);
    e->level = level;
    pthread_mutex_unlock(&st->lock);
    if (!main_thread)
        sidecar_routes_read_unlock(st->sc);
}

/* Where route i of the new set was in the old one, or n_was. */
static size_t old_index(struct route *r, struct route *const *was, size_t n_was)
{
    size_t j = 0;
    while (j < n_was && was[j] != r)
        j++;
    return j;
}

void status_routes_changed(struct status *st, struct route *const *was, size_t n_was)
{
    size_t n = st->sc->cfg->n_routes;
    struct last_error *errors = xcalloc(n + 2, sizeof(*errors));
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < n; i++) {
        size_t j = old_index(st->sc->cfg->routes[i], was, n_was);
        if (j < n_was)
            errors[i] = st->errors[j];
    }
    errors[n] = st->errors[n_was];
    errors[n + 1] = st->errors[n_was + 1];
    free(st->errors);
    st->errors = errors;
    /* Samples follow their routes; a new route's start from zero (all it did is new). */
    for (size_t k = 0; k < RING; k++) {
        struct sample *s = &st->ring[k];
        if (s->ms == 0)
            continue;
        struct counts *now = xcalloc(n ? n : 1, sizeof(*now));
        for (size_t i = 0; i < n; i++) {
            size_t j = old_index(st->sc->cfg->routes[i], was, n_was);
            if (j < n_was)
                now[i] = s->routes[j];
        }
        free(s->routes);
        s->routes = now;
    }
    pthread_mutex_unlock(&st->lock);
}

struct status *status_new(struct sidecar *sc)
{
    struct status *st = xcalloc(1, sizeof(*st));
    st->sc = sc;
    st->main_thread = pthread_self();
    pthread_mutex_init(&st->lock, NULL);
    st->errors = xcalloc(sc->cfg->n_routes + 2, sizeof(*st->errors));
    status_sample(st);
    log_set_observer(on_log, st);
    return st;
}

void status_free(struct status *st)
{
    if (st == NULL)
        return;
    log_set_observer(NULL, NULL);
    for (size_t i = 0; i < RING; i++)
        free(st->ring[i].routes);
    free(st->errors);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* ---- the document -------------------------------------------------------------- */

static json_t *iso_time(time_t t)
{
    struct tm tm;
    char out[32];
    gmtime_r(&t, &tm);
    strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(out);
}

/* A count or gauge that may be unknown (-1): null then. */
static json_t *maybe(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *counts_json(const struct counts *c, bool outbound)
{
    json_t *o = json_pack("{sIsIsIsI}", "in", (json_int_t)c->in, "out", (json_int_t)c->out,
                          "failed", (json_int_t)c->failed, "dead_letters", (json_int_t)c->dead);
    if (outbound)
        json_object_set_new(o, "retries", json_integer((json_int_t)c->retries));
    return o;
}

static json_t *error_json(const struct last_error *e)
{
    if (e->at == 0)
        return json_null();
    return json_pack("{sssoss}", "message", e->text, "at", iso_time(e->at), "level",
                     e->level == LOG_ERROR ? "error" : "warn");
}

static json_t *connection_json(struct broker *b, const struct connection_metrics *m)
{
    char desc[512];
    broker_describe(b, desc, sizeof(desc));
    bool up = broker_is_up(b), blocked = broker_is_blocked(b);
    return json_pack("{sssssbsbsssI}", "name", m->name, "state",
                     !up       ? "down"
                     : blocked ? "blocked"
                               : "up",
                     "up", up, "blocked", blocked, "detail", desc, "reconnects",
                     (json_int_t)metric_get(((struct connection_metrics *)m)->reconnects));
}

/* The route's connection: its own (outbound) or the shared publisher's. */
static struct broker *route_broker(struct sidecar *sc, const struct route *r)
{
    if (r->direction == ROUTE_INBOUND)
        return sc->publisher_broker;
    for (size_t i = 0; i < sc->n_outbound; i++)
        if (sc->outbound[i]->route == r)
            return sc->outbound[i]->broker;
    return NULL;
}

/* One word for the route's state, most urgent first; why holds the detail. */
static const char *route_state(struct sidecar *sc, struct route *r, bool ready)
{
    struct broker *b = route_broker(sc, r);
    int64_t circuit = metric_get(r->metrics.circuit);
    int64_t throttle = metric_get(r->metrics.throttle);
    if (sc->draining)
        return "draining";
    if (b && !broker_is_up(b))
        return "broker down";
    if (b && broker_is_blocked(b))
        return "blocked";
    if (r->lease_handle && lease_role(r->lease_handle) == LEASE_STANDBY)
        return "standby";
    if (r->direction == ROUTE_OUTBOUND && circuit == 1)
        return "circuit open";
    if (r->direction == ROUTE_OUTBOUND && circuit == 2)
        return "circuit half-open";
    if (throttle == 2)
        return "paused";
    if (!ready)
        return strcmp(r->kind->name, "poll") == 0 ? "last poll failed" : "not ready";
    if (throttle == 1)
        return "pacing";
    return "ready";
}

static json_t *queues_json(const struct route *r, int64_t now)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_queues; i++) {
        struct queue_gauge *g = &r->queues[i];
        int64_t read = atomic_load(&g->read_ms);
        json_array_append_new(
            a, json_pack("{sssssososbso}", "name", g->name, "role", queue_role_name(g->role),
                         "messages", maybe(atomic_load(&g->messages)), "consumers",
                         maybe(atomic_load(&g->consumers)), "missing",
                         atomic_load(&g->missing) != 0, "read_seconds_ago",
                         read ? json_real((double)(now - read) / 1000) : json_null()));
    }
    return a;
}

static json_t *route_json(struct status *st, size_t i, const struct counts *base, int64_t now)
{
    struct sidecar *sc = st->sc;
    struct route *r = sc->cfg->routes[i];
    bool outbound = r->direction == ROUTE_OUTBOUND;
    struct buf why = {0};
    bool ready = sidecar_route_ready(sc, r, &why);
    struct counts total = counts_of(r), minute = total;
    if (base) {
        minute.in -= base->in, minute.out -= base->out, minute.failed -= base->failed;
        minute.retries -= base->retries, minute.dead -= base->dead;
    }
    json_t *o = json_pack("{sssssssbss}", "name", r->name, "kind", r->kind->name, "direction",
                          route_direction_name(r->direction), "ready", ready, "state",
                          route_state(sc, r, ready));
    json_object_set_new(o, "detail", why.len ? json_string(why.data) : json_null());
    buf_free(&why);
    json_object_set_new(o, "last_minute", counts_json(&minute, outbound));
    json_object_set_new(o, "total", counts_json(&total, outbound));
    if (outbound) {
        int64_t since = metric_get(r->metrics.oldest_inflight_ms);
        int64_t lag = metric_get(r->metrics.last_lag_ms);
        json_object_set_new(o, "in_flight", json_integer(metric_get(r->metrics.inflight)));
        json_object_set_new(
            o, "lag",
            json_pack("{soso}", "last_seconds", lag < 0 ? json_null() : json_real(lag / 1000.0),
                      "oldest_in_flight_seconds",
                      json_real(since > 0 && now > since ? (now - since) / 1000.0 : 0)));
    } else {
        json_object_set_new(o, "in_flight", json_integer(metric_get(r->metrics.publishing)));
    }
    json_object_set_new(o, "queues", queues_json(r, now));
    if (r->lease_handle) {
        int64_t since = lease_since_ms(r->lease_handle);
        json_object_set_new(o, "lease",
                            json_pack("{sssssosI}", "queue", r->lease_queue, "role",
                                      lease_role_name(lease_role(r->lease_handle)),
                                      "since_seconds_ago",
                                      since ? json_real((double)(now - since) / 1000) : json_null(),
                                      "taken", (json_int_t)lease_gained_count(r->lease_handle)));
    }
    pthread_mutex_lock(&st->lock);
    json_object_set_new(o, "last_error", error_json(&st->errors[i]));
    pthread_mutex_unlock(&st->lock);
    return o;
}

json_t *status_json(struct status *st)
{
    struct sidecar *sc = st->sc;
    int64_t now = loop_now_ms();
    size_t n = sc->cfg->n_routes;
    struct counts *base = xcalloc(n ? n : 1, sizeof(*base));
    int64_t window_ms = 0;
    pthread_mutex_lock(&st->lock);
    const struct sample *s = window_base(st, now);
    if (s) {
        memcpy(base, s->routes, n * sizeof(*base));
        window_ms = now - s->ms;
    }
    pthread_mutex_unlock(&st->lock);

    bool ready = sidecar_ready(sc, NULL);
    json_t *doc = json_pack("{sssssfsosssi}", "system", sc->cfg->name, "version", SIDECAR_VERSION,
                            "uptime_seconds", (double)(now - sc->started_ms) / 1000, "generated_at",
                            iso_time(time(NULL)), "status",
                            ready          ? "ready"
                            : sc->draining ? "draining"
                                           : "not ready",
                            "window_seconds", (int)(window_ms / 1000));
    json_t *conns = json_array();
    if (sc->publisher_broker)
        json_array_append_new(conns,
                              connection_json(sc->publisher_broker, &sc->publisher_connection));
    for (size_t i = 0; i < sc->n_outbound; i++)
        json_array_append_new(
            conns, connection_json(sc->outbound[i]->broker, &sc->outbound[i]->connection));
    json_object_set_new(doc, "connections", conns);
    json_t *routes = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(routes, route_json(st, i, s ? &base[i] : NULL, now));
    json_object_set_new(doc, "routes", routes);
    pthread_mutex_lock(&st->lock);
    json_object_set_new(doc, "publisher_error", error_json(&st->errors[n]));
    json_object_set_new(doc, "process_error", error_json(&st->errors[n + 1]));
    pthread_mutex_unlock(&st->lock);
    free(base);
    return doc;
}
