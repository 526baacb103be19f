/*
 * queue_watch — see queue_watch.h.
 *
 * States of the watch's channel: CLOSED (no channel; open it when a round is
 * due), OPENING (channel.open sent), IDLE (open, waiting for the next round),
 * ASKING (queue.declare passive sent for queue `next`). A round walks the
 * gauges from 0; each answer (declare-ok, or the broker's channel.close)
 * moves it on. A lost connection ends the round; the next open starts one.
 */
#include "queue_watch.h"

#include "broker_client.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "route.h"
#include "topology.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum watch_state { WATCH_CLOSED, WATCH_OPENING, WATCH_IDLE, WATCH_ASKING };

struct queue_watch {
    char *label;
    struct queue_gauge **gauges; /* borrowed from the routes */
    size_t n;
    int64_t interval_ms;
    const struct broker_channel *ch; /* from on_open; NULL before */
    enum watch_state state;
    size_t next;    /* the gauge asked about, or next to ask about */
    bool in_round;  /* next < n is meaningful */
    bool stale;     /* the question outstanding was about a gauge set that was replaced */
    int64_t due_ms; /* when the next round starts */
    struct broker_client client;
};

void queue_watch_gauges(const struct topology *t, struct route *const *routes, size_t n)
{
    for (size_t q = 0; q < t->n_queues; q++) {
        for (size_t i = 0; i < n; i++) {
            struct route *r = routes[i];
            if (t->queues[q].owner == NULL || strcmp(t->queues[q].owner, r->name) != 0)
                continue;
            r->queues = xrealloc(r->queues, (r->n_queues + 1) * sizeof(*r->queues));
            struct queue_gauge *g = &r->queues[r->n_queues++];
            memset(g, 0, sizeof(*g));
            g->name = xstrdup(t->queues[q].name);
            g->route = r->name;
            g->role = t->queues[q].role;
            atomic_store(&g->messages, -1);
            atomic_store(&g->consumers, -1);
        }
    }
}

void queue_watch_gauges_free(struct route *r)
{
    for (size_t i = 0; i < r->n_queues; i++)
        free(r->queues[i].name);
    free(r->queues);
    r->queues = NULL;
    r->n_queues = 0;
}

/* ---- asking ---------------------------------------------------------------- */

static void send_failed(struct queue_watch *w, const char *what, int rc)
{
    /* The socket is failing: the broker notices on its next read and reconnects. */
    log_warn(w->label, "queue depths: cannot send %s: %s", what, amqp_error_string2(rc));
    w->state = WATCH_CLOSED;
    w->in_round = false;
    w->due_ms = loop_now_ms() + w->interval_ms;
}

static void open_channel(struct queue_watch *w)
{
    amqp_channel_open_t m = {.out_of_band = amqp_empty_bytes};
    int rc = w->ch->send_method(w->ch, QUEUE_WATCH_CHANNEL, AMQP_CHANNEL_OPEN_METHOD, &m);
    if (rc != AMQP_STATUS_OK) {
        send_failed(w, "channel.open", rc);
        return;
    }
    w->state = WATCH_OPENING;
}

static void round_over(struct queue_watch *w)
{
    w->in_round = false;
    w->state = WATCH_IDLE;
    w->due_ms = loop_now_ms() + w->interval_ms;
}

/* Asks about gauge `next`, or ends the round past the last. */
static void ask_next(struct queue_watch *w)
{
    if (w->next >= w->n) {
        round_over(w);
        return;
    }
    amqp_queue_declare_t m = {
        .queue = amqp_cstring_bytes(w->gauges[w->next]->name),
        .passive = 1,
        .arguments = amqp_empty_table,
    };
    int rc = w->ch->send_method(w->ch, QUEUE_WATCH_CHANNEL, AMQP_QUEUE_DECLARE_METHOD, &m);
    if (rc != AMQP_STATUS_OK) {
        send_failed(w, "queue.declare", rc);
        return;
    }
    w->state = WATCH_ASKING;
}

static void watch_tick(void *arg)
{
    struct queue_watch *w = arg;
    if (w->ch == NULL || !w->ch->open || w->n == 0 || w->in_round || w->stale)
        return;
    if (loop_now_ms() < w->due_ms)
        return;
    w->in_round = true;
    w->next = 0;
    if (w->state == WATCH_CLOSED)
        open_channel(w);
    else
        ask_next(w);
}

/* ---- answers ----------------------------------------------------------------- */

static void answered(struct queue_watch *w, const amqp_queue_declare_ok_t *ok)
{
    struct queue_gauge *g = w->gauges[w->next];
    if (atomic_exchange(&g->missing, 0))
        log_info(g->route, "queue %s is back", g->name);
    atomic_store(&g->messages, (int64_t)ok->message_count);
    atomic_store(&g->consumers, (int64_t)ok->consumer_count);
    atomic_store(&g->read_ms, loop_now_ms());
    w->next++;
    ask_next(w);
}

/* The broker closed our channel: the queue asked about is gone (404), or
 * something else went wrong with the question. Answer, reopen, go on. */
