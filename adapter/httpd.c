/*
 * httpd — requests: libmicrohttpd's callbacks and the answers (see httpd.h);
 * the server's life is httpd_server.c's, deadlines are httpd_watch.c's.
 *
 * MHD calls the access handler several times per request: once with the
 * headers, then with body chunks, then with none. We check the route, the
 * header count and Content-Length on the first call, gather the body
 * (bounded) on the next ones, and dispatch on the last. A response can only
 * be queued from inside the access handler, so an answer that comes later
 * (from the broker's confirm, on this thread or another) is stored and the
 * connection resumed; MHD then calls
 * the handler again and we queue it. `state` (under the request's lock)
 * settles the race between the handler returning and the answer arriving.
 *
 * Every connection is also known to the listener's watch (httpd_watch.c),
 * from MHD's connect notification to its close notification: the request
 * line, the headers, each body chunk, the dispatch and the completion move
 * it between reading, busy and idle, so the watch can enforce read_timeout
 * and find clients that went away, and drain can tell an upload that still
 * progresses from one that never will.
 *
 * Mutual TLS: MHD only asks for a client certificate, so at the connect
 * notification (before the handshake) we make the session require one and
 * verify it in the handshake (listen_tls.h); the first call of a request
 * checks again that the peer verified, and closes the connection if not.
 */
#include "httpd_internal.h"

#include "config.h"
#include "httpd_watch.h"
#include "listen_tls.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "util.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_HEADERS 100

enum req_state { REQ_READING, REQ_HANDLING, REQ_SUSPENDED, REQ_ANSWERED };

struct http_request {
    struct http_server *server;
    struct MHD_Connection *conn;
    struct http_conn *watched; /* the connection's watch entry (may be NULL) */
    struct http_route *route;  /* held (http_route_for) until request_free */
    bool reading;              /* counted in route->reading */
    char *method;
    char *path;
    struct buf body;
    bool too_large;
    bool dispatched; /* counted in the server's dispatched until on_completed */
    pthread_mutex_t lock;
    enum req_state state;
    struct MHD_Response *response;
    int status;
    const struct http_local_request *local; /* not from a socket (conn NULL): see httpd.h */
};

static const char *local_lookup(const struct header *h, size_t n, const char *name, bool any_case);
static void local_answer(struct http_request *req, int status, const char *content_type,
                         const char *body, size_t len, const struct header *headers,
                         size_t n_headers);

/* The watch entry of an MHD connection (its socket context). */
static struct http_conn *watched(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* The connection's GnuTLS session (NULL on plain HTTP). */
static void *tls_session(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return info ? info->tls_session : NULL;
}

/* ---- requests ------------------------------------------------------------------ */

const char *http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    if (req->local)
        return local_lookup(req->local->headers, req->local->n_headers, name, true);
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_query(const struct http_request *req, const char *name)
{
    if (req->local)
        return local_lookup(req->local->query, req->local->n_query, name, false);
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result count_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (*(int *)cls)++;
    return MHD_YES;
}

struct key_search {
    const char *key;
    bool found;
};

static enum MHD_Result find_key(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct key_search *k = cls;
    if (key && strcmp(key, k->key) == 0)
        k->found = true;
    return MHD_YES;
}

bool http_request_has_query_key(const struct http_request *req, const char *key)
{
    if (req->local)
        return local_lookup(req->local->query, req->local->n_query, key, false) != NULL;
    struct key_search k = {.key = key};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, find_key, &k);
    return k.found;
}

bool http_request_has_query(const struct http_request *req)
{
    if (req->local)
        return req->local->n_query > 0;
    int n = 0;
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, count_value, &n);
    return n > 0;
}

