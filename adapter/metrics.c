/*
 * metrics — histograms and the Prometheus text exposition (format 0.0.4).
 *
 * Every route series carries route, kind and direction labels. A route shows
 * only the families (and dead-letter reasons) its kind can move — the tables
 * below, taken from where each counter is written — and shows each of them
 * always, zero until counted, so series never appear or vanish. A family no
 * route shows is its HELP and TYPE lines alone. The queue gauges are per
 * owned queue instead (route, queue, role: queue_watch.h), one series per
 * queue from the start, NaN until read. Counters are read with relaxed
 * atomics: a scrape sees each value whole, not a snapshot of all values at
 * one instant, which Prometheus does not need.
 */
#include "metrics.h"

#include "loop.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const double bucket_bounds[HISTOGRAM_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const double lag_bounds[HISTOGRAM_BUCKETS - 1] = {
    0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 14400,
};

static void observe(struct histogram *h, const double *bounds, double seconds)
{
    int i = 0;
    while (i < HISTOGRAM_BUCKETS - 1 && seconds > bounds[i])
        i++;
    metric_inc(h->buckets[i]);
    metric_inc(h->count);
    metric_add(h->sum_us, (uint64_t)(seconds * 1e6));
}

void histogram_observe(struct histogram *h, double seconds)
{
    observe(h, bucket_bounds, seconds);
}

void histogram_observe_lag(struct histogram *h, double seconds)
{
    observe(h, lag_bounds, seconds < 0 ? 0 : seconds);
}

const char *dead_reason_name(enum dead_reason reason)
{
    static const char *const names[DEAD_REASONS] = {"rejected", "retries_exhausted", "transform",
                                                    "invalid", "unroutable"};
    return names[reason];
}

const char *queue_role_name(enum queue_role role)
{
    static const char *const names[] = {"work", "retry", "dlq", "cursor"};
    return names[role];
}

/* One bit per (direction, kind): where a family applies. */
enum {
    HTTP_IN = 1 << 0,
    SOAP_IN = 1 << 1,
    FILE_IN = 1 << 2,
    POLL_IN = 1 << 3,
    HTTP_OUT = 1 << 4,
    SOAP_OUT = 1 << 5,
    FILE_OUT = 1 << 6,
    INBOUND = HTTP_IN | SOAP_IN | FILE_IN | POLL_IN,
    OUTBOUND = HTTP_OUT | SOAP_OUT | FILE_OUT,
    PACED = HTTP_OUT | SOAP_OUT | POLL_IN, /* the kinds that take rate = { … } */
};

/* The route's bit. A kind missing here gets every family of its direction:
 * a new kind shows too much until it is added, never too little. */
static unsigned route_bit(const struct route *r)
{
    static const struct {
        const char *kind;
        unsigned in, out;
    } bits[] = {
        {"http", HTTP_IN, HTTP_OUT},
        {"soap", SOAP_IN, SOAP_OUT},
        {"file", FILE_IN, FILE_OUT},
        {"poll", POLL_IN, 0},
    };
    bool in = r->direction == ROUTE_INBOUND;
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        unsigned bit = in ? bits[i].in : bits[i].out;
        if (bit && strcmp(r->kind->name, bits[i].kind) == 0)
            return bit;
    }
    return in ? INBOUND : OUTBOUND;
}

static bool applies(unsigned where, const struct route *r)
{
    return (where & route_bit(r)) != 0;
}

static void labels(struct buf *out, const struct route *r)
{
    buf_printf(out, "route=\"%s\",kind=\"%s\",direction=\"%s\"", r->name, r->kind->name,
               route_direction_name(r->direction));
}

/* A route family: its name, TYPE and HELP, and the routes that show it. */
struct family {
    const char *name, *type, *help;
    size_t offset;        /* of the field in struct route_metrics */
    unsigned where;       /* the routes it applies to */
    const double *bounds; /* histograms: NULL = bucket_bounds */
};

/* One counter or gauge family over the routes it applies to; ms: the field
 * counts milliseconds, shown as seconds. */
