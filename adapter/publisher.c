/*
 * publisher — the confirm pipeline (see publisher.h for the contract).
 * (About 650 lines: submitting, sending and the connection's events are one
 * pipeline over one set of structures; the broker's answers are in
 * publisher_answers.c.)
 *
 * A submit becomes a `struct request`, queued under a mutex. The broker's
 * thread takes the whole queue at once and publishes it back to back; each
 * publish gets the next delivery tag and an entry in the confirm ring
 * (confirm_ring.h). Acks and nacks (possibly `multiple`) resolve entries by
 * tag; the window (broker.max_inflight, and half the ring) bounds what is in
 * flight, and requests beyond it wait in a backlog that drains as confirms
 * arrive. The other half of the ring is room for parked copies, so a park
 * finds a slot; when it does not, the park fails and so does its request.
 *
 * A request finishes once its own confirm arrived, plus, when it was
 * returned, the confirm of its parked copy in the DLQ (published mandatory
 * too: a parked copy the broker returns means the DLQ is gone, and the
 * request fails), plus, for rpc, the reply. rpc requests carry a call id of
 * ours as their AMQP correlation_id, so a reply reaches the one caller that
 * is waiting for it; the caller's own correlation id travels in the
 * `x-correlation-id` header. A request is freed when it has finished and no
 * ring entry points at it. If no confirm arrives within
 * broker.confirm_timeout the connection is reset: every open request then
 * fails as PUBLISH_UNAVAILABLE, never OK.
 *
 * Nothing reaches amqp_basic_publish unchecked (message_check at submit,
 * amqp_publish_check before the write): a message rabbitmq-c could not
 * encode would break the connection for everyone in flight.
 */
#include "publisher_internal.h"

#include "amqp_message.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "metrics.h"
#include "route.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Each status in words (logs, answers) and as an identifier (trace attributes). */
static const struct {
    const char *name, *id;
} statuses[] = {
    [PUBLISH_OK] = {"confirmed", "confirmed"},
    [PUBLISH_UNROUTABLE] = {"unroutable", "unroutable"},
    [PUBLISH_NACKED] = {"nacked", "nacked"},
    [PUBLISH_UNAVAILABLE] = {"unavailable", "unavailable"},
    [PUBLISH_RPC_TIMEOUT] = {"rpc timeout", "rpc_timeout"},
    [PUBLISH_INVALID] = {"invalid", "invalid"},
};

const char *publish_status_name(enum publish_status status)
{
    return (size_t)status < sizeof(statuses) / sizeof(statuses[0]) ? statuses[status].name : "?";
}

const char *publish_status_id(enum publish_status status)
{
    return (size_t)status < sizeof(statuses) / sizeof(statuses[0]) ? statuses[status].id
                                                                   : "unknown";
}

static const struct broker_client publisher_client_template;

struct publisher *publisher_new(const char *label, const struct broker_config *cfg,
                                struct loop *loop, struct process_metrics *metrics)
{
    struct publisher *p = xcalloc(1, sizeof(*p));
    p->label = xstrdup(label);
    p->cfg = cfg;
    p->loop = loop;
    p->metrics = metrics;
    p->client = publisher_client_template;
    p->client.arg = p;
    pthread_mutex_init(&p->lock, NULL);
    size_t window = (size_t)cfg->max_inflight;
    confirm_ring_init(&p->ring, window * 4 + 64); /* requests use half: parks the rest */
    p->n_rpc_buckets = p->ring.size;
    p->rpc_buckets = xcalloc(p->n_rpc_buckets, sizeof(*p->rpc_buckets));
    return p;
}

static void request_free(struct request *r)
{
    message_free(r->msg);
    message_free(r->reply);
    free(r->message_id);
    free(r->correlation_id);
    free(r->call_id);
    free(r->exchange);
    free(r->routing_key);
    free(r);
}

void publisher_raw_free(struct raw_publish *w)
{
    free(w->message_id);
    free(w->exchange);
    free(w->routing_key);
    free(w);
}

static void queue_fail_all(struct publisher *p, struct request *list, const char *why);

/* After the broker thread ended: anything submitted in the race with
 * broker_stop still gets its one callback (here, on the stopping thread). */
