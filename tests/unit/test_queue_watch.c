/*
 * Unit tests for the queue-depth watch (adapter/queue_watch.c), driven as
 * the broker would drive it: a fake channel records what the watch sends,
 * and fabricated declare-ok / channel.close methods answer it. Covers a whole
 * round, a queue that is gone (404: marked missing, channel reopened, the
 * round goes on), another refusal, the way back, a connection lost mid-round,
 * and that no round starts before its interval.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "broker_client.h"
#include "log.h"
#include "queue_watch.h"
#include "route.h"
#include "topology.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SENT 64

struct fake {
    struct broker_channel ch;
    amqp_method_number_t sent[MAX_SENT];
    char names[MAX_SENT][128]; /* queue.declare's queue */
    int passive[MAX_SENT];
    size_t n;
    int fail_send; /* AMQP_STATUS_* to return, 0 = ok */
};

static int fake_send(const struct broker_channel *ch, amqp_channel_t channel,
                     amqp_method_number_t id, void *decoded)
{
    struct fake *f = (struct fake *)ch;
    assert_int_equal(channel, QUEUE_WATCH_CHANNEL);
    assert_true(f->n < MAX_SENT);
    if (f->fail_send)
        return f->fail_send;
    f->sent[f->n] = id;
    if (id == AMQP_QUEUE_DECLARE_METHOD) {
        amqp_queue_declare_t *m = decoded;
        snprintf(f->names[f->n], sizeof(f->names[0]), "%.*s", (int)m->queue.len,
                 (char *)m->queue.bytes);
        f->passive[f->n] = m->passive;
    }
    f->n++;
    return AMQP_STATUS_OK;
}

struct fixture {
    struct fake fake;
    struct route route;
    struct route *routes[1];
    struct topology topo;
    struct topo_queue queues[3];
    struct queue_watch *w;
    const struct broker_client *c;
};

static int setup_interval(void **state, int64_t interval_ms)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    fx->fake.ch = (struct broker_channel){.open = true, .number = 1, .send_method = fake_send};
    fx->route.name = "billing";
    fx->routes[0] = &fx->route;
    fx->queues[0] = (struct topo_queue){.name = "crm.billing", .owner = "billing"};
    fx->queues[1] =
        (struct topo_queue){.name = "crm.billing.retry.1", .owner = "billing", .role = QUEUE_RETRY};
    fx->queues[2] =
        (struct topo_queue){.name = "crm.billing.dlq", .owner = "billing", .role = QUEUE_DLQ};
    fx->topo = (struct topology){.queues = fx->queues, .n_queues = 3};
    queue_watch_gauges(&fx->topo, fx->routes, 1);
    fx->w = queue_watch_new("billing", fx->routes, 1, interval_ms);
    fx->c = queue_watch_client(fx->w);
    char err[64];
    assert_int_equal(fx->c->on_open(fx->c->arg, &fx->fake.ch, err, sizeof(err)), 0);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_interval(state, 60000);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    queue_watch_free(fx->w);
    queue_watch_gauges_free(&fx->route);
    free(fx);
    return 0;
}

static void answer(struct fixture *fx, amqp_method_number_t id, void *decoded)
{
    amqp_method_t m = {.id = id, .decoded = decoded};
    assert_int_equal(fx->c->on_method(fx->c->arg, &m, NULL), BROKER_DONE);
}

static void open_ok(struct fixture *fx)
{
    amqp_channel_open_ok_t ok = {0};
    answer(fx, AMQP_CHANNEL_OPEN_OK_METHOD, &ok);
}

static void declare_ok(struct fixture *fx, uint32_t messages, uint32_t consumers)
{
    amqp_queue_declare_ok_t ok = {.message_count = messages, .consumer_count = consumers};
    answer(fx, AMQP_QUEUE_DECLARE_OK_METHOD, &ok);
}

static void closed(struct fixture *fx, uint16_t code, const char *text)
{
    amqp_channel_close_t c = {.reply_code = code, .reply_text = amqp_cstring_bytes(text)};
    answer(fx, AMQP_CHANNEL_CLOSE_METHOD, &c);
}

static struct queue_gauge *gauge(struct fixture *fx, size_t i)
{
    return &fx->route.queues[i];
}

static void test_gauges_from_the_topology(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(fx->route.n_queues, 3);
    assert_string_equal(gauge(fx, 0)->name, "crm.billing");
    assert_int_equal(gauge(fx, 0)->role, QUEUE_WORK);
    assert_int_equal(gauge(fx, 1)->role, QUEUE_RETRY);
    assert_int_equal(gauge(fx, 2)->role, QUEUE_DLQ);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&gauge(fx, i)->messages), -1); /* not read yet */
        assert_int_equal(atomic_load(&gauge(fx, i)->consumers), -1);
        assert_int_equal(atomic_load(&gauge(fx, i)->missing), 0);
    }
    assert_int_equal(fx->c->own_channel, QUEUE_WATCH_CHANNEL);
}

