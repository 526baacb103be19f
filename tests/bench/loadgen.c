/*
 * loadgen — a closed-loop HTTP/1.1 load generator for the inbound benchmark:
 * N keep-alive connections, each sending one fixed POST and, as soon as its
 * answer is in, the next; so exactly N requests are in flight, the HTTP
 * counterpart of raw_amqp's N publishes awaiting confirms.
 *
 *   loadgen --url http://HOST:PORT/PATH -c N -d SECONDS --body-file F [-H "Name: value"]…
 *
 * One thread, one epoll set (edge-triggered), no allocation per request, so
 * its own cost stays a few µs per request; it reports that cost (cpu_s) so the
 * bench can show it. After SECONDS no new request is sent and the ones in
 * flight are awaited (up to 10 s), so every answer the server sent is counted:
 * the bench checks the 2xx count against the queue.
 *
 * Prints one JSON line: {"connections", "requests": answers read, "ok": 2xx,
 * "non2xx", "errors": connections lost (refused, reset, closed, or an unusable
 * answer), "reconnects", "seconds": first
 * connect to last answer, "rate": answers/s, "p50_ms", "p99_ms", "max_ms":
 * request written → answer complete, "cpu_s": user+system CPU of this process}.
 * Answers must carry Content-Length (libmicrohttpd's do); chunked ones are errors.
 * Independent of the sidecar's code, like raw_amqp.
 */
#define _GNU_SOURCE /* memmem */
#include "latency.h"

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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX  16384 /* the sidecar's answers are ~200 bytes */
#define DRAIN_US    10000000ULL
#define HEADERS_MAX 16

struct conn {
    int fd;
    size_t written; /* bytes of the request written so far */
    size_t have;    /* bytes of the answer read so far */
    uint64_t start; /* µs: the request's first byte was written */
    int busy;       /* a request is in flight */
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
    return 0;
}

static void conn_close(struct run *r, struct conn *c)
{
    epoll_ctl(r->epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->busy = 0;
}

/* Writes what is left of the request; a new one starts when none is in flight. */
static int conn_write(struct run *r, struct conn *c, uint64_t t)
{
    if (!c->busy) {
        if (t >= r->stop)
            return 0;
        c->busy = 1;
        c->written = c->have = 0;
        c->start = t;
    }
    while (c->written < r->request_len) {
        ssize_t n = write(c->fd, r->request + c->written, r->request_len - c->written);
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        c->written += (size_t)n;
    }
    return 0;
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
 * seconds nothing should close one (a refused connect lands here as well). */
static void conn_lost(struct run *r, struct conn *c, uint64_t t)
{
    r->errors++;
    conn_close(r, c);
    if (t < r->stop) {
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
    if ((events & EPOLLOUT) || !c->busy)
        if (conn_write(r, c, t) != 0)
            conn_lost(r, c, t);
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
    double seconds = 5;
    char *headers[HEADERS_MAX];
    int n_headers = 0;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},       {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},  {"header", required_argument, NULL, 'H'},
        {"body-file", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "u:c:d:H:b:", opts, NULL)) != -1) {
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
        default:
            die("usage: loadgen --url http://HOST:PORT/PATH -c N -d SECONDS --body-file F "
                "[-H 'Name: value']...",
                NULL);
        }
    }
    if (url == NULL || body_file == NULL || connections < 1 || seconds <= 0)
        die("--url, --body-file, -c >= 1 and -d > 0 are required", NULL);

    static struct run r; /* the histogram is 135 kB: not on the stack */
    char *host, *port;
    r.request = build_request(url, headers, n_headers, body_file, &r.request_len, &host, &port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, port, &hints, &r.addr);
    if (gai != 0)
        die("cannot resolve the --url host", gai_strerror(gai));
    r.epoll = epoll_create1(EPOLL_CLOEXEC);
    latency_reset(&r.hist);

    struct conn *conns = calloc((size_t)connections, sizeof(*conns));
    r.first_us = now_us();
    r.stop = r.first_us + (uint64_t)(seconds * 1e6);
    r.drain_until = r.stop + DRAIN_US;
    for (long i = 0; i < connections; i++)
        conn_open(&r, &conns[i]);

    struct epoll_event events[256];
    for (;;) {
        uint64_t t = now_us();
        if (t >= r.stop) { /* stopping: wait only for answers in flight */
            long busy = 0;
            for (long i = 0; i < connections; i++)
                busy += conns[i].fd >= 0 && conns[i].busy;
            if (busy == 0 || t >= r.drain_until)
                break;
        }
        uint64_t until = t < r.stop ? r.stop : r.drain_until;
        int timeout_ms = (int)((until - t) / 1000) + 1;
        int n = epoll_wait(r.epoll, events, 256, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait", strerror(errno));
        for (int i = 0; i < n; i++)
            conn_event(&r, events[i].data.ptr, events[i].events);
    }
    long unanswered = 0;
    for (long i = 0; i < connections; i++)
        unanswered += conns[i].fd >= 0 && conns[i].busy;
    r.errors += unanswered;

    double secs = (double)((r.last_us > r.first_us ? r.last_us : now_us()) - r.first_us) / 1e6;
    printf("{\"connections\": %ld, \"requests\": %ld, \"ok\": %ld, \"non2xx\": %ld, "
           "\"errors\": %ld, \"reconnects\": %ld, \"seconds\": %.3f, \"rate\": %.1f, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"cpu_s\": %.3f}\n",
           connections, r.requests, r.ok, r.non2xx, r.errors, r.reconnects, secs,
           secs > 0 ? (double)r.requests / secs : 0.0,
           (double)latency_quantile(&r.hist, 0.50) / 1e3,
           (double)latency_quantile(&r.hist, 0.99) / 1e3,
           (double)latency_quantile(&r.hist, 1.0) / 1e3, cpu_seconds());
    for (long i = 0; i < connections; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(conns);
    freeaddrinfo(r.addr);
    free((char *)r.request);
    free(host);
    free(port);
    return 0;
}
