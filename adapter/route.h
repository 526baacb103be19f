/*
 * route — one flow through the sidecar, and the one interface every kind
 * implements.
 *
 * A kind is a `struct route_kind` at the end of its file in adapter/kinds/:
 * its name and direction, a key table for its config, and a few callbacks.
 * Adding a kind is adding that file and one line in route.c's registry.
 *
 * Life of a route: config_load fills `struct route` (common keys) and `opts`
 * (the kind's keys), then calls validate. `run` calls start; on SIGTERM,
 * drain (stop taking work), then busy until it reports false (or the drain
 * deadline passes), then stop, which frees everything start made.
 *
 * Threads: inbound kinds run where they like (listener threads, their own
 * thread) and publish through the shared publisher, whose completions run on
 * the publisher's thread. Outbound kinds run entirely on their route's
 * thread: start, deliver, drain, busy and stop are all called there.
 */
#ifndef SIDECAR_ROUTE_H
#define SIDECAR_ROUTE_H

#include "config.h"
#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct delivery;
struct http_server;
struct lease;
struct legacy_auth;
struct legacy_transport;
struct listen_tls_config;
struct loop;
struct oauth2_registry;
struct otel;
struct publisher;
struct consumer;
struct sidecar;
struct transform;

enum route_direction { ROUTE_INBOUND, ROUTE_OUTBOUND };

/* `rate = { per_second | per_minute; burst; }` of a route whose kind calls the
 * legacy side (route_kind.paced); see pacer.h. */
struct rate_config {
    double per_second; /* as written; 0 when unset */
    double per_minute;
    int burst;    /* as written, or derived by config_load: max(1, ceil(calls a second)) */
    double rate;  /* derived: calls a second; 0 = not paced */
    int line;     /* of the rate group, for messages; 0 without one */
    bool written; /* per_second or per_minute is in the file (valid or not) */
};

/* Where an inbound route served by the shared HTTP server listens. */
struct http_endpoint {
    const char *listen;
    const char *path;
    const struct listen_tls_config *tls; /* NULL: plain HTTP */
    const char *spool_dir;               /* the route's spool's directory; NULL: none */
};

/* What the process offers a route's kind: filled by sidecar.c and set on
 * every route before start; read-only afterwards, so any thread may use it.
 * A kind asks the process through this and the objects it is handed
 * (publisher_state(r->publisher, …) for the broker, loop, consumer), never
 * through struct sidecar. */
struct route_services {
    const char *state_dir;          /* where kinds keep state across runs (poll cursors) */
    size_t publish_window;          /* broker.max_inflight: publishes awaiting confirms at once */
    struct oauth2_registry *oauth2; /* OAuth tokens shared by the routes that call out */
    struct otel *otel;              /* traces (otel.h), or NULL when off */
    /* Any thread: the route cannot go on; the process logs why and exits 1. */
    void (*fatal)(struct route *r, const char *why);
    /* Start: the HTTP server the route's requests arrive on, the one for
     * listen (shared by the routes on it) with tls (NULL: plain HTTP); NULL
     * with err. The process's listeners, or `test`'s server that is never
     * started (its requests are local ones: httpd.h). */
    struct http_server *(*http_server)(struct route *r, const char *listen,
                                       const struct listen_tls_config *tls, char *err,
                                       size_t errlen);
    /* How calls reach the legacy side (legacy_client.h): NULL, over HTTP;
     * `test` answers them in-process. */
    const struct legacy_transport *legacy_transport;
    /* Main thread: set once `run` started everything, so starts after it are
     * SIGHUP's (the publisher runs: its rpc reply consumer cannot be added). */
    bool running;
};

struct route {
    /* identity (common keys) */
    char *name;
    char *kind_name;
    const struct route_kind *kind;
    enum route_direction direction;
    int line; /* where it starts in the config file */

    /* inbound keys */
    char *exchange;
    char *routing_key;
    /* outbound keys */
    char *queue;
    char *queue_type;
    int concurrency;
    bool ordered;
    struct numlist retry_delays;
    int circuit_failures;
    double circuit_cooldown;
    /* kinds that call the legacy side (http/soap out, poll in) */
    struct rate_config rate;
    /* leasable kinds (poll in, file in): run only while holding the broker lease */
    bool lease;
    /* both */
    char *transform_file;
    struct strlist pass_headers;

