/*
 * poll_cursor_broker — a leased poll route's cursor kept where every sidecar
 * of the system reads it: as the one message of `<name>.<route>.cursor`
 * (x-max-length 1, x-overflow drop-head: each write replaces the last; see
 * topology.h), published through the default exchange with a confirm after
 * each batch, and read by the next lease holder when it takes over (lease.h).
 * The cursor file in state_dir is written as well and stays what a single
 * sidecar, or one that finds nothing stored in the broker, starts from.
 *
 * A cursor is published only after every item up to it was confirmed, so the
 * stored one never runs ahead of what is stored: a takeover repeats at most
 * the items published after the last confirmed cursor, with the same
 * message_id, and skips none.
 */
#ifndef SIDECAR_POLL_CURSOR_BROKER_H
#define SIDECAR_POLL_CURSOR_BROKER_H

#include <stdatomic.h>

struct route;

/* Any thread: publishes value as r's stored cursor (r->cursor_queue).
 * *outstanding counts it until its confirm (or failure, logged) is back.
 * 0 when submitted, -1 when the publisher refused it now (logged). */
int poll_cursor_broker_store(struct route *r, const char *value, atomic_long *outstanding);

#endif
