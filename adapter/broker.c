/*
 * broker — the connection's life: connect, set up, read frames, dispatch,
 * lose, back off, reconnect. See broker.h for the contract.
 *
 * Connecting: each attempt runs on a thread of its own (broker_attempt.c),
 * so the loop never waits for a connect, a handshake or the declarations;
 * when it reports back, the clients set up on the new channel here.
 *
 * Reading: the loop watches the socket; broker_read drains every frame that
 * is ready (amqp_simple_wait_frame_noblock with a zero timeout, which also
 * sends due heartbeats and notices a silent broker) and offers each method
 * to the attached clients in turn (broker_client.h): the publisher takes
 * acks, nacks, returns and its rpc replies, a consumer its deliveries. The
 * broker itself handles only what concerns the connection: blocked,
 * unblocked, close. Synchronous calls elsewhere may leave frames queued
 * inside rabbitmq-c, which poll() cannot see, so the prepare hook schedules
 * an immediate read whenever rabbitmq-c holds buffered frames or bytes.
 */
#include "broker.h"

#include "backoff.h"
#include "broker_attempt.h"
#include "broker_client.h"
#include "broker_once.h"
#include "broker_url.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "topology.h"
#include "util.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE 0.5
#define BACKOFF_MAX  30.0
#define TICK_MS      500

struct broker {
    char *label;
    char *system_name;
    const struct broker_config *cfg;
    struct broker_url *urls;
    size_t n_urls;
    size_t url_index;
    struct topology *topo;
    struct topology *next_topo; /* broker_set_topology during an attempt: at its end */
    struct broker_events events;

    struct loop *loop;
    pthread_t thread;
    bool thread_started;

    amqp_connection_state_t conn;
    int fd;
    struct broker_channel channel; /* what the clients see of conn */
    bool ever_up;
    bool read_scheduled;
    bool stopping;
    struct backoff backoff;
    uint64_t reconnect_timer;
    struct broker_attempt *attempt; /* connecting, on its own thread */

    const struct broker_client *clients[BROKER_MAX_CLIENTS];
    size_t n_clients;

    atomic_bool up;
    atomic_bool blocked;
    pthread_mutex_t desc_lock;
    char desc[512];
};

static void broker_set_desc(struct broker *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void broker_set_desc(struct broker *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&b->desc_lock);
    vsnprintf(b->desc, sizeof(b->desc), fmt, ap);
    pthread_mutex_unlock(&b->desc_lock);
    va_end(ap);
}

/* ---- the broker object ------------------------------------------------------ */

/* What a client's broker_channel does (below). */
static int channel_publish(const struct broker_channel *ch, amqp_bytes_t exchange,
                           amqp_bytes_t routing_key, const amqp_basic_properties_t *props,
                           amqp_bytes_t body);
static void channel_fail(const struct broker_channel *ch, const char *why);
static void channel_kick(const struct broker_channel *ch);
static void channel_batch(const struct broker_channel *ch, bool on);
static int channel_send_method(const struct broker_channel *ch, amqp_channel_t channel,
                               amqp_method_number_t id, void *decoded);

struct broker *broker_new(const char *label, const char *system_name,
                          const struct broker_config *cfg, struct topology *topo,
                          const struct broker_events *events)
{
    struct broker *b = xcalloc(1, sizeof(*b));
    b->label = xstrdup(label);
    b->system_name = xstrdup(system_name);
    b->cfg = cfg;
    b->topo = topo;
    if (events)
        b->events = *events;
    b->fd = -1;
    b->urls = xcalloc(cfg->urls.n, sizeof(*b->urls));
    for (size_t i = 0; i < cfg->urls.n; i++) {
        char err[256];
        /* Validated by config_load; a failure here is a bug. */
        if (broker_url_parse(cfg->urls.v[i], &b->urls[b->n_urls], err, sizeof(err)) == 0)
            b->n_urls++;
    }
    backoff_init(&b->backoff, BACKOFF_BASE, BACKOFF_MAX);
    pthread_mutex_init(&b->desc_lock, NULL);
    snprintf(b->desc, sizeof(b->desc), "not started");
    b->loop = loop_new();
    b->channel = (struct broker_channel){.number = BROKER_CHANNEL,
                                         .loop = b->loop,
                                         .publish = channel_publish,
                                         .fail = channel_fail,
                                         .kick = channel_kick,
                                         .batch = channel_batch,
                                         .send_method = channel_send_method,
                                         .owner = b};
    return b;
}

