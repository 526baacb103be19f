/*
 * httpd_server — an HTTP server's life: its address and routes, the
 * libmicrohttpd daemon and where it runs, quiesce and stop (see httpd.h).
 * Requests are httpd.c's.
 *
 * A server runs either on MHD's own threads (the admin listener: it must
 * answer while the rest is busy) or in an event loop of ours (the route
 * listeners, in the publisher connection's loop): MHD's epoll descriptor is
 * one more watch in the loop, MHD_run serves every ready connection when it
 * is readable, and the loop sleeps no longer than MHD's next timeout. Then a
 * request is read, handed to its route, published, confirmed and answered on
 * that one thread, with no hand-over between threads. Answers given from
 * another thread still work: resuming a connection writes to MHD's
 * inter-thread channel, which is in that epoll set.
 *
 * With tls (http_server_set_tls) the daemon speaks HTTPS (MHD_USE_TLS, the
 * PEM from listen_tls.c, which lives as long as the daemon because MHD keeps
 * pointers into it); the loop mode is unchanged: GnuTLS's buffered records
 * make MHD_get_timeout answer 0, which the prepare step below serves.
 *
 * In loop mode only the loop's thread calls into the daemon while the loop
 * runs; quiesce asks it to close the listen socket (a flag and a wake-up),
 * and stop happens after the loop has ended.
 */
#include "httpd_internal.h"

#include "config.h"
#include "httpd_watch.h"
#include "listen_tls.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 2 /* MHD's own threads, when not in a loop */
#define MEMORY_LIMIT                                                                               \
    (16 * 1024)            /* per connection: bounds request line + headers; MHD zeroes            \
                            * it for every request, so bigger costs CPU */
#define FINAL_FLUSH_MS 200 /* at stop, after the loop ended: time to send answers given late */

