/*
 * consumer — see consumer.h for the contract.
 * (About 840 lines: a delivery's whole life — arrival and its lag, its turn
 * at the rate, settling, its copy in a retry queue or the DLQ, its ack, and the
 * list of those unsettled, oldest first, for the in-flight age gauge — is one
 * state machine over one struct; the breaker, the pacing and the ack
 * bookkeeping are in circuit.c, pacer.c and ack_batch.c.)
 *
 * Each delivery keeps the rabbitmq-c message it arrived as (`raw`), so a
 * retry or dead letter republishes the original body and every original
 * property and header, changing only our three x-sidecar-* headers. Work is
 * tagged with the connection generation it arrived on: a delivery settled
 * after a reconnect is simply dropped (the broker redelivers it).
 */
#include "consumer.h"

#include "ack_batch.h"
#include "amqp_message.h"
#include "broker_client.h"
#include "circuit.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "otel.h"
#include "pacer.h"
#include "publisher.h"
#include "publisher_raw.h"
#include "route.h"
#include "topology.h"
#include "util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REASON_MAX 1000 /* bytes of a reason kept in x-sidecar-error */

struct consumer {
    struct route *route;
    struct publisher *pub;           /* of the same connection: retries, dead letters, replies */
    struct loop *loop;               /* the connection's thread */
    const struct broker_channel *ch; /* from on_open; NULL before the first */
    struct broker_client client;
    char *tag;
    bool consuming;
    bool draining;
    atomic_int unsettled;
    struct circuit *circuit;
    struct pacer *pacer;           /* rate = { … }: deliveries wait their turn; NULL unpaced */
    struct delivery_impl *waiting; /* ordered routes: deliveries waiting for their retry */
    struct ack_batch acks;
    atomic_size_t unflushed; /* acks.n_settled, for consumer_busy on any thread */
    /* every unsettled delivery, oldest first: the head is the age gauge */
    struct delivery_impl *live_head, *live_tail;
};

struct delivery_impl {
    struct delivery pub; /* first: the settle_* exits cast back */
    struct consumer *c;
    amqp_message_t raw;
    uint64_t tag;
    uint64_t generation;
    char *reason;         /* the reason carried into the republished copy */
    uint64_t retry_timer; /* ordered routes: waiting to be retried in place */
    struct delivery_impl *next_waiting;
    struct pacer_wait turn;                      /* waiting for its turn at the rate (c->pacer) */
    struct delivery_impl *live_prev, *live_next; /* consumer.live_head's list */
    int64_t arrived_ms;                          /* loop_now_ms() */
    struct otel_span span;                       /* its trace span, ended in delivery_free */
    const char *outcome;                         /* what became of it, for the span */
    bool delivered;
};

static struct delivery_impl *impl_of_turn(struct pacer_wait *w)
{
    return (struct delivery_impl *)((char *)w - offsetof(struct delivery_impl, turn));
}

static struct delivery_impl *impl_of(struct delivery *d)
{
    return (struct delivery_impl *)d;
}

/* The open connection, or NULL while disconnected (or before the first open). */
static amqp_connection_state_t channel_conn(const struct consumer *c)
{
    return c->ch && c->ch->open ? c->ch->conn : NULL;
}

static void circuit_pause(void *arg);
static void circuit_resume(void *arg);

static const struct broker_client consumer_client_template;

struct consumer *consumer_new(struct route *r, struct publisher *pub, struct loop *loop)
{
    struct consumer *c = xcalloc(1, sizeof(*c));
    c->route = r;
    c->pub = pub;
    c->loop = loop;
    c->client = consumer_client_template;
    c->client.arg = c;
    c->tag = xasprintf("amqp-sidecar/%s", r->name);
    atomic_store(&r->metrics.last_lag_ms, -1);
    c->circuit = circuit_new(&(struct circuit_config){.route = r->name,
                                                      .queue = r->queue,
                                                      .failures = r->circuit_failures,
                                                      .cooldown = r->circuit_cooldown,
                                                      .gauge = &r->metrics.circuit,
                                                      .loop = loop,
                                                      .pause = circuit_pause,
                                                      .resume = circuit_resume,
                                                      .arg = c});
    if (r->rate.rate > 0)
        c->pacer = pacer_new(&(struct pacer_config){.route = r->name,
                                                    .held = "deliveries",
                                                    .per_second = r->rate.rate,
                                                    .burst = r->rate.burst,
                                                    .loop = loop,
                                                    .throttled_ms = &r->metrics.throttled_ms,
                                                    .gauge = &r->metrics.throttle});
    return c;
}

