/*
 * Unit tests for the broker-held leases (adapter/lease.c), driven as the
 * broker would drive them: a fake channel records what the set sends, and
 * fabricated declare-ok / get-ok / get-empty / channel.close methods answer.
 * Covers taking a lease (an exclusive declare), standby on 405 and the next
 * try after LEASE_RETRY_MS, reading the stored cursor and giving it back, a
 * missing cursor queue, a bad stored cursor, two leases in one round, and a
 * lost connection (the route hears it only for a lease it held). Every role
 * read also checks the lease_held gauge agrees with it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "broker_client.h"
#include "lease.h"
#include "log.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SENT 64

struct sent {
    amqp_method_number_t id;
    char queue[128]; /* queue.declare's or basic.get's */
    int exclusive;
    int requeue;
    uint64_t tag;
};

struct fake {
    struct broker_channel ch;
    struct sent sent[MAX_SENT];
    size_t n;
};

static int fake_send(const struct broker_channel *ch, amqp_channel_t channel,
                     amqp_method_number_t id, void *decoded)
{
    struct fake *f = (struct fake *)ch;
    assert_int_equal(channel, LEASE_CHANNEL);
    assert_true(f->n < MAX_SENT);
    struct sent *s = &f->sent[f->n++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    if (id == AMQP_QUEUE_DECLARE_METHOD) {
        amqp_queue_declare_t *m = decoded;
        snprintf(s->queue, sizeof(s->queue), "%.*s", (int)m->queue.len, (char *)m->queue.bytes);
        s->exclusive = m->exclusive;
    } else if (id == AMQP_BASIC_GET_METHOD) {
        amqp_basic_get_t *m = decoded;
        snprintf(s->queue, sizeof(s->queue), "%.*s", (int)m->queue.len, (char *)m->queue.bytes);
    } else if (id == AMQP_BASIC_REJECT_METHOD) {
        amqp_basic_reject_t *m = decoded;
        s->requeue = m->requeue;
        s->tag = m->delivery_tag;
    }
    return AMQP_STATUS_OK;
}

/* What the routes heard. */
struct heard {
    int gained, lost;
    char cursor[128]; /* of the last gain; "(null)" for none */
};
static struct heard heard[2];

static int index_of(const struct route *r)
{
    return strcmp(r->name, "tickets") == 0 ? 0 : 1;
}

static void kind_gained(struct route *r, const char *cursor)
{
    struct heard *h = &heard[index_of(r)];
    h->gained++;
    snprintf(h->cursor, sizeof(h->cursor), "%s", cursor ? cursor : "(null)");
}

static void kind_lost(struct route *r)
{
    heard[index_of(r)].lost++;
}

static const struct route_kind kind = {
    .name = "poll", .lease_gained = kind_gained, .lease_lost = kind_lost};

struct fixture {
    struct fake fake;
    struct route routes[2];
    struct lease_set *s;
    const struct broker_client *c;
};

static struct fixture *make(bool cursor, size_t n_routes)
{
    memset(heard, 0, sizeof(heard));
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    fx->fake.ch = (struct broker_channel){.open = true, .number = 1, .send_method = fake_send};
    fx->routes[0] = (struct route){.name = "tickets",
                                   .kind = &kind,
                                   .lease = true,
                                   .lease_queue = "crm.tickets.lease",
                                   .cursor_queue = cursor ? "crm.tickets.cursor" : NULL};
    fx->routes[1] = (struct route){
        .name = "invoices", .kind = &kind, .lease = true, .lease_queue = "crm.invoices.lease"};
    fx->s = lease_set_new("publisher");
    for (size_t i = 0; i < n_routes; i++)
        lease_set_add(fx->s, &fx->routes[i]);
    fx->c = lease_set_client(fx->s);
    char err[64];
    assert_int_equal(fx->c->on_open(fx->c->arg, &fx->fake.ch, err, sizeof(err)), 0);
    return fx;
}

static int setup(void **state)
{
    *state = make(false, 1);
    return 0;
}

static int setup_cursor(void **state)
{
    *state = make(true, 1);
    return 0;
}

static int setup_two(void **state)
{
    *state = make(false, 2);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    lease_set_free(fx->s);
    assert_null(fx->routes[0].lease_handle);
    free(fx);
    return 0;
}

static void answer(struct fixture *fx, amqp_method_number_t id, void *decoded,
                   amqp_message_t *content)
{
    amqp_method_t m = {.id = id, .decoded = decoded};
    assert_int_equal(fx->c->on_method(fx->c->arg, &m, content), BROKER_DONE);
}

static void open_ok(struct fixture *fx)
{
    amqp_channel_open_ok_t ok = {0};
    answer(fx, AMQP_CHANNEL_OPEN_OK_METHOD, &ok, NULL);
}

static void declare_ok(struct fixture *fx)
{
    amqp_queue_declare_ok_t ok = {0};
    answer(fx, AMQP_QUEUE_DECLARE_OK_METHOD, &ok, NULL);
}

static void closed(struct fixture *fx, uint16_t code, const char *text)
{
    amqp_channel_close_t c = {.reply_code = code, .reply_text = amqp_cstring_bytes(text)};
    answer(fx, AMQP_CHANNEL_CLOSE_METHOD, &c, NULL);
}

static void get_ok(struct fixture *fx, uint64_t tag, const void *body, size_t len)
{
    amqp_basic_get_ok_t ok = {.delivery_tag = tag};
    amqp_message_t msg = {.body = {.len = len, .bytes = (void *)body}};
    answer(fx, AMQP_BASIC_GET_OK_METHOD, &ok, &msg);
}

/* A round that opens the channel and has the first lease asked about declared. */
static void round_declared(struct fixture *fx)
{
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    declare_ok(fx);
}

static void reconnect(struct fixture *fx, const char *why)
{
    fx->c->on_lost(fx->c->arg, why);
    char err[64];
    assert_int_equal(fx->c->on_open(fx->c->arg, &fx->fake.ch, err, sizeof(err)), 0);
}

static const struct sent *last(struct fixture *fx)
{
    assert_true(fx->fake.n > 0);
    return &fx->fake.sent[fx->fake.n - 1];
}

/* The role, and the metric /metrics shows for it (amqp_sidecar_lease_held), which must agree. */
static enum lease_role role_of(struct fixture *fx, int i)
{
    enum lease_role role = lease_role(fx->routes[i].lease_handle);
    assert_int_equal(metric_get(fx->routes[i].metrics.lease_held), role == LEASE_HOLDER);
    return role;
}

static void test_a_lease_is_an_exclusive_declare_and_taking_it_runs_the_route(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(role_of(fx, 0), LEASE_WAITING);
    fx->c->tick(fx->c->arg);
    assert_int_equal(last(fx)->id, AMQP_CHANNEL_OPEN_METHOD);
    open_ok(fx);
    assert_int_equal(last(fx)->id, AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(last(fx)->queue, "crm.tickets.lease");
    assert_int_equal(last(fx)->exclusive, 1);
    assert_int_equal(heard[0].gained, 0);
    declare_ok(fx);
    assert_int_equal(heard[0].gained, 1);
    assert_string_equal(heard[0].cursor, "(null)"); /* no cursor queue: nothing read */
    assert_int_equal(role_of(fx, 0), LEASE_HOLDER);
    assert_int_equal(lease_gained_count(fx->routes[0].lease_handle), 1);
    assert_true(lease_since_ms(fx->routes[0].lease_handle) > 0);
    size_t n = fx->fake.n;
    fx->c->tick(fx->c->arg); /* held: nothing more to ask */
    assert_int_equal(fx->fake.n, n);
}

static void test_a_locked_lease_is_standby_and_asked_again_later(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    closed(fx, AMQP_RESOURCE_LOCKED, "RESOURCE_LOCKED - cannot obtain exclusive access");
    assert_int_equal(last(fx)->id, AMQP_CHANNEL_CLOSE_OK_METHOD);
    assert_int_equal(role_of(fx, 0), LEASE_STANDBY);
    assert_int_equal(heard[0].gained, 0);
    size_t n = fx->fake.n;
    fx->c->tick(fx->c->arg); /* not before LEASE_RETRY_MS */
    assert_int_equal(fx->fake.n, n);
    long ms = LEASE_RETRY_MS + 50;
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L}, NULL);
    fx->c->tick(fx->c->arg);
    assert_int_equal(last(fx)->id, AMQP_CHANNEL_OPEN_METHOD); /* the 405 closed it */
    open_ok(fx);
    declare_ok(fx); /* the holder's connection ended: ours now */
    assert_int_equal(role_of(fx, 0), LEASE_HOLDER);
    assert_int_equal(heard[0].gained, 1);
}

