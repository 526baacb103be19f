/*
 * httpd — the shared HTTP server (libmicrohttpd) for http and soap inbound
 * routes and the admin endpoint.
 *
 * One server per listen address; several routes may share it by path. The
 * server reads the whole body (refusing more than the route's max_body with
 * 413 before reading it when Content-Length says so), then calls the route's
 * handler on the thread that runs the server: an event loop of ours (the
 * route listeners run in the publisher's, so a request is read, published,
 * confirmed and answered on one thread), or libmicrohttpd's own threads (the
 * admin listener). The handler answers with http_respond, either at once or
 * later from any thread (e.g. when the broker confirmed): the
 * connection is suspended meanwhile and resumed by the answer. Every request
 * handed to a handler must be answered exactly once.
 *
 * Limits (http_server_set_limits) keep one slow or hostile client from
 * starving the others: connections at once (more wait in the kernel's listen
 * backlog), connections at once from one address (more are closed at
 * accept), the time a whole request may take to arrive (read_timeout: from
 * accept, or from the request line on a kept-alive connection; then the
 * connection is closed), and the time a kept-alive connection may sit idle.
 * httpd_watch.c enforces the read deadline, which MHD cannot.
 *
 * A server may speak HTTPS (http_server_set_tls): MHD's GnuTLS support, in
 * the same loop or threads; the handshake happens before the request line, so
 * a client that fails it (plain HTTP, an unknown client certificate) is
 * closed without a request ever reaching a handler.
 */
#ifndef SIDECAR_HTTPD_H
#define SIDECAR_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

struct header;
struct listen_tls_config;
struct http_request;
struct http_server;
struct loop;

typedef void (*http_handler_fn)(struct http_request *req, void *arg);

/* Optional, per path: renders the refusals the server answers by itself for
 * that path before any handler runs (today only 413, body over max_body), so
 * a route can refuse in its own protocol (soap: a Fault). Gets the route's
 * arg and the request's Content-Type (may be NULL); may change *status.
 * Returns the body (malloc'd, the server frees it) with *content_type
 * (static) and *len, or NULL for the default JSON error. Server thread. */
typedef char *(*http_refusal_fn)(void *arg, int *status, const char *request_content_type,
                                 const char **content_type, size_t *len);

struct http_limits {
    unsigned max_connections; /* at once */
    unsigned max_per_ip;      /* at once from one client address; 0 = no limit */
    double read_timeout;      /* s: request line, headers and body must arrive within it */
    double idle_timeout;      /* s: a kept-alive connection waits this long for its next
                               * request; also MHD's inactivity timeout for slow readers */
};

/* A server for "host:port" (not yet listening), with HTTP_LIMITS_DEFAULT.
 * NULL with err if listen is bad. */
struct http_server *http_server_new(const char *listen, char *err, size_t errlen);
#define HTTP_LIMITS_DEFAULT                                                                        \
    ((struct http_limits){                                                                         \
        .max_connections = 1024, .max_per_ip = 0, .read_timeout = 10, .idle_timeout = 60})
/* Before http_server_start. */
void http_server_set_limits(struct http_server *s, const struct http_limits *limits);
const struct http_limits *http_server_limits(const struct http_server *s);
/* Before http_server_start: serve HTTPS with t's certificate and key (and with
 * client_ca, require a client certificate it issued, checked in the handshake;
 * see listen_tls.h). The files are read now. Every caller for one server must
 * give the same settings (config_load made sure): a caller with other ones, or
 * none after one with some, gets -1 with err. t (NULL or unconfigured: plain
 * HTTP) is borrowed for comparisons and must outlive s. 0, or -1 with err. */
int http_server_set_tls(struct http_server *s, const struct listen_tls_config *t, char *err,
                        size_t errlen);
/* Serve exact `path` (a trailing "*" matches a prefix) with fn. 0, or -1 if taken. */
int http_server_route(struct http_server *s, const char *path, size_t max_body, http_handler_fn fn,
                      void *arg);
/* Sets the refusal renderer of the route registered for path. 0, or -1 if none. */
int http_server_route_refusal(struct http_server *s, const char *path, http_refusal_fn fn);
const char *http_server_listen(const struct http_server *s);
/* Listen and serve: in loop (which must be running, or about to, on its own
 * thread; the server joins it by a post), or on threads of its own when loop
 * is NULL. In loop mode, stop the loop before http_server_free. */
int http_server_start(struct http_server *s, struct loop *loop, char *err, size_t errlen);
/* Any thread: stop accepting connections; requests already read still get answered. */
void http_server_quiesce(struct http_server *s);
/* Requests in flight, which drain waits for: those handed to their handler
 * whose answer is not yet completely sent (or the connection closed), and
 * uploads still making progress (bytes within the last HTTP_PROGRESS_MS).
 * An upload that stalled, or whose client half-closed or vanished, does not
 * count: it was never accepted, so closing it loses nothing, and the client
 * retries. Any thread. */
#define HTTP_PROGRESS_MS 2000
size_t http_server_active(const struct http_server *s);
void http_server_free(struct http_server *s); /* stops it */

/* ---- SIGHUP: routes come and go while the server runs (sidecar_inbound.c) ----
 * A route is known by the arg it was registered with. Its requests hold it:
 * one taken out of the table still finishes what it took, with its own
 * settings. Any thread. */
/* A route registered later for the same path replaces arg's, in one step. */
void http_server_route_leaving(struct http_server *s, void *arg);
/* arg's routes leave the table: new requests to their paths get 404. How many. */
size_t http_server_unroute(struct http_server *s, void *arg);
/* Requests of arg's routes in flight (as http_server_active counts them)? */
bool http_server_route_busy(struct http_server *s, void *arg);
/* arg's route stopped: a request of it whose body is complete only now gets
 * 503 (it was never accepted; the client retries) instead of its handler. */
void http_server_route_gone(struct http_server *s, void *arg);
/* Routes in the table. */
size_t http_server_n_routes(struct http_server *s);
bool http_server_started(const struct http_server *s);
/* Main thread, loop mode, the loop running, nothing dispatched (active 0):
 * stops listening and serving on the loop's thread (waits for it; open
 * connections close), then frees s. */
void http_server_close(struct http_server *s);

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
void http_respond(struct http_request *req, int status, const char *content_type, const char *body,
                  size_t len);
void http_respond_headers(struct http_request *req, int status, const char *content_type,
                          const char *body, size_t len, const struct header *headers,
                          size_t n_headers);
/* A small JSON error body {"error": "..."}. */
void http_respond_error(struct http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- local requests: `amqp-sidecar test` (route_test.c) ----------------------
 * A request that did not come from a socket: http_server_dispatch_local hands
 * it to the route registered for its path on s (which need not be started),
 * through the same checks a socket's request meets first (404 without a
 * route, 413 over max_body, in the route's words when it has a refusal
 * hook), and its answer goes to `answered` instead of a connection. Every
 * string and array of l is borrowed and must stay valid until answered has
 * run; answered runs exactly once, on whichever thread answers, and its
 * arguments are valid during the call only. */
struct http_local_request {
    const char *method;
    const char *path;
    const struct header *headers; /* looked up case-insensitively */
    size_t n_headers;
    const struct header *query; /* decoded values */
    size_t n_query;
    const char *body;
    size_t body_len;
    void (*answered)(void *arg, int status, const char *content_type, const char *body, size_t len,
                     const struct header *headers, size_t n_headers);
    void *arg;
};
void http_server_dispatch_local(struct http_server *s, const struct http_local_request *l);

#endif
