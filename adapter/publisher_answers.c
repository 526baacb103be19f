/*
 * publisher_answers — what the broker says about what the publisher sent:
 * acks and nacks (possibly `multiple`) resolve ring entries by tag; a
 * basic.return marks its entry and parks the message in the route's DLQ
 * with the exchange and routing key it was returned from (for `replay`),
 * published mandatory too, so a returned park fails its request; rpc
 * replies are matched on the call id. See publisher.c for the pipeline.
 */
#include "publisher_internal.h"

#include "amqp_message.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "metrics.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- answers from the broker ------------------------------------------------ */

static void resolve(struct publisher *p, uint64_t tag, bool nack)
{
    struct ring_entry done;
    if (!confirm_ring_remove(&p->ring, tag, &done))
        return; /* already resolved (or a tag we never sent) */

    switch (done.kind) {
    case PENDING_REQUEST: {
        struct request *r = done.item;
        r->refs--;
        r->confirmed = true;
        if (nack)
            publisher_finish(p, r, PUBLISH_NACKED, "the broker refused the message (nack)");
        else
            publisher_maybe_finish(p, r);
        publisher_release(r);
        break;
    }
    case PENDING_PARK: {
        struct request *r = done.item;
        r->refs--;
        if (nack || done.returned)
            r->park_failed = true;
        else
            r->parked = true;
        publisher_maybe_finish(p, r);
        publisher_release(r);
        break;
    }
    case PENDING_RAW: {
        struct raw_publish *w = done.item;
        w->done(w->arg,
                nack            ? PUBLISH_NACKED
                : done.returned ? PUBLISH_UNROUTABLE
                                : PUBLISH_OK,
                nack            ? "nacked by the broker"
                : done.returned ? "unroutable"
                                : NULL);
        publisher_raw_free(w);
        break;
    }
    }
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
        p->ch->fail(p->ch, "the broker nacked every publish for a while; reopening the "
                           "connection to get a fresh view of its queues");
}

void publisher_on_ack(struct publisher *p, uint64_t tag, bool multiple, bool nack)
{
    nack_streak(p, nack);
    if (!publisher_channel_open(p))
        return; /* nack_streak reset the connection: everything was failed */
    if (multiple) {
        for (uint64_t t = p->ring.low_tag; t <= tag && t < p->ring.next_tag; t++)
            resolve(p, t, nack);
    } else {
        resolve(p, tag, nack);
    }
    publisher_send_backlog(p);
}

bool publisher_bytes_is(amqp_bytes_t b, const char *s)
{
    if (s == NULL)
        return b.len == 0;
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

/* What a ring entry was published as: to match a return against. */
static void entry_address(const struct ring_entry *e, const char **message_id,
                          const char **exchange, const char **routing_key)
{
    if (e->kind == PENDING_RAW) {
        const struct raw_publish *w = e->item;
        *message_id = w->message_id;
        *exchange = w->exchange;
        *routing_key = w->routing_key;
        return;
    }
    const struct request *r = e->item;
    *message_id = r->message_id;
    if (e->kind == PENDING_PARK) {
        *exchange = r->opt.route->dlx;
        *routing_key = r->opt.route->dlq_key;
    } else {
        *exchange = r->exchange;
        *routing_key = r->routing_key;
    }
}

/* The oldest unresolved, unreturned entry this returned message belongs to
 * (the broker sends basic.return before the publish's ack). */
static struct ring_entry *find_returned(struct publisher *p, const amqp_basic_return_t *ret,
                                        const amqp_message_t *msg)
{
    amqp_bytes_t id = (msg->properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                          ? msg->properties.message_id
                          : amqp_empty_bytes;
    for (uint64_t t = p->ring.low_tag; t < p->ring.next_tag; t++) {
        struct ring_entry *e = confirm_ring_get(&p->ring, t);
        if (e == NULL || e->returned)
            continue;
        const char *mid, *ex, *key;
        entry_address(e, &mid, &ex, &key);
        if (publisher_bytes_is(id, mid) && publisher_bytes_is(ret->exchange, ex) &&
            publisher_bytes_is(ret->routing_key, key))
            return e;
    }
    return NULL;
}

/* Publishes the returned message into the route's DLQ with the reason; on
 * any failure the park fails (and with it the request: never "parked"). */
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
    struct log_ctx ctx = {
        .route = route->name, .message_id = r->message_id, .correlation_id = r->correlation_id};
    log_event(LOG_WARN, &ctx, "%s; parking it in %s", reason, route->dlq);

    amqp_basic_properties_t props;
    amqp_table_entry_t *entries =
        amqp_park_properties(msg, reason, ret->exchange, ret->routing_key, &props);

    char why[300];
    amqp_bytes_t dlx = amqp_cstring_bytes(route->dlx), key = amqp_cstring_bytes(route->dlq_key);
    if (!confirm_ring_has_room(&p->ring)) {
        snprintf(why, sizeof(why), "too many publishes waiting for confirms");
    } else if (amqp_publish_check(dlx, key, &props, publisher_frame_max(p), why, sizeof(why)) ==
               0) {
        int rc = p->ch->publish(p->ch, dlx, key, &props, msg->body);
        free(entries);
        if (rc != AMQP_STATUS_OK) {
            r->park_failed = true;
            p->ch->fail(p->ch, "writing a publish to the socket failed");
            return;
        }
        confirm_ring_take(&p->ring, PENDING_PARK, r, loop_now_ms());
        r->refs++;
        return;
    }
    free(entries);
    log_event(LOG_ERROR, &ctx, "cannot park the unroutable message in %s: %s", route->dlq, why);
    r->park_failed = true;
}

void publisher_on_return(struct publisher *p, const amqp_basic_return_t *ret, amqp_message_t *msg)
{
    struct ring_entry *e = find_returned(p, ret, msg);
    if (e == NULL) {
        log_warn(p->label, "broker returned a message we cannot match (%.*s)",
                 (int)ret->reply_text.len, (char *)ret->reply_text.bytes);
        return;
    }
    e->returned = true;
    if (e->kind == PENDING_PARK) {
        /* The DLQ itself is gone or unbound: the request fails when the ack comes. */
        struct request *r = e->item;
        log_event(LOG_ERROR,
                  &(struct log_ctx){.route = r->opt.route->name,
                                    .message_id = r->message_id,
                                    .correlation_id = r->correlation_id},
                  "the dead-letter queue %s did not take the unroutable message either: it was "
                  "deleted or unbound from %s while the sidecar ran; the sender is told to retry. "
                  "Restart the sidecar (it redeclares its queues) or recreate it with "
                  "`amqp-sidecar topology` and `rabbitmqctl import_definitions`",
                  r->opt.route->dlq, r->opt.route->dlx);
        return;
    }
    if (e->kind == PENDING_REQUEST) {
        struct request *r = e->item;
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
    if (pr->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        amqp_bytes_t id = pr->correlation_id;
        for (struct request *r = p->rpc_buckets[publisher_rpc_bucket(p, id.bytes, id.len)]; r;
             r = r->rpc_next) {
            if (!publisher_bytes_is(id, r->call_id))
                continue;
            publisher_rpc_forget(p, r);
            r->reply = amqp_message_convert(msg);
            r->replied = true;
            publisher_maybe_finish(p, r);
            publisher_release(r);
            return;
        }
    }
    /* Late (its caller timed out), duplicated, or not ours: nobody gets it. */
    if (p->metrics)
        metric_inc(p->metrics->rpc_replies_unmatched);
    log_debug(p->label, "dropped an rpc reply that no caller waits for");
}