const char *http_request_body(const struct http_request *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

/* The request's body is read, or it ended. */
static void reading_over(struct http_request *req)
{
    if (req->reading)
        atomic_fetch_sub(&req->route->reading, 1);
    req->reading = false;
}

static void request_free(struct http_request *req)
{
    reading_over(req);
    if (req->route && req->dispatched)
        atomic_fetch_sub(&req->route->dispatched, 1);
    http_route_release(req->server, req->route);
    if (req->response)
        MHD_destroy_response(req->response);
    pthread_mutex_destroy(&req->lock);
    buf_free(&req->body);
    free(req->method);
    free(req->path);
    free(req);
}

void http_respond_headers(struct http_request *req, int status, const char *content_type,
                          const char *body, size_t len, const struct header *headers,
                          size_t n_headers)
{
    if (req->local) {
        local_answer(req, status, content_type, body, len, headers, n_headers);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; i < n_headers; i++)
        MHD_add_response_header(resp, headers[i].name, headers[i].value);

    pthread_mutex_lock(&req->lock);
    if (req->state == REQ_ANSWERED || req->response != NULL) {
        pthread_mutex_unlock(&req->lock);
        MHD_destroy_response(resp);
        log_error(NULL, "bug: HTTP request answered twice (status %d)", status);
        return;
    }
    req->response = resp;
    req->status = status;
    bool resume = req->state == REQ_SUSPENDED;
    if (resume)
        req->state = REQ_ANSWERED;
    /* Resume under the lock: the handler thread may be about to suspend. */
    if (resume)
        MHD_resume_connection(req->conn);
    pthread_mutex_unlock(&req->lock);
    if (resume)
        http_server_resumed(req->server);
}

void http_respond(struct http_request *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    http_respond_headers(req, status, content_type, body, len, NULL, 0);
}

void http_respond_error(struct http_request *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct buf body = {0};
    buf_puts(&body, "{\"error\":");
    buf_json_string(&body, msg);
    buf_puts(&body, "}\n");
    http_respond(req, status, "application/json", body.data, body.len);
    buf_free(&body);
}

/* Queues a response made by the server itself (404, 413, 431). */
static enum MHD_Result answer_now(struct MHD_Connection *conn, int status, const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", text);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* 413 in the route's own words when it has a refusal hook. */
static enum MHD_Result answer_too_large(struct MHD_Connection *conn, const struct http_route *route)
{
    if (route->refusal == NULL)
        return answer_now(conn, 413, "request body too large");
    int status = 413;
    const char *ctype = "text/plain";
    size_t len = 0;
    const char *req_ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    char *body = route->refusal(route->arg, &status, req_ct, &ctype, &len);
    if (body == NULL)
        return answer_now(conn, 413, "request body too large");
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body ? body : "", MHD_RESPMEM_MUST_COPY);
    free(body);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Draining: refuse further requests on connections kept alive, and close them.
 * The route that took a request went away (SIGHUP) before its body was read:
 * the same, in other words. */
static enum MHD_Result answer_draining(struct MHD_Connection *conn, const char *text)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", text);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(conn, 503, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* A request whose body is to be read: in flight while it makes progress. */
static enum MHD_Result start_reading(struct http_server *s, struct MHD_Connection *conn,
                                     struct http_conn *wc, struct http_route *route,
                                     const char *url, const char *method, void **con_cls)
{
    struct http_request *req = xcalloc(1, sizeof(*req));
    req->server = s;
    req->conn = conn;
    req->watched = wc;
    req->route = route; /* the request's hold, from http_route_for */
    req->reading = true;
    atomic_fetch_add(&route->reading, 1);
    atomic_store(&route->progress_ms, loop_now_ms());
    req->method = xstrdup(method);
    req->path = xstrdup(url);
    pthread_mutex_init(&req->lock, NULL);
    *con_cls = req;
    http_conn_progress(wc);
    return MHD_YES;
}

static enum MHD_Result queue_stored(struct http_request *req)
{
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    return rc;
}

/* Headers received: route, check, and either refuse at once (an answer: the
 * watch no longer times the request; MHD discards a body, then closes) or
 * start reading the body, against the same read deadline. */
static enum MHD_Result first_call(struct http_server *s, struct MHD_Connection *conn,
                                  const char *url, const char *method, void **con_cls)
{
    struct http_conn *wc = watched(conn);
    if (http_conn_late(wc))
        return MHD_NO; /* the headers took longer than read_timeout: close */
    if (s->require_client_cert && !listen_tls_client_verified(tls_session(conn))) {
        /* The handshake should have refused it already: say so, and close. */
        log_warn(NULL, "http server %s: a request without a verified client certificate; closed",
                 s->listen);
        return MHD_NO;
    }
    enum MHD_Result refused;
    struct http_route *route = http_route_for(s, url);
    int headers = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_value, &headers);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (atomic_load(&s->draining))
        refused = answer_draining(conn, "shutting down; retry on another instance");
    else if (route == NULL)
        refused = answer_now(conn, 404, "no route here");
    else if (headers > MAX_HEADERS)
        refused = answer_now(conn, 431, "too many request headers");
    else if (cl && strtoull(cl, NULL, 10) > route->max_body)
        refused = answer_too_large(conn, route);
    else
        return start_reading(s, conn, wc, route, url, method, con_cls);
    http_route_release(s, route);
    http_conn_busy(wc);
    return refused;
}

/* The whole request is read: hand it to the route; in flight until on_completed. */
static void dispatch(struct http_request *req)
{
    req->dispatched = true;
    atomic_fetch_add(&req->route->dispatched, 1);
    atomic_fetch_add(&req->server->dispatched, 1);
    http_conn_busy(req->watched); /* after: drain never sees it in neither count */
    req->state = REQ_HANDLING;
    req->route->fn(req, req->route->arg);
}

enum MHD_Result httpd_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_request *req = *con_cls;
    if (req == NULL)
        return first_call(s, conn, url, method, con_cls);

    if (req->state == REQ_READING && *upload_data_size > 0) {
        if (http_conn_late(req->watched))
            return MHD_NO; /* a body trickling past read_timeout: close */
        http_conn_progress(req->watched);
        atomic_store(&req->route->progress_ms, loop_now_ms());
        if (req->body.len + *upload_data_size > req->route->max_body)
            req->too_large = true;
        else
            buf_append(&req->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->state == REQ_READING) {
        reading_over(req);
        if (req->too_large) {
            http_conn_busy(req->watched);
            return answer_too_large(conn, req->route);
        }
        if (atomic_load(&req->route->gone)) {
            http_conn_busy(req->watched);
            req->state = REQ_ANSWERED;
            return answer_draining(conn, "this path was reconfigured; retry");
        }
        dispatch(req);
        pthread_mutex_lock(&req->lock);
        if (req->response != NULL) {
            req->state = REQ_ANSWERED;
            pthread_mutex_unlock(&req->lock);
            return queue_stored(req);
        }
        req->state = REQ_SUSPENDED;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&req->lock);
        return MHD_YES;
    }

    /* Resumed: the answer is stored. */
    pthread_mutex_lock(&req->lock);
    bool ready = req->response != NULL;
    pthread_mutex_unlock(&req->lock);
    if (!ready)
        return MHD_YES;
    return queue_stored(req);
}

