/*
 * fd_budget — see fd_budget.h. The reserve is an estimate with a margin, not
 * an inventory: a fixed part for the process itself and per listener, route
 * and parallel outbound call, plus the admin listener's connections.
 */
#include "fd_budget.h"

#include <sys/resource.h>

#define RESERVE_PROCESS                                                                            \
    128 /* stdio, signalfd, the main loop, the publisher's                                         \
         * connection and eventfds, DNS, metrics' /proc reads */
#define RESERVE_PER_SERVER                                                                         \
    16 /* MHD: the listen socket, an epoll fd and an eventfd                                       \
        * per worker thread */
#define RESERVE_PER_ROUTE                                                                          \
    8 /* a broker connection, its loop and eventfds, a file                                        \
       * being read or written, a poll route's HTTP call */
#define RESERVE_PER_CALL                                                                           \
    2 /* an outbound HTTP call: its connection, and one kept                                       \
       * in libcurl's connection cache */
#define UNLIMITED_TARGET (1ul << 20)

unsigned long fd_budget_raise_limit(unsigned long *was)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        *was = 0;
        return 0;
    }
    *was = (unsigned long)rl.rlim_cur;
    rlim_t target = rl.rlim_max == RLIM_INFINITY ? UNLIMITED_TARGET : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
        struct rlimit raised = {.rlim_cur = target, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = target;
    }
    return rl.rlim_cur == RLIM_INFINITY ? UNLIMITED_TARGET : (unsigned long)rl.rlim_cur;
}

unsigned long fd_budget_reserve(const struct fd_needs *needs)
{
    return RESERVE_PROCESS + RESERVE_PER_SERVER * needs->servers + needs->admin_connections +
           RESERVE_PER_ROUTE * needs->routes +
           RESERVE_PER_CALL * (unsigned long)needs->outbound_concurrency;
}

unsigned fd_budget_per_listener(unsigned long limit, unsigned long reserve, size_t n, unsigned want)
{
    if (n == 0)
        return want;
    unsigned long share = limit > reserve ? (limit - reserve) / n : 0;
    if (share < FD_BUDGET_MIN_PER_LISTENER)
        share = FD_BUDGET_MIN_PER_LISTENER;
    return want < share ? want : (unsigned)share;
}
