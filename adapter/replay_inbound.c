/*
 * replay_inbound — `replay` on an inbound route: messages parked in
 * <name>.<route>.dlq because no binding matched go back to the exchange and
 * routing key they were published to (headers x-sidecar-exchange and
 * x-sidecar-routing-key, set when parking; without them — parked by an older
 * version — the route's own exchange and routing key, unless that key is a
 * template), typically after the RabbitMQ admin added the missing binding.
 *
 * One message at a time: basic.get (unacked), publish mandatory, wait for
 * its confirm. A basic.return before the ack means it is unroutable again:
 * it is counted and left unacked, so closing the connection puts it back in
 * the DLQ; otherwise it is acked in the DLQ, only after the confirm (a crash
 * in between duplicates, never loses). One at a time, because a return
 * names no publish sequence number and acks may come out of order: with one
 * publish outstanding, a return is unambiguously that publish's.
 */
#include "amqp_message.h"
#include "broker_once.h"
#include "replay_internal.h"
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRY_RUN_SHOWN 10

enum address_source { ADDRESS_HEADERS, ADDRESS_ROUTE, ADDRESS_UNKNOWN };

/* A short-string header value (as parked), borrowed from p. */
static bool header_bytes(const amqp_basic_properties_t *p, const char *name, amqp_bytes_t *out)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return false;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len != strlen(name) || memcmp(e->key.bytes, name, e->key.len) != 0)
            continue;
        if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
            return false;
        if (e->value.value.bytes.len > 255) /* not something we parked: an AMQP shortstr */
            return false;
        *out = e->value.value.bytes;
        return true;
    }
    return false;
}

/* Where msg goes back to; the bytes are borrowed from msg or r. */
static enum address_source address_of(const amqp_message_t *msg, const struct route *r,
                                      amqp_bytes_t *exchange, amqp_bytes_t *key)
{
    const amqp_basic_properties_t *p = &msg->properties;
    if (header_bytes(p, AMQP_PARK_EXCHANGE, exchange) &&
        header_bytes(p, AMQP_PARK_ROUTING_KEY, key))
        return ADDRESS_HEADERS;
    if (strchr(r->routing_key, '{') != NULL)
        return ADDRESS_UNKNOWN;
    *exchange = amqp_cstring_bytes(r->exchange);
    *key = amqp_cstring_bytes(r->routing_key);
    return ADDRESS_ROUTE;
}

/* Says why msg has no address of its own; false when it cannot be replayed. */
static bool explain_address(const amqp_message_t *msg, const struct route *r,
                            enum address_source src)
{
    const amqp_basic_properties_t *p = &msg->properties;
    if (src == ADDRESS_HEADERS)
        return true;
    if (src == ADDRESS_ROUTE) {
        fprintf(stderr,
                "amqp-sidecar: note: message_id=%.*s has no " AMQP_PARK_EXCHANGE
                " header (parked by an older version): publishing it to the route's exchange "
                "\"%s\" with its routing key \"%s\"\n",
                replay_id_len(p), replay_id(p), r->exchange, r->routing_key);
        return true;
    }
    fprintf(stderr,
            "amqp-sidecar: message_id=%.*s has no " AMQP_PARK_EXCHANGE
            " header (parked by an older version) and the route's routing_key is a template "
            "(\"%s\"), so its key is unknown: left in %s; move it by hand (RabbitMQ UI: Get "
            "messages on the queue, then Publish to the exchange)\n",
            replay_id_len(p), replay_id(p), r->routing_key, r->dlq);
    return false;
}

static int dry_run(amqp_connection_state_t conn, const struct route *r, long depth, long max)
{
    long show = max >= 0 && max < depth ? max : depth;
    printf("%s: %ld message(s) in %s; would publish %ld back to the exchange each was "
           "published to (mandatory, with confirms)\n",
           r->name, depth, r->dlq, show);
    for (long i = 0; i < show && i < DRY_RUN_SHOWN; i++) {
        amqp_message_t msg;
        uint64_t tag;
        if (replay_get_one(conn, r->dlq, &msg, &tag) != 1)
            break;
        const amqp_basic_properties_t *p = &msg.properties;
        amqp_bytes_t ex, key;
        enum address_source src = address_of(&msg, r, &ex, &key);
        if (src == ADDRESS_UNKNOWN)
            printf("  message_id=%.*s: parked without " AMQP_PARK_EXCHANGE
                   " and the routing key is a template: would stay\n",
                   replay_id_len(p), replay_id(p));
        else
            printf("  message_id=%.*s to exchange \"%.*s\" routing key \"%.*s\"%s\n",
                   replay_id_len(p), replay_id(p), (int)ex.len, (char *)ex.bytes, (int)key.len,
                   (char *)key.bytes,
                   src == ADDRESS_ROUTE ? " (the route's: parked without " AMQP_PARK_EXCHANGE ")"
                                        : "");
        amqp_destroy_message(&msg);
    }
    /* Closing the connection returns the unacked messages we looked at. */
    return 0;
}

enum outcome { CONFIRMED, RETURNED, FAILED };

