/*
 * publisher_internal — what publisher.c (submitting, sending, the
 * connection's events) and publisher_answers.c (acks, nacks, returns and
 * parks, rpc replies) share about one publisher. Only those two files
 * include it; everything here runs on the broker's thread unless it says so.
 */
#ifndef SIDECAR_PUBLISHER_INTERNAL_H
#define SIDECAR_PUBLISHER_INTERNAL_H

#include "broker_client.h"
#include "confirm_ring.h"
#include "publisher.h"
#include "publisher_raw.h"

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIRECT_REPLY_TO           "amq.rabbitmq.reply-to"
#define RPC_CONSUMER_TAG          "amqp-sidecar-rpc"
#define CALLER_CORRELATION_HEADER "x-correlation-id"
#define NACK_STREAK               20
#define NACK_STREAK_MS            1000

struct request {
    struct message *msg; /* until published */
    char *message_id;
    char *correlation_id; /* the caller's */
    char *call_id;        /* rpc: ours, the AMQP correlation_id replies must carry */
    char *exchange;
    char *routing_key;
    struct publish_options opt;
    publish_done_fn done;
    void *arg;
    int64_t sent_ms;
    int64_t rpc_deadline_ms;
    int refs; /* ring entries pointing here */
    bool confirmed, returned, parked, park_failed, replied, finished, waiting_reply;
    struct message *reply;
    struct request *next;     /* queue / backlog */
    struct request *rpc_next; /* the rpc waiters' bucket */
};

/* Ring entry kinds. */
enum { PENDING_REQUEST, PENDING_PARK, PENDING_RAW };

/* An owner-thread publish (publisher_publish_raw) waiting for its confirm. */
struct raw_publish {
    publish_raw_done_fn done;
    void *arg;
    char *message_id, *exchange, *routing_key; /* to match a return */
};

struct publisher {
    char *label;                     /* the connection's, for logs */
    const struct broker_config *cfg; /* max_inflight, confirm_timeout, max_message */
    struct loop *loop;               /* the connection's thread */
    struct process_metrics *metrics; /* may be NULL */
    const struct broker_channel *ch; /* from on_open; NULL before the first */
    struct broker_client client;
    atomic_bool up, blocked_published; /* for submitting threads */
    /* shared with submitting threads */
    pthread_mutex_t lock;
    struct request *queue_head, *queue_tail;
    bool flush_posted;
    atomic_size_t outstanding; /* submitted and not yet finished */
    /* broker thread only */
    struct request *backlog_head, *backlog_tail;
    struct confirm_ring ring;
    struct request **rpc_buckets; /* rpc waiters by call id */
    size_t n_rpc_buckets;         /* power of two */
    bool rpc;
    bool blocked;
    int nacks_in_a_row;
    int64_t first_nack_ms;
};

/* publisher.c */
void publisher_raw_free(struct raw_publish *w);
size_t publisher_rpc_bucket(const struct publisher *p, const void *id, size_t len);
void publisher_rpc_forget(struct publisher *p, struct request *r);
const char *publisher_route_name(const struct publisher *p, const struct request *r);
bool publisher_channel_open(const struct publisher *p);
size_t publisher_frame_max(const struct publisher *p);
/* Frees r once it has finished and no ring entry points at it. */
void publisher_release(struct request *r);
/* Calls the submitter back exactly once; the caller releases r afterwards. */
void publisher_finish(struct publisher *p, struct request *r, enum publish_status status,
                      const char *detail);
/* Finishes r if everything it waits for (confirm, park, reply) has arrived. */
void publisher_maybe_finish(struct publisher *p, struct request *r);
/* Sends what the window allows from the backlog. */
void publisher_send_backlog(struct publisher *p);

/* publisher_answers.c */
bool publisher_bytes_is(amqp_bytes_t b, const char *s);
void publisher_on_ack(struct publisher *p, uint64_t tag, bool multiple, bool nack);
void publisher_on_return(struct publisher *p, const amqp_basic_return_t *ret, amqp_message_t *msg);
void publisher_on_reply(struct publisher *p, amqp_message_t *msg);

#endif
