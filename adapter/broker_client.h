/*
 * broker_client — how the code that uses an AMQP connection (the publisher,
 * a consumer) plugs into the broker that owns it, Redis-connection style.
 *
 * The broker knows nothing above this interface. A client registers a
 * `struct broker_client` (broker_attach, before the broker starts) and is
 * handed a `struct broker_channel` in on_open, which it keeps: the channel
 * tells whether the connection is open and its generation, and carries the
 * few operations a client needs (publish, fail, kick), so a client never asks
 * the broker for its connection. Every callback runs on the broker's thread,
 * in the order the clients were attached. Tests drive a client with a
 * channel of their own and fabricated frames, without a broker.
 */
#ifndef SIDECAR_BROKER_CLIENT_H
#define SIDECAR_BROKER_CLIENT_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_CHANNEL 1

struct loop;

/* One channel of one connection, as its clients see it. Valid for the
 * broker's lifetime; its fields change on each (re)connect. */
struct broker_channel {
    bool open;                    /* false while disconnected */
    amqp_connection_state_t conn; /* the connection while open (NULL in tests) */
    amqp_channel_t number;
    uint64_t generation; /* increments on each connect: older work belongs to a gone one */
    size_t frame_max;    /* negotiated */
    struct loop *loop;   /* the broker thread's */
    /* basic.publish with mandatory set: an AMQP_STATUS_* code. */
    int (*publish)(const struct broker_channel *ch, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                   const amqp_basic_properties_t *props, amqp_bytes_t body);
    /* Drop the connection (logging why) and reconnect; every client's on_lost runs. */
    void (*fail)(const struct broker_channel *ch, const char *why);
    /* Read frames soon: a synchronous call may have left some buffered. */
    void (*kick)(const struct broker_channel *ch);
    /* Optional: several publishes follow (on), or they are done (off). Between
     * the two the socket is corked, so back-to-back publishes leave in full
     * TCP segments, not one push per message (the broker reads fewer, larger
     * packets, and loopback delivers fewer). */
    void (*batch)(const struct broker_channel *ch, bool on);
    /* Sends one method on `channel` without waiting for an answer (the answer
     * comes to on_method): an AMQP_STATUS_* code. */
    int (*send_method)(const struct broker_channel *ch, amqp_channel_t channel,
                       amqp_method_number_t id, void *decoded);
    void *owner; /* the broker's (or the test's) */
};

/* What a client did with a method (on_method's answer). */
enum broker_handled {
    BROKER_PASS, /* not mine: offer it to the next client */
    BROKER_DONE, /* handled; the broker frees the content */
    BROKER_TOOK, /* handled, and the client took the content (amqp_destroy_message is its) */
};

struct broker_client {
    const char *name;
    /* 0: the client shares BROKER_CHANNEL. Otherwise a channel of its own,
     * which it opens and closes itself with send_method: every frame on it
     * goes to this client alone, channel.close included (the client answers
     * close-ok and may reopen it), so an error there (a passive declare of a
     * missing queue) never takes down the connection's other work. */
    amqp_channel_t own_channel;
    /* The connection is open, the topology declared, confirm mode on. 0, or -1
     * with err (the connection is then dropped and retried). */
    int (*on_open)(void *arg, const struct broker_channel *ch, char *err, size_t errlen);
    /* A method frame. For basic.return and basic.deliver (and basic.get-ok on
     * a client's own channel), content holds the
     * message already read (else NULL). */
    enum broker_handled (*on_method)(void *arg, const amqp_method_t *method,
                                     amqp_message_t *content);
    /* The connection is gone (why): fail or forget what was in flight on it. */
    void (*on_lost)(void *arg, const char *why);
    /* connection.blocked / unblocked (a resource alarm). */
    void (*on_blocked)(void *arg, bool blocked);
    /* Before the broker thread sleeps, and before a graceful close. Optional. */
    void (*before_sleep)(void *arg);
    /* Twice a second. Optional. */
    void (*tick)(void *arg);
    void *arg;
};

/* broker_attach (broker.h) registers one. */

#endif