void broker_free(struct broker *b)
{
    if (b == NULL)
        return;
    loop_free(b->loop);
    for (size_t i = 0; i < b->n_urls; i++)
        broker_url_free(&b->urls[i]);
    free(b->urls);
    topology_free(b->topo);
    topology_free(b->next_topo);
    pthread_mutex_destroy(&b->desc_lock);
    free(b->label);
    free(b->system_name);
    free(b);
}

struct loop *broker_loop(struct broker *b)
{
    return b->loop;
}

void broker_attach(struct broker *b, const struct broker_client *c)
{
    if (b->n_clients == BROKER_MAX_CLIENTS) {
        log_error(b->label, "bug: more than %d clients on one connection", BROKER_MAX_CLIENTS);
        abort();
    }
    b->clients[b->n_clients++] = c;
}

const char *broker_label(const struct broker *b)
{
    return b->label;
}

bool broker_is_up(const struct broker *b)
{
    return atomic_load(&((struct broker *)b)->up);
}

bool broker_is_blocked(const struct broker *b)
{
    return atomic_load(&((struct broker *)b)->blocked);
}

void broker_describe(const struct broker *b, char *out, size_t n)
{
    struct broker *mb = (struct broker *)b;
    pthread_mutex_lock(&mb->desc_lock);
    snprintf(out, n, "%s", mb->desc);
    pthread_mutex_unlock(&mb->desc_lock);
}

/* ---- connection life ------------------------------------------------------- */

static void broker_connect(struct loop *loop, void *arg);
static void broker_read(struct broker *b);
static void broker_fail(struct broker *b, const char *why);
static void broker_kick(struct broker *b);

/* ---- the clients ------------------------------------------------------------- */

static void clients_lost(struct broker *b, const char *why)
{
    for (size_t i = 0; i < b->n_clients; i++)
        b->clients[i]->on_lost(b->clients[i]->arg, why);
}

static void clients_before_sleep(struct broker *b)
{
    for (size_t i = 0; i < b->n_clients; i++)
        if (b->clients[i]->before_sleep)
            b->clients[i]->before_sleep(b->clients[i]->arg);
}

/* Offers a method to each client in turn; true when one took the content. */
static bool clients_method(struct broker *b, const amqp_method_t *method, amqp_message_t *content)
{
    for (size_t i = 0; i < b->n_clients; i++) {
        if (b->clients[i]->own_channel != 0)
            continue; /* it hears its own channel only (dispatch) */
        switch (b->clients[i]->on_method(b->clients[i]->arg, method, content)) {
        case BROKER_PASS:
            continue;
        case BROKER_DONE:
            return false;
        case BROKER_TOOK:
            return true;
        }
    }
    if (method->id == AMQP_BASIC_DELIVER_METHOD)
        log_warn(b->label, "a delivery for a consumer we do not have; dropped (the broker "
                           "redelivers it when this channel closes)");
    return false;
}

static int channel_publish(const struct broker_channel *ch, amqp_bytes_t exchange,
                           amqp_bytes_t routing_key, const amqp_basic_properties_t *props,
                           amqp_bytes_t body)
{
    return amqp_basic_publish(ch->conn, ch->number, exchange, routing_key, 1, 0, props, body);
}

static void channel_fail(const struct broker_channel *ch, const char *why)
{
    broker_fail(ch->owner, why);
}

static void channel_kick(const struct broker_channel *ch)
{
    broker_kick(ch->owner);
}