void publisher_free(struct publisher *p)
{
    if (p == NULL)
        return;
    struct request *queued = p->queue_head, *backlog = p->backlog_head;
    p->queue_head = p->queue_tail = p->backlog_head = p->backlog_tail = NULL;
    queue_fail_all(p, backlog, "the sidecar is shutting down");
    queue_fail_all(p, queued, "the sidecar is shutting down");
    pthread_mutex_destroy(&p->lock);
    confirm_ring_free(&p->ring);
    free(p->rpc_buckets);
    free(p->label);
    free(p);
}

void publisher_enable_rpc(struct publisher *p)
{
    p->rpc = true;
}

bool publisher_rpc_enabled(const struct publisher *p)
{
    return p->rpc;
}

bool publisher_idle(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)p)->outstanding) == 0;
}

/* ---- rpc waiters, by call id ------------------------------------------------ */

size_t publisher_rpc_bucket(const struct publisher *p, const void *id, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)id)[i]) * 1099511628211ull;
    return (size_t)h & (p->n_rpc_buckets - 1);
}

static void rpc_wait(struct publisher *p, struct request *r)
{
    struct request **b = &p->rpc_buckets[publisher_rpc_bucket(p, r->call_id, strlen(r->call_id))];
    r->rpc_next = *b;
    *b = r;
    r->waiting_reply = true;
}

void publisher_rpc_forget(struct publisher *p, struct request *r)
{
    if (!r->waiting_reply)
        return;
    r->waiting_reply = false;
    struct request **pp = &p->rpc_buckets[publisher_rpc_bucket(p, r->call_id, strlen(r->call_id))];
    for (; *pp; pp = &(*pp)->rpc_next) {
        if (*pp == r) {
            *pp = r->rpc_next;
            return;
        }
    }
}

/* ---- finishing ------------------------------------------------------------- */

const char *publisher_route_name(const struct publisher *p, const struct request *r)
{
    return r->opt.route ? r->opt.route->name : p->label;
}

bool publisher_channel_open(const struct publisher *p)
{
    return p->ch != NULL && p->ch->open;
}

void publisher_release(struct request *r)
{
    if (r->finished && r->refs == 0)
        request_free(r);
}

/* Calls the submitter back exactly once. The caller releases r afterwards. */
void publisher_finish(struct publisher *p, struct request *r, enum publish_status status,
                      const char *detail)
{
    if (r->finished)
        return;
    r->finished = true;
    publisher_rpc_forget(p, r);
    struct route_metrics *m = r->opt.route ? &((struct route *)r->opt.route)->metrics : NULL;
    double seconds = r->sent_ms ? (double)(loop_now_ms() - r->sent_ms) / 1000.0 : 0;
    if (m) {
        atomic_fetch_sub(&m->publishing, 1);
        switch (status) {
        case PUBLISH_OK:
        case PUBLISH_RPC_TIMEOUT:
            metric_inc(m->confirmed);
            histogram_observe(&m->confirm_seconds, seconds);
            break;
        case PUBLISH_UNROUTABLE:
            metric_inc(m->returned);
            metric_inc(m->dead[DEAD_UNROUTABLE]);
            break;
        case PUBLISH_NACKED:
            metric_inc(m->nacked);
            break;
        case PUBLISH_UNAVAILABLE:
        case PUBLISH_INVALID:
            metric_inc(m->publish_failed);
            break;
        }
    }
    struct publish_result res = {
        .status = status, .detail = detail, .reply = r->reply, .confirm_seconds = seconds};
    r->reply = NULL;
    r->done(r->arg, &res);
    message_free(res.reply); /* unless the callback took it (and set it NULL) */
    atomic_fetch_sub(&p->outstanding, 1);
}

/* Finishes r if everything it waits for has arrived. */
void publisher_maybe_finish(struct publisher *p, struct request *r)
{
    if (r->finished || !r->confirmed)
        return;
    if (r->returned && !r->parked && !r->park_failed)
        return;
    if (r->returned && r->park_failed) {
        publisher_finish(p, r, PUBLISH_UNAVAILABLE,
                         "unroutable, and the route's dead-letter queue did not take it either");
        return;
    }
    if (r->opt.rpc && !r->replied)
        return;
    publisher_finish(p, r, r->returned ? PUBLISH_UNROUTABLE : PUBLISH_OK, NULL);
}