static void family(struct buf *out, const struct metrics_sources *src, const struct family *f,
                   bool ms)
{
    const char *name = f->name, *type = f->type;
    buf_printf(out, "# HELP amqp_sidecar_%s %s\n# TYPE amqp_sidecar_%s %s\n", name, f->help, name,
               type);
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        if (!applies(f->where, r))
            continue;
        void *field = (char *)&r->metrics + f->offset;
        buf_printf(out, "amqp_sidecar_%s{", name);
        labels(out, r);
        if (ms)
            buf_printf(out, "} %.3f\n", (double)metric_get(*(_Atomic uint64_t *)field) / 1000.0);
        else if (strcmp(type, "gauge") == 0) /* gauges are signed: never print -1 as 2^64-1 */
            buf_printf(out, "} %lld\n", (long long)metric_get(*(_Atomic int64_t *)field));
        else
            buf_printf(out, "} %llu\n", (unsigned long long)metric_get(*(_Atomic uint64_t *)field));
    }
}

static void histogram_family(struct buf *out, const struct metrics_sources *src,
                             const struct family *f)
{
    const char *name = f->name;
    buf_printf(out, "# HELP amqp_sidecar_%s %s\n# TYPE amqp_sidecar_%s histogram\n", name, f->help,
               name);
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        if (!applies(f->where, r))
            continue;
        struct histogram *h = (struct histogram *)((char *)&r->metrics + f->offset);
        const double *bounds = f->bounds ? f->bounds : bucket_bounds;
        uint64_t cumulative = 0;
        for (int b = 0; b < HISTOGRAM_BUCKETS; b++) {
            cumulative += metric_get(h->buckets[b]);
            buf_printf(out, "amqp_sidecar_%s_bucket{", name);
            labels(out, r);
            if (b < HISTOGRAM_BUCKETS - 1)
                buf_printf(out, ",le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cumulative);
            else
                buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        }
        buf_printf(out, "amqp_sidecar_%s_sum{", name);
        labels(out, r);
        buf_printf(out, "} %.6f\n", (double)metric_get(h->sum_us) / 1e6);
        buf_printf(out, "amqp_sidecar_%s_count{", name);
        labels(out, r);
        buf_printf(out, "} %llu\n", (unsigned long long)metric_get(h->count));
    }
}

/* A gauge computed at the scrape: the oldest unsettled delivery's time in the sidecar. */
static void oldest_inflight(struct buf *out, const struct metrics_sources *src)
{
    buf_printf(out, "# HELP amqp_sidecar_oldest_inflight_seconds Seconds the oldest outbound "
                    "delivery not yet settled has been in the sidecar (0 when none).\n"
                    "# TYPE amqp_sidecar_oldest_inflight_seconds gauge\n");
    int64_t now = loop_now_ms();
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        if (!applies(OUTBOUND, r))
            continue;
        int64_t since = metric_get(r->metrics.oldest_inflight_ms);
        buf_printf(out, "amqp_sidecar_oldest_inflight_seconds{");
        labels(out, r);
        buf_printf(out, "} %.3f\n", since > 0 && now > since ? (double)(now - since) / 1000 : 0.0);
    }
}

/* A gauge computed at the scrape: the age of the oldest spooled request (wall clock). */
static void spool_oldest(struct buf *out, const struct metrics_sources *src)
{
    buf_printf(out, "# HELP amqp_sidecar_spool_oldest_seconds Age of the oldest request in the "
                    "route's spool (0 when empty).\n"
                    "# TYPE amqp_sidecar_spool_oldest_seconds gauge\n");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        if (!applies(HTTP_IN | SOAP_IN, r))
            continue;
        int64_t since = metric_get(r->metrics.spool_oldest_ms);
        buf_printf(out, "amqp_sidecar_spool_oldest_seconds{");
        labels(out, r);
        buf_printf(out, "} %.3f\n", since > 0 && now > since ? (double)(now - since) / 1000 : 0.0);
    }
}

/* A gauge of the leased routes only (lease = true, any kind that takes it):
 * which of several sidecars runs the route. */
