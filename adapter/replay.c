/*
 * replay — see replay.h. Outbound routes work in batches: basic.get up to
 * BATCH messages from the DLQ (unacked), publish each to the work queue with
 * confirms, wait for every confirm, then ack the batch in the DLQ. A nack, a
 * return or a lost connection stops the run; unacked messages stay in the
 * DLQ. Inbound routes: replay_inbound.c.
 */
#include "replay.h"

#include "amqp_message.h"
#include "replay_internal.h"

#include "broker_once.h"
#include "config.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 256

static bool key_is(amqp_bytes_t k, const char *s)
{
    return k.len == strlen(s) && memcmp(k.bytes, s, k.len) == 0;
}

static bool is_reset_header(amqp_bytes_t k)
{
    return key_is(k, "x-sidecar-attempts") || key_is(k, AMQP_PARK_ERROR) ||
           key_is(k, AMQP_PARK_EXCHANGE) || key_is(k, AMQP_PARK_ROUTING_KEY) ||
           key_is(k, "x-death") || key_is(k, "x-first-death-exchange") ||
           key_is(k, "x-first-death-queue") || key_is(k, "x-first-death-reason") ||
           key_is(k, "x-last-death-exchange") || key_is(k, "x-last-death-queue") ||
           key_is(k, "x-last-death-reason");
}

long replay_queue_depth(amqp_connection_state_t conn, const char *queue)
{
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        conn, BROKER_CHANNEL, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (ok == NULL)
        return -1;
    return (long)ok->message_count;
}

const char *replay_header_text(const amqp_basic_properties_t *p, const char *name, char *out,
                               size_t n)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (!key_is(e->key, name))
            continue;
        if (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES)
            snprintf(out, n, "%.*s", (int)e->value.value.bytes.len,
                     (char *)e->value.value.bytes.bytes);
        else if (e->value.kind == AMQP_FIELD_KIND_I64)
            snprintf(out, n, "%lld", (long long)e->value.value.i64);
        else
            snprintf(out, n, "?");
        return out;
    }
    return NULL;
}

