/*
 * publisher — the confirm pipeline (see publisher.h for the contract).
 *
 * A submit becomes a `struct request`, queued under a mutex. The broker's
 * thread takes the whole queue at once and publishes it back to back; each
 * publish gets the next delivery tag and a slot in a ring indexed by tag
 * (`struct pending`). Acks and nacks (possibly `multiple`) resolve slots in
 * tag order; the ring bounds what is in flight (broker.max_inflight), and
 * requests beyond it wait in a backlog that drains as confirms free slots.
 *
 * A request finishes once its own confirm arrived, plus, when it was
 * returned, the confirm of its parked copy in the DLQ, plus, for rpc, the
 * reply. A request is freed when it has finished and no slot points at it.
 * If no confirm arrives within broker.confirm_timeout the connection is
 * reset: every open request then fails as PUBLISH_UNAVAILABLE, never OK.
 */
#include "publisher.h"

#include "amqp_message.h"
#include "broker_internal.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "route.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIRECT_REPLY_TO "amq.rabbitmq.reply-to"
#define NACK_STREAK 20
#define NACK_STREAK_MS 1000

struct request {
    struct message *msg; /* until published */
    char *message_id;
    char *correlation_id;
    char *exchange;
    char *routing_key;
    struct publish_options opt;
    publish_done_fn done;
    void *arg;
    int64_t sent_ms;
    int64_t rpc_deadline_ms;
    int refs; /* slots pointing here */
    bool confirmed, returned, parked, park_failed, replied, finished;
    struct message *reply;
    struct request *next;     /* queue / backlog */
    struct request *rpc_next; /* rpc waiters */
};

enum pending_type { PENDING_REQUEST, PENDING_PARK, PENDING_RAW };

struct pending {
    uint64_t tag;
    enum pending_type type;
    struct request *req; /* REQUEST and PARK */
    publish_raw_done_fn raw_done;
    void *raw_arg;
    char *message_id, *exchange, *routing_key; /* RAW only (requests hold their own) */
    bool returned;
    int64_t sent_ms;
};

struct publisher {
    struct broker *broker;
    /* shared with submitting threads */
    pthread_mutex_t lock;
    struct request *queue_head, *queue_tail;
    size_t queued;
    bool flush_posted;
    atomic_size_t outstanding; /* submitted and not yet finished */
    /* broker thread only */
    struct request *backlog_head, *backlog_tail;
    struct pending *ring;
    size_t ring_size; /* power of two >= max_inflight */
    uint64_t next_tag, low_tag;
    size_t in_flight;
    struct request *rpc_waiters;
    bool rpc;
    bool blocked;
    int nacks_in_a_row;
    int64_t first_nack_ms;
};

const char *publish_status_name(enum publish_status status)
{
    switch (status) {
    case PUBLISH_OK:
        return "confirmed";
    case PUBLISH_UNROUTABLE:
        return "unroutable";
    case PUBLISH_NACKED:
        return "nacked";
    case PUBLISH_UNAVAILABLE:
        return "unavailable";
    case PUBLISH_RPC_TIMEOUT:
        return "rpc timeout";
    }
    return "?";
}

struct publisher *publisher_new(struct broker *b)
{
    struct publisher *p = xcalloc(1, sizeof(*p));
    p->broker = b;
    pthread_mutex_init(&p->lock, NULL);
    size_t want = (size_t)broker_config(b)->max_inflight * 2 + 16; /* parks take tags too */
    p->ring_size = 64;
    while (p->ring_size < want)
        p->ring_size *= 2;
    p->ring = xcalloc(p->ring_size, sizeof(*p->ring));
    p->next_tag = 1;
    p->low_tag = 1;
    return p;
}

static void request_free(struct request *r)
{
    message_free(r->msg);
    message_free(r->reply);
    free(r->message_id);
    free(r->correlation_id);
    free(r->exchange);
    free(r->routing_key);
    free(r);
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
    free(p->ring);
    free(p);
}

void publisher_enable_rpc(struct publisher *p)
{
    p->rpc = true;
}

bool publisher_idle(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)p)->outstanding) == 0;
}

/* ---- finishing ------------------------------------------------------------- */

static const char *route_name(const struct request *r)
{
    return r->opt.route ? r->opt.route->name : broker_label(NULL);
}