void consumer_free(struct consumer *c)
{
    if (c == NULL)
        return;
    circuit_free(c->circuit);
    pacer_free(c->pacer);
    ack_batch_free(&c->acks);
    free(c->tag);
    free(c);
}

static const char *log_route(const struct consumer *c)
{
    return c->route->name;
}

/* ---- consuming ---------------------------------------------------------------- */

static int start_consuming(struct consumer *c, int prefetch, char *err, size_t errlen)
{
    amqp_connection_state_t conn = channel_conn(c);
    if (conn == NULL)
        return -1;
    amqp_basic_qos(conn, BROKER_CHANNEL, 0, (uint16_t)prefetch, 0);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "setting prefetch %d failed", prefetch);
        return -1;
    }
    amqp_basic_consume(conn, BROKER_CHANNEL, amqp_cstring_bytes(c->route->queue),
                       amqp_cstring_bytes(c->tag), 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "consuming queue \"%s\" failed", c->route->queue);
        return -1;
    }
    c->consuming = true;
    c->ch->kick(c->ch);
    return 0;
}

static void stop_consuming(struct consumer *c)
{
    amqp_connection_state_t conn = channel_conn(c);
    if (conn == NULL || !c->consuming)
        return;
    c->consuming = false;
    amqp_basic_cancel(conn, BROKER_CHANNEL, amqp_cstring_bytes(c->tag));
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
        c->ch->fail(c->ch, "cancelling the consumer failed");
    else
        c->ch->kick(c->ch);
}

static int prefetch_of(const struct consumer *c)
{
    if (circuit_probing(c->circuit) || c->route->ordered)
        return 1;
    return c->route->concurrency;
}

static int consumer_on_open(struct consumer *c, char *err, size_t errlen)
{
    c->consuming = false;
    if (c->draining || circuit_is_open(c->circuit))
        return 0;
    return start_consuming(c, prefetch_of(c), err, errlen);
}

static void requeue_paced(struct consumer *c);

static void consumer_on_lost(struct consumer *c)
{
    c->consuming = false;
    requeue_paced(c);           /* stale now: only freed, the broker redelivers them */
    ack_batch_forget(&c->acks); /* those deliveries will be redelivered */
    atomic_store(&c->unflushed, 0);
}

static void consumer_on_cancel(struct consumer *c, bool by_server)
{
    if (!by_server)
        return;
    c->consuming = false;
    log_warn(log_route(c),
             "the broker cancelled our consumer (queue \"%s\" deleted?); reconnecting to "
             "redeclare it",
             c->route->queue);
    c->ch->fail(c->ch, "consumer cancelled by the broker");
}

static void requeue(struct delivery_impl *di);
static void waiting_remove(struct delivery_impl *di);

void consumer_drain(struct consumer *c)
{
    c->draining = true;
    circuit_stop(c->circuit);
    /* Deliveries waiting for their turn at the rate go back too, no attempt counted. */
    requeue_paced(c);
    if (c->pacer)
        pacer_stop(c->pacer);
    /* Ordered retries waiting in place go back to the head of the queue now
     * rather than hold the shutdown for their delay. */
    while (c->waiting) {
        struct delivery_impl *di = c->waiting;
        loop_timer_cancel(c->loop, di->retry_timer);
        waiting_remove(di);
        requeue(di);
    }
    stop_consuming(c);
}

bool consumer_busy(const struct consumer *c)
{
    struct consumer *mc = (struct consumer *)c;
    return atomic_load(&mc->unsettled) > 0 || atomic_load(&mc->unflushed) > 0;
}