int replay_id_len(const amqp_basic_properties_t *p)
{
    return (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? (int)p->message_id.len : 1;
}

const char *replay_id(const amqp_basic_properties_t *p)
{
    return (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? (char *)p->message_id.bytes : "-";
}

int replay_get_one(amqp_connection_state_t conn, const char *dlq, amqp_message_t *msg,
                   uint64_t *tag)
{
    amqp_rpc_reply_t r = amqp_basic_get(conn, BROKER_CHANNEL, amqp_cstring_bytes(dlq), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    *tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
    r = amqp_read_message(conn, BROKER_CHANNEL, msg, 0);
    return r.reply_type == AMQP_RESPONSE_NORMAL ? 1 : -1;
}

amqp_table_entry_t *replay_properties(const amqp_message_t *msg, const char *dlq,
                                      amqp_basic_properties_t *props)
{
    *props = msg->properties;
    const amqp_table_t *old = &msg->properties.headers;
    int n_old = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? old->num_entries : 0;
    amqp_table_entry_t *e = xcalloc((size_t)n_old + 1, sizeof(*e));
    int n = 0;
    for (int i = 0; i < n_old; i++)
        if (!is_reset_header(old->entries[i].key))
            e[n++] = old->entries[i];
    e[n++] = (amqp_table_entry_t){
        amqp_cstring_bytes("x-sidecar-replayed-from"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(dlq)}};
    props->_flags |= AMQP_BASIC_HEADERS_FLAG;
    props->headers = (amqp_table_t){.num_entries = n, .entries = e};
    return e;
}

static int republish(amqp_connection_state_t conn, const struct route *r, amqp_message_t *msg)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t *e = replay_properties(msg, r->dlq, &props);
    char why[300];
    int rc = -1;
    if (amqp_publish_check(amqp_empty_bytes, amqp_cstring_bytes(r->queue), &props,
                           (size_t)amqp_get_frame_max(conn), why, sizeof(why)) != 0)
        fprintf(stderr, "amqp-sidecar: a dead letter cannot be replayed as it is: %s\n", why);
    else
        rc = amqp_basic_publish(conn, BROKER_CHANNEL, amqp_cstring_bytes(""),
                                amqp_cstring_bytes(r->queue), 1, 0, &props, msg->body);
    free(e);
    return rc == AMQP_STATUS_OK ? 0 : -1;
}

/* Waits until every publish up to `last` is confirmed. 0, or -1 with err. */
static int wait_confirms(amqp_connection_state_t conn, uint64_t last, char *err, size_t errlen)
{
    uint64_t confirmed = 0;
    while (confirmed < last) {
        amqp_frame_t f;
        struct timeval tv = {30, 0};
        int rc = amqp_simple_wait_frame_noblock(conn, &f, &tv);
        if (rc != AMQP_STATUS_OK) {
            snprintf(err, errlen, "waiting for confirms: %s", amqp_error_string2(rc));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag > confirmed)
                confirmed = a->delivery_tag;
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            snprintf(err, errlen, "the broker refused a replayed message (nack)");
            return -1;
        case AMQP_BASIC_RETURN_METHOD:
            snprintf(err, errlen, "a replayed message could not be routed to its queue");
            return -1;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            snprintf(err, errlen, "the broker closed the connection");
            return -1;
        default:
            break;
        }
    }
    return 0;
}

static int dry_run(amqp_connection_state_t conn, const struct route *r, long depth, long max)
{
    long show = max >= 0 && max < depth ? max : depth;
    printf("%s: %ld message(s) in %s; would move %ld to %s\n", r->name, depth, r->dlq, show,
           r->queue);
    for (long i = 0; i < show && i < 10; i++) {
        amqp_message_t msg;
        uint64_t tag;
        if (replay_get_one(conn, r->dlq, &msg, &tag) != 1)
            break;
        char err[256] = "", attempts[32] = "";
        const amqp_basic_properties_t *p = &msg.properties;
        printf("  message_id=%.*s attempts=%s error=%s\n", replay_id_len(p), replay_id(p),
               replay_header_text(p, "x-sidecar-attempts", attempts, sizeof(attempts)) ? attempts
                                                                                       : "-",
               replay_header_text(p, "x-sidecar-error", err, sizeof(err)) ? err : "-");
        amqp_destroy_message(&msg);
    }
    /* Closing the connection returns the unacked messages we looked at. */
    return 0;
}

int replay_run(const struct sidecar_config *cfg, const struct route *r, long max, bool dry)
{
    amqp_connection_state_t conn;
    char *vhost, *where;
    char err[1024];
    if (broker_connect_once(&cfg->broker, cfg->name, "replay", &conn, &vhost, &where, err,
                            sizeof(err)) != 0) {
        fprintf(stderr, "amqp-sidecar: %s\n", err);
        return 1;
    }
    int code = 0;
    long depth = replay_queue_depth(conn, r->dlq);
    if (depth < 0) {
        fprintf(stderr, "amqp-sidecar: %s does not exist on vhost \"%s\" (has the sidecar run?)\n",
                r->dlq, vhost);
        code = 1;
        goto out;
    }
    if (r->direction == ROUTE_INBOUND) {
        code = replay_inbound(conn, r, depth, max, dry);
        goto out;
    }
    if (dry) {
        code = dry_run(conn, r, depth, max);
        goto out;
    }
    amqp_confirm_select(conn, BROKER_CHANNEL);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "amqp-sidecar: enabling confirms failed\n");
        code = 1;
        goto out;
    }
    long moved = 0;
    uint64_t published = 0;
    amqp_message_t *batch = xcalloc(BATCH, sizeof(*batch));
    for (;;) {
        long want = BATCH;
        if (max >= 0 && max - moved < want)
            want = max - moved;
        if (want <= 0)
            break;
        /* Get the whole batch before publishing any of it: a confirm arriving while
         * basic.get waits is queued by rabbitmq-c, and amqp_read_message would then
         * take it for the next message's content header. */
        uint64_t last_tag = 0;
        long got = 0;
        for (; got < want; got++) {
            uint64_t tag;
            int rc = replay_get_one(conn, r->dlq, &batch[got], &tag);
            if (rc <= 0) {
                if (rc < 0) {
                    fprintf(stderr, "amqp-sidecar: reading %s failed\n", r->dlq);
                    code = 1;
                }
                break;
            }
            last_tag = tag;
        }
        for (long i = 0; i < got; i++) {
            if (code == 0 && republish(conn, r, &batch[i]) != 0) {
                fprintf(stderr, "amqp-sidecar: publishing to %s failed\n", r->queue);
                code = 1;
            } else if (code == 0) {
                published++;
            }
            amqp_destroy_message(&batch[i]);
        }
        if (got > 0 && code == 0) {
            if (wait_confirms(conn, published, err, sizeof(err)) != 0) {
                fprintf(stderr, "amqp-sidecar: %s; the unconfirmed batch stays in %s\n", err,
                        r->dlq);
                code = 1;
                break;
            }
            amqp_basic_ack(conn, BROKER_CHANNEL, last_tag, 1); /* the whole batch */
            moved += got;
        }
        if (got < want || code != 0)
            break;
    }
    free(batch);
    long left = replay_queue_depth(conn, r->dlq);
    printf("%s: moved %ld message(s) from %s to %s; %ld left in %s\n", r->name, moved, r->dlq,
           r->queue, left < 0 ? 0 : left, r->dlq);
out:
    broker_close_once(conn);
    free(vhost);
    free(where);
    return code;
}
