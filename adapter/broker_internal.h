/*
 * broker_internal — what broker.c, publisher.c and consumer.c share about a
 * live connection. Only these three files include it; all functions here are
 * called on the broker's own thread.
 */
#ifndef SIDECAR_BROKER_INTERNAL_H
#define SIDECAR_BROKER_INTERNAL_H

#include "broker.h"

#include <amqp.h>
#include <stdint.h>

#define BROKER_CHANNEL 1
#define RPC_CONSUMER_TAG "amqp-sidecar-rpc"

/* The open connection, or NULL while disconnected. */
amqp_connection_state_t broker_amqp(struct broker *b);
/* Increments on each successful connect: work tagged with an older value
 * belongs to a connection that is gone (its deliveries will be redelivered). */
uint64_t broker_generation(const struct broker *b);
/* Drop the connection (logging why) and schedule a reconnect. */
void broker_fail(struct broker *b, const char *why);
const char *broker_label(const struct broker *b);
const struct broker_config *broker_config(const struct broker *b);
/* The process counters given to broker_new (may be NULL). */
struct process_metrics *broker_metrics(const struct broker *b);
/* Ask the loop to read frames soon (after a synchronous call buffered some). */
void broker_kick(struct broker *b);

/* A synchronous connection with channel BROKER_CHANNEL open, trying each URL
 * in turn (for commands such as replay). vhost and where ("amqp://…") are
 * the caller's to free. 0, or -1 with err. */
int broker_connect_once(const struct broker_config *cfg, const char *system_name, const char *label,
                        amqp_connection_state_t *out, char **vhost, char **where, char *err,
                        size_t errlen);
void broker_close_once(amqp_connection_state_t conn);

/* Publisher side, driven by broker.c. */
struct publisher *publisher_new(struct broker *b);
void publisher_free(struct publisher *p);
int publisher_on_open(struct publisher *p, char *err, size_t errlen);
void publisher_on_ack(struct publisher *p, uint64_t tag, bool multiple, bool nack);
void publisher_on_return(struct publisher *p, const amqp_basic_return_t *ret,
                         amqp_message_t *msg);
void publisher_on_reply(struct publisher *p, amqp_message_t *msg);
void publisher_on_lost(struct publisher *p, const char *why);
void publisher_on_blocked(struct publisher *p, bool blocked);
void publisher_tick(struct publisher *p);

/* Owner-thread publish of a message already in AMQP form (the consumer's
 * retries, dead letters and replies). Returns 0 when sent: done runs when
 * the broker answered or the connection died; props and body are copied as
 * needed before return. Else done will not run and why says why:
 * PUBLISH_UNAVAILABLE (down, blocked, window full) or PUBLISH_INVALID (the
 * properties cannot be encoded; nothing was written). */
enum publish_status;
typedef void (*publish_raw_done_fn)(void *arg, enum publish_status status, const char *detail);
int publisher_publish_raw(struct publisher *p, const char *exchange, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body,
                          publish_raw_done_fn done, void *arg, char *why, size_t whylen);

/* Consumer side, driven by broker.c. */
int consumer_on_open(struct consumer *c, char *err, size_t errlen);
void consumer_on_deliver(struct consumer *c, const amqp_basic_deliver_t *d, amqp_message_t *msg);
void consumer_on_cancel(struct consumer *c, bool by_server);
void consumer_on_lost(struct consumer *c);
/* Sends the acks settled since the last flush (broker thread, before it sleeps). */
void consumer_flush_acks(struct consumer *c);

#endif