bool consumer_ready(const struct consumer *c, struct buf *detail)
{
    bool ready = circuit_ready(c->circuit, detail);
    if (c->pacer)
        pacer_describe(c->pacer, detail); /* a pause is shown, but is no failure */
    return ready;
}

/* ---- what the circuit breaker decides ---------------------------------------------- */

static void circuit_pause(void *arg)
{
    requeue_paced(arg); /* an open circuit holds them in the queue, not here */
    stop_consuming(arg);
}

/* Half-open (prefetch 1) or closed again (the route's prefetch): a consume
 * with the new prefetch replaces the old one. */
static void circuit_resume(void *arg)
{
    struct consumer *c = arg;
    stop_consuming(c);
    char err[256];
    if (!c->draining && channel_conn(c) &&
        start_consuming(c, prefetch_of(c), err, sizeof(err)) != 0)
        c->ch->fail(c->ch, err);
}

/* ---- deliveries ----------------------------------------------------------------- */

static struct message *message_from_delivery(const amqp_message_t *raw,
                                             const amqp_basic_deliver_t *d)
{
    struct message *m = amqp_message_convert(raw);
    m->exchange = xstrndup(d->exchange.bytes ? d->exchange.bytes : "", d->exchange.len);
    m->routing_key = xstrndup(d->routing_key.bytes ? d->routing_key.bytes : "", d->routing_key.len);
    return m;
}

static int attempts_of(const struct message *m)
{
    const char *v = message_header(m, "x-sidecar-attempts");
    if (v == NULL)
        return 0;
    long n = strtol(v, NULL, 10);
    return n < 0 ? 0 : n > 1000000 ? 1000000 : (int)n;
}

/* ---- the oldest in flight, and the lag at arrival ---------------------------------- */

static void oldest_gauge(struct consumer *c)
{
    atomic_store(&c->route->metrics.oldest_inflight_ms,
                 c->live_head ? c->live_head->arrived_ms : 0);
}

static void live_add(struct consumer *c, struct delivery_impl *di)
{
    di->arrived_ms = loop_now_ms();
    di->live_prev = c->live_tail;
    if (c->live_tail)
        c->live_tail->live_next = di;
    else
        c->live_head = di;
    c->live_tail = di;
    oldest_gauge(c);
}

static void live_remove(struct consumer *c, struct delivery_impl *di)
{
    if (di->live_prev)
        di->live_prev->live_next = di->live_next;
    else
        c->live_head = di->live_next;
    if (di->live_next)
        di->live_next->live_prev = di->live_prev;
    else
        c->live_tail = di->live_prev;
    oldest_gauge(c);
}

/* A first delivery's age, from the timestamp its publisher set (whole seconds). */
static void observe_lag(struct consumer *c, const amqp_message_t *raw, int attempts)
{
    if (attempts > 0 || !(raw->properties._flags & AMQP_BASIC_TIMESTAMP_FLAG))
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double lag = (double)now.tv_sec + now.tv_nsec / 1e9 - (double)raw->properties.timestamp;
    if (lag < 0)
        lag = 0; /* clocks apart: say "no lag" rather than nonsense */
    histogram_observe_lag(&c->route->metrics.lag_seconds, lag);
    atomic_store(&c->route->metrics.last_lag_ms, (int64_t)(lag * 1000));
}

static void delivery_free(struct delivery_impl *di)
{
    struct route *r = di->c->route;
    if (di->span.sampled) {
        char name[64];
        snprintf(name, sizeof(name), "deliver %s", r->name);
        otel_end(r->services->otel, &di->span, name, OTEL_CONSUMER, r->name,
                 di->pub.msg ? di->pub.msg->message_id : NULL, di->outcome, di->delivered);
    }
    live_remove(di->c, di);
    atomic_fetch_sub(&di->c->unsettled, 1);
    atomic_fetch_sub(&di->c->route->metrics.inflight, 1);
    amqp_destroy_message(&di->raw);
    message_free(di->pub.msg);
    free(di->reason);
    free(di);
}

