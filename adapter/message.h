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

#include <stdbool.h>
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

/* The correlation id to pass on to a legacy system: for an rpc request, its
 * caller's own (header x-correlation-id: the AMQP correlation_id is then the
 * requester's call id, see publisher.h), else the message's. */
const char *message_caller_correlation_id(const struct message *m);

/*
 * Bounds before encoding. AMQP short strings (exchange, routing key, content
 * type, ids, reply_to, header names) hold at most 255 bytes, and all the
 * properties travel in one content-header frame. rabbitmq-c writes the
 * publish method before it encodes the properties, so a value it cannot
 * encode leaves a half-sent publish on the socket and the connection is
 * lost for every message in flight on it: every message is checked here,
 * where it is still one caller's problem.
 */
#define MESSAGE_SHORTSTR_MAX 255
#define MESSAGE_PROPERTIES_MAX                                                                     \
    65536 /* our budget for properties + headers (frames are 128 KiB)                              \
           */

/* Is s usable as a short string (NULL is: the property is unset)? */
bool message_shortstr_ok(const char *s);
/* Is s a plausible media type for content_type: 1..255 printable ASCII bytes? */
bool message_content_type_ok(const char *s);
/* 0 when m can be published (every bound above holds); else -1 with why. */
int message_check(const struct message *m, char *why, size_t whylen);

#endif
