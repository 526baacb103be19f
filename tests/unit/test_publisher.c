/*
 * Unit tests for adapter/publisher.c driven through its broker_client with a
 * channel of our own and fabricated frames (no broker): every submit is
 * answered exactly once, by tag — acks with `multiple`, a nack, acks out of
 * order, returns and their parked copies (a returned park fails the
 * request), the window, a connection lost with publishes pending, rpc
 * replies matched on the publisher's call id, and invalid messages refused
 * before anything is written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "broker_client.h"
#include "config.h"
#include "loop.h"
#include "message.h"
#include "metrics.h"
#include "publisher.h"
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SENT 64

struct sent {
    char exchange[64], key[64], message_id[64], correlation_id[64];
};

struct fake {
    struct broker_channel ch;
    const struct broker_client *client;
    struct sent sent[MAX_SENT];
    int n_sent, n_failed;
};

static struct fake *fake_of(const struct broker_channel *ch)
{
    return ch->owner;
}

static void copy_bytes(char *out, amqp_bytes_t b)
{
    size_t n = b.len < 63 ? b.len : 63;
    if (n)
        memcpy(out, b.bytes, n);
    out[n] = '\0';
}

static int fake_publish(const struct broker_channel *ch, amqp_bytes_t exchange,
                        amqp_bytes_t routing_key, const amqp_basic_properties_t *props,
                        amqp_bytes_t body)
{
    struct fake *f = fake_of(ch);
    assert_true(f->n_sent < MAX_SENT);
    struct sent *s = &f->sent[f->n_sent++];
    copy_bytes(s->exchange, exchange);
    copy_bytes(s->key, routing_key);
    copy_bytes(s->message_id, props->message_id);
    copy_bytes(s->correlation_id, props->correlation_id);
    return AMQP_STATUS_OK;
}

/* What the broker does on a failure: close the channel, tell every client. */
static void fake_fail(const struct broker_channel *ch, const char *why)
{
    struct fake *f = fake_of(ch);
    f->n_failed++;
    f->ch.open = false;
    f->client->on_lost(f->client->arg, why);
}

static void fake_kick(const struct broker_channel *ch) {}

/* ---- fixture -------------------------------------------------------------- */

struct answer {
    int calls;
    enum publish_status status;
    char reply[64];
};

struct world {
    struct fake fake;
    struct broker_config cfg;
    struct process_metrics metrics;
    struct loop *loop;
    struct publisher *pub;
    struct route route;
    struct answer answers[MAX_SENT];
};

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));
    w->cfg =
        (struct broker_config){.max_inflight = 8, .confirm_timeout = 15, .max_message = 1 << 20};
    w->loop = loop_new();
    loop_stop(w->loop); /* loop_run now runs what was posted, and returns */
    w->pub = publisher_new("test", &w->cfg, w->loop, &w->metrics);
    publisher_enable_rpc(w->pub);
    w->route = (struct route){.name = "orders",
                              .dlx = "crm.dlx",
                              .dlq = "crm.orders.dlq",
                              .dlq_key = "crm.orders",
                              .app_id = "amqp-sidecar/crm"};
    w->fake.ch = (struct broker_channel){.open = true,
                                         .number = 1,
                                         .generation = 1,
                                         .frame_max = 131072,
                                         .loop = w->loop,
                                         .publish = fake_publish,
                                         .fail = fake_fail,
                                         .kick = fake_kick,
                                         .owner = &w->fake};
    w->fake.client = publisher_client(w->pub);
    char err[128];
    assert_int_equal(w->fake.client->on_open(w->fake.client->arg, &w->fake.ch, err, sizeof(err)),
                     0);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    publisher_free(w->pub);
    loop_free(w->loop);
    free(w);
    return 0;
}

static void answered(void *arg, struct publish_result *res)
{
    struct answer *a = arg;
    a->calls++;
    a->status = res->status;
    if (res->reply && res->reply->body)
        snprintf(a->reply, sizeof(a->reply), "%s", res->reply->body);
}