/* True when d's connection is gone: it will be redelivered, so just forget it. */
static bool stale(const struct delivery_impl *di)
{
    return channel_conn(di->c) == NULL || di->c->ch->generation != di->generation;
}

/* ---- coalesced acks (ack_batch.h) ----------------------------------------------
 * The broker thread flushes before it sleeps (broker_prepare) and before a
 * graceful close; acks of a connection that is gone are dropped (redelivered,
 * never lost). */

static void send_ack(void *arg, uint64_t tag, bool multiple)
{
    amqp_basic_ack(arg, BROKER_CHANNEL, tag, multiple);
}

static void consumer_flush_acks(struct consumer *c)
{
    if (c->acks.n_settled == 0)
        return;
    amqp_connection_state_t conn = channel_conn(c);
    if (conn != NULL && c->ch->generation == c->acks.generation)
        ack_batch_flush(&c->acks, send_ack, conn);
    else
        ack_batch_flush(&c->acks, NULL, NULL);
    atomic_store(&c->unflushed, 0);
}

static void ack(struct delivery_impl *di)
{
    struct consumer *c = di->c;
    if (!stale(di)) {
        ack_batch_settle(&c->acks, di->tag);
        atomic_fetch_add(&c->unflushed, 1);
    }
    delivery_free(di);
}

static void requeue(struct delivery_impl *di)
{
    di->outcome = "requeued";
    if (!stale(di)) {
        ack_batch_release(&di->c->acks, di->tag);
        amqp_basic_nack(channel_conn(di->c), BROKER_CHANNEL, di->tag, 0, 1);
    }
    delivery_free(di);
}

/* ---- its turn at the rate (pacer.h) ---------------------------------------------- */

/* The legacy call may go now: unless the delivery's moment passed meanwhile. */
static void turn_come(struct pacer_wait *w)
{
    struct delivery_impl *di = impl_of_turn(w);
    struct consumer *c = di->c;
    if (stale(di) || c->draining || circuit_is_open(c->circuit)) {
        requeue(di);
        return;
    }
    c->route->kind->deliver(c->route, &di->pub);
}

/* Hands di to the kind: now when unpaced, else at its turn. */
static void dispatch(struct delivery_impl *di)
{
    struct consumer *c = di->c;
    if (c->pacer == NULL) {
        c->route->kind->deliver(c->route, &di->pub);
        return;
    }
    di->turn.go = turn_come;
    pacer_submit(c->pacer, &di->turn);
}

/* Every delivery waiting for its turn back to the queue as it came. */
static void requeue_paced(struct consumer *c)
{
    if (c->pacer == NULL)
        return;
    for (struct pacer_wait *w; (w = pacer_take(c->pacer)) != NULL;)
        requeue(impl_of_turn(w));
}

static void consumer_on_deliver(struct consumer *c, const amqp_basic_deliver_t *d,
                                amqp_message_t *msg)
{
    struct delivery_impl *di = xcalloc(1, sizeof(*di));
    di->c = c;
    di->raw = *msg; /* we own its pool and body now */
    di->tag = d->delivery_tag;
    di->generation = c->ch->generation;
    di->pub.msg = message_from_delivery(msg, d);
    di->pub.attempts = attempts_of(di->pub.msg);
    di->pub.redelivered = d->redelivered;
    if (!ack_batch_hold(&c->acks, di->generation, di->tag))
        atomic_store(&c->unflushed, 0); /* a new connection: the old one's acks are gone */
    atomic_fetch_add(&c->unsettled, 1);
    atomic_fetch_add(&c->route->metrics.inflight, 1);
    live_add(c, di);
    di->outcome = "lost"; /* until an exit says otherwise: the connection went first */
    if (c->route->services)
        otel_begin(c->route->services->otel, message_header(di->pub.msg, "traceparent"), &di->span);

    if (c->draining || circuit_is_open(c->circuit)) {
        /* Sent before our cancel reached the broker: back to the queue, no attempt used. */
        requeue(di);
        return;
    }
    metric_inc(c->route->metrics.received);
    observe_lag(c, &di->raw, di->pub.attempts);
    dispatch(di);
}

