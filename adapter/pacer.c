/*
 * pacer — see pacer.h for the contract.
 *
 * One FIFO of waiters and one timer: `pump` lets waiters go while there are
 * tokens and no pause, else arms the timer for the next token or the end of
 * the pause. A waiter's go may submit again (a call refused synchronously, an
 * ordered retry): `pumping` keeps that from recursing; the running pump picks
 * it up. The pause's wall-clock end, the count held and the reason are copied
 * under a mutex for /readyz on the admin thread.
 */
#include "pacer.h"

#include "log.h"
#include "loop.h"
#include "token_bucket.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WHY_MAX 300

struct pacer {
    struct pacer_config cfg;
    struct token_bucket bucket;
    struct pacer_wait *head, *tail;
    size_t n_waiting;
    uint64_t timer;
    int64_t paused_until; /* loop_now_ms; 0 while not paused */
    int64_t paused_since;
    bool pumping, stopped;

    /* for pacer_describe, any thread */
    pthread_mutex_t lock;
    long long resume_wall; /* time(NULL) when the pause ends; 0 while not paused */
    atomic_size_t held;    /* n_waiting */
    char why[WHY_MAX + 1];
};

struct pacer *pacer_new(const struct pacer_config *cfg)
{
    struct pacer *p = xcalloc(1, sizeof(*p));
    p->cfg = *cfg;
    token_bucket_init(&p->bucket, cfg->per_second, cfg->burst, loop_now_ms());
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void set_state(struct pacer *p, enum pacer_state state)
{
    if (p->cfg.gauge)
        atomic_store(p->cfg.gauge, (int64_t)state);
}

static void publish_pause(struct pacer *p, long long resume_wall, const char *why)
{
    pthread_mutex_lock(&p->lock);
    p->resume_wall = resume_wall;
    if (why)
        snprintf(p->why, sizeof(p->why), "%s", why);
    pthread_mutex_unlock(&p->lock);
}

static void count_paused(struct pacer *p, int64_t now)
{
    if (p->cfg.throttled_ms && now > p->paused_since)
        atomic_fetch_add(p->cfg.throttled_ms, (uint64_t)(now - p->paused_since));
    p->paused_since = now;
}

void pacer_free(struct pacer *p)
{
    if (p == NULL)
        return;
    pacer_stop(p);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void unlink_head(struct pacer *p)
{
    struct pacer_wait *w = p->head;
    p->head = w->next;
    if (p->head == NULL)
        p->tail = NULL;
    w->next = NULL;
    w->queued = false;
    p->n_waiting--;
    atomic_store(&p->held, p->n_waiting);
}

static void on_timer(struct loop *loop, void *arg);

static void arm(struct pacer *p, int64_t ms)
{
    if (p->timer)
        loop_timer_cancel(p->cfg.loop, p->timer);
    p->timer = loop_timer(p->cfg.loop, ms, on_timer, p);
}

static void end_pause(struct pacer *p, int64_t now)
{
    double seconds = (double)(now - p->paused_since) / 1000.0;
    count_paused(p, now);
    p->paused_until = 0;
    publish_pause(p, 0, NULL);
    token_bucket_reset(&p->bucket, 1, now);
    log_info(p->cfg.route, "pause over after %.1fs: resuming at %g calls/s with %zu %s held",
             seconds, p->cfg.per_second, p->n_waiting, p->cfg.held);
}

/* Lets waiters go while tokens last; arms the timer for the next one. */
static void pump(struct pacer *p)
{
    if (p->pumping)
        return;
    p->pumping = true;
    while (!p->stopped) {
        int64_t now = loop_now_ms();
        if (p->paused_until) {
            if (now < p->paused_until) {
                arm(p, p->paused_until - now); /* ends the pause on time, waiters or not */
                break;
            }
            end_pause(p, now);
        }
        if (p->head == NULL)
            break;
        int64_t wait = token_bucket_take(&p->bucket, now);
        if (wait > 0) {
            arm(p, wait);
            break;
        }
        struct pacer_wait *w = p->head;
        unlink_head(p);
        w->go(w); /* may submit, hold or cancel: the loop looks again */
    }
    p->pumping = false;
    set_state(p, p->paused_until ? PACER_PAUSED : p->head ? PACER_PACING : PACER_FLOWING);
}

static void on_timer(struct loop *loop, void *arg)
{
    struct pacer *p = arg;
    p->timer = 0;
    pump(p);
}

void pacer_submit(struct pacer *p, struct pacer_wait *w)
{
    w->next = NULL;
    w->queued = true;
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    atomic_store(&p->held, ++p->n_waiting);
    pump(p);
}

void pacer_hold(struct pacer *p, struct pacer_wait *w, double seconds, const char *why)
{
    w->next = p->head;
    w->queued = true;
    p->head = w;
    if (p->tail == NULL)
        p->tail = w;
    atomic_store(&p->held, ++p->n_waiting);

    int64_t now = loop_now_ms();
    int64_t until = now + loop_ms(seconds);
    if (until > p->paused_until) {
        bool started = p->paused_until == 0;
        if (started)
            p->paused_since = now;
        p->paused_until = until;
        publish_pause(p, (long long)time(NULL) + (long long)ceil(seconds), why);
        if (started)
            log_warn(p->cfg.route,
                     "the legacy side asked to wait %gs (%.*s): pausing the route, not "
                     "counted as a failure; %zu %s held",
                     seconds, WHY_MAX, why, p->n_waiting, p->cfg.held);
        else
            log_info(p->cfg.route, "the legacy side asked again (%.*s): pause extended to %.0fs",
                     WHY_MAX, why, (double)(until - p->paused_since) / 1000.0);
    }
    set_state(p, PACER_PAUSED);
    if (!p->stopped && !p->pumping)
        arm(p, p->paused_until - now);
}

bool pacer_cancel(struct pacer *p, struct pacer_wait *w)
{
    if (!w->queued)
        return false;
    struct pacer_wait *prev = NULL;
    for (struct pacer_wait *x = p->head; x; prev = x, x = x->next) {
        if (x != w)
            continue;
        if (prev)
            prev->next = w->next;
        else
            p->head = w->next;
        if (p->tail == w)
            p->tail = prev;
        w->next = NULL;
        w->queued = false;
        p->n_waiting--;
        atomic_store(&p->held, p->n_waiting);
        return true;
    }
    return false;
}

struct pacer_wait *pacer_take(struct pacer *p)
{
    struct pacer_wait *w = p->head;
    if (w)
        unlink_head(p);
    return w;
}

void pacer_stop(struct pacer *p)
{
    if (p->timer)
        loop_timer_cancel(p->cfg.loop, p->timer);
    p->timer = 0;
    if (!p->stopped && p->paused_until)
        count_paused(p, loop_now_ms());
    p->stopped = true;
}

bool pacer_describe(const struct pacer *p, struct buf *detail)
{
    struct pacer *mp = (struct pacer *)p;
    pthread_mutex_lock(&mp->lock);
    bool paused = mp->resume_wall != 0;
    if (paused && detail) {
        long long left = mp->resume_wall - (long long)time(NULL);
        buf_printf(detail,
                   "%spaused: the legacy side asked to wait (%s); resumes in %llds, %zu %s held",
                   detail->len ? "; " : "", mp->why, left > 0 ? left : 0, atomic_load(&mp->held),
                   p->cfg.held);
    }
    pthread_mutex_unlock(&mp->lock);
    return paused;
}
