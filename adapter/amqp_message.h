/*
 * amqp_message — convert a received rabbitmq-c message into a `struct
 * message` (strings only), and build the properties of what the consumer
 * sends back (a retry/dead-letter copy, a reply). Used by the consumer for
 * deliveries and by the publisher for rpc replies; only broker-side files
 * include it.
 */
#ifndef SIDECAR_AMQP_MESSAGE_H
#define SIDECAR_AMQP_MESSAGE_H

#include <amqp.h>

struct message;

/* A header value as text: strings as-is, numbers in decimal, booleans as
 * true/false; NULL for tables, arrays and other kinds. Caller frees. */
char *amqp_field_text(const amqp_field_value_t *v);

/* A new message with raw's body, properties and text-valued headers. */
struct message *amqp_message_convert(const amqp_message_t *raw);

/* The last gate before amqp_basic_publish (see message_check in message.h for
 * why): 0 when exchange, routing key and props can be encoded on a connection
 * whose frames are at most frame_max bytes; else -1 with why. Linear in the
 * size of the header table, nested tables included. */
int amqp_publish_check(amqp_bytes_t exchange, amqp_bytes_t routing_key,
                       const amqp_basic_properties_t *props, size_t frame_max, char *why,
                       size_t whylen);

/* The properties of a copy of raw (a retry or a dead letter): raw's own, made
 * persistent, with our three headers x-sidecar-error, x-sidecar-attempts and
 * x-sidecar-route in place of any earlier ones. Returns the header table the
 * caller frees once props is sent; every string stays borrowed (from raw and
 * the arguments). */
amqp_table_entry_t *amqp_copy_properties(const amqp_message_t *raw, const char *error, int attempts,
                                         const char *route, amqp_basic_properties_t *props);

/* The properties of a new message m: persistent, its content type, message id,
 * reply_to and timestamp (now when unset), correlation (the id to send:
 * the message's, or an rpc call id), app_id and header x-sidecar-route
 * unless m has one (when not NULL), and m's headers as strings. Returns the
 * header table the caller frees once props is sent; strings stay borrowed. */
amqp_table_entry_t *amqp_publish_properties(const struct message *m, const char *correlation,
                                            const char *app_id, const char *route,
                                            amqp_basic_properties_t *props);

/* The headers of a parked message: why, and where it was published (from the
 * basic.return, so already AMQP short strings), for `replay`. */
#define AMQP_PARK_ERROR       "x-sidecar-error"
#define AMQP_PARK_EXCHANGE    "x-sidecar-exchange"
#define AMQP_PARK_ROUTING_KEY "x-sidecar-routing-key"

/* The properties of a returned message parked in a DLQ: its own, with headers
 * x-sidecar-error = reason, x-sidecar-exchange and x-sidecar-routing-key (the
 * address it was returned from) in place of earlier ones. Returns the header
 * table the caller frees once props is sent; strings stay borrowed. */
amqp_table_entry_t *amqp_park_properties(const amqp_message_t *returned, const char *reason,
                                         amqp_bytes_t exchange, amqp_bytes_t routing_key,
                                         amqp_basic_properties_t *props);

/* The properties of reply to request: reply's text headers and content type,
 * persistent, request's correlation_id and message_id echoed, app_id set.
 * Returns the header table the caller frees once props is sent; every string
 * stays borrowed. */
amqp_table_entry_t *amqp_reply_properties(const struct message *reply,
                                          const struct message *request, const char *app_id,
                                          amqp_basic_properties_t *props);

#endif
