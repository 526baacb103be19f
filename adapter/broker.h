/*
 * broker — one AMQP connection and the one thread that owns it.
 *
 * The thread runs a loop (loop.h) that polls the socket, wakes for work other
 * threads post, and keeps timers for heartbeats and reconnects. It connects
 * to the configured URLs in turn, opens channel 1 in confirm mode, declares
 * the topology it was given, checks the admin's exchanges passively, then
 * opens its clients (broker_client.h: the publisher, and for outbound routes
 * a consumer), which it knows only by their callbacks. On any
 * connection or channel error it fails what was in flight, backs off with
 * jitter, and connects again (to the next URL), redeclaring everything.
 * Every state change is logged once.
 *
 * Nothing outside the broker, its clients (publisher.c, consumer.c) and
 * topology.c sees a rabbitmq-c type: other modules talk to the publisher and
 * consumer.
 */
#ifndef SIDECAR_BROKER_H
#define SIDECAR_BROKER_H

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct broker_config;
struct connection_metrics;
struct loop;
struct process_metrics;
struct topology;

/* Called on the broker's thread. `fatal` reports a problem an operator must
 * fix (a missing exchange, a conflicting queue) found before the first
 * successful start; after that such problems are logged and retried. */
struct broker_events {
    void (*fatal)(void *arg, const char *why);
    void *arg;
    struct process_metrics *metrics;       /* reconnects and losses are counted here */
    struct connection_metrics *connection; /* up/down written here (may be NULL) */
};

/* label names the connection in logs ("publisher", or the route name);
 * takes ownership of topo. The broker is not started. */
struct broker *broker_new(const char *label, const char *system_name,
                          const struct broker_config *cfg, struct topology *topo,
                          const struct broker_events *events);
void broker_free(struct broker *b); /* after broker_stop */

/* A client of the connection (broker_client.h: the publisher, a consumer):
 * before broker_start, at most BROKER_MAX_CLIENTS, offered every method in
 * the order attached. The broker keeps c (not a copy). */
#define BROKER_MAX_CLIENTS 4
struct broker_client;
void broker_attach(struct broker *b, const struct broker_client *c);

struct loop *broker_loop(struct broker *b);
const char *broker_label(const struct broker *b);

/* Starts the owner thread, which connects in the background. 0 or -1. */
int broker_start(struct broker *b);
/* Any thread but the owner: close the connection, stop and join the thread. */
void broker_stop(struct broker *b);
/* Main thread (SIGHUP): t (taken) replaces the topology declared on every
 * later connect; the connection that is open now keeps what it declared. */
void broker_set_topology(struct broker *b, struct topology *t);

/* Any thread. */
bool broker_is_up(const struct broker *b);
bool broker_is_blocked(const struct broker *b);
/* A short description of the state for /readyz ("connected to …", "reconnecting: …"). */
void broker_describe(const struct broker *b, char *out, size_t n);

/* `check --connect`: connect (trying each URL), passively check the exchanges
 * in t and the arguments of its quorum queues that exist (lines for
 * warnings), close. Changes nothing. 0, or -1 with err saying what and how to
 * fix; on success err holds where it connected. */
struct buf;
int broker_probe(const struct broker_config *cfg, const char *system_name, const struct topology *t,
                 struct buf *warnings, char *err, size_t errlen);

#endif
