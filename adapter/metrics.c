/*
 * metrics — histograms and the Prometheus text exposition (format 0.0.4).
 *
 * Every route series carries route, kind and direction labels. Counters are
 * read with relaxed atomics: a scrape sees each value whole, not a snapshot
 * of all values at one instant, which Prometheus does not need.
 */
#include "metrics.h"

#include "loop.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const double bucket_bounds[HISTOGRAM_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void histogram_observe(struct histogram *h, double seconds)
{
    int i = 0;
    while (i < HISTOGRAM_BUCKETS - 1 && seconds > bucket_bounds[i])
        i++;
    metric_inc(h->buckets[i]);
    metric_inc(h->count);
    metric_add(h->sum_us, (uint64_t)(seconds * 1e6));
}

const char *dead_reason_name(enum dead_reason reason)
{
    static const char *const names[DEAD_REASONS] = {"rejected", "retries_exhausted", "transform",
                                                    "invalid", "unroutable"};
    return names[reason];
}

static void labels(struct buf *out, const struct route *r)
{
    buf_printf(out, "route=\"%s\",kind=\"%s\",direction=\"%s\"", r->name, r->kind->name,
               route_direction_name(r->direction));
}

/* One counter or gauge family over all routes. */
static void family(struct buf *out, const struct metrics_sources *src, const char *name,
                   const char *type, const char *help, size_t offset)
{
    buf_printf(out, "# HELP amqp_sidecar_%s %s\n# TYPE amqp_sidecar_%s %s\n", name, help, name,
               type);
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        void *field = (char *)&r->metrics + offset;
        buf_printf(out, "amqp_sidecar_%s{", name);
        labels(out, r);
        if (strcmp(type, "gauge") == 0) /* gauges are signed: never print -1 as 2^64-1 */
            buf_printf(out, "} %lld\n", (long long)metric_get(*(_Atomic int64_t *)field));
        else
            buf_printf(out, "} %llu\n", (unsigned long long)metric_get(*(_Atomic uint64_t *)field));
    }
}

static void histogram_family(struct buf *out, const struct metrics_sources *src, const char *name,
                             const char *help, size_t offset)
{
    buf_printf(out, "# HELP amqp_sidecar_%s %s\n# TYPE amqp_sidecar_%s histogram\n", name, help,
               name);
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        struct histogram *h = (struct histogram *)((char *)&r->metrics + offset);
        uint64_t cumulative = 0;
        for (int b = 0; b < HISTOGRAM_BUCKETS; b++) {
            cumulative += metric_get(h->buckets[b]);
            buf_printf(out, "amqp_sidecar_%s_bucket{", name);
            labels(out, r);
            if (b < HISTOGRAM_BUCKETS - 1)
                buf_printf(out, ",le=\"%g\"} %llu\n", bucket_bounds[b],
                           (unsigned long long)cumulative);
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
    buf_printf(out,
               "# HELP amqp_sidecar_rpc_replies_unmatched_total rpc replies that no waiting caller "
               "matched (late after a timeout, duplicated, or not ours), dropped.\n"
               "# TYPE amqp_sidecar_rpc_replies_unmatched_total counter\n"
               "amqp_sidecar_rpc_replies_unmatched_total %llu\n",
               (unsigned long long)metric_get(src->process->rpc_replies_unmatched));

    family(out, src, "messages_received_total", "counter",
           "Requests, records or deliveries taken in.", M(received));
    family(out, src, "messages_refused_total", "counter",
           "Inbound input handed back to the sender with an error.", M(refused));
    family(out, src, "published_total", "counter", "Publishes sent to the broker.", M(published));
    family(out, src, "confirmed_total", "counter", "Publishes confirmed by the broker.",
           M(confirmed));
    family(out, src, "nacked_total", "counter", "Publishes refused by the broker.", M(nacked));
    family(out, src, "unroutable_total", "counter",
           "Publishes no binding routed, parked in the route's DLQ.", M(returned));
    family(out, src, "publish_failed_total", "counter",
           "Publishes that failed (broker down, blocked, connection lost).", M(publish_failed));
    family(out, src, "delivered_total", "counter",
           "Outbound deliveries the legacy side accepted (acked).", M(delivered));
    family(out, src, "retries_total", "counter", "Outbound deliveries sent to the retry ladder.",
           M(retries));
    family(out, src, "inflight", "gauge", "Work in progress.", M(inflight));
    family(out, src, "circuit_state", "gauge", "Circuit breaker: 0 closed, 1 open, 2 half-open.",
           M(circuit));

    buf_printf(out, "# HELP amqp_sidecar_dead_letters_total Dead letters by reason.\n"
                    "# TYPE amqp_sidecar_dead_letters_total counter\n");
    for (size_t i = 0; i < src->n_routes; i++) {
        struct route *r = src->routes[i];
        for (int d = 0; d < DEAD_REASONS; d++) {
            buf_printf(out, "amqp_sidecar_dead_letters_total{");
            labels(out, r);
            buf_printf(out, ",reason=\"%s\"} %llu\n", dead_reason_name(d),
                       (unsigned long long)metric_get(r->metrics.dead[d]));
        }
    }
    histogram_family(out, src, "legacy_call_seconds", "Latency of calls to the legacy system.",
                     M(legacy_seconds));
    histogram_family(out, src, "confirm_seconds", "Time from publish to broker confirm.",
                     M(confirm_seconds));
}