static void channel_closed(struct queue_watch *w, const amqp_channel_close_t *c)
{
    amqp_channel_close_ok_t ok = {0};
    int rc = w->ch->send_method(w->ch, QUEUE_WATCH_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    bool stale = w->stale; /* about a replaced gauge set: the new one is asked at once */
    bool was_asking = w->state == WATCH_ASKING && w->next < w->n && !stale;
    w->stale = false;
    w->state = WATCH_CLOSED;
    if (rc != AMQP_STATUS_OK) {
        send_failed(w, "channel.close-ok", rc);
        return;
    }
    if (was_asking) {
        struct queue_gauge *g = w->gauges[w->next];
        atomic_store(&g->messages, -1);
        atomic_store(&g->consumers, -1);
        atomic_store(&g->read_ms, loop_now_ms());
        if (c->reply_code == AMQP_NOT_FOUND) {
            if (!atomic_exchange(&g->missing, 1))
                log_error(g->route,
                          "queue %s is gone (a passive declare found nothing): what is routed "
                          "to it is dropped by the broker; the sidecar declares it again on its "
                          "next connect, or recreate it from `amqp-sidecar topology`",
                          g->name);
        } else {
            log_warn(g->route, "queue depths: the broker refused to describe queue %s: %.*s",
                     g->name, (int)c->reply_text.len, (char *)c->reply_text.bytes);
        }
        w->next++;
    } else {
        log_warn(w->label, "queue depths: the broker closed the watch's channel: %.*s",
                 (int)c->reply_text.len, (char *)c->reply_text.bytes);
    }
    if (w->in_round && w->next < w->n)
        open_channel(w);
    else
        round_over(w);
    if (stale)
        w->due_ms = 0;
    if (!w->in_round)
        w->state = WATCH_CLOSED; /* reopened when the next round is due */
}

static enum broker_handled watch_method(void *arg, const amqp_method_t *method,
                                        amqp_message_t *content)
{
    struct queue_watch *w = arg;
    (void)content;
    switch (method->id) {
    case AMQP_CHANNEL_OPEN_OK_METHOD:
        w->state = WATCH_IDLE;
        if (w->in_round)
            ask_next(w);
        break;
    case AMQP_QUEUE_DECLARE_OK_METHOD:
        if (w->stale) { /* about a gauge that is no longer watched */
            w->stale = false;
            w->state = WATCH_IDLE;
        } else if (w->state == WATCH_ASKING && w->next < w->n)
            answered(w, method->decoded);
        break;
    case AMQP_CHANNEL_CLOSE_METHOD:
        channel_closed(w, method->decoded);
        break;
    default:
        break; /* nothing else is sent to us */
    }
    return BROKER_DONE;
}

/* ---- the connection's life ---------------------------------------------------- */

static int watch_open(void *arg, const struct broker_channel *ch, char *err, size_t errlen)
{
    struct queue_watch *w = arg;
    (void)err, (void)errlen;
    w->ch = ch;
    w->state = WATCH_CLOSED; /* a new connection: our channel is not open on it */
    w->in_round = false;
    w->stale = false;
    w->due_ms = 0; /* first round at the next tick */
    return 0;
}

static void watch_lost(void *arg, const char *why)
{
    struct queue_watch *w = arg;
    (void)why;
    w->state = WATCH_CLOSED;
    w->in_round = false;
    w->stale = false;
    w->due_ms = 0;
}

static void watch_blocked(void *arg, bool blocked)
{
    (void)arg, (void)blocked; /* the broker may not answer while blocked; the round waits */
}

static void gauges_of(struct queue_watch *w, struct route *const *routes, size_t n)
{
    w->gauges = NULL;
    w->n = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t q = 0; q < routes[i]->n_queues; q++) {
            w->gauges = xrealloc(w->gauges, (w->n + 1) * sizeof(*w->gauges));
            w->gauges[w->n++] = &routes[i]->queues[q];
        }
}

void queue_watch_set_routes(struct queue_watch *w, struct route *const *routes, size_t n)
{
    free(w->gauges);
    gauges_of(w, routes, n);
    if (w->in_round) { /* the round starts over with the new set */
        w->stale = w->state == WATCH_ASKING;
        w->in_round = false;
        if (!w->stale && w->state != WATCH_CLOSED)
            w->state = WATCH_IDLE;
        w->due_ms = 0;
    }
}

struct queue_watch *queue_watch_new(const char *label, struct route *const *routes, size_t n,
                                    int64_t interval_ms)
{
    struct queue_watch *w = xcalloc(1, sizeof(*w));
    w->label = xstrdup(label);
    w->interval_ms = interval_ms;
    gauges_of(w, routes, n);
    w->client = (struct broker_client){.name = "queue_watch",
                                       .own_channel = QUEUE_WATCH_CHANNEL,
                                       .on_open = watch_open,
                                       .on_method = watch_method,
                                       .on_lost = watch_lost,
                                       .on_blocked = watch_blocked,
                                       .tick = watch_tick,
                                       .arg = w};
    return w;
}

const struct broker_client *queue_watch_client(struct queue_watch *w)
{
    return &w->client;
}

void queue_watch_free(struct queue_watch *w)
{
    if (w == NULL)
        return;
    free(w->gauges);
    free(w->label);
    free(w);
}