static void test_the_stored_cursor_is_read_and_given_back(void **state)
{
    struct fixture *fx = *state;
    round_declared(fx);
    assert_int_equal(heard[0].gained, 0); /* not before the cursor is known */
    assert_int_equal(last(fx)->id, AMQP_BASIC_GET_METHOD);
    assert_string_equal(last(fx)->queue, "crm.tickets.cursor");
    get_ok(fx, 7, "2024-01-01T00:00:02Z", 20);
    assert_int_equal(last(fx)->id, AMQP_BASIC_REJECT_METHOD);
    assert_int_equal(last(fx)->tag, 7);
    assert_int_equal(last(fx)->requeue, 1); /* stays for the next holder */
    assert_int_equal(heard[0].gained, 1);
    assert_string_equal(heard[0].cursor, "2024-01-01T00:00:02Z");
    assert_int_equal(role_of(fx, 0), LEASE_HOLDER);
}

static void test_no_stored_cursor_gives_none(void **state)
{
    struct fixture *fx = *state;
    round_declared(fx);
    amqp_basic_get_empty_t empty = {0};
    answer(fx, AMQP_BASIC_GET_EMPTY_METHOD, &empty, NULL);
    assert_int_equal(heard[0].gained, 1);
    assert_string_equal(heard[0].cursor, "(null)");
}

