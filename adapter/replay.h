/*
 * replay — `amqp-sidecar replay -c FILE ROUTE [--max N] [--dry-run]`: move
 * dead letters of an outbound route from `Q.dlq` back to `Q`, with the
 * sidecar's retry headers reset; or the parked unroutable messages of an
 * inbound route back to the exchange and routing key each was published to.
 * Each is confirmed by the broker before it is removed from the DLQ (a crash
 * in between duplicates, never loses).
 */
#ifndef SIDECAR_REPLAY_H
#define SIDECAR_REPLAY_H

#include <stdbool.h>

struct route;
struct sidecar_config;

/* max < 0: all. Prints counts to stdout. Returns an exit code. */
int replay_run(const struct sidecar_config *cfg, const struct route *r, long max, bool dry_run);

#endif
