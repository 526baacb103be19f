/*
 * Unit tests for the judge of adapter/consumer.h: a delivery that carries
 * one (as `amqp-sidecar test` makes them) reports each of the five exits to
 * it — kind, calls, Retry-After, dead reason, the formatted reason and the
 * reply, which the judge takes — and never reaches the consumer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "message.h"
#include "util.h"

struct heard {
    int calls;
    struct delivery_verdict v;
    char reason[128];
    char reply[64];
};

static void settle(void *arg, struct delivery *d, struct delivery_verdict *v)
{
    struct heard *h = arg;
    h->calls++;
    h->v = *v;
    snprintf(h->reason, sizeof(h->reason), "%s", v->reason);
    snprintf(h->reply, sizeof(h->reply), "%s", v->reply ? v->reply->body : "");
    message_free(v->reply);
    message_free(d->msg);
    free(d);
}

static struct delivery *judged(const struct delivery_judge *j)
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    d->msg = message_new();
    d->judge = j;
    return d;
}

static void test_every_exit_reaches_the_judge(void **state)
{
    struct heard h = {0};
    const struct delivery_judge j = {.settle = settle, .arg = &h};
    struct message *reply = message_new();
    message_set_body(reply, "ok", 2);
    settle_ack(judged(&j), reply);
    assert_int_equal(h.v.kind, VERDICT_ACK);
    assert_string_equal(h.reply, "ok");
    assert_string_equal(h.reason, "");

    settle_retry(judged(&j), 1, 20, "HTTP %d from %s", 503, "POST http://x/");
    assert_int_equal(h.v.kind, VERDICT_RETRY);
    assert_int_equal(h.v.calls, 1);
    assert_true(h.v.retry_after == 20);
    assert_string_equal(h.reason, "HTTP 503 from POST http://x/");

    settle_throttled(judged(&j), 7, "slow down");
    assert_int_equal(h.v.kind, VERDICT_THROTTLED);
    assert_true(h.v.retry_after == 7);

    settle_retry_uncounted(judged(&j), "no token: %s", "refused");
    assert_int_equal(h.v.kind, VERDICT_RETRY_UNCOUNTED);
    assert_string_equal(h.reason, "no token: refused");

    reply = message_new();
    message_set_body(reply, "422", 3);
    settle_dead(judged(&j), 1, DEAD_REJECTED, reply, "HTTP %d", 422);
    assert_int_equal(h.v.kind, VERDICT_DEAD);
    assert_int_equal(h.v.dead, DEAD_REJECTED);
    assert_string_equal(h.reply, "422");
    assert_string_equal(h.reason, "HTTP 422");

    abandon(judged(&j));
    assert_int_equal(h.v.kind, VERDICT_ABANDON);
    assert_int_equal(h.calls, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_exit_reaches_the_judge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
