/*
 * backoff — exponential reconnect delays with jitter.
 *
 * Delay for attempt n (0-based) is uniformly random in [d/2, d] where
 * d = min(max, base * 2^n): "equal jitter", so a fleet of sidecars that lost
 * the same broker does not reconnect in lockstep, yet never waits less than
 * half the nominal delay.
 */
#ifndef SIDECAR_BACKOFF_H
#define SIDECAR_BACKOFF_H

struct backoff {
    double base; /* seconds */
    double max;  /* seconds */
    int attempt;
};

void backoff_init(struct backoff *b, double base, double max);
/* The next delay in seconds; advances the attempt counter. */
double backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);
/* The nominal (un-jittered) delay for attempt n. */
double backoff_nominal(const struct backoff *b, int attempt);

#endif