static void request_release(struct request *r)
{
    if (r->finished && r->refs == 0)
        request_free(r);
}

static void rpc_forget(struct publisher *p, struct request *r)
{
    for (struct request **pp = &p->rpc_waiters; *pp; pp = &(*pp)->rpc_next) {
        if (*pp == r) {
            *pp = r->rpc_next;
            return;
        }
    }
}

/* Calls the submitter back exactly once. The caller releases r afterwards. */
static void request_finish(struct publisher *p, struct request *r, enum publish_status status,
                           const char *detail)
{
    if (r->finished)
        return;
    r->finished = true;
    if (r->opt.rpc)
        rpc_forget(p, r);
    struct route_metrics *m = r->opt.route ? &((struct route *)r->opt.route)->metrics : NULL;
    double seconds = r->sent_ms ? (double)(loop_now_ms() - r->sent_ms) / 1000.0 : 0;
    if (m) {
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
            metric_inc(m->publish_failed);
            break;
        }
    }
    struct publish_result res = {.status = status,
                                 .detail = detail,
                                 .reply = r->reply,
                                 .confirm_seconds = seconds};
    r->reply = NULL;
    r->done(r->arg, &res);
    message_free(res.reply); /* unless the callback took it (and set it NULL) */
    atomic_fetch_sub(&p->outstanding, 1);
}

/* Finishes r if everything it waits for has arrived. */
static void request_maybe_finish(struct publisher *p, struct request *r)
{
    if (r->finished || !r->confirmed)
        return;
    if (r->returned && !r->parked && !r->park_failed)
        return;
    if (r->returned && r->park_failed) {
        request_finish(p, r, PUBLISH_UNAVAILABLE,
                       "unroutable, and parking it in the dead-letter queue failed");
        return;
    }
    if (r->opt.rpc && !r->replied)
        return;
    request_finish(p, r, r->returned ? PUBLISH_UNROUTABLE : PUBLISH_OK, NULL);
}

static void queue_fail_all(struct publisher *p, struct request *list, const char *why)
{
    while (list) {
        struct request *next = list->next;
        request_finish(p, list, PUBLISH_UNAVAILABLE, why);
        request_release(list);
        list = next;
    }
}

/* ---- submitting ------------------------------------------------------------ */

static void publisher_flush(void *arg);

bool publisher_available(struct publisher *p, const char **why)
{
    const char *reason = NULL;
    if (!broker_is_up(p->broker))
        reason = "broker connection is down";
    else if (broker_is_blocked(p->broker))
        reason = "broker is blocking publishes (resource alarm)";
    else if (atomic_load(&p->outstanding) >= (size_t)broker_config(p->broker)->max_inflight * 4)
        reason = "too many messages waiting for the broker";
    if (why)
        *why = reason;
    return reason == NULL;
}

int publisher_submit(struct publisher *p, struct message *msg, const struct publish_options *opt,
                     publish_done_fn done, void *arg, const char **why)
{
    if (!publisher_available(p, why)) {
        /* Counted like a publish that failed later: the sender gets the same 503. */
        if (opt->route)
            metric_inc(((struct route *)opt->route)->metrics.publish_failed);
        message_free(msg);
        return -1;
    }
    if ((msg->routing_key && strlen(msg->routing_key) > 255) ||
        (msg->exchange && strlen(msg->exchange) > 255)) {
        /* rabbitmq-c cannot encode it, and a failed write would reset the connection
         * for everyone; kinds check first (inbound_routing_key) and say so properly. */
        if (why)
            *why = "routing key or exchange name longer than 255 bytes";
        message_free(msg);
        return -1;
    }
    struct request *r = xcalloc(1, sizeof(*r));
    r->msg = msg;
    r->opt = *opt;
    r->done = done;
    r->arg = arg;
    atomic_fetch_add(&p->outstanding, 1);

    pthread_mutex_lock(&p->lock);
    if (p->queue_tail)
        p->queue_tail->next = r;
    else
        p->queue_head = r;
    p->queue_tail = r;
    bool post = !p->flush_posted;
    p->flush_posted = true;
    pthread_mutex_unlock(&p->lock);
    if (post)
        loop_post(broker_loop(p->broker), publisher_flush, p);
    return 0;
}

