/*
 * httpd_internal — what httpd.c (requests: libmicrohttpd's callbacks) and
 * httpd_server.c (the server: routes, start, the loop it runs in, stop)
 * share. Nothing outside those two includes it.
 */
#ifndef SIDECAR_HTTPD_INTERNAL_H
#define SIDECAR_HTTPD_INTERNAL_H

#include "httpd.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

struct listen_tls;
struct listen_tls_config;
struct loop;

/* One path's route. It lives while the server's table or a request holds it
 * (refs, under the server's routes_lock): SIGHUP may take it out of the
 * table (new requests get 404, or the route that replaced it) while
 * requests it already took finish with it. */
struct http_route {
    char *path;
    bool prefix;
    size_t max_body;
    http_handler_fn fn;
    void *arg;
    http_refusal_fn refusal;
    int refs;                    /* the table's, while in it, and each request's */
    bool leaving;                /* a new route may take its place in the table */
    atomic_bool gone;            /* its route stopped: a request read now gets 503 */
    atomic_size_t reading;       /* its requests whose body is arriving */
    atomic_size_t dispatched;    /* its requests handed to fn, not yet completed */
    _Atomic int64_t progress_ms; /* when the last body bytes of one of them arrived */
};

struct http_server {
    char *listen;
    struct sockaddr_storage addr;
    struct MHD_Daemon *daemon;
    pthread_mutex_t routes_lock; /* the table, the held list and every route's refs */
    struct http_route **routes;  /* the table: what a new request finds */
    size_t n_routes;
    struct http_route **held; /* out of the table, still held by requests */
    size_t n_held;
    struct http_limits limits;
    struct http_watch *watch; /* from start */
    struct loop *loop;        /* the loop that runs the daemon, or NULL: MHD's own threads */
    atomic_size_t dispatched; /* requests handed to their handler, not yet completed */
    atomic_bool draining;     /* set by quiesce: new requests on kept-alive connections get 503 */
    atomic_bool resumed;      /* loop mode: a connection was resumed; MHD_run must see it */
    atomic_bool quiesced;     /* the listen socket is closed (in loop mode, by the loop's thread) */
    struct listen_tls *tls;   /* HTTPS: the PEM handed to MHD (owned); NULL: plain HTTP */
    const struct listen_tls_config *tls_config; /* the config's, to compare later callers */
    bool require_client_cert;                   /* tls with client_ca: mutual TLS */
};

/* A connection was resumed (MHD_resume_connection, any thread): in loop mode,
 * make the loop run the daemon before it sleeps again (MHD 0.9.75 has no
 * inter-thread channel without its own thread). */
void http_server_resumed(struct http_server *s);

/* The route for path, held for the caller (NULL: none); give it back with
 * http_route_release. Any thread. */
struct http_route *http_route_for(struct http_server *s, const char *path);
void http_route_release(struct http_server *s, struct http_route *r);

/* libmicrohttpd's callbacks (httpd.c); cls is the server. */
enum MHD_Result httpd_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls);
void httpd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe);
void httpd_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
void *httpd_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn);

#endif
