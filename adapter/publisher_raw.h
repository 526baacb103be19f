/*
 * publisher_raw — the publisher's side door for code on the connection's own
 * thread that already holds a message in AMQP form: the consumer's retries,
 * dead letters and replies. Same confirms, same bounds (amqp_publish_check),
 * same window as every other publish.
 */
#ifndef SIDECAR_PUBLISHER_RAW_H
#define SIDECAR_PUBLISHER_RAW_H

#include "publisher.h"

#include <amqp.h>

typedef void (*publish_raw_done_fn)(void *arg, enum publish_status status, const char *detail);

/* Owner thread. Returns 0 when sent: done runs when the broker answered or
 * the connection died; props and body are copied as needed before return.
 * Else done will not run and why says why: PUBLISH_UNAVAILABLE (down,
 * blocked, window full) or PUBLISH_INVALID (the properties cannot be
 * encoded; nothing was written). */
int publisher_publish_raw(struct publisher *p, const char *exchange, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body,
                          publish_raw_done_fn done, void *arg, char *why, size_t whylen);

#endif