    /* derived by config_load */
    char *dlx;          /* "<name>.dlx" */
    char *dlq;          /* inbound "<name>.<route>.dlq", outbound "<queue>.dlq" */
    char *dlq_key;      /* routing key into dlq through dlx */
    char *app_id;       /* "amqp-sidecar/<name>" */
    char *lease_queue;  /* with lease: "<name>.<route>.lease" (exclusive, see lease.h) */
    char *cursor_queue; /* with lease, kinds that keep state: "<name>.<route>.cursor" */

    void *opts; /* the kind's config struct, described by kind->keys */

    /* runtime, set by sidecar_start */
    const struct route_services *services; /* what a kind may ask of the process */
    struct sidecar *sc; /* the process: for sidecar.c and inbound.c only (kinds: services) */
    struct publisher *publisher; /* inbound: shared; outbound: the route's own */
    struct consumer *consumer;   /* outbound only */
    struct loop *loop;           /* outbound only: the route's thread */
    struct transform *transform; /* NULL without transform */
    void *state;                 /* the kind's runtime state */
    struct route_metrics metrics;
    struct queue_gauge *queues; /* the queues it owns (queue_watch.h); set by sidecar_start */
    size_t n_queues;
    struct lease *lease_handle; /* with lease: its lease (lease.h); set by sidecar_start */
};

struct route_kind {
    const char *name; /* "http", "file", ... */
    enum route_direction direction;
    const char *summary;           /* one line for `keys` and --help */
    bool paced;                    /* it calls the legacy side: takes route_rate_keys */
    bool keeps_state;              /* it writes in services->state_dir (poll cursors) */
    bool leasable;                 /* it may run under a lease: takes route_lease_keys */
    const struct config_key *keys; /* the kind's own keys, stored in opts */
    size_t opts_size;
    /* Cross-key checks after the keys were applied; report problems into rep. */
    void (*validate)(struct route *r, const struct sidecar_config *cfg, struct config_report *rep);
    /* One-line summary for `check` (what it listens on / writes to). */
    void (*describe)(const struct route *r, struct buf *out);
    /* Optional: the HTTP endpoint the route serves (for clash checks). */
    bool (*endpoint)(const struct route *r, struct http_endpoint *out);
    /* Free what validate stored in opts beyond the key table's fields (optional). */
    void (*free_opts)(struct route *r);

    /* 0, or -1 with err filled: `run` then exits 1 naming the route. */
    int (*start)(struct route *r, char *err, size_t errlen);
    /* Outbound: one delivery to handle; settle it with settle_ack/_retry/_dead (consumer.h). */
    void (*deliver)(struct route *r, struct delivery *d);
    void (*drain)(struct route *r);
    bool (*busy)(struct route *r);
    void (*stop)(struct route *r);
    /* Optional: false with a reason in detail when the route cannot work now. */
    bool (*ready)(struct route *r, struct buf *detail);
    /* Optional, inbound: would the route take a request while the broker is down or
     * blocking (a spool with room)? Then it stays ready. */
    bool (*spools)(struct route *r);
    /* Leasable kinds, on the publisher's broker thread (post to your own): the
     * route now holds its lease (cursor: the last one stored in the broker, or
     * NULL when there is none or the kind keeps none; borrowed), or lost it. A
     * leased route does no work until lease_gained. */
    void (*lease_gained)(struct route *r, const char *cursor);
    void (*lease_lost)(struct route *r);
    /* Optional: SIGHUP (secrets were re-read into opts). */
    void (*reload)(struct route *r);
    /* Optional, for kinds that call the legacy side: the credentials they present
     * (`check --connect` fetches an OAuth token with them). */
    const struct legacy_auth *(*legacy_auth)(const struct route *r);
};

/* The registry: every kind, by direction and name. */
const struct route_kind *route_kind_find(enum route_direction direction, const char *name);
const struct route_kind *const *route_kinds(void);
const char *route_direction_name(enum route_direction direction);

/* Key tables shared by all routes of a direction. */
extern const struct config_key route_common_keys[];
extern const struct config_key route_inbound_keys[];
extern const struct config_key route_outbound_keys[];
/* `rate`, for the routes of a paced kind (on top of their direction's keys). */
extern const struct config_key route_rate_keys[];
/* `lease`, for the routes of a leasable kind. */
extern const struct config_key route_lease_keys[];

/* ", rate 10/s burst 10" (or ", rate 30/min burst 1") for describe; nothing unpaced. */
void route_describe_rate(const struct route *r, struct buf *out);

/* The kind's options, typed: `const struct http_in_opts *o = ROUTE_OPTS(r);` */
#define ROUTE_OPTS(r) ((r)->opts)

#endif
