/*
 * httpd_watch — see httpd_watch.h.
 *
 * The connections of a listener are a doubly linked list under one mutex,
 * taken by MHD's threads only to add and remove (once per connection); a
 * connection's phase and times are atomics its MHD thread writes and the
 * watcher reads. A sweep is a walk of the list: a comparison per connection,
 * plus one recv(MSG_PEEK) per connection still reading a request, which is
 * how a half-close MHD missed is found.
 */
#include "httpd_watch.h"

#include "log.h"
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define WATCH_TICK_MS 250

enum conn_phase { CONN_READING, CONN_BUSY, CONN_IDLE };

struct http_conn {
    struct http_conn *prev, *next;
    struct http_watch *watch;
    int fd;
    bool shut;                /* shut down by the watcher: nothing more to do (lock) */
    _Atomic int phase;        /* enum conn_phase */
    _Atomic int64_t deadline; /* ms (loop_now_ms), while reading or idle */
    _Atomic int64_t progress; /* ms: the request's last bytes; 0 = headers not complete */
};

struct http_watch {
    char *listen;
    int64_t read_timeout_ms, idle_timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct http_conn *head;
    bool stopping;
    bool running;
    pthread_t thread;
};

struct http_watch *http_watch_new(const char *listen, int64_t read_timeout_ms,
                                  int64_t idle_timeout_ms)
{
    struct http_watch *w = xcalloc(1, sizeof(*w));
    w->listen = xstrdup(listen);
    w->read_timeout_ms = read_timeout_ms;
    w->idle_timeout_ms = idle_timeout_ms;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    return w;
}

/* ---- connections (MHD's threads) ------------------------------------------------ */

struct http_conn *http_watch_open(struct http_watch *w, int fd)
{
    struct http_conn *c = xcalloc(1, sizeof(*c));
    c->watch = w;
    c->fd = fd;
    atomic_store(&c->phase, CONN_READING);
    atomic_store(&c->deadline, loop_now_ms() + w->read_timeout_ms);
    pthread_mutex_lock(&w->lock);
    c->next = w->head;
    if (w->head)
        w->head->prev = c;
    w->head = c;
    pthread_mutex_unlock(&w->lock);
    return c;
}

void http_watch_close(struct http_watch *w, struct http_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&w->lock);
    free(c);
}

void http_conn_request_line(struct http_conn *c)
{
    if (c == NULL || atomic_load(&c->phase) != CONN_IDLE)
        return; /* the first request's deadline counts from accept */
    atomic_store(&c->deadline, loop_now_ms() + c->watch->read_timeout_ms);
    atomic_store(&c->phase, CONN_READING);
}

void http_conn_progress(struct http_conn *c)
{
    if (c)
        atomic_store(&c->progress, loop_now_ms());
}

bool http_conn_late(const struct http_conn *c)
{
    if (c == NULL || atomic_load(&c->phase) != CONN_READING)
        return false;
    return loop_now_ms() >= atomic_load(&c->deadline);
}

void http_conn_busy(struct http_conn *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->phase, CONN_BUSY);
    atomic_store(&c->progress, 0);
}

void http_conn_idle(struct http_conn *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->progress, 0);
    atomic_store(&c->deadline, loop_now_ms() + c->watch->idle_timeout_ms);
    atomic_store(&c->phase, CONN_IDLE);
}

size_t http_watch_uploading(struct http_watch *w, int64_t window_ms)
{
    int64_t now = loop_now_ms();
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (struct http_conn *c = w->head; c; c = c->next) {
        int64_t progress = atomic_load(&c->progress);
        if (!c->shut && atomic_load(&c->phase) == CONN_READING && progress != 0 &&
            now - progress < window_ms)
            n++;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* ---- the watcher ------------------------------------------------------------------ */

struct sweep_counts {
    size_t late, gone;
};

/* Has the peer of a connection still reading a request closed or reset it? */
static bool peer_gone(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* One pass over the list (lock held): shut down what must go. */
static void sweep(struct http_watch *w, struct sweep_counts *counts)
{
    int64_t now = loop_now_ms();
    for (struct http_conn *c = w->head; c; c = c->next) {
        if (c->shut)
            continue;
        int phase = atomic_load(&c->phase);
        if (phase == CONN_BUSY)
            continue;
        bool late = now >= atomic_load(&c->deadline);
        bool gone = !late && phase == CONN_READING && peer_gone(c->fd);
        if (!late && !gone)
            continue;
        /* MHD is woken, reads end of file and closes the connection. A gone
         * client's is only shut for reading: if MHD consumed a complete request
         * between our peek and now (a client may half-close after sending it),
         * its answer can still be written. */
        shutdown(c->fd, late ? SHUT_RDWR : SHUT_RD);
        c->shut = true;
        if (phase == CONN_READING && late)
            counts->late++;
        else if (gone)
            counts->gone++;
    }
}

static void *watch_main(void *arg)
{
    struct http_watch *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->wake, &w->lock, &ts);
        if (w->stopping)
            break;
        struct sweep_counts counts = {0};
        sweep(w, &counts);
        if (counts.late == 0 && counts.gone == 0)
            continue;
        pthread_mutex_unlock(&w->lock);
        if (counts.late)
            log_info(NULL,
                     "http server %s: closed %zu connection(s) that sent no complete request "
                     "within read_timeout (%.1fs)",
                     w->listen, counts.late, (double)w->read_timeout_ms / 1000);
        if (counts.gone)
            log_info(NULL,
                     "http server %s: closed %zu connection(s) whose client went away in the "
                     "middle of a request",
                     w->listen, counts.gone);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int http_watch_start(struct http_watch *w)
{
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        return -1;
    pthread_setname_np(w->thread, "http-watch");
    w->running = true;
    return 0;
}

void http_watch_free(struct http_watch *w)
{
    if (w == NULL)
        return;
    if (w->running) {
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    while (w->head) /* none left once MHD stopped; be safe */
        http_watch_close(w, w->head);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->listen);
    free(w);
}
