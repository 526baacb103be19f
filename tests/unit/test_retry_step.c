/*
 * Unit tests for consumer_retry_step (adapter/consumer.c): which retry queue
 * a failed delivery goes to, honouring Retry-After, and when the ladder ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "consumer.h"

static const double ladder[] = {1, 5, 30, 120};

static void test_steps_follow_attempts(void **state)
{
    assert_int_equal(consumer_retry_step(ladder, 4, 1, 0), 1);
    assert_int_equal(consumer_retry_step(ladder, 4, 2, 0), 2);
    assert_int_equal(consumer_retry_step(ladder, 4, 4, 0), 4);
}

static void test_past_the_ladder_is_dead(void **state)
{
    assert_int_equal(consumer_retry_step(ladder, 4, 5, 0), 0);
    assert_int_equal(consumer_retry_step(ladder, 4, 0, 0), 0);
}

static void test_retry_after_picks_a_longer_step(void **state)
{
    assert_int_equal(consumer_retry_step(ladder, 4, 1, 3), 2);   /* 5 s >= 3 s */
    assert_int_equal(consumer_retry_step(ladder, 4, 1, 30), 3);  /* exactly */
    assert_int_equal(consumer_retry_step(ladder, 4, 1, 600), 4); /* longest there is */
    assert_int_equal(consumer_retry_step(ladder, 4, 3, 1), 3);   /* shorter: the ladder wins */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_follow_attempts),
        cmocka_unit_test(test_past_the_ladder_is_dead),
        cmocka_unit_test(test_retry_after_picks_a_longer_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