/* Waits for the confirm of publish number seq (the only one outstanding). */
static enum outcome wait_confirm(amqp_connection_state_t conn, uint64_t seq, char *err,
                                 size_t errlen)
{
    bool returned = false;
    for (;;) {
        amqp_frame_t f;
        struct timeval tv = {30, 0};
        int rc = amqp_simple_wait_frame_noblock(conn, &f, &tv);
        if (rc != AMQP_STATUS_OK) {
            snprintf(err, errlen, "waiting for the confirm: %s", amqp_error_string2(rc));
            return FAILED;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_RETURN_METHOD: {
            /* The returned content follows; read it so the next frame is a method. */
            amqp_message_t back;
            if (amqp_read_message(conn, BROKER_CHANNEL, &back, 0).reply_type !=
                AMQP_RESPONSE_NORMAL) {
                snprintf(err, errlen, "reading a returned message failed");
                return FAILED;
            }
            amqp_destroy_message(&back);
            returned = true;
            break;
        }
        case AMQP_BASIC_ACK_METHOD:
            if (((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag >= seq)
                return returned ? RETURNED : CONFIRMED;
            break;
        case AMQP_BASIC_NACK_METHOD:
            snprintf(err, errlen, "the broker refused a replayed message (nack)");
            return FAILED;
        case AMQP_CHANNEL_CLOSE_METHOD: {
            amqp_channel_close_t *c = f.payload.method.decoded;
            snprintf(err, errlen, "the broker closed the channel: %.*s", (int)c->reply_text.len,
                     (char *)c->reply_text.bytes);
            return FAILED;
        }
        case AMQP_CONNECTION_CLOSE_METHOD:
            snprintf(err, errlen, "the broker closed the connection");
            return FAILED;
        default:
            break;
        }
    }
}

/* Publishes msg back to its address and waits for the broker's answer. */
static enum outcome republish(amqp_connection_state_t conn, const struct route *r,
                              const amqp_message_t *msg, amqp_bytes_t ex, amqp_bytes_t key,
                              uint64_t seq, char *err, size_t errlen)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t *e = replay_properties(msg, r->dlq, &props);
    char why[300];
    enum outcome out = FAILED;
    if (amqp_publish_check(ex, key, &props, (size_t)amqp_get_frame_max(conn), why, sizeof(why)) !=
        0)
        snprintf(err, errlen, "a parked message cannot be replayed as it is: %s", why);
    else if (amqp_basic_publish(conn, BROKER_CHANNEL, ex, key, 1, 0, &props, msg->body) !=
             AMQP_STATUS_OK)
        snprintf(err, errlen, "publishing to exchange \"%.*s\" failed", (int)ex.len,
                 (char *)ex.bytes);
    else
        out = wait_confirm(conn, seq, err, errlen);
    free(e);
    return out;
}

int replay_inbound(amqp_connection_state_t conn, const struct route *r, long depth, long max,
                   bool dry)
{
    if (dry)
        return dry_run(conn, r, depth, max);
    amqp_confirm_select(conn, BROKER_CHANNEL);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "amqp-sidecar: enabling confirms failed\n");
        return 1;
    }
    long published = 0, unroutable = 0, stuck = 0;
    uint64_t seq = 0;
    int code = 0;
    char err[512];
    for (long taken = 0; max < 0 || taken < max; taken++) {
        amqp_message_t msg;
        uint64_t tag;
        int rc = replay_get_one(conn, r->dlq, &msg, &tag);
        if (rc <= 0) {
            if (rc < 0) {
                fprintf(stderr, "amqp-sidecar: reading %s failed\n", r->dlq);
                code = 1;
            }
            break;
        }
        amqp_bytes_t ex, key;
        enum address_source src = address_of(&msg, r, &ex, &key);
        if (!explain_address(&msg, r, src)) {
            stuck++; /* unacked: back in the DLQ when the connection closes */
            amqp_destroy_message(&msg);
            continue;
        }
        enum outcome out = republish(conn, r, &msg, ex, key, ++seq, err, sizeof(err));
        if (out == CONFIRMED) {
            amqp_basic_ack(conn, BROKER_CHANNEL, tag, 0);
            published++;
        } else if (out == RETURNED) {
            printf("  message_id=%.*s is still unroutable: no binding of exchange \"%.*s\" "
                   "matches routing key \"%.*s\"; it stays in %s\n",
                   replay_id_len(&msg.properties), replay_id(&msg.properties), (int)ex.len,
                   (char *)ex.bytes, (int)key.len, (char *)key.bytes, r->dlq);
            unroutable++;
        } else {
            fprintf(stderr, "amqp-sidecar: %s; message_id=%.*s stays in %s\n", err,
                    replay_id_len(&msg.properties), replay_id(&msg.properties), r->dlq);
            code = 1;
        }
        amqp_destroy_message(&msg);
        if (out == FAILED)
            break;
    }
    /* The still unroutable are unacked: they count as left once the connection closes. */
    long left = code == 0 ? replay_queue_depth(conn, r->dlq) : -1;
    if (left >= 0)
        left += unroutable + stuck;
    printf("%s: published %ld message(s) from %s; %ld still unroutable; ", r->name, published,
           r->dlq, unroutable);
    if (left >= 0)
        printf("%ld left in %s\n", left, r->dlq);
    else
        printf("the rest stays in %s\n", r->dlq);
    if (unroutable > 0)
        fprintf(stderr,
                "amqp-sidecar: %ld message(s) are still unroutable: bind a queue to their "
                "exchange for their routing key (or fix the route's routing_key), then replay "
                "again\n",
                unroutable);
    return code != 0 || unroutable > 0 || stuck > 0 ? 1 : 0;
}