static void channel_batch(const struct broker_channel *ch, bool on)
{
    struct broker *b = ch->owner;
    int v = on;
    if (b->fd >= 0)
        setsockopt(b->fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
}

static int channel_send_method(const struct broker_channel *ch, amqp_channel_t channel,
                               amqp_method_number_t id, void *decoded)
{
    return amqp_send_method(ch->conn, channel, id, decoded);
}

static void channel_close(struct broker *b)
{
    b->channel.open = false;
    b->channel.conn = NULL;
}

static void set_up(struct broker *b, bool up)
{
    atomic_store(&b->up, up);
    if (b->events.connection)
        atomic_store(&b->events.connection->up, up);
}

static void schedule_reconnect(struct broker *b)
{
    if (b->stopping || b->reconnect_timer)
        return;
    double delay = backoff_next(&b->backoff);
    b->reconnect_timer = loop_timer(b->loop, (int64_t)(delay * 1000), broker_connect, b);
    log_info(b->label, "reconnecting in %.1fs (attempt %d)", delay, b->backoff.attempt);
}

/* Tear down the current connection; everything in flight on it fails. */
static void drop_connection(struct broker *b, bool graceful, const char *why)
{
    if (b->conn == NULL)
        return;
    if (b->fd >= 0)
        loop_unwatch(b->loop, b->fd);
    if (graceful)
        clients_before_sleep(b); /* e.g. what was settled is acked before we close */
    amqp_connection_state_t conn = b->conn;
    b->conn = NULL;
    b->fd = -1;
    channel_close(b);
    atomic_store(&b->blocked, false);
    set_up(b, false);
    clients_lost(b, why);
    broker_close(conn, graceful);
}

static void broker_fail(struct broker *b, const char *why)
{
    if (b->conn == NULL)
        return;
    log_error(b->label, "connection lost: %s", why);
    if (b->events.metrics)
        metric_inc(b->events.metrics->connections_lost);
    broker_set_desc(b, "reconnecting after: %s", why);
    drop_connection(b, false, why);
    b->url_index = (b->url_index + 1) % b->n_urls;
    schedule_reconnect(b);
}

static void on_readable(struct loop *loop, int fd, short revents, void *arg)
{
    broker_read(arg);
}

static void read_now(struct loop *loop, void *arg)
{
    struct broker *b = arg;
    b->read_scheduled = false;
    broker_read(b);
}

static void broker_kick(struct broker *b)
{
    if (b->conn && !b->read_scheduled) {
        b->read_scheduled = true;
        loop_timer(b->loop, 0, read_now, b);
    }
}

/* Before each poll: frames rabbitmq-c already holds are invisible to poll(). */
static int broker_prepare(struct loop *loop, void *arg)
{
    struct broker *b = arg;
    clients_before_sleep(b);
    if (b->conn && (amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn)))
        broker_kick(b);
    return -1;
}

static void broker_tick(struct loop *loop, void *arg)
{
    struct broker *b = arg;
    if (b->stopping)
        return;
    if (b->conn)
        broker_read(b); /* services heartbeats both ways */
    for (size_t i = 0; i < b->n_clients; i++)
        if (b->clients[i]->tick)
            b->clients[i]->tick(b->clients[i]->arg);
    loop_timer(loop, TICK_MS, broker_tick, b);
}

/* The channel is declared and in confirm mode: the clients set up on it. */
static int open_clients(struct broker *b, char *err, size_t errlen)
{
    b->channel.open = true;
    b->channel.conn = b->conn;
    b->channel.generation++;
    b->channel.frame_max = (size_t)amqp_get_frame_max(b->conn);
    for (size_t i = 0; i < b->n_clients; i++)
        if (b->clients[i]->on_open(b->clients[i]->arg, &b->channel, err, errlen) != 0)
            return -1;
    return 0;
}

static void attempt_over(struct broker_attempt *a, void *arg);

/* Opening the connection happens on the attempt's thread (broker_attempt.h):
 * the loop goes on serving until attempt_over. */
static void broker_connect(struct loop *loop, void *arg)
{
    struct broker *b = arg;
    b->reconnect_timer = 0;
    if (b->stopping || b->conn || b->attempt)
        return;
    const struct broker_url *u = &b->urls[b->url_index];
    char *where = broker_url_display(u);
    broker_set_desc(b, "connecting to %s", where);
    free(where);
    char *name = xasprintf("amqp-sidecar/%s/%s", b->system_name, b->label);
    b->attempt = broker_attempt_start(b->cfg, u, name, b->topo, loop, attempt_over, b);
    free(name);
    if (b->attempt == NULL) {
        log_error(b->label, "cannot start a thread to connect (out of memory or threads?)");
        schedule_reconnect(b);
    }
}

