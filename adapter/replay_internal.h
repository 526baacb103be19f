/*
 * replay_internal — what replay.c (outbound: DLQ back to the work queue) and
 * replay_inbound.c (inbound: DLQ back to the exchange a message was
 * published to) share: reading the DLQ and the copy's properties. Both run
 * on the one-shot connection of broker_once.h, on BROKER_CHANNEL.
 */
#ifndef SIDECAR_REPLAY_INTERNAL_H
#define SIDECAR_REPLAY_INTERNAL_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct route;

/* How many messages the queue holds (passive declare). -1 if it does not exist. */
long replay_queue_depth(amqp_connection_state_t conn, const char *queue);

/* Gets one message from the DLQ, unacked. 1 got (caller destroys msg), 0 empty, -1 error. */
int replay_get_one(amqp_connection_state_t conn, const char *dlq, amqp_message_t *msg,
                   uint64_t *tag);

/* Header `name` as text into out (strings as-is, integers in decimal, other
 * kinds "?"); NULL when absent. */
const char *replay_header_text(const amqp_basic_properties_t *p, const char *name, char *out,
                               size_t n);

/* The message id for output, or "-". Borrowed from p, printed with "%.*s". */
int replay_id_len(const amqp_basic_properties_t *p);
const char *replay_id(const amqp_basic_properties_t *p);

/* The properties of msg's replayed copy: its own, without the sidecar's
 * retry, park and x-death headers, with x-sidecar-replayed-from = dlq.
 * Returns the header table the caller frees once props is sent; every
 * string stays borrowed (from msg and dlq). */
amqp_table_entry_t *replay_properties(const amqp_message_t *msg, const char *dlq,
                                      amqp_basic_properties_t *props);

/* Inbound routes: see replay_inbound.c. Returns an exit code. */
int replay_inbound(amqp_connection_state_t conn, const struct route *r, long depth, long max,
                   bool dry_run);

#endif
