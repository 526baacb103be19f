/*
 * topology — build the description (topology.h), export it as RabbitMQ
 * definitions JSON, and declare it over rabbitmq-c.
 *
 * Queue arguments are produced in one place (queue_arguments_*) for both the
 * declaration and the JSON, with the same types (integers as AMQP `long`,
 * which is what RabbitMQ stores for imported JSON numbers), so a queue made
 * by `rabbitmqctl import_definitions` is equivalent to one the sidecar made.
 *
 * Quorum queues dead-letter at most once unless told otherwise, and the retry
 * ladder is dead-lettering (a tier's TTL moves a message back to the work
 * queue, a rejected work message moves to its DLQ): a quorum queue that
 * dead-letters is declared with x-dead-letter-strategy = at-least-once, which
 * RabbitMQ (>= 3.10) honours only with x-overflow = reject-publish; every
 * quorum queue gets an explicit x-delivery-limit (TOPOLOGY_DELIVERY_LIMIT).
 * A quorum queue an older sidecar declared without them is declared as it is
 * and named in a warning with the policy that adds them in place.
 */
#include "topology.h"

#include "config.h"
#include "log.h"
#include "route.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_exchange(struct topology *t, const char *name)
{
    for (size_t i = 0; i < t->n_exchanges; i++)
        if (strcmp(t->exchanges[i], name) == 0)
            return;
    t->exchanges = xrealloc(t->exchanges, (t->n_exchanges + 1) * sizeof(char *));
    t->exchanges[t->n_exchanges++] = xstrdup(name);
}

static void add_checked(struct topology *t, const char *name)
{
    /* The default exchange and amq.* always exist. */
    if (name[0] == '\0' || strncmp(name, "amq.", 4) == 0)
        return;
    for (size_t i = 0; i < t->n_checked; i++)
        if (strcmp(t->checked[i], name) == 0)
            return;
    t->checked = xrealloc(t->checked, (t->n_checked + 1) * sizeof(char *));
    t->checked[t->n_checked++] = xstrdup(name);
}

static void add_queue(struct topology *t, struct topo_queue q)
{
    t->queues = xrealloc(t->queues, (t->n_queues + 1) * sizeof(*t->queues));
    t->queues[t->n_queues++] = q;
}

static void add_binding(struct topology *t, const char *exchange, const char *queue,
                        const char *key)
{
    t->bindings = xrealloc(t->bindings, (t->n_bindings + 1) * sizeof(*t->bindings));
    t->bindings[t->n_bindings++] =
        (struct topo_binding){xstrdup(exchange), xstrdup(queue), xstrdup(key)};
}

char *topology_retry_queue(const char *queue, size_t step)
{
    return xasprintf("%s.retry.%zu", queue, step);
}

static void add_inbound_route(struct topology *t, const struct route *r)
{
    add_exchange(t, r->dlx);
    bool quorum = r->queue_type && strcmp(r->queue_type, "quorum") == 0;
    add_queue(t,
              (struct topo_queue){
                  .name = xstrdup(r->dlq), .quorum = quorum, .owner = r->name, .role = QUEUE_DLQ});
    add_binding(t, r->dlx, r->dlq, r->dlq_key);
    add_checked(t, r->exchange);
    if (r->cursor_queue) /* reached through the default exchange: no binding */
        add_queue(t, (struct topo_queue){.name = xstrdup(r->cursor_queue),
                                         .quorum = quorum,
                                         .max_length = 1,
                                         .owner = r->name,
                                         .role = QUEUE_CURSOR});
}