static void queue_fail_all(struct publisher *p, struct request *list, const char *why)
{
    while (list) {
        struct request *next = list->next;
        publisher_finish(p, list, PUBLISH_UNAVAILABLE, why);
        publisher_release(list);
        list = next;
    }
}

/* ---- submitting ------------------------------------------------------------ */

static void publisher_flush(void *arg);
static void publisher_flush_timer(struct loop *loop, void *arg);

enum publisher_state publisher_state(struct publisher *p, const char **why)
{
    enum publisher_state state = PUBLISHER_UP;
    const char *reason = NULL;
    if (!atomic_load(&p->up)) {
        state = PUBLISHER_DOWN;
        reason = "broker connection is down";
    } else if (atomic_load(&p->blocked_published)) {
        state = PUBLISHER_BLOCKED;
        reason = "broker is blocking publishes (resource alarm)";
    } else if (atomic_load(&p->outstanding) >= (size_t)p->cfg->max_inflight * 4) {
        state = PUBLISHER_WINDOW_FULL;
        reason = "too many messages waiting for the broker";
    }
    if (why)
        *why = reason;
    return state;
}

bool publisher_available(struct publisher *p, const char **why)
{
    return publisher_state(p, why) == PUBLISHER_UP;
}

int publisher_submit(struct publisher *p, struct message *msg, const struct publish_options *opt,
                     publish_done_fn done, void *arg, const char **why)
{
    /* Why a message is invalid, for the submitting thread's caller. */
    static __thread char invalid[256];
    size_t max_message = (size_t)p->cfg->max_message;
    if (msg->body_len > max_message)
        snprintf(invalid, sizeof(invalid), "the body is %zu bytes; broker.max_message is %zu",
                 msg->body_len, max_message);
    if (msg->body_len > max_message || message_check(msg, invalid, sizeof(invalid)) != 0) {
        if (why)
            *why = invalid;
        message_free(msg);
        return PUBLISH_INVALID;
    }
    if (!publisher_available(p, why)) {
        /* Counted like a publish that failed later: the sender gets the same 503. */
        if (opt->route)
            metric_inc(((struct route *)opt->route)->metrics.publish_failed);
        message_free(msg);
        return PUBLISH_UNAVAILABLE;
    }
    struct request *r = xcalloc(1, sizeof(*r));
    r->msg = msg;
    r->opt = *opt;
    r->done = done;
    r->arg = arg;
    atomic_fetch_add(&p->outstanding, 1);
    if (opt->route)
        atomic_fetch_add(&((struct route *)opt->route)->metrics.publishing, 1);

    pthread_mutex_lock(&p->lock);
    if (p->queue_tail)
        p->queue_tail->next = r;
    else
        p->queue_head = r;
    p->queue_tail = r;
    bool post = !p->flush_posted;
    p->flush_posted = true;
    pthread_mutex_unlock(&p->lock);
    /* From the loop's own thread (an HTTP listener in it) a zero timer is enough:
     * the loop goes round without the eventfd's write, wake-up and read. */
    if (post && !(loop_on_thread(p->loop) && loop_timer(p->loop, 0, publisher_flush_timer, p)))
        loop_post(p->loop, publisher_flush, p);
    return 0;
}

/* ---- sending (broker thread) ------------------------------------------------ */

static amqp_bytes_t bytes_or_empty(const char *s)
{
    return s ? amqp_cstring_bytes(s) : amqp_empty_bytes;
}

/* May another request go out? Half the ring is kept for parked copies. */
static bool window_full(const struct publisher *p)
{
    return confirm_ring_span(&p->ring) >= p->ring.size / 2 ||
           p->ring.waiting >= (size_t)p->cfg->max_inflight || !confirm_ring_has_room(&p->ring);
}

size_t publisher_frame_max(const struct publisher *p)
{
    return p->ch && p->ch->frame_max > 0 ? p->ch->frame_max : AMQP_FRAME_MIN_SIZE;
}

enum send_result { SENT, SEND_INVALID, SEND_FAILED };

/* rpc: our call id becomes the AMQP correlation_id; the caller's moves to a header. */
static void rpc_prepare(struct request *r, struct message *m)
{
    char id[37];
    uuid_v4(id);
    r->call_id = xstrdup(id);
    if (m->correlation_id && message_header(m, CALLER_CORRELATION_HEADER) == NULL)
        message_set_header(m, CALLER_CORRELATION_HEADER, m->correlation_id);
    message_set(&m->reply_to, DIRECT_REPLY_TO);
}