static struct message *message(const char *id, const char *key)
{
    struct message *m = message_new();
    message_set(&m->exchange, "crm.events");
    message_set(&m->routing_key, key);
    message_set(&m->message_id, id);
    message_set(&m->correlation_id, "caller-1");
    message_set_body(m, "{}", 2);
    return m;
}

/* Submits n messages "m0".."m<n-1>" and lets the broker thread send them. */
static void submit(struct world *w, int first, int n, bool rpc)
{
    struct publish_options opt = {.route = &w->route, .rpc = rpc, .rpc_timeout = 30};
    for (int i = first; i < first + n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "m%d", i);
        const char *why = NULL;
        assert_int_equal(publisher_submit(w->pub, message(id, "order.created"), &opt, answered,
                                          &w->answers[i], &why),
                         0);
    }
    loop_run(w->loop);
}

static void method(struct world *w, amqp_method_number_t id, void *decoded, amqp_message_t *content)
{
    amqp_method_t m = {.id = id, .decoded = decoded};
    w->fake.client->on_method(w->fake.client->arg, &m, content);
}

static void ack(struct world *w, uint64_t tag, bool multiple)
{
    amqp_basic_ack_t a = {.delivery_tag = tag, .multiple = multiple};
    method(w, AMQP_BASIC_ACK_METHOD, &a, NULL);
}

static void nack(struct world *w, uint64_t tag)
{
    amqp_basic_nack_t n = {.delivery_tag = tag, .multiple = 0, .requeue = 0};
    method(w, AMQP_BASIC_NACK_METHOD, &n, NULL);
}

/* The broker returns what was sent as sent[i] (message id, exchange, key). */
static void give_back(struct world *w, int i)
{
    struct sent *s = &w->fake.sent[i];
    amqp_basic_return_t ret = {.reply_code = 312,
                               .reply_text = amqp_cstring_bytes("NO_ROUTE"),
                               .exchange = amqp_cstring_bytes(s->exchange),
                               .routing_key = amqp_cstring_bytes(s->key)};
    amqp_message_t msg = {0};
    msg.properties._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
    msg.properties.message_id = amqp_cstring_bytes(s->message_id);
    msg.body = amqp_cstring_bytes("{}");
    method(w, AMQP_BASIC_RETURN_METHOD, &ret, &msg);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_multiple_ack_answers_each_once(void **state)
{
    struct world *w = *state;
    submit(w, 0, 5, false);
    assert_int_equal(w->fake.n_sent, 5);
    ack(w, 3, true);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w->answers[i].calls, 1);
        assert_int_equal(w->answers[i].status, PUBLISH_OK);
    }
    assert_int_equal(w->answers[3].calls, 0);
    ack(w, 3, true); /* a repeat changes nothing */
    ack(w, 5, true);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w->answers[i].calls, 1);
    assert_true(publisher_idle(w->pub));
}

static void test_nack_and_out_of_order_acks(void **state)
{
    struct world *w = *state;
    submit(w, 0, 4, false);
    ack(w, 4, false);
    nack(w, 2);
    ack(w, 1, false);
    assert_int_equal(w->answers[3].status, PUBLISH_OK);
    assert_int_equal(w->answers[1].status, PUBLISH_NACKED);
    assert_int_equal(w->answers[0].status, PUBLISH_OK);
    assert_int_equal(w->answers[2].calls, 0);
    ack(w, 3, false);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w->answers[i].calls, 1);
}

static void test_return_waits_for_the_parked_copy(void **state)
{
    struct world *w = *state;
    submit(w, 0, 1, false);
    give_back(w, 0); /* unroutable: parked in the route's DLQ */
    assert_int_equal(w->fake.n_sent, 2);
    assert_string_equal(w->fake.sent[1].exchange, "crm.dlx");
    assert_string_equal(w->fake.sent[1].key, "crm.orders");
    assert_string_equal(w->fake.sent[1].message_id, "m0");
    ack(w, 1, false);
    assert_int_equal(w->answers[0].calls, 0); /* the park is not confirmed yet */
    ack(w, 2, false);
    assert_int_equal(w->answers[0].calls, 1);
    assert_int_equal(w->answers[0].status, PUBLISH_UNROUTABLE);
}

