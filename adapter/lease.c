/*
 * lease — see lease.h.
 *
 * States of the set's channel: CLOSED (no channel; opened when a round is
 * due), OPENING (channel.open sent), IDLE, DECLARING (queue.declare of the
 * lease queue of `current` sent), READING (basic.get of its cursor queue
 * sent). A round walks the leases not held, from the first; each answer
 * (declare-ok, get-ok/get-empty, or the broker's channel.close) moves it on.
 * A refused declare closes the channel, never the connection, and does not
 * touch the leases already held: an exclusive queue belongs to the
 * connection, not to the channel that declared it.
 */
#include "lease.h"

#include "broker_client.h"
#include "log.h"
#include "loop.h"
#include "route.h"
#include "util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum channel_state { CH_CLOSED, CH_OPENING, CH_IDLE, CH_DECLARING, CH_READING };

struct lease {
    struct route *route;
    bool held;         /* broker thread */
    bool told_standby; /* "standby" logged since the last change */
    _Atomic int role;  /* enum lease_role; any thread reads it */
    _Atomic int64_t since_ms;
    _Atomic uint64_t gained;
};

struct lease_set {
    char *label;
    struct lease **leases;
    size_t n;
    const struct broker_channel *ch; /* from on_open; NULL before */
    enum channel_state state;
    size_t current; /* the lease asked about, while in_round */
    bool in_round;
    int64_t due_ms; /* when the next round starts */
    struct broker_client client;
};

static void set_role(struct lease *l, enum lease_role role)
{
    if (atomic_exchange(&l->role, role) != (int)role)
        atomic_store(&l->since_ms, loop_now_ms());
    atomic_store(&l->route->metrics.lease_held, role == LEASE_HOLDER);
}

/* ---- the lease's life ------------------------------------------------------------ */

static void gained(struct lease *l, const char *cursor)
{
    struct route *r = l->route;
    l->held = true;
    l->told_standby = false;
    set_role(l, LEASE_HOLDER);
    atomic_fetch_add(&l->gained, 1);
    if (r->cursor_queue)
        log_info(r->name, "holds the lease %s: this sidecar runs the route (cursor from %s: %s)",
                 r->lease_queue, r->cursor_queue, cursor ? cursor : "none stored, the local one");
    else
        log_info(r->name, "holds the lease %s: this sidecar runs the route", r->lease_queue);
    r->kind->lease_gained(r, cursor);
}

static void standby(struct lease *l, const amqp_channel_close_t *c)
{
    set_role(l, LEASE_STANDBY);
    if (l->told_standby)
        return;
    l->told_standby = true;
    if (c->reply_code == AMQP_RESOURCE_LOCKED)
        log_info(l->route->name,
                 "standby: another sidecar holds the lease %s; this one takes over when that "
                 "one's broker connection ends (asking every %dms)",
                 l->route->lease_queue, LEASE_RETRY_MS);
    else
        log_warn(l->route->name,
                 "standby: the broker refused the lease %s (%u %.*s); asking again every %dms — "
                 "if a queue of that name exists that is not exclusive, delete it",
                 l->route->lease_queue, c->reply_code, (int)c->reply_text.len,
                 (char *)c->reply_text.bytes, LEASE_RETRY_MS);
}

/* ---- asking ---------------------------------------------------------------------------- */

static void send_failed(struct lease_set *s, const char *what, int rc)
{
    /* The socket is failing: the broker notices on its next read and reconnects. */
    log_warn(s->label, "leases: cannot send %s: %s", what, amqp_error_string2(rc));
    s->state = CH_CLOSED;
    s->in_round = false;
    s->due_ms = loop_now_ms() + LEASE_RETRY_MS;
}

static bool send_on_channel(struct lease_set *s, amqp_method_number_t id, void *m, const char *what,
                            enum channel_state next)
{
    int rc = s->ch->send_method(s->ch, LEASE_CHANNEL, id, m);
    if (rc != AMQP_STATUS_OK) {
        send_failed(s, what, rc);
        return false;
    }
    s->state = next;
    return true;
}

static void open_channel(struct lease_set *s)
{
    amqp_channel_open_t m = {.out_of_band = amqp_empty_bytes};
    send_on_channel(s, AMQP_CHANNEL_OPEN_METHOD, &m, "channel.open", CH_OPENING);
}