static void lease_held(struct buf *out, const struct metrics_sources *src)
{
    buf_printf(out, "# HELP amqp_sidecar_lease_held 1 while this sidecar holds the route's lease "
                    "and runs it, 0 while another does or the broker is unreachable "
                    "(lease = true routes only).\n"
                    "# TYPE amqp_sidecar_lease_held gauge\n");
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        if (!r->lease)
            continue;
        buf_printf(out, "amqp_sidecar_lease_held{");
        labels(out, r);
        buf_printf(out, "} %lld\n", (long long)metric_get(r->metrics.lease_held));
    }
}

static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

#define M(field) offsetof(struct route_metrics, field)

/* Where each family applies: the kinds whose code writes it. Inbound routes
 * publish through the shared publisher (inbound.c names the route, so it
 * counts them); outbound routes consume (consumer.c: received, inflight,
 * delivered, retries, circuit, dead letters) and call the legacy side. */
static const struct family families[] = {
    {"messages_received_total", "counter",
     "Requests, records or deliveries taken in (a malformed file counts once).", M(received),
     INBOUND | OUTBOUND, NULL},
    /* poll has no sender to hand anything back to */
    {"messages_refused_total", "counter", "Inbound input handed back to the sender with an error.",
     M(refused), HTTP_IN | SOAP_IN | FILE_IN, NULL},
    {"published_total", "counter", "Publishes sent to the broker.", M(published), INBOUND, NULL},
    {"confirmed_total", "counter", "Publishes confirmed by the broker.", M(confirmed), INBOUND,
     NULL},
    {"nacked_total", "counter", "Publishes refused by the broker.", M(nacked), INBOUND, NULL},
    {"unroutable_total", "counter", "Publishes no binding routed, parked in the route's DLQ.",
     M(returned), INBOUND, NULL},
    {"publish_failed_total", "counter",
     "Publishes that failed (broker down, blocked, connection lost).", M(publish_failed), INBOUND,
     NULL},
    {"delivered_total", "counter", "Outbound deliveries the legacy side accepted (acked).",
     M(delivered), OUTBOUND, NULL},
    {"retries_total", "counter", "Outbound deliveries sent to the retry ladder.", M(retries),
     OUTBOUND, NULL},
    {"inflight", "gauge", "Outbound deliveries taken and not yet settled.", M(inflight), OUTBOUND,
     NULL},
    {"circuit_state", "gauge", "Circuit breaker: 0 closed, 1 open, 2 half-open.", M(circuit),
     OUTBOUND, NULL},
    /* pacer.c, for routes with rate = { … }; zero without one */
    {"throttle_state", "gauge",
     "Rate limit: 0 calls flow, 1 calls wait for the rate, 2 paused by the legacy side.",
     M(throttle), PACED, NULL},
    /* poll_in.c */
    {"poll_failures_total", "counter", "Polls that failed (the call, its items or the cursor).",
     M(poll_failures), POLL_IN, NULL},
    {"poll_failing", "gauge", "1 while the route's last poll failed (/readyz says why).",
     M(poll_failing), POLL_IN, NULL},
    /* spool.c; zero without spool = { … } */
    {"spool_messages", "gauge", "Requests in the route's spool, not yet confirmed by the broker.",
     M(spool_messages), HTTP_IN | SOAP_IN, NULL},
    {"spool_bytes", "gauge", "Bytes of the route's spool journal on disk.", M(spool_bytes),
     HTTP_IN | SOAP_IN, NULL},
    {"spooled_total", "counter", "Requests answered 202 \"spooled\" (written to the spool).",
     M(spooled), HTTP_IN | SOAP_IN, NULL},
    {"spool_forwarded_total", "counter", "Spooled messages forwarded and confirmed.",
     M(spool_forwarded), HTTP_IN | SOAP_IN, NULL},
    {"spool_refused_total", "counter",
     "Requests the spool could not take (full, or its write failed): answered 503.",
     M(spool_refused), HTTP_IN | SOAP_IN, NULL},
};