/* Publishes one request: SENT; SEND_INVALID when it cannot be encoded (detail
 * in why; nothing was written); SEND_FAILED when the socket failed (the
 * caller resets the connection). */
static enum send_result send_request(struct publisher *p, struct request *r, char *why,
                                     size_t whylen)
{
    struct message *m = r->msg;
    const struct route *route = r->opt.route;
    if (r->opt.rpc)
        rpc_prepare(r, m);
    amqp_basic_properties_t props;
    amqp_table_entry_t *entries =
        amqp_publish_properties(m, r->opt.rpc ? r->call_id : m->correlation_id,
                                route ? route->app_id : NULL, route ? route->name : NULL, &props);

    amqp_bytes_t exchange = bytes_or_empty(m->exchange), key = bytes_or_empty(m->routing_key);
    if (amqp_publish_check(exchange, key, &props, publisher_frame_max(p), why, whylen) != 0) {
        free(entries);
        return SEND_INVALID;
    }
    amqp_bytes_t body = {.len = m->body_len, .bytes = m->body};
    int rc = p->ch->publish(p->ch, exchange, key, &props, body);
    free(entries);
    if (rc != AMQP_STATUS_OK)
        return SEND_FAILED;

    confirm_ring_take(&p->ring, PENDING_REQUEST, r, loop_now_ms()); /* room: window_full */
    r->refs++;
    r->sent_ms = loop_now_ms();
    /* Keep what matching a return needs; drop the body now. */
    r->message_id = m->message_id;
    m->message_id = NULL;
    r->correlation_id = m->correlation_id;
    m->correlation_id = NULL;
    r->exchange = m->exchange;
    m->exchange = NULL;
    r->routing_key = m->routing_key;
    m->routing_key = NULL;
    message_free(m);
    r->msg = NULL;
    if (route)
        metric_inc(((struct route *)route)->metrics.published);
    if (r->opt.rpc) {
        r->rpc_deadline_ms = loop_now_ms() + (int64_t)(r->opt.rpc_timeout * 1000);
        rpc_wait(p, r);
    }
    return SENT;
}

/* Sends what the window allows from the backlog; the rest stays queued. */
static void send_backlog(struct publisher *p);

void publisher_send_backlog(struct publisher *p)
{
    /* Two or more to send: cork the socket for them (one write's worth of syscalls less
     * for a single publish, which must leave at once). */
    bool corked = p->backlog_head && p->backlog_head->next && p->ch && p->ch->batch &&
                  publisher_channel_open(p);
    if (corked)
        p->ch->batch(p->ch, true);
    send_backlog(p);
    if (corked && publisher_channel_open(p))
        p->ch->batch(p->ch, false);
}

static void send_backlog(struct publisher *p)
{
    while (p->backlog_head) {
        if (!publisher_channel_open(p) || p->blocked) {
            struct request *list = p->backlog_head;
            p->backlog_head = p->backlog_tail = NULL;
            queue_fail_all(p, list,
                           !publisher_channel_open(p)
                               ? "broker connection is down"
                               : "broker is blocking publishes (resource alarm)");
            return;
        }
        if (window_full(p))
            return;
        struct request *r = p->backlog_head;
        p->backlog_head = r->next;
        if (p->backlog_head == NULL)
            p->backlog_tail = NULL;
        r->next = NULL;
        char why[300];
        switch (send_request(p, r, why, sizeof(why))) {
        case SENT:
            break;
        case SEND_INVALID:
            log_event(LOG_WARN, &(struct log_ctx){.route = publisher_route_name(p, r)},
                      "message not published: %s", why);
            publisher_finish(p, r, PUBLISH_INVALID, why);
            publisher_release(r);
            break;
        case SEND_FAILED:
            publisher_finish(p, r, PUBLISH_UNAVAILABLE, "writing to the broker failed");
            publisher_release(r);
            p->ch->fail(p->ch, "writing a publish to the socket failed");
            return; /* the failure failed the rest */
        }
    }
}

static void publisher_flush_timer(struct loop *loop, void *arg)
{
    publisher_flush(arg);
}