static void test_a_missing_cursor_queue_still_holds_the_lease(void **state)
{
    struct fixture *fx = *state;
    round_declared(fx);
    closed(fx, AMQP_NOT_FOUND, "NOT_FOUND - no queue");
    assert_int_equal(heard[0].gained, 1);
    assert_string_equal(heard[0].cursor, "(null)"); /* the local cursor is used */
    assert_int_equal(role_of(fx, 0), LEASE_HOLDER);
}

static void test_a_bad_stored_cursor_is_ignored_and_given_back(void **state)
{
    struct fixture *fx = *state;
    round_declared(fx);
    get_ok(fx, 3,
           "12\0"
           "34",
           5); /* a NUL byte cannot be a cursor */
    assert_int_equal(last(fx)->id, AMQP_BASIC_REJECT_METHOD);
    assert_string_equal(heard[0].cursor, "(null)");
    char *big = xcalloc(1, LEASE_CURSOR_MAX + 1);
    memset(big, 'x', LEASE_CURSOR_MAX + 1);
    reconnect(fx, "reconnect");
    round_declared(fx);
    get_ok(fx, 4, big, LEASE_CURSOR_MAX + 1);
    free(big);
    assert_int_equal(heard[0].gained, 2);
    assert_string_equal(heard[0].cursor, "(null)");
}

static void test_one_round_asks_for_every_lease_not_held(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    closed(fx, AMQP_RESOURCE_LOCKED, "RESOURCE_LOCKED"); /* tickets: another's */
    assert_int_equal(last(fx)->id, AMQP_CHANNEL_OPEN_METHOD);
    open_ok(fx);
    assert_string_equal(last(fx)->queue, "crm.invoices.lease");
    declare_ok(fx);
    assert_int_equal(role_of(fx, 0), LEASE_STANDBY);
    assert_int_equal(role_of(fx, 1), LEASE_HOLDER);
    assert_int_equal(heard[0].gained, 0);
    assert_int_equal(heard[1].gained, 1);
}

static void test_a_lost_connection_loses_the_held_leases_only(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    closed(fx, AMQP_RESOURCE_LOCKED, "RESOURCE_LOCKED");
    open_ok(fx);
    declare_ok(fx);
    reconnect(fx, "connection reset");
    assert_int_equal(heard[0].lost, 0); /* never held: nothing to stop */
    assert_int_equal(heard[1].lost, 1);
    assert_int_equal(role_of(fx, 0), LEASE_WAITING);
    assert_int_equal(role_of(fx, 1), LEASE_WAITING);
    fx->c->tick(fx->c->arg); /* a new connection asks at once */
    assert_int_equal(last(fx)->id, AMQP_CHANNEL_OPEN_METHOD);
    open_ok(fx);
    assert_string_equal(last(fx)->queue, "crm.tickets.lease");
    declare_ok(fx);
    declare_ok(fx);
    assert_int_equal(heard[0].gained, 1);
    assert_int_equal(heard[1].gained, 2);
}

static void test_lost_while_reading_the_cursor_tells_the_route_nothing(void **state)
{
    struct fixture *fx = *state;
    round_declared(fx);
    fx->c->on_lost(fx->c->arg, "connection reset"); /* before get-ok */
    assert_int_equal(heard[0].gained, 0);
    assert_int_equal(heard[0].lost, 0);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_lease_is_an_exclusive_declare_and_taking_it_runs_the_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_locked_lease_is_standby_and_asked_again_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_stored_cursor_is_read_and_given_back, setup_cursor,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_stored_cursor_gives_none, setup_cursor, teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_cursor_queue_still_holds_the_lease,
                                        setup_cursor, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_stored_cursor_is_ignored_and_given_back,
                                        setup_cursor, teardown),
        cmocka_unit_test_setup_teardown(test_one_round_asks_for_every_lease_not_held, setup_two,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_loses_the_held_leases_only,
                                        setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_lost_while_reading_the_cursor_tells_the_route_nothing,
                                        setup_cursor, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
