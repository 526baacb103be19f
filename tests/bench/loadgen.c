/*
 * loadgen — an HTTP/1.1 load generator for the inbound benchmark: N keep-alive
 * connections sending one fixed POST.
 *
 *   loadgen --url http://HOST:PORT/PATH -c N -d SECONDS --body-file F [-H "Name: value"]…
 *           [--rate R]
 *
 * Closed loop (no --rate): each connection sends its next request as soon as
 * its answer is in; so exactly N requests are in flight, the HTTP counterpart
 * of raw_amqp's N publishes awaiting confirms. Latency: request written →
 * answer complete.
 *
 * Open loop (--rate R, requests/s across the N connections): requests are
 * scheduled evenly spaced (schedule.h) for SECONDS; each is sent on a free
 * connection as soon as one is free at or after its scheduled time, and its
 * latency runs from its *scheduled* time to its answer, so a stall that holds
 * requests back is counted, not hidden (no coordinated omission, as wrk2).
 * At most N are in flight. If more than 1 s worth are due but unsent, the rate
 * is not sustained: no more are sent, the run ends, and the latencies are
 * printed as null (they would describe an overload, not the rate asked).
 *
 * One thread, one epoll set (edge-triggered), no allocation per request, so
 * its own cost stays a few µs per request; it reports that cost (cpu_s) so the
 * bench can show it. After SECONDS no new request is sent and the ones in
 * flight are awaited (up to 10 s), so every answer the server sent is counted:
 * the bench checks the 2xx count against the queue.
 *
 * Prints one JSON line: {"connections", "requests": answers read, "ok": 2xx,
 * "non2xx", "errors": connections lost (refused, reset, closed, or an unusable
 * answer), "reconnects", "seconds": first connect (open loop: the first
 * scheduled time) to last answer, "rate": answers/s, "p50_ms", "p99_ms",
 * "max_ms", "cpu_s": user+system CPU of this process}; open loop adds
 * "target_rate", "scheduled", "sent", "sustained" (true/false) and
 * "max_backlog_ms" (the most due-but-unsent requests seen, in ms of the rate).
 * Answers must carry Content-Length (libmicrohttpd's do); chunked ones are errors.
 * Independent of the sidecar's code, like raw_amqp.
 */
#define _GNU_SOURCE /* memmem */
#include "latency.h"
#include "schedule.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX  16384 /* the sidecar's answers are ~200 bytes */
#define DRAIN_US    10000000ULL
#define HEADERS_MAX 16
#define BACKLOG_S   1.0 /* due but unsent beyond this many seconds' worth: not sustained */
#define CHECK_MS    100 /* an open loop looks at its backlog at least this often */

struct conn {
    int fd;
    size_t written; /* bytes of the request written so far */
    size_t have;    /* bytes of the answer read so far */
    uint64_t start; /* µs: the request's first byte was written (open loop: was due) */
    int busy;       /* a request is in flight */
    int listed;     /* open loop: on the run's free list (maybe closed since: skipped) */
    char answer[ANSWER_MAX];
};

