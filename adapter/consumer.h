/*
 * consumer — deliveries of one outbound route, and what happens after the
 * legacy side answered: ack, retry through the ladder, or dead letter.
 *
 * Runs on the route's broker thread. The kind gets each delivery through its
 * `deliver` callback and settles it exactly once with consumer_settle, on the
 * same thread, with one of three outcomes (Fluent Bit's OK/RETRY/ERROR):
 *   ACK   — the legacy side accepted it: ack (after publishing the reply to
 *           reply_to, if the kind gave one);
 *   RETRY — a temporary failure: republish to `Q.retry.<n>` with the attempt
 *           count and reason in headers, ack once that is confirmed; past
 *           the last delay it becomes a dead letter;
 *   DEAD  — a permanent failure: republish to the DLX (→ `Q.dlq`) with
 *           `x-sidecar-error`, `x-sidecar-attempts`, `x-sidecar-route`, then ack.
 * The original is acked only after its copy is confirmed: a crash in between
 * duplicates, never loses. Attempts are counted in our own header, never
 * with broker redelivery counters.
 *
 * Each outcome feeds the route's circuit breaker (circuit.h): RETRY counts as
 * a failure, ACK and DEAD as successes; while it is open the consumer takes
 * no deliveries.
 */
#ifndef SIDECAR_CONSUMER_H
#define SIDECAR_CONSUMER_H

#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct buf;
struct message;
struct route;

struct delivery {
    struct message *msg; /* owned by the delivery: read, don't free */
    int attempts;        /* legacy calls made in earlier rounds (x-sidecar-attempts) */
    bool redelivered;
    void *kind_data; /* free for the kind */
};

enum outcome { OUTCOME_ACK, OUTCOME_RETRY, OUTCOME_DEAD };

struct settle {
    enum outcome outcome;
    int calls;                    /* legacy calls made this round (usually 1; 0 if none) */
    const char *reason;           /* RETRY/DEAD: why (x-sidecar-error); copied */
    enum dead_reason dead_reason; /* DEAD: the metrics class */
    double retry_after;           /* RETRY: the legacy side's Retry-After (seconds; 0 = none):
                                   * picks a later ladder step, never a longer wait */
    struct message *reply;        /* taken; when the delivery has reply_to it is published
                                   * there: on ACK before the ack, on DEAD alongside the
                                   * dead letter; ignored on RETRY */
};

struct consumer *consumer_new(struct route *r, struct broker *b);
void consumer_free(struct consumer *c);

/* Route thread: settle d exactly once; d is freed (now or after the republish). */
void consumer_settle(struct delivery *d, const struct settle *s);

/* Route thread: stop taking deliveries (SIGTERM); in-flight ones still settle. */
void consumer_drain(struct consumer *c);
/* Any thread: deliveries not yet settled or republishes not yet confirmed. */
bool consumer_busy(const struct consumer *c);
/* Any thread: false with a reason while the circuit is open. */
bool consumer_ready(const struct consumer *c, struct buf *detail);

/* The retry step (1-based) for a message that has now had `attempts` calls,
 * given the ladder and the legacy side's Retry-After; 0 means dead letter. */
size_t consumer_retry_step(const double *delays, size_t n, int attempts, double retry_after);

#endif
