/*
 * Unit tests for ack_batch (adapter/ack_batch.c): which acks a flush sends
 * for the tags settled since the last one, and what a new connection forgets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ack_batch.h"

struct sent {
    uint64_t tag[16];
    bool multiple[16];
    int n;
};

static void record(void *arg, uint64_t tag, bool multiple)
{
    struct sent *s = arg;
    assert_true(s->n < 16);
    s->tag[s->n] = tag;
    s->multiple[s->n++] = multiple;
}

static void test_all_settled_is_one_multiple_ack(void **state)
{
    struct ack_batch b = {0};
    for (uint64_t t = 1; t <= 5; t++)
        ack_batch_hold(&b, 1, t);
    ack_batch_settle(&b, 3);
    ack_batch_settle(&b, 1);
    ack_batch_settle(&b, 5);
    ack_batch_settle(&b, 2);
    ack_batch_settle(&b, 4);
    struct sent s = {0};
    ack_batch_flush(&b, record, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.tag[0], 5);
    assert_true(s.multiple[0]);
    assert_int_equal(b.n_settled, 0);
    ack_batch_free(&b);
}

static void test_above_the_oldest_held_one_by_one(void **state)
{
    struct ack_batch b = {0};
    for (uint64_t t = 1; t <= 5; t++)
        ack_batch_hold(&b, 1, t);
    ack_batch_settle(&b, 1);
    ack_batch_settle(&b, 2);
    ack_batch_settle(&b, 4); /* 3 is still held */
    struct sent s = {0};
    ack_batch_flush(&b, record, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.tag[0], 4);
    assert_false(s.multiple[0]);
    assert_int_equal(s.tag[1], 2);
    assert_true(s.multiple[1]);
    ack_batch_free(&b);
}

static void test_released_tags_are_not_acked(void **state)
{
    struct ack_batch b = {0};
    ack_batch_hold(&b, 1, 1);
    ack_batch_hold(&b, 1, 2);
    ack_batch_release(&b, 1); /* nacked: no longer holds the line */
    ack_batch_settle(&b, 2);
    struct sent s = {0};
    ack_batch_flush(&b, record, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.tag[0], 2);
    assert_true(s.multiple[0]);
    ack_batch_free(&b);
}

static void test_new_connection_forgets(void **state)
{
    struct ack_batch b = {0};
    assert_false(ack_batch_hold(&b, 1, 1)); /* the first connection is new too */
    assert_true(ack_batch_hold(&b, 1, 2));
    ack_batch_settle(&b, 1);
    assert_false(ack_batch_hold(&b, 2, 1));
    assert_int_equal(b.n_settled, 0);
    assert_int_equal(b.n_held, 1);
    ack_batch_settle(&b, 1);
    struct sent s = {0};
    ack_batch_flush(&b, NULL, NULL); /* connection gone: dropped */
    assert_int_equal(b.n_settled, 0);
    ack_batch_flush(&b, record, &s);
    assert_int_equal(s.n, 0);
    ack_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_settled_is_one_multiple_ack),
        cmocka_unit_test(test_above_the_oldest_held_one_by_one),
        cmocka_unit_test(test_released_tags_are_not_acked),
        cmocka_unit_test(test_new_connection_forgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