static void connected(struct broker *b, const char *where)
{
    loop_watch(b->loop, b->fd, POLLIN, on_readable, b);
    backoff_reset(&b->backoff);
    if (b->ever_up && b->events.metrics)
        metric_inc(b->events.metrics->reconnects);
    if (b->ever_up && b->events.connection)
        metric_inc(b->events.connection->reconnects);
    log_info(b->label, "%s to %s", b->ever_up ? "reconnected" : "connected", where);
    broker_set_desc(b, "connected to %s", where);
    b->ever_up = true;
    set_up(b, true);
    broker_kick(b);
}

static void attempt_over(struct broker_attempt *a, void *arg)
{
    struct broker *b = arg;
    b->attempt = NULL;
    const char *why;
    bool fatal = false;
    amqp_connection_state_t conn = broker_attempt_take(a, &why, &fatal);
    char err[1024];
    snprintf(err, sizeof(err), "%s", why);
    broker_attempt_free(a);     /* its thread has posted: it is ending */
    if (b->next_topo != NULL) { /* the attempt read the old one: from the next, this */
        topology_free(b->topo);
        b->topo = b->next_topo;
        b->next_topo = NULL;
    }
    if (b->stopping) {
        if (conn)
            broker_close(conn, false);
        return;
    }
    char *where = broker_url_display(&b->urls[b->url_index]);
    if (conn) {
        b->conn = conn;
        b->fd = amqp_get_sockfd(conn);
        if (open_clients(b, err, sizeof(err)) == 0) {
            connected(b, where);
            free(where);
            return;
        }
        b->conn = NULL;
        b->fd = -1;
        channel_close(b);
        clients_lost(b, err);
        broker_close(conn, false);
    }
    log_error(b->label, "%s: %s", where, err);
    broker_set_desc(b, "%s: %s", where, err);
    free(where);
    if (fatal && !b->ever_up && b->events.fatal) {
        b->events.fatal(b->events.arg, err);
        return;
    }
    b->url_index = (b->url_index + 1) % b->n_urls;
    schedule_reconnect(b);
}

/* ---- reading frames ----------------------------------------------------- */

static void on_blocked(struct broker *b, const amqp_connection_blocked_t *m, bool blocked)
{
    atomic_store(&b->blocked, blocked);
    if (blocked) {
        log_warn(b->label, "broker blocked publishing (%.*s): answering 503 until it recovers",
                 m ? (int)m->reason.len : 0, m ? (char *)m->reason.bytes : "");
        broker_set_desc(b, "blocked by the broker (resource alarm)");
    } else {
        log_info(b->label, "broker unblocked publishing");
        broker_set_desc(b, "connected");
    }
    for (size_t i = 0; i < b->n_clients; i++)
        b->clients[i]->on_blocked(b->clients[i]->arg, blocked);
}

static void on_server_close(struct broker *b, const amqp_frame_t *f)
{
    char why[512];
    if (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *c = f->payload.method.decoded;
        snprintf(why, sizeof(why), "broker closed the connection: %.*s", (int)c->reply_text.len,
                 (char *)c->reply_text.bytes);
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    } else {
        amqp_channel_close_t *c = f->payload.method.decoded;
        snprintf(why, sizeof(why), "broker closed the channel: %.*s", (int)c->reply_text.len,
                 (char *)c->reply_text.bytes);
    }
    broker_fail(b, why);
}

