/*
 * consumer — deliveries of one outbound route, and what happens after the
 * legacy side answered: ack, retry through the ladder, or dead letter.
 *
 * Runs on the route's broker thread. The kind gets each delivery through its
 * `deliver` callback and settles it exactly once, on the same thread, through
 * one of five exits (Fluent Bit's OK/RETRY/ERROR, a slow-down and a give-back):
 *   settle_ack   — the legacy side accepted it: ack (after publishing the
 *                  reply to reply_to, if the kind gave one);
 *   settle_retry — a temporary failure: republish to `Q.retry.<n>` with the
 *                  attempt count and reason in headers, ack once that is
 *                  confirmed; past the last delay it becomes a dead letter;
 *   settle_throttled — the legacy side asked to wait (429/503 + Retry-After):
 *                  with a rate, pause the route and retry in place (pacer.h);
 *   settle_dead  — a permanent failure: republish to the DLX (→ `Q.dlq`) with
 *                  `x-sidecar-error`, `x-sidecar-attempts`, `x-sidecar-route`,
 *                  then ack;
 *   abandon      — no verdict (shutdown cut the call short): back to the
 *                  queue as it came, no attempt counted.
 * The original is acked only after its copy is confirmed: a crash in between
 * duplicates, never loses. Attempts are counted in our own header, never
 * with broker redelivery counters.
 *
 * Ownership: each exit takes d (it is freed, now or once its copy is
 * confirmed: don't touch it afterwards) and the reply it is given; reasons
 * are formatted and copied (cut at 1000 bytes).
 *
 * Each verdict feeds the route's circuit breaker (circuit.h): settle_retry
 * counts as a failure, settle_ack and settle_dead as successes, abandon not at
 * all; while the circuit is open the consumer takes no deliveries.
 *
 * With rate = { … } each delivery (and each ordered retry in place) waits for
 * its turn at the rate before the kind sees it, still unacked in the prefetch
 * window; drain, an open circuit or a lost connection give the waiting ones
 * back to the queue, no attempt counted.
 */
#ifndef SIDECAR_CONSUMER_H
#define SIDECAR_CONSUMER_H

#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct loop;
struct publisher;
struct message;
struct route;

struct delivery_judge;

struct delivery {
    struct message *msg; /* owned by the delivery: read, don't free */
    int attempts;        /* legacy calls made in earlier rounds (x-sidecar-attempts) */
    bool redelivered;
    void *kind_data; /* free for the kind */
    /* Who hears the verdict: NULL for the consumer's own deliveries; `amqp-sidecar
     * test` makes deliveries of its own and records what the kind decided. */
    const struct delivery_judge *judge;
};

/* A verdict as the kind gave it, for a judge (see struct delivery). */
enum delivery_verdict_kind {
    VERDICT_ACK,
    VERDICT_RETRY,
    VERDICT_RETRY_UNCOUNTED,
    VERDICT_THROTTLED,
    VERDICT_DEAD,
    VERDICT_ABANDON,
};
struct delivery_verdict {
    enum delivery_verdict_kind kind;
    int calls;
    double retry_after;
    enum dead_reason dead; /* VERDICT_DEAD */
    const char *reason;    /* formatted; "" for ack and abandon; valid during the call */
    struct message *reply; /* taken by the judge; may be NULL */
};
/* settle runs on the exit's thread; it takes d (and v->reply) like the exit would. */
struct delivery_judge {
    void (*settle)(void *arg, struct delivery *d, struct delivery_verdict *v);
    void *arg;
};

/* A consumer for outbound route r on the connection whose thread runs loop;
 * pub is that connection's publisher (retries, dead letters, replies). */
struct consumer *consumer_new(struct route *r, struct publisher *pub, struct loop *loop);
/* What to broker_attach (after the publisher) so the connection reaches the consumer. */
struct broker_client;
const struct broker_client *consumer_client(struct consumer *c);
void consumer_free(struct consumer *c);

/* ---- the five exits: exactly one per delivery, on the route's thread ----
 * `calls` is the number of legacy calls made for d in this round (1, or 0 when
 * it failed before any call); it is added to d->attempts. */

/* Done. reply (taken, may be NULL) goes to d's reply_to before the ack; without
 * a reply_to it is freed. */
void settle_ack(struct delivery *d, struct message *reply);

/* Try again later: the retry step follows the attempts made so far and
 * retry_after (the legacy side's Retry-After in seconds, 0 for none; it may pick
 * a later step, never a longer wait). Past the ladder: a dead letter,
 * DEAD_EXHAUSTED. Counts as a failure for the circuit breaker. */
void settle_retry(struct delivery *d, int calls, double retry_after, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The legacy side asked to slow down (a 429 or 503 with Retry-After, in
 * seconds > 0). On a route with rate = { … }: the whole route pauses that long
 * and d is retried in place first — no attempt counted, no retry queue, the
 * breaker not told. Unpaced, the same as settle_retry(d, 1, retry_after, …). */
void settle_throttled(struct delivery *d, double retry_after, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The call could not even be made for a reason outside the message (no OAuth
 * token could be had): retry through the ladder at the step its last legacy
 * call reached, counting no attempt, so it is never dead-lettered for it.
 * Counts as a failure for the circuit breaker. */
void settle_retry_uncounted(struct delivery *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Never works as it is: dead-letter it, counted under reason in the metrics.
 * reply (taken, may be NULL) goes to d's reply_to alongside, so an rpc caller
 * learns of the failure now (a 4xx, a SOAP Client fault). */
void settle_dead(struct delivery *d, int calls, enum dead_reason reason, struct message *reply,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* No verdict: give d back to the queue as it came, no attempt counted, nothing
 * told to the circuit breaker; for a call cut short at shutdown. The route's
 * thread, or the kind's stop once that thread ended: the connection is gone
 * then, so d is only freed and the broker redelivers the message. */
void abandon(struct delivery *d);

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