static void add_outbound_route(struct topology *t, const struct route *r)
{
    bool quorum = r->queue_type && strcmp(r->queue_type, "quorum") == 0;
    add_exchange(t, r->dlx);
    add_queue(t, (struct topo_queue){.name = xstrdup(r->queue),
                                     .quorum = quorum,
                                     .dlx = xstrdup(r->dlx),
                                     .dlk = xstrdup(r->queue),
                                     .single_active = r->ordered,
                                     .owner = r->name});
    if (!r->ordered) {
        /* Ordered routes retry in place (the line must not be overtaken). */
        for (size_t i = 0; i < r->retry_delays.n; i++)
            add_queue(t,
                      (struct topo_queue){.name = topology_retry_queue(r->queue, i + 1),
                                          .quorum = quorum,
                                          .ttl_ms = (int64_t)llround(r->retry_delays.v[i] * 1000),
                                          .dlx = xstrdup(""),
                                          .dlk = xstrdup(r->queue),
                                          .owner = r->name,
                                          .role = QUEUE_RETRY});
    }
    add_queue(t,
              (struct topo_queue){
                  .name = xstrdup(r->dlq), .quorum = quorum, .owner = r->name, .role = QUEUE_DLQ});
    add_binding(t, r->dlx, r->dlq, r->dlq_key);
}

struct topology *topology_for_inbound(const struct sidecar_config *cfg)
{
    struct topology *t = xcalloc(1, sizeof(*t));
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i]->direction == ROUTE_INBOUND)
            add_inbound_route(t, cfg->routes[i]);
    return t;
}

struct topology *topology_for_route(const struct sidecar_config *cfg, const struct route *r)
{
    (void)cfg;
    struct topology *t = xcalloc(1, sizeof(*t));
    add_outbound_route(t, r);
    return t;
}

struct topology *topology_for_config(const struct sidecar_config *cfg)
{
    struct topology *t = xcalloc(1, sizeof(*t));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (cfg->routes[i]->direction == ROUTE_INBOUND)
            add_inbound_route(t, cfg->routes[i]);
        else
            add_outbound_route(t, cfg->routes[i]);
    }
    return t;
}

void topology_free(struct topology *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_exchanges; i++)
        free(t->exchanges[i]);
    for (size_t i = 0; i < t->n_checked; i++)
        free(t->checked[i]);
    for (size_t i = 0; i < t->n_queues; i++) {
        free(t->queues[i].name);
        free(t->queues[i].dlx);
        free(t->queues[i].dlk);
    }
    for (size_t i = 0; i < t->n_bindings; i++) {
        free(t->bindings[i].exchange);
        free(t->bindings[i].queue);
        free(t->bindings[i].key);
    }
    free(t->exchanges);
    free(t->checked);
    free(t->queues);
    free(t->bindings);
    free(t);
}

/* ---- definitions JSON ------------------------------------------------------ */

static json_t *queue_arguments_json(const struct topo_queue *q)
{
    json_t *args = json_object();
    json_object_set_new(args, "x-queue-type", json_string(q->quorum ? "quorum" : "classic"));
    if (q->dlx != NULL)
        json_object_set_new(args, "x-dead-letter-exchange", json_string(q->dlx));
    if (q->dlk != NULL)
        json_object_set_new(args, "x-dead-letter-routing-key", json_string(q->dlk));
    if (q->ttl_ms > 0)
        json_object_set_new(args, "x-message-ttl", json_integer(q->ttl_ms));
    if (q->single_active)
        json_object_set_new(args, "x-single-active-consumer", json_true());
    if (q->max_length > 0) {
        json_object_set_new(args, "x-max-length", json_integer(q->max_length));
        json_object_set_new(args, "x-overflow", json_string("drop-head"));
    }
    if (q->quorum && q->dlx != NULL) {
        json_object_set_new(args, "x-dead-letter-strategy", json_string("at-least-once"));
        json_object_set_new(args, "x-overflow", json_string("reject-publish"));
    }
    if (q->quorum)
        json_object_set_new(args, "x-delivery-limit", json_integer(TOPOLOGY_DELIVERY_LIMIT));
    return args;
}

