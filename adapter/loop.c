/*
 * loop — poll(2) over a handful of descriptors, an eventfd for cross-thread
 * wakeups, and a short list of timers.
 *
 * The sets are small (a broker socket, an eventfd, at most a few dozen curl
 * sockets), so plain arrays and linear scans are faster and simpler than
 * trees. Callbacks may add or remove watches and timers while the loop
 * dispatches: removals only mark an entry dead, and dead entries are swept
 * after dispatch.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct watch {
    int fd;
    short events;
    loop_fd_fn fn;
    void *arg;
    bool dead;
};

struct timer {
    uint64_t id;
    int64_t due;
    loop_timer_fn fn;
    void *arg;
};

struct prepare {
    loop_prepare_fn fn;
    void *arg;
};

struct post {
    loop_post_fn fn;
    void *arg;
    struct post *next;
};

struct loop {
    struct watch *watches;
    size_t n_watches, cap_watches;
    struct timer *timers;
    size_t n_timers, cap_timers;
    uint64_t next_timer_id;
    struct prepare *prepare;
    size_t n_prepare;
    int wake_fd;
    pthread_mutex_t post_lock;
    struct post *post_head, *post_tail;
    atomic_bool stop;
    pthread_t thread; /* valid while running */
    atomic_bool running;
};

int64_t loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return NULL;
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        free(loop);
        return NULL;
    }
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->next_timer_id = 1;
    return loop;
}

void loop_free(struct loop *loop)
{
    if (loop == NULL)
        return;
    struct post *p = loop->post_head;
    while (p != NULL) {
        struct post *next = p->next;
        free(p);
        p = next;
    }
    close(loop->wake_fd);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop->watches);
    free(loop->timers);
    free(loop->prepare);
    free(loop);
}

static struct watch *watch_find(struct loop *loop, int fd)
{
    for (size_t i = 0; i < loop->n_watches; i++)
        if (loop->watches[i].fd == fd && !loop->watches[i].dead)
            return &loop->watches[i];
    return NULL;
}

int loop_watch(struct loop *loop, int fd, short events, loop_fd_fn fn, void *arg)
{
    struct watch *w = watch_find(loop, fd);
    if (w == NULL) {
        if (loop->n_watches == loop->cap_watches) {
            size_t cap = loop->cap_watches ? loop->cap_watches * 2 : 8;
            struct watch *grown = realloc(loop->watches, cap * sizeof(*grown));
            if (grown == NULL)
                return -1;
            loop->watches = grown;
            loop->cap_watches = cap;
        }
        w = &loop->watches[loop->n_watches++];
    }
    *w = (struct watch){.fd = fd, .events = events, .fn = fn, .arg = arg};
    return 0;
}

void loop_unwatch(struct loop *loop, int fd)
{
    struct watch *w = watch_find(loop, fd);
    if (w != NULL)
        w->dead = true;
}

static void watches_sweep(struct loop *loop)
{
    size_t kept = 0;
    for (size_t i = 0; i < loop->n_watches; i++)
        if (!loop->watches[i].dead)
            loop->watches[kept++] = loop->watches[i];
    loop->n_watches = kept;
}

uint64_t loop_timer(struct loop *loop, int64_t ms, loop_timer_fn fn, void *arg)
{
    if (loop->n_timers == loop->cap_timers) {
        size_t cap = loop->cap_timers ? loop->cap_timers * 2 : 8;
        struct timer *grown = realloc(loop->timers, cap * sizeof(*grown));
        if (grown == NULL)
            return 0;
        loop->timers = grown;
        loop->cap_timers = cap;
    }
    uint64_t id = loop->next_timer_id++;
    ms = ms < 0 ? 0 : ms > LOOP_MS_MAX ? LOOP_MS_MAX : ms;
    loop->timers[loop->n_timers++] =
        (struct timer){.id = id, .due = loop_now_ms() + ms, .fn = fn, .arg = arg};
    return id;
}

int64_t loop_ms(double seconds)
{
    if (!(seconds > 0)) /* NaN too */
        return 0;
    if (seconds >= (double)LOOP_MS_MAX / 1000)
        return LOOP_MS_MAX;
    return (int64_t)(seconds * 1000 + 0.5);
}

void loop_timer_cancel(struct loop *loop, uint64_t id)
{
    for (size_t i = 0; i < loop->n_timers; i++) {
        if (loop->timers[i].id == id) {
            loop->timers[i] = loop->timers[--loop->n_timers];
            return;
        }
    }
}