static void test_a_returned_park_fails_the_request(void **state)
{
    struct world *w = *state;
    submit(w, 0, 1, false);
    give_back(w, 0);
    give_back(w, 1); /* the DLQ is gone: the parked copy comes back too */
    ack(w, 2, true);
    assert_int_equal(w->answers[0].calls, 1);
    assert_int_equal(w->answers[0].status, PUBLISH_UNAVAILABLE);
}

static void test_window_holds_the_rest_back(void **state)
{
    struct world *w = *state;
    w->cfg.max_inflight = 2;
    submit(w, 0, 5, false);
    assert_int_equal(w->fake.n_sent, 2);
    ack(w, 1, false);
    assert_int_equal(w->fake.n_sent, 3);
    ack(w, 3, true);
    assert_int_equal(w->fake.n_sent, 5);
    ack(w, 5, true);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w->answers[i].status, PUBLISH_OK);
}

static void test_connection_lost_fails_everything_once(void **state)
{
    struct world *w = *state;
    w->cfg.max_inflight = 2;
    submit(w, 0, 4, false); /* 2 on the wire, 2 in the backlog */
    ack(w, 1, false);
    fake_fail(&w->fake.ch, "socket closed");
    assert_int_equal(w->answers[0].status, PUBLISH_OK);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(w->answers[i].calls, 1);
        assert_int_equal(w->answers[i].status, PUBLISH_UNAVAILABLE);
    }
    ack(w, 2, true); /* a late ack from the old connection changes nothing */
    assert_int_equal(w->answers[1].calls, 1);
    const char *why = NULL;
    assert_false(publisher_available(w->pub, &why));
    assert_non_null(why);
}

static void test_rpc_reply_matches_the_call_id(void **state)
{
    struct world *w = *state;
    submit(w, 0, 2, true);
    ack(w, 2, true);
    assert_int_equal(w->answers[0].calls, 0); /* confirmed, waiting for the reply */
    /* both callers said X-Correlation-ID caller-1; the wire carries our call ids */
    assert_string_not_equal(w->fake.sent[0].correlation_id, "caller-1");
    assert_string_not_equal(w->fake.sent[0].correlation_id, w->fake.sent[1].correlation_id);
    for (int round = 0; round < 2; round++) { /* the second time: a duplicate */
        amqp_basic_deliver_t d = {.consumer_tag = amqp_cstring_bytes("amqp-sidecar-rpc")};
        amqp_message_t reply = {0};
        reply.properties._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
        reply.properties.correlation_id = amqp_cstring_bytes(w->fake.sent[1].correlation_id);
        reply.body = amqp_cstring_bytes("for m1");
        method(w, AMQP_BASIC_DELIVER_METHOD, &d, &reply);
    }
    assert_int_equal(w->answers[1].calls, 1);
    assert_string_equal(w->answers[1].reply, "for m1");
    assert_int_equal(w->answers[0].calls, 0);
    assert_int_equal(metric_get(w->metrics.rpc_replies_unmatched), 1);
    fake_fail(&w->fake.ch, "bye");
    assert_int_equal(w->answers[0].status, PUBLISH_UNAVAILABLE);
}

static void test_invalid_message_is_refused_before_writing(void **state)
{
    struct world *w = *state;
    struct message *m = message("m0", "order.created");
    char type[300];
    memset(type, 'a', sizeof(type) - 1);
    type[sizeof(type) - 1] = '\0';
    message_set(&m->content_type, type);
    struct publish_options opt = {.route = &w->route};
    const char *why = NULL;
    assert_int_equal(publisher_submit(w->pub, m, &opt, answered, &w->answers[0], &why),
                     PUBLISH_INVALID);
    assert_non_null(strstr(why, "content type"));
    loop_run(w->loop);
    assert_int_equal(w->fake.n_sent, 0);
    assert_int_equal(w->answers[0].calls, 0);
    assert_int_equal(w->fake.n_failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_multiple_ack_answers_each_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack_and_out_of_order_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_waits_for_the_parked_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_returned_park_fails_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_holds_the_rest_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost_fails_everything_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_reply_matches_the_call_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_message_is_refused_before_writing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
