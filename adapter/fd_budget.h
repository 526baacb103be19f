/*
 * fd_budget — how many connections the HTTP listeners may hold, so that the
 * process never runs out of file descriptors.
 *
 * At the fd limit accept() fails with EMFILE and libmicrohttpd retries it at
 * once, over and over: every listener (the admin one too) stops answering and
 * the log fills with "Too many open files". So, like nginx, the sidecar raises
 * its soft RLIMIT_NOFILE to the hard limit at start, keeps a reserve for every
 * fd that is not a route listener's connection (broker sockets, HTTP client
 * connections, files, epoll and event fds, the admin listener's connections),
 * and shares what is left among the route listeners.
 */
#ifndef SIDECAR_FD_BUDGET_H
#define SIDECAR_FD_BUDGET_H

#include <stddef.h>

/* Fewest connections a route listener is given, however tight the limit. */
#define FD_BUDGET_MIN_PER_LISTENER 16

/* What the process holds besides its route listeners' connections. */
struct fd_needs {
    size_t servers;                /* HTTP listeners, admin included */
    unsigned admin_connections;    /* the admin listener's own budget (0: none) */
    size_t routes;                 /* every route */
    unsigned outbound_concurrency; /* sum over outbound routes: their parallel HTTP calls */
};

/* Raises the soft RLIMIT_NOFILE to the hard limit (to 1 << 20 when that is
 * unlimited). Returns the soft limit now in force; *was receives the one
 * before. */
unsigned long fd_budget_raise_limit(unsigned long *was);

/* The fds to keep for everything in `needs`. */
unsigned long fd_budget_reserve(const struct fd_needs *needs);

/* Connections each of n route listeners may hold: `want`, or less so that
 * all of them fit in limit - reserve (never below FD_BUDGET_MIN_PER_LISTENER). */
unsigned fd_budget_per_listener(unsigned long limit, unsigned long reserve, size_t n,
                                unsigned want);

#endif
