/*
 * http_front — what the HTTP inbound kinds (http, soap) share: their common
 * keys (struct http_front_config: checks, endpoint, start) and the request's
 * life after the kind made its message: publish (event, or rpc with a
 * timeout), wait suspended, answer exactly once. The front picks the outcome;
 * the kind's table of answers says what it looks like on the wire (JSON, SOAP).
 * Ownership: http_front_publish takes the message and owns its copy of the
 * request (and the ids) until the answer is sent.
 */
#ifndef SIDECAR_HTTP_FRONT_H
#define SIDECAR_HTTP_FRONT_H

#include "config.h"
#include "http_auth.h"
#include "log.h"
#include "spool.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct config_report;
struct header;
struct http_endpoint;
struct http_request;
struct message;
struct route;
struct sidecar_config;

/* The config's mode = "event" | "rpc", resolved once by the kind's validate. */
enum http_front_mode {
    HTTP_FRONT_EVENT, /* answer once the broker confirmed */
    HTTP_FRONT_RPC,   /* wait for the reply message and answer with it */
};
/* "rpc" → HTTP_FRONT_RPC; anything else (the key table already refused it) → event. */
enum http_front_mode http_front_mode_of(const char *name);

/* The keys every HTTP inbound route has: the kind's opts embed this as `front`
 * and its key table points into it (O(front.listen), …), each with its own
 * wording. Strings belong to the config, like every key's. */
struct http_front_config {
    char *listen;
    char *path;
    int max_body;
    char *mode_name;           /* the key's text: "event" | "rpc" */
    enum http_front_mode mode; /* what http_front_validate made of it */
    double timeout;
    int retry_after;
    struct http_auth auth;
    struct listen_tls_config tls; /* the listener's (listen_tls.h); shared by its routes */
    char *message_id_from;        /* "json.<path>" | "header.<Name>", or NULL */
    struct spool_config spool;    /* spool.h; dir NULL: none */
};

/* The key rows both kinds share, with the kind's wording where it differs. */
#define HTTP_FRONT_TLS_KEY(offset)                                                                 \
    {                                                                                              \
        "tls", KEY_GROUP, offset, KEY_GROUP_LINE, NULL, NULL, 0, 0, listen_tls_keys,               \
            "HTTPS on listen (and with client_ca, mutual TLS); every route on one listen address " \
            "must "                                                                                \
            "have the same tls"                                                                    \
    }

/* The kind's validate calls this first: resolves c->mode and reports a path
 * without '/', a routing_key using placeholders other than `placeholders`
 * (key_hint, "" or " (… know …)", is appended), bad auth, a max_body above
 * broker.max_message, a tls that does not load, and a message_id_from that
 * is not one of id_sources ("json." and/or "header.") followed by a name. */
void http_front_validate(struct route *r, const struct sidecar_config *cfg,
                         struct http_front_config *c, const char *const *placeholders,
                         const char *key_hint, const char *const *id_sources,
                         struct config_report *rep);

/* The message id of req, by precedence: the Idempotency-Key header; else what
 * c->message_id_from names — a field of json (the body as the sender sent it,
 * parsed; borrowed; NULL when it is not JSON) or a request header; else
 * `fallback` (the signature scheme's id, e.g. webhook-id; may be NULL).
 * Whichever applies must be 1 to 255 printable characters; when
 * message_id_from is set and names nothing, that is the sender's error too (a
 * silent UUID would defeat deduplication). true with *id (NULL: none, make a
 * UUID; may point into buf), or false with why: the words of a 400. */
bool http_front_message_id(const struct http_front_config *c, const struct http_request *req,
                           json_t *json, const char *fallback, const char **id, char *buf, size_t n,
                           char *why, size_t whylen);

/* For describe: "http" or "https", and ", client certificates" or "". */
const char *http_front_scheme(const struct http_front_config *c);
const char *http_front_mutual(const struct http_front_config *c);
/* The kind's spools: the route has a spool with room, so it takes requests while the
 * broker is away (ready, in /readyz's terms). */
bool http_front_spools(struct route *r);

/* For describe: ", spool" when the route spools, or "". */
const char *http_front_spool(const struct http_front_config *c);

/* The route's endpoint, for the clash checks (route_kind.endpoint). */
bool http_front_endpoint(const struct http_front_config *c, struct http_endpoint *out);

/* Serves c->path on c->listen's shared server with handler (refusal may be
 * NULL: httpd.h's http_refusal_fn), arg r; readies rpc. The kind's start. */
int http_front_serve(struct route *r, const struct http_front_config *c,
                     void (*handler)(struct http_request *, void *),
                     char *(*refusal)(void *, int *, const char *, const char **, size_t *),
                     char *err, size_t errlen);

/* The kind's drain, stop and ready for a route that may spool (route->state
 * holds its spool): stop forwarding; stop the spool; add its figures. */
void http_front_drain(struct route *r);
void http_front_stop(struct route *r);
bool http_front_ready(struct route *r, struct buf *detail);

struct http_front_answers;

/* One request between the handler and its answer. The kind fills the fields
 * above the ids; the front fills (and owns) the ids. */
struct http_front_request {
    struct route *route;
    struct http_request *req;
    const struct http_front_answers *answers;
    bool rpc;        /* this request waits for a reply message */
    double timeout;  /* rpc: seconds to wait for it */
    int retry_after; /* seconds in the Retry-After of a 503 */
    int version;     /* the kind's own: soap answers in the request's enum soap_version */
    char *message_id;
    char *correlation_id;
};

/* How a kind answers each outcome. Every callback answers p->req exactly once
 * and logs what it answered; p and its strings are valid during the call only.
 * Called on the publisher's thread, or on the handler's for a refusal at submit. */
struct http_front_answers {
    /* Event mode (or a request that waits for nothing): confirmed; routed is
     * false when no binding matched and the message was parked in the DLQ. */
    void (*accepted)(const struct http_front_request *p, bool routed);
    /* rpc: no binding matched, so no one will reply (the front logged it). */
    void (*unroutable)(const struct http_front_request *p);
    /* rpc: the reply (borrowed; NULL if the broker confirmed without one). */
    void (*rpc_reply)(const struct http_front_request *p, const struct message *reply);
    /* rpc: confirmed, but no reply within p->timeout. */
    void (*rpc_timeout)(const struct http_front_request *p);
    /* The broker is down, blocked, full or refused it: a 503 with retry_after
     * (the Retry-After header); why says what happened. */
    void (*unavailable)(const struct http_front_request *p, const char *why,
                        const struct header *retry_after);
    /* The request cannot be carried as an AMQP message: a client error. */
    void (*invalid)(const struct http_front_request *p, const char *why);
    /* Event mode with a spool: the broker could not take it, the spool did (it
     * is on disk and will be forwarded). NULL: answered as accepted, routed. */
    void (*spooled)(const struct http_front_request *p);
};

/* Publishes m (taken) as how->route's message for how->req, and answers the
 * request through how->answers — at once when the publisher refuses, later
 * from its thread otherwise. how is copied. Handler thread. */
void http_front_publish(const struct http_front_request *how, struct message *m);

/* Copies the route's pass_headers present on req into m, names lower-cased. */
void http_front_pass_headers(const struct route *r, const struct http_request *req,
                             struct message *m);

/* The log context of p: route, message and correlation ids. */
struct log_ctx http_front_log_ctx(const struct http_front_request *p);

#endif