static void test_a_round_asks_each_queue_in_turn(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    assert_int_equal(fx->fake.n, 1);
    assert_int_equal(fx->fake.sent[0], AMQP_CHANNEL_OPEN_METHOD);
    fx->c->tick(fx->c->arg); /* one question at a time */
    assert_int_equal(fx->fake.n, 1);
    open_ok(fx);
    assert_int_equal(fx->fake.sent[1], AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(fx->fake.names[1], "crm.billing");
    assert_int_equal(fx->fake.passive[1], 1);
    declare_ok(fx, 7, 1);
    assert_string_equal(fx->fake.names[2], "crm.billing.retry.1");
    declare_ok(fx, 3, 0);
    assert_string_equal(fx->fake.names[3], "crm.billing.dlq");
    declare_ok(fx, 2, 0);
    assert_int_equal(fx->fake.n, 4); /* round over */
    assert_int_equal(atomic_load(&gauge(fx, 0)->messages), 7);
    assert_int_equal(atomic_load(&gauge(fx, 0)->consumers), 1);
    assert_int_equal(atomic_load(&gauge(fx, 1)->messages), 3);
    assert_int_equal(atomic_load(&gauge(fx, 2)->messages), 2);
    assert_true(atomic_load(&gauge(fx, 2)->read_ms) > 0);
    fx->c->tick(fx->c->arg); /* the next round waits for its interval */
    assert_int_equal(fx->fake.n, 4);
}

static void test_a_missing_queue_closes_only_the_watch_channel(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    declare_ok(fx, 1, 1);
    closed(fx, AMQP_NOT_FOUND, "NOT_FOUND - no queue 'crm.billing.retry.1'");
    /* open, two declares; then close-ok, the channel again, the next queue */
    assert_string_equal(fx->fake.names[2], "crm.billing.retry.1");
    assert_int_equal(fx->fake.sent[3], AMQP_CHANNEL_CLOSE_OK_METHOD);
    assert_int_equal(fx->fake.sent[4], AMQP_CHANNEL_OPEN_METHOD);
    assert_int_equal(atomic_load(&gauge(fx, 1)->missing), 1);
    assert_int_equal(atomic_load(&gauge(fx, 1)->messages), -1);
    open_ok(fx);
    assert_string_equal(fx->fake.names[5], "crm.billing.dlq");
    declare_ok(fx, 0, 0);
    assert_int_equal(atomic_load(&gauge(fx, 2)->messages), 0);
    assert_int_equal(atomic_load(&gauge(fx, 2)->missing), 0);
}

static void test_a_missing_last_queue_ends_the_round_closed(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    declare_ok(fx, 1, 1);
    declare_ok(fx, 1, 0);
    closed(fx, AMQP_NOT_FOUND, "NOT_FOUND");
    assert_int_equal(fx->fake.n, 5); /* open, 3 declares, close-ok: nothing reopened */
    assert_int_equal(fx->fake.sent[4], AMQP_CHANNEL_CLOSE_OK_METHOD);
    assert_int_equal(atomic_load(&gauge(fx, 2)->missing), 1);
}

static void test_another_refusal_is_not_missing(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    closed(fx, AMQP_ACCESS_REFUSED, "ACCESS_REFUSED");
    assert_int_equal(atomic_load(&gauge(fx, 0)->missing), 0);
    assert_int_equal(atomic_load(&gauge(fx, 0)->messages), -1);
    assert_int_equal(fx->fake.sent[fx->fake.n - 1], AMQP_CHANNEL_OPEN_METHOD); /* goes on */
}

static void test_a_lost_connection_ends_the_round(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    fx->c->on_lost(fx->c->arg, "gone");
    declare_ok(fx, 9, 9); /* a late answer from nowhere changes nothing */
    assert_int_equal(atomic_load(&gauge(fx, 0)->messages), -1);
    size_t n = fx->fake.n;
    fx->fake.ch.open = false;
    fx->c->tick(fx->c->arg); /* closed: nothing sent */
    assert_int_equal(fx->fake.n, n);
    fx->fake.ch.open = true;
    char err[64];
    fx->c->on_open(fx->c->arg, &fx->fake.ch, err, sizeof(err));
    fx->c->tick(fx->c->arg); /* a new connection: a new round at once, on a new channel */
    assert_int_equal(fx->fake.sent[fx->fake.n - 1], AMQP_CHANNEL_OPEN_METHOD);
}

static void test_the_queue_comes_back(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    closed(fx, AMQP_NOT_FOUND, "NOT_FOUND");
    assert_int_equal(atomic_load(&gauge(fx, 0)->missing), 1);
    fx->c->on_lost(fx->c->arg, "reconnect");
    char err[64];
    fx->c->on_open(fx->c->arg, &fx->fake.ch, err, sizeof(err));
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    declare_ok(fx, 0, 1);
    assert_int_equal(atomic_load(&gauge(fx, 0)->missing), 0);
    assert_int_equal(atomic_load(&gauge(fx, 0)->consumers), 1);
}

static void test_a_failed_send_waits_for_the_next_round(void **state)
{
    struct fixture *fx = *state;
    fx->fake.fail_send = AMQP_STATUS_SOCKET_ERROR;
    fx->c->tick(fx->c->arg);
    fx->fake.fail_send = 0;
    fx->c->tick(fx->c->arg); /* interval not over: nothing */
    assert_int_equal(fx->fake.n, 0);
}

/* SIGHUP swaps the routes mid-question: the answer that was due about an old
 * gauge is dropped (never written into a new one), and the next round asks
 * about the new set from its start. */
static void test_a_new_route_set_mid_round_drops_the_stale_answer(void **state)
{
    struct fixture *fx = *state;
    struct route other = {.name = "orders"};
    struct route *both[2] = {&fx->route, &other};
    struct topo_queue q = {.name = "crm.orders.dlq", .owner = "orders", .role = QUEUE_DLQ};
    struct topology t = {.queues = &q, .n_queues = 1};
    struct route *others[1] = {&other};
    queue_watch_gauges(&t, others, 1);
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    assert_string_equal(fx->fake.names[1], "crm.billing"); /* asked, not answered */
    queue_watch_set_routes(fx->w, &both[1], 1);
    fx->c->tick(fx->c->arg); /* no new question while the old one is due */
    assert_int_equal(fx->fake.n, 2);
    declare_ok(fx, 9, 9); /* about crm.billing: dropped */
    assert_int_equal(atomic_load(&other.queues[0].messages), -1);
    assert_int_equal(fx->fake.n, 2);
    fx->c->tick(fx->c->arg);
    assert_int_equal(fx->fake.n, 3);
    assert_string_equal(fx->fake.names[2], "crm.orders.dlq");
    declare_ok(fx, 4, 0);
    assert_int_equal(atomic_load(&other.queues[0].messages), 4);
    assert_int_equal(atomic_load(&gauge(fx, 0)->messages), -1); /* no longer watched */
    queue_watch_gauges_free(&other);
}

/* The same with the broker closing the channel about the old question. */
static void test_a_new_route_set_mid_round_survives_a_stale_close(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    queue_watch_set_routes(fx->w, fx->routes, 1); /* same routes, a new set */
    closed(fx, AMQP_NOT_FOUND, "NOT_FOUND");
    assert_int_equal(atomic_load(&gauge(fx, 0)->missing), 0); /* not said of a new gauge */
    fx->c->tick(fx->c->arg); /* a new round: reopen, then ask from the start */
    assert_int_equal(fx->fake.sent[fx->fake.n - 2], AMQP_CHANNEL_CLOSE_OK_METHOD);
    assert_int_equal(fx->fake.sent[fx->fake.n - 1], AMQP_CHANNEL_OPEN_METHOD);
    open_ok(fx);
    assert_string_equal(fx->fake.names[fx->fake.n - 1], "crm.billing");
}

static void test_an_interval_of_zero_asks_again(void **state)
{
    struct fixture *fx = *state;
    fx->c->tick(fx->c->arg);
    open_ok(fx);
    declare_ok(fx, 1, 0);
    declare_ok(fx, 2, 0);
    declare_ok(fx, 3, 0);
    fx->c->tick(fx->c->arg); /* the channel stays open: straight to the first queue */
    assert_int_equal(fx->fake.sent[fx->fake.n - 1], AMQP_QUEUE_DECLARE_METHOD);
    assert_string_equal(fx->fake.names[fx->fake.n - 1], "crm.billing");
}

static int setup_zero(void **state)
{
    return setup_interval(state, 0);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gauges_from_the_topology, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_round_asks_each_queue_in_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_queue_closes_only_the_watch_channel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_last_queue_ends_the_round_closed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_another_refusal_is_not_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_ends_the_round, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_queue_comes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_send_waits_for_the_next_round, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_new_route_set_mid_round_drops_the_stale_answer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_new_route_set_mid_round_survives_a_stale_close,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_interval_of_zero_asks_again, setup_zero, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