/* Counters of milliseconds, shown in seconds. */
static const struct family ms_counters[] = {
    {"throttled_seconds_total", "counter",
     "Seconds the route was paused because the legacy side asked (429/503 with Retry-After); "
     "counted as each pause ends.",
     M(throttled_ms), PACED, NULL},
};

static const struct family histograms[] = {
    /* poll is the one inbound kind that calls out; file_out times its write */
    {"legacy_call_seconds", "histogram", "Latency of calls to the legacy system.",
     M(legacy_seconds), OUTBOUND | POLL_IN, NULL},
    {"confirm_seconds", "histogram", "Time from publish to broker confirm.", M(confirm_seconds),
     INBOUND, NULL},
    /* consumer.c, on a first delivery (no x-sidecar-attempts) that has a timestamp */
    {"delivery_lag_seconds", "histogram",
     "Age of a message when its first delivery reached the sidecar: arrival minus its AMQP "
     "timestamp (whole seconds, so up to 1 s high; retries not counted).",
     M(lag_seconds), OUTBOUND, lag_bounds},
};

/* Where each dead-letter reason is counted (outbound: the kinds' settle_dead). */
static const unsigned dead_reason_where[DEAD_REASONS] = {
    [DEAD_REJECTED] = OUTBOUND,          /* a 4xx, a Client fault, a refused write */
    [DEAD_EXHAUSTED] = OUTBOUND,         /* consumer.c: the retry ladder ran out */
    [DEAD_TRANSFORM] = OUTBOUND,         /* inbound answers the sender (refused) instead */
    [DEAD_INVALID] = OUTBOUND | FILE_IN, /* file_job.c files a file it cannot take */
    [DEAD_UNROUTABLE] = INBOUND,         /* publisher.c parks what no binding routed */
};

/* A gauge over every owned queue; -1 (not read yet, or gone) shows as NaN,
 * so a rule comparing depths neither fires nor clears on it. */
static void queue_family(struct buf *out, const struct metrics_sources *src, const char *name,
                         const char *help, size_t offset, bool flag)
{
    buf_printf(out, "# HELP amqp_sidecar_%s %s\n# TYPE amqp_sidecar_%s gauge\n", name, help, name);
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        for (size_t q = 0; q < r->n_queues; q++) {
            struct queue_gauge *g = &r->queues[q];
            buf_printf(out, "amqp_sidecar_%s{route=\"%s\",queue=\"%s\",role=\"%s\"} ", name,
                       r->name, g->name, queue_role_name(g->role));
            if (flag) {
                buf_printf(out, "%d\n", atomic_load((_Atomic int *)((char *)g + offset)));
                continue;
            }
            long long v = (long long)atomic_load((_Atomic int64_t *)((char *)g + offset));
            if (v < 0)
                buf_puts(out, "NaN\n");
            else
                buf_printf(out, "%lld\n", v);
        }
    }
}

static void queue_families(struct buf *out, const struct metrics_sources *src)
{
    queue_family(out, src, "queue_messages",
                 "Messages ready in a queue the sidecar owns (passive queue.declare every "
                 "admin.queue_interval); NaN until read or while the queue is gone.",
                 offsetof(struct queue_gauge, messages), false);
    queue_family(out, src, "queue_consumers", "Consumers of a queue the sidecar owns.",
                 offsetof(struct queue_gauge, consumers), false);
    queue_family(out, src, "queue_missing",
                 "1 when a queue the sidecar owns was found gone at the last read.",
                 offsetof(struct queue_gauge, missing), true);
}