static int parse_addr(const char *listen, struct sockaddr_storage *out, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (config_parse_listen(listen, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "listen address \"%s\" is not host:port", listen);
        return -1;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve listen host \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

struct http_server *http_server_new(const char *listen, char *err, size_t errlen)
{
    struct http_server *s = xcalloc(1, sizeof(*s));
    if (parse_addr(listen, &s->addr, err, errlen) != 0) {
        free(s);
        return NULL;
    }
    s->listen = xstrdup(listen);
    s->limits = HTTP_LIMITS_DEFAULT;
    pthread_mutex_init(&s->routes_lock, NULL);
    return s;
}

void http_server_set_limits(struct http_server *s, const struct http_limits *limits)
{
    s->limits = *limits;
}

const struct http_limits *http_server_limits(const struct http_server *s)
{
    return &s->limits;
}

const char *http_server_listen(const struct http_server *s)
{
    return s->listen;
}

int http_server_set_tls(struct http_server *s, const struct listen_tls_config *t, char *err,
                        size_t errlen)
{
    static const struct listen_tls_config none;
    const struct listen_tls_config *want = t ? t : &none;
    if (s->tls_config != NULL || s->n_routes > 0) {
        if (listen_tls_same(s->tls_config ? s->tls_config : &none, want))
            return 0;
        snprintf(err, errlen,
                 "%s is served with other tls settings already; every route on one address "
                 "shares its tls",
                 s->listen);
        return -1;
    }
    s->tls_config = want;
    if (!listen_tls_configured(want))
        return 0;
    char why[512];
    s->tls = listen_tls_load(want, why, sizeof(why));
    if (s->tls == NULL) {
        snprintf(err, errlen, "https %s: %s", s->listen, why);
        return -1;
    }
    s->require_client_cert = s->tls->client_ca_pem != NULL;
    return 0;
}

/* ---- routes --------------------------------------------------------------------- */

static struct http_route *route_new(const char *path, size_t max_body, http_handler_fn fn,
                                    void *arg)
{
    struct http_route *r = xcalloc(1, sizeof(*r));
    size_t len = strlen(path);
    r->prefix = len > 0 && path[len - 1] == '*';
    r->path = r->prefix ? xstrndup(path, len - 1) : xstrdup(path);
    r->max_body = max_body;
    r->fn = fn;
    r->arg = arg;
    r->refs = 1; /* the table's */
    return r;
}

static void route_free(struct http_route *r)
{
    free(r->path);
    free(r);
}

/* The path as registered (a prefix route with its "*"). Under routes_lock. */
static bool route_has_path(const struct http_route *r, const char *path)
{
    size_t len = strlen(r->path);
    return strncmp(r->path, path, len) == 0 &&
           (r->prefix ? strcmp(path + len, "*") == 0 : path[len] == '\0');
}

/* r has left the table: the table's hold goes; requests may still hold it.
 * Under routes_lock. */
static void table_let_go(struct http_server *s, struct http_route *r)
{
    if (--r->refs == 0) {
        route_free(r);
        return;
    }
    s->held = xrealloc(s->held, (s->n_held + 1) * sizeof(*s->held));
    s->held[s->n_held++] = r;
}

static void table_remove(struct http_server *s, size_t i)
{
    struct http_route *r = s->routes[i];
    memmove(&s->routes[i], &s->routes[i + 1], (s->n_routes - i - 1) * sizeof(*s->routes));
    s->n_routes--;
    table_let_go(s, r);
}

int http_server_route(struct http_server *s, const char *path, size_t max_body, http_handler_fn fn,
                      void *arg)
{
    struct http_route *r = route_new(path, max_body, fn, arg);
    pthread_mutex_lock(&s->routes_lock);
    size_t at = s->n_routes;
    for (size_t i = 0; i < s->n_routes; i++)
        if (route_has_path(s->routes[i], path))
            at = i;
    if (at < s->n_routes && !s->routes[at]->leaving) {
        pthread_mutex_unlock(&s->routes_lock);
        route_free(r);
        return -1;
    }
    if (at < s->n_routes) { /* in its place, at once: no request meets neither */
        struct http_route *old = s->routes[at];
        s->routes[at] = r;
        table_let_go(s, old);
    } else {
        s->routes = xrealloc(s->routes, (s->n_routes + 1) * sizeof(*s->routes));
        s->routes[s->n_routes++] = r;
    }
    pthread_mutex_unlock(&s->routes_lock);
    return 0;
}

int http_server_route_refusal(struct http_server *s, const char *path, http_refusal_fn fn)
{
    int rc = -1;
    pthread_mutex_lock(&s->routes_lock);
    for (size_t i = 0; i < s->n_routes; i++) {
        if (route_has_path(s->routes[i], path)) {
            s->routes[i]->refusal = fn;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->routes_lock);
    return rc;
}

struct http_route *http_route_for(struct http_server *s, const char *path)
{
    struct http_route *found = NULL;
    pthread_mutex_lock(&s->routes_lock);
    for (size_t i = 0; i < s->n_routes && found == NULL; i++) {
        struct http_route *r = s->routes[i];
        if (r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0)
            found = r;
    }
    if (found)
        found->refs++;
    pthread_mutex_unlock(&s->routes_lock);
    return found;
}

void http_route_release(struct http_server *s, struct http_route *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&s->routes_lock);
    bool last = --r->refs == 0;
    for (size_t i = 0; last && i < s->n_held; i++) {
        if (s->held[i] == r) {
            s->held[i] = s->held[--s->n_held];
            break;
        }
    }
    pthread_mutex_unlock(&s->routes_lock);
    if (last)
        route_free(r);
}

void http_server_route_leaving(struct http_server *s, void *arg)
{
    pthread_mutex_lock(&s->routes_lock);
    for (size_t i = 0; i < s->n_routes; i++)
        if (s->routes[i]->arg == arg)
            s->routes[i]->leaving = true;
    pthread_mutex_unlock(&s->routes_lock);
}

size_t http_server_unroute(struct http_server *s, void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&s->routes_lock);
    for (size_t i = s->n_routes; i-- > 0;) {
        if (s->routes[i]->arg == arg) {
            table_remove(s, i);
            n++;
        }
    }
    pthread_mutex_unlock(&s->routes_lock);
    return n;
}

/* Is one of arg's routes (in the table or held) busy: a request handed to
 * it, or an upload to it that made progress within HTTP_PROGRESS_MS?
 * Under routes_lock. */
static bool route_busy(struct http_route *r, int64_t now)
{
    return atomic_load(&r->dispatched) > 0 ||
           (atomic_load(&r->reading) > 0 && now - atomic_load(&r->progress_ms) < HTTP_PROGRESS_MS);
}

bool http_server_route_busy(struct http_server *s, void *arg)
{
    int64_t now = loop_now_ms();
    bool busy = false;
    pthread_mutex_lock(&s->routes_lock);
    for (size_t i = 0; i < s->n_routes && !busy; i++)
        busy = s->routes[i]->arg == arg && route_busy(s->routes[i], now);
    for (size_t i = 0; i < s->n_held && !busy; i++)
        busy = s->held[i]->arg == arg && route_busy(s->held[i], now);
    pthread_mutex_unlock(&s->routes_lock);
    return busy;
}

void http_server_route_gone(struct http_server *s, void *arg)
{
    pthread_mutex_lock(&s->routes_lock);
    for (size_t i = 0; i < s->n_routes; i++)
        if (s->routes[i]->arg == arg)
            atomic_store(&s->routes[i]->gone, true);
    for (size_t i = 0; i < s->n_held; i++)
        if (s->held[i]->arg == arg)
            atomic_store(&s->held[i]->gone, true);
    pthread_mutex_unlock(&s->routes_lock);
}

size_t http_server_n_routes(struct http_server *s)
{
    pthread_mutex_lock(&s->routes_lock);
    size_t n = s->n_routes;
    pthread_mutex_unlock(&s->routes_lock);
    return n;
}

bool http_server_started(const struct http_server *s)
{
    return s->daemon != NULL;
}

size_t http_server_active(const struct http_server *s)
{
    size_t n = atomic_load(&((struct http_server *)s)->dispatched);
    if (s->watch)
        n += http_watch_uploading(s->watch, HTTP_PROGRESS_MS);
    return n;
}

/* ---- MHD's log ------------------------------------------------------------------ */

/* MHD messages that clients cause: a refusal at a limit (which MHD words the
 * same for both limits) gets the keys that set them; a client going away is
 * routine, so info. Others stay warnings. */
static const struct {
    const char *start;
    enum log_level level;
    const char *hint;
    const char *text; /* instead of MHD's words, when they mislead */
} mhd_messages[] = {
    {"Server reached connection limit", LOG_WARN,
     " (http.max_connections, or http.max_connections_per_ip for one client address)", NULL},
    {"Connection was closed by remote side", LOG_INFO, "", NULL},
    {"Socket has been disconnected when reading request", LOG_INFO, "", NULL},
    {"Connection socket is closed when reading request", LOG_INFO, "", NULL},
    /* MHD 0.9.75 says this for every failed handshake. */
    {"Error: received handshake message out of context", LOG_WARN, "",
     "TLS handshake failed, connection closed (a client certificate missing or not issued by "
     "tls.client_ca, a client that does not trust tls.cert, plain HTTP sent to this HTTPS "
     "port, or no common TLS version: 1.2 and 1.3 are offered, 1.2 alone with client_ca)"},
};

/* MHD's messages go through the log's rate limit, one budget per MHD message
 * (its format string): a flood of refused connections is a few lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    str_trim_right(msg);
    enum log_level level = LOG_WARN;
    const char *hint = "";
    const char *text = msg;
    for (size_t i = 0; i < sizeof(mhd_messages) / sizeof(mhd_messages[0]); i++) {
        if (strncmp(msg, mhd_messages[i].start, strlen(mhd_messages[i].start)) == 0) {
            level = mhd_messages[i].level;
            hint = mhd_messages[i].hint;
            text = mhd_messages[i].text ? mhd_messages[i].text : msg;
        }
    }
    log_event_site(level, NULL, fmt, "http server %s: %s%s", ((struct http_server *)cls)->listen,
                   text, hint);
}

/* ---- running in a loop ------------------------------------------------------------ */

static void close_listener(struct http_server *s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    atomic_store(&s->quiesced, true);
}

/* MHD's epoll set has events: serve every ready connection. */
static void on_daemon_ready(struct loop *loop, int fd, short revents, void *arg)
{
    MHD_run(((struct http_server *)arg)->daemon);
}

void http_server_resumed(struct http_server *s)
{
    if (s->loop == NULL)
        return; /* MHD's own threads: its inter-thread channel wakes them */
    atomic_store(&s->resumed, true);
    if (!loop_on_thread(s->loop))
        loop_wake(s->loop);
}

/* Before the loop sleeps: a quiesce asked for, a connection resumed, work MHD has without an event
 * (a connection with more to read than one pass took, a timeout due), and
 * how long the loop may sleep before MHD's next timeout. */
static int daemon_prepare(struct loop *loop, void *arg)
{
    struct http_server *s = arg;
    if (atomic_load(&s->draining) && !atomic_load(&s->quiesced))
        close_listener(s);
    if (atomic_exchange(&s->resumed, false))
        MHD_run(s->daemon);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    for (int pass = 0; pass < 4; pass++) {
        if (MHD_get_timeout(s->daemon, &ms) != MHD_YES)
            return -1;
        if (ms > 0)
            break;
        MHD_run(s->daemon);
    }
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void attach_on_loop(void *arg)
{
    struct http_server *s = arg;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL || loop_watch(s->loop, info->epoll_fd, POLLIN, on_daemon_ready, s) != 0 ||
        loop_add_prepare(s->loop, daemon_prepare, s) != 0)
        log_error(NULL, "http server %s: cannot join the event loop (out of memory?)", s->listen);
}

/* At stop, the loop has ended: answers given since (e.g. 503s for the submits
 * the publisher failed as it stopped) go out now, for a short while. */
static void final_flush(struct http_server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int64_t until = loop_now_ms() + FINAL_FLUSH_MS;
    while (info && atomic_load(&s->dispatched) > 0 && loop_now_ms() < until) {
        MHD_run(s->daemon);
        struct pollfd p = {.fd = info->epoll_fd, .events = POLLIN};
        poll(&p, 1, 10);
    }
}

/* ---- start and stop ----------------------------------------------------------------- */

int http_server_start(struct http_server *s, struct loop *loop, char *err, size_t errlen)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (loop == NULL)
        flags |= MHD_USE_INTERNAL_POLLING_THREAD;
    if (s->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    int port = ntohs(s->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&s->addr)->sin6_port
                                                   : ((struct sockaddr_in *)&s->addr)->sin_port);
    const struct http_limits *l = &s->limits;
    s->watch = http_watch_new(s->listen, (int64_t)(l->read_timeout * 1000),
                              (int64_t)(l->idle_timeout * 1000));
    s->loop = loop;
    struct MHD_OptionItem opts[16] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, s},
        {MHD_OPTION_SOCK_ADDR, 0, &s->addr},
        {MHD_OPTION_CONNECTION_LIMIT, l->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, l->max_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)ceil(l->idle_timeout), NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, MEMORY_LIMIT, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)httpd_on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)httpd_on_connection, s},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)httpd_on_request_line, s},
    };
    size_t n = 9;
    if (loop == NULL) /* a pool only with MHD's own threads */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, THREADS, NULL};
    if (s->tls) {
        /* MHD keeps these pointers: s->tls lives as long as the daemon. */
        flags |= MHD_USE_TLS;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls->cert_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls->key_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            s->require_client_cert ? LISTEN_TLS_PRIORITIES_MUTUAL
                                                                   : LISTEN_TLS_PRIORITIES};
        if (s->tls->client_ca_pem) /* the trust store; the requirement is httpd.c's */
            opts[n++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, s->tls->client_ca_pem};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, httpd_on_request, s,
                                 MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (s->daemon == NULL || http_watch_start(s->watch) != 0) {
        snprintf(err, errlen,
                 "cannot listen on %s (is the port in use by another process, or the address "
                 "not local?%s)",
                 s->listen, s->tls ? " or did GnuTLS refuse tls.cert / tls.key? see above" : "");
        return -1;
    }
    if (loop && loop_post(loop, attach_on_loop, s) != 0) {
        snprintf(err, errlen, "http server %s: out of memory", s->listen);
        return -1;
    }
    return 0;
}