int loop_add_prepare(struct loop *loop, loop_prepare_fn fn, void *arg)
{
    struct prepare *grown = realloc(loop->prepare, (loop->n_prepare + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    loop->prepare = grown;
    loop->prepare[loop->n_prepare++] = (struct prepare){.fn = fn, .arg = arg};
    return 0;
}

void loop_remove_prepare(struct loop *loop, loop_prepare_fn fn, void *arg)
{
    size_t kept = 0;
    for (size_t i = 0; i < loop->n_prepare; i++)
        if (loop->prepare[i].fn != fn || loop->prepare[i].arg != arg)
            loop->prepare[kept++] = loop->prepare[i];
    loop->n_prepare = kept;
}

struct call {
    loop_post_fn fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    bool done;
};

static void call_on_thread(void *arg)
{
    struct call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->lock);
    c->done = true;
    pthread_cond_signal(&c->done_cond);
    pthread_mutex_unlock(&c->lock);
}

void loop_call(struct loop *loop, loop_post_fn fn, void *arg)
{
    struct call c = {.fn = fn, .arg = arg};
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.done_cond, NULL);
    while (loop_post(loop, call_on_thread, &c) != 0)
        poll(NULL, 0, 1); /* out of memory: fn must still run there, not here */
    pthread_mutex_lock(&c.lock);
    while (!c.done)
        pthread_cond_wait(&c.done_cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.done_cond);
}

int loop_post(struct loop *loop, loop_post_fn fn, void *arg)
{
    struct post *p = malloc(sizeof(*p));
    if (p == NULL)
        return -1;
    *p = (struct post){.fn = fn, .arg = arg};
    pthread_mutex_lock(&loop->post_lock);
    if (loop->post_tail != NULL)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_lock);
    loop_wake(loop);
    return 0;
}

void loop_wake(struct loop *loop)
{
    uint64_t one = 1;
    ssize_t ignored = write(loop->wake_fd, &one, sizeof(one));
    (void)ignored;
}

void loop_stop(struct loop *loop)
{
    atomic_store(&loop->stop, true);
    loop_wake(loop);
}

bool loop_stopping(const struct loop *loop)
{
    return atomic_load(&((struct loop *)loop)->stop);
}

static void posts_run(struct loop *loop)
{
    uint64_t count;
    ssize_t ignored = read(loop->wake_fd, &count, sizeof(count));
    (void)ignored;
    pthread_mutex_lock(&loop->post_lock);
    struct post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (p != NULL) {
        struct post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

/* Runs the timers due now; a timer a callback adds waits for the next turn. */
static void timers_run(struct loop *loop, int64_t now)
{
    uint64_t due[loop->n_timers + 1];
    size_t n_due = 0;
    for (size_t i = 0; i < loop->n_timers; i++)
        if (loop->timers[i].due <= now)
            due[n_due++] = loop->timers[i].id;
    for (size_t d = 0; d < n_due; d++) {
        for (size_t i = 0; i < loop->n_timers; i++) {
            if (loop->timers[i].id != due[d])
                continue;
            struct timer t = loop->timers[i];
            loop->timers[i] = loop->timers[--loop->n_timers];
            t.fn(loop, t.arg);
            break;
        }
    }
}

/* The prepare hooks run first: one may add a timer (a zero one to flush what it
 * queued, or to read frames rabbitmq-c holds), which must count in this sleep. */
static int next_timeout(struct loop *loop)
{
    int64_t timeout = -1;
    for (size_t i = 0; i < loop->n_prepare; i++) {
        int limit = loop->prepare[i].fn(loop, loop->prepare[i].arg);
        if (limit >= 0 && (timeout < 0 || limit < timeout))
            timeout = limit;
    }
    int64_t now = loop_now_ms();
    for (size_t i = 0; i < loop->n_timers; i++) {
        int64_t left = loop->timers[i].due - now;
        if (left < 0)
            left = 0;
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    return timeout > 60000 ? 60000 : (int)timeout;
}

static void loop_once(struct loop *loop)
{
    int timeout = next_timeout(loop); /* first: its hooks may change watches and timers */
    size_t n = loop->n_watches;
    struct pollfd pfds[n + 1];
    pfds[0] = (struct pollfd){.fd = loop->wake_fd, .events = POLLIN};
    for (size_t i = 0; i < n; i++)
        pfds[i + 1] = (struct pollfd){.fd = loop->watches[i].fd, .events = loop->watches[i].events};

    int ready = poll(pfds, n + 1, timeout);
    if (ready < 0 && errno != EINTR)
        return;

    if (ready > 0) {
        if (pfds[0].revents)
            posts_run(loop);
        for (size_t i = 0; i < n; i++) {
            if (pfds[i + 1].revents == 0)
                continue;
            /* The watch may have been replaced or removed by an earlier callback. */
            struct watch *w = &loop->watches[i];
            if (w->dead || w->fd != pfds[i + 1].fd)
                continue;
            w->fn(loop, w->fd, pfds[i + 1].revents, w->arg);
        }
    }
    timers_run(loop, loop_now_ms());
    watches_sweep(loop);
}

bool loop_on_thread(const struct loop *loop)
{
    return atomic_load(&((struct loop *)loop)->running) &&
           pthread_equal(loop->thread, pthread_self());
}

void loop_run(struct loop *loop)
{
    loop->thread = pthread_self();
    atomic_store(&loop->running, true);
    while (!atomic_load(&loop->stop))
        loop_once(loop);
    posts_run(loop);
    atomic_store(&loop->running, false);
}
