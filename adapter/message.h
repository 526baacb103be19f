/*
 * message — an AMQP message as the rest of the sidecar sees it: plain C
 * strings and a body, never rabbitmq-c types.
 *
 * Inbound kinds build one and hand it to the publisher (which takes
 * ownership); the consumer builds one per delivery for outbound kinds.
 * Header values are strings; numeric AMQP headers arrive as their decimal
 * text.
 */
#ifndef SIDECAR_MESSAGE_H
#define SIDECAR_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

struct header {
    char *name;
    char *value;
};

struct message {
    char *exchange;
    char *routing_key;
    char *content_type;
    char *message_id;
    char *correlation_id;
    char *reply_to;
    int64_t timestamp; /* seconds since the epoch; 0 = unset */
    struct header *headers;
    size_t n_headers;
    char *body; /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
};

struct message *message_new(void);
void message_free(struct message *m); /* NULL is fine */

/* Setters copy their arguments and replace an earlier value. */
void message_set(char **field, const char *value);
void message_set_body(struct message *m, const void *body, size_t len);
void message_take_body(struct message *m, char *body, size_t len); /* takes ownership */
void message_set_header(struct message *m, const char *name, const char *value);
const char *message_header(const struct message *m, const char *name); /* case-insensitive */

#endif
