/*
 * schedule.h — the open-loop request schedule of the benchmark tools
 * (loadgen --rate, raw_amqp publish --rate): request k is due at
 * start + k × 10^6 / rate µs, evenly spaced (not Poisson: a fixed spacing is
 * reproducible and is what wrk2 does), for every k whose time is before stop.
 *
 * A tool takes the due requests in order, sends each as soon as it can and
 * measures its latency from its scheduled time (schedule_take's *at), not from
 * when it was sent: a stall of the server delays the sends behind it and that
 * delay is counted (no coordinated omission). If more than backlog_limit
 * requests are due but not yet taken (1 s worth, say) the tool is not keeping
 * the rate, and its latencies describe an overload, not that rate:
 * schedule_overrun says so. Times are computed from k, never accumulated, so
 * nothing drifts over a long run. Header-only, no allocation, owned by the
 * caller, like latency.h.
 */
#ifndef BENCH_SCHEDULE_H
#define BENCH_SCHEDULE_H

#include <math.h>
#include <stdint.h>

struct schedule {
    uint64_t start_us, stop_us; /* requests are due in [start_us, stop_us) */
    double interval_us;         /* 10^6 / rate */
    uint64_t total;             /* how many are due before stop_us */
    uint64_t taken;             /* how many schedule_take handed out */
    uint64_t backlog_limit;     /* more due and untaken than this: overrun */
    uint64_t max_backlog;       /* the most due and untaken seen by schedule_take */
};

/* When request k (0-based) is due, in µs. */
static inline uint64_t schedule_at(const struct schedule *s, uint64_t k)
{
    return s->start_us + (uint64_t)((double)k * s->interval_us);
}

/* rate > 0 requests/s from start_us for seconds > 0; backlog_seconds of
 * requests may be due and untaken before schedule_overrun (at least one). */
static inline void schedule_init(struct schedule *s, uint64_t start_us, double seconds, double rate,
                                 double backlog_seconds)
{
    s->start_us = start_us;
    s->stop_us = start_us + (uint64_t)(seconds * 1e6);
    s->interval_us = 1e6 / rate;
    s->taken = s->max_backlog = 0;
    double limit = ceil(rate * backlog_seconds);
    s->backlog_limit = limit < 1 ? 1 : (uint64_t)limit;
    uint64_t n = (uint64_t)ceil((double)(s->stop_us - start_us) / s->interval_us);
    while (n > 0 && schedule_at(s, n - 1) >= s->stop_us) /* correct the rounding */
        n--;
    while (schedule_at(s, n) < s->stop_us)
        n++;
    s->total = n;
}

/* How many requests are due at now_us (scheduled at or before it). */
static inline uint64_t schedule_due(const struct schedule *s, uint64_t now_us)
{
    if (now_us < s->start_us)
        return 0;
    uint64_t k = (uint64_t)((double)(now_us - s->start_us) / s->interval_us) + 1;
    while (k > 0 && schedule_at(s, k - 1) > now_us) /* correct the rounding */
        k--;
    while (k < s->total && schedule_at(s, k) <= now_us)
        k++;
    return k < s->total ? k : s->total;
}

/* Due and not yet taken at now_us. */
static inline uint64_t schedule_backlog(const struct schedule *s, uint64_t now_us)
{
    uint64_t due = schedule_due(s, now_us);
    return due > s->taken ? due - s->taken : 0;
}

/* 1 and *at_us = the next request's scheduled time if one is due at now_us;
 * 0 if none is (yet, or any more). */
static inline int schedule_take(struct schedule *s, uint64_t now_us, uint64_t *at_us)
{
    uint64_t backlog = schedule_backlog(s, now_us);
    if (backlog > s->max_backlog)
        s->max_backlog = backlog;
    if (backlog == 0)
        return 0;
    *at_us = schedule_at(s, s->taken++);
    return 1;
}

/* When the next untaken request is due; UINT64_MAX once all are taken. */
static inline uint64_t schedule_next_us(const struct schedule *s)
{
    return s->taken < s->total ? schedule_at(s, s->taken) : UINT64_MAX;
}

/* Every request of the schedule has been taken. */
static inline int schedule_done(const struct schedule *s)
{
    return s->taken >= s->total;
}

/* More than backlog_limit are due and untaken: the rate is not being kept. */
static inline int schedule_overrun(const struct schedule *s, uint64_t now_us)
{
    return schedule_backlog(s, now_us) > s->backlog_limit;
}

#endif