static void declare_current(struct lease_set *s)
{
    amqp_queue_declare_t m = {
        .queue = amqp_cstring_bytes(s->leases[s->current]->route->lease_queue),
        .exclusive = 1, /* the lease: one connection at a time, gone with it */
        .arguments = amqp_empty_table,
    };
    send_on_channel(s, AMQP_QUEUE_DECLARE_METHOD, &m, "queue.declare", CH_DECLARING);
}

static void read_cursor(struct lease_set *s)
{
    amqp_basic_get_t m = {.queue = amqp_cstring_bytes(s->leases[s->current]->route->cursor_queue)};
    send_on_channel(s, AMQP_BASIC_GET_METHOD, &m, "basic.get", CH_READING);
}

/* The next lease not held after `from` (inclusive), or n. */
static size_t next_unheld(const struct lease_set *s, size_t from)
{
    while (from < s->n && s->leases[from]->held)
        from++;
    return from;
}

static void round_over(struct lease_set *s)
{
    s->in_round = false;
    s->due_ms = loop_now_ms() + LEASE_RETRY_MS;
}

/* Asks about the next lease not held after current, or ends the round. */
static void ask_next(struct lease_set *s, size_t from)
{
    s->current = next_unheld(s, from);
    if (s->current >= s->n) {
        round_over(s);
        return;
    }
    if (s->state == CH_CLOSED)
        open_channel(s);
    else
        declare_current(s);
}

static void lease_tick(void *arg)
{
    struct lease_set *s = arg;
    if (s->ch == NULL || !s->ch->open || s->in_round || loop_now_ms() < s->due_ms)
        return;
    if (next_unheld(s, 0) >= s->n) {
        round_over(s); /* all held: nothing to ask until a connection is lost */
        return;
    }
    s->in_round = true;
    ask_next(s, 0);
}

/* ---- answers ---------------------------------------------------------------------------- */

static void declared(struct lease_set *s)
{
    struct lease *l = s->leases[s->current];
    if (l->route->cursor_queue) {
        l->held = true; /* the broker says so already; the route hears it with the cursor */
        read_cursor(s);
        return;
    }
    s->state = CH_IDLE;
    gained(l, NULL);
    ask_next(s, s->current + 1);
}

/* The stored cursor of the lease just taken (NULL: none), given back at once. */
static void cursor_read(struct lease_set *s, const amqp_basic_get_ok_t *ok, amqp_message_t *msg)
{
    struct lease *l = s->leases[s->current];
    char *cursor = NULL;
    if (msg != NULL) {
        amqp_basic_reject_t back = {.delivery_tag = ok->delivery_tag, .requeue = 1};
        if (!send_on_channel(s, AMQP_BASIC_REJECT_METHOD, &back, "basic.reject", CH_IDLE))
            return; /* the connection goes, and the lease with it */
        size_t len = msg->body.len;
        if (len > LEASE_CURSOR_MAX || memchr(msg->body.bytes, '\0', len) != NULL)
            log_warn(l->route->name,
                     "the cursor stored in %s is over %d bytes or holds a NUL byte; ignored (the "
                     "local cursor is used): purge the queue if it is not this route's",
                     l->route->cursor_queue, LEASE_CURSOR_MAX);
        else
            cursor = xstrndup(msg->body.bytes, len);
    }
    s->state = CH_IDLE;
    gained(l, cursor);
    free(cursor);
    ask_next(s, s->current + 1);
}

/* The broker closed our channel: the lease is another's (405), or the cursor
 * queue could not be read. Answer, and go on. */
static void channel_closed(struct lease_set *s, const amqp_channel_close_t *c)
{
    enum channel_state was = s->state;
    amqp_channel_close_ok_t ok = {0};
    if (!send_on_channel(s, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok, "channel.close-ok", CH_CLOSED))
        return;
    if (!s->in_round || s->current >= s->n) {
        log_warn(s->label, "leases: the broker closed the leases' channel: %.*s",
                 (int)c->reply_text.len, (char *)c->reply_text.bytes);
        return;
    }
    struct lease *l = s->leases[s->current];
    if (was == CH_DECLARING) {
        standby(l, c);
    } else if (was == CH_READING) {
        log_warn(l->route->name,
                 "cannot read the stored cursor from %s (%.*s); the local cursor is used — the "
                 "sidecar declares that queue on its next connect",
                 l->route->cursor_queue, (int)c->reply_text.len, (char *)c->reply_text.bytes);
        gained(l, NULL); /* held all the same: the queue is the connection's */
    }
    ask_next(s, s->current + 1);
}

