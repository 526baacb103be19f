/*
 * inbound — what every inbound kind does the same way: build the message
 * DESIGN.md specifies (ids, timestamp, app_id, traceparent, pass_headers),
 * resolve routing-key placeholders, and submit it to the shared publisher.
 */
#ifndef SIDECAR_INBOUND_H
#define SIDECAR_INBOUND_H

#include "publisher.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct message;
struct route;

struct inbound_ids {
    const char *message_id;     /* NULL: a new UUID */
    const char *correlation_id; /* NULL: a new UUID */
    const char *traceparent;    /* NULL: none */
};

/* A new message for r: exchange, content type, ids, timestamp; takes body. */
struct message *inbound_message(const struct route *r, char *body, size_t len,
                                const char *content_type, const struct inbound_ids *ids);

/* Submits m (taken) for r; counts it. Same contract as publisher_submit. */
int inbound_publish(struct route *r, struct message *m, bool rpc, double rpc_timeout,
                    publish_done_fn done, void *arg, const char **why);

/* The text of the scalar at a dotted path ("customer.id") in root into out;
 * NULL with why when missing or not a scalar. */
const char *inbound_json_path(json_t *root, const char *path, char *out, size_t n, char *why,
                              size_t whylen);

/* The value of a routing-key placeholder "json.<path>" (name as it stands
 * between the braces) in root, written into buf: inbound_json_path's answer.
 * NULL with why left alone when name is not "json.…" (the caller's lookup
 * goes on or reports no value); NULL with why = not_json ("the body is not
 * JSON") when root is NULL. root is borrowed. */
const char *inbound_json_placeholder(json_t *root, const char *name, const char *not_json,
                                     char *buf, size_t n, char *why, size_t whylen);

/* Routes served by the shared HTTP server: registers `path` on the server for
 * `listen` with its tls (NULL: plain HTTP; refusal may be NULL) and, for rpc,
 * readies the publisher for replies. Called from a kind's start. 0, or -1 with err. */
struct http_request;
struct listen_tls_config;
int inbound_serve_http(struct route *r, const char *listen, const struct listen_tls_config *tls,
                       const char *path, size_t max_body,
                       void (*handler)(struct http_request *, void *),
                       char *(*refusal)(void *, int *, const char *, const char **, size_t *),
                       bool rpc, char *err, size_t errlen);

/* The route's routing key for one message: its template expanded through
 * lookup (template.h) and checked against AMQP's 255-byte limit. Caller frees;
 * NULL with err ("placeholder {json.x} has no value", "… 300 bytes …"). */
char *inbound_routing_key(const struct route *r,
                          const char *(*lookup)(void *, const char *, char *, size_t), void *arg,
                          char *err, size_t errlen);

/* Is v a W3C traceparent we can pass on? (Others are dropped, never published.) */
bool inbound_traceparent_ok(const char *v);

/* A message id from a client (Idempotency-Key) is usable if short and printable. */
bool inbound_id_acceptable(const char *id);

/* Can text go into an AMQP content_type as is: 1 to 255 bytes (a shortstr),
 * printable ASCII, shaped like a media type — type "/" subtype, then
 * "; name=value" parameters (RFC 9110 tokens, values tokens or quoted)? true,
 * or false with why (a phrase: "is 300 bytes; AMQP allows 255"). */
bool inbound_media_type_valid(const char *text, char *why, size_t whylen);

/* Is this media type JSON ("application/json", "…+json"; parameters ignored)? */
bool inbound_is_json(const char *content_type);
/* Does content_type's media type equal `want` (case-insensitive, parameters ignored)? */
bool inbound_media_type_is(const char *content_type, const char *want);

#endif
