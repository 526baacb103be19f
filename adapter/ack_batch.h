/*
 * ack_batch — the coalesced acks of one consumer: one basic.ack per loop turn
 * instead of one per message.
 *
 * It keeps the delivery tags of one connection that the kind still holds
 * (ascending, as they arrive) and the tags settled since the last flush. A
 * flush covers every settled tag below the oldest held one with a single
 * multiple=true ack (no held delivery can be below it) and acks the settled
 * tags above it one by one. Pure bookkeeping: the consumer sends the acks on
 * its connection (see consumer_flush_acks) and decides when to flush.
 *
 * Threads: one, the route's.
 */
#ifndef SIDECAR_ACK_BATCH_H
#define SIDECAR_ACK_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ack_batch {
    uint64_t generation; /* the connection the tags belong to */
    uint64_t *held;      /* delivered and not settled yet, ascending */
    size_t n_held, cap_held;
    uint64_t *settled; /* to ack at the next flush */
    size_t n_settled, cap_settled;
};

/* How a flush sends one ack: multiple covers every tag up to tag. */
typedef void (*ack_batch_send_fn)(void *arg, uint64_t tag, bool multiple);

/* A delivery arrived on connection `generation`. A new generation first forgets
 * every tag of the old one: false then (those are redelivered). */
bool ack_batch_hold(struct ack_batch *b, uint64_t generation, uint64_t tag);
/* tag was settled otherwise (nack, reject): no longer held, not to be acked. */
void ack_batch_release(struct ack_batch *b, uint64_t tag);
/* tag is done: ack it at the next flush. */
void ack_batch_settle(struct ack_batch *b, uint64_t tag);
/* Sends the acks for every settled tag through send (NULL: the connection is
 * gone, drop them), then starts a new batch. */
void ack_batch_flush(struct ack_batch *b, ack_batch_send_fn send, void *arg);
/* The connection is gone: forget everything (the broker redelivers). */
void ack_batch_forget(struct ack_batch *b);
void ack_batch_free(struct ack_batch *b);

#endif