void metrics_render(const struct metrics_sources *src, struct buf *out)
{
    buf_printf(out,
               "# HELP amqp_sidecar_build_info Version of the running sidecar.\n"
               "# TYPE amqp_sidecar_build_info gauge\n"
               "amqp_sidecar_build_info{version=\"%s\",system=\"%s\"} 1\n",
               SIDECAR_VERSION, src->system);
    buf_printf(out,
               "# HELP amqp_sidecar_uptime_seconds Seconds since the process started.\n"
               "# TYPE amqp_sidecar_uptime_seconds gauge\n"
               "amqp_sidecar_uptime_seconds %.3f\n",
               (double)(loop_now_ms() - src->started_ms) / 1000.0);
    buf_printf(out,
               "# HELP amqp_sidecar_resident_memory_bytes Resident set size.\n"
               "# TYPE amqp_sidecar_resident_memory_bytes gauge\n"
               "amqp_sidecar_resident_memory_bytes %ld\n",
               resident_bytes());
    buf_printf(out, "# HELP amqp_sidecar_broker_connected 1 while the connection is open.\n"
                    "# TYPE amqp_sidecar_broker_connected gauge\n");
    for (size_t i = 0; i < src->n_connections; i++)
        buf_printf(out, "amqp_sidecar_broker_connected{connection=\"%s\"} %d\n",
                   src->connections[i]->name, atomic_load(&src->connections[i]->up));
    buf_printf(out,
               "# HELP amqp_sidecar_broker_reconnects_total Connections re-established after a "
               "loss.\n# TYPE amqp_sidecar_broker_reconnects_total counter\n"
               "amqp_sidecar_broker_reconnects_total %llu\n",
               (unsigned long long)metric_get(src->process->reconnects));
    buf_printf(out,
               "# HELP amqp_sidecar_broker_connections_lost_total Connections lost.\n"
               "# TYPE amqp_sidecar_broker_connections_lost_total counter\n"
               "amqp_sidecar_broker_connections_lost_total %llu\n",
               (unsigned long long)metric_get(src->process->connections_lost));
    const struct otel_metrics *ot = &src->process->otel;
    buf_printf(out,
               "# HELP amqp_sidecar_otel_spans_exported_total Trace spans the collector took.\n"
               "# TYPE amqp_sidecar_otel_spans_exported_total counter\n"
               "amqp_sidecar_otel_spans_exported_total %llu\n"
               "# HELP amqp_sidecar_otel_spans_dropped_total Trace spans dropped: the buffer was "
               "full or their export failed.\n"
               "# TYPE amqp_sidecar_otel_spans_dropped_total counter\n"
               "amqp_sidecar_otel_spans_dropped_total %llu\n"
               "# HELP amqp_sidecar_otel_export_failures_total Export requests the collector did "
               "not take.\n"
               "# TYPE amqp_sidecar_otel_export_failures_total counter\n"
               "amqp_sidecar_otel_export_failures_total %llu\n",
               (unsigned long long)metric_get(((struct otel_metrics *)ot)->exported),
               (unsigned long long)metric_get(((struct otel_metrics *)ot)->dropped),
               (unsigned long long)metric_get(((struct otel_metrics *)ot)->export_failures));
    buf_printf(out,
               "# HELP amqp_sidecar_rpc_replies_unmatched_total rpc replies that no waiting caller "
               "matched (late after a timeout, duplicated, or not ours), dropped.\n"
               "# TYPE amqp_sidecar_rpc_replies_unmatched_total counter\n"
               "amqp_sidecar_rpc_replies_unmatched_total %llu\n",
               (unsigned long long)metric_get(src->process->rpc_replies_unmatched));

    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        family(out, src, &families[i], false);
    oldest_inflight(out, src);
    spool_oldest(out, src);
    lease_held(out, src);
    for (size_t i = 0; i < sizeof(ms_counters) / sizeof(ms_counters[0]); i++)
        family(out, src, &ms_counters[i], true);

    buf_printf(out, "# HELP amqp_sidecar_dead_letters_total Dead letters by reason.\n"
                    "# TYPE amqp_sidecar_dead_letters_total counter\n");
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        for (int d = 0; d < DEAD_REASONS; d++) {
            if (!applies(dead_reason_where[d], r))
                continue;
            buf_printf(out, "amqp_sidecar_dead_letters_total{");
            labels(out, r);
            buf_printf(out, ",reason=\"%s\"} %llu\n", dead_reason_name(d),
                       (unsigned long long)metric_get(r->metrics.dead[d]));
        }
    }
    for (size_t i = 0; i < sizeof(histograms) / sizeof(histograms[0]); i++)
        histogram_family(out, src, &histograms[i]);
    queue_families(out, src);
}
