/*
 * amqp_message — convert a received rabbitmq-c message into a `struct
 * message` (strings only). Used by the consumer for deliveries and by the
 * publisher for rpc replies; only broker-side files include it.
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

#endif
