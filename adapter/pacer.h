/*
 * pacer — the rate limit and the adaptive back-off of one route that calls the
 * legacy side (http and soap outbound, poll inbound; `rate = { … }`).
 *
 * Every legacy call waits its turn here. pacer_submit lets it go at once when
 * the token bucket (token_bucket.h) has a token and no pause holds the route;
 * otherwise the call is queued (first come, first served) and a timer on the
 * route's loop lets it go when its token is there. Nothing sleeps: a waiting
 * outbound delivery stays an unacked delivery in the prefetch window, a waiting
 * poll is its next GET.
 *
 * pacer_hold is the legacy side saying "slow down" (a 429 or 503 with
 * Retry-After): the whole route holds for that long — like an open circuit
 * (circuit.h), but not a failure — then resumes at the rate with one call, not
 * a burst saved up by the pause; the call that was told to wait goes first.
 * One log line when the pause starts, one when it ends (with the count held);
 * the metrics throttled_seconds_total and throttle_state; pacer_describe for
 * /readyz.
 *
 * Threads: all but pacer_describe on the route's loop thread.
 * Ownership: the pacer owns no waiter. A struct pacer_wait lives inside the
 * caller's own struct; the pacer links it until it calls go, or until the
 * caller takes it back with pacer_take or pacer_cancel.
 */
#ifndef SIDECAR_PACER_H
#define SIDECAR_PACER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct loop;

struct pacer_wait {
    void (*go)(struct pacer_wait *w); /* set by the caller: the call may start now */
    struct pacer_wait *next;          /* the pacer's */
    bool queued;                      /* the pacer's */
};

/* Also the values of the throttle_state gauge. */
enum pacer_state {
    PACER_FLOWING, /* calls go as they come */
    PACER_PACING,  /* calls wait for their token */
    PACER_PAUSED,  /* the legacy side asked to wait: nothing goes */
};

struct pacer_config {
    const char *route;              /* for logs; borrowed, outlives the pacer */
    const char *held;               /* what waits, for logs: "deliveries", "polls"; borrowed */
    double per_second;              /* > 0 */
    int burst;                      /* >= 1 */
    struct loop *loop;              /* the route's loop: the timer runs there */
    _Atomic uint64_t *throttled_ms; /* metrics: milliseconds paused, or NULL */
    _Atomic int64_t *gauge;         /* metrics: enum pacer_state, or NULL */
};

/* Copies cfg (the strings stay borrowed). Starts flowing with a full bucket. */
struct pacer *pacer_new(const struct pacer_config *cfg);
/* Loop thread (or after it ended). Waiters still linked are simply forgotten. */
void pacer_free(struct pacer *p);

/* w's call wants to go: now (w->go runs before this returns) or, when it
 * must wait, from the loop's timer later. */
void pacer_submit(struct pacer *p, struct pacer_wait *w);
/* The legacy side told w's call to wait `seconds` (> 0): the route pauses that
 * long (a longer pause already running stays), and w goes first after it. why
 * (copied, cut at 300 bytes) says who asked, for the log and /readyz. */
void pacer_hold(struct pacer *p, struct pacer_wait *w, double seconds, const char *why);

/* Takes w back if it waits; true if it did. */
bool pacer_cancel(struct pacer *p, struct pacer_wait *w);
/* Takes back the first waiter (drain, a lost connection, an open circuit); NULL if none. */
struct pacer_wait *pacer_take(struct pacer *p);
/* Shutdown: no timer any more, nothing goes; waiters stay until taken. */
void pacer_stop(struct pacer *p);

/* Any thread: while paused, appends why and when it resumes to detail and
 * returns true. The route stays ready: a pause is not a failure. */
bool pacer_describe(const struct pacer *p, struct buf *detail);

#endif
