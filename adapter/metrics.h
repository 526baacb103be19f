/*
 * metrics — per-route counters and latency histograms, updated lock-free from
 * any thread (relaxed atomics) and rendered in Prometheus text format by the
 * admin endpoint. Values are pushed: routes, brokers and the process write
 * their own counters and gauges; metrics_render reads only what it is given
 * (struct metrics_sources) and knows neither brokers nor the process context.
 */
#ifndef SIDECAR_METRICS_H
#define SIDECAR_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct route;

#define HISTOGRAM_BUCKETS 14

struct histogram {
    _Atomic uint64_t buckets[HISTOGRAM_BUCKETS]; /* non-cumulative; last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

/* Why a message became a dead letter; the label values of the metric. */
enum dead_reason {
    DEAD_REJECTED,  /* the legacy side refused it (4xx, Client fault) */
    DEAD_EXHAUSTED, /* the retry ladder ran out */
    DEAD_TRANSFORM, /* the transform failed */
    DEAD_INVALID,   /* unusable input: unparseable file, unsafe file name */
    DEAD_UNROUTABLE,
    DEAD_REASONS
};

struct route_metrics {
    _Atomic uint64_t received;  /* requests, records, deliveries taken in */
    _Atomic uint64_t refused;   /* inbound input handed back with an error */
    _Atomic uint64_t published; /* publishes sent to the broker */
    _Atomic uint64_t confirmed;
    _Atomic uint64_t nacked;
    _Atomic uint64_t returned; /* unroutable, parked in the route's DLQ */
    _Atomic uint64_t publish_failed;
    _Atomic uint64_t delivered; /* outbound: accepted by the legacy side, acked */
    _Atomic uint64_t retries;
    _Atomic uint64_t dead[DEAD_REASONS];
    _Atomic int64_t inflight;       /* outbound: deliveries taken and not yet settled */
    _Atomic int64_t publishing;     /* handed to a publisher, its outcome not yet known */
    _Atomic int64_t circuit;        /* 0 closed, 1 open, 2 half-open */
    _Atomic uint64_t throttled_ms;  /* paced kinds: time paused by the legacy side's Retry-After */
    _Atomic int64_t throttle;       /* paced kinds: 0 flowing, 1 pacing, 2 paused (pacer.h) */
    _Atomic uint64_t poll_failures; /* poll: polls that failed (legacy call, items, cursor) */
    _Atomic int64_t poll_failing;   /* poll: 1 while the last poll failed */
    _Atomic int64_t lease_held;     /* lease = true (lease.c): 1 while this sidecar holds it */
    /* spool.c: http/soap inbound routes with spool = { … } */
    _Atomic int64_t spool_messages;  /* records in the journal, not yet confirmed */
    _Atomic int64_t spool_bytes;     /* the journal's segment files */
    _Atomic int64_t spool_oldest_ms; /* wall clock (ms) the oldest of them was written; 0 none */
    _Atomic uint64_t spooled;        /* requests answered 202 "spooled" */
    _Atomic uint64_t spool_forwarded;
    _Atomic uint64_t spool_refused; /* the spool was full or its write failed: 503 */
    /* outbound (consumer.c): a first delivery's age at arrival, from its AMQP timestamp */
    _Atomic int64_t last_lag_ms;        /* -1 until one with a timestamp came */
    _Atomic int64_t oldest_inflight_ms; /* loop_now_ms() the oldest unsettled one came; 0 none */
    struct histogram legacy_seconds;
    struct histogram confirm_seconds;
    struct histogram lag_seconds; /* bounds: metrics_lag_bounds */
};

/* What a queue the sidecar owns is for (the role label). */
enum queue_role { QUEUE_WORK, QUEUE_RETRY, QUEUE_DLQ, QUEUE_CURSOR };

/* One owned queue's depth, read by a passive queue.declare on the connection
 * that owns it (queue_watch.c writes, any thread reads). name and route are
 * set before the connection starts and never change. */
struct queue_gauge {
    char *name;
    const char *route;
    enum queue_role role;
    _Atomic int64_t messages;  /* ready messages; -1 until read, or while missing */
    _Atomic int64_t consumers; /* -1 likewise */
    _Atomic int missing;       /* the last declare said 404: the queue is gone */
    _Atomic int64_t read_ms;   /* loop_now_ms() of the last answer; 0 never */
};

const char *queue_role_name(enum queue_role role);

/* otel.c's exporter: spans sent, spans lost (buffer full, export failed), failed exports. */
struct otel_metrics {
    _Atomic uint64_t exported;
    _Atomic uint64_t dropped;
    _Atomic uint64_t export_failures;
};

struct process_metrics {
    struct otel_metrics otel;
    _Atomic uint64_t reconnects;
    _Atomic uint64_t connections_lost;
    _Atomic uint64_t rpc_replies_unmatched; /* late, duplicated or foreign replies dropped */
};

/* One broker connection's gauge, written by its broker (broker_events). */
struct connection_metrics {
    char name[64]; /* "publisher", or the outbound route's name */
    _Atomic int up;
    _Atomic uint64_t reconnects; /* re-established after a loss */
};

/* Everything /metrics shows, as the writers left it. */
struct metrics_sources {
    const char *system;
    int64_t started_ms; /* loop_now_ms() at start */
    const struct process_metrics *process;
    struct route *const *routes;
    size_t n_routes;
    struct connection_metrics *const *connections;
    size_t n_connections;
};

#define metric_add(counter, n) atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed)
#define metric_inc(counter)    metric_add(counter, 1)
#define metric_get(counter)    atomic_load_explicit(&(counter), memory_order_relaxed)

/* Latency histograms (legacy calls, confirms): 1 ms … 10 s. */
void histogram_observe(struct histogram *h, double seconds);
/* Delivery lag: 0.5 s … 4 h (an AMQP timestamp has whole seconds). */
void histogram_observe_lag(struct histogram *h, double seconds);
const char *dead_reason_name(enum dead_reason reason);

/* Appends the Prometheus text exposition of src: for each route, the series
 * its kind and direction can move (metrics.c's tables). Any thread. */
void metrics_render(const struct metrics_sources *src, struct buf *out);

#endif
