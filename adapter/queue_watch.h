/*
 * queue_watch — how deep is every queue the sidecar owns, read without the
 * management plugin or extra credentials: a passive queue.declare on the
 * connection that owns the queue answers its ready messages and consumers.
 *
 * One watch is a broker client (broker_client.h) of one connection, on a
 * channel of its own (QUEUE_WATCH_CHANNEL): a passive declare of a queue that
 * is gone makes the broker close that channel, which the watch answers,
 * counts as "missing" and reopens, so the publisher and consumer on
 * BROKER_CHANNEL never notice. Every `interval` it asks for each queue in
 * turn, one question outstanding at a time and never waiting for an answer
 * (the loop thread also serves HTTP listeners), from the broker's tick.
 *
 * The gauges live in their routes (route.queues), written here with atomics
 * and read by /metrics and the status page from any thread.
 */
#ifndef SIDECAR_QUEUE_WATCH_H
#define SIDECAR_QUEUE_WATCH_H

#include <stddef.h>
#include <stdint.h>

#define QUEUE_WATCH_CHANNEL 2

struct broker_client;
struct route;
struct topology;

/* Gives each route in routes a gauge for each queue of t it owns
 * (topo_queue.owner), appended to route.queues. */
void queue_watch_gauges(const struct topology *t, struct route *const *routes, size_t n);
/* Frees what queue_watch_gauges gave r. */
void queue_watch_gauges_free(struct route *r);

/* A watch over the gauges of routes (which outlive it); label names the
 * connection in logs. interval_ms between rounds. */
struct queue_watch *queue_watch_new(const char *label, struct route *const *routes, size_t n,
                                    int64_t interval_ms);
const struct broker_client *queue_watch_client(struct queue_watch *w);
/* On the watch's broker thread (SIGHUP): watch these routes' gauges instead
 * (they outlive the watch; the old ones need only outlive this call). An
 * answer still due about an old gauge is dropped. */
void queue_watch_set_routes(struct queue_watch *w, struct route *const *routes, size_t n);
void queue_watch_free(struct queue_watch *w);

#endif
