/*
 * httpd — the shared HTTP server (libmicrohttpd) for http and soap inbound
 * routes and the admin endpoint.
 *
 * One server per listen address; several routes may share it by path. The
 * server reads the whole body (refusing more than the route's max_body with
 * 413 before reading it when Content-Length says so), then calls the route's
 * handler on a server thread. The handler answers with http_respond, either
 * at once or later from any thread (e.g. when the broker confirmed): the
 * connection is suspended meanwhile and resumed by the answer. Every request
 * handed to a handler must be answered exactly once.
 */
#ifndef SIDECAR_HTTPD_H
#define SIDECAR_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

struct http_server;
struct http_request;
struct header;

typedef void (*http_handler_fn)(struct http_request *req, void *arg);

/* Optional, per path: renders the refusals the server answers by itself for
 * that path before any handler runs (today only 413, body over max_body), so
 * a route can refuse in its own protocol (soap: a Fault). Gets the route's
 * arg and the request's Content-Type (may be NULL); may change *status.
 * Returns the body (malloc'd, the server frees it) with *content_type
 * (static) and *len, or NULL for the default JSON error. Server thread. */
typedef char *(*http_refusal_fn)(void *arg, int *status, const char *request_content_type,
                                 const char **content_type, size_t *len);

/* A server for "host:port" (not yet listening). NULL with err if listen is bad. */
struct http_server *http_server_new(const char *listen, char *err, size_t errlen);
/* Serve exact `path` (a trailing "*" matches a prefix) with fn. 0, or -1 if taken. */
int http_server_route(struct http_server *s, const char *path, size_t max_body, http_handler_fn fn,
                      void *arg);
/* Sets the refusal renderer of the route registered for path. 0, or -1 if none. */
int http_server_route_refusal(struct http_server *s, const char *path, http_refusal_fn fn);
const char *http_server_listen(const struct http_server *s);
int http_server_start(struct http_server *s, char *err, size_t errlen);
/* Stop accepting connections; requests already read still get answered. */
void http_server_quiesce(struct http_server *s);
/* Requests in flight: headers received, answer not yet completely sent (or the
 * connection closed). Drain waits for this to reach 0. Any thread. */
size_t http_server_active(const struct http_server *s);
void http_server_free(struct http_server *s); /* stops it */

/* Request accessors: valid until the request is answered. Header lookup is
 * case-insensitive; query values are decoded; NULL when absent. */
const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);
const char *http_request_header(const struct http_request *req, const char *name);
const char *http_request_query(const struct http_request *req, const char *name);
const char *http_request_body(const struct http_request *req, size_t *len);
bool http_request_has_query(const struct http_request *req);
/* Is query argument `name` present, with or without a value ("?wsdl")? */
bool http_request_has_query_key(const struct http_request *req, const char *name);

/* Answer req (any thread, exactly once); body is copied. */
void http_respond(struct http_request *req, int status, const char *content_type,
                  const char *body, size_t len);
void http_respond_headers(struct http_request *req, int status, const char *content_type,
                          const char *body, size_t len, const struct header *headers,
                          size_t n_headers);
/* A small JSON error body {"error": "..."}. */
void http_respond_error(struct http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