/* ---- settling ---------------------------------------------------------------------- */

size_t consumer_retry_step(const double *delays, size_t n, int attempts, double retry_after)
{
    if (attempts < 1 || (size_t)attempts > n)
        return 0;
    size_t step = (size_t)attempts;
    if (retry_after > delays[step - 1]) {
        /* The legacy side asked for longer: the first later step that waits long enough. */
        while (step < n && delays[step - 1] < retry_after)
            step++;
    }
    return step;
}

/* Publishes di's original message with our headers set; done decides the ack.
 * 0 when sent, else publisher_publish_raw's refusal with why. */
static int republish(struct delivery_impl *di, const char *exchange, const char *key, int attempts,
                     publish_raw_done_fn done, char *why, size_t whylen)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t *e =
        amqp_copy_properties(&di->raw, di->reason, attempts, di->c->route->name, &props);
    int rc = publisher_publish_raw(di->c->pub, exchange, key, &props, di->raw.body, done, di, why,
                                   whylen);
    free(e);
    return rc;
}

static void log_delivery(enum log_level level, const struct delivery_impl *di, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_delivery(enum log_level level, const struct delivery_impl *di, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_eventv(level,
               &(struct log_ctx){.route = di->c->route->name,
                                 .message_id = di->pub.msg->message_id,
                                 .correlation_id = di->pub.msg->correlation_id},
               fmt, ap);
    va_end(ap);
}

/* After the copy in a retry queue or the DLQ was confirmed (or not). */
static void copied(void *arg, enum publish_status status, const char *detail)
{
    struct delivery_impl *di = arg;
    if (status == PUBLISH_OK) {
        ack(di);
        return;
    }
    log_delivery(LOG_ERROR, di,
                 "could not store the message for retry/dead-lettering (%s); leaving it in the "
                 "queue to try again",
                 detail ? detail : publish_status_name(status));
    requeue(di);
}

/* The message's own properties leave no room for our headers (they filled a
 * frame already): let the broker dead-letter it through the queue's DLX
 * instead (to the same DLQ, with x-death but without x-sidecar-error), so it
 * cannot loop. */
static void reject_to_dlq(struct delivery_impl *di, const char *why)
{
    struct route *r = di->c->route;
    log_delivery(LOG_ERROR, di,
                 "cannot republish it with our headers (%s); rejected it to %s through the "
                 "queue's dead-letter exchange (see its x-death header)",
                 why, r->dlq);
    if (!stale(di)) {
        ack_batch_release(&di->c->acks, di->tag);
        amqp_basic_reject(channel_conn(di->c), BROKER_CHANNEL, di->tag, 0);
    }
    delivery_free(di);
}

/* Stores di's copy in exchange/key (a retry queue or the DLQ); acked once confirmed. */
static void store_copy(struct delivery_impl *di, const char *exchange, const char *key,
                       int attempts)
{
    char why[300];
    switch (republish(di, exchange, key, attempts, copied, why, sizeof(why))) {
    case 0:
        return;
    case PUBLISH_INVALID:
        reject_to_dlq(di, why);
        return;
    default:
        copied(di, PUBLISH_UNAVAILABLE, why);
        return;
    }
}

static void dead_letter(struct delivery_impl *di, int attempts, enum dead_reason why)
{
    struct route *r = di->c->route;
    di->outcome = "dead_letter";
    metric_inc(r->metrics.dead[why]);
    log_delivery(LOG_WARN, di, "dead-lettered to %s after %d attempt(s): %s", r->dlq, attempts,
                 di->reason);
    store_copy(di, r->dlx, r->dlq_key, attempts);
}

static void retry_in_place(struct loop *loop, void *arg);

/* Retries di through ladder step `step` (1-based); 0: dead letter, the ladder is done. */
static void retry_at(struct delivery_impl *di, int attempts, size_t step)
{
    struct route *r = di->c->route;
    if (step == 0) {
        char *why = xasprintf("gave up after %d attempts: %s", attempts, di->reason);
        free(di->reason);
        di->reason = why;
        dead_letter(di, attempts, DEAD_EXHAUSTED);
        return;
    }
    metric_inc(r->metrics.retries);
    di->outcome = "retry";
    double delay = r->retry_delays.v[step - 1];
    if (r->ordered) {
        /* Strict order: the line waits for this message, as long as the step the
         * ladder chose. Retry-After may pick a longer step, never a longer wait:
         * every message behind waits too, so only the operator's ladder decides. */
        log_delivery(LOG_INFO, di, "attempt %d failed (%s); retrying in %.1fs, holding the line",
                     attempts, di->reason, delay);
        di->pub.attempts = attempts;
        di->retry_timer = loop_timer(di->c->loop, loop_ms(delay), retry_in_place, di);
        di->next_waiting = di->c->waiting;
        di->c->waiting = di;
        return;
    }
    char *queue = topology_retry_queue(r->queue, step);
    log_delivery(LOG_INFO, di, "attempt %d failed (%s); retrying in %.1fs via %s", attempts,
                 di->reason, delay, queue);
    store_copy(di, "", queue, attempts);
    free(queue);
}

static void waiting_remove(struct delivery_impl *di)
{
    for (struct delivery_impl **pp = &di->c->waiting; *pp; pp = &(*pp)->next_waiting) {
        if (*pp == di) {
            *pp = di->next_waiting;
            break;
        }
    }
    di->retry_timer = 0;
}

static void retry_in_place(struct loop *loop, void *arg)
{
    struct delivery_impl *di = arg;
    waiting_remove(di);
    if (stale(di) || di->c->draining) {
        requeue(di);
        return;
    }
    dispatch(di); /* a retry is a legacy call too: it waits its turn */
}

static void replied(void *arg, enum publish_status status, const char *detail)
{
    struct delivery_impl *di = arg;
    if (status != PUBLISH_OK)
        log_delivery(LOG_WARN, di, "reply to %s not delivered (%s)", di->pub.msg->reply_to,
                     detail ? detail : publish_status_name(status));
    ack(di);
}

/* A reply sent along with a dead letter: nothing waits for its confirm. */
static void reply_sent(void *arg, enum publish_status status, const char *detail)
{
    if (status != PUBLISH_OK)
        log_warn((const char *)arg, "reply for a dead-lettered request not delivered (%s)",
                 detail ? detail : publish_status_name(status));
}

/* Publishes reply (taken) to di's reply_to with di's correlation_id; done(arg)
 * follows, once, whatever happens. The legacy side chose the content type: one
 * AMQP cannot carry (over 255 bytes, control characters) is replaced, so a
 * hostile answer can neither break the connection nor loop the delivery. */
static void send_reply(struct delivery_impl *di, struct message *reply, publish_raw_done_fn done,
                       void *arg)
{
    if (reply->content_type && !message_content_type_ok(reply->content_type)) {
        log_delivery(LOG_WARN, di,
                     "the legacy answer's Content-Type (%zu bytes) cannot be an AMQP content "
                     "type; the reply carries application/octet-stream",
                     strlen(reply->content_type));
        message_set(&reply->content_type, "application/octet-stream");
    }
    amqp_basic_properties_t props;
    amqp_table_entry_t *e = amqp_reply_properties(reply, di->pub.msg, di->c->route->app_id, &props);
    amqp_bytes_t body = {.len = reply->body_len, .bytes = reply->body};
    char why[300];
    int rc = publisher_publish_raw(di->c->pub, "", di->pub.msg->reply_to, &props, body, done, arg,
                                   why, sizeof(why));
    free(e);
    message_free(reply);
    if (rc != 0)
        done(arg, (enum publish_status)rc, why);
}

/* Every verdict feeds the breaker first. False when d's connection is gone:
 * then d and reply are freed, and the broker redelivers the message. */
static bool settle_begin(struct delivery_impl *di, bool ok, struct message *reply)
{
    circuit_record(di->c->circuit, ok);
    if (!stale(di))
        return true;
    log_delivery(LOG_INFO, di,
                 "broker connection was reset meanwhile; the broker will redeliver it");
    message_free(reply);
    delivery_free(di);
    return false;
}

/* The reason carried into the republished copy (x-sidecar-error). */
static void set_reason(struct delivery_impl *di, const char *fmt, va_list ap)
{
    char reason[REASON_MAX + 1];
    vsnprintf(reason, sizeof(reason), fmt, ap);
    free(di->reason); /* an ordered route's earlier round in place */
    di->reason = xstrdup(reason);
}

/* A delivery with a judge (consumer.h) is `test`'s: the verdict goes there, formatted. */
static void judged(struct delivery *d, struct delivery_verdict v, const char *fmt, va_list ap)
{
    char reason[REASON_MAX + 1] = "";
    if (fmt != NULL)
        vsnprintf(reason, sizeof(reason), fmt, ap);
    v.reason = reason;
    d->judge->settle(d->judge->arg, d, &v);
}

#define JUDGED(d, fmt, ...)                                                                        \
    do {                                                                                           \
        va_list ap_;                                                                               \
        va_start(ap_, fmt);                                                                        \
        judged(d, (struct delivery_verdict){__VA_ARGS__}, fmt, ap_);                               \
        va_end(ap_);                                                                               \
    } while (0)

static void judged_plain(struct delivery *d, struct delivery_verdict v)
{
    v.reason = "";
    d->judge->settle(d->judge->arg, d, &v);
}

void settle_ack(struct delivery *d, struct message *reply)
{
    if (d->judge) {
        judged_plain(d, (struct delivery_verdict){.kind = VERDICT_ACK, .reply = reply});
        return;
    }
    struct delivery_impl *di = impl_of(d);
    if (!settle_begin(di, true, reply))
        return;
    metric_inc(di->c->route->metrics.delivered);
    di->outcome = "delivered";
    di->delivered = true;
    if (reply && d->msg->reply_to) {
        send_reply(di, reply, replied, di);
        return;
    }
    message_free(reply);
    ack(di);
}

/* A failed call: the breaker hears of it, the reason is kept. False when d is gone. */
static bool failure_begin(struct delivery_impl *di, const char *fmt, va_list ap)
{
    if (!settle_begin(di, false, NULL))
        return false;
    set_reason(di, fmt, ap);
    return true;
}

void settle_retry(struct delivery *d, int calls, double retry_after, const char *fmt, ...)
{
    if (d->judge) {
        JUDGED(d, fmt, .kind = VERDICT_RETRY, .calls = calls, .retry_after = retry_after);
        return;
    }
    struct delivery_impl *di = impl_of(d);
    va_list ap;
    va_start(ap, fmt);
    bool live = failure_begin(di, fmt, ap);
    va_end(ap);
    if (!live)
        return;
    /* No reply: the requester keeps waiting for the final answer. */
    struct route *r = di->c->route;
    int attempts = d->attempts + calls;
    retry_at(di, attempts,
             consumer_retry_step(r->retry_delays.v, r->retry_delays.n, attempts, retry_after));
}

void settle_retry_uncounted(struct delivery *d, const char *fmt, ...)
{
    if (d->judge) {
        JUDGED(d, fmt, .kind = VERDICT_RETRY_UNCOUNTED);
        return;
    }
    struct delivery_impl *di = impl_of(d);
    va_list ap;
    va_start(ap, fmt);
    bool live = failure_begin(di, fmt, ap);
    va_end(ap);
    if (!live)
        return;
    /* The step the last legacy call reached (at least the first, at most the last):
     * the ladder waits, the circuit counts, and the message is never given up. */
    struct route *r = di->c->route;
    int n = (int)r->retry_delays.n;
    int at = d->attempts < 1 ? 1 : d->attempts > n ? n : d->attempts;
    retry_at(di, d->attempts, consumer_retry_step(r->retry_delays.v, r->retry_delays.n, at, 0));
}

void settle_throttled(struct delivery *d, double retry_after, const char *fmt, ...)
{
    if (d->judge) {
        JUDGED(d, fmt, .kind = VERDICT_THROTTLED, .calls = 1, .retry_after = retry_after);
        return;
    }
    struct delivery_impl *di = impl_of(d);
    struct consumer *c = di->c;
    va_list ap;
    va_start(ap, fmt);
    set_reason(di, fmt, ap);
    va_end(ap);
    if (c->pacer == NULL || retry_after <= 0) {
        /* Unpaced: an ordinary temporary failure, Retry-After picking the step. */
        if (!settle_begin(di, false, NULL))
            return;
        struct route *r = c->route;
        int attempts = d->attempts + 1;
        retry_at(di, attempts,
                 consumer_retry_step(r->retry_delays.v, r->retry_delays.n, attempts, retry_after));
        return;
    }
    /* Neither a failure nor a success: the breaker is not told. */
    if (stale(di)) {
        log_delivery(LOG_INFO, di,
                     "broker connection was reset meanwhile; the broker will redeliver it");
        delivery_free(di);
        return;
    }
    if (c->draining) {
        requeue(di); /* back to the queue as it came, no attempt counted */
        return;
    }
    log_delivery(LOG_DEBUG, di,
                 "told to wait %.0fs (%s): retried in place first, no attempt "
                 "counted",
                 retry_after, di->reason);
    di->turn.go = turn_come;
    pacer_hold(c->pacer, &di->turn, retry_after, di->reason);
}

void settle_dead(struct delivery *d, int calls, enum dead_reason reason, struct message *reply,
                 const char *fmt, ...)
{
    if (d->judge) {
        JUDGED(d, fmt, .kind = VERDICT_DEAD, .calls = calls, .dead = reason, .reply = reply);
        return;
    }
    struct delivery_impl *di = impl_of(d);
    if (!settle_begin(di, true, reply))
        return;
    va_list ap;
    va_start(ap, fmt);
    set_reason(di, fmt, ap);
    va_end(ap);
    if (reply && d->msg->reply_to)
        send_reply(di, reply, reply_sent, (void *)di->c->route->name);
    else
        message_free(reply);
    dead_letter(di, d->attempts + calls, reason);
}

void abandon(struct delivery *d)
{
    if (d->judge) {
        judged_plain(d, (struct delivery_verdict){.kind = VERDICT_ABANDON});
        return;
    }
    requeue(impl_of(d));
}

/* ---- as a client of the connection ------------------------------------------------ */

static int client_open(void *arg, const struct broker_channel *ch, char *err, size_t errlen)
{
    struct consumer *c = arg;
    c->ch = ch;
    return consumer_on_open(c, err, errlen);
}

static enum broker_handled client_method(void *arg, const amqp_method_t *method,
                                         amqp_message_t *content)
{
    struct consumer *c = arg;
    switch (method->id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        const amqp_basic_deliver_t *d = method->decoded;
        if (d->consumer_tag.len != strlen(c->tag) ||
            memcmp(d->consumer_tag.bytes, c->tag, d->consumer_tag.len) != 0)
            return BROKER_PASS;
        consumer_on_deliver(c, d, content); /* takes content */
        return BROKER_TOOK;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        consumer_on_cancel(c, true);
        return BROKER_DONE;
    case AMQP_BASIC_CANCEL_OK_METHOD:
        consumer_on_cancel(c, false);
        return BROKER_DONE;
    default:
        return BROKER_PASS;
    }
}

static void client_lost(void *arg, const char *why)
{
    consumer_on_lost(arg);
}

static void client_blocked(void *arg, bool blocked) {}

static void client_before_sleep(void *arg)
{
    consumer_flush_acks(arg);
}

static const struct broker_client consumer_client_template = {
    .name = "consumer",
    .on_open = client_open,
    .on_method = client_method,
    .on_lost = client_lost,
    .on_blocked = client_blocked,
    .before_sleep = client_before_sleep,
};

const struct broker_client *consumer_client(struct consumer *c)
{
    return &c->client;
}