void http_server_quiesce(struct http_server *s)
{
    atomic_store(&s->draining, true);
    if (s->daemon == NULL || atomic_load(&s->quiesced))
        return;
    if (s->loop == NULL)
        close_listener(s);
    else
        loop_wake(s->loop); /* its prepare closes the listener */
}

/* The loop's thread: stop serving; every connection closes. */
static void detach_on_loop(void *arg)
{
    struct http_server *s = arg;
    if (!atomic_load(&s->quiesced))
        close_listener(s);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (info != NULL)
        loop_unwatch(s->loop, info->epoll_fd);
    loop_remove_prepare(s->loop, daemon_prepare, s);
    MHD_stop_daemon(s->daemon); /* closes every connection: the watch is empty after */
    s->daemon = NULL;
}

void http_server_close(struct http_server *s)
{
    if (s->daemon != NULL && s->loop != NULL)
        loop_call(s->loop, detach_on_loop, s);
    http_server_free(s);
}

void http_server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    if (s->daemon) {
        if (s->loop)
            final_flush(s);
        MHD_stop_daemon(s->daemon); /* closes every connection: the watch is empty after */
    }
    http_watch_free(s->watch);
    listen_tls_free(s->tls);
    for (size_t i = 0; i < s->n_routes; i++) /* no request is left: nothing else holds them */
        route_free(s->routes[i]);
    for (size_t i = 0; i < s->n_held; i++)
        route_free(s->held[i]);
    free(s->routes);
    free(s->held);
    pthread_mutex_destroy(&s->routes_lock);
    free(s->listen);
    free(s);
}