static void publisher_flush(void *arg)
{
    struct publisher *p = arg;
    pthread_mutex_lock(&p->lock);
    struct request *list = p->queue_head;
    struct request *tail = p->queue_tail;
    p->queue_head = p->queue_tail = NULL;
    p->flush_posted = false;
    pthread_mutex_unlock(&p->lock);
    if (list) {
        if (p->backlog_tail)
            p->backlog_tail->next = list;
        else
            p->backlog_head = list;
        p->backlog_tail = tail;
    }
    publisher_send_backlog(p);
}

int publisher_publish_raw(struct publisher *p, const char *exchange, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body,
                          publish_raw_done_fn done, void *arg, char *why, size_t whylen)
{
    if (!publisher_channel_open(p) || p->blocked || window_full(p)) {
        snprintf(why, whylen, "%s",
                 !publisher_channel_open(p) ? "broker connection down"
                 : p->blocked               ? "broker is blocking publishes (resource alarm)"
                                            : "too many publishes waiting for confirms");
        return PUBLISH_UNAVAILABLE;
    }
    if (amqp_publish_check(amqp_cstring_bytes(exchange), amqp_cstring_bytes(routing_key), props,
                           publisher_frame_max(p), why, whylen) != 0)
        return PUBLISH_INVALID;
    if (p->ch->publish(p->ch, amqp_cstring_bytes(exchange), amqp_cstring_bytes(routing_key), props,
                       body) != AMQP_STATUS_OK) {
        p->ch->fail(p->ch, "writing a publish to the socket failed");
        snprintf(why, whylen, "writing to the broker failed");
        return PUBLISH_UNAVAILABLE;
    }
    struct raw_publish *w = xcalloc(1, sizeof(*w));
    w->done = done;
    w->arg = arg;
    w->exchange = xstrdup(exchange);
    w->routing_key = xstrdup(routing_key);
    if (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        w->message_id = xstrndup(props->message_id.bytes, props->message_id.len);
    confirm_ring_take(&p->ring, PENDING_RAW, w, loop_now_ms()); /* room: window_full */
    return 0;
}

/* ---- connection events ------------------------------------------------------- */

static int publisher_on_open(void *arg, const struct broker_channel *ch, char *err, size_t errlen)
{
    struct publisher *p = arg;
    p->ch = ch;
    confirm_ring_reset(&p->ring);
    p->blocked = false;
    atomic_store(&p->blocked_published, false);
    p->nacks_in_a_row = 0;
    atomic_store(&p->up, true);
    if (!p->rpc || ch->conn == NULL) /* no connection: a test's channel */
        return 0;
    amqp_connection_state_t conn = ch->conn;
    amqp_basic_consume(conn, ch->number, amqp_cstring_bytes(DIRECT_REPLY_TO),
                       amqp_cstring_bytes(RPC_CONSUMER_TAG), 0, 1, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "consuming %s for rpc replies failed", DIRECT_REPLY_TO);
        return -1;
    }
    return 0;
}

static void publisher_on_lost(void *arg, const char *why)
{
    struct publisher *p = arg;
    atomic_store(&p->up, false);
    char detail[512];
    snprintf(detail, sizeof(detail), "broker connection lost before the confirm: %s", why);
    for (uint64_t t = p->ring.low_tag; t < p->ring.next_tag; t++) {
        struct ring_entry done;
        if (!confirm_ring_remove(&p->ring, t, &done))
            continue;
        if (done.kind == PENDING_RAW) {
            struct raw_publish *w = done.item;
            w->done(w->arg, PUBLISH_UNAVAILABLE, detail);
            publisher_raw_free(w);
        } else {
            struct request *r = done.item;
            r->refs--;
            publisher_finish(p, r, PUBLISH_UNAVAILABLE, detail);
            publisher_release(r);
        }
    }
    /* rpc requests already confirmed but still waiting: their reply cannot come now. */
    for (size_t i = 0; i < p->n_rpc_buckets; i++) {
        while (p->rpc_buckets[i]) {
            struct request *r = p->rpc_buckets[i];
            publisher_finish(p, r, PUBLISH_UNAVAILABLE,
                             "broker connection lost before the rpc reply");
            publisher_release(r);
        }
    }
    confirm_ring_reset(&p->ring);

    pthread_mutex_lock(&p->lock);
    struct request *queued = p->queue_head;
    p->queue_head = p->queue_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    struct request *backlog = p->backlog_head;
    p->backlog_head = p->backlog_tail = NULL;
    queue_fail_all(p, backlog, "broker connection is down");
    queue_fail_all(p, queued, "broker connection is down");
}