char *topology_definitions_json(const struct topology *t, const char *vhost)
{
    json_t *root = json_object();
    json_t *exchanges = json_array();
    for (size_t i = 0; i < t->n_exchanges; i++)
        json_array_append_new(exchanges, json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:{}}", "name",
                                                   t->exchanges[i], "vhost", vhost, "type",
                                                   "direct", "durable", 1, "auto_delete", 0,
                                                   "internal", 0, "arguments"));
    json_t *queues = json_array();
    for (size_t i = 0; i < t->n_queues; i++)
        json_array_append_new(queues,
                              json_pack("{s:s, s:s, s:b, s:b, s:o}", "name", t->queues[i].name,
                                        "vhost", vhost, "durable", 1, "auto_delete", 0, "arguments",
                                        queue_arguments_json(&t->queues[i])));
    json_t *bindings = json_array();
    for (size_t i = 0; i < t->n_bindings; i++)
        json_array_append_new(bindings,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}}", "source",
                                        t->bindings[i].exchange, "vhost", vhost, "destination",
                                        t->bindings[i].queue, "destination_type", "queue",
                                        "routing_key", t->bindings[i].key, "arguments"));
    json_object_set_new(root, "exchanges", exchanges);
    json_object_set_new(root, "queues", queues);
    json_object_set_new(root, "bindings", bindings);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

/* ---- declaring ------------------------------------------------------------- */

/* The server's text of a failed RPC, e.g. "PRECONDITION_FAILED - inequivalent arg …". */
static void reply_text(amqp_rpc_reply_t reply, char *out, size_t n)
{
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *c = reply.reply.decoded;
        snprintf(out, n, "%.*s", (int)c->reply_text.len, (char *)c->reply_text.bytes);
    } else if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
               reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *c = reply.reply.decoded;
        snprintf(out, n, "%.*s", (int)c->reply_text.len, (char *)c->reply_text.bytes);
    } else if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        snprintf(out, n, "%s", amqp_error_string2(reply.library_error));
    } else {
        snprintf(out, n, "unexpected reply");
    }
}

