/*
 * circuit — the circuit breaker of one outbound route.
 *
 * After `failures` consecutive failed attempts (the kind settled them with
 * settle_retry) the circuit opens: the consumer is told to pause, and
 * deliveries wait in the queue for `cooldown` seconds. Then it is half-open:
 * the consumer resumes with a prefetch of 1 and the next outcome decides —
 * a success closes it (resume again, at the full prefetch), a failure opens it
 * for another cooldown. The breaker owns its state, the cooldown timer on the
 * route's loop, the circuit_state gauge and the /readyz detail; the consumer
 * owns the AMQP side and acts through the two callbacks.
 *
 * Threads: everything but circuit_ready runs on the route's thread.
 */
#ifndef SIDECAR_CIRCUIT_H
#define SIDECAR_CIRCUIT_H

#include <stdbool.h>
#include <stdint.h>

struct buf;
struct loop;

/* Also the values of the circuit_state gauge. */
enum circuit_state { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

struct circuit_config {
    const char *route;      /* for logs; borrowed, outlives the circuit */
    const char *queue;      /* for logs: where deliveries wait; borrowed */
    int failures;           /* consecutive failures that open it; 0 = never opens */
    double cooldown;        /* seconds open before one probe delivery */
    _Atomic int64_t *gauge; /* metrics circuit_state, or NULL */
    struct loop *loop;      /* the route's loop: the cooldown timer runs there */
    /* Stop taking deliveries (the circuit opened). */
    void (*pause)(void *arg);
    /* Take deliveries again, at the prefetch circuit_probing allows (half-open or closed). */
    void (*resume)(void *arg);
    void *arg;
};

/* Copies cfg (the strings stay borrowed). Starts closed. */
struct circuit *circuit_new(const struct circuit_config *cfg);
void circuit_free(struct circuit *cb);

/* One attempt's result: ok for a success (ack, dead letter), !ok for a
 * temporary failure (retry). May call pause or resume before it returns. */
void circuit_record(struct circuit *cb, bool ok);
/* Shutdown: cancel the cooldown; the circuit stays as it is and never resumes. */
void circuit_stop(struct circuit *cb);

/* Open: deliveries must not reach the kind (give them back). */
bool circuit_is_open(const struct circuit *cb);
/* Half-open: one probe at a time (prefetch 1). */
bool circuit_probing(const struct circuit *cb);
/* Any thread: false while open, with the reason and the next probe in detail. */
bool circuit_ready(const struct circuit *cb, struct buf *detail);

#endif
