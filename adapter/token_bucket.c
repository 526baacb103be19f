/*
 * token_bucket — see token_bucket.h for the contract.
 *
 * Tokens are a double and refill continuously, so a rate that does not divide
 * a second (3/s) neither drifts nor rounds to a coarser one; only the wait
 * handed to the timer is rounded, up, so a timer never fires before the token.
 */
#include "token_bucket.h"

#include <math.h>

void token_bucket_init(struct token_bucket *tb, double per_second, int burst, int64_t now_ms)
{
    tb->per_ms = per_second / 1000.0;
    tb->burst = burst < 1 ? 1 : burst;
    tb->tokens = tb->burst;
    tb->last_ms = now_ms;
}

static void refill(struct token_bucket *tb, int64_t now_ms)
{
    if (now_ms <= tb->last_ms)
        return; /* the same instant, or a clock that stepped back */
    tb->tokens += (double)(now_ms - tb->last_ms) * tb->per_ms;
    if (tb->tokens > tb->burst)
        tb->tokens = tb->burst;
    tb->last_ms = now_ms;
}

int64_t token_bucket_take(struct token_bucket *tb, int64_t now_ms)
{
    refill(tb, now_ms);
    /* A hair of tolerance: 0.1 + 0.9 tokens of float arithmetic is a whole one. */
    if (tb->tokens >= 1.0 - 1e-9) {
        tb->tokens -= 1.0;
        if (tb->tokens < 0)
            tb->tokens = 0;
        return 0;
    }
    double wait = ceil((1.0 - tb->tokens) / tb->per_ms - 1e-6); /* 1.0000000001 ms is 1 */
    return wait < 1 ? 1 : (int64_t)wait;
}

void token_bucket_reset(struct token_bucket *tb, double tokens, int64_t now_ms)
{
    tb->tokens = tokens < 0 ? 0 : tokens > tb->burst ? tb->burst : tokens;
    tb->last_ms = now_ms;
}