static bool channel_closed_by(amqp_rpc_reply_t reply, int code)
{
    if (reply.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
        reply.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
        return false;
    return ((amqp_channel_close_t *)reply.reply.decoded)->reply_code == code;
}

/* After the server closed channel ch: acknowledge and open it again. */
static int channel_reopen(amqp_connection_state_t conn, amqp_channel_t ch)
{
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK)
        return -1;
    amqp_channel_open(conn, ch);
    return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

static void queue_arguments_amqp(const struct topo_queue *q, amqp_table_entry_t *e, int *n)
{
    *n = 0;
    e[(*n)++] =
        (amqp_table_entry_t){amqp_cstring_bytes("x-queue-type"),
                             {.kind = AMQP_FIELD_KIND_UTF8,
                              .value.bytes = amqp_cstring_bytes(q->quorum ? "quorum" : "classic")}};
    if (q->dlx != NULL)
        e[(*n)++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-dead-letter-exchange"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(q->dlx)}};
    if (q->dlk != NULL)
        e[(*n)++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-dead-letter-routing-key"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(q->dlk)}};
    if (q->ttl_ms > 0)
        e[(*n)++] = (amqp_table_entry_t){amqp_cstring_bytes("x-message-ttl"),
                                         {.kind = AMQP_FIELD_KIND_I64, .value.i64 = q->ttl_ms}};
    if (q->single_active)
        e[(*n)++] = (amqp_table_entry_t){amqp_cstring_bytes("x-single-active-consumer"),
                                         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}};
    if (q->max_length > 0) {
        e[(*n)++] = (amqp_table_entry_t){amqp_cstring_bytes("x-max-length"),
                                         {.kind = AMQP_FIELD_KIND_I64, .value.i64 = q->max_length}};
        e[(*n)++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-overflow"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("drop-head")}};
    }
    if (!q->quorum || q->legacy_args)
        return;
    if (q->dlx != NULL) {
        e[(*n)++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-dead-letter-strategy"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("at-least-once")}};
        e[(*n)++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-overflow"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("reject-publish")}};
    }
    e[(*n)++] =
        (amqp_table_entry_t){amqp_cstring_bytes("x-delivery-limit"),
                             {.kind = AMQP_FIELD_KIND_I64, .value.i64 = TOPOLOGY_DELIVERY_LIMIT}};
}

static void fix_hint(struct buf *out, const struct topo_queue *q, const char *vhost)
{
    buf_printf(out,
               "quorum queue \"%s\" exists without at-least-once dead-lettering or with other "
               "arguments than this config gives it; RabbitMQ may drop messages it moves "
               "between the retry and work queues while a node fails. Fix in place: rabbitmqctl "
               "set_policy -p %s --apply-to quorum_queues sidecar-safe-dl '^%s$' "
               "'{\"dead-letter-strategy\":\"at-least-once\",\"overflow\":\"reject-publish\","
               "\"delivery-limit\":%d}', or drain and delete it so the sidecar re-creates it",
               q->name, vhost, q->name, TOPOLOGY_DELIVERY_LIMIT);
}

/* 0 declared, 1 unavailable now (skipped, warned), -1 error. */
static int declare_queue(amqp_connection_state_t conn, amqp_channel_t ch,
                         const struct topo_queue *q, const char *vhost, bool *fatal, char *err,
                         size_t errlen)
{
    amqp_table_entry_t entries[10];
    int n;
    queue_arguments_amqp(q, entries, &n);
    amqp_table_t args = {.num_entries = n, .entries = entries};
    amqp_queue_declare(conn, ch, amqp_cstring_bytes(q->name), 0, 1, 0, 0, args);
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char text[512];
    reply_text(reply, text, sizeof(text));
    if (channel_closed_by(reply, AMQP_NOT_FOUND) && channel_reopen(conn, ch) == 0) {
        /* A classic queue whose cluster node is down: carry on without it
         * (what needs it fails and says so) rather than lose the connection. */
        log_warn(q->owner,
                 "queue \"%s\" is unavailable (broker: %s); continuing without it until its "
                 "node returns — use queue_type = \"quorum\" on clusters",
                 q->name, text);
        return 1;
    }
    if (channel_closed_by(reply, AMQP_PRECONDITION_FAILED) && q->quorum && !q->legacy_args &&
        channel_reopen(conn, ch) == 0) {
        /* Perhaps declared by an older sidecar, without the safety arguments. */
        struct topo_queue older = *q;
        older.legacy_args = true;
        int rc = declare_queue(conn, ch, &older, vhost, fatal, err, errlen);
        if (rc == 0) {
            struct buf why = {0};
            fix_hint(&why, q, vhost);
            log_warn(q->owner,
                     "%s (this line stays after the policy: a queue's own arguments "
                     "cannot change)",
                     why.data);
            buf_free(&why);
        }
        return rc;
    }
    if (channel_closed_by(reply, AMQP_PRECONDITION_FAILED)) {
        *fatal = true;
        snprintf(err, errlen,
                 "route \"%s\": queue \"%s\" already exists on vhost \"%s\" with other arguments "
                 "(broker: %s). The sidecar needs it as%s%s%s%s%s%s. Fix: move its messages "
                 "elsewhere, delete it (rabbitmqctl delete_queue %s) and restart the sidecar so "
                 "it re-creates it, or change the route's config back to match",
                 q->owner, q->name, vhost, text, q->quorum ? " quorum" : " classic",
                 q->dlx ? ", dead-lettering to \"" : "", q->dlx ? q->dlx : "", q->dlx ? "\"" : "",
                 q->ttl_ms ? ", with a message TTL" : "",
                 q->single_active ? ", single active consumer" : "", q->name);
    } else if (channel_closed_by(reply, AMQP_ACCESS_REFUSED)) {
        *fatal = true;
        snprintf(err, errlen,
                 "route \"%s\": not allowed to declare queue \"%s\" on vhost \"%s\" (broker: %s); "
                 "grant the sidecar's user configure permission on it",
                 q->owner, q->name, vhost, text);
    } else {
        snprintf(err, errlen, "declaring queue \"%s\": %s", q->name, text);
    }
    return -1;
}

int topology_check_quorum(amqp_connection_state_t conn, amqp_channel_t ch, const struct topology *t,
                          const char *vhost, struct buf *warnings, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->n_queues; i++) {
        const struct topo_queue *q = &t->queues[i];
        if (!q->quorum)
            continue;
        amqp_queue_declare(conn, ch, amqp_cstring_bytes(q->name), 1, 0, 0, 0, amqp_empty_table);
        amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
        bool exists = reply.reply_type == AMQP_RESPONSE_NORMAL;
        if (!exists && !(channel_closed_by(reply, AMQP_NOT_FOUND) && channel_reopen(conn, ch) == 0))
            goto broken;
        if (!exists)
            continue;
        amqp_table_entry_t entries[10];
        int n;
        queue_arguments_amqp(q, entries, &n);
        amqp_queue_declare(conn, ch, amqp_cstring_bytes(q->name), 0, 1, 0, 0,
                           (amqp_table_t){.num_entries = n, .entries = entries});
        reply = amqp_get_rpc_reply(conn);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL)
            continue;
        if (!(channel_closed_by(reply, AMQP_PRECONDITION_FAILED) && channel_reopen(conn, ch) == 0))
            goto broken;
        if (warnings->len)
            buf_puts(warnings, "\n");
        fix_hint(warnings, q, vhost);
    }
    return 0;
broken:
    snprintf(err, errlen, "checking the quorum queues' arguments broke the channel");
    return -1;
}

int topology_declare(amqp_connection_state_t conn, amqp_channel_t ch, const struct topology *t,
                     const char *vhost, bool *fatal, char *err, size_t errlen)
{
    char text[512];
    *fatal = false;
    for (size_t i = 0; i < t->n_exchanges; i++) {
        amqp_exchange_declare(conn, ch, amqp_cstring_bytes(t->exchanges[i]),
                              amqp_cstring_bytes("direct"), 0, 1, 0, 0, amqp_empty_table);
        amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            reply_text(reply, text, sizeof(text));
            *fatal = channel_closed_by(reply, AMQP_PRECONDITION_FAILED);
            snprintf(err, errlen, "declaring exchange \"%s\" on vhost \"%s\": %s%s",
                     t->exchanges[i], vhost, text,
                     *fatal ? "; it exists with another type: the sidecar needs a durable "
                              "direct exchange of that name"
                            : "");
            return -1;
        }
    }
    bool skipped[t->n_queues + 1];
    for (size_t i = 0; i < t->n_queues; i++) {
        int rc = declare_queue(conn, ch, &t->queues[i], vhost, fatal, err, errlen);
        if (rc < 0)
            return -1;
        skipped[i] = rc > 0;
    }
    for (size_t i = 0; i < t->n_bindings; i++) {
        const struct topo_binding *b = &t->bindings[i];
        bool unavailable = false;
        for (size_t q = 0; q < t->n_queues; q++)
            unavailable = unavailable || (skipped[q] && strcmp(t->queues[q].name, b->queue) == 0);
        if (unavailable)
            continue;
        amqp_queue_bind(conn, ch, amqp_cstring_bytes(b->queue), amqp_cstring_bytes(b->exchange),
                        amqp_cstring_bytes(b->key), amqp_empty_table);
        amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            reply_text(reply, text, sizeof(text));
            snprintf(err, errlen, "binding \"%s\" to \"%s\" with key \"%s\": %s", b->queue,
                     b->exchange, b->key, text);
            return -1;
        }
    }

    /* Passive checks: report every missing exchange, not just the first. */
    struct buf missing = {0};
    for (size_t i = 0; i < t->n_checked; i++) {
        amqp_exchange_declare(conn, ch, amqp_cstring_bytes(t->checked[i]), amqp_empty_bytes, 1, 0,
                              0, 0, amqp_empty_table);
        amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL)
            continue;
        if (!channel_closed_by(reply, AMQP_NOT_FOUND)) {
            reply_text(reply, text, sizeof(text));
            snprintf(err, errlen, "checking exchange \"%s\": %s", t->checked[i], text);
            buf_free(&missing);
            return -1;
        }
        buf_printf(&missing, "%s\"%s\"", missing.len ? ", " : "", t->checked[i]);
        if (channel_reopen(conn, ch) != 0) {
            snprintf(err, errlen, "reopening channel after a passive check failed");
            buf_free(&missing);
            return -1;
        }
    }
    if (missing.len) {
        *fatal = true;
        snprintf(err, errlen,
                 "exchange %s does not exist on vhost \"%s\"; the RabbitMQ admin owns the "
                 "exchanges routes publish to: declare it (e.g. rabbitmqadmin declare exchange "
                 "name=… type=topic durable=true) or fix exchange= in the config",
                 missing.data, vhost);
        buf_free(&missing);
        return -1;
    }
    return 0;
}
