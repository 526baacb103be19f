/*
 * route — the registry of kinds and the keys every route shares.
 *
 * To add a kind: write adapter/kinds/<kind>_<in|out>.c ending in a
 * `const struct route_kind kind_<kind>_<in|out>`, and list it below.
 */
#include "route.h"

#include "util.h"

#include <stddef.h>
#include <string.h>

extern const struct route_kind kind_http_in, kind_http_out, kind_file_in, kind_file_out,
    kind_soap_in, kind_soap_out, kind_poll_in;

/* Every kind, in the order `keys` and the README list them. */
static const struct route_kind *const registry[] = {
    &kind_http_in, &kind_http_out, &kind_file_in, &kind_file_out,
    &kind_soap_in, &kind_soap_out, &kind_poll_in, NULL,
};

const struct route_kind *const *route_kinds(void)
{
    return registry;
}

const struct route_kind *route_kind_find(enum route_direction direction, const char *name)
{
    for (const struct route_kind *const *k = route_kinds(); *k; k++)
        if ((*k)->direction == direction && strcmp((*k)->name, name) == 0)
            return *k;
    return NULL;
}

const char *route_direction_name(enum route_direction direction)
{
    return direction == ROUTE_INBOUND ? "inbound" : "outbound";
}

#define R(field) offsetof(struct route, field)

const struct config_key route_common_keys[] = {
    {"name", KEY_NAME, R(name), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "the route's name, unique in the file; used in queue names, logs and metrics"},
    {"kind", KEY_STRING, R(kind_name), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "how the route talks to the legacy side: http, soap, file, poll"},
    {"transform", KEY_FILE, R(transform_file), 0, NULL, NULL, 0, 0, NULL,
     "jq program applied to each JSON body (path relative to the config file)"},
    {"pass_headers", KEY_STRINGS, R(pass_headers), 0, NULL, NULL, 0, 0, NULL,
     "HTTP headers copied to AMQP headers (inbound) or back (outbound); nothing else crosses"},
    {0},
};

const struct config_key route_inbound_keys[] = {
    {"exchange", KEY_STRING, R(exchange), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "exchange to publish to (owned by the RabbitMQ admin; checked at start)"},
    {"routing_key", KEY_STRING, R(routing_key), 0, "", NULL, 0, 0, NULL,
     "routing key; may hold placeholders such as {header.NAME}, {json.FIELD}, {path}"},
    {"queue_type", KEY_ENUM, R(queue_type), 0, "classic", "classic|quorum", 0, 0, NULL,
     "type of the route's dead-letter queue; quorum keeps it available on a cluster"},
    {0},
};

static const struct config_key retry_keys[] = {
    {"delays", KEY_NUMBERS, R(retry_delays), 0, "1,5,30,120", NULL, 0.001, 604800, NULL,
     "seconds to wait before each retry; after the last, the message is dead-lettered"},
    {0},
};

static const struct config_key circuit_keys[] = {
    {"failures", KEY_INT, R(circuit_failures), 0, "5", NULL, 0, 1000000, NULL,
     "consecutive retryable failures that open the circuit (0 = never)"},
    {"cooldown", KEY_NUMBER, R(circuit_cooldown), 0, "30", NULL, 0.01, 86400, NULL,
     "seconds the circuit stays open before one probe delivery is let through"},
    {0},
};

const struct config_key route_outbound_keys[] = {
    {"queue", KEY_STRING, R(queue), 0, NULL, NULL, 0, 0, NULL,
     "queue to consume; default \"<name>.<route>\"; declared by the sidecar"},
    {"queue_type", KEY_ENUM, R(queue_type), 0, "classic", "classic|quorum", 0, 0, NULL,
     "quorum makes the queue and its retry/dead-letter queues quorum queues"},
    {"concurrency", KEY_INT, R(concurrency), 0, "8", NULL, 1, 1024, NULL,
     "deliveries handled at once (the prefetch)"},
    {"ordered", KEY_BOOL, R(ordered), 0, "false", NULL, 0, 0, NULL,
     "strict order: single active consumer, one delivery at a time, retries block the line"},
    {"retry", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, retry_keys, "retry ladder"},
    {"circuit", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, circuit_keys, "circuit breaker"},
    {0},
};

static const struct config_key rate_keys[] = {
    {"per_second", KEY_NUMBER, R(rate.per_second), 0, NULL, NULL, 0.001, 100000, NULL,
     "legacy calls a second at most (a token bucket; or per_minute, not both)"},
    {"per_minute", KEY_NUMBER, R(rate.per_minute), 0, NULL, NULL, 0.001, 6000000, NULL,
     "legacy calls a minute at most, for APIs whose quota is per minute"},
    {"burst", KEY_INT, R(rate.burst), 0, NULL, NULL, 1, 1000000, NULL,
     "calls that may go at once after a quiet spell; default max(1, ceil(calls a second))"},
    {0},
};

const struct config_key route_rate_keys[] = {
    {"rate", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, rate_keys,
     "pace legacy calls; a 429/503 with Retry-After pauses the whole route"},
    {0},
};

const struct config_key route_lease_keys[] = {
    {"lease", KEY_BOOL, R(lease), 0, "false", NULL, 0, 0, NULL,
     "high availability: run only while this sidecar holds the broker lease "
     "\"<name>.<route>.lease\", so of several sidecars with this config exactly one runs the "
     "route (poll: the cursor is kept in \"<name>.<route>.cursor\" too)"},
    {0},
};

void route_describe_rate(const struct route *r, struct buf *out)
{
    const struct rate_config *rc = &r->rate;
    if (rc->rate <= 0)
        return;
    if (rc->per_minute > 0)
        buf_printf(out, ", rate %g/min burst %d", rc->per_minute, rc->burst);
    else
        buf_printf(out, ", rate %g/s burst %d", rc->per_second, rc->burst);
}