static enum broker_handled lease_method(void *arg, const amqp_method_t *method,
                                        amqp_message_t *content)
{
    struct lease_set *s = arg;
    switch (method->id) {
    case AMQP_CHANNEL_OPEN_OK_METHOD:
        s->state = CH_IDLE;
        if (s->in_round && s->current < s->n)
            declare_current(s);
        break;
    case AMQP_QUEUE_DECLARE_OK_METHOD:
        if (s->state == CH_DECLARING && s->in_round && s->current < s->n)
            declared(s);
        break;
    case AMQP_BASIC_GET_OK_METHOD:
        if (s->state == CH_READING && s->in_round && s->current < s->n)
            cursor_read(s, method->decoded, content);
        break;
    case AMQP_BASIC_GET_EMPTY_METHOD:
        if (s->state == CH_READING && s->in_round && s->current < s->n)
            cursor_read(s, NULL, NULL);
        break;
    case AMQP_CHANNEL_CLOSE_METHOD:
        channel_closed(s, method->decoded);
        break;
    default:
        break; /* nothing else is sent to us */
    }
    return BROKER_DONE;
}

/* ---- the connection's life ------------------------------------------------------------- */

static int lease_open(void *arg, const struct broker_channel *ch, char *err, size_t errlen)
{
    struct lease_set *s = arg;
    (void)err, (void)errlen;
    s->ch = ch;
    s->state = CH_CLOSED; /* a new connection: our channel is not open on it */
    s->in_round = false;
    s->due_ms = 0; /* first round at the next tick */
    return 0;
}

static void lease_lost(void *arg, const char *why)
{
    struct lease_set *s = arg;
    s->state = CH_CLOSED;
    s->in_round = false;
    s->due_ms = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct lease *l = s->leases[i];
        bool was = l->held && lease_role(l) == LEASE_HOLDER; /* the route heard it was */
        l->held = false;
        l->told_standby = false;
        set_role(l, LEASE_WAITING);
        if (!was)
            continue;
        log_warn(l->route->name,
                 "lost the lease %s with the broker connection (%s): the route stops here; "
                 "another sidecar may take it over",
                 l->route->lease_queue, why);
        l->route->kind->lease_lost(l->route);
    }
}

static void lease_blocked(void *arg, bool blocked)
{
    (void)arg, (void)blocked; /* declares still work while publishes are blocked */
}

struct lease_set *lease_set_new(const char *label)
{
    struct lease_set *s = xcalloc(1, sizeof(*s));
    s->label = xstrdup(label);
    s->client = (struct broker_client){.name = "lease",
                                       .own_channel = LEASE_CHANNEL,
                                       .on_open = lease_open,
                                       .on_method = lease_method,
                                       .on_lost = lease_lost,
                                       .on_blocked = lease_blocked,
                                       .tick = lease_tick,
                                       .arg = s};
    return s;
}

void lease_set_add(struct lease_set *s, struct route *r)
{
    struct lease *l = xcalloc(1, sizeof(*l));
    l->route = r;
    atomic_store(&l->role, LEASE_WAITING);
    s->leases = xrealloc(s->leases, (s->n + 1) * sizeof(*s->leases));
    s->leases[s->n++] = l;
    r->lease_handle = l;
}

const struct broker_client *lease_set_client(struct lease_set *s)
{
    return &s->client;
}

void lease_set_free(struct lease_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        s->leases[i]->route->lease_handle = NULL;
        free(s->leases[i]);
    }
    free(s->leases);
    free(s->label);
    free(s);
}

enum lease_role lease_role(const struct lease *l)
{
    return (enum lease_role)atomic_load(&l->role);
}

const char *lease_role_name(enum lease_role role)
{
    static const char *const names[] = {"waiting", "standby", "holder"};
    return names[role];
}

int64_t lease_since_ms(const struct lease *l)
{
    return atomic_load(&l->since_ms);
}

uint64_t lease_gained_count(const struct lease *l)
{
    return atomic_load(&l->gained);
}