/* ---- sending (broker thread) ------------------------------------------------ */

static amqp_bytes_t bytes_or_empty(const char *s)
{
    return s ? amqp_cstring_bytes(s) : amqp_empty_bytes;
}

static bool window_full(const struct publisher *p)
{
    return p->next_tag - p->low_tag >= p->ring_size - 8 ||
           p->in_flight >= (size_t)broker_config(p->broker)->max_inflight;
}

static uint64_t slot_take(struct publisher *p, enum pending_type type)
{
    uint64_t tag = p->next_tag++;
    struct pending *s = &p->ring[tag & (p->ring_size - 1)];
    *s = (struct pending){.tag = tag, .type = type, .sent_ms = loop_now_ms()};
    p->in_flight++;
    return tag;
}

/* Publishes one request; false if the socket failed (the caller resets). */
static bool send_request(struct publisher *p, amqp_connection_state_t conn, struct request *r)
{
    struct message *m = r->msg;
    const struct route *route = r->opt.route;
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (m->content_type) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = amqp_cstring_bytes(m->content_type);
    }
    if (m->message_id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(m->message_id);
    }
    if (r->opt.rpc && m->correlation_id == NULL) {
        char id[37];
        uuid_v4(id);
        message_set(&m->correlation_id, id);
    }
    if (m->correlation_id) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(m->correlation_id);
    }
    if (r->opt.rpc)
        message_set(&m->reply_to, DIRECT_REPLY_TO);
    if (m->reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(m->reply_to);
    }
    props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
    props.timestamp = (uint64_t)(m->timestamp ? m->timestamp : time(NULL));
    if (route) {
        props._flags |= AMQP_BASIC_APP_ID_FLAG;
        props.app_id = amqp_cstring_bytes(route->app_id);
    }
    amqp_table_entry_t *entries = xcalloc(m->n_headers + 1, sizeof(*entries));
    int n = 0;
    for (size_t i = 0; i < m->n_headers; i++)
        entries[n++] = (amqp_table_entry_t){
            amqp_cstring_bytes(m->headers[i].name),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(m->headers[i].value)}};
    if (route && message_header(m, "x-sidecar-route") == NULL)
        entries[n++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-sidecar-route"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(route->name)}};
    props.headers = (amqp_table_t){.num_entries = n, .entries = entries};

    amqp_bytes_t body = {.len = m->body_len, .bytes = m->body};
    int rc = amqp_basic_publish(conn, BROKER_CHANNEL, bytes_or_empty(m->exchange),
                                bytes_or_empty(m->routing_key), 1, 0, &props, body);
    free(entries);
    if (rc != AMQP_STATUS_OK)
        return false;

    uint64_t tag = slot_take(p, PENDING_REQUEST);
    p->ring[tag & (p->ring_size - 1)].req = r;
    r->refs++;
    r->sent_ms = loop_now_ms();
    /* Keep what matching a return or reply needs; drop the body now. */
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
        r->rpc_next = p->rpc_waiters;
        p->rpc_waiters = r;
    }
    return true;
}

