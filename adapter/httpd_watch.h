/*
 * httpd_watch — the deadlines of one listener's connections, which
 * libmicrohttpd 0.9.75 cannot keep by itself.
 *
 * MHD only times out inactivity, so a client that trickles a byte every few
 * seconds holds its connection (and an fd) for as long as it likes. And a FIN
 * that arrives together with the last bytes of a request is never seen: MHD's
 * edge-triggered epoll reads the bytes, takes the short read for "drained",
 * and waits for an edge that does not come; the half-closed request lingers
 * until the inactivity timeout. So httpd.c tells this module, from MHD's
 * threads, what each connection is doing:
 *   reading  a request is arriving; it must be complete by its deadline:
 *            read_timeout from accept, or from its request line on a
 *            connection kept alive;
 *   busy     the request is complete: the handler, the broker or the client
 *            reading the answer have it (the route's own timeouts apply);
 *   idle     kept alive between requests: the next must begin within
 *            idle_timeout.
 * A watcher thread wakes every few hundred ms and shuts down (shutdown(2),
 * never close: the fd stays MHD's) each connection past its deadline, and
 * shuts for reading each reading one whose client half-closed or reset (a
 * peek says so); MHD then reads end of file and closes it as usual. The list
 * lock is held across those calls and by http_watch_close, which MHD calls
 * before it closes the fd, so the watcher never touches a reused fd.
 *
 * Nothing here owns an MHD object: the watch owns its list and its thread.
 */
#ifndef SIDECAR_HTTPD_WATCH_H
#define SIDECAR_HTTPD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_watch;
struct http_conn;

/* A watch for the listener named `listen` (for log lines); not yet running. */
struct http_watch *http_watch_new(const char *listen, int64_t read_timeout_ms,
                                  int64_t idle_timeout_ms);
/* Starts the watcher thread: 0, or -1. */
int http_watch_start(struct http_watch *w);
/* Stops the thread and frees w; every connection must have been closed. */
void http_watch_free(struct http_watch *w);

/* MHD accepted a connection on fd (its notify callback): reading, with the
 * read_timeout deadline. The result is MHD's socket context. */
struct http_conn *http_watch_open(struct http_watch *w, int fd);
/* MHD is about to close c's fd; c is freed. */
void http_watch_close(struct http_watch *w, struct http_conn *c);

/* The calls below run on the MHD thread that owns c; c may be NULL. */
/* A request line arrived: on a connection kept alive, the next request's read starts. */
void http_conn_request_line(struct http_conn *c);
/* Bytes of the request arrived (its headers, a body chunk): it makes progress. */
void http_conn_progress(struct http_conn *c);
/* Is the request being read past its deadline? */
bool http_conn_late(const struct http_conn *c);
/* The request is complete and being handled or answered: no deadline. */
void http_conn_busy(struct http_conn *c);
/* The answer was sent; kept alive, the connection waits for the next request. */
void http_conn_idle(struct http_conn *c);

/* Requests past their headers whose bytes arrived within the last window_ms:
 * uploads that may still complete (drain waits for them). Any thread. */
size_t http_watch_uploading(struct http_watch *w, int64_t window_ms);

#endif