/* Reads the content frames following a deliver/return; false if the connection died. */
static bool read_content(struct broker *b, amqp_channel_t ch, amqp_message_t *msg)
{
    amqp_rpc_reply_t r = amqp_read_message(b->conn, ch, msg, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    char why[512];
    broker_reply_describe(r, why, sizeof(why));
    broker_fail(b, why);
    return false;
}

/* The client that owns channel ch (not BROKER_CHANNEL), or NULL. */
static const struct broker_client *channel_owner(struct broker *b, amqp_channel_t ch)
{
    for (size_t i = 0; i < b->n_clients; i++)
        if (b->clients[i]->own_channel == ch)
            return b->clients[i];
    return NULL;
}

static void dispatch(struct broker *b, amqp_frame_t *f)
{
    amqp_method_t *method = &f->payload.method;
    const struct broker_client *own =
        f->channel != BROKER_CHANNEL && f->channel != 0 ? channel_owner(b, f->channel) : NULL;
    if (own && method->id == AMQP_BASIC_GET_OK_METHOD) {
        /* A basic.get on its channel (lease.c reads a stored cursor): its content too. */
        amqp_message_t msg;
        if (!read_content(b, f->channel, &msg))
            return;
        if (own->on_method(own->arg, method, &msg) != BROKER_TOOK)
            amqp_destroy_message(&msg);
        return;
    }
    if (own && method->id != AMQP_BASIC_RETURN_METHOD && method->id != AMQP_BASIC_DELIVER_METHOD) {
        own->on_method(own->arg, method, NULL); /* its channel, its errors */
        return;
    }
    switch (method->id) {
    case AMQP_BASIC_RETURN_METHOD:
    case AMQP_BASIC_DELIVER_METHOD: {
        /* Content follows; the decoded method stays valid (same pool) while it is read. */
        amqp_message_t msg;
        if (!read_content(b, f->channel, &msg))
            return;
        if (!clients_method(b, method, &msg))
            amqp_destroy_message(&msg);
        break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        on_blocked(b, method->decoded, true);
        break;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        on_blocked(b, NULL, false);
        break;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        on_server_close(b, f);
        break;
    default:
        clients_method(b, method, NULL); /* acks, nacks, cancels; qos-ok and the like pass */
        break;
    }
}

static void broker_read(struct broker *b)
{
    while (b->conn != NULL) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(b->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            char why[256];
            snprintf(why, sizeof(why), "%s", amqp_error_string2(rc));
            broker_fail(b, why);
            return;
        }
        if (f.frame_type == AMQP_FRAME_METHOD)
            dispatch(b, &f);
    }
    if (b->conn != NULL)
        amqp_maybe_release_buffers(b->conn);
}

/* ---- thread ---------------------------------------------------------------- */

static void *broker_thread(void *arg)
{
    struct broker *b = arg;
    loop_run(b->loop);
    return NULL;
}

static void start_on_thread(void *arg)
{
    struct broker *b = arg;
    loop_add_prepare(b->loop, broker_prepare, b);
    loop_timer(b->loop, TICK_MS, broker_tick, b);
    broker_connect(b->loop, b);
}

int broker_start(struct broker *b)
{
    loop_post(b->loop, start_on_thread, b);
    if (pthread_create(&b->thread, NULL, broker_thread, b) != 0)
        return -1;
    b->thread_started = true;
    return 0;
}

static void stop_on_thread(void *arg)
{
    struct broker *b = arg;
    b->stopping = true;
    if (b->conn) {
        log_info(b->label, "closing the broker connection");
        drop_connection(b, true, "shutting down");
    }
    broker_set_desc(b, "stopped");
    loop_stop(b->loop);
}

struct topology_swap {
    struct broker *b;
    struct topology *t;
};

static void set_topology_on_thread(void *arg)
{
    struct topology_swap *swap = arg;
    struct broker *b = swap->b;
    if (b->attempt != NULL) { /* its thread reads b->topo until attempt_over */
        topology_free(b->next_topo);
        b->next_topo = swap->t;
        return;
    }
    topology_free(b->topo);
    b->topo = swap->t;
}

void broker_set_topology(struct broker *b, struct topology *t)
{
    struct topology_swap swap = {.b = b, .t = t};
    if (b->thread_started)
        loop_call(b->loop, set_topology_on_thread, &swap);
    else
        set_topology_on_thread(&swap);
}

void broker_stop(struct broker *b)
{
    if (!b->thread_started)
        return;
    loop_post(b->loop, stop_on_thread, b);
    pthread_join(b->thread, NULL);
    b->thread_started = false;
    /* An attempt the loop did not hear the end of: wait for it, drop its connection. */
    broker_attempt_free(b->attempt);
    b->attempt = NULL;
    /* Submits that raced the stop are answered now, while their kinds still live. */
    clients_lost(b, "the sidecar is shutting down");
}