/* Sends what the window allows from the backlog; the rest stays queued. */
static void send_backlog(struct publisher *p)
{
    amqp_connection_state_t conn = broker_amqp(p->broker);
    while (p->backlog_head) {
        if (conn == NULL || p->blocked) {
            struct request *list = p->backlog_head;
            p->backlog_head = p->backlog_tail = NULL;
            queue_fail_all(p, list,
                           conn == NULL ? "broker connection is down"
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
        if (!send_request(p, conn, r)) {
            request_finish(p, r, PUBLISH_UNAVAILABLE, "writing to the broker failed");
            request_release(r);
            broker_fail(p->broker, "writing a publish to the socket failed");
            return; /* broker_fail failed the rest */
        }
    }
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
    send_backlog(p);
}

int publisher_publish_raw(struct publisher *p, const char *exchange, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body,
                          publish_raw_done_fn done, void *arg)
{
    amqp_connection_state_t conn = broker_amqp(p->broker);
    if (conn == NULL || p->blocked || window_full(p))
        return -1;
    if (amqp_basic_publish(conn, BROKER_CHANNEL, amqp_cstring_bytes(exchange),
                           amqp_cstring_bytes(routing_key), 1, 0, props, body) != AMQP_STATUS_OK) {
        broker_fail(p->broker, "writing a publish to the socket failed");
        return -1;
    }
    uint64_t tag = slot_take(p, PENDING_RAW);
    struct pending *s = &p->ring[tag & (p->ring_size - 1)];
    s->raw_done = done;
    s->raw_arg = arg;
    s->exchange = xstrdup(exchange);
    s->routing_key = xstrdup(routing_key);
    if (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        s->message_id = xstrndup(props->message_id.bytes, props->message_id.len);
    return 0;
}

/* ---- answers from the broker ------------------------------------------------ */

static void pending_clear(struct publisher *p, struct pending *s)
{
    free(s->message_id);
    free(s->exchange);
    free(s->routing_key);
    *s = (struct pending){0};
    p->in_flight--;
}

static void resolve(struct publisher *p, uint64_t tag, bool nack)
{
    struct pending *s = &p->ring[tag & (p->ring_size - 1)];
    if (s->tag != tag)
        return; /* already resolved (or a tag we never sent) */
    struct pending done = *s;
    s->message_id = s->exchange = s->routing_key = NULL;
    pending_clear(p, s);

    switch (done.type) {
    case PENDING_REQUEST: {
        struct request *r = done.req;
        r->refs--;
        r->confirmed = true;
        if (nack)
            request_finish(p, r, PUBLISH_NACKED, "the broker refused the message (nack)");
        else
            request_maybe_finish(p, r);
        request_release(r);
        break;
    }
    case PENDING_PARK: {
        struct request *r = done.req;
        r->refs--;
        if (nack || done.returned)
            r->park_failed = true;
        else
            r->parked = true;
        request_maybe_finish(p, r);
        request_release(r);
        break;
    }
    case PENDING_RAW:
        done.raw_done(done.raw_arg,
                      nack ? PUBLISH_NACKED : done.returned ? PUBLISH_UNROUTABLE : PUBLISH_OK,
                      nack ? "nacked by the broker" : done.returned ? "unroutable" : NULL);
        break;
    }
    free(done.message_id);
    free(done.exchange);
    free(done.routing_key);
}

/* A channel that nacks everything (seen with quorum queues right after a
 * cluster node died: the channel keeps a stale view of the queue leader) is
 * reopened; a new channel looks the leader up afresh. */
static void nack_streak(struct publisher *p, bool nack)
{
    if (!nack) {
        p->nacks_in_a_row = 0;
        return;
    }
    int64_t now = loop_now_ms();
    if (p->nacks_in_a_row++ == 0)
        p->first_nack_ms = now;
    if (p->nacks_in_a_row >= NACK_STREAK && now - p->first_nack_ms >= NACK_STREAK_MS)
        broker_fail(p->broker, "the broker nacked every publish for a while; reopening the "
                               "connection to get a fresh view of its queues");
}

void publisher_on_ack(struct publisher *p, uint64_t tag, bool multiple, bool nack)
{
    nack_streak(p, nack);
    if (broker_amqp(p->broker) == NULL)
        return; /* nack_streak reset the connection: everything was failed */
    if (multiple) {
        for (uint64_t t = p->low_tag; t <= tag && t < p->next_tag; t++)
            resolve(p, t, nack);
    } else {
        resolve(p, tag, nack);
    }
    while (p->low_tag < p->next_tag && p->ring[p->low_tag & (p->ring_size - 1)].tag != p->low_tag)
        p->low_tag++;
    send_backlog(p);
}

static bool bytes_is(amqp_bytes_t b, const char *s)
{
    if (s == NULL)
        return b.len == 0;
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

/* The oldest unresolved, unreturned slot this returned message belongs to. */
static struct pending *find_returned(struct publisher *p, const amqp_basic_return_t *ret,
                                     const amqp_message_t *msg)
{
    amqp_bytes_t id = (msg->properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                          ? msg->properties.message_id
                          : amqp_empty_bytes;
    for (uint64_t t = p->low_tag; t < p->next_tag; t++) {
        struct pending *s = &p->ring[t & (p->ring_size - 1)];
        if (s->tag != t || s->returned || s->type == PENDING_PARK)
            continue;
        const char *mid = s->type == PENDING_REQUEST ? s->req->message_id : s->message_id;
        const char *ex = s->type == PENDING_REQUEST ? s->req->exchange : s->exchange;
        const char *key = s->type == PENDING_REQUEST ? s->req->routing_key : s->routing_key;
        if (bytes_is(id, mid) && bytes_is(ret->exchange, ex) && bytes_is(ret->routing_key, key))
            return s;
    }
    return NULL;
}

/* Publishes the returned message into the route's DLQ with the reason. */
static void park(struct publisher *p, struct request *r, const amqp_basic_return_t *ret,
                 amqp_message_t *msg)
{
    const struct route *route = r->opt.route;
    char reason[512];
    snprintf(reason, sizeof(reason),
             "unroutable: no binding of exchange \"%.*s\" matches routing key \"%.*s\" (%.*s)",
             (int)ret->exchange.len, (char *)ret->exchange.bytes, (int)ret->routing_key.len,
             (char *)ret->routing_key.bytes, (int)ret->reply_text.len,
             (char *)ret->reply_text.bytes);
    log_event(LOG_WARN,
              &(struct log_ctx){.route = route->name, .message_id = r->message_id,
                                .correlation_id = r->correlation_id},
              "%s; parking it in %s", reason, route->dlq);

    amqp_basic_properties_t props = msg->properties;
    amqp_table_t *old = &msg->properties.headers;
    int n_old = (props._flags & AMQP_BASIC_HEADERS_FLAG) ? old->num_entries : 0;
    amqp_table_entry_t *entries = xcalloc((size_t)n_old + 1, sizeof(*entries));
    int n = 0;
    for (int i = 0; i < n_old; i++)
        if (!bytes_is(old->entries[i].key, "x-sidecar-error"))
            entries[n++] = old->entries[i];
    entries[n++] = (amqp_table_entry_t){
        amqp_cstring_bytes("x-sidecar-error"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(reason)}};
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = (amqp_table_t){.num_entries = n, .entries = entries};

    amqp_connection_state_t conn = broker_amqp(p->broker);
    int rc = amqp_basic_publish(conn, BROKER_CHANNEL, amqp_cstring_bytes(route->dlx),
                                amqp_cstring_bytes(route->dlq_key), 1, 0, &props, msg->body);
    free(entries);
    if (rc != AMQP_STATUS_OK) {
        r->park_failed = true;
        broker_fail(p->broker, "writing a publish to the socket failed");
        return;
    }
    uint64_t tag = slot_take(p, PENDING_PARK);
    p->ring[tag & (p->ring_size - 1)].req = r;
    r->refs++;
}

void publisher_on_return(struct publisher *p, const amqp_basic_return_t *ret,
                         amqp_message_t *msg)
{
    struct pending *s = find_returned(p, ret, msg);
    if (s == NULL) {
        log_warn(broker_label(p->broker), "broker returned a message we cannot match (%.*s)",
                 (int)ret->reply_text.len, (char *)ret->reply_text.bytes);
        return;
    }
    s->returned = true;
    if (s->type == PENDING_REQUEST) {
        struct request *r = s->req;
        r->returned = true;
        if (r->opt.route)
            park(p, r, ret, msg);
        else
            r->park_failed = true;
    }
}

void publisher_on_reply(struct publisher *p, amqp_message_t *msg)
{
    amqp_basic_properties_t *pr = &msg->properties;
    if (!(pr->_flags & AMQP_BASIC_CORRELATION_ID_FLAG))
        return;
    for (struct request *r = p->rpc_waiters; r; r = r->rpc_next) {
        if (r->replied || !bytes_is(pr->correlation_id, r->correlation_id))
            continue;
        struct message *m = amqp_message_convert(msg);
        r->reply = m;
        r->replied = true;
        request_maybe_finish(p, r);
        request_release(r);
        return;
    }
    /* A late reply to a request that timed out: nothing waits for it. */
}

/* ---- connection events ------------------------------------------------------- */

int publisher_on_open(struct publisher *p, char *err, size_t errlen)
{
    p->next_tag = 1;
    p->low_tag = 1;
    p->blocked = false;
    p->nacks_in_a_row = 0;
    if (!p->rpc)
        return 0;
    amqp_connection_state_t conn = broker_amqp(p->broker);
    amqp_basic_consume(conn, BROKER_CHANNEL, amqp_cstring_bytes(DIRECT_REPLY_TO),
                       amqp_cstring_bytes(RPC_CONSUMER_TAG), 0, 1, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "consuming %s for rpc replies failed", DIRECT_REPLY_TO);
        return -1;
    }
    return 0;
}

void publisher_on_lost(struct publisher *p, const char *why)
{
    char detail[512];
    snprintf(detail, sizeof(detail), "broker connection lost before the confirm: %s", why);
    for (uint64_t t = p->low_tag; t < p->next_tag; t++) {
        struct pending *s = &p->ring[t & (p->ring_size - 1)];
        if (s->tag != t)
            continue;
        struct pending done = *s;
        s->message_id = s->exchange = s->routing_key = NULL;
        pending_clear(p, s);
        if (done.type == PENDING_RAW) {
            done.raw_done(done.raw_arg, PUBLISH_UNAVAILABLE, detail);
        } else {
            done.req->refs--;
            request_finish(p, done.req, PUBLISH_UNAVAILABLE, detail);
            request_release(done.req);
        }
        free(done.message_id);
        free(done.exchange);
        free(done.routing_key);
    }
    /* rpc requests already confirmed but still waiting: their reply cannot come now. */
    while (p->rpc_waiters) {
        struct request *r = p->rpc_waiters;
        p->rpc_waiters = r->rpc_next;
        request_finish(p, r, PUBLISH_UNAVAILABLE, "broker connection lost before the rpc reply");
        request_release(r);
    }
    p->in_flight = 0;
    p->next_tag = p->low_tag = 1;

    pthread_mutex_lock(&p->lock);
    struct request *queued = p->queue_head;
    p->queue_head = p->queue_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    struct request *backlog = p->backlog_head;
    p->backlog_head = p->backlog_tail = NULL;
    queue_fail_all(p, backlog, "broker connection is down");
    queue_fail_all(p, queued, "broker connection is down");
}

void publisher_on_blocked(struct publisher *p, bool blocked)
{
    p->blocked = blocked;
    if (blocked) {
        struct request *backlog = p->backlog_head;
        p->backlog_head = p->backlog_tail = NULL;
        queue_fail_all(p, backlog, "broker is blocking publishes (resource alarm)");
    }
}

/* Every tick: expire rpc waits, and reset a connection whose confirms stalled. */
void publisher_tick(struct publisher *p)
{
    int64_t now = loop_now_ms();
    for (struct request **pp = &p->rpc_waiters; *pp;) {
        struct request *r = *pp;
        if (r->rpc_deadline_ms > now || !r->confirmed) {
            pp = &r->rpc_next;
            continue;
        }
        *pp = r->rpc_next;
        log_event(LOG_WARN,
                  &(struct log_ctx){.route = route_name(r), .message_id = r->message_id,
                                    .correlation_id = r->correlation_id},
                  "no rpc reply within %.1fs", r->opt.rpc_timeout);
        request_finish(p, r, PUBLISH_RPC_TIMEOUT, "no reply in time");
        request_release(r);
    }
    double limit = broker_config(p->broker)->confirm_timeout;
    if (p->blocked) {
        /* A blocked broker holds confirms back, possibly for long: tell the
         * waiting senders to retry later (a later confirm may still come:
         * that is a duplicate on retry, never a loss) but keep the connection. */
        for (uint64_t t = p->low_tag; t < p->next_tag; t++) {
            struct pending *s = &p->ring[t & (p->ring_size - 1)];
            if (s->tag == t && s->type == PENDING_REQUEST && !s->req->finished &&
                (double)(now - s->sent_ms) > limit * 1000)
                request_finish(p, s->req, PUBLISH_UNAVAILABLE,
                               "broker is blocking publishes (resource alarm); not confirmed in time");
        }
        return;
    }
    if (p->low_tag < p->next_tag) {
        struct pending *oldest = &p->ring[p->low_tag & (p->ring_size - 1)];
        if (oldest->tag == p->low_tag && (double)(now - oldest->sent_ms) > limit * 1000) {
            char why[128];
            snprintf(why, sizeof(why), "no publisher confirm within %.1fs (broker.confirm_timeout)",
                     limit);
            broker_fail(p->broker, why);
        }
    }
}
