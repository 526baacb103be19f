/*
 * backoff — see backoff.h. Jitter uses a per-thread xorshift seeded from the
 * clock and thread: it needs to be spread out, not unpredictable.
 */
#include "backoff.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

void backoff_init(struct backoff *b, double base, double max)
{
    b->base = base;
    b->max = max < base ? base : max;
    b->attempt = 0;
}

void backoff_reset(struct backoff *b)
{
    b->attempt = 0;
}

double backoff_nominal(const struct backoff *b, int attempt)
{
    double d = b->base;
    for (int i = 0; i < attempt && d < b->max; i++)
        d *= 2;
    return d > b->max ? b->max : d;
}

static double random_unit(void)
{
    static __thread uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)pthread_self();
        if (state == 0)
            state = 0x9e3779b97f4a7c15ull;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / (double)(1ull << 53);
}

double backoff_next(struct backoff *b)
{
    double d = backoff_nominal(b, b->attempt);
    if (b->attempt < 64)
        b->attempt++;
    return d / 2 + random_unit() * (d / 2);
}
