/*
 * latency.h — a fixed-size log-linear latency histogram for the benchmark
 * tools (raw_amqp, loadgen): record microseconds, read percentiles.
 *
 * Values below 1024 µs are counted exactly; above, each power of two is cut
 * into 512 equal buckets, so a percentile is within 0.2 % of the true value up
 * to 2^40 µs. 16.9 k counters, no allocation, no dependency on the sidecar's
 * code (the tools are the yardstick). Header-only: static functions, one
 * histogram per measured stream, owned by its caller.
 */
#ifndef BENCH_LATENCY_H
#define BENCH_LATENCY_H

#include <stdint.h>
#include <string.h>

#define LATENCY_EXACT   1024
#define LATENCY_SUB     512
#define LATENCY_GROUPS  31
#define LATENCY_BUCKETS (LATENCY_EXACT + LATENCY_GROUPS * LATENCY_SUB)

struct latency {
    uint64_t count;
    uint64_t bucket[LATENCY_BUCKETS];
};

static inline void latency_reset(struct latency *h)
{
    memset(h, 0, sizeof(*h));
}

static inline void latency_record(struct latency *h, uint64_t us)
{
    size_t i;
    if (us < LATENCY_EXACT) {
        i = (size_t)us;
    } else {
        int top = 63 - __builtin_clzll(us); /* >= 10 */
        int shift = top - 9;                /* us >> shift is in [512, 1024) */
        int group = top - 10;
        if (group >= LATENCY_GROUPS) {
            group = LATENCY_GROUPS - 1;
            shift = group + 1;
            us = (uint64_t)(2 * LATENCY_SUB - 1) << shift;
        }
        i = LATENCY_EXACT + (size_t)group * LATENCY_SUB + (size_t)((us >> shift) - LATENCY_SUB);
    }
    h->bucket[i]++;
    h->count++;
}

/* The lower bound, in µs, of the values bucket i counts. */
static inline uint64_t latency_bucket_value(size_t i)
{
    if (i < LATENCY_EXACT)
        return i;
    size_t group = (i - LATENCY_EXACT) / LATENCY_SUB;
    uint64_t sub = (i - LATENCY_EXACT) % LATENCY_SUB + LATENCY_SUB;
    return sub << (group + 1);
}

/* The value at quantile q (0 < q <= 1) in µs; 0 for an empty histogram. */
static inline uint64_t latency_quantile(const struct latency *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < LATENCY_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank)
            return latency_bucket_value(i);
    }
    return latency_bucket_value(LATENCY_BUCKETS - 1);
}

#endif
