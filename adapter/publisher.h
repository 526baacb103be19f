/*
 * publisher — publish with confirms and `mandatory`, many in flight at once.
 *
 * Any thread submits a message; the broker's thread sends every queued
 * message back to back (group commit: one broker fsync covers many callers),
 * then resolves each caller exactly once when its confirm, nack or return
 * arrives, or when the connection dies. A message no binding routes
 * (basic.return) is parked in the route's dead-letter queue with
 * `x-sidecar-error: unroutable: …` and reported as PUBLISH_UNROUTABLE only
 * after that park is confirmed too. rpc publishes also wait for the reply.
 *
 * Nothing is ever reported PUBLISH_OK unless the broker confirmed it.
 */
#ifndef SIDECAR_PUBLISHER_H
#define SIDECAR_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>

struct broker_client;
struct broker_config;
struct loop;
struct message;
struct process_metrics;
struct publisher;
struct route;

enum publish_status {
    PUBLISH_OK,          /* confirmed: routed to at least one queue */
    PUBLISH_UNROUTABLE,  /* confirmed into the route's DLQ (no binding matched) */
    PUBLISH_NACKED,      /* the broker refused it */
    PUBLISH_UNAVAILABLE, /* broker down, blocked, or too much in flight: try later */
    PUBLISH_RPC_TIMEOUT, /* rpc: confirmed, but no reply in time */
    PUBLISH_INVALID,     /* it cannot be carried (a property over AMQP's limits): a client
                          * error, retrying will not help; nothing was sent */
};

struct publish_result {
    enum publish_status status;
    const char *detail;    /* human-readable why, for logs and error bodies */
    struct message *reply; /* rpc replies, or NULL; freed after the callback returns
                            * unless it keeps it by setting reply to NULL */
    double confirm_seconds;
};

/* Runs on the broker's thread, exactly once per accepted submit. Keep it short. */
typedef void (*publish_done_fn)(void *arg, struct publish_result *result);

struct publish_options {
    const struct route *route; /* for x-sidecar-route, app_id, the DLQ, metrics, logs */
    bool rpc;                  /* set reply_to (direct reply-to) and wait for the reply */
    double rpc_timeout;        /* seconds */
};

/* A publisher for the connection whose thread runs loop; label names it in
 * logs; metrics (may be NULL) counts unmatched rpc replies. Attach
 * publisher_client() to that connection's broker before it starts. */
struct publisher *publisher_new(const char *label, const struct broker_config *cfg,
                                struct loop *loop, struct process_metrics *metrics);
/* After the broker stopped: anything still queued gets its one callback. */
void publisher_free(struct publisher *p);
const struct broker_client *publisher_client(struct publisher *p);

/* Any thread. Takes ownership of msg in every case. Returns 0 when queued
 * (done will run), or the refusal, at once (done will not run; *why says
 * why, valid until the thread's next submit): PUBLISH_UNAVAILABLE (broker
 * down, blocked, window full: try later) or PUBLISH_INVALID (message_check
 * failed: the caller's input cannot become an AMQP message).
 * rpc: the AMQP correlation_id is a call id of the publisher's own (replies
 * must echo it); the message's correlation_id travels as header
 * `x-correlation-id`. */
int publisher_submit(struct publisher *p, struct message *msg, const struct publish_options *opt,
                     publish_done_fn done, void *arg, const char **why);

/* Why a submit would be refused now, or PUBLISHER_UP when it would be taken. */
enum publisher_state {
    PUBLISHER_UP,          /* a submit is taken */
    PUBLISHER_DOWN,        /* the broker connection is down */
    PUBLISHER_BLOCKED,     /* the broker blocks publishes (resource alarm) */
    PUBLISHER_WINDOW_FULL, /* connected, but too much waits for confirms: try again soon */
};

/* Any thread: the state now; why (optional) receives a phrase for logs when
 * not PUBLISHER_UP (a static string), NULL when up. */
enum publisher_state publisher_state(struct publisher *p, const char **why);

/* Any thread: would a submit be accepted now? (publisher_state(p, why) == PUBLISHER_UP) */
bool publisher_available(struct publisher *p, const char **why);

/* Any thread: nothing submitted is still waiting for the broker. */
bool publisher_idle(const struct publisher *p);

/* Register before start: this publisher will carry rpc requests. */
void publisher_enable_rpc(struct publisher *p);
/* Main thread: was it? */
bool publisher_rpc_enabled(const struct publisher *p);

const char *publish_status_name(enum publish_status status); /* "rpc timeout" */
const char *publish_status_id(enum publish_status status);   /* "rpc_timeout" */

#endif
