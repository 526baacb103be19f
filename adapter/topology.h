/*
 * topology — what a sidecar owns on the broker, as data.
 *
 * One description feeds both the declarations made on connect and the
 * definitions JSON of `amqp-sidecar topology`, so the two cannot disagree.
 * Owned per DESIGN.md: `<name>.dlx`; per outbound route Q: Q (dead-lettering
 * to the DLX with key Q), Q.retry.<i> (TTL, dead-lettering back to Q through
 * the default exchange) and Q.dlq bound to the DLX with key Q; per inbound
 * route `<name>.<route>.dlq` bound with key `<name>.<route>`, and for a leased
 * poll route `<name>.<route>.cursor`, which holds its latest cursor (lease.h;
 * the lease queue itself is exclusive and not part of it). Exchanges that
 * routes publish to belong to the admin and are only checked, passively.
 */
#ifndef SIDECAR_TOPOLOGY_H
#define SIDECAR_TOPOLOGY_H

#include "metrics.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct route;
struct sidecar_config;

struct topo_queue {
    char *name;
    bool quorum;
    int64_t ttl_ms;     /* 0 = none */
    int64_t max_length; /* 0 = none; else x-max-length with x-overflow drop-head (newest kept) */
    char *dlx;          /* NULL = no dead-lettering; "" = the default exchange */
    char *dlk;
    bool single_active;
    const char *owner; /* route name, for messages */
    bool legacy_args;  /* declared by an older sidecar without the quorum safety
                        * arguments (found at declare time; see topology.c) */
    enum queue_role role;
};

/* A quorum queue's explicit delivery limit: RabbitMQ 4.x drops (or
 * dead-letters) a message redelivered more often than its default of 20. The
 * sidecar counts attempts itself and only sees redeliveries when a connection
 * dies, so the limit is set out of reach. */
#define TOPOLOGY_DELIVERY_LIMIT 1000000

struct topo_binding {
    char *exchange;
    char *queue;
    char *key;
};

struct topology {
    char **exchanges; /* durable direct exchanges the sidecar owns */
    size_t n_exchanges;
    struct topo_queue *queues;
    size_t n_queues;
    struct topo_binding *bindings;
    size_t n_bindings;
    char **checked; /* exchanges that must exist (passive checks) */
    size_t n_checked;
};

/* What the inbound publisher's connection declares and checks. */
struct topology *topology_for_inbound(const struct sidecar_config *cfg);
/* What one outbound route's connection declares. */
struct topology *topology_for_route(const struct sidecar_config *cfg, const struct route *r);
/* Everything (for `amqp-sidecar topology`). */
struct topology *topology_for_config(const struct sidecar_config *cfg);
void topology_free(struct topology *t);

/* The retry queue name for step i (1-based). Caller frees. */
char *topology_retry_queue(const char *queue, size_t step);

/* RabbitMQ definitions JSON (importable with rabbitmqctl import_definitions). Caller frees. */
char *topology_definitions_json(const struct topology *t, const char *vhost);

/* For `check --connect`, changing nothing: each quorum queue of t that exists
 * (passive declare) is declared again with the arguments the sidecar wants;
 * RabbitMQ refuses that when they differ, and a line naming the queue and the
 * fix is appended to warnings. Queues that do not exist yet are skipped (the
 * sidecar creates them right). 0, or -1 with err if the channel broke. */
struct buf;
int topology_check_quorum(amqp_connection_state_t conn, amqp_channel_t ch, const struct topology *t,
                          const char *vhost, struct buf *warnings, char *err, size_t errlen);

/* Declares t on an open connection (channel `ch`), then checks the admin's
 * exchanges passively. 0, or -1 with err saying what and how to fix it; the
 * connection may then be unusable. `fatal` is set when retrying cannot help
 * without an operator (conflicting arguments, a missing exchange). */
int topology_declare(amqp_connection_state_t conn, amqp_channel_t ch, const struct topology *t,
                     const char *vhost, bool *fatal, char *err, size_t errlen);

#endif