static void publisher_on_blocked(void *arg, bool blocked)
{
    struct publisher *p = arg;
    p->blocked = blocked;
    atomic_store(&p->blocked_published, blocked);
    if (blocked) {
        struct request *backlog = p->backlog_head;
        p->backlog_head = p->backlog_tail = NULL;
        queue_fail_all(p, backlog, "broker is blocking publishes (resource alarm)");
    }
}

/* rpc requests whose reply did not come in time (confirmed ones only: an
 * unconfirmed one is the confirm timeout's business). */
static void expire_rpc(struct publisher *p, int64_t now)
{
    for (size_t i = 0; i < p->n_rpc_buckets; i++) {
        for (struct request **pp = &p->rpc_buckets[i]; *pp;) {
            struct request *r = *pp;
            if (r->rpc_deadline_ms > now || !r->confirmed) {
                pp = &r->rpc_next;
                continue;
            }
            log_event(LOG_WARN,
                      &(struct log_ctx){.route = publisher_route_name(p, r),
                                        .message_id = r->message_id,
                                        .correlation_id = r->correlation_id},
                      "no rpc reply within %.1fs", r->opt.rpc_timeout);
            publisher_finish(p, r, PUBLISH_RPC_TIMEOUT, "no reply in time"); /* unlinks r */
            publisher_release(r);
        }
    }
}

/* Every tick: expire rpc waits, and reset a connection whose confirms stalled. */
static void publisher_tick(void *arg)
{
    struct publisher *p = arg;
    int64_t now = loop_now_ms();
    expire_rpc(p, now);
    double limit = p->cfg->confirm_timeout;
    if (p->blocked) {
        /* A blocked broker holds confirms back, possibly for long: tell the
         * waiting senders to retry later (a later confirm may still come:
         * that is a duplicate on retry, never a loss) but keep the connection. */
        for (uint64_t t = p->ring.low_tag; t < p->ring.next_tag; t++) {
            struct ring_entry *e = confirm_ring_get(&p->ring, t);
            if (e && e->kind == PENDING_REQUEST && (double)(now - e->sent_ms) > limit * 1000) {
                struct request *r = e->item;
                if (!r->finished)
                    publisher_finish(p, r, PUBLISH_UNAVAILABLE,
                                     "broker is blocking publishes (resource alarm); not "
                                     "confirmed in time");
            }
        }
        return;
    }
    struct ring_entry *oldest = confirm_ring_oldest(&p->ring);
    if (oldest && (double)(now - oldest->sent_ms) > limit * 1000) {
        char why[128];
        snprintf(why, sizeof(why), "no publisher confirm within %.1fs (broker.confirm_timeout)",
                 limit);
        p->ch->fail(p->ch, why);
    }
}

/* ---- as a client of the connection ------------------------------------------------ */

static enum broker_handled publisher_on_method(void *arg, const amqp_method_t *method,
                                               amqp_message_t *content)
{
    struct publisher *p = arg;
    switch (method->id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *m = method->decoded;
        publisher_on_ack(p, m->delivery_tag, m->multiple, false);
        return BROKER_DONE;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *m = method->decoded;
        publisher_on_ack(p, m->delivery_tag, m->multiple, true);
        return BROKER_DONE;
    }
    case AMQP_BASIC_RETURN_METHOD:
        publisher_on_return(p, method->decoded, content);
        return BROKER_DONE;
    case AMQP_BASIC_DELIVER_METHOD: {
        const amqp_basic_deliver_t *d = method->decoded;
        if (!publisher_bytes_is(d->consumer_tag, RPC_CONSUMER_TAG))
            return BROKER_PASS;
        publisher_on_reply(p, content);
        return BROKER_DONE;
    }
    default:
        return BROKER_PASS;
    }
}

static const struct broker_client publisher_client_template = {
    .name = "publisher",
    .on_open = publisher_on_open,
    .on_method = publisher_on_method,
    .on_lost = publisher_on_lost,
    .on_blocked = publisher_on_blocked,
    .tick = publisher_tick,
};

const struct broker_client *publisher_client(struct publisher *p)
{
    return &p->client;
}