struct run {
    struct addrinfo *addr;
    const char *request;
    size_t request_len;
    int epoll;
    uint64_t stop, drain_until;
    long requests, ok, non2xx, errors, reconnects;
    uint64_t first_us, last_us;
    struct latency hist;
    /* open loop only (rate > 0) */
    double rate;
    struct schedule sched;
    struct conn **free; /* connections with nothing in flight, a stack */
    long n_free;
    int timer;         /* timerfd armed at the next due request while one is free */
    uint64_t armed_at; /* what it is armed at, 0: not armed */
    int overrun;       /* the backlog passed BACKLOG_S: nothing more is sent */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

__attribute__((noreturn)) static void die(const char *what, const char *detail)
{
    fprintf(stderr, "loadgen: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static int open_loop(const struct run *r)
{
    return r->rate > 0;
}

/* Whether requests are still to be sent: a lost connection is then reopened. */
static int sending(const struct run *r, uint64_t t)
{
    return open_loop(r) ? !r->overrun && !schedule_done(&r->sched) : t < r->stop;
}

/* Open loop: c has nothing in flight and may take the next due request. */
static void free_push(struct run *r, struct conn *c)
{
    if (open_loop(r) && !c->listed && c->fd >= 0 && !c->busy) {
        c->listed = 1;
        r->free[r->n_free++] = c;
    }
}

/* An open connection with nothing in flight, or NULL. */
static struct conn *free_pop(struct run *r)
{
    while (r->n_free > 0) {
        struct conn *c = r->free[--r->n_free];
        c->listed = 0;
        if (c->fd >= 0 && !c->busy)
            return c;
    }
    return NULL;
}

static int conn_open(struct run *r, struct conn *c)
{
    c->fd = socket(r->addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, r->addr->ai_addr, r->addr->ai_addrlen) != 0 && errno != EINPROGRESS)
        die("connect", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(r->epoll, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die("epoll_ctl", strerror(errno));
    c->written = c->have = 0;
    c->busy = 0;
    free_push(r, c); /* a write before the connect completes waits for EPOLLOUT */
    return 0;
}

static void conn_close(struct run *r, struct conn *c)
{
    epoll_ctl(r->epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->busy = 0;
}

/* Writes what is left of the request in flight; -1: the connection is unusable. */
static int conn_flush(struct run *r, struct conn *c)
{
    while (c->busy && c->written < r->request_len) {
        ssize_t n = write(c->fd, r->request + c->written, r->request_len - c->written);
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        c->written += (size_t)n;
    }
    return 0;
}

/* Starts a request on c, whose latency runs from start (µs). */
static int conn_send(struct run *r, struct conn *c, uint64_t start)
{
    c->busy = 1;
    c->written = c->have = 0;
    c->start = start;
    return conn_flush(r, c);
}

/* 1: a whole answer is in c->answer; 0: not yet; -1: unusable. */
static int answer_complete(struct conn *c, int *status, int *close_after)
{
    char *end = memmem(c->answer, c->have, "\r\n\r\n", 4);
    if (end == NULL)
        return c->have >= sizeof(c->answer) ? -1 : 0;
    size_t head = (size_t)(end - c->answer) + 4;
    if (c->have < 12 || memcmp(c->answer, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->answer + 9);
    long length = -1;
    *close_after = c->answer[7] == '0';
    for (char *line = memchr(c->answer, '\n', head); line && line < end;
         line = memchr(line, '\n', (size_t)(end - line))) {
        line++;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            length = atol(line + 15);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0)
            return -1;
        else if (strncasecmp(line, "Connection:", 11) == 0)
            *close_after = strncasecmp(line + 11 + strspn(line + 11, " "), "close", 5) == 0;
    }
    if (length < 0 || head + (size_t)length > sizeof(c->answer))
        return -1;
    if (c->have < head + (size_t)length)
        return 0;
    return c->have == head + (size_t)length ? 1 : -1; /* nothing pipelined, nothing extra */
}

/* Every loss counts as an error, an idle connection's too: during a run of
 * seconds nothing should close one (a refused connect lands here as well).
 * Open loop: a request lost with its connection is not sent again. */
static void conn_lost(struct run *r, struct conn *c, uint64_t t)
{
    r->errors++;
    conn_close(r, c);
    if (sending(r, t)) {
        r->reconnects++;
        conn_open(r, c);
    }
}

static void conn_event(struct run *r, struct conn *c, uint32_t events)
{
    uint64_t t = now_us();
    if (events & EPOLLIN) {
        for (;;) {
            if (!c->busy || c->have >= sizeof(c->answer)) {
                conn_lost(r, c, t); /* data nobody asked for, or too much */
                return;
            }
            ssize_t n = read(c->fd, c->answer + c->have, sizeof(c->answer) - c->have);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n <= 0) {
                conn_lost(r, c, t);
                return;
            }
            c->have += (size_t)n;
            int status, close_after, rc = answer_complete(c, &status, &close_after);
            if (rc < 0) {
                conn_lost(r, c, t);
                return;
            }
            if (rc == 0)
                continue;
            t = now_us();
            latency_record(&r->hist, t - c->start);
            r->requests++;
            r->last_us = t;
            if (status >= 200 && status < 300)
                r->ok++;
            else
                r->non2xx++;
            c->busy = 0;
            if (close_after) {
                conn_lost(r, c, t);
                return;
            }
            break; /* the next answer comes only after the next request */
        }
    } else if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        conn_lost(r, c, t);
        return;
    }
    if (c->busy) {
        if (conn_flush(r, c) != 0)
            conn_lost(r, c, t);
    } else if (open_loop(r)) {
        free_push(r, c); /* the loop gives it the next due request */
    } else if (t < r->stop) {
        if (conn_send(r, c, t) != 0)
            conn_lost(r, c, t);
    }
}

/* Open loop: sends every due request that has a free connection, each timed
 * from when it was due; stops sending for good once the backlog passes
 * BACKLOG_S (checked whether or not a connection is free). */
static void dispatch(struct run *r, uint64_t t)
{
    while (!r->overrun) {
        if (schedule_overrun(&r->sched, t)) {
            r->overrun = 1;
            break;
        }
        if (schedule_backlog(&r->sched, t) == 0)
            break;
        struct conn *c = free_pop(r);
        if (c == NULL)
            break;
        uint64_t due = 0;
        if (!schedule_take(&r->sched, t, &due)) { /* cannot be: the backlog is not 0 */
            free_push(r, c);
            break;
        }
        if (conn_send(r, c, due) != 0)
            conn_lost(r, c, t);
    }
}

/* Open loop: the timer fires when the next request is due, if a connection
 * is free to take it (otherwise an answer frees one first). */
static void arm_timer(struct run *r)
{
    uint64_t at = 0;
    if (!r->overrun && !schedule_done(&r->sched) && r->n_free > 0)
        at = schedule_next_us(&r->sched);
    if (at == r->armed_at)
        return;
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(at / 1000000), .tv_nsec = (long)(at % 1000000) * 1000}};
    if (timerfd_settime(r->timer, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        die("timerfd_settime", strerror(errno));
    r->armed_at = at;
}

static long in_flight(const struct conn *conns, long n)
{
    long busy = 0;
    for (long i = 0; i < n; i++)
        busy += conns[i].fd >= 0 && conns[i].busy;
    return busy;
}

/* The run is over: nothing more to send and every answer in, or the drain
 * waited long enough. */
static int finished(const struct run *r, const struct conn *conns, long n, uint64_t t)
{
    if (t >= r->drain_until)
        return 1;
    if (sending(r, t))
        return 0;
    return in_flight(conns, n) == 0;
}

static char *build_request(const char *url, char **headers, int n_headers, const char *body_file,
                           size_t *len, char **host, char **port)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0)
        die("--url must start with http://", url);
    p += 7;
    const char *slash = strchr(p, '/');
    const char *colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    if (colon == NULL || slash == NULL)
        die("--url must be http://HOST:PORT/PATH", url);
    *host = strndup(p, (size_t)(colon - p));
    *port = strndup(colon + 1, (size_t)(slash - colon - 1));

    FILE *f = fopen(body_file, "rb");
    if (f == NULL)
        die("cannot read --body-file", body_file);
    static char body[1 << 20];
    size_t body_len = fread(body, 1, sizeof(body), f);
    fclose(f);

    size_t cap = strlen(url) + body_len + 512;
    for (int i = 0; i < n_headers; i++)
        cap += strlen(headers[i]) + 2;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "POST %s HTTP/1.1\r\nHost: %s:%s\r\n", slash, *host, *port);
    for (int i = 0; i < n_headers; i++)
        n += snprintf(req + n, cap - (size_t)n, "%s\r\n", headers[i]);
    n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n\r\n", body_len);
    memcpy(req + n, body, body_len);
    *len = (size_t)n + body_len;
    return req;
}

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *body_file = NULL;
    long connections = 1;
    double seconds = 5, rate = 0;
    char *headers[HEADERS_MAX];
    int n_headers = 0;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"header", required_argument, NULL, 'H'},
        {"body-file", required_argument, NULL, 'b'},
        {"rate", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "u:c:d:H:b:r:", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 'c':
            connections = atol(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'H':
            if (n_headers == HEADERS_MAX)
                die("too many -H", NULL);
            headers[n_headers++] = optarg;
            break;
        case 'b':
            body_file = optarg;
            break;
        case 'r':
            rate = atof(optarg);
            if (rate <= 0)
                die("--rate must be > 0 requests/s", optarg);
            break;
        default:
            die("usage: loadgen --url http://HOST:PORT/PATH -c N -d SECONDS --body-file F "
                "[-H 'Name: value']... [--rate R]",
                NULL);
        }
    }
    if (url == NULL || body_file == NULL || connections < 1 || seconds <= 0 || rate < 0)
        die("--url, --body-file, -c >= 1, -d > 0 and --rate > 0 (if given) are required", NULL);

    static struct run r; /* the histogram is 135 kB: not on the stack */
    char *host, *port;
    r.request = build_request(url, headers, n_headers, body_file, &r.request_len, &host, &port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, port, &hints, &r.addr);
    if (gai != 0)
        die("cannot resolve the --url host", gai_strerror(gai));
    r.epoll = epoll_create1(EPOLL_CLOEXEC);
    latency_reset(&r.hist);
    r.rate = rate;
    struct conn *conns = calloc((size_t)connections, sizeof(*conns));
    r.free = calloc((size_t)connections, sizeof(*r.free));
    if (conns == NULL || r.free == NULL)
        die("out of memory", NULL);
    if (open_loop(&r)) {
        prctl(PR_SET_TIMERSLACK, 1UL); /* wake at the due time, not up to 50 µs after */
        r.timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (r.timer < 0 || epoll_ctl(r.epoll, EPOLL_CTL_ADD, r.timer, &ev) != 0)
            die("timerfd", strerror(errno));
    }

    r.first_us = now_us();
    for (long i = 0; i < connections; i++)
        conn_open(&r, &conns[i]);
    if (open_loop(&r)) { /* the schedule starts once the connections are asked for */
        r.first_us = now_us();
        schedule_init(&r.sched, r.first_us, seconds, rate, BACKLOG_S);
    }
    r.stop = r.first_us + (uint64_t)(seconds * 1e6);
    r.drain_until = r.stop + DRAIN_US;

    struct epoll_event events[256];
    for (;;) {
        uint64_t t = now_us();
        if (open_loop(&r))
            dispatch(&r, t);
        if (finished(&r, conns, connections, t))
            break;
        uint64_t until = t < r.stop ? r.stop : r.drain_until;
        if (open_loop(&r)) {
            arm_timer(&r);
            if (until > t + CHECK_MS * 1000)
                until = t + CHECK_MS * 1000;
        }
        int timeout_ms = (int)((until - t) / 1000) + 1;
        int n = epoll_wait(r.epoll, events, 256, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) { /* the timer: a request is due */
                uint64_t expirations;
                if (read(r.timer, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
                    die("timerfd read", strerror(errno));
                r.armed_at = 0;
                continue;
            }
            conn_event(&r, events[i].data.ptr, events[i].events);
        }
    }
    r.errors += in_flight(conns, connections); /* unanswered after the drain */

    double secs = (double)((r.last_us > r.first_us ? r.last_us : now_us()) - r.first_us) / 1e6;
    int sustained = !open_loop(&r) || !r.overrun;
    printf("{\"connections\": %ld, \"requests\": %ld, \"ok\": %ld, \"non2xx\": %ld, "
           "\"errors\": %ld, \"reconnects\": %ld, \"seconds\": %.3f, \"rate\": %.1f, ",
           connections, r.requests, r.ok, r.non2xx, r.errors, r.reconnects, secs,
           secs > 0 ? (double)r.requests / secs : 0.0);
    if (sustained && r.hist.count > 0)
        printf("\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, ",
               (double)latency_quantile(&r.hist, 0.50) / 1e3,
               (double)latency_quantile(&r.hist, 0.99) / 1e3,
               (double)latency_quantile(&r.hist, 1.0) / 1e3);
    else /* none, or the latencies of an overload, not of the rate asked for */
        printf("\"p50_ms\": null, \"p99_ms\": null, \"max_ms\": null, ");
    if (open_loop(&r))
        printf("\"target_rate\": %.1f, \"scheduled\": %llu, \"sent\": %llu, \"sustained\": %s, "
               "\"max_backlog_ms\": %.1f, ",
               rate, (unsigned long long)r.sched.total, (unsigned long long)r.sched.taken,
               sustained ? "true" : "false", (double)r.sched.max_backlog * 1e3 / rate);
    printf("\"cpu_s\": %.3f}\n", cpu_seconds());
    for (long i = 0; i < connections; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    if (open_loop(&r))
        close(r.timer);
    close(r.epoll);
    free(conns);
    free(r.free);
    freeaddrinfo(r.addr);
    free((char *)r.request);
    free(host);
    free(port);
    return 0;
}