/* A request ended (answer sent, refused, or the connection failed): a kept-alive
 * connection is idle until its next request line. */
void httpd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    http_conn_idle(watched(conn));
    struct http_request *req = *con_cls;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (req->dispatched) /* answer sent, or the connection is gone */
        atomic_fetch_sub(&req->server->dispatched, 1);
    request_free(req); /* and its route's counts */
}

/* MHD's connection notifications: a connection is watched while it exists. */
void httpd_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = info ? http_watch_open(s->watch, info->connect_fd) : NULL;
        if (s->require_client_cert && listen_tls_require_client(tls_session(conn)) != 0)
            log_error(NULL,
                      "http server %s: cannot require a client certificate on a new "
                      "connection; its requests will be closed unanswered",
                      s->listen);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        http_watch_close(s->watch, *socket_context);
        *socket_context = NULL;
    }
}

/* MHD's URI log callback: a request line arrived. Returns the request's
 * initial context, which must stay NULL (on_request's first call sees it). */
void *httpd_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_conn_request_line(watched(conn));
    return NULL;
}

/* ---- local requests (httpd.h): `amqp-sidecar test` --------------------------------- */

static const char *local_lookup(const struct header *h, size_t n, const char *name, bool any_case)
{
    for (size_t i = 0; i < n; i++)
        if (any_case ? strcasecmp(h[i].name, name) == 0 : strcmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* The answer, and the end of the request: nothing may use req afterwards. */
static void local_answer(struct http_request *req, int status, const char *content_type,
                         const char *body, size_t len, const struct header *headers,
                         size_t n_headers)
{
    pthread_mutex_lock(&req->lock);
    bool twice = req->state == REQ_ANSWERED;
    req->state = REQ_ANSWERED;
    pthread_mutex_unlock(&req->lock);
    if (twice) {
        log_error(NULL, "bug: HTTP request answered twice (status %d)", status);
        return;
    }
    req->local->answered(req->local->arg, status, content_type, body ? body : "", len, headers,
                         n_headers);
    request_free(req);
}

void http_server_dispatch_local(struct http_server *s, const struct http_local_request *l)
{
    struct http_route *route = http_route_for(s, l->path);
    struct http_request *req = xcalloc(1, sizeof(*req));
    req->server = s;
    req->route = route;
    req->local = l;
    req->method = xstrdup(l->method);
    req->path = xstrdup(l->path);
    pthread_mutex_init(&req->lock, NULL);
    if (route == NULL) {
        http_respond_error(req, 404, "no route here");
        return;
    }
    if (l->n_headers > MAX_HEADERS) {
        http_respond_error(req, 431, "too many request headers");
        return;
    }
    if (l->body_len > route->max_body) {
        int status = 413;
        const char *ctype = "text/plain";
        size_t len = 0;
        char *body = route->refusal
                         ? route->refusal(route->arg, &status,
                                          http_request_header(req, "Content-Type"), &ctype, &len)
                         : NULL;
        if (body != NULL)
            http_respond(req, status, ctype, body, len);
        else
            http_respond_error(req, 413, "request body too large");
        free(body);
        return;
    }
    buf_append(&req->body, l->body ? l->body : "", l->body_len);
    req->state = REQ_HANDLING;
    route->fn(req, route->arg);
}
