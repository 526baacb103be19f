/*
 * token_bucket — the arithmetic of a rate limit: tokens flow in at `per_second`
 * into a bucket that holds at most `burst`; each legacy call takes one. Over
 * any span of T seconds at most burst + per_second·T calls pass.
 *
 * Pure: the caller passes the time (monotonic milliseconds, loop_now_ms() in
 * the daemon, a fake clock in tests), so nothing here sleeps or reads a clock.
 * A clock that steps back is treated as standing still.
 */
#ifndef SIDECAR_TOKEN_BUCKET_H
#define SIDECAR_TOKEN_BUCKET_H

#include <stdint.h>

struct token_bucket {
    double per_ms; /* tokens added per millisecond */
    double burst;  /* most tokens it holds */
    double tokens;
    int64_t last_ms; /* when tokens was last brought up to date */
};

/* per_second > 0, burst >= 1. Starts full: the first `burst` calls pass at once. */
void token_bucket_init(struct token_bucket *tb, double per_second, int burst, int64_t now_ms);

/* Takes one token: 0 when taken, else the milliseconds (>= 1) until one is
 * there, and nothing is taken. */
int64_t token_bucket_take(struct token_bucket *tb, int64_t now_ms);

/* Sets the bucket to `tokens` (at most burst) at now: after a pause the route
 * resumes at the rate, with one call, not with a burst the pause saved up. */
void token_bucket_reset(struct token_bucket *tb, double tokens, int64_t now_ms);

#endif
