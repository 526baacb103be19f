/*
 * spool_message — a built message as a spool record's payload, and back.
 *
 * What is stored is the message as the publisher would send it (exchange,
 * routing key, content type, ids, timestamp, headers, body), so a forwarded
 * message carries the same message_id, properties and headers as one
 * published at once. Layout: a version byte, then each string as a 32-bit
 * little-endian length (all ones: unset) and its bytes, the timestamp as 64
 * bits, the header count, name/value pairs, the body. Decoding checks every
 * length against what is left and the AMQP bounds (message.h).
 */
#ifndef SIDECAR_SPOOL_MESSAGE_H
#define SIDECAR_SPOOL_MESSAGE_H

#include <stddef.h>

struct buf;
struct message;

/* Appends m (borrowed) to out. */
void spool_message_encode(const struct message *m, struct buf *out);

/* A new message from len bytes at data (borrowed), or NULL with why. */
struct message *spool_message_decode(const char *data, size_t len, char *why, size_t whylen);

#endif
